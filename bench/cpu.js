// CPU benchmark: MIPS (guest instructions retired per host second) on CoreMark-class integer code,
// for the interpreter and the JIT, against QEMU's TCG.
//
// What: guests/bench/intbench.elf (a CoreMark-like integer workload of our own, RV64IMAC, bare
// metal, HTIF exit; it checks its own checksum) run in-process by rvm's core (runElf: machine
// creation is not timed, only the run to the HTIF exit), once with `--jit off` (the interpreter)
// and once with `--jit on` (hot pages compiled to WebAssembly; the run includes the time to
// translate and compile them). MIPS = instret / run seconds; the "cpu" figure divides by the
// process's CPU time instead (all its threads, so the engine's background compiles count), which
// is the fairer one on a loaded machine.
// Reference: the same ELF under `qemu-system-riscv64 -M spike -bios none -kernel FILE`. QEMU's
// start-up (~0.05-0.1 s, a large share of a sub-second run) is taken out: it also runs a copy
// with `iterations` patched to 1, and its rate is (instret(N) - instret(1)) / (T(N) - T(1)),
// the instruction counts being rvm's (QEMU's instret CSR counts cycles without -icount). Its
// CPU time comes from /proc/self/stat (children's times). The exit status is checked; when QEMU
// did not finish, the reason is printed instead of a ratio.
import { existsSync } from "node:fs";
import { basename, join } from "node:path";
import { ROOT, runElf, timeQemuSpike, qemuPath, mipsOf, QEMU_MISSING, makeTempDir, patchElfU64 } from "./common.js";

const fmt = (mips) => (mips === undefined || !Number.isFinite(mips) ? "n/a" : mips.toFixed(1));

export async function main(args) {
  const file = args[0] ?? join(ROOT, "guests/bench/intbench.elf");
  if (!existsSync(file)) {
    console.error(`bench cpu: ${file} is missing`);
    process.exit(1);
  }
  console.log(`bench cpu: ${basename(file)}`);
  const runs = {};
  for (const [name, jit] of [["interpreter", false], ["jit", true]]) {
    const r = await runElf(file, { jit });
    if (name === "interpreter") process.stdout.write(r.output);
    const share = r.instret > 0n ? (Number(r.translated) / Number(r.instret)) * 100 : 0;
    runs[name] = { r, mips: mipsOf(r), cpuMips: Number(r.instret) / r.cpuSeconds / 1e6 };
    console.log(
      `${(name + ":").padEnd(12)} ${r.instret} instructions in ${r.seconds.toFixed(3)} s = ${fmt(runs[name].mips)} MIPS ` +
        `(cpu ${fmt(runs[name].cpuMips)} MIPS; exit ${r.exitCode}${jit ? `; ${share.toFixed(1)}% run translated` : ""})`,
    );
    if (r.exitCode !== 0) console.log(`${name}: WARNING: the guest reported a wrong checksum`);
  }
  const { interpreter: ri, jit: rj } = runs;
  console.log(`jit/interpreter: ${(rj.mips / ri.mips).toFixed(2)}x (cpu ${(rj.cpuMips / ri.cpuMips).toFixed(2)}x)`);
  if (!qemuPath()) {
    console.log(QEMU_MISSING);
    return;
  }
  const { dir } = makeTempDir();
  const one = join(dir, "one.elf");
  const q = timeQemuSpike(file);
  if (!q.ok) {
    console.log(`qemu: could not run it: ${q.why} (after ${q.seconds.toFixed(1)} s) - no ratio`);
    return;
  }
  let insns = Number(ri.r.instret), seconds = q.seconds, cpuSeconds = q.cpuSeconds, how = "incl. start-up";
  if (patchElfU64(file, one, "iterations", 1)) {
    const r1 = await runElf(one);
    const q1 = timeQemuSpike(one);
    if (q1?.ok && q.seconds > q1.seconds) {
      insns -= Number(r1.instret);
      seconds -= q1.seconds;
      cpuSeconds = cpuSeconds !== undefined && q1.cpuSeconds !== undefined ? cpuSeconds - q1.cpuSeconds : undefined;
      how = `start-up taken out: ${q1.seconds.toFixed(3)} s for 1 iteration`;
    }
  }
  const qmips = insns / seconds / 1e6;
  const qcpu = cpuSeconds ? insns / cpuSeconds / 1e6 : undefined;
  console.log(`${"qemu:".padEnd(12)} ${q.seconds.toFixed(3)} s wall = ${fmt(qmips)} MIPS (cpu ${fmt(qcpu)} MIPS; ${how}; exit ${q.code})`);
  const ratio = (a, b) => (b ? (a / b).toFixed(3) + "x" : "n/a");
  console.log(`ratio to qemu: interpreter ${ratio(ri.mips, qmips)} (cpu ${ratio(ri.cpuMips, qcpu)}), jit ${ratio(rj.mips, qmips)} (cpu ${ratio(rj.cpuMips, qcpu)})`);
}
