// Synchronous reads from an object store, for the few host paths that must have bytes at once:
// a device's DMA into a page not yet restored, a virtio-blk read of a disk block that lives in
// the store. A worker thread makes the request (with its own S3 client); the main thread waits
// for it on Atomics.wait. Everything else (the hart's demand faults, the background fetcher)
// is asynchronous and never blocks the host.

import { existsSync } from "node:fs";
import { fileURLToPath, pathToFileURL } from "node:url";
import { Worker } from "node:worker_threads";
import { StoreError } from "./objects.js";

/** The compiled objects.js (dist/), also when this module runs from src/ under the tests. */
function objectsModule(): string {
  for (const rel of ["./objects.js", "../../dist/src/store/objects.js"]) {
    const f = fileURLToPath(new URL(rel, import.meta.url));
    if (existsSync(f)) return pathToFileURL(f).href;
  }
  throw new Error("rvm: dist/src/store/objects.js is missing (run npm run build)");
}

const WORKER = `
const { parentPort, workerData } = require("node:worker_threads");
let opened;
parentPort.on("message", async (m) => {
  opened ??= import(workerData.module).then((o) => o.S3ObjectStore.fromUrl(workerData.url, workerData.opts));
  if (m.warm) {
    // Load the SDK and open a connection (a one-byte read), so that the first real read is quick.
    const store = await opened.catch(() => undefined);
    if (store && m.key) await store.getRange(m.key, 0, 1).catch(() => undefined);
    return;
  }
  const ctl = new Int32Array(m.sab, 0, 2);
  const data = new Uint8Array(m.sab, 8);
  try {
    const store = await opened;
    const b = m.whole ? await store.get(m.key) : await store.getRange(m.key, m.offset, m.length);
    if (!b) {
      ctl[1] = -1;
      Atomics.store(ctl, 0, 3);
    } else if (b.length > data.length) {
      const msg = Buffer.from("object larger than expected");
      data.set(msg.subarray(0, data.length));
      ctl[1] = msg.length;
      Atomics.store(ctl, 0, 2);
    } else {
      data.set(b);
      ctl[1] = b.length;
      Atomics.store(ctl, 0, 1);
    }
  } catch (e) {
    const msg = Buffer.from(JSON.stringify({ message: String(e && e.message || e), transient: !!(e && e.transient) }));
    data.set(msg.subarray(0, data.length));
    ctl[1] = Math.min(msg.length, data.length);
    Atomics.store(ctl, 0, 2);
  }
  Atomics.notify(ctl, 0);
});
`;

export class SyncReader {
  private worker: Worker | undefined;

  constructor(private readonly url: string, private readonly opts: { requestTimeoutMs?: number; maxAttempts?: number } = {}) {}

  private start(): Worker {
    if (!this.worker) {
      this.worker = new Worker(WORKER, { eval: true, workerData: { module: objectsModule(), url: this.url, opts: this.opts } });
      this.worker.unref();
    }
    return this.worker;
  }

  /**
   * Starts the worker now and has it load the SDK and connect (reading a byte of `key`), while
   * the main thread does other work: the first synchronous read then does not wait for that
   * (measured: ~1.1 s under load, once, in the middle of a restore).
   */
  warm(key?: string): void {
    this.start().postMessage({ warm: true, key });
  }

  private call(msg: Record<string, unknown>, room: number, timeoutMs: number): Uint8Array | undefined {
    const sab = new SharedArrayBuffer(8 + Math.max(room, 4096));
    const ctl = new Int32Array(sab, 0, 2);
    this.start().postMessage({ ...msg, sab });
    const r = Atomics.wait(ctl, 0, 0, timeoutMs);
    if (r === "timed-out") throw new StoreError(`object store: ${this.url}/${msg.key as string}: no answer in ${Math.round(timeoutMs / 1000)} s`, true);
    const state = ctl[0];
    const n = ctl[1];
    const data = new Uint8Array(sab, 8, Math.max(n, 0));
    if (state === 1) return data.slice();
    if (state === 3) return undefined;
    let err: { message: string; transient: boolean };
    try {
      err = JSON.parse(Buffer.from(data).toString("utf8"));
    } catch {
      err = { message: Buffer.from(data).toString("utf8"), transient: false };
    }
    throw new StoreError(err.message, err.transient);
  }

  /** `length` bytes of object `key` from `offset`, waiting at most `timeoutMs`. */
  getRange(key: string, offset: number, length: number, timeoutMs: number): Uint8Array {
    return this.call({ key, offset, length }, length, timeoutMs)!;
  }

  /** A whole object of at most `maxBytes`, or undefined when there is none. */
  get(key: string, maxBytes: number, timeoutMs: number): Uint8Array | undefined {
    return this.call({ key, whole: true }, maxBytes, timeoutMs);
  }

  close(): void {
    void this.worker?.terminate();
    this.worker = undefined;
  }
}

/** Sleeps the main thread (between retries of a synchronous read). */
export function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}
