#!/usr/bin/env node
// The `rvm` command: the compiled host lives in dist/ (built by `npm install`), as one file
// (dist/src/cli.bundle.js, esbuild: loading one module instead of ~80 saves ~40% of rvm's
// start-up CPU, which is on the way to a restored guest's first answer) or, without it, as
// tsc left it.
let cli;
try {
  cli = await import("../dist/src/cli.bundle.js");
} catch (e) {
  if (e?.code !== "ERR_MODULE_NOT_FOUND" || !String(e.message).includes("cli.bundle.js")) throw e;
  cli = await import("../dist/src/cli.js");
}
const { main } = cli;

await main(process.argv);
// Nothing may keep a finished machine alive (stdin, monitor sockets, timers).
process.exit(process.exitCode ?? 0);
