#!/usr/bin/env node
// Part of `npm run build:host`: rvm's host as one CommonJS file, dist/src/cli.bundle.cjs
// (esbuild, from tsc's output; commander and fflate bundled in, the AWS SDK and the native
// fs-native-extensions left outside), and V8's code cache of it, dist/src/cli.bundle.cjs.cache,
// which bin/rvm.js loads it with (src/code-cache.cts). Compiling the bundle is on the way to every
// restored guest's first answer: with the cache a process compiles none of rvm's code again.
//
// The cache is written by a child process (`--train`, stdin closed) after a run that goes the
// restore's way: a bare-metal guest started stopped, `savevm` on its monitor, `quit`, then
// `rvm restore` of that snapshot until the guest ends; so the functions of a restore (the
// commands, machine build, core, snapshot open, lazy restore, run loop) are in the cache, not
// only the bundle's top level. Without this file bin/rvm.js loads tsc's output (dist/src/cli.js).

import * as esbuild from "esbuild";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createConnection } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { startTrainingStore } from "./train-store.js";

const root = resolve(new URL("..", import.meta.url).pathname);
const out = join(root, "dist", "src", "cli.bundle.cjs");

if (process.argv[2] === "--train") {
  await train();
  process.exit(0);
}

await esbuild.build({
  entryPoints: [join(root, "dist", "src", "cli.js")],
  outfile: out,
  bundle: true,
  format: "cjs",
  platform: "node",
  target: "node20",
  external: ["@aws-sdk/*", "@smithy/*", "fs-native-extensions"],
  // A vm.Script has no import.meta and no dynamic import(): the bundle's own URL stands in for
  // import.meta.url, and import() of Node's modules becomes require().
  define: { "import.meta.url": "__rvmBundleUrl" },
  banner: { js: 'var __rvmBundleUrl = require("node:url").pathToFileURL(__filename).href;' },
  supported: { "dynamic-import": false },
  plugins: [lazyModules()],
  // Whitespace and syntax only (names stay, for stack traces): 803 -> 496 KB, and loading the
  // bundle with its code cache took 49 -> 35 ms of CPU (median of 15, alternating).
  minifyWhitespace: true,
  minifySyntax: true,
  logLevel: "warning",
});

// The lazy restore's fetcher thread (src/platform.ts startThread prefers X.bundle.cjs to X.js):
// one file instead of the ~15 modules it imports, CommonJS so that the thread does not start
// Node's ES module loader. A Node worker cannot be given a code cache of its own, short of a
// loader file of its own; one file is most of the gain.
await esbuild.build({
  entryPoints: [join(root, "dist", "src", "snapshot", "fetch-worker.js")],
  outfile: join(root, "dist", "src", "snapshot", "fetch-worker.bundle.cjs"),
  bundle: true,
  format: "cjs",
  platform: "node",
  target: "node20",
  packages: "external",
  define: { "import.meta.url": "__rvmBundleUrl" },
  banner: { js: 'var __rvmBundleUrl = require("node:url").pathToFileURL(__filename).href;' },
  minifyWhitespace: true,
  minifySyntax: true,
  logLevel: "warning",
});
rmSync(join(root, "dist", "src", "snapshot", "fetch-worker.bundle.js"), { force: true }); // (an earlier build's, ES module)

// A cache of an earlier build would only be read and rejected: gone before the new one is made.
rmSync(out + ".cache", { force: true });
const r = spawnSync(process.execPath, [new URL(import.meta.url).pathname, "--train"], {
  stdio: ["ignore", "ignore", "inherit"],
  timeout: 120_000,
  killSignal: "SIGKILL",
});
if (r.status !== 0) {
  console.error(`build-cli: the code cache run failed (${r.error?.message ?? `exit ${r.status}`}); rvm works without it, slower to start`);
}

/**
 * Modules the bundle loads only when first used, not at every start: commander requires
 * node:child_process at its top (for executable subcommands, which rvm has none of; ~8 ms of
 * CPU), and fflate (snapshot export/import only) builds its Huffman tables when loaded (~6 ms,
 * and garbage). Each importer gets an object whose properties load the module when read.
 */
function lazyModules() {
  const lazy = [
    { module: /^(node:)?child_process$/, importer: /[\\/]commander[\\/]/, real: "node:child_process", names: ["spawn"] },
    { module: /^fflate$/, importer: /[\\/]dist[\\/]src[\\/]/, real: "fflate", names: ["zipSync", "unzipSync"] },
  ];
  return {
    name: "lazy-modules",
    setup(build) {
      for (const [i, l] of lazy.entries()) {
        build.onResolve({ filter: l.module }, (args) => (l.importer.test(args.importer) ? { path: String(i), namespace: "rvm-lazy" } : undefined));
      }
      build.onResolve({ filter: /.*/, namespace: "rvm-lazy" }, async (args) =>
        args.path.startsWith("node:") ? { path: args.path, external: true } : build.resolve(args.path, { kind: "import-statement", resolveDir: root }));
      build.onLoad({ filter: /.*/, namespace: "rvm-lazy" }, (args) => {
        const l = lazy[Number(args.path)];
        const getters = l.names.map((n) => `get ${n}() { return load().${n}; }`).join(", ");
        return { contents: `let m; const load = () => (m ??= require(${JSON.stringify(l.real)})); module.exports = { ${getters} };`, loader: "js" };
      });
    },
  };
}

/** One monitor command over a unix socket: resolves once the reply's prompt came back. */
function monitor(sock, cmds) {
  return new Promise((res, rej) => {
    const c = createConnection(sock);
    let buf = "";
    const todo = [...cmds];
    c.setEncoding("utf8");
    c.on("error", rej);
    c.on("close", res);
    c.on("data", (d) => {
      buf += d;
      if (!buf.endsWith("(rvm) ")) return;
      buf = "";
      if (todo.length) c.write(todo.shift() + "\n");
    });
  });
}

/** `savevm t` and `quit` on the monitor at `sock`, once the machine listens there. */
async function saveAndQuit(sock) {
  for (let i = 0; ; i++) {
    try {
      return await monitor(sock, ["savevm t", "quit"]);
    } catch (e) {
      if (i > 200) throw e;
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

async function train() {
  const { loadCachedBundle } = await import(join(root, "dist", "src", "code-cache.cjs"));
  const bundle = loadCachedBundle(out, { useCache: false });
  const { main } = bundle.exports;
  const dir = mkdtempSync(join(tmpdir(), "rvm-cache-"));
  try {
    const sock = join(dir, "m.sock");
    const elf = join(root, "guests", "isa", "access.elf");
    const run = main(["node", "rvm", "run", "-M", "virt", "-m", "16M", "-nographic", "-bios", "none", "-kernel", elf, "-S",
      "--monitor", `unix:${sock},server,nowait`, "--snapshot-dir", dir]);
    await saveAndQuit(sock);
    await run;
    await main(["node", "rvm", "restore", join(dir, "t.rvmsnap")]);
    if (process.exitCode) throw new Error(`restore exited ${process.exitCode}`);
    try {
      await trainStoreRestore(main, dir);
    } catch (e) {
      // The local restore's functions are cached all the same; a store restore compiles its own.
      console.error(`build-cli: the code cache run's store restore failed (${e.message}); the cache leaves it out`);
      process.exitCode = 0;
    }
    bundle.writeCache();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * The same bare-metal guest saved into an object store and restored from it, so that a store
 * restore's functions (StoreVm, the S3 object store and its direct GETs, the manifest's and the
 * working set's decoding, StoreRestore) are in the cache too: without them every
 * `rvm restore --snapshot-store s3://...` compiled them before its first instruction. The
 * store is scripts/train-store.js's in-memory bucket, in a thread of this process: the build
 * needs no server. The save runs tsc's modules (dist/src/cli.js), not the bundle, so that only
 * the restore's functions are added to the cache (its size is paid by every rvm command).
 */
async function trainStoreRestore(main, dir) {
  const store = await startTrainingStore();
  try {
    for (const k of ["AWS_PROFILE", "AWS_ENDPOINT_URL_S3", "AWS_SESSION_TOKEN", "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS"]) delete process.env[k];
    Object.assign(process.env, {
      AWS_ENDPOINT_URL: store.endpoint, AWS_ACCESS_KEY_ID: "rvmtrain", AWS_SECRET_ACCESS_KEY: "rvmtrain", AWS_REGION: "us-east-1",
      AWS_CONFIG_FILE: join(dir, "none"), AWS_SHARED_CREDENTIALS_FILE: join(dir, "none"),
    });
    const url = "s3://rvm-train/vm";
    const sock = join(dir, "s.sock");
    const elf = join(root, "guests", "isa", "access.elf");
    const { main: unbundled } = await import(join(root, "dist", "src", "cli.js"));
    const run = unbundled(["node", "rvm", "run", "-M", "virt", "-m", "16M", "-nographic", "-bios", "none", "-kernel", elf, "-S",
      "--monitor", `unix:${sock},server,nowait`, "--snapshot-store", url]);
    await saveAndQuit(sock);
    await run;
    if (process.exitCode) throw new Error(`run with savevm exited ${process.exitCode}`);
    await main(["node", "rvm", "restore", "t", "--snapshot-store", url]);
    if (process.exitCode) throw new Error(`restore exited ${process.exitCode}`);
  } finally {
    await store.stop();
  }
}
