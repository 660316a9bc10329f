// A snapshot restored again and again must not make its disk journal grow without bound: every
// revert leaves an undo mark and, under it, the old contents of what the guest writes next.
// `compactIfWasteful` compacts a journal whose dead part dominates; rvm runs it when the VM
// ends (and when a lazy restore completes, past 64 MiB dead). Checked here: the size stays bounded (a journal left
// alone grows linearly), every snapshot's disk still comes back exactly (checksums), a crash at
// any point of the compaction leaves a journal that opens with every snapshot restorable, a
// compaction that fails leaves the journal as it was, and a directory with a snapshot file that
// cannot be read is not compacted.

import { afterAll, describe, expect, it } from "vitest";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, rmdirSync, statSync, writeFileSync } from "node:fs";
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { ROOT } from "../helpers.js";
import { PAGE_SIZE } from "../../src/core.js";
import { MemoryDisk } from "../../src/devices/disk.js";
import { AUTO_COMPACT_MIN_DEAD, DiskJournal, JOURNAL_BLOCK_SIZE as BS, JournalError } from "../../src/snapshot/journal.js";
import { saveSnapshot } from "../../src/snapshot/save.js";
import { restoreEager } from "../../src/snapshot/restore.js";
import { LazyRestore } from "../../src/snapshot/restore-lazy.js";
import { SnapshotStore } from "../../src/snapshot/store.js";
import { bareMachine, cleanup, freshDir, populated, prngBytes } from "./util.js";
import { fetchAll } from "./lazy-util.js";

afterAll(cleanup);

const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

/** Writes through the journal, as virtio-blk does. */
function write(j: DiskJournal, disk: MemoryDisk, offset: number, data: Uint8Array): void {
  j.beforeWrite(offset, data.length);
  disk.write(data, offset);
}

/** The whole disk as of mark g, read through the journal. */
function diskAt(j: DiskJournal, blocks: number, g: number): string {
  const out = new Uint8Array(blocks * BS);
  for (let b = 0; b < blocks; b++) j.readBlock(b, g, out.subarray(b * BS, (b + 1) * BS));
  return sha(out);
}

const BLOCKS = 512; // a 2 MiB disk
const MIN_DEAD = 256 << 10;

/** A fresh directory `name` with a disk of pseudo-random content (`seed`) and its journal. */
function journaled(name: string, seed: number): { dir: string; disk: MemoryDisk; j: DiskJournal } {
  const dir = freshDir(name);
  const disk = new MemoryDisk(prngBytes(BLOCKS * BS, seed));
  return { dir, disk, j: DiskJournal.open(dir, "hd0", disk) };
}

/** Every snapshot's disk (mark -> its SHA-256 in `at`) reads right through journal `j`. */
function expectDisks(j: DiskJournal, at: Map<number, string>, label?: string): void {
  for (const [g, want] of at) expect(diskAt(j, BLOCKS, g), label).toBe(want);
}

/**
 * Restores of one snapshot (two from round 8 on), each followed by guest writes of 64 blocks
 * somewhere in the first 192; `tidy` compacts after each round as rvm does. Returns the sizes.
 */
function restoreRounds(name: string, rounds: number, tidy: boolean) {
  const { dir, disk, j } = journaled(name, 1);
  const at = new Map<number, string>();
  const g1 = j.mark();
  at.set(g1, sha(disk.data));
  let seed = 100;
  const guestWrites = () => {
    const r = prngBytes(64, seed++);
    for (let i = 0; i < 64; i++) write(j, disk, (r[i] % 192) * BS, prngBytes(BS, seed++));
  };
  guestWrites();
  const sizes: number[] = [];
  for (let round = 0; round < rounds; round++) {
    if (round === 8) {
      const g2 = j.mark(); // a second snapshot, of the disk as the guest left it
      at.set(g2, sha(disk.data));
    }
    const marks = [...at.keys()];
    const g = marks[round % marks.length];
    j.commitRevert(j.beginRevert(g));
    expect(sha(disk.data)).toBe(at.get(g));
    guestWrites();
    if (tidy) j.compactIfWasteful(marks, MIN_DEAD);
    sizes.push(j.size());
    expectDisks(j, at);
  }
  return { sizes, j, disk, at, marks: [...at.keys()], file: join(dir, "hd0.journal") };
}

describe("disk journal: compaction when its dead part dominates", { timeout: 120_000 }, () => {
  it("keeps a journal restored again and again bounded; every snapshot's disk comes back", () => {
    const grown = restoreRounds("grow", 24, false);
    const tidy = restoreRounds("tidy", 24, true);
    // Left alone, the journal grows by every round's writes (64 blocks, less the repeats).
    expect(grown.sizes[23]).toBeGreaterThan(grown.sizes[7] + 12 * 32 * BS);
    // Compacted: at most what the live marks need (at most the 192 blocks written, for each of
    // the two marks), a dead part up to max(MIN_DEAD, that), and one round's growth (the revert
    // and the guest's writes: 2 x 64 blocks).
    const needed = 2 * 192 * (BS + 32);
    const bound = needed + Math.max(MIN_DEAD, needed) + 2 * 64 * (BS + 32) + 4096 + 4096;
    expect(Math.max(...tidy.sizes)).toBeLessThan(bound);
    expect(tidy.sizes[23]).toBeLessThan(grown.sizes[23] / 3);
    // Compaction dropped the reverts' undo marks (each round left one).
    expect(tidy.j.liveMarks.length).toBeLessThan(grown.j.liveMarks.length / 2);
    // Reopened, both snapshots' disks come back exactly.
    const file = tidy.j.file;
    const data = tidy.disk.data;
    tidy.j.close();
    grown.j.close();
    const k = DiskJournal.open(join(file, ".."), "hd0", new MemoryDisk(data));
    expectDisks(k, tidy.at);
    k.close();
  });

  it("does nothing below the minimum, or while the dead part does not dominate", () => {
    const { disk, j } = journaled("small", 2);
    const g = j.mark();
    write(j, disk, 0, prngBytes(256 * BS, 3)); // 1 MiB that g needs
    const size = j.size();
    expect(j.waste([g])).toEqual({ needed: 256 * (BS + 32), dead: size - 4096 - 256 * (BS + 32) });
    expect(j.compactIfWasteful([g])).toBe(false); // under AUTO_COMPACT_MIN_DEAD
    expect(size).toBeLessThan(AUTO_COMPACT_MIN_DEAD);
    expect(j.compactIfWasteful([g], 1024)).toBe(false); // all needed
    // A revert and writes of other blocks: dead, but not more than what g needs.
    j.commitRevert(j.beginRevert(g));
    write(j, disk, 256 * BS, prngBytes(64 * BS, 4));
    expect(j.waste([g]).dead).toBeLessThan(j.waste([g]).needed);
    expect(j.compactIfWasteful([g], 1024)).toBe(false);
    expect(j.size()).toBeGreaterThan(size);
    // Marks not live are ignored (a snapshot whose mark is gone); with none kept all is dead.
    expect(j.compactIfWasteful([g, 9999], 1024)).toBe(false);
    expect(j.compactIfWasteful(() => [], 1024)).toBe(true);
    expect(j.liveMarks).toEqual([]);
    j.close();
  });

  it("keeps the undo mark of a revert in progress (the restore may still fail and undo it)", () => {
    const { disk, j } = journaled("pin", 5);
    const g = j.mark();
    write(j, disk, 0, prngBytes(128 * BS, 6));
    for (let i = 0; i < 3; i++) {
      j.commitRevert(j.beginRevert(g));
      write(j, disk, 0, prngBytes(128 * BS, 7 + i));
    }
    const beforeRestore = sha(disk.data);
    const h = j.beginRevert(g);
    write(j, disk, 200 * BS, prngBytes(8 * BS, 20)); // the restored guest writes
    expect(j.compactIfWasteful([g], 64 << 10)).toBe(true);
    expect(j.liveMarks).toEqual([g, h.undoMark]);
    j.undoRevert(h); // the restore failed: the disk as before it, the guest's writes taken back
    expect(sha(disk.data)).toBe(beforeRestore);
    expect(diskAt(j, BLOCKS, g)).toBe(sha(prngBytes(BLOCKS * BS, 5)));
    j.close();
  });

  it("a crash at any point of the compaction leaves a journal that opens with every snapshot restorable", () => {
    const { j, disk, at, marks, file } = restoreRounds("crash", 12, false);
    const old = readFileSync(file);
    const oldMarks = j.liveMarks;
    expect(j.compactIfWasteful(marks, MIN_DEAD)).toBe(true);
    j.close();
    const compacted = readFileSync(file);
    expect(compacted.length).toBeLessThan(old.length / 2);
    const data = Buffer.from(disk.data);
    // The states a crash can leave: the old file with the new one partly (or wholly) written as
    // the temp file (rvm died before the rename), or the new file in place (after it).
    const states: { name: string; journal: Buffer; tmp?: Buffer; marks: number[] }[] = [
      { name: "temp file created, empty", journal: old, tmp: compacted.subarray(0, 0), marks: oldMarks },
      { name: "temp file head only", journal: old, tmp: compacted.subarray(0, 4096), marks: oldMarks },
      { name: "temp file half written", journal: old, tmp: compacted.subarray(0, compacted.length >> 1), marks: oldMarks },
      { name: "temp file written, not renamed", journal: old, tmp: compacted, marks: oldMarks },
      { name: "renamed", journal: compacted, marks },
    ];
    for (const s of states) {
      const d = freshDir("cut");
      writeFileSync(join(d, "hd0.journal"), s.journal);
      if (s.tmp) writeFileSync(join(d, "hd0.journal.tmp"), s.tmp);
      const dk = new MemoryDisk(Buffer.from(data));
      const k = DiskJournal.open(d, "hd0", dk);
      expect(existsSync(join(d, "hd0.journal.tmp")), s.name).toBe(false);
      expect(k.liveMarks, s.name).toEqual(s.marks);
      expectDisks(k, at, s.name);
      // And each snapshot's disk comes back on the live disk.
      for (const g of marks) {
        k.revertTo(g);
        expect(sha(dk.data), s.name).toBe(at.get(g));
      }
      k.close();
    }
  });

  it("a compaction that fails leaves the journal as it was, usable", () => {
    const { j, disk, at, marks, file } = restoreRounds("fail", 10, false);
    const before = readFileSync(file);
    mkdirSync(`${file}.tmp`); // the temp file cannot be created
    expect(() => j.compactIfWasteful(marks, MIN_DEAD)).toThrow(JournalError);
    expect(readFileSync(file).subarray(4096).equals(before.subarray(4096))).toBe(true);
    write(j, disk, 300 * BS, prngBytes(BS, 77)); // still journals
    expectDisks(j, at);
    rmdirSync(`${file}.tmp`);
    expect(j.compactIfWasteful(marks, MIN_DEAD)).toBe(true);
    expectDisks(j, at);
    j.close();
  });
});

describe("rvm compacts a journal restored again and again", { timeout: 300_000 }, () => {
  const RAM = 16 << 20;
  const DISK = 8 << 20;
  const WRITE = 1536 << 10; // what the restored guest writes each time: 384 blocks

  /** A machine with a disk, its snapshot `s`, and the guest's writes after it. */
  function scenario() {
    const d = freshDir("vm");
    const file = join(d, "disk.raw");
    writeFileSync(file, prngBytes(DISK, 11));
    const store = new SnapshotStore(join(d, "snaps"));
    const m = populated(RAM, file); // page 12 mirrors block 2 of the disk
    saveSnapshot(m, store, "s");
    const atSave = sha(readFileSync(file));
    guestWrites(m, 0);
    for (const f of m.onExit) f();
    store.close();
    return { file, snaps: store.dir, journal: join(store.dir, "drive0-disk.raw.journal"), atSave };
  }

  /** Writes blocks 0..383 (block 2, under a disk-backed page, among them) through the journal, as virtio-blk does. */
  function guestWrites(m: ReturnType<typeof populated>, round: number): void {
    m.beforeDiskWrite(0, 0, WRITE);
    m.drives[0].disk.write(prngBytes(WRITE, 1000 + round), 0);
  }

  it("when the VM ends after a restore: the journal stays bounded, the disk comes back each time", async () => {
    const s = scenario();
    const sizes: number[] = [];
    for (let round = 0; round < 12; round++) {
      const m = bareMachine(RAM, s.file).machine;
      const store = new SnapshotStore(s.snaps);
      if (round % 2 === 0) {
        // Lazy: compacted (if need be) when every page is in (page 12 is read from the journal and checked).
        const r = new LazyRestore(m, store, store.pathFor("s"));
        expect(sha(readFileSync(s.file))).toBe(s.atSave);
        await fetchAll(m, r);
      } else {
        // Eager: compacted (if need be) when the VM ends.
        restoreEager(m, store, store.pathFor("s"));
        expect(sha(readFileSync(s.file))).toBe(s.atSave);
      }
      guestWrites(m, round + 1);
      for (const f of m.onExit) f(); // the VM ends
      store.close();
      sizes.push(statSync(s.journal).size);
    }
    // Left alone it would grow by 1.5 MiB a round (the revert's copies; 19.5 MiB after 12); it stays within what
    // the snapshot needs (1.5 MiB) plus the dead part allowed, plus one round's growth.
    const bound = WRITE + AUTO_COMPACT_MIN_DEAD + 2 * WRITE + (1 << 20);
    expect(Math.max(...sizes)).toBeLessThan(bound);
    expect(sizes.some((x, i) => i > 0 && x < sizes[i - 1])).toBe(true); // it was compacted
    // `rvm restore` (lazy, the VM ended by --timeout) restores it once more, and leaves it bounded.
    const r = spawnSync(process.execPath, [join(ROOT, "bin/rvm.js"), "restore", "s", "--dir", s.snaps, "--timeout", "2"], { encoding: "utf8", timeout: 90_000 });
    expect(r.status, r.stderr).toBe(124);
    expect(sha(readFileSync(s.file))).toBe(s.atSave); // the guest loops and writes nothing
    expect(statSync(s.journal).size).toBeLessThan(bound);
    // And a last restore in-process: every page, disk-backed page 12 included, checks.
    const m = bareMachine(RAM, s.file).machine;
    const store = new SnapshotStore(s.snaps);
    restoreEager(m, store, store.pathFor("s"));
    expect(Buffer.from(m.core.ram.subarray(12 * PAGE_SIZE, 13 * PAGE_SIZE)).equals(Buffer.from(prngBytes(DISK, 11).subarray(2 * PAGE_SIZE, 3 * PAGE_SIZE)))).toBe(true);
    for (const f of m.onExit) f();
    store.close();
  });

  it("is not compacted while a snapshot file in the directory cannot be read (its marks are unknown)", () => {
    const s = scenario();
    for (let round = 0; round < 6; round++) {
      const m = bareMachine(RAM, s.file).machine;
      const store = new SnapshotStore(s.snaps);
      restoreEager(m, store, store.pathFor("s"));
      guestWrites(m, round + 1);
      if (round === 2) writeFileSync(join(s.snaps, "broken.rvmsnap"), "not a snapshot");
      for (const f of m.onExit) f();
      store.close();
    }
    const size = statSync(s.journal).size;
    expect(size).toBeGreaterThan(WRITE + AUTO_COMPACT_MIN_DEAD + 2 * WRITE); // grew past where it would have been compacted
    const m = bareMachine(RAM, s.file).machine;
    const store = new SnapshotStore(s.snaps);
    restoreEager(m, store, store.pathFor("s"));
    expect(sha(readFileSync(s.file))).toBe(s.atSave);
    for (const f of m.onExit) f();
    store.close();
  });
});
