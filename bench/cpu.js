// CPU benchmark: MIPS (guest instructions retired per host second) on the integer workload.
import { existsSync } from "node:fs";
import { join } from "node:path";
import { ROOT, runElf, timeQemuSpike, qemuPath } from "./common.js";

export async function main(args) {
  const file = args[0] ?? join(ROOT, "guests/bench/intbench.elf");
  if (!existsSync(file)) {
    console.error(`bench cpu: ${file} is missing`);
    process.exit(1);
  }
  const r = await runElf(file);
  process.stdout.write(r.output);
  const mips = Number(r.instret) / r.seconds / 1e6;
  console.log(`rvm:  ${r.instret} instructions in ${r.seconds.toFixed(3)} s = ${mips.toFixed(1)} MIPS (exit ${r.exitCode})`);
  if (r.exitCode !== 0) console.log("rvm:  WARNING: the guest reported a wrong checksum");
  if (!qemuPath()) {
    console.log("qemu: not installed (apt-get install qemu-system-misc) - no reference figure");
    return;
  }
  const q = timeQemuSpike(file);
  const qmips = Number(r.instret) / q.seconds / 1e6;
  console.log(`qemu: ${q.seconds.toFixed(3)} s wall (incl. start-up) = ${qmips.toFixed(1)} MIPS-equivalent (exit ${q.code})`);
  console.log(`ratio rvm/qemu time: ${(r.seconds / q.seconds).toFixed(2)}x`);
}
