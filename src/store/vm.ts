// A VM whose snapshots live in an object store (--snapshot-store s3://BUCKET/PREFIX): its
// disks, the monitor's savevm / loadvm / delvm / info snapshots / info savevm, and the
// offline commands (`rvm snapshot ls|info|rm`, `rvm store gc|push-image|du`).
//
// With an object store a drive's image is only read: the guest's writes go to an overlay in
// memory, and savevm stores them (as content-addressed blocks) with the snapshot. A VM restored
// from the store reads its disks by block from the store; nothing but the store URL and the
// credentials is needed on that host.

import { openSync, readSync, closeSync, fstatSync } from "node:fs";
import { resolve } from "node:path";
import type { Machine } from "../machine.js";
import type { Monitor } from "../monitor.js";
import { RvmError } from "../errors.js";
import type { BlockBackend } from "../devices/disk.js";
import { RawDisk } from "../devices/disk.js";
import type { DriveConfig } from "../options.js";
import {
  beginSave, ContentStore, decodeWorkingSet, finishSave, ImageManifest, IndexCache, keys, Manifest, MapBuilder, newId, PackWriter, sha256, StoreMap,
} from "./cas.js";
import { S3ObjectStore } from "./objects.js";
import { SyncReader } from "./sync.js";
import { BackgroundCapture, machineState, saveToStore, stoppedCapture, StoreSaveStats } from "./save.js";
import { DEFAULT_DEADLINE_MS, hotPages, hotReads, PageCache, prefetchWorkingSet, StoreDisk, StoreLink, StoreRestore, type WsPrefetch } from "./restore.js";
import { defaultName } from "../snapshot/save.js";
import { checkName } from "../snapshot/store.js";
import { RestoreFailedError } from "../snapshot/restore.js";
import { monitorWork, type SnapshotControl } from "../snapshot/commands.js";
import { markProcess, type RestoreTimeline } from "../snapshot/timeline.js";

const MiB = 1 << 20;
const ZERO_BLOCK = Buffer.alloc(4096);

function size(bytes: number): string {
  if (bytes >= 10 * MiB) return `${(bytes / MiB).toFixed(0)} MiB`;
  if (bytes >= MiB) return `${(bytes / MiB).toFixed(1)} MiB`;
  return `${(bytes / 1024).toFixed(1)} KiB`;
}

/** Whether a --snapshot-store URL names an object store (else a directory: file:DIR or DIR). */
export function isObjectStoreUrl(url: string): boolean {
  return url.startsWith("s3://");
}

/** The directory of a file: URL (or a plain path). */
export function storeDir(url: string): string {
  return resolve(url.replace(/^file:(\/\/)?/, ""));
}

class MemoryIndexCache implements IndexCache {
  private readonly m = new Map<string, Buffer[]>();
  get(id: string) {
    return this.m.get(id);
  }
  set(id: string, h: Buffer[]) {
    this.m.set(id, h);
  }
}

export interface StoreVmOptions {
  deadlineMs?: number;
}

/** The object store a running rvm saves to and restores from. */
/** How long a restore waits for the snapshot's hot list once its manifest is in (ms). */
const HOT_WAIT_MS = 100;

export class StoreVm {
  readonly cs: ContentStore;
  readonly link: StoreLink;
  readonly cache = new PageCache();
  readonly indexCache = new MemoryIndexCache();
  private readonly objects: S3ObjectStore;
  /** The manifest to restore at start (rvm restore / -loadvm), read before the machine is built. */
  private initial: Manifest | undefined;
  /** The RAM map of `initial` (its first chunk requested by prepare). */
  private initialRam: StoreMap | undefined;
  /** The working set's first reads of `initial` (sent by prepare). */
  private initialWs: WsPrefetch | undefined;
  /** Each drive's disk, by index. */
  readonly disks = new Map<number, StoreDisk>();
  current: StoreRestore | undefined;
  /** The background save running (savevm -b), or the last one. */
  saving: BackgroundSave | undefined;

  constructor(readonly url: string, opts: StoreVmOptions = {}) {
    this.objects = S3ObjectStore.fromUrl(url, { requestTimeoutMs: 10_000, maxAttempts: 2 });
    this.cs = new ContentStore(this.objects);
    this.link = new StoreLink(this.cs, opts.deadlineMs ?? DEFAULT_DEADLINE_MS, new SyncReader(url, { requestTimeoutMs: 10_000, maxAttempts: 1 }));
  }

  /** Reads the manifest a start-up restore uses (before the machine exists: its config). */
  async prepare(name: string, mode: "lazy" | "eager" = "lazy"): Promise<Manifest> {
    // Connections for the requests sent below, opened while the SDK loads (the manifest's and the
    // hot list's GETs take one each; the reads after the manifest the others, and open their own
    // beyond them, waited for below). Two instead of eight saved ~5-7 ms of the main thread before
    // the manifest, but the whole working set was then in 25-115 ms later (medians of eight A/Bs;
    // session 11, pre11, ARCHITECTURE.md): eight stay.
    this.objects.preconnect(8);
    // The synchronous reader's thread (DMA into a page not yet restored, disk reads) boots its
    // own isolate and SDK (~0.1-0.3 s of CPU): in a lazy restore it starts on its first use or
    // once every page is resident (StoreRestore), not here, where it took CPU on the 2-core host
    // that the way to the guest's first answer needs.
    if (mode === "eager") this.link.sync.warm(keys.manifest(name));
    // The manifest's GET first (the first connection back from preconnect), then the snapshot's
    // hot list (an earlier restore's first pages), asked for with it.
    const manifest = this.link.run(`snapshot ${name}`, () => this.cs.readManifest(name));
    const hot = mode === "lazy" ? this.cs.readHot(name).catch(() => undefined) : undefined;
    this.initial = await manifest;
    // Only an order: never waited for beyond a moment after the manifest (a slow store).
    const h = await Promise.race([hot, new Promise<undefined>((r) => setTimeout(r, HOT_WAIT_MS))]);
    if (h && h.id === this.initial.id) {
      hotPages.set(this.initial, h.pages);
      if (h.reads) hotReads.set(this.initial, h.reads);
    }
    markProcess("manifest read");
    // The restore's first requests go out now, while the machine is built from the manifest:
    // the working set's reads the manifest locates (the harts' first pages), the RAM map's first
    // chunk, the indexes of the packs the working set is in and the working set's other first
    // reads (failures are left to the restore, which makes these requests again with its
    // retries).
    const m = this.initial;
    this.initialRam = new StoreMap(this.cs.objects, m.map, `snapshot ${name}`);
    let restSent = false;
    const rest = (packs: Set<string> = new Set()) => {
      restSent = true;
      this.initialRam!.load(0).catch(() => undefined);
      for (const p of packs) this.cs.packLayout(p).catch(() => undefined);
    };
    try {
      if (mode === "lazy") this.initialWs = prefetchWorkingSet(this.cs, m, rest);
    } catch {
      // a damaged list: the restore reports it
    }
    if (!restSent) {
      let packs: Set<string> | undefined;
      try {
        packs = new Set(m.workingSet ? decodeWorkingSet(m.workingSet, m.packs, name).map((x) => x.pack) : []);
      } catch {
        // a damaged list: the restore reports it
      }
      rest(packs);
    }
    // Let the requests leave before the machine is built (synchronous work): a turn of the event
    // loop for those on open connections, and the new connections' opening (one more turn on
    // loopback, a round trip on a network; at most 20 ms). The turn that read the manifest was
    // the event loop's I/O phase, which setImmediate does not come back to before it runs.
    await new Promise((r) => setImmediate(r));
    await this.objects.opened(20);
    return m;
  }

  /**
   * The board's drive opener: a restore's disks come from the store, otherwise the image file
   * is read (never written) under an overlay.
   */
  openDisk = (drive: DriveConfig, index: number): BlockBackend => {
    const rec = this.initial?.disks.find((d) => d.index === index);
    let disk: StoreDisk;
    if (rec) {
      disk = StoreDisk.fromMap(this.link, new StoreMap(this.cs.objects, rec.map, `snapshot ${this.initial!.name}`), rec.size, drive.readonly, this.cache, drive.file);
    } else {
      const base = RawDisk.open(drive.file, { readOnly: true });
      disk = StoreDisk.overFile(this.link, base, drive.readonly, this.cache, drive.file);
      if (!drive.readonly) {
        process.stderr.write(`rvm: with snapshots in ${this.url}, ${drive.file} is only read: the guest's writes stay in memory until savevm stores them\n`);
      }
    }
    this.disks.set(index, disk);
    return disk;
  };

  /** Restores snapshot `name` into the machine (lazy: returns once the hart may run). */
  async restore(machine: Machine, name: string, mode: "lazy" | "eager", timeline?: RestoreTimeline): Promise<StoreRestore> {
    if (this.initial?.name !== name) this.link.sync.warm(keys.manifest(name));
    const manifest = this.initial?.name === name ? this.initial : await this.link.run(`snapshot ${name}`, () => this.cs.readManifest(name));
    const maps = new Map(manifest.disks.map((d) => [d.index, new StoreMap(this.cs.objects, d.map, `snapshot ${name}`)]));
    this.current?.cancel();
    const ram = this.initial?.name === name ? this.initialRam : undefined;
    const wsReads = this.initial?.name === name ? this.initialWs : undefined;
    const r = await StoreRestore.start(machine, this.link, manifest, { mode, timeline, ram, wsReads }, maps, () => {
      for (const d of manifest.disks) this.disks.get(d.index)?.reset(maps.get(d.index)!);
    });
    this.current = r;
    for (const d of this.disks.values()) d.timeline = r.timeline;
    this.initial = undefined;
    this.initialRam = undefined;
    this.initialWs = undefined;
    return r;
  }

  /**
   * Stop-and-save: the machine is stopped (at a slice boundary) until the save is complete
   * (manifest written, lock released); the manifest returned says that whole pause, a lazy
   * restore still running (completed first) included.
   */
  async save(machine: Machine, name: string, progress?: (done: number, total: number) => void): Promise<Manifest> {
    const t0 = performance.now();
    if (this.current && !this.current.complete) await this.current.completeNow();
    const writes = new Map([...this.disks].map(([i, d]) => [i, d.takeDirty()]));
    const capture = stoppedCapture(machine, writes);
    const state = machineState(machine);
    const first = machine.firstPages();
    const tables = machine.tablePages();
    machine.core.exports.markClean();
    return saveToStore(machine, this.cs, name, state, capture, (p) => machine.recentlyAccessed(p), { progress, cache: this.indexCache, t0, first, tables });
  }

  /**
   * savevm -b: takes the capture at a slice boundary (the guest's only pause), then saves while
   * the guest runs. Resolves once the guest runs again; `saving.promise` when the save is done.
   */
  async saveBackground(machine: Machine, name: string): Promise<BackgroundSave> {
    checkName(name);
    if (this.saving && !this.saving.finished) throw new RvmError(`savevm ${this.saving.name} is still running in the background`);
    // A lazy restore still running: its pages come in first (the guest runs meanwhile).
    if (this.current && !this.current.complete) await this.current.completeNow();
    const job = await machine.atBoundary(() => {
      const t0 = performance.now();
      const first = machine.firstPages(); // before the capture marks every page not restored
      const tables = machine.tablePages();
      const capture = new BackgroundCapture(machine, this.disks);
      const state = machineState(machine);
      const pauseMs = performance.now() - t0;
      return new BackgroundSave(name, capture, state, pauseMs, t0, first, tables);
    });
    this.saving = job;
    job.promise = saveToStore(machine, this.cs, name, job.state, job.capture, (p) => job.capture.isHot(p), {
      background: true, pauseMs: job.pauseMs, t0: job.t0, cache: this.indexCache, first: job.first, tables: job.tables,
      progress: (done, total) => {
        job.done = done;
        job.total = total;
      },
      cancelled: () => job.abandoned || job.capture.cancelled,
    }).then((m) => {
      job.manifest = m;
      return m;
    }, (e: Error) => {
      job.error = e;
      return undefined;
    }).finally(() => {
      job.capture.end();
      job.finished = performance.now();
    });
    return job;
  }

  close(): void {
    if (this.saving && !this.saving.finished) this.saving.abandoned = true;
    this.link.sync.close();
    void this.objects.close();
  }
}

/** A savevm -b: its capture, progress and outcome. */
export class BackgroundSave {
  done = 0;
  total = 0;
  abandoned = false;
  finished: number | undefined;
  manifest: Manifest | undefined;
  error: Error | undefined;
  promise: Promise<Manifest | undefined> = Promise.resolve(undefined);
  constructor(
    readonly name: string, readonly capture: BackgroundCapture, readonly state: Record<string, unknown> & { ramBytes: number },
    readonly pauseMs: number, readonly t0: number, readonly first: number[] = [], readonly tables: number[] = [],
  ) {}

  /** `info savevm`. */
  progress(): string {
    const secs = ((this.finished ?? performance.now()) - this.t0) / 1000;
    const pause = `guest paused ${this.pauseMs.toFixed(1)} ms`;
    if (this.manifest) {
      const s = this.manifest.meta.stats as StoreSaveStats;
      return `savevm ${this.name}: complete in ${secs.toFixed(2)} s (background, ${pause}; ${this.capture.copied} pages copied ahead of the guest), ` +
        `${size(s.uploadedBytes)} uploaded\n`;
    }
    if (this.error) return `savevm ${this.name}: failed: ${this.error.message}\n`;
    if (this.finished) return `savevm ${this.name}: abandoned\n`;
    const pct = this.total ? ((100 * this.done) / this.total).toFixed(1) : "0.0";
    return `savevm ${this.name}: in progress (background, ${pause}), ${this.done}/${this.total || "?"} pages (${pct}%), ` +
      `${this.capture.copied} copied ahead of the guest, ${secs.toFixed(2)} s\n`;
  }
}

/**
 * The monitor's savevm, loadvm, delvm, info snapshots and info restore on an object store
 * (replacing the snapshot directory's). `ctl` is the directory commands' control: its restore
 * mode, progress output, and `current` (the last restore, for info restore and --stats).
 */
export function addStoreCommands(monitor: Monitor, machine: Machine, vm: StoreVm, ctl: SnapshotControl): void {
  const wrap = monitorWork;
  monitor.define("savevm", "savevm [-b] [tag]", `save a VM snapshot into ${vm.url}. If no tag is provided, a new snapshot is created; ` +
    "-b saves in the background: the guest runs on, the snapshot is of the instant the command ran", (args) =>
    args[0] === "-b" ? wrap(async () => {
      const job = await vm.saveBackground(machine, args[1] ?? defaultName());
      return `savevm ${job.name}: saving in the background (guest paused ${job.pauseMs.toFixed(1)} ms); info savevm shows progress\n`;
    }) : wrap(() => machine.atBoundary(async () => {
      const m = await vm.save(machine, args[0] ?? defaultName());
      const s = m.meta.stats as StoreSaveStats;
      return `saved ${m.name} to ${vm.url}: ${size(s.uploadedBytes)} uploaded (pages: zero ${s.zero}, in the store already ${s.deduped}, ` +
        `unchanged ${s.inherited}, uploaded ${s.uploaded}; disk blocks uploaded ${s.diskUploaded}) in ${s.saveMs} ms\n`;
    })));
  monitor.define("loadvm", "loadvm tag", `restore a VM snapshot from ${vm.url}`, (args) =>
    wrap(() => {
      if (!args[0]) throw new RvmError("loadvm needs a snapshot tag");
      const mode = ctl.restore?.mode ?? "lazy";
      return machine.atBoundary(async () => {
        let r: StoreRestore;
        try {
          r = await vm.restore(machine, args[0], mode);
        } catch (e) {
          if (e instanceof RestoreFailedError) machine.pause();
          throw e;
        }
        ctl.current = r;
        return mode === "lazy" ? "" : r.progress();
      });
    }));
  monitor.define("delvm", "delvm tag", `delete a VM snapshot from ${vm.url}`, (args) =>
    wrap(async () => {
      if (!args[0]) throw new RvmError("delvm needs a snapshot tag");
      await vm.cs.deleteSnapshot(args[0]);
      return "";
    }));
  monitor.defineInfo("snapshots", `show the VM snapshots in ${vm.url}`, () => wrap(async () => formatStoreList(await vm.cs.manifests())));
  monitor.defineInfo("savevm", "show the progress of a background savevm", () => vm.saving ? vm.saving.progress() : "no savevm -b has run\n");
  // quit during a background save waits for it; a second quit abandons it (no snapshot).
  let quitting = false;
  const quit = () => {
    const job = vm.saving;
    if (job && !job.finished && !quitting) {
      quitting = true;
      void job.promise.finally(() => machine.requestStop(0));
      return `savevm ${job.name} is still running: quitting when it is complete (quit again to abandon it)\n`;
    }
    if (job && !job.finished) job.abandoned = true;
    machine.requestStop(0);
    return "";
  };
  monitor.define("quit", "quit|q", "quit the emulator (waits for a background savevm; quit again to abandon it)", quit);
  monitor.define("q", "", "", quit);
}

/** QEMU-like table of the snapshots in an object store. */
export function formatStoreList(list: Manifest[]): string {
  if (list.length === 0) return "There is no snapshot available.\n";
  const rows = list.map((m, i) => {
    const s = m.meta.stats as StoreSaveStats | undefined;
    return [String(i + 1), m.name, size(s?.uploadedBytes ?? 0), m.created.replace("T", " ").slice(0, 19), `${m.meta.ramBytes >> 20} MiB`];
  });
  const head = ["ID", "TAG", "UPLOADED", "DATE", "RAM"];
  const w = head.map((h, c) => Math.max(h.length, ...rows.map((r) => r[c].length)));
  const line = (r: string[]) => r.map((x, c) => x.padEnd(w[c])).join("  ").trimEnd();
  return [line(head), ...rows.map(line)].join("\n") + "\n";
}

export function formatStoreInfo(m: Manifest, url: string): string {
  const s = m.meta.stats as StoreSaveStats;
  const pct = (n: number, d: number) => (d === 0 ? "-" : `${((100 * n) / d).toFixed(1)}%`);
  const lines = [
    `snapshot ${m.name}  (${url})`,
    `  id          ${m.id}${m.parent ? `  (incremental, after ${m.parent})` : ""}`,
    `  created     ${m.created}`,
    `  machine     virt, ${m.meta.ramBytes / MiB} MiB RAM, ${m.disks.length} disk(s)`,
    `  pages       ${s.pages} of 4 KiB`,
    `    zero              ${String(s.zero).padStart(8)}  ${pct(s.zero, s.pages)}`,
    `    in the store      ${String(s.deduped).padStart(8)}  ${pct(s.deduped, s.pages)}  (earlier snapshots, other VMs, pushed images)`,
    `    unchanged         ${String(s.inherited).padStart(8)}  ${pct(s.inherited, s.pages)}  (since the snapshot it was saved after)`,
    `    uploaded          ${String(s.uploaded).padStart(8)}  ${pct(s.uploaded, s.pages)}`,
    `  uploaded    ${size(s.uploadedBytes)} in ${m.packs.filter((p) => p.startsWith(m.id)).length} pack(s); refers to ${m.packs.length} pack(s)`,
    `  disks       ${s.diskBlocks} blocks, ${s.diskUploaded} uploaded`,
    `  save time   ${s.saveMs} ms (VM paused ${s.pauseMs} ms)`,
  ];
  for (const d of m.disks) lines.push(`  disk ${d.index}      ${d.file} (${d.size} bytes)`);
  return lines.join("\n") + "\n";
}

/** `rvm store push-image`: a disk image into the store, once, as content-addressed blocks. */
export async function pushImage(url: string, file: string): Promise<{ manifest: ImageManifest; uploaded: number; deduped: number; bytes: number }> {
  const cs = new ContentStore(S3ObjectStore.fromUrl(url));
  const saveId = newId();
  const { pool, lock } = await beginSave(cs, saveId);
  let fd: number;
  try {
    fd = openSync(file, "r");
  } catch (e) {
    throw new RvmError(`${file}: ${(e as NodeJS.ErrnoException).code === "ENOENT" ? "no such file" : (e as Error).message}`);
  }
  try {
    const bytes = fstatSync(fd).size;
    const blocks = Math.ceil(bytes / 4096);
    const writer = new PackWriter(cs, saveId);
    const map = new MapBuilder(blocks, pool, writer);
    const buf = Buffer.alloc(4096);
    for (let b = 0; b < blocks; b++) {
      buf.fill(0);
      readSync(fd, buf, 0, 4096, b * 4096);
      if (buf.equals(ZERO_BLOCK)) map.setZero(b);
      else await map.put(b, buf);
    }
    const enc = map.encode();
    const id = sha256(Buffer.from(enc.ref.chunks.join(""))).toString("hex").slice(0, 32);
    const manifest: ImageManifest = {
      format: "rvm-store-image", version: 3, id, created: new Date().toISOString(), source: resolve(file), size: bytes, packs: [...map.packs()].sort(), map: enc.ref,
    };
    // Like a snapshot's manifest, the image's is written last (finishSave's order).
    await finishSave(cs, pool, lock, writer, [enc], null, map.packs(), () => cs.writeImage(manifest));
    return { manifest, uploaded: map.uploaded, deduped: map.deduped, bytes: writer.bytes };
  } finally {
    closeSync(fd);
    await (cs.objects as S3ObjectStore).close();
  }
}

/** The offline commands on an object store: `rvm snapshot ls|info|rm`, `rvm store gc|du|push-image`. */
export async function storeCommand(url: string, cmd: "ls" | "info" | "rm" | "gc" | "du" | "push-image", arg?: string): Promise<string> {
  const objects = S3ObjectStore.fromUrl(url);
  const cs = new ContentStore(objects);
  try {
    switch (cmd) {
      case "ls":
        return formatStoreList(await cs.manifests());
      case "info":
        return formatStoreInfo(await cs.readManifest(arg!), url);
      case "rm":
        await cs.deleteSnapshot(arg!);
        return "";
      case "gc": {
        const r = await cs.gc();
        return `store gc ${url}: removed ${r.packs} pack(s) and ${r.chunks} map chunk(s), ${size(r.bytes)}; ${r.kept} object(s) still referenced\n`;
      }
      case "du": {
        const u = await cs.usage();
        const snaps = (await cs.manifests()).length;
        const images = (await cs.images()).length;
        return `${url}: ${size(u.bytes)} in ${u.objects} objects; ${u.packs} packs (${size(u.packBytes)} of pages); ${snaps} snapshot(s), ${images} image(s)\n`;
      }
      case "push-image": {
        const r = await pushImage(url, arg!);
        return `pushed ${arg} to ${url} as image ${r.manifest.id}: ${Math.ceil(r.manifest.size / 4096)} blocks, ` +
          `${r.uploaded} uploaded (${size(r.bytes)}), ${r.deduped} in the store already\n`;
      }
    }
  } finally {
    await objects.close();
  }
}
