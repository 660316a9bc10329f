#!/usr/bin/env node
// `npm run build:web`: the browser page as static files in dist/web, hostable by any file
// server (`rvm web` serves the same files, with the guest you name).
//
// esbuild bundles the page (src/web/page.ts, with xterm.js) and the worker (src/web/worker.ts,
// with the board, devices, monitor and snapshot code). The one difference from the Node build:
// src/platform.ts is replaced by src/web/platform.ts. A shared module that imported a Node
// built-in directly would fail this build, which keeps the platform layer the only way to them.

import * as esbuild from "esbuild";
import { copyFileSync, existsSync, mkdirSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";

const root = resolve(new URL("..", import.meta.url).pathname);
const out = join(root, "dist", "web");
const nodePlatform = join(root, "src", "platform.ts");
const webPlatform = join(root, "src", "web", "platform.ts");

const platformSwap = {
  name: "rvm-platform",
  setup(build) {
    build.onResolve({ filter: /platform\.js$/ }, (args) => {
      const target = resolve(args.resolveDir, args.path).replace(/\.js$/, ".ts");
      return target === nodePlatform ? { path: webPlatform } : undefined;
    });
  },
};

await esbuild.build({
  entryPoints: { page: join(root, "src/web/page.ts"), worker: join(root, "src/web/worker.ts") },
  outdir: out,
  bundle: true,
  format: "iife",
  platform: "browser",
  target: "es2022",
  minify: true,
  sourcemap: true,
  legalComments: "linked",
  plugins: [platformSwap],
  inject: [join(root, "src/web/buffer.ts")],
  logLevel: "warning",
});

// The page, the core, and the shipped Linux guest (its disk image stays gzipped: the worker
// unpacks it). guest.json says what to run; `rvm web GUEST` serves its own instead.
const copy = (from, to) => {
  mkdirSync(dirname(join(out, to)), { recursive: true });
  copyFileSync(join(root, from), join(out, to));
};
copy("src/web/index.html", "index.html");
if (!existsSync(join(root, "build/core.wasm"))) throw new Error("build/core.wasm is missing: run npm run build:core first");
copy("build/core.wasm", "core.wasm");
copy("guests/linux/fw_dynamic.bin", "guests/linux/fw_dynamic.bin");
copy("guests/linux/u-boot.bin", "guests/linux/u-boot.bin");
copy("guests/linux.img.gz", "guests/linux.img.gz");
const pkg = "/rvm";
writeFileSync(join(out, "guest.json"), JSON.stringify({
  packageRoot: pkg,
  guest: `${pkg}/guests/linux.img`,
  label: "guests/linux.img",
  files: [
    { path: `${pkg}/build/core.wasm`, url: "core.wasm" },
    { path: `${pkg}/guests/linux/fw_dynamic.bin`, url: "guests/linux/fw_dynamic.bin" },
    { path: `${pkg}/guests/linux/u-boot.bin`, url: "guests/linux/u-boot.bin" },
    { path: `${pkg}/guests/linux.img`, url: "guests/linux.img.gz", gzip: true },
  ],
}, null, 2) + "\n");
