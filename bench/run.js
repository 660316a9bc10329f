#!/usr/bin/env node
// `npm run bench -- <name>`: whole-run benchmarks that print figures (never assert them).
//   cpu   guest MIPS on the integer workload (guests/bench/intbench.elf), and QEMU's time on
//         the same ELF when qemu-system-riscv64 is installed.
//   micro tinybench figures for the core's building blocks.
import { argv, exit } from "node:process";

const benches = {
  cpu: () => import("./cpu.js"),
  micro: () => import("./micro.js"),
};

const name = argv[2] ?? "cpu";
if (!(name in benches)) {
  console.error(`bench: unknown benchmark "${name}" (choose from: ${Object.keys(benches).join(", ")})`);
  exit(1);
}
const mod = await benches[name]();
await mod.main(argv.slice(3));
