// The content-addressed layer against a real radosgw: packs, indexes, page maps, manifests
// (written last), dedup across saves, corruption refused, and gc (also with a save running).

import { describe, expect, it } from "vitest";
import {
  beginSave, ContentStore, EntryKind, finishSave, keys, MapBuilder, newId, PackWriter, PageReader, PoolIndex, sha256, StoreMap,
} from "../../src/store/cas.js";
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
async function save(cs: ContentStore, name: string, seeds: number[], opts: { beforeManifest?: () => Promise<void>; packBytes?: number } = {}) {
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
    format: "rvm-store-snapshot", version: 1, name, id: saveId, created: new Date().toISOString(), map: enc.ref, disks: [],
    meta: { ramBytes: seeds.length * PAGE }, parent: null,
  }, map.packs());
  return { m: m!, map, writer };
}

async function readAll(cs: ContentStore, name: string): Promise<Buffer[]> {
  const m = await cs.readManifest(name);
  const map = new StoreMap(cs.objects, m.map, name);
  const reader = new PageReader(cs);
  const out: Buffer[] = [];
  for (let i = 0; i < map.entries; i++) out.push(Buffer.from(await reader.read(await map.entryAsync(i), `page ${i}`)));
  return out;
}

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
});
