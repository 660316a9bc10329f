// The platform layer: what the machine, board, devices, loaders and snapshots need from the
// system they run on — files, the standard streams, yielding to the event loop, decompression,
// the package's own files — in one small module, so one code base runs in Node and in a
// browser tab.
//
// This file is the Node implementation (the CLI, the tests). The browser build
// (scripts/build-web.js) replaces it with src/web/platform.ts, which exports the same names over
// an in-memory file system (and the browser's storage) inside a Web Worker. Code shared by both
// imports Node's built-ins only through here; the CLI, the monitor server and the web server
// are Node-only and may use them directly.

import * as nodeFs from "node:fs";
import * as nodePath from "node:path";
import { tmpdir } from "node:os";
import { fileURLToPath } from "node:url";
import { deflateSync, gunzipSync, inflateSync } from "node:zlib";
import { createHash, randomBytes } from "node:crypto";
import { availableParallelism, loadavg } from "node:os";
import { Worker } from "node:worker_threads";
import { ImageLock, type LockRole } from "./devices/image-lock.js";

/** What rvm asks of a file's metadata. */
export interface FileStats {
  size: number;
  mtimeMs: number;
  isFile(): boolean;
  isDirectory(): boolean;
  isBlockDevice(): boolean;
}

/**
 * The synchronous file operations rvm uses, with Node's signatures and errors (an Error with
 * `code` ENOENT, EACCES, EISDIR, ...). Synchronous on purpose: a virtio-blk request completes
 * inside the guest's QueueNotify store.
 */
export interface PlatformFs {
  existsSync(path: string): boolean;
  statSync(path: string): FileStats;
  readFileSync(path: string): Uint8Array;
  openSync(path: string, flags: "r" | "r+" | "w" | "a+"): number;
  closeSync(fd: number): void;
  fstatSync(fd: number): FileStats;
  readSync(fd: number, buffer: Uint8Array, offset: number, length: number, position: number): number;
  writeSync(fd: number, buffer: Uint8Array, offset: number, length: number, position: number): number;
  fsyncSync(fd: number): void;
  // The snapshot store's directory and its atomic writes:
  fdatasyncSync(fd: number): void;
  ftruncateSync(fd: number, length: number): void;
  writevSync(fd: number, buffers: Uint8Array[], position: number): number;
  /** Scattered positioned read (the eager restore's O_DIRECT reads of runs of non-consecutive pages). */
  readvSync?(fd: number, buffers: Uint8Array[], position: number): number;
  readdirSync(path: string): string[];
  mkdirSync(path: string, opts: { recursive: true }): void;
  renameSync(from: string, to: string): void;
  unlinkSync(path: string): void;
  /** Asynchronous positioned read (the lazy restore's background fetcher). */
  read(fd: number, buffer: Uint8Array, offset: number, length: number, position: number,
    callback: (err: NodeJS.ErrnoException | null, bytesRead: number) => void): void;
}

export const fs: PlatformFs = nodeFs as unknown as PlatformFs;

/** SHA-256 and the like (checkpoint digests), random bytes (snapshot ids), deflate (page maps). */
export { createHash, deflateSync, inflateSync, randomBytes };

/** An environment variable (RVM_SPAWN_TIME). */
export function envVar(name: string): string | undefined {
  return process.env[name];
}

/** CPU time this process has used so far, in ms. */
export function cpuTimeMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

/** When the runtime had started (ms on performance.now()'s clock). */
export function runtimeStartedMs(): number {
  // (Node's global performance is perf_hooks' own: no require of node:perf_hooks, ~3 ms at start)
  return (performance as unknown as import("node:perf_hooks").Performance).nodeTiming.bootstrapComplete;
}

/** This process, and whether another one still runs (a save in progress leaves a temp file). */
export const pid: number = process.pid;

export function processAlive(other: number): boolean {
  try {
    process.kill(other, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM"; // alive, another user's
  }
}

/** POSIX path operations (the browser's file system uses POSIX paths too). */
export const path: {
  join(...parts: string[]): string;
  dirname(p: string): string;
  basename(p: string): string;
  resolve(...parts: string[]): string;
} = nodePath;

/**
 * Locks a disk image for `role` as QEMU does (devices/image-lock.ts), or throws an ImageError
 * naming who holds it. The browser's files live in its tab only: there it locks nothing.
 */
export function lockImage(file: string, role: LockRole): { release(): void } {
  return ImageLock.acquire(file, role);
}

/**
 * Opens a new temporary file for reading and writing (-snapshot's overlays) that no other
 * process can find and that vanishes when it is closed or rvm ends: it is unlinked at once.
 */
export function openTemporaryFile(dir = tmpdir()): number {
  const d = nodeFs.mkdtempSync(nodePath.join(dir, "rvm-overlay-"));
  try {
    return nodeFs.openSync(nodePath.join(d, "overlay"), "w+", 0o600);
  } finally {
    nodeFs.rmSync(d, { recursive: true, force: true });
  }
}

// A second descriptor of a file that bypasses the page cache (O_DIRECT): in a module of its own,
// importing node:fs only, so that the savevm and eager-restore threads start fast (direct-io.ts).
export { openDirect } from "./direct-io.js";

/**
 * Reads of this process's own memory through the kernel (Linux's /proc/self/mem), at the
 * addresses `memoryAddress` found. The eager restore checks the pages the device wrote into
 * guest RAM this way (restore.ts, issue 15): the kernel copies them out through its own mapping
 * of the memory, so the check does not touch each fresh page from user space - which on a host
 * with shadow page tables costs a trip to the hypervisor per 4 KiB page. Undefined where there is
 * no such file (other systems, a kernel that refuses it).
 */
export interface SelfMemory {
  /** Reads `dst.length` bytes at virtual address `address`; false if the kernel would not. */
  read(dst: Uint8Array, address: number): boolean;
  close(): void;
}

export function openSelfMemory(): SelfMemory | undefined {
  let fd: number;
  try {
    fd = nodeFs.openSync("/proc/self/mem", "r");
  } catch {
    return undefined;
  }
  return {
    read(dst, address) {
      let done = 0;
      try {
        while (done < dst.length) {
          const n = nodeFs.readSync(fd, dst, done, dst.length - done, address + done);
          if (n <= 0) return false;
          done += n;
        }
      } catch {
        return false;
      }
      return true;
    },
    close: () => nodeFs.closeSync(fd),
  };
}

/**
 * The virtual address at which `memory`'s bytes begin in this process, for openSelfMemory's reads;
 * undefined where it cannot be told for certain. Found among the writable mappings large enough to
 * hold it (/proc/self/maps) by a random marker written at `probeAt` (then put back as it was) and
 * read back through the kernel at the candidate's address: only a mapping that holds the marker
 * there is taken.
 */
export function memoryAddress(memory: WebAssembly.Memory, probeAt: number): number | undefined {
  const mem = openSelfMemory();
  if (!mem) return undefined;
  const bytes = new Uint8Array(memory.buffer, probeAt, 64);
  const saved = bytes.slice();
  try {
    const marker = randomBytes(64);
    bytes.set(marker);
    const back = new Uint8Array(64);
    for (const line of nodeFs.readFileSync("/proc/self/maps", "utf8").split("\n")) {
      const m = /^([0-9a-f]+)-([0-9a-f]+) rw/.exec(line);
      if (!m) continue;
      const start = parseInt(m[1], 16), end = parseInt(m[2], 16);
      if (end - start < memory.buffer.byteLength || !Number.isSafeInteger(end)) continue;
      if (mem.read(back, start + probeAt) && Buffer.from(back).equals(marker)) return start;
    }
    return undefined;
  } catch {
    return undefined;
  } finally {
    bytes.set(saved);
    mem.close();
  }
}

/** Unpacks gzip data (guest images may be gzipped). Throws on corrupt data. */
export function gunzip(data: Uint8Array): Uint8Array {
  return new Uint8Array(gunzipSync(data));
}

/**
 * Copies `src[start, end)` into guest RAM at `offset`: Buffer.copy, which takes any Uint8Array as
 * its target and is ~3x faster than TypedArray.set into the shared core memory (4.75 vs 13.2 us
 * per 4 KiB page).
 */
export function copyIntoRam(src: Buffer, ram: Uint8Array, offset: number, start = 0, end = src.length): void {
  src.copy(ram, offset, start, end);
}

/** Writes to the process's standard output (1) or error (2). */
export function writeOut(fd: 1 | 2, data: Uint8Array | string): void {
  (fd === 2 ? process.stderr : process.stdout).write(data);
}

/** Lets pending I/O callbacks, timers and messages run (the run loop calls this every ~20 ms). */
export function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

const here = nodePath.dirname(fileURLToPath(import.meta.url));

/** The package's root directory (build/core.wasm, guests/): one up from src/, two from dist/src/. */
export const packageRoot: string = nodeFs.existsSync(nodePath.join(here, "..", "package.json"))
  ? nodePath.join(here, "..")
  : nodePath.join(here, "..", "..");

/** How many CPUs the host has (a background thread keeps to a share of one when they are few). */
export const hostCores: number = availableParallelism();

/** The host's load average over the last minute (runnable threads; 0 where unknown). */
export function hostLoad(): number {
  return loadavg()[0];
}

/** A thread sharing memory with this one (the lazy restore's background fetcher). */
export interface HostThread {
  terminate(): void;
}

/**
 * Starts `module` (a path under dist/src/, compiled: also when this code runs from src/ under
 * the tests) on a thread of its own with `data` (SharedArrayBuffers and a shared WebAssembly
 * memory are shared, not copied). `onError` gets an uncaught error.
 * The build's one-file bundle of the module (X.bundle.cjs next to X.js, scripts/build-cli.js) is
 * started where there is one: a thread loads it in a fraction of the CPU time the ~15 modules
 * take, and the lazy restore's fetcher starts on the way to the guest's first answer.
 * It never keeps a finished process alive. The browser build has no such threads: undefined.
 */
export function startThread(module: string, data: unknown, onError: (e: Error) => void): HostThread | undefined {
  let file = nodePath.join(packageRoot, "dist", "src", module);
  const bundle = file.replace(/\.js$/, ".bundle.cjs");
  if (nodeFs.existsSync(bundle)) file = bundle;
  else if (!nodeFs.existsSync(file)) throw new Error(`rvm: ${nodePath.relative(packageRoot, file)} is missing (run npm run build)`);
  const w = new Worker(file, { workerData: data });
  w.unref();
  w.on("error", onError);
  return { terminate: () => void w.terminate() };
}
