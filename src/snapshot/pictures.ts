// Pictures of RAM, of a restore and of a checkpoint: one class per 4 KiB page, a colour per
// class, and the restore's utilization curve and demand faults over time. The page's live view
// (src/web/page.ts) and the SVG files of `--plot` draw the same classes in the same colours,
// from the same numbers as --stats-json. Plain SVG text, readable without a browser.

import { PageState } from "../core.js";
import type { SnapshotMeta } from "./format.js";
import type { RestoreStats } from "./restore-lazy.js";

export const enum PageClass {
  /** Live machine: never written since boot, or unchanged since the last savevm/loadvm. */
  Clean = 0,
  /** Live machine: written since boot or since the last savevm/loadvm. */
  Written = 1,
  /** Still equal to a disk block (the page cache): a checkpoint stores a reference. */
  Disk = 2,
  /** Lazy restore: not yet restored. */
  NotRestored = 3,
  /** Lazy restore: brought in because the guest touched it (a demand fault). */
  Demand = 4,
  /** Restore: stored bytes read from the snapshot before the guest needed them. */
  Prefetched = 5,
  /** All zero: no bytes stored. */
  Zero = 6,
  /** Identical to another stored page. */
  Same = 7,
  /** Checkpoint: its bytes are in the file. */
  Stored = 8,
  /** Checkpoint: unchanged since the parent snapshot, whose file holds it (incremental save). */
  Inherited = 9,
}

export const PAGE_CLASSES: readonly { name: string; color: string }[] = [
  { name: "clean (untouched, or unchanged since the last snapshot)", color: "#e9ecef" },
  { name: "written", color: "#4e79a7" },
  { name: "disk-backed", color: "#59a14f" },
  { name: "not yet restored", color: "#3b4252" },
  { name: "restored on demand", color: "#e15759" },
  { name: "prefetched", color: "#76b7f2" },
  { name: "zero", color: "#f5f5f5" },
  { name: "same-as", color: "#edc948" },
  { name: "stored", color: "#4e79a7" },
  { name: "in a parent snapshot", color: "#b07aa1" },
];

/** The live machine's pages, from the core's page-state bytes. */
export function liveClasses(states: Uint8Array, out = new Uint8Array(states.length)): Uint8Array {
  for (let p = 0; p < states.length; p++) {
    const s = states[p];
    out[p] = s & PageState.NotRestored ? PageClass.NotRestored
      : s & PageState.Disk ? PageClass.Disk
      : s & PageState.Dirty ? PageClass.Written
      : PageClass.Clean;
  }
  return out;
}

// Page kinds of the checkpoint format (PageKind in format.ts: Zero 0, Stored 1, Same 2, Disk 3;
// not imported, so the page's bundle stays free of the file code).
const KIND_SAVED = [PageClass.Zero, PageClass.Stored, PageClass.Same, PageClass.Disk];
const KIND_RESTORED = [PageClass.Zero, PageClass.Prefetched, PageClass.Same, PageClass.Disk];

/** A page a restore installed before it was touched, by its kind in the checkpoint. */
export function restoredClass(kind: number): PageClass {
  return KIND_RESTORED[kind];
}

/** What each page became in a checkpoint (entries of another file's: Inherited), from its map. */
export function checkpointClasses(snap: { pages: number; entry(page: number): { kind: number; ref: number } }, restored = false): Uint8Array {
  const out = new Uint8Array(snap.pages);
  for (let p = 0; p < snap.pages; p++) {
    const e = snap.entry(p);
    out[p] = restored ? KIND_RESTORED[e.kind] : e.ref > 0 ? PageClass.Inherited : KIND_SAVED[e.kind];
  }
  return out;
}

/** How many pages of each class. */
export function classCounts(classes: Uint8Array): number[] {
  const counts = new Array<number>(PAGE_CLASSES.length).fill(0);
  for (const c of classes) counts[c]++;
  return counts;
}

/** Columns of the grid: a power of two that makes it about square (256 for 256 MiB). */
export function gridColumns(pages: number): number {
  return 2 ** Math.ceil(Math.log2(Math.sqrt(pages)));
}

// --- SVG ---

const esc = (s: string) => s.replace(/[&<>"]/g, (c) => `&${{ "&": "amp", "<": "lt", ">": "gt", '"': "quot" }[c]};`);
const num = (v: number) => (Number.isInteger(v) ? String(v) : v.toFixed(2));

/** A text element; `key`/`value` say which statistic it shows (tests compare them with --stats-json). */
function text(x: number, y: number, s: string, attrs = "", key?: string, value?: number): string {
  const data = key !== undefined ? ` data-key="${esc(key)}" data-value="${value}"` : "";
  return `<text x="${num(x)}" y="${num(y)}"${attrs ? " " + attrs : ""}${data}>${esc(s)}</text>`;
}

function svg(width: number, height: number, body: string[]): string {
  return `<?xml version="1.0" encoding="UTF-8"?>\n` +
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" ` +
    `font-family="sans-serif" font-size="12">\n<rect width="100%" height="100%" fill="#ffffff"/>\n${body.join("\n")}\n</svg>\n`;
}

/** The grid at (x, y), `size` px square: one rect per run of equal class in a row. */
function grid(classes: Uint8Array, x: number, y: number, size: number): string {
  const columns = gridColumns(classes.length);
  const cell = size / columns;
  const byClass = PAGE_CLASSES.map(() => [] as string[]);
  for (let base = 0, row = 0; base < classes.length; base += columns, row++) {
    const n = Math.min(columns, classes.length - base);
    for (let start = 0, i = 1; i <= n; i++) {
      if (i < n && classes[base + i] === classes[base + start]) continue;
      byClass[classes[base + start]].push(`<rect x="${num(x + start * cell)}" y="${num(y + row * cell)}" width="${num((i - start) * cell)}" height="${num(cell)}"/>`);
      start = i;
    }
  }
  return `<g data-grid="${classes.length}" shape-rendering="crispEdges">` +
    byClass.map((rects, c) => (rects.length ? `<g fill="${PAGE_CLASSES[c].color}" data-class="${esc(PAGE_CLASSES[c].name)}">${rects.join("")}</g>` : "")).join("") +
    `<rect x="${x}" y="${y}" width="${size}" height="${num(Math.ceil(classes.length / columns) * cell)}" fill="none" stroke="#888"/></g>`;
}

/** Legend rows for the classes present: swatch, name, count. */
function legend(classes: Uint8Array, x: number, y: number, only?: number[]): { svg: string; height: number } {
  const counts = classCounts(classes);
  const rows: string[] = [];
  let yy = y;
  PAGE_CLASSES.forEach((c, i) => {
    if (counts[i] === 0 || (only && !only.includes(i))) return;
    rows.push(`<rect x="${x}" y="${yy - 10}" width="12" height="12" fill="${c.color}" stroke="#888"/>` +
      text(x + 18, yy, `${c.name}: ${counts[i]} pages`, "", `pages.${c.name}`, counts[i]));
    yy += 18;
  });
  return { svg: rows.join("\n"), height: yy - y };
}

/** A "nice" step for about `target` ticks over `span`. */
function niceStep(span: number, target: number): number {
  const raw = Math.max(span, 1e-9) / target;
  const p = 10 ** Math.floor(Math.log10(raw));
  return [1, 2, 5, 10].map((m) => m * p).find((s) => s >= raw)!;
}

interface Chart {
  x: number; y: number; w: number; h: number;
  xmax: number; ymax: number;
  title: string; yLabel: string;
}

/** Axes, ticks and title of a chart with time (ms) on x; returns the body and the mappers. */
function axes(c: Chart): { body: string[]; X: (t: number) => number; Y: (v: number) => number } {
  const X = (t: number) => c.x + (c.w * t) / c.xmax;
  const Y = (v: number) => c.y + c.h - (c.h * v) / c.ymax;
  const body = [text(c.x, c.y - 8, c.title, `font-weight="bold"`),
    `<rect x="${c.x}" y="${c.y}" width="${c.w}" height="${c.h}" fill="none" stroke="#888"/>`];
  const seconds = c.xmax >= 2000;
  const xs = niceStep(c.xmax, 8);
  for (let t = 0; t <= c.xmax + 1e-9; t += xs) {
    body.push(`<line x1="${num(X(t))}" y1="${c.y + c.h}" x2="${num(X(t))}" y2="${c.y + c.h + 4}" stroke="#888"/>`,
      text(X(t), c.y + c.h + 16, seconds ? `${num(t / 1000)} s` : `${num(t)} ms`, `text-anchor="middle" fill="#555"`));
  }
  const ys = niceStep(c.ymax, 4);
  for (let v = 0; v <= c.ymax + 1e-9; v += ys) {
    body.push(`<line x1="${c.x}" y1="${num(Y(v))}" x2="${c.x + c.w}" y2="${num(Y(v))}" stroke="#eee"/>`,
      text(c.x - 4, Y(v) + 4, num(v), `text-anchor="end" fill="#555"`));
  }
  body.push(text(c.x + c.w, c.y - 8, c.yLabel, `text-anchor="end" fill="#555"`));
  return { body, X, Y };
}

/** A vertical marker (TTFI, TTR, all resident) across a chart; its label left of it near the right edge. */
function marker(X: (t: number) => number, c: Chart, t: number, label: string, color: string, key: string, row: number): string {
  const x = num(X(t));
  const right = X(t) > c.x + c.w * 0.6;
  return `<line x1="${x}" y1="${c.y}" x2="${x}" y2="${c.y + c.h}" stroke="${color}" stroke-dasharray="4 3" data-key="${esc(key)}" data-value="${t}"/>` +
    text(right ? X(t) - 3 : X(t) + 3, c.y + 12 + 13 * row, label, `fill="${color}"${right ? ` text-anchor="end"` : ""}`);
}

const CURVE_COLORS = { w100: "#f28e2b", w1000: "#4e79a7" };

/** The restore's picture: the page grid by how each page came back, U(t, w), demand faults. */
export function restoreSvg(stats: RestoreStats, classes: Uint8Array): string {
  const ms = (v: number) => (Number.isNaN(v) ? "-" : `${v.toFixed(1)} ms`);
  const body: string[] = [
    text(20, 26, `restore of ${stats.snapshot}: ${stats.mode}${stats.order ? ` (${stats.order} order)` : ""}, ${stats.pages} pages of 4 KiB`, `font-size="16" font-weight="bold"`),
  ];
  // A restore the VM outlived is complete; one it did not ends with the run.
  const missing = classCounts(classes)[PageClass.NotRestored];
  const end = missing === 0 ? "all resident" : `VM ended, ${missing} pages not restored,`;
  const facts: [string, string, number][] = [
    ["time to first instruction", ms(stats.ttfiMs), stats.ttfiMs],
    [missing === 0 ? "all pages resident after" : `VM ended (${missing} pages not restored) at`, ms(stats.totalMs), stats.totalMs],
    ["demand faults", `${stats.demandFaults} (stalled ${ms(stats.stallMs)})`, stats.demandFaults],
    ["pages prefetched", String(stats.prefetched), stats.prefetched],
  ];
  const keys = ["ttfiMs", "totalMs", "demandFaults", "prefetched"];
  facts.forEach(([name, v, raw], i) => body.push(text(20 + 260 * i, 48, `${name}: ${v}`, `fill="#333"`, keys[i], raw)));

  // The grid, where the restore recorded how each page came back.
  const lg = classes.length > 0 ? legend(classes, 20, 600, [PageClass.NotRestored, PageClass.Demand, PageClass.Prefetched, PageClass.Zero, PageClass.Disk, PageClass.Same])
    : { svg: text(20, 90, "(this restore does not record how each page came back)", `fill="#555"`), height: 0 };
  if (classes.length > 0) body.push(grid(classes, 20, 70, 512));
  body.push(lg.svg);

  // U(t, w), with TTFI, TTR(w, 0.8) and "all resident" marked.
  const curves = stats.utilization;
  const lastT = Math.max(stats.totalMs, ...(curves ? [...curves.w100, ...curves.w1000].map((p) => p.t) : [0]));
  const xmax = Math.max(1, lastT * 1.05);
  const u: Chart = { x: 600, y: 90, w: 460, h: 220, xmax, ymax: 1, title: "utilization U(t, w): share of [t, t+w] the guest could run", yLabel: "U" };
  const a = axes(u);
  body.push(...a.body);
  if (curves) {
    for (const [name, pts] of [["w100", curves.w100], ["w1000", curves.w1000]] as const) {
      const path = pts.map((p) => `${num(a.X(p.t))},${num(a.Y(p.u))}`).join(" ");
      body.push(`<polyline points="${path}" fill="none" stroke="${CURVE_COLORS[name]}" stroke-width="1.5" data-curve="${name}" data-points="${pts.length}"/>`);
    }
  }
  body.push(`<line x1="${u.x}" y1="${num(a.Y(0.8))}" x2="${u.x + u.w}" y2="${num(a.Y(0.8))}" stroke="#999" stroke-dasharray="2 2"/>`);
  let row = 0;
  if (!Number.isNaN(stats.ttfiMs)) body.push(marker(a.X, u, stats.ttfiMs, `TTFI ${ms(stats.ttfiMs)}`, "#000", "ttfiMs", row++));
  body.push(marker(a.X, u, stats.totalMs, `${end} ${ms(stats.totalMs)}`, "#59a14f", "totalMs", row++));
  for (const w of [100, 1000]) {
    const key = `w=${w}ms u=0.8`;
    const t = stats.ttr[key];
    if (t !== undefined) body.push(marker(a.X, u, t, `TTR(${w} ms, 0.8) ${ms(t)}`, CURVE_COLORS[w === 100 ? "w100" : "w1000"], `ttr.${key}`, row++));
  }
  body.push(`<line x1="${u.x}" y1="${u.y + u.h + 30}" x2="${u.x + 20}" y2="${u.y + u.h + 30}" stroke="${CURVE_COLORS.w100}" stroke-width="2"/>`,
    text(u.x + 24, u.y + u.h + 34, "w = 100 ms"),
    `<line x1="${u.x + 110}" y1="${u.y + u.h + 30}" x2="${u.x + 130}" y2="${u.y + u.h + 30}" stroke="${CURVE_COLORS.w1000}" stroke-width="2"/>`,
    text(u.x + 134, u.y + u.h + 34, "w = 1 s"));
  Object.entries(stats.ttr).forEach(([k, v], i) =>
    body.push(text(u.x + (i % 2) * 230, u.y + u.h + 56 + 16 * Math.floor(i / 2), `TTR(${k}) ${ms(v)}`, `fill="#333"`, `ttr.${k}`, v)));

  // Demand faults per bin of time.
  const f = stats.faultsOverTime;
  if (f) {
    const ymax = Math.max(1, ...f.counts);
    const c: Chart = { x: 600, y: 440, w: 460, h: 140, xmax, ymax, title: `demand faults per ${f.binMs} ms (${stats.demandFaults} in all)`, yLabel: "faults" };
    const b = axes(c);
    body.push(...b.body);
    f.counts.forEach((n, i) => {
      if (n === 0) return;
      const x0 = b.X(i * f.binMs), x1 = b.X((i + 1) * f.binMs);
      body.push(`<rect x="${num(x0)}" y="${num(b.Y(n))}" width="${num(Math.max(0.5, x1 - x0 - 0.5))}" height="${num(c.y + c.h - b.Y(n))}" fill="#e15759" data-bin="${i}" data-count="${n}"/>`);
    });
    if (!Number.isNaN(stats.ttfiMs)) body.push(marker(b.X, c, stats.ttfiMs, "TTFI", "#000", "ttfiMs", 0));
  }
  return svg(1080, Math.max(640, 600 + lg.height + 10), body);
}

const MiB = 1 << 20;
const size = (b: number) => (b >= 10 * MiB ? `${(b / MiB).toFixed(0)} MiB` : b >= MiB ? `${(b / MiB).toFixed(1)} MiB` : `${(b / 1024).toFixed(1)} KiB`);

/** A checkpoint's picture: what each page became, and its size against RAM and a plain save. */
export function checkpointSvg(meta: SnapshotMeta, classes: Uint8Array): string {
  const s = meta.stats;
  const body: string[] = [
    text(20, 26, `snapshot ${meta.name}: ${meta.ramBytes / MiB} MiB of RAM, ${s.pages} pages, saved ${meta.created.replace("T", " ").slice(0, 19)}`, `font-size="16" font-weight="bold"`),
    text(20, 48, "what each page became in the checkpoint", `fill="#333"`),
  ];
  body.push(grid(classes, 20, 70, 512));
  body.push(legend(classes, 20, 600, [PageClass.Zero, PageClass.Disk, PageClass.Same, PageClass.Stored, PageClass.Inherited]).svg);

  // The save's own counts (rvm snapshot info prints the same).
  const pct = (n: number, d: number) => (d === 0 ? "-" : `${((100 * n) / d).toFixed(1)}%`);
  const rows: [string, number, string][] = [
    ["zero (no bytes)", s.zero, "zero"], ["disk-backed (a disk block reference)", s.disk, "disk"],
    ["same-as (a reference to a stored page)", s.same, "same"], ["stored (4 KiB each)", s.stored, "stored"],
    ["inherited (unchanged since the parent snapshot)", s.inherited, "inherited"],
  ];
  body.push(text(600, 90, "pages by kind", `font-weight="bold"`));
  rows.forEach(([name, n, key], i) => body.push(
    text(600, 112 + 18 * i, name, `fill="#333"`),
    text(1000, 112 + 18 * i, String(n), `text-anchor="end"`, `stats.${key}`, n),
    text(1060, 112 + 18 * i, pct(n, s.pages), `text-anchor="end" fill="#555"`)));

  // Sizes: RAM, a save that skips only zero pages (QEMU's migration stream), this checkpoint.
  const bars: [string, number, string, string][] = [
    ["RAM", meta.ramBytes, "ramBytes", "#bab0ac"],
    ["plain save (zero pages skipped)", s.zeroSkipBytes, "stats.zeroSkipBytes", "#f28e2b"],
    ["this checkpoint", s.fileBytes, "stats.fileBytes", "#4e79a7"],
  ];
  const top = 240, barW = 440;
  body.push(text(600, top, "size on disk", `font-weight="bold"`));
  bars.forEach(([name, bytes, key, color], i) => {
    const y = top + 16 + 48 * i;
    const w = Math.max(1, (barW * bytes) / meta.ramBytes);
    body.push(text(600, y + 10, `${name}: ${size(bytes)}`, "", key, bytes),
      `<rect x="600" y="${y + 16}" width="${num(w)}" height="18" fill="${color}"/>`);
  });
  body.push(text(600, top + 170, `the checkpoint is ${pct(s.fileBytes, meta.ramBytes)} of RAM and ${pct(s.fileBytes, s.zeroSkipBytes)} of a plain save`, `fill="#333"`));
  body.push(text(600, top + 190, `save time ${s.saveMs} ms (VM paused ${s.pauseMs} ms)`, `fill="#555"`, "stats.saveMs", s.saveMs));
  return svg(1080, 720, body);
}
