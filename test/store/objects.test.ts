// S3ObjectStore against a real radosgw: its direct GETs (the SDK's signer and HTTP handler
// without the client's middleware stack) answer as the client does, fall back to the client
// for anything but a body or a 404 (errors as before: one line, bucket and key, no secret),
// and preconnect finds the endpoint the SDK resolves from a profile's endpoint_url, gives the
// first GETs a connection each and `opened` waits for the new ones to open. With the
// store configured whole by the environment the GETs go without loading the client at all
// (lightConfig: the SDK's signer, handler and environment credentials from dist/s3-get.cjs),
// and read and fail exactly as through the client.

import { execFileSync } from "node:child_process";
import { subscribe, unsubscribe } from "node:diagnostics_channel";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import type { Socket } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { lightConfig, S3ObjectStore, type GetTrace } from "../../src/store/objects.js";
import { freshBucket, haveRadosgw, useRadosgw } from "./rgw.js";

const ROOT = resolve(__dirname, "../..");

/** Runs `fn` with environment variables set (undefined: removed), then restores them. */
async function withEnv<T>(vars: Record<string, string | undefined>, fn: () => Promise<T>): Promise<T> {
  const saved: Record<string, string | undefined> = {};
  for (const [k, v] of Object.entries(vars)) {
    saved[k] = process.env[k];
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
  try {
    return await fn();
  } finally {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
}

/** A fresh bucket with object `p/o` = `text`. */
async function bucketWith(text: string): Promise<string> {
  const bucket = freshBucket();
  const store = S3ObjectStore.fromUrl(`s3://${bucket}/p`);
  await store.ensure();
  await store.put("o", Buffer.from(text));
  await store.close();
  return bucket;
}

/** The start of a child process's script: dist's objects.js imported, its S3ObjectStore in scope. */
const IMPORT_OBJECTS = `import(${JSON.stringify(join(ROOT, "dist/src/store/objects.js"))}).then(async ({ S3ObjectStore }) => {`;

describe.skipIf(!haveRadosgw)("S3ObjectStore (radosgw)", () => {
  const gw = useRadosgw();

  it("answers GETs directly, byte for byte as the client does", async () => {
    const url = `s3://${freshBucket()}/a prefix/with+odd=chars`;
    const store = S3ObjectStore.fromUrl(url);
    await store.ensure();
    const body = Buffer.alloc(5 * 4096 + 123);
    for (let i = 0; i < body.length; i++) body[i] = (i * 13 + (i >> 8)) & 0xff;
    await store.put("packs/p 1.pack", body);
    await store.put("small", Buffer.from("hello"));
    const viaClient = await withEnv({ RVM_S3_DIRECT: "0" }, async () => S3ObjectStore.fromUrl(url));
    const viaSdk = S3ObjectStore.fromUrl(url);
    // The two stores read alike (the client's store reads RVM_S3_DIRECT at its first GET).
    const reads = async (s: S3ObjectStore) => [
      Buffer.from((await s.get("packs/p 1.pack"))!),
      Buffer.from(await s.getRange("packs/p 1.pack", 4096, 8192)),
      Buffer.from(await s.getRange("packs/p 1.pack", body.length - 1, 1)),
      await s.get("none"),
      await s.getRange("none", 0, 10).catch((e: Error) => e.message),
      await s.getRange("small", 0, 10).catch((e: Error) => e.message),
      await s.getRange("small", 100, 10).catch((e: Error) => e.message),
      // A range as the parts the socket gave (a restore's working set reads so), joined here.
      Buffer.concat(await s.getRangeParts("packs/p 1.pack", 100, body.length - 200)),
      await s.getRangeParts("small", 0, 10).catch((e: Error) => e.message),
    ];
    const direct = await reads(store);
    const client = await withEnv({ RVM_S3_DIRECT: "0" }, () => reads(viaClient));
    expect(direct[0]).toEqual(body);
    expect(direct[1]).toEqual(body.subarray(4096, 4096 + 8192));
    expect(direct[2]).toEqual(body.subarray(body.length - 1));
    expect(direct[3]).toBeUndefined();
    expect(direct[4]).toMatch(/^object store: s3:\/\/.*\/none is missing$/);
    expect(direct[5]).toMatch(/small is truncated \(5 of 10 bytes at 0\)$/);
    // A 416 is not the direct path's: the client sends it again and reports the S3 code.
    expect(direct[6]).toMatch(/^object store: cannot read s3:\/\/.*small: InvalidRange, HTTP 416$/);
    expect(direct[7]).toEqual(body.subarray(100, body.length - 100));
    expect(direct[8]).toMatch(/small is truncated \(5 of 10 bytes at 0\)$/);
    expect(direct).toEqual(client);
    expect(store.directGets).toBe(8);
    expect(viaClient.directGets).toBe(0);
    // The environment here (AWS_ENDPOINT_URL, AWS_REGION, the keys) configures the store whole:
    // its direct GETs were made without the client; with RVM_S3_LIGHT=0 through the client's
    // signer, endpoint rules and credentials chain, alike.
    expect(store.light).toBe(true);
    expect(await withEnv({ RVM_S3_LIGHT: "0" }, () => reads(viaSdk))).toEqual(client);
    expect(viaSdk.light).toBe(false);
    expect(viaSdk.directGets).toBe(8);
    await store.close();
    await viaClient.close();
    await viaSdk.close();
  }, 60_000);

  it("times a GET's steps (GetTrace: sent, headers, first and last body byte), directly and through the client", { timeout: 120_000 }, async () => {
    const url = `s3://${freshBucket()}/t`;
    const store = S3ObjectStore.fromUrl(url);
    await store.ensure();
    const body = Buffer.alloc(512 << 10);
    for (let i = 0; i < body.length; i++) body[i] = (i * 7 + (i >> 10)) & 0xff;
    await store.put("big", body);
    await store.close();
    for (const direct of ["1", "0"]) {
      await withEnv({ RVM_S3_DIRECT: direct }, async () => {
        const s = S3ObjectStore.fromUrl(url);
        const trace: GetTrace = {};
        const t0 = performance.now();
        const parts = await s.getRangeParts("big", 1000, body.length - 2000, trace);
        const t1 = performance.now();
        expect(Buffer.concat(parts)).toEqual(body.subarray(1000, body.length - 1000));
        expect(parts.length).toBeGreaterThan(1); // 512 KiB: several parts, the first byte's time taken at the first
        const steps = [t0, trace.sent!, trace.headers!, trace.firstByte!, trace.lastByte!, t1];
        for (let i = 1; i < steps.length; i++) expect(steps[i]).toBeGreaterThanOrEqual(steps[i - 1]);
        const whole: GetTrace = {};
        expect(Buffer.from((await s.get("big", whole))!)).toEqual(body);
        expect(whole.lastByte!).toBeGreaterThanOrEqual(whole.headers!);
        expect(whole.headers!).toBeGreaterThanOrEqual(whole.sent!);
        await s.close();
      });
    }
  });

  it("reports a refused GET as the client does: one line, the key, no secret", async () => {
    const bucket = freshBucket();
    const good = S3ObjectStore.fromUrl(`s3://${bucket}/x`);
    await good.ensure();
    await good.put("k", Buffer.from("data"));
    await good.close();
    const secret = gw().secretAccessKey;
    await withEnv({ AWS_SECRET_ACCESS_KEY: "wrong" + secret.slice(5) }, async () => {
      const store = S3ObjectStore.fromUrl(`s3://${bucket}/x`);
      for (const read of [() => store.get("k"), () => store.getRange("k", 0, 2)]) {
        const err = await read().then(() => undefined, (e: Error) => e);
        expect(err?.message).toMatch(new RegExp(`^object store: cannot read s3://${bucket}/x/k: access denied \\((SignatureDoesNotMatch|AccessDenied)\\)$`));
        expect(err?.message).not.toContain(secret.slice(5));
      }
      expect(store.light).toBe(true);
      expect(store.directGets).toBe(0);
      await store.close();
    });
  }, 60_000);

  it("a store that stops answering: each request fails after its timeout, as a transient fault (not a hang)", async () => {
    const bucket = freshBucket();
    // Set up and checked with the default timeout (under load a fresh bucket's first requests may
    // take longer than 1.5 s); the requests while the store is paused with a 1.5 s one.
    const setup = S3ObjectStore.fromUrl(`s3://${bucket}/t`);
    await setup.ensure();
    await setup.put("k", Buffer.from("data"));
    const store = S3ObjectStore.fromUrl(`s3://${bucket}/t`, { requestTimeoutMs: 1500, maxAttempts: 1 });
    gw().pause();
    try {
      // Before: the handler only logged a warning at the timeout and the request waited for the
      // store (the GET below until resume(): the restore's deadline never came).
      for (const request of [() => store.get("k"), () => store.getRange("k", 0, 2), () => store.put("k2", Buffer.from("x"))]) {
        const t = performance.now();
        const err = await Promise.race([request().then(() => undefined, (e: Error & { transient?: boolean }) => e), new Promise<string>((r) => setTimeout(() => r("no answer in 20 s"), 20_000))]);
        expect(err).toBeInstanceOf(Error);
        expect((err as { transient?: boolean }).transient).toBe(true);
        expect(performance.now() - t).toBeLessThan(15_000);
      }
    } finally {
      gw().resume();
    }
    expect(Buffer.from((await setup.get("k"))!).toString()).toBe("data");
    await store.close();
    await setup.close();
  }, 120_000);

  it("preconnects to the endpoint a profile's endpoint_url names (no AWS_ENDPOINT_URL)", async () => {
    const bucket = freshBucket();
    const setup = S3ObjectStore.fromUrl(`s3://${bucket}`);
    await setup.ensure();
    await setup.put("o", Buffer.from("profile"));
    await setup.close();
    const dir = mkdtempSync(join(tmpdir(), "rvm-profile-"));
    const config = join(dir, "config");
    // With AWS_PROFILE the SDK takes the profile's credentials, not the environment's.
    writeFileSync(config, `[profile rvmtest]\nendpoint_url = ${gw().endpoint}\n` +
      `aws_access_key_id = ${gw().accessKeyId}\naws_secret_access_key = ${gw().secretAccessKey}\n`, { mode: 0o600 });
    const heads: string[] = [];
    const seen = ({ request }: { request: { method: string; host: string; path: string } }) => {
      if (request.method === "HEAD") heads.push(`${request.host}${request.path}`);
    };
    subscribe("http.client.request.start", seen as (m: unknown) => void);
    try {
      await withEnv({ AWS_ENDPOINT_URL: undefined, AWS_ENDPOINT_URL_S3: undefined, AWS_ACCESS_KEY_ID: undefined, AWS_SECRET_ACCESS_KEY: undefined, AWS_CONFIG_FILE: config, AWS_PROFILE: "rvmtest" }, async () => {
        const store = S3ObjectStore.fromUrl(`s3://${bucket}`);
        store.preconnect(3);
        expect(Buffer.from((await store.get("o"))!).toString()).toBe("profile");
        expect(store.directGets).toBe(1);
        // A profile: its keys and endpoint come through the client's resolution, not lightConfig.
        expect(store.light).toBe(false);
        const host = new URL(gw().endpoint).hostname;
        expect(heads).toEqual([`${host}/${bucket}`, `${host}/${bucket}`, `${host}/${bucket}`]);
        await store.close();
      });
    } finally {
      unsubscribe("http.client.request.start", seen as (m: unknown) => void);
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);

  it("gives the first GETs a preconnected connection each, and waits for new connections to open", async () => {
    const bucket = await bucketWith("0123456789abcdef");
    const sockets: Socket[] = [];
    const made = ({ socket }: { socket: Socket }) => void sockets.push(socket);
    subscribe("net.client.socket", made as (m: unknown) => void);
    try {
      const s = S3ObjectStore.fromUrl(`s3://${bucket}/p`);
      s.preconnect(2);
      expect(gw().endpoint).toMatch(/^http:/);
      expect(sockets.length).toBe(2);
      // Sent together before the HEADs are answered: each waits for a connection of its own.
      const [a, none] = await Promise.all([s.get("o"), s.get("none")]);
      expect(Buffer.from(a!).toString()).toBe("0123456789abcdef");
      expect(none).toBeUndefined();
      expect(sockets.length).toBe(2);
      // Four at once from an I/O callback (the answer to a GET, as a restore's first reads after
      // its manifest): one or two on the open connections, the others on new ones, which open in
      // the event loop's next I/O phase, after setImmediate: opened() waits for them.
      await s.get("o");
      const reads = [0, 4, 8, 12].map((o) => s.getRange("o", o, 4));
      await new Promise((r) => setImmediate(r));
      expect(sockets.length).toBeGreaterThan(2);
      expect(sockets.filter((x) => x.connecting).length).toBeGreaterThan(0);
      await s.opened(5000);
      expect(sockets.filter((x) => x.connecting).length).toBe(0);
      expect(Buffer.concat(await Promise.all(reads)).toString()).toBe("0123456789abcdef");
      await s.close();
    } finally {
      unsubscribe("net.client.socket", made as (m: unknown) => void);
    }
  }, 60_000);

  it("reads from an http endpoint without loading Node's https and tls (light path)", async () => {
    const bucket = await bucketWith("over plain http");
    const script = `${IMPORT_OBJECTS}
      const s = S3ObjectStore.fromUrl("s3://${bucket}/p");
      s.preconnect(2);
      const b = Buffer.from(await s.getRange("o", 5, 5)).toString() + Buffer.from(await s.get("o")).toString().length;
      const none = await s.get("none");
      const tls = process.moduleLoadList.filter((m) => /^NativeModule (https|tls)$/.test(m)).length;
      const fsp = process.moduleLoadList.filter((m) => m === "NativeModule fs/promises").length;
      console.log(JSON.stringify({ b, none: none === undefined, light: s.light, direct: s.directGets, tls, fsp }));
      await s.close();
    });`;
    expect(gw().endpoint).toMatch(/^http:/);
    const run = (env: Record<string, string>) => JSON.parse(execFileSync(process.execPath, ["-e", script], { env: { ...process.env, ...env }, encoding: "utf8" }));
    // Nor fs/promises (and the readline and fs watcher modules it loads), which the SDK's shared
    // config file loader imports at its top (the ES module loader of `node -e import()` loads
    // their internal parts itself: the public module is the check).
    expect(run({})).toEqual({ b: "plain15", none: true, light: true, direct: 3, tls: 0, fsp: 0 });
    // Through the client (its bundle loads https and fs/promises at its top): the check sees them.
    expect(run({ RVM_S3_LIGHT: "0" })).toEqual({ b: "plain15", none: true, light: false, direct: 3, tls: 2, fsp: 1 });
  }, 60_000);

  it("makes direct GETs with the SDK's packages too (RVM_SDK_BUNDLE=0)", async () => {
    const bucket = await bucketWith("from the packages");
    const script = `${IMPORT_OBJECTS}
      const s = S3ObjectStore.fromUrl("s3://${bucket}/p");
      const b = Buffer.from(await s.getRange("o", 5, 8)).toString();
      console.log(JSON.stringify({ b, direct: s.directGets }));
      await s.close();
    });`;
    const out = execFileSync(process.execPath, ["-e", script], { env: { ...process.env, RVM_SDK_BUNDLE: "0" }, encoding: "utf8" });
    expect(JSON.parse(out)).toEqual({ b: "the pack", direct: 1 });
  }, 60_000);
});

describe("lightConfig", () => {
  it("finds the client's own endpoint without the client, only when the environment says it all", async () => {
    const { S3Client, GetObjectCommand } = await import("@aws-sdk/client-s3");
    const { getEndpointFromInstructions } = await import("@smithy/core/endpoints");
    const base = { AWS_ACCESS_KEY_ID: "k", AWS_SECRET_ACCESS_KEY: "s", AWS_REGION: "eu-west-3", AWS_PROFILE: undefined, AWS_ENDPOINT_URL_S3: undefined,
      AWS_USE_FIPS_ENDPOINT: undefined, AWS_USE_DUALSTACK_ENDPOINT: undefined, AWS_IGNORE_CONFIGURED_ENDPOINT_URLS: undefined, RVM_S3_LIGHT: undefined };
    for (const endpoint of ["http://127.0.0.1:7480", "http://127.0.0.1:7480/", "https://s3.example.com/base", "https://s3.example.com/base/", "https://[::1]:9000/a/b"]) {
      for (const bucket of ["rvm", "my.bucket-1"]) {
        await withEnv({ ...base, AWS_ENDPOINT_URL: endpoint }, async () => {
          const c = new S3Client({ forcePathStyle: true });
          const ep = await getEndpointFromInstructions({ Bucket: bucket, Key: "snapshots" }, GetObjectCommand, c.config);
          const scheme = (ep.properties?.authSchemes as { name: string; signingRegion: string }[])[0];
          const light = lightConfig(bucket);
          expect(light?.url.href).toBe(ep.url.href);
          expect(light?.region).toBe(scheme.signingRegion);
          expect(scheme.name).toBe("sigv4");
          c.destroy();
        });
      }
    }
    // Anything the client would resolve otherwise, or take from elsewhere: not without it.
    const simple = { ...base, AWS_ENDPOINT_URL: "http://127.0.0.1:7480" };
    expect(await withEnv(simple, async () => lightConfig("b")?.url.href)).toBe("http://127.0.0.1:7480/b");
    for (const change of [{ AWS_PROFILE: "p" }, { AWS_REGION: undefined }, { AWS_ACCESS_KEY_ID: undefined }, { AWS_SECRET_ACCESS_KEY: undefined },
      { AWS_ENDPOINT_URL: undefined }, { AWS_ENDPOINT_URL: "ftp://x" }, { AWS_ENDPOINT_URL: "http://x/?q=1" }, { AWS_USE_FIPS_ENDPOINT: "true" },
      { AWS_USE_DUALSTACK_ENDPOINT: "true" }, { AWS_IGNORE_CONFIGURED_ENDPOINT_URLS: "true" }, { RVM_S3_LIGHT: "0" }, { RVM_SDK_BUNDLE: "0" }, { RVM_S3_DIRECT: "0" }]) {
      expect(await withEnv({ ...simple, ...change }, async () => lightConfig("b"))).toBeUndefined();
    }
    expect(await withEnv({ ...simple, AWS_ENDPOINT_URL_S3: "https://s3.other:1/x" }, async () => lightConfig("b")?.url.href)).toBe("https://s3.other:1/x/b");
  }, 60_000);
});
