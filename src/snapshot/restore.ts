// loadvm: brings back RAM, hart, devices and disks as they were at savevm.
//
// `SnapshotPages` knows where every page of a checkpoint comes from (the file or one it refers
// to, a disk block as of the disk's mark, or zero fill) and verifies each page's hash as it is
// installed. The eager restore fills every page before the hart runs; the lazy restore
// (restore-lazy.ts) installs pages on demand through the same source.
//
// A failed restore leaves the disks exactly as they were before it began. What can be checked
// before a disk is touched is checked first: the file's header and metadata, the machine's
// fit, the files it refers to, each disk's journal (every record, its length and chain) and
// the marks the snapshot needs; the eager restore also reads and verifies every page before it
// reverts a disk. What can only fail later — a lazy restore's page met after the guest
// started: a damaged page or page-map chunk, a disk block changed behind rvm's back — undoes
// the disks' revert (DiskRevert.undo: the journal brings each disk back to its state before the
// restore, with what the guest wrote since) before the error is reported.

import { compiledCore, PAGE_SIZE, RAM_BASE, sharedMemoryWorks } from "../core.js";
import type { Machine } from "../machine.js";
import { GuestMemory } from "../memory.js";
import { PageEntry, PageKind, SnapshotError, SnapshotFile, SnapshotMeta } from "./format.js";
import { CLAIM, CTL, FetchEngine, FetchPlanSetup, FetchShared, failureOf, newFetchShared, PageError, STATE } from "./fetch-engine.js";
import type { FetchThreadData } from "./fetch-worker.js";
import { newReadQueues, ReaderData, ReadQueue, ReadQueueShared, stopReader } from "./read-queue.js";
import { hostCores, hostLoad, memoryAddress, startThread } from "../platform.js";
import { RamCheck } from "./ram-check.js";
import { attachJournals, setLineage } from "./save.js";
import { SnapshotStore } from "./store.js";
import { RvmError } from "../errors.js";
import type { DiskJournal, RevertHandle } from "./journal.js";

export class SnapshotPages {
  private readonly files: SnapshotFile[];
  private readonly journals = new Map<number, DiskJournal>();
  /** Guest RAM is zero where no page was installed yet (it was untouched): zero pages need no write. */
  ramZero = false;
  /** Bytes read from files and disks, and the number of reads (for the restore statistics). */
  bytesRead = 0;
  reads = 0;

  constructor(readonly snap: SnapshotFile, private readonly machine: Machine, store: SnapshotStore) {
    this.files = [snap];
    try {
      for (const r of snap.meta.refs) this.files.push(SnapshotFile.open(store.fileById(r.id)));
      for (const d of snap.meta.disks) {
        const drive = machine.drives.find((x) => x.index === d.index);
        if (!drive) throw new SnapshotError(snap.file, `refers to drive ${d.index} (${d.file}), which this machine does not have`);
        if (d.readonly || d.volatile) continue;
        // Opening the journal checks every record of it, its length and its chain.
        const j = store.journal(d.journal, drive.disk);
        if (d.journalId !== undefined && d.journalId !== j.journalId) {
          throw new SnapshotError(snap.file, `the disk journal ${j.file} is not the one this snapshot was taken with (it was replaced)`);
        }
        for (const g of [d.mark, ...(d.entryMarks ?? [])]) {
          if (!j.hasMark(g)) throw new SnapshotError(snap.file, `the disk journal ${j.file} no longer goes back to this snapshot (mark ${g} is gone)`);
        }
        this.journals.set(d.index, j);
      }
    } catch (e) {
      this.close();
      throw e;
    }
  }

  entry(page: number): PageEntry {
    return this.snap.entry(page);
  }

  /** The snapshot file and the files it refers to (ref 0, 1, ...). */
  get paths(): string[] {
    return this.files.map((f) => f.file);
  }

  /** Reads the stored bytes of one or more consecutive pages of file `ref` into `out`. */
  readStored(ref: number, offset: number, out: Uint8Array): void {
    const f = this.files[ref];
    if (!f) throw new SnapshotError(this.snap.file, `bad reference ${ref}`);
    f.read(offset, out);
    this.bytesRead += out.length;
    this.reads++;
  }

  /** Puts the content of `page` into RAM (its slot) and checks it; throws if it does not match. */
  install(page: number): void {
    const e = this.entry(page);
    const ram = this.machine.core.ram;
    const dst = ram.subarray(page * PAGE_SIZE, (page + 1) * PAGE_SIZE);
    switch (e.kind) {
      case PageKind.Zero:
        if (!this.ramZero) dst.fill(0);
        return;
      case PageKind.Stored:
      case PageKind.Same:
        this.readStored(e.ref, e.value, dst);
        break;
      case PageKind.Disk: {
        const { disk, block } = GuestMemory.splitBlockKey(e.value);
        const j = this.journals.get(disk);
        const drive = this.machine.drives.find((x) => x.index === disk);
        if (j) j.readBlock(block, e.mark, dst);
        else if (drive) drive.disk.read(dst, block * PAGE_SIZE);
        else throw new SnapshotError(this.snap.file, `page ${page} refers to missing drive ${disk}`);
        this.bytesRead += PAGE_SIZE;
        this.reads++;
        break;
      }
      default:
        throw new SnapshotError(this.snap.file, `page ${page}: unknown page kind ${e.kind as number}`);
    }
    this.verify(page, e);
  }

  /** Whether a disk-backed entry's page still equals its block on the live disk now. */
  stillMirrors(e: PageEntry): boolean {
    if (e.kind !== PageKind.Disk) return false;
    const { disk, block } = GuestMemory.splitBlockKey(e.value);
    const j = this.journals.get(disk);
    return !j || !j.changedSince(block, e.mark);
  }

  /**
   * After `page` was installed: marks it disk-backed again when it still mirrors its block on
   * the live disk (not when the block changed after the snapshot's mark: the page is then only
   * in the journal).
   */
  remarkDiskBacked(page: number): void {
    const e = this.entry(page);
    if (!this.stillMirrors(e)) return;
    const { disk, block } = GuestMemory.splitBlockKey(e.value);
    this.machine.mem.noteDiskBacked(GuestMemory.pageAddress(page), block, disk);
  }

  /** Checks a page now in RAM against its recorded hash. */
  verify(page: number, e: PageEntry = this.entry(page)): void {
    if (e.kind === PageKind.Zero) return;
    const h = BigInt.asUintN(64, this.machine.core.exports.pageHash(page)); // i64 crosses as signed
    if (h !== e.hash) {
      const where = e.kind === PageKind.Disk ? "its disk block changed or is unreadable" : "checksum mismatch in the snapshot data";
      throw new SnapshotError(this.snap.file, `page ${page} (guest-physical 0x${(RAM_BASE + page * PAGE_SIZE).toString(16)}): ${where}`);
    }
  }

  close(): void {
    for (const f of this.files.slice(1)) f.close();
  }
}

/** A restore failed after it had started changing the machine: the VM must not run on. */
export class RestoreFailedError extends RvmError {
  constructor(cause: Error) {
    super(`${cause.message}; the VM is stopped (its memory is incomplete)`);
    this.name = "RestoreFailedError";
  }
}

/** The disks' reverts of a restore in progress: committed when it succeeds, undone when it fails. */
export class DiskRevert {
  private settled = false;

  constructor(private readonly reverts: { journal: DiskJournal; handle: RevertHandle }[]) {}

  /** The restore succeeded (or the VM went on from it): the reverts stand. */
  commit(): void {
    if (this.settled) return;
    this.settled = true;
    for (const r of this.reverts) r.journal.commitRevert(r.handle);
  }

  /** The restore failed: every disk back to its state before the restore began. */
  undo(): void {
    if (this.settled) return;
    this.settled = true;
    for (const r of [...this.reverts].reverse()) r.journal.undoRevert(r.handle);
  }
}

/** The store whose journals a machine tidies when it ends (see revertDisks). */
const tidyAtExit = new WeakMap<Machine, SnapshotStore>();

/** Brings every writable disk back to its mark, undoably (see DiskJournal.beginRevert). */
export function revertDisks(machine: Machine, store: SnapshotStore, meta: SnapshotMeta): DiskRevert {
  attachJournals(machine, store);
  // Every revert leaves an undo mark, and under it the old contents of what the guest writes
  // next: when the VM ends, a journal whose dead part dominates is compacted. First among the
  // exit handlers, while the disks are open and locked (no other rvm can use the journal then).
  if (!tidyAtExit.has(machine)) {
    machine.onExit.unshift(() => {
      try {
        tidyAtExit.get(machine)?.tidyJournals();
      } catch {
        // the journal stays as it was: valid, only larger
      }
    });
  }
  tidyAtExit.set(machine, store);
  const done: { journal: DiskJournal; handle: RevertHandle }[] = [];
  try {
    for (const d of meta.disks) {
      if (d.readonly || d.volatile) continue;
      const drive = machine.drives.find((x) => x.index === d.index)!;
      const journal = store.journal(d.journal, drive.disk);
      done.push({ journal, handle: journal.beginRevert(d.mark) });
    }
  } catch (e) {
    new DiskRevert(done).undo();
    throw e;
  }
  return new DiskRevert(done);
}

/** Checks that a snapshot fits this machine before anything is changed. */
export function checkCompatible(snap: SnapshotFile, machine: Machine): void {
  const m = snap.meta;
  if (m.ramBytes !== machine.core.ramBytes) {
    throw new SnapshotError(snap.file, `was taken with ${m.ramBytes >> 20} MiB of RAM, this machine has ${machine.core.ramBytes >> 20} MiB (use -m ${m.ramBytes >> 20}M)`);
  }
  if (m.harts.length !== machine.core.harts) {
    throw new SnapshotError(snap.file, `was taken with ${m.harts.length} harts, this machine has ${machine.core.harts} (use -smp ${m.harts.length})`);
  }
  const [state] = machine.core.hartStates();
  if (m.harts.some((h) => Buffer.from(h, "base64").length !== state.length) ||
      Buffer.from(m.machine, "base64").length !== machine.core.machineState().length) {
    throw new SnapshotError(snap.file, "hart state of a different rvm build (size mismatch)");
  }
  // The virtio-mmio transport's registers mean different things in the two layouts.
  const legacy = (m.config as { virtioLegacy?: boolean }).virtioLegacy ?? false;
  if (legacy !== ((machine.config as { virtioLegacy?: boolean }).virtioLegacy ?? false)) {
    throw new SnapshotError(snap.file, `was taken with the ${legacy ? "legacy" : "modern"} virtio-mmio transport (add -global virtio-mmio.force-legacy=${legacy ? "on" : "off"})`);
  }
  for (const d of m.disks) {
    const drive = machine.drives.find((x) => x.index === d.index);
    if (!drive) throw new SnapshotError(snap.file, `needs drive ${d.index} (${d.file})`);
    if (drive.disk.size !== d.size) throw new SnapshotError(snap.file, `drive ${d.index} is ${drive.disk.size} bytes, was ${d.size} at savevm`);
    if (!d.readonly && !d.volatile && (drive.readonly || drive.disk.volatile)) {
      throw new SnapshotError(snap.file, `drive ${d.index} (${drive.file}) was a writable image at savevm and is ${drive.readonly ? "read-only" : "compressed"} now: its disk cannot be brought back`);
    }
    if (drive.disk.volatile && drive.disk.written) {
      throw new SnapshotError(snap.file, `drive ${d.index} (${drive.file}) keeps the guest's writes in memory only, and the guest has written to it since it was opened: its disk cannot be brought back to the snapshot`);
    }
  }
  for (const name of Object.keys(m.devices)) {
    if (!machine.stateful.some((d) => d.name === name)) throw new SnapshotError(snap.file, `has state for device ${name}, which this machine lacks`);
  }
}

/** Harts, devices, ROM, HTIF and guest time (any snapshot store's metadata has these). */
export function restoreHartAndDevices(machine: Machine, meta: Pick<SnapshotMeta, "harts" | "machine" | "devices" | "rom" | "htif">): void {
  const states = machine.core.hartStates();
  meta.harts.forEach((h, i) => states[i].set(Buffer.from(h, "base64")));
  machine.core.machineState().set(Buffer.from(meta.machine, "base64"));
  machine.core.exports.hartsRestored();
  for (const dev of machine.stateful) {
    if (dev.name in meta.devices) dev.restore(meta.devices[dev.name]);
  }
  machine.core.rom.set(Buffer.from(meta.rom, "base64"), 0x1000);
  if (meta.htif) machine.attachHtif(meta.htif.tohost, meta.htif.fromhost);
  machine.timeRestored();
  machine.mem.untouched = false; // RAM is (becoming) the snapshot's: no longer known to be zero
}

export interface RestoreResult {
  meta: SnapshotMeta;
  ms: number;
  bytesRead: number;
  reads: number;
  /** Pages the helper thread brought in (0: it had none, or there was none). */
  helperPages: number;
  /** Runs of the hart thread's share that the reader thread read (0: no reader). */
  readerRuns: number;
  /** The pages read straight into RAM were checked through the kernel's copy (ram-check.ts). */
  kernelCopyCheck: boolean;
  /** When the hart thread's plan was made and its first read could go out (ms after the restore began). */
  planMs?: number;
}

/** The eager restore's progress: pages in so far, of all. */
export type RestoreProgress = (done: number, total: number) => void;

export interface EagerOptions {
  /**
   * Whether half of the data area is read and checked on a helper thread (where guest RAM is
   * shared memory and the host has two cores); default: when it holds 64 MiB or more, the host
   * is not busy (load average below its cores: on a busy host the second thread only adds CPU
   * time, measured below under EAGER_HELPER_MIN_BYTES), and the pages are checked in place (what
   * the second core shares is their first touches; checked through the kernel's copy there are
   * none, and the helper only added CPU time and wall time: docs/ARCHITECTURE.md). "split"
   * (tests): always, and the hart's thread begins only once the helper has its plan, so that
   * both surely take part.
   */
  helper?: boolean | "split";
  /** false (tests, measurements): no reader thread; each checking thread reads its runs itself. */
  reader?: boolean;
  /** false (tests, measurements): pages read straight into RAM are checked in place, not through the kernel's copy. */
  kernelCopyCheck?: boolean;
}

/**
 * Below this much page data a helper thread costs more than it saves (it takes ~0.1 s of CPU to
 * start, and decodes the page map again). What it saves: on these hosts the first touch of a
 * fresh page of RAM is the restore's main cost (docs/ARCHITECTURE.md, issue 15), and two cores
 * take it in parallel (1.7x in C on an idle host); on a host whose cores are busy it added
 * 0.5-1.0 s of CPU time to a 792 MiB restore and no speed (load 4.5-5 on 2 cores).
 */
const EAGER_HELPER_MIN_BYTES = 64 << 20;

/** The eager restore's helper thread, running the back half of the fetch (fetch-worker.ts). */
interface EagerHelper {
  readonly ctl: Int32Array;
  readonly shared: FetchShared;
  bytes(): number;
  /** Waits until it has made its plan (or ended). */
  planned(): void;
  /** Returns once it will write no more page (waiting for it if it started); stops it first if `failed`. */
  finish(failed: boolean, tick: () => void): void;
}

/**
 * Where guest RAM is shared memory and the host has a second core: a starter for a helper
 * thread. It shares the page claims (and origins) with the hart's thread and has the rest of the
 * control block to itself.
 */
function eagerHelper(machine: Machine): { start(setup: FetchPlanSetup, main: FetchShared, dataSlots: number, reader?: ReadQueueShared, ramVirtual?: number): EagerHelper | undefined } | undefined {
  if (!sharedMemoryWorks || hostCores < 2) return undefined;
  const core = machine.core;
  return {
    start(setup, main, dataSlots, reader, ramVirtual) {
      const own = newFetchShared(setup.pages, dataSlots, true);
      const shared: FetchShared = { ...own, claims: main.claims, origin: main.origin };
      const ctl = new Int32Array(shared.ctl);
      const data: FetchThreadData = { setup, shared, module: compiledCore(), memory: core.exports.memory, ramAddress: core.exports.ramAddress(), reader, ramVirtual };
      // (A thread that fails before its fetch starts never claims a page: the hart's thread
      // then does them all, and does not wait for it.)
      const thread = startThread("snapshot/fetch-worker.js", data, () => undefined);
      if (!thread) return undefined;
      return {
        ctl, shared,
        bytes: () => Atomics.load(ctl, CTL.kibRead) * 1024,
        planned() {
          const t = performance.now();
          while (Atomics.load(ctl, CTL.planMs) === 0 && Atomics.load(ctl, CTL.state) === STATE.running && performance.now() - t < 60_000) {
            Atomics.wait(ctl, CTL.slotsReady, 0, 20);
          }
        },
        finish(failed, tick) {
          // A thread that had not started its fetch when every page was claimed here can write
          // none of them: it is told to stop, and not waited for. One that started always
          // settles (fetch-worker.ts); it is stopped only when the restore failed (a page it
          // claimed and was then stopped before reading stays unfinished).
          const started = Atomics.load(ctl, CTL.startedMs) !== 0;
          if (failed || !started) {
            Atomics.store(ctl, CTL.stop, 1);
            Atomics.notify(ctl, CTL.stop);
          }
          if (started) {
            while (Atomics.load(ctl, CTL.state) === STATE.running) {
              Atomics.wait(ctl, CTL.state, STATE.running, 100);
              tick();
            }
          }
          thread.terminate();
        },
      };
    },
  };
}

/** Reads in flight per checking thread on the reader thread (1 MiB each). */
const READ_IN_FLIGHT = 4;

/**
 * The eager restore's reader thread (read-worker.ts), for a data area read with O_DIRECT:
 * `queues` checking threads post their runs' reads to it and check earlier runs meanwhile.
 * Undefined where guest RAM is not shared memory (or threads cannot be started).
 */
function startReader(machine: Machine, files: string[], queues: number): ReadQueueShared | undefined {
  if (!sharedMemoryWorks) return undefined;
  const shared = newReadQueues(queues);
  const core = machine.core;
  const data: ReaderData = {
    ...shared, files, queues, inFlight: READ_IN_FLIGHT, memory: core.exports.memory, ramAddress: core.exports.ramAddress(), ramBytes: core.ramBytes,
  };
  // (A thread that never starts reads nothing: the checking threads' waits give up after a minute.)
  const thread = startThread("snapshot/read-worker.js", data, () => undefined);
  if (!thread) return undefined;
  readerThreads.set(shared, thread);
  return shared;
}
const readerThreads = new WeakMap<ReadQueueShared, { terminate(): void }>();

/** The reader is told to stop and, once it will write nothing more, ended; throws if it does not settle. */
function endReader(shared: ReadQueueShared, file: string): void {
  const settled = stopReader(shared, 60_000);
  readerThreads.get(shared)?.terminate();
  if (!settled) throw new SnapshotError(file, "the restore's reader thread did not finish");
}

/** Pages per read of the eager restore (1 MiB: the bounce buffer stays in the CPU's cache). */
const EAGER_RUN_PAGES = 256;

/**
 * The eager restore: every page in and verified, then the disks are reverted and hart and
 * devices restored; then the hart may run. A page that fails leaves the disks untouched.
 *
 * The pages come in through the lazy restore's fetch engine, run to its end here on the hart's
 * thread: the data area in file order in 1 MiB reads (copied into RAM as a whole where a read
 * holds consecutive pages), each page checked in the core against the hash in the map (no per-page
 * object or BigInt), same-as pages copied from their twin; zero pages are not written at all to
 * a machine whose RAM is untouched (writing would only make the host commit the memory). Then
 * the disk-backed pages, from the journals as of the marks (the disks are not reverted yet).
 * A large data area on a host with a core to spare is split with a helper thread (EagerOptions):
 * it takes the runs from the last one down, over the same page claims. A data area read with
 * O_DIRECT is read by a reader thread (read-worker.ts), up to 8 MiB ahead of each checking
 * thread, so that the device's time no longer adds to the wall time.
 */
export function restoreEager(machine: Machine, store: SnapshotStore, file: string, progress?: RestoreProgress, opts: EagerOptions = {}): RestoreResult {
  const t0 = performance.now();
  const snap = SnapshotFile.open(file);
  try {
    checkCompatible(snap, machine);
    const source = new SnapshotPages(snap, machine, store);
    try {
      let bytesRead = 0, reads = 0, helperPages = 0, readerRuns = 0, kernelCopyCheck = false, planMs: number | undefined;
      try {
        const core = machine.core;
        const pages = snap.pages;
        const dataSlots = snap.header.dataLength / PAGE_SIZE;
        const directReads = snap.meta.stats.directIo === true;
        // Pages the device writes straight into RAM are checked through the kernel's copy of them
        // (ram-check.ts: no user-space first touch of each fresh page before the guest runs).
        const base = directReads && opts.kernelCopyCheck !== false ? memoryAddress(core.exports.memory, core.exports.scratchAddress()) : undefined;
        const ramVirtual = base === undefined ? undefined : base + core.exports.ramAddress();
        // A helper thread where the first touches are this thread's to take (see EagerOptions).
        const helper = (opts.helper ?? (ramVirtual === undefined && snap.header.dataLength >= EAGER_HELPER_MIN_BYTES && hostLoad() < hostCores)) ? eagerHelper(machine) : undefined;
        const shared = newFetchShared(pages, dataSlots, helper !== undefined);
        const setup: FetchPlanSetup = {
          createdAt: performance.timeOrigin + performance.now(), pages, files: source.paths, dataOffset: snap.header.dataOffset,
          order: "file", runPages: EAGER_RUN_PAGES, bytesPerSecond: 0, ramZero: machine.mem.untouched, runnableShare: 1, wholeRuns: true,
          // Read the way it was written: after an O_DIRECT save none of the data is in the page
          // cache, and filling the cache as it goes by costs ~0.4 s of CPU per 768 MiB here.
          directReads,
        };
        core.exports.markClean(); // (RAM is overwritten from here: its clean pages are no longer zero)
        core.pages.fill(0);
        machine.mem.clearDiskBlocks();
        const ctl = new Int32Array(shared.ctl);
        // The other half of the data area on a thread of its own (the first write to each fresh
        // page of RAM is the restore's main cost: two cores take it in parallel).
        // The device's reads on a thread of their own, ahead of the checks (both threads' queues).
        const reader = setup.directReads && opts.reader !== false ? startReader(machine, source.paths, helper ? 2 : 1) : undefined;
        const other = helper?.start({ ...setup, half: "back" }, shared, dataSlots, reader, ramVirtual);
        if (other) setup.half = "front";
        if (other && opts.helper === "split") other.planned();
        const engine = new FetchEngine(setup, shared, core.ram, (p, lo, hi) => core.exports.pageHashIs(p, lo, hi) !== 0);
        if (reader) engine.reader = new ReadQueue(reader, 0);
        engine.ramCheck = RamCheck.open(ramVirtual, compiledCore(), core.exports.ramAddress());
        kernelCopyCheck = engine.ramCheck !== undefined;
        const done = () => ctl[CTL.readyCount] + (other ? Atomics.load(other.ctl, CTL.readyCount) : 0);
        try {
          let ok = false;
          try {
            for (const _ of engine.run()) progress?.(done(), pages);
            ok = true;
          } finally {
            // Whatever happened here, the helper and the reader are done before RAM is anyone
            // else's (on a failure the reader is stopped first: a helper waiting for a read ends).
            if (!ok && reader) stopReader(reader, 0);
            try {
              other?.finish(!ok, () => progress?.(done(), pages));
            } finally {
              engine.ramCheck?.close();
              if (reader) endReader(reader, file);
            }
          }
          const failed = other && failureOf(other.shared);
          if (failed?.page !== undefined) throw new PageError(failed.page, failed.message);
          if (failed) throw new SnapshotError(file, failed.message);
        } catch (e) {
          // The page's bytes are in RAM: the check again, with the page named as everywhere.
          if (e instanceof PageError) source.verify(e.page);
          throw e;
        }
        helperPages = other ? Atomics.load(other.ctl, CTL.readyCount) : 0;
        readerRuns = engine.readerRuns;
        planMs = ctl[CTL.planMs] + (setup.createdAt - performance.timeOrigin - t0);
        bytesRead = engine.bytes + (other?.bytes() ?? 0);
        reads = ctl[CTL.reads] + (other ? Atomics.load(other.ctl, CTL.reads) : 0);
        const disk = new Int32Array(shared.disk).subarray(0, ctl[CTL.diskCount]);
        const claims = new Int32Array(shared.claims);
        for (const p of disk) {
          source.install(p);
          claims[p] = CLAIM.ready;
        }
        // (A guard: every page is in, whichever thread brought it.)
        for (let p = 0; p < pages; p++) if (claims[p] !== CLAIM.ready) throw new SnapshotError(file, `page ${p} was not restored (internal error)`);
        progress?.(pages, pages);
        // Every page checked: now the disks, then hart and devices (which set the HTIF watch bit).
        revertDisks(machine, store, snap.meta).commit();
        restoreHartAndDevices(machine, snap.meta);
        for (const p of disk) source.remarkDiskBacked(p);
      } catch (e) {
        throw e instanceof RvmError ? new RestoreFailedError(e) : e;
      }
      machine.core.exports.markClean();
      machine.core.exports.pagesChanged();
      setLineage(machine, { id: snap.meta.id, file });
      return { meta: snap.meta, ms: performance.now() - t0, bytesRead: bytesRead + source.bytesRead, reads: reads + source.reads, helperPages, readerRuns, kernelCopyCheck, planMs };
    } finally {
      source.close();
    }
  } finally {
    snap.close();
  }
}
