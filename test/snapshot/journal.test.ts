// The per-disk copy-before-write journal: reads as of a mark, revert, compaction, reopening,
// torn, cut, edited and corrupted files, reverts that are undone (also when rvm died in the
// middle of one), savepoints, version 1 files, and a randomized test against a model of every
// mark's disk.

import { afterAll, describe, expect, it } from "vitest";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { MemoryDisk } from "../../src/devices/disk.js";
import { RvmError } from "../../src/errors.js";
import { DiskJournal, JOURNAL_BLOCK_SIZE as BS, JOURNAL_HEAD_SIZE as HEAD, JournalError } from "../../src/snapshot/journal.js";

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
    expect(j.size()).toBe(HEAD + 32 + 12 + 2 * 4 + 12 * (BS + 32));
    expect(statSync(file).size).toBe(j.size());
    expect(j.liveMarks).toEqual([marks[1], marks[3]]);
    for (const i of [1, 3]) for (let b = 0; b < 6; b++) expect(block(j, b, marks[i])).toEqual(diskBlock(states[i], b));
    expect(() => block(j, 0, marks[0])).toThrow(JournalError);
    j.compact([marks[3]]);
    expect(j.size()).toBe(HEAD + 32 + 12 + 4 + 6 * (BS + 32));
    for (let b = 0; b < 6; b++) expect(block(j, b, marks[3])).toEqual(diskBlock(states[3], b));
    // No live marks: the journal is emptied, and writes preserve nothing any more.
    j.compact([]);
    const empty = j.size();
    expect(empty).toBe(HEAD + 32 + 12);
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

  it("drops a torn last entry (one its head does not vouch for yet) and truncates the file", () => {
    const dir = freshDir();
    const disk = patterned();
    const file = join(dir, "hd0.journal");
    let j = DiskJournal.open(dir, "hd0", disk);
    const s1 = disk.data.slice();
    const g1 = j.mark();
    write(j, disk, 0, fill(BS, 1));
    const good = j.size();
    const headThen = readFileSync(file).subarray(0, HEAD); // the head vouches up to `good`
    write(j, disk, BS, fill(BS, 2));
    const full = j.size();
    j.close();
    // rvm died in the middle of the second append: its record is incomplete and the head was
    // not updated for it (the head is written after the append is durable).
    const bytes = readFileSync(file);
    headThen.copy(bytes, 0);
    writeFileSync(file, bytes.subarray(0, full - 5));
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
    if (model.size === 0) expect(j.size()).toBeLessThan(HEAD + 64);
    for (const k of Object.values(counts)) expect(k).toBeGreaterThan(5);
    console.log(`journal model test: ${JSON.stringify(counts)}, ${model.size} live marks at the end, ${Date.now() - started} ms`);
    j.close();
  }, 60_000);
});

const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

describe("disk journal: verification", { timeout: 60_000 }, () => {
  /** A journal with a mark and three entries after it; returns what a test needs. */
  function journalWithEntries() {
    const dir = freshDir();
    const disk = patterned();
    const j = DiskJournal.open(dir, "hd0", disk);
    const before = disk.data.slice();
    const g = j.mark();
    write(j, disk, 0, fill(3 * BS, 1));
    const size = j.size();
    j.close();
    return { dir, disk, g, before, size, file: join(dir, "hd0.journal") };
  }

  it("a journal cut at a record boundary (half of it gone) is refused, not read as shorter", () => {
    const { dir, disk, size, file } = journalWithEntries();
    truncateSync(file, size - (BS + 32)); // the last entry, exactly
    expect(() => DiskJournal.open(dir, "hd0", disk)).toThrow(new RegExp(`truncated journal \\(${size - (BS + 32)} of ${size} bytes\\)`));
    truncateSync(file, Math.floor(size / 2));
    expect(() => DiskJournal.open(dir, "hd0", disk)).toThrow(/truncated journal/);
    expect(statSync(file).size).toBe(Math.floor(size / 2)); // refused, not repaired
  });

  it("a record removed from the middle, or two swapped, breaks the chain", () => {
    const { dir, disk, size, file } = journalWithEntries();
    const bytes = readFileSync(file);
    const first = size - 3 * (BS + 32);
    const removed = Buffer.concat([bytes.subarray(0, first), bytes.subarray(first + BS + 32), Buffer.alloc(BS + 32)]);
    writeFileSync(file, removed); // same length: the head's length alone would not tell
    expect(() => DiskJournal.open(dir, "hd0", disk)).toThrow(/corrupted journal record at byte \d+ \(checksum mismatch/);
    const swapped = Buffer.concat([bytes.subarray(0, first), bytes.subarray(first + BS + 32, first + 2 * (BS + 32)), bytes.subarray(first, first + BS + 32), bytes.subarray(first + 2 * (BS + 32))]);
    writeFileSync(file, swapped);
    expect(() => DiskJournal.open(dir, "hd0", disk)).toThrow(JournalError);
    writeFileSync(file, bytes);
    DiskJournal.open(dir, "hd0", disk).close();
  });

  it("opened read-only it never changes the file, and refuses what needs repair", () => {
    const { dir, disk, size, file } = journalWithEntries();
    const bytes = readFileSync(file);
    const j = DiskJournal.open(dir, "hd0", disk, { readOnly: true });
    expect(j.records).toBe(5); // state, mark, three entries
    j.close();
    expect(readFileSync(file).equals(bytes)).toBe(true);
    writeFileSync(file, bytes.subarray(0, size + 0)); // unchanged
    expect(() => DiskJournal.open(dir, "nothing", disk, { readOnly: true })).toThrow(/no such journal/);
    expect(existsSync(join(dir, "nothing.journal"))).toBe(false);
  });
});

describe("disk journal: reverts that can be undone", { timeout: 60_000 }, () => {
  it("undoRevert brings the disk back as it was before the revert, the guest's later writes included, and cuts the journal back", () => {
    const dir = freshDir();
    const disk = patterned();
    const j = DiskJournal.open(dir, "hd0", disk);
    const g = j.mark();
    write(j, disk, 0, fill(2 * BS, 1)); // after the snapshot
    const beforeRestore = sha(disk.data);
    const file = join(dir, "hd0.journal");
    const journalBefore = readFileSync(file).subarray(HEAD);
    const marks = j.liveMarks;
    const h = j.beginRevert(g);
    expect(sha(disk.data)).not.toBe(beforeRestore);
    write(j, disk, 3 * BS, fill(BS, 7)); // the restored guest writes
    write(j, disk, 0, fill(10, 8));
    j.undoRevert(h);
    expect(sha(disk.data)).toBe(beforeRestore);
    expect(readFileSync(file).subarray(HEAD).equals(journalBefore)).toBe(true);
    expect(j.liveMarks).toEqual(marks);
    j.close();
    // Reopened: the same journal, and the snapshot's disk still reads as it was.
    const k = DiskJournal.open(dir, "hd0", disk);
    expect(k.liveMarks).toEqual(marks);
    k.revertTo(g);
    k.close();
  });

  it("a revert to a mark no block changed since writes nothing, and still can be undone and keeps the mark", () => {
    const dir = freshDir();
    const disk = patterned();
    const j = DiskJournal.open(dir, "hd0", disk);
    const g = j.mark();
    const atMark = sha(disk.data);
    const file = join(dir, "hd0.journal");
    const journalBefore = readFileSync(file);
    const marks = j.liveMarks;
    // Undone: the restored guest's writes are preserved for g and taken back, the journal cut back.
    const h = j.beginRevert(g);
    expect(readFileSync(file).equals(journalBefore)).toBe(true); // no RESTORE/REVERTED records
    write(j, disk, 2 * BS, fill(BS + 5, 9));
    expect(sha(disk.data)).not.toBe(atMark);
    expect(block(j, 2, g)).toEqual(diskBlock(patterned().data, 2));
    j.compact([]); // the snapshot deleted meanwhile: the pending revert keeps its mark
    expect(j.liveMarks).toContain(g);
    j.undoRevert(h);
    expect(sha(disk.data)).toBe(atMark);
    // Committed: the guest's writes stay, and the snapshot's disk still reads as it was.
    const k = DiskJournal.open(freshDir(), "hd0", disk);
    const g2 = k.mark();
    const h2 = k.beginRevert(g2);
    write(k, disk, 0, fill(3 * BS, 4));
    k.commitRevert(h2);
    expect(k.liveMarks).toEqual([g2]);
    for (let b = 0; b < 6; b++) expect(block(k, b, g2)).toEqual(diskBlock(patterned().data, b));
    k.revertTo(g2);
    expect(sha(disk.data)).toBe(atMark);
    k.close();
    j.close();
    expect(marks).toEqual([g]);
  });

  it("a revert rvm did not finish (it died while rewriting blocks) is undone when the journal is opened", () => {
    const dir = freshDir();
    const data = patterned().data;
    let writes = 0;
    let failAfter = Infinity;
    // A disk whose writes fail after a few: the revert stops half way, as if rvm died there.
    class Flaky extends MemoryDisk {
      override write(buf: Uint8Array, offset: number): void {
        if (writes++ >= failAfter) throw new Error("EIO");
        super.write(buf, offset);
      }
    }
    const disk = new Flaky(data);
    const j = DiskJournal.open(dir, "hd0", disk);
    const g = j.mark();
    write(j, disk, 0, fill(4 * BS, 1));
    const beforeRestore = sha(disk.data);
    writes = 0;
    failAfter = 2;
    expect(() => j.beginRevert(g)).toThrow();
    // In the same process the revert was already undone as far as the disk allowed; here the
    // disk failed, so the journal still holds the unfinished revert. A later open repairs it.
    failAfter = Infinity;
    j.close();
    const k = DiskJournal.open(dir, "hd0", disk);
    expect(sha(disk.data)).toBe(beforeRestore);
    expect(k.liveMarks).toEqual([g]);
    k.revertTo(g); // and the snapshot's disk state is still there
    expect(sha(disk.data)).not.toBe(beforeRestore);
    k.close();
  });

  it("rollback to a savepoint (a savevm that failed) leaves the journal as it was", () => {
    const dir = freshDir();
    const disk = patterned();
    const j = DiskJournal.open(dir, "hd0", disk);
    const g1 = j.mark();
    write(j, disk, 0, fill(BS, 1));
    const file = join(dir, "hd0.journal");
    const records = readFileSync(file).subarray(HEAD);
    const sp = j.savepoint();
    j.mark();
    expect(j.rollback(sp)).toBe(true);
    expect(readFileSync(file).subarray(HEAD).equals(records)).toBe(true);
    expect(j.liveMarks).toEqual([g1]);
    write(j, disk, BS, fill(BS, 2)); // preserved for g1 only: no mark of a snapshot that does not exist
    j.close();
    expect(DiskJournal.open(dir, "hd0", disk).liveMarks).toEqual([g1]);
  });
});

describe("disk journal: version 1 files", { timeout: 60_000 }, () => {
  /** A record of the first format: no head, each record checksummed on its own. */
  function v1Record(kind: number, gen: number, payload: Uint8Array, block = 0): Buffer {
    const rec = Buffer.alloc(32 + payload.length);
    rec.writeUInt32LE(0x4a4d5652, 0);
    rec.writeUInt8(kind, 4);
    rec.writeUInt8(1, 5);
    rec.writeUInt32LE(gen, 8);
    rec.writeUInt32LE(payload.length, 12);
    rec.writeUInt32LE(block, 16);
    Buffer.from(payload).copy(rec, 32);
    createHash("sha256").update(rec.subarray(0, 24)).update(rec.subarray(32)).digest().copy(rec, 24, 0, 8);
    return rec;
  }

  it("are read and rewritten as version 2, keeping every mark and entry", () => {
    const dir = freshDir();
    const disk = patterned();
    const old = disk.data.slice();
    const state = Buffer.alloc(12);
    state.writeUInt32LE(disk.size, 0);
    const file = join(dir, "hd0.journal");
    writeFileSync(file, Buffer.concat([
      v1Record(1, 1, state),
      v1Record(2, 1, new Uint8Array(0)), // mark 1
      v1Record(3, 2, diskBlock(old, 2), 2), // block 2 as of mark 1
    ]));
    disk.data.fill(0x77, 2 * BS, 3 * BS); // the write that entry preserved
    const j = DiskJournal.open(dir, "hd0", disk);
    expect(j.liveMarks).toEqual([1]);
    expect(block(j, 2, 1)).toEqual(diskBlock(old, 2));
    j.close();
    expect(readFileSync(file).readUInt32LE(512)).toBe(0x484a5652); // now with a head
    const k = DiskJournal.open(dir, "hd0", disk);
    k.revertTo(1);
    expect(disk.data).toEqual(old);
    k.close();
  });
});
