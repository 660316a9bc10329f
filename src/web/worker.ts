// The machine in a Web Worker: the same board, devices, monitor and run loop as `rvm run`,
// with the platform layer of src/web/platform.ts underneath. The page (src/web/page.ts) sends
// keys and monitor lines; the worker sends the console's bytes, monitor output and, when
// asked, the page-state grid.

import { fs, path, setOutput, setPackageRoot } from "./platform.js";
import type { FromWorker, Manifest, ToWorker } from "./protocol.js";
import { createVirtMachine } from "../board/virt.js";
import { guestConfig } from "../guest.js";
import { Machine } from "../machine.js";
import { machineTarget, Monitor } from "../monitor.js";
import { liveClasses, restoreSvg } from "../snapshot/pictures.js";
import { addSnapshotCommands, SnapshotControl } from "../snapshot/commands.js";
import { LazyRestore } from "../snapshot/restore-lazy.js";
import { defaultSnapshotDir, SNAPSHOT_EXT, SnapshotStore } from "../snapshot/store.js";
import { RvmError } from "../errors.js";

const post = (msg: FromWorker, transfer: Transferable[] = []) => (self as unknown as Worker).postMessage(msg, transfer);

// Console output is batched: one message per turn of the event loop, not one per byte.
let pending: Uint8Array[] = [];
let flushQueued = false;
function consoleWrite(bytes: Uint8Array): void {
  pending.push(bytes.slice());
  if (flushQueued) return;
  flushQueued = true;
  setTimeout(() => {
    flushQueued = false;
    const total = pending.reduce((n, b) => n + b.length, 0);
    const all = new Uint8Array(total);
    let at = 0;
    for (const b of pending) {
      all.set(b, at);
      at += b.length;
    }
    pending = [];
    post({ type: "console", bytes: all }, [all.buffer]);
  }, 0);
}

setOutput((fd, data) => {
  if (fd === 1) consoleWrite(typeof data === "string" ? new TextEncoder().encode(data) : data);
  else post({ type: "stderr", text: typeof data === "string" ? data : new TextDecoder().decode(data) });
});

let machine: Machine | undefined;
let monitor: Monitor | undefined;
let snapshots: SnapshotControl | undefined;
let monitorChain = Promise.resolve();

/** Fetches the manifest's files into the worker's file system. */
async function load(manifest: Manifest, base: string): Promise<void> {
  for (const f of manifest.files) {
    post({ type: "loading", text: `loading ${path.basename(f.path)}` });
    const res = await fetch(new URL(f.url, base));
    if (!res.ok || !res.body) throw new RvmError(`${f.url}: ${res.status} ${res.statusText}`);
    const body = f.gzip ? res.body.pipeThrough(new DecompressionStream("gzip")) : res.body;
    fs.put(f.path, new Uint8Array(await new Response(body).arrayBuffer()));
  }
}

async function start(msg: Extract<ToWorker, { type: "start" }>): Promise<void> {
  const { manifest } = msg;
  setPackageRoot(manifest.packageRoot);
  await load(manifest, msg.base);
  let guest = manifest.guest;
  let label = manifest.label;
  for (const d of msg.dropped ?? []) {
    // A dropped file is the guest, as `rvm run FILE` would take it.
    guest = path.join("/dropped", d.name);
    fs.put(guest, d.bytes);
    label = d.name;
  }
  const config = guestConfig(guest, { memory: manifest.memory });
  const m = createVirtMachine({ ...config, console: { write: (_fd, bytes) => consoleWrite(bytes), readByte: () => -1 } });
  machine = m;
  monitor = new Monitor(machineTarget(m));
  // savevm / loadvm / delvm as in the CLI; the snapshots sit next to the disk in the worker's files.
  snapshots = addSnapshotCommands(monitor, m, {
    store: new SnapshotStore(defaultSnapshotDir(m.config)),
    restore: { mode: "lazy", order: "workingset" },
  });
  post({ type: "running", ramBytes: m.core.ramBytes, label });
  const result = await m.run();
  post({ type: "exit", code: result.exitCode, text: `rvm: the guest ended (exit code ${result.exitCode})` });
}

function listSnapshots(): void {
  if (snapshots) post({ type: "snapshots", names: snapshots.store.list().map((s) => s.name) });
}

// A lazy restore is shown while it runs and for a few seconds after; then the live view again.
let restoreShown: { restore: LazyRestore; doneAt?: number; chartAt: number } | undefined;
const SHOW_AFTER_MS = 5000;

function pages(): void {
  if (!machine) return;
  const r = snapshots?.current;
  if (r instanceof LazyRestore && restoreShown?.restore !== r) restoreShown = { restore: r, chartAt: 0 };
  const now = performance.now();
  if (restoreShown) {
    const { restore } = restoreShown;
    if (restore.complete) restoreShown.doneAt ??= now;
    if (restoreShown.doneAt === undefined || now - restoreShown.doneAt < SHOW_AFTER_MS) {
      const classes = restore.classes();
      // The curves twice a second: they are recomputed from the whole restore each time.
      let chart: string | undefined;
      if (now - restoreShown.chartAt > 500 || restore.complete) {
        restoreShown.chartAt = now;
        chart = restoreSvg(restore.stats(true), classes);
      }
      post({ type: "pages", report: { classes, chart, busy: !restore.complete,
        caption: restore.complete ? "restore complete" : `lazy restore of ${restore.file.split("/").pop()}: pages by how they came back` } }, [classes.buffer]);
      return;
    }
  }
  const classes = liveClasses(machine.core.pages);
  post({ type: "pages", report: { classes, caption: "live: page states of the running machine", busy: false } }, [classes.buffer]);
}

self.onmessage = (ev: MessageEvent<ToWorker>) => {
  const msg = ev.data;
  switch (msg.type) {
    case "start":
      start(msg).catch((e: unknown) => post({ type: "error", text: e instanceof RvmError ? `rvm: ${e.message}` : String((e as Error).stack ?? e) }));
      break;
    case "input":
      machine?.input(msg.bytes);
      break;
    case "monitor": {
      const line = msg.line;
      monitorChain = monitorChain.then(async () => {
        if (!monitor) return;
        try {
          post({ type: "monitor", text: await monitor.execute(line) });
          if (/^\s*loadvm\b/.test(line)) pages(); // the page sees the restore from its start
          listSnapshots();
        } catch (e) {
          post({ type: "monitor", text: e instanceof RvmError ? `Error: ${e.message}\n` : `internal error: ${String(e)}\n` });
        }
      });
      break;
    }
    case "quit":
      machine?.requestStop(0);
      break;
    case "pages":
      pages();
      break;
    case "download":
      monitorChain = monitorChain.then(() => {
        if (!snapshots) return;
        try {
          const bytes = fs.readFileSync(snapshots.store.find(msg.name)).slice();
          post({ type: "file", name: `${msg.name}${SNAPSHOT_EXT}`, bytes }, [bytes.buffer]);
        } catch (e) {
          post({ type: "monitor", text: `Error: ${(e as Error).message}\n` });
        }
      });
      break;
    case "upload":
      monitorChain = monitorChain.then(() => {
        if (!snapshots) return;
        // As a file copied into the snapshot directory: it is checked when it is listed or loaded.
        const store = snapshots.store;
        store.ensureDir();
        const name = path.basename(msg.name).replace(/\.rvmsnap$/, "");
        const fd = fs.openSync(store.pathFor(name), "w");
        fs.writeSync(fd, msg.bytes, 0, msg.bytes.length, 0);
        fs.closeSync(fd);
        post({ type: "monitor", text: `uploaded ${name}\n` });
        listSnapshots();
      });
      break;
  }
};
