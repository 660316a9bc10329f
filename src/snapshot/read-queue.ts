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
  /** Jobs posted so far, per queue (from this slot on). */
  posted: 4,
} as const;

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
    ctl: new SharedArrayBuffer((READ.posted + queues) * 4),
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

  constructor(shared: ReadQueueShared, private readonly queue: number) {
    this.ctl = new Int32Array(shared.ctl);
    this.jobs = new Float64Array(shared.jobs);
    this.status = new Int32Array(shared.status);
  }

  /** Reads not yet taken. */
  get pending(): number {
    return this.posted - this.taken;
  }

  /** Posts a read of `length` bytes of file `file` at `offset` into guest RAM at `at`. */
  post(file: number, offset: number, at: number, length: number): void {
    if (this.pending >= READ_RING) throw new Error("read queue full (internal error)");
    const idx = this.queue * READ_RING + (this.posted % READ_RING);
    this.jobs.set([file, offset, at, length], idx * 4);
    Atomics.store(this.status, idx, READ_STATUS.pending);
    this.posted++;
    Atomics.store(this.ctl, READ.posted + this.queue, this.posted);
    Atomics.add(this.ctl, READ.seq, 1);
    Atomics.notify(this.ctl, READ.seq);
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
