// The lazy restore's background fetcher thread (Node's worker_threads): runs the fetch
// (fetch-engine.ts) to its end over the core's shared memory, keeping to its rate and, while the
// hart is runnable on a host with few cores, to its share of a core. Node-only, like the CLI: the
// browser build runs the same engine on the hart's thread instead (fetcher.ts).

import { workerData } from "node:worker_threads";
import { PAGE_SIZE } from "../core.js";
import { CTL, FetchEngine, FetchPlanSetup, FetchShared, settle } from "./fetch-engine.js";
import { ReadQueue, ReadQueueShared } from "./read-queue.js";
import { RamCheck } from "./ram-check.js";

export interface FetchThreadData {
  setup: FetchPlanSetup;
  shared: FetchShared;
  /** The core module, compiled (instantiated here over the same memory for its page hashes). */
  module: WebAssembly.Module;
  memory: WebAssembly.Memory;
  ramAddress: number;
  /** The eager restore's reader thread (its second queue is this thread's). */
  reader?: ReadQueueShared;
  /** The virtual address of guest RAM, for the eager restore's checks through the kernel (ram-check.ts). */
  ramVirtual?: number;
}

const data = workerData as FetchThreadData;
const ctl = new Int32Array(data.shared.ctl);
// The core's page functions over the same memory (it has no data segments: instantiating it
// writes nothing to the shared memory).
const noDevice = () => {
  throw new Error("no devices in the fetcher thread");
};
// Its own (empty) function table: the JIT's translated code lives in the hart thread's table.
const table = new WebAssembly.Table({ element: "anyfunc", initial: 64 });
const core = new WebAssembly.Instance(data.module, { env: { memory: data.memory, table }, host: { mmioRead: noDevice, mmioWrite: noDevice, trace: noDevice } })
  .exports as unknown as { pageHashIs(page: number, lo: number, hi: number): number };
const ram = new Uint8Array(data.memory.buffer, data.ramAddress, data.setup.pages * PAGE_SIZE);
const engine = new FetchEngine(data.setup, data.shared, ram, (p, lo, hi) => core.pageHashIs(p, lo, hi) !== 0);
if (data.reader) engine.reader = new ReadQueue(data.reader, 1);
engine.ramCheck = RamCheck.open(data.ramVirtual, data.module, data.ramAddress);
Atomics.store(ctl, CTL.startedMs, engine.sinceCreated());

const t0 = performance.now();
const sleep = (ms: number) => {
  if (ms > 0) Atomics.wait(ctl, CTL.stop, 0, ms);
};
/**
 * Before each read: keeps to the rate limit, and while the hart is runnable keeps to
 * `runnableShare` of a core (on a host with few cores the guest would otherwise lose CPU time to
 * the fetcher). It does not step aside for demand faults: a guest that faults page after page
 * (a scan of its memory) is helped most by the pages the fetcher brings. Wakes early on stop.
 */
engine.pace = () => {
  const { bytesPerSecond, runnableShare } = data.setup;
  if (bytesPerSecond) sleep((engine.bytes / bytesPerSecond) * 1000 - (performance.now() - t0));
  if (runnableShare < 1 && Atomics.load(ctl, CTL.hartIdle) === 0) sleep((engine.workedSinceSleep * (1 - runnableShare)) / runnableShare);
  engine.workedSinceSleep = 0;
};

let failure: unknown;
try {
  for (const _ of engine.run()) {
    // the thread runs the fetch to its end: no turns to take
  }
} catch (e) {
  failure = e;
}
engine.ramCheck?.close();
settle(data.shared, failure);
