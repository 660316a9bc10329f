// The per-disk copy-before-write journal: reads as of a mark, revert, compaction, reopening,
// torn and corrupted files, and a randomized test against a model of every mark's disk.

import { afterAll, describe, expect, it } from "vitest";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { MemoryDisk } from "../../src/devices/disk.js";
import { RvmError } from "../../src/errors.js";
import { DiskJournal, JOURNAL_BLOCK_SIZE as BS, JournalError } from "../../src/snapshot/journal.js";

// On tmpfs when there is one: the journal fsyncs every append, and on a disk busy with the
// other suites' images each fsync can take a second; correctness does not depend on it here.
const root = mkdtempSync(join(existsSync("/dev/shm") ? "/dev/shm" : tmpdir(), "rvm-journal-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let dirs = 0;
function freshDir(): string {
  const d = join(root, `d${dirs++}`);
  mkdirSync(d);
  return d;
}

/** Deterministic PRNG (mulberry32). */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function fill(len: number, value: number): Uint8Array {
  return new Uint8Array(len).fill(value);
}

/** Writes through the journal, as virtio-blk does. */
function write(j: DiskJournal, disk: MemoryDisk, offset: number, data: Uint8Array): void {
  j.beforeWrite(offset, data.length);
  disk.write(data, offset);
}

function block(j: DiskJournal, b: number, g: number): Uint8Array {
  const out = new Uint8Array(BS);
  j.readBlock(b, g, out);
  return out;
}

function diskBlock(content: Uint8Array, b: number): Uint8Array {
  const out = new Uint8Array(BS);
  out.set(content.subarray(b * BS, Math.min(content.length, (b + 1) * BS)));
  return out;
}

/** A disk of 6 blocks with a distinct byte pattern per block. */
function patterned(blocks = 6, tail = 0): MemoryDisk {
  const d = new Uint8Array(blocks * BS + tail);
  for (let i = 0; i < d.length; i++) d[i] = (i * 7 + (i >> 12) * 31) & 0xff;
  return new MemoryDisk(d);
}

describe("disk journal", { timeout: 60_000 }, () => {
  it("reads each block as of each mark: blocks written 0, 1 or several times, partial writes", () => {
    const dir = freshDir();
    const disk = patterned();
    const j = DiskJournal.open(dir, "hd0", disk);
    expect(j.generation).toBe(1);
    // Before any mark: nothing preserved.
    write(j, disk, 0, fill(BS, 0x11));
    const s0 = disk.data.slice();
    const g1 = j.mark();
    expect(g1).toBe(1);
    expect(j.generation).toBe(2);
    write(j, disk, 1 * BS, fill(BS, 0x21)); // block 1: written once
    write(j, disk, 2 * BS + 512, fill(512, 0x22)); // block 2: partial write
    write(j, disk, 3 * BS, fill(BS, 0x23)); // block 3: written twice in one generation
    write(j, disk, 3 * BS, fill(100, 0x24));
    const s1 = disk.data.slice();
    const g2 = j.mark();
    expect(g2).toBe(2);
    write(j, disk, 1 * BS, fill(BS, 0x31)); // block 1: again in a later generation
    write(j, disk, 2 * BS + 1024, fill(512, 0x32));
    write(j, disk, 4 * BS - 10, fill(20, 0x33)); // straddles blocks 3 and 4
    const s2 = disk.data.slice();
    const g3 = j.mark();
    write(j, disk, 0, fill(6 * BS, 0x44)); // everything
    for (const [g, s] of [
      [g1, s0],
      [g2, s1],
      [g3, s2],
    ] as const) {
      for (let b = 0; b < 6; b++) expect(block(j, b, g)).toEqual(diskBlock(s, b));
    }
    // Block 5 was never written before the last mark: unchanged since g1 and g2 until now.
    expect(j.changedSince(5, g3)).toBe(true);
    expect(j.changedSince(0, g1)).toBe(true);
    // A partial write preserved the whole block (bytes outside the write come from the entry).
    expect(block(j, 2, g1)).toEqual(diskBlock(s0, 2));
    j.close();
  });

  it("changedSince is false for blocks not written since the mark", () => {
    const disk = patterned();
    const j = DiskJournal.open(freshDir(), "hd0", disk);
    const g = j.mark();
    write(j, disk, BS, fill(10, 1));
    expect(j.changedSince(0, g)).toBe(false);
    expect(j.changedSince(1, g)).toBe(true);
    expect(block(j, 0, g)).toEqual(diskBlock(disk.data, 0));
    j.close();
  });

  it("reads bytes past the end of the disk as zero", () => {
    const disk = patterned(2, 1536); // last block is partial: 1536 bytes
    const j = DiskJournal.open(freshDir(), "hd0", disk);
    const before = disk.data.slice();
    const g = j.mark();
    write(j, disk, 2 * BS, fill(1536, 0xee));
    const b = block(j, 2, g);
    expect(b.subarray(0, 1536)).toEqual(before.subarray(2 * BS));
    expect(b.subarray(1536).every((x) => x === 0)).toBe(true);
    expect(block(j, 3, g).every((x) => x === 0)).toBe(true);
    j.revertTo(g);
    expect(disk.data).toEqual(before);
    j.close();
  });

  it("beforeWrite without any mark preserves nothing", () => {
    const dir = freshDir();
    const disk = patterned();
    const j = DiskJournal.open(dir, "hd0", disk);
    const empty = j.size();
    for (let i = 0; i < 10; i++) write(j, disk, i * 1000, fill(3000, i));
    expect(j.size()).toBe(empty);
    expect(statSync(join(dir, "hd0.journal")).size).toBe(empty);
    expect(j.generation).toBe(1);
    j.close();
  });

  it("batches a multi-block write into one append", () => {
    const dir = freshDir();
    const disk = patterned();
    const j = DiskJournal.open(dir, "hd0", disk);
    j.mark();
    const s = j.size();
    write(j, disk, 0, fill(4 * BS, 9));
    expect(j.size() - s).toBe(4 * (BS + 32));
    // Already preserved in this generation: no growth.
    write(j, disk, BS, fill(2 * BS, 8));
    expect(j.size() - s).toBe(4 * (BS + 32));
    j.close();
  });

  it("revertTo restores the disk at a mark; later marks still read correctly", () => {
    const disk = patterned();
    const j = DiskJournal.open(freshDir(), "hd0", disk);
    const s1 = disk.data.slice();
    const g1 = j.mark();
    write(j, disk, 0, fill(2 * BS, 1));
    const s2 = disk.data.slice();
    const g2 = j.mark();
    write(j, disk, BS, fill(2 * BS, 2));
    write(j, disk, 5 * BS + 7, fill(9, 3));
    const now = disk.data.slice();

    j.revertTo(g1);
    expect(disk.data).toEqual(s1);
    expect(disk.flushes).toBeGreaterThan(0);
    for (let b = 0; b < 6; b++) {
      expect(block(j, b, g1)).toEqual(diskBlock(s1, b));
      expect(block(j, b, g2)).toEqual(diskBlock(s2, b));
    }
    // Write after the revert, then go to the later mark.
    write(j, disk, 2 * BS, fill(BS, 4));
    j.revertTo(g2);
    expect(disk.data).toEqual(s2);
    for (let b = 0; b < 6; b++) expect(block(j, b, g1)).toEqual(diskBlock(s1, b));
    // And back to g1 once more, and a new mark after it.
    j.revertTo(g1);
    expect(disk.data).toEqual(s1);
    const g3 = j.mark();
    expect(g3).toBeGreaterThan(g2);
    write(j, disk, 0, fill(6 * BS, 5));
    for (let b = 0; b < 6; b++) {
      expect(block(j, b, g1)).toEqual(diskBlock(s1, b));
      expect(block(j, b, g2)).toEqual(diskBlock(s2, b));
      expect(block(j, b, g3)).toEqual(diskBlock(s1, b));
    }
    expect(now).not.toEqual(s1);
    j.close();
  });

  it("compact keeps exactly what live marks need, and the file shrinks", () => {
    const dir = freshDir();
    const disk = patterned();
    const j = DiskJournal.open(dir, "hd0", disk);
    const states: Uint8Array[] = [];
    const marks: number[] = [];
    for (let round = 0; round < 4; round++) {
      states.push(disk.data.slice());
      marks.push(j.mark());
      write(j, disk, 0, fill(6 * BS, 0x50 + round));
    }
    const full = j.size();
    const file = join(dir, "hd0.journal");
    expect(statSync(file).size).toBe(full);
    // Keep marks[1] and marks[3]: all blocks are needed for both; the entries that only
    // marks[0] and marks[2] needed go.
    j.compact([marks[1], marks[3]]);
    expect(j.size()).toBeLessThan(full);
    // Exactly 6 blocks x 2 kept generations, after the state record (header + 12 + 4 per mark).
    expect(j.size()).toBe(32 + 12 + 2 * 4 + 12 * (BS + 32));
    expect(statSync(file).size).toBe(j.size());
    expect(j.liveMarks).toEqual([marks[1], marks[3]]);
    for (const i of [1, 3]) for (let b = 0; b < 6; b++) expect(block(j, b, marks[i])).toEqual(diskBlock(states[i], b));
    expect(() => block(j, 0, marks[0])).toThrow(JournalError);
    j.compact([marks[3]]);
    expect(j.size()).toBe(32 + 12 + 4 + 6 * (BS + 32));
    for (let b = 0; b < 6; b++) expect(block(j, b, marks[3])).toEqual(diskBlock(states[3], b));
    // No live marks: the journal is emptied, and writes preserve nothing any more.
    j.compact([]);
    const empty = j.size();
    expect(empty).toBe(32 + 12);
    write(j, disk, 0, fill(BS, 1));
    expect(j.size()).toBe(empty);
    expect(() => j.compact([marks[3]])).toThrow(RvmError);
    // A new mark starts preserving again, with a fresh number.
    const g = j.mark();
    expect(g).toBeGreaterThan(marks[3]);
    const s = disk.data.slice();
    write(j, disk, 0, fill(BS, 2));
    expect(block(j, 0, g)).toEqual(diskBlock(s, 0));
    j.close();
  });

  it("compact keeps an entry needed by an old mark when a block was written once, long after", () => {
    const disk = patterned();
    const j = DiskJournal.open(freshDir(), "hd0", disk);
    const s = disk.data.slice();
    const g1 = j.mark();
    j.mark();
    j.mark();
    write(j, disk, 0, fill(BS, 7)); // entry of generation 4, needed by marks 1, 2 and 3
    j.compact([g1]);
    expect(block(j, 0, g1)).toEqual(diskBlock(s, 0));
    j.close();
  });

  it("reopening gives the same answers", () => {
    const dir = freshDir();
    const disk = patterned();
    let j = DiskJournal.open(dir, "hd0", disk);
    const s1 = disk.data.slice();
    const g1 = j.mark();
    write(j, disk, 0, fill(3 * BS, 1));
    const s2 = disk.data.slice();
    const g2 = j.mark();
    write(j, disk, 2 * BS, fill(3 * BS, 2));
    const size = j.size();
    j.close();
    j = DiskJournal.open(dir, "hd0", disk);
    expect(j.generation).toBe(3);
    expect(j.size()).toBe(size);
    expect(j.liveMarks).toEqual([g1, g2]);
    for (let b = 0; b < 6; b++) {
      expect(block(j, b, g1)).toEqual(diskBlock(s1, b));
      expect(block(j, b, g2)).toEqual(diskBlock(s2, b));
    }
    // Blocks already preserved in the current generation are known after reopening.
    write(j, disk, 2 * BS, fill(BS, 3));
    expect(j.size()).toBe(size);
    // After compaction too.
    j.compact([g1]);
    j.close();
    j = DiskJournal.open(dir, "hd0", disk);
    expect(j.liveMarks).toEqual([g1]);
    expect(j.generation).toBe(3);
    for (let b = 0; b < 6; b++) expect(block(j, b, g1)).toEqual(diskBlock(s1, b));
    j.close();
  });

  it("drops a torn last entry and truncates the file", () => {
    const dir = freshDir();
    const disk = patterned();
    let j = DiskJournal.open(dir, "hd0", disk);
    const s1 = disk.data.slice();
    const g1 = j.mark();
    write(j, disk, 0, fill(BS, 1));
    const good = j.size();
    write(j, disk, BS, fill(BS, 2));
    const full = j.size();
    j.close();
    const file = join(dir, "hd0.journal");
    truncateSync(file, full - 5);
    j = DiskJournal.open(dir, "hd0", disk);
    expect(j.size()).toBe(good);
    expect(statSync(file).size).toBe(good);
    expect(block(j, 0, g1)).toEqual(diskBlock(s1, 0));
    expect(j.changedSince(1, g1)).toBe(false);
    j.close();
    // A tail cut inside a header, and a tail of zeros (space allocated, data never written).
    truncateSync(file, good + 10);
    j = DiskJournal.open(dir, "hd0", disk);
    expect(j.size()).toBe(good);
    j.close();
    writeFileSync(file, new Uint8Array(BS + 32), { flag: "a" });
    j = DiskJournal.open(dir, "hd0", disk);
    expect(j.size()).toBe(good);
    j.close();
  });

  it("detects a flipped byte in an entry's data", () => {
    const dir = freshDir();
    const disk = patterned();
    let j = DiskJournal.open(dir, "hd0", disk);
    const g = j.mark();
    write(j, disk, 0, fill(3 * BS, 1)); // three entries
    const size = j.size();
    j.close();
    const file = join(dir, "hd0.journal");
    const bytes = readFileSync(file);
    const second = size - 2 * (BS + 32); // the second entry's record
    bytes[second + 32 + 100] ^= 0x40;
    writeFileSync(file, bytes);
    expect(() => DiskJournal.open(dir, "hd0", disk)).toThrow(JournalError);
    try {
      DiskJournal.open(dir, "hd0", disk);
    } catch (e) {
      const msg = (e as Error).message;
      expect(msg).toContain(file);
      expect(msg).toContain(`byte ${second}`);
      expect(msg).not.toContain("\n");
    }
    // The same flip in the last entry (complete, not zeros) is not taken for a torn append.
    bytes[second + 32 + 100] ^= 0x40;
    bytes[size - 1] ^= 0x01;
    writeFileSync(file, bytes);
    expect(() => DiskJournal.open(dir, "hd0", disk)).toThrow(/corrupted/);
    // Corruption that appears after opening is caught when the entry is read.
    bytes[size - 1] ^= 0x01;
    writeFileSync(file, bytes);
    j = DiskJournal.open(dir, "hd0", disk);
    bytes[second + 32 + 7] ^= 0x01;
    writeFileSync(file, bytes);
    expect(() => block(j, 1, g)).toThrow(JournalError);
    j.close();
  });

  it("refuses a foreign file and a journal made for another disk", () => {
    const dir = freshDir();
    writeFileSync(join(dir, "x.journal"), "hello, world, this is not a journal at all");
    expect(() => DiskJournal.open(dir, "x", patterned())).toThrow(/not an rvm disk journal/);
    DiskJournal.open(dir, "y", patterned()).close();
    expect(() => DiskJournal.open(dir, "y", patterned(7))).toThrow(/disk of/);
  });

  it("agrees with a model of every mark's disk over 500 random operations", () => {
    const rand = rng(12345);
    const int = (n: number) => Math.floor(rand() * n);
    const dir = freshDir();
    const nBlocks = 12;
    const disk = patterned(nBlocks, 1536);
    const size = disk.size;
    let j = DiskJournal.open(dir, "hd0", disk);
    const model = new Map<number, Uint8Array>(); // live mark -> full disk content at that mark
    const started = Date.now();
    const counts = { write: 0, mark: 0, revert: 0, compact: 0, reopen: 0 };
    const buf = new Uint8Array(BS);

    const check = (op: number) => {
      for (const [g, content] of model) {
        for (let b = 0; b <= nBlocks; b++) {
          j.readBlock(b, g, buf);
          const want = diskBlock(content, b);
          // Compare fast; let expect describe a mismatch.
          if (!Buffer.from(buf).equals(want)) expect({ op, g, b, got: buf }).toEqual({ op, g, b, got: want });
          if (!j.changedSince(b, g) && !Buffer.from(diskBlock(disk.data, b)).equals(want)) {
            expect({ op, g, b, unchangedButDiffers: true }).toBe(undefined);
          }
        }
      }
    };

    for (let op = 0; op < 500; op++) {
      const r = rand();
      if (r < 0.55) {
        counts.write++;
        const aligned = rand() < 0.5;
        const offset = aligned ? int(size / 512) * 512 : int(size);
        const maxLen = size - offset;
        const len = Math.max(1, Math.min(maxLen, aligned ? (1 + int(16)) * 512 : 1 + int(3 * BS)));
        const data = new Uint8Array(len);
        for (let i = 0; i < len; i++) data[i] = int(256);
        write(j, disk, offset, data);
      } else if (r < 0.7) {
        counts.mark++;
        const g = j.mark();
        expect(model.has(g)).toBe(false);
        model.set(g, disk.data.slice());
      } else if (r < 0.82) {
        if (model.size === 0) continue;
        counts.revert++;
        const live = [...model.keys()];
        const g = live[int(live.length)];
        j.revertTo(g);
        expect(Buffer.from(disk.data).equals(model.get(g)!)).toBe(true);
      } else if (r < 0.92) {
        counts.compact++;
        const keep = [...model.keys()].filter(() => rand() < 0.7);
        j.compact(keep);
        for (const g of [...model.keys()]) if (!keep.includes(g)) model.delete(g);
        expect(j.liveMarks).toEqual([...model.keys()].sort((a, b) => a - b));
      } else {
        counts.reopen++;
        j.close();
        j = DiskJournal.open(dir, "hd0", disk);
      }
      check(op);
    }
    if (model.size === 0) expect(j.size()).toBeLessThan(64);
    for (const k of Object.values(counts)) expect(k).toBeGreaterThan(5);
    console.log(`journal model test: ${JSON.stringify(counts)}, ${model.size} live marks at the end, ${Date.now() - started} ms`);
    j.close();
  }, 60_000);
});
