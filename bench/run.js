#!/usr/bin/env node
// `npm run bench -- <name>`: whole-run benchmarks that print figures (never assert them).
//   cpu   guest MIPS on the integer workload (guests/bench/intbench.elf), and QEMU's time on
//         the same ELF when qemu-system-riscv64 is installed.
//   fp    MFLOPS on the double-precision kernel (guests/bench/fpbench.elf) next to intbench's
//         MIPS, and QEMU's time on the same ELF when installed.
//   boot  wall time to the Linux shell prompt (kernel+initrd, and the bootable disk through
//         U-Boot), rvm and QEMU (when installed) in the same run, and the ratio.
//   micro tinybench figures for the core's building blocks.
// QEMU is looked up on PATH; RVM_BENCH_QEMU=/path/to/qemu-system-riscv64 picks another one and
// RVM_BENCH_QEMU=none runs without it (rvm's figures only).
import { argv, exit } from "node:process";

const benches = {
  cpu: () => import("./cpu.js"),
  fp: () => import("./fp.js"),
  boot: () => import("./boot.js"),
  micro: () => import("./micro.js"),
};

const name = argv[2] ?? "cpu";
if (!(name in benches)) {
  console.error(`bench: unknown benchmark "${name}" (choose from: ${Object.keys(benches).join(", ")})`);
  exit(1);
}
const mod = await benches[name]();
await mod.main(argv.slice(3));
