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

await esbuild.build({
  stdin: {
    contents: `export { S3Client, GetObjectCommand, PutObjectCommand, ListObjectsV2Command, DeleteObjectCommand, HeadBucketCommand, CreateBucketCommand } from "@aws-sdk/client-s3";
export { NodeHttpHandler } from "@smithy/node-http-handler";
export { SignatureV4 } from "@smithy/signature-v4";
export { HttpRequest, extendedEncodeURIComponent } from "@smithy/core/protocols";
export { getEndpointFromInstructions } from "@smithy/core/endpoints";`,
    resolveDir: root,
    sourcefile: "s3-sdk-entry.js",
  },
  outfile: out,
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

// The code cache, made after one GET through a client and one direct GET (against a server here that answers 404),
// so the functions of a request (middleware, signing, the HTTP handler, the error parser) are in it.
const { loadSdkBundle } = await import(join(root, "dist/src/store/objects.js"));
const server = createServer((_req, res) => {
  res.writeHead(404, { "content-type": "application/xml" });
  res.end('<?xml version="1.0" encoding="UTF-8"?><Error><Code>NoSuchKey</Code><Message>none</Message></Error>');
});
await new Promise((r) => server.listen(0, "127.0.0.1", r));
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= "true";
await loadSdkBundle(out, async (m) => {
  const c = new m.S3Client({
    endpoint: `http://127.0.0.1:${server.address().port}`, region: "us-east-1", forcePathStyle: true, maxAttempts: 1,
    credentials: { accessKeyId: "build", secretAccessKey: "build" }, requestHandler: new m.NodeHttpHandler({}),
  });
  await c.send(new m.GetObjectCommand({ Bucket: "build", Key: "none", Range: "bytes=0-1" })).catch(() => undefined);
  // And one as S3ObjectStore's direct GETs make it (the SDK's endpoint rules, signer, handler).
  const ep = await m.getEndpointFromInstructions({ Bucket: "build", Key: "snapshots" }, m.GetObjectCommand, c.config);
  const signer = new m.SignatureV4({ service: "s3", region: await c.config.region(), credentials: c.config.credentials, sha256: c.config.sha256, uriEscapePath: false });
  const path = `${ep.url.pathname}/${"a/none".split("/").map(m.extendedEncodeURIComponent).join("/")}`;
  const request = new m.HttpRequest({ protocol: ep.url.protocol, hostname: ep.url.hostname, port: Number(ep.url.port), method: "GET", path, headers: { host: ep.url.host, range: "bytes=0-1" } });
  const { response } = await c.config.requestHandler.handle(await signer.sign(request, { signingDate: new Date() }));
  response.body.resume();
  c.destroy();
});
server.close();
