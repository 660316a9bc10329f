// For the build's code-cache training run only (scripts/build-cli.js --train): a throw-away
// in-memory bucket that answers the few S3 requests an rvm save into an object store and a
// restore from it make (HEAD and PUT of the bucket, PUT, GET with a byte range, ListObjectsV2,
// DELETE of an object), so that the training can go a store restore's way (StoreVm, the S3
// object store, the manifest's and the working set's decoding, StoreRestore) and those functions
// are in dist/src/cli.bundle.cjs.cache too, without a store server at build time. It is not an
// S3 server: no authentication (the requests are signed by the SDK as usual and the signatures
// ignored), no versions, no multipart; tests run against Ceph's radosgw, never this.
//
// It runs in a worker thread of the training process, bound to 127.0.0.1 on a free port, so the
// training's synchronous waits (rvm's SyncReader blocks its thread with Atomics.wait) cannot
// stall it; it ends with that process.

import { createServer } from "node:http";
import { isMainThread, parentPort, Worker } from "node:worker_threads";

/** Starts the bucket in a worker thread: resolves to its endpoint URL and a stop(). */
export function startTrainingStore() {
  const w = new Worker(new URL(import.meta.url));
  return new Promise((res, rej) => {
    w.once("error", rej);
    w.once("message", (port) => res({ endpoint: `http://127.0.0.1:${port}`, stop: () => w.terminate() }));
  });
}

const esc = (s) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");

if (!isMainThread) {
  /** "bucket/key" -> { body, modified } */
  const objects = new Map();
  const buckets = new Set();
  const server = createServer((req, res) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => {
      const url = new URL(req.url, "http://x");
      const path = decodeURIComponent(url.pathname).replace(/^\//, "");
      const slash = path.indexOf("/");
      const bucket = slash < 0 ? path : path.slice(0, slash);
      const key = slash < 0 ? "" : path.slice(slash + 1);
      const send = (status, body = "", headers = {}) => {
        res.writeHead(status, { "content-length": Buffer.byteLength(body), ...headers });
        res.end(req.method === "HEAD" ? undefined : body);
      };
      if (!key) {
        if (req.method === "PUT") buckets.add(bucket);
        if (req.method !== "GET") return send(200);
        const prefix = url.searchParams.get("prefix") ?? "";
        const list = [...objects].filter(([k]) => k.startsWith(`${bucket}/${prefix}`)).sort(([a], [b]) => (a < b ? -1 : 1));
        const contents = list.map(([k, o]) => `<Contents><Key>${esc(k.slice(bucket.length + 1))}</Key><LastModified>${new Date(o.modified).toISOString()}</LastModified>` +
          `<ETag>"0"</ETag><Size>${o.body.length}</Size><StorageClass>STANDARD</StorageClass></Contents>`).join("");
        return send(200, `<?xml version="1.0" encoding="UTF-8"?><ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>${esc(bucket)}</Name>` +
          `<Prefix>${esc(prefix)}</Prefix><KeyCount>${list.length}</KeyCount><MaxKeys>1000</MaxKeys><IsTruncated>false</IsTruncated>${contents}</ListBucketResult>`,
        { "content-type": "application/xml" });
      }
      const id = `${bucket}/${key}`;
      if (req.method === "PUT") {
        objects.set(id, { body: Buffer.concat(chunks), modified: Date.now() });
        return send(200, "", { etag: '"0"' });
      }
      if (req.method === "DELETE") {
        objects.delete(id);
        return send(204);
      }
      const o = objects.get(id);
      if (!o) {
        return send(404, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>NoSuchKey</Code><Message>no such key</Message><Key>${esc(key)}</Key></Error>`,
          { "content-type": "application/xml" });
      }
      const range = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? "");
      if (!range) return send(200, o.body, { "last-modified": new Date(o.modified).toUTCString() });
      const from = Number(range[1]);
      const to = Math.min(Number(range[2]), o.body.length - 1);
      if (from > to) return send(416);
      send(206, o.body.subarray(from, to + 1), { "content-range": `bytes ${from}-${to}/${o.body.length}` });
    });
  });
  server.keepAliveTimeout = 60_000;
  server.listen(0, "127.0.0.1", () => parentPort.postMessage(server.address().port));
}
