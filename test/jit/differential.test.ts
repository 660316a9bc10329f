// The JIT against the interpreter: the same guest run with translated code and without must
// end bit for bit alike — console output, exit code, every byte of RAM, the whole hart-state
// block (registers, CSRs, mtime, instret) — in deterministic time, so interrupts fall at the same
// instruction counts. Translation is made eager (a page is translated at its first entry, and
// compiled synchronously so it runs from the next slice), and slices are short, so translated
// code runs almost from the start and enters and leaves pages at many different points.

import { describe, expect, it } from "vitest";
import { basename, join } from "node:path";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { guestFiles } from "../helpers.js";
import { createVirtMachine } from "../../src/board/virt.js";
import { generate } from "./gen.js";

export interface Outcome {
  exitCode: number;
  reason: string;
  out: string;
  instret: bigint;
  ram: Buffer;
  hart: Buffer;
  translated: bigint;
  invalidations: number;
}

export async function runFile(file: string, jit: boolean, opts: { icountShift?: number; slice?: number; ramBytes?: number; harts?: number } = {}): Promise<Outcome> {
  const out: string[] = [];
  const machine = createVirtMachine({
    ramBytes: opts.ramBytes ?? 16 << 20,
    harts: opts.harts,
    icountShift: opts.icountShift ?? 6,
    bios: "none",
    kernel: file,
    drives: [],
    jit: jit ? { enabled: true, threshold: 1, sync: true } : false,
    sliceInstructions: opts.slice ?? 997,
    console: { write: (_fd, b) => out.push(Buffer.from(b).toString("latin1")), readByte: () => -1 },
  });
  const r = await machine.run({ timeoutMs: 60_000 });
  return {
    exitCode: r.exitCode,
    reason: r.reason,
    out: out.join(""),
    instret: r.instret,
    ram: Buffer.from(machine.core.ram),
    hart: Buffer.from(machine.core.hartState()),
    translated: machine.core.exports.jitInstructions(),
    invalidations: machine.jit.stats.invalidations,
  };
}

export function expectSame(a: Outcome, b: Outcome): void {
  expect(b.reason).toBe(a.reason);
  expect(b.exitCode).toBe(a.exitCode);
  expect(b.out).toBe(a.out);
  expect(b.instret).toBe(a.instret);
  expect(b.hart.equals(a.hart), "hart state differs").toBe(true);
  if (!b.ram.equals(a.ram)) {
    let i = 0;
    while (a.ram[i] === b.ram[i]) i++;
    expect.fail(`RAM differs first at guest-physical 0x${(0x8000_0000 + i).toString(16)}`);
  }
}

describe("JIT vs interpreter: the ISA test programs", () => {
  for (const file of guestFiles("guests/isa", (n) => !n.startsWith("smp-"))) {
    it(`${basename(file)}: identical with translated code`, { timeout: 120_000 }, async () => {
      // Short programs: short slices, so pages get translated early in the run.
      const a = await runFile(file, false, { slice: 101 });
      const b = await runFile(file, true, { slice: 101 });
      expect(a.exitCode).toBe(0);
      expectSame(a, b);
      expect(a.translated).toBe(0n);
      // (irq-priority is CSR accesses and WFI between its interrupts: all the interpreter's)
      if (basename(file) !== "irq-priority.elf") expect(b.translated).toBeGreaterThan(0n);
    });
  }
});

describe("JIT vs interpreter: several harts", () => {
  // Translated code is shared by the harts and runs inside one hart's quantum; a store by one
  // hart into code another runs (smp-harts case 8) invalidates it for all. Every hart's state
  // block and the shared machine block (whose turn it is, quantum left) must end identical.
  for (const file of guestFiles("guests/isa", (n) => n.startsWith("smp-"))) {
    for (const icountShift of [0, 3]) {
      it(`${basename(file)} on 4 harts (icount ${icountShift}): identical with translated code`, { timeout: 120_000 }, async () => {
        const a = await runFile(file, false, { harts: 4, icountShift, slice: 4099 });
        const b = await runFile(file, true, { harts: 4, icountShift, slice: 4099 });
        expect(a.exitCode).toBe(0);
        expectSame(a, b);
        expect(b.translated).toBeGreaterThan(0n);
        // (hart 2 rewrote the code hart 0 runs, from its translation)
        if (basename(file) === "smp-harts.elf") expect(b.invalidations).toBeGreaterThan(0);
      });
    }
  }
});

describe("JIT vs interpreter: random programs", () => {
  const dir = mkdtempSync(join(tmpdir(), "rvm-jit-gen-"));
  const seeds = Array.from({ length: 24 }, (_, i) => 0x1000 + i * 7919);
  for (const seed of seeds) {
    it(`seed 0x${seed.toString(16)}: identical output, RAM and hart state`, { timeout: 120_000 }, async () => {
      const file = join(dir, `gen-${seed.toString(16)}.bin`);
      writeFileSync(file, generate(seed, 600).image);
      for (const icountShift of [0, 3, 7]) {
        const a = await runFile(file, false, { icountShift });
        const b = await runFile(file, true, { icountShift });
        expect(a.reason).toBe("stop"); // the program powered off by itself
        expectSame(a, b);
        expect(b.translated).toBeGreaterThan(0n);
      }
    });
  }
  it("cleans up", () => rmSync(dir, { recursive: true, force: true }));
});
