#!/usr/bin/env node
// The `rvm` command: the compiled host lives in dist/ (built by `npm install`), as one CommonJS
// file with V8's code cache of it (dist/src/cli.bundle.cjs, scripts/build-cli.js: one file
// instead of ~80 modules, none of it compiled again; both are on the way to a restored guest's
// first answer) or, without it, as tsc left it. This file is CommonJS (bin/package.json): an ES
// module here would start Node's ES module loader for nothing, ~15 ms of CPU.
"use strict";
const { existsSync } = require("node:fs");
const { join } = require("node:path");

(async () => {
  const bundle = join(__dirname, "..", "dist", "src", "cli.bundle.cjs");
  const { main } = existsSync(bundle)
    ? require("../dist/src/code-cache.cjs").loadCachedBundle(bundle).exports
    : await import("../dist/src/cli.js");
  await main(process.argv);
  // Nothing may keep a finished machine alive (stdin, monitor sockets, timers).
  process.exit(process.exitCode ?? 0);
})();
