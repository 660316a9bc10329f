// Disk consistency for snapshots: copy-before-write into a per-disk journal.
//
// The user's raw image stays the live disk (as QEMU does with raw images). A snapshot records a
// *generation mark* g of each disk (`mark()`). Before the guest writes a 4 KiB block for the first
// time in a generation, the block's old content is appended to the journal and made durable
// (write-ahead: the append is fdatasync'ed before `beforeWrite` returns and the disk is written).
// Block B "as of mark g" is the entry for B with the smallest generation c > g if there is one,
// else the live disk's current block. So a snapshot's disk-backed page references never break,
// and a revert (loadvm) can bring the disk back to its state at savevm.
//
// Wiring: `virtioBlk.onBeforeDiskWrite = (off, len) => journal.beforeWrite(off, len)`. If the
// journal cannot be written, beforeWrite throws and the device fails the request (IOERR) without
// touching the image.
//
// Only what a live mark needs is preserved: with no live mark (no snapshot ever taken, or all
// deleted and compacted away) beforeWrite does nothing; a block whose latest entry is newer than
// the newest live mark is not preserved again (its content at every live mark is already kept).
// What no snapshot needs any more (a deleted snapshot's entries; a committed revert's undo mark
// and what was preserved under it) goes at the next compaction: `compact` at delvm, and
// `compactIfWasteful` (run by rvm when the VM ends, and when a lazy restore completes past 64 MiB dead) once it
// is more than max(AUTO_COMPACT_MIN_DEAD, what is still needed).
//
// Reverts can be undone (a restore that fails later must leave the disk as it was): `beginRevert`
// first reads and checks every entry it will need, then appends a RESTORE record, which is also
// a mark u of the disk as it is before the revert (kept while the revert may still be undone),
// then rewrites the blocks (preserving their current content under u, as any write does),
// flushes the disk and appends REVERTED. `undo` brings the disk back to mark u — including what
// the guest wrote since — and cuts the journal back to where it ended before. A RESTORE without
// its REVERTED found when the journal is opened (rvm died while rewriting blocks) is undone then.
//
// File `<dir>/<name>.journal`, version 2, little-endian:
//
//   0..4096  head: two 64-byte slots, at 0 and 512, written alternately after each durable
//            append (a torn slot write leaves the other one): u32 magic "RVJH", u8 version 2,
//            3 bytes 0, u64 sequence number, 16-byte journal id, u64 record count, u64 length
//            (the file offset just past the last record the head vouches for), 8 bytes chain
//            value of that record, 8 bytes checksum (first 8 bytes of SHA-256 of bytes 0..56).
//   4096..   records, each a 32-byte header and a payload:
//     0  u32  magic 0x4a4d5652 ("RVMJ")
//     4  u8   kind: 1 = STATE, 2 = MARK, 3 = ENTRY, 4 = RESTORE, 5 = REVERTED
//     5  u8   format version (2)
//     6  u16  0
//     8  u32  generation
//     12 u32  payload length
//     16 u64  block number (ENTRY), else 0
//     24 u8[8] chain value: first 8 bytes of SHA-256(previous record's chain value || header
//              bytes 0..24 || payload); the first record chains from the journal id's first 8 bytes
//
//   STATE (always the first record, and only there): generation = the current generation when the
//     file was written; payload = u64 disk size in bytes, u32 n, then n × u32 live marks.
//   MARK: generation = the mark g just taken; the current generation becomes g + 1. No payload.
//   ENTRY: payload = the 4096 bytes of block `block` as they were before the first write to it in
//     generation `generation` (bytes past the end of the disk are zero). Entries of one block
//     appear in strictly increasing generation order.
//   RESTORE: a mark u (generation) taken before a revert; payload u32 the mark reverted to,
//     u32 0, u64 the file length before this record (where an undo cuts the journal back to).
//   REVERTED: generation u: the revert that RESTORE u began is on the disk. No payload.
//
// Verification: the whole file is read and every record checked when the journal is opened (and
// each entry again whenever it is used). The chain makes a removed, reordered or edited record
// visible; the head makes a cut at a record boundary visible: a file that ends before the length
// the head vouches for is refused (truncated), so is one whose records do not match the head's
// count and chain value. Records past the head's length were appended but not yet vouched for
// (rvm died between the durable append and the head update): they are kept if they check, and a
// torn last record there is dropped and the file truncated. `compact` rewrites the file (temp
// file, fsync, rename, fsync of the directory). Version 1 journals (no head, no chain) are read
// and rewritten as version 2 when opened.

import { createHash, fs, path, randomBytes } from "../platform.js";
import type { BlockBackend } from "../devices/disk.js";
import { RvmError } from "../errors.js";

const { closeSync, existsSync, fdatasyncSync, fstatSync, fsyncSync, ftruncateSync, openSync, readSync, renameSync, unlinkSync, writeSync } = fs;
const { join } = path;

export const JOURNAL_BLOCK_SIZE = 4096;
/** Bytes before the first record: the two head slots. */
export const JOURNAL_HEAD_SIZE = 4096;
/** Bytes of a record header. */
export const JOURNAL_RECORD_HEADER = 32;

const MAGIC = 0x4a4d5652;
const HEAD_MAGIC = 0x484a5652; // "RVJH"
const VERSION = 2;
const KIND_STATE = 1;
const KIND_MARK = 2;
const KIND_ENTRY = 3;
const KIND_RESTORE = 4;
const KIND_REVERTED = 5;
const HEADER = JOURNAL_RECORD_HEADER;
const RECORD = HEADER + JOURNAL_BLOCK_SIZE;
const SLOT = 64;
const SLOT_OFFSETS = [0, 512];
/**
 * `compactIfWasteful` compacts when more than max(this, the bytes live marks need) of the file is
 * dead. Opening a journal checks every byte of it (~2 ms of CPU per MB), so this bounds what a
 * journal that only needs a little costs every restore.
 */
export const AUTO_COMPACT_MIN_DEAD = 4 << 20;
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
  /** The chain value the record's checksum continues (-1n: a version 1 record, unchained). */
  prev: bigint;
}

/** Where the journal stood at some moment, to cut it back there (a failed savevm, an undone revert). */
export interface JournalSavepoint {
  end: number;
  gen: number;
  live: number[];
  count: number;
  chain: bigint;
  /** Compactions so far: a savepoint from before a compaction cannot be returned to by cutting. */
  compactions: number;
}

/** A revert that may still be undone (see beginRevert). */
export interface RevertHandle {
  /** The mark of the disk as it was before the revert. */
  readonly undoMark: number;
  readonly savepoint: JournalSavepoint;
  /** This revert pinned its undo mark (and unpins it when committed or undone). */
  readonly pinnedHere: boolean;
}

function le64(v: bigint): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(BigInt.asUintN(64, v));
  return b;
}

/** The chain value of a record: SHA-256(prev || header 0..24 || payload), first 8 bytes. */
function chainOf(prev: bigint, rec: Uint8Array, payloadLength: number): bigint {
  const h = createHash("sha256");
  if (prev >= 0n) h.update(le64(prev));
  return h.update(rec.subarray(0, 24)).update(rec.subarray(HEADER, HEADER + payloadLength)).digest().readBigUInt64LE(0);
}

function storedSum(rec: Uint8Array): bigint {
  return Buffer.from(rec.buffer, rec.byteOffset + 24, 8).readBigUInt64LE(0);
}

/** Fills in a record's header and its chain value; returns the chain value. */
function sealRecord(rec: Uint8Array, kind: number, gen: number, length: number, block: number, prev: bigint): bigint {
  const v = new DataView(rec.buffer, rec.byteOffset, HEADER);
  v.setUint32(0, MAGIC, true);
  v.setUint8(4, kind);
  v.setUint8(5, VERSION);
  v.setUint16(6, 0, true);
  v.setUint32(8, gen, true);
  v.setUint32(12, length, true);
  v.setUint32(16, block >>> 0, true);
  v.setUint32(20, Math.floor(block / 0x1_0000_0000), true);
  const sum = chainOf(prev, rec, length);
  v.setBigUint64(24, sum, true);
  return sum;
}

function stateRecord(gen: number, diskSize: number, live: number[]): Uint8Array {
  const length = 12 + 4 * live.length;
  const rec = new Uint8Array(HEADER + length);
  const v = new DataView(rec.buffer);
  v.setUint32(HEADER, diskSize >>> 0, true);
  v.setUint32(HEADER + 4, Math.floor(diskSize / 0x1_0000_0000), true);
  v.setUint32(HEADER + 8, live.length, true);
  live.forEach((g, i) => v.setUint32(HEADER + 12 + 4 * i, g, true));
  v.setUint32(8, gen, true);
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

interface Head {
  seq: bigint;
  id: Buffer;
  count: number;
  length: number;
  chain: bigint;
}

function encodeHead(h: Head): Buffer {
  const b = Buffer.alloc(SLOT);
  b.writeUInt32LE(HEAD_MAGIC, 0);
  b.writeUInt8(VERSION, 4);
  b.writeBigUInt64LE(h.seq, 8);
  h.id.copy(b, 16, 0, 16);
  b.writeBigUInt64LE(BigInt(h.count), 32);
  b.writeBigUInt64LE(BigInt(h.length), 40);
  b.writeBigUInt64LE(BigInt.asUintN(64, h.chain), 48);
  createHash("sha256").update(b.subarray(0, 56)).digest().copy(b, 56, 0, 8);
  return b;
}

function decodeHead(b: Buffer): Head | undefined {
  if (b.length < SLOT || b.readUInt32LE(0) !== HEAD_MAGIC) return undefined;
  if (!createHash("sha256").update(b.subarray(0, 56)).digest().subarray(0, 8).equals(b.subarray(56, 64))) return undefined;
  return {
    seq: b.readBigUInt64LE(8),
    id: Buffer.from(b.subarray(16, 32)),
    count: Number(b.readBigUInt64LE(32)),
    length: Number(b.readBigUInt64LE(40)),
    chain: b.readBigUInt64LE(48),
  };
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

export interface JournalOpenOptions {
  /** Only read and check the file: never create, repair, migrate or truncate it (`rvm snapshot check`). */
  readOnly?: boolean;
}

export class DiskJournal {
  private fd: number | undefined;
  /** Length of the journal file (the next append goes here). */
  private end = JOURNAL_HEAD_SIZE;
  private gen = 1;
  private live = new Set<number>();
  /** Undo marks of reverts that may still be undone: compaction keeps them. */
  private readonly pinned = new Set<number>();
  /** The newest live mark, 0 if none. */
  private maxLive = 0;
  /** Block -> its entries, in increasing generation order. */
  private index = new Map<number, Entry[]>();
  private readonly nBlocks: number;
  private readonly scratch = new Uint8Array(RECORD);
  private id: Buffer = Buffer.alloc(16);
  /** Records in the file and the chain value of the last one. */
  private count = 0;
  private chain = 0n;
  private headSeq = 0n;
  private compactions = 0;
  /** A RESTORE whose REVERTED is missing (found by the scan): the disk may be half reverted. */
  private interrupted: { undoMark: number; end: number; count: number; chain: bigint } | undefined;
  private readonly readOnly: boolean;
  /** Set once the file was read and checked: only then does close() write the head. */
  private opened = false;

  private constructor(
    readonly file: string,
    private readonly dir: string,
    private readonly disk: BlockBackend,
    opts: JournalOpenOptions,
  ) {
    this.nBlocks = Math.ceil(disk.size / JOURNAL_BLOCK_SIZE);
    this.readOnly = opts.readOnly ?? false;
  }

  /**
   * Opens (or creates) the journal for one disk in a snapshot directory: `<dir>/<name>.journal`.
   * Rebuilds the index from the file after checking every record; a torn record past what the
   * head vouches for is dropped and the file truncated; a revert that rvm did not finish is
   * undone; any other problem throws a JournalError.
   */
  static open(dir: string, name: string, disk: BlockBackend, opts: JournalOpenOptions = {}): DiskJournal {
    const file = join(dir, `${name}.journal`);
    const j = new DiskJournal(file, dir, disk, opts);
    if (!j.readOnly) {
      const tmp = `${file}.tmp`;
      try {
        if (existsSync(tmp)) unlinkSync(tmp); // left by an interrupted compaction
      } catch {
        // harmless
      }
      if (!existsSync(file)) {
        j.id = randomBytes(16);
        j.writeFile([], [], []);
      }
    }
    try {
      j.fd = openSync(file, j.readOnly ? "r" : "r+");
    } catch (e) {
      throw new JournalError(file, errCode(e) === "ENOENT" ? "no such journal" : `cannot open: ${errCode(e)}`);
    }
    try {
      const version = j.scan();
      if (j.interrupted) {
        if (j.readOnly) throw new JournalError(file, "a revert of the disk was interrupted (rvm died while rewriting it); open the disk with rvm to repair it");
        j.undoInterrupted();
      }
      j.opened = true;
      if (version === 1 && !j.readOnly) j.compact(j.liveMarks); // rewrite as version 2
    } catch (e) {
      j.close();
      if (e instanceof RvmError) throw e;
      throw new JournalError(file, `cannot read: ${errCode(e)}`);
    }
    return j;
  }

  /** The journal's identity (random, kept across compactions): snapshots record it. */
  get journalId(): string {
    return this.id.toString("hex");
  }

  /** The current generation (1 for a new journal). */
  get generation(): number {
    return this.gen;
  }

  /** The marks still live (every mark taken and not dropped by `compact`), in increasing order. */
  get liveMarks(): number[] {
    return [...this.live].sort((a, b) => a - b);
  }

  /** Records in the journal (the STATE record included). */
  get records(): number {
    return this.count;
  }

  /** Whether mark g is live (a snapshot taken with it can be restored). */
  hasMark(g: number): boolean {
    return this.live.has(g);
  }

  /** savevm: returns the mark g of the disk state at this instant and starts generation g + 1 (durably). */
  mark(): number {
    const g = this.gen;
    const rec = new Uint8Array(HEADER);
    this.appendRecords(rec, [{ at: 0, kind: KIND_MARK, gen: g, length: 0, block: 0 }]);
    this.gen = g + 1;
    this.live.add(g);
    this.maxLive = Math.max(this.maxLive, g);
    return g;
  }

  /** Where the journal stands now (to cut it back there with `rollback`). */
  savepoint(): JournalSavepoint {
    return { end: this.end, gen: this.gen, live: this.liveMarks, count: this.count, chain: this.chain, compactions: this.compactions };
  }

  /**
   * Cuts the journal back to a savepoint: the marks taken and the blocks preserved since are
   * forgotten, the file is as it was. Only while nothing else needs what came after (a savevm
   * that failed; an undone revert). Returns false if the journal was compacted since (it then
   * stays as it is; the next compaction drops what no snapshot needs).
   */
  rollback(sp: JournalSavepoint): boolean {
    const fd = this.handle();
    if (sp.compactions !== this.compactions || sp.end > this.end) return false;
    if (sp.end === this.end) return true;
    try {
      ftruncateSync(fd, sp.end);
    } catch (e) {
      throw new JournalError(this.file, `cannot cut the journal back: ${errCode(e)}`);
    }
    this.end = sp.end;
    this.gen = sp.gen;
    this.live = new Set(sp.live);
    for (const g of [...this.pinned]) if (!this.live.has(g)) this.pinned.delete(g);
    this.maxLive = sp.live.length > 0 ? Math.max(...sp.live) : 0;
    this.count = sp.count;
    this.chain = sp.chain;
    for (const [block, arr] of this.index) {
      while (arr.length > 0 && arr[arr.length - 1].off >= sp.end) arr.pop();
      if (arr.length === 0) this.index.delete(block);
    }
    this.writeHead(true);
    return true;
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
   * Rewrites the live disk so that it equals its state at mark `g`, for good (the journal keeps
   * what later marks still need). See beginRevert for a revert that can be undone.
   */
  revertTo(g: number): void {
    this.commitRevert(this.beginRevert(g));
  }

  /**
   * loadvm: rewrites the live disk so that it equals its state at mark `g`, undoably. Every
   * journal entry the revert needs is read and checked before the disk is touched; then a
   * RESTORE record (mark u: the disk as it is now) is appended, the blocks are rewritten (their
   * current content preserved under u), the disk is flushed and REVERTED is appended. Until
   * `commitRevert`, `undoRevert` brings the disk back to u.
   */
  beginRevert(g: number): RevertHandle {
    this.checkMark(g);
    const targets = this.targetsOf(g);
    if (targets.length === 0) {
      // No block changed since mark g: the disk is at g already, and g (a live mark) serves as
      // the undo mark. What the guest writes from now on is preserved for g as for any live
      // mark, and an undo brings those blocks back to g, which is the disk as it was before.
      // No RESTORE and REVERTED records (two fdatasyncs) nor disk flush: nothing was written. A
      // crash leaves the disk as the guest left it, g kept, as after a revert that wrote records.
      const pinnedHere = !this.pinned.has(g);
      this.pinned.add(g); // kept by a compaction while the restore may still fail
      return { undoMark: g, savepoint: this.savepoint(), pinnedHere };
    }
    const buf = new Uint8Array(JOURNAL_BLOCK_SIZE);
    for (const [block, e] of targets) this.readEntry(e, block, buf); // all checked before any write
    const savepoint = this.savepoint();
    const u = this.gen;
    const rec = new Uint8Array(HEADER + 16);
    const v = new DataView(rec.buffer);
    v.setUint32(HEADER, g, true);
    v.setBigUint64(HEADER + 8, BigInt(savepoint.end), true);
    this.appendRecords(rec, [{ at: 0, kind: KIND_RESTORE, gen: u, length: 16, block: 0 }]);
    this.gen = u + 1;
    this.live.add(u);
    this.pinned.add(u);
    this.maxLive = Math.max(this.maxLive, u);
    const handle = { undoMark: u, savepoint, pinnedHere: true };
    try {
      this.rewrite(targets);
      this.appendRecords(new Uint8Array(HEADER), [{ at: 0, kind: KIND_REVERTED, gen: u, length: 0, block: 0 }]);
    } catch (e) {
      // Back to the disk as it was, now; if the disk refuses that too, the RESTORE record left
      // without its REVERTED makes the next open finish the undo.
      try {
        this.undoRevert(handle);
      } catch {
        // left for the next open
      }
      throw e;
    }
    return handle;
  }

  /** The revert stands: its undo mark is no longer kept for it (the next compaction drops it). */
  commitRevert(h: RevertHandle): void {
    if (h.pinnedHere) this.pinned.delete(h.undoMark);
  }

  /**
   * Brings the disk back to its state before the revert (what the guest wrote since included),
   * then cuts the journal back to where it ended before the revert. Needs no journal space.
   */
  undoRevert(h: RevertHandle): void {
    this.handle();
    this.rewrite(this.targetsOf(h.undoMark), false);
    if (h.pinnedHere) this.pinned.delete(h.undoMark);
    this.rollback(h.savepoint);
  }

  /**
   * Keeps only the entries that a mark in `liveMarks` needs — (B, c) is needed by g iff c > g and
   * no entry (B, c') has g < c' < c — and rewrites the journal compactly. Marks not listed are
   * dropped for good (except undo marks of reverts in progress). With no live marks the journal
   * is emptied.
   */
  compact(liveMarks: number[]): void {
    const fd = this.handle();
    for (const g of liveMarks) {
      if (!this.live.has(g)) throw new JournalError(this.file, `cannot keep mark ${g}: no such live mark`);
    }
    const live = this.keptMarks(liveMarks);
    const kept = this.keptEntries(live);
    kept.sort((a, b) => a[1].gen - b[1].gen || a[0] - b[0]);

    // Copy the kept records (checked) into the new file; their chain values are recomputed.
    const records: Uint8Array[] = [];
    const blocks: number[] = [];
    for (const [block, e] of kept) {
      const rec = new Uint8Array(RECORD);
      if (readFull(fd, rec, e.off) !== RECORD || !this.validEntry(rec, block, e)) this.corrupt(e.off);
      records.push(rec);
      blocks.push(block);
    }
    const newIndex = this.writeFile(live, records, blocks);
    closeSync(fd);
    this.fd = undefined;
    try {
      this.fd = openSync(this.file, "r+");
    } catch (e) {
      throw new JournalError(this.file, `cannot reopen after compaction: ${errCode(e)}`);
    }
    this.index = newIndex;
    this.live = new Set(live);
    this.maxLive = live.length > 0 ? live[live.length - 1] : 0;
    this.compactions++;
  }

  /**
   * How the journal's bytes split if only the marks in `liveMarks` (and the undo marks of reverts
   * in progress) were kept: `needed`, the entries they need (what `compact` would keep), and
   * `dead`, the rest (entries no kept mark needs, mark, restore and reverted records).
   */
  waste(liveMarks: number[]): { needed: number; dead: number } {
    const needed = this.keptEntries(this.keptMarks(liveMarks.filter((g) => this.live.has(g)))).length * RECORD;
    return { needed, dead: Math.max(0, this.end - JOURNAL_HEAD_SIZE - needed) };
  }

  /**
   * Compacts the journal to `liveMarks` (see `compact`) if what no kept mark needs dominates it:
   * more than max(`minDead`, the bytes still needed). Marks in `liveMarks` that are not live are
   * ignored. Returns whether it compacted. Its cost is a read of the needed entries and a write
   * of the new file, so callers run it where nobody waits (rvm's exit, a lazy restore's end);
   * with less than `minDead` bytes in the file it costs nothing.
   */
  compactIfWasteful(liveMarks: number[] | (() => number[]), minDead = AUTO_COMPACT_MIN_DEAD): boolean {
    if (this.fd === undefined || this.readOnly || this.end - JOURNAL_HEAD_SIZE <= minDead) return false;
    const marks = (typeof liveMarks === "function" ? liveMarks() : liveMarks).filter((g) => this.live.has(g));
    const { needed, dead } = this.waste(marks);
    if (dead <= Math.max(minDead, needed)) return false;
    this.compact(marks);
    return true;
  }

  /** Bytes the journal occupies on disk. */
  size(): number {
    return this.end;
  }

  close(): void {
    if (this.fd === undefined) return;
    try {
      if (this.opened && !this.readOnly) this.writeHead(true);
    } catch {
      // the head is rewritten at the next open
    }
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

  /** The marks a compaction to `liveMarks` keeps (the undo marks of reverts in progress too), sorted. */
  private keptMarks(liveMarks: number[]): number[] {
    return [...new Set([...liveMarks, ...this.pinned])].sort((a, b) => a - b);
  }

  /** The entries some mark in `live` (sorted) needs: (B, c) is needed by g iff c > g and no entry (B, c') has g < c' < c. */
  private keptEntries(live: number[]): [number, Entry][] {
    const kept: [number, Entry][] = [];
    for (const [block, arr] of this.index) {
      let prev = 0;
      for (const e of arr) {
        if (DiskJournal.anyIn(live, prev, e.gen)) kept.push([block, e]);
        prev = e.gen;
      }
    }
    return kept;
  }

  private handle(): number {
    if (this.fd === undefined) throw new JournalError(this.file, "journal is closed");
    return this.fd;
  }

  private checkMark(g: number): void {
    this.handle();
    if (!this.live.has(g)) throw new JournalError(this.file, `no live mark ${g} (the journal does not go back to that snapshot)`);
  }

  /** The blocks whose content at mark g differs from the live disk, each with the entry holding it. */
  private targetsOf(g: number): [number, Entry][] {
    const targets: [number, Entry][] = [];
    for (const [block, arr] of this.index) {
      const e = arr.find((x) => x.gen > g);
      if (e) targets.push([block, e]);
    }
    return targets.sort((a, b) => a[0] - b[0]);
  }

  /** Writes each target block's entry to the live disk (preserving first what live marks need), then flushes. */
  private rewrite(targets: [number, Entry][], preserveFirst = true): void {
    if (preserveFirst) {
      const need = targets.map(([b]) => b).filter((b) => this.needsPreserving(b));
      if (need.length > 0) this.preserve(need);
    }
    const buf = new Uint8Array(JOURNAL_BLOCK_SIZE);
    for (const [block, e] of targets) {
      this.readEntry(e, block, buf);
      const start = block * JOURNAL_BLOCK_SIZE;
      const n = Math.min(JOURNAL_BLOCK_SIZE, this.disk.size - start);
      if (n > 0) this.disk.write(buf.subarray(0, n), start);
    }
    this.disk.flush();
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

  private validEntry(rec: Uint8Array, block: number, e: Entry): boolean {
    const v = new DataView(rec.buffer, rec.byteOffset, HEADER);
    return (
      v.getUint32(0, true) === MAGIC &&
      v.getUint8(4) === KIND_ENTRY &&
      v.getUint32(8, true) === e.gen &&
      v.getUint32(12, true) === JOURNAL_BLOCK_SIZE &&
      v.getUint32(16, true) + v.getUint32(20, true) * 0x1_0000_0000 === block &&
      chainOf(e.prev, rec, JOURNAL_BLOCK_SIZE) === storedSum(rec)
    );
  }

  private readEntry(e: Entry, block: number, out: Uint8Array): void {
    const rec = this.scratch;
    if (readFull(this.handle(), rec, e.off) !== RECORD || !this.validEntry(rec, block, e)) this.corrupt(e.off);
    out.set(rec.subarray(HEADER));
  }

  private corrupt(off: number, what = "checksum mismatch"): never {
    throw new JournalError(this.file, `corrupted journal record at byte ${off} (${what})`);
  }

  /** Appends entries holding the current content of `blocks`, durably, with one fdatasync. */
  private preserve(blocks: number[]): void {
    const buf = new Uint8Array(blocks.length * RECORD);
    blocks.forEach((b, i) => this.readDisk(b, buf.subarray(i * RECORD + HEADER, (i + 1) * RECORD)));
    const start = this.end;
    const prevs = this.appendRecords(buf, blocks.map((b, i) => ({ at: i * RECORD, kind: KIND_ENTRY, gen: this.gen, length: JOURNAL_BLOCK_SIZE, block: b })));
    blocks.forEach((b, i) => {
      let arr = this.index.get(b);
      if (!arr) this.index.set(b, (arr = []));
      arr.push({ gen: this.gen, off: start + i * RECORD, prev: prevs[i] });
    });
  }

  /**
   * Seals the records laid out in `buf` (chaining them on from the last one), writes them at
   * the end of the file and makes them durable, then updates the head. On failure the file is
   * cut back and nothing changed. Returns each record's previous chain value.
   */
  private appendRecords(buf: Uint8Array, recs: { at: number; kind: number; gen: number; length: number; block: number }[]): bigint[] {
    const fd = this.handle();
    if (this.readOnly) throw new JournalError(this.file, "opened read-only");
    const start = this.end;
    const prevs: bigint[] = [];
    let chain = this.chain;
    for (const r of recs) {
      prevs.push(chain);
      chain = sealRecord(buf.subarray(r.at, r.at + HEADER + r.length), r.kind, r.gen, r.length, r.block, chain);
    }
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
    this.count += recs.length;
    this.chain = chain;
    this.writeHead(false);
    return prevs;
  }

  /**
   * Writes the head slot after the current one: the records it vouches for are durable already.
   * Not synced by itself (the next append's fdatasync, or `sync`, makes it durable): a head that
   * lags after a crash only vouches for fewer records.
   */
  private writeHead(sync: boolean): void {
    const fd = this.handle();
    this.headSeq++;
    const slot = encodeHead({ seq: this.headSeq, id: this.id, count: this.count, length: this.end, chain: this.chain });
    try {
      writeAll(fd, slot, SLOT_OFFSETS[Number(this.headSeq % 2n)]);
      if (sync) fdatasyncSync(fd);
    } catch (e) {
      throw new JournalError(this.file, `cannot write the journal's head: ${errCode(e)}`);
    }
  }

  /**
   * Writes a whole journal file atomically (temp file, fsync, rename, fsync of the directory):
   * head, STATE record with `live`, then `records` (ENTRY records, re-sealed into the new
   * chain). Sets the file's end, count and chain; returns the index of the new file.
   */
  private writeFile(live: number[], records: Uint8Array[], blocks: number[]): Map<number, Entry[]> {
    const tmp = `${this.file}.tmp`;
    const index = new Map<number, Entry[]>();
    let fd: number | undefined;
    try {
      fd = openSync(tmp, "w");
      const state = stateRecord(this.gen, this.disk.size, live);
      let chain = sealRecord(state, KIND_STATE, this.gen, state.length - HEADER, 0, this.id.readBigUInt64LE(0));
      let pos = JOURNAL_HEAD_SIZE;
      // Gather small records into large writes.
      const out = new Uint8Array(1 << 20);
      let fill = 0;
      const put = (rec: Uint8Array) => {
        if (fill + rec.length > out.length) {
          writeAll(fd!, out.subarray(0, fill), pos - fill);
          fill = 0;
        }
        out.set(rec, fill);
        fill += rec.length;
        pos += rec.length;
      };
      put(state);
      records.forEach((rec, i) => {
        const v = new DataView(rec.buffer, rec.byteOffset, HEADER);
        const prev = chain;
        chain = sealRecord(rec, KIND_ENTRY, v.getUint32(8, true), JOURNAL_BLOCK_SIZE, blocks[i], prev);
        let arr = index.get(blocks[i]);
        if (!arr) index.set(blocks[i], (arr = []));
        arr.push({ gen: v.getUint32(8, true), off: pos, prev });
        put(rec);
      });
      writeAll(fd, out.subarray(0, fill), pos - fill);
      this.headSeq = 1n;
      writeAll(fd, encodeHead({ seq: 1n, id: this.id, count: records.length + 1, length: pos, chain }), SLOT_OFFSETS[1]);
      fsyncSync(fd);
      closeSync(fd);
      fd = undefined;
      renameSync(tmp, this.file);
      fsyncDir(this.dir);
      for (const arr of index.values()) arr.sort((a, b) => a.gen - b.gen);
      this.end = pos;
      this.count = records.length + 1;
      this.chain = chain;
      return index;
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

  /**
   * A revert that rvm did not finish (RESTORE without REVERTED: it died while rewriting blocks):
   * the disk goes back to the undo mark, and the journal is cut back to before the RESTORE
   * record, as if the revert had never begun.
   */
  private undoInterrupted(): void {
    const { undoMark, end, count, chain } = this.interrupted!;
    this.interrupted = undefined;
    this.rewrite(this.targetsOf(undoMark), false);
    try {
      ftruncateSync(this.handle(), end);
    } catch (e) {
      throw new JournalError(this.file, `cannot cut the journal back: ${errCode(e)}`);
    }
    this.end = end;
    this.count = count;
    this.chain = chain;
    this.writeHead(true);
    // Read the cut file again from scratch.
    this.gen = 1;
    this.live.clear();
    this.index.clear();
    this.maxLive = 0;
    this.scan();
  }

  /**
   * Reads the whole file, checks every record and rebuilds the index. Returns the file's
   * format version (1: an old journal, no head or chain).
   */
  private scan(): 1 | 2 {
    const fd = this.handle();
    const size = fstatSync(fd).size;
    const r = new Reader(fd, size);
    if (size === 0) throw new JournalError(this.file, "empty journal file");
    // The head: the valid slot with the higher sequence number.
    let head: Head | undefined;
    for (const off of SLOT_OFFSETS) {
      const h = decodeHead(Buffer.from(r.get(off, SLOT)));
      if (h && (!head || h.seq > head.seq)) head = h;
    }
    let version: 1 | 2 = 2;
    let start = JOURNAL_HEAD_SIZE;
    let prev: bigint;
    if (head) {
      this.id = head.id;
      this.headSeq = head.seq;
      prev = head.id.readBigUInt64LE(0);
    } else {
      const first = r.get(0, 8);
      const v = first.length >= 8 ? new DataView(first.buffer, first.byteOffset, 8) : undefined;
      if (v && v.getUint32(0, true) === MAGIC && v.getUint8(5) === 1) {
        version = 1; // the first format: records from byte 0, each checksummed on its own
        start = 0;
        prev = -1n;
        this.id = randomBytes(16);
      } else if (v && v.getUint32(0, true) === HEAD_MAGIC) {
        throw new JournalError(this.file, "corrupted journal head");
      } else {
        throw new JournalError(this.file, "not an rvm disk journal");
      }
    }
    const vouched = head ? head.length : 0;
    if (head && size < vouched) {
      throw new JournalError(this.file, `truncated journal (${size} of ${vouched} bytes): the disk blocks it held are lost, so snapshots of this disk that need them cannot be restored`);
    }
    let p = start;
    let count = 0;
    let torn = -1;
    let pendingRestore: { undoMark: number; end: number; count: number; chain: bigint } | undefined;
    while (p < size) {
      const hdr = r.get(p, HEADER);
      const mustHold = p < vouched; // the head vouches for this record
      // A bad record the head does not vouch for is a torn append (rvm died in the middle of it)
      // when it is the last thing in the file: incomplete, or followed by nothing but zeros (space
      // allocated, data never written); anything else is corruption.
      const bad = (what: string, complete = 0) => {
        if (mustHold) this.corrupt(p, what);
        const zeroTail = complete >= 512 && p + complete === size && r.get(p + complete - 512, 512).every((x) => x === 0);
        if (p > start && (complete === 0 || zeroTail || r.zeroFrom(p))) torn = p;
        else this.corrupt(p, what);
      };
      if (hdr.length < HEADER) {
        bad("torn record header");
        break;
      }
      const v = new DataView(hdr.buffer, hdr.byteOffset, HEADER);
      const magic = v.getUint32(0, true);
      const kind = v.getUint8(4);
      const recVersion = v.getUint8(5);
      const gen = v.getUint32(8, true);
      const length = v.getUint32(12, true);
      const block = v.getUint32(16, true) + v.getUint32(20, true) * 0x1_0000_0000;
      if (p === start && magic === MAGIC && recVersion !== version) {
        throw new JournalError(this.file, `journal format version ${recVersion}; this rvm reads versions 1 and ${VERSION}`);
      }
      const sane =
        magic === MAGIC &&
        recVersion === version &&
        v.getUint16(6, true) === 0 &&
        ((kind === KIND_ENTRY && length === JOURNAL_BLOCK_SIZE) ||
          (kind === KIND_MARK && length === 0) ||
          (kind === KIND_RESTORE && length === 16 && version === 2) ||
          (kind === KIND_REVERTED && length === 0 && version === 2) ||
          (kind === KIND_STATE && length >= 12 && length <= 12 + 4 * MAX_LIVE && (length - 12) % 4 === 0));
      if (!sane) {
        if (p === start && magic !== MAGIC) throw new JournalError(this.file, "not an rvm disk journal");
        if (mustHold || !r.zeroFrom(p)) this.corrupt(p, "bad record header");
        torn = p;
        break;
      }
      if (p + HEADER + length > size) {
        bad("torn record");
        break;
      }
      if (mustHold && p + HEADER + length > vouched) this.corrupt(p, "record crosses the end the journal's head vouches for");
      const rec = r.get(p, HEADER + length);
      const sum = chainOf(prev, rec, length);
      if (sum !== storedSum(rec)) {
        bad(version === 2 ? "checksum mismatch: the record was changed, or one before it removed or changed" : "checksum mismatch", HEADER + length);
        break;
      }
      if (p === start && kind !== KIND_STATE) throw new JournalError(this.file, "not an rvm disk journal (no state record)");
      switch (kind) {
        case KIND_STATE: {
          if (p !== start) this.corrupt(p, "state record in the middle of the journal");
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
        case KIND_RESTORE:
          if (gen !== this.gen) this.corrupt(p, `mark ${gen} in generation ${this.gen}`);
          this.live.add(gen);
          this.maxLive = gen;
          this.gen = gen + 1;
          if (kind === KIND_RESTORE) {
            const pv = new DataView(rec.buffer, rec.byteOffset + HEADER, length);
            pendingRestore = { undoMark: gen, end: Number(pv.getBigUint64(8, true)), count, chain: prev };
            if (pendingRestore.end !== p) this.corrupt(p, "bad restore record");
          }
          break;
        case KIND_REVERTED:
          if (!pendingRestore || pendingRestore.undoMark !== gen) this.corrupt(p, "revert record without its restore");
          pendingRestore = undefined;
          break;
        case KIND_ENTRY: {
          let arr = this.index.get(block);
          if (gen > this.gen || block >= this.nBlocks || (arr && arr[arr.length - 1].gen >= gen)) {
            this.corrupt(p, `entry for block ${block} out of order`);
          }
          if (!arr) this.index.set(block, (arr = []));
          arr.push({ gen, off: p, prev });
          break;
        }
      }
      if (version === 2) prev = sum; // version 1 records are checksummed each on its own
      count++;
      p += HEADER + length;
      if (head && p === vouched && (count !== head.count || prev !== head.chain)) {
        throw new JournalError(this.file, "the journal's records do not match its head (records removed, added or changed)");
      }
    }
    if (head && p < vouched) {
      throw new JournalError(this.file, `truncated journal (${p} of ${vouched} bytes)`);
    }
    if (torn === start) throw new JournalError(this.file, "truncated journal file");
    this.end = torn >= 0 ? torn : size;
    this.count = count;
    this.chain = prev;
    this.interrupted = pendingRestore;
    if (this.readOnly) return version;
    if (torn >= 0) {
      try {
        ftruncateSync(fd, torn);
        fsyncSync(fd);
      } catch (e) {
        throw new JournalError(this.file, `cannot drop the torn last record: ${errCode(e)}`);
      }
    }
    if (version === 2 && head!.length !== this.end) this.writeHead(true);
    return version;
  }
}
