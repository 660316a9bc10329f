// The checkpoint file (DESIGN.md section 4; docs/ARCHITECTURE.md "Snapshot format").
//
//   0      header, 4096 bytes: magic "RVMSNAP\0", u32 version, u32 header size, 16-byte id,
//          u64 offset/length of the metadata, of the page map and of the page data,
//          sha256 of (metadata || page map), u64 creation time (ms)
// Layout: header, meta, data, map.
//   meta   JSON: machine configuration, hart state, device states, disks and their marks,
//          the snapshots this one refers to, statistics
//   map    one 24-byte entry per RAM page: u8 kind, u8 ref, u16 0, u32 mark,
//          u64 value, u64 hash (see PageKind), in chunks of MAP_CHUNK_PAGES entries, each
//          deflated (zero pages' entries are zeros: an idle guest's map shrinks ~20x) and
//          checksummed on its own, behind an index: u32 chunk count, u32 pages per chunk, then
//          per chunk u64 file offset, u32 length, u32 0, 8 bytes of its sha256. The header's
//          digest covers the metadata and the index, so opening a snapshot reads neither the
//          whole map nor any page: a lazy restore starts in the same time whatever the RAM size
//   data   the stored pages, 4 KiB each, working set first, then in page order
//
// Everything is little-endian. Only `stored` pages carry bytes; every page's content hash is
// in the map, so each page is verified when it is read back, whatever its source.

import { createHash, deflateSync, fs, inflateSync, randomBytes } from "../platform.js";
import { RvmError } from "../errors.js";

const { closeSync, fstatSync, openSync, read: fsRead, readSync } = fs;

export const SNAPSHOT_MAGIC = "RVMSNAP\0";
// 2: every hart (`harts`, `machine`) instead of one hart block.
export const SNAPSHOT_VERSION = 2;
export const HEADER_SIZE = 4096;
export const MAP_ENTRY_SIZE = 24;
export const PAGE = 4096;

export const enum PageKind {
  /** All zero: no bytes. */
  Zero = 0,
  /** Stored: `value` is the byte offset of the page in the file named by `ref`. */
  Stored = 1,
  /** Identical to a stored page: `value` is that page's offset (in file `ref`). */
  Same = 2,
  /** Equal to a disk block as of the disk's mark: `value` = drive * 2^36 + block, `mark`. */
  Disk = 3,
}

/** A decoded page-map entry. `ref` 0 = this file, k = meta.refs[k - 1]. */
export interface PageEntry {
  kind: PageKind;
  ref: number;
  mark: number;
  value: number;
  hash: bigint;
}

export interface SnapshotDisk {
  index: number;
  file: string;
  size: number;
  readonly: boolean;
  /** The journal's name in the snapshot directory, and the mark of this snapshot. */
  journal: string;
  mark: number;
  /** Every mark the map's disk-backed entries of this drive use (inherited ones may be older). */
  entryMarks?: number[];
  /** The journal's identity (DiskJournal.journalId): a journal replaced by another is refused. */
  journalId?: string;
  /** The image does not keep the guest's writes (compressed): no journal; it was unwritten at savevm. */
  volatile?: boolean;
}

export interface SnapshotStats {
  pages: number;
  zero: number;
  disk: number;
  same: number;
  stored: number;
  /** Pages taken over unchanged from the parent snapshot (incremental save). */
  inherited: number;
  /** Bytes of this file. */
  fileBytes: number;
  /** What a save that only skips zero pages would store (QEMU's migration stream). */
  zeroSkipBytes: number;
  saveMs: number;
  pauseMs: number;
  /** The data area went to the file past the page cache (O_DIRECT; absent: written buffered). */
  directIo?: boolean;
}

export interface SnapshotMeta {
  format: "rvm-snapshot";
  version: number;
  name: string;
  id: string;
  created: string;
  board: "virt";
  /** The machine configuration (VirtConfig without the console), paths absolute. */
  config: Record<string, unknown>;
  ramBytes: number;
  /** Every hart's state block (registers, CSRs, privilege, WFI), base64, by hart number. */
  harts: string[];
  /** The state the harts share (mtime, CLINT registers, interrupt lines, whose turn), base64. */
  machine: string;
  /** Host-side guest time base (mtime), decimal string. */
  mtime: string;
  devices: Record<string, unknown>;
  htif: { tohost: number; fromhost?: number } | null;
  disks: SnapshotDisk[];
  /** Files this snapshot's map refers to (incremental saves), by snapshot id. */
  refs: { id: string; name: string }[];
  parent: string | null;
  /** Number of stored pages at the start of the data area that the guest touched recently. */
  workingSet: number;
  /**
   * Where the working set's index is: per working-set slot (in data order) the page and its
   * hash (u32 page, u32 hash low, u32 hash high), so a restore needs no page map to bring the
   * working set in. Absent in older snapshots.
   */
  workingSetIndex?: { offset: number; length: number; sha256: string };
  stats: SnapshotStats;
  /** The reset ROM's code and data (0x1000..0x1100), base64. */
  rom: string;
}

export class SnapshotError extends RvmError {
  constructor(file: string, problem: string) {
    super(`snapshot ${file}: ${problem}`);
    this.name = "SnapshotError";
  }
}

export function newSnapshotId(): string {
  return randomBytes(16).toString("hex");
}

export function encodeEntry(buf: Buffer, page: number, e: PageEntry): void {
  const o = page * MAP_ENTRY_SIZE;
  buf.writeUInt8(e.kind, o);
  buf.writeUInt8(e.ref, o + 1);
  buf.writeUInt16LE(0, o + 2);
  buf.writeUInt32LE(e.mark >>> 0, o + 4);
  buf.writeBigUInt64LE(BigInt(e.value), o + 8);
  buf.writeBigUInt64LE(e.hash, o + 16);
}

export function decodeEntry(buf: Buffer, page: number): PageEntry {
  const o = page * MAP_ENTRY_SIZE;
  return {
    kind: buf.readUInt8(o) as PageKind,
    ref: buf.readUInt8(o + 1),
    mark: buf.readUInt32LE(o + 4),
    value: Number(buf.readBigUInt64LE(o + 8)),
    hash: buf.readBigUInt64LE(o + 16),
  };
}

/**
 * The whole page map as 32-bit words, six per page (the entry's bytes, little-endian), one array
 * per map chunk (the inflated chunks themselves: no copy into one table): the bulk form of
 * `entry`, with no object or BigInt per page, so a walk of a 1 GiB map takes milliseconds.
 */
export class PageTable {
  /** `chunks[c]` holds the entries of pages c·MAP_CHUNK_PAGES.. (MAP_CHUNK_PAGES = 2^12). */
  constructor(readonly chunks: Uint32Array[], readonly pages: number) {}

  kind(p: number): PageKind {
    return (this.chunks[p >>> 12][(p & 4095) * 6] & 0xff) as PageKind;
  }
  ref(p: number): number {
    return (this.chunks[p >>> 12][(p & 4095) * 6] >>> 8) & 0xff;
  }
  /** Byte offset (stored, same-as) or drive·2^36 + block (disk). */
  value(p: number): number {
    const w = this.chunks[p >>> 12], o = (p & 4095) * 6;
    return w[o + 2] + w[o + 3] * 2 ** 32;
  }
  hashLo(p: number): number {
    return this.chunks[p >>> 12][(p & 4095) * 6 + 4];
  }
  hashHi(p: number): number {
    return this.chunks[p >>> 12][(p & 4095) * 6 + 5];
  }
}

export interface HeaderFields {
  id: string;
  metaOffset: number;
  metaLength: number;
  mapOffset: number;
  mapLength: number;
  dataOffset: number;
  dataLength: number;
  digest: Buffer;
  created: number;
  /** FLAG_MAP_DEFLATED */
  flags: number;
}

export const FLAG_MAP_DEFLATED = 1;
/** Page-map entries per chunk (96 KiB of entries, 16 MiB of RAM). */
export const MAP_CHUNK_PAGES = 4096;
const INDEX_ENTRY = 24;

/** The index at the start of an encoded map (what the header's digest covers). */
export function mapIndex(encoded: Buffer): Buffer {
  return encoded.subarray(0, 8 + encoded.readUInt32LE(0) * INDEX_ENTRY);
}

/** Encodes a page map (24 bytes per page) as index + deflated chunks, for file offset `at`. */
export function encodeMap(map: Buffer, at: number): Buffer {
  const pages = map.length / MAP_ENTRY_SIZE;
  const count = Math.ceil(pages / MAP_CHUNK_PAGES);
  const index = Buffer.alloc(8 + count * INDEX_ENTRY);
  index.writeUInt32LE(count, 0);
  index.writeUInt32LE(MAP_CHUNK_PAGES, 4);
  const chunks: Buffer[] = [];
  let off = at + index.length;
  for (let c = 0; c < count; c++) {
    const raw = map.subarray(c * MAP_CHUNK_PAGES * MAP_ENTRY_SIZE, (c + 1) * MAP_CHUNK_PAGES * MAP_ENTRY_SIZE);
    const z = deflateSync(raw, { level: 1 });
    const o = 8 + c * INDEX_ENTRY;
    index.writeBigUInt64LE(BigInt(off), o);
    index.writeUInt32LE(z.length, o + 8);
    createHash("sha256").update(z).digest().copy(index, o + 16, 0, 8);
    chunks.push(z);
    off += z.length;
  }
  return Buffer.concat([index, ...chunks]);
}

/**
 * The working-set index, for the pages of the working set in data order: their page numbers
 * (u32 each), then their hashes' low halves, then the high halves (columns, so a reader takes
 * them as typed arrays without a loop).
 */
export function encodeWorkingSetIndex(pages: ArrayLike<number>, hashes: BigUint64Array): Buffer {
  const n = pages.length;
  const w = new Uint32Array(3 * n);
  const hw = new Uint32Array(hashes.buffer, hashes.byteOffset, hashes.length * 2); // little-endian halves: no BigInt
  for (let k = 0; k < n; k++) {
    const p = pages[k];
    w[k] = p;
    w[n + k] = hw[2 * p];
    w[2 * n + k] = hw[2 * p + 1];
  }
  return Buffer.from(w.buffer);
}

/** A decoded working-set index: slot k of the data area holds page `page[k]`, hash hi:lo. */
export interface WorkingSetIndex {
  page: Uint32Array;
  hashLo: Uint32Array;
  hashHi: Uint32Array;
}

export function digestOf(meta: Buffer, map: Buffer): Buffer {
  return createHash("sha256").update(meta).update(map).digest();
}

export function encodeHeader(h: HeaderFields): Buffer {
  const b = Buffer.alloc(HEADER_SIZE);
  b.write(SNAPSHOT_MAGIC, 0, "latin1");
  b.writeUInt32LE(SNAPSHOT_VERSION, 8);
  b.writeUInt32LE(HEADER_SIZE, 12);
  Buffer.from(h.id, "hex").copy(b, 16);
  b.writeBigUInt64LE(BigInt(h.metaOffset), 32);
  b.writeBigUInt64LE(BigInt(h.metaLength), 40);
  b.writeBigUInt64LE(BigInt(h.mapOffset), 48);
  b.writeBigUInt64LE(BigInt(h.mapLength), 56);
  b.writeBigUInt64LE(BigInt(h.dataOffset), 64);
  b.writeBigUInt64LE(BigInt(h.dataLength), 72);
  h.digest.copy(b, 80);
  b.writeBigUInt64LE(BigInt(h.created), 112);
  b.writeUInt32LE(h.flags, 120);
  return b;
}

function readExactly(fd: number, buf: Buffer, offset: number, file: string): void {
  let done = 0;
  while (done < buf.length) {
    const n = readSync(fd, buf, done, buf.length - done, offset + done);
    if (n === 0) throw new SnapshotError(file, "truncated file");
    done += n;
  }
}

/** An opened, verified checkpoint: header, metadata and page map; page data read on demand. */
export class SnapshotFile {
  private constructor(
    readonly file: string,
    private fd: number | undefined,
    readonly header: HeaderFields,
    readonly meta: SnapshotMeta,
    private readonly index: Buffer,
    readonly fileSize: number,
  ) {}

  private readonly chunks = new Map<number, Buffer>();

  /** The inflated entries of map chunk `c`, read and verified on first use. */
  private chunk(c: number): Buffer {
    let b = this.chunks.get(c);
    if (b) return b;
    const o = 8 + c * INDEX_ENTRY;
    const offset = Number(this.index.readBigUInt64LE(o));
    const length = this.index.readUInt32LE(o + 8);
    if (this.fd === undefined) throw new SnapshotError(this.file, "closed");
    if (offset + length > this.fileSize) throw new SnapshotError(this.file, `truncated file (page map chunk ${c} missing)`);
    const { mapOffset, mapLength } = this.header, whole = this.mapBytes;
    let z: Buffer;
    if (whole && offset >= mapOffset && offset + length <= mapOffset + mapLength) {
      z = whole.subarray(offset - mapOffset, offset - mapOffset + length);
    } else {
      z = Buffer.alloc(length);
      readExactly(this.fd, z, offset, this.file);
    }
    if (!createHash("sha256").update(z).digest().subarray(0, 8).equals(this.index.subarray(o + 16, o + 24))) {
      throw new SnapshotError(this.file, `corrupted page map (chunk ${c}, pages ${c * MAP_CHUNK_PAGES}..)`);
    }
    const want = Math.min(MAP_CHUNK_PAGES, this.pages - c * MAP_CHUNK_PAGES) * MAP_ENTRY_SIZE;
    try {
      // Inflated into one buffer of the chunk's size (+ 1: a full buffer makes zlib allocate
      // another): by default zlib fills 16 KiB pieces and concatenates them, which touched twice
      // the memory (fresh memory costs a trip to the host per 4 KiB page here) and copied it
      // once more: CPU to inflate the 64 chunks of a 1 GiB snapshot 75-96 -> 46-47 ms.
      b = inflateSync(z, { chunkSize: want + 1, maxOutputLength: want + 1 }); // (and no more: a bad chunk is refused)
    } catch {
      throw new SnapshotError(this.file, `corrupted page map (chunk ${c})`);
    }
    if (b.length !== want) throw new SnapshotError(this.file, `corrupted page map (chunk ${c} has ${b.length} bytes)`);
    this.chunks.set(c, b);
    if (this.chunks.size === this.mapChunks) this.mapBytes = undefined; // (all inflated)
    return b;
  }

  /** The whole map area, read at once by `readWholeMap` for a walk of every chunk. */
  private mapBytes: Buffer | undefined;

  /**
   * Reads the whole map area in one read (each chunk is still checked against the index as it
   * is inflated): one system call and one buffer instead of one per chunk (64 per GiB of RAM).
   */
  readWholeMap(): void {
    if (this.mapBytes || this.chunks.size === this.mapChunks) return;
    if (this.fd === undefined) throw new SnapshotError(this.file, "closed");
    const b = Buffer.allocUnsafe(this.header.mapLength); // (every byte is read into it)
    readExactly(this.fd, b, this.header.mapOffset, this.file);
    this.mapBytes = b;
  }

  /** Reads just the id and metadata (for listings); throws SnapshotError if unusable. */
  static open(file: string): SnapshotFile {
    let fd: number;
    try {
      fd = openSync(file, "r");
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      throw new SnapshotError(file, code === "ENOENT" ? "no such snapshot file" : `cannot read (${code})`);
    }
    try {
      const size = fstatSync(fd).size;
      if (size < HEADER_SIZE) throw new SnapshotError(file, "truncated file (no header)");
      const hb = Buffer.alloc(HEADER_SIZE);
      readExactly(fd, hb, 0, file);
      if (hb.toString("latin1", 0, 8) !== SNAPSHOT_MAGIC) throw new SnapshotError(file, "not an rvm snapshot");
      const version = hb.readUInt32LE(8);
      if (version !== SNAPSHOT_VERSION) throw new SnapshotError(file, `format version ${version}, this rvm reads version ${SNAPSHOT_VERSION}`);
      const n = (o: number) => Number(hb.readBigUInt64LE(o));
      const header: HeaderFields = {
        id: hb.toString("hex", 16, 32),
        metaOffset: n(32), metaLength: n(40), mapOffset: n(48), mapLength: n(56), dataOffset: n(64), dataLength: n(72),
        digest: hb.subarray(80, 112), created: n(112), flags: hb.readUInt32LE(120),
      };
      const end = Math.max(header.metaOffset + header.metaLength, header.mapOffset + header.mapLength, header.dataOffset + header.dataLength);
      if (end > size) throw new SnapshotError(file, `truncated file (${size} of ${end} bytes)`);
      const meta = Buffer.alloc(header.metaLength);
      readExactly(fd, meta, header.metaOffset, file);
      // The map's index (the chunks are read, checked and inflated when first needed).
      if (header.mapLength < 8) throw new SnapshotError(file, "corrupted page map");
      const head = Buffer.alloc(8);
      readExactly(fd, head, header.mapOffset, file);
      const indexLength = 8 + head.readUInt32LE(0) * INDEX_ENTRY;
      if (indexLength > header.mapLength) throw new SnapshotError(file, "corrupted (metadata checksum mismatch)");
      const index = Buffer.alloc(indexLength);
      readExactly(fd, index, header.mapOffset, file);
      if (!digestOf(meta, index).equals(header.digest)) throw new SnapshotError(file, "corrupted (metadata checksum mismatch)");
      let parsed: SnapshotMeta;
      try {
        parsed = JSON.parse(meta.toString("utf8")) as SnapshotMeta;
      } catch {
        throw new SnapshotError(file, "corrupted metadata");
      }
      if (parsed.format !== "rvm-snapshot" || parsed.board !== "virt") throw new SnapshotError(file, `snapshot of an unknown machine (${parsed.board})`);
      const pages = parsed.ramBytes / PAGE;
      if (index.readUInt32LE(4) !== MAP_CHUNK_PAGES || index.readUInt32LE(0) !== Math.ceil(pages / MAP_CHUNK_PAGES)) {
        throw new SnapshotError(file, "page map does not match the RAM size");
      }
      return new SnapshotFile(file, fd, header, parsed, index, size);
    } catch (e) {
      closeSync(fd);
      throw e;
    }
  }

  get pages(): number {
    return this.meta.ramBytes / PAGE;
  }

  /** The working set's index (read and checked), or undefined for a snapshot without one. */
  workingSetIndex(): WorkingSetIndex | undefined {
    const ix = this.meta.workingSetIndex;
    if (!ix || this.meta.workingSet === 0) return undefined;
    if (ix.length !== this.meta.workingSet * 12 || ix.offset + ix.length > this.fileSize) throw new SnapshotError(this.file, "corrupted working-set index");
    const b = Buffer.alloc(ix.length);
    if (this.fd === undefined) throw new SnapshotError(this.file, "closed");
    readExactly(this.fd, b, ix.offset, this.file);
    if (createHash("sha256").update(b).digest().toString("hex") !== ix.sha256) throw new SnapshotError(this.file, "corrupted working-set index (checksum mismatch)");
    const n = this.meta.workingSet;
    const w = new Uint32Array(b.buffer, b.byteOffset, 3 * n); // Buffer.alloc of this size is not pooled: aligned
    const out: WorkingSetIndex = { page: w.subarray(0, n), hashLo: w.subarray(n, 2 * n), hashHi: w.subarray(2 * n) };
    return out;
  }

  /**
   * The entries of map chunk `c` as 32-bit words (six per page), read, checked and inflated on
   * first use: a view of the inflated chunk, not a copy.
   */
  chunkWords(c: number): Uint32Array {
    const b = this.chunk(c);
    if (b.byteOffset % 4 === 0) return new Uint32Array(b.buffer, b.byteOffset, b.length / 4);
    const w = new Uint32Array(b.length / 4); // (an inflated chunk has its own memory: not seen)
    new Uint8Array(w.buffer).set(b);
    return w;
  }

  /** The number of map chunks. */
  get mapChunks(): number {
    return Math.ceil(this.pages / MAP_CHUNK_PAGES);
  }

  /** The whole map as a PageTable (every chunk read, checked and inflated). */
  table(): PageTable {
    if (new Uint8Array(new Uint16Array([1]).buffer)[0] !== 1) throw new Error("rvm needs a little-endian host");
    const chunks: Uint32Array[] = [];
    this.readWholeMap();
    for (let c = 0; c < this.mapChunks; c++) chunks.push(this.chunkWords(c));
    return new PageTable(chunks, this.pages);
  }

  entry(page: number): PageEntry {
    const c = Math.floor(page / MAP_CHUNK_PAGES);
    return decodeEntry(this.chunk(c), page - c * MAP_CHUNK_PAGES);
  }

  /** Reads `length` bytes of page data at file offset `offset` into `out`. */
  read(offset: number, out: Uint8Array): void {
    if (this.fd === undefined) throw new SnapshotError(this.file, "closed");
    let done = 0;
    while (done < out.length) {
      let n: number;
      try {
        n = readSync(this.fd, out, done, out.length - done, offset + done);
      } catch (e) {
        throw new SnapshotError(this.file, `read error (${(e as NodeJS.ErrnoException).code ?? e})`);
      }
      if (n === 0) throw new SnapshotError(this.file, `truncated file (page data at ${offset} missing)`);
      done += n;
    }
  }

  /** Reads page data asynchronously (the lazy restore's background fetcher). */
  readAsync(offset: number, out: Uint8Array): Promise<void> {
    const fd = this.fd;
    if (fd === undefined) return Promise.reject(new SnapshotError(this.file, "closed"));
    return new Promise((resolve, reject) => {
      const step = (done: number) => {
        fsRead(fd, out, done, out.length - done, offset + done, (err, n) => {
          if (err) reject(new SnapshotError(this.file, `read error (${err.code ?? err.message})`));
          else if (n === 0) reject(new SnapshotError(this.file, `truncated file (page data at ${offset} missing)`));
          else if (done + n < out.length) step(done + n);
          else resolve();
        });
      };
      step(0);
    });
  }

  close(): void {
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }
}
