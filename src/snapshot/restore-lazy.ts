// The lazy restore (DESIGN.md section 5; the paper's method): the VM runs before its memory
// is back.
//
//  1. Hart, devices, ROM and disks come back at once (disks reverted to their marks), and every
//     RAM page is marked not yet restored.
//  2. The hart runs. Its first touch of a page (fetch, load, store, AMO, page-table walk) exits
//     to the host before the instruction has any effect (core exit EXIT_PAGE); device DMA does
//     the same through GuestMemory. `demand` installs that one page, from the snapshot, a disk
//     block as of the mark, or zero fill, verified against its hash, and the hart goes on.
//  3. A background fetcher streams the rest on its own thread (fetch-worker.ts, over the core's
//     shared memory): large sequential reads, written into RAM and checked there; the hart's
//     thread only marks those pages resident between slices (fetcher.ts: the per-page claims
//     that keep the two threads from writing the same page). Disk-backed pages, which need
//     the journals, are installed on the hart's thread while it idles (and a little otherwise).
//  4. A guest write to a disk block that a not-yet-restored page still mirrors restores that
//     page first. When every page is in, the snapshot's files are released.
//
// Order of the background fetch: "workingset" takes the file's order, in which savevm put the
// pages the guest touched last first (one sequential read), then the rest by page; "page"
// takes plain page order (the baseline).

import { compiledCore, PageState, PAGE_SIZE, sharedMemoryWorks } from "../core.js";
import type { Machine } from "../machine.js";
import { GuestMemory } from "../memory.js";
import { PageEntry, PageKind, SnapshotError, SnapshotFile } from "./format.js";
import { checkCompatible, DiskRevert, SnapshotPages, RestoreFailedError, restoreHartAndDevices, revertDisks } from "./restore.js";
import { setLineage } from "./save.js";
import { SnapshotStore } from "./store.js";
import { Interval, ttrTable, utilizationCurve } from "./ttr.js";
import { RestoreTimeline, TimelineJson } from "./timeline.js";
import { PageClass, restoredClass } from "./pictures.js";
import { BackgroundFetcher, FetcherStats } from "./fetcher.js";
import { CLAIM } from "./fetch-engine.js";
import type { PageSource } from "./source.js";
import { RvmError } from "../errors.js";
import { copyIntoRam } from "../platform.js";

/**
 * What comes in besides demand faults: "workingset" (default): the fetcher thread reads the
 * working set first (from its own index: no page map needed, so it starts at once), then the
 * rest in the file's order; "page": everything in page order; "demand": nothing in the
 * background (the baseline: only what the guest touches comes in).
 */
export type FetchOrder = "workingset" | "page" | "demand";

/** Demand faults counted per bin of a round number of ms, about 60 bins over the restore. */
export function faultHistogram(times: number[], endMs: number): { binMs: number; counts: number[] } {
  let span = Math.max(endMs, 1);
  for (const t of times) if (t > span) span = t; // (no spread: a restore may fault 100k times)
  const raw = span / 60;
  const p = 10 ** Math.floor(Math.log10(raw));
  const binMs = [1, 2, 5, 10].map((m) => m * p).find((x) => x >= raw)!;
  const counts = new Array<number>(Math.floor(span / binMs) + 1).fill(0);
  for (const t of times) counts[Math.floor(t / binMs)]++;
  return { binMs, counts };
}

/**
 * When the fetcher's thread starts (LazyOptions.fetcherDelayMs): not with the restore, but once
 * the guest has run FETCHER_IDLE_START_MS and idles (WFI), or FETCHER_START_MS after the restore
 * began. A Node worker costs ~100 ms of CPU to boot (an isolate of its own, Node's start), and
 * what a restored guest needs first to answer (kernel, shell) is not what the background fetch
 * brings first (the working set is mostly what the guest touched in bulk before savevm): on a
 * 2-core host the thread's start competed with the hart for the time the guest needed to answer.
 * Measured on the 1 GiB memfill-768 snapshot, a line typed at the spawn (6 rounds alternating,
 * load 4.5-5.5): process CPU at the echo, median 515 -> 350 ms (the hart's thread 340 -> 290 ms).
 */
const FETCHER_START_MS = 400;
const FETCHER_IDLE_START_MS = 150;

/** How long guest progress is sampled after the restore, for the fully resident rate (ms). */
const FULL_RATE_MS = 1000;

/** The lazy restore running on each machine, if any. */
const active = new WeakMap<Machine, LazyRestore>();
/**
 * A journal is compacted when its VM ends (AUTO_COMPACT_MIN_DEAD); at a restore's completion,
 * with the guest running, only past this much dead data (the compaction pauses the guest).
 */
const TIDY_RUNNING_MIN_DEAD = 64 << 20;

/** Stops a lazy restore still running on `machine` (before another restore replaces its memory). */
export function cancelActiveRestore(machine: Machine): void {
  const source = machine.pageSource;
  machine.detachSource();
  source?.cancel?.();
  active.get(machine)?.cancel();
}

export interface LazyOptions {
  order?: FetchOrder;
  /** Pages per background read. */
  runPages?: number;
  /**
   * Host time the hart's thread may spend on disk-backed pages per turn while the hart is
   * runnable, in ms (five times that while it idles); 0: no background fetch at all (only
   * demand faults bring pages in).
   */
  budgetMs?: number;
  /** Pages a demand fault on a stored page reads at once (its neighbours in the file); 1 = none. */
  readAhead?: number;
  /** The background fetcher's read rate limit in bytes per second (0: none). */
  rateBytesPerSec?: number;
  /**
   * With order "workingset": how much of the working set the hart's thread reads (one read) and
   * installs itself before the first instruction; 0 (default): the fetcher thread does it all,
   * just after. Measured: reading it before costs more than the faults it saves (ARCHITECTURE.md).
   */
  preloadBytes?: number;
  /**
   * Whether the background fetcher runs on a thread of its own (default: where guest RAM is
   * shared memory); false: it takes turns on the hart's thread between slices, as it must in a
   * browser page that is not cross-origin isolated.
   */
  fetcherThread?: boolean;
  /**
   * The snapshot file, opened already (by `rvm restore`, which read the machine's configuration
   * from it): the restore takes it over (closes it) instead of opening `file` again.
   */
  snapshot?: SnapshotFile;
  /**
   * With the fetcher on a thread of its own: when that thread starts, in ms after the restore
   * began (0: at once; default FETCHER_START_MS), or earlier, once the guest has run
   * FETCHER_IDLE_START_MS and waits in WFI. Until then demand faults alone bring pages in.
   */
  fetcherDelayMs?: number;
  /** Where the restore notes its phases and demand faults (made here if not given). */
  timeline?: RestoreTimeline;
}

export interface RestoreStats {
  mode: "lazy" | "eager";
  order: FetchOrder | null;
  snapshot: string;
  pages: number;
  /** Time to first guest instruction, from the start of the restore. */
  ttfiMs: number;
  /** Until every page was resident. */
  totalMs: number;
  demandFaults: number;
  prefetched: number;
  /** Time the hart waited for pages it touched. */
  stallMs: number;
  /** Time the fetcher took from the guest between slices. */
  fetchMs: number;
  bytesRead: number;
  reads: number;
  meanReadBytes: number;
  ttr: Record<string, number>;
  utilization?: { w100: { t: number; u: number }[]; w1000: { t: number; u: number }[] };
  /** Demand faults per bin of `binMs` from the start of the restore (with the curve). */
  faultsOverTime?: { binMs: number; counts: number[] };
  /** The workload-based view: TTR over instructions retired vs. the fully resident rate. */
  workload?: { fullRateMips: number; ttr: Record<string, number> } | null;
  /** The background fetcher thread: pages it brought in, its reads, its busy time, when it started. */
  worker?: FetcherStats;
  /** Where the time went, from process start (or the loadvm) to the guest's answer and on. */
  timeline?: TimelineJson;
}

export class LazyRestore implements PageSource {
  readonly t0 = performance.now();
  private readonly snap: SnapshotFile;
  private readonly source: SnapshotPages;
  private readonly order: FetchOrder;
  /** The fetcher thread (none when only demand faults bring pages in). */
  private fetcher: BackgroundFetcher | undefined;
  /** The disk-backed pages this thread installs in the background, and how far it got. */
  private diskQueue: Int32Array | undefined;
  private diskCursor = 0;
  private lastDiskTurn = 0;
  private resident = 0;
  private readonly total: number;
  private demandFaults = 0;
  private prefetched = 0;
  private stallMs = 0;
  private fetchMs = 0;
  private readonly intervals: Interval[] = [];
  /** When each demand fault happened (ms from the start). */
  private readonly faultTimes: number[] = [];
  /** How each page came back (a PageClass: Demand, Prefetched, Zero, Disk, Same), 0 while missing. */
  private readonly origin: Uint8Array;
  private ttfi: number | undefined;
  private finishedAt: number | undefined;
  private diskPages: Map<number, number[]> | undefined;
  private workerStats: RestoreStats["worker"];
  private failure: Error | undefined;
  private readonly opts: Required<Omit<LazyOptions, "timeline" | "snapshot">>;
  readonly timeline: RestoreTimeline;
  /** The disks' reverts: undone if the restore fails, committed when every page is in. */
  private revert: DiskRevert | undefined;
  private readonly done: Promise<void>;
  private resolveDone!: () => void;

  constructor(private readonly machine: Machine, private readonly store: SnapshotStore, readonly file: string, opts: LazyOptions = {}) {
    this.opts = {
      order: opts.order ?? "workingset", runPages: opts.runPages ?? 256, budgetMs: opts.budgetMs ?? 2, readAhead: opts.readAhead ?? 16,
      rateBytesPerSec: opts.rateBytesPerSec ?? 0, preloadBytes: opts.preloadBytes ?? 0, fetcherThread: (opts.fetcherThread ?? true) && sharedMemoryWorks,
      fetcherDelayMs: opts.fetcherDelayMs ?? FETCHER_START_MS,
    };
    if (this.opts.order === "demand") this.opts.budgetMs = 0;
    this.order = this.opts.order;
    this.timeline = opts.timeline ?? new RestoreTimeline(machine, false);
    this.done = new Promise((r) => (this.resolveDone = r));
    this.snap = opts.snapshot ?? SnapshotFile.open(file);
    try {
      checkCompatible(this.snap, machine);
      this.source = new SnapshotPages(this.snap, machine, store);
    } catch (e) {
      this.snap.close();
      throw e;
    }
    this.total = this.snap.pages;
    this.timeline.mark(`snapshot opened (${this.snap.meta.ramBytes >> 20} MiB RAM, ${(this.snap.header.dataLength / (1 << 20)).toFixed(0)} MiB of stored pages)`);
    this.origin = new Uint8Array(this.total);
    try {
      this.begin();
      this.timeline.mark("machine state restored, every page marked not yet restored");
    } catch (e) {
      this.revert?.undo();
      this.source.close();
      this.snap.close();
      throw e instanceof RvmError ? new RestoreFailedError(e) : e;
    }
  }

  private begin(): void {
    const m = this.machine;
    const core = m.core;
    const ramZero = m.mem.untouched;
    m.mem.untouched = false;
    this.source.ramZero = ramZero;
    // A restore over one still running: the old one stops fetching and lets go of its files.
    cancelActiveRestore(m);
    active.set(m, this);
    this.revert = revertDisks(m, this.store, this.snap.meta);
    restoreHartAndDevices(m, this.snap.meta);
    core.exports.markAllNotRestored();
    m.mem.clearDiskBlocks();
    core.exports.markClean(); // dirty tracking relative to this snapshot starts now
    setLineage(m, { id: this.snap.meta.id, file: this.file });
    m.meter = this.timeline;
    m.beforeSlice = () => {
      const t = performance.now();
      this.ttfi = t - this.t0;
      this.timeline.started(t);
      m.beforeSlice = undefined;
    };
    this.instret0 = core.instret;
    if (this.order !== "demand" && this.opts.budgetMs > 0) {
      const { dataOffset, dataLength } = this.snap.header;
      const target = {
        ram: core.ram,
        pageHashIs: (p: number, lo: number, hi: number) => core.exports.pageHashIs(p, lo, hi) !== 0,
        thread: this.opts.fetcherThread ? { module: compiledCore(), memory: core.exports.memory, ramAddress: core.exports.ramAddress() } : undefined,
      };
      const deferThread = this.opts.fetcherDelayMs > 0;
      const fetcher = new BackgroundFetcher(target, this.total, dataLength / PAGE_SIZE, {
        files: this.source.paths, dataOffset, order: this.order, runPages: this.opts.runPages, bytesPerSecond: this.opts.rateBytesPerSec, ramZero, deferThread,
      });
      this.fetcher = fetcher;
      // (unref where there is one: a browser's timers have none, and keep nothing alive)
      if (deferThread) (setTimeout(() => fetcher.startThread(), this.opts.fetcherDelayMs) as { unref?: () => void }).unref?.();
    }
    if (this.order === "workingset" && this.opts.preloadBytes > 0) this.preloadWorkingSet();
    // Demand faults, host accesses, the fetcher's turns and disk writes come here from now on
    // (the drives' journals, attached by revertDisks, stay on the drives).
    m.attachSource(this);
  }

  /** Host code (device DMA, the monitor) needs page p now: as a fault, reads here are synchronous. */
  demandNow(p: number): void {
    this.demand(p, false);
  }

  /**
   * Between slices: the fetcher's turn; once every page is in, a second more of sampling guest
   * progress (the rate the workload-based view compares the restore with), then the restore
   * lets go of the machine.
   */
  background(): void {
    if (this.finishedAt === undefined || this.failure) {
      this.fetch();
      return;
    }
    this.sample();
    if (performance.now() - this.t0 > this.finishedAt + FULL_RATE_MS) {
      this.rateSampled = true;
      this.machine.detachSource(this);
    }
  }

  private isRestored(p: number): boolean {
    return (this.machine.core.pages[p] & PageState.NotRestored) === 0;
  }

  /** This thread put page p in RAM (it had taken it): it becomes resident. */
  private installed(p: number, demand = false, stored = false): void {
    const core = this.machine.core;
    core.pages[p] &= ~PageState.NotRestored;
    this.origin[p] = demand ? PageClass.Demand : restoredClass(stored ? PageKind.Stored : this.snap.entry(p).kind);
    if (!stored) this.source.remarkDiskBacked(p); // (a stored page is not disk-backed: no need to decode its entry again)
    this.resident++;
    if (this.resident === this.total) this.finish();
  }

  /** The fetcher thread put page p in RAM and checked it (a zero, stored or same-as page). */
  private activate(p: number): void {
    const pages = this.machine.core.pages;
    if ((pages[p] & PageState.NotRestored) === 0) return; // a demand fault was first
    pages[p] &= ~PageState.NotRestored;
    this.prefetched++;
    this.resident++;
    if (this.resident === this.total) this.finish();
  }

  /**
   * The working set, before the first instruction: its index, then (up to preloadBytes of) its
   * pages, the most recently touched first, in one sequential read each; every page checked.
   */
  private preloadWorkingSet(): void {
    const t = performance.now();
    const ix = this.snap.workingSetIndex();
    if (!ix) return;
    const n = Math.min(ix.page.length, Math.floor(this.opts.preloadBytes / PAGE_SIZE));
    if (n === 0) return;
    const buf = Buffer.allocUnsafe(n * PAGE_SIZE);
    this.source.readStored(0, this.snap.header.dataOffset, buf);
    const core = this.machine.core;
    for (let k = 0; k < n; k++) {
      const p = ix.page[k];
      if (p >= this.total) throw new SnapshotError(this.file, "corrupted working-set index (page out of range)");
      if (this.isRestored(p) || !this.tryTake(p)) continue;
      copyIntoRam(buf, core.ram, p * PAGE_SIZE, k * PAGE_SIZE, (k + 1) * PAGE_SIZE);
      if (!core.exports.pageHashIs(p, ix.hashLo[k], ix.hashHi[k])) this.source.verify(p); // throws, naming the page
      core.pages[p] &= ~PageState.NotRestored;
      this.prefetched++;
      this.resident++;
    }
    if (this.resident === this.total) this.finish();
    this.timeline.mark(`working set read: ${n} of ${ix.page.length} pages (${(n / 256).toFixed(1)} MiB) in one read, ${(performance.now() - t).toFixed(1)} ms`);
  }

  /** Takes page p for this thread to install; false when the fetcher has it ready (or it is in). */
  private take(p: number): boolean {
    return this.fetcher ? this.fetcher.take(p) : true;
  }

  /** Takes page p if nobody has: for read-ahead neighbours, which are not worth a wait. */
  private tryTake(p: number): boolean {
    if (!this.fetcher) return true;
    return this.fetcher.tryTake(p);
  }

  /** The hart touched page p (`byHart`; else host code): install it now (the hart waits). */
  demand(p: number, byHart = true): void {
    if (this.failure) throw this.failure;
    if (this.isRestored(p)) return;
    const t = performance.now();
    const before = this.resident;
    try {
      if (!this.take(p)) {
        this.activate(p); // the fetcher thread brought it in meanwhile
        this.prefetched--;
      } else {
        const e = this.snap.entry(p);
        if (e.kind === PageKind.Stored && e.ref === 0) this.readAround(p, e);
        else {
          this.source.install(p);
          this.installed(p, true);
        }
      }
    } catch (e) {
      this.fail(e as Error, p);
    }
    this.demandFaults++;
    this.faultTimes.push(t - this.t0);
    const end = performance.now();
    this.stallMs += end - t;
    this.intervals.push({ start: t - this.t0, end: end - this.t0 });
    this.timeline.fault(p, t, end, this.resident - before, byHart ? "hart" : "host");
  }

  private faultBuf = Buffer.allocUnsafe(0);

  /**
   * A demand fault on a stored page reads a cluster of the file around it in one read (the
   * pages saved next to it were, mostly, used together: the working set, or neighbours in page
   * order) and installs those still missing.
   */
  private readAround(p: number, e: PageEntry): void {
    const offset = e.value;
    const { dataOffset } = this.snap.header;
    // The neighbours are known once the fetcher has mapped the file's slots (the working set's
    // as soon as it has read the set's index, all once it has planned).
    const slotOf = (off: number) => (off - dataOffset) / PAGE_SIZE;
    const known = this.opts.readAhead > 1 && this.fetcher ? this.fetcher.slotsKnown : 0;
    const slots = slotOf(offset) < known ? this.fetcher!.slotPage : undefined;
    const cluster = slots ? this.opts.readAhead : 1;
    const wanted = (off: number) => {
      const q = slots![slotOf(off)];
      return q >= 0 && !this.isRestored(q) && Atomics.load(this.fetcher!.claims, q) === CLAIM.free;
    };
    let first = offset, end = offset + PAGE_SIZE;
    if (slots) {
      first = Math.max(dataOffset, offset - Math.floor(cluster / 4) * PAGE_SIZE);
      end = Math.min(dataOffset + known * PAGE_SIZE, first + cluster * PAGE_SIZE);
      // Read only the span of the cluster that still has missing pages (p itself is missing).
      while (first < offset && !wanted(first)) first += PAGE_SIZE;
      while (end - PAGE_SIZE > offset && !wanted(end - PAGE_SIZE)) end -= PAGE_SIZE;
    }
    // One buffer for every fault's read (a new one each time was an allocation, and often memory
    // the host had to commit, per fault).
    if (this.faultBuf.length < end - first) this.faultBuf = Buffer.allocUnsafe(end - first);
    const buf = this.faultBuf.subarray(0, end - first);
    this.source.readStored(0, first, buf);
    const core = this.machine.core;
    for (let k = 0; k * PAGE_SIZE < buf.length; k++) {
      const off = first + k * PAGE_SIZE;
      const q = off === offset ? p : slots![slotOf(off)];
      if (q < 0 || this.isRestored(q) || (q !== p && !this.tryTake(q))) continue;
      copyIntoRam(buf, core.ram, q * PAGE_SIZE, k * PAGE_SIZE, (k + 1) * PAGE_SIZE);
      if (q === p) {
        this.source.verify(q, e);
      } else {
        // A neighbour that fails its check stays missing: it fails when it is needed.
        try {
          this.source.verify(q);
        } catch {
          this.fetcher?.release(q);
          continue;
        }
        this.prefetched++;
      }
      this.installed(q, q === p, true); // (p and its neighbours in the file are stored pages)
    }
  }

  private fail(e: Error, page?: number): never {
    if (this.failure) throw this.failure;
    // Name the page when the cause does not (a truncated file, an unreadable disk).
    if (page !== undefined && e instanceof RvmError && !/\bpage \d+/.test(e.message)) {
      e = new RvmError(`${e.message}, restoring page ${page} (guest-physical 0x${GuestMemory.pageAddress(page).toString(16)})`);
    }
    // Nothing writes guest RAM behind this thread from here on (the fetcher lets go of it).
    this.fetcher?.stop();
    // The disks go back to where they were before the restore began (the guest's writes since
    // included): a failed restore loses nothing.
    let undone = "the disks are as they were before the restore";
    try {
      this.revert?.undo();
    } catch (u) {
      undone = `the disks could not be brought back (${(u as Error).message})`;
    }
    this.failure = e instanceof RvmError ? new RestoreFailedError(new RvmError(`${e.message}; ${undone}`)) : e;
    // The restore stays the machine's page source, and its background turn throws: the run loop
    // calls it after every slice, so the VM stops there even when the failure was met where it
    // cannot propagate (virtio-blk turns a throw during its DMA into an I/O error for the
    // guest); and the slice ends at once.
    this.machine.core.exports.requestStop();
    throw this.failure;
  }

  /** A guest write to a disk block a not-yet-restored page still mirrors: that page first. */
  beforeDiskWrite(disk: number, offset: number, length: number): void {
    if (this.failure) throw this.failure; // the disk was brought back: the failed VM writes nothing more
    if (this.finishedAt !== undefined || length <= 0) return;
    if (!this.diskPages) {
      try {
        this.diskPages = this.diskBackedPages();
      } catch (e) {
        this.fail(e as Error);
      }
    }
    const first = Math.floor(offset / PAGE_SIZE), last = Math.floor((offset + length - 1) / PAGE_SIZE);
    for (let b = first; b <= last; b++) {
      for (const p of this.diskPages.get(GuestMemory.blockKey(disk, b)) ?? []) this.demandNow(p);
    }
  }

  /** Block key -> the pages of the snapshot that are disk-backed by that block. */
  private diskBackedPages(): Map<number, number[]> {
    const pages = new Map<number, number[]>();
    const add = (p: number, value: number) => {
      const list = pages.get(value);
      if (list) list.push(p);
      else pages.set(value, [p]);
    };
    // The fetcher lists them as it plans; without it, a walk of the map.
    const listed = this.fetcher?.diskPages(true);
    if (listed) {
      for (const p of listed) add(p, this.snap.entry(p).value);
    } else {
      const t = this.snap.table();
      for (let p = 0; p < this.total; p++) if (t.kind(p) === PageKind.Disk) add(p, t.value(p));
    }
    return pages;
  }


  /** Guest progress over time (ms since the start, instructions retired since the start). */
  private readonly samples: number[] = [];
  private instret0 = 0n;
  /** The hart waited in WFI at some point: the guest did not compute throughout (no workload view). */
  private idled = false;
  /** The guest's rate with every page resident has been sampled (the workload view is ready). */
  private rateSampled = false;

  private sample(): void {
    if (this.machine.idleNow) this.idled = true;
    this.samples.push(performance.now() - this.t0, Number(this.machine.core.instret - this.instret0));
  }

  /**
   * The background fetcher's turn on the hart's thread, between slices: pages the fetcher thread
   * made ready become resident (a bit each), and disk-backed pages are installed from the disks
   * (their journals live on this thread) — while the hart idles, or briefly every 10 ms.
   */
  private fetch(): void {
    if (this.failure) throw this.failure;
    const t = performance.now();
    this.sample();
    const f = this.fetcher;
    if (!f) return;
    const idle = this.machine.idleNow;
    // Without a thread of its own, the fetcher's turn is now (five times as long while the hart idles).
    if (!f.threaded) f.turn(t + (idle ? this.opts.budgetMs * 5 : this.opts.budgetMs));
    const failed = f.failed;
    if (failed) {
      // The page the fetcher could not bring in: this thread tries it, and reports why; either
      // way the restore fails (the disks are brought back, the VM stops).
      const p = failed.page;
      if (p !== undefined && !this.isRestored(p)) this.demandNow(p);
      this.fail(new RvmError(failed.message), p);
    }
    // The thread, if not started yet: once the guest has run a while and now idles.
    if (f.threadPending && idle && this.ttfi !== undefined && t - this.t0 - this.ttfi >= Math.min(FETCHER_IDLE_START_MS, this.opts.fetcherDelayMs)) f.startThread();
    f.drain((p) => this.activate(p));
    f.hartIdle = idle;
    if (!this.diskQueue) this.diskQueue = f.diskPages();
    const q = this.diskQueue;
    if (q && this.diskCursor < q.length && (idle || t - this.lastDiskTurn >= 10)) {
      this.lastDiskTurn = t;
      // Short turns also while the hart idles: input that arrives meanwhile waits for the turn.
      const deadline = t + this.opts.budgetMs;
      while (this.diskCursor < q.length && performance.now() < deadline) {
        const p = q[this.diskCursor++];
        if (this.isRestored(p) || !f.take(p)) continue;
        try {
          this.source.install(p);
        } catch (e) {
          this.fail(e as Error, p);
        }
        this.prefetched++;
        this.installed(p);
      }
    }
    // While the hart idles, this thread need wake only for work that is its own: the fetch
    // itself without a thread, disk-backed pages; pages the thread made ready can wait (a touch
    // of one finds it ready at once). Waking every ms cost a loaded 2-core host CPU time.
    this.machine.backgroundPollMs = !f.threaded ? 1 : q === undefined || this.diskCursor < q.length ? 5 : 20;
    const end = performance.now();
    this.fetchMs += end - t;
    // Time taken from a runnable hart counts against utilization; idle time does not.
    if (!idle && end - t > 0.05) this.intervals.push({ start: t - this.t0, end: end - this.t0 });
  }

  private finish(): void {
    this.finishedAt = performance.now() - this.t0;
    this.timeline.mark("every page resident");
    this.revert?.commit(); // every page is in and verified: the restore can no longer fail
    this.workerStats = this.fetcher?.stats();
    this.fetcher?.finished();
    const m = this.machine;
    active.delete(m);
    m.backgroundPollMs = 1;
    // Stays the machine's page source for a second of sampling (background()).
    this.source.close();
    this.snap.close();
    m.core.exports.pagesChanged();
    // The revert's undo marks were let go. A journal mostly dead (a snapshot restored again and
    // again) is compacted when the VM ends; here, with the guest running, only one that has
    // grown past TIDY_RUNNING_MIN_DEAD of dead bytes (a VM that never ends: a browser tab): the
    // guest pauses for a compaction (keeping 3.3 MB: ~70 ms of CPU and 180-285 ms of fsyncs).
    try {
      this.store.tidyJournals(TIDY_RUNNING_MIN_DEAD);
    } catch {
      // the journal stays as it was: valid, only larger
    }
    this.resolveDone();
  }

  /**
   * The workload-based view (DESIGN.md section 5): instructions retired in [t, t + w] over w
   * times the rate once every page was resident. Meaningful only for a guest that computes
   * throughout the restore: null when the hart idled (WFI) or did not run long enough after it.
   */
  private workload(end: number): RestoreStats["workload"] {
    if (this.idled) return null;
    const pts: { t: number; n: number }[] = [];
    for (let i = 0; i < this.samples.length; i += 2) pts.push({ t: this.samples[i], n: this.samples[i + 1] });
    const after = pts.filter((p) => p.t >= end);
    if (after.length < 2 || after[after.length - 1].t - after[0].t < FULL_RATE_MS / 2) return null;
    const rate = (after[after.length - 1].n - after[0].n) / (after[after.length - 1].t - after[0].t); // per ms
    if (rate <= 0) return null;
    // Instructions retired by time t, interpolated between samples; `t` only grows within one
    // sweep, so each sweep walks the samples once.
    const cursor = (): ((t: number) => number) => {
      let k = 0;
      return (t: number): number => {
        if (t <= 0 || pts.length === 0) return 0;
        while (k < pts.length && pts[k].t < t) k++;
        if (k >= pts.length) return pts[pts.length - 1].n;
        if (k === 0) return pts[0].n * (t / Math.max(pts[0].t, 1e-9));
        const a = pts[k - 1], b = pts[k];
        return a.n + ((b.n - a.n) * (t - a.t)) / Math.max(b.t - a.t, 1e-9);
      };
    };
    const ttrOf = (w: number, u: number): number => {
      const lo = cursor(), hi = cursor();
      let answer = 0;
      for (let t = 0; t <= end; t += 5) if ((hi(t + w) - lo(t)) / (w * rate) < u) answer = t + 5;
      return Math.min(answer, end);
    };
    const out: Record<string, number> = {};
    for (const w of [100, 1000]) for (const u of [0.5, 0.8, 0.9]) out[`w=${w}ms u=${u}`] = ttrOf(w, u);
    return { fullRateMips: rate / 1000, ttr: out };
  }

  /** Abandons this restore (a newer one replaces the machine's memory). */
  cancel(): void {
    this.machine.detachSource(this);
    if (this.finishedAt !== undefined) return;
    this.revert?.commit(); // the VM went on from this restore (reset, or another loadvm)
    this.fetcher?.stop();
    active.delete(this.machine);
    this.finishedAt = performance.now() - this.t0;
    this.source.close();
    this.snap.close();
    this.resolveDone();
  }

  /** Resolves when every page is resident. */
  whenComplete(): Promise<void> {
    return this.done;
  }

  get complete(): boolean {
    return this.finishedAt !== undefined;
  }

  /** `info restore`: a progress bar, pages resident, the demand-fault rate (the last second and overall). */
  progress(): string {
    const pct = ((100 * this.resident) / this.total).toFixed(1);
    const now = this.finishedAt ?? performance.now() - this.t0;
    const secs = now / 1000;
    const bytes = this.source.bytesRead + ((this.workerStats ?? this.fetcher?.stats())?.bytesRead ?? 0);
    const rate = (bytes / (1 << 20)) / Math.max(secs, 1e-3);
    let recent = 0;
    for (let i = this.faultTimes.length - 1; i >= 0 && this.faultTimes[i] > now - 1000; i--) recent++;
    const bar = "#".repeat(Math.floor((40 * this.resident) / this.total)).padEnd(40, ".");
    return `restore: lazy (${this.order}), ${this.resident}/${this.total} pages resident (${pct}%)` +
      `${this.complete ? ", complete" : ""}, ${this.demandFaults} demand faults, ${this.prefetched} prefetched, ` +
      `${rate.toFixed(1)} MiB/s read, ${secs.toFixed(2)} s` +
      `${this.rateSampled ? (this.idled ? ", guest idled (no workload view)" : ", workload measured") : ""}
` +
      `  [${bar}] ${pct.padStart(5)}% resident   faults ${recent}/s now, ${(this.demandFaults / Math.max(secs, 1e-3)).toFixed(1)}/s overall
`;
  }

  /** Each page's class for the pictures: how it came back, or not yet restored. */
  classes(): Uint8Array {
    const out = new Uint8Array(this.total);
    const fetched = this.fetcher?.origin;
    for (let p = 0; p < this.total; p++) out[p] = this.origin[p] || (fetched?.[p] ?? 0) || PageClass.NotRestored;
    return out;
  }

  /** `interim` (while it runs, --stats-json): without TTR and the workload view (computed at the end). */
  stats(withCurve = false, interim = false): RestoreStats {
    const end = this.finishedAt ?? performance.now() - this.t0;
    const w = this.workerStats ?? this.fetcher?.stats();
    const bytesRead = this.source.bytesRead + (w?.bytesRead ?? 0);
    const reads = this.source.reads + (w?.reads ?? 0);
    const s: RestoreStats = {
      mode: "lazy",
      order: this.order,
      snapshot: this.snap.meta.name,
      pages: this.total,
      ttfiMs: this.ttfi ?? NaN,
      totalMs: end,
      demandFaults: this.demandFaults,
      prefetched: this.prefetched,
      stallMs: this.stallMs,
      fetchMs: this.fetchMs,
      bytesRead,
      reads,
      meanReadBytes: reads ? bytesRead / reads : 0,
      ttr: interim ? {} : ttrTable(this.intervals, end),
      workload: interim ? undefined : this.workload(end),
      worker: w,
      timeline: this.timeline.json(),
    };
    if (withCurve) {
      s.utilization = { w100: utilizationCurve(this.intervals, end, 100, 10), w1000: utilizationCurve(this.intervals, end, 1000, 50) };
      s.faultsOverTime = faultHistogram(this.faultTimes, end);
    }
    return s;
  }
}
