// savevm into an object store (s3://): the machine's RAM and disks as content-addressed pages
// (cas.ts). A page already in the store is not uploaded again; a save after a restore or an
// earlier save of this machine copies the entries of pages and disk blocks not written since.
//
// The save reads RAM and disks through a *capture*: for a stop-and-save that is RAM and the
// disks as they are (the machine stays stopped until the manifest is written); for a
// background save (`savevm -b`) the machine runs on and the capture hands out each page and
// block as it was when the save started (a page the guest is about to touch is copied first).

import { PageState, PAGE_SIZE } from "../core.js";
import { type Machine, WORKING_SET_MS } from "../machine.js";
import { RvmError } from "../errors.js";
import type { PageSource } from "../snapshot/source.js";
export { machineState } from "../snapshot/save.js";
import {
  beginSave, CHUNK_PAGES, ContentStore, decodeEntry, DiskRecord, encodePageList, encodeWorkingSet, encodeWorkingSetOrder, ENTRY, EntryKind, finishSave, IndexCache, Manifest, MapBuilder, newId,
  PackWriter, StoreMap, WORKING_SET_MAX,
} from "./cas.js";
import { encodeReads, planReads, workingSetRuns } from "./plan.js";

/** What a save of this machine builds on: the manifest it last saved or restored. */
export interface StoreLineage {
  cs: ContentStore;
  manifest: Manifest;
  ram: StoreMap;
  disks: Map<number, StoreMap>;
  /**
   * The pages the guest touched first after the restore this lineage began with (the restore's
   * hot list, recorded or read): a save puts them next after the harts' first pages and writes
   * them as its snapshot's hot list, so that snapshot's first restore reads them first.
   */
  hot?: () => number[] | undefined;
}

const ZERO_PAGE = Buffer.alloc(PAGE_SIZE);

const lineage = new WeakMap<Machine, StoreLineage>();

export function setStoreLineage(m: Machine, l: StoreLineage | undefined): void {
  if (l) lineage.set(m, l);
  else lineage.delete(m);
}

export function storeLineage(m: Machine): StoreLineage | undefined {
  return lineage.get(m);
}

/** Blocks each drive's guest wrote since the last save or restore (for incremental saves). */
const written = new WeakMap<Machine, Map<number, Set<number>>>();

/** Notes a guest write to drive `index` (called before the write reaches the disk). */
export function noteDiskWrite(m: Machine, index: number, offset: number, length: number): void {
  let drives = written.get(m);
  if (!drives) written.set(m, (drives = new Map()));
  let set = drives.get(index);
  if (!set) drives.set(index, (set = new Set()));
  for (let b = Math.floor(offset / PAGE_SIZE); b * PAGE_SIZE < offset + length; b++) set.add(b);
}

/** Starts a new epoch of disk-write tracking; returns the blocks written in the one ending. */
export function takeDiskWrites(m: Machine): Map<number, Set<number>> {
  const w = written.get(m) ?? new Map();
  written.set(m, new Map());
  return w;
}

/**
 * The manifest's working set: where each hot page's content is (at most WORKING_SET_MAX pages),
 * so that a restore fetches them before it has the RAM map.
 */
function workingSetOf(raw: Buffer, hot: number[], packs: Set<string>, first: number[], writer: PackWriter): Pick<Manifest, "workingSet"> {
  const items = hot.filter((p) => raw[p * ENTRY] === EntryKind.Page).slice(0, WORKING_SET_MAX)
    .map((page) => {
      const e = decodeEntry(raw, page);
      return { page, pack: e.pack, slot: e.slot };
    });
  // The list is by page (encodeWorkingSet); the save's order (`hot`'s) goes along (`order`).
  const saved = items.map((x) => x.page);
  items.sort((a, b) => a.page - b.page);
  if (!items.length) return {};
  const index = new Map(items.map((x, i) => [x.page, i]));
  const order = encodeWorkingSetOrder(saved.map((p) => index.get(p)!));
  const listed = new Set(items.map((x) => x.page));
  const head = first.filter((p) => listed.has(p));
  // Where the first pages are stored and their hashes: the restore reads them at once.
  const at = head.map((p): [number, number, string] | null => {
    const e = decodeEntry(raw, p);
    const r = writer.storedRange(e.pack, e.slot);
    return r ? [r[0], r[1], e.hash.toString("hex")] : null;
  });
  // The first restore's reads (no hot list yet), as its planner would cut them from this list,
  // head and order, each located in its pack: that restore sends them without planning.
  const sorted = [...packs].sort();
  const firstAt = new Map<number, { offset: number; length: number; hash: Buffer }>();
  head.forEach((p, i) => {
    const a = at[i];
    if (a) firstAt.set(p, { offset: a[0], length: a[1], hash: Buffer.from(a[2], "hex") });
  });
  const rank = new Map(saved.map((p, k) => [p, k]));
  const reads = encodeReads(workingSetRuns(items, head, firstAt, [], rank), sorted, head, (pack, slot) => writer.storedRange(pack, slot));
  // The zero pages among the pages the guest touched last: a restore installs them at the touch,
  // without waiting for their map chunk (the list names stored pages only).
  const zero = hot.filter((p) => raw[p * ENTRY] === EntryKind.Zero).slice(0, WORKING_SET_MAX).sort((a, b) => a - b);
  return {
    workingSet: {
      pages: items.length, data: encodeWorkingSet(items, sorted), ...(head.length ? { first: head, firstAt: at } : {}), order, reads,
      ...(zero.length ? { zero: encodePageList(zero) } : {}),
    },
  };
}

/** RAM and disk content as of the save's instant. */
export interface Capture {
  /** Page p of RAM (a view valid until the next await). */
  page(p: number): Uint8Array;
  /** Whether page p is all zero. */
  isZero(p: number): boolean;
  /** Whether page p was written since the lineage's snapshot (as of the instant). */
  dirty(p: number): boolean;
  /** Block b of drive `index` into `out`. */
  block(index: number, b: number, out: Uint8Array): void;
  /** Blocks of drive `index` written since the lineage's snapshot (as of the instant). */
  writtenBlocks(index: number): Set<number> | undefined;
  /** The save is done with page p (a background capture may let the guest have it back). */
  release?(p: number): void;
  /**
   * How long before the instant the guest last touched page p (Machine.touchAge, ms; Infinity:
   * never): the working set's order in the packs, the most recent first.
   */
  age?(p: number): number;
  /**
   * In how many access epochs the guest touched page p in its current stretch of use
   * (Machine.touchCount, as of the instant): within an age, the pages with more go first.
   */
  touches?(p: number): number;
  /**
   * Whether page p was filled by a disk read and not written since (PageState.Disk), as of the
   * instant: such pages (the page cache of the files the guest read last) go after the working
   * set's other pages.
   */
  diskBacked?(p: number): boolean;
}

/**
 * The capture of a running machine (savevm -b): RAM and disks as they were at the instant it
 * was taken, while the guest goes on. Every page is marked not-present for the hart (the same
 * page state a lazy restore uses): the guest's first touch of a page the save has not read yet
 * — a fetch, load or store, or a device's DMA — stops it before the access has any effect, the
 * page is copied aside, and the guest goes on; the save reads the copy. A page the save reads
 * first is handed back at once. A disk block the guest overwrites before the save read it is
 * copied aside the same way (beforeDiskWrite). The capture is the machine's page source
 * (snapshot/source.ts) until the save ends. Taking the capture costs the guest a
 * pass over the page-state bytes and the device state: a few ms whatever the RAM size.
 */
export class BackgroundCapture implements Capture, PageSource {
  private readonly state: Uint8Array;
  private readonly hot: (p: number) => boolean;
  private readonly ages: (p: number) => number;
  private readonly counts: (p: number) => number;
  private readonly copies = new Map<number, Uint8Array>();
  private readonly blockCopies = new Map<number, Map<number, Uint8Array>>();
  private readonly blocksRead = new Map<number, Set<number>>();
  /** Pages copied aside because the guest touched them first (statistics). */
  copied = 0;
  /** The machine's memory was replaced during the save (system_reset, loadvm): it cannot be completed. */
  cancelled = false;
  private ended = false;

  constructor(
    private readonly machine: Machine,
    disks: Map<number, { takeDirty(): Set<number> }>,
    private readonly diskWrites = new Map<number, Set<number>>(),
  ) {
    const core = machine.core;
    // Copies only (the guest's pause must not grow with the RAM size): page states, accessed bits.
    this.state = core.pages.slice();
    const touches = machine.touchesNow();
    this.ages = touches.age;
    this.counts = touches.count;
    this.hot = (p) => this.ages(p) <= WORKING_SET_MS;
    for (const [i, d] of disks) this.diskWrites.set(i, d.takeDirty());
    for (const d of machine.drives) {
      this.blockCopies.set(d.index, new Map());
      this.blocksRead.set(d.index, new Set());
    }
    machine.attachSource(this);
    core.exports.markAllNotRestored();
    core.exports.markClean();
  }

  /** The hart is about to touch page p: keep its content of the instant. */
  demand(p: number): void {
    this.demandNow(p);
  }

  /** The guest (or host code) is about to touch page p: keep its content of the instant. */
  demandNow(p: number): void {
    const core = this.machine.core;
    if (!(core.pages[p] & PageState.NotRestored)) return;
    this.copies.set(p, core.ram.slice(p * PAGE_SIZE, (p + 1) * PAGE_SIZE));
    this.copied++;
    core.pages[p] &= ~PageState.NotRestored;
  }

  /** The guest is about to overwrite blocks the save may not have read yet: keep their content of the instant. */
  beforeDiskWrite(drive: number, offset: number, length: number): void {
    const copies = this.blockCopies.get(drive), read = this.blocksRead.get(drive);
    const disk = this.machine.drives.find((d) => d.index === drive)?.disk;
    if (!copies || !read || !disk || this.ended || length <= 0) return;
    for (let b = Math.floor(offset / PAGE_SIZE); b * PAGE_SIZE < offset + length; b++) {
      if (read.has(b) || copies.has(b)) continue;
      const old = new Uint8Array(PAGE_SIZE);
      disk.read(old, b * PAGE_SIZE);
      copies.set(b, old);
    }
  }

  /** The machine's memory is being replaced (system_reset, loadvm): the save is abandoned. */
  cancel(): void {
    this.cancelled = true;
    this.end();
  }

  isHot(p: number): boolean {
    return this.hot(p);
  }

  age(p: number): number {
    return this.ages(p);
  }

  touches(p: number): number {
    return this.counts(p);
  }

  diskBacked(p: number): boolean {
    return (this.state[p] & PageState.Disk) !== 0;
  }

  page(p: number): Uint8Array {
    return this.copies.get(p) ?? this.machine.core.ram.subarray(p * PAGE_SIZE, (p + 1) * PAGE_SIZE);
  }

  isZero(p: number): boolean {
    const b = this.page(p);
    return Buffer.from(b.buffer, b.byteOffset, b.length).equals(ZERO_PAGE);
  }

  dirty(p: number): boolean {
    return (this.state[p] & PageState.Dirty) !== 0;
  }

  block(index: number, b: number, out: Uint8Array): void {
    this.blocksRead.get(index)?.add(b);
    const copy = this.blockCopies.get(index)?.get(b);
    if (copy) out.set(copy);
    else this.machine.drives.find((d) => d.index === index)!.disk.read(out, b * PAGE_SIZE);
  }

  writtenBlocks(index: number): Set<number> | undefined {
    return this.diskWrites.get(index);
  }

  release(p: number): void {
    if (this.ended) return; // the pages' states are no longer the capture's
    this.copies.delete(p);
    this.machine.core.pages[p] &= ~PageState.NotRestored;
  }

  /** The save is over (done or abandoned): the guest has every page and block back. */
  end(): void {
    if (this.ended) return;
    this.ended = true;
    const core = this.machine.core;
    clearPageBit(core.pages, PageState.NotRestored);
    this.copies.clear();
    this.blockCopies.clear();
    this.machine.detachSource(this);
    core.exports.pagesChanged();
  }
}

/**
 * Clears `bit` in every page state, four states (a 32-bit word) at a time: between two slices
 * at the end of a background save. A loop over the bytes took 4-11 ms on its first calls in a
 * process (before V8 optimized it) and ~0.2 ms after, at 1 GiB (262144 pages); by words 1.2-3.2
 * ms on the first call and ~0.05 ms after (docs/ARCHITECTURE.md, "Background savevm").
 */
export function clearPageBit(pages: Uint8Array, bit: number): void {
  let words = 0;
  if (pages.byteOffset % 4 === 0) {
    words = pages.length >>> 2;
    const w = new Uint32Array(pages.buffer, pages.byteOffset, words);
    const mask = ~(bit * 0x01010101);
    for (let i = 0; i < words; i++) w[i] &= mask;
  }
  for (let p = words << 2; p < pages.length; p++) pages[p] &= ~bit;
}

/** The capture of a stopped machine: RAM and disks as they are. */
export function stoppedCapture(machine: Machine, diskWrites: Map<number, Set<number>>): Capture {
  const core = machine.core;
  const ex = core.exports;
  // Zero test in the core, in bulk, over RAM in place.
  const pages = core.pages.length;
  const zero = new Uint8Array(pages);
  const scratch = new BigUint64Array(ex.memory.buffer, ex.scratchAddress(), ex.scratchSize() / 8);
  for (let first = 0; first < pages; first += scratch.length) {
    const count = Math.min(scratch.length, pages - first);
    ex.classify(first, count);
    for (let k = 0; k < count; k++) zero[first + k] = scratch[k] === 0n ? 1 : 0;
  }
  const state = Uint8Array.from(core.pages);
  const touches = machine.touchesNow();
  return {
    age: touches.age,
    touches: touches.count,
    diskBacked: (p) => (state[p] & PageState.Disk) !== 0,
    page: (p) => core.ram.subarray(p * PAGE_SIZE, (p + 1) * PAGE_SIZE),
    isZero: (p) => zero[p] === 1,
    dirty: (p) => (state[p] & PageState.Dirty) !== 0,
    block: (index, b, out) => machine.drives.find((d) => d.index === index)!.disk.read(out, b * PAGE_SIZE),
    writtenBlocks: (index) => diskWrites.get(index),
  };
}

export interface StoreSaveStats {
  pages: number;
  zero: number;
  /** Pages found in the store already (this VM's earlier snapshots, other VMs, pushed images). */
  deduped: number;
  /** Pages taken over from the parent snapshot without reading them. */
  inherited: number;
  uploaded: number;
  uploadedBytes: number;
  diskBlocks: number;
  diskUploaded: number;
  /**
   * The save's time and the guest's pause (ms). In the stored manifest: up to its PUT (every
   * pack and chunk stored). As returned by the save (the monitor's reply, the bench): to the
   * end, the manifest's PUT and the lock's release included. A stop-and-save's pause is its
   * save time (the guest is stopped until the save returns); a background save's is the capture.
   */
  saveMs: number;
  pauseMs: number;
}

export interface StoreSaveOptions {
  /** Called with pages done and total, as the save goes. */
  progress?: (done: number, total: number) => void;
  /** Whether the guest ran during the save (a background save). */
  background?: boolean;
  /** When the guest was paused for the save, and for how long (ms). */
  pauseMs?: number;
  cache?: IndexCache;
  /** When the save began (performance.now()), if before this call. */
  t0?: number;
  /** Checked as the save goes: true abandons it (no manifest is written). */
  cancelled?: () => boolean;
  /**
   * The pages the harts need first (Machine.firstPages at the save's instant): ahead of the rest
   * of the working set in the packs, and named in the manifest so a restore reads them first.
   */
  first?: number[];
  /**
   * The page-table pages of the harts' address spaces (Machine.tablePages at the save's
   * instant): in the working set's order right after the first pages (and the carried hot
   * pages), ahead of the others by recency; only an order (not named in `workingSet.first`).
   */
  tables?: number[];
}

/**
 * Saves `capture` (RAM and disks at the save's instant) and `state` (hart, devices, time) as
 * snapshot `name`. The manifest is written last: until then the snapshot is not listed.
 */
export async function saveToStore(
  machine: Machine, cs: ContentStore, name: string, state: Record<string, unknown> & { ramBytes: number }, capture: Capture,
  hot: (p: number) => boolean, opts: StoreSaveOptions = {},
): Promise<Manifest> {
  const t0 = opts.t0 ?? performance.now();
  const saveId = newId();
  const pages = machine.core.pages.length;
  const trace = process.env.RVM_STORE_TRACE ? (what: string) => process.stderr.write(`store: ${what} at ${(performance.now() - t0).toFixed(0)} ms\n`) : () => undefined;
  const { pool, lock } = await beginSave(cs, saveId, opts.cache);
  trace("began");
  try {
    const writer = new PackWriter(cs, saveId);
    const parent = lineage.get(machine);
    const sameStore = parent && parent.cs.url === cs.url && parent.manifest.meta.ramBytes === state.ramBytes;
    if (sameStore) {
      await parent.ram.loadAll();
      for (const m of parent.disks.values()) await m.loadAll();
    }
    const stats: StoreSaveStats = {
      pages, zero: 0, deduped: 0, inherited: 0, uploaded: 0, uploadedBytes: 0, diskBlocks: 0, diskUploaded: 0, saveMs: 0, pauseMs: opts.pauseMs ?? 0,
    };
    // RAM: the working set first (those pages go into the first packs: a lazy restore's
    // background fetch takes them first), the harts' first pages (pc, stack) at its head, then
    // the pages a restore of this machine touched first (carried), the harts' page tables
    // (opts.tables), then the others the most
    // recently touched first (as the local save: what the guest did last is what it needs first
    // after a restore; within an access epoch, the pages touched in more epochs first, then by
    // page); then the rest in page order.
    const ram = new MapBuilder(pages, pool, writer);
    const first = (opts.first ?? []).filter((p) => p < pages && hot(p));
    const order: number[] = [...first];
    const isFirst = new Set(first);
    // The pages the guest touched first after its last restore, next (in that order).
    const carried = [...new Set(parent?.hot?.() ?? [])].filter((p) => Number.isSafeInteger(p) && p >= 0 && p < pages && hot(p) && !isFirst.has(p));
    for (const p of carried) {
      order.push(p);
      isFirst.add(p);
    }
    // The harts' page tables next: a restored guest walks them within its first faults, but
    // many had not been touched for a while before the save (the TLBs held them).
    for (const p of opts.tables ?? []) {
      if (!Number.isSafeInteger(p) || p < 0 || p >= pages || !hot(p) || isFirst.has(p)) continue;
      order.push(p);
      isFirst.add(p);
    }
    const recent: number[] = [];
    for (let p = 0; p < pages; p++) if (hot(p) && !isFirst.has(p)) recent.push(p);
    if (capture.age) {
      // By age; within an age, the pages touched in more access epochs first; then by page.
      const age = new Map(recent.map((p) => [p, capture.age!(p)]));
      const touches = new Map(recent.map((p) => [p, capture.touches?.(p) ?? 0]));
      recent.sort((a, b) => (age.get(a)! < age.get(b)! ? -1 : age.get(a)! > age.get(b)! ? 1 : touches.get(b)! - touches.get(a)! || a - b));
    }
    // Pages filled by a disk read and unchanged since (the page cache of the files read last)
    // after the working set's others, in the same order: in the page-cache guest they are ~520
    // of its newest epoch's pages (~2 MB stored), and its echo touches none of them.
    if (capture.diskBacked) {
      const disk = recent.filter((p) => capture.diskBacked!(p));
      if (disk.length) order.push(...recent.filter((p) => !capture.diskBacked!(p)), ...disk);
      else order.push(...recent);
    } else {
      order.push(...recent);
    }
    for (let p = 0; p < pages; p++) if (!hot(p)) order.push(p);
    let done = 0;
    for (const p of order) {
      if (sameStore && !capture.dirty(p)) {
        const e = parent.ram.entry(p);
        ram.setEntry(p, e);
        if (e.kind === EntryKind.Zero) stats.zero++;
        else stats.inherited++;
      } else if (capture.isZero(p)) {
        ram.setZero(p);
        stats.zero++;
      } else {
        await ram.put(p, capture.page(p));
      }
      capture.release?.(p);
      if (opts.cancelled?.()) throw new RvmError("abandoned");
      if (++done % 256 === 0) {
        opts.progress?.(done, pages);
        // A background save shares the thread with the guest: let the run loop have it.
        if (opts.background) await new Promise((r) => setImmediate(r));
      }
    }
    opts.progress?.(pages, pages);
    trace("ram");
    stats.deduped = ram.deduped;
    stats.uploaded = ram.uploaded;
    // Disks: each block, or the parent's entry for blocks not written since.
    const disks: DiskRecord[] = [];
    const diskRaw: Buffer[] = [];
    const maps = [ram.encode()];
    const packs = ram.packs();
    const buf = Buffer.alloc(PAGE_SIZE);
    for (const d of machine.drives) {
      const blocks = Math.ceil(d.disk.size / PAGE_SIZE);
      const map = new MapBuilder(blocks, pool, writer);
      const before = sameStore ? parent.disks.get(d.index) : undefined;
      const changed = capture.writtenBlocks(d.index);
      for (let b = 0; b < blocks; b++) {
        if (before && before.entries === blocks && !changed?.has(b)) {
          map.setEntry(b, before.entry(b));
          continue;
        }
        capture.block(d.index, b, buf);
        if (buf.equals(ZERO_PAGE)) map.setZero(b);
        else await map.put(b, buf);
      }
      stats.diskBlocks += blocks;
      stats.diskUploaded += map.uploaded;
      const enc = map.encode();
      maps.push(enc);
      diskRaw.push(map.raw);
      map.packs(packs);
      const image = before && parent ? parent.manifest.disks.find((x) => x.index === d.index)?.image ?? null : null;
      disks.push({ index: d.index, file: d.file, size: d.disk.size, readonly: d.readonly, map: enc.ref, image });
    }
    trace("disks");
    if (opts.cancelled?.()) throw new RvmError("abandoned");
    // The save's time: a stop-and-save's guest is stopped until this function returns, so its
    // pause is all of it — the last packs' and the chunks' uploads, the manifest's PUT and the
    // lock's release included. The manifest cannot carry the time of its own PUT: it says the
    // time up to it (every pack and chunk stored; `stamp`); the manifest returned (the monitor's
    // reply, the bench) says the whole time (below).
    const stamp = () => {
      stats.uploadedBytes = writer.bytes; // every pack sealed
      stats.saveMs = Math.round(performance.now() - t0);
      if (!opts.background) stats.pauseMs = stats.saveMs;
    };
    const stored = (await finishSave(cs, pool, lock, writer, maps, {
      format: "rvm-store-snapshot", version: 3, name, id: saveId, created: new Date().toISOString(),
      map: maps[0].ref, disks, meta: { ...state, stats, workingSet: order.findIndex((p) => !hot(p)) }, parent: sameStore ? parent.manifest.id : null,
      ...workingSetOf(ram.raw, order.filter((p) => hot(p)), packs, first, writer),
    }, packs, undefined, stamp))!;
    // Best effort, after the manifest (only an order for its restores; see restore.ts hotPages),
    // inside the save's time: the guest of a stop-and-save waits for it too.
    if (carried.length) await cs.writeHot(name, stored.id, carried, planReads(stored, carried, (pack, slot) => writer.storedRange(pack, slot))).catch(() => undefined);
    const saveMs = Math.round(performance.now() - t0);
    const manifest: Manifest = {
      ...stored, meta: { ...stored.meta, stats: { ...stats, saveMs, pauseMs: opts.background ? stats.pauseMs : saveMs } },
    };
    // From here on, saves build on this one (its maps are at hand: no GET).
    const ramMap = StoreMap.fromRaw(cs.objects, manifest.map, name, ram.raw);
    const diskMaps = new Map(manifest.disks.map((d, k) => [d.index, StoreMap.fromRaw(cs.objects, d.map, name, diskRaw[k])]));
    lineage.set(machine, { cs, manifest: stored, ram: ramMap, disks: diskMaps, hot: carried.length ? () => carried : undefined });
    return manifest;
  } catch (e) {
    await lock.finish().catch(() => undefined);
    throw e instanceof RvmError ? new RvmError(`savevm ${name}: ${e.message}`) : e;
  }
}

export { CHUNK_PAGES };
