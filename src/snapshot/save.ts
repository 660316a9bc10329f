// savevm: writes a space-optimized checkpoint of a stopped machine (DESIGN.md section 4).
//
// Each RAM page becomes, in this order of preference:
//   inherited — unchanged since the previous snapshot of this machine (dirty tracking): its
//               entry is copied, pointing into that snapshot's file (incremental save);
//   zero      — all zero (the core's zero test);
//   disk      — still exactly a block of a disk as of the disk's mark (the page cache);
//   same-as   — identical to a page already stored in this file (hash, then byte compare);
//   stored    — the bytes, working-set pages first, then in page order.
// The file is written to a temporary name, fsynced and renamed: a reader never sees half of it.

import { createHash, fs, openDirect, path, pid, startThread, type HostThread } from "../platform.js";

import { PageState, PAGE_SIZE, sharedMemoryWorks } from "../core.js";
import { WORKING_SET_MS, type Machine } from "../machine.js";
import { GuestMemory } from "../memory.js";
import {
  SNAPSHOT_VERSION, digestOf, encodeHeader, encodeMap, FLAG_MAP_DEFLATED, mapIndex, HEADER_SIZE, MAP_ENTRY_SIZE, newSnapshotId, PageKind,
  SnapshotDisk, SnapshotFile, SnapshotMeta, SnapshotStats, encodeWorkingSetIndex,
} from "./format.js";
import { checkName, journalName, SnapshotStore } from "./store.js";
import type { DiskJournal, JournalSavepoint } from "./journal.js";
import { RvmError } from "../errors.js";
import { requestViews, WRITE, WRITE_SLOTS, WRITE_STATE, type WriterData, writeRequest } from "./write-queue.js";

const { closeSync, fsyncSync, openSync, renameSync, unlinkSync, writeSync } = fs;
const { dirname, basename, join } = path;

/** The snapshot a machine's dirty tracking is relative to (set by savevm and loadvm). */
export interface SnapshotLineage {
  id: string;
  file: string;
}

const lineage = new WeakMap<Machine, SnapshotLineage>();

export function setLineage(m: Machine, l: SnapshotLineage | undefined): void {
  if (l) lineage.set(m, l);
  else lineage.delete(m);
}

/** Journals every drive of the machine whose image keeps its writes: copy-before-write from now on. */
export function attachJournals(machine: Machine, store: SnapshotStore): void {
  for (const d of machine.drives) {
    if (d.readonly || d.disk.volatile) continue;
    const j = store.journal(journalName(d.index, d.file), d.disk);
    d.beforeWrite = (offset, length) => j.beforeWrite(offset, length);
  }
}

/** savevm writes the data area in requests of up to this many bytes (and iovecs: IOV_MAX). */
const WRITE_BATCH_BYTES = 4 << 20;
const WRITE_BATCH_IOVECS = 1024;

export interface SaveOptions {
  /**
   * Write the data area on a writer thread while the save goes on (default: when the save may
   * store at least WRITER_MIN_PAGES pages and guest RAM is shared memory); false: on this thread.
   */
  writerThread?: boolean;
}

/** A save that may store fewer pages than this (32 MiB) writes them itself: a thread's start is not worth it. */
const WRITER_MIN_PAGES = 8192;

/** The pages the save may store: the dirty ones where the others are zero or inherited, else all. */
function candidatePages(machine: Machine, incremental: boolean): number {
  const state = machine.core.pages;
  if (!incremental && machine.core.exports.cleanPagesAreZero() === 0) return state.length;
  let n = 0;
  for (let p = 0; p < state.length; p++) if (state[p] & PageState.Dirty) n++;
  return n;
}

interface Writer {
  ctl: Int32Array;
  order: SharedArrayBuffer;
  error: SharedArrayBuffer;
  thread: HostThread;
}

/** Starts the writer thread (write-worker.ts) for temporary file `file`; undefined where it cannot run. */
function startWriter(machine: Machine, file: string): Writer | undefined {
  const ex = machine.core.exports;
  if (!sharedMemoryWorks || !(ex.memory.buffer instanceof SharedArrayBuffer)) return undefined;
  const data: WriterData = {
    ctl: new SharedArrayBuffer(WRITE_SLOTS * 4), order: new SharedArrayBuffer(machine.core.pages.length * 4), error: new SharedArrayBuffer(128),
    file, memory: ex.memory, ramAddress: ex.ramAddress(), ramBytes: machine.core.ramBytes, batchBytes: WRITE_BATCH_BYTES, batchIovecs: WRITE_BATCH_IOVECS,
  };
  let thread: HostThread | undefined;
  try {
    thread = startThread("snapshot/write-worker.js", data, () => undefined);
  } catch {
    return undefined; // (not built: this thread writes)
  }
  return thread && { ctl: new Int32Array(data.ctl), order: data.order, error: data.error, thread };
}

/** Posts the first `count` pages of the writer's order, with the data area at `dataOffset`. */
function post(w: Writer, count: number, dataOffset: number): void {
  if (count === Atomics.load(w.ctl, WRITE.posted)) return;
  Atomics.store(w.ctl, WRITE.dataPage, dataOffset / PAGE_SIZE);
  Atomics.store(w.ctl, WRITE.posted, count);
  Atomics.add(w.ctl, WRITE.seq, 1);
  Atomics.notify(w.ctl, WRITE.seq);
}

/** Tells the writer that everything is posted. */
function close(w: Writer): void {
  Atomics.store(w.ctl, WRITE.closed, 1);
  Atomics.add(w.ctl, WRITE.seq, 1);
  Atomics.notify(w.ctl, WRITE.seq);
}

/** The writer thread's start, at most (it takes milliseconds). */
const WRITER_START_MS = 10_000;

/**
 * Waits for the writer to write the `total` posted pages (progress meanwhile); then it has ended.
 * Returns whether they all went past the page cache, or undefined if the writer did not write
 * them all (failed, or did not start): the caller writes them.
 */
function finishWriter(w: Writer, total: number, progress?: SaveProgress): boolean | undefined {
  const t0 = performance.now();
  for (;;) {
    if (Atomics.load(w.ctl, WRITE.state) !== WRITE_STATE.running) break;
    if (Atomics.load(w.ctl, WRITE.started) === 0 && performance.now() - t0 > WRITER_START_MS) {
      abortWriter(w);
      return undefined;
    }
    const written = Atomics.load(w.ctl, WRITE.written);
    progress?.(written, total);
    Atomics.wait(w.ctl, WRITE.written, written, 100);
  }
  w.thread.terminate();
  if (Atomics.load(w.ctl, WRITE.state) !== WRITE_STATE.done) return undefined;
  return Atomics.load(w.ctl, WRITE.buffered) === 0;
}

/** Stops the writer after its request in flight and waits (bounded) until it writes nothing more. */
function abortWriter(w: Writer): void {
  Atomics.store(w.ctl, WRITE.abort, 1);
  Atomics.add(w.ctl, WRITE.seq, 1);
  Atomics.notify(w.ctl, WRITE.seq);
  const t0 = performance.now();
  // (A thread that never started writes nothing; one that did stops within its request.)
  while (Atomics.load(w.ctl, WRITE.state) === WRITE_STATE.running && performance.now() - t0 < WRITER_START_MS) {
    if (Atomics.load(w.ctl, WRITE.started) === 0 && performance.now() - t0 > 100) break;
    Atomics.wait(w.ctl, WRITE.state, WRITE_STATE.running, 50);
  }
  w.thread.terminate();
}

/**
 * Writes the data area on this thread: the stored pages in `order` from guest RAM, slot k at
 * `dataOffset` + k pages. The data goes straight from guest RAM to the file through a second
 * descriptor that bypasses the page cache (O_DIRECT) where the file system takes it: the copy
 * into hundreds of MiB of new page-cache pages was most of a save's CPU time (issue 15).
 * Offsets and lengths are whole pages, and RAM's pages are page-aligned in the wasm memory.
 * Where O_DIRECT is refused (tmpfs; EINVAL at open or at the first write), buffered writes
 * through `fd`; the caller's fsync of `fd` covers both descriptors. Returns whether it all went
 * past the page cache.
 */
function writeData(file: string, fd: number, order: Int32Array, ram: Uint8Array, dataOffset: number, progress?: SaveProgress): boolean {
  let direct = openDirect(file, "w");
  try {
    const views: Uint8Array[] = [];
    for (let k = 0; k < order.length; ) {
      const next = requestViews(order, k, order.length, ram, WRITE_BATCH_BYTES, WRITE_BATCH_IOVECS, views);
      direct = writeRequest(fs, direct, fd, views, dataOffset + k * PAGE_SIZE, (next - k) * PAGE_SIZE);
      k = next;
      progress?.(k, order.length);
    }
    return direct !== undefined;
  } finally {
    if (direct !== undefined) closeSync(direct);
  }
}

export interface SaveProgress {
  (done: number, total: number): void;
}

function fsyncDir(dir: string): void {
  try {
    const fd = openSync(dir, "r");
    fsyncSync(fd);
    closeSync(fd);
  } catch {
    // not every file system lets a directory be fsynced
  }
}

/** QEMU's default snapshot name: vm-YYYYMMDDHHMMSS. */
export function defaultName(now = new Date()): string {
  const p = (n: number) => String(n).padStart(2, "0");
  return `vm-${now.getFullYear()}${p(now.getMonth() + 1)}${p(now.getDate())}${p(now.getHours())}${p(now.getMinutes())}${p(now.getSeconds())}`;
}

/** The machine state a snapshot records besides RAM and disks (any store). */
export function machineState(machine: Machine) {
  const core = machine.core;
  return {
    board: "virt" as const,
    config: machine.config,
    ramBytes: core.ramBytes,
    harts: core.hartStates().map((h) => Buffer.from(h).toString("base64")),
    machine: Buffer.from(core.machineState()).toString("base64"),
    mtime: machine.mtime.toString(),
    devices: Object.fromEntries(machine.stateful.map((d) => [d.name, d.state()])),
    htif: machine.htif ? { tohost: machine.htif.tohost, fromhost: machine.htif.fromhost } : null,
    rom: Buffer.from(core.rom.subarray(0x1000, 0x1100)).toString("base64"),
  };
}

/** Saves the (stopped) machine as snapshot `name` in `store`. Returns the metadata written. */
export function saveSnapshot(machine: Machine, store: SnapshotStore, name: string, progress?: SaveProgress, opts: SaveOptions = {}): SnapshotMeta {
  checkName(name);
  const t0 = performance.now();
  for (const d of machine.drives) {
    // Its image does not hold what the guest wrote, and the snapshot cannot hold the disk.
    if (d.disk.volatile && d.disk.written && !d.readonly) {
      throw new RvmError(`savevm ${name}: drive ${d.index} (${d.file}) keeps the guest's writes in memory only (a compressed image), ` +
        "and the guest has written to it: a snapshot could not bring that disk back (gunzip the image, or attach it with readonly=on)");
    }
  }
  store.ensureDir();
  attachJournals(machine, store);
  const core = machine.core;
  const ex = core.exports;
  const pages = core.pages.length;
  const id = newSnapshotId();
  // A lazy restore still running: bring in what is missing first, so RAM is complete.
  const source = machine.pageSource;
  if (source) {
    for (let p = 0; p < pages; p++) if (core.pages[p] & PageState.NotRestored) source.demandNow(p);
  }

  // The disks' state at this instant: a mark of each journaled disk. Until the snapshot's file
  // is in place, a failure cuts each journal back to before its mark (savepoints): a failed
  // savevm leaves the journals as they were and holds no space for a snapshot that does not exist.
  const marked: { journal: DiskJournal; savepoint: JournalSavepoint }[] = [];
  let meta: SnapshotMeta;
  let tmp: string | undefined;
  let fd: number | undefined;
  let writer: Writer | undefined;
  const cannotWrite = (e: unknown): RvmError => {
    if (e instanceof RvmError) return e;
    const code = (e as NodeJS.ErrnoException).code;
    return new RvmError(`savevm ${name}: cannot write ${store.pathFor(name)} (${code === "ENOSPC" ? "disk full" : code ?? (e as Error).message})`);
  };
  try {
    const disks: SnapshotDisk[] = machine.drives.map((d) => {
      const journal = journalName(d.index, d.file);
      if (d.readonly || d.disk.volatile) {
        return { index: d.index, file: d.file, size: d.disk.size, readonly: d.readonly, journal, mark: 0, ...(d.disk.volatile ? { volatile: true } : {}) };
      }
      const j = store.journal(journal, d.disk);
      marked.push({ journal: j, savepoint: j.savepoint() });
      const mark = j.mark();
      return { index: d.index, file: d.file, size: d.disk.size, readonly: d.readonly, journal, mark, journalId: j.journalId };
    });
    const markOf = (disk: number) => disks.find((d) => d.index === disk)?.mark ?? 0;

    // The parent, for an incremental save: its map, with its references re-based onto ours.
    const refs: { id: string; name: string }[] = [];
    let parent: SnapshotFile | undefined;
    const parentLineage = lineage.get(machine);
    if (parentLineage) {
      try {
        parent = SnapshotFile.open(store.fileById(parentLineage.id));
        if (parent.meta.ramBytes !== core.ramBytes) {
          parent.close();
          parent = undefined;
        }
      } catch {
        parent = undefined; // deleted meanwhile: a full save
      }
    }
    const refIndex = new Map<string, number>();
    const refOf = (snapId: string, snapName: string): number => {
      let k = refIndex.get(snapId);
      if (k === undefined) {
        refs.push({ id: snapId, name: snapName });
        k = refs.length;
        if (k > 255) throw new RvmError("too many incremental snapshot references (255): take a full snapshot");
        refIndex.set(snapId, k);
      }
      return k;
    };

    // The temporary file, and (for a large save) the writer thread, started now so that its
    // start overlaps the classification below.
    tmp = join(dirname(store.pathFor(name)), `.${basename(store.pathFor(name))}.${pid}.tmp`);
    try {
      fd = openSync(tmp, "w");
    } catch (e) {
      throw cannotWrite(e);
    }
    if (opts.writerThread ?? candidatePages(machine, parent !== undefined) >= WRITER_MIN_PAGES) writer = startWriter(machine, tmp);

    // The stored pages' data order: the working set (touched in the last WORKING_SET_MS), the
    // most recently touched first, then the rest by page; ahead of them all, the pages the harts
    // need first (pc, stack) and their page tables: the restore's first read then carries what the hart's first
    // instructions fault on. The working set's pages and hashes are also written in an index of
    // their own, so a restore reads it, then the set, in one sequential read each, at once.
    // Every page is visited in that order (the candidates), so that each stored page's place in
    // the file is known as soon as the page is classified, and the writer thread writes the data
    // area while the rest is classified. Ages are whole ms up to WORKING_SET_MS: a counting sort
    // by age, stable in the order of touch counts (most first), then pages.
    const candidates = new Int32Array(pages);
    const inHead = new Uint8Array(pages);
    let hotCandidates = 0;
    {
      const age = new Int16Array(pages);
      const ageCount = new Int32Array(WORKING_SET_MS + 2);
      for (let p = 0; p < pages; p++) {
        const a = machine.touchAge(p);
        age[p] = a <= WORKING_SET_MS ? Math.max(0, Math.round(a)) : -1;
      }
      // The harts' first pages, then their page tables (Machine.tablePages: walked within a
      // restored guest's first faults, though often not touched for a while before the save).
      const head: number[] = [];
      for (const p of [...machine.firstPages(), ...machine.tablePages()]) {
        if (p >= 0 && p < pages && age[p] >= 0 && !inHead[p]) {
          inHead[p] = 1;
          head.push(p);
        }
      }
      // Within an age, the pages touched in more access epochs first (Machine.touchCount), then
      // by page: the others first in that order (a counting sort by touches, down, stable in page
      // order), then the counting sort by age, stable in it.
      const down = new Uint8Array(pages); // 255 - touches: ascending is most touched first
      const start = new Int32Array(257);
      for (let p = 0; p < pages; p++) {
        if (age[p] < 0 || inHead[p]) continue;
        down[p] = 255 - Math.min(255, machine.touchCount(p));
        start[down[p] + 1]++;
      }
      for (let t = 1; t < start.length; t++) start[t] += start[t - 1];
      const byTouches = new Int32Array(start[256]);
      for (let p = 0; p < pages; p++) if (age[p] >= 0 && !inHead[p]) byTouches[start[down[p]]++] = p;
      let k = 0;
      for (const p of head) candidates[k++] = p;
      for (const p of byTouches) ageCount[age[p] + 1]++;
      ageCount[0] = k;
      for (let a = 1; a < ageCount.length; a++) ageCount[a] += ageCount[a - 1];
      hotCandidates = ageCount[ageCount.length - 1];
      for (const p of byTouches) candidates[ageCount[age[p]]++] = p;
      k = hotCandidates;
      for (let p = 0; p < pages; p++) if (age[p] < 0) candidates[k++] = p;
    }

    // The metadata's room, reserved before any page has its place (the data follows it): the
    // largest it can be - every reference the parent's entries may bring, its marks, numbers
    // at their widest; the final metadata is padded with spaces to it.
    const big = 2 ** 50;
    const state0 = machineState(machine);
    const upper: SnapshotMeta = {
      format: "rvm-snapshot", version: SNAPSHOT_VERSION, name, id, created: new Date().toISOString(), ...state0,
      disks: disks.map((d) => {
        const pd = parent?.meta.disks.find((x) => x.index === d.index);
        return pd ? { ...d, entryMarks: [pd.mark, ...(pd.entryMarks ?? [])] } : d;
      }),
      refs: parent ? [{ id: parent.meta.id, name: parent.meta.name }, ...parent.meta.refs] : [],
      parent: parentLineage ? parentLineage.id : null,
      workingSet: big,
      workingSetIndex: { offset: big, length: big, sha256: "0".repeat(64) },
      stats: { pages: big, zero: big, disk: big, same: big, stored: big, inherited: big, fileBytes: big, zeroSkipBytes: big, saveMs: big, pauseMs: big, directIo: false },
    };
    const metaRoom = Buffer.byteLength(JSON.stringify(upper)) + 256;
    const alignUp = (n: number) => Math.ceil(n / PAGE_SIZE) * PAGE_SIZE;
    const dataOffset = alignUp(HEADER_SIZE + metaRoom);

    // Classify every page in the core: zero test and hash, in bulk, over RAM in place.
    // While no snapshot has been saved or restored into this machine, a page never written is
    // zero (the core's cleanPagesAreZero): only the dirty pages are read. Reading the others
    // would only make the host fault in memory the guest never touched (~0.4 s per 256 MiB here).
    const scratch = new BigUint64Array(ex.memory.buffer, ex.scratchAddress(), ex.scratchSize() / 8);
    const hashes = new BigUint64Array(pages); // 0: a zero page
    const onlyDirty = ex.cleanPagesAreZero() !== 0;
    const state = core.pages;

    // The page map is built in place, as the file has it: six little-endian u32 words per page
    // (kind | ref << 8, mark, value low, value high, hash low, hash high; see PageTable). No
    // object or BigInt per page: a 1 GiB guest has 262144 of them.
    const map = Buffer.alloc(pages * MAP_ENTRY_SIZE);
    const words = new Uint32Array(map.buffer, map.byteOffset, pages * 6);
    const hashWords = new Uint32Array(hashes.buffer, hashes.byteOffset, pages * 2);
    const put = (p: number, kind: PageKind, ref: number, mark: number, value: number, hashLo: number, hashHi: number) => {
      const o = p * 6;
      words[o] = kind | (ref << 8);
      words[o + 1] = mark >>> 0;
      words[o + 2] = value % 2 ** 32;
      words[o + 3] = Math.floor(value / 2 ** 32);
      words[o + 4] = hashLo;
      words[o + 5] = hashHi;
    };
    const stats: SnapshotStats = {
      pages, zero: 0, disk: 0, same: 0, stored: 0, inherited: 0, fileBytes: 0, zeroSkipBytes: 0, saveMs: 0, pauseMs: 0,
      directIo: false, // (its room in the metadata reserved: true is shorter)
    };
    // The stored pages in data order (in the writer's shared memory when there is a writer).
    const order = writer ? new Int32Array(writer.order) : new Int32Array(pages);
    let storedCount = 0, hotCount = 0;
    // First stored page with each hash, by its low 32 bits (open addressing, page + 1; 0 = empty);
    // a twin is confirmed by the high half and byte for byte. A second page whose low half
    // matches but whose high half does not is stored and not entered (as before: rare).
    // (A typed table: a Map of 200k numbers, and pushes onto JS arrays, were a third of a 1 GiB
    // save's CPU time.)
    const slots = 1 << Math.max(10, 32 - Math.clz32(pages * 2 - 1));
    const slotMask = slots - 1, slotShift = 32 - Math.log2(slots);
    const firstWithHash = new Int32Array(slots);
    const entryMarks = new Set<string>(); // "disk:mark" of the disk-backed entries
    const CHUNK = WRITE_BATCH_BYTES / PAGE_SIZE;
    for (let c0 = 0; c0 < pages; c0 += CHUNK) {
      const c1 = Math.min(pages, c0 + CHUNK);
      // Hash the chunk's pages that need it, by runs of consecutive pages.
      for (let i = c0; i < c1; ) {
        const first = candidates[i];
        if (onlyDirty && (state[first] & PageState.Dirty) === 0) {
          i++;
          continue;
        }
        let count = 1;
        while (i + count < c1 && count < scratch.length && candidates[i + count] === first + count && (!onlyDirty || state[first + count] & PageState.Dirty)) count++;
        ex.classify(first, count);
        hashes.set(scratch.subarray(0, count), first);
        i += count;
      }
      for (let i = c0; i < c1; i++) {
        const p = candidates[i];
        const lo = hashWords[2 * p], hi = hashWords[2 * p + 1];
        const zero = lo === 0 && hi === 0;
        if (!zero) stats.zeroSkipBytes += PAGE_SIZE;
        if (parent && (state[p] & PageState.Dirty) === 0) {
          const pe = parent.entry(p);
          // Re-base the parent's reference: 0 (the parent itself) or one of its refs.
          const target = pe.ref === 0 ? { id: parent.meta.id, name: parent.meta.name } : parent.meta.refs[pe.ref - 1];
          const ref = pe.kind === PageKind.Zero || pe.kind === PageKind.Disk ? 0 : refOf(target.id, target.name);
          put(p, pe.kind, ref, pe.mark, pe.value, Number(pe.hash & 0xffffffffn), Number(pe.hash >> 32n));
          if (pe.kind === PageKind.Disk) entryMarks.add(`${GuestMemory.splitBlockKey(pe.value).disk}:${pe.mark}`);
          stats.inherited++;
          continue;
        }
        if (zero) {
          stats.zero++; // kind 0, all words 0
          continue;
        }
        if (state[p] & PageState.Disk) {
          const key = machine.mem.diskBlockOf(p);
          if (key >= 0) {
            put(p, PageKind.Disk, 0, markOf(GuestMemory.splitBlockKey(key).disk), key, lo, hi);
            stats.disk++;
            continue;
          }
        }
        // Linear probing from a mix of the low half (the hash's bits are already uniform).
        let h = Math.imul(lo, 0x9e3779b1) >>> slotShift;
        let twin = -1;
        for (;;) {
          const e = firstWithHash[h];
          if (e === 0) break;
          if (hashWords[2 * (e - 1)] === lo) {
            twin = e - 1;
            break;
          }
          h = (h + 1) & slotMask;
        }
        if (twin >= 0 && hashWords[2 * twin + 1] === hi && ex.pagesEqual(twin, p)) {
          const value = words[twin * 6 + 2] + words[twin * 6 + 3] * 2 ** 32; // the twin's data offset
          put(p, PageKind.Same, 0, 0, value, lo, hi);
          stats.same++;
          continue;
        }
        if (twin < 0) firstWithHash[h] = p + 1;
        put(p, PageKind.Stored, 0, 0, dataOffset + storedCount * PAGE_SIZE, lo, hi);
        order[storedCount++] = p;
        if (i < hotCandidates) hotCount = storedCount;
        stats.stored++;
      }
      if (writer) post(writer, storedCount, dataOffset);
    }
    parent?.close();
    const hot = order.subarray(0, hotCount);
    const wsIndex = encodeWorkingSetIndex(hot, hashes);
    meta = {
      format: "rvm-snapshot",
      version: SNAPSHOT_VERSION,
      name,
      id,
      created: upper.created,
      ...state0,
      disks,
      refs,
      parent: parentLineage && refIndex.has(parentLineage.id) ? parentLineage.id : null,
      workingSet: hot.length,
      workingSetIndex: { offset: 0, length: 0, sha256: "" }, // (below)
      stats,
    };
    // Every mark the disk-backed entries use, beyond the snapshot's own (inherited ones may be older).
    for (const k of entryMarks) {
      const [disk, mark] = k.split(":").map(Number);
      const d = disks.find((x) => x.index === disk);
      if (d && mark !== d.mark && !(d.entryMarks ??= []).includes(mark)) d.entryMarks.push(mark);
    }

    const dataLength = storedCount * PAGE_SIZE;
    const mapOffset = dataOffset + dataLength;

    try {
      if (writer) {
        // The writer thread writes the data area from here on, while this thread encodes the
        // map and writes it (another part of the file).
        close(writer);
      }
      const mapOnDisk = encodeMap(map, mapOffset);
      const wsIndexOffset = mapOffset + mapOnDisk.length;
      meta.workingSetIndex = { offset: wsIndexOffset, length: wsIndex.length, sha256: createHash("sha256").update(wsIndex).digest().toString("hex") };
      stats.fileBytes = wsIndexOffset + wsIndex.length;
      writeSync(fd!, mapOnDisk, 0, mapOnDisk.length, mapOffset);
      if (wsIndex.length) writeSync(fd!, wsIndex, 0, wsIndex.length, wsIndexOffset);
      // Whatever the writer did not write (it failed, or could not start), this thread writes:
      // the same bytes at the same offsets, and any error is this thread's to report.
      let direct: boolean | undefined;
      if (writer) {
        direct = finishWriter(writer, storedCount, progress);
        writer = undefined;
      }
      stats.directIo = direct ?? writeData(tmp, fd!, order.subarray(0, storedCount), core.ram, dataOffset, progress);
      progress?.(storedCount, storedCount);
      // The body (data, map, working-set index) durable first; then the metadata and the header,
      // which name the save's time including that flush (the VM's whole pause, as the monitor
      // reports it), and a second, small flush. A file cut short anywhere is only ever a temp file.
      fsyncSync(fd!);
      stats.saveMs = Math.round(performance.now() - t0);
      stats.pauseMs = stats.saveMs;
      const metaBytes = Buffer.from(JSON.stringify(meta));
      if (metaBytes.length > metaRoom) throw new RvmError("internal: snapshot metadata outgrew its room");
      const metaPadded = Buffer.alloc(metaRoom, 0x20); // JSON tolerates trailing spaces
      metaBytes.copy(metaPadded);
      writeSync(fd!, metaPadded, 0, metaRoom, HEADER_SIZE);
      const header = encodeHeader({
        id, metaOffset: HEADER_SIZE, metaLength: metaRoom, mapOffset, mapLength: mapOnDisk.length, dataOffset, dataLength,
        digest: digestOf(metaPadded, mapIndex(mapOnDisk)), created: Date.now(), flags: FLAG_MAP_DEFLATED,
      });
      writeSync(fd!, header, 0, header.length, 0);
      // Durable before it is listed: the metadata and header too.
      fsyncSync(fd!);
      closeSync(fd!);
      fd = undefined;
      // savevm of an existing name replaces it (as QEMU does); the old file stays, hidden, for as
      // long as some snapshot (perhaps this one) refers to it.
      store.retire(name);
      renameSync(tmp, store.pathFor(name));
      fsyncDir(store.dir);
    } catch (e) {
      throw cannotWrite(e);
    }
  } catch (e) {
    // No temporary file left behind, and no writer thread still writing into it.
    if (writer) abortWriter(writer);
    if (fd !== undefined) closeSync(fd);
    if (tmp !== undefined) {
      try {
        unlinkSync(tmp);
      } catch {
        // nothing left behind
      }
    }
    for (const m of marked.reverse()) {
      try {
        m.journal.rollback(m.savepoint);
      } catch {
        // the mark stays; the next compaction drops it (no snapshot lists it)
      }
    }
    if (e instanceof RvmError) throw e;
    throw new RvmError(`savevm ${name}: ${(e as Error).message}`);
  }
  // The new epoch: later saves store only what changes from here.
  ex.markClean();
  setLineage(machine, { id, file: store.pathFor(name) });
  // A replaced snapshot of the same name may leave unreferenced hidden files behind.
  store.collect();
  return meta;
}
