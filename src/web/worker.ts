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
import { addSnapshotCommands, type RestoreOptions, SnapshotControl, startRestore } from "../snapshot/commands.js";
import { LazyRestore } from "../snapshot/restore-lazy.js";
import { defaultSnapshotDir, journalName, SnapshotStore } from "../snapshot/store.js";
import { BUNDLE_EXT, configWithImages, exportBundle, importBundle } from "../snapshot/bundle.js";
import { SnapshotFile } from "../snapshot/format.js";
import { attachJournals } from "../snapshot/save.js";
import { openStorage, type Storage } from "./storage.js";
import type { VirtConfig } from "../board/virt.js";
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
let storage: Storage | undefined;
let storageChain = Promise.resolve();
let storageProblem: string | undefined;

/** Snapshots uploaded as archives (NAME.rvmsnap.zip) are unpacked here, each into a directory of its own. */
const IMPORTED = "/imported";

/** Makes the browser's storage match the files (after each command, and every 2 s). */
function syncStorage(): Promise<void> {
  storageChain = storageChain.then(() => storage?.sync()).then(() => (storageProblem = undefined), (e: unknown) => {
    const text = `rvm: the browser's storage: ${(e as Error).message}\n`;
    if (text !== storageProblem) post({ type: "stderr", text }); // once, not every 2 s
    storageProblem = text;
  });
  return storageChain;
}
setInterval(() => void syncStorage(), 2000);

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
  storage = await openStorage(msg.storage);
  if (msg.bundle) return restoreBundle(msg.bundle);
  let guest = manifest.guest;
  let label = manifest.label;
  for (const d of msg.dropped ?? []) {
    // A dropped file is the guest, as `rvm run FILE` would take it.
    guest = path.join("/dropped", d.name);
    fs.put(guest, d.bytes);
    label = d.name;
  }
  const config = guestConfig(guest, { memory: manifest.memory });
  const store = new SnapshotStore(defaultSnapshotDir(config));
  // The shipped guest's writable disks and its snapshots (with the disks' journals) are kept in
  // the browser's storage: a snapshot needs the disk as it was at savevm. A guest dropped on the
  // page is the user's file, read afresh each time: its snapshots last as long as the tab.
  // (Archives unpacked before stay in storage untouched: only their restore opens them.)
  fs.keep(msg.dropped?.length ? [] : [store.dir, ...config.drives.filter((d) => !d.readonly && !d.snapshot).map((d) => d.file)]);
  post({ type: "loading", text: `opening the browser's storage (${storage.kind})` });
  try {
    await storage.load(); // a disk kept from before replaces the one just fetched
  } catch (e) {
    // Another tab of this site has the files open: this one keeps its snapshots in memory.
    post({ type: "stderr", text: `rvm: ${(e as Error).message}: this tab keeps its snapshots in memory only\n` });
    fs.keep([]);
    storage = await openStorage("memory");
  }
  await syncStorage(); // the first time: the disk goes into storage
  await run(config, store, label);
}

/** An archive from `rvm snapshot export` or the page's Download: unpacked, then restored with its disks. */
async function restoreBundle(bundle: { name: string; bytes: Uint8Array }): Promise<void> {
  const dest = path.join(IMPORTED, path.basename(bundle.name).replace(/(\.rvmsnap)?\.zip$/, "").replace(/[^A-Za-z0-9_.+-]/g, "_"));
  const incoming = `${dest}.incoming`;
  fs.keep([dest, incoming]);
  await storage!.load();
  // Unpacked next to the place first: an archive uploaded again replaces the earlier one only
  // once it has unpacked and checked.
  const inside = (dir: string) => [...fs.keptFiles().keys()].filter((f) => f.startsWith(dir + "/"));
  for (const f of inside(incoming)) fs.unlinkSync(f); // a tab that died while unpacking
  const unpacked = importBundle(bundle.bytes, incoming, bundle.name);
  for (const f of inside(dest)) fs.unlinkSync(f);
  for (const f of inside(incoming)) {
    fs.mkdirSync(path.dirname(dest + f.slice(incoming.length)));
    fs.renameSync(f, dest + f.slice(incoming.length));
  }
  const moved = (f: string) => dest + f.slice(incoming.length);
  const imported = { ...unpacked, snapshot: moved(unpacked.snapshot), dir: moved(unpacked.dir),
    images: unpacked.images.map((i) => ({ index: i.index, file: moved(i.file) })) };
  await syncStorage();
  const snap = SnapshotFile.open(imported.snapshot);
  const config = configWithImages(snap.meta, imported.images) as Omit<VirtConfig, "console">;
  snap.close();
  config.virtioLegacy ??= false;
  await run({ ...config, restoring: true }, new SnapshotStore(imported.dir), `${imported.manifest.snapshot} (restored from ${bundle.name})`, imported.snapshot);
}

/** Builds the machine (restoring `restoreFile` if given) with the CLI's monitor commands, and runs it. */
async function run(config: Omit<VirtConfig, "console">, store: SnapshotStore, label: string, restoreFile?: string): Promise<void> {
  const m = createVirtMachine({ ...config, console: { write: (_fd, bytes) => consoleWrite(bytes), readByte: () => -1 } });
  machine = m;
  monitor = new Monitor(machineTarget(m));
  // Journals kept from an earlier visit go on recording the disk's writes, as in the CLI.
  if (m.drives.some((d) => fs.existsSync(path.join(store.dir, `${journalName(d.index, d.file)}.journal`)))) attachJournals(m, store);
  // savevm / loadvm / delvm as in the CLI; the snapshots sit next to the disk.
  const restore: RestoreOptions = { mode: "lazy", order: "workingset" };
  snapshots = addSnapshotCommands(monitor, m, { store, restore });
  if (restoreFile) snapshots.current = startRestore(m, store, restoreFile, restore);
  post({ type: "running", ramBytes: m.core.ramBytes, label, storage: storage?.kind ?? "memory" });
  listSnapshots();
  if (restoreFile) pages(); // the page sees the restore from its start
  const result = await m.run();
  await syncStorage();
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
          const text = await monitor.execute(line);
          await syncStorage(); // what savevm wrote is kept before it says so
          post({ type: "monitor", text });
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
          // The snapshot with its disks and journals, as `rvm snapshot export` writes it.
          const { name, bytes } = exportBundle(snapshots.store, msg.name);
          post({ type: "file", name: `${name}${BUNDLE_EXT}`, bytes }, [bytes.buffer]);
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
        return syncStorage();
      });
      break;
  }
};
