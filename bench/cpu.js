// CPU benchmark: MIPS (guest instructions retired per host second) on the integer workload.
//
// What: guests/bench/intbench.elf (a CoreMark-like integer workload, RV64IMAC, bare metal, HTIF
// exit; it checks its own checksum) run in-process by rvm's core (runElf: machine creation is
// not timed, only the run to the HTIF exit). MIPS = instret / run seconds.
// Reference: the same ELF under `qemu-system-riscv64 -M spike -bios none -kernel FILE`, timed
// as wall time from spawn to exit (so including QEMU's start-up, ~0.05 s), with a time limit of
// QEMU_SPIKE_TIMEOUT_S (60 s); the exit status is checked, and when QEMU did not finish (e.g. an
// ELF that prints only through the HTIF syscall proxy, which QEMU's spike does not implement,
// hangs there) the reason is printed instead of a ratio.
import { existsSync } from "node:fs";
import { join } from "node:path";
import { ROOT, runElf, timeQemuSpike, qemuPath, mipsOf, QEMU_MISSING } from "./common.js";

export async function main(args) {
  const file = args[0] ?? join(ROOT, "guests/bench/intbench.elf");
  if (!existsSync(file)) {
    console.error(`bench cpu: ${file} is missing`);
    process.exit(1);
  }
  const r = await runElf(file);
  process.stdout.write(r.output);
  const mips = mipsOf(r);
  console.log(`rvm:  ${r.instret} instructions in ${r.seconds.toFixed(3)} s = ${mips.toFixed(1)} MIPS (exit ${r.exitCode})`);
  if (r.exitCode !== 0) console.log("rvm:  WARNING: the guest reported a wrong checksum");
  if (!qemuPath()) {
    console.log(QEMU_MISSING);
    return;
  }
  const q = timeQemuSpike(file);
  if (!q.ok) {
    console.log(`qemu: could not run it: ${q.why} (after ${q.seconds.toFixed(1)} s) - no ratio`);
    return;
  }
  const qmips = Number(r.instret) / q.seconds / 1e6;
  console.log(`qemu: ${q.seconds.toFixed(3)} s wall (incl. start-up) = ${qmips.toFixed(1)} MIPS-equivalent (exit ${q.code})`);
  console.log(`ratio rvm/qemu time: ${(r.seconds / q.seconds).toFixed(2)}x`);
}
