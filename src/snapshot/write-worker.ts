// savevm's writer thread (issues 13 and 15): writes the data area of a snapshot file straight
// from guest RAM (shared memory), O_DIRECT where the file system takes it, while the hart's
// thread goes on with the rest of the save (the page map's encoding, metadata, header), so the
// device's time no longer adds to that CPU time. It only writes the pages the save posts (in
// `order`, data slot k at dataPage*4096 + k*4096) into the temporary file the save created, and
// only reads guest RAM (the machine is stopped). The save waits for it to say it is done before
// the file is fsynced and renamed; whatever it did not finish, the save writes itself (the same
// bytes at the same offsets). Nothing but node:fs here (direct-io.ts imports only that), so
// that the thread starts fast.

import * as fs from "node:fs";
import { workerData } from "node:worker_threads";
import { openDirect } from "../direct-io.js";
import { requestViews, WRITE, WRITE_STATE, WriterData, writeRequest } from "./write-queue.js";

const data = workerData as WriterData;
const ctl = new Int32Array(data.ctl);
const order = new Int32Array(data.order);
const ram = new Uint8Array(data.memory.buffer, data.ramAddress, data.ramBytes);
const PAGE = 4096;

function fail(e: unknown): void {
  const code = String((e as NodeJS.ErrnoException).code ?? (e as Error).message ?? e);
  new Uint8Array(data.error).set(Buffer.from(code.slice(0, 120)));
  finish(WRITE_STATE.failed);
}

function finish(state: number): void {
  Atomics.store(ctl, WRITE.state, state);
  Atomics.notify(ctl, WRITE.state);
  Atomics.notify(ctl, WRITE.written);
}

function run(): void {
  let fd: number | undefined, direct: number | undefined;
  try {
    fd = fs.openSync(data.file, "r+");
    direct = openDirect(data.file, "w");
    Atomics.store(ctl, WRITE.started, 1);
    Atomics.notify(ctl, WRITE.started);
    let done = 0;
    const views: Uint8Array[] = [];
    for (;;) {
      if (Atomics.load(ctl, WRITE.abort) !== 0) return finish(WRITE_STATE.aborted);
      const seq = Atomics.load(ctl, WRITE.seq); // (before posted: a post in between wakes the wait)
      const posted = Atomics.load(ctl, WRITE.posted);
      if (done >= posted) {
        if (Atomics.load(ctl, WRITE.closed) !== 0 && done >= Atomics.load(ctl, WRITE.posted)) break;
        Atomics.wait(ctl, WRITE.seq, seq, 1000);
        continue;
      }
      // One request: up to batchBytes of the posted pages, runs of consecutive pages as one iovec.
      const first = done;
      done = requestViews(order, first, posted, ram, data.batchBytes, data.batchIovecs, views);
      const batch = (done - first) * PAGE;
      const pos = (Atomics.load(ctl, WRITE.dataPage) + first) * PAGE;
      direct = writeRequest(fs, direct, fd, views, pos, batch);
      if (direct === undefined) Atomics.store(ctl, WRITE.buffered, 1);
      Atomics.store(ctl, WRITE.written, done);
      Atomics.notify(ctl, WRITE.written);
    }
    if (direct !== undefined) fs.closeSync(direct);
    direct = undefined;
    fs.closeSync(fd);
    fd = undefined;
    finish(WRITE_STATE.done);
  } catch (e) {
    if (direct !== undefined) fs.closeSync(direct);
    if (fd !== undefined) fs.closeSync(fd);
    fail(e);
  }
}

run();
