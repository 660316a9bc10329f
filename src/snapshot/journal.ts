// Disk consistency for snapshots: copy-before-write into a per-disk journal.
//
// The user's raw image stays the live disk (as QEMU does with raw images). A snapshot records a
// *generation mark* g of each disk (`mark()`). Before the guest writes a 4 KiB block for the first
// time in a generation, the block's old content is appended to the journal and made durable
// (write-ahead: the append is fdatasync'ed before `beforeWrite` returns and the disk is written).
// Block B "as of mark g" is the entry for B with the smallest generation c > g if there is one,
// else the live disk's current block. So a snapshot's disk-backed page references never break,
// and `revertTo(g)` (loadvm) can bring the disk back to its state at savevm.
//
// Wiring: `virtioBlk.onBeforeDiskWrite = (off, len) => journal.beforeWrite(off, len)`. If the
// journal cannot be written, beforeWrite throws and the device fails the request (IOERR) without
// touching the image.
//
// Only what a live mark needs is preserved: with no live mark (no snapshot ever taken, or all
// deleted and compacted away) beforeWrite does nothing; a block whose latest entry is newer than
// the newest live mark is not preserved again (its content at every live mark is already kept).
//
// File `<dir>/<name>.journal`: an append-only sequence of records, little-endian.
//
//   record header, 32 bytes:
//     0  u32  magic 0x4a4d5652 ("RVMJ")
//     4  u8   kind: 1 = STATE, 2 = MARK, 3 = ENTRY
//     5  u8   format version (1)
//     6  u16  0
//     8  u32  generation
//     12 u32  payload length
//     16 u64  block number (ENTRY), else 0
//     24 u8[8] checksum: first 8 bytes of SHA-256(header bytes 0..24 || payload)
//   then the payload.
//
//   STATE (always the first record, and only there): generation = the current generation when the
//     file was written; payload = u64 disk size in bytes, u32 n, then n × u32 live marks.
//   MARK: generation = the mark g just taken; the current generation becomes g + 1. No payload.
//   ENTRY: payload = the 4096 bytes of block `block` as they were before the first write to it in
//     generation `generation` (bytes past the end of the disk are zero). Entries of one block
//     appear in strictly increasing generation order.
//
// The whole file is read and checked when the journal is opened (and each entry again whenever it
// is used). A torn trailing record (crash mid-append: the file ends inside it, or its bytes from
// some point on were never written and read as zeros) is dropped and the file truncated; any
// other bad record is an error naming the file and the byte offset. `compact` rewrites the file
// (temp file, fsync, rename, fsync of the directory), starting it with a new STATE record.

import { createHash, fs, path } from "../platform.js";
import type { BlockBackend } from "../devices/disk.js";
import { RvmError } from "../errors.js";

const { closeSync, existsSync, fdatasyncSync, fstatSync, fsyncSync, ftruncateSync, openSync, readSync, renameSync, unlinkSync, writeSync } = fs;
const { join } = path;

export const JOURNAL_BLOCK_SIZE = 4096;

const MAGIC = 0x4a4d5652;
const VERSION = 1;
const KIND_STATE = 1;
const KIND_MARK = 2;
const KIND_ENTRY = 3;
const HEADER = 32;
const RECORD = HEADER + JOURNAL_BLOCK_SIZE;
/** Upper bound on live marks a STATE record may list (sanity check when reading). */
const MAX_LIVE = 1 << 20;

/** A journal file that cannot be used (corrupted, foreign, wrong disk, I/O failure). */
export class JournalError extends RvmError {
  constructor(file: string, problem: string) {
    super(`${file}: ${problem}`);
    this.name = "JournalError";
  }
}

interface Entry {
  gen: number;
  /** File offset of the record. */
  off: number;
}

function checksum(rec: Uint8Array, payloadLength: number): Buffer {
  return createHash("sha256")
    .update(rec.subarray(0, 24))
    .update(rec.subarray(HEADER, HEADER + payloadLength))
    .digest();
}

function sealRecord(rec: Uint8Array, kind: number, gen: number, length: number, block: number): void {
  const v = new DataView(rec.buffer, rec.byteOffset, HEADER);
  v.setUint32(0, MAGIC, true);
  v.setUint8(4, kind);
  v.setUint8(5, VERSION);
  v.setUint16(6, 0, true);
  v.setUint32(8, gen, true);
  v.setUint32(12, length, true);
  v.setUint32(16, block >>> 0, true);
  v.setUint32(20, Math.floor(block / 0x1_0000_0000), true);
  rec.set(checksum(rec, length).subarray(0, 8), 24);
}

function checksumOk(rec: Uint8Array, length: number): boolean {
  const sum = checksum(rec, length);
  for (let i = 0; i < 8; i++) if (sum[i] !== rec[24 + i]) return false;
  return true;
}

function stateRecord(gen: number, diskSize: number, live: number[]): Uint8Array {
  const length = 12 + 4 * live.length;
  const rec = new Uint8Array(HEADER + length);
  const v = new DataView(rec.buffer);
  v.setUint32(HEADER, diskSize >>> 0, true);
  v.setUint32(HEADER + 4, Math.floor(diskSize / 0x1_0000_0000), true);
  v.setUint32(HEADER + 8, live.length, true);
  live.forEach((g, i) => v.setUint32(HEADER + 12 + 4 * i, g, true));
  sealRecord(rec, KIND_STATE, gen, length, 0);
  return rec;
}

function errCode(e: unknown): string {
  return (e as NodeJS.ErrnoException).code ?? (e as Error).message ?? String(e);
}

function writeAll(fd: number, buf: Uint8Array, position: number): void {
  for (let done = 0; done < buf.length; ) done += writeSync(fd, buf, done, buf.length - done, position + done);
}

function readFull(fd: number, buf: Uint8Array, position: number): number {
  let done = 0;
  while (done < buf.length) {
    const n = readSync(fd, buf, done, buf.length - done, position + done);
    if (n === 0) break;
    done += n;
  }
  return done;
}

function fsyncDir(dir: string): void {
  try {
    const fd = openSync(dir, "r");
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  } catch {
    // Not supported everywhere; the rename itself is still atomic.
  }
}

/** Sequential reads of a file through a large buffer (the scan at open). */
class Reader {
  private buf = new Uint8Array(1 << 20);
  private start = 0;
  private len = 0;

  constructor(
    private readonly fd: number,
    readonly size: number,
  ) {}

  /** Bytes [pos, pos + n) of the file, fewer if the file ends first. Valid until the next call. */
  get(pos: number, n: number): Uint8Array {
    if (pos < this.start || pos + n > this.start + this.len) {
      if (n > this.buf.length) this.buf = new Uint8Array(n);
      this.start = pos;
      this.len = readFull(this.fd, this.buf.subarray(0, Math.min(this.buf.length, Math.max(0, this.size - pos))), pos);
    }
    const from = pos - this.start;
    return this.buf.subarray(from, Math.min(from + n, this.len));
  }

  /** True if every byte from `pos` to the end of the file is zero. */
  zeroFrom(pos: number): boolean {
    for (let p = pos; p < this.size; ) {
      const chunk = this.get(p, Math.min(1 << 20, this.size - p));
      if (chunk.length === 0) break;
      for (let i = 0; i < chunk.length; i++) if (chunk[i] !== 0) return false;
      p += chunk.length;
    }
    return true;
  }
}

export class DiskJournal {
  private fd: number | undefined;
  /** Length of the journal file (the next append goes here). */
  private end = 0;
  private gen = 1;
  private live = new Set<number>();
  /** The newest live mark, 0 if none. */
  private maxLive = 0;
  /** Block -> its entries, in increasing generation order. */
  private index = new Map<number, Entry[]>();
  private readonly nBlocks: number;
  private readonly scratch = new Uint8Array(RECORD);

  private constructor(
    readonly file: string,
    private readonly dir: string,
    private readonly disk: BlockBackend,
  ) {
    this.nBlocks = Math.ceil(disk.size / JOURNAL_BLOCK_SIZE);
  }

  /**
   * Opens (or creates) the journal for one disk in a snapshot directory: `<dir>/<name>.journal`.
   * Rebuilds the index from the file; a torn trailing record is dropped and the file truncated;
   * any other corruption throws a JournalError.
   */
  static open(dir: string, name: string, disk: BlockBackend): DiskJournal {
    const file = join(dir, `${name}.journal`);
    const j = new DiskJournal(file, dir, disk);
    const tmp = `${file}.tmp`;
    try {
      if (existsSync(tmp)) unlinkSync(tmp); // left by an interrupted compaction
    } catch {
      // harmless
    }
    if (!existsSync(file)) j.writeFile(stateRecord(1, disk.size, []));
    try {
      j.fd = openSync(file, "r+");
    } catch (e) {
      throw new JournalError(file, `cannot open: ${errCode(e)}`);
    }
    try {
      j.scan();
    } catch (e) {
      j.close();
      if (e instanceof RvmError) throw e;
      throw new JournalError(file, `cannot read: ${errCode(e)}`);
    }
    return j;
  }

  /** The current generation (1 for a new journal). */
  get generation(): number {
    return this.gen;
  }

  /** The marks still live (every mark taken and not dropped by `compact`), in increasing order. */
  get liveMarks(): number[] {
    return [...this.live].sort((a, b) => a - b);
  }

  /** savevm: returns the mark g of the disk state at this instant and starts generation g + 1 (durably). */
  mark(): number {
    const g = this.gen;
    const rec = new Uint8Array(HEADER);
    sealRecord(rec, KIND_MARK, g, 0, 0);
    this.append(rec);
    this.gen = g + 1;
    this.live.add(g);
    this.maxLive = Math.max(this.maxLive, g);
    return g;
  }

  /**
   * Call before writing bytes [offset, offset + length) of the live disk: durably preserves the
   * current content of every block in the range that a live mark still needs (one append, one
   * fdatasync for the whole range).
   */
  beforeWrite(offset: number, length: number): void {
    if (this.maxLive === 0 || length <= 0) return;
    this.handle();
    const first = Math.floor(offset / JOURNAL_BLOCK_SIZE);
    const last = Math.min(Math.floor((offset + length - 1) / JOURNAL_BLOCK_SIZE), this.nBlocks - 1);
    let need: number[] | undefined;
    for (let b = Math.max(0, first); b <= last; b++) {
      if (this.needsPreserving(b)) (need ??= []).push(b);
    }
    if (need) this.preserve(need);
  }

  /** Fills `out` (4096 bytes) with block `block` as of mark `g`. Bytes past the end of the disk read as zero. */
  readBlock(block: number, g: number, out: Uint8Array): void {
    this.checkMark(g);
    if (out.length !== JOURNAL_BLOCK_SIZE) throw new RangeError(`readBlock: buffer of ${out.length} bytes, expected ${JOURNAL_BLOCK_SIZE}`);
    const e = this.entryFor(block, g);
    if (e) this.readEntry(e, block, out);
    else this.readDisk(block, out);
  }

  /** True if block `block` changed since mark `g` (readBlock must use the journal). */
  changedSince(block: number, g: number): boolean {
    const arr = this.index.get(block);
    return arr !== undefined && arr[arr.length - 1].gen > g;
  }

  /**
   * loadvm: rewrites the live disk so that it equals its state at mark `g`, first preserving what
   * later live marks still need, then flushes the disk.
   */
  revertTo(g: number): void {
    this.checkMark(g);
    const targets: [number, Entry][] = [];
    for (const [block, arr] of this.index) {
      const e = arr.find((x) => x.gen > g);
      if (e) targets.push([block, e]);
    }
    targets.sort((a, b) => a[0] - b[0]);
    const need = targets.map(([b]) => b).filter((b) => this.needsPreserving(b));
    if (need.length > 0) this.preserve(need);
    const buf = new Uint8Array(JOURNAL_BLOCK_SIZE);
    for (const [block, e] of targets) {
      this.readEntry(e, block, buf);
      const start = block * JOURNAL_BLOCK_SIZE;
      const n = Math.min(JOURNAL_BLOCK_SIZE, this.disk.size - start);
      if (n > 0) this.disk.write(buf.subarray(0, n), start);
    }
    this.disk.flush();
  }

  /**
   * Keeps only the entries that a mark in `liveMarks` needs — (B, c) is needed by g iff c > g and
   * no entry (B, c') has g < c' < c — and rewrites the journal compactly. Marks not listed are
   * dropped for good. With no live marks the journal is emptied.
   */
  compact(liveMarks: number[]): void {
    const fd = this.handle();
    for (const g of liveMarks) {
      if (!this.live.has(g)) throw new JournalError(this.file, `cannot keep mark ${g}: no such live mark`);
    }
    const live = [...new Set(liveMarks)].sort((a, b) => a - b);
    const kept: [number, Entry][] = [];
    for (const [block, arr] of this.index) {
      let prev = 0;
      for (const e of arr) {
        if (DiskJournal.anyIn(live, prev, e.gen)) kept.push([block, e]);
        prev = e.gen;
      }
    }
    kept.sort((a, b) => a[1].gen - b[1].gen || a[0] - b[0]);

    // Copy the kept records (checked) into the new file, computing their new offsets.
    const state = stateRecord(this.gen, this.disk.size, live);
    const chunks: Uint8Array[] = [state];
    const newIndex = new Map<number, Entry[]>();
    let pos = state.length;
    for (const [block, e] of kept) {
      const rec = new Uint8Array(RECORD);
      if (readFull(fd, rec, e.off) !== RECORD || !this.validEntry(rec, block, e.gen)) this.corrupt(e.off);
      chunks.push(rec);
      let arr = newIndex.get(block);
      if (!arr) newIndex.set(block, (arr = []));
      arr.push({ gen: e.gen, off: pos });
      pos += RECORD;
    }
    this.writeFile(chunks);
    closeSync(fd);
    this.fd = undefined;
    try {
      this.fd = openSync(this.file, "r+");
    } catch (e) {
      throw new JournalError(this.file, `cannot reopen after compaction: ${errCode(e)}`);
    }
    for (const arr of newIndex.values()) arr.sort((a, b) => a.gen - b.gen);
    this.index = newIndex;
    this.end = pos;
    this.live = new Set(live);
    this.maxLive = live.length > 0 ? live[live.length - 1] : 0;
  }

  /** Bytes the journal occupies on disk. */
  size(): number {
    return this.end;
  }

  close(): void {
    if (this.fd === undefined) return;
    closeSync(this.fd);
    this.fd = undefined;
  }

  // --- internals ---

  /** True if some element of the sorted array `xs` lies in [lo, hi). */
  private static anyIn(xs: number[], lo: number, hi: number): boolean {
    let a = 0;
    let b = xs.length;
    while (a < b) {
      const m = (a + b) >> 1;
      if (xs[m] < lo) a = m + 1;
      else b = m;
    }
    return a < xs.length && xs[a] < hi;
  }

  private handle(): number {
    if (this.fd === undefined) throw new JournalError(this.file, "journal is closed");
    return this.fd;
  }

  private checkMark(g: number): void {
    this.handle();
    if (!this.live.has(g)) throw new JournalError(this.file, `no live mark ${g}`);
  }

  /** Does block b's current content need an entry in the current generation? */
  private needsPreserving(b: number): boolean {
    if (this.maxLive === 0) return false;
    const arr = this.index.get(b);
    // Already has an entry newer than the newest live mark (possibly in this generation): every
    // live mark reads b from the journal already.
    return arr === undefined || arr[arr.length - 1].gen <= this.maxLive;
  }

  private entryFor(block: number, g: number): Entry | undefined {
    const arr = this.index.get(block);
    if (!arr) return undefined;
    for (const e of arr) if (e.gen > g) return e;
    return undefined;
  }

  private readDisk(block: number, out: Uint8Array): void {
    const start = block * JOURNAL_BLOCK_SIZE;
    const n = Math.max(0, Math.min(JOURNAL_BLOCK_SIZE, this.disk.size - start));
    if (n > 0) this.disk.read(out.subarray(0, n), start);
    out.fill(0, n);
  }

  private validEntry(rec: Uint8Array, block: number, gen: number): boolean {
    const v = new DataView(rec.buffer, rec.byteOffset, HEADER);
    return (
      v.getUint32(0, true) === MAGIC &&
      v.getUint8(4) === KIND_ENTRY &&
      v.getUint32(8, true) === gen &&
      v.getUint32(12, true) === JOURNAL_BLOCK_SIZE &&
      v.getUint32(16, true) + v.getUint32(20, true) * 0x1_0000_0000 === block &&
      checksumOk(rec, JOURNAL_BLOCK_SIZE)
    );
  }

  private readEntry(e: Entry, block: number, out: Uint8Array): void {
    const rec = this.scratch;
    if (readFull(this.handle(), rec, e.off) !== RECORD || !this.validEntry(rec, block, e.gen)) this.corrupt(e.off);
    out.set(rec.subarray(HEADER));
  }

  private corrupt(off: number, what = "checksum mismatch"): never {
    throw new JournalError(this.file, `corrupted journal record at byte ${off} (${what})`);
  }

  /** Appends entries holding the current content of `blocks`, durably, with one fdatasync. */
  private preserve(blocks: number[]): void {
    const buf = new Uint8Array(blocks.length * RECORD);
    blocks.forEach((b, i) => {
      const rec = buf.subarray(i * RECORD, (i + 1) * RECORD);
      this.readDisk(b, rec.subarray(HEADER));
      sealRecord(rec, KIND_ENTRY, this.gen, JOURNAL_BLOCK_SIZE, b);
    });
    const start = this.append(buf);
    blocks.forEach((b, i) => {
      let arr = this.index.get(b);
      if (!arr) this.index.set(b, (arr = []));
      arr.push({ gen: this.gen, off: start + i * RECORD });
    });
  }

  /** Writes `buf` at the end of the file and makes it durable; on failure, cuts the file back. */
  private append(buf: Uint8Array): number {
    const fd = this.handle();
    const start = this.end;
    try {
      writeAll(fd, buf, start);
      fdatasyncSync(fd);
    } catch (e) {
      try {
        ftruncateSync(fd, start);
      } catch {
        // the next open drops a torn tail anyway
      }
      throw new JournalError(this.file, `cannot write the disk journal: ${errCode(e)}`);
    }
    this.end = start + buf.length;
    return start;
  }

  /** Writes a whole journal file atomically: temp file, fsync, rename, fsync of the directory. */
  private writeFile(data: Uint8Array | Uint8Array[]): void {
    const tmp = `${this.file}.tmp`;
    let fd: number | undefined;
    try {
      fd = openSync(tmp, "w");
      let pos = 0;
      // Gather small records into large writes.
      const out = new Uint8Array(1 << 20);
      let fill = 0;
      for (const chunk of Array.isArray(data) ? data : [data]) {
        if (fill + chunk.length > out.length) {
          writeAll(fd, out.subarray(0, fill), pos);
          pos += fill;
          fill = 0;
        }
        if (chunk.length > out.length) {
          writeAll(fd, chunk, pos);
          pos += chunk.length;
        } else {
          out.set(chunk, fill);
          fill += chunk.length;
        }
      }
      writeAll(fd, out.subarray(0, fill), pos);
      fsyncSync(fd);
      closeSync(fd);
      fd = undefined;
      renameSync(tmp, this.file);
      fsyncDir(this.dir);
    } catch (e) {
      if (fd !== undefined) closeSync(fd);
      try {
        unlinkSync(tmp);
      } catch {
        // nothing to clean up
      }
      throw new JournalError(this.file, `cannot write: ${errCode(e)}`);
    }
  }

  /** Reads the whole file, checks every record and rebuilds the index. */
  private scan(): void {
    const fd = this.handle();
    const size = fstatSync(fd).size;
    const r = new Reader(fd, size);
    let p = 0;
    let torn = -1;
    while (p < size) {
      const hdr = r.get(p, HEADER);
      if (hdr.length < HEADER) {
        torn = p;
        break;
      }
      const v = new DataView(hdr.buffer, hdr.byteOffset, HEADER);
      const magic = v.getUint32(0, true);
      const kind = v.getUint8(4);
      const version = v.getUint8(5);
      const gen = v.getUint32(8, true);
      const length = v.getUint32(12, true);
      const block = v.getUint32(16, true) + v.getUint32(20, true) * 0x1_0000_0000;
      if (p === 0 && magic === MAGIC && version !== VERSION) {
        throw new JournalError(this.file, `journal format version ${version}; this rvm reads version ${VERSION}`);
      }
      const sane =
        magic === MAGIC &&
        version === VERSION &&
        v.getUint16(6, true) === 0 &&
        ((kind === KIND_ENTRY && length === JOURNAL_BLOCK_SIZE) ||
          (kind === KIND_MARK && length === 0) ||
          (kind === KIND_STATE && length >= 12 && length <= 12 + 4 * MAX_LIVE && (length - 12) % 4 === 0));
      if (!sane) {
        if (p === 0 && magic !== MAGIC) throw new JournalError(this.file, "not an rvm disk journal");
        if (p > 0 && r.zeroFrom(p)) {
          torn = p;
          break;
        }
        this.corrupt(p, "bad record header");
      }
      if (p + HEADER + length > size) {
        torn = p;
        break;
      }
      const rec = r.get(p, HEADER + length);
      if (!checksumOk(rec, length)) {
        // A complete last record whose tail reads as zeros was never fully written.
        const zeroTail = kind === KIND_ENTRY && p + rec.length === size && rec.subarray(rec.length - 512).every((x) => x === 0);
        if (p > 0 && zeroTail) {
          torn = p;
          break;
        }
        this.corrupt(p);
      }
      if (p === 0 && kind !== KIND_STATE) throw new JournalError(this.file, "not an rvm disk journal (no state record)");
      switch (kind) {
        case KIND_STATE: {
          if (p !== 0) this.corrupt(p, "state record in the middle of the journal");
          const pv = new DataView(rec.buffer, rec.byteOffset + HEADER, length);
          const diskSize = pv.getUint32(0, true) + pv.getUint32(4, true) * 0x1_0000_0000;
          if (diskSize !== this.disk.size) {
            throw new JournalError(this.file, `journal was made for a disk of ${diskSize} bytes; this disk has ${this.disk.size}`);
          }
          const n = pv.getUint32(8, true);
          if (gen < 1 || 12 + 4 * n !== length) this.corrupt(p, "bad state record");
          for (let i = 0; i < n; i++) {
            const g = pv.getUint32(12 + 4 * i, true);
            if (g < 1 || g >= gen || this.live.has(g)) this.corrupt(p, "bad state record");
            this.live.add(g);
            this.maxLive = Math.max(this.maxLive, g);
          }
          this.gen = gen;
          break;
        }
        case KIND_MARK:
          if (gen !== this.gen) this.corrupt(p, `mark ${gen} in generation ${this.gen}`);
          this.live.add(gen);
          this.maxLive = gen;
          this.gen = gen + 1;
          break;
        case KIND_ENTRY: {
          let arr = this.index.get(block);
          if (gen > this.gen || block >= this.nBlocks || (arr && arr[arr.length - 1].gen >= gen)) {
            this.corrupt(p, `entry for block ${block} out of order`);
          }
          if (!arr) this.index.set(block, (arr = []));
          arr.push({ gen, off: p });
          break;
        }
      }
      p += HEADER + length;
    }
    if (torn === 0) throw new JournalError(this.file, size === 0 ? "empty journal file" : "truncated journal file");
    if (torn > 0) {
      try {
        ftruncateSync(fd, torn);
        fsyncSync(fd);
      } catch (e) {
        throw new JournalError(this.file, `cannot drop the torn last record: ${errCode(e)}`);
      }
    }
    this.end = torn > 0 ? torn : size;
  }
}
