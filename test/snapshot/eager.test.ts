// The eager restore on the fetch engine (issue 15): large reads in file order, whole runs of
// consecutive pages copied at once, pages out of order (the working set first) one by one,
// same-as pages copied from their twin, zero pages not written to an untouched machine - and
// the result exact in every case: RAM byte for byte, page states, every page resident.

import { afterAll, describe, expect, it } from "vitest";
import { closeSync, openSync, writeSync } from "node:fs";
import { join } from "node:path";
import { saveSnapshot } from "../../src/snapshot/save.js";
import { restoreEager, RestoreFailedError } from "../../src/snapshot/restore.js";
import { SnapshotStore } from "../../src/snapshot/store.js";
import { PageKind, SnapshotFile } from "../../src/snapshot/format.js";
import { GuestMemory } from "../../src/memory.js";
import { PAGE_SIZE, PageState } from "../../src/core.js";
import type { Machine } from "../../src/machine.js";
import { bareMachine, cleanup, freshDir, prngBytes } from "./util.js";

afterAll(cleanup);

const RAM = 64 << 20; // 16384 pages: several 1 MiB runs, and a progress bar's worth (more than 4096 pages)
const PAGES = RAM / PAGE_SIZE;

/**
 * A machine whose RAM has runs of stored pages broken by zero pages, a block of twins, and a
 * working set touched in an order unlike page order (so the data area starts out of order).
 */
function filled(): Machine {
  const m = bareMachine(RAM).machine;
  for (let p = 0; p < PAGES; p++) {
    if (p % 97 === 5 || (p >= 9000 && p < 9300)) continue; // zero pages, alone and in a block
    if (p >= 12000 && p < 12040) {
      m.mem.write(GuestMemory.pageAddress(p), prngBytes(PAGE_SIZE, 100_000)); // 40 identical pages
      continue;
    }
    m.mem.write(GuestMemory.pageAddress(p), prngBytes(PAGE_SIZE, p + 1));
  }
  return m;
}

/** A saved snapshot of `filled()` with one byte of stored page `page`'s data changed. */
function savedWithDamage(name: string, page: number, at: number): { store: SnapshotStore; file: string } {
  const store = new SnapshotStore(join(freshDir(name), "snaps"));
  saveSnapshot(filled(), store, "s");
  const file = store.pathFor("s");
  const snap = SnapshotFile.open(file);
  const e = snap.entry(page);
  snap.close();
  expect(e.kind).toBe(PageKind.Stored);
  const fd = openSync(file, "r+");
  writeSync(fd, Buffer.from([0x5a]), 0, 1, e.value + at);
  closeSync(fd);
  return { store, file };
}

describe("eager restore", () => {
  it("brings RAM back exactly: into an untouched machine and into one whose RAM is full of other data", { timeout: 180_000 }, async () => {
    const dir = freshDir("eager");
    const store = new SnapshotStore(join(dir, "snaps"));
    const a = filled();
    // A working set (pages the guest just touched): stored first in the data area, so the file's
    // runs hold pages out of order there and runs broken by them after.
    const ws = [3, 800, 801, 802, 12000, 14999, 15000, 16000];
    a.core.exports.clearAccessed(); // (the host's writes above count as touches)
    for (const p of ws) a.core.pages[p] |= PageState.Accessed;
    const meta = saveSnapshot(a, store, "s");
    expect(meta.stats.zero).toBeGreaterThan(400);
    expect(meta.stats.same).toBe(38); // 12033 is one of the zero pages
    expect(meta.workingSet).toBe(ws.length);
    const ramA = Buffer.from(a.core.ram);

    const progress: [number, number][] = [];
    const b = bareMachine(RAM).machine; // untouched: zero pages are not written
    const r = restoreEager(b, store, store.pathFor("s"), (done, total) => progress.push([done, total]));
    expect(Buffer.compare(Buffer.from(b.core.ram), ramA)).toBe(0);
    // Every page resident and clean, none marked not-restored.
    expect(b.core.pages.every((s) => (s & (PageState.NotRestored | PageState.Dirty)) === 0)).toBe(true);
    // Each stored page read exactly once, in reads of up to 1 MiB.
    expect(r.bytesRead).toBe(meta.stats.stored * PAGE_SIZE);
    expect(r.reads).toBeGreaterThanOrEqual(Math.ceil(meta.stats.stored / 256));
    expect(r.reads).toBeLessThan(meta.stats.stored / 16);
    // Progress from the start to every page, never backwards.
    expect(progress.at(-1)).toEqual([PAGES, PAGES]);
    expect(progress.every(([d, t], i) => t === PAGES && (i === 0 || d >= progress[i - 1][0]))).toBe(true);

    // A machine whose every page holds something else: the zero pages must be written too.
    const c = bareMachine(RAM).machine;
    for (let p = 0; p < PAGES; p++) c.mem.write(GuestMemory.pageAddress(p), prngBytes(64, 1000 + p));
    restoreEager(c, store, store.pathFor("s"));
    expect(Buffer.compare(Buffer.from(c.core.ram), ramA)).toBe(0);
    store.close();
  });

  it("a stored page damaged in the file: refused, naming the page", { timeout: 120_000 }, () => {
    const { store, file } = savedWithDamage("eagerbad", 7000, 100);
    const b = bareMachine(RAM).machine;
    expect(() => restoreEager(b, store, file)).toThrow(RestoreFailedError);
    expect(() => restoreEager(bareMachine(RAM).machine, store, file)).toThrow(/page 7000 \(guest-physical 0x8[0-9a-f]+\): checksum mismatch/);
    store.close();
  });

  // The data area split with a helper thread (half from the last run down, on a thread of its
  // own over the shared guest RAM): the same exact result, each page read once, and a damaged
  // page in either half refused by name.
  it("with a helper thread: RAM exact, both threads took part, each page read once", { timeout: 180_000 }, () => {
    const dir = freshDir("eagerhelper");
    const store = new SnapshotStore(join(dir, "snaps"));
    const a = filled();
    const meta = saveSnapshot(a, store, "s");
    const ramA = Buffer.from(a.core.ram);
    const progress: [number, number][] = [];
    const b = bareMachine(RAM).machine;
    const r = restoreEager(b, store, store.pathFor("s"), (done, total) => progress.push([done, total]), { helper: "split" });
    expect(Buffer.compare(Buffer.from(b.core.ram), ramA)).toBe(0);
    expect(b.core.pages.every((s) => (s & (PageState.NotRestored | PageState.Dirty)) === 0)).toBe(true);
    expect(r.helperPages).toBeGreaterThan(0);
    expect(r.helperPages).toBeLessThan(PAGES);
    // Each stored page read once (two reads of the run where the threads meet at most).
    expect(r.bytesRead).toBeGreaterThanOrEqual(meta.stats.stored * PAGE_SIZE);
    expect(r.bytesRead).toBeLessThanOrEqual((meta.stats.stored + 512) * PAGE_SIZE);
    expect(progress.at(-1)).toEqual([PAGES, PAGES]);
    expect(progress.every(([d, t], i) => t === PAGES && (i === 0 || d >= progress[i - 1][0]))).toBe(true);
    // Into RAM that held other data (zero pages written too), the helper's default choice (off:
    // less than 64 MiB of data), and with none: all the same bytes.
    const c = bareMachine(RAM).machine;
    for (let p = 0; p < PAGES; p++) c.mem.write(GuestMemory.pageAddress(p), prngBytes(64, 1000 + p));
    restoreEager(c, store, store.pathFor("s"), undefined, { helper: "split" });
    expect(Buffer.compare(Buffer.from(c.core.ram), ramA)).toBe(0);
    const d = bareMachine(RAM).machine;
    expect(restoreEager(d, store, store.pathFor("s")).helperPages).toBe(0);
    expect(Buffer.compare(Buffer.from(d.core.ram), ramA)).toBe(0);
    store.close();
  });

  it("with a helper thread: a damaged page in its half or in the hart thread's half is refused by name", { timeout: 180_000 }, () => {
    for (const page of [16300, 700]) {
      const { store, file } = savedWithDamage(`eagerhelperbad${page}`, page, 4000);
      const re = new RegExp(`page ${page} \\(guest-physical 0x8[0-9a-f]+\\): checksum mismatch`);
      expect(() => restoreEager(bareMachine(RAM).machine, store, file, undefined, { helper: "split" })).toThrow(RestoreFailedError);
      expect(() => restoreEager(bareMachine(RAM).machine, store, file, undefined, { helper: "split" })).toThrow(re);
      store.close();
    }
  });
});
