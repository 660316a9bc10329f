// Page-cache tracking at the page-state level (issue 5, "Tests"): a page filled from a disk
// block is disk-backed until something changes it or the block. A hart store, an AMO, a host
// (DMA) write or a disk write to the block each clears the mark; a load does not; the store TLB
// never lets a store slip past a fresh mark. A snapshot taken after such a write stores the page's
// bytes, not a reference to the disk.

import { afterAll, beforeEach, describe, expect, it } from "vitest";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { PageState, PAGE_SIZE, RAM_BASE } from "../../src/core.js";
import { GuestMemory } from "../../src/memory.js";
import { saveSnapshot } from "../../src/snapshot/save.js";
import { restoreEager } from "../../src/snapshot/restore.js";
import { SnapshotStore } from "../../src/snapshot/store.js";
import { PageKind, SnapshotFile } from "../../src/snapshot/format.js";
import type { Machine } from "../../src/machine.js";
import { bareMachine, cleanup, freshDir, prngBytes } from "./util.js";

afterAll(cleanup);

const RAM = 16 << 20;
const BLOCK = 3;
const SD = 0x00b53023; //       sd a1, 0(a0)
const AMOADD = 0x00b5302f; //   amoadd.d zero, a1, (a0)
const LD = 0x00053603; //       ld a2, 0(a0)

let dir: string;
let diskFile: string;
let diskBytes: Buffer;
let machine: Machine;

beforeEach(() => {
  dir = freshDir("pc");
  diskFile = join(dir, "disk.raw");
  diskBytes = Buffer.from(prngBytes(64 << 10, 7));
  writeFileSync(diskFile, diskBytes);
  machine = bareMachine(RAM, diskFile).machine;
});

const block = (b: number) => diskBytes.subarray(b * PAGE_SIZE, (b + 1) * PAGE_SIZE);
const pa = (page: number) => GuestMemory.pageAddress(page);
const isDisk = (page: number) => (machine.core.pages[page] & PageState.Disk) !== 0;

/** What virtio-blk does for a 4 KiB-aligned read into a whole page. */
function fillFromDisk(page: number, b = BLOCK): void {
  machine.mem.writable(pa(page), PAGE_SIZE).set(block(b));
  machine.mem.noteDiskBacked(pa(page), b, 0);
}

/** Runs the instructions at the start of RAM (page 0) in M-mode with a0 = page's address. */
function exec(page: number, ...insns: number[]): void {
  const core = machine.core;
  const code = machine.mem.writable(RAM_BASE, 4 * insns.length);
  insns.forEach((insn, i) => new DataView(code.buffer, code.byteOffset).setUint32(4 * i, insn, true));
  core.setX(10, BigInt(pa(page)));
  core.setX(11, 0x1122334455667788n);
  core.pc = BigInt(RAM_BASE);
  core.exports.setPriv(3);
  for (let i = 0; i < insns.length; i++) core.run(1);
  expect(core.pc).toBe(BigInt(RAM_BASE + 4 * insns.length)); // no trap
}

describe("disk-backed pages", { timeout: 60_000 }, () => {
  it("a page filled from a disk block is marked with that block", () => {
    fillFromDisk(5);
    expect(isDisk(5)).toBe(true);
    expect(machine.mem.diskBlockOf(5)).toBe(GuestMemory.blockKey(0, BLOCK));
    expect(machine.mem.diskBlockOf(6)).toBe(-1);
  });

  it("a hart store clears the mark", () => {
    fillFromDisk(5);
    exec(5, SD);
    expect(machine.mem.readU64(pa(5))).toBe(0x1122334455667788n);
    expect(isDisk(5)).toBe(false);
    expect(machine.mem.diskBlockOf(5)).toBe(-1);
  });

  it("an AMO clears the mark", () => {
    fillFromDisk(6);
    const before = machine.mem.readU64(pa(6));
    exec(6, AMOADD);
    expect(machine.mem.readU64(pa(6))).toBe(BigInt.asUintN(64, before + 0x1122334455667788n));
    expect(isDisk(6)).toBe(false);
    expect(machine.mem.diskBlockOf(6)).toBe(-1);
  });

  it("a load does not clear the mark", () => {
    fillFromDisk(7);
    exec(7, LD);
    expect(machine.core.x(12)).toBe(block(BLOCK).readBigUInt64LE(0));
    expect(isDisk(7)).toBe(true);
    expect(machine.mem.diskBlockOf(7)).toBe(GuestMemory.blockKey(0, BLOCK));
  });

  it("a store after a load of the same page (a TLB entry exists) still clears the mark", () => {
    fillFromDisk(8);
    exec(8, LD, SD);
    expect(machine.core.x(12)).toBe(block(BLOCK).readBigUInt64LE(0));
    expect(isDisk(8)).toBe(false);
    expect(machine.mem.diskBlockOf(8)).toBe(-1);
  });

  it("a store to a page that became disk-backed after an earlier store clears the mark (store TLB flushed)", () => {
    exec(9, SD); // makes a store TLB entry for page 9
    expect(machine.core.pages[9] & PageState.Dirty).toBeTruthy();
    fillFromDisk(9);
    expect(isDisk(9)).toBe(true);
    exec(9, SD);
    expect(isDisk(9)).toBe(false);
    expect(machine.mem.diskBlockOf(9)).toBe(-1);
  });

  it("a host (DMA) write clears the mark", () => {
    fillFromDisk(10);
    machine.mem.writeU32(pa(10) + 100, 0xdeadbeef);
    expect(isDisk(10)).toBe(false);
    expect(machine.mem.diskBlockOf(10)).toBe(-1);
  });

  it("a disk write to the block clears the mark of every page that mirrors it, and only those", () => {
    fillFromDisk(11);
    fillFromDisk(12);
    fillFromDisk(13, BLOCK + 1);
    machine.mem.diskWritten(BLOCK, 0);
    expect(isDisk(11)).toBe(false);
    expect(isDisk(12)).toBe(false);
    expect(machine.mem.diskBlockOf(11)).toBe(-1);
    expect(isDisk(13)).toBe(true);
    expect(machine.mem.diskBlockOf(13)).toBe(GuestMemory.blockKey(0, BLOCK + 1));
    // A block of another drive with the same number is a different block.
    machine.mem.diskWritten(BLOCK + 1, 1);
    expect(isDisk(13)).toBe(true);
  });

  it("a page refilled from another block mirrors only the new one", () => {
    fillFromDisk(14, BLOCK);
    fillFromDisk(14, BLOCK + 2);
    machine.mem.diskWritten(BLOCK, 0);
    expect(machine.mem.diskBlockOf(14)).toBe(GuestMemory.blockKey(0, BLOCK + 2));
  });
});

describe("a snapshot after such writes", { timeout: 60_000 }, () => {
  it("stores the written pages' bytes and refers to the disk only for untouched ones", () => {
    const store = new SnapshotStore(join(dir, "snaps"));
    try {
      const KEPT = 20, STORED = 21, AMO = 22, DMA = 23, DISKW = 24;
      for (const p of [KEPT, STORED, AMO, DMA]) fillFromDisk(p);
      fillFromDisk(DISKW, BLOCK + 4);
      exec(STORED, SD);
      exec(AMO, AMOADD);
      machine.mem.writeU32(pa(DMA) + 8, 0xcafef00d);
      // The guest rewrites block BLOCK+4 on the disk: the page keeps the old bytes, the disk
      // has new ones, so only the page's own bytes can bring it back.
      const newBlock = Buffer.alloc(PAGE_SIZE, 0x5a);
      machine.drives[0].disk.write(newBlock, (BLOCK + 4) * PAGE_SIZE);
      machine.mem.diskWritten(BLOCK + 4, 0);
      const expected = Buffer.from(machine.core.ram);
      const hart = Buffer.from(machine.core.hartState());

      const meta = saveSnapshot(machine, store, "after-writes");
      expect(meta.stats.disk).toBe(1);
      const f = SnapshotFile.open(store.pathFor("after-writes"));
      try {
        expect(f.entry(KEPT).kind).toBe(PageKind.Disk);
        expect(f.entry(KEPT).value).toBe(GuestMemory.blockKey(0, BLOCK));
        for (const p of [STORED, AMO, DMA, DISKW]) expect({ page: p, kind: f.entry(p).kind }).toEqual({ page: p, kind: PageKind.Stored });
      } finally {
        f.close();
      }

      const fresh = bareMachine(RAM, diskFile).machine;
      restoreEager(fresh, store, store.pathFor("after-writes"));
      expect(Buffer.compare(Buffer.from(fresh.core.ram), expected)).toBe(0);
      expect(Buffer.compare(Buffer.from(fresh.core.hartState()), hart)).toBe(0);
      expect(readFileSync(diskFile).subarray((BLOCK + 4) * PAGE_SIZE, (BLOCK + 5) * PAGE_SIZE).equals(newBlock)).toBe(true);
      // The restored machine knows its page cache again: the untouched page is disk-backed.
      expect(fresh.mem.diskBlockOf(KEPT)).toBe(GuestMemory.blockKey(0, BLOCK));
      for (const p of [STORED, AMO, DMA, DISKW]) expect(fresh.mem.diskBlockOf(p)).toBe(-1);
    } finally {
      store.close();
    }
  });
});

describe("disk-backed entries inherited across incremental saves", { timeout: 60_000 }, () => {
  /**
   * s1: page P mirrors block B (mark m1). Then the disk's block B is rewritten (through the
   * journal, as virtio-blk does) and P keeps its old bytes, not dirty. s2 inherits P's entry:
   * "block B as of m1".
   */
  function twoGenerations(onlyDiskAndZero: boolean) {
    const store = new SnapshotStore(join(dir, "snaps"));
    const P = 30;
    if (!onlyDiskAndZero) machine.mem.write(pa(31), prngBytes(PAGE_SIZE, 31)); // a stored page s2 inherits
    fillFromDisk(P);
    const old = Buffer.from(block(BLOCK));
    const s1 = saveSnapshot(machine, store, "s1");
    const d = machine.drives[0];
    d.beforeWrite!(BLOCK * PAGE_SIZE, PAGE_SIZE);
    d.disk.write(Buffer.alloc(PAGE_SIZE, 0x77), BLOCK * PAGE_SIZE);
    machine.mem.diskWritten(BLOCK, 0);
    const s2 = saveSnapshot(machine, store, "s2");
    return { store, P, old, s1, s2 };
  }

  it("a page whose block changed after s1 is restored from s2 with its own bytes, while s1 is kept", () => {
    const { store, P, old, s2 } = twoGenerations(false);
    try {
      expect(s2.refs.length).toBe(1);
      const fresh = bareMachine(RAM, diskFile).machine;
      restoreEager(fresh, store, store.pathFor("s2"));
      expect(Buffer.from(fresh.core.ram.subarray(P * PAGE_SIZE, (P + 1) * PAGE_SIZE)).equals(old)).toBe(true);
      // delvm s1: s2 refers to it (page 31), so it stays hidden and P still restores.
      store.delete("s1");
      const again = bareMachine(RAM, diskFile).machine;
      restoreEager(again, store, store.pathFor("s2"));
      expect(Buffer.from(again.core.ram.subarray(P * PAGE_SIZE, (P + 1) * PAGE_SIZE)).equals(old)).toBe(true);
    } finally {
      store.close();
    }
  });

  // Regression: an inherited disk-backed entry keeps its parent's (older) mark; liveMarks once
  // counted only each snapshot's own mark, so deleting the parent let compaction drop a mark the
  // child still needed. Snapshots now record every mark their entries use (disks[].entryMarks).
  it("delvm of the parent keeps the disk mark that an inherited disk-backed entry needs", () => {
    const { store, P, old, s2 } = twoGenerations(true);
    try {
      // Nothing s2 inherited is stored in s1, so s2 does not refer to s1's file...
      expect(s2.refs).toEqual([]);
      store.delete("s1");
      // ...but its entry for P still reads "block B as of s1's mark".
      const fresh = bareMachine(RAM, diskFile).machine;
      restoreEager(fresh, store, store.pathFor("s2"));
      expect(Buffer.from(fresh.core.ram.subarray(P * PAGE_SIZE, (P + 1) * PAGE_SIZE)).equals(old)).toBe(true);
    } finally {
      store.close();
    }
  });

  // Regression: a restore once marked every disk-backed entry's page as mirroring its block even
  // when the block changed after the entry's mark; the next savevm then referred to the new block.
  // SnapshotPages.remarkDiskBacked now re-marks a page only while its block is unchanged.
  it("a machine restored from s2 does not take P for a copy of the block's current content", () => {
    const { store, P, old } = twoGenerations(false);
    try {
      const fresh = bareMachine(RAM, diskFile).machine;
      restoreEager(fresh, store, store.pathFor("s2"));
      // P holds the old bytes, block B on the disk the new ones: P must not be disk-backed.
      expect(fresh.mem.diskBlockOf(P)).toBe(-1);
      // The consequence: a full save of the restored machine (its parent gone) refers to the
      // disk for P, and that snapshot cannot be restored.
      store.delete("s2");
      store.delete("s1");
      saveSnapshot(fresh, store, "s3");
      const back = bareMachine(RAM, diskFile).machine;
      restoreEager(back, store, store.pathFor("s3"));
      expect(Buffer.from(back.core.ram.subarray(P * PAGE_SIZE, (P + 1) * PAGE_SIZE)).equals(old)).toBe(true);
    } finally {
      store.close();
    }
  });
});
