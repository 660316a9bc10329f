// savevm writes the data area past the page cache (O_DIRECT) where the file system takes it, and
// buffered where it refuses (ramfs; tmpfs before Linux 6.6): either way the snapshot comes back
// exactly (issue 15). The refusing file system is a real one: ramfs, mounted when the tests run
// as root (otherwise that case is skipped, and says so).

import { afterAll, describe, expect, it } from "vitest";
import { spawnSync } from "node:child_process";
import { closeSync, constants, copyFileSync, existsSync, mkdirSync, mkdtempSync, openSync, rmSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { saveSnapshot } from "../../src/snapshot/save.js";
import { restoreEager } from "../../src/snapshot/restore.js";
import { SnapshotStore } from "../../src/snapshot/store.js";
import { PageKind, SnapshotFile } from "../../src/snapshot/format.js";
import { GuestMemory } from "../../src/memory.js";
import { PAGE_SIZE, PageState } from "../../src/core.js";
import type { Machine } from "../../src/machine.js";
import { bareMachine, cleanup, freshDir, prngBytes } from "./util.js";

const RAM = 32 << 20;
const PAGES = RAM / PAGE_SIZE;

const diskRoot = mkdtempSync(join(tmpdir(), "rvm-direct-"));
/** A ramfs (no O_DIRECT) mounted under diskRoot, where the tests may mount one (root). */
const ramfs = ((): string | undefined => {
  if (process.getuid?.() !== 0) return undefined;
  const dir = join(diskRoot, "ramfs");
  mkdirSync(dir);
  const r = spawnSync("mount", ["-t", "ramfs", "rvm-test", dir], { timeout: 10_000 });
  return r.status === 0 ? dir : undefined;
})();
afterAll(() => {
  cleanup();
  if (ramfs) spawnSync("umount", [ramfs], { timeout: 10_000 });
  rmSync(diskRoot, { recursive: true, force: true });
});

/** Whether the file system of `dir` opens files with O_DIRECT (tmpfs: EINVAL). */
function takesDirect(dir: string): boolean {
  if (!constants.O_DIRECT) return false;
  const file = join(dir, "probe");
  closeSync(openSync(file, "w"));
  try {
    closeSync(openSync(file, constants.O_WRONLY | constants.O_DIRECT));
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "EINVAL") return false;
    throw e;
  } finally {
    rmSync(file);
  }
}

/**
 * RAM with runs of stored pages longer than a write request (4 MiB) and shorter ones, zero pages
 * between them, twins, and a working set out of page order (written first, page by page).
 */
function filled(): Machine {
  const m = bareMachine(RAM).machine;
  for (let p = 0; p < PAGES; p++) {
    if (p % 1500 === 7 || (p >= 3000 && p < 3100)) continue;
    const seed = p >= 6000 && p < 6010 ? 424242 : p + 1; // ten identical pages
    m.mem.write(GuestMemory.pageAddress(p), prngBytes(PAGE_SIZE, seed));
  }
  m.core.exports.clearAccessed();
  for (const p of [5000, 17, 18, 7000, 2]) m.core.pages[p] |= PageState.Accessed;
  return m;
}

/** `writerThread`: the data area written by savevm's writer thread (true), by the hart's thread (false), as it decides (undefined). */
function saveAndRestore(dir: string, writerThread?: boolean) {
  const store = new SnapshotStore(join(dir, `snaps-${writerThread}`));
  const a = filled();
  const meta = saveSnapshot(a, store, "s", undefined, { writerThread });
  const ram = Buffer.from(a.core.ram);
  // The file opens (header, metadata and map digest), the map says where each stored page is.
  const snap = SnapshotFile.open(store.pathFor("s"));
  // The working set first (same age: by page), then the rest in page order.
  expect([2, 17, 18, 5000, 7000, 0, 1, 3].map((p) => (snap.entry(p).value - snap.header.dataOffset) / PAGE_SIZE)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
  expect(snap.entry(6005).kind).toBe(PageKind.Same);
  snap.close();
  // Every page back, each checked against its hash in the map.
  const b = bareMachine(RAM).machine;
  const r = restoreEager(b, store, store.pathFor("s"));
  expect(Buffer.compare(Buffer.from(b.core.ram), ram)).toBe(0);
  // Read with O_DIRECT: the whole runs by the reader thread, ahead of the checks (issue 15),
  // and checked through the kernel's copy of them where it makes one (Linux: /proc/self/mem).
  expect(r.readerRuns > 0).toBe(meta.stats.directIo === true);
  expect(r.kernelCopyCheck).toBe(meta.stats.directIo === true && selfMemory);
  // Without the reader (each run read by the checking thread itself), and checked in place: the same RAM.
  const c = bareMachine(RAM).machine;
  expect(restoreEager(c, store, store.pathFor("s"), undefined, { reader: false }).readerRuns).toBe(0);
  expect(Buffer.compare(Buffer.from(c.core.ram), ram)).toBe(0);
  const d = bareMachine(RAM).machine;
  expect(restoreEager(d, store, store.pathFor("s"), undefined, { kernelCopyCheck: false }).kernelCopyCheck).toBe(false);
  expect(Buffer.compare(Buffer.from(d.core.ram), ram)).toBe(0);
  // A stored page damaged in the file (one in a run the reader reads, one among the working set's
  // scattered pages): refused by name, whichever way it was checked.
  for (const page of [4000, 17]) {
    const copy = join(dir, `damaged${page}.rvmsnap`);
    copyFileSync(store.pathFor("s"), copy);
    const snap = SnapshotFile.open(copy);
    const at = snap.entry(page).value + 100;
    snap.close();
    const fd = openSync(copy, "r+");
    writeSync(fd, Buffer.from([0x5a]), 0, 1, at);
    closeSync(fd);
    const re = new RegExp(`page ${page} \\(guest-physical 0x8[0-9a-f]+\\): checksum mismatch`);
    expect(() => restoreEager(bareMachine(RAM).machine, store, copy)).toThrow(re);
    rmSync(copy);
  }
  store.close();
  return meta;
}

/** Whether this process can read its own memory through the kernel (ram-check.ts). */
const selfMemory = existsSync("/proc/self/mem");

describe("savevm's data area past the page cache", () => {
  it("on a disk file system: written with O_DIRECT where it is taken, and restored exactly", { timeout: 120_000 }, () => {
    const meta = saveAndRestore(diskRoot);
    expect(meta.stats.zero).toBe(105); // 7, 1507, 4507, 6007, 7507 and 3000-3099
    expect(meta.stats.same).toBe(8); // 6001-6009 but 6007 (zero), twins of 6000
    expect(meta.stats.stored).toBe(PAGES - 105 - 8);
    expect(meta.stats.directIo).toBe(takesDirect(diskRoot));
  });

  it("written by savevm's writer thread or by the hart's thread: the same layout, restored exactly", { timeout: 120_000 }, () => {
    const direct = takesDirect(diskRoot);
    for (const writerThread of [true, false]) {
      const meta = saveAndRestore(diskRoot, writerThread);
      expect(meta.stats.stored).toBe(PAGES - 105 - 8);
      expect(meta.stats.directIo).toBe(direct);
    }
  });

  it("on tmpfs (O_DIRECT since Linux 6.6): as the file system allows, restored exactly", { timeout: 120_000 }, () => {
    if (!existsSync("/dev/shm")) return; // (freshDir is on tmpfs only where /dev/shm is)
    const dir = freshDir("tmpfs");
    expect(saveAndRestore(dir).stats.directIo).toBe(takesDirect(dir));
  });

  it.skipIf(!ramfs)("on ramfs (O_DIRECT refused: EINVAL): written buffered, restored exactly", { timeout: 120_000 }, () => {
    expect(takesDirect(ramfs!)).toBe(false);
    expect(saveAndRestore(ramfs!).stats.directIo).toBe(false);
    expect(saveAndRestore(ramfs!, true).stats.directIo).toBe(false); // (the writer thread falls back too)
  });

  it.skipIf(!ramfs || !takesDirect(diskRoot))("a snapshot written with O_DIRECT, moved to a file system that refuses it: read back buffered, exactly", { timeout: 120_000 }, () => {
    const from = new SnapshotStore(join(diskRoot, "moved-from"));
    const a = filled();
    expect(saveSnapshot(a, from, "m").stats.directIo).toBe(true);
    from.close();
    const to = new SnapshotStore(join(ramfs!, "moved-to"));
    to.ensureDir();
    copyFileSync(from.pathFor("m"), to.pathFor("m"));
    const b = bareMachine(RAM).machine;
    restoreEager(b, to, to.pathFor("m")); // the eager restore asks for O_DIRECT reads: refused at open
    expect(Buffer.compare(Buffer.from(b.core.ram), Buffer.from(a.core.ram))).toBe(0);
    to.close();
  });
});
