// The hart's side of the lazy restore's background fetcher (fetch-engine.ts does the fetching).
//
// Where guest RAM is shared memory (Node), the fetch runs on a thread of its own
// (fetch-worker.ts) and writes pages where they belong. Who may write a page is settled per page
// by a claim, an Int32 per page in a SharedArrayBuffer, changed only with compare-and-swap:
//
//   free  --fetcher CAS-->  busy  --bytes in, hash checked-->  ready  --hart's thread-->  resident
//   free  --hart's thread CAS-->  taken  (a demand fault installs it itself)
//
// The fetcher copies a page only while it holds it busy (a few microseconds), and the hart's
// thread writes a page only once it has taken it; a demand fault that finds a page busy waits
// for it to become ready (Atomics.wait), one that finds it ready just marks it resident. Ready
// pages are announced in a log (page numbers, appended by the fetcher, count in the control
// block) that the hart's thread drains between slices: marking a page resident is clearing one
// bit of its page state, so the fetcher costs the hart's thread next to nothing, and the page
// states stay written by one thread only (the "not yet restored" test in the core stays a
// plain load). Happens-before: the fetcher writes RAM, then stores the claim and the log count
// with Atomics; the hart's thread loads them with Atomics before it lets the guest see the page.
//
// Where there is no shared memory (a browser page that is not cross-origin isolated), or when
// asked (LazyOptions.fetcherThread false), the same engine takes turns on the hart's thread
// between slices, over the same claims and log in plain arrays: `turn`.

import { hostCores, startThread, type HostThread } from "../platform.js";
import { CLAIM, CTL, FetchEngine, failureOf, FetchPlanSetup, FetchShared, newFetchShared, settle, STATE } from "./fetch-engine.js";
import type { FetchThreadData } from "./fetch-worker.js";

/** What the fetcher did; times in ms after it was created. */
export interface FetcherStats {
  /** It ran on a thread of its own (else in turns on the hart's thread). */
  thread: boolean;
  pages: number;
  bytesRead: number;
  reads: number;
  /** Time spent reading and installing. */
  busyMs: number;
  /** Its code started (a Node worker boots an isolate and loads its modules first). */
  startedMs: number | null;
  /** It had decoded the page map and planned. */
  plannedMs: number | null;
  /** Its first page was ready. */
  firstReadyMs: number | null;
}

export interface FetcherOptions {
  files: string[];
  dataOffset: number;
  order: "workingset" | "page";
  runPages: number;
  bytesPerSecond?: number;
  ramZero?: boolean;
  /**
   * With a thread: do not start it yet (`startThread` does). Until then the claims work as
   * usual (the hart's thread takes what it installs), and nothing is fetched in the background.
   */
  deferThread?: boolean;
}

/** Where the fetch writes and how it checks: the core's memory, on this thread or shared with another. */
export interface FetcherTarget {
  /** Guest RAM as this thread sees it. */
  ram: Uint8Array;
  pageHashIs(page: number, lo: number, hi: number): boolean;
  /** For a thread: the core module, its shared memory, and where RAM starts in it. */
  thread?: { module: WebAssembly.Module; memory: WebAssembly.Memory; ramAddress: number };
}

export class BackgroundFetcher {
  readonly claims: Int32Array;
  private readonly log: Int32Array;
  private readonly ctl: Int32Array;
  /** slot -> page of the snapshot file's stored pages (valid once `slotsReady`). */
  readonly slotPage: Int32Array;
  /** How each page came back (a PageClass), for the pictures; 0 while missing. */
  readonly origin: Uint8Array;
  private drained = 0;
  private readonly disk: Int32Array;
  /** A failure of the fetcher's thread itself (an uncaught error, not the fetch's). */
  private threadError: string | undefined;
  private readonly shared: FetchShared;
  /** The fetcher's thread, once started. */
  private thread: HostThread | undefined;
  /** What its thread gets, until it is started (deferThread). */
  private threadData: FetchThreadData | undefined;
  private readonly target: FetcherTarget;
  private readonly setup: FetchPlanSetup;
  /** Without a thread: the fetch, run in turns by `turn`. */
  private steps: Generator<void, void, void> | undefined;

  constructor(target: FetcherTarget, pages: number, dataSlots: number, opts: FetcherOptions) {
    const setup: FetchPlanSetup = {
      createdAt: performance.timeOrigin + performance.now(), pages, files: opts.files, dataOffset: opts.dataOffset, order: opts.order, runPages: opts.runPages,
      bytesPerSecond: opts.bytesPerSecond ?? 0, ramZero: opts.ramZero ?? false,
      runnableShare: hostCores >= 4 ? 1 : 0.25,
    };
    const shared: FetchShared = newFetchShared(pages, dataSlots, target.thread !== undefined);
    this.shared = shared;
    this.claims = new Int32Array(shared.claims);
    this.log = new Int32Array(shared.log);
    this.ctl = new Int32Array(shared.ctl);
    this.slotPage = new Int32Array(shared.slots);
    this.disk = new Int32Array(shared.disk);
    this.origin = new Uint8Array(shared.origin);
    this.target = target;
    this.setup = setup;
    if (target.thread) {
      this.threadData = { setup, shared, ...target.thread };
      if (!opts.deferThread) this.startThread();
    } else {
      this.runHere();
    }
  }

  /** The fetch runs in turns on this thread (no thread of its own). */
  private runHere(): void {
    this.threadData = undefined;
    const engine = new FetchEngine(this.setup, this.shared, this.target.ram, (p, lo, hi) => this.target.pageHashIs(p, lo, hi));
    Atomics.store(this.ctl, CTL.startedMs, engine.sinceCreated());
    this.steps = engine.run();
  }

  /**
   * Starts the fetcher's thread, if it has one that is not started yet (deferThread). Its times
   * (startedMs, ...) count from here.
   */
  startThread(): void {
    const data = this.threadData;
    if (!data) return;
    data.setup.createdAt = performance.timeOrigin + performance.now();
    this.thread = startThread("snapshot/fetch-worker.js", data, (e) => (this.threadError ??= e.message));
    if (this.thread) this.threadData = undefined;
    else this.runHere(); // (no threads here after all)
  }

  /** The thread is yet to be started (deferThread). */
  get threadPending(): boolean {
    return this.threadData !== undefined;
  }

  /** It runs on a thread of its own, or will (else it needs `turn`s). */
  get threaded(): boolean {
    return this.thread !== undefined || this.threadData !== undefined;
  }

  /**
   * Without a thread: runs the fetch on this thread until `deadline` (performance.now()), or
   * until the plan is made when `untilPlanned`. A failure lands in `failed`.
   */
  turn(deadline: number, untilPlanned = false): void {
    const steps = this.steps;
    if (!steps || this.state !== STATE.running) return;
    try {
      while (untilPlanned ? !this.slotsReady : performance.now() < deadline) {
        if (steps.next().done) {
          settle(this.shared, undefined);
          break;
        }
      }
    } catch (e) {
      settle(this.shared, e);
    }
  }

  /** Hands every page the fetcher has made ready since the last call to `activate`. */
  drain(activate: (page: number) => void): number {
    const n = Atomics.load(this.ctl, CTL.readyCount);
    const from = this.drained;
    for (let i = from; i < n; i++) activate(this.log[i]);
    this.drained = n;
    return n - from;
  }

  /** The hart's thread wants page p now: takes it (true), or waits until the fetcher has made it ready (false). */
  take(p: number): boolean {
    for (;;) {
      const c = Atomics.compareExchange(this.claims, p, CLAIM.free, CLAIM.taken);
      if (c === CLAIM.free || c === CLAIM.taken) return true;
      if (c === CLAIM.ready) return false;
      // busy: the fetcher thread is copying it right now (microseconds, unless its thread is
      // descheduled); without a thread no page is ever busy between turns
      Atomics.wait(this.claims, p, CLAIM.busy, 50);
    }
  }

  /** Takes page p if nobody has (for read-ahead neighbours, which are not worth a wait). */
  tryTake(p: number): boolean {
    return Atomics.compareExchange(this.claims, p, CLAIM.free, CLAIM.taken) === CLAIM.free;
  }

  /** Gives back a page taken with tryTake that this thread did not install after all. */
  release(p: number): void {
    Atomics.store(this.claims, p, CLAIM.free);
  }

  /** Tells the fetcher thread whether the hart idles (then it may use the CPU freely). */
  set hartIdle(idle: boolean) {
    Atomics.store(this.ctl, CTL.hartIdle, idle ? 1 : 0);
  }

  /**
   * How many slots, from the first, have their page in `slotPage` now: all of them once the
   * fetcher has planned, the working set's as soon as it has read that set's index.
   */
  get slotsKnown(): number {
    return this.slotsReady ? this.slotPage.length : Atomics.load(this.ctl, CTL.wsSlots);
  }

  get slotsReady(): boolean {
    return Atomics.load(this.ctl, CTL.slotsReady) !== 0;
  }

  /**
   * The disk-backed pages, once the fetcher has planned (waits for that when `wait`, up to 30 s:
   * a guest's disk write at the very start of a restore needs them; without a thread, plans now).
   */
  diskPages(wait = false): Int32Array | undefined {
    if (wait && !this.slotsReady) {
      this.startThread(); // (the plan is the thread's first work)
      if (this.steps) this.turn(Infinity, true);
      const t0 = performance.now();
      while (!this.slotsReady && this.state === STATE.running && performance.now() - t0 < 30_000) Atomics.wait(this.ctl, CTL.slotsReady, 0, 100);
    }
    return this.slotsReady ? this.disk.subarray(0, Atomics.load(this.ctl, CTL.diskCount)) : undefined;
  }

  /** The fetcher failed: why, and the page, if one. */
  get failed(): { message: string; page?: number } | undefined {
    return failureOf(this.shared) ?? (this.threadError !== undefined ? { message: `the background fetcher thread failed: ${this.threadError}` } : undefined);
  }

  get state(): number {
    return Atomics.load(this.ctl, CTL.state);
  }

  stats(): FetcherStats {
    const ms = (i: number) => Atomics.load(this.ctl, i) || null;
    return {
      thread: this.threaded,
      pages: Atomics.load(this.ctl, CTL.readyCount),
      bytesRead: Atomics.load(this.ctl, CTL.kibRead) * 1024,
      reads: Atomics.load(this.ctl, CTL.reads),
      busyMs: Atomics.load(this.ctl, CTL.busyMs),
      startedMs: ms(CTL.startedMs),
      plannedMs: ms(CTL.planMs),
      firstReadyMs: ms(CTL.firstReadyMs),
    };
  }

  /**
   * Stops the fetcher and waits until it lets go of guest RAM: every page it has not claimed is
   * taken from it (so it can claim none from now on), and a page it is copying right now is
   * waited for. Afterwards nothing writes guest RAM behind the hart's back.
   */
  stop(): void {
    this.threadData = undefined; // (a thread not started yet never will be)
    Atomics.store(this.ctl, CTL.stop, 1);
    Atomics.notify(this.ctl, CTL.stop);
    const claims = this.claims;
    for (let p = 0; p < claims.length; p++) {
      while (Atomics.compareExchange(claims, p, CLAIM.free, CLAIM.taken) === CLAIM.busy) {
        // Without a thread the fetch runs on this one: a page still busy is one its turn left
        // when it failed, and nobody is copying it (nor could this thread wait on plain memory).
        if (!this.threaded) {
          claims[p] = CLAIM.taken;
          break;
        }
        Atomics.wait(claims, p, CLAIM.busy, 50);
      }
    }
    this.thread?.terminate();
    this.steps?.return();
  }

  /** Every page is resident: the fetcher has nothing left to write (it may still be reading). */
  finished(): void {
    this.threadData = undefined;
    this.thread?.terminate();
    this.steps?.return();
  }
}
