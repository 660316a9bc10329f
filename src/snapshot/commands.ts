// Snapshot commands: the monitor's savevm / loadvm / delvm / info snapshots (QEMU's HMP
// semantics: the VM pauses, the work is done, it continues), and the text both the monitor
// and `rvm snapshot` print.

import type { Machine } from "../machine.js";
import type { Monitor } from "../monitor.js";
import { MonitorError } from "../monitor.js";
import { RvmError } from "../errors.js";
import { SnapshotFile, SnapshotMeta } from "./format.js";
import { defaultName, saveSnapshot } from "./save.js";
import { restoreEager, RestoreFailedError } from "./restore.js";
import { cancelActiveRestore, faultHistogram, FetchOrder, LazyRestore, RestoreStats } from "./restore-lazy.js";
import { ttrTable, utilizationCurve } from "./ttr.js";
import { formatTimeline, RestoreTimeline } from "./timeline.js";
import { checkpointClasses } from "./pictures.js";
import { SnapshotStore, SnapshotListing } from "./store.js";

const MiB = 1024 * 1024;

function size(bytes: number): string {
  if (bytes >= 10 * MiB) return `${(bytes / MiB).toFixed(0)} MiB`;
  if (bytes >= MiB) return `${(bytes / MiB).toFixed(1)} MiB`;
  return `${(bytes / 1024).toFixed(1)} KiB`;
}

function vmClock(meta: SnapshotMeta): string {
  const ticks = BigInt(meta.mtime);
  const ms = Number(ticks / 10_000n);
  const h = Math.floor(ms / 3_600_000), m = Math.floor(ms / 60_000) % 60, s = Math.floor(ms / 1000) % 60;
  return `${String(h).padStart(2, "0")}:${String(m).padStart(2, "0")}:${String(s).padStart(2, "0")}.${String(ms % 1000).padStart(3, "0")}`;
}

/** QEMU-like table of snapshots. */
export function formatList(list: SnapshotListing[]): string {
  if (list.length === 0) return "There is no snapshot available.\n";
  const rows = list.map((s, i) => [String(i + 1), s.name, size(s.meta.stats.fileBytes), s.meta.created.replace("T", " ").slice(0, 19), vmClock(s.meta)]);
  const head = ["ID", "TAG", "SIZE", "DATE", "VM CLOCK"];
  const w = head.map((h, c) => Math.max(h.length, ...rows.map((r) => r[c].length)));
  const line = (r: string[]) => r.map((x, c) => x.padEnd(w[c])).join("  ").trimEnd();
  return [line(head), ...rows.map(line)].join("\n") + "\n";
}

/** The breakdown `rvm snapshot info` prints (issue 5), with what it needs on disk besides its file. */
export function formatInfo(meta: SnapshotMeta, file: string, deps?: { own: number; parents: number; parentFiles: number; journals: number }): string {
  const s = meta.stats;
  const pct = (n: number, d: number) => (d === 0 ? "-" : `${((100 * n) / d).toFixed(1)}%`);
  const lines = [
    `snapshot ${meta.name}  (${file})`,
    `  id          ${meta.id}${meta.parent ? `  (incremental, parent ${meta.parent})` : ""}`,
    `  created     ${meta.created}   vm clock ${vmClock(meta)}`,
    `  machine     virt, ${meta.ramBytes / MiB} MiB RAM, ${meta.disks.length} disk(s)`,
    `  pages       ${s.pages} of 4 KiB`,
    `    zero         ${String(s.zero).padStart(8)}  ${pct(s.zero, s.pages)}`,
    `    disk-backed  ${String(s.disk).padStart(8)}  ${pct(s.disk, s.pages)}`,
    `    same-as      ${String(s.same).padStart(8)}  ${pct(s.same, s.pages)}`,
    `    stored       ${String(s.stored).padStart(8)}  ${pct(s.stored, s.pages)}`,
    `    inherited    ${String(s.inherited).padStart(8)}  ${pct(s.inherited, s.pages)}  (unchanged since the parent snapshot)`,
    `  working set ${meta.workingSet} pages stored first`,
    `  on disk     ${size(s.fileBytes)} = ${pct(s.fileBytes, meta.ramBytes)} of RAM, ${pct(s.fileBytes, s.zeroSkipBytes)} of a zero-skipping save (${size(s.zeroSkipBytes)})`,
    `  save time   ${s.saveMs} ms (VM paused ${s.pauseMs} ms)`,
  ];
  if (deps) {
    const parts = [`this file ${size(deps.own)}`];
    if (deps.parentFiles > 0) parts.push(`${deps.parentFiles} parent file${deps.parentFiles > 1 ? "s" : ""} ${size(deps.parents)}`);
    if (deps.journals > 0) parts.push(`disk journal${meta.disks.length > 1 ? "s" : ""} ${size(deps.journals)}`);
    lines.push(`  needs       ${size(deps.own + deps.parents + deps.journals)} on disk: ${parts.join(" + ")}`);
  }
  for (const d of meta.disks) lines.push(`  disk ${d.index}      ${d.file} (${d.size} bytes, journal ${d.journal}, mark ${d.mark})`);
  return lines.join("\n") + "\n";
}

export interface RestoreOptions {
  mode: "lazy" | "eager";
  order: FetchOrder;
  /** Lazy: the background fetcher's read-rate limit, bytes per second (0 or absent: none). */
  rateBytesPerSec?: number;
  /** Eager: where a progress bar is drawn (a terminal), if anywhere. */
  progress?: (text: string) => void;
}

/** A restore that ran or is running, as `info restore` and --stats see it. */
export interface ActiveRestore {
  progress(): string;
  /** `interim`: while it runs, for --stats-json's interim writes (may leave out the costly TTR figures). */
  stats(withCurve?: boolean, interim?: boolean): RestoreStats;
  /** Its timeline (phases, demand faults, console): the console notes input and output here. */
  readonly timeline: RestoreTimeline;
  /** Every page is resident. */
  readonly complete: boolean;
  /** Each page's class for the pictures (src/snapshot/pictures.ts), where the restore records it. */
  classes?(): Uint8Array;
}

/** Starts a restore of `file` into `machine`: lazy (returns at once) or eager (all pages in). */
export function startRestore(
  machine: Machine, store: SnapshotStore, file: string, opts: RestoreOptions, timeline = new RestoreTimeline(machine, false), opened?: SnapshotFile,
): ActiveRestore {
  // `opened`: `file`, opened already; the restore takes it over (the lazy one reads from it).
  if (opts.mode === "lazy") return new LazyRestore(machine, store, file, { order: opts.order, rateBytesPerSec: opts.rateBytesPerSec, timeline, snapshot: opened });
  opened?.close();
  const t0 = performance.now();
  cancelActiveRestore(machine);
  const r = restoreEager(machine, store, file, opts.progress && progressBar(opts.progress, "loadvm"));
  timeline.mark(`every page read (${(r.bytesRead / MiB).toFixed(0)} MiB in ${r.reads} reads, ${r.ms.toFixed(0)} ms${r.planMs !== undefined ? `, planned at ${r.planMs.toFixed(0)} ms` : ""}${r.helperPages ? `; ${r.helperPages} pages by a helper thread` : ""}${r.kernelCopyCheck ? "; checked through the kernel's copy" : ""})`);
  machine.meter = timeline;
  let ttfi: number | undefined;
  machine.beforeSlice = () => {
    const t = performance.now();
    ttfi = t - t0;
    timeline.started(t);
    machine.beforeSlice = undefined;
  };
  const stalled = [{ start: 0, end: r.ms }];
  return {
    timeline,
    complete: true,
    progress: () => `restore: eager, ${r.meta.stats.pages}/${r.meta.stats.pages} pages resident (100%), complete in ${r.ms.toFixed(0)} ms\n` +
      `  [${"#".repeat(40)}] 100.0% resident   no demand faults\n`,
    stats: (withCurve = false) => ({
      mode: "eager", order: null, snapshot: r.meta.name, pages: r.meta.stats.pages, ttfiMs: ttfi ?? NaN, totalMs: r.ms,
      demandFaults: 0, prefetched: r.meta.stats.pages, stallMs: r.ms, fetchMs: r.ms, bytesRead: r.bytesRead, reads: r.reads,
      meanReadBytes: r.reads ? r.bytesRead / r.reads : 0,
      ttr: ttrTable(stalled, r.ms),
      ...(withCurve ? {
        utilization: { w100: utilizationCurve(stalled, r.ms, 100, 10), w1000: utilizationCurve(stalled, r.ms, 1000, 50) },
        faultsOverTime: faultHistogram([], r.ms),
      } : {}),
      timeline: timeline.json(),
    }),
    classes: () => {
      const snap = SnapshotFile.open(file);
      try {
        return checkpointClasses(snap, true);
      } finally {
        snap.close();
      }
    },
  };
}

/** The --stats text. */
export function formatRestoreStats(s: RestoreStats): string {
  const ms = (v: number) => (Number.isNaN(v) ? "-" : `${v.toFixed(1)} ms`);
  const lines = [
    `restore of ${s.snapshot}: ${s.mode}${s.order ? ` (${s.order} order)` : ""}, ${s.pages} pages`,
    `  time to first instruction  ${ms(s.ttfiMs)}`,
    `  all pages resident after   ${ms(s.totalMs)}`,
    `  demand faults              ${s.demandFaults} (stalled ${ms(s.stallMs)})`,
    `  pages prefetched           ${s.prefetched} (fetcher took ${ms(s.fetchMs)} between slices)`,
    `  read                       ${(s.bytesRead / MiB).toFixed(1)} MiB in ${s.reads} reads (mean ${(s.meanReadBytes / 1024).toFixed(1)} KiB)`,
    ...(s.worker ? [`  fetcher thread             ${s.worker.pages} pages, ${(s.worker.bytesRead / MiB).toFixed(1)} MiB in ${s.worker.reads} reads, busy ${ms(s.worker.busyMs)}; ` +
      `running after ${ms(s.worker.startedMs ?? NaN)}, planned after ${ms(s.worker.plannedMs ?? NaN)}, first page after ${ms(s.worker.firstReadyMs ?? NaN)}`] : []),
    ...Object.entries(s.ttr).map(([k, v]) => `  TTR(${k})`.padEnd(29) + `${v.toFixed(0)} ms`),
  ];
  if (s.workload) {
    lines.push(`  workload view (vs ${s.workload.fullRateMips.toFixed(1)} MIPS once resident):`);
    for (const [k, v] of Object.entries(s.workload.ttr)) lines.push(`  TTR_work(${k})`.padEnd(29) + `${v.toFixed(0)} ms`);
  }
  if (s.timeline) lines.push(formatTimeline(s.timeline).trimEnd());
  return lines.join("\n") + "\n";
}

/**
 * A progress bar for savevm and the eager loadvm, where `show` writes to a terminal:
 * "\rLABEL [#########...........]  45% of 794 MiB", redrawn at each whole percent and cleared
 * when done. Only work on more than 16 MiB of pages gets one. `done` and `total` count pages.
 */
export function progressBar(show: (text: string) => void, label: string): (done: number, total: number) => void {
  let last = -1;
  return (done, total) => {
    if (total < 4096) return;
    const pct = Math.floor((100 * done) / total);
    if (pct === last) return;
    last = pct;
    const bar = "#".repeat(Math.floor(pct / 5)).padEnd(20, ".");
    show(`\r${label} [${bar}] ${String(pct).padStart(3)}% of ${size(total * 4096)}${done >= total ? "\r\x1b[K" : ""}`);
  };
}

export interface SnapshotControl {
  store: SnapshotStore;
  /** Where a large save shows its progress (a terminal), if anywhere. */
  progress?: (text: string) => void;
  restore?: RestoreOptions;
  /** The last restore (for `info restore` and --stats). */
  current?: ActiveRestore;
}

/** Runs a monitor command's work: an RvmError becomes the monitor's one-line "Error: ...". */
export async function monitorWork(f: () => string | Promise<string>): Promise<string> {
  try {
    return await f();
  } catch (e) {
    if (e instanceof RvmError) throw new MonitorError(`Error: ${e.message}`);
    throw e;
  }
}

/** Adds savevm, loadvm, delvm and `info snapshots` to the monitor. */
export function addSnapshotCommands(monitor: Monitor, machine: Machine, ctl: SnapshotControl): SnapshotControl {
  const wrap = monitorWork;
  monitor.define("savevm", "savevm [tag]", "save a VM snapshot. If no tag is provided, a new snapshot is created", (args) =>
    wrap(() => machine.atBoundary(() => {
      const meta = saveSnapshot(machine, ctl.store, args[0] ?? defaultName(), ctl.progress && progressBar(ctl.progress, "savevm"));
      const s = meta.stats;
      return `saved ${meta.name}: ${size(s.fileBytes)} (zero ${s.zero}, disk-backed ${s.disk}, same-as ${s.same}, stored ${s.stored}, inherited ${s.inherited} pages) in ${s.saveMs} ms\n`;
    })));
  monitor.define("loadvm", "loadvm tag", "restore a VM snapshot from its tag", (args) =>
    wrap(() => {
      if (!args[0]) throw new RvmError("loadvm needs a snapshot tag");
      const file = ctl.store.find(args[0]);
      return machine.atBoundary(() => {
        try {
          const opts = ctl.restore ?? { mode: "lazy", order: "workingset" };
          ctl.current = startRestore(machine, ctl.store, file, opts);
          return opts.mode === "lazy" ? "" : ctl.current.progress();
        } catch (e) {
          if (e instanceof RestoreFailedError) machine.pause();
          throw e;
        }
      });
    }));
  monitor.define("delvm", "delvm tag", "delete a VM snapshot from its tag", (args) =>
    wrap(() => {
      if (!args[0]) throw new RvmError("delvm needs a snapshot tag");
      ctl.store.delete(args[0]);
      return "";
    }));
  monitor.defineInfo("snapshots", "show the currently saved VM snapshots", () => wrap(() => formatList(ctl.store.list())));
  monitor.defineInfo("restore", "show the progress of the last loadvm (pages resident, faults, rate)", () =>
    ctl.current ? ctl.current.progress() : "no restore has run\n");
  return ctl;
}
