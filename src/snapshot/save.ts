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

import { createHash, fs, openDirect, path, pid } from "../platform.js";

import { PageState, PAGE_SIZE } from "../core.js";
import type { Machine } from "../machine.js";
import { GuestMemory } from "../memory.js";
import {
  SNAPSHOT_VERSION, digestOf, encodeHeader, encodeMap, FLAG_MAP_DEFLATED, mapIndex, HEADER_SIZE, MAP_ENTRY_SIZE, newSnapshotId, PageKind,
  SnapshotDisk, SnapshotFile, SnapshotMeta, SnapshotStats, encodeWorkingSetIndex,
} from "./format.js";
import { checkName, journalName, SnapshotStore } from "./store.js";
import type { DiskJournal, JournalSavepoint } from "./journal.js";
import { RvmError } from "../errors.js";

const { closeSync, fsyncSync, openSync, renameSync, unlinkSync, writeSync, writevSync } = fs;
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
export function saveSnapshot(machine: Machine, store: SnapshotStore, name: string, progress?: SaveProgress): SnapshotMeta {
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

    // Classify every page in the core: zero test and hash, in bulk, over RAM in place.
    // While no snapshot has been saved or restored into this machine, a page never written is
    // zero (the core's cleanPagesAreZero): only the dirty pages are read. Reading the others
    // would only make the host fault in memory the guest never touched (~0.4 s per 256 MiB here).
    const scratch = new BigUint64Array(ex.memory.buffer, ex.scratchAddress(), ex.scratchSize() / 8);
    const hashes = new BigUint64Array(pages); // 0: a zero page
    const onlyDirty = ex.cleanPagesAreZero() !== 0;
    const state = core.pages;
    for (let first = 0; first < pages; ) {
      if (onlyDirty && (state[first] & PageState.Dirty) === 0) {
        first++;
        continue;
      }
      let count = 1;
      const most = Math.min(scratch.length, pages - first);
      if (onlyDirty) while (count < most && state[first + count] & PageState.Dirty) count++;
      else count = most;
      ex.classify(first, count);
      hashes.set(scratch.subarray(0, count), first);
      first += count;
    }

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
    const storedPages: number[] = [];
    // First stored page with each hash, by its low 32 bits (a number key: a Map of BigInts is
    // slow); a twin is confirmed by the high half and byte for byte.
    const firstWithHash = new Map<number, number>();
    const sameAs: number[] = []; // pairs: page, its twin (entries made once the twin's offset is known)
    const entryMarks = new Set<string>(); // "disk:mark" of the disk-backed entries
    for (let p = 0; p < pages; p++) {
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
      const key = machine.mem.diskBlockOf(p);
      if (key >= 0) {
        put(p, PageKind.Disk, 0, markOf(GuestMemory.splitBlockKey(key).disk), key, lo, hi);
        stats.disk++;
        continue;
      }
      const twin = firstWithHash.get(lo);
      if (twin !== undefined && hashWords[2 * twin + 1] === hi && ex.pagesEqual(twin, p)) {
        sameAs.push(p, twin);
        stats.same++;
        continue;
      }
      if (twin === undefined) firstWithHash.set(lo, p);
      storedPages.push(p);
      stats.stored++;
    }
    parent?.close();

    // Data order: the working set (touched in the last WORKING_SET_MS), the most recently touched
    // first, then the rest by page. The working set's pages and hashes are also written in an index
    // of their own, so a restore reads it, then the set, in one sequential read each, at once.
    const recent: number[] = [], cold: number[] = [];
    for (const p of storedPages) (machine.recentlyAccessed(p) ? recent : cold).push(p);
    // Most recent first: sort keys age (in epochs) * 2^32 + page. (No spread of the result into
    // a call: a working set of 200k pages would overflow the stack.)
    const keys = Float64Array.from(recent, (p) => machine.touchAge(p) * 2 ** 32 + p).sort();
    // Ahead of them all, the pages the harts need first (pc, stack): the restore's first read
    // then carries what the hart's first instructions fault on.
    const head = machine.firstPages().filter((p) => machine.recentlyAccessed(p) && storedPages.includes(p));
    const hot = head.concat(Array.from(keys, (k) => k % 2 ** 32).filter((p) => !head.includes(p)));
    const order = hot.concat(cold);
    const wsIndex = encodeWorkingSetIndex(hot, hashes);

    meta = {
      format: "rvm-snapshot",
      version: SNAPSHOT_VERSION,
      name,
      id,
      created: new Date().toISOString(),
      ...machineState(machine),
      disks,
      refs,
      parent: parentLineage && refIndex.has(parentLineage.id) ? parentLineage.id : null,
      workingSet: hot.length,
      // Placeholder values as long as any real ones (the metadata's room is reserved below).
      workingSetIndex: { offset: 2 ** 52, length: 2 ** 40, sha256: "0".repeat(64) },
      stats,
    };
    // Offsets: header, meta (its length depends on the stats, filled in below), map, data.
    const metaLength = (s: SnapshotMeta) => Buffer.byteLength(JSON.stringify(s));
    const alignUp = (n: number) => Math.ceil(n / PAGE_SIZE) * PAGE_SIZE;
    // Reserve room for the final statistics' digits.
    const metaRoom = metaLength(meta) + 256;

    // The data follows the metadata; the map, deflated, comes last (the data offsets are in it).
    const dataOffset = alignUp(HEADER_SIZE + metaRoom);
    order.forEach((p, k) => put(p, PageKind.Stored, 0, 0, dataOffset + k * PAGE_SIZE, hashWords[2 * p], hashWords[2 * p + 1]));
    for (let i = 0; i < sameAs.length; i += 2) {
      const p = sameAs[i], twin = sameAs[i + 1];
      const value = words[twin * 6 + 2] + words[twin * 6 + 3] * 2 ** 32; // the twin's data offset
      put(p, PageKind.Same, 0, 0, value, hashWords[2 * p], hashWords[2 * p + 1]);
    }
    // Every mark the disk-backed entries use, beyond the snapshot's own (inherited ones may be older).
    for (const k of entryMarks) {
      const [disk, mark] = k.split(":").map(Number);
      const d = disks.find((x) => x.index === disk);
      if (d && mark !== d.mark && !(d.entryMarks ??= []).includes(mark)) d.entryMarks.push(mark);
    }

    const dataLength = order.length * PAGE_SIZE;
    const mapOffset = dataOffset + dataLength;
    const mapOnDisk = encodeMap(map, mapOffset);
    const wsIndexOffset = mapOffset + mapOnDisk.length;
    meta.workingSetIndex = { offset: wsIndexOffset, length: wsIndex.length, sha256: createHash("sha256").update(wsIndex).digest().toString("hex") };
    stats.fileBytes = wsIndexOffset + wsIndex.length;
    stats.pauseMs = Math.round(performance.now() - t0); // updated after writing
    stats.saveMs = stats.pauseMs;

    const tmp = join(dirname(store.pathFor(name)), `.${basename(store.pathFor(name))}.${pid}.tmp`);
    let fd: number | undefined;
    let direct: number | undefined;
    try {
      fd = openSync(tmp, "w");
      // The data area (the bulk) goes straight from guest RAM to the file through a second
      // descriptor that bypasses the page cache (O_DIRECT) where the file system takes it: the
      // copy into hundreds of MiB of new page-cache pages was most of a save's CPU time (issue 15).
      // Offsets and lengths are whole pages, and RAM's pages are page-aligned in the wasm memory.
      // Where O_DIRECT is refused (tmpfs; EINVAL at open or at the first write), buffered writes.
      // Map, metadata and header go the normal way; the fsync below covers both descriptors.
      direct = openDirect(tmp, "w");
      const views: Uint8Array[] = [];
      let pos = dataOffset;
      let batch = 0; // bytes in views
      let written = 0; // pages
      let lastPage = -2;
      const flush = () => {
        if (views.length === 0) return;
        let n = -1;
        if (direct !== undefined) {
          try {
            n = writevSync(direct, views, pos);
          } catch (e) {
            if ((e as NodeJS.ErrnoException).code !== "EINVAL") throw e;
            closeSync(direct);
            direct = undefined;
          }
        }
        if (n < 0) n = writevSync(fd!, views, pos);
        while (n < batch) n += writeSync(fd!, Buffer.concat(views).subarray(n), 0, batch - n, pos + n);
        pos += batch;
        written += batch / PAGE_SIZE;
        batch = 0;
        views.length = 0;
        lastPage = -2;
        progress?.(written, order.length);
      };
      for (const p of order) {
        if (p === lastPage + 1) {
          // The next page in RAM too: one longer buffer (fewer iovecs, larger requests).
          const v = views[views.length - 1];
          views[views.length - 1] = core.ram.subarray(v.byteOffset - core.ram.byteOffset, (p + 1) * PAGE_SIZE);
        } else {
          views.push(core.ram.subarray(p * PAGE_SIZE, (p + 1) * PAGE_SIZE));
        }
        lastPage = p;
        batch += PAGE_SIZE;
        if (batch >= WRITE_BATCH_BYTES || views.length === WRITE_BATCH_IOVECS) flush();
      }
      flush();
      if (direct !== undefined) {
        closeSync(direct);
        direct = undefined;
        stats.directIo = true;
      }
      progress?.(order.length, order.length);
      writeSync(fd, mapOnDisk, 0, mapOnDisk.length, mapOffset);
      if (wsIndex.length) writeSync(fd, wsIndex, 0, wsIndex.length, wsIndexOffset);
      stats.saveMs = Math.round(performance.now() - t0);
      stats.pauseMs = stats.saveMs;
      const metaBytes = Buffer.from(JSON.stringify(meta));
      if (metaBytes.length > metaRoom) throw new RvmError("internal: snapshot metadata outgrew its room");
      const metaPadded = Buffer.alloc(metaRoom, 0x20); // JSON tolerates trailing spaces
      metaBytes.copy(metaPadded);
      writeSync(fd, metaPadded, 0, metaRoom, HEADER_SIZE);
      const header = encodeHeader({
        id, metaOffset: HEADER_SIZE, metaLength: metaRoom, mapOffset, mapLength: mapOnDisk.length, dataOffset, dataLength,
        digest: digestOf(metaPadded, mapIndex(mapOnDisk)), created: Date.now(), flags: FLAG_MAP_DEFLATED,
      });
      writeSync(fd, header, 0, header.length, 0);
      fsyncSync(fd);
      closeSync(fd);
      fd = undefined;
      // savevm of an existing name replaces it (as QEMU does); the old file stays, hidden, for as
      // long as some snapshot (perhaps this one) refers to it.
      store.retire(name);
      renameSync(tmp, store.pathFor(name));
      fsyncDir(store.dir);
    } catch (e) {
      if (direct !== undefined) closeSync(direct);
      if (fd !== undefined) closeSync(fd);
      try {
        unlinkSync(tmp);
      } catch {
        // nothing left behind
      }
      if (e instanceof RvmError) throw e;
      const code = (e as NodeJS.ErrnoException).code;
      throw new RvmError(`savevm ${name}: cannot write ${store.pathFor(name)} (${code === "ENOSPC" ? "disk full" : code ?? (e as Error).message})`);
    }
  } catch (e) {
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
