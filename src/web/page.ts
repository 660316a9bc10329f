// The page: xterm.js terminals for the guest's console and the monitor, the RAM grid, and the
// worker (src/web/worker.ts) that runs the machine. Keys follow QEMU's -nographic: Ctrl-A x
// quits, Ctrl-A c moves between the console and the monitor, Ctrl-A h prints help, Ctrl-A
// Ctrl-A sends Ctrl-A — decoded by the same code as the CLI's terminal (src/console.ts).

import { Terminal } from "@xterm/xterm";
import { FitAddon } from "@xterm/addon-fit";
import "@xterm/xterm/css/xterm.css";
import "./page.css";
import { ESCAPE_HELP, EscapeKeys, EscapeEvent, LineEditor } from "../console.js";
import { PAGE_CLASSES } from "../snapshot/pictures.js";
import type { FromWorker, Manifest, PagesReport, ToWorker } from "./protocol.js";

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const status = $("status");
const encoder = new TextEncoder();

const theme = { background: "#000000" };
const consoleTerm = new Terminal({ convertEol: false, scrollback: 5000, theme, fontSize: 14 });
const monitorTerm = new Terminal({ convertEol: true, scrollback: 2000, theme, fontSize: 13 });
const consoleFit = new FitAddon();
const monitorFit = new FitAddon();
consoleTerm.loadAddon(consoleFit);
monitorTerm.loadAddon(monitorFit);
consoleTerm.open($("console"));
monitorTerm.open($("monitor"));
const fit = () => {
  consoleFit.fit();
  monitorFit.fit();
};
fit();
window.addEventListener("resize", fit);

let worker: Worker | undefined;
const send = (msg: ToWorker, transfer: Transferable[] = []) => worker?.postMessage(msg, transfer);

// --- keys ---

const consoleKeys = new EscapeKeys();
const monitorKeys = new EscapeKeys();
const monitorLine = new LineEditor(true);
let running = false;

function escape(ev: EscapeEvent, from: Terminal): void {
  switch (ev.kind) {
    case "quit":
      consoleTerm.write("\r\nrvm: Terminated\r\n");
      send({ type: "quit" });
      break;
    case "help":
      from.write(ESCAPE_HELP);
      break;
    case "switch":
      (from === consoleTerm ? monitorTerm : consoleTerm).focus();
      break;
    case "data":
      break;
  }
}

consoleTerm.onData((text) => {
  for (const ev of consoleKeys.feed(encoder.encode(text))) {
    if (ev.kind === "data") {
      if (running) send({ type: "input", bytes: ev.bytes });
    } else escape(ev, consoleTerm);
  }
});

monitorTerm.onData((text) => {
  for (const ev of monitorKeys.feed(encoder.encode(text))) {
    if (ev.kind !== "data") {
      escape(ev, monitorTerm);
      continue;
    }
    const { echo, lines } = monitorLine.feed(new TextDecoder().decode(ev.bytes));
    monitorTerm.write(echo);
    for (const line of lines) {
      if (line.trim() === "") monitorTerm.write("(rvm) ");
      else send({ type: "monitor", line });
    }
  }
});

// --- the RAM grid ---

const grid = $<HTMLCanvasElement>("grid");
const legend = $("legend");
const caption = $("caption");
const chart = $("chart");
const COLUMNS = 256; // one row per MiB
const rgb = PAGE_CLASSES.map((c) => [1, 3, 5].map((i) => parseInt(c.color.slice(i, i + 2), 16)));
let counts: number[] = [];

let shown: Uint8Array | undefined;
let shownCaption = "";

function drawGrid(report: PagesReport): void {
  const { classes } = report;
  // Nothing changed: no drawing (an idle guest's grid stays the same).
  const same = shown !== undefined && shown.length === classes.length && shown.every((c, i) => c === classes[i]);
  if (same && report.caption === shownCaption && report.chart === undefined) return;
  shown = classes;
  shownCaption = report.caption;
  const rows = Math.ceil(classes.length / COLUMNS);
  if (grid.height !== rows) grid.height = rows;
  const ctx = grid.getContext("2d")!;
  const img = ctx.createImageData(COLUMNS, rows);
  counts = new Array<number>(PAGE_CLASSES.length).fill(0);
  for (let p = 0; p < classes.length; p++) {
    const c = rgb[classes[p]];
    counts[classes[p]]++;
    img.data.set(c, p * 4);
    img.data[p * 4 + 3] = 255;
  }
  ctx.putImageData(img, 0, 0);
  legend.replaceChildren(...PAGE_CLASSES.flatMap((c, i) => {
    if (counts[i] === 0) return [];
    const li = document.createElement("li");
    li.style.setProperty("--c", c.color);
    li.append(`${c.name} `);
    const n = document.createElement("span");
    n.className = "count";
    n.textContent = String(counts[i]);
    li.append(n);
    return [li];
  }));
  caption.textContent = report.caption;
  if (report.chart !== undefined) chart.innerHTML = report.chart;
}

// Ask for the grid twice a second (ten times while a restore runs), not while the tab is hidden.
// A timer, not requestAnimationFrame: an animation-frame loop keeps the compositor drawing.
let busy = false;
let asked = false;
function poll(): void {
  if (running && !document.hidden && !asked) {
    asked = true;
    send({ type: "pages" });
  }
  setTimeout(poll, busy ? 100 : 500);
}
poll();

// --- the worker ---

function onMessage(msg: FromWorker): void {
  switch (msg.type) {
    case "loading":
      status.textContent = msg.text;
      break;
    case "console":
      consoleTerm.write(msg.bytes);
      break;
    case "stderr":
      consoleTerm.write(`\x1b[33m${msg.text.replace(/\n/g, "\r\n")}\x1b[0m`);
      break;
    case "monitor":
      monitorTerm.write(msg.text + "(rvm) ");
      break;
    case "running":
      running = true;
      storageKind = msg.storage;
      status.textContent = `running ${msg.label} (${msg.ramBytes >> 20} MiB) · snapshots kept ${STORAGE_NAMES[msg.storage] ?? msg.storage}`;
      monitorTerm.write("rvm monitor - type 'help' for more information\r\n(rvm) ");
      consoleTerm.focus();
      break;
    case "pages":
      asked = false;
      busy = msg.report.busy;
      drawGrid(msg.report);
      break;
    case "snapshots": {
      const sel = $<HTMLSelectElement>("snapshots");
      sel.replaceChildren(...msg.names.map((n) => Object.assign(document.createElement("option"), { value: n, textContent: n })));
      break;
    }
    case "file": {
      const a = document.createElement("a");
      a.href = URL.createObjectURL(new Blob([msg.bytes as BlobPart]));
      a.download = msg.name;
      a.click();
      setTimeout(() => URL.revokeObjectURL(a.href), 60_000);
      break;
    }
    case "exit":
      running = false;
      status.textContent = msg.text;
      consoleTerm.write(`\r\n${msg.text}\r\n`);
      break;
    case "error":
      running = false;
      status.textContent = "stopped: error";
      consoleTerm.write(`\r\n\x1b[31m${msg.text.replace(/\n/g, "\r\n")}\x1b[0m\r\n`);
      break;
  }
}

let manifest: Manifest | undefined;
let storageKind = "";
const STORAGE_NAMES: Record<string, string> = {
  opfs: "in the browser's storage (OPFS)", indexeddb: "in the browser's storage (IndexedDB)", memory: "in this tab only",
};
/** ?storage=indexeddb (or memory) picks the storage; by default OPFS where the browser has it. */
const storageWanted = new URLSearchParams(location.search).get("storage") ?? undefined;

async function boot(dropped?: { name: string; bytes: Uint8Array }, bundle?: { name: string; bytes: Uint8Array }): Promise<void> {
  worker?.terminate();
  running = false;
  consoleTerm.reset();
  monitorTerm.reset();
  manifest ??= (await (await fetch("guest.json")).json()) as Manifest;
  worker = new Worker("worker.js");
  worker.onmessage = (ev: MessageEvent<FromWorker>) => onMessage(ev.data);
  worker.onerror = (ev) => onMessage({ type: "error", text: ev.message });
  send({ type: "start", manifest, base: location.href, dropped: dropped ? [dropped] : undefined, bundle, storage: storageWanted },
    [...(dropped ? [dropped.bytes.buffer] : []), ...(bundle ? [bundle.bytes.buffer] : [])]);
}

async function runFile(file: File): Promise<void> {
  status.textContent = `reading ${file.name}`;
  await boot({ name: file.name, bytes: new Uint8Array(await file.arrayBuffer()) });
}

$("download").addEventListener("click", () => {
  const name = $<HTMLSelectElement>("snapshots").value;
  if (name) send({ type: "download", name });
});
$<HTMLInputElement>("upload").addEventListener("change", async (ev) => {
  const f = (ev.target as HTMLInputElement).files?.[0];
  if (!f) return;
  const bytes = new Uint8Array(await f.arrayBuffer());
  (ev.target as HTMLInputElement).value = "";
  // An archive (NAME.rvmsnap.zip: the snapshot with its disks) is restored in a new machine;
  // a bare NAME.rvmsnap joins this guest's snapshots.
  if (f.name.endsWith(".zip")) {
    status.textContent = `restoring ${f.name}`;
    await boot(undefined, { name: f.name, bytes });
  } else send({ type: "upload", name: f.name, bytes }, [bytes.buffer]);
});
$<HTMLInputElement>("open").addEventListener("change", (ev) => {
  const f = (ev.target as HTMLInputElement).files?.[0];
  if (f) void runFile(f);
});
document.addEventListener("dragover", (ev) => {
  ev.preventDefault();
  document.body.classList.add("dragging");
});
document.addEventListener("dragleave", (ev) => {
  if (ev.relatedTarget === null) document.body.classList.remove("dragging");
});
document.addEventListener("drop", (ev) => {
  ev.preventDefault();
  document.body.classList.remove("dragging");
  const f = ev.dataTransfer?.files[0];
  if (f) void runFile(f);
});

// For scripts and tests: what the terminals show, and the grid's counts per class.
function text(term: Terminal): string {
  const buf = term.buffer.active;
  const lines: string[] = [];
  for (let i = 0; i < buf.length; i++) {
    const line = buf.getLine(i);
    const s = line?.translateToString(true) ?? "";
    if (line?.isWrapped && lines.length > 0) lines[lines.length - 1] += s;
    else lines.push(s);
  }
  return lines.join("\n").replace(/\n+$/, "");
}
(window as unknown as { rvmPage: unknown }).rvmPage = {
  consoleText: () => text(consoleTerm),
  monitorText: () => text(monitorTerm),
  gridCounts: () => Object.fromEntries(PAGE_CLASSES.map((c, i) => [c.name, counts[i] ?? 0])),
  get running() { return running; },
  get storage() { return storageKind; },
};

void boot();
