// Helpers shared by the benchmarks: running a guest ELF in-process, and QEMU as reference.
import { spawnSync } from "node:child_process";
import { createVirtMachine } from "../dist/src/board/virt.js";

export const ROOT = new URL("..", import.meta.url).pathname;

/** Runs a bare-metal ELF to its HTIF exit; returns instret, seconds and console output. */
export async function runElf(file, { ramBytes = 128 << 20 } = {}) {
  const out = [];
  const machine = createVirtMachine({
    ramBytes,
    bios: "none",
    kernel: file,
    drives: [],
    console: { write: (_fd, b) => out.push(Buffer.from(b).toString("latin1")), readByte: () => -1 },
  });
  const r = await machine.run({ timeoutMs: 600_000 });
  return { ...r, output: out.join("") };
}

/** The path of qemu-system-riscv64, or undefined when it is not installed. */
export function qemuPath() {
  const r = spawnSync("sh", ["-c", "command -v qemu-system-riscv64"], { encoding: "utf8" });
  return r.status === 0 ? r.stdout.trim() : undefined;
}

/** Times `qemu-system-riscv64 -M spike -bios none -kernel FILE` (HTIF exit ends it). */
export function timeQemuSpike(file) {
  const qemu = qemuPath();
  if (!qemu) return undefined;
  const t0 = performance.now();
  const r = spawnSync(qemu, ["-M", "spike", "-m", "128M", "-bios", "none", "-kernel", file, "-nographic"], {
    encoding: "latin1",
    timeout: 600_000,
  });
  const seconds = (performance.now() - t0) / 1000;
  return { seconds, code: r.status, output: r.stdout };
}
