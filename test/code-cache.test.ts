// src/code-cache.cts: a CommonJS bundle runs as Node would run it (exports, require relative to
// it, __filename, __dirname), with V8's code cache next to it when there is one; a cache V8
// does not take (another bundle's, garbage) is ignored and the bundle still runs.

import { afterAll, describe, expect, it } from "vitest";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadCachedBundle } from "../src/code-cache.cjs";

const ROOT = new URL("..", import.meta.url).pathname;

const dir = mkdtempSync(join(tmpdir(), "rvm-code-cache-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function bundle(name: string, body: string): string {
  const file = join(dir, name);
  writeFileSync(file, body);
  return file;
}

type Exports = { sum(n: number): number; where: string; file: string; sep: string };
const SOURCE = `
const { sep } = require("node:path");
exports.sum = function sum(n) { let s = 0; for (let i = 1; i <= n; i++) s += i; return s; };
exports.where = __dirname;
exports.file = __filename;
exports.sep = sep;
`;

describe("loadCachedBundle", () => {
  it("runs a bundle without a cache, writes the cache, and takes it on the next load", () => {
    const file = bundle("a.cjs", SOURCE);
    const first = loadCachedBundle<Exports>(file);
    expect(first.cacheUsed).toBe(false);
    expect(first.exports.sum(100)).toBe(5050);
    expect(first.exports.where).toBe(dir);
    expect(first.exports.file).toBe(file);
    expect(first.exports.sep).toBe("/");
    first.writeCache();
    expect(existsSync(file + ".cache")).toBe(true);
    expect(existsSync(file + ".cache.tmp")).toBe(false);
    const second = loadCachedBundle<Exports>(file);
    expect(second.cacheUsed).toBe(true);
    expect(second.exports.sum(10)).toBe(55);
    // useCache false: compiled from the source even with a cache there.
    expect(loadCachedBundle<Exports>(file, { useCache: false }).cacheUsed).toBe(false);
  });

  it("ignores a cache that is not this bundle's and still runs it", () => {
    const file = bundle("b.cjs", SOURCE.replace("s += i", "s += 2 * i"));
    writeFileSync(file + ".cache", Buffer.from("not a code cache at all"));
    const b = loadCachedBundle<Exports>(file);
    expect(b.cacheUsed).toBe(false);
    expect(b.exports.sum(100)).toBe(10100);
  });
});

describe("the build's bundle of rvm (npm run build)", () => {
  it("is loaded from its code cache, as bin/rvm.js loads it", () => {
    const r = spawnSync(process.execPath, ["-e", `
      const b = require("./dist/src/code-cache.cjs").loadCachedBundle(require("node:path").resolve("dist/src/cli.bundle.cjs"));
      console.log(JSON.stringify({ used: b.cacheUsed, main: typeof b.exports.main }));`], { cwd: ROOT, encoding: "utf8", timeout: 60_000 });
    expect(r.status, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({ used: true, main: "function" });
  }, 90_000);
});

describe("the build's bundles of the AWS SDK (npm run build)", () => {
  it("are loaded from their code caches: the client's and the one a GET needs", () => {
    const r = spawnSync(process.execPath, ["-e", `
      const { loadCachedBundle } = require("./dist/src/code-cache.cjs");
      const full = loadCachedBundle(require("node:path").resolve("dist/s3-sdk.cjs"));
      const get = loadCachedBundle(require("node:path").resolve("dist/s3-get.cjs"));
      console.log(JSON.stringify({ full: full.cacheUsed, client: typeof full.exports.S3Client, get: get.cacheUsed,
        parts: ["SignatureV4", "HttpRequest", "extendedEncodeURIComponent", "NodeHttpHandler", "Sha256", "fromEnv"].map((k) => typeof get.exports[k]) }));`],
    { cwd: ROOT, encoding: "utf8", timeout: 60_000 });
    expect(r.status, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({ full: true, client: "function", get: true, parts: Array(6).fill("function") });
  }, 90_000);
});
