// FP benchmark: MFLOPS on the double-precision guest kernel, next to the integer MIPS figure.
//
// What: guests/bench/fpbench.elf (bare metal, RV64IMAFDC, HTIF; source guests/bench/fpbench.c):
// a dense N x N double matrix multiply C = A x B repeated `iterations` times, each repetition
// rescaling A from C. It prints "fpbench: iterations=I checksum=0x... instret=..." and checks
// its checksum against references recorded under QEMU (for I = 1, 10, 200).
//
// FLOP count, from fpbench.c (adds, subtracts, multiplies, divides and square roots; the
// comparisons and |x| of the max search are not counted), N from the ELF (the size of the
// static array `a`, N*N*8 bytes), I from the program's own output:
//   per repetition: matmul N^3 multiplies + N^3 adds = 2N^3; rescale a = c * inv: N^2
//                   multiplies; inv = 1.0 / m: 1 divide; sum += sqrt(m): 1 sqrt + 1 add
//   once:           initialisation 3N^2 (a: 1 divide; b: 1 divide + 1 add per element),
//                   final sum of C: N^2 adds
//   FLOPs = I * (2N^3 + N^2 + 3) + 4N^2        (N = 32, I = 200: 13,316,696)
//
// How: rvm runs the ELF in-process (bench/common.js runElf, the same runner as `bench cpu`;
// the time is the run to the HTIF exit, machine creation excluded), once with the shipped
// count and once a copy with `iterations` patched to 10x that count (a long run: the default
// run is short enough that the WebAssembly tiers still warming up show). MFLOPS = FLOPs /
// seconds; MIPS = instret / seconds. Each run is made with the JIT (rvm's default) and then with
// the interpreter alone (--jit off; "int:" lines). Then intbench.elf (JIT) for the integer MIPS
// figure.
// Reference: QEMU (`qemu-system-riscv64 -M spike -bios none -kernel FILE`, wall time from spawn
// to exit, so including QEMU's start-up) on the same two ELFs, when installed, each with a 60 s
// limit and its exit status checked. The long run's checksum (no recorded reference) is
// compared between rvm and QEMU. QEMU's start-up-free rate is (FLOPs_long - FLOPs_default) /
// (T_long - T_default). If QEMU does not finish (a bench ELF that prints only through the HTIF
// syscall proxy, which QEMU 7.2's spike does not implement, hangs there; the current htif.c
// falls back to the HTIF console after a bounded wait), the reason is printed instead of a ratio.
// Prints figures only; never asserts.
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { ROOT, QEMU_MISSING, elfSymbols, makeTempDir, mipsOf, patchElfU64, qemuPath, runElf, timeQemuSpike } from "./common.js";

const LONG_FACTOR = 10;
const RVM_TIMEOUT_MS = 300_000;

/** fpbench's FLOPs for `iterations` repetitions of an n x n matmul (formula above). */
export function fpbenchFlops(iterations, n) {
  return iterations * (2 * n ** 3 + n ** 2 + 3) + 4 * n ** 2;
}

/** N of fpbench.elf: from the size of its static array `a` (N*N doubles), else from fpbench.c. */
function matrixOrder(elf) {
  const a = elfSymbols(new Uint8Array(readFileSync(elf))).get("a");
  if (a && a.size > 0) {
    const n = Math.round(Math.sqrt(a.size / 8));
    if (n * n * 8 === a.size) return { n, from: "the ELF's symbol a" };
  }
  const src = join(ROOT, "guests/bench/fpbench.c");
  const m = existsSync(src) ? /#define\s+N\s+(\d+)/.exec(readFileSync(src, "utf8")) : null;
  return m ? { n: Number(m[1]), from: "fpbench.c" } : undefined;
}

const parse = (output) => ({
  iterations: Number(/iterations=(\d+)/.exec(output)?.[1] ?? NaN),
  checksum: /checksum=(0x[0-9a-f]+)/.exec(output)?.[1],
  verdict: /checksum (OK|MISMATCH|unverified)/.exec(output)?.[1] ?? "no verdict printed",
});

export async function main(args) {
  const file = args[0] ?? join(ROOT, "guests/bench/fpbench.elf");
  const intFile = join(ROOT, "guests/bench/intbench.elf");
  for (const f of [file, intFile]) {
    if (!existsSync(f)) {
      console.error(`bench fp: ${f} is missing`);
      process.exit(1);
    }
  }
  const order = matrixOrder(file);
  if (!order) {
    console.error(`bench fp: cannot tell the matrix order N of ${file}`);
    process.exit(1);
  }
  const { n } = order;
  const { dir, cleanup } = makeTempDir("rvm-bench-fp-");
  try {
    // rvm (the JIT on, as by default), shipped count
    const r = await runElf(file, { timeoutMs: RVM_TIMEOUT_MS, jit: true });
    process.stdout.write(r.output);
    const p = parse(r.output);
    if (r.reason !== "exit" || !Number.isFinite(p.iterations)) {
      console.log(`rvm:  fpbench did not complete (${r.reason}, exit ${r.exitCode}) - no figures`);
      return;
    }
    const flops = fpbenchFlops(p.iterations, n);
    console.log(`fpbench: N=${n} (from ${order.from}), ${p.iterations} iterations: FLOPs = I*(2N^3+N^2+3)+4N^2 = ${flops}`);
    const line = (who, iters, seconds, fl, extra) =>
      console.log(`${who.padEnd(5)} ${String(iters).padStart(5)} iterations: ${seconds.toFixed(3)} s = ${(fl / seconds / 1e6).toFixed(1)} MFLOPS${extra}`);
    line("rvm:", p.iterations, r.seconds, flops, `, ${mipsOf(r).toFixed(1)} MIPS (${r.instret} instructions; exit ${r.exitCode}, checksum ${p.verdict})`);
    // the interpreter alone (--jit off), same count
    const r0 = await runElf(file, { timeoutMs: RVM_TIMEOUT_MS, jit: false });
    const p0 = parse(r0.output);
    if (r0.reason === "exit") line("--jit off:", p0.iterations, r0.seconds, flops, `, ${mipsOf(r0).toFixed(1)} MIPS (checksum ${p0.verdict}); JIT/interpreter ${(r0.seconds / r.seconds).toFixed(2)}x faster`);

    // rvm, long run on a patched copy
    const longIters = p.iterations * LONG_FACTOR;
    const longFile = join(dir, `fpbench-${longIters}.elf`);
    let rl, pl;
    if (patchElfU64(file, longFile, "iterations", longIters)) {
      rl = await runElf(longFile, { timeoutMs: RVM_TIMEOUT_MS, jit: true });
      pl = parse(rl.output);
      if (rl.reason === "exit" && pl.iterations === longIters) {
        line("rvm:", longIters, rl.seconds, fpbenchFlops(longIters, n), `, ${mipsOf(rl).toFixed(1)} MIPS (copy with iterations=${longIters}; exit ${rl.exitCode})`);
        const rl0 = await runElf(longFile, { timeoutMs: RVM_TIMEOUT_MS, jit: false });
        if (rl0.reason === "exit") line("--jit off:", longIters, rl0.seconds, fpbenchFlops(longIters, n), `, ${mipsOf(rl0).toFixed(1)} MIPS (checksum ${parse(rl0.output).checksum === pl.checksum ? "same as the JIT's" : "DIFFERS"}); JIT/interpreter ${(rl0.seconds / rl.seconds).toFixed(2)}x faster`);
      } else {
        console.log(`rvm:  the long run (iterations=${longIters}) did not complete (${rl.reason}, exit ${rl.exitCode})`);
        rl = undefined;
      }
    } else {
      console.log("rvm:  no 64-bit `iterations` variable in the ELF - no long run");
    }

    // integer MIPS, the same runner as `bench cpu`
    const ri = await runElf(intFile, { timeoutMs: RVM_TIMEOUT_MS, jit: true });
    console.log(`int:  intbench ${mipsOf(ri).toFixed(1)} MIPS (${ri.instret} instructions in ${ri.seconds.toFixed(3)} s, exit ${ri.exitCode})`);

    if (!qemuPath()) {
      console.log(QEMU_MISSING);
      return;
    }
    const q = timeQemuSpike(file);
    if (!q.ok) {
      console.log(`qemu: could not run fpbench.elf: ${q.why} (after ${q.seconds.toFixed(1)} s) - no ratio`);
      return;
    }
    const qp = parse(q.output);
    line("qemu:", p.iterations, q.seconds, flops, ` (wall incl. start-up; exit ${q.code}, checksum ${qp.verdict})`);
    console.log(`ratio rvm/qemu time, ${p.iterations} iterations: ${(r.seconds / q.seconds).toFixed(2)}x`);
    if (!rl) return;
    const ql = timeQemuSpike(longFile);
    if (!ql.ok) {
      console.log(`qemu: could not run the long copy: ${ql.why} (after ${ql.seconds.toFixed(1)} s)`);
      return;
    }
    const qpl = parse(ql.output);
    const longFlops = fpbenchFlops(longIters, n);
    line("qemu:", longIters, ql.seconds, longFlops, ` (wall incl. start-up; exit ${ql.code}; checksum ${qpl.checksum === pl.checksum ? "same as rvm's" : `DIFFERS: rvm ${pl.checksum}, qemu ${qpl.checksum}`})`);
    if (ql.seconds > q.seconds) {
      const marginal = (longFlops - flops) / (ql.seconds - q.seconds) / 1e6;
      console.log(`qemu: start-up-free rate (difference of the two runs): ${marginal.toFixed(1)} MFLOPS`);
    }
    console.log(`ratio rvm/qemu time, ${longIters} iterations: ${(rl.seconds / ql.seconds).toFixed(2)}x`);
  } finally {
    cleanup();
  }
}
