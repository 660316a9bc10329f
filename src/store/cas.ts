// The content-addressed snapshot store in an object store (docs/ARCHITECTURE.md, "Snapshots in
// an object store"). Layout under the store's prefix:
//
//   packs/<id>.pack       pages back to back (a few MiB; a save writes the working set first):
//                         version 3 (the pack id's sequence starts with bits 11) holds each page
//                         as a raw-deflate segment ended by a sync flush (segments back to back
//                         are one stream); version 2 (bits 10; older saves, still read) each
//                         page deflated as its own stream, or as is where that is not smaller;
//                         version 1 (bits 00) 4 KiB pages as they are
//   packs/<id>.idx        the pack's index: the SHA-256 of each page (of its 4 KiB, not of what is
//                         stored), in slot order, and for versions 2 and 3 each slot's byte offset;
//                         written after its pack, so an index always has its pack
//   chunks/<sha256>       a piece of a page map: 1024 entries of 56 bytes (a RAM page or disk
//                         block each: zero, or the page's pack, slot and SHA-256), deflated, named
//                         by the SHA-256 of its bytes. Maps are lists of chunks, so the parts
//                         two maps share (a disk's unchanged regions and its pushed image, the
//                         kernel's pages in two VMs) are stored once
//   snapshots/<name>.json a snapshot's manifest (machine state, disks, packs, map): written last,
//                         so a snapshot is listed only once everything it needs is in the store
//   snapshots/<name>.hot  optional, written by a lazy restore of the snapshot: the working-set
//                         pages its guest touched first, in that order (the next restore reads
//                         them first); an order only, under the manifest's id; never listed as a
//                         snapshot; deleted with the manifest (`snapshot rm`, or gc when orphaned)
//   images/<id>.json      a disk image pushed with `rvm store push-image` (its blocks, as a map)
//   locks/<save>.json     a save in progress: the packs it builds on (gc leaves them alone)
//
// A page is named by the SHA-256 of its content. Before uploading a page the saver looks it up
// in the index of every pack a live manifest or image refers to: a page already in the store,
// from an earlier snapshot of this VM, another VM or a pushed disk image, is not uploaded again.
//
// Consistency (gc vs concurrent saves, without a global lock): a save writes its lock object
// naming the packs it reuses *before* it re-lists the manifests to confirm those packs are still
// referenced (pages in packs no longer referenced are uploaded again), and its new objects carry
// the save's id. gc lists the packs and maps, then the locks, then the manifests and images,
// then the locks again, and deletes only objects that no manifest, image or lock younger than
// LOCK_TTL_MS names (a running lock also covers its save's own new objects). Locks stay until
// they expire, also after their save completed: a gc that listed the manifests just before a
// save's manifest appeared still sees, in the second listing of locks, what that save reused.

import * as nodeCrypto from "node:crypto";
import { createHash, randomBytes } from "node:crypto";
import { constants as zlibConstants, deflateRawSync, deflateSync, InflateRaw, inflateRawSync, inflateSync } from "node:zlib";
import { RvmError } from "../errors.js";
import type { GetTrace, ObjectStore } from "./objects.js";
import { checkName } from "../snapshot/store.js";

export const PAGE = 4096;
/** Entries per map chunk (4 MiB of RAM or disk). */
export const CHUNK_PAGES = 1024;
/** Bytes per map entry: u8 kind, 3 bytes 0, u32 slot, 16-byte pack id, 32-byte SHA-256. */
export const ENTRY = 56;
/** Target size of a pack object. */
export const PACK_BYTES = 4 << 20;
/** A lock older than this is stale (its saver died); a running save refreshes it well before. */
export const LOCK_TTL_MS = 60 * 60 * 1000;

export const enum EntryKind {
  Zero = 0,
  Page = 1,
}

export interface MapEntry {
  kind: EntryKind;
  /** The pack holding the page (32 hex digits). */
  pack: string;
  slot: number;
  /** SHA-256 of the page (Page entries). */
  hash: Buffer;
}

export const ZERO_ENTRY: MapEntry = { kind: EntryKind.Zero, pack: "", slot: 0, hash: Buffer.alloc(32) };

/** A corrupted or inconsistent object in the store. */
export class StoreDataError extends RvmError {
  constructor(where: string, problem: string) {
    super(`object store: ${where}: ${problem}`);
    this.name = "StoreDataError";
  }
}

/**
 * The one-shot hash of Node >= 20.12 (`crypto.hash`): a restore hashes every page it installs,
 * and a Hash object per page cost more than the hashing (SHA-256 of 4 KiB with SHA-NI is ~2 us).
 * Looked up on the namespace, so that an older Node 20 (which lacks it) still loads this module.
 */
const hashOnce = (nodeCrypto as { hash?: (algorithm: string, data: Uint8Array, encoding: "buffer") => Buffer }).hash;

export function sha256(bytes: Uint8Array): Buffer {
  return hashOnce ? hashOnce("sha256", bytes, "buffer") : createHash("sha256").update(bytes).digest();
}

/** A save's id, 24 hex digits: sortable by time (ms, 12 digits), then 6 random bytes. */
export function newId(): string {
  return Date.now().toString(16).padStart(12, "0") + randomBytes(6).toString("hex");
}

/**
 * The id of a save's n-th pack: the save's id and 8 hex digits (16 bytes in a map entry). The
 * sequence's top two bits give the pack's version: 00 version 1 (raw pages), 10 version 2
 * (each page its own deflate stream), 11 version 3 (each page a flushed deflate segment: the
 * slots of a run inflate in one call). A reader knows how to address a pack from its id alone,
 * and map entries keep their layout. New saves write version 3.
 */
export function packId(save: string, n: number): string {
  return save + (PACK_V3_BITS + n).toString(16).padStart(8, "0");
}

const PACK_V3_BITS = 0xc0000000;

/** The version of pack `id` (1, 2 or 3), from the top bits of its sequence. */
export function packVersion(id: string): 1 | 2 | 3 {
  const d = id.length === 32 ? parseInt(id[24], 16) : 0;
  return d >= 12 ? 3 : d >= 8 ? 2 : 1;
}

/** Whether pack `id` stores its pages deflated (version 2 or 3: its index gives byte offsets). */
export function isPackV2(id: string): boolean {
  return packVersion(id) >= 2;
}

/** Pages per version 2 or 3 pack at most (its index then stays under 150 KiB). */
export const PACK_MAX_PAGES = 4096;

/** At most this many pages in a snapshot's hot list. */
export const HOT_MAX = 4096;

export const keys = {
  pack: (id: string) => `packs/${id}.pack`,
  index: (id: string) => `packs/${id}.idx`,
  chunk: (hash: string) => `chunks/${hash}`,
  manifest: (name: string) => `snapshots/${name}.json`,
  hot: (name: string) => `snapshots/${name}.hot`,
  image: (id: string) => `images/${id}.json`,
  lock: (id: string) => `locks/${id}.json`,
};

// --- pack indexes ---

const IDX_MAGIC = "RVMPIDX1";
const IDX2_MAGIC = "RVMPIDX2";
const IDX3_MAGIC = "RVMPIDX3";

/** A pack's index: each slot's page hash and, for a version 2 or 3 pack, each slot's byte offset. */
export interface PackLayout {
  hashes: Buffer[];
  /** Versions 2 and 3: count + 1 byte offsets (slot i is stored in [offsets[i], offsets[i + 1])). */
  offsets?: Uint32Array;
  /** The pack's version (as its index says; it must match its id's). */
  version: 1 | 2 | 3;
}

/**
 * Version 1: magic, count, the hashes, SHA-256 of all before. Versions 2 and 3 (with
 * `offsets`): magic, count, 4 bytes 0, the hashes, count + 1 u32 offsets, SHA-256 of all before.
 */
export function encodeIndex(hashes: Buffer[], offsets?: number[], version: 2 | 3 = 3): Buffer {
  const n = hashes.length;
  const b = Buffer.alloc(16 + n * 32 + (offsets ? 4 * (n + 1) : 0) + 32);
  b.write(offsets ? (version === 3 ? IDX3_MAGIC : IDX2_MAGIC) : IDX_MAGIC, 0, "latin1");
  b.writeUInt32LE(n, 8);
  hashes.forEach((h, i) => h.copy(b, 16 + i * 32));
  offsets?.forEach((o, i) => b.writeUInt32LE(o, 16 + n * 32 + 4 * i));
  sha256(b.subarray(0, b.length - 32)).copy(b, b.length - 32);
  return b;
}

export function decodeLayout(b: Uint8Array, where: string): PackLayout {
  const buf = Buffer.from(b.buffer, b.byteOffset, b.length);
  const magic = buf.length >= 48 ? buf.toString("latin1", 0, 8) : "";
  if (magic !== IDX_MAGIC && magic !== IDX2_MAGIC && magic !== IDX3_MAGIC) throw new StoreDataError(where, "not a pack index");
  const n = buf.readUInt32LE(8);
  const version = magic === IDX3_MAGIC ? 3 : magic === IDX2_MAGIC ? 2 : 1;
  const v2 = version >= 2;
  if (buf.length !== 16 + n * 32 + (v2 ? 4 * (n + 1) : 0) + 32 || !sha256(buf.subarray(0, buf.length - 32)).equals(buf.subarray(buf.length - 32))) {
    throw new StoreDataError(where, "corrupted pack index (checksum mismatch)");
  }
  const hashes: Buffer[] = [];
  for (let i = 0; i < n; i++) hashes.push(buf.subarray(16 + i * 32, 48 + i * 32));
  if (!v2) return { hashes, version: 1 };
  const offsets = new Uint32Array(n + 1);
  for (let i = 0; i <= n; i++) offsets[i] = buf.readUInt32LE(16 + n * 32 + 4 * i);
  for (let i = 0; i < n; i++) {
    const len = offsets[i + 1] - offsets[i];
    if (offsets[i + 1] < offsets[i] || len > PAGE) throw new StoreDataError(where, "corrupted pack index (bad offsets)");
  }
  return { hashes, offsets, version };
}

export function decodeIndex(b: Uint8Array, where: string): Buffer[] {
  return decodeLayout(b, where).hashes;
}

/** The bytes of pack `id` that hold `count` slots from `slot`. */
export function packRange(id: string, layout: PackLayout | undefined, slot: number, count: number): { offset: number; length: number } {
  if (!isPackV2(id)) return { offset: slot * PAGE, length: count * PAGE };
  const o = layout!.offsets!;
  if (slot < 0 || count < 1 || slot + count >= o.length) throw new StoreDataError(keys.pack(id), `no slots ${slot}..${slot + count - 1} (the pack has ${o.length - 1})`);
  return { offset: o[slot], length: o[slot + count] - o[slot] };
}

/**
 * One raw-inflate engine, reused for every inflate of stored pages: a zlib stream reset and
 * driven by one synchronous write per call into an output buffer of the exact size, the way
 * zlib's own inflateRawSync drives the engine it makes per call. That making (a zlib stream,
 * its 32 KiB window, its output buffer, the JavaScript object around them) was most of an
 * inflate's cost: ~60 us per call against ~8 us reused (a 4 KiB page), and a restore from the
 * store makes ~1000 such calls before its guest answers (the hart's touches unpack their page
 * alone). It uses the engine's handle (`_handle`, `_writeState`: Node's own zlib.js drives it
 * so in every version since 10); where those are not as expected, or the engine reports an
 * error (its handle's `onerror`; the engine is then dropped), inflateRawSync does it. Either
 * way the pages are then checked against their hashes.
 */
interface Engine {
  h: { reset(): void; writeSync(flush: number, input: Uint8Array, inOff: number, inLen: number, out: Uint8Array, outOff: number, outLen: number): void; onerror: unknown };
  state: Uint32Array;
  failed: boolean;
  z: InflateRaw;
}
let engine: Engine | null | undefined;

function inflateEngine(): Engine | undefined {
  if (engine === undefined) {
    engine = null;
    try {
      const z = new InflateRaw();
      const { _handle: h, _writeState: state } = z as unknown as { _handle?: Engine["h"]; _writeState?: unknown };
      if (h && typeof h.writeSync === "function" && typeof h.reset === "function" && state instanceof Uint32Array && state.length === 2) {
        const e: Engine = { h, state, failed: false, z };
        h.onerror = () => void (e.failed = true);
        engine = e;
      }
    } catch {
      // no reusable engine here: inflateRawSync then
    }
  }
  return engine ?? undefined;
}

/**
 * Inflates deflate data (a version 3 segment or several back to back, or a version 2 stream) of
 * at most `max` bytes out, into one buffer of that size (shorter if it gives less).
 */
function inflateSegments(z: Uint8Array, max: number): Buffer | undefined {
  const e = inflateEngine();
  if (e) {
    const out = Buffer.allocUnsafe(max);
    e.failed = false;
    try {
      e.h.reset();
      e.h.writeSync(zlibConstants.Z_SYNC_FLUSH, z, 0, z.length, out, 0, max);
    } catch {
      e.failed = true;
    }
    if (e.failed) {
      // A corrupted stream: this engine is done (a new one for the next call).
      engine = undefined;
      try {
        e.z.close();
      } catch {
        // closed already
      }
      return undefined;
    }
    // Input left over: it inflates to more than `max` (corrupted, as inflateRawSync's maxOutputLength says).
    if (e.state[1] !== 0) return undefined;
    const n = max - e.state[0];
    return n === max ? out : out.subarray(0, n);
  }
  try {
    return inflateRawSync(z, { finishFlush: zlibConstants.Z_SYNC_FLUSH, maxOutputLength: max, chunkSize: max });
  } catch {
    return undefined; // corrupted (or inflating to more than it should): the hash check refuses it
  }
}

/**
 * The 4 KiB pages of `count` slots from `slot`, from the pack's stored bytes (packRange), as a
 * Buffer. A slot of 4096 bytes is the page as is (version 2 and 3), a shorter one deflated.
 * Version 3: consecutive deflated slots form one deflate stream, inflated in one call (the
 * per-call cost of inflateRawSync, ~20-40 us, was most of a restore's inflate time); if that
 * does not give exactly their pages (a corrupted object) each of them is inflated alone.
 * Version 2: each deflated slot is inflated alone. A slot that does not inflate to 4096 bytes
 * is left as its stored bytes, so it fails its hash like any corruption; a damaged slot can
 * also spoil the other pages of its stream, which then fail their hashes too.
 */
export function unpackPages(id: string, layout: PackLayout | undefined, slot: number, count: number, stored: Uint8Array): Buffer {
  const version = packVersion(id);
  if (version === 1) return Buffer.from(stored.buffer, stored.byteOffset, stored.length);
  const o = layout!.offsets!;
  const base = o[slot];
  const raw = (k: number) => o[slot + k + 1] - o[slot + k] === PAGE;
  if (version === 3) {
    let deflated = 0;
    for (let k = 0; k < count; k++) if (!raw(k)) deflated++;
    if (deflated === count) {
      const all = inflateSegments(stored, count * PAGE);
      if (all && all.length === count * PAGE) return all;
    }
  }
  const out = Buffer.allocUnsafe(count * PAGE);
  let alone = 0; // slots before this that are inflated one by one (their stream failed)
  for (let k = 0; k < count; ) {
    const z = stored.subarray(o[slot + k] - base, o[slot + k + 1] - base);
    if (raw(k)) {
      out.set(z, k * PAGE);
      k++;
      continue;
    }
    // Version 3: the deflated slots from k on, in one call.
    let end = k + 1;
    if (version === 3 && k >= alone) while (end < count && !raw(end)) end++;
    if (end > k + 1) {
      const run = inflateSegments(stored.subarray(o[slot + k] - base, o[slot + end] - base), (end - k) * PAGE);
      if (run && run.length === (end - k) * PAGE) {
        out.set(run, k * PAGE);
        k = end;
        continue;
      }
      alone = end;
    }
    const page = inflateSegments(z, PAGE);
    if (page && page.length === PAGE) {
      out.set(page, k * PAGE);
    } else {
      out.fill(0, k * PAGE, (k + 1) * PAGE);
      out.set(z, k * PAGE);
    }
    k++;
  }
  return out;
}

/**
 * Slots `slot`.. (`count` of them) of pack `id` as stored (packRange's bytes), unpacked later:
 * one page alone (`page`: one inflate call, what a touch of the hart needs) or all of them at
 * once (`unpack`: what the background wants). A restore from the store reads its working set
 * so: the hart touches ~10% of those pages before the guest answers, and inflating every run as
 * it arrived took the hart's thread ~70-100 ms then.
 *
 * The stored bytes may come as the parts the socket delivered them in (a GET's body chunks,
 * ~64 KiB each), never joined: joining a run's body into one buffer cost ~20 ms of the hart's
 * thread per working set (Buffer.concat into fresh memory; each fresh MiB is ~3 ms of page
 * faults here). `unpack` inflates the slots of each part in one call (version 3: one deflate
 * stream), a slot cut by a part's end alone (its bytes joined, at most 4 KiB); `page` reads a
 * slot where it lies.
 */
export class StoredRun {
  /** The unpacked pages, in pieces: piece i holds slots from `firstOf[i]` (4 KiB each). */
  private pieces: Buffer[] | undefined;
  private firstOf: number[] = [];
  /** Which piece holds each slot. */
  private pieceOf: Uint16Array | undefined;
  /** The stored bytes as received, and where each part starts in them. */
  private parts: Uint8Array[] | undefined;
  private partAt: number[] = [];

  constructor(readonly id: string, private readonly layout: PackLayout | undefined, readonly slot: number, readonly count: number, stored: Uint8Array | Uint8Array[]) {
    this.parts = Array.isArray(stored) ? stored.filter((b) => b.length) : [stored];
    let at = 0;
    for (const b of this.parts) {
      this.partAt.push(at);
      at += b.length;
    }
    this.partAt.push(at);
  }

  /** Whether the pages are unpacked already (all of them). */
  get isUnpacked(): boolean {
    return this.pieces !== undefined;
  }

  /** Where slot `slot + k` starts in the stored bytes (k = count: their end). */
  private at(k: number): number {
    if (packVersion(this.id) === 1) return k * PAGE;
    const o = this.layout!.offsets!;
    return o[this.slot + k] - o[this.slot];
  }

  /** The stored bytes from `from` to `to`: a view where one part holds them, else joined. */
  private stored(from: number, to: number): Uint8Array {
    const parts = this.parts!, at = this.partAt;
    let i = 0;
    while (i + 1 < parts.length && at[i + 1] <= from) i++;
    if (to <= at[i + 1] || parts.length === 1) return parts[i].subarray(from - at[i], to - at[i]);
    const out = Buffer.allocUnsafe(to - from);
    for (let j = i, n = 0; n < out.length; j++) {
      const b = parts[j].subarray(Math.max(0, from - at[j]), Math.min(parts[j].length, to - at[j]));
      out.set(b, n);
      n += b.length;
    }
    return out;
  }

  /** Unpacks every page (not yet verified), once: the slots of each part in one call. */
  unpack(): void {
    if (this.pieces) return;
    const pieces: Buffer[] = [], firstOf: number[] = [];
    const pieceOf = new Uint16Array(this.count);
    const at = this.partAt;
    let i = 0; // the part where slot k starts
    for (let k = 0; k < this.count; ) {
      const from = this.at(k);
      while (i + 1 < this.parts!.length && at[i + 1] <= from) i++;
      // The slots from k that end within part i (at least slot k, wherever it ends).
      let end = k + 1;
      while (end < this.count && this.at(end + 1) <= at[i + 1]) end++;
      pieceOf.fill(pieces.length, k, end);
      firstOf.push(k);
      pieces.push(unpackPages(this.id, this.layout, this.slot + k, end - k, this.stored(from, this.at(end))));
      k = end;
    }
    this.pieces = pieces;
    this.firstOf = firstOf;
    this.pieceOf = pieceOf;
    this.parts = undefined;
  }

  /**
   * Every page (4 KiB each, not yet verified) in one buffer, unpacked once: from the stored bytes
   * joined (smaller than the pages: a run of the background's plan, a fault's cluster), or from
   * the pieces `unpack` left.
   */
  all(): Buffer {
    if (!this.pieces) {
      this.pieces = [unpackPages(this.id, this.layout, this.slot, this.count, this.stored(0, this.at(this.count)))];
      this.firstOf = [0];
      this.pieceOf = new Uint16Array(this.count);
      this.parts = undefined;
    }
    if (this.pieces.length > 1) {
      this.pieces = [Buffer.concat(this.pieces!, this.count * PAGE)];
      this.firstOf = [0];
      this.pieceOf!.fill(0);
    }
    return this.pieces![0];
  }

  /** The page of slot `slot + k` (4 KiB, not yet verified); unpacks that slot alone unless all are. */
  page(k: number): Buffer {
    if (this.pieces) {
      const i = this.pieceOf![k], first = this.firstOf[i];
      return this.pieces[i].subarray((k - first) * PAGE, (k - first + 1) * PAGE);
    }
    const stored = this.stored(this.at(k), this.at(k + 1));
    if (packVersion(this.id) === 1) return Buffer.from(stored.buffer, stored.byteOffset, PAGE);
    return unpackPages(this.id, this.layout, this.slot + k, 1, stored);
  }
}

/**
 * A page as a version 3 pack stores it: raw deflate (level 1) of the page alone, ended by a sync
 * flush instead of a final block, or the page as is where that is not smaller. Each deflated
 * segment starts on a byte boundary, refers to nothing before it and ends the stream's bits
 * cleanly, so consecutive ones are one valid deflate stream (a run inflates in one call), and
 * each also inflates alone.
 */
export function packPage(page: Uint8Array): Uint8Array {
  const z = deflateRawSync(page, { level: 1, finishFlush: zlibConstants.Z_SYNC_FLUSH });
  return z.length < PAGE ? z : page;
}

// --- page maps ---

export interface MapRef {
  /** Entries (pages or blocks). */
  entries: number;
  /** The SHA-256 (hex) of each deflated chunk of CHUNK_PAGES entries: its object's name. */
  chunks: string[];
}

export function encodeEntry(buf: Buffer, i: number, e: MapEntry): void {
  const o = i * ENTRY;
  buf.fill(0, o, o + ENTRY);
  if (e.kind === EntryKind.Zero) return;
  buf.writeUInt8(e.kind, o);
  buf.writeUInt32LE(e.slot, o + 4);
  buf.write(e.pack, o + 8, 16, "hex");
  e.hash.copy(buf, o + 24);
}

export function decodeEntry(buf: Buffer, i: number): MapEntry {
  const o = i * ENTRY;
  const kind = buf.readUInt8(o) as EntryKind;
  if (kind === EntryKind.Zero) return ZERO_ENTRY;
  return { kind, slot: buf.readUInt32LE(o + 4), pack: buf.toString("hex", o + 8, o + 24), hash: buf.subarray(o + 24, o + 56) };
}

/** The packs the entries of a raw map refer to. */
export function packsOf(raw: Buffer, into = new Set<string>()): Set<string> {
  let last = "";
  for (let o = 0; o < raw.length; o += ENTRY) {
    if (raw[o] === EntryKind.Zero) continue;
    const p = raw.toString("hex", o + 8, o + 24);
    if (p !== last) into.add((last = p));
  }
  return into;
}

/** Splits a raw map (ENTRY bytes per entry) into deflated chunks named by their SHA-256. */
/** Pages a snapshot's working-set map lists at most (64 MiB of RAM). */
export const WORKING_SET_MAX = 16384;

/** A working-set page and where its content is (the manifest's workingSet). */
export interface WorkingSetPage {
  page: number;
  pack: string;
  slot: number;
}

/**
 * The manifest's workingSet.data: page numbers (ascending, as deltas), the index of each page's
 * pack in the manifest's sorted pack list, and its slot; three columns of 32-bit words, deflated,
 * base64 (a few KiB for thousands of pages). No hashes: a restore checks the pages against their
 * packs' indexes.
 */
export function encodeWorkingSet(items: WorkingSetPage[], packs: string[]): string {
  const n = items.length;
  const ord = new Map(packs.map((p, i) => [p, i]));
  const w = new Uint32Array(3 * n);
  items.forEach((x, i) => {
    w[i] = i === 0 ? x.page : x.page - items[i - 1].page;
    w[n + i] = ord.get(x.pack)!;
    w[2 * n + i] = x.slot;
  });
  return deflateSync(Buffer.from(w.buffer, w.byteOffset, w.byteLength)).toString("base64");
}

/**
 * The working set's order in the packs (the save's upload order: the harts' first pages, the
 * carried hot pages, then the most recently touched first), as the manifest's optional
 * `workingSet.order`: for each page in that order, its index in the list (which is by page), as
 * the difference from the previous one (i32; small within an access epoch, whose pages go by
 * page), deflated. Where dedup found a page in an older pack, this is still where it comes.
 */
export function encodeWorkingSetOrder(listIndexes: number[]): string {
  return encodeDeltas(listIndexes);
}

/**
 * A list of page numbers (ascending), as the manifest's optional `workingSet.zero` (the working
 * set's zero pages): the differences from the previous one (u32), deflated, base64.
 */
export function encodePageList(pages: number[]): string {
  return encodeDeltas(pages);
}

/**
 * Numbers as the difference of each from the previous one (the first as is), 32-bit words
 * (little-endian; read as i32 or, for ascending lists, u32: the same bytes), deflated, base64.
 */
function encodeDeltas(v: number[]): string {
  const w = new Int32Array(v.length);
  v.forEach((x, k) => (w[k] = k === 0 ? x : x - v[k - 1]));
  return deflateSync(Buffer.from(w.buffer, w.byteOffset, w.byteLength)).toString("base64");
}

/** encodePageList's pages (each below `total`, ascending), or undefined for anything else. */
export function decodePageList(s: unknown, total: number): Set<number> | undefined {
  if (typeof s !== "string") return undefined;
  let b: Buffer;
  try {
    b = inflateSync(Buffer.from(s, "base64"));
  } catch {
    return undefined;
  }
  if (b.length % 4) return undefined;
  const out = new Set<number>();
  for (let k = 0, p = 0; k < b.length / 4; k++) {
    const d = b.readUInt32LE(4 * k);
    if (k > 0 && d === 0) return undefined;
    p += d;
    if (p >= total) return undefined;
    out.add(p);
  }
  return out;
}

/**
 * The manifest's `workingSet.order` as each listed page's rank (0: first), or undefined where
 * there is none or it is not a permutation of the list (an order only: a restore then reads in
 * the list's order, nothing else depends on it).
 */
export function decodeWorkingSetOrder(ws: { pages: number; order?: unknown }, items: WorkingSetPage[]): Map<number, number> | undefined {
  if (typeof ws.order !== "string" || items.length !== ws.pages) return undefined;
  let b: Buffer;
  try {
    b = inflateSync(Buffer.from(ws.order, "base64"));
  } catch {
    return undefined;
  }
  const n = items.length;
  if (b.length !== 4 * n) return undefined;
  // Through an Int32Array where the host is little-endian and the buffer aligned (cold code, as decodeWorkingSetNow).
  const le = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;
  const w = le && b.byteOffset % 4 === 0 ? new Int32Array(b.buffer, b.byteOffset, n) : undefined;
  const rank = new Map<number, number>();
  for (let k = 0, i = 0; k < n; k++) {
    i += w ? w[k] : b.readInt32LE(4 * k);
    if (i < 0 || i >= n || rank.has(items[i].page)) return undefined;
    rank.set(items[i].page, k);
  }
  return rank;
}

export function decodeWorkingSet(ws: { pages: number; data: string }, packs: string[], where: string): WorkingSetPage[] {
  // A restore decodes its manifest's list up to three times (StoreVm.prepare's first reads and
  // pack indexes, then the restore itself), once each in cold code: ~5 ms each under load.
  const known = decodedWorkingSets.get(ws);
  if (known?.packs === packs) return known.items;
  const items = decodeWorkingSetNow(ws, packs, where);
  decodedWorkingSets.set(ws, { packs, items });
  return items;
}

/** decodeWorkingSet's lists, by the manifest's working-set record (read only: callers copy). */
const decodedWorkingSets = new WeakMap<object, { packs: string[]; items: WorkingSetPage[] }>();

function decodeWorkingSetNow(ws: { pages: number; data: string }, packs: string[], where: string): WorkingSetPage[] {
  let b: Buffer;
  try {
    b = inflateSync(Buffer.from(ws.data, "base64"));
  } catch {
    throw new StoreDataError(where, "corrupted working-set list");
  }
  const n = ws.pages;
  if (b.length !== 12 * n) throw new StoreDataError(where, "corrupted working-set list");
  // Read through a Uint32Array where the host is little-endian (as the list) and the buffer
  // aligned: ~10k readUInt32LE calls in cold code were most of the decode (on the way to the
  // restored guest's first instruction).
  const le = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;
  const u = le && b.byteOffset % 4 === 0 ? new Uint32Array(b.buffer, b.byteOffset, 3 * n) : undefined;
  const at = (k: number) => (u ? u[k] : b.readUInt32LE(4 * k));
  const out: WorkingSetPage[] = new Array(n);
  for (let i = 0, page = 0; i < n; i++) {
    page += at(i);
    const pack = packs[at(n + i)];
    if (pack === undefined) throw new StoreDataError(where, "corrupted working-set list");
    out[i] = { page, pack, slot: at(2 * n + i) };
  }
  return out;
}

export function encodeMap(raw: Buffer): { ref: MapRef; bodies: Map<string, Buffer> } {
  const entries = raw.length / ENTRY;
  const bodies = new Map<string, Buffer>();
  const chunks: string[] = [];
  for (let first = 0; first < entries; first += CHUNK_PAGES) {
    const z = deflateSync(raw.subarray(first * ENTRY, Math.min(entries, first + CHUNK_PAGES) * ENTRY), { level: 1 });
    const h = sha256(z).toString("hex");
    chunks.push(h);
    bodies.set(h, z);
  }
  return { ref: { entries, chunks }, bodies };
}

/** A page map in the store: chunks fetched, checked and inflated on first use. */
export class StoreMap {
  private readonly chunks = new Map<number, Buffer>();
  private readonly loading = new Map<number, Promise<Buffer>>();
  /**
   * GETs of chunk objects, by name: chunks with the same entries have the same name (a RAM
   * map's all-zero regions: the page-cache guest's 64 chunks are 9 objects, its disk's 16 are
   * 4), and each object is read once (its few KiB are kept with the map).
   */
  private readonly gets = new Map<string, Promise<Uint8Array | undefined>>();
  /** Chunks inflated and checked, by name (the page-cache guest's 64 RAM chunks are 9 names). */
  private readonly decoded = new Map<string, Buffer>();

  constructor(private readonly store: ObjectStore, readonly ref: MapRef, private readonly where: string) {}

  get entries(): number {
    return this.ref.entries;
  }

  private decode(c: number, z: Uint8Array): Buffer {
    const name = this.ref.chunks[c];
    if (sha256(z).toString("hex") !== name) throw new StoreDataError(`${this.where} (${keys.chunk(name)})`, `corrupted page map (chunk ${c}: checksum mismatch)`);
    let b: Buffer;
    try {
      b = inflateSync(z);
    } catch {
      throw new StoreDataError(this.where, `corrupted page map (chunk ${c})`);
    }
    const want = Math.min(CHUNK_PAGES, this.ref.entries - c * CHUNK_PAGES) * ENTRY;
    if (b.length !== want) throw new StoreDataError(this.where, `corrupted page map (chunk ${c} has ${b.length} bytes)`);
    return b;
  }

  /** Loads chunk `c` (once; concurrent callers share the request). */
  load(c: number): Promise<Buffer> {
    const have = this.chunks.get(c);
    if (have) return Promise.resolve(have);
    let p = this.loading.get(c);
    if (!p) {
      const name = this.ref.chunks[c];
      if (!name) return Promise.reject(new StoreDataError(this.where, `page map has no chunk ${c}`));
      let get = this.gets.get(name);
      if (!get) this.gets.set(name, (get = this.store.get(keys.chunk(name))));
      p = get.then((z) => {
        if (!z) throw new StoreDataError(this.where, `page map chunk ${keys.chunk(name)} is missing`);
        // Chunks with the same name hold the same entries: inflated and checked once.
        const b = this.decoded.get(name) ?? this.decode(c, z);
        const want = Math.min(CHUNK_PAGES, this.ref.entries - c * CHUNK_PAGES) * ENTRY;
        if (b.length !== want) throw new StoreDataError(this.where, `corrupted page map (chunk ${c} has ${b.length} bytes)`);
        this.decoded.set(name, b);
        this.chunks.set(c, b);
        this.loading.delete(c);
        return b;
      }, (e) => {
        this.loading.delete(c);
        this.gets.delete(name);
        throw e;
      });
      this.loading.set(c, p);
    }
    return p;
  }

  /** Loads every chunk (a few in flight). */
  async loadAll(): Promise<void> {
    const todo = this.ref.chunks.map((_, c) => c).filter((c) => !this.chunks.has(c));
    for (let i = 0; i < todo.length; i += 8) await Promise.all(todo.slice(i, i + 8).map((c) => this.load(c)));
  }

  /** Whether entry i's chunk is loaded (entry() may be called). */
  has(i: number): boolean {
    return this.chunks.has(Math.floor(i / CHUNK_PAGES));
  }

  chunkOf(i: number): number {
    return Math.floor(i / CHUNK_PAGES);
  }

  /** Entry i; its chunk must be loaded. */
  entry(i: number): MapEntry {
    const c = Math.floor(i / CHUNK_PAGES);
    const b = this.chunks.get(c);
    if (!b) throw new Error(`internal: map chunk ${c} not loaded`);
    return decodeEntry(b, i - c * CHUNK_PAGES);
  }

  async entryAsync(i: number): Promise<MapEntry> {
    const c = Math.floor(i / CHUNK_PAGES);
    const b = await this.load(c);
    return decodeEntry(b, i - c * CHUNK_PAGES);
  }

  /** The raw chunk c (loaded). */
  raw(c: number): Buffer | undefined {
    return this.chunks.get(c);
  }

  /** Chunk c's object, fetched by other means (a synchronous read): checked and kept. */
  insert(c: number, z: Uint8Array): void {
    if (!this.chunks.has(c)) this.chunks.set(c, this.decode(c, z));
  }

  /** A map whose entries are at hand (just saved): no chunk is fetched. */
  static fromRaw(store: ObjectStore, ref: MapRef, where: string, raw: Buffer): StoreMap {
    const m = new StoreMap(store, ref, where);
    for (let c = 0; c * CHUNK_PAGES < ref.entries; c++) {
      m.chunks.set(c, Buffer.from(raw.subarray(c * CHUNK_PAGES * ENTRY, Math.min(ref.entries, (c + 1) * CHUNK_PAGES) * ENTRY)));
    }
    return m;
  }
}

// --- manifests ---

export interface DiskRecord {
  index: number;
  file: string;
  size: number;
  readonly: boolean;
  /** The disk's content at savevm: one entry per 4 KiB block (pages in the pool, or zero). */
  map: MapRef;
  /** The pushed image it was booted from, if any (its blocks are shared). */
  image: string | null;
}

export interface Manifest {
  format: "rvm-store-snapshot";
  /** Its new packs' version: 3 (new saves), 2 or 1; it may also refer to packs of older versions. */
  version: 1 | 2 | 3;
  name: string;
  id: string;
  created: string;
  /** Every pack the maps refer to (for gc and the save locks). */
  packs: string[];
  /** RAM, one entry per page. */
  map: MapRef;
  disks: DiskRecord[];
  /** The machine state (snapshot metadata without disks): config, hart, devices, time, stats. */
  meta: Record<string, unknown> & { ramBytes: number };
  /** The manifest this one was saved after (incremental: its unchanged entries were reused). */
  parent: string | null;
  /**
   * The working set (pages the guest touched last before the save, at most WORKING_SET_MAX):
   * each page's pack and slot (encodeWorkingSet). A restore reads those pages first, before it
   * has the RAM map. Optional: older snapshots have none. `first`: pages of the list the harts
   * need first (their page-table pages, pc, stack; Machine.firstPages), whose reads go out
   * first (older snapshots: none). `firstAt`: for each page of `first`, where its slot is stored
   * in its pack ([byte offset, length]) and the SHA-256 of the page (hex), or null: a restore
   * reads and checks those pages without waiting for their pack's index (newer snapshots only).
   * `reads`: the reads the first restore of this snapshot makes for its working set (no hot
   * list yet), in order, each located in its pack (plan.ts, PlannedRead): such a restore sends
   * them right after the manifest, without planning them (optional: newer snapshots only; older
   * rvm builds ignore it, and a restore without it, or with a hot list, plans its reads itself).
   */
  workingSet?: {
    pages: number; data: string; first?: number[]; firstAt?: ([number, number, string] | null)[]; order?: string;
    reads?: ([number, number, number, number | null, number | null] | [number, number, number, number | null, number | null, number])[];
    /**
     * The zero pages the guest touched last (not in the list, which names stored pages): a
     * restore installs them at the hart's touch without the RAM map (encodePageList; optional).
     */
    zero?: string;
  };
  /** SHA-256 of the JSON of everything else (hex). */
  digest?: string;
}

export interface ImageManifest {
  format: "rvm-store-image";
  version: 1 | 2 | 3;
  id: string;
  created: string;
  /** The file it was pushed from (informational). */
  source: string;
  size: number;
  packs: string[];
  map: MapRef;
  digest?: string;
}

function seal<T extends { digest?: string }>(m: T): Buffer {
  const body = { ...m, digest: undefined };
  const digest = sha256(Buffer.from(JSON.stringify(body))).toString("hex");
  return Buffer.from(JSON.stringify({ ...body, digest }, null, 1));
}

function unseal<T extends { digest?: string }>(bytes: Uint8Array, where: string, format: string): T {
  let m: T & { format?: string };
  try {
    m = JSON.parse(Buffer.from(bytes).toString("utf8"));
  } catch {
    throw new StoreDataError(where, "corrupted (not JSON)");
  }
  const { digest } = m;
  if (m.format !== format) throw new StoreDataError(where, `not a ${format} object`);
  const body = { ...m, digest: undefined };
  if (sha256(Buffer.from(JSON.stringify(body))).toString("hex") !== digest) throw new StoreDataError(where, "corrupted (checksum mismatch)");
  const version = (m as { version?: unknown }).version;
  if (version !== 1 && version !== 2 && version !== 3) throw new RvmError(`${where}: format version ${String(version)}, made by a newer rvm (this one reads 1 to 3)`);
  return m;
}

/** The content-addressed store over an object store. */
export class ContentStore {
  /** Pack indexes read so far (packs never change once written). */
  private readonly layouts = new Map<string, PackLayout>();
  /** When each pack index read so far was sent and answered (the restore timeline's record of its reads). */
  readonly indexTraces = new Map<string, GetTrace>();
  private readonly loadingLayouts = new Map<string, Promise<PackLayout>>();

  constructor(readonly objects: ObjectStore) {}

  get url(): string {
    return this.objects.url;
  }

  async readManifest(name: string): Promise<Manifest> {
    checkName(name);
    const b = await this.objects.get(keys.manifest(name));
    if (!b) throw new RvmError(`no snapshot named "${name}" in ${this.url}`);
    return unseal<Manifest>(b, `${this.url}/${keys.manifest(name)}`, "rvm-store-snapshot");
  }

  /** Makes a snapshot visible: the manifest is the last object a save writes. */
  async writeManifest(m: Manifest): Promise<void> {
    checkName(m.name);
    await this.objects.put(keys.manifest(m.name), seal(m));
  }

  async readImage(id: string): Promise<ImageManifest | undefined> {
    const b = await this.objects.get(keys.image(id));
    return b ? unseal<ImageManifest>(b, `${this.url}/${keys.image(id)}`, "rvm-store-image") : undefined;
  }

  async writeImage(m: ImageManifest): Promise<void> {
    await this.objects.put(keys.image(m.id), seal(m));
  }

  /** Every readable manifest (damaged ones are skipped in listings; they fail when used). */
  async manifests(): Promise<Manifest[]> {
    const list = await this.objects.list("snapshots/");
    const out = await Promise.all(list.filter((o) => o.key.endsWith(".json")).map(async (o) => {
      const name = o.key.slice("snapshots/".length, -".json".length);
      try {
        return await this.readManifest(name);
      } catch {
        return undefined;
      }
    }));
    return out.filter((m): m is Manifest => !!m).sort((a, b) => a.created.localeCompare(b.created));
  }

  async images(): Promise<ImageManifest[]> {
    const list = await this.objects.list("images/");
    const out = await Promise.all(list.filter((o) => o.key.endsWith(".json")).map(async (o) => {
      try {
        return await this.readImage(o.key.slice("images/".length, -".json".length));
      } catch {
        return undefined;
      }
    }));
    return out.filter((m): m is ImageManifest => !!m);
  }

  /** `rvm snapshot rm`: the manifest (and its hot list) goes; its packs stay until `rvm store gc`. */
  async deleteSnapshot(name: string): Promise<void> {
    await this.readManifest(name); // a clear error for a name that is not there
    await this.objects.delete([keys.manifest(name), keys.hot(name)]);
  }

  /**
   * The hot pages of snapshot `name` an earlier restore recorded (`writeHot`), if they belong to
   * the manifest `id` (a later save under the same name has another id); undefined if there are
   * none or they cannot be read. An order for the restore's reads only, so nothing in it is
   * trusted beyond that: page numbers are checked against the machine's RAM by the caller.
   */
  async readHot(name: string, id?: string): Promise<{ id: string; pages: number[]; reads?: unknown } | undefined> {
    checkName(name);
    const b = await this.objects.get(keys.hot(name));
    if (!b) return undefined;
    try {
      const j = JSON.parse(Buffer.from(b).toString("utf8"));
      if (j?.format !== "rvm-store-hot" || typeof j.id !== "string" || !Array.isArray(j.pages) || (id !== undefined && j.id !== id)) return undefined;
      const pages = (j.pages as unknown[]).filter((p): p is number => Number.isSafeInteger(p) && (p as number) >= 0).slice(0, HOT_MAX);
      // `reads`: the restore's reads planned with this list (plan.ts planReads; newer rvm only), checked where used.
      return { id: j.id, pages, ...(Array.isArray(j.reads) ? { reads: j.reads } : {}) };
    } catch {
      return undefined;
    }
  }

  /** Records the hot pages of snapshot `name` (manifest `id`) for its next restore (readHot). */
  async writeHot(name: string, id: string, pages: number[], reads?: unknown[]): Promise<void> {
    checkName(name);
    const hot = pages.slice(0, HOT_MAX);
    // The reads were planned with the whole list: kept only if the list is.
    const body = { format: "rvm-store-hot", id, pages: hot, ...(reads && hot.length === pages.length ? { reads } : {}) };
    await this.objects.put(keys.hot(name), Buffer.from(JSON.stringify(body)));
  }

  /** The SHA-256 of every page of a pack. */
  async packIndex(id: string): Promise<Buffer[]> {
    return (await this.packLayout(id)).hashes;
  }

  /** Pack `id`'s index (read once; concurrent callers share the request). */
  packLayout(id: string): Promise<PackLayout> {
    const have = this.layouts.get(id);
    if (have) return Promise.resolve(have);
    let p = this.loadingLayouts.get(id);
    if (!p) {
      const trace: GetTrace = {};
      this.indexTraces.set(id, trace);
      p = this.objects.get(keys.index(id), trace).then((b) => this.addLayout(id, b), (e) => {
        this.loadingLayouts.delete(id);
        throw e;
      });
      this.loadingLayouts.set(id, p);
    }
    return p;
  }

  /** The index of pack `id` if it was read already. */
  cachedLayout(id: string): PackLayout | undefined {
    return this.layouts.get(id);
  }

  /** Pack `id`'s index object `b` (read by other means: a synchronous read), checked and kept. */
  addLayout(id: string, b: Uint8Array | undefined): PackLayout {
    const where = `${this.url}/${keys.index(id)}`;
    this.loadingLayouts.delete(id);
    if (!b) throw new StoreDataError(where, "missing pack index");
    const l = decodeLayout(b, where);
    if (packVersion(id) !== l.version) throw new StoreDataError(where, "pack index of the wrong version");
    this.layouts.set(id, l);
    return l;
  }

  /**
   * Reads `count` pages from slot `slot` of pack `id`: one ranged GET (of a version 2 or 3 pack's
   * stored bytes, after its index), the pages as 4 KiB each (not yet verified).
   */
  async readPages(id: string, slot: number, count: number, trace?: GetTrace): Promise<Buffer> {
    return (await this.readRun(id, slot, count, trace)).all();
  }

  /** Like readPages, but the slots as stored (a StoredRun: unpacked by page or all at once, later). */
  async readRun(id: string, slot: number, count: number, trace?: GetTrace): Promise<StoredRun> {
    const layout = isPackV2(id) ? await this.packLayout(id) : undefined;
    const { offset, length } = packRange(id, layout, slot, count);
    return new StoredRun(id, layout, slot, count, await this.range(keys.pack(id), offset, length, trace));
  }

  /**
   * Reads the pages of slots `slot`.. of pack `id` whose stored bytes are known without its
   * index (the manifest's `workingSet.firstAt`): `lengths[k]` bytes for slot + k, back to back
   * from byte `offset`. One ranged GET; the pages as 4 KiB each (not yet verified).
   */
  async readStored(id: string, slot: number, offset: number, lengths: number[]): Promise<Buffer> {
    return (await this.readStoredRun(id, slot, offset, lengths)).all();
  }

  /** A range of an object, as the store received it (its parts, where it gives them: StoredRun). */
  private range(key: string, offset: number, length: number, trace?: GetTrace): Promise<Uint8Array | Uint8Array[]> {
    return this.objects.getRangeParts ? this.objects.getRangeParts(key, offset, length, trace) : this.objects.getRange(key, offset, length);
  }

  /**
   * Like readRun, with the slots' byte range in the pack known beforehand (the manifest's
   * `workingSet.reads`): the GET goes out at once, alongside the pack's index, instead of after
   * it. If the index gives another range (a manifest that does not match its packs), the slots
   * are read again where the index says.
   */
  async readRunAt(id: string, slot: number, count: number, offset: number, length: number, trace?: GetTrace): Promise<StoredRun> {
    const layout = isPackV2(id) ? this.packLayout(id) : undefined;
    const bytes = this.range(keys.pack(id), offset, length, trace);
    bytes.catch(() => undefined); // awaited below, after the index
    const l = await layout;
    const r = packRange(id, l, slot, count);
    if (r.offset !== offset || r.length !== length) return this.readRun(id, slot, count, trace);
    return new StoredRun(id, l, slot, count, await bytes);
  }

  /** Like readStored, but the slots as stored (a StoredRun). */
  async readStoredRun(id: string, slot: number, offset: number, lengths: number[], trace?: GetTrace): Promise<StoredRun> {
    const o = new Uint32Array(slot + lengths.length + 1);
    let end = offset;
    lengths.forEach((n, k) => {
      o[slot + k] = end;
      end += n;
    });
    o[slot + lengths.length] = end;
    const stored = await this.range(keys.pack(id), offset, end - offset, trace);
    return new StoredRun(id, isPackV2(id) ? { hashes: [], offsets: o, version: packVersion(id) } : undefined, slot, lengths.length, stored);
  }

  /** The locks younger than LOCK_TTL_MS; the names of older ones in `stale`. */
  private async locks(stale: string[]): Promise<LockBody[]> {
    const now = Date.now();
    const out: LockBody[] = [];
    for (const o of await this.objects.list("locks/")) {
      if (now - o.modified > LOCK_TTL_MS) {
        stale.push(o.key);
        continue;
      }
      const b = await this.objects.get(o.key);
      if (!b) continue;
      try {
        out.push(JSON.parse(Buffer.from(b).toString("utf8")));
      } catch {
        throw new RvmError(`store gc: lock ${o.key} in ${this.url} cannot be read; nothing deleted`);
      }
    }
    return out;
  }

  /** The packs and map chunks that manifests and images refer to. */
  async referenced(): Promise<{ packs: Set<string>; chunks: Set<string>; unreadable: number }> {
    const packs = new Set<string>();
    const chunks = new Set<string>();
    const named = (await this.objects.list("snapshots/")).filter((o) => o.key.endsWith(".json")).length;
    const manifests = await this.manifests();
    const maps: MapRef[] = [];
    for (const m of manifests) {
      for (const p of m.packs) packs.add(p);
      maps.push(m.map, ...m.disks.map((d) => d.map));
    }
    for (const im of await this.images()) {
      for (const p of im.packs) packs.add(p);
      maps.push(im.map);
    }
    for (const m of maps) for (const c of m.chunks) chunks.add(c);
    return { packs, chunks, unreadable: named - manifests.length };
  }

  /**
   * Reclaims what no snapshot, image or recent save refers to: packs, their indexes, map
   * chunks. Safe against concurrent saves (see the file's header): objects are listed first,
   * then locks, then manifests and images, then locks again.
   */
  async gc(): Promise<{ packs: number; chunks: number; bytes: number; kept: number }> {
    const t0 = Date.now();
    const objects = [...await this.objects.list("packs/"), ...await this.objects.list("chunks/")];
    const stale: string[] = [];
    const locksBefore = await this.locks(stale);
    const ref = await this.referenced();
    // A manifest that exists but cannot be read may refer to anything: delete nothing.
    if (ref.unreadable) throw new RvmError(`store gc: ${ref.unreadable} manifest(s) in ${this.url} cannot be read; nothing deleted`);
    const locks = [...locksBefore, ...await this.locks([])];
    if (Date.now() - t0 > LOCK_TTL_MS / 2) throw new RvmError("store gc: took too long to be sure no save is running; nothing deleted (run it again)");
    const running: string[] = [];
    for (const l of locks) {
      for (const p of l.packs) ref.packs.add(p);
      for (const c of l.chunks ?? []) ref.chunks.add(c);
      if (!l.done) running.push(l.save);
    }
    const keep = (key: string): boolean => {
      // A running save names its new chunks in its lock before it uploads them.
      if (key.startsWith("chunks/")) return ref.chunks.has(key.slice(7));
      const id = key.slice(6).replace(/\.(pack|idx)$/, "");
      // A running save's own new packs carry its id as their name's prefix.
      return ref.packs.has(id) || running.some((s) => id.startsWith(s));
    };
    const victims = objects.filter((o) => !keep(o.key));
    // Hot lists whose snapshot is gone (`snapshot rm` of an older rvm; a restore that wrote one
    // after the manifest was deleted). Listed after the manifests: one whose manifest a save
    // writes now is kept (its id tells the restore it is not that snapshot's).
    const snaps = await this.objects.list("snapshots/");
    const named = new Set(snaps.filter((o) => o.key.endsWith(".json")).map((o) => o.key.slice(0, -".json".length)));
    for (const o of snaps) if (o.key.endsWith(".hot") && !named.has(o.key.slice(0, -".hot".length))) stale.push(o.key);
    // A pack's index goes before the pack: an index never names a missing pack.
    const order = [...victims.filter((v) => v.key.endsWith(".idx")), ...victims.filter((v) => !v.key.endsWith(".idx"))];
    await this.objects.delete(order.map((v) => v.key));
    await this.objects.delete(stale);
    return {
      packs: victims.filter((v) => v.key.endsWith(".pack")).length,
      chunks: victims.filter((v) => v.key.startsWith("chunks/")).length,
      bytes: victims.reduce((a, v) => a + v.size, 0),
      kept: objects.length - victims.length,
    };
  }

  /** Bytes of all objects in the store (for `rvm store du` and the benchmark). */
  async usage(): Promise<{ objects: number; bytes: number; packs: number; packBytes: number }> {
    const all = await this.objects.list("");
    const packs = all.filter((o) => o.key.startsWith("packs/") && o.key.endsWith(".pack"));
    return { objects: all.length, bytes: all.reduce((a, o) => a + o.size, 0), packs: packs.length, packBytes: packs.reduce((a, o) => a + o.size, 0) };
  }
}

interface LockBody {
  save: string;
  packs: string[];
  chunks?: string[];
  done?: boolean;
}

/**
 * What is in the store already: page SHA-256 -> pack and slot, from the indexes of the packs
 * that live manifests and images refer to, and the map chunks they use.
 */
export class PoolIndex {
  private readonly where = new Map<string, { pack: string; slot: number }>();
  readonly packs = new Set<string>();
  readonly chunks = new Set<string>();

  static async load(cs: ContentStore, cache?: IndexCache): Promise<PoolIndex> {
    const ix = new PoolIndex();
    const ref = await cs.referenced();
    for (const c of ref.chunks) ix.chunks.add(c);
    const ids = [...ref.packs];
    const lists: Buffer[][] = [];
    for (let i = 0; i < ids.length; i += 16) {
      lists.push(...await Promise.all(ids.slice(i, i + 16).map(async (id) => {
        const have = cache?.get(id);
        if (have) return have;
        const h = await cs.packIndex(id);
        cache?.set(id, h);
        return h;
      })));
    }
    ids.forEach((id, k) => ix.addPack(id, lists[k]));
    return ix;
  }

  addPack(id: string, hashes: Buffer[]): void {
    this.packs.add(id);
    hashes.forEach((h, slot) => {
      const k = h.toString("latin1");
      if (!this.where.has(k)) this.where.set(k, { pack: id, slot });
    });
  }

  find(hash: Buffer): { pack: string; slot: number } | undefined {
    return this.where.get(hash.toString("latin1"));
  }

  /** Forgets packs and chunks no longer referenced when a save re-checked. */
  keepOnly(packs: Set<string>, chunks: Set<string>): void {
    const gone = new Set([...this.packs].filter((p) => !packs.has(p)));
    if (gone.size) for (const [k, v] of this.where) if (gone.has(v.pack)) this.where.delete(k);
    for (const p of gone) this.packs.delete(p);
    for (const c of [...this.chunks]) if (!chunks.has(c)) this.chunks.delete(c);
  }

  get size(): number {
    return this.where.size;
  }
}

/** Pack indexes cached between operations (packs never change once written). */
export interface IndexCache {
  get(id: string): Buffer[] | undefined;
  set(id: string, hashes: Buffer[]): void;
}

/**
 * Writes new pages into packs of about PACK_BYTES, a few uploads in flight, each pack followed
 * by its index. Pages go in in the order they are added (a save adds the working set first).
 */
export class PackWriter {
  private buf: Buffer;
  private hashes: Buffer[] = [];
  private offsets: number[] = [0];
  private fill = 0;
  private seq = 0;
  private readonly inflight = new Set<Promise<void>>();
  private failure: Error | undefined;
  /** Packs written (or being written), in order. */
  readonly written: string[] = [];
  /** Bytes stored (pages deflated where that is smaller). */
  bytes = 0;
  pages = 0;
  private readonly known = new Map<string, { pack: string; slot: number }>();
  /** The slot offsets of the packs sealed so far (storedRange). */
  private readonly sealed = new Map<string, number[]>();

  constructor(
    private readonly cs: ContentStore,
    /** The save's id: the prefix of its packs' names (gc spares them while its lock lives). */
    readonly saveId: string,
    private readonly packBytes = PACK_BYTES,
    private readonly maxInflight = 3,
  ) {
    this.buf = Buffer.allocUnsafe(packBytes);
  }

  /** A page written earlier in this save with this hash, if any. */
  find(hash: Buffer): { pack: string; slot: number } | undefined {
    return this.known.get(hash.toString("latin1"));
  }

  /** Adds a page (deflated, or copied); resolves when there is room for more (backpressure). */
  async add(hash: Buffer, page: Uint8Array): Promise<{ pack: string; slot: number }> {
    if (this.failure) throw this.failure;
    const k = hash.toString("latin1");
    const dup = this.known.get(k);
    if (dup) return dup;
    const ref = { pack: packId(this.saveId, this.seq), slot: this.hashes.length };
    this.known.set(k, ref);
    const stored = packPage(page);
    this.buf.set(stored, this.fill);
    this.fill += stored.length;
    this.offsets.push(this.fill);
    this.hashes.push(Buffer.from(hash));
    this.pages++;
    if (this.fill + PAGE > this.packBytes || this.hashes.length >= PACK_MAX_PAGES) await this.seal();
    return ref;
  }

  /**
   * Where slot `slot` of pack `id` is stored: [byte offset, length], for this save's packs and
   * for packs whose index this process has read (dedup); undefined otherwise.
   */
  storedRange(id: string, slot: number): [number, number] | undefined {
    if (!isPackV2(id)) return [slot * PAGE, PAGE];
    const o = id === packId(this.saveId, this.seq) ? this.offsets : this.sealed.get(id) ?? this.cs.cachedLayout(id)?.offsets;
    return o && slot + 1 < o.length ? [o[slot], o[slot + 1] - o[slot]] : undefined;
  }

  private async seal(): Promise<void> {
    if (this.fill === 0) return;
    const id = packId(this.saveId, this.seq);
    const body = this.buf.subarray(0, this.fill);
    const index = encodeIndex(this.hashes, this.offsets);
    this.sealed.set(id, this.offsets);
    this.written.push(id);
    this.bytes += body.length;
    this.seq++;
    this.buf = Buffer.allocUnsafe(this.packBytes);
    this.fill = 0;
    this.hashes = [];
    this.offsets = [0];
    await this.start(async () => {
      await this.cs.objects.put(keys.pack(id), body);
      await this.cs.objects.put(keys.index(id), index);
    });
  }

  /** Runs an upload with the others in flight (at most maxInflight). */
  async start(upload: () => Promise<void>): Promise<void> {
    const p: Promise<void> = upload().catch((e: Error) => {
      this.failure ??= e;
    }).finally(() => this.inflight.delete(p));
    this.inflight.add(p);
    while (this.inflight.size >= this.maxInflight) await Promise.race(this.inflight);
    if (this.failure) throw this.failure;
  }

  /** Uploads what is left and waits for every upload. */
  async finish(): Promise<void> {
    await this.seal();
    while (this.inflight.size) await Promise.race(this.inflight);
    if (this.failure) throw this.failure;
  }
}

/**
 * A save's lock object: names the save (whose new packs carry its id) and the existing packs
 * and chunks it builds on. Written before the save confirms those are still referenced;
 * refreshed while the save runs; marked done once the manifest is written, and left to expire
 * after LOCK_TTL_MS (gc removes it), so a gc that listed the manifests just before this save's
 * manifest appeared still sees what it reused.
 */
export class SaveLock {
  private timer: NodeJS.Timeout | undefined;
  private body: LockBody;
  /** finish() or leave() was called: later calls change nothing. */
  private settled = false;

  constructor(private readonly cs: ContentStore, readonly save: string) {
    this.body = { save, packs: [], chunks: [], done: false };
  }

  async write(packs?: string[], chunks?: string[]): Promise<void> {
    if (packs) this.body.packs = packs;
    if (chunks) this.body.chunks = chunks;
    await this.cs.objects.put(keys.lock(this.save), Buffer.from(JSON.stringify({ ...this.body, at: new Date().toISOString() })));
    if (!this.body.done && !this.timer) {
      this.timer = setInterval(() => void this.write().catch(() => undefined), LOCK_TTL_MS / 4);
      this.timer.unref();
    }
  }

  /**
   * The save is complete (its manifest is written, referring to `packs` and `chunks`) or
   * abandoned (nothing). From now on the lock names only the existing objects the manifest
   * builds on.
   */
  async finish(packs: string[] = [], chunks: string[] = []): Promise<void> {
    if (this.settled) return;
    this.leave();
    this.body.done = true;
    await this.write(packs.filter((p) => !p.startsWith(this.save)), chunks);
  }

  /**
   * Leaves the lock as last written — not done: it names everything the save builds on, and
   * its own packs by prefix — no longer refreshed, so it expires after LOCK_TTL_MS as a done
   * one does, and gc then removes it. For a manifest that may be visible although the lock
   * could not be marked done (a later finish() must not empty it: a gc that listed the
   * manifests before this one appeared would then delete what it reuses).
   */
  leave(): void {
    this.settled = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }
}

/**
 * Builds one page map of a save: each entry is zero, a page already in the store (pool or this
 * save), or a new page added to the save's packs.
 */
export class MapBuilder {
  readonly raw: Buffer;
  /** Pages found in the store already (not uploaded). */
  deduped = 0;
  /** Pages uploaded by this map. */
  uploaded = 0;
  zero = 0;

  constructor(readonly entries: number, private readonly pool: PoolIndex, private readonly writer: PackWriter) {
    this.raw = Buffer.alloc(entries * ENTRY);
  }

  setZero(i: number): void {
    encodeEntry(this.raw, i, ZERO_ENTRY);
    this.zero++;
  }

  /** An entry taken over as is (incremental save, or a raw entry copied). */
  setEntry(i: number, e: MapEntry): void {
    encodeEntry(this.raw, i, e);
  }

  /** A page with this content: found in the store, or uploaded. `hash` = sha256(bytes). */
  async put(i: number, bytes: Uint8Array, hash = sha256(bytes)): Promise<void> {
    const have = this.pool.find(hash) ?? this.writer.find(hash);
    if (have) {
      this.deduped++;
      encodeEntry(this.raw, i, { kind: EntryKind.Page, pack: have.pack, slot: have.slot, hash });
      return;
    }
    const ref = await this.writer.add(hash, bytes);
    this.uploaded++;
    encodeEntry(this.raw, i, { kind: EntryKind.Page, pack: ref.pack, slot: ref.slot, hash });
  }

  encode(): { ref: MapRef; bodies: Map<string, Buffer> } {
    return encodeMap(this.raw);
  }

  packs(into?: Set<string>): Set<string> {
    return packsOf(this.raw, into);
  }
}

/** The pages of maps in the store, read and verified (ranged GETs of their packs). */
export class PageReader {
  constructor(private readonly cs: ContentStore) {}

  /** Verifies `bytes` against an entry's hash; throws naming the object on a mismatch. */
  verify(e: MapEntry, bytes: Uint8Array, what: string): void {
    if (e.kind === EntryKind.Zero) return;
    if (!sha256(bytes).equals(e.hash)) {
      throw new StoreDataError(`${this.cs.url}/${keys.pack(e.pack)}`, `${what}: checksum mismatch (corrupted object)`);
    }
  }

  /** One page's bytes, verified. */
  async read(e: MapEntry, what: string): Promise<Uint8Array> {
    if (e.kind === EntryKind.Zero) return new Uint8Array(PAGE);
    const b = await this.cs.readPages(e.pack, e.slot, 1);
    this.verify(e, b, what);
    return b;
  }
}

/**
 * A save's start: load what the store has, lock the packs and chunks it will build on, and
 * confirm they are still referenced (forgetting those that are not). See the file's header.
 */
export async function beginSave(cs: ContentStore, saveId: string, cache?: IndexCache): Promise<{ pool: PoolIndex; lock: SaveLock }> {
  await cs.objects.ensure();
  const pool = await PoolIndex.load(cs, cache);
  const lock = new SaveLock(cs, saveId);
  await lock.write([...pool.packs], [...pool.chunks]);
  const still = await cs.referenced();
  pool.keepOnly(still.packs, still.chunks);
  return { pool, lock };
}

/**
 * The end of a save: uploads the map chunks the store lacks (named in the lock first), then the
 * manifest (the snapshot becomes visible), then marks the lock done (if that fails, the save has
 * still succeeded: the lock is left to expire, see SaveLock.leave). `beforeManifest` runs once
 * every pack and chunk is stored, just before the manifest is sealed (the save's time so far).
 */
export async function finishSave(
  cs: ContentStore, pool: PoolIndex, lock: SaveLock, writer: PackWriter,
  maps: { ref: MapRef; bodies: Map<string, Buffer> }[], manifest: Omit<Manifest, "packs"> | null, packs: Set<string>,
  writeLast?: () => Promise<void>, beforeManifest?: () => void,
): Promise<Manifest | null> {
  await writer.finish();
  const fresh = new Map<string, Buffer>();
  for (const m of maps) for (const [h, b] of m.bodies) if (!pool.chunks.has(h)) fresh.set(h, b);
  const chunks = new Set<string>();
  for (const m of maps) for (const c of m.ref.chunks) chunks.add(c);
  if (fresh.size) {
    await lock.write(undefined, [...new Set([...pool.chunks, ...fresh.keys()])]);
    for (const [h, b] of fresh) await writer.start(() => cs.objects.put(keys.chunk(h), b));
    await writer.finish();
    for (const h of fresh.keys()) pool.chunks.add(h);
  }
  beforeManifest?.();
  const full: Manifest | null = manifest && { ...manifest, packs: [...packs].sort() };
  try {
    if (full) await cs.writeManifest(full);
    await writeLast?.();
  } catch (e) {
    // The PUT may have reached the store though its answer did not: the lock stays as it is.
    lock.leave();
    throw e;
  }
  // The snapshot (or image) is complete and listed: a lock that cannot be marked done (the
  // store failing now) does not undo that. It stays as last written and expires (leave()).
  await lock.finish([...packs], [...chunks].filter((c) => !fresh.has(c))).catch(() => lock.leave());
  return full;
}
