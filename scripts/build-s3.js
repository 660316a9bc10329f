#!/usr/bin/env node
// Part of `npm run build:host`: the parts of the AWS SDK rvm uses (the S3 client, its commands,
// the Node HTTP handler, and for a restore's GETs the client's own signer, request and endpoint
// resolution: S3ObjectStore's direct GETs) as one CommonJS file, dist/s3-sdk.cjs, bundled by esbuild from the
// SDK's ES modules (tree-shaken, minified), and V8's code cache of it, dist/s3-sdk.cjs.cache.
// A restore from an object store loads the SDK on its critical path: from the packages that
// took 373-453 ms under load, from the bundle and its cache 124-236 ms (src/store/objects.ts).
// Without this file rvm loads the packages as installed.

import * as esbuild from "esbuild";
import { createServer } from "node:http";
import { join, resolve } from "node:path";

const root = resolve(new URL("..", import.meta.url).pathname);
const out = join(root, "dist", "s3-sdk.cjs");

/**
 * Node's https module (and with it tls) for the GET bundle, loaded on first use instead of at the
 * bundle's load: the SDK's HTTP handler imports it at its top, and a restore from an http
 * endpoint (radosgw, MinIO on a LAN) never needs it (1.5-2.4 ms of CPU measured, more wall time
 * under load, on the way to the first instruction). `instanceof Agent` is false until it is loaded
 * (no https agent can exist before); objects.ts then gives the handler a stand-in https agent.
 */
const lazyHttps = {
  name: "lazy-https",
  setup(b) {
    b.onResolve({ filter: /^(node:)?https$/ }, (args) =>
      args.namespace === "rvm-lazy" ? { path: "node:https", external: true } : { path: "https", namespace: "rvm-lazy" });
    b.onLoad({ filter: /.*/, namespace: "rvm-lazy" }, () => ({
      loader: "js",
      contents: `let m;
const https = () => (m ??= require("node:https"));
class Agent {
  constructor(o) { return new (https().Agent)(o); }
  static [Symbol.hasInstance](v) { return m !== undefined && v instanceof m.Agent; }
}
export default { Agent, get request() { return https().request; } };`,
    }));
  },
};

/**
 * Node's fs/promises for the GET bundle, loaded on first use: the SDK's shared config file
 * loader (in the bundle through its core module, never called on the GET bundle's path, which
 * takes everything from the environment) imports it at its top, and with it Node's readline,
 * fs/dir and watchers modules: 1.2-2.3 ms of CPU on a store restore's way to its manifest
 * (session 11, pre11). Only `readFile` is used; a new import fails the build ("No matching
 * export"), not a restore.
 */
const lazyFsPromises = {
  name: "lazy-fs-promises",
  setup(b) {
    b.onResolve({ filter: /^(node:)?fs\/promises$/ }, (args) =>
      args.namespace === "rvm-lazy-fsp" ? { path: "node:fs/promises", external: true } : { path: "fs/promises", namespace: "rvm-lazy-fsp" });
    b.onLoad({ filter: /.*/, namespace: "rvm-lazy-fsp" }, () => ({
      loader: "js",
      contents: `export function readFile(...a) { return require("node:fs/promises").readFile(...a); }`,
    }));
  },
};

/** One CommonJS bundle of the SDK's ES modules: `exports` (export lines) into `file`. */
function bundleSdk(exports, file, plugins = []) {
  return esbuild.build({
    plugins,
    stdin: { contents: exports, resolveDir: root, sourcefile: "s3-entry.js" },
    outfile: file,
    bundle: true,
    format: "cjs",
    platform: "node",
    target: "node20",
    mainFields: ["module", "main"],
    // import() of Node's modules becomes require(): the bundle runs as a vm.Script (for its code
    // cache), which has no dynamic import.
    supported: { "dynamic-import": false },
    minify: true,
    legalComments: "linked",
    logLevel: "warning",
  });
}

await bundleSdk(`export { S3Client, GetObjectCommand, PutObjectCommand, ListObjectsV2Command, DeleteObjectCommand, HeadBucketCommand, CreateBucketCommand } from "@aws-sdk/client-s3";
export { NodeHttpHandler } from "@smithy/node-http-handler";
export { SignatureV4 } from "@smithy/signature-v4";
export { HttpRequest, extendedEncodeURIComponent } from "@smithy/core/protocols";
export { getEndpointFromInstructions } from "@smithy/core/endpoints";`, out);

// The parts a GET needs, for stores the environment configures whole (objects.ts lightConfig):
// a restore then signs and sends its GETs without loading the client above.
const outGet = join(root, "dist", "s3-get.cjs");
await bundleSdk(`export { SignatureV4 } from "@smithy/signature-v4";
export { HttpRequest, extendedEncodeURIComponent } from "@smithy/core/protocols";
export { NodeHttpHandler } from "@smithy/node-http-handler";
export { Sha256 } from "@smithy/core/checksum";
export { fromEnv } from "@aws-sdk/credential-provider-env";`, outGet, [lazyHttps, lazyFsPromises]);

// The code cache, made after the requests a restore makes before its first instruction, as it
// makes them: an S3ObjectStore with the credentials and endpoint from the environment (the SDK's
// provider chain and endpoint rules), its client, and GETs through its direct path (the SDK's
// signer and HTTP handler), against a server here that answers 404. Not one through the client's
// middleware stack: a restore sends none (only a direct GET that failed goes through it), and
// its functions (~0.2 MB of the cache) cost V8's deserialization in every store command.
const { loadGetBundle, loadSdkBundle, S3ObjectStore } = await import(join(root, "dist/src/store/objects.js"));
const server = createServer((_req, res) => {
  res.writeHead(404, { "content-type": "application/xml" });
  res.end('<?xml version="1.0" encoding="UTF-8"?><Error><Code>NoSuchKey</Code><Message>none</Message></Error>');
});
await new Promise((r) => server.listen(0, "127.0.0.1", r));
for (const k of ["AWS_PROFILE", "AWS_ENDPOINT_URL_S3", "AWS_SESSION_TOKEN", "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS"]) delete process.env[k];
Object.assign(process.env, {
  AWS_ENDPOINT_URL: `http://127.0.0.1:${server.address().port}`, AWS_ACCESS_KEY_ID: "build", AWS_SECRET_ACCESS_KEY: "build", AWS_REGION: "us-east-1",
  AWS_CONFIG_FILE: join(root, "dist", "none"), AWS_SHARED_CREDENTIALS_FILE: join(root, "dist", "none"),
});
// Each bundle's cache from its own run: the GET bundle's through lightConfig's path, the
// client's with that path off (a store configured otherwise, or the sync reader's fallback).
await loadGetBundle(outGet, () => train(true));
process.env.RVM_S3_LIGHT = "0";
await loadSdkBundle(out, () => train(false));
delete process.env.RVM_S3_LIGHT;
server.close();

async function train(light) {
  const store = S3ObjectStore.fromUrl("s3://build/none", { requestTimeoutMs: 10_000, maxAttempts: 2 });
  store.preconnect(2);
  for (const k of ["snapshots/none.json", "packs/none.idx"]) {
    if ((await store.get(k)) !== undefined) throw new Error("build-s3: the cache run's server answered a GET");
  }
  if (store.directGets !== 2 || store.light !== light) throw new Error("build-s3: the cache run's GETs did not take the path meant");
  await store.close();
}
