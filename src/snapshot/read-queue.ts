// The queues between the eager restore's checking threads and its reader thread (read-worker.ts):
// a checking thread posts a read (file, offset, where in guest RAM, length) of pages it has
// claimed, goes on checking the pages of earlier reads, and waits for this one only when it
// gets to it. All in shared memory, so that both the hart's thread and the helper thread post
// and wait without their event loops.

/** Int32 slots of the reader's control block. */
export const READ = {
  /** Set by the hart's thread: start no more reads, settle once none is in flight. */
  stop: 0,
  /** Bumped at every post and at stop (the reader sleeps on it). */
  seq: 1,
  started: 2,
  /** Set by the reader once it will write nothing more (after stop). */
  done: 3,
  /** Jobs posted so far, per queue (from this slot on; then, per queue, the jobs the reader has started: `begunSlot`). */
  posted: 4,
} as const;

/** The control block's slot counting the jobs of queue `q` (of `queues`) the reader has started. */
export function begunSlot(queues: number, q: number): number {
  return READ.posted + queues + q;
}

/** Jobs per queue's ring; a checking thread keeps fewer than this many unconsumed. */
export const READ_RING = 64;

/** A job's status: pending, read, or not read (the checking thread reads it itself and says why). */
export const READ_STATUS = { pending: 0, done: 1, failed: 2 } as const;

export interface ReadQueueShared {
  ctl: SharedArrayBuffer;
  jobs: SharedArrayBuffer;
  status: SharedArrayBuffer;
}

/** The reader thread's workerData. */
export interface ReaderData extends ReadQueueShared {
  files: string[];
  queues: number;
  /** Reads in flight per queue. */
  inFlight: number;
  memory: WebAssembly.Memory;
  ramAddress: number;
  ramBytes: number;
}

export function newReadQueues(queues: number): ReadQueueShared {
  return {
    ctl: new SharedArrayBuffer((READ.posted + 2 * queues) * 4),
    jobs: new SharedArrayBuffer(queues * READ_RING * 4 * 8),
    status: new SharedArrayBuffer(queues * READ_RING * 4),
  };
}

/** One checking thread's end of its queue. */
export class ReadQueue {
  private readonly ctl: Int32Array;
  private readonly jobs: Float64Array;
  private readonly status: Int32Array;
  private posted = 0;
  private taken = 0;
  private readonly begun: number;

  constructor(shared: ReadQueueShared, private readonly queue: number) {
    this.ctl = new Int32Array(shared.ctl);
    this.begun = begunSlot((this.ctl.length - READ.posted) / 2, queue);
    this.jobs = new Float64Array(shared.jobs);
    this.status = new Int32Array(shared.status);
  }

  /** Reads not yet taken. */
  get pending(): number {
    return this.posted - this.taken;
  }

  /**
   * Posts a read of `length` bytes of file `file` at `offset` into guest RAM at `at`. The reader
   * is woken only when it has started every earlier job of this queue: otherwise it has reads in
   * flight and starts this one when one of them ends. (A wake-up cost the posting thread 66 us at
   * the median here, 0.2-0.3 s over a 792 MiB restore, profiled; the thread it wakes then takes
   * a core from the checks.) No wake-up is lost: the job is published and `seq` bumped before
   * `begun` is read here, and the reader publishes `begun` before it reads the posted count
   * again or waits on `seq` (read-worker.ts `pump`): either this thread sees every earlier job
   * started and wakes it, or the reader sees this job (or the new `seq`) itself.
   */
  post(file: number, offset: number, at: number, length: number): void {
    if (this.pending >= READ_RING) throw new Error("read queue full (internal error)");
    const idx = this.queue * READ_RING + (this.posted % READ_RING);
    const jobs = this.jobs, j = idx * 4;
    jobs[j] = file;
    jobs[j + 1] = offset;
    jobs[j + 2] = at;
    jobs[j + 3] = length;
    Atomics.store(this.status, idx, READ_STATUS.pending);
    const before = this.posted++;
    Atomics.store(this.ctl, READ.posted + this.queue, this.posted);
    Atomics.add(this.ctl, READ.seq, 1);
    if (Atomics.load(this.ctl, this.begun) >= before) Atomics.notify(this.ctl, READ.seq);
  }

  /**
   * Waits for the oldest posted read: "done" when it is in RAM, "failed" when the reader did not
   * read it (the caller reads it itself and says why), "stopped" when the reader was told to stop
   * first (the restore is failing). Throws when the reader does not answer for a minute.
   */
  take(): "done" | "failed" | "stopped" {
    const idx = this.queue * READ_RING + (this.taken % READ_RING);
    const t = performance.now();
    let s: number;
    while ((s = Atomics.load(this.status, idx)) === READ_STATUS.pending) {
      if (Atomics.load(this.ctl, READ.stop) !== 0) return "stopped";
      if (performance.now() - t > 60_000) throw new Error("the restore's reader thread does not answer");
      Atomics.wait(this.status, idx, READ_STATUS.pending, 50);
    }
    this.taken++;
    return s === READ_STATUS.done ? "done" : "failed";
  }
}

/** Tells the reader to stop and waits until it will write nothing more (true), or gives up after `ms`. */
export function stopReader(shared: ReadQueueShared, ms: number): boolean {
  const ctl = new Int32Array(shared.ctl);
  Atomics.store(ctl, READ.stop, 1);
  Atomics.add(ctl, READ.seq, 1);
  Atomics.notify(ctl, READ.seq);
  if (Atomics.load(ctl, READ.started) === 0) return true; // never ran: it posts nothing now (stop is set first)
  const t = performance.now();
  while (Atomics.load(ctl, READ.done) === 0 && performance.now() - t < ms) Atomics.wait(ctl, READ.done, 0, 100);
  return Atomics.load(ctl, READ.done) !== 0;
}
