// The pictures of a restore and of a checkpoint (`--plot FILE.svg`): well-formed SVG whose
// numbers are those of --stats-json of the same run and of `rvm snapshot info`; and the page
// classes agree with the checkpoint format's page kinds.

import { afterAll, describe, expect, it } from "vitest";
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { XMLParser, XMLValidator } from "fast-xml-parser";
import { ROOT } from "../helpers.js";
import { cleanup, freshDir } from "./util.js";
import { createVirtMachine } from "../../src/board/virt.js";
import { saveSnapshot } from "../../src/snapshot/save.js";
import { SnapshotStore } from "../../src/snapshot/store.js";
import { PageKind } from "../../src/snapshot/format.js";
import { checkpointClasses, PAGE_CLASSES, PageClass, restoredClass } from "../../src/snapshot/pictures.js";
import { startRestore } from "../../src/snapshot/commands.js";

afterAll(cleanup);

const rvm = (...args: string[]) => spawnSync(process.execPath, [join(ROOT, "bin/rvm.js"), ...args], { encoding: "utf8", timeout: 120_000 });

/** Every element of a parsed SVG, depth first, with its attributes (prefixed "@"). */
function elements(node: unknown, out: Record<string, unknown>[] = []): Record<string, unknown>[] {
  if (Array.isArray(node)) for (const n of node) elements(n, out);
  else if (node && typeof node === "object") {
    out.push(node as Record<string, unknown>);
    for (const [k, v] of Object.entries(node)) if (!k.startsWith("@")) elements(v, out);
  }
  return out;
}

function parseSvg(file: string): Record<string, unknown>[] {
  const text = readFileSync(file, "utf8");
  expect(XMLValidator.validate(text)).toBe(true);
  const doc = new XMLParser({ ignoreAttributes: false, attributeNamePrefix: "@" }).parse(text) as { svg: unknown };
  expect(doc.svg).toBeDefined();
  return elements(doc.svg);
}

/** data-key -> data-value of every element that carries one (the same key may repeat: all must agree). */
function dataValues(els: Record<string, unknown>[]): Map<string, number> {
  const out = new Map<string, number>();
  for (const e of els) {
    const k = e["@data-key"];
    if (typeof k !== "string") continue;
    const v = Number(e["@data-value"]);
    if (out.has(k)) expect(v, k).toBe(out.get(k));
    out.set(k, v);
  }
  return out;
}

const intbench = (restoring = false) => createVirtMachine({
  ramBytes: 64 << 20, bios: "none", kernel: join(ROOT, "guests/bench/intbench.elf"), drives: [], icountShift: 4, restoring,
  console: { write: () => undefined, readByte: () => -1 },
});

/** A bare-metal guest (intbench, which computes for a long time) saved mid-run. */
async function savedGuest(): Promise<string> {
  const dir = freshDir("pic");
  const m = intbench();
  await m.run({ instructions: 2_000_000 });
  saveSnapshot(m, new SnapshotStore(dir), "mid");
  return dir;
}

describe("pictures", () => {
  it("page classes follow the checkpoint's page kinds", () => {
    expect(restoredClass(PageKind.Zero)).toBe(PageClass.Zero);
    expect(restoredClass(PageKind.Stored)).toBe(PageClass.Prefetched);
    expect(restoredClass(PageKind.Same)).toBe(PageClass.Same);
    expect(restoredClass(PageKind.Disk)).toBe(PageClass.Disk);
    const entries = [PageKind.Zero, PageKind.Stored, PageKind.Same, PageKind.Disk].map((kind) => ({ kind, ref: 0 }));
    entries.push({ kind: PageKind.Stored, ref: 1 });
    expect([...checkpointClasses({ pages: 5, entry: (p) => entries[p] })])
      .toEqual([PageClass.Zero, PageClass.Stored, PageClass.Same, PageClass.Disk, PageClass.Inherited]);
  });

  it("info restore draws a progress bar with pages resident and the fault rate", { timeout: 120_000 }, async () => {
    const dir = await savedGuest();
    const m = intbench(true);
    const r = startRestore(m, new SnapshotStore(dir), join(dir, "mid.rvmsnap"), { mode: "lazy", order: "workingset" });
    await m.run({ instructions: 100_000 });
    const text = r.progress();
    const bar = /\[(#*)(\.*)\]\s+([\d.]+)% resident\s+faults (\d+)\/s now, ([\d.]+)\/s overall/.exec(text);
    expect(bar, text).not.toBeNull();
    const resident = Number(/(\d+)\/16384 pages resident/.exec(text)?.[1]);
    expect(bar![1].length + bar![2].length).toBe(40);
    expect(bar![1].length).toBe(Math.floor((40 * resident) / 16384));
    expect(Number(bar![4])).toBeGreaterThan(0); // the guest just faulted its pages in
  });

  it("rvm restore --plot: well-formed SVG with the numbers of --stats-json; snapshot info --plot with info's", { timeout: 180_000 }, async () => {
    const dir = await savedGuest();
    for (const mode of ["lazy", "eager"]) {
      const json = join(dir, `${mode}.json`), svg = join(dir, `${mode}.svg`);
      const r = rvm("restore", "mid", "--dir", dir, "--restore", mode, "--timeout", "2", "--stats-json", json, "--plot", svg);
      expect(r.status, r.stderr).toBe(124);
      const stats = JSON.parse(readFileSync(json, "utf8"));
      const els = parseSvg(svg);
      const values = dataValues(els);
      for (const k of ["totalMs", "demandFaults", "prefetched"]) expect(values.get(k), k).toBe(stats[k]);
      if (stats.ttfiMs !== null) expect(values.get("ttfiMs")).toBe(stats.ttfiMs);
      for (const [k, v] of Object.entries(stats.ttr)) expect(values.get(`ttr.${k}`), k).toBe(v);
      // The utilization curves are the JSON's, point for point.
      for (const w of ["w100", "w1000"]) {
        const line = els.find((e) => e["@data-curve"] === w);
        expect(Number(line?.["@data-points"])).toBe(stats.utilization[w].length);
      }
      // Demand faults over time: the bars add up to the count, bin by bin as in the JSON.
      const bars = els.filter((e) => e["@data-bin"] !== undefined);
      for (const b of bars) expect(Number(b["@data-count"])).toBe(stats.faultsOverTime.counts[Number(b["@data-bin"])]);
      expect(bars.reduce((n, b) => n + Number(b["@data-count"]), 0)).toBe(stats.demandFaults);
      // The grid: every page once; those back are the demand faults plus the prefetched pages.
      const pages = (name: string) => values.get(`pages.${name}`) ?? 0;
      const classes = PAGE_CLASSES.map((c) => pages(c.name));
      expect(classes.reduce((a, b) => a + b, 0)).toBe(stats.pages);
      expect(pages("restored on demand")).toBe(stats.demandFaults);
      expect(stats.pages - pages("not yet restored")).toBe(stats.demandFaults + stats.prefetched);
      expect(Number(els.find((e) => e["@data-grid"] !== undefined)?.["@data-grid"])).toBe(stats.pages);
    }

    const svg = join(dir, "info.svg");
    const info = rvm("snapshot", "info", "mid", "--dir", dir, "--plot", svg);
    expect(info.status, info.stderr).toBe(0);
    const values = dataValues(parseSvg(svg));
    const printed = (label: string) => Number(new RegExp(`^\\s+${label}\\s+(\\d+)`, "m").exec(info.stdout)?.[1]);
    for (const [key, label] of [["zero", "zero"], ["disk", "disk-backed"], ["same", "same-as"], ["stored", "stored"], ["inherited", "inherited"]]) {
      expect(values.get(`stats.${key}`), key).toBe(printed(label));
    }
    expect(values.get("ramBytes")).toBe(64 << 20);
    expect(values.get("stats.fileBytes")).toBeGreaterThan(0);
  });
});
