// The debugger with translated code (issue 12 "Exactness", and the debugger's watchpoints): a
// watched page is never in the load/store TLBs, so translated loads and stores to it take the
// core's slow paths as the interpreter's do, and a watchpoint stops the machine at the same
// instruction, after the same instruction count, whether the loop around it runs translated or
// not. (Breakpoints need no such test: no translated code runs while they are armed.)

import { afterAll, describe, expect, it } from "vitest";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createVirtMachine } from "../../src/board/virt.js";
import { Asm, BASE, S, enc } from "./gen.js";

const dir = mkdtempSync(join(tmpdir(), "rvm-jit-debug-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const WATCHED = BASE + 0x8000, SYSCON = 0x10_0000;
const S1 = 9, T0 = 5, T1 = 6, T2 = 7;
const sd = (base: number, v: number, imm: number) => S(0x23, 3, base, v, imm);

let watchedStore = 0;

/** for s1 in 1..3000: [WATCHED+0] = s1; if s1 == 2500: [WATCHED+8] = s1; then power off. */
function program(): Uint8Array {
  const a = new Asm(BASE, 0x1000);
  a.li(T0, BigInt(WATCHED));
  a.li(S1, 0n);
  a.li(T1, 2500n);
  a.li(T2, 3000n);
  const top = a.pos;
  a.w32(enc.addi(S1, S1, 1));
  a.w32(sd(T0, S1, 0)); // the watched page, not the watched word
  a.w32(enc.bne(S1, T1, 8));
  watchedStore = a.pos;
  a.w32(sd(T0, S1, 8)); // the watched word
  a.w32(enc.bne(S1, T2, top - a.pos));
  a.li(T0, BigInt(SYSCON));
  a.li(T1, 0x5555n);
  a.w32(enc.sw(T0, T1, 0));
  a.w32(enc.jal(0, 0));
  return a.bytes;
}

async function run(jit: boolean) {
  const file = join(dir, `p${jit ? 1 : 0}.bin`);
  writeFileSync(file, program());
  const m = createVirtMachine({
    ramBytes: 16 << 20, icountShift: 5, bios: "none", kernel: file, drives: [],
    jit: jit ? { enabled: true, threshold: 1, sync: true } : false, sliceInstructions: 101,
    console: { write: () => {}, readByte: () => -1 },
  });
  const stops: { reason: string; pc: bigint; instret: bigint; value: bigint }[] = [];
  m.debugStopped = (e) => {
    stops.push({ reason: e.reason, pc: m.core.pc, instret: m.core.instret, value: m.mem.readU64(WATCHED + 8) });
    m.setWatchpoints([]);
    m.debugResume();
  };
  m.setWatchpoints([{ kind: "watch", addr: BigInt(WATCHED + 8), len: 8 }]);
  const r = await m.run({ timeoutMs: 60_000 });
  expect(r.reason).toBe("stop");
  // (translated calls that ended at an exit before an access: the watchpoint's)
  return { stops, translated: m.core.exports.jitInstructions(), exits: m.core.exports.jitCallsEnded(2), ram: Buffer.from(m.core.ram) };
}

describe("watchpoints with translated code", () => {
  it("a store to a watched word in a translated loop stops where the interpreter stops", { timeout: 60_000 }, async () => {
    const off = await run(false);
    const on = await run(true);
    // stopped at the store, before it wrote (as QEMU stops for gdb), then the program ran out
    expect(off.stops.map((s) => s.reason)).toEqual(["watch", "exited"]);
    expect(off.stops[0].pc).toBe(BigInt(BASE + watchedStore));
    expect(off.stops[0].value).toBe(0n);
    expect(off.stops[1].value).toBe(2500n);
    expect(on.translated).toBeGreaterThan(0n);
    expect(on.exits).toBe(1n);
    expect(on.stops).toEqual(off.stops);
    expect(on.ram.equals(off.ram)).toBe(true);
  });
});
