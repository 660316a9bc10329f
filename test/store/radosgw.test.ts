// The test-support radosgw itself: it starts, serves a bucket through the AWS SDK (as rvm uses
// it), and stop() ends exactly the processes it started.

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
// @ts-expect-error plain JavaScript module
import { startRadosgw } from "../../scripts/radosgw.js";
import { S3ObjectStore } from "../../src/store/objects.js";
import { freshBucket, haveRadosgw, useRadosgw } from "./rgw.js";

describe.skipIf(!haveRadosgw)("radosgw (test support)", () => {
  const gw = useRadosgw();

  it("serves a bucket: put, get, ranged get, list, delete", async () => {
    const store = S3ObjectStore.fromUrl(`s3://${freshBucket()}/some/prefix`);
    await store.ensure();
    await store.ensure(); // idempotent
    const body = Buffer.alloc(3 * 4096);
    for (let i = 0; i < body.length; i++) body[i] = (i * 7) & 0xff;
    await store.put("a/one", body);
    await store.put("a/two", Buffer.from("hello"));
    expect(Buffer.from((await store.get("a/one"))!).equals(body)).toBe(true);
    expect(Buffer.from(await store.getRange("a/one", 4096, 4096)).equals(body.subarray(4096, 8192))).toBe(true);
    expect(await store.get("a/none")).toBeUndefined();
    await expect(store.getRange("a/none", 0, 10)).rejects.toThrow(/is missing/);
    await expect(store.getRange("a/two", 0, 10)).rejects.toThrow(/truncated/);
    const list = await store.list("a/");
    expect(list.map((o) => o.key).sort()).toEqual(["a/one", "a/two"]);
    expect(list.find((o) => o.key === "a/one")!.size).toBe(body.length);
    await store.delete(["a/one"]);
    expect((await store.list("")).map((o) => o.key)).toEqual(["a/two"]);
    await store.close();
  }, 60_000);

  it("gives a one-line error without credentials, and never shows the secret", async () => {
    const secret = gw().secretAccessKey;
    const store = S3ObjectStore.fromUrl(`s3://${freshBucket()}/x`);
    const saved = process.env.AWS_SECRET_ACCESS_KEY;
    process.env.AWS_SECRET_ACCESS_KEY = "wrong" + secret.slice(5);
    try {
      const err = await store.ensure().then(() => undefined, (e: Error) => e);
      expect(err?.message).toMatch(/^object store: .*(denied|SignatureDoesNotMatch|InvalidAccessKeyId)/);
      expect(err?.message).not.toContain(secret.slice(5));
      expect(err?.message.split("\n")).toHaveLength(1);
    } finally {
      process.env.AWS_SECRET_ACCESS_KEY = saved;
      await store.close();
    }
  }, 60_000);

  it("runs exactly one mon, mgr, OSD and radosgw, all alive", () => {
    const pids = gw().pids();
    expect(pids.map((p) => p.name).sort()).toEqual(["ceph-mgr", "ceph-mon", "ceph-osd", "radosgw"]);
    for (const p of pids) expect(() => process.kill(p.pid, 0)).not.toThrow();
  });

  it("stop() ends exactly the processes start() launched", async () => {
    const dir = mkdtempSync(join(tmpdir(), "rvm-rgw2-"));
    try {
      const other = await startRadosgw({ dir, memstore: true });
      const pids = other.pids().map((p: { pid: number }) => p.pid);
      await other.stop();
      for (const pid of pids) expect(() => process.kill(pid, 0)).toThrow();
      // The file's own gateway is untouched.
      for (const p of gw().pids()) expect(() => process.kill(p.pid, 0)).not.toThrow();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);
});
