// Shared memory between savevm (save.ts, the hart's thread) and its writer thread
// (write-worker.ts): the order of the stored pages (data slot k holds page order[k]), how many of
// them are posted and written, and the thread's state. The hart's thread waits on it without its
// event loop (savevm is synchronous).

/** Int32 slots of the writer's control block. */
export const WRITE = {
  /** Pages of `order` posted for writing (the writer writes them in order). */
  posted: 0,
  /** Pages written so far (set by the writer after each request). */
  written: 1,
  /** Bumped at every post, close and abort (the writer sleeps on it). */
  seq: 2,
  /** Set by the save: nothing more will be posted. */
  closed: 3,
  /** Set by the save: stop after the request in flight. */
  abort: 4,
  /** The data area's first page in the file (offset / 4096), set before the first post. */
  dataPage: 5,
  /** Set by the writer once it has opened the file. */
  started: 6,
  /** The writer's state: running, done (all posted pages written), failed, aborted. */
  state: 7,
  /** Set by the writer when any request went through the page cache (O_DIRECT refused). */
  buffered: 8,
} as const;
export const WRITE_SLOTS = 9;

export const WRITE_STATE = { running: 0, done: 1, failed: 2, aborted: 3 } as const;

/** The writer thread's workerData. */
export interface WriterData {
  ctl: SharedArrayBuffer;
  /** Int32 per RAM page: the stored pages in data order. */
  order: SharedArrayBuffer;
  /** The error's code or message (UTF-8, zero-padded) when the state is failed. */
  error: SharedArrayBuffer;
  /** The temporary snapshot file (created by the save). */
  file: string;
  memory: WebAssembly.Memory;
  ramAddress: number;
  ramBytes: number;
  /** One request: up to this many bytes and iovecs. */
  batchBytes: number;
  batchIovecs: number;
}

/**
 * One write request's buffers: from slot `from` of `order` on (up to `to`), the pages' bytes in
 * `ram` as `views` (cleared first), runs of consecutive pages as one buffer, up to `maxBytes` and
 * `maxIovecs`. Returns the slot after the last one taken.
 */
export function requestViews(order: Int32Array, from: number, to: number, ram: Uint8Array, maxBytes: number, maxIovecs: number, views: Uint8Array[]): number {
  const PAGE = 4096;
  views.length = 0;
  let k = from, last = -2;
  while (k < to && (k - from) * PAGE < maxBytes && views.length < maxIovecs) {
    const p = order[k++];
    if (p === last + 1) {
      // The next page in RAM too: one longer buffer (fewer iovecs, larger requests).
      const v = views[views.length - 1];
      views[views.length - 1] = ram.subarray(v.byteOffset - ram.byteOffset, (p + 1) * PAGE);
    } else {
      views.push(ram.subarray(p * PAGE, (p + 1) * PAGE));
    }
    last = p;
  }
  return k;
}

/** The file calls writeRequest makes (node:fs's on the writer thread, the platform's on the hart's). */
export interface WriteIo {
  writevSync(fd: number, buffers: Uint8Array[], position: number): number;
  writeSync(fd: number, buffer: Uint8Array, offset: number, length: number, position: number): number;
  closeSync(fd: number): void;
}

/**
 * Writes one request (`views`, `bytes` long, at `pos`): through `direct` (O_DIRECT) where there
 * is one, else, or where the file system refuses it at this write (EINVAL: `direct` is closed),
 * buffered through `fd`; a short write is finished buffered. Returns the O_DIRECT descriptor for
 * the next request (undefined from then on once refused). The writer thread and the hart's own
 * writes (save.ts) both write this way.
 */
export function writeRequest(io: WriteIo, direct: number | undefined, fd: number, views: Uint8Array[], pos: number, bytes: number): number | undefined {
  let n = -1;
  if (direct !== undefined) {
    try {
      n = io.writevSync(direct, views, pos);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EINVAL") throw e;
      io.closeSync(direct);
      direct = undefined;
    }
  }
  if (n < 0) n = io.writevSync(fd, views, pos);
  while (n < bytes) n += io.writeSync(fd, Buffer.concat(views).subarray(n), 0, bytes - n, pos + n);
  return direct;
}
