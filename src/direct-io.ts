// O_DIRECT descriptors, part of the platform layer (platform.ts re-exports openDirect; the
// browser build's platform has its own). A module of its own that imports nothing but node:fs:
// savevm's writer thread (snapshot/write-worker.ts) and the eager restore's reader thread
// (snapshot/read-worker.ts) import it, and a thread that imported platform.ts would load its
// zlib, crypto, os, worker and image-lock modules first (measured: a worker thread's start,
// spawn to its first message, best of 15 alternating rounds, two runs: 51.5/53.9 ms importing
// node:fs alone, 52.1/54.9 ms importing this module, 59.0/63.2 ms importing platform.js).

import * as fs from "node:fs";

/**
 * A second descriptor of an existing file that bypasses the page cache (O_DIRECT): savevm writes
 * the data area through it straight from guest RAM, and the eager restore reads it so. Buffers,
 * offsets and lengths must be aligned (4 KiB pages of the wasm memory are). Undefined where there
 * is no such thing: no O_DIRECT on this system, or a file system that refuses it (tmpfs: EINVAL)
 * - the caller reads or writes buffered. Other errors (no such file) are thrown.
 */
export function openDirect(file: string, mode: "r" | "w"): number | undefined {
  const direct = fs.constants.O_DIRECT;
  if (!direct) return undefined;
  try {
    return fs.openSync(file, (mode === "r" ? fs.constants.O_RDONLY : fs.constants.O_WRONLY) | direct);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "EINVAL") return undefined;
    throw e;
  }
}
