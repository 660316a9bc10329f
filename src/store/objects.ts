// Object stores: the small interface the content-addressed snapshot store (cas.ts) needs, and
// its S3 implementation over the AWS SDK (any S3-compatible server: Ceph radosgw, MinIO, AWS).
//
// Endpoint, region and credentials follow the AWS conventions, resolved by the SDK itself:
// AWS_ENDPOINT_URL / AWS_ENDPOINT_URL_S3, AWS_REGION, AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY /
// AWS_SESSION_TOKEN, AWS_PROFILE and the shared config and credentials files (~/.aws/config,
// ~/.aws/credentials). rvm never prints, logs or stores a credential: errors carry the S3 error
// code, the bucket and the key, nothing else.
//
// A browser build implements ObjectStore over its own storage (OPFS, IndexedDB).

import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { finished, Readable } from "node:stream";
import { fileURLToPath } from "node:url";
import { loadCachedBundle } from "../code-cache.cjs";
import { RvmError, UsageError } from "../errors.js";

/** An object store as the snapshot store uses it: whole-object put, ranged get, list, delete. */
export interface ObjectStore {
  /** A human-readable location (`s3://bucket/prefix`), never with credentials. */
  readonly url: string;
  put(key: string, body: Uint8Array): Promise<void>;
  /** The whole object, or undefined when there is none. */
  get(key: string, trace?: GetTrace): Promise<Uint8Array | undefined>;
  /** `length` bytes from `offset` (exactly; a short object is an error). */
  getRange(key: string, offset: number, length: number): Promise<Uint8Array>;
  /** Like getRange, but the bytes in the parts they arrived in (not joined), where the store can. */
  getRangeParts?(key: string, offset: number, length: number, trace?: GetTrace): Promise<Uint8Array[]>;
  /** Keys under `prefix` with their size and last-modified time. */
  list(prefix: string): Promise<{ key: string; size: number; modified: number }[]>;
  delete(keys: string[]): Promise<void>;
  /** Makes sure the bucket (or folder) exists. */
  ensure(): Promise<void>;
}

/**
 * When a GET's steps happened (performance.now()), for the restore timeline's record of its
 * reads: filled in by stores that can tell (S3: sent to the HTTP handler, the answer's headers,
 * the body's first and last bytes); the last attempt's where the request was retried.
 */
export interface GetTrace {
  sent?: number;
  headers?: number;
  firstByte?: number;
  lastByte?: number;
}

/** An object-store operation that failed (after the client's own retries). */
export class StoreError extends RvmError {
  constructor(
    message: string,
    /** True for faults that may pass (network, 5xx, throttling): worth retrying. */
    readonly transient: boolean,
  ) {
    super(message);
    this.name = "StoreError";
  }
}

export interface S3Location {
  bucket: string;
  /** Key prefix, "" or ending in "/". */
  prefix: string;
}

/** Parses `s3://BUCKET[/PREFIX]`. */
export function parseS3Url(url: string): S3Location {
  const m = /^s3:\/\/([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(?:\/(.*))?$/.exec(url);
  if (!m) throw new UsageError(`bad object store URL "${url}" (expected s3://BUCKET/PREFIX, bucket 3-63 of a-z 0-9 . -)`);
  let prefix = (m[2] ?? "").replace(/\/+$/, "");
  if (prefix.split("/").some((p) => p === "." || p === "..")) throw new UsageError(`bad object store prefix "${prefix}"`);
  if (prefix) prefix += "/";
  return { bucket: m[1], prefix };
}

type S3Module = typeof import("@aws-sdk/client-s3");
/**
 * What rvm uses of the SDK: the S3 client and commands, the Node HTTP handler, and for direct
 * GETs (S3ObjectStore.directGet) the SDK's SigV4 signer, its HTTP request, its key escaping and
 * its endpoint resolution.
 */
type SdkParts = Pick<S3Module, "S3Client" | "GetObjectCommand" | "PutObjectCommand" | "ListObjectsV2Command" | "DeleteObjectCommand" |
  "HeadBucketCommand" | "CreateBucketCommand"> & Pick<typeof import("@smithy/node-http-handler"), "NodeHttpHandler"> &
  Pick<typeof import("@smithy/signature-v4"), "SignatureV4"> &
  Pick<typeof import("@smithy/core/protocols"), "HttpRequest" | "extendedEncodeURIComponent"> &
  Pick<typeof import("@smithy/core/endpoints"), "getEndpointFromInstructions">;
let s3module: Promise<SdkParts> | undefined;
const requireCjs = createRequire(import.meta.url);

/**
 * dist/s3-sdk.cjs: the parts of the SDK rvm uses, bundled at build time (scripts/build-s3.js)
 * from the SDK's ES modules, and dist/s3-sdk.cjs.cache, V8's compiled code of it. Found from
 * dist/src/cli.bundle.cjs, dist/src/store/objects.js and (tests) src/store/objects.ts.
 */
function sdkBundle(): string | undefined {
  for (const rel of ["../s3-sdk.cjs", "../../s3-sdk.cjs", "../../dist/s3-sdk.cjs"]) {
    const f = fileURLToPath(new URL(rel, import.meta.url));
    if (existsSync(f)) return f;
  }
  return undefined;
}

/**
 * Loads the SDK bundle `file` with V8's code cache next to it (`produce`: writes that cache,
 * after making a client and one request, so the functions a restore runs are in it).
 */
export function loadSdkBundle(file: string, produce?: (parts: SdkParts) => Promise<void>): SdkParts | Promise<SdkParts> {
  const b = loadCachedBundle<SdkParts>(file, { useCache: !produce });
  if (!produce) return b.exports;
  // The S3 object stores `produce` makes use this bundle: their requests train its cache.
  s3module = Promise.resolve(b.exports);
  return produce(b.exports).then(() => {
    b.writeCache();
    return b.exports;
  });
}

/** The SDK, loaded on first use (rvm without an object store does not pay for it). */
function sdk(): Promise<SdkParts> {
  // The SDK warns on every process about its Node support plans; rvm says what it supports.
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= "true";
  // Ceph 16 and other S3 servers refuse streamed uploads with the SDK's default checksums.
  process.env.AWS_REQUEST_CHECKSUM_CALCULATION ??= "WHEN_REQUIRED";
  process.env.AWS_RESPONSE_CHECKSUM_VALIDATION ??= "WHEN_REQUIRED";
  // On a restore's critical path. The build's bundle with its code cache (measured under load:
  // 124-236 ms instead of 373-453 ms for require of the packages); without the bundle, require,
  // not import(): the SDK is CommonJS, and Node's ESM loader parses every module of it for its
  // exports on top (0.32 s instead of 0.54 s).
  s3module ??= (async () => {
    const bundle = process.env.RVM_SDK_BUNDLE === "0" ? undefined : sdkBundle();
    if (bundle) return loadSdkBundle(bundle) as SdkParts;
    const protocols = requireCjs("@smithy/core/protocols") as SdkParts;
    return {
      ...requireCjs("@aws-sdk/client-s3") as S3Module,
      NodeHttpHandler: (requireCjs("@smithy/node-http-handler") as SdkParts).NodeHttpHandler,
      SignatureV4: (requireCjs("@smithy/signature-v4") as SdkParts).SignatureV4,
      HttpRequest: protocols.HttpRequest,
      extendedEncodeURIComponent: protocols.extendedEncodeURIComponent,
      getEndpointFromInstructions: (requireCjs("@smithy/core/endpoints") as SdkParts).getEndpointFromInstructions,
    };
  })();
  return s3module;
}

/**
 * What a GET needs and nothing else, for a store whose configuration the environment gives
 * whole (lightConfig): the SDK's SigV4 signer, its HTTP request and handler, its SHA-256 (the
 * client's own `sha256` in Node) and its environment credentials provider (the first of the
 * client's default chain, the one it takes when AWS_PROFILE is not set). dist/s3-get.cjs
 * (scripts/build-s3.js), 45 KB, against 433 KB for the client's bundle: loading the client cost a
 * restore 50-75 ms of CPU before its first instruction, on the thread the guest then needs.
 */
type GetParts = Pick<SdkParts, "SignatureV4" | "HttpRequest" | "extendedEncodeURIComponent" | "NodeHttpHandler"> &
  Pick<typeof import("@smithy/core/checksum"), "Sha256"> & Pick<typeof import("@aws-sdk/credential-provider-env"), "fromEnv">;
let getModule: GetParts | undefined;

/** Loads dist/s3-get.cjs with its code cache (`produce`: writes that cache after `produce` ran). */
export function loadGetBundle(file: string, produce?: () => Promise<void>): GetParts | Promise<GetParts> {
  const b = loadCachedBundle<GetParts>(file, { useCache: !produce });
  getModule = b.exports;
  if (!produce) return b.exports;
  return produce().then(() => {
    b.writeCache();
    return b.exports;
  });
}

function getParts(): GetParts | undefined {
  if (getModule) return getModule;
  const f = sdkBundle()?.replace(/s3-sdk\.cjs$/, "s3-get.cjs");
  return f && existsSync(f) ? loadGetBundle(f) as GetParts : undefined;
}

/**
 * The endpoint the environment names for S3, as the SDK takes it: AWS_ENDPOINT_URL_S3, else
 * AWS_ENDPOINT_URL (an empty one counts as not set), none if AWS_IGNORE_CONFIGURED_ENDPOINT_URLS
 * is true. Read without the SDK (preconnect, lightConfig).
 */
function envEndpoint(): string | undefined {
  const e = process.env;
  if (e.AWS_IGNORE_CONFIGURED_ENDPOINT_URLS === "true") return undefined;
  return e.AWS_ENDPOINT_URL_S3 || e.AWS_ENDPOINT_URL;
}

/**
 * The endpoint and region of a direct GET when the environment gives them and the credentials
 * and nothing else could change them, so that the client (its provider chain, shared config
 * files, endpoint rules) need not be loaded to know them: AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL
 * (http or https, no query), AWS_REGION, AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, no
 * AWS_PROFILE (the SDK then takes the profile's credentials and region), no FIPS or dual-stack
 * endpoint, AWS_IGNORE_CONFIGURED_ENDPOINT_URLS not set. The URL is the client's for a custom
 * endpoint with path-style addressing: the endpoint's path with a trailing slash, then the
 * bucket (test/store/objects.test.ts compares it with the client's endpoint rules). Otherwise
 * undefined, and the client resolves them. RVM_S3_LIGHT=0 (or RVM_SDK_BUNDLE=0, RVM_S3_DIRECT=0)
 * turns this off.
 */
export function lightConfig(bucket: string): { url: URL; region: string } | undefined {
  const e = process.env;
  if (e.RVM_S3_LIGHT === "0" || e.RVM_SDK_BUNDLE === "0" || e.RVM_S3_DIRECT === "0") return undefined;
  if (e.AWS_PROFILE || !e.AWS_ACCESS_KEY_ID || !e.AWS_SECRET_ACCESS_KEY || !e.AWS_REGION) return undefined;
  for (const k of ["AWS_USE_FIPS_ENDPOINT", "AWS_USE_DUALSTACK_ENDPOINT", "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS"]) {
    if (e[k] !== undefined && e[k] !== "false") return undefined;
  }
  const endpoint = envEndpoint();
  if (!endpoint) return undefined;
  let url: URL;
  try {
    url = new URL(endpoint);
  } catch {
    return undefined;
  }
  if ((url.protocol !== "http:" && url.protocol !== "https:") || url.search || url.hash || url.username || url.password) return undefined;
  const path = url.pathname.endsWith("/") ? url.pathname : url.pathname + "/";
  return { url: new URL(`${url.protocol}//${url.host}${path}${bucket}`), region: e.AWS_REGION };
}

function describe(e: unknown, what: string): StoreError {
  const err = e as { name?: string; code?: string; message?: string; $metadata?: { httpStatusCode?: number } };
  const status = err.$metadata?.httpStatusCode;
  const code = err.name ?? err.code ?? "error";
  const transient = status === undefined || status >= 500 || status === 429 || status === 408 ||
    /ECONNREFUSED|ECONNRESET|ETIMEDOUT|EPIPE|TimeoutError|socket|timeout/i.test(`${code} ${err.message ?? ""}`);
  let reason = code;
  if (code === "CredentialsProviderError") reason = "no credentials (set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE)";
  else if (status === 403) reason = `access denied (${code})`;
  else if (/ECONNREFUSED/.test(`${code} ${err.message ?? ""}`)) reason = "connection refused";
  else if (status) reason = `${code}, HTTP ${status}`;
  return new StoreError(`object store: ${what}: ${reason}`, transient);
}

/**
 * A GET's body as the chunks it arrived in (Node's response stream, a Readable: one Buffer per
 * socket read, ~64 KiB at most), not joined: a restore's working set is read as such parts
 * (getRangeParts) and inflated from them, and joining them cost ~20 ms of the hart's thread per
 * working set (fresh memory: ~3 ms of page faults per MiB here). The SDK's transformToByteArray
 * pipes them through a Writable and joins them in a JavaScript loop into zeroed memory: on a
 * restore's working set (~14 MiB of runs) that was 40-60 ms of the hart's thread before the
 * guest answered (--cpu-prof). Other bodies (a browser's web stream, a Blob) go to the SDK's own.
 */
async function bodyParts(body: { transformToByteArray(): Promise<Uint8Array> }, trace?: GetTrace): Promise<Uint8Array[]> {
  if (!(body instanceof Readable)) {
    const b = await body.transformToByteArray();
    if (trace) trace.firstByte = trace.lastByte = performance.now();
    return [b];
  }
  // A 'data' listener, not `for await`: no promise per chunk. `finished` reports an error or a
  // body cut short (the connection closed before its end) as the async iterator does.
  const chunks: Buffer[] = [];
  const stream = body as Readable;
  stream.on("data", (c: Buffer) => {
    if (trace && !chunks.length) trace.firstByte = performance.now();
    chunks.push(c);
  });
  await new Promise<void>((resolve, reject) => finished(stream, (e) => (e ? reject(e) : resolve())));
  if (trace) trace.lastByte = performance.now();
  return chunks;
}

/** Parts joined into one buffer (with one native copy; one part as is). */
function joined(parts: Uint8Array[]): Uint8Array {
  return parts.length === 1 ? parts[0] : Buffer.concat(parts);
}

export interface S3Options {
  /** Per-request timeout in ms (a stalled server is a transient fault, not a hang). */
  requestTimeoutMs?: number;
  /** The SDK's own attempts per request (rvm's restore adds its own retries on top). */
  maxAttempts?: number;
}

// Node's HTTP modules (with net and tls, ~8 ms of CPU) are loaded on first use, not with rvm's
// modules: a run or a local restore does not need them.
const http = () => requireCjs("node:http") as typeof import("node:http");
const https = () => requireCjs("node:https") as typeof import("node:https");

type Handler = InstanceType<SdkParts["NodeHttpHandler"]>;

/** What a direct GET needs (S3ObjectStore.directGet), resolved once per store. */
interface Direct {
  m: Pick<SdkParts, "HttpRequest" | "extendedEncodeURIComponent">;
  handler: Handler;
  signer: InstanceType<SdkParts["SignatureV4"]>;
  /** The bucket's endpoint as the SDK resolves it (path-style: ENDPOINT/BUCKET). */
  url: URL;
  /** The client's clock-skew correction (the SDK updates it from a server's answers). */
  clockOffset: () => number;
}

/** The light path's https agent at an http endpoint (S3ObjectStore.handler): never used. */
const NO_TLS_AGENT = { destroy() {} } as unknown as import("node:https").Agent;

/** A direct GET that did not end in a body or a 404: the request goes through the client. */
const VIA_CLIENT = Symbol("via client");

/** An S3 bucket and prefix, through the AWS SDK. */
export class S3ObjectStore implements ObjectStore {
  readonly url: string;
  private client: Promise<{ c: import("@aws-sdk/client-s3").S3Client; m: SdkParts; handler: Handler }> | undefined;
  private direct: Promise<Direct | undefined> | undefined;
  /** GETs answered without the client's middleware stack (tests). */
  directGets = 0;
  /** Whether those GETs go without the client (lightConfig), known at the first GET (tests). */
  light: boolean | undefined;
  /** The client once made (its clock-skew correction is the direct GETs' too). */
  private made: import("@aws-sdk/client-s3").S3Client | undefined;

  constructor(readonly location: S3Location, private readonly opts: S3Options = {}) {
    this.url = `s3://${location.bucket}/${location.prefix}`.replace(/\/$/, "");
  }

  static fromUrl(url: string, opts?: S3Options): S3ObjectStore {
    return new S3ObjectStore(parseS3Url(url), opts);
  }

  /**
   * The client's connections (keep-alive): made before the SDK, so that preconnect can fill them.
   * The https agent (and Node's https and tls modules) only when asked for: a store at an http
   * endpoint never loads them on its light path (lightConfig).
   */
  private agents: { http: import("node:http").Agent; readonly https: import("node:https").Agent; made(): import("node:https").Agent | undefined } | undefined;

  private agentsNow() {
    const agentOpts = { keepAlive: true, maxSockets: 16, noDelay: true };
    if (!this.agents) {
      let tls: import("node:https").Agent | undefined;
      this.agents = {
        http: new (http().Agent)(agentOpts),
        get https() {
          return (tls ??= new (https().Agent)(agentOpts));
        },
        made: () => tls,
      };
    }
    return this.agents;
  }

  /**
   * Opens `n` keep-alive connections to the endpoint, each with an unsigned HEAD of the bucket
   * (its answer, 403 or 200, does not matter): the first requests (a restore's manifest and hot
   * list, then the reads it sends while its machine is built: synchronous work, during which no
   * new connection can complete) then find connections open and leave at once, instead of after
   * the build. The endpoint is the one the SDK uses: AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL are
   * read here, before the SDK is loaded (the SDK takes them first too, unless
   * AWS_IGNORE_CONFIGURED_ENDPOINT_URLS); without them the connections are opened once the SDK
   * has resolved its endpoint (a profile's `endpoint_url`, AWS's own), as it loads for the first
   * request.
   */
  preconnect(n: number): void {
    if (this.client) return;
    const endpoint = envEndpoint();
    if (!endpoint) {
      this.resolved().then((r) => r && this.open(r.ep.url, r.ep.url.pathname, n), () => undefined);
      return;
    }
    let url: URL;
    try {
      url = new URL(endpoint);
    } catch {
      return; // the SDK reports a bad endpoint
    }
    this.open(url, `/${this.location.bucket}`, n);
  }

  private open(url: URL, path: string, n: number): void {
    const tls = url.protocol === "https:";
    if (!tls && url.protocol !== "http:") return;
    const agent = tls ? this.agentsNow().https : this.agentsNow().http;
    const gate = { free: 0, pending: n, waiting: [] as (() => void)[] };
    this.preconnected = gate;
    for (let i = 0; i < n; i++) {
      let done = false;
      const back = () => {
        if (done) return;
        done = true;
        gate.pending--;
        const next = gate.waiting.shift();
        if (next) next();
        else gate.free++;
      };
      const req = (tls ? https().request : http().request)({
        agent, method: "HEAD", host: url.hostname, port: url.port || undefined, path, timeout: 5000,
      }, (res) => {
        res.on("end", back);
        res.resume();
      });
      req.on("error", back);
      req.on("close", back);
      req.on("timeout", () => req.destroy());
      req.end();
    }
  }

  /**
   * preconnect's connections: those back in the pool and not yet taken (`free`), those whose
   * HEAD is still out (`pending`), and the GETs waiting for one. The first GETs each wait for a
   * connection of their own: sent at once, they came in the same turn of the event loop as the
   * SDK's load (synchronous), before the answers to the HEADs were read, found no free
   * connection and opened new ones (measured with `reusedSocket`); over TLS that is a handshake
   * on the way to the manifest. (Until session 11 every GET waited for the first HEAD only: the
   * manifest's GET, sent second, then opened a ninth connection, ~3-5 ms on its way.)
   */
  private preconnected: { free: number; pending: number; waiting: (() => void)[] } | undefined;

  /**
   * If preconnect's connections are still opening, a promise of one of them for this GET (no
   * promise otherwise: a GET that need not wait takes no turn of the microtask queue, so the
   * requests leave in the order they were made).
   */
  private preconnectedOne(): Promise<void> | undefined {
    const g = this.preconnected;
    if (!g) return undefined;
    if (g.free > 0) {
      g.free--;
      return undefined;
    }
    if (g.pending > g.waiting.length) return new Promise<void>((r) => g.waiting.push(r));
    if (g.pending === 0) this.preconnected = undefined; // all taken: later GETs open their own
    return undefined;
  }

  /**
   * Resolves once no connection of this store is still being opened, or after `ms`: a request
   * sent on a new connection is written only when it is open, which takes a turn of the event
   * loop (on loopback; a round trip on a network) that a synchronous build would hold back.
   */
  async opened(ms: number): Promise<void> {
    const agents = this.agents;
    if (!agents) return;
    const connecting: import("node:net").Socket[] = [];
    for (const a of [agents.http, agents.made()]) {
      for (const list of Object.values(a?.sockets ?? {})) {
        for (const s of list ?? []) if (s.connecting) connecting.push(s);
      }
    }
    if (connecting.length === 0) return;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.all(connecting.map((s) => new Promise<void>((r) => {
        const done = () => {
          s.off("connect", done);
          s.off("close", done);
          r();
        };
        s.on("connect", done);
        s.on("close", done);
      }))),
      new Promise<void>((r) => (timer = setTimeout(r, ms))),
    ]);
    clearTimeout(timer);
  }

  /**
   * The client, and the bucket's endpoint as its rules resolve it for a GET (path-style:
   * ENDPOINT/BUCKET; undefined where they do not resolve: the client's own request reports it).
   * Resolved once: preconnect's connections and direct GETs go to it.
   */
  private resolved() {
    this.endpointOf ??= this.connect().then(async (client) => {
      try {
        const ep = await client.m.getEndpointFromInstructions({ Bucket: this.location.bucket, Key: "snapshots" }, client.m.GetObjectCommand, client.c.config);
        return { ...client, ep };
      } catch {
        return undefined;
      }
    });
    return this.endpointOf;
  }

  private endpointOf: Promise<(Awaited<ReturnType<S3ObjectStore["connect"]>> & {
    ep: Awaited<ReturnType<SdkParts["getEndpointFromInstructions"]>>;
  }) | undefined> | undefined;

  private connect() {
    this.client ??= (async () => {
      const m = await sdk();
      const config = {
        // S3-compatible servers (radosgw, MinIO) are addressed by path; AWS accepts it too.
        forcePathStyle: true,
        maxAttempts: this.opts.maxAttempts ?? 3,
        requestHandler: this.handler(m.NodeHttpHandler),
      };
      let c = new m.S3Client(config);
      try {
        await c.config.region();
      } catch {
        // No region configured anywhere: S3-compatible servers do not care; AWS's default.
        c.destroy();
        c = new m.S3Client({ ...config, region: "us-east-1" });
      }
      this.made = c;
      return { c, m, handler: config.requestHandler };
    })();
    return this.client;
  }

  /** The per-request timeout (ms): the options', or 30 s. */
  private get timeoutMs(): number {
    return this.opts.requestTimeoutMs ?? 30_000;
  }

  /**
   * The HTTP handler of the client and of direct GETs: the store's agents, its timeouts.
   * `httpOnly`: every request of this handler goes to an http endpoint (the light path's), and
   * its https agent is a stand-in, so that Node's https is not loaded (the GET bundle loads it on
   * first use, scripts/build-s3.js); were it used, the request would fail and go through the
   * client, whose handler has the real one.
   */
  private handler(NodeHttpHandler: SdkParts["NodeHttpHandler"], httpOnly = false): Handler {
    const agents = this.agentsNow();
    const timeout = this.timeoutMs;
    return new NodeHttpHandler({
      connectionTimeout: Math.min(timeout, 5000),
      requestTimeout: timeout,
      // Without it this handler (@smithy/node-http-handler 4) only logs a warning when the
      // timeout passes and waits on: a store that stalls (accepts, never answers) would hold a
      // request, and a restore's StoreLink (which retries transient errors up to its deadline),
      // for as long as the store does.
      throwOnRequestTimeout: true,
      httpAgent: agents.http,
      httpsAgent: httpOnly ? NO_TLS_AGENT : agents.https,
    });
  }

  /**
   * A GET (whole or ranged) through the SDK's own parts without the client's middleware stack:
   * the request is built with the SDK's HttpRequest, signed by the SDK's SigV4 signer with the
   * client's credentials provider, region, hash and clock-skew offset, for the endpoint the
   * client's rules resolve, and sent by the client's HTTP handler (its agent, timeouts). A
   * restore makes ~40 GETs before its guest answers, on the hart's thread: the middleware stack
   * (endpoint rules, schema (de)serialization of GetObject's ~40 output headers, retry and
   * checksum middlewares) cost ~2-3 ms of CPU per GET, this ~1 ms (ARCHITECTURE.md). Only a
   * 200/206 (the body) or a 404 (undefined) is taken from it; anything else (an S3 error, a
   * redirect, a failed connection, an auth scheme other than SigV4) returns VIA_CLIENT and the
   * caller sends the request through the client, whose retries, clock-skew correction and error
   * parsing then apply as for every other request; a request that timed out is a transient
   * StoreError at once. RVM_S3_DIRECT=0 turns it off.
   */
  private async directGet(key: string, range?: string, trace?: GetTrace): Promise<Uint8Array[] | undefined | typeof VIA_CLIENT> {
    this.direct ??= (async (): Promise<Direct | undefined> => {
      if (process.env.RVM_S3_DIRECT === "0") return undefined;
      const light = lightConfig(this.location.bucket);
      const g = light && getParts();
      this.light = !!g;
      if (light && g) {
        // The same signer, hash, credentials and handler as the client's, without the client.
        const signer = new g.SignatureV4({ service: "s3", region: light.region, credentials: g.fromEnv(), sha256: g.Sha256, uriEscapePath: false });
        return { m: g, handler: this.handler(g.NodeHttpHandler, light.url.protocol === "http:"), signer, url: light.url, clockOffset: () => this.made?.config.systemClockOffset ?? 0 };
      }
      const r = await this.resolved();
      if (!r) return undefined;
      const { c, m, handler, ep } = r;
      try {
        const scheme = (ep.properties?.authSchemes as { name?: string; signingName?: string; signingRegion?: string }[] | undefined)?.[0];
        if (scheme && scheme.name !== "sigv4") return undefined;
        const region = scheme?.signingRegion ?? await c.config.region();
        const signer = new m.SignatureV4({
          service: scheme?.signingName ?? "s3", region, credentials: c.config.credentials, sha256: c.config.sha256,
          uriEscapePath: c.config.signingEscapePath,
        });
        return { m, handler, signer, url: ep.url, clockOffset: () => c.config.systemClockOffset ?? 0 };
      } catch {
        return undefined;
      }
    })();
    const d = await this.direct;
    if (!d) return VIA_CLIENT;
    const preconnected = this.preconnectedOne();
    if (preconnected) await preconnected;
    const { m, url } = d;
    const path = url.pathname.replace(/\/$/, "") + "/" + this.key(key).split("/").map(m.extendedEncodeURIComponent).join("/");
    const headers: Record<string, string> = { host: url.host };
    if (range) headers.range = range;
    let response: Awaited<ReturnType<Handler["handle"]>>["response"];
    try {
      const request = new m.HttpRequest({ protocol: url.protocol, hostname: url.hostname, port: url.port ? Number(url.port) : undefined, method: "GET", path, headers });
      const signed = await d.signer.sign(request, { signingDate: new Date(Date.now() + d.clockOffset()) });
      if (trace) trace.sent = performance.now();
      ({ response } = await d.handler.handle(signed as InstanceType<SdkParts["HttpRequest"]>));
      if (trace) trace.headers = performance.now();
    } catch (e) {
      // A server that did not answer within the request timeout: reported now (transient: the
      // restore's StoreLink retries it with backoff), not waited for again through the client.
      if ((e as { name?: string }).name === "TimeoutError") throw describe(e, `cannot read ${this.where(key)}`);
      return VIA_CLIENT;
    }
    const body = response.body as Readable;
    const status = response.statusCode;
    if (status === 200 || status === 206) {
      try {
        const parts = await bodyParts(body as unknown as { transformToByteArray(): Promise<Uint8Array> }, trace);
        this.directGets++;
        return parts;
      } catch {
        return VIA_CLIENT;
      }
    }
    body?.resume();
    if (status === 404) {
      this.directGets++;
      return undefined;
    }
    return VIA_CLIENT;
  }

  private key(k: string): string {
    return this.location.prefix + k;
  }

  private where(k: string): string {
    return `s3://${this.location.bucket}/${this.key(k)}`;
  }

  async put(key: string, body: Uint8Array): Promise<void> {
    const { c, m } = await this.connect();
    try {
      // The handler's request timeout runs until the answer's headers, so an upload's time counts:
      // a PUT gets the timeout plus its body at 64 KiB/s (a 4 MiB pack: +64 s), so that a slow
      // uplink is not taken for a stalled store.
      const requestTimeout = this.timeoutMs + Math.ceil(body.length / 64);
      await c.send(new m.PutObjectCommand({ Bucket: this.location.bucket, Key: this.key(key), Body: body, ContentLength: body.length }), { requestTimeout });
    } catch (e) {
      throw describe(e, `cannot write ${this.where(key)}`);
    }
  }

  async get(key: string, trace?: GetTrace): Promise<Uint8Array | undefined> {
    const direct = await this.directGet(key, undefined, trace);
    if (direct !== VIA_CLIENT) return direct && joined(direct);
    const { c, m } = await this.connect();
    try {
      if (trace) trace.sent = performance.now();
      const r = await c.send(new m.GetObjectCommand({ Bucket: this.location.bucket, Key: this.key(key) }));
      if (trace) trace.headers = performance.now();
      return joined(await bodyParts(r.Body!, trace));
    } catch (e) {
      const err = e as { name?: string; $metadata?: { httpStatusCode?: number } };
      if (err.name === "NoSuchKey" || err.$metadata?.httpStatusCode === 404) return undefined;
      throw describe(e, `cannot read ${this.where(key)}`);
    }
  }

  async getRange(key: string, offset: number, length: number): Promise<Uint8Array> {
    return joined(await this.getRangeParts(key, offset, length));
  }

  async getRangeParts(key: string, offset: number, length: number, trace?: GetTrace): Promise<Uint8Array[]> {
    const range = `bytes=${offset}-${offset + length - 1}`;
    const direct = await this.directGet(key, range, trace);
    if (direct === undefined) throw new StoreError(`object store: ${this.where(key)} is missing`, false);
    if (direct !== VIA_CLIENT) return this.checkLength(direct, key, offset, length);
    const { c, m } = await this.connect();
    let parts: Uint8Array[];
    try {
      if (trace) trace.sent = performance.now();
      const r = await c.send(new m.GetObjectCommand({
        Bucket: this.location.bucket, Key: this.key(key), Range: range,
      }));
      if (trace) trace.headers = performance.now();
      parts = await bodyParts(r.Body!, trace);
    } catch (e) {
      const err = e as { name?: string; $metadata?: { httpStatusCode?: number } };
      if (err.name === "NoSuchKey" || err.$metadata?.httpStatusCode === 404) throw new StoreError(`object store: ${this.where(key)} is missing`, false);
      throw describe(e, `cannot read ${this.where(key)}`);
    }
    return this.checkLength(parts, key, offset, length);
  }

  private checkLength(parts: Uint8Array[], key: string, offset: number, length: number): Uint8Array[] {
    let n = 0;
    for (const b of parts) n += b.length;
    if (n !== length) throw new StoreError(`object store: ${this.where(key)} is truncated (${n} of ${length} bytes at ${offset})`, false);
    return parts;
  }

  async list(prefix: string): Promise<{ key: string; size: number; modified: number }[]> {
    const { c, m } = await this.connect();
    const out: { key: string; size: number; modified: number }[] = [];
    let token: string | undefined;
    try {
      do {
        const r = await c.send(new m.ListObjectsV2Command({ Bucket: this.location.bucket, Prefix: this.key(prefix), ContinuationToken: token }));
        for (const o of r.Contents ?? []) {
          out.push({ key: o.Key!.slice(this.location.prefix.length), size: o.Size ?? 0, modified: o.LastModified?.getTime() ?? 0 });
        }
        token = r.IsTruncated ? r.NextContinuationToken : undefined;
      } while (token);
    } catch (e) {
      const err = e as { name?: string };
      if (err.name === "NoSuchBucket") return [];
      throw describe(e, `cannot list ${this.where(prefix)}`);
    }
    return out;
  }

  async delete(keys: string[]): Promise<void> {
    const { c, m } = await this.connect();
    for (let i = 0; i < keys.length; i += 1000) {
      const batch = keys.slice(i, i + 1000);
      try {
        // One by one: DeleteObjects needs Content-MD5 on some servers, a checksum the SDK leaves
        // out under WHEN_REQUIRED; a few deletes per gc are no cost.
        await Promise.all(batch.map((k) => c.send(new m.DeleteObjectCommand({ Bucket: this.location.bucket, Key: this.key(k) }))));
      } catch (e) {
        throw describe(e, `cannot delete in ${this.url}`);
      }
    }
  }

  async ensure(): Promise<void> {
    const { c, m } = await this.connect();
    try {
      await c.send(new m.HeadBucketCommand({ Bucket: this.location.bucket }));
      return;
    } catch (e) {
      const err = e as { name?: string; $metadata?: { httpStatusCode?: number } };
      if (err.$metadata?.httpStatusCode !== 404 && err.name !== "NotFound" && err.name !== "NoSuchBucket") {
        throw describe(e, `cannot reach bucket ${this.location.bucket}`);
      }
    }
    try {
      await c.send(new m.CreateBucketCommand({ Bucket: this.location.bucket }));
    } catch (e) {
      const err = e as { name?: string };
      if (err.name === "BucketAlreadyOwnedByYou") return;
      throw describe(e, `cannot create bucket ${this.location.bucket}`);
    }
  }

  /** Closes the client's connections (the process can then exit). */
  async close(): Promise<void> {
    const agents = this.agents;
    this.agents = undefined;
    this.direct = undefined;
    this.made = undefined;
    if (this.client) {
      const { c } = await this.client;
      c.destroy();
      this.client = undefined;
    }
    agents?.http.destroy();
    agents?.made()?.destroy();
  }
}
