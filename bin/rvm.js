#!/usr/bin/env node
// The `rvm` command: the compiled host lives in dist/ (built by `npm install`).
import { main } from "../dist/src/cli.js";

await main(process.argv);
// Nothing may keep a finished machine alive (stdin, monitor sockets, timers).
process.exit(process.exitCode ?? 0);
