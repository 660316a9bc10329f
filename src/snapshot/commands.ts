// Snapshot commands: the monitor's savevm / loadvm / delvm / info snapshots (QEMU's HMP
// semantics: the VM pauses, the work is done, it continues), and the text both the monitor
// and `rvm snapshot` print.

import type { Machine } from "../machine.js";
import type { Monitor } from "../monitor.js";
import { MonitorError } from "../monitor.js";
import { RvmError } from "../errors.js";
import { SnapshotMeta } from "./format.js";
import { defaultName, saveSnapshot } from "./save.js";
import { restoreEager, RestoreFailedError } from "./restore.js";
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

/** The breakdown `rvm snapshot info` prints (issue 5). */
export function formatInfo(meta: SnapshotMeta, file: string): string {
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
  for (const d of meta.disks) lines.push(`  disk ${d.index}      ${d.file} (${d.size} bytes, journal ${d.journal}, mark ${d.mark})`);
  return lines.join("\n") + "\n";
}

export interface SnapshotControl {
  store: SnapshotStore;
}

/** Adds savevm, loadvm, delvm and `info snapshots` to the monitor. */
export function addSnapshotCommands(monitor: Monitor, machine: Machine, ctl: SnapshotControl): void {
  const wrap = async (f: () => string | Promise<string>): Promise<string> => {
    try {
      return await f();
    } catch (e) {
      if (e instanceof RvmError) throw new MonitorError(`Error: ${e.message}`);
      throw e;
    }
  };
  monitor.define("savevm", "savevm [tag]", "save a VM snapshot. If no tag is provided, a new snapshot is created", (args) =>
    wrap(() => machine.atBoundary(() => {
      const meta = saveSnapshot(machine, ctl.store, args[0] ?? defaultName());
      const s = meta.stats;
      return `saved ${meta.name}: ${size(s.fileBytes)} (zero ${s.zero}, disk-backed ${s.disk}, same-as ${s.same}, stored ${s.stored}, inherited ${s.inherited} pages) in ${s.saveMs} ms\n`;
    })));
  monitor.define("loadvm", "loadvm tag", "restore a VM snapshot from its tag", (args) =>
    wrap(() => {
      if (!args[0]) throw new RvmError("loadvm needs a snapshot tag");
      const file = ctl.store.find(args[0]);
      return machine.atBoundary(() => {
        try {
          const r = restoreEager(machine, ctl.store, file);
          return `loaded ${r.meta.name} in ${r.ms.toFixed(0)} ms\n`;
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
}
