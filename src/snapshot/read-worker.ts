// The eager restore's reader thread (issue 15): reads runs of the snapshot's data area with
// O_DIRECT straight into guest RAM, several at once (libuv's threadpool), ahead of the threads
// that check the pages (the hart's thread and the helper, each through a queue of its own), so
// that waiting for the device no longer adds to the restore's wall time. It writes only where a
// checking thread asked it to (pages that thread has claimed), and nothing after it said it is
// done (restore.ts waits for that before anything else happens). Node-only; nothing but node:fs
// here (direct-io.ts imports only that), so that the thread starts fast.

import * as fs from "node:fs";
import { workerData } from "node:worker_threads";
import { openDirect } from "../direct-io.js";
import { begunSlot, READ, ReaderData, READ_RING, READ_STATUS } from "./read-queue.js";

const data = workerData as ReaderData;
const ctl = new Int32Array(data.ctl);
const jobs = new Float64Array(data.jobs);
const status = new Int32Array(data.status);
const ram = new Uint8Array(data.memory.buffer, data.ramAddress, data.ramBytes);
const fds: (number | null | undefined)[] = [];
/** Reads in flight per queue (each queue's jobs are started in order, `inFlight` at a time). */
const busy = new Array<number>(data.queues).fill(0);
const next = new Array<number>(data.queues).fill(0);
let total = 0;

function fdOf(file: number): number | undefined {
  if (fds[file] === undefined) {
    try {
      fds[file] = openDirect(data.files[file], "r") ?? null;
    } catch {
      fds[file] = null;
    }
    // (null: the checking thread reads that file itself, and reports what is wrong with it)
  }
  return fds[file] ?? undefined;
}

function finish(q: number, idx: number, code: number): void {
  Atomics.store(status, idx, code);
  Atomics.notify(status, idx);
  busy[q]--;
  total--;
  pump();
}

function start(q: number, j: number): void {
  const idx = q * READ_RING + (j % READ_RING);
  const file = jobs[idx * 4], offset = jobs[idx * 4 + 1], at = jobs[idx * 4 + 2], length = jobs[idx * 4 + 3];
  busy[q]++;
  total++;
  const fd = fdOf(file);
  if (fd === undefined) return finish(q, idx, READ_STATUS.failed);
  let done = 0;
  const step = () =>
    fs.read(fd, ram, at + done, length - done, offset + done, (err, n) => {
      if (err) return finish(q, idx, READ_STATUS.failed);
      if (n === 0) return finish(q, idx, READ_STATUS.failed); // (truncated: the checker's own read says so)
      done += n;
      if (done < length) step();
      else finish(q, idx, READ_STATUS.done);
    });
  step();
}

/** Starts every posted job its queue has room for; settles once told to stop and idle. */
function pump(): void {
  if (Atomics.load(ctl, READ.stop) !== 0) {
    if (total === 0) settle();
    return;
  }
  for (let q = 0; q < data.queues; q++) {
    // What was started is published, then the posted count read again: a poster publishes its
    // job, then reads this (read-queue.ts), so either it sees everything started and wakes this
    // thread, or this loop sees its job. A job left over at the end (all reads in flight) starts
    // when one of them ends.
    do {
      while (busy[q] < data.inFlight && next[q] < Atomics.load(ctl, READ.posted + q)) start(q, next[q]++);
      Atomics.store(ctl, begunSlot(data.queues, q), next[q]);
    } while (busy[q] < data.inFlight && next[q] < Atomics.load(ctl, READ.posted + q));
  }
}

// (Node 16+ has it; TypeScript's lib here predates it.)
const waitAsync = (Atomics as unknown as { waitAsync(a: Int32Array, i: number, v: number): { async: boolean; value: Promise<unknown> | string } }).waitAsync;

let settled = false;
function settle(): void {
  if (settled) return;
  settled = true;
  clearInterval(alive);
  for (const fd of fds) if (typeof fd === "number") fs.closeSync(fd);
  Atomics.store(ctl, READ.done, 1);
  Atomics.notify(ctl, READ.done);
}

// A pending Atomics.waitAsync does not keep a thread's event loop alive: this does, until settled.
const alive = setInterval(() => undefined, 1 << 30);

async function main(): Promise<void> {
  Atomics.store(ctl, READ.started, 1);
  while (!settled) {
    const seq = Atomics.load(ctl, READ.seq);
    pump();
    if (settled) break;
    const w = waitAsync(ctl, READ.seq, seq);
    if (w.async) await w.value;
  }
}

void main();
