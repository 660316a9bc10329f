// Restore from an object store (s3://), lazily by default: the machine state comes from the
// manifest, the hart runs at once, and RAM follows — a demand fault fetches its page (and the
// neighbours saved next to it) with a ranged GET, a background fetcher streams the rest with
// large ranged GETs, several in flight, the working set first. Disks are read by block from the
// store through a local cache (StoreDisk); the guest's writes stay in an overlay until the next
// savevm stores them.
//
// Store faults: a request that fails for a reason that may pass (no connection, a timeout, a
// 5xx) is retried with backoff; meanwhile only the hart that needs a missing page waits (the
// monitor answers, `info restore` says what it waits for), and it goes on when the store is
// back. After the deadline (--store-deadline) the VM stops with a one-line error; nothing is
// lost (the store is only read). A page whose content does not match its hash is refused.

import { PageState, PAGE_SIZE } from "../core.js";
import type { Machine } from "../machine.js";
import type { BlockBackend } from "../devices/disk.js";
import { RvmError } from "../errors.js";
import { GuestMemory } from "../memory.js";
import { copyIntoRam } from "../platform.js";
import {
  CHUNK_PAGES, ContentStore, ENTRY, decodePageList, decodeWorkingSet, decodeWorkingSetOrder, EntryKind, HOT_MAX, isPackV2, keys, Manifest, MapEntry, PackLayout, packRange, PageReader, sha256, StoreDataError, StoreMap,
  StoredRun, unpackPages, WorkingSetPage,
} from "./cas.js";
import { StoreError } from "./objects.js";
import { sleepSync, SyncReader } from "./sync.js";
import { setStoreLineage, takeDiskWrites } from "./save.js";
import { assignRuns, planReads, recordedRuns, workingSetRuns, wsFirst, wsFirstAt, wsRank, type WsRun } from "./plan.js";
export { workingSetRuns, wsFirstAt, wsRank } from "./plan.js";
import { Interval, ttrTable, utilizationCurve } from "../snapshot/ttr.js";
import { RestoreTimeline, type FaultWait, type LiveRead } from "../snapshot/timeline.js";
import { restoreHartAndDevices, RestoreFailedError } from "../snapshot/restore.js";
import type { SnapshotMeta } from "../snapshot/format.js";
import { cancelActiveRestore, type RestoreStats } from "../snapshot/restore-lazy.js";
import type { PageSource } from "../snapshot/source.js";

/** How long rvm keeps retrying an unreachable store before it stops the VM (ms). */
export const DEFAULT_DEADLINE_MS = 120_000;

/** Retries with backoff while the store is unreachable; remembers what it is waiting for. */
export class StoreLink {
  /** Since when requests fail (ms, performance.now()), and the last reason. */
  waitingSince: number | undefined;
  lastError = "";
  retries = 0;
  /** Requests under way, by start time: one outstanding for long means the store is slow. */
  private readonly outstanding = new Set<number>();
  /** Guest disk reads waiting on the store (virtio-blk requests in flight), by what they read: since when. */
  readonly diskWaits = new Map<string, number>();

  constructor(readonly cs: ContentStore, readonly deadlineMs: number, readonly sync: SyncReader) {}

  private failed(e: unknown, started: number, what: string): number {
    if (!(e instanceof StoreError) || !e.transient) throw e;
    const now = performance.now();
    this.waitingSince ??= started;
    this.lastError = e.message;
    this.retries++;
    if (now - this.waitingSince > this.deadlineMs) {
      throw new RvmError(`${what}: the object store did not answer for ${Math.round(this.deadlineMs / 1000)} s (${e.message})`);
    }
    return Math.min(100 * 2 ** Math.min(this.retries, 6), 5000);
  }

  /** An asynchronous request, retried while the store is unreachable. */
  async run<T>(what: string, f: () => Promise<T>): Promise<T> {
    const started = performance.now();
    for (;;) {
      const t = performance.now();
      this.outstanding.add(t);
      try {
        const r = await f();
        this.waitingSince = undefined;
        this.retries = 0;
        return r;
      } catch (e) {
        const wait = this.failed(e, started, what);
        await new Promise((r) => setTimeout(r, wait));
      } finally {
        this.outstanding.delete(t);
      }
    }
  }

  /** A synchronous request (device DMA, disk reads), retried the same way. */
  runSync<T>(what: string, f: (timeoutMs: number) => T): T {
    const started = performance.now();
    for (;;) {
      try {
        const r = f(Math.min(10_000, this.deadlineMs));
        this.waitingSince = undefined;
        this.retries = 0;
        return r;
      } catch (e) {
        sleepSync(this.failed(e, started, what));
      }
    }
  }

  /** For `info restore`: the guest's disk reads waiting on the store (the hart runs meanwhile). */
  diskStatus(): string {
    const now = performance.now();
    return [...this.diskWaits].map(([what, since]) => `guest read of ${what} waiting on the store for ${Math.round(now - since)} ms (the hart runs meanwhile)`).join("\n");
  }

  /** For `info restore`: what the restore waits for, if anything. */
  status(): string {
    const now = performance.now();
    const oldest = Math.min(...this.outstanding);
    const since = this.waitingSince ?? (now - oldest > 1000 ? oldest : undefined);
    if (since === undefined) return "";
    const s = ((now - since) / 1000).toFixed(0);
    return `waiting on the store ${this.cs.url} for ${s} s (retrying, gives up after ${Math.round(this.deadlineMs / 1000)} s)` +
      (this.lastError ? `: ${this.lastError}` : ": no answer yet");
  }
}

/** Pages and disk blocks already fetched, by content hash (the local cache). */
export class PageCache {
  private readonly pages = new Map<string, Uint8Array>();
  private bytes = 0;

  constructor(private readonly maxBytes = 512 << 20) {}

  get(hash: Buffer): Uint8Array | undefined {
    return this.pages.get(hash.toString("latin1"));
  }

  set(hash: Buffer, page: Uint8Array): void {
    const k = hash.toString("latin1");
    if (this.pages.has(k)) return;
    this.pages.set(k, page);
    this.bytes += page.length;
    while (this.bytes > this.maxBytes) {
      const first = this.pages.keys().next().value as string;
      this.bytes -= this.pages.get(first)!.length;
      this.pages.delete(first);
    }
  }
}

function syncChunk(link: StoreLink, map: StoreMap, c: number, what: string): void {
  if (map.raw(c)) return;
  const name = map.ref.chunks[c];
  const z = link.runSync(what, (t) => link.sync.get(keys.chunk(name), 64 << 20, t));
  if (!z) throw new StoreDataError(`${link.cs.url}/${keys.chunk(name)}`, "page map chunk is missing");
  map.insert(c, z);
}

/** `count` pages from `slot` of `pack`, read synchronously (device DMA, disk reads; not yet verified). */
function readPagesSync(link: StoreLink, pack: string, slot: number, count: number, what: string): Buffer {
  const cs = link.cs;
  let layout: PackLayout | undefined;
  if (isPackV2(pack)) layout = cs.cachedLayout(pack) ?? cs.addLayout(pack, link.runSync(what, (t) => link.sync.get(keys.index(pack), 1 << 20, t)));
  const { offset, length } = packRange(pack, layout, slot, count);
  return unpackPages(pack, layout, slot, count, link.runSync(what, (t) => link.sync.getRange(keys.pack(pack), offset, length, t)));
}

/**
 * A drive of a VM whose snapshots live in an object store. Its content is a base — the image
 * file (only read), or a snapshot's disk map whose blocks are read lazily from the store through
 * the local cache — and an overlay in memory with the blocks the guest wrote, which the next
 * savevm stores.
 */
export class StoreDisk implements BlockBackend {
  readonly size: number;
  readonly readOnly: boolean;
  /** Blocks the guest wrote (4 KiB each). */
  private readonly overlay = new Map<number, Uint8Array>();
  /** Blocks written since the last takeDirty() (what an incremental save must store). */
  private dirty = new Set<number>();
  bytesRead = 0;
  reads = 0;
  /** Guest reads that waited on the store without stopping the hart (whenReadable), and their time (ms). */
  asyncReads = 0;
  asyncMs = 0;
  /** Synchronous store reads (the hart's thread waited: drain at savevm, host code). */
  syncReads = 0;
  /** Blocks a guest request's fetch is reading now (fetchBlocks), and that read: requests in flight at once share it. */
  private readonly fetching = new Map<number, Promise<void>>();
  /** Where a restore notes the guest's disk reads that wait on the store (set by StoreVm.restore). */
  timeline: { mark(what: string, t?: number): void } | undefined;

  private constructor(
    private readonly link: StoreLink,
    private map: StoreMap | undefined,
    private readonly file: BlockBackend | undefined,
    size: number,
    readOnly: boolean,
    private readonly cache: PageCache,
    readonly name: string,
  ) {
    this.size = size;
    this.readOnly = readOnly;
  }

  /** A snapshot's disk: blocks from the store. */
  static fromMap(link: StoreLink, map: StoreMap, size: number, readOnly: boolean, cache: PageCache, name: string): StoreDisk {
    return new StoreDisk(link, map, undefined, size, readOnly, cache, name);
  }

  /** An image file (read only) with the guest's writes on top. */
  static overFile(link: StoreLink, file: BlockBackend, readOnly: boolean, cache: PageCache, name: string): StoreDisk {
    return new StoreDisk(link, undefined, file, file.size, readOnly, cache, name);
  }

  /** The disk as of another snapshot (loadvm): its map, no overlay. */
  reset(map: StoreMap): void {
    this.map = map;
    this.overlay.clear();
    this.dirty = new Set();
  }

  /** The blocks written since the last call (and starts a new epoch). */
  takeDirty(): Set<number> {
    const d = this.dirty;
    this.dirty = new Set();
    return d;
  }

  get overlayBlocks(): number {
    return this.overlay.size;
  }

  private entry(b: number): MapEntry {
    const c = Math.floor(b / CHUNK_PAGES);
    if (!this.map!.raw(c)) syncChunk(this.link, this.map!, c, `disk ${this.name}`);
    return this.map!.entry(b);
  }

  /** Block b's content: overlay, image file, cache, or the store (with up to 31 following blocks of its pack). */
  private block(b: number): Uint8Array {
    const own = this.overlay.get(b);
    if (own) return own;
    if (b * PAGE_SIZE >= this.size) return new Uint8Array(PAGE_SIZE);
    if (!this.map) {
      const out = new Uint8Array(PAGE_SIZE);
      this.file!.read(out, b * PAGE_SIZE);
      return out;
    }
    const e = this.entry(b);
    if (e.kind === EntryKind.Zero) return new Uint8Array(PAGE_SIZE);
    const hit = this.cache.get(e.hash);
    if (hit) return hit;
    const run = this.readAhead(b, e, (n) => this.entry(n));
    const what = `disk ${this.name} block ${b}`;
    const t = performance.now();
    const bytes = readPagesSync(this.link, e.pack, e.slot, run.length, what);
    this.syncReads++;
    this.timeline?.mark(`disk read on the hart's thread (${what}, synchronous, ${(performance.now() - t).toFixed(1)} ms)`);
    this.keep(run, b, bytes);
    return this.cache.get(e.hash)!;
  }

  /**
   * What one read of block b (entry e) brings: e and the blocks after it that sit in the
   * following slots of the same pack (read ahead, up to 32 in all), none the guest wrote or the
   * cache has. `entryAt(n)`: block n's map entry, or undefined where the map is not at hand.
   */
  private readAhead(b: number, e: MapEntry, entryAt: (n: number) => MapEntry | undefined): MapEntry[] {
    const run: MapEntry[] = [e];
    const blocks = Math.ceil(this.size / PAGE_SIZE);
    for (let n = b + 1; n < blocks && run.length < 32; n++) {
      if (this.overlay.has(n)) break;
      const f = entryAt(n);
      if (!f || f.kind !== EntryKind.Page || f.pack !== e.pack || f.slot !== e.slot + run.length || this.cache.get(f.hash)) break;
      run.push(f);
    }
    return run;
  }

  /** Checks the blocks `run` (from block b) read in `bytes` against their hashes and caches them. */
  private keep(run: MapEntry[], b: number, bytes: Buffer): void {
    this.bytesRead += bytes.length;
    this.reads++;
    run.forEach((f, k) => {
      const page = bytes.slice(k * PAGE_SIZE, (k + 1) * PAGE_SIZE);
      if (!sha256(page).equals(f.hash)) {
        throw new StoreDataError(`${this.link.cs.url}/${keys.pack(f.pack)}`, `disk ${this.name} block ${b + k}: checksum mismatch (corrupted object)`);
      }
      this.cache.set(f.hash, page);
    });
  }

  /** Whether block b's bytes need a GET (its map chunk, or its content, not at hand). */
  private mustFetch(map: StoreMap, b: number): boolean {
    if (this.overlay.has(b) || b * PAGE_SIZE >= this.size) return false;
    if (!map.raw(map.chunkOf(b))) return true;
    const e = map.entry(b);
    return e.kind === EntryKind.Page && !this.cache.get(e.hash);
  }

  /**
   * A guest read of [offset, offset + length) that would wait on the store: the promise of its
   * blocks fetched (map chunks, then the blocks with their read-ahead, through the restore's
   * asynchronous store path: the same retries, deadline and hash checks as a demand fault) and
   * cached; read() then serves it at once. Undefined when nothing needs fetching.
   */
  whenReadable(offset: number, length: number): Promise<void> | undefined {
    const map = this.map;
    if (!map || length <= 0) return undefined;
    const first = Math.floor(offset / PAGE_SIZE), last = Math.floor((offset + length - 1) / PAGE_SIZE);
    let b = first;
    while (b <= last && !this.mustFetch(map, b)) b++;
    if (b > last) return undefined;
    return this.fetchBlocks(map, b, last);
  }

  /**
   * A guest write of [offset, offset + length) that would wait on the store: write() merges a
   * block it changes only in part (its first or last) into that block's old content, so those
   * blocks are fetched first, as whenReadable() fetches a read's (QEMU's block layer likewise
   * reads a read-modify-write's head and tail asynchronously). Blocks it covers whole need
   * nothing. Undefined when nothing needs fetching.
   */
  whenWritable(offset: number, length: number): Promise<void> | undefined {
    const map = this.map;
    if (!map || length <= 0) return undefined;
    const end = offset + length;
    const first = Math.floor(offset / PAGE_SIZE), last = Math.floor((end - 1) / PAGE_SIZE);
    const partial = new Set<number>();
    if (offset % PAGE_SIZE !== 0 || end < (first + 1) * PAGE_SIZE) partial.add(first);
    if (end % PAGE_SIZE !== 0) partial.add(last);
    const wait = [...partial].filter((b) => this.mustFetch(map, b)).map((b) => this.fetchBlocks(map, b, b, "a partial-block write"));
    return wait.length === 0 ? undefined : Promise.all(wait).then(() => undefined);
  }

  private async fetchBlocks(map: StoreMap, first: number, last: number, why?: string): Promise<void> {
    const what = `disk ${this.name} block ${first}${last > first ? `-${last}` : ""}${why ? ` (for ${why})` : ""}`;
    const t = performance.now();
    this.link.diskWaits.set(what, t);
    this.timeline?.mark(`guest disk read waiting on the store (${what}); the hart runs on`, t);
    try {
      for (let c = map.chunkOf(first); c <= map.chunkOf(last); c++) if (!map.raw(c)) await this.link.run(what, () => map.load(c));
      for (let b = first; b <= last; b++) {
        const other = this.fetching.get(b);
        if (other) {
          // Another guest request in flight is fetching this block already: its GET serves both.
          await other;
          continue;
        }
        if (!this.mustFetch(map, b)) continue;
        const e = map.entry(b);
        // Read ahead as block() does, within the map chunks at hand (no synchronous chunk read),
        // up to a block another request is fetching.
        const run = this.readAhead(b, e, (n) => (map.raw(map.chunkOf(n)) && !this.fetching.has(n) ? map.entry(n) : undefined));
        const got = this.link.run(what, () => this.link.cs.readPages(e.pack, e.slot, run.length)).then((bytes) => this.keep(run, b, bytes));
        run.forEach((_f, k) => this.fetching.set(b + k, got));
        try {
          await got;
        } finally {
          run.forEach((_f, k) => this.fetching.get(b + k) === got && this.fetching.delete(b + k));
        }
      }
    } finally {
      const end = performance.now();
      this.link.diskWaits.delete(what);
      this.asyncReads++;
      this.asyncMs += end - t;
      this.timeline?.mark(`guest disk read in (${what}, ${(end - t).toFixed(1)} ms in flight)`, end);
    }
  }

  read(buf: Uint8Array, offset: number): void {
    for (let done = 0; done < buf.length; ) {
      const pos = offset + done;
      const b = Math.floor(pos / PAGE_SIZE);
      const within = pos - b * PAGE_SIZE;
      const n = Math.min(PAGE_SIZE - within, buf.length - done);
      buf.set(this.block(b).subarray(within, within + n), done);
      done += n;
    }
  }

  write(buf: Uint8Array, offset: number): void {
    if (this.readOnly) throw new RvmError(`disk ${this.name} is read-only`);
    for (let done = 0; done < buf.length; ) {
      const pos = offset + done;
      const b = Math.floor(pos / PAGE_SIZE);
      const within = pos - b * PAGE_SIZE;
      const n = Math.min(PAGE_SIZE - within, buf.length - done);
      let own = this.overlay.get(b);
      if (!own) {
        own = n === PAGE_SIZE ? new Uint8Array(PAGE_SIZE) : this.block(b).slice();
        this.overlay.set(b, own);
      }
      own.set(buf.subarray(done, done + n), within);
      this.dirty.add(b);
      done += n;
    }
  }

  flush(): void {
    // The overlay lives until savevm stores it.
  }
}

export interface StoreRestoreOptions {
  mode: "lazy" | "eager";
  /** Reads in flight at once (background fetcher). */
  inflight?: number;
  /** Pages per background read. */
  runPages?: number;
  /** Host time the fetcher may take between two slices, in ms. */
  budgetMs?: number;
  /** Pages a demand fault reads at once (its neighbours in the pack). */
  readAhead?: number;
  /** Where the restore notes its phases and demand faults (made here if not given). */
  timeline?: RestoreTimeline;
  /** The manifest's RAM map, if already made (its first chunk may be on its way). */
  ram?: StoreMap;
  /** Working-set reads already sent (prefetchWorkingSet). */
  wsReads?: WsPrefetch;
}

/** Checks a manifest fits the machine before anything is changed. */
export function checkManifest(m: Manifest, machine: Machine): void {
  const where = `snapshot ${m.name}`;
  if (m.meta.ramBytes !== machine.core.ramBytes) {
    throw new RvmError(`${where}: was taken with ${m.meta.ramBytes >> 20} MiB of RAM, this machine has ${machine.core.ramBytes >> 20} MiB (use -m ${m.meta.ramBytes >> 20}M)`);
  }
  const harts = (m.meta.harts as string[] | undefined) ?? [];
  if (harts.length !== machine.core.harts) {
    throw new RvmError(`${where}: was taken with ${harts.length} harts, this machine has ${machine.core.harts} (use -smp ${harts.length})`);
  }
  if (harts.some((h) => Buffer.from(h, "base64").length !== machine.core.hartStates()[0].length)) {
    throw new RvmError(`${where}: hart state of a different rvm build (size mismatch)`);
  }
  for (const d of m.disks) {
    const drive = machine.drives.find((x) => x.index === d.index);
    if (!drive) throw new RvmError(`${where}: needs drive ${d.index} (${d.file})`);
    if (drive.disk.size !== d.size) throw new RvmError(`${where}: drive ${d.index} is ${drive.disk.size} bytes, was ${d.size} at savevm`);
  }
  for (const name of Object.keys(m.meta.devices as object)) {
    if (!machine.stateful.some((d) => d.name === name)) throw new RvmError(`${where}: has state for device ${name}, which this machine lacks`);
  }
}

/** Working-set reads in flight at once (see plan.ts for their size). */
const WS_INFLIGHT = 4;
/** A number from the environment (comparisons and tests), or `dflt`. */
function envNumber(name: string, dflt: number): number {
  const v = Number(process.env[name]);
  return process.env[name] !== undefined && process.env[name] !== "" && Number.isFinite(v) ? v : dflt;
}
/**
 * The working set's cut (lazy restores): its reads past this many stored bytes (in the save's
 * order, or the hot list's) wait until the hart has idled (WFI) WS_IDLE_MS, or WS_HOLD_MS after
 * the reads before the cut are in. The bytes before the cut hold ~90% of the pages a guest's
 * first answer needs, and every byte read before it (received and staged on the hart's thread)
 * delays it. A fault on a page past the cut reads its run (and its slot alone) at once, as for
 * any run not yet read. `RVM_WS_CUT` (bytes; 0: no cut), `RVM_WS_IDLE_MS` and `RVM_WS_HOLD_MS`
 * (negative: never) set them for comparisons and tests.
 */
const WS_CUT_BYTES = envNumber("RVM_WS_CUT", 2 << 20);
const WS_IDLE_MS = envNumber("RVM_WS_IDLE_MS", 5);
const WS_HOLD_MS = envNumber("RVM_WS_HOLD_MS", 150);
/** Stored bytes per page assumed for a read the manifest does not locate (deflated page-cache pages: ~1.9 KB). */
const WS_PAGE_BYTES_GUESS = 2048;
/**
 * A restore records its hot list for this long after the first instruction (ms): the guest's
 * first answers, not what it does next (the pages of a `poweroff` doubled the list).
 */
const HOT_WINDOW_MS = 1000;


/**
 * The hot pages of a snapshot (its `.hot` object, written by an earlier restore of it: the
 * working-set pages that restore's guest touched first, in that order), by manifest, as
 * StoreVm.prepare read them. Only an order for the reads: every page is still checked against
 * its pack's index.
 */
export const hotPages = new WeakMap<Manifest, number[]>();

/** The reads planned with the snapshot's hot list (its `reads`, see planReads), by manifest, as StoreVm.prepare read them. */
export const hotReads = new WeakMap<Manifest, unknown>();

/**
 * A working-set run's slots as stored (not yet unpacked nor verified): without the pack's index
 * if the manifest says where they are.
 */
function readRun(cs: ContentStore, r: WsRun): Promise<StoredRun> {
  const trace = (r.trace ??= newRead("ws", r.pack, r.first, r.count, r.at ? r.at.lengths.reduce((a, n) => a + n, 0) : r.range?.length ?? null, r.items.length)).get;
  if (r.at) return cs.readStoredRun(r.pack, r.first, r.at.offset, r.at.lengths, trace);
  return r.range ? cs.readRunAt(r.pack, r.first, r.count, r.range.offset, r.range.length, trace) : cs.readRun(r.pack, r.first, r.count, trace);
}

/** A store read's record for the restore timeline (LiveRead), asked for now. */
function newRead(kind: LiveRead["kind"], pack: string, first: number, count: number, bytes: number | null, pages: number): LiveRead {
  return { kind, pack, first, count, pages, bytes, asked: performance.now(), get: {}, installed: 0 };
}

/** Where slot `first + k` of a run starts in its stored bytes (null: its pack's index not read). */
function slotOffset(cs: ContentStore, r: WsRun, k: number): number | null {
  if (r.at) return r.at.lengths.slice(0, k).reduce((a, n) => a + n, 0);
  const o = cs.cachedLayout(r.pack)?.offsets;
  return o ? o[r.first + k] - o[r.first] : null;
}

/**
 * The working set's runs prefetchWorkingSet computed, for the restore of that manifest to take
 * (once: a restore marks its runs read) instead of computing them again on the way to the guest.
 */
const preparedRuns = new WeakMap<Manifest, WsRun[]>();

/** The working set's first reads, sent before the machine is built (StoreVm.prepare), by run. */
export type WsPrefetch = Map<string, { read: Promise<StoredRun>; trace?: LiveRead }>;

const runKey = (r: { pack: string; first: number; count: number }) => `${r.pack}:${r.first}:${r.count}`;

/**
 * Whether a restore takes its working set's reads from the manifest (`workingSet.reads`) where
 * it has them and there is no hot list; `RVM_WS_READS=0` makes it plan them itself as before
 * (for comparisons).
 */
const useRecorded = process.env.RVM_WS_READS !== "0";

/**
 * Sends the working set's first WS_INFLIGHT reads (the ones the restore starts with) right
 * after the manifest is read: they travel while the machine is built. The reads the manifest
 * locates (the harts' first pages) go out first, then `between` runs (the restore's other
 * first requests; given the packs the working set is in), then the others (which wait for
 * their pack's index unless the manifest gives their byte range). The first restore of a
 * snapshot (no hot list) takes its reads from the manifest (`workingSet.reads`, written by the
 * save): nothing is planned or decoded here, on the way to the first instruction (the restore
 * gives those runs their pages after it); otherwise (a hot list, an older snapshot) the reads
 * are planned here (workingSetRuns: ~20 ms of cold code).
 */
export function prefetchWorkingSet(cs: ContentStore, m: Manifest, between?: (packs: Set<string>) => void): WsPrefetch {
  const out: WsPrefetch = new Map();
  const recorded = !useRecorded ? undefined : hotPages.has(m) ? (hotReads.has(m) ? recordedRuns(m, hotReads.get(m)) : undefined) : recordedRuns(m);
  const all = recorded ?? (m.workingSet ? workingSetRuns(decodeWorkingSet(m.workingSet, m.packs, m.name), wsFirst(m), wsFirstAt(m), hotPages.get(m), wsRank(m)) : []);
  preparedRuns.set(m, all);
  const runs = all.slice(0, WS_INFLIGHT);
  const send = (r: WsRun) => {
    const read = readRun(cs, r);
    read.catch(() => undefined); // the restore reads it again, with its retries
    out.set(runKey(r), { read, trace: r.trace });
  };
  for (const r of runs) if (r.at) send(r);
  between?.(new Set(all.map((r) => r.pack)));
  for (const r of runs) if (!r.at) send(r);
  return out;
}

/** Map chunks the restore's plan loads at once. */
const PLAN_INFLIGHT = 8;

/** Runs `tasks`, at most `n` at once; rejects with the first failure. */
async function inPool(tasks: (() => Promise<void>)[], n: number): Promise<void> {
  let next = 0;
  const lane = async () => {
    while (next < tasks.length) await tasks[next++]();
  };
  await Promise.all(Array.from({ length: Math.min(n, tasks.length) }, lane));
}

/** A background read: `count` slots of a pack from `slot` (pack "" = the zero pages, `zero`). */
type Fetch = { pack: string; slot: number; count: number; zero?: number[]; buf?: Buffer; pending?: Promise<void>; error?: Error };

const active = new WeakMap<Machine, StoreRestore>();

/** A page of read `r` checked and installed now. */
function installedBy(r: LiveRead): void {
  const t = performance.now();
  r.installed++;
  r.firstInstalled ??= t;
  r.lastInstalled = t;
}

/** A restore from the store into `machine` (lazy: returns once the hart may run). */
export class StoreRestore implements PageSource {
  readonly t0 = performance.now();
  private readonly ram: StoreMap;
  private readonly reader: PageReader;
  private readonly opts: Required<Omit<StoreRestoreOptions, "mode" | "timeline" | "ram" | "wsReads">> & { mode: "lazy" | "eager" };
  private readonly wsReads: WsPrefetch;
  private resident = 0;
  private readonly total: number;
  private demandFaults = 0;
  private prefetched = 0;
  private stallMs = 0;
  private fetchMs = 0;
  bytesRead = 0;
  reads = 0;
  private readonly intervals: Interval[] = [];
  private ttfi: number | undefined;
  private finishedAt: number | undefined;
  private failure: Error | undefined;
  /** pack -> slot -> page, for the map chunks loaded so far (read-ahead and the fetcher). */
  private readonly slots = new Map<string, Map<number, number[]>>();
  private readonly indexed = new Set<number>();
  /** The zero pages of the chunks indexed so far. */
  private readonly zeroPages: number[] = [];
  private queue: Fetch[] = [];
  private planned: Promise<void> | undefined;
  /** Guest RAM was all zero when the restore began (a machine built for it): zero pages need no write. */
  private ramZero = false;
  /** The disks' maps (read in the background with the RAM map: a disk read then needs no GET for its map). */
  private diskMaps = new Map<number, StoreMap>();
  /** Working-set pages fetched ahead of the RAM map, by page: their read (a fault on one starts it, or waits for it). */
  private readonly wsRun = new Map<number, WsRun>();
  private wsQueue: WsRun[] = [];
  /** The manifest's reads not yet given their pages (assignWs), and the staging of those that came in meanwhile. */
  private wsPending: { runs: WsRun[]; where: string } | undefined;
  private wsArrived: (() => void)[] = [];
  private wsZero: Set<number> | undefined;
  /** Pages in the working set (for its "in" mark). */
  private wsPageCount = 0;
  private wsInflight = 0;
  /** The working set's reads past the cut (WS_CUT_BYTES) held until the hart idles or WS_HOLD_MS after the first part: released by this. */
  private wsRelease: (() => void) | undefined;
  private wsIdleTimer: NodeJS.Timeout | undefined;
  /** The indexes of the packs the working set is in (each page's hash, by slot). */
  private readonly wsIndex = new Map<string, Promise<Buffer[]>>();
  /**
   * Working-set pages read but not yet unpacked, checked and put into RAM, by page: the hart's
   * touch installs one (a page exit; its slot alone is inflated), the fetcher's turns install
   * the rest (a run inflated in one call).
   */
  private readonly staged = new Map<number, { run: StoredRun; k: number; hash: Buffer; pack: string; slot: number; trace?: LiveRead }>();
  /** Pages a device's DMA waits for (demandHost): their fetch, and since when (for `info restore`). */
  private readonly hostWaits = new Map<number, { done: Promise<void>; since: number }>();
  private inflight = 0;
  private cursor = 0;
  /** When the fetcher's next turn may come while the hart can run (performance.now()). */
  private nextTurn = 0;
  private readonly done: Promise<void>;
  private resolveDone!: () => void;
  private readonly samples: number[] = [];
  /**
   * A lazy restore of a snapshot without a hot list records one for the next restore: the
   * pages the hart faulted on, in order (`touched`), for HOT_WINDOW_MS after the first
   * instruction (freezeHot: those in the working set, `wsPages`, then the other working-set
   * pages the guest touched: `hotList`), written next to the manifest when every page is
   * resident.
   */
  private touched: number[] | undefined;
  private wsPages: number[] | undefined;
  private hotList: number[] | undefined;
  /** The restore timeline (the console notes input and output here; phases as they pass). */
  readonly timeline: RestoreTimeline;
  private instret0 = 0n;

  constructor(
    private readonly machine: Machine,
    readonly link: StoreLink,
    readonly manifest: Manifest,
    opts: StoreRestoreOptions,
  ) {
    this.opts = { mode: opts.mode, inflight: opts.inflight ?? 4, runPages: opts.runPages ?? 256, budgetMs: opts.budgetMs ?? 2, readAhead: opts.readAhead ?? 16 };
    this.ram = opts.ram ?? new StoreMap(link.cs.objects, manifest.map, `snapshot ${manifest.name}`);
    this.wsReads = opts.wsReads ?? new Map();
    this.reader = new PageReader(link.cs);
    this.total = machine.core.pages.length;
    this.timeline = opts.timeline ?? new RestoreTimeline(machine, false);
    this.done = new Promise((r) => (this.resolveDone = r));
    if (opts.mode === "lazy" && manifest.workingSet && !hotPages.has(manifest)) this.touched = [];
  }

  static async start(
    machine: Machine, link: StoreLink, manifest: Manifest, opts: StoreRestoreOptions, diskMaps: Map<number, StoreMap>, resetDisks: () => void,
  ): Promise<StoreRestore> {
    checkManifest(manifest, machine);
    const r = new StoreRestore(machine, link, manifest, opts);
    // The first map chunk comes before anything changes: a store that cannot be read fails the
    // restore while the machine is untouched.
    await link.run(`snapshot ${manifest.name}`, () => r.ram.load(0));
    r.timeline.mark(`first page-map chunk read (${manifest.meta.ramBytes >> 20} MiB RAM, ${r.ram.ref.chunks.length} chunks)`);
    active.get(machine)?.cancel();
    cancelActiveRestore(machine);
    active.set(machine, r);
    resetDisks();
    r.begin(diskMaps);
    r.timeline.mark("machine state restored, every page marked not yet restored");
    if (opts.mode === "eager") {
      await r.completeNow();
      r.timeline.mark("every page read (eager)");
    }
    return r;
  }

  /** Fetches everything still missing (eager restore; savevm during a lazy restore). */
  async completeNow(): Promise<void> {
    this.assignWs();
    try {
      await this.plan();
      while (!this.complete) {
        if (this.failure) throw this.failure;
        this.issue();
        const pending = this.queue.slice(this.cursor).find((f) => f.pending)?.pending;
        this.install(Infinity);
        if (!this.complete && pending) await pending;
      }
    } catch (e) {
      this.fail(e as Error);
    }
  }

  private begin(diskMaps: Map<number, StoreMap>): void {
    const m = this.machine;
    const core = m.core;
    this.ramZero = m.mem.untouched;
    m.mem.untouched = false;
    this.diskMaps = diskMaps;
    restoreHartAndDevices(m, this.manifest.meta as unknown as SnapshotMeta);
    core.exports.markAllNotRestored();
    m.mem.clearDiskBlocks();
    core.exports.markClean();
    takeDiskWrites(m);
    setStoreLineage(m, { cs: this.link.cs, manifest: this.manifest, ram: this.ram, disks: diskMaps, hot: () => this.firstTouches() });
    m.meter = this.timeline;
    m.beforeSlice = () => {
      const t = performance.now();
      this.ttfi = t - this.t0;
      this.timeline.started(t);
      m.beforeSlice = undefined;
    };
    this.instret0 = core.instret;
    // Demand faults, host accesses and the fetcher's turns come here from now on.
    m.attachSource(this);
    // The fetch plan (every map chunk, RAM's and the disks') starts now, while the hart runs:
    // by the time the guest needs a page or a disk block, its map is (mostly) at hand. The
    // working set goes first, from its own small map (no need to wait for the RAM map).
    if (this.opts.mode === "lazy") {
      // The working set is an optimization: the plan brings in whatever it misses. The plan
      // waits for it (its requests would slow the working set's down).
      void this.fetchWorkingSet().catch(() => undefined).then(() => this.plan()).catch((e: Error) => {
        this.failure ??= e instanceof RvmError ? new RestoreFailedError(e) : e;
      });
    }
  }

  private isRestored(p: number): boolean {
    return (this.machine.core.pages[p] & PageState.NotRestored) === 0;
  }

  private installed(p: number): void {
    if (this.staged.size) this.staged.delete(p);
    this.machine.core.pages[p] &= ~PageState.NotRestored;
    this.resident++;
    if (this.resident === this.total) this.finish();
  }

  /**
   * Records the pack slots of a loaded chunk's pages, and its zero pages (for the plan). Reads
   * the entries' bytes in place (one pack name decoded per run of entries of the same pack), not
   * through `entry()`: that decoded 65536 entries twice (here and for the zero pages) in one
   * synchronous block of ~90 ms on the hart's thread, between the working set and the answer.
   */
  private index(c: number): void {
    if (this.indexed.has(c)) return;
    this.indexed.add(c);
    const b = this.ram.raw(c);
    if (!b) throw new Error(`internal: map chunk ${c} not loaded`);
    const first = c * CHUNK_PAGES;
    const n = Math.min(this.total - first, b.length / ENTRY);
    let last = -1; // offset of the last non-zero entry, whose pack `s` is
    let s: Map<number, number[]> | undefined;
    for (let k = 0; k < n; k++) {
      const o = k * ENTRY;
      if (b[o] === EntryKind.Zero) {
        this.zeroPages.push(first + k);
        continue;
      }
      if (last < 0 || b.readUInt32LE(o + 8) !== b.readUInt32LE(last + 8) || b.readUInt32LE(o + 12) !== b.readUInt32LE(last + 12) ||
        b.readUInt32LE(o + 16) !== b.readUInt32LE(last + 16) || b.readUInt32LE(o + 20) !== b.readUInt32LE(last + 20)) {
        const pack = b.toString("hex", o + 8, o + 24);
        s = this.slots.get(pack);
        if (!s) this.slots.set(pack, (s = new Map()));
      }
      last = o;
      const slot = b.readUInt32LE(o + 4);
      const list = s!.get(slot);
      if (list) list.push(first + k); // pages with the same content share the slot
      else s!.set(slot, [first + k]);
    }
  }

  /** Whether a page that slot `slot` of `pack` holds is still missing (neither in RAM nor staged). */
  private slotMissing(pack: string, slot: number): boolean {
    const list = this.slots.get(pack)?.get(slot);
    return !!list && list.some((q) => !this.isRestored(q) && !this.staged.has(q));
  }

  /**
   * Installs staged page p if it matches its hash (true); one that does not is dropped and
   * stays missing: a fault or the plan then reads it the usual way, and reports the damage (if
   * the plan is under way, it gets a read of that slot at its end).
   */
  private installStaged(p: number, wholeRun = false): boolean {
    const s = this.staged.get(p);
    if (!s) return false;
    this.staged.delete(p);
    if (this.isRestored(p)) return true;
    // The hart's touch unpacks its page alone; the fetcher's turns unpack the whole run once.
    if (wholeRun) s.run.unpack();
    const page = s.run.page(s.k);
    if (!sha256(page).equals(s.hash)) {
      if (this.planned) this.queue.push({ pack: s.pack, slot: s.slot, count: 1 });
      return false;
    }
    copyIntoRam(page, this.machine.core.ram, p * PAGE_SIZE, 0, PAGE_SIZE);
    this.prefetched++;
    if (s.trace) installedBy(s.trace);
    this.installed(p);
    return true;
  }

  /** Installs staged pages until `deadline`; whether all are. */
  private installStagedUntil(deadline: number): boolean {
    let n = 0;
    for (const p of this.staged.keys()) {
      if ((++n & 15) === 0 && performance.now() >= deadline) return false;
      this.installStaged(p, true);
      if (this.complete) break;
    }
    return this.staged.size === 0;
  }

  /**
   * Puts `bytes` (slots from `slot` of `pack`) into RAM for every missing page they hold. With
   * `must` (a demand fault's cluster) only that page must verify: a neighbour that fails stays
   * missing and fails when it is needed; a background read that fails verification fails.
   */
  private place(pack: string, slot: number, bytes: Buffer, must?: number): void {
    const core = this.machine.core;
    const s = this.slots.get(pack);
    for (let k = 0; k * PAGE_SIZE < bytes.length; k++) {
      const page = bytes.subarray(k * PAGE_SIZE, (k + 1) * PAGE_SIZE);
      const targets = [...(s?.get(slot + k) ?? [])];
      if (must !== undefined && !targets.includes(must)) targets.unshift(must);
      for (const q of targets) {
        if (this.isRestored(q)) continue;
        const e = this.ram.entry(q);
        if (e.kind !== EntryKind.Page || e.pack !== pack || e.slot !== slot + k) continue;
        if (!sha256(page).equals(e.hash)) {
          if (q === must || must === undefined) this.reader.verify(e, page, `page ${q}`);
          continue;
        }
        copyIntoRam(bytes, core.ram, q * PAGE_SIZE, k * PAGE_SIZE, (k + 1) * PAGE_SIZE);
        if (q !== must) this.prefetched++;
        this.installed(q);
      }
    }
  }

  /** The cluster around page p's slot: the slots still missing, at most readAhead. */
  private cluster(e: MapEntry): { slot: number; count: number } {
    const missing = (slot: number) => this.slotMissing(e.pack, slot);
    let first = e.slot, end = e.slot + 1;
    while (end - first < this.opts.readAhead && missing(end)) end++;
    while (end - first < this.opts.readAhead && first > 0 && missing(first - 1)) first--;
    return { slot: first, count: end - first };
  }

  /**
   * The working set, first: its map (one or a few small chunks) and then its pages, in runs of
   * consecutive slots, all requested at once; each page is verified against its entry's hash and
   * installed as its run arrives. A page that fails its check stays missing (the fault or the
   * plan then reads it the usual way, and reports the damage).
   */
  private async fetchWorkingSet(): Promise<void> {
    const ws = this.manifest.workingSet;
    if (!ws) return;
    const where = `snapshot ${this.manifest.name} (working set)`;
    const prepared = preparedRuns.get(this.manifest);
    preparedRuns.delete(this.manifest);
    if (prepared?.some((r) => r.unassigned)) {
      // The manifest's reads (the first restore's, recordedRuns; the first ones already sent by
      // prepare): read as they are, their pages given to them after the first instruction
      // (assignWs: the list's decode), except the harts' first pages, which the manifest names.
      for (const r of prepared) {
        this.packIndexFor(r.pack);
        if (r.at) r.items = r.items.filter((x) => x.page < this.total);
        for (const { page } of r.items) this.wsRun.set(page, r);
      }
      this.wsQueue = [...prepared];
      this.wsPending = { runs: prepared, where };
    } else {
      const items = decodeWorkingSet(ws, this.manifest.packs, where).filter((x) => x.page < this.total && !this.isRestored(x.page));
      // Each page is checked against its pack's index (the SHA-256 of every slot), read alongside.
      for (const x of items) this.packIndexFor(x.pack);
      if (this.touched) this.wsPages = items.map((x) => x.page);
      this.wsPageCount = items.length;
      this.wsQueue = prepared && prepared.reduce((n, r) => n + r.items.length, 0) === items.length ? prepared : workingSetRuns(items, wsFirst(this.manifest), wsFirstAt(this.manifest), hotPages.get(this.manifest), wsRank(this.manifest));
      for (const run of this.wsQueue) for (const { page } of run.items) this.wsRun.set(page, run);
    }
    // WS_INFLIGHT reads at a time, and a fault on a page of a run not yet read (held past the
    // cut, or queued) starts that run at once.
    const total = this.wsQueue.length;
    // The cut: the reads up to WS_CUT_BYTES of stored bytes go now, the others once released.
    let cut = this.wsQueue.length;
    if (WS_CUT_BYTES > 0 && this.opts.mode === "lazy") {
      let bytes = 0;
      for (let i = 0; i < this.wsQueue.length; i++) {
        const r = this.wsQueue[i];
        bytes += r.range?.length ?? r.count * WS_PAGE_BYTES_GUESS;
        if (bytes >= WS_CUT_BYTES && i + 1 < this.wsQueue.length) {
          cut = i + 1;
          break;
        }
      }
    }
    const later = this.wsQueue.splice(cut);
    await this.sendWs();
    if (later.length) {
      this.timeline.mark(`working set's first part in (${cut} of ${total} reads; ${later.length} held until the hart idles)`);
      await new Promise<void>((resolve) => {
        const hold = WS_HOLD_MS >= 0 ? setTimeout(() => this.wsRelease?.(), WS_HOLD_MS) : undefined;
        this.wsRelease = () => {
          this.wsRelease = undefined;
          clearTimeout(hold);
          clearTimeout(this.wsIdleTimer);
          resolve();
        };
        // The hart idling right now releases them as soon as it has idled WS_IDLE_MS.
        if (this.machine.idleNow) this.idled();
      });
      if (this.failure || this.complete) return;
      this.wsQueue = later;
      await this.sendWs();
    }
    this.assignWs();
    this.wsRun.clear();
    const hot = hotPages.get(this.manifest);
    this.timeline.mark(`working set in (${this.wsPageCount} pages in ${total} reads${hot ? `, ${hot.length} hot pages first` : ""})`);
  }

  /** Reads the runs of wsQueue, WS_INFLIGHT at a time; resolves when all are in. */
  private sendWs(): Promise<void> {
    return new Promise<void>((resolve) => {
      const pump = () => {
        while (this.wsInflight < WS_INFLIGHT && this.wsQueue.length) {
          const r = this.wsQueue.shift()!;
          if (r.read) continue;
          this.wsInflight++;
          void this.readWsRun(r).finally(() => {
            this.wsInflight--;
            pump();
          });
        }
        if (this.wsInflight === 0 && this.wsQueue.length === 0) resolve();
      };
      pump();
    });
  }

  /** The hart went idle (WFI) while reads past the cut are held: they go if it is still idle WS_IDLE_MS later. */
  private idled(): void {
    if (this.wsIdleTimer || WS_IDLE_MS < 0) return;
    this.wsIdleTimer = setTimeout(() => {
      this.wsIdleTimer = undefined;
      if (this.machine.idleNow) this.wsRelease?.();
    }, WS_IDLE_MS);
  }

  /** The working set's zero pages (the manifest's `zero`; none in older snapshots or where it is not a list). */
  private wsZeroPages(): Set<number> {
    return (this.wsZero ??= (this.opts.mode === "lazy" ? decodePageList(this.manifest.workingSet?.zero, this.total) : undefined) ?? new Set());
  }

  /** Pack `pack`'s index, for the working set's pages (requested once). */
  private packIndexFor(pack: string): void {
    if (this.wsIndex.has(pack)) return;
    const index = this.link.run("working set", () => this.link.cs.packIndex(pack));
    const get = this.link.cs.indexTraces.get(pack);
    if (get) {
      const r = newRead("index", pack, 0, 0, null, 0);
      r.get = get;
      // asked: when prepare (or this) sent it; the index of a layout read before is not a read of this restore's
      r.asked = get.sent ?? r.asked;
      this.timeline.read(r);
      void index.then(() => (r.ready = performance.now()), () => undefined);
    }
    index.catch(() => undefined); // awaited by the runs of that pack (which then leave their pages to the plan)
    this.wsIndex.set(pack, index);
  }

  /**
   * Gives the manifest's reads (fetchWorkingSet) their pages, once: the working-set list decoded
   * and each page put in the run whose slots hold it (assignRuns), then the pages of the runs
   * that came in meanwhile staged. Done after the first instruction (the fetcher's first turn),
   * or sooner if the hart faults on a page no run is known to hold yet. A page no run holds (a
   * list that does not match the reads: never for a manifest rvm wrote) is left to the plan.
   */
  private assignWs(): void {
    const pending = this.wsPending;
    if (!pending) return;
    this.wsPending = undefined;
    let items: WorkingSetPage[] = [];
    try {
      items = decodeWorkingSet(this.manifest.workingSet!, this.manifest.packs, pending.where);
    } catch {
      // a damaged list: its pages are left to the plan
    }
    // One pass (cold code on the hart's thread): the list's pages, and those still missing.
    const pages: number[] = [], missing: WorkingSetPage[] = [];
    for (const x of items) {
      if (x.page >= this.total) continue;
      pages.push(x.page);
      if (!this.isRestored(x.page)) missing.push(x);
    }
    if (this.touched) this.wsPages = pages;
    this.wsPageCount = pages.length;
    assignRuns(pending.runs, missing);
    for (const r of pending.runs) if (!r.at) for (const x of r.items) this.wsRun.set(x.page, r);
    const arrived = this.wsArrived;
    this.wsArrived = [];
    for (const stage of arrived) stage();
  }

  /**
   * Reads a working-set run (once) and stages its pages: checking a page against its hash and
   * copying it into RAM (its first touch of that memory: most of the cost) waits until the
   * hart touches it or the fetcher's turn comes, so that the pages the guest needs first do
   * not queue behind the others.
   */
  private readWsRun(r: WsRun): Promise<void> {
    // A run the manifest locates is checked against the manifest's hashes (no wait for the index).
    const at = r.at;
    let index = this.wsIndex.get(r.pack)!;
    if (at) {
      const hashes: Buffer[] = [];
      at.hashes.forEach((h, k) => (hashes[r.first + k] = h));
      index = Promise.resolve(hashes);
    }
    if (r.read) return r.read;
    const read = () => this.link.run("working set", () => readRun(this.link.cs, r));
    const sent = this.wsReads.get(runKey(r));
    this.wsReads.delete(runKey(r));
    // The record of the read prepare sent for this run (the same run, or one planned alike).
    if (sent?.trace) r.trace ??= sent.trace;
    const first = sent ? sent.read.catch(read) : read();
    r.trace ??= newRead("ws", r.pack, r.first, r.count, r.range?.length ?? null, r.items.length);
    this.timeline.read(r.trace);
    r.read = Promise.all([first, index]).then(([run, hashes]) => {
      this.bytesRead += run.count * PAGE_SIZE;
      this.reads++;
      const trace = r.trace!;
      trace.ready = performance.now();
      const stage = () => {
        trace.staged = performance.now();
        trace.pages = r.items.length;
        for (const { page: p, slot } of r.items) {
          if (this.isRestored(p) || this.failure || this.complete || !hashes[slot]) continue;
          this.staged.set(p, { run, k: slot - r.first, hash: hashes[slot], pack: r.pack, slot, trace });
        }
      };
      // A run of the manifest's reads whose pages are not known yet: staged once they are (assignWs).
      if (r.unassigned) this.wsArrived.push(stage);
      else stage();
    }, () => undefined);
    return r.read;
  }

  /**
   * Reads working-set page p alone (slot `slot` of `pack`) and installs it if it matches its
   * hash in the pack's index; whether it did (false: the run's read serves the fault).
   */
  private async readWsPage(pack: string, slot: number, p: number, trace: LiveRead): Promise<boolean> {
    try {
      const [hashes, bytes] = await Promise.all([this.wsIndex.get(pack)!, this.link.cs.readPages(pack, slot, 1, trace.get)]);
      trace.ready = performance.now();
      this.bytesRead += bytes.length;
      this.reads++;
      if (this.isRestored(p)) return true;
      if (this.failure || this.complete || !hashes[slot] || !sha256(bytes.subarray(0, PAGE_SIZE)).equals(hashes[slot])) return false;
      copyIntoRam(bytes, this.machine.core.ram, p * PAGE_SIZE, 0, PAGE_SIZE);
      installedBy(trace);
      this.installed(p);
      return true;
    } catch {
      return false;
    }
  }

  /** The hart touched page p: install it if staged, else fetch it (and its cluster); the host goes on meanwhile. */
  demand(p: number): void | Promise<void> {
    if (this.failure) throw this.failure;
    if (this.isRestored(p)) return;
    if (this.touched) {
      if (this.hotWindowOver(performance.now())) this.freezeHot();
      else if (this.touched.length < HOT_MAX) this.touched.push(p);
    }
    if (this.staged.has(p)) {
      const t = performance.now();
      const before = this.resident;
      if (this.installStaged(p)) return this.stalled(p, t, before, "hart");
    }
    return this.fetch(p);
  }

  /**
   * A device's DMA needs page p (GuestMemory.whenPresent: the virtio queue waits for it): installed
   * at once if staged, else the promise of its fetch, as a demand fault's (the same retries,
   * deadline and hash check), while the hart, the monitor and the event loop go on. Two devices
   * needing the same page share its fetch. (demandNow, the synchronous way, serves a drain.)
   */
  demandHost(p: number): void | Promise<void> {
    if (this.failure) throw this.failure;
    if (this.isRestored(p)) return;
    const t = performance.now();
    const before = this.resident;
    if (this.installStaged(p)) return this.stalled(p, t, before, "host");
    let w = this.hostWaits.get(p);
    if (!w) {
      w = { done: this.fetch(p, "host").finally(() => this.hostWaits.delete(p)), since: t };
      this.hostWaits.set(p, w);
    }
    return w.done;
  }

  private async fetch(p: number, by: "hart" | "host" = "hart"): Promise<void> {
    const t = performance.now();
    const before = this.resident;
    if (this.wsPending && !this.wsRun.has(p)) this.assignWs();
    if (!this.wsRun.has(p) && this.wsZeroPages().has(p)) {
      // A zero page the guest touched last (the manifest's `zero`): no map chunk to wait for.
      this.installZero(p);
      return this.stalled(p, t, before, by);
    }
    const ws = this.wsRun.get(p);
    if (ws) {
      // A page of the working set: its run's read (started now if it was still queued), and,
      // for a run of several slots, a read of the page's slot alone: whichever comes first
      // serves the fault (a run of 256 slots is ~0.3-0.7 MiB, and it may queue behind others).
      // The slot's own read only races a run sent before this fault whose answer has not begun:
      // against a run whose body is arriving, or one this fault starts, the run came first in 101
      // of 109 and 48 of 84 recorded races (the slot, when first, by a median 5.5 and 2.8 ms),
      // and the slot's GET cost the hart's thread a request and an answer (ARCHITECTURE.md, gc11).
      const sentBefore = ws.read !== undefined || this.wsReads.has(runKey(ws));
      const whole = this.readWsRun(ws);
      const arriving = ws.trace?.get.headers !== undefined;
      const item = ws.items.find((i) => i.page === p);
      let via: FaultWait["via"] = "run", slotRead: number | undefined;
      if (item && ws.count > 1 && sentBefore && !arriving) {
        const own = newRead("slot", ws.pack, item.slot, 1, null, 1);
        slotRead = this.timeline.read(own);
        await Promise.race([whole, this.readWsPage(ws.pack, item.slot, p, own).then((ok) => (ok ? void (via = "slot") : whole))]);
      } else {
        await whole;
      }
      if (this.isRestored(p) || this.installStaged(p)) {
        const k = (item?.slot ?? ws.first) - ws.first;
        return this.stalled(p, t, before, by, { read: ws.trace?.index ?? -1, slot: k, offset: slotOffset(this.link.cs, ws, k), via, ...(slotRead === undefined ? {} : { slotRead }) });
      }
    }
    let wait: FaultWait | undefined;
    try {
      const c = this.ram.chunkOf(p);
      await this.link.run(`page ${p}`, () => this.ram.load(c));
      this.index(c);
      if (!this.isRestored(p)) {
        const e = this.ram.entry(p);
        if (e.kind === EntryKind.Zero) {
          this.installZero(p);
        } else {
          const { slot, count } = this.cluster(e);
          const trace = newRead("fault", e.pack, slot, count, null, 0);
          wait = { read: this.timeline.read(trace), slot: e.slot - slot, offset: null, via: "fault" };
          const bytes = await this.link.run(`page ${p}`, () => this.link.cs.readPages(e.pack, slot, count, trace.get));
          trace.ready = performance.now();
          this.bytesRead += bytes.length;
          this.reads++;
          if (!this.isRestored(p)) this.place(e.pack, slot, bytes, p);
        }
      }
    } catch (e) {
      this.fail(e as Error, p);
    }
    this.stalled(p, t, before, by, wait);
  }

  /**
   * A demand fault on page p that began at `t` is served: the hart could not run meanwhile (but
   * for a device's wait, demandHost). `wait`: the store read it waited for.
   */
  private stalled(p: number, t: number, before: number, by: "hart" | "host", wait?: FaultWait): void {
    this.demandFaults++;
    const end = performance.now();
    if (by === "hart" || !this.hostWaits.has(p)) {
      this.stallMs += end - t;
      this.intervals.push({ start: t - this.t0, end: end - this.t0 });
    }
    this.timeline.fault(p, t, end, this.resident - before, by, wait && wait.read >= 0 ? wait : undefined);
  }

  private installZero(p: number): void {
    if (!this.ramZero) this.machine.core.ram.fill(0, p * PAGE_SIZE, (p + 1) * PAGE_SIZE);
    this.installed(p);
  }

  /** Host code needs page p now (device DMA, the monitor): a synchronous fetch. */
  demandNow(p: number): void {
    if (this.failure) throw this.failure;
    if (this.isRestored(p)) return;
    const t = performance.now();
    const before = this.resident;
    if (this.installStaged(p)) return this.stalled(p, t, before, "host");
    try {
      const c = this.ram.chunkOf(p);
      syncChunk(this.link, this.ram, c, `page ${p}`);
      this.index(c);
      const e = this.ram.entry(p);
      if (e.kind === EntryKind.Zero) {
        this.installZero(p);
      } else {
        const bytes = readPagesSync(this.link, e.pack, e.slot, 1, `page ${p}`);
        this.bytesRead += bytes.length;
        this.reads++;
        this.place(e.pack, e.slot, bytes, p);
      }
    } catch (e) {
      this.fail(e as Error, p);
    }
    this.stalled(p, t, before, "host");
  }

  /** The fetch plan: all map chunks, then runs of consecutive slots per pack, in pack order. */
  private plan(): Promise<void> {
    this.planned ??= (async () => {
      const chunks = this.ram.ref.chunks.length;
      // Every chunk, PLAN_INFLIGHT at a time (the client keeps 16 connections: a demand fault
      // always finds one free, and loads its chunk itself if the plan has not got to it). The
      // disks' maps come along: a disk read then seldom waits for a chunk of its map.
      const loads = Array.from({ length: chunks }, (_, c) => () => this.link.run("page map", () => this.ram.load(c)).then(() => undefined));
      for (const d of this.diskMaps.values()) d.ref.chunks.forEach((_, c) => loads.push(() => this.link.run("disk map", () => d.load(c)).then(() => undefined)));
      await inPool(loads, PLAN_INFLIGHT);
      // The chunks' entries indexed a slice at a time (~2 ms), the hart running in between: in
      // one block this took 50-90 ms of its thread (--cpu-prof), on the way to the guest's answer.
      let t = performance.now();
      for (let c = 0; c < chunks; c++) {
        this.index(c);
        if (performance.now() - t > this.opts.budgetMs && this.opts.mode === "lazy") {
          await new Promise((r) => setImmediate(r));
          t = performance.now();
        }
      }
      // Zero pages need no I/O: one item.
      this.queue.push({ pack: "", slot: 0, count: 0, zero: this.zeroPages });
      // Packs in the order the saves wrote them (their ids start with the time): this save's
      // packs hold its working set first.
      const packs = [...this.slots.keys()].sort((a, b) => (a.startsWith(this.manifest.id) === b.startsWith(this.manifest.id) ? a.localeCompare(b) : a.startsWith(this.manifest.id) ? -1 : 1));
      for (const pack of packs) {
        const s = [...this.slots.get(pack)!.keys()].sort((a, b) => a - b);
        for (let i = 0; i < s.length; ) {
          let j = i + 1;
          while (j < s.length && j - i < this.opts.runPages && s[j] === s[j - 1] + 1) j++;
          this.queue.push({ pack, slot: s[i], count: j - i });
          i = j;
        }
      }
    })();
    return this.planned;
  }

  /** Keeps reads in flight ahead of the cursor. */
  private issue(): void {
    for (let i = this.cursor; i < this.queue.length && this.inflight < this.opts.inflight; i++) {
      const f = this.queue[i];
      if (f.buf || f.pending || f.error || f.pack === "") continue;
      // Only the span still missing (demand faults may have taken some).
      let lo = f.slot, hi = f.slot + f.count - 1;
      while (lo <= hi && !this.slotMissing(f.pack, lo)) lo++;
      while (hi >= lo && !this.slotMissing(f.pack, hi)) hi--;
      if (lo > hi) {
        f.buf = Buffer.alloc(0);
        continue;
      }
      f.slot = lo;
      f.count = hi - lo + 1;
      this.inflight++;
      f.pending = this.link.run("background fetch", () => this.link.cs.readPages(f.pack, f.slot, f.count)).then((b) => {
        f.buf = b;
        this.bytesRead += b.length;
        this.reads++;
      }, (e: Error) => {
        f.error = e;
      }).finally(() => {
        f.pending = undefined;
        this.inflight--;
      });
    }
  }

  /** Installs completed reads in queue order until `deadline`. */
  private install(deadline: number): void {
    // Working-set pages read but not installed yet first.
    if (this.staged.size && !this.installStagedUntil(deadline)) return;
    while (this.cursor < this.queue.length && performance.now() < deadline) {
      const f = this.queue[this.cursor];
      if (f.error) this.fail(f.error, this.slots.get(f.pack)?.get(f.slot)?.[0]);
      if (f.zero) {
        // Under the time budget like the rest (f.slot counts the zero pages done).
        for (; f.slot < f.zero.length; f.slot++) {
          if ((f.slot & 255) === 0 && performance.now() >= deadline) return;
          const p = f.zero[f.slot];
          if (this.isRestored(p)) continue;
          this.prefetched++;
          this.installZero(p);
        }
      } else {
        if (!f.buf) break; // not read yet: the guest runs meanwhile
        if (f.buf.length) {
          try {
            this.place(f.pack, f.slot, f.buf);
          } catch (e) {
            this.fail(e as Error);
          }
        }
        f.buf = undefined;
      }
      this.cursor++;
      this.issue();
    }
  }

  /** The background fetcher's turn between slices. */
  background(): void {
    if (this.failure) throw this.failure;
    // The fetcher's first turn (after the hart's first slice): the manifest's reads get their pages.
    if (this.wsPending) this.assignWs();
    const t = performance.now();
    this.samples.push(t - this.t0, Number(this.machine.core.instret - this.instret0));
    if (this.complete) return;
    if (this.touched && this.hotWindowOver(t)) this.freezeHot();
    const idle = this.machine.idleNow;
    if (idle && this.wsRelease) this.idled();
    // While the hart can run, the fetcher's turns take at most a fifth of the thread: they come
    // after every exit, and a page exit can come every few microseconds.
    if (!idle && t < this.nextTurn) return;
    const deadline = t + (idle ? this.opts.budgetMs * 5 : this.opts.budgetMs);
    if (!this.planned) {
      // begin() starts the plan after the working set; staged working-set pages wait for the
      // hart's touch, or for the hart to idle.
      if (!idle || !this.staged.size) return;
      this.installStagedUntil(deadline);
    } else {
      this.issue();
      this.install(deadline);
    }
    const end = performance.now();
    this.fetchMs += end - t;
    if (!idle) this.nextTurn = end + 4 * (end - t);
    if (!idle && end - t > 0.05) this.intervals.push({ start: t - this.t0, end: end - this.t0 });
  }

  /**
   * Ends the recording of the hot list (HOT_WINDOW_MS after the first instruction, or when every
   * page is resident): the working-set pages the hart faulted on, in that order, then those the
   * guest touched that the fetcher had put in first (accessed since the restore began).
   */
  private freezeHot(): void {
    if (!this.touched) return;
    this.assignWs();
    const touched = this.touched;
    this.touched = undefined;
    if (!this.wsPages) return;
    const ws = new Set(this.wsPages);
    const hot = touched.filter((p) => ws.has(p));
    const listed = new Set(hot);
    const touchedNow = this.machine.workingSetNow();
    for (const p of this.wsPages) if (!listed.has(p) && touchedNow(p)) hot.push(p);
    this.hotList = hot;
    this.wsPages = undefined;
  }

  /**
   * The working-set pages the guest touched first after this restore: the list it recorded (so
   * far, if still recording) or the one it read; for the machine's next save (StoreLineage.hot).
   */
  firstTouches(): number[] | undefined {
    if (this.touched) this.freezeHot();
    return this.hotList ?? hotPages.get(this.manifest);
  }

  /** Whether the hot list's recording window has passed. */
  private hotWindowOver(t: number): boolean {
    return this.ttfi !== undefined && t - this.t0 - this.ttfi > HOT_WINDOW_MS;
  }

  private fail(e: Error, page?: number): never {
    if (this.failure) throw this.failure;
    if (page !== undefined && e instanceof RvmError && !/\bpage \d+/.test(e.message)) {
      e = new RvmError(`${e.message}, restoring page ${page} (guest-physical 0x${GuestMemory.pageAddress(page).toString(16)})`);
    }
    this.failure = e instanceof RvmError && !(e instanceof RestoreFailedError) ? new RestoreFailedError(e) : e;
    // The restore stays the machine's page source and its background turn throws from now on:
    // the run loop stops the VM at the next slice.
    throw this.failure;
  }

  private finish(): void {
    this.finishedAt = performance.now() - this.t0;
    this.timeline.mark("every page resident");
    // The synchronous reader's thread, if no disk read or DMA has started it yet (StoreVm.prepare).
    this.link.sync.warm(keys.manifest(this.manifest.name));
    // For the next restore of this snapshot (best effort: read-only credentials, a store gone
    // away: the next restore reads in the list's order, as before).
    this.freezeHot();
    if (this.hotList?.length) {
      // With the reads the next restore makes (planned here, off the way to any guest's answer).
      const cs = this.link.cs;
      const reads = planReads(this.manifest, this.hotList, (pack, slot) => {
        const o = isPackV2(pack) ? cs.cachedLayout(pack)?.offsets : undefined;
        return !isPackV2(pack) ? [slot * PAGE_SIZE, PAGE_SIZE] : o && slot + 1 < o.length ? [o[slot], o[slot + 1] - o[slot]] : undefined;
      });
      void cs.writeHot(this.manifest.name, this.manifest.id, this.hotList, reads).catch(() => undefined);
    }
    this.staged.clear();
    const m = this.machine;
    active.delete(m);
    m.detachSource(this);
    m.core.exports.pagesChanged();
    this.resolveDone();
  }

  cancel(): void {
    this.machine.detachSource(this);
    if (this.finishedAt !== undefined) return;
    this.failure ??= new RvmError("restore abandoned");
    this.staged.clear();
    this.wsRelease?.();
    active.delete(this.machine);
    this.finishedAt = performance.now() - this.t0;
    this.resolveDone();
  }

  whenComplete(): Promise<void> {
    return this.done;
  }

  get complete(): boolean {
    return this.finishedAt !== undefined;
  }

  progress(): string {
    const pct = ((100 * this.resident) / this.total).toFixed(1);
    const secs = (this.finishedAt ?? performance.now() - this.t0) / 1000;
    const rate = this.bytesRead / (1 << 20) / Math.max(secs, 1e-3);
    const now = performance.now();
    const since = Math.min(...[...this.hostWaits.values()].map((w) => w.since));
    const pages = [...this.hostWaits.keys()];
    const dma = pages.length === 0 ? "" : `device DMA into page${pages.length > 1 ? "s" : ""} ${pages.slice(0, 4).join(", ")}${pages.length > 4 ? `, ... (${pages.length})` : ""}` +
      ` waiting on the store for ${Math.round(now - since)} ms (the hart runs meanwhile)`;
    const waiting = [this.link.status(), this.link.diskStatus(), dma].filter((x) => x).join("\n");
    return `restore: ${this.opts.mode} from ${this.link.cs.url} (${this.manifest.name}), ${this.resident}/${this.total} pages resident (${pct}%)` +
      `${this.complete ? ", complete" : ""}, ${this.demandFaults} demand faults, ${this.prefetched} prefetched, ` +
      `${rate.toFixed(1)} MiB/s read, ${secs.toFixed(2)} s\n${waiting ? waiting + "\n" : ""}`;
  }

  /** `interim`: a --stats-json write while the VM runs (no TTR: as the local restore's, with the last write). */
  stats(withCurve = false, interim = false): RestoreStats {
    const end = this.finishedAt ?? performance.now() - this.t0;
    const s: RestoreStats = {
      mode: this.opts.mode, order: this.opts.mode === "lazy" ? "workingset" : null, snapshot: this.manifest.name, pages: this.total,
      ttfiMs: this.ttfi ?? NaN, totalMs: end, demandFaults: this.demandFaults, prefetched: this.prefetched, stallMs: this.stallMs,
      fetchMs: this.fetchMs, bytesRead: this.bytesRead, reads: this.reads, meanReadBytes: this.reads ? this.bytesRead / this.reads : 0,
      // TTR over every interval so far took ~10-20 ms of the hart's thread at each interim write
      // (--cpu-prof), one of them at the first input, on the way to the guest's answer.
      ttr: interim ? {} : ttrTable(this.intervals, end), workload: null, timeline: this.timeline.json(),
    };
    if (withCurve) s.utilization = { w100: utilizationCurve(this.intervals, end, 100, 10), w1000: utilizationCurve(this.intervals, end, 1000, 50) };
    return s;
  }
}
