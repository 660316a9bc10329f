// The content-addressed snapshot store in an object store (docs/ARCHITECTURE.md, "Snapshots in
// an object store"). Layout under the store's prefix:
//
//   packs/<id>.pack       4 KiB pages back to back (a few MiB; a save writes the working set first)
//   packs/<id>.idx        the pack's index: the SHA-256 of each page, in slot order; written after
//                         its pack, so an index always has its pack
//   maps/<id>.map         a page map: one 48-byte entry per page (RAM page or disk block), in
//                         deflated chunks of 4096 entries, each checksummed in the manifest
//   snapshots/<name>.json a snapshot's manifest (machine state, disks, packs, map): written last,
//                         so a snapshot is listed only once everything it needs is in the store
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

import { createHash, randomBytes } from "node:crypto";
import { deflateSync, inflateSync } from "node:zlib";
import { RvmError } from "../errors.js";
import type { ObjectStore } from "./objects.js";
import { checkName } from "../snapshot/store.js";

export const PAGE = 4096;
/** Pages per map chunk (16 MiB of RAM). */
export const CHUNK_PAGES = 4096;
/** Bytes per map entry: u8 kind, 3 bytes 0, u32 pack, u32 slot, u32 0, 32-byte SHA-256. */
export const ENTRY = 48;
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
  /** Index into the manifest's pack list. */
  pack: number;
  slot: number;
  /** SHA-256 of the page (Page entries). */
  hash: Buffer;
}

export const ZERO_ENTRY: MapEntry = { kind: EntryKind.Zero, pack: 0, slot: 0, hash: Buffer.alloc(32) };

/** A corrupted or inconsistent object in the store. */
export class StoreDataError extends RvmError {
  constructor(where: string, problem: string) {
    super(`object store: ${where}: ${problem}`);
    this.name = "StoreDataError";
  }
}

export function sha256(bytes: Uint8Array): Buffer {
  return createHash("sha256").update(bytes).digest();
}

export function newId(): string {
  // Sortable by time, unique: ms since the epoch (hex, 12 digits) and 8 random bytes.
  return Date.now().toString(16).padStart(12, "0") + randomBytes(8).toString("hex");
}

export const keys = {
  pack: (id: string) => `packs/${id}.pack`,
  index: (id: string) => `packs/${id}.idx`,
  map: (id: string) => `maps/${id}.map`,
  manifest: (name: string) => `snapshots/${name}.json`,
  image: (id: string) => `images/${id}.json`,
  lock: (id: string) => `locks/${id}.json`,
};

// --- pack indexes ---

const IDX_MAGIC = "RVMPIDX1";

export function encodeIndex(hashes: Buffer[]): Buffer {
  const b = Buffer.alloc(16 + hashes.length * 32 + 32);
  b.write(IDX_MAGIC, 0, "latin1");
  b.writeUInt32LE(hashes.length, 8);
  hashes.forEach((h, i) => h.copy(b, 16 + i * 32));
  sha256(b.subarray(0, b.length - 32)).copy(b, b.length - 32);
  return b;
}

export function decodeIndex(b: Uint8Array, where: string): Buffer[] {
  const buf = Buffer.from(b.buffer, b.byteOffset, b.length);
  if (buf.length < 48 || buf.toString("latin1", 0, 8) !== IDX_MAGIC) throw new StoreDataError(where, "not a pack index");
  const n = buf.readUInt32LE(8);
  if (buf.length !== 16 + n * 32 + 32 || !sha256(buf.subarray(0, buf.length - 32)).equals(buf.subarray(buf.length - 32))) {
    throw new StoreDataError(where, "corrupted pack index (checksum mismatch)");
  }
  const out: Buffer[] = [];
  for (let i = 0; i < n; i++) out.push(buf.subarray(16 + i * 32, 48 + i * 32));
  return out;
}

// --- page maps ---

export interface MapChunk {
  offset: number;
  length: number;
  /** SHA-256 of the deflated chunk, hex. */
  sha256: string;
}

export interface MapRef {
  /** Key of the map object. */
  key: string;
  /** Entries (pages or blocks). */
  entries: number;
  chunks: MapChunk[];
}

export function encodeEntry(buf: Buffer, i: number, e: MapEntry): void {
  const o = i * ENTRY;
  buf.writeUInt8(e.kind, o);
  buf.writeUInt32LE(e.pack, o + 4);
  buf.writeUInt32LE(e.slot, o + 8);
  if (e.kind !== EntryKind.Zero) e.hash.copy(buf, o + 16);
}

export function decodeEntry(buf: Buffer, i: number): MapEntry {
  const o = i * ENTRY;
  return { kind: buf.readUInt8(o) as EntryKind, pack: buf.readUInt32LE(o + 4), slot: buf.readUInt32LE(o + 8), hash: buf.subarray(o + 16, o + 48) };
}

/** Encodes `entries` (ENTRY bytes each) as deflated checksummed chunks; returns object and ref. */
export function encodeMap(raw: Buffer, key: string): { body: Buffer; ref: MapRef } {
  const entries = raw.length / ENTRY;
  const parts: Buffer[] = [];
  const chunks: MapChunk[] = [];
  let offset = 0;
  for (let first = 0; first < entries; first += CHUNK_PAGES) {
    const z = deflateSync(raw.subarray(first * ENTRY, Math.min(entries, first + CHUNK_PAGES) * ENTRY), { level: 1 });
    chunks.push({ offset, length: z.length, sha256: sha256(z).toString("hex") });
    parts.push(z);
    offset += z.length;
  }
  return { body: Buffer.concat(parts), ref: { key, entries, chunks } };
}

/** A page map in the store: chunks fetched (ranged GET), checked and inflated on first use. */
export class StoreMap {
  private readonly chunks = new Map<number, Buffer>();
  private readonly loading = new Map<number, Promise<Buffer>>();

  constructor(private readonly store: ObjectStore, readonly ref: MapRef, private readonly where: string) {}

  get entries(): number {
    return this.ref.entries;
  }

  private decode(c: number, z: Uint8Array): Buffer {
    const info = this.ref.chunks[c];
    if (sha256(z).toString("hex") !== info.sha256) throw new StoreDataError(this.where, `corrupted page map (chunk ${c}: checksum mismatch)`);
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
      const info = this.ref.chunks[c];
      if (!info) return Promise.reject(new StoreDataError(this.where, `page map has no chunk ${c}`));
      p = this.store.getRange(this.ref.key, info.offset, info.length).then((z) => {
        const b = this.decode(c, z);
        this.chunks.set(c, b);
        this.loading.delete(c);
        return b;
      }, (e) => {
        this.loading.delete(c);
        throw e;
      });
      this.loading.set(c, p);
    }
    return p;
  }

  /** Loads every chunk (one GET of the whole object). */
  async loadAll(): Promise<void> {
    if (this.chunks.size === this.ref.chunks.length) return;
    const all = await this.store.get(this.ref.key);
    if (!all) throw new StoreDataError(this.where, `page map ${this.ref.key} is missing`);
    this.ref.chunks.forEach((info, c) => {
      if (!this.chunks.has(c)) this.chunks.set(c, this.decode(c, all.subarray(info.offset, info.offset + info.length)));
    });
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
  version: 1;
  name: string;
  id: string;
  created: string;
  /** Packs the maps refer to, by position (MapEntry.pack). */
  packs: string[];
  /** RAM, one entry per page. */
  map: MapRef;
  disks: DiskRecord[];
  /** The machine state (snapshot metadata without disks): config, hart, devices, time, stats. */
  meta: Record<string, unknown> & { ramBytes: number };
  /** The manifest this one was saved after (incremental: its unchanged entries were reused). */
  parent: string | null;
  /** SHA-256 of the JSON of everything else (hex). */
  digest?: string;
}

export interface ImageManifest {
  format: "rvm-store-image";
  version: 1;
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
  return m;
}

/** The content-addressed store over an object store. */
export class ContentStore {
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

  /** `rvm snapshot rm`: the manifest goes; its packs stay until `rvm store gc`. */
  async deleteSnapshot(name: string): Promise<void> {
    await this.readManifest(name); // a clear error for a name that is not there
    await this.objects.delete([keys.manifest(name)]);
  }

  /** The SHA-256 of every page of a pack (cached by the caller: packs never change). */
  async packIndex(id: string): Promise<Buffer[]> {
    const b = await this.objects.get(keys.index(id));
    if (!b) throw new StoreDataError(`${this.url}/${keys.index(id)}`, "missing pack index");
    return decodeIndex(b, `${this.url}/${keys.index(id)}`);
  }

  /** Reads `count` pages from slot `slot` of pack `id` (one ranged GET). */
  readPages(id: string, slot: number, count: number): Promise<Uint8Array> {
    return this.objects.getRange(keys.pack(id), slot * PAGE, count * PAGE);
  }

  /** The locks younger than LOCK_TTL_MS; the names of older ones in `stale`. */
  private async locks(now: number, stale: string[]): Promise<{ save: string; packs: string[]; done?: boolean }[]> {
    const out: { save: string; packs: string[]; done?: boolean }[] = [];
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

  /**
   * Reclaims what no snapshot, image or recent save refers to: packs, indexes and maps.
   * Returns what it deleted. Safe against concurrent saves (see the file's header): objects are
   * listed first, then locks, then manifests and images, then locks again.
   */
  async gc(): Promise<{ packs: number; maps: number; bytes: number; kept: number }> {
    const t0 = Date.now();
    const objects = [...await this.objects.list("packs/"), ...await this.objects.list("maps/")];
    const stale: string[] = [];
    const locksBefore = await this.locks(Date.now(), stale);
    const referenced = new Set<string>();
    const named = (await this.objects.list("snapshots/")).filter((o) => o.key.endsWith(".json")).length;
    const manifests = await this.manifests();
    // A manifest that exists but cannot be read may refer to anything: delete nothing.
    if (named !== manifests.length) throw new RvmError(`store gc: ${named - manifests.length} manifest(s) in ${this.url} cannot be read; nothing deleted`);
    for (const m of manifests) {
      for (const p of m.packs) referenced.add(keys.pack(p)).add(keys.index(p));
      referenced.add(m.map.key);
      for (const d of m.disks) referenced.add(d.map.key);
    }
    for (const im of await this.images()) {
      for (const p of im.packs) referenced.add(keys.pack(p)).add(keys.index(p));
      referenced.add(im.map.key);
    }
    const locks = [...locksBefore, ...await this.locks(Date.now(), [])];
    if (Date.now() - t0 > LOCK_TTL_MS / 2) throw new RvmError("store gc: took too long to be sure no save is running; nothing deleted (run it again)");
    const running = new Set<string>();
    for (const l of locks) {
      for (const p of l.packs) referenced.add(keys.pack(p)).add(keys.index(p));
      if (!l.done) running.add(l.save);
    }
    const victims = objects.filter((o) => {
      if (referenced.has(o.key)) return false;
      // A running save's own new objects carry its id as their name's prefix.
      const base = o.key.slice(o.key.indexOf("/") + 1);
      for (const s of running) if (base.startsWith(s)) return false;
      return true;
    });
    // A pack's index goes before the pack: an index never names a missing pack.
    const order = [...victims.filter((v) => v.key.endsWith(".idx")), ...victims.filter((v) => !v.key.endsWith(".idx"))];
    await this.objects.delete(order.map((v) => v.key));
    await this.objects.delete(stale);
    return {
      packs: victims.filter((v) => v.key.endsWith(".pack")).length,
      maps: victims.filter((v) => v.key.startsWith("maps/")).length,
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

/**
 * Where the pages already in the store are: SHA-256 -> pack and slot, built from the indexes of
 * the packs that live manifests and images refer to.
 */
export class PoolIndex {
  private readonly where = new Map<string, { pack: string; slot: number }>();
  readonly packs = new Set<string>();

  static async load(cs: ContentStore, cache?: IndexCache): Promise<PoolIndex> {
    const ix = new PoolIndex();
    const packs = new Set<string>();
    for (const m of await cs.manifests()) for (const p of m.packs) packs.add(p);
    for (const im of await cs.images()) for (const p of im.packs) packs.add(p);
    const ids = [...packs];
    const lists = await Promise.all(ids.map(async (id) => cache?.get(id) ?? cs.packIndex(id).then((h) => (cache?.set(id, h), h))));
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

  /** Forgets packs (no longer referenced when a save re-checked). */
  drop(packs: Set<string>): void {
    if (packs.size === 0) return;
    for (const [k, v] of this.where) if (packs.has(v.pack)) this.where.delete(k);
    for (const p of packs) this.packs.delete(p);
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
  private fill = 0;
  private seq = 0;
  private readonly inflight = new Set<Promise<void>>();
  private failure: Error | undefined;
  /** Packs written (or being written), in order. */
  readonly written: string[] = [];
  bytes = 0;
  pages = 0;
  private readonly known = new Map<string, { pack: string; slot: number }>();

  constructor(
    private readonly cs: ContentStore,
    /** The save's id: the prefix of its packs' names (gc spares them while its lock lives). */
    readonly saveId: string,
    private readonly packBytes = PACK_BYTES,
    private readonly maxInflight = 3,
  ) {
    this.buf = Buffer.allocUnsafe(packBytes);
  }

  private currentId(): string {
    return `${this.saveId}-${String(this.seq).padStart(5, "0")}`;
  }

  /** A page written earlier in this save with this hash, if any. */
  find(hash: Buffer): { pack: string; slot: number } | undefined {
    return this.known.get(hash.toString("latin1"));
  }

  /** Adds a page (copied); resolves when there is room for more (backpressure). */
  async add(hash: Buffer, page: Uint8Array): Promise<{ pack: string; slot: number }> {
    if (this.failure) throw this.failure;
    const k = hash.toString("latin1");
    const dup = this.known.get(k);
    if (dup) return dup;
    const ref = { pack: this.currentId(), slot: this.hashes.length };
    this.known.set(k, ref);
    this.buf.set(page, this.fill);
    this.fill += PAGE;
    this.hashes.push(Buffer.from(hash));
    this.pages++;
    if (this.fill + PAGE > this.packBytes) await this.seal();
    return ref;
  }

  private async seal(): Promise<void> {
    if (this.fill === 0) return;
    const id = this.currentId();
    const body = this.buf.subarray(0, this.fill);
    const index = encodeIndex(this.hashes);
    this.written.push(id);
    this.bytes += body.length;
    this.seq++;
    this.buf = Buffer.allocUnsafe(this.packBytes);
    this.fill = 0;
    this.hashes = [];
    const p: Promise<void> = (async () => {
      await this.cs.objects.put(keys.pack(id), body);
      await this.cs.objects.put(keys.index(id), index);
    })().catch((e: Error) => {
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
 * A save's lock object: names the save (whose new objects carry its id) and the existing packs
 * it builds on. Written before the save confirms those packs are still referenced; refreshed
 * while the save runs; marked done once the manifest is written, and left to expire after
 * LOCK_TTL_MS (gc removes it), so a gc that listed the manifests just before this save's
 * manifest appeared still sees which packs it reused.
 */
export class SaveLock {
  private timer: NodeJS.Timeout | undefined;
  private packs: string[] = [];
  private done = false;

  constructor(private readonly cs: ContentStore, readonly save: string) {}

  async write(packs?: string[]): Promise<void> {
    if (packs) this.packs = packs;
    await this.cs.objects.put(keys.lock(this.save), Buffer.from(JSON.stringify({ save: this.save, packs: this.packs, done: this.done, at: new Date().toISOString() })));
    if (!this.done && !this.timer) {
      this.timer = setInterval(() => void this.write().catch(() => undefined), LOCK_TTL_MS / 4);
      this.timer.unref();
    }
  }

  /**
   * The save is complete (its manifest is written; `packs` = the manifest's packs) or abandoned
   * (no packs). From now on the lock names only the existing packs the manifest builds on.
   */
  async finish(packs: string[] = []): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.done = true;
    await this.write(packs.filter((p) => !p.startsWith(this.save)));
  }
}

/**
 * Builds one page map of a save: each entry is zero, a page already in the store (pool or this
 * save), or a new page added to the save's packs. Collects the packs the map refers to.
 */
export class MapBuilder {
  readonly raw: Buffer;
  private readonly packIndex = new Map<string, number>();
  /** Pages found in the store already (not uploaded). */
  deduped = 0;
  /** Pages uploaded by this map. */
  uploaded = 0;
  zero = 0;

  constructor(
    readonly entries: number,
    private readonly pool: PoolIndex,
    private readonly writer: PackWriter,
    /** The save's pack list, shared by all the maps of one manifest. */
    readonly packs: string[],
  ) {
    this.raw = Buffer.alloc(entries * ENTRY);
  }

  private packNo(id: string): number {
    let n = this.packIndex.get(id);
    if (n === undefined) {
      n = this.packs.indexOf(id);
      if (n < 0) {
        this.packs.push(id);
        n = this.packs.length - 1;
      }
      this.packIndex.set(id, n);
    }
    return n;
  }

  setZero(i: number): void {
    encodeEntry(this.raw, i, ZERO_ENTRY);
    this.zero++;
  }

  /** An entry taken over as is (incremental save): a page in `pack` at `slot`. */
  setRef(i: number, pack: string, slot: number, hash: Buffer): void {
    encodeEntry(this.raw, i, { kind: EntryKind.Page, pack: this.packNo(pack), slot, hash });
  }

  /** A page with this content: found in the store, or uploaded. `hash` = sha256(bytes). */
  async put(i: number, bytes: Uint8Array, hash = sha256(bytes)): Promise<void> {
    const have = this.pool.find(hash) ?? this.writer.find(hash);
    if (have) {
      this.deduped++;
      this.setRef(i, have.pack, have.slot, hash);
      return;
    }
    const ref = await this.writer.add(hash, bytes);
    this.uploaded++;
    this.setRef(i, ref.pack, ref.slot, hash);
  }

  /** The encoded map object for key `key`. */
  encode(key: string): { body: Buffer; ref: MapRef } {
    return encodeMap(this.raw, key);
  }
}

/** The pages of a map in the store, read and verified (ranged GETs of their packs). */
export class PageReader {
  constructor(private readonly cs: ContentStore, private readonly packs: string[]) {}

  /** Verifies `bytes` against an entry's hash; throws naming the object on a mismatch. */
  verify(e: MapEntry, bytes: Uint8Array, what: string): void {
    if (e.kind === EntryKind.Zero) return;
    if (!sha256(bytes).equals(e.hash)) {
      throw new StoreDataError(`${this.cs.url}/${keys.pack(this.packs[e.pack])}`, `${what}: checksum mismatch (corrupted object)`);
    }
  }

  packKey(e: MapEntry): string {
    const id = this.packs[e.pack];
    if (id === undefined) throw new StoreDataError(this.cs.url, `map refers to pack ${e.pack}, which the manifest does not list`);
    return keys.pack(id);
  }

  /** One page's bytes, verified. */
  async read(e: MapEntry, what: string): Promise<Uint8Array> {
    if (e.kind === EntryKind.Zero) return new Uint8Array(PAGE);
    const b = await this.cs.objects.getRange(this.packKey(e), e.slot * PAGE, PAGE);
    this.verify(e, b, what);
    return b;
  }
}

/**
 * A save's start: load what the store has, lock the packs it will build on, and confirm they
 * are still referenced (dropping those that are not). See the file's header.
 */
export async function beginSave(cs: ContentStore, saveId: string, cache?: IndexCache): Promise<{ pool: PoolIndex; lock: SaveLock }> {
  await cs.objects.ensure();
  const pool = await PoolIndex.load(cs, cache);
  const lock = new SaveLock(cs, saveId);
  await lock.write([...pool.packs]);
  const still = new Set<string>();
  for (const m of await cs.manifests()) for (const p of m.packs) still.add(p);
  for (const im of await cs.images()) for (const p of im.packs) still.add(p);
  pool.drop(new Set([...pool.packs].filter((p) => !still.has(p))));
  return { pool, lock };
}
