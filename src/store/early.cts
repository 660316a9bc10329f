// A store restore's first requests, sent at the process's very start (bin/rvm.js), before rvm's
// own bundle loads: for `rvm restore NAME ... --snapshot-store s3://BUCKET/PREFIX` with a store
// the environment configures whole (lightConfig), the connections are opened and the snapshot's
// manifest (and, for a lazy restore, its hot list) are asked for while the bundle loads (~40-65
// ms of CPU), so that the object store's round trips overlap it instead of following it.
// StoreVm.prepare takes the answers (takeEarly); a request that did not end in a body or a 404 is
// sent again the usual way, through the store's retries. Nothing is trusted more for coming
// early: the manifest is unsealed (its digest checked) as any other.
//
// CommonJS (.cts), importing nothing of rvm's but code-cache.cts: bin/rvm.js requires it before
// the bundle. objects.ts takes lightConfig from here (one reading of the environment).

import { existsSync } from "node:fs";
import { join } from "node:path";
import { loadCachedBundle } from "../code-cache.cjs";

/**
 * The endpoint the environment names for S3, as the SDK takes it: AWS_ENDPOINT_URL_S3, else
 * AWS_ENDPOINT_URL (an empty one counts as not set), none if AWS_IGNORE_CONFIGURED_ENDPOINT_URLS
 * is true. Read without the SDK (preconnect, lightConfig).
 */
export function envEndpoint(): string | undefined {
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

/** The answer to an early GET: its status and body (200: the object; 404: none), or its failure. */
export type EarlyAnswer = { status: number; body: Buffer } | { error: Error };

/** What the early start hands to the store (StoreVm.prepare, S3ObjectStore). */
export interface EarlyStore {
  bucket: string;
  prefix: string;
  name: string;
  /** dist/s3-get.cjs's exports (loaded once: objects.ts takes them). */
  parts: unknown;
  /** The keep-alive agent the connections are in (the store's own from then on). */
  agent: import("node:http").Agent | import("node:https").Agent;
  tls: boolean;
  manifest: Promise<EarlyAnswer>;
  /** The hot list (lazy restores only). */
  hot: Promise<EarlyAnswer> | undefined;
}

const KEY = Symbol.for("rvm.earlyStore");

/** Connections the early start opens (its GETs' and idle ones), as StoreVm.prepare's preconnect did. */
export const EARLY_CONNECTIONS = 8;

/** The early start's store, if it is for this bucket, prefix and snapshot (taken once). */
export function takeEarly(bucket: string, prefix: string, name: string): EarlyStore | undefined {
  const g = globalThis as { [KEY]?: EarlyStore };
  const e = g[KEY];
  if (!e || e.bucket !== bucket || e.prefix !== prefix || e.name !== name) return undefined;
  g[KEY] = undefined;
  return e;
}

/** The early start's GET bundle (for objects.ts getParts: not loaded twice). */
export function earlyParts(): unknown {
  return (globalThis as { [KEY]?: EarlyStore })[KEY]?.parts;
}

/** The value of option `--name` in argv (`--name V` or `--name=V`). */
function option(argv: string[], name: string): string | undefined {
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === name) return argv[i + 1];
    if (argv[i].startsWith(name + "=")) return argv[i].slice(name.length + 1);
  }
  return undefined;
}

/**
 * bin/rvm.js, before the bundle: for `rvm restore NAME ... --snapshot-store s3://...` (NAME right
 * after `restore`) and a store lightConfig configures, sends the manifest's (and the hot list's)
 * GET and opens the other connections; resolves once the requests have left (or after a few ms),
 * so that they travel while the bundle loads. Anything else (another command, another form of
 * the arguments, a store the client must configure, a missing bundle) does nothing: the restore
 * then goes its usual way.
 */
export function startEarly(argv: string[]): Promise<void> | undefined {
  if (argv[2] !== "restore" || process.env.RVM_EARLY === "0") return undefined;
  const name = argv[3];
  if (!name || !/^[A-Za-z0-9_](?:[A-Za-z0-9_.+ -]{0,126}[A-Za-z0-9_.+-])?$/.test(name)) return undefined;
  const m = /^s3:\/\/([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(?:\/(.*))?$/.exec(option(argv, "--snapshot-store") ?? "");
  if (!m) return undefined;
  let prefix = (m[2] ?? "").replace(/\/+$/, "");
  if (prefix.split("/").some((p) => p === "." || p === "..")) return undefined;
  if (prefix) prefix += "/";
  const bucket = m[1];
  const light = lightConfig(bucket);
  const file = join(__dirname, "..", "..", "s3-get.cjs");
  if (!light || !existsSync(file)) return undefined;
  const lazy = (option(argv, "--restore") ?? "lazy") === "lazy";
  try {
    return send(light, bucket, prefix, name, lazy, file);
  } catch {
    return undefined; // the restore's own requests report whatever this met
  }
}

interface GetParts {
  SignatureV4: new (o: object) => { sign(r: unknown, o: object): Promise<{ headers: Record<string, string> }> };
  HttpRequest: new (o: object) => unknown;
  extendedEncodeURIComponent: (s: string) => string;
  Sha256: unknown;
  fromEnv: () => unknown;
}

function send(light: { url: URL; region: string }, bucket: string, prefix: string, name: string, lazy: boolean, file: string): Promise<void> {
  const g = loadCachedBundle<GetParts>(file).exports;
  const { url } = light;
  const tls = url.protocol === "https:";
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const mod = (tls ? require("node:https") : require("node:http")) as typeof import("node:http");
  // The store's agent settings (objects.ts agentsNow).
  const agent = new mod.Agent({ keepAlive: true, maxSockets: 16, noDelay: true } as object);
  const signer = new g.SignatureV4({ service: "s3", region: light.region, credentials: g.fromEnv(), sha256: g.Sha256, uriEscapePath: false });
  const port = url.port ? Number(url.port) : undefined;
  const left: Promise<void>[] = [];
  const get = (key: string): Promise<EarlyAnswer> => {
    const path = url.pathname.replace(/\/$/, "") + "/" + (prefix + key).split("/").map(g.extendedEncodeURIComponent).join("/");
    const request = new g.HttpRequest({ protocol: url.protocol, hostname: url.hostname, port, method: "GET", path, headers: { host: url.host } });
    let sent!: () => void;
    left.push(new Promise<void>((r) => (sent = r)));
    return signer.sign(request, { signingDate: new Date() }).then((signed) => new Promise<EarlyAnswer>((resolve) => {
      const req = mod.request({ agent, method: "GET", host: url.hostname, port, path, headers: signed.headers, timeout: 10_000 }, (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body: chunks.length === 1 ? chunks[0] : Buffer.concat(chunks) }));
        res.on("error", (error) => resolve({ error }));
      });
      req.on("finish", sent);
      req.on("error", (error) => {
        sent();
        resolve({ error });
      });
      req.on("timeout", () => req.destroy(new Error("timeout")));
      req.end();
    }), (error: Error) => {
      sent();
      return { error };
    });
  };
  const manifest = get(`snapshots/${name}.json`);
  const hot = lazy ? get(`snapshots/${name}.hot`) : undefined;
  // The other connections, each with an unsigned HEAD of the bucket (its answer does not matter):
  // open and free in the agent when the restore's first reads go out during the machine's build.
  for (let i = left.length; i < EARLY_CONNECTIONS; i++) {
    const req = mod.request({ agent, method: "HEAD", host: url.hostname, port, path: url.pathname, timeout: 5000 }, (res) => res.resume());
    req.on("error", () => undefined);
    req.on("timeout", () => req.destroy());
    req.end();
  }
  (globalThis as { [KEY]?: EarlyStore })[KEY] = { bucket, prefix, name, parts: g, agent, tls, manifest, hot };
  // The requests leave once their connections are made (the event loop's next turns), not
  // during the bundle's load (synchronous): waited for here, a few ms at most.
  return Promise.race([Promise.all(left).then(() => undefined), new Promise<void>((r) => setTimeout(r, 20))]);
}
