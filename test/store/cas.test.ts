// The content-addressed layer against a real radosgw: packs, indexes, page maps, manifests
// (written last), dedup across saves, corruption refused, and gc (also with a save running).

import { deflateRawSync } from "node:zlib";
import { describe, expect, it } from "vitest";
import {
  beginSave, ContentStore, decodeWorkingSetOrder, encodeIndex, encodeWorkingSetOrder, EntryKind, finishSave, isPackV2, keys, MapBuilder, newId, PackWriter, packVersion, PageReader, PoolIndex, sha256,
  StoreMap, StoredRun, packRange,
} from "../../src/store/cas.js";
import { DeleteBucketPolicyCommand, PutBucketPolicyCommand, S3Client } from "@aws-sdk/client-s3";
import { S3ObjectStore } from "../../src/store/objects.js";
import { freshBucket, haveRadosgw, useRadosgw } from "./rgw.js";

const PAGE = 4096;

/** A page whose content is a function of `seed` (0 = the zero page). */
function page(seed: number): Buffer {
  const b = Buffer.alloc(PAGE);
  if (seed === 0) return b;
  let x = seed * 2654435761;
  for (let i = 0; i < PAGE; i += 4) {
    x = (x ^ (x << 13)) >>> 0;
    x = (x ^ (x >>> 17)) >>> 0;
    x = (x ^ (x << 5)) >>> 0;
    b.writeUInt32LE(x, i);
  }
  return b;
}

/** Saves `seeds` (one page each) as snapshot `name`, the way a savevm does. */
async function save(cs: ContentStore, name: string, seeds: number[], opts: { beforeManifest?: () => Promise<void>; afterManifest?: () => Promise<void>; packBytes?: number } = {}) {
  const saveId = newId();
  const { pool, lock } = await beginSave(cs, saveId);
  const writer = new PackWriter(cs, saveId, opts.packBytes ?? 1 << 20);
  const map = new MapBuilder(seeds.length, pool, writer);
  for (let i = 0; i < seeds.length; i++) {
    if (seeds[i] === 0) map.setZero(i);
    else await map.put(i, page(seeds[i]));
  }
  await writer.finish();
  await opts.beforeManifest?.();
  const enc = map.encode();
  const m = await finishSave(cs, pool, lock, writer, [enc], {
    format: "rvm-store-snapshot", version: 3, name, id: saveId, created: new Date().toISOString(), map: enc.ref, disks: [],
    meta: { ramBytes: seeds.length * PAGE }, parent: null,
  }, map.packs(), opts.afterManifest);
  return { m: m!, map, writer, lock, saveId };
}

async function readAll(cs: ContentStore, name: string): Promise<Buffer[]> {
  const m = await cs.readManifest(name);
  const map = new StoreMap(cs.objects, m.map, name);
  const reader = new PageReader(cs);
  const out: Buffer[] = [];
  for (let i = 0; i < map.entries; i++) out.push(Buffer.from(await reader.read(await map.entryAsync(i), `page ${i}`)));
  return out;
}

describe("the working set's order in a manifest", () => {
  it("round-trips a permutation of the list, and is ignored (undefined) where missing, short, damaged or not a permutation", () => {
    const items = [3, 9, 10, 11, 40, 41, 700].map((page, slot) => ({ page, pack: "p", slot }));
    const order = [4, 5, 0, 6, 1, 2, 3]; // list indexes in the save's order
    const ws = { pages: items.length, order: encodeWorkingSetOrder(order) };
    const rank = decodeWorkingSetOrder(ws, items)!;
    expect(order.map((i) => rank.get(items[i].page))).toEqual([0, 1, 2, 3, 4, 5, 6]);
    expect(decodeWorkingSetOrder({ pages: items.length }, items)).toBeUndefined();
    expect(decodeWorkingSetOrder({ pages: items.length, order: 5 }, items)).toBeUndefined();
    expect(decodeWorkingSetOrder({ pages: items.length, order: "not deflate" }, items)).toBeUndefined();
    expect(decodeWorkingSetOrder({ pages: 6, order: ws.order }, items.slice(0, 6))).toBeUndefined();
    expect(decodeWorkingSetOrder({ pages: items.length, order: encodeWorkingSetOrder([4, 5, 0, 6, 1, 2, 2]) }, items)).toBeUndefined();
    expect(decodeWorkingSetOrder({ pages: items.length, order: encodeWorkingSetOrder([4, 5, 0, 6, 1, 2, 7]) }, items)).toBeUndefined();
    expect(decodeWorkingSetOrder({ pages: items.length, order: encodeWorkingSetOrder([4, 5, 0, 6, 1, 2, -1]) }, items)).toBeUndefined();
  });
});

describe.skipIf(!haveRadosgw)("content-addressed store", () => {
  useRadosgw();

  it("stores pages once: within a save, across saves and across VMs; reads them back verified", async () => {
    const cs = new ContentStore(S3ObjectStore.fromUrl(`s3://${freshBucket()}/vms`));
    // VM a: 600 distinct pages, 100 zero pages, 50 repeats of page 1.
    const a = [...Array.from({ length: 600 }, (_, i) => i + 1), ...Array(100).fill(0), ...Array(50).fill(1)];
    const sa = await save(cs, "a", a);
    expect(sa.map.uploaded).toBe(600);
    expect(sa.map.zero).toBe(100);
    expect(sa.writer.bytes).toBe(600 * PAGE);
    expect(sa.writer.written.length).toBe(3); // 1 MiB packs: 255 + 255 + 90 pages
    expect(sa.m.map.chunks.length).toBe(1);
    // VM b shares 500 pages with a and has 100 of its own.
    const b = [...Array.from({ length: 500 }, (_, i) => i + 1), ...Array.from({ length: 100 }, (_, i) => 10_000 + i)];
    const sb = await save(cs, "b", b);
    expect(sb.map.uploaded).toBe(100);
    expect(sb.map.deduped).toBe(500);
    const back = await readAll(cs, "b");
    b.forEach((s, i) => expect(back[i].equals(page(s))).toBe(true));
    const backA = await readAll(cs, "a");
    a.forEach((s, i) => expect(backA[i].equals(page(s))).toBe(true));
    expect((await cs.manifests()).map((m) => m.name)).toEqual(["a", "b"]);
    // A third VM identical to b: nothing new, not even its map.
    const before = await cs.usage();
    const sc = await save(cs, "c", b);
    expect(sc.map.uploaded).toBe(0);
    const after = await cs.usage();
    expect(after.bytes - before.bytes).toBeLessThan(4096); // its manifest and lock
  }, 120_000);

  it("lists a snapshot only once its manifest is written", async () => {
    const cs = new ContentStore(S3ObjectStore.fromUrl(`s3://${freshBucket()}/p`));
    let listedBefore: string[] = [];
    await save(cs, "late", [1, 2, 3], { beforeManifest: async () => void (listedBefore = (await cs.manifests()).map((m) => m.name)) });
    expect(listedBefore).toEqual([]);
    expect((await cs.manifests()).map((m) => m.name)).toEqual(["late"]);
  }, 60_000);

  it("refuses a corrupted pack, map or manifest", async () => {
    const cs = new ContentStore(S3ObjectStore.fromUrl(`s3://${freshBucket()}/c`));
    const { m } = await save(cs, "s", [5, 6, 7]);
    // A flipped byte in the pack: the page that holds it fails its hash, the others read.
    const pk = keys.pack(m.packs[0]);
    const body = Buffer.from((await cs.objects.get(pk))!);
    body[PAGE + 100] ^= 1;
    await cs.objects.put(pk, body);
    const map = new StoreMap(cs.objects, m.map, "s");
    const reader = new PageReader(cs);
    expect(Buffer.from(await reader.read(await map.entryAsync(0), "page 0")).equals(page(5))).toBe(true);
    await expect(reader.read(await map.entryAsync(1), "page 1")).rejects.toThrow(/page 1: checksum mismatch/);
    // A damaged map chunk.
    const ck = keys.chunk(m.map.chunks[0]);
    const mb = Buffer.from((await cs.objects.get(ck))!);
    mb[mb.length - 1] ^= 0xff;
    await cs.objects.put(ck, mb);
    await expect(new StoreMap(cs.objects, m.map, "s").entryAsync(0)).rejects.toThrow(/corrupted page map/);
    // A manifest edited behind rvm's back.
    const mk = keys.manifest("s");
    const text = Buffer.from((await cs.objects.get(mk))!).toString().replace('"ramBytes": 12288', '"ramBytes": 16384');
    await cs.objects.put(mk, Buffer.from(text));
    await expect(cs.readManifest("s")).rejects.toThrow(/corrupted \(checksum mismatch\)/);
  }, 60_000);

  it("snapshot rm + gc reclaim the packs no snapshot refers to, and keep shared ones", async () => {
    const cs = new ContentStore(S3ObjectStore.fromUrl(`s3://${freshBucket()}/gc`));
    await save(cs, "one", Array.from({ length: 300 }, (_, i) => i + 1));
    await save(cs, "two", Array.from({ length: 300 }, (_, i) => 1000 + i));
    // "three" shares "one"'s first pack's pages.
    await save(cs, "three", Array.from({ length: 100 }, (_, i) => i + 1));
    const before = await cs.usage();
    await cs.deleteSnapshot("two");
    await expect(cs.deleteSnapshot("two")).rejects.toThrow(/no snapshot named "two"/);
    const r = await cs.gc();
    expect(r.packs).toBe(2); // "two"'s two packs
    expect(r.chunks).toBe(1); // and its map
    expect(r.bytes).toBeGreaterThanOrEqual(300 * PAGE);
    const after = await cs.usage();
    expect(before.packBytes - after.packBytes).toBe(300 * PAGE);
    expect((await readAll(cs, "one"))[299].equals(page(300))).toBe(true);
    expect((await readAll(cs, "three"))[99].equals(page(100))).toBe(true);
    expect((await cs.gc()).packs).toBe(0);
  }, 120_000);

  it("gc during a save leaves the save's packs (new and reused) alone", async () => {
    const cs = new ContentStore(S3ObjectStore.fromUrl(`s3://${freshBucket()}/race`));
    await save(cs, "base", Array.from({ length: 50 }, (_, i) => i + 1));
    // The save reuses base's pages; before its manifest is written, base is deleted and gc runs.
    let gcResult: { packs: number; maps: number } | undefined;
    await save(cs, "child", [...Array.from({ length: 50 }, (_, i) => i + 1), 777], {
      beforeManifest: async () => {
        await cs.deleteSnapshot("base");
        gcResult = await cs.gc();
      },
    });
    // Everything the running save may build on is in its lock: base's pack (reused), child's new
    // pack (its prefix), and base's map chunk (in the store when the save began).
    expect(gcResult!.packs).toBe(0);
    expect(gcResult!.chunks).toBe(0);
    const back = await readAll(cs, "child");
    expect(back[0].equals(page(1))).toBe(true);
    expect(back[50].equals(page(777))).toBe(true);
    // Once the save is done its lock names only what its manifest reuses: base's map goes.
    expect((await cs.gc()).chunks).toBe(1);
    expect((await readAll(cs, "child"))[50].equals(page(777))).toBe(true);
  }, 120_000);

  it("a lock that cannot be marked done once the manifest is written: the save succeeds, and the lock keeps what it reuses", async () => {
    const bucket = freshBucket();
    const cs = new ContentStore(S3ObjectStore.fromUrl(`s3://${bucket}/lock`));
    const base = await save(cs, "base", Array.from({ length: 20 }, (_, i) => i + 1));
    // Once the manifest is written, the store refuses writes of locks (a bucket policy).
    const s3 = new S3Client({ forcePathStyle: true });
    const deny = { Version: "2012-10-17", Statement: [{ Effect: "Deny", Principal: "*", Action: "s3:PutObject", Resource: `arn:aws:s3:::${bucket}/lock/locks/*` }] };
    let child: Awaited<ReturnType<typeof save>> | undefined;
    try {
      child = await save(cs, "child", [...Array.from({ length: 20 }, (_, i) => i + 1), 777], {
        afterManifest: async () => void await s3.send(new PutBucketPolicyCommand({ Bucket: bucket, Policy: JSON.stringify(deny) })),
      });
      await expect(cs.objects.put(keys.lock("x"), Buffer.from("{}"))).rejects.toThrow(/AccessDenied/);
    } finally {
      await s3.send(new DeleteBucketPolicyCommand({ Bucket: bucket }));
      s3.destroy();
    }
    // Before: the save failed although its snapshot was listed, and savevm's clean-up then
    // marked the lock done naming nothing (where the store took that write), so a gc that had
    // listed the manifests before this one appeared could delete the packs it reuses. Now the
    // save succeeds, the lock stays as last written (not done, naming them) until it expires,
    // and a later finish() (that clean-up) changes nothing.
    expect(child.m.name).toBe("child");
    await child.lock.finish();
    const lock = JSON.parse(Buffer.from((await cs.objects.get(keys.lock(child.saveId)))!).toString());
    expect(lock.done).toBe(false);
    expect(lock.packs).toEqual(expect.arrayContaining(base.m.packs));
    expect((await cs.manifests()).map((m) => m.name).sort()).toEqual(["base", "child"]);
    await cs.deleteSnapshot("base");
    expect((await cs.gc()).packs).toBe(0);
    const back = await readAll(cs, "child");
    expect(back[0].equals(page(1))).toBe(true);
    expect(back[20].equals(page(777))).toBe(true);
  }, 120_000);

  it("a save does not build on packs no snapshot refers to any more", async () => {
    const cs = new ContentStore(S3ObjectStore.fromUrl(`s3://${freshBucket()}/drop`));
    await save(cs, "old", [1, 2, 3]);
    await cs.deleteSnapshot("old");
    const { pool } = await beginSave(cs, newId());
    expect(pool.size).toBe(0);
    const s = await save(cs, "new", [1, 2, 3]);
    expect(s.map.uploaded).toBe(3);
    expect((await cs.manifests()).map((m) => m.name)).toEqual(["new"]);
  }, 60_000);

  it("pack indexes name each page's SHA-256 in slot order", async () => {
    const cs = new ContentStore(S3ObjectStore.fromUrl(`s3://${freshBucket()}/idx`));
    const { m } = await save(cs, "x", [3, 1, 2]);
    const ix = await cs.packIndex(m.packs[0]);
    expect(ix.map((h) => h.toString("hex"))).toEqual([3, 1, 2].map((s) => sha256(page(s)).toString("hex")));
    const pool = await PoolIndex.load(cs);
    expect(pool.find(sha256(page(2)))).toEqual({ pack: m.packs[0], slot: 2 });
    expect(EntryKind.Page).toBe(1);
  }, 60_000);

  it("stores pages deflated (version 3 packs), reads each page and runs of slots by their byte range, verified", async () => {
    const cs = new ContentStore(S3ObjectStore.fromUrl(`s3://${freshBucket()}/v3`));
    // Pages that deflate (text-like), random ones (kept as they are), interleaved.
    const text = (i: number) => Buffer.from(`page ${i}: ${"the quick brown fox ".repeat(220)}`.slice(0, PAGE));
    const saveId = newId();
    const { pool, lock } = await beginSave(cs, saveId);
    const writer = new PackWriter(cs, saveId);
    const map = new MapBuilder(40, pool, writer);
    const want: Buffer[] = [];
    for (let i = 0; i < 40; i++) {
      want.push(i % 4 === 3 ? page(i + 1) : text(i));
      await map.put(i, want[i]);
    }
    const enc = map.encode();
    const m = (await finishSave(cs, pool, lock, writer, [enc], {
      format: "rvm-store-snapshot", version: 3, name: "z", id: saveId, created: new Date().toISOString(), map: enc.ref, disks: [],
      meta: { ramBytes: 40 * PAGE }, parent: null,
    }, map.packs()))!;
    expect(m.packs.map(packVersion)).toEqual([3]);
    expect(m.packs.every(isPackV2)).toBe(true); // addressed by byte offsets, as version 2
    expect(writer.bytes).toBeLessThan(40 * PAGE * 0.4); // 10 random pages as they are, 30 deflated
    const index = Buffer.from((await cs.objects.get(keys.index(m.packs[0])))!);
    expect(index.toString("latin1", 0, 8)).toBe("RVMPIDX3");
    expect((await readAll(cs, "z")).every((b, i) => b.equals(want[i]))).toBe(true);
    // Runs of slots (one inflate of the run's segments) come back as 4 KiB pages.
    const run = Buffer.from(await cs.readPages(m.packs[0], 2, 3));
    expect(run.equals(Buffer.concat([want[2], want[3], want[4]]))).toBe(true);
    expect(Buffer.from(await cs.readPages(m.packs[0], 0, 40)).equals(Buffer.concat(want))).toBe(true);
    expect(Buffer.from(await cs.readPages(m.packs[0], 4, 3)).equals(Buffer.concat(want.slice(4, 7)))).toBe(true); // one stream
    // A run read as stored (the restore's working set): each page unpacked alone (a hart's
    // touch), then all at once (the background), the same pages; raw slots (3, 7) among them.
    const stored = await cs.readRun(m.packs[0], 1, 9);
    for (const k of [6, 0, 2, 8]) expect(stored.page(k).equals(want[1 + k])).toBe(true);
    expect(stored.isUnpacked).toBe(false);
    expect(stored.all().equals(Buffer.concat(want.slice(1, 10)))).toBe(true);
    expect(stored.page(5).equals(want[6])).toBe(true);
    // The same run in the parts a socket may cut its body into (slots cut across parts, raw
    // and deflated): each page alone, all unpacked, all in one buffer, the same pages.
    const layout = await cs.packLayout(m.packs[0]);
    const range = packRange(m.packs[0], layout, 1, 9);
    const bytes = Buffer.from(await cs.objects.getRange(keys.pack(m.packs[0]), range.offset, range.length));
    for (const size of [1, 7, 100, 1000, 4096, 5000, bytes.length]) {
      const parts: Buffer[] = [];
      for (let i = 0; i < bytes.length; i += size) parts.push(bytes.subarray(i, i + size));
      const r = new StoredRun(m.packs[0], layout, 1, 9, parts);
      for (const k of [8, 0, 2, 3]) expect(r.page(k).equals(want[1 + k])).toBe(true);
      r.unpack();
      expect(r.isUnpacked).toBe(true);
      for (let k = 0; k < 9; k++) expect(r.page(k).equals(want[1 + k])).toBe(true);
      expect(r.all().equals(Buffer.concat(want.slice(1, 10)))).toBe(true);
      expect(new StoredRun(m.packs[0], layout, 1, 9, parts).all().equals(Buffer.concat(want.slice(1, 10)))).toBe(true);
    }
    // A flipped byte in a deflated page: that page is refused, the others read; a run that
    // holds it gives the damaged slot as garbage (refused by its hash), the rest intact.
    const fresh = new ContentStore(S3ObjectStore.fromUrl(`s3://${cs.url.slice(5)}`));
    const pk = keys.pack(m.packs[0]);
    const body = Buffer.from((await cs.objects.get(pk))!);
    body[10] ^= 0x55;
    await cs.objects.put(pk, body);
    const reader = new PageReader(fresh);
    const sm = new StoreMap(fresh.objects, m.map, "z");
    await expect(reader.read(await sm.entryAsync(0), "page 0")).rejects.toThrow(/page 0: checksum mismatch \(corrupted object\)/);
    expect(Buffer.from(await reader.read(await sm.entryAsync(5), "page 5")).equals(want[5])).toBe(true);
    const damaged = Buffer.from(await fresh.readPages(m.packs[0], 0, 8));
    expect(damaged.length).toBe(8 * PAGE);
    expect(sha256(damaged.subarray(0, PAGE)).equals(sha256(want[0]))).toBe(false);
    expect(Buffer.from(await fresh.readPages(m.packs[0], 1, 7)).equals(Buffer.concat(want.slice(1, 8)))).toBe(true);
    // Unpacked alone, the damaged slot is refused by its hash and its neighbours read intact.
    const storedBad = await fresh.readRun(m.packs[0], 0, 3);
    expect(sha256(storedBad.page(0)).equals(sha256(want[0]))).toBe(false);
    expect(storedBad.page(1).equals(want[1])).toBe(true);
    expect(storedBad.page(2).equals(want[2])).toBe(true);
    // In parts and unpacked at once, the same: the damaged slot garbage, its neighbours intact.
    const badLayout = await fresh.packLayout(m.packs[0]);
    const badRange = packRange(m.packs[0], badLayout, 0, 3);
    const badBytes = Buffer.from(await fresh.objects.getRange(pk, badRange.offset, badRange.length));
    const inParts = new StoredRun(m.packs[0], badLayout, 0, 3, [badBytes.subarray(0, 5), badBytes.subarray(5)]);
    inParts.unpack();
    expect(sha256(inParts.page(0)).equals(sha256(want[0]))).toBe(false);
    expect(inParts.page(1).equals(want[1])).toBe(true);
    expect(inParts.page(2).equals(want[2])).toBe(true);
    expect(Buffer.from(await fresh.readPages(m.packs[0], 1, 7)).equals(Buffer.concat(want.slice(1, 8)))).toBe(true);
  }, 60_000);

  it("still reads version 2 packs (a deflate stream per page), and new saves dedup against them", async () => {
    const cs = new ContentStore(S3ObjectStore.fromUrl(`s3://${freshBucket()}/v2`));
    // A pack and manifest as a version 2 rvm wrote them: each page raw-deflated on its own, or
    // as is where that is not smaller; the sequence's top bits 10; an RVMPIDX2 index.
    const saveId = newId();
    const pack = saveId + "80000000";
    expect(packVersion(pack)).toBe(2);
    const text = (i: number) => Buffer.from(`v2 page ${i}: ${"lorem ipsum dolor ".repeat(240)}`.slice(0, PAGE));
    const pages = [text(1), page(21), text(2), text(3), page(22)];
    const stored = pages.map((p) => {
      const z = deflateRawSync(p, { level: 1 });
      return z.length < PAGE ? z : p;
    });
    const offsets = [0];
    for (const z of stored) offsets.push(offsets[offsets.length - 1] + z.length);
    await cs.objects.ensure();
    await cs.objects.put(keys.pack(pack), Buffer.concat(stored));
    await cs.objects.put(keys.index(pack), encodeIndex(pages.map(sha256), offsets, 2));
    const raw = Buffer.alloc(pages.length * 56);
    pages.forEach((p, i) => {
      raw.writeUInt8(EntryKind.Page, i * 56);
      raw.writeUInt32LE(i, i * 56 + 4);
      raw.write(pack, i * 56 + 8, 16, "hex");
      sha256(p).copy(raw, i * 56 + 24);
    });
    const { pool, lock } = await beginSave(cs, saveId);
    const writer = new PackWriter(cs, saveId);
    const mb = new MapBuilder(pages.length, pool, writer);
    raw.copy(mb.raw);
    const enc = mb.encode();
    await finishSave(cs, pool, lock, writer, [enc], {
      format: "rvm-store-snapshot", version: 2, name: "old2", id: saveId, created: new Date().toISOString(), map: enc.ref, disks: [],
      meta: { ramBytes: pages.length * PAGE }, parent: null,
    }, new Set([pack]));
    expect((await readAll(cs, "old2")).every((b, i) => b.equals(pages[i]))).toBe(true);
    expect(Buffer.from(await cs.readPages(pack, 0, 5)).equals(Buffer.concat(pages))).toBe(true);
    // A new save of some of the same pages refers to the version 2 pack; its own pack is version 3.
    const s = await save(cs, "new", [21, 23]);
    expect(s.map.uploaded).toBe(1);
    expect(s.m.packs).toContain(pack);
    expect(s.m.packs.map(packVersion).sort()).toEqual([2, 3]);
    expect((await readAll(cs, "new"))[0].equals(page(21))).toBe(true);
  }, 60_000);

  it("still reads version 1 packs (raw pages), and new saves dedup against them", async () => {
    const cs = new ContentStore(S3ObjectStore.fromUrl(`s3://${freshBucket()}/v1`));
    // A pack and manifest as a version 1 rvm wrote them: raw pages, sequence without the top bit.
    const saveId = newId();
    const pack = saveId + "00000000";
    expect(isPackV2(pack)).toBe(false);
    expect(packVersion(pack)).toBe(1);
    const seeds = [11, 12, 13];
    await cs.objects.ensure();
    await cs.objects.put(keys.pack(pack), Buffer.concat(seeds.map(page)));
    await cs.objects.put(keys.index(pack), encodeIndex(seeds.map((x) => sha256(page(x)))));
    const raw = Buffer.alloc(seeds.length * 56);
    seeds.forEach((x, i) => {
      raw.writeUInt8(EntryKind.Page, i * 56);
      raw.writeUInt32LE(i, i * 56 + 4);
      raw.write(pack, i * 56 + 8, 16, "hex");
      sha256(page(x)).copy(raw, i * 56 + 24);
    });
    const { pool, lock } = await beginSave(cs, saveId);
    const writer = new PackWriter(cs, saveId);
    const mb = new MapBuilder(seeds.length, pool, writer);
    raw.copy(mb.raw);
    const enc = mb.encode();
    await finishSave(cs, pool, lock, writer, [enc], {
      format: "rvm-store-snapshot", version: 1, name: "old", id: saveId, created: new Date().toISOString(), map: enc.ref, disks: [],
      meta: { ramBytes: seeds.length * PAGE }, parent: null,
    }, new Set([pack]));
    expect((await readAll(cs, "old")).map((b) => b.equals(page(seeds[0])) ? 11 : b.equals(page(seeds[1])) ? 12 : b.equals(page(seeds[2])) ? 13 : 0)).toEqual(seeds);
    // A new save of some of the same pages refers to the version 1 pack.
    const s = await save(cs, "new", [12, 14]);
    expect(s.map.uploaded).toBe(1);
    expect(s.m.packs).toContain(pack);
    expect((await readAll(cs, "new"))[0].equals(page(12))).toBe(true);
  }, 60_000);
});
