#!/usr/bin/env node
// The `rvm` command: the compiled host lives in dist/ (built by `npm install`), as one CommonJS
// file with V8's code cache of it (dist/src/cli.bundle.cjs, scripts/build-cli.js: one file
// instead of ~80 modules, none of it compiled again; both are on the way to a restored guest's
// first answer) or, without it, as tsc left it.
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";

const bundle = fileURLToPath(new URL("../dist/src/cli.bundle.cjs", import.meta.url));
let cli;
if (existsSync(bundle)) {
  const { loadCachedBundle } = await import("../dist/src/code-cache.js");
  cli = loadCachedBundle(bundle).exports;
} else {
  cli = await import("../dist/src/cli.js");
}
const { main } = cli;

await main(process.argv);
// Nothing may keep a finished machine alive (stdin, monitor sockets, timers).
process.exit(process.exitCode ?? 0);
