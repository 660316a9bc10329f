#!/usr/bin/env node
// `npm run bench -- <name>`: whole-run benchmarks that print figures (never assert them).
//   cpu   guest MIPS on the integer workload (guests/bench/intbench.elf), and QEMU's time on
//         the same ELF when qemu-system-riscv64 is installed.
//   store  snapshots in an object store (radosgw started by the bench): ten desktops' bytes vs
//         their local snapshots, restore-to-echo from the store vs local vs QEMU -loadvm, savevm
//         pause (background vs stop-and-save vs QEMU) at 256 MiB and 1 GiB.
//   fp    MFLOPS on the double-precision kernel (guests/bench/fpbench.elf) next to intbench's
//         MIPS, and QEMU's time on the same ELF when installed.
//   boot  wall time to the Linux shell prompt (kernel+initrd, and the bootable disk through
//         U-Boot), rvm and QEMU (when installed) in the same run, and the ratio.
//   micro tinybench figures for the core's building blocks.
//   snapshot  savevm of the Linux guest (256 MiB) after reading ~40 MiB of files (a) and after
//         also filling 32 MiB of process memory (b): page breakdown, file size as % of RAM and
//         of a zero-skipping save, save throughput; QEMU's migration stream of the same state
//         when installed, and the verdict on issue 5's target (rvm <= 25% of QEMU in (a)).
//   restore  eager vs lazy restore (page order, working set first) of a 256 MiB page-cache guest
//         and a 1 GiB guest with 768 MiB filled by memfill: time to first instruction, TTR,
//         demand faults, reads, spawn -> echo of a typed command; QEMU's -loadvm of the 1 GiB
//         guest when installed, and the verdict on issue 6's target (lazy <= 50% of QEMU).
//   web   CPU of a guest idle at its prompt in a chromium tab (`rvm web`) vs `rvm run` vs QEMU.
//   savevm  the plain savevm (stop, save, continue) of rvm and QEMU, repeated on a 1 GiB guest with
//         768 MiB of pseudo-random memory and a 256 MiB one with 128 MiB: wall and CPU, best / median
//         (`--base DIR` alternates another checkout's rvm; `--strace`).
//   linux  CPU-bound commands (gzip, busybox awk) inside the booted Linux guest: rvm's
//         interpreter, rvm's JIT and QEMU, the same images, and the ratios.
// QEMU is looked up on PATH; RVM_BENCH_QEMU=/path/to/qemu-system-riscv64 picks another one and
// RVM_BENCH_QEMU=none runs without it (rvm's figures only).
import { argv, exit } from "node:process";

const benches = {
  cpu: () => import("./cpu.js"),
  store: () => import("./store.js"),
  fp: () => import("./fp.js"),
  boot: () => import("./boot.js"),
  micro: () => import("./micro.js"),
  snapshot: () => import("./snapshot.js"),
  restore: () => import("./restore.js"),
  web: () => import("./web.js"),
  linux: () => import("./linux.js"),
  savevm: () => import("./savevm.js"),
};

const name = argv[2] ?? "cpu";
if (!(name in benches)) {
  console.error(`bench: unknown benchmark "${name}" (choose from: ${Object.keys(benches).join(", ")})`);
  exit(1);
}
const mod = await benches[name]();
await mod.main(argv.slice(3));
