#!/usr/bin/env node
// The `rvm` command: the compiled host lives in dist/ (built by `npm install`).
import { main } from "../dist/src/cli.js";

await main(process.argv);
