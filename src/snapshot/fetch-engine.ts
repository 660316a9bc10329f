// The lazy restore's background fetch itself (issue 15): read the snapshot's pages in large
// sequential reads, write them into guest RAM, check each against its hash, and hand it to the
// hart's thread, which then only has to mark it resident. It never writes a page the hart's
// thread has taken: every page is claimed first (see fetcher.ts for the protocol).
//
// It runs on a thread of its own where guest RAM is shared memory (fetch-worker.ts: Node), or
// in short turns on the hart's thread between slices where it is not (a browser page that is
// not cross-origin isolated): `run()` is a generator that yields between reads, so either
// driver decides how long it runs. Both go through the same claims and ready log.
//
// It does the pages whose bytes come from snapshot files (stored, same-as, in this file or the
// ones it refers to) and zero pages. Disk-backed pages need the disk journals, which live on the
// hart's thread: their list goes back there.

import { PAGE_SIZE } from "../core.js";
import { copyIntoRam, fs, openDirect } from "../platform.js";
import { MAP_CHUNK_PAGES, PageKind, PageTable, SnapshotError, SnapshotFile } from "./format.js";
import { PageClass, restoredClass } from "./pictures.js";
import type { ReadQueue } from "./read-queue.js";
import { RAM_CHECK_PAGES, type RamCheck } from "./ram-check.js";

export const CLAIM = { free: 0, busy: 1, ready: 2, taken: 3 } as const;
export const STATE = { running: 0, done: 1, stopped: 2, failed: 3 } as const;
/** Int32 slots of the control block. */
export const CTL = {
  /** Set by the hart's thread: stop as soon as possible (the worker also sleeps on it). */
  stop: 0,
  state: 1,
  /** Entries in the ready log. */
  readyCount: 2,
  kibRead: 3,
  reads: 4,
  busyMs: 5,
  /** The slot -> page map of this file is filled in (demand faults may read ahead). */
  slotsReady: 6,
  planMs: 7,
  /** Entries in the disk-page list (valid once `slotsReady`). */
  diskCount: 8,
  /** When the fetcher's code started running, and when its first page was ready (ms after its creation). */
  startedMs: 9,
  firstReadyMs: 10,
  /** 1 while the hart idles in WFI (the worker may take all it can), 0 while it is runnable. */
  hartIdle: 11,
  /** The page that failed its check, plus one (0: none). */
  failedPage: 12,
  /** Bytes of the failure's message (UTF-8, in `FetchShared.message`). */
  messageLength: 13,
  /**
   * Slots (from the first) whose page is known from the working-set index, before the page map
   * is decoded: demand faults there may read ahead at once.
   */
  wsSlots: 14,
  size: 15,
} as const;

/** What the fetch needs to know (a worker gets it as workerData, with the memory and the module). */
export interface FetchPlanSetup {
  /** When the fetcher was created: ms since the epoch, with fractions (both threads' clock). */
  createdAt: number;
  pages: number;
  /** The snapshot file, then the files it refers to (ref 1, 2, ...). */
  files: string[];
  dataOffset: number;
  /**
   * workingset: the working set from its own index first, then the rest in file order; page:
   * page order; file: the data area in file order, no working-set phase (the eager restore).
   */
  order: "workingset" | "page" | "file";
  runPages: number;
  /**
   * Nothing but the fetch writes guest RAM (the eager restore, before the first instruction): a
   * run of slots holding consecutive pages is claimed and copied into RAM as a whole.
   */
  wholeRuns?: boolean;
  /**
   * The data area read past the page cache (O_DIRECT, where the file system takes it) into a
   * page-aligned buffer: the eager restore reads each page once, and right after an O_DIRECT
   * savevm none of them is cached.
   */
  directReads?: boolean;
  /**
   * The eager restore split over two threads (both with wholeRuns, both claiming pages): "front"
   * (the hart's thread) takes the runs from the first on, "back" (a helper thread) from the last
   * one down; each stops at the first run whose first page the other has claimed. "back" leaves
   * the zero pages to "front".
   */
  half?: "front" | "back";
  /** Read-rate limit (0: none). */
  bytesPerSecond: number;
  /** Guest RAM is all zero (untouched): zero pages need no writing. */
  ramZero: boolean;
  /**
   * While the hart is runnable, a fetcher thread keeps to this share of one core (1: no limit):
   * on a host with few cores a worker at full speed takes CPU time from the guest.
   */
  runnableShare: number;
}

/** The arrays both sides share (SharedArrayBuffers for a thread; plain ones on the hart's thread). */
export interface FetchShared {
  claims: ArrayBufferLike;
  log: ArrayBufferLike;
  ctl: ArrayBufferLike;
  slots: ArrayBufferLike;
  /** The disk-backed pages, which the hart's thread installs (the journals live there). */
  disk: ArrayBufferLike;
  /** How each page came back (a PageClass), written by whoever installs it (pictures). */
  origin: ArrayBufferLike;
  /** Why the fetch failed (UTF-8), when it did. */
  message: ArrayBufferLike;
}

export function newFetchShared(pages: number, dataSlots: number, shared: boolean): FetchShared {
  const buf = (bytes: number) => (shared ? new SharedArrayBuffer(bytes) : new ArrayBuffer(bytes));
  const s: FetchShared = {
    claims: buf(pages * 4), log: buf(pages * 4), ctl: buf(CTL.size * 4), slots: buf(Math.max(1, dataSlots) * 4), disk: buf(pages * 4), origin: buf(pages), message: buf(MESSAGE_BYTES),
  };
  return s; // (the slots are set to -1, "no page", by the engine: FetchEngine's constructor)
}

const MESSAGE_BYTES = 1024;

/**
 * Ends the fetch in the control block: done, stopped, or failed with its message and page, which
 * the hart's thread reads at once (a thread's messages would wait for the event loop).
 */
export function settle(shared: FetchShared, e: unknown): void {
  const ctl = new Int32Array(shared.ctl);
  if (e === undefined) {
    Atomics.store(ctl, CTL.state, STATE.done);
  } else if (e instanceof Stopped) {
    Atomics.store(ctl, CTL.state, STATE.stopped);
  } else {
    const bytes = new TextEncoder().encode((e as Error).message ?? String(e)).subarray(0, MESSAGE_BYTES);
    new Uint8Array(shared.message).set(bytes);
    Atomics.store(ctl, CTL.messageLength, bytes.length);
    if (e instanceof PageError) Atomics.store(ctl, CTL.failedPage, e.page + 1);
    Atomics.store(ctl, CTL.state, STATE.failed);
  }
  Atomics.notify(ctl, CTL.state);
  Atomics.notify(ctl, CTL.slotsReady); // a hart waiting for the plan learns it ended
}

/** Why the fetch failed (settle's message and page), if it did. */
export function failureOf(shared: FetchShared): { message: string; page?: number } | undefined {
  const ctl = new Int32Array(shared.ctl);
  if (Atomics.load(ctl, CTL.state) !== STATE.failed) return undefined;
  const page = Atomics.load(ctl, CTL.failedPage) - 1;
  // A copy: TextDecoder does not read shared memory.
  const message = new TextDecoder().decode(new Uint8Array(shared.message).slice(0, Atomics.load(ctl, CTL.messageLength)));
  return { message, page: page >= 0 ? page : undefined };
}

/** The fetch was stopped by the hart's thread. */
export class Stopped extends Error {}

/** A page whose bytes did not match its hash (the hart's thread tries it itself and reports it). */
export class PageError extends Error {
  constructor(readonly page: number, message: string) {
    super(message);
  }
}

/**
 * Runs posted to the reader thread ahead of the one being checked (1 MiB each): enough to keep
 * its reads in flight while this thread checks (READ_IN_FLIGHT in restore.ts).
 */
const READ_AHEAD = 8;

/** The run's first page when its slots hold consecutive pages (p0, p0 + 1, ...), else -1. */
function consecutiveStart(run: Run, order: Int32Array): number {
  const p0 = order[run.first];
  for (let i = 1; i < run.count; i++) if (order[run.first + i] !== p0 + i) return -1;
  return p0;
}

/** A read of `count` consecutive 4 KiB slots of file `file` from `offset`; slot k goes to the pages of order[first + k]. */
interface Run {
  file: number;
  offset: number;
  count: number;
  first: number;
}

/** What the walk of the map chunks gathers besides the slots and the disk-backed pages. */
interface PlanAcc {
  zeros: Int32Array;
  zeroCount: number;
  /** Entries in the disk-page list. */
  disk: number;
  /** Stored pages of referenced files (incremental snapshots). */
  other: number[];
  /** key file·2^44 + offset -> same-as pages. */
  twins: Map<number, number[]>;
}

/** The walk of one map chunk (pages p0 .. p0 + count - 1, six words each). */
function planChunk(w: Uint32Array, p0: number, count: number, dataOffset: number, slotPage: Int32Array, diskList: Int32Array, acc: PlanAcc): void {
  const zeros = acc.zeros;
  let z = acc.zeroCount, disk = acc.disk;
  for (let i = 0, o = 0; i < count; i++, o += 6) {
    const w0 = w[o], k = w0 & 0xff, ref = (w0 >>> 8) & 0xff, p = p0 + i;
    if (k === PageKind.Zero) zeros[z++] = p;
    else if (k === PageKind.Disk) diskList[disk++] = p;
    else if (k === PageKind.Stored && ref === 0) {
      // (Only a whole slot inside the data area; the index made an int32 first: a key that is a
      // double would take the typed array's slow store path.)
      const slot = (w[o + 2] + w[o + 3] * 2 ** 32 - dataOffset) / PAGE_SIZE;
      if (slot >= 0 && slot < slotPage.length && slot === Math.floor(slot)) slotPage[slot | 0] = p;
    }
    else if (k === PageKind.Stored) acc.other.push(p);
    else {
      const key = ref * 2 ** 44 + w[o + 2] + w[o + 3] * 2 ** 32;
      const list = acc.twins.get(key);
      if (list) list.push(p);
      else acc.twins.set(key, [p]);
    }
  }
  acc.zeroCount = z;
  acc.disk = disk;
}

/**
 * The fetch order and its runs: this file's slots in file order (working set first), or its
 * pages in page order; then the referenced files' pages by file and offset; then the same-as
 * pages whose twin is not a stored page of the plan (it is inherited), each read on its own.
 */
function planOrder(t: PageTable, setup: FetchPlanSetup, slotPage: Int32Array, acc: PlanAcc): { order: Int32Array; runs: Run[] } {
  const { other, twins } = acc;
  const { dataOffset, runPages } = setup;
  const order = new Int32Array(slotPage.length + other.length + twins.size);
  const runs: Run[] = [];
  let n = 0;
  if (setup.order !== "page") {
    // In file order a slot's offset is its own: runs from the slots, no look-up per page.
    let last: Run | undefined, lastSlot = -2;
    for (let i = 0; i < slotPage.length; i++) {
      const p = slotPage[i];
      if (p < 0) continue;
      if (last && i === lastSlot + 1 && last.count < runPages) last.count++;
      else runs.push((last = { file: 0, offset: dataOffset + i * PAGE_SIZE, count: 1, first: n }));
      lastSlot = i;
      order[n++] = p;
    }
  } else {
    for (let p = 0; p < setup.pages; p++) if (t.kind(p) === PageKind.Stored && t.ref(p) === 0) order[n++] = p;
  }
  const rest = n;
  other.sort((a, b) => t.ref(a) - t.ref(b) || t.value(a) - t.value(b));
  for (const p of other) order[n++] = p;
  // (A twin in this file is planned when its slot holds a stored page: no set of all the keys.)
  if (twins.size > 0) {
    const planned = new Set<number>();
    for (const p of other) planned.add(t.ref(p) * 2 ** 44 + t.value(p));
    for (const [key, list] of twins) {
      const slot = (key - dataOffset) / PAGE_SIZE; // (key < 2^44: file 0, the offset itself)
      const inPlan = key < 2 ** 44 ? Number.isInteger(slot) && slot >= 0 && slot < slotPage.length && slotPage[slot] >= 0 : planned.has(key);
      if (!inPlan) order[n++] = list[0];
    }
  }
  for (let i = setup.order !== "page" ? rest : 0; i < n; i++) {
    const p = order[i], file = t.ref(p), offset = t.value(p);
    const last = runs[runs.length - 1];
    if (last && last.file === file && last.offset + last.count * PAGE_SIZE === offset && last.count < runPages) last.count++;
    else runs.push({ file, offset, count: 1, first: i });
  }
  return { order: order.subarray(0, n), runs };
}

export class FetchEngine {
  private readonly claims: Int32Array;
  private readonly log: Int32Array;
  private readonly ctl: Int32Array;
  private readonly slotPage: Int32Array;
  private readonly diskList: Int32Array;
  private readonly origin: Uint8Array;
  private readonly t0 = performance.now();
  private busy = 0;
  /**
   * Per file, by its index in setup.files (a run's `file`, the reader thread's file number): its
   * O_DIRECT descriptor (setup.directReads), if it has one.
   */
  private readonly direct: (number | undefined)[] = [];
  /** Bytes read so far. */
  bytes = 0;
  /** Time spent working since the driver last paused it (for the share it may take). */
  workedSinceSleep = 0;
  /** Called before each read: a thread keeps to its rate and its share there. */
  pace: () => void = () => undefined;
  /**
   * The eager restore's reader thread (read-worker.ts), where there is one: whole runs read with
   * O_DIRECT are posted to it, up to READ_AHEAD ahead, and their pages checked as they come in.
   */
  reader?: ReadQueue;
  /** Runs the reader thread read (the rest of the posted ones this thread read itself). */
  readerRuns = 0;
  /**
   * The eager restore's check of whole runs through the kernel's copy (ram-check.ts), where the
   * data area is read with O_DIRECT straight into RAM: no user-space first touch of each page.
   */
  ramCheck?: RamCheck;
  /** Runs posted to the reader and not yet checked, oldest first. */
  private readonly queued: { run: Run; p0: number }[] = [];

  constructor(
    readonly setup: FetchPlanSetup,
    shared: FetchShared,
    private readonly ram: Uint8Array,
    private readonly pageHashIs: (page: number, lo: number, hi: number) => boolean,
  ) {
    this.claims = new Int32Array(shared.claims);
    this.log = new Int32Array(shared.log);
    this.ctl = new Int32Array(shared.ctl);
    this.slotPage = new Int32Array(shared.slots);
    this.diskList = new Int32Array(shared.disk);
    this.origin = new Uint8Array(shared.origin);
    // Every slot "no page" until the plan says (before anything is published: nobody reads a
    // slot before the working set's or the whole map's slots are announced in the control
    // block). Here rather than where the buffers are made: a lazy restore's engine runs on the
    // fetcher thread, and filling 4 bytes per stored page (0.8 MB for the 1 GiB memfill guest)
    // made the host commit that memory on the hart's thread before the first instruction.
    this.slotPage.fill(-1);
  }

  /** ms since the fetcher was created (at least 1: 0 means "not yet" in the control block). */
  sinceCreated(): number {
    return Math.max(1, Math.round(performance.timeOrigin + performance.now() - this.setup.createdAt));
  }

  stopRequested(): boolean {
    return Atomics.load(this.ctl, CTL.stop) !== 0;
  }

  /**
   * The whole fetch, yielding between reads (and every few thousand pages of the plan): the
   * working set from its own index, then the page map decoded and planned, then the rest, then
   * zero pages. Throws Stopped when asked to stop, PageError for a page that fails its check.
   */
  *run(): Generator<void, void, void> {
    const files: SnapshotFile[] = [];
    try {
      for (const f of this.setup.files) files.push(SnapshotFile.open(f));
      const bytes = this.setup.runPages * PAGE_SIZE;
      if (this.setup.directReads) for (const f of this.setup.files) this.direct.push(openDirect(f, "r"));
      // A buffer for O_DIRECT must be aligned: a WebAssembly memory's is (page-aligned mapping).
      const buf = this.direct.some((fd) => fd !== undefined)
        ? Buffer.from(new WebAssembly.Memory({ initial: Math.ceil(bytes / 65536) }).buffer, 0, bytes)
        : Buffer.allocUnsafe(bytes);
      if (this.setup.order === "workingset") yield* this.workingSet(files, buf);
      if (this.stopRequested()) throw new Stopped();
      yield;
      const plan = yield* this.plan(files[0]);
      const table = plan.table;
      Atomics.store(this.ctl, CTL.planMs, this.sinceCreated());
      const { half } = this.setup, runs = plan.runs;
      for (let k = 0; k < runs.length; k++) {
        const run = runs[half === "back" ? runs.length - 1 - k : k];
        if (this.stopRequested()) throw new Stopped();
        // Split with another thread: it has this run and the rest, from here on.
        if (half && Atomics.load(this.claims, plan.order[run.first]) !== CLAIM.free) break;
        if (this.reader && this.postWholeRun(run, plan.order)) {
          // Checked while the reader reads the next ones (the device's time off the wall).
          while (this.queued.length >= READ_AHEAD) {
            this.checkQueued(files, table, plan.twins);
            yield;
          }
          continue;
        }
        while (this.queued.length) this.checkQueued(files, table, plan.twins);
        this.fetchRun(files, table, run, plan.order, plan.twins, buf);
        yield;
      }
      while (this.queued.length) {
        this.checkQueued(files, table, plan.twins);
        yield;
      }
      if (half !== "back") yield* this.fetchZeros(plan.zeros);
    } finally {
      Atomics.store(this.ctl, CTL.busyMs, Math.round(this.busy));
      for (const f of files) f.close();
      for (const fd of this.direct) if (fd !== undefined) fs.closeSync(fd);
      this.direct.length = 0;
    }
  }

  /** Marks page p ready (its bytes are in RAM and checked) and tells the hart's thread. */
  private ready(p: number, cls: PageClass): void {
    if (Atomics.load(this.ctl, CTL.firstReadyMs) === 0) Atomics.store(this.ctl, CTL.firstReadyMs, this.sinceCreated());
    this.origin[p] = cls;
    Atomics.store(this.claims, p, CLAIM.ready);
    Atomics.notify(this.claims, p);
    const n = Atomics.load(this.ctl, CTL.readyCount);
    this.log[n] = p;
    Atomics.store(this.ctl, CTL.readyCount, n + 1);
  }

  private verifyFailed(p: number): never {
    Atomics.store(this.claims, p, CLAIM.free); // the hart's thread meets it again and reports it
    Atomics.notify(this.claims, p);
    throw new PageError(p, `page ${p}: checksum mismatch in the snapshot data`);
  }

  /** Reads `view.length` bytes of file `k` (of `files`, setup.files opened) at `offset`, paced, counted. */
  private read(files: SnapshotFile[], k: number, offset: number, view: Uint8Array): number {
    this.pace();
    if (this.stopRequested()) throw new Stopped();
    const t = performance.now();
    const file = files[k];
    if (this.direct[k] === undefined || !this.readDirect(k, file, offset, view)) file.read(offset, view);
    this.bytes += view.length;
    Atomics.add(this.ctl, CTL.reads, 1);
    Atomics.store(this.ctl, CTL.kibRead, Math.round(this.bytes / 1024));
    return t;
  }

  /**
   * An O_DIRECT read of whole pages into the aligned buffer; false where the file system refuses
   * it after all (EINVAL: its descriptor is dropped, and the caller reads the normal way).
   */
  private readDirect(k: number, file: SnapshotFile, offset: number, view: Uint8Array): boolean {
    const fd = this.direct[k]!;
    let done = 0;
    while (done < view.length) {
      let n: number;
      try {
        n = fs.readSync(fd, view, done, view.length - done, offset + done);
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code === "EINVAL" && done === 0) {
          fs.closeSync(fd);
          this.direct[k] = undefined;
          return false;
        }
        throw new SnapshotError(file.file, `read error (${code ?? e})`);
      }
      if (n === 0) throw new SnapshotError(file.file, `truncated file (page data at ${offset} missing)`);
      done += n;
    }
    return true;
  }

  private worked(since: number): void {
    const d = performance.now() - since;
    this.busy += d;
    this.workedSinceSleep += d;
    Atomics.store(this.ctl, CTL.busyMs, Math.round(this.busy));
  }

  /**
   * The plan, from the page map: `order` lists the pages to read in fetch order (one per slot;
   * same-as pages follow their stored twin through `twins`), `runs` cuts it into reads; `zeros`
   * are the zero pages; the disk-backed pages are handed to the hart's thread. Each map chunk is
   * walked as it is inflated (`planChunk`), on typed arrays; the walks are plain functions, not
   * this generator, which V8 would not optimize while its loop runs (profiled: the plan of the
   * 1 GiB memfill snapshot took 62-175 ms of the hart's thread before the first read).
   */
  private *plan(file: SnapshotFile): Generator<void, { table: PageTable; order: Int32Array; runs: Run[]; zeros: Int32Array; twins: Map<number, number[]> }, void> {
    const n = this.setup.pages;
    const acc: PlanAcc = { zeros: new Int32Array(n), zeroCount: 0, disk: 0, other: [], twins: new Map() };
    const chunks: Uint32Array[] = [];
    file.readWholeMap();
    for (let c = 0; c < file.mapChunks; c++) {
      const words = file.chunkWords(c);
      chunks.push(words);
      planChunk(words, c * MAP_CHUNK_PAGES, Math.min(MAP_CHUNK_PAGES, n - c * MAP_CHUNK_PAGES), this.setup.dataOffset, this.slotPage, this.diskList, acc);
      if ((c & 3) === 3) yield;
    }
    const t = new PageTable(chunks, n);
    Atomics.store(this.ctl, CTL.diskCount, acc.disk);
    Atomics.store(this.ctl, CTL.slotsReady, 1);
    Atomics.notify(this.ctl, CTL.slotsReady);
    const { order, runs } = planOrder(t, this.setup, this.slotPage, acc);
    return { table: t, order, runs, zeros: acc.zeros.subarray(0, acc.zeroCount), twins: acc.twins };
  }

  /** The pages that take the bytes of `p`'s slot: p and the same-as pages pointing there. */
  private pagesOf(t: PageTable, p: number, twins: Map<number, number[]>): number[] {
    const list = twins.get(t.ref(p) * 2 ** 44 + t.value(p));
    return list ? [p, ...list.filter((q) => q !== p)] : [p];
  }

  private fetchRun(files: SnapshotFile[], t: PageTable, run: Run, order: Int32Array, twins: Map<number, number[]>, buf: Buffer): void {
    const claims = this.claims;
    if (this.setup.wholeRuns && this.fetchWholeRun(files, t, run, order, twins, buf)) return;
    if (this.setup.wholeRuns && this.fetchScattered(files, t, run, order, twins)) return;
    const free = (i: number) => this.pagesOf(t, order[run.first + i], twins).some((p) => Atomics.load(claims, p) === CLAIM.free);
    // Read only the span that still has missing pages (demand faults may have taken some).
    let lo = 0, hi = run.count - 1;
    while (lo <= hi && !free(lo)) lo++;
    while (hi >= lo && !free(hi)) hi--;
    if (lo > hi) return;
    const view = buf.subarray(0, (hi - lo + 1) * PAGE_SIZE);
    const t0 = this.read(files, run.file, run.offset + lo * PAGE_SIZE, view);
    for (let i = lo; i <= hi; i++) {
      const src = view.subarray((i - lo) * PAGE_SIZE, (i - lo + 1) * PAGE_SIZE);
      for (const p of this.pagesOf(t, order[run.first + i], twins)) {
        if (Atomics.compareExchange(claims, p, CLAIM.free, CLAIM.busy) !== CLAIM.free) continue;
        copyIntoRam(src, this.ram, p * PAGE_SIZE);
        if (!this.pageHashIs(p, t.hashLo(p), t.hashHi(p))) this.verifyFailed(p);
        this.ready(p, restoredClass(t.kind(p)));
      }
    }
    this.worked(t0);
  }

  /**
   * A run whose slots hold consecutive pages, all still free: one read, one copy into RAM, then
   * each page checked in the core; false (nothing done) for any other run. With an O_DIRECT
   * descriptor the read goes straight into RAM (guest RAM is page-aligned) and nothing is copied:
   * measured on 768 MiB from a cold file, 2.0-2.8 s of CPU against 3.0-4.3 s through the buffer
   * (system time 0.4-0.6 s against 1.3-1.9 s: the device fills the fresh pages). A buffered read
   * straight into RAM is worse than the copy (the kernel's faults on fresh guest memory, then the
   * core's first access costs as much again: 4.5 s against 3.0 s of CPU for 792 MiB), so not that.
   */
  private fetchWholeRun(files: SnapshotFile[], t: PageTable, run: Run, order: Int32Array, twins: Map<number, number[]>, buf: Buffer): boolean {
    const p0 = consecutiveStart(run, order);
    if (p0 < 0) return false;
    if (!this.claimRange(p0, run.count)) return false;
    let t0: number;
    if (this.direct[run.file] !== undefined) {
      // (Should O_DIRECT be refused at this first read after all, read() reads it buffered.)
      t0 = this.read(files, run.file, run.offset, this.ram.subarray(p0 * PAGE_SIZE, (p0 + run.count) * PAGE_SIZE));
    } else {
      const view = buf.subarray(0, run.count * PAGE_SIZE);
      t0 = this.read(files, run.file, run.offset, view);
      copyIntoRam(view, this.ram, p0 * PAGE_SIZE);
    }
    this.checkWhole(t, p0, run.count, twins);
    this.worked(t0);
    return true;
  }

  /**
   * With a reader thread: claims a run of consecutive pages of a file read with O_DIRECT and
   * posts its read straight into RAM; false (nothing done) for any other run.
   */
  private postWholeRun(run: Run, order: Int32Array): boolean {
    const k = run.file;
    if (this.direct[k] === undefined) return false;
    const p0 = consecutiveStart(run, order);
    if (p0 < 0) return false;
    if (!this.claimRange(p0, run.count)) return false;
    this.pace();
    this.reader!.post(k, run.offset, p0 * PAGE_SIZE, run.count * PAGE_SIZE);
    this.queued.push({ run, p0 });
    this.bytes += run.count * PAGE_SIZE;
    Atomics.add(this.ctl, CTL.reads, 1);
    Atomics.store(this.ctl, CTL.kibRead, Math.round(this.bytes / 1024));
    return true;
  }

  /** Claims pages [p0, p0 + count), all free; false (none claimed) if one is not. */
  private claimRange(p0: number, count: number): boolean {
    for (let i = 0; i < count; i++) {
      if (Atomics.compareExchange(this.claims, p0 + i, CLAIM.free, CLAIM.busy) !== CLAIM.free) {
        for (let k = 0; k < i; k++) Atomics.store(this.claims, p0 + k, CLAIM.free);
        return false;
      }
    }
    return true;
  }

  /** The oldest posted run: waits for its read (or reads it here if the reader could not), then checks its pages. */
  private checkQueued(files: SnapshotFile[], t: PageTable, twins: Map<number, number[]>): void {
    const { run, p0 } = this.queued[0];
    const t0 = performance.now();
    const got = this.reader!.take();
    if (got === "stopped") throw new Stopped();
    this.queued.shift();
    if (got === "done") this.readerRuns++;
    if (got === "failed") {
      // The reader's read failed or O_DIRECT was refused: read here, which says why or falls back.
      this.bytes -= run.count * PAGE_SIZE;
      this.read(files, run.file, run.offset, this.ram.subarray(p0 * PAGE_SIZE, (p0 + run.count) * PAGE_SIZE));
    }
    this.checkWhole(t, p0, run.count, twins);
    this.worked(t0);
  }

  /** Checks pages [p0, p0 + count), now in RAM, and makes them ready; copies and checks their same-as twins. */
  private checkWhole(t: PageTable, p0: number, count: number, twins: Map<number, number[]>): void {
    const claims = this.claims, rc = this.ramCheck;
    for (let c0 = p0; c0 < p0 + count; c0 += RAM_CHECK_PAGES) {
      const end = Math.min(p0 + count, c0 + RAM_CHECK_PAGES);
      // The kernel's copy of these pages of RAM, checked in a buffer (ram-check.ts); a page whose
      // copy does not match, or all of them if the kernel would not copy, checked in place.
      const copied = rc !== undefined && rc.load(c0, end - c0);
      for (let p = c0; p < end; p++) {
        const lo = t.hashLo(p), hi = t.hashHi(p);
        if (!(copied && rc.pageIs(p - c0, lo, hi)) && !this.pageHashIs(p, lo, hi)) this.verifyFailed(p);
        this.ready(p, restoredClass(t.kind(p)));
        if (twins.size === 0) continue;
        const list = twins.get(t.ref(p) * 2 ** 44 + t.value(p));
        if (!list) continue;
        for (const q of list) {
          if (q === p || Atomics.compareExchange(claims, q, CLAIM.free, CLAIM.busy) !== CLAIM.free) continue;
          this.ram.copyWithin(q * PAGE_SIZE, p * PAGE_SIZE, (p + 1) * PAGE_SIZE);
          if (!this.pageHashIs(q, t.hashLo(q), t.hashHi(q))) this.verifyFailed(q);
          this.ready(q, restoredClass(t.kind(q)));
        }
      }
    }
  }

  /**
   * A run whose slots hold pages that are not consecutive (the working set's, out of page order),
   * all still free, from a file read with O_DIRECT: one readv straight into RAM, a page per iovec
   * (guest RAM is page-aligned), instead of a read into the buffer and a copy of each page; false
   * (nothing done) where that does not apply or the file system refuses it.
   */
  private fetchScattered(files: SnapshotFile[], t: PageTable, run: Run, order: Int32Array, twins: Map<number, number[]>): boolean {
    const fd = this.direct[run.file];
    if (fd === undefined || !fs.readvSync) return false;
    const claims = this.claims;
    const pages = order.subarray(run.first, run.first + run.count);
    let i = 0;
    for (; i < pages.length; i++) if (Atomics.compareExchange(claims, pages[i], CLAIM.free, CLAIM.busy) !== CLAIM.free) break;
    if (i < pages.length) {
      for (let j = 0; j < i; j++) Atomics.store(claims, pages[j], CLAIM.free);
      return false;
    }
    this.pace();
    const t0 = performance.now();
    const views = Array.from(pages, (p) => this.ram.subarray(p * PAGE_SIZE, (p + 1) * PAGE_SIZE));
    let n = 0;
    try {
      n = fs.readvSync(fd, views, run.offset);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EINVAL") throw new SnapshotError(files[run.file].file, `read error (${(e as NodeJS.ErrnoException).code ?? e})`);
      for (const p of pages) Atomics.store(claims, p, CLAIM.free);
      return false; // (the buffer and its copies, as before)
    }
    // A short read (rare for a file): the rest page by page, which names a truncated file.
    for (let j = Math.floor(n / PAGE_SIZE); j < pages.length; j++) this.read(files, run.file, run.offset + j * PAGE_SIZE, views[j]);
    this.bytes += Math.min(Math.floor(n / PAGE_SIZE), pages.length) * PAGE_SIZE;
    Atomics.add(this.ctl, CTL.reads, 1);
    Atomics.store(this.ctl, CTL.kibRead, Math.round(this.bytes / 1024));
    for (const p of pages) this.checkWhole(t, p, 1, twins);
    this.worked(t0);
    return true;
  }

  private *fetchZeros(zeros: Int32Array): Generator<void, void, void> {
    let t = performance.now();
    for (let i = 0; i < zeros.length; i++) {
      const p = zeros[i];
      if ((i & 1023) === 1023) {
        this.worked(t);
        if (this.stopRequested()) throw new Stopped();
        yield;
        t = performance.now();
      }
      if (Atomics.compareExchange(this.claims, p, CLAIM.free, CLAIM.busy) !== CLAIM.free) continue;
      // Untouched RAM is zero already: writing it would only make the host commit memory.
      if (!this.setup.ramZero) this.ram.fill(0, p * PAGE_SIZE, (p + 1) * PAGE_SIZE);
      this.ready(p, PageClass.Zero);
    }
    this.worked(t);
  }

  /**
   * The working set first, from its own index (pages and hashes in data order): it needs no page
   * map, so it streams while the map is still to be decoded.
   */
  private *workingSet(files: SnapshotFile[], buf: Buffer): Generator<void, void, void> {
    const ix = files[0].workingSetIndex();
    if (!ix) return;
    const { pages, runPages, dataOffset } = this.setup;
    const n = ix.page.length;
    for (let k = 0; k < n; k++) if (ix.page[k] < pages) this.slotPage[k] = ix.page[k];
    Atomics.store(this.ctl, CTL.wsSlots, n);
    const claims = this.claims;
    for (let first = 0; first < n; first += runPages) {
      if (this.stopRequested()) throw new Stopped();
      const count = Math.min(runPages, n - first);
      let lo = first, hi = first + count - 1;
      const free = (k: number) => ix.page[k] < pages && Atomics.load(claims, ix.page[k]) === CLAIM.free;
      while (lo <= hi && !free(lo)) lo++;
      while (hi >= lo && !free(hi)) hi--;
      if (lo > hi) continue;
      const view = buf.subarray(0, (hi - lo + 1) * PAGE_SIZE);
      const t0 = this.read(files, 0, dataOffset + lo * PAGE_SIZE, view);
      for (let k = lo; k <= hi; k++) {
        const p = ix.page[k];
        if (p >= pages || Atomics.compareExchange(claims, p, CLAIM.free, CLAIM.busy) !== CLAIM.free) continue;
        copyIntoRam(view, this.ram, p * PAGE_SIZE, (k - lo) * PAGE_SIZE, (k - lo + 1) * PAGE_SIZE);
        if (!this.pageHashIs(p, ix.hashLo[k], ix.hashHi[k])) this.verifyFailed(p);
        this.ready(p, PageClass.Prefetched);
      }
      this.worked(t0);
      yield;
    }
  }
}
