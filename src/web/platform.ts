// The platform layer in the browser: the same exports as src/platform.ts, for code running in
// a Web Worker (src/web/worker.ts). The browser build swaps this module in for src/platform.ts.
//
// Files live in a synchronous in-memory file system (WebFs) with POSIX paths: the worker puts
// the guest's images there (fetched from the server or dropped on the page) under the paths the
// CLI would use, so the board, the loaders and the disks run unchanged. Synchronous on purpose,
// as in Node: a virtio-blk request completes inside the guest's QueueNotify store.

import { gunzipSync, unzlibSync, zlibSync } from "fflate";
import { sha256 } from "@noble/hashes/sha2.js";
import type { FileStats, PlatformFs } from "../platform.js";

/** An error shaped like Node's (`code`), which the shared code turns into one-line messages. */
function fsError(code: string, what: string, file: string): Error {
  return Object.assign(new Error(`${code}: ${what}, '${file}'`), { code });
}

/** POSIX paths, resolved against "/" (the worker has no other working directory). */
function normalize(p: string): string {
  const out: string[] = [];
  for (const part of p.split("/")) {
    if (part === "" || part === ".") continue;
    if (part === "..") out.pop();
    else out.push(part);
  }
  return "/" + out.join("/");
}

export const path = {
  join: (...parts: string[]): string => {
    const joined = parts.filter((x) => x !== "").join("/");
    return joined.startsWith("/") ? normalize(joined) : normalize(joined).slice(1) || ".";
  },
  dirname: (p: string): string => {
    const n = normalize(p);
    return n.slice(0, n.lastIndexOf("/")) || "/";
  },
  basename: (p: string): string => normalize(p).split("/").pop() ?? "",
  resolve: (...parts: string[]): string => {
    let acc = "/";
    for (const p of parts) acc = p.startsWith("/") ? p : `${acc}/${p}`;
    return normalize(acc);
  },
};

/** An OPFS file opened for synchronous access (FileSystemSyncAccessHandle), as far as WebFs uses it. */
export interface SyncHandle {
  read(buffer: Uint8Array, opts: { at: number }): number;
  write(buffer: Uint8Array, opts: { at: number }): number;
  getSize(): number;
  truncate(size: number): void;
  flush(): void;
  close(): void;
}

/** The unit in which the IndexedDB backend stores a file and tracks what changed. */
export const CHUNK = 1 << 20;

/**
 * A file: its bytes in memory, growing as it is written — or, once the browser's storage keeps
 * it (src/web/storage.ts), in an OPFS file read and written synchronously through `handle`.
 */
export class MemFile {
  data: Uint8Array = new Uint8Array(0);
  size = 0;
  mtimeMs = Date.now();
  handle?: SyncHandle;
  /** Bumped by every change; the storage remembers the version it holds. */
  version = 0;
  /** CHUNK-sized pieces changed since the storage last wrote them (the IndexedDB backend). */
  readonly dirty = new Set<number>();

  private touch(position: number, length: number): void {
    this.version++;
    this.mtimeMs = Date.now();
    for (let c = Math.floor(position / CHUNK); c * CHUNK < position + length; c++) this.dirty.add(c);
  }

  read(buf: Uint8Array, offset: number, length: number, position: number): number {
    const n = Math.max(0, Math.min(length, this.size - position));
    if (n === 0) return 0;
    if (this.handle) return this.handle.read(buf.subarray(offset, offset + n), { at: position });
    buf.set(this.data.subarray(position, position + n), offset);
    return n;
  }

  write(buf: Uint8Array, offset: number, length: number, position: number): number {
    const end = position + length;
    if (this.handle) {
      this.handle.write(buf.subarray(offset, offset + length), { at: position });
    } else {
      if (end > this.data.length) {
        const grown = new Uint8Array(Math.max(end, Math.min(this.data.length * 2, end + (64 << 20))));
        grown.set(this.data.subarray(0, this.size));
        this.data = grown;
      }
      this.data.set(buf.subarray(offset, offset + length), position);
    }
    this.touch(Math.min(position, this.size), end - Math.min(position, this.size));
    this.size = Math.max(this.size, end);
    return length;
  }

  truncate(length: number): void {
    if (this.handle) this.handle.truncate(length);
    else if (length < this.size) this.data.fill(0, length, this.size);
    else if (length > this.data.length) this.data = grow(this.data, this.size, length);
    this.touch(Math.min(length, this.size), Math.abs(this.size - length));
    this.size = length;
  }

  /** The whole file (a view of it when it is in memory). */
  bytes(): Uint8Array {
    if (!this.handle) return this.data.subarray(0, this.size);
    const all = new Uint8Array(this.size);
    this.handle.read(all, { at: 0 });
    return all;
  }

  /** Brings an OPFS-backed file's bytes into memory and lets its handle go. */
  toMemory(): void {
    if (!this.handle) return;
    this.data = this.bytes();
    this.handle.close();
    this.handle = undefined;
  }
}

function grow(data: Uint8Array, size: number, to: number): Uint8Array {
  const grown = new Uint8Array(to);
  grown.set(data.subarray(0, size));
  return grown;
}

function stats(size: number, mtimeMs: number, dir: boolean): FileStats {
  return { size, mtimeMs, isFile: () => !dir, isDirectory: () => dir, isBlockDevice: () => false };
}

/** The worker's file system: files in memory, by normalized path. */
export class WebFs implements PlatformFs {
  private readonly files = new Map<string, MemFile>();
  /** Directories made with mkdirSync (others exist while files are in them). */
  private readonly dirs = new Set<string>(["/"]);
  private readonly fds = new Map<number, { file: MemFile; writable: boolean }>();
  private nextFd = 3;

  /** Paths (files, and directories with everything under them) the browser's storage keeps. */
  private kept: string[] = [];

  /** Says which paths the browser's storage keeps (src/web/storage.ts). */
  keep(paths: string[]): void {
    this.kept = paths.map(normalize);
  }

  /** Whether the browser's storage keeps `file`. */
  isKept(file: string): boolean {
    const p = normalize(file);
    return this.kept.some((k) => p === k || p.startsWith(k + "/"));
  }

  /** The files the browser's storage keeps, by path. */
  keptFiles(): Map<string, MemFile> {
    return new Map([...this.files].filter(([p]) => this.isKept(p)));
  }

  /** Puts a file the storage had under its path (when the worker starts). */
  adopt(file: string, f: MemFile): void {
    this.files.set(normalize(file), f);
  }

  /** Puts a whole file in place (the worker's loading of images). */
  put(file: string, bytes: Uint8Array): void {
    const f = new MemFile();
    f.data = bytes;
    f.size = bytes.length;
    this.files.set(normalize(file), f);
  }

  private isDir(p: string): boolean {
    if (this.dirs.has(p)) return true;
    const prefix = p === "/" ? "/" : p + "/";
    for (const k of this.files.keys()) if (k.startsWith(prefix)) return true;
    return false;
  }

  existsSync(file: string): boolean {
    const p = normalize(file);
    return this.files.has(p) || this.isDir(p);
  }

  statSync(file: string): FileStats {
    const p = normalize(file);
    const f = this.files.get(p);
    if (f) return stats(f.size, f.mtimeMs, false);
    if (this.isDir(p)) return stats(0, 0, true);
    throw fsError("ENOENT", "no such file or directory, stat", file);
  }

  readFileSync(file: string): Uint8Array {
    const p = normalize(file);
    const f = this.files.get(p);
    if (!f) throw fsError(this.isDir(p) ? "EISDIR" : "ENOENT", "cannot read", file);
    return f.bytes();
  }

  openSync(file: string, flags: "r" | "r+" | "w" | "a+"): number {
    const p = normalize(file);
    let f = this.files.get(p);
    if (!f && this.isDir(p) && flags === "r") {
      // A directory opened to be fsynced (after a rename in it).
      const fd = this.nextFd++;
      this.fds.set(fd, { file: new MemFile(), writable: false });
      return fd;
    }
    if (!f) {
      if (this.isDir(p)) throw fsError("EISDIR", "illegal operation on a directory, open", file);
      if (flags === "r" || flags === "r+") throw fsError("ENOENT", "no such file or directory, open", file);
      f = new MemFile();
      this.files.set(p, f);
    } else if (flags === "w") {
      f.size = 0;
    }
    const fd = this.nextFd++;
    this.fds.set(fd, { file: f, writable: flags !== "r" });
    return fd;
  }

  private handle(fd: number): { file: MemFile; writable: boolean } {
    const h = this.fds.get(fd);
    if (!h) throw fsError("EBADF", "bad file descriptor", String(fd));
    return h;
  }

  closeSync(fd: number): void {
    this.handle(fd);
    this.fds.delete(fd);
  }

  /** A file under no name, readable and writable, freed when closed. */
  openAnonymous(): number {
    const fd = this.nextFd++;
    this.fds.set(fd, { file: new MemFile(), writable: true });
    return fd;
  }

  fstatSync(fd: number): FileStats {
    const f = this.handle(fd).file;
    return stats(f.size, f.mtimeMs, false);
  }

  readSync(fd: number, buffer: Uint8Array, offset: number, length: number, position: number): number {
    return this.handle(fd).file.read(buffer, offset, length, position);
  }

  writeSync(fd: number, buffer: Uint8Array, offset: number, length: number, position: number): number {
    const h = this.handle(fd);
    if (!h.writable) throw fsError("EBADF", "file opened read-only", String(fd));
    return h.file.write(buffer, offset, length, position);
  }

  fsyncSync(fd: number): void {
    this.handle(fd);
  }

  fdatasyncSync(fd: number): void {
    this.handle(fd);
  }

  ftruncateSync(fd: number, length: number): void {
    this.handle(fd).file.truncate(length);
  }

  writevSync(fd: number, buffers: Uint8Array[], position: number): number {
    let n = 0;
    for (const b of buffers) n += this.writeSync(fd, b, 0, b.length, position + n);
    return n;
  }

  readdirSync(dir: string): string[] {
    const p = normalize(dir);
    if (!this.isDir(p)) throw fsError("ENOENT", "no such file or directory, scandir", dir);
    const prefix = p === "/" ? "/" : p + "/";
    const names = new Set<string>();
    for (const k of [...this.files.keys(), ...this.dirs]) {
      if (k.startsWith(prefix) && k.length > prefix.length) names.add(k.slice(prefix.length).split("/")[0]);
    }
    return [...names].sort();
  }

  mkdirSync(dir: string): void {
    for (let p = normalize(dir); p !== "/"; p = path.dirname(p)) this.dirs.add(p);
  }

  renameSync(from: string, to: string): void {
    const f = this.files.get(normalize(from));
    if (!f) throw fsError("ENOENT", "no such file or directory, rename", from);
    this.files.delete(normalize(from));
    this.files.set(normalize(to), f);
  }

  unlinkSync(file: string): void {
    if (!this.files.delete(normalize(file))) throw fsError("ENOENT", "no such file or directory, unlink", file);
  }

  read(fd: number, buffer: Uint8Array, offset: number, length: number, position: number,
    callback: (err: NodeJS.ErrnoException | null, bytesRead: number) => void): void {
    let n = 0;
    let err: NodeJS.ErrnoException | null = null;
    try {
      n = this.readSync(fd, buffer, offset, length, position);
    } catch (e) {
      err = e as NodeJS.ErrnoException;
    }
    setTimeout(() => callback(err, n), 0);
  }

  /** A whole file's bytes (a snapshot to download). */
  bytes(file: string): Uint8Array {
    return this.readFileSync(file);
  }
}

/** The file system, its methods bound: the shared code takes them apart (`const { openSync } = fs`), as Node's are free functions. */
export const fs = new WebFs();
for (const name of Object.getOwnPropertyNames(WebFs.prototype)) {
  const f = (fs as unknown as Record<string, unknown>)[name];
  if (typeof f === "function" && name !== "constructor") (fs as unknown as Record<string, unknown>)[name] = f.bind(fs);
}

/** node:crypto's createHash("sha256") and randomBytes, as far as rvm uses them (Buffers out). */
export function createHash(algorithm: string): { update(data: Uint8Array): { update(data: Uint8Array): unknown; digest(): Buffer }; digest(): Buffer } {
  if (algorithm !== "sha256") throw new Error(`hash ${algorithm} is not available in the browser`);
  const h = sha256.create();
  const api = {
    update(data: Uint8Array) {
      h.update(data);
      return api;
    },
    digest: () => Buffer.from(h.digest()),
  };
  return api;
}

export function randomBytes(n: number): Buffer {
  return Buffer.from(crypto.getRandomValues(new Uint8Array(n)));
}

/** node:zlib's deflateSync/inflateSync (zlib format, as Node writes it). */
export function deflateSync(data: Uint8Array, opts?: { level?: number }): Buffer {
  return Buffer.from(zlibSync(data, { level: (opts?.level ?? 6) as 1 }));
}

/** (`opts`: node:zlib's output buffer size and limit, nothing to fflate.) */
export function inflateSync(data: Uint8Array, _opts?: { chunkSize?: number; maxOutputLength?: number }): Buffer {
  return Buffer.from(unzlibSync(data));
}

/** The worker has no environment, and no measure of its own CPU time (NaN: unknown). */
export function envVar(_name: string): string | undefined {
  return undefined;
}

export function cpuTimeMs(): number {
  return NaN;
}

export function runtimeStartedMs(): number {
  return 0;
}

/** One process: no other save can be in progress. */
export const pid = 1;

export function processAlive(_other: number): boolean {
  return false;
}

/** Image locks keep other processes off an image; a tab's in-memory files have no others. */
export function lockImage(_file: string, _role: string): { release(): void } {
  return { release() {} };
}

/** A temporary file (-snapshot's overlays): in memory, under no name, gone when closed. */
export function openTemporaryFile(_dir?: string): number {
  return fs.openAnonymous();
}

/** No page cache to bypass in a tab: savevm writes the normal way. */
export function openDirect(_file: string, _mode: "r" | "w"): number | undefined {
  return undefined;
}

/** No process memory to read through a kernel in a tab (the eager restore checks pages in place). */
export interface SelfMemory {
  read(dst: Uint8Array, address: number): boolean;
  close(): void;
}

export function openSelfMemory(): SelfMemory | undefined {
  return undefined;
}

export function memoryAddress(_memory: WebAssembly.Memory, _probeAt: number): number | undefined {
  return undefined;
}

export function gunzip(data: Uint8Array): Uint8Array {
  return gunzipSync(data);
}

/**
 * Copies `src[start, end)` into guest RAM at `offset`. The browser's Buffer (the `buffer` package)
 * copies only into another Buffer, so this is TypedArray.set.
 */
export function copyIntoRam(src: Buffer, ram: Uint8Array, offset: number, start = 0, end = src.length): void {
  ram.set(src.subarray(start, end), offset);
}

let output: (fd: 1 | 2, data: Uint8Array | string) => void = () => undefined;

/** Where writeOut goes: the worker sends it to the page. */
export function setOutput(sink: (fd: 1 | 2, data: Uint8Array | string) => void): void {
  output = sink;
}

export function writeOut(fd: 1 | 2, data: Uint8Array | string): void {
  output(fd, data);
}

// A message to ourselves runs after pending messages and timers, without setTimeout's 4 ms clamp.
const channel = new MessageChannel();
const waiting: (() => void)[] = [];
channel.port1.onmessage = () => waiting.shift()?.();

export function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => {
    waiting.push(resolve);
    channel.port2.postMessage(0);
  });
}

/** Where the package's files (build/core.wasm, guests/) are in WebFs; set by the worker. */
export let packageRoot = "/rvm";

export function setPackageRoot(dir: string): void {
  packageRoot = normalize(dir);
}

/** The host's CPUs as the browser reports them. */
export const hostCores: number = globalThis.navigator?.hardwareConcurrency ?? 1;

/** The host's load average: unknown in a browser (0). */
export function hostLoad(): number {
  return 0;
}

export interface HostThread {
  terminate(): void;
}

/**
 * No background threads here: guest RAM would have to be shared memory, which a page has only
 * when it is cross-origin isolated. The lazy restore's fetcher then takes turns on the hart's
 * thread (src/snapshot/fetcher.ts).
 */
export function startThread(_module: string, _data: unknown, _onError: (e: Error) => void): HostThread | undefined {
  return undefined;
}
