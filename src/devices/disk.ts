// Raw disk images: the block backend behind virtio-blk (QEMU's `format=raw`, block/file-posix.c),
// and the temporary overlay that QEMU's -snapshot puts over one (OverlayDisk).
//
// The image is a plain file read and written in place through a file descriptor with
// synchronous positioned I/O (readSync/writeSync), so a virtio request completes inside the
// guest's QueueNotify store. `flush()` is fsync: what the guest flushed is on stable storage.
//
// Locking: an image is locked while it is open, as QEMU locks it (image-lock.ts): a writer
// keeps every other rvm or QEMU off it, read-only users share it.
//
// Size: like QEMU, the capacity is the file size rounded *up* to whole 512-byte sectors
// (block.c, bdrv_refresh_total_sectors uses DIV_ROUND_UP); reading the tail of the last
// partial sector returns zeros (file-posix zero-fills short reads), and writing it extends
// the file to the sector boundary.

import { fs, lockImage, openTemporaryFile } from "../platform.js";
import { ImageError } from "../errors.js";
import type { LockRole } from "./image-lock.js";

export const SECTOR_SIZE = 512;

/** What virtio-blk needs from a disk: byte-addressed synchronous reads and writes. */
export interface BlockBackend {
  /** Size in bytes, a multiple of SECTOR_SIZE. */
  readonly size: number;
  readonly readOnly: boolean;
  /** Fills `buf` from byte `offset`; bytes past the end of the data read as zero. */
  read(buf: Uint8Array, offset: number): void;
  write(buf: Uint8Array, offset: number): void;
  /** Makes completed writes durable. */
  flush(): void;
  /**
   * Whether read() of [offset, offset + length) would wait (for bytes in a remote store): then a
   * promise that settles once it would not (the bytes fetched and checked; rejected if they
   * cannot be), and virtio-blk completes that read later, the hart running meanwhile. Undefined:
   * read() serves it at once (every local backend; StoreDisk for blocks it holds).
   */
  whenReadable?(offset: number, length: number): Promise<void> | undefined;
  /**
   * The same for write() of [offset, offset + length): a write that changes a block only in
   * part must first have that block's old content (a read-modify-write), which may be in a
   * remote store. Undefined: write() takes it at once.
   */
  whenWritable?(offset: number, length: number): Promise<void> | undefined;
  /**
   * The guest's writes are not kept on the image file (a compressed image unpacked in memory):
   * such a disk cannot be journaled, and once written it cannot be brought back to a snapshot,
   * so savevm refuses it then. (A -snapshot overlay is not volatile: it lives as long as rvm,
   * and so do that VM's snapshots, in a temporary store; savevm journals it like an image.)
   */
  readonly volatile?: boolean;
  /** A volatile disk: whether the guest has written to it since it was opened. */
  readonly written?: boolean;
}

export interface RawDiskOptions {
  /** Open read-only: the guest sees VIRTIO_BLK_F_RO and writes fail. */
  readOnly?: boolean;
  /** If the image cannot be opened for writing (permissions, read-only file system), attach it read-only instead of failing. */
  readOnlyFallback?: boolean;
  /**
   * How to lock it: "write" (the default for a writable image), "read" (the default read-only),
   * "read-no-resize" (a -snapshot overlay's base, as QEMU), or "none".
   */
  lock?: LockRole | "none";
}

function describe(err: unknown): string {
  const code = (err as NodeJS.ErrnoException).code;
  switch (code) {
    case "ENOENT":
      return "no such file";
    case "EACCES":
    case "EPERM":
      return "permission denied";
    case "EISDIR":
      return "is a directory, not a disk image";
    case "EROFS":
      return "on a read-only file system";
    case "ELOOP":
      return "too many levels of symbolic links";
    default:
      return (err as Error).message ?? String(err);
  }
}

export class RawDisk implements BlockBackend {
  readonly size: number;
  /** The file's own length in bytes (size is this rounded up to a sector). */
  private fileSize: number;
  private fd: number | undefined;

  private constructor(
    readonly file: string,
    fd: number,
    fileSize: number,
    readonly readOnly: boolean,
    private readonly lock: { release(): void } | undefined,
  ) {
    this.fd = fd;
    this.fileSize = fileSize;
    this.size = Math.ceil(fileSize / SECTOR_SIZE) * SECTOR_SIZE;
  }

  /** Opens a raw image; throws ImageError with a one-line reason if it cannot be used. */
  static open(file: string, opts: RawDiskOptions = {}): RawDisk {
    let readOnly = opts.readOnly ?? false;
    let fd: number;
    try {
      fd = fs.openSync(file, readOnly ? "r" : "r+");
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      const denied = code === "EACCES" || code === "EPERM" || code === "EROFS";
      if (readOnly || !denied) throw new ImageError(file, describe(err));
      if (!opts.readOnlyFallback) {
        throw new ImageError(file, `cannot open for writing (${describe(err)}); attach it read-only (readonly=on)`);
      }
      try {
        fd = fs.openSync(file, "r");
        readOnly = true;
      } catch (err2) {
        throw new ImageError(file, describe(err2));
      }
    }
    try {
      const st = fs.fstatSync(fd);
      if (!st.isFile() && !st.isBlockDevice()) throw new ImageError(file, "not a regular file");
      // Probe that the data is readable at all (EIO, directories on some systems).
      fs.readSync(fd, new Uint8Array(1), 0, st.size > 0 ? 1 : 0, 0);
      const role = opts.lock ?? (readOnly ? "read" : "write");
      const lock = role === "none" ? undefined : lockImage(file, role);
      return new RawDisk(file, fd, st.size, readOnly, lock);
    } catch (err) {
      fs.closeSync(fd);
      if (err instanceof ImageError) throw err;
      throw new ImageError(file, describe(err));
    }
  }

  private handle(): number {
    if (this.fd === undefined) throw new ImageError(this.file, "disk image is closed");
    return this.fd;
  }

  read(buf: Uint8Array, offset: number): void {
    readFully(this.handle(), buf, offset);
  }

  write(buf: Uint8Array, offset: number): void {
    if (this.readOnly) throw new ImageError(this.file, "disk image is read-only");
    const fd = this.handle();
    let done = 0;
    while (done < buf.length) done += fs.writeSync(fd, buf, done, buf.length - done, offset + done);
    this.fileSize = Math.max(this.fileSize, offset + buf.length);
  }

  flush(): void {
    if (this.fd === undefined || this.readOnly) return;
    fs.fsyncSync(this.fd);
  }

  /** Flushes and closes the image; later accesses fail. */
  close(): void {
    if (this.fd === undefined) return;
    try {
      this.flush();
    } finally {
      fs.closeSync(this.fd);
      this.fd = undefined;
      this.lock?.release();
    }
  }
}

/** Fills `buf` from `offset` of a file; past its end, zeros (the tail of the last sector). */
function readFully(fd: number, buf: Uint8Array, offset: number): void {
  let done = 0;
  while (done < buf.length) {
    const n = fs.readSync(fd, buf, done, buf.length - done, offset + done);
    if (n === 0) break;
    done += n;
  }
  if (done < buf.length) buf.fill(0, done);
}

/**
 * QEMU's `-snapshot` (`-drive ...,snapshot=on`): the guest reads the image until it writes a
 * sector; what it writes goes to a temporary file instead, which is deleted when it is created
 * (the open descriptor keeps it) and so vanishes with rvm, however rvm ends. The image is
 * opened read-only and never written: a course can hand one fs.img to many runs at once. It is
 * locked as QEMU locks a -snapshot base: a reader that keeps others from writing or resizing it.
 */
export class OverlayDisk implements BlockBackend {
  readonly size: number;
  readonly readOnly = false;
  /** One bit per sector: set once the guest wrote it (its data is in the overlay file). */
  private readonly overlaid: Uint8Array;
  private fd: number | undefined;

  /** @param tempDir where the temporary file is made (the system's temporary directory by default) */
  constructor(
    readonly base: BlockBackend & { close?: () => void },
    tempDir?: string,
  ) {
    this.size = base.size;
    this.overlaid = new Uint8Array(Math.ceil(this.size / SECTOR_SIZE / 8));
    this.fd = openTemporaryFile(tempDir);
  }

  private isWritten(sector: number): boolean {
    return (this.overlaid[sector >> 3] & (1 << (sector & 7))) !== 0;
  }

  private handle(): number {
    if (this.fd === undefined) throw new Error("overlay is closed");
    return this.fd;
  }

  /** Reads runs of sectors from wherever their current data is. */
  read(buf: Uint8Array, offset: number): void {
    const end = offset + buf.length;
    let pos = offset;
    while (pos < end) {
      const sector = Math.floor(pos / SECTOR_SIZE);
      const inOverlay = this.isWritten(sector);
      let runEnd = Math.min(end, (sector + 1) * SECTOR_SIZE);
      while (runEnd < end && this.isWritten(runEnd / SECTOR_SIZE) === inOverlay) runEnd = Math.min(end, runEnd + SECTOR_SIZE);
      const part = buf.subarray(pos - offset, runEnd - offset);
      if (inOverlay) readFully(this.handle(), part, pos);
      else this.base.read(part, pos);
      pos = runEnd;
    }
  }

  write(buf: Uint8Array, offset: number): void {
    if (buf.length === 0) return;
    // Whole sectors go to the overlay: a partial first or last sector is completed from the
    // current data first.
    const first = Math.floor(offset / SECTOR_SIZE);
    const last = Math.floor((offset + buf.length - 1) / SECTOR_SIZE);
    const start = first * SECTOR_SIZE;
    let data = buf;
    if (offset !== start || (offset + buf.length) % SECTOR_SIZE !== 0) {
      data = new Uint8Array((last - first + 1) * SECTOR_SIZE);
      this.read(data, start);
      data.set(buf, offset - start);
    }
    const fd = this.handle();
    let done = 0;
    while (done < data.length) done += fs.writeSync(fd, data, done, data.length - done, start + done);
    for (let s = first; s <= last; s++) this.overlaid[s >> 3] |= 1 << (s & 7);
  }

  /** The guest's writes are temporary: nothing to make durable. */
  flush(): void {}

  close(): void {
    if (this.fd !== undefined) fs.closeSync(this.fd);
    this.fd = undefined;
    this.base.close?.();
  }
}

/** A disk held in memory (a compressed image unpacked, tests): its writes are kept nowhere else. */
export class MemoryDisk implements BlockBackend {
  readonly size: number;
  readonly volatile = true;
  written = false;
  flushes = 0;

  constructor(
    readonly data: Uint8Array,
    readonly readOnly = false,
  ) {
    this.size = Math.ceil(data.length / SECTOR_SIZE) * SECTOR_SIZE;
    if (this.size !== data.length) {
      const padded = new Uint8Array(this.size);
      padded.set(data);
      this.data = padded;
    }
  }

  read(buf: Uint8Array, offset: number): void {
    buf.set(this.data.subarray(offset, offset + buf.length));
  }

  write(buf: Uint8Array, offset: number): void {
    if (this.readOnly) throw new Error("read-only disk");
    this.data.set(buf, offset);
    this.written = true;
  }

  flush(): void {
    this.flushes++;
  }
}
