// Lazy restore (issue 6, "Tests"): the restored VM runs before its memory is back; pages come
// in on demand (hart touch, device DMA, disk write to a block a page still mirrors) and from
// the background fetcher. Every path must end with exactly the memory of the snapshot, and a
// damaged snapshot must stop the VM with an error naming the page, never run on.
//
// One guest is booted and saved once (beforeAll): the Linux guest with the data files in its
// page cache (disk-backed pages), a process holding 8 MiB of pseudo-random memory (stored
// pages), free memory (zero pages) and a few identical pages (same-as). Time is deterministic
// (icount 4), so a run of N instructions is a pure function of the state and an eager-restored
// machine is the reference a lazy-restored one must match bit for bit.

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { spawnSync } from "node:child_process";
import { closeSync, copyFileSync, openSync, statSync, truncateSync, writeSync } from "node:fs";
import { join } from "node:path";
import { saveSnapshot } from "../../src/snapshot/save.js";
import { restoreEager } from "../../src/snapshot/restore.js";
import { FetchOrder, LazyOptions, LazyRestore } from "../../src/snapshot/restore-lazy.js";
import { SnapshotStore } from "../../src/snapshot/store.js";
import { PageEntry, PageKind, SnapshotFile, SnapshotMeta } from "../../src/snapshot/format.js";
import { GuestMemory } from "../../src/memory.js";
import { VirtioMmio } from "../../src/devices/virtio-mmio.js";
import { PageState, PAGE_SIZE } from "../../src/core.js";
import { createVirtMachine } from "../../src/board/virt.js";
import type { Machine } from "../../src/machine.js";
import { ROOT } from "../helpers.js";
import {
  cleanup, diskCopy, endMachines, fetchAll, freshDir, Guest, hartOf, HELLO, isRestored, linuxMachine, pageBytes, PROMPT, ramOf,
  ramPageOf, runUntil, shell, tableTree, TEST_JIT,
} from "./lazy-util.js";

afterAll(cleanup);

/** Instructions both sides run after the restore: enough for md5sum of the data files (~40 M). */
const N = 60_000_000;
/** Touches the page cache (disk-backed pages), reads a file never read before (DMA), forks. */
const CMD = "md5sum /mnt/data/* /mnt/hello.txt; echo done";

let dir: string;
let disk: string;
let store: SnapshotStore;
let file: string;
let meta: SnapshotMeta;
let entries: PageEntry[];
let ramAtSave: Buffer;
let hartAtSave: Buffer;
/** The RAM pages of the hart's pc and sp at the save (page-table walk in the test). */
let pcPage: number;
/** The page-table pages of the hart's translation of pc at the save (root first). */
let pcTables: number[] = [];
/** Machine.firstPages and the hart's page-table tree (the test's walk) at the save's instant. */
let firstAtSave: number[] = [];
let treeAtSave: number[] = [];
/** Machine.touchAge and touchCount of every page at the save's instant. */
let agesAtSave: number[] = [];
let countsAtSave: number[] = [];
let spPage: number;
/** The source machine (kept: the store's disk journal was opened with its disk). */
let source: Guest;

const pa = (p: number) => GuestMemory.pageAddress(p);
const pagesOf = (kind: PageKind) => entries.flatMap((e, p) => (e.kind === kind ? [p] : []));
const savedPage = (p: number) => ramAtSave.subarray(p * PAGE_SIZE, (p + 1) * PAGE_SIZE);

/**
 * A page of memfill's 8 MiB (the process sleeps on its input: nothing touches these pages
 * after the save), found by its content: memfill fills its buffer with xorshift64 from a
 * fixed seed, so page k of the buffer starts with word 512 k of that sequence.
 */
function memfillPage(k = 1000): number {
  let s = 0x9e3779b97f4a7c15n;
  const next = () => {
    s ^= BigInt.asUintN(64, s << 13n);
    s ^= s >> 7n;
    s ^= BigInt.asUintN(64, s << 17n);
    return s;
  };
  for (let i = 0; i < 512 * k; i++) next();
  const want = next();
  for (let p = 0; p < entries.length; p++) if (ramAtSave.readBigUInt64LE(p * PAGE_SIZE) === want) return p;
  throw new Error("memfill's page not found");
}

/** A stored page of this file, late in the data area, that no same-as page shares. */
function coldStoredPage(): number {
  const stored = entries.flatMap((e, p) => (e.kind === PageKind.Stored && e.ref === 0 ? [{ p, off: e.value }] : []));
  stored.sort((a, b) => b.off - a.off);
  const shared = new Set(entries.filter((e) => e.kind === PageKind.Same).map((e) => e.value));
  return stored.find((s) => !shared.has(s.off))!.p;
}

function lazy(g: Guest, opts: LazyOptions = {}, f = file): LazyRestore {
  const r = new LazyRestore(g.machine, store, f, opts);
  // Right after the constructor nothing of RAM is resident (but the working set, if read first).
  const resident = g.machine.core.pages.filter((s) => (s & PageState.NotRestored) === 0).length;
  if (opts.preloadBytes) {
    expect(resident).toBe(Math.min(meta.workingSet, opts.preloadBytes / PAGE_SIZE));
    expect(resident).toBeGreaterThan(0);
  } else {
    expect(resident).toBe(0);
  }
  return r;
}

/** Brings in every page still missing, the way a demand fault does (no background fetch). */
function demandAll(m: Machine, r: LazyRestore, except = -1): void {
  for (let p = 0; p < m.core.pages.length; p++) if (p !== except && !isRestored(m, p)) r.demand(p);
}

/** A copy of the snapshot file that a test may damage (same store: journals, references). */
function victimCopy(tag: string): string {
  const f = join(freshDir(tag), "victim.rvmsnap");
  copyFileSync(file, f);
  return f;
}

function overwrite(f: string, offset: number, bytes: Buffer): void {
  const fd = openSync(f, "r+");
  writeSync(fd, bytes, 0, bytes.length, offset);
  closeSync(fd);
}

beforeAll(async () => {
  dir = freshDir("lazy");
  disk = diskCopy(dir);
  store = new SnapshotStore(join(dir, "snaps"));
  source = linuxMachine(disk);
  await runUntil(source, PROMPT, 0, 120_000);
  // The data files go into the page cache (disk-backed pages); /mnt/hello.txt stays unread.
  await shell(source, "mount /dev/vda /mnt && cat /mnt/data/* > /dev/null");
  // 8 MiB of pseudo-random anonymous memory, kept by a process blocked on its input.
  const at = source.out().length;
  source.machine.input(Buffer.from("sleep 100000 | memfill 8 &\n"));
  await runUntil(source, "memfill: ready 8 MiB\r\n", at);
  pcTables = [];
  pcPage = ramPageOf(source.machine, source.machine.core.pc, true, pcTables);
  spPage = ramPageOf(source.machine, source.machine.core.x(2), false);
  firstAtSave = source.machine.firstPages();
  treeAtSave = tableTree(source.machine);
  agesAtSave = Array.from({ length: source.machine.core.pages.length }, (_, p) => source.machine.touchAge(p));
  countsAtSave = Array.from({ length: source.machine.core.pages.length }, (_, p) => source.machine.touchCount(p));
  meta = saveSnapshot(source.machine, store, "s");
  file = store.pathFor("s");
  ramAtSave = ramOf(source.machine);
  hartAtSave = hartOf(source.machine);
  const snap = SnapshotFile.open(file);
  entries = Array.from({ length: snap.pages }, (_, p) => snap.entry(p));
  snap.close();
}, 240_000);

afterAll(() => store?.close());

describe("lazy restore: content", () => {
  it("the working set starts with the page tables of the hart's pc, its pc page, then its stack page, then the rest of its page tables: the first reads bring them", { timeout: 60_000 }, () => {
    expect(pcPage).toBeGreaterThanOrEqual(0);
    expect(pcTables.length).toBeGreaterThan(0); // Linux in S-mode: pc translates
    const snap = SnapshotFile.open(file);
    try {
      const ix = snap.workingSetIndex()!;
      const head = Array.from(ix.page.slice(0, 16));
      const at = head.indexOf(pcPage);
      expect(at).toBeGreaterThanOrEqual(0);
      // Before it, the tables its translation reads (those stored in this snapshot's data area).
      const stored = (p: number) => entries[p].kind === PageKind.Stored && entries[p].ref === 0;
      expect(head.slice(0, at)).toEqual([...new Set(pcTables)].filter((p) => p !== pcPage && stored(p) && ix.page.includes(p)));
      // The first slot of the data area holds the first of them.
      expect(snap.entry(head[0]).value).toBe(Math.min(...entries.filter((e) => e.kind === PageKind.Stored && e.ref === 0).map((e) => e.value)));
      if (spPage >= 0 && spPage !== pcPage && entries[spPage].kind === PageKind.Stored) expect(head.indexOf(spPage)).toBeGreaterThan(at);
      // The harts' first pages, then every page table of the hart's address space (satp's tree,
      // root first), then the rest: those stored in this snapshot's working set, in that order.
      expect(treeAtSave.length).toBeGreaterThan(pcTables.length); // more tables than pc's walk reads
      const want = [...new Set([...firstAtSave, ...treeAtSave])].filter((p) => stored(p) && ix.page.includes(p));
      expect(want.filter((p) => treeAtSave.includes(p) && !firstAtSave.includes(p)).length).toBeGreaterThan(0);
      expect(Array.from(ix.page.slice(0, want.length))).toEqual(want);
      // Then by age, the most recent first; within an age, the pages touched in more access
      // epochs first (Machine.touchCount); then by page.
      const rest = Array.from(ix.page.slice(want.length));
      let mixed = 0;
      for (let i = 1; i < rest.length; i++) {
        const [p, q] = [rest[i - 1], rest[i]];
        const key = (x: number) => [Math.round(agesAtSave[x]), -countsAtSave[x], x];
        const [a, b] = [key(p), key(q)];
        expect(a[0] < b[0] || (a[0] === b[0] && (a[1] < b[1] || (a[1] === b[1] && a[2] < b[2])))).toBe(true);
        if (a[0] === b[0] && a[1] !== b[1]) mixed++;
      }
      expect(mixed).toBeGreaterThan(0);
    } finally {
      snap.close();
    }
  });

  it("the snapshot has every page kind", { timeout: 180_000 }, () => {
    const s = meta.stats;
    expect(s.zero).toBeGreaterThan(0);
    expect(s.disk).toBeGreaterThan(300);
    expect(s.same).toBeGreaterThan(0);
    expect(s.stored).toBeGreaterThan(2048); // memfill's 8 MiB alone
    expect(meta.workingSet).toBeGreaterThan(0); // memfill filled its 8 MiB just before
    expect(s.zero + s.disk + s.same + s.stored).toBe(s.pages);
    expect(pagesOf(PageKind.Disk).length).toBe(s.disk);
    expect(pagesOf(PageKind.Same).length).toBe(s.same);
  });

  // Exact comparison: the guest does not run, so nothing but the restore writes RAM; the
  // fetcher is driven the way the run loop drives it (the page source's background() between slices, the
  // event loop delivering its asynchronous reads). The result must be the saved RAM byte for
  // byte, the hash of every page must match its map entry, and page states (disk-backed
  // pages and their blocks) must be those an eager restore of the same snapshot leaves.
  const contentVariants: [string, LazyOptions][] = [
    ["workingset order", { order: "workingset" }],
    ["page order", { order: "page" }],
    ["working set read before the first instruction", { order: "workingset", preloadBytes: 4 << 20 }],
    ["the fetcher in turns on the hart's thread, as without shared memory", { fetcherThread: false }],
  ];
  for (const [name, opts] of contentVariants) {
    it(`after the background fetch completes (${name}), every page equals the saved one and the eager restore`, { timeout: 180_000 }, async () => {
      const l = linuxMachine(disk, true);
      const r = lazy(l, opts);
      await fetchAll(l.machine, r);
      expect(r.complete).toBe(true);
      const st = r.stats();
      expect(st.prefetched).toBe(meta.stats.pages);
      expect(st.demandFaults).toBe(0);
      expect(Buffer.compare(ramOf(l.machine), ramAtSave)).toBe(0);
      expect(Buffer.compare(hartOf(l.machine), hartAtSave)).toBe(0);
      // Hash per page against the map (zero pages: all zero).
      const kinds = [0, 0, 0, 0];
      const bad: number[] = [];
      for (let p = 0; p < entries.length; p++) {
        const e = entries[p];
        kinds[e.kind]++;
        const ok = e.kind === PageKind.Zero ? l.machine.core.exports.isZero(l.machine.core.exports.ramAddress() + p * PAGE_SIZE, PAGE_SIZE)
          : BigInt.asUintN(64, l.machine.core.exports.pageHash(p)) === e.hash;
        if (!ok) bad.push(p);
      }
      expect(bad).toEqual([]);
      expect(kinds).toEqual([meta.stats.zero, meta.stats.stored, meta.stats.same, meta.stats.disk]);

      const e = linuxMachine(disk, true);
      restoreEager(e.machine, store, file);
      expect(Buffer.compare(ramOf(e.machine), ramOf(l.machine))).toBe(0);
      expect(Buffer.compare(Buffer.from(e.machine.core.pages), Buffer.from(l.machine.core.pages))).toBe(0);
      expect(Buffer.compare(Buffer.from(e.machine.mem.diskBlock.buffer), Buffer.from(l.machine.mem.diskBlock.buffer))).toBe(0);
      expect(pagesOf(PageKind.Disk).filter((p) => l.machine.mem.diskBlockOf(p) !== entries[p].value)).toEqual([]);
    });
  }

  // With the guest running, the pages it wrote differ from the snapshot by design. Dirty
  // tracking starts at the restore (markClean), and every write, by the hart or by DMA, sets
  // PageState.Dirty, so every page *without* it must still be exactly its saved content.
  it("while the guest runs a command, every page it did not write comes back as saved", { timeout: 180_000 }, async () => {
    const l = linuxMachine(disk, true);
    const r = lazy(l, { budgetMs: 0.2, runPages: 16 });
    const at = l.out().length;
    l.machine.input(Buffer.from("cat /mnt/hello.txt\n"));
    const res = await l.machine.run({ until: () => r.complete && l.out().indexOf(PROMPT, at) >= 0, timeoutMs: 90_000 });
    expect(res.reason).toBe("budget");
    expect(l.out().slice(at)).toContain(HELLO);
    const st = r.stats();
    expect(st.demandFaults).toBeGreaterThan(0);
    expect(st.prefetched).toBeGreaterThan(0);
    expect(st.demandFaults + st.prefetched).toBe(meta.stats.pages);
    let clean = 0;
    for (let p = 0; p < entries.length; p++) {
      if (l.machine.core.pages[p] & PageState.Dirty) continue;
      clean++;
      if (!pageBytes(l.machine, p).equals(savedPage(p))) throw new Error(`page ${p} (kind ${entries[p].kind}) differs but is not dirty`);
    }
    expect(clean).toBeGreaterThan(entries.length * 0.9);
  });
});

describe("lazy restore: a running guest ends exactly as after an eager restore", () => {
  let ref: { out: string; ram: Buffer; hart: Buffer; instret: bigint };

  beforeAll(async () => {
    const e = linuxMachine(disk, true);
    restoreEager(e.machine, store, file);
    e.machine.input(Buffer.from(CMD + "\n"));
    const res = await e.machine.run({ instructions: N, timeoutMs: 90_000 });
    expect(res.reason).toBe("budget");
    expect(e.out()).toContain("/mnt/data/file00.bin");
    expect(e.out()).toMatch(/\ndone\r\n/);
    ref = { out: e.out(), ram: ramOf(e.machine), hart: hartOf(e.machine), instret: res.instret };
  }, 180_000);

  // Same input, same N instructions; the guest faults pages in its own (scattered) order
  // while the fetcher streams the rest in between. Compared at the same instruction count:
  // after N, the fetcher finishes without the guest running (untouched pages are the
  // snapshot's on both sides), then RAM, hart and console must be identical.
  // With the JIT on (issue 12), translated code touches not-yet-restored pages too: each must
  // still stop the hart before any effect, and the run end bit for bit as the interpreted one.
  const variants: [string, LazyOptions, boolean?][] = [
    ["workingset order", { order: "workingset" }],
    ["page order", { order: "page" }],
    ["workingset order, slow fetcher", { order: "workingset", runPages: 8, rateBytesPerSec: 2 << 20 }],
    ["page order, slow fetcher", { order: "page", runPages: 8, rateBytesPerSec: 2 << 20 }],
    ["working set read before the first instruction, slow fetcher", { order: "workingset", preloadBytes: 4 << 20, rateBytesPerSec: 2 << 20 }],
    ["demand faults only (no fetch, no read-ahead)", { budgetMs: 0, readAhead: 1 }],
    ["with the JIT: workingset order", { order: "workingset" }, true],
    ["with the JIT: demand faults only", { budgetMs: 0, readAhead: 1 }, true],
  ];
  for (const [name, opts, jit] of variants) {
    it(name, { timeout: 180_000 }, async () => {
      const l = linuxMachine(disk, true, undefined, jit ? TEST_JIT : false);
      const r = lazy(l, opts);
      l.machine.input(Buffer.from(CMD + "\n"));
      const res = await l.machine.run({ instructions: N, timeoutMs: 90_000 });
      expect(res.reason).toBe("budget");
      expect(res.instret).toBe(ref.instret);
      const st = r.stats();
      // The fetcher thread runs beside the guest: how many pages the guest faulted in itself
      // depends on the host; with the fetcher slowed down, most of them.
      if (opts.budgetMs === 0 || opts.rateBytesPerSec) expect(st.demandFaults).toBeGreaterThan(100);
      else expect(st.demandFaults).toBeGreaterThan(0);
      if (opts.budgetMs === 0) {
        expect(st.prefetched).toBe(0);
        demandAll(l.machine, r);
      } else {
        expect(st.prefetched).toBeGreaterThan(0);
        await fetchAll(l.machine, r);
      }
      expect(r.complete).toBe(true);
      expect(l.out()).toBe(ref.out);
      expect(Buffer.compare(hartOf(l.machine), ref.hart)).toBe(0);
      expect(Buffer.compare(ramOf(l.machine), ref.ram)).toBe(0);
      if (jit) expect(l.machine.core.exports.jitInstructions()).toBeGreaterThan(1_000_000n);
    });
  }
});

describe("lazy restore: DMA and disk writes", () => {
  it("host DMA into and out of not-yet-restored pages restores them first", { timeout: 180_000 }, () => {
    const l = linuxMachine(disk, true);
    const m = l.machine;
    const r = lazy(l, { budgetMs: 0, readAhead: 1 });
    const stored = pagesOf(PageKind.Stored)[7], same = pagesOf(PageKind.Same)[0];
    const onDisk = pagesOf(PageKind.Disk)[3], zero = pagesOf(PageKind.Zero).at(-1)!;

    // Out of the guest (a device reads RAM): the page comes in as saved, stays clean.
    for (const p of [stored, onDisk]) {
      expect(isRestored(m, p)).toBe(false);
      expect(Buffer.from(m.mem.view(pa(p) + 100, 200)).equals(savedPage(p).subarray(100, 300))).toBe(true);
      expect(isRestored(m, p)).toBe(true);
      expect(m.core.pages[p] & PageState.Dirty).toBe(0);
    }
    expect(m.mem.diskBlockOf(onDisk)).toBe(entries[onDisk].value); // still mirrors its block
    // Into the guest (a device writes RAM): the page comes in first, the write lands on top.
    const patch = Buffer.from("written by a device");
    for (const p of [same, zero]) {
      expect(isRestored(m, p)).toBe(false);
      m.mem.write(pa(p) + 1000, patch);
      const want = Buffer.from(savedPage(p));
      patch.copy(want, 1000);
      expect(pageBytes(m, p).equals(want)).toBe(true);
      expect(m.core.pages[p] & PageState.Dirty).toBeTruthy();
    }
    // A transfer across several pages restores all of them.
    const first = pagesOf(PageKind.Stored).find((p) => !isRestored(m, p) && !isRestored(m, p + 1) && !isRestored(m, p + 2) && p > 100)!;
    const span = m.mem.read(pa(first) + 10, 2 * PAGE_SIZE);
    expect(Buffer.from(span).equals(ramAtSave.subarray(first * PAGE_SIZE + 10, (first + 2) * PAGE_SIZE + 10))).toBe(true);
    for (const p of [first, first + 1, first + 2]) expect(isRestored(m, p)).toBe(true);
    expect(r.stats().demandFaults).toBe(7);
    // A write to a disk-backed page ends its disk backing.
    m.mem.writeU32(pa(onDisk), 0xdeadbeef);
    expect(m.mem.diskBlockOf(onDisk)).toBe(-1);
  });

  it("guest DMA (virtio-blk) into and out of not-yet-restored pages", { timeout: 180_000 }, async () => {
    const l = linuxMachine(disk, true);
    const m = l.machine;
    const r = lazy(l, { budgetMs: 0 }); // pure demand paging: only what is touched comes in
    // The virtio queue layer asks for a request's pages first (whenPresent: a local file's
    // restore makes them present at once), then reads and writes them (view, writable).
    const hits = { writable: 0, view: 0, whenPresent: 0 };
    const mem = m.mem;
    const wrap = (kind: "writable" | "view" | "whenPresent") => {
      const orig = mem[kind].bind(mem) as (addr: number, len: number) => never;
      mem[kind] = (addr: number, len: number) => {
        const off = addr - GuestMemory.pageAddress(0);
        for (let p = off >>> 12; p <= (off + len - 1) >>> 12; p++) if (!isRestored(m, p)) hits[kind]++;
        return orig(addr, len);
      };
    };
    wrap("writable");
    wrap("view");
    wrap("whenPresent");
    // A file never read before: virtio-blk reads it into page-cache pages (and writes the used
    // ring) that are not restored yet.
    expect(await shell(l, "cat /mnt/hello.txt")).toContain(HELLO);
    // Restored synchronously (a local file): nothing waited.
    expect(hits.whenPresent).toBeGreaterThan(0);
    expect(m.resettables.filter((t): t is VirtioMmio => t instanceof VirtioMmio).reduce((n, t) => n + t.pageWaits, 0)).toBe(0);
    // Out of the guest to the disk and back in, through a dropped page cache.
    await shell(l, "echo written after a lazy restore > /mnt/new.txt; sync");
    expect(await shell(l, "echo 3 > /proc/sys/vm/drop_caches; cat /mnt/new.txt")).toContain("written after a lazy restore");
    expect(await shell(l, "md5sum /mnt/data/file00.bin")).toMatch(/^[0-9a-f]{32}  \/mnt\/data\/file00.bin/);
    expect(r.complete).toBe(false);
    demandAll(m, r);
    expect(r.complete).toBe(true);
    for (let p = 0; p < entries.length; p++) {
      if (!(m.core.pages[p] & PageState.Dirty) && !pageBytes(m, p).equals(savedPage(p))) throw new Error(`clean page ${p} differs`);
    }
  });

  it("a disk write to a block a not-yet-restored page mirrors restores the page first, with the old block", { timeout: 180_000 }, () => {
    const l = linuxMachine(disk, true);
    const m = l.machine;
    const r = lazy(l, { budgetMs: 0 });
    const drive = m.drives[0];
    const [p1, p2] = pagesOf(PageKind.Disk).filter((p) => Math.floor(entries[p].value / 2 ** 36) === 0).slice(-2);
    for (const p of [p1, p2]) expect(isRestored(m, p)).toBe(false);
    const b1 = entries[p1].value, b2 = entries[p2].value;
    // As virtio-blk writes: the machine's hook (page source, then the drive's journal), the
    // write, then the pages' disk backing ends.
    const write = (offset: number, bytes: Buffer) => {
      m.beforeDiskWrite(0, offset, bytes.length);
      drive.disk.write(bytes, offset);
      for (let b = Math.floor(offset / PAGE_SIZE); b <= Math.floor((offset + bytes.length - 1) / PAGE_SIZE); b++) m.mem.diskWritten(b, 0);
    };
    write(b1 * PAGE_SIZE, Buffer.alloc(PAGE_SIZE, 0xa5)); // a whole block
    write(b2 * PAGE_SIZE + 1536, Buffer.alloc(512, 0x5a)); // one sector of it
    for (const p of [p1, p2]) {
      expect(isRestored(m, p)).toBe(true);
      expect(pageBytes(m, p).equals(savedPage(p))).toBe(true); // the old block, not the new one
      expect(BigInt.asUintN(64, m.core.exports.pageHash(p))).toBe(entries[p].hash);
      expect(m.mem.diskBlockOf(p)).toBe(-1); // no longer a copy of its block
    }
    const now = Buffer.alloc(PAGE_SIZE);
    drive.disk.read(now, b1 * PAGE_SIZE);
    expect(now.every((b) => b === 0xa5)).toBe(true);
    expect(r.stats().demandFaults).toBe(2);
    demandAll(m, r);
    expect(Buffer.compare(ramOf(m), ramAtSave)).toBe(0);
    // The journal kept the old blocks: an eager restore (which reverts the disk) still verifies.
    const e = linuxMachine(disk, true);
    restoreEager(e.machine, store, file);
    expect(Buffer.compare(ramOf(e.machine), ramAtSave)).toBe(0);
    drive.disk.read(now, b1 * PAGE_SIZE);
    expect(now.equals(savedPage(p1))).toBe(true);
  });

  it("a guest write to the raw disk over a block a not-yet-restored page mirrors", { timeout: 180_000 }, async () => {
    const l = linuxMachine(disk, true);
    const m = l.machine;
    lazy(l, { budgetMs: 0 });
    const p = pagesOf(PageKind.Disk).filter((q) => Math.floor(entries[q].value / 2 ** 36) === 0).at(-1)!;
    const block = entries[p].value;
    const drive = m.drives[0];
    // Watch the restore's disk-write interception (the page source's beforeDiskWrite).
    const source = m.pageSource!;
    const hook = source.beforeDiskWrite!.bind(source);
    let seen: { before: boolean; after: boolean; content: boolean } | undefined;
    source.beforeDiskWrite = (index, offset, length) => {
      const hit = index === 0 && offset < (block + 1) * PAGE_SIZE && offset + length > block * PAGE_SIZE;
      const before = isRestored(m, p);
      hook(index, offset, length);
      if (hit) seen = { before, after: isRestored(m, p), content: pageBytes(m, p).equals(savedPage(p)) };
    };
    // The page-cache page of a data file mirrors `block`; dd writes that block through
    // /dev/vda's own cache, so the file's page is not touched by the guest.
    await shell(l, `dd if=/dev/zero of=/dev/vda bs=4096 seek=${block} count=1 2>&-; sync`);
    expect(seen).toEqual({ before: false, after: true, content: true });
    expect(m.mem.diskBlockOf(p)).toBe(-1);
    const now = Buffer.alloc(PAGE_SIZE, 1);
    drive.disk.read(now, block * PAGE_SIZE);
    expect(now.every((b) => b === 0)).toBe(true);
  });
});

describe("lazy restore: twice in a row", () => {
  it("restoring the same snapshot again (also over an unfinished restore) gives the same RAM and the same run", { timeout: 180_000 }, async () => {
    const g = linuxMachine(disk, true);
    const m = g.machine;
    const cmd = "cat /mnt/hello.txt; md5sum /mnt/data/file0*; echo twice";
    const N2 = 30_000_000;
    const once = async (r: LazyRestore) => {
      await fetchAll(m, r);
      expect(Buffer.compare(ramOf(m), ramAtSave)).toBe(0);
      expect(Buffer.compare(hartOf(m), hartAtSave)).toBe(0);
      const at = g.out().length;
      m.input(Buffer.from(cmd + "\n"));
      const res = await m.run({ instructions: N2, timeoutMs: 90_000 });
      expect(res.reason).toBe("budget");
      return { out: g.out().slice(at), ram: ramOf(m), hart: hartOf(m) };
    };
    const first = await once(lazy(g));
    expect(first.out).toContain(HELLO);
    expect(first.out).toMatch(/\ntwice\r\n/);
    const second = await once(lazy(g)); // loadvm s, after the guest ran on
    expect(second.out).toBe(first.out);
    expect(Buffer.compare(second.ram, first.ram)).toBe(0);
    expect(Buffer.compare(second.hart, first.hart)).toBe(0);
    // A restore that is not finished (demand paging only, guest ran a bit), then loadvm again.
    lazy(g, { budgetMs: 0 });
    m.input(Buffer.from("echo scribble > /mnt/hello.txt; sync\n"));
    await m.run({ instructions: 20_000_000, timeoutMs: 90_000 });
    const third = await once(lazy(g, { order: "page" }));
    expect(third.out).toBe(first.out);
    expect(Buffer.compare(third.ram, first.ram)).toBe(0);
    expect(Buffer.compare(third.hart, first.hart)).toBe(0);
  });
});

describe("lazy restore: a damaged snapshot stops the VM", () => {
  it("a stored page changed in the file during the restore: run rejects naming the page", { timeout: 180_000 }, async () => {
    const f = victimCopy("changed");
    const g = linuxMachine(disk, true);
    const r = lazy(g, {}, f);
    const p = coldStoredPage();
    overwrite(f, entries[p].value + 64, Buffer.from("not what was saved"));
    const run = g.machine.run({ until: () => r.complete, timeoutMs: 90_000 });
    await expect(run).rejects.toThrow(new RegExp(`page ${p} \\(guest-physical 0x${pa(p).toString(16)}\\): checksum mismatch.*the VM is stopped`));
    expect(r.complete).toBe(false);
    expect(isRestored(g.machine, p)).toBe(false);
    // It never continues: the next run fails the same way.
    await expect(g.machine.run({ instructions: 1_000_000, timeoutMs: 90_000 })).rejects.toThrow(`page ${p} `);
  });

  it("a damaged working-set index: the restore is refused (before the first instruction, or by the fetcher thread)", { timeout: 180_000 }, async () => {
    const f = victimCopy("wsindex");
    overwrite(f, meta.workingSetIndex!.offset + 5, Buffer.from([0xff, 0xfe]));
    // Read before the first instruction: the constructor fails, nothing runs.
    const g = linuxMachine(disk, true);
    expect(() => new LazyRestore(g.machine, store, f, { order: "workingset", preloadBytes: 1 << 20 })).toThrow(/working-set index.*the VM is stopped/);
    // Read by the fetcher thread: the VM stops at its next slice.
    const h = linuxMachine(disk, true);
    const r = lazy(h, { order: "workingset" }, f);
    await expect(h.machine.run({ until: () => r.complete, timeoutMs: 90_000 })).rejects.toThrow(/corrupted working-set index.*the VM is stopped/);
    expect(r.complete).toBe(false);
  });

  it("the file truncated during the restore: run rejects (truncated, naming a page)", { timeout: 180_000 }, async () => {
    const f = victimCopy("truncated");
    const g = linuxMachine(disk, true);
    const r = lazy(g, {}, f);
    truncateSync(f, Math.floor(statSync(f).size / 2));
    const run = g.machine.run({ until: () => r.complete, timeoutMs: 90_000 });
    // The page map's chunks sit at the end of the file: the cut shows there or in a page.
    await expect(run).rejects.toThrow(/truncated file.*the VM is stopped/);
    await expect(g.machine.run({ instructions: 1_000_000 })).rejects.toThrow(/truncated/);
    expect(r.complete).toBe(false);
  });

  it("a failure met by device DMA (which virtio-blk turns into an I/O error) still stops the VM", { timeout: 180_000 }, async () => {
    const f = victimCopy("dma");
    const g = linuxMachine(disk, true);
    const m = g.machine;
    const r = lazy(g, { budgetMs: 0 }, f);
    const p = memfillPage();
    expect(entries[p].kind).toBe(PageKind.Stored);
    overwrite(f, entries[p].value, Buffer.alloc(PAGE_SIZE, 0xee));
    // Everything but the damaged page is in, so the hart meets no other missing page.
    demandAll(m, r, p);
    expect(() => m.mem.view(pa(p), 64)).toThrow(`page ${p} `);
    await expect(m.run({ instructions: 20_000_000, timeoutMs: 90_000 })).rejects.toThrow(`page ${p} `);
    expect(isRestored(m, p)).toBe(false);
  });

  // Last: the CLI reverts the shared disk through the same journal.
  it("rvm restore FILE exits 1 with a one-line error when a page fetched later is damaged", { timeout: 180_000 }, () => {
    const f = victimCopy("cli");
    const p = coldStoredPage();
    overwrite(f, entries[p].value + 4000, Buffer.from("damaged"));
    store.close();
    endMachines(); // the spawned rvm needs the disk image: this process lets go of it (its lock)
    const res = spawnSync(process.execPath, [join(ROOT, "bin/rvm.js"), "restore", f, "--dir", store.dir, "--timeout", "90"],
      { encoding: "utf8", timeout: 120_000 });
    expect(res.status).toBe(1);
    const lines = res.stderr.trim().split("\n");
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(new RegExp(`^rvm: snapshot .*victim\\.rvmsnap: page ${p} \\(guest-physical 0x[0-9a-f]+\\): checksum mismatch`));
    expect(res.stderr).not.toMatch(/\n\s+at /);
  });
});

describe("restore of a guest with HTIF (tohost)", () => {
  const ELF = join(ROOT, "guests/isa/rv64i.elf");
  const elfMachine = (restoring: boolean) => {
    let out = "";
    const machine = createVirtMachine({
      ramBytes: 16 << 20, bios: "none", kernel: ELF, drives: [], icountShift: 4, restoring,
      console: { write: (_fd, b) => void (out += Buffer.from(b).toString("latin1")), readByte: () => -1 },
    });
    return { machine, out: () => out };
  };
  let htifFile: string;
  let htifStore: SnapshotStore;
  beforeAll(async () => {
    htifStore = new SnapshotStore(freshDir("htif"));
    const g = elfMachine(false);
    expect((await g.machine.run({ instructions: 200, timeoutMs: 60_000 })).reason).toBe("budget");
    saveSnapshot(g.machine, htifStore, "h");
    htifFile = htifStore.pathFor("h");
  }, 60_000);
  afterAll(() => htifStore?.close());

  it("lazy: the restored guest still reaches the host through tohost (exits 0)", { timeout: 180_000 }, async () => {
    const g = elfMachine(true);
    new LazyRestore(g.machine, htifStore, htifFile);
    const res = await g.machine.run({ timeoutMs: 60_000 });
    expect(res.reason).toBe("exit");
    expect(res.exitCode).toBe(0);
  });

  // Regression: restoreEager once cleared the page states after re-attaching HTIF, wiping the
  // tohost page's watch bit, so the restored guest's exit never reached the host.
  it("eager: the restored guest still reaches the host through tohost (exits 0)", { timeout: 180_000 }, async () => {
    const g = elfMachine(true);
    restoreEager(g.machine, htifStore, htifFile);
    const res = await g.machine.run({ timeoutMs: 60_000 });
    expect(res.reason).toBe("exit");
    expect(res.exitCode).toBe(0);
  });
});
