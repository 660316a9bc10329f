// Random instruction words never crash the host; whatever traps as illegal reports the
// encoding in mtval (priv spec 3.1.16), 32-bit or 16-bit as fetched.

import { describe, expect, it } from "vitest";
import { Core, RAM_BASE } from "../../src/core.js";
import { xorshift } from "../helpers.js";

const MCAUSE = 0x342, MTVAL = 0x343, MTVEC = 0x305, MEPC = 0x341;
const SENTINEL = 0xdeadn;


function step(core: Core, word: number, len: 2 | 4): { trapped: boolean; cause: bigint; tval: bigint; epc: bigint } {
  const ex = core.exports;
  ex.setPriv(3);
  ex.writeCsr(MTVEC, BigInt(RAM_BASE + 0x8000));
  ex.writeCsr(MCAUSE, SENTINEL);
  ex.writeCsr(0x300, 0n); // mstatus: MPRV off, interrupts off
  ex.writeCsr(0x180, 0n); // satp: bare
  const dv = new DataView(core.ram.buffer, core.ram.byteOffset, 8);
  if (len === 4) dv.setUint32(0, word, true);
  else dv.setUint16(0, word & 0xffff, true);
  core.pc = BigInt(RAM_BASE);
  for (let i = 1; i < 32; i++) core.setX(i, BigInt(RAM_BASE + 0x1000 + i * 8));
  core.run(1);
  const cause = ex.readCsr(MCAUSE);
  return { trapped: cause !== SENTINEL, cause, tval: ex.readCsr(MTVAL), epc: ex.readCsr(MEPC) };
}

describe("random instruction words", () => {
  const core = new Core(1 << 20);
  const rand = xorshift(0x5eed);

  it("32-bit words: no host crash; illegal ones carry the encoding in mtval", { timeout: 60_000 }, () => {
    let illegal = 0;
    for (let i = 0; i < 60_000; i++) {
      const w = (rand() | 3) >>> 0; // low bits 11: a 32-bit encoding
      const r = step(core, w, 4);
      if (r.trapped && r.cause === 2n) {
        illegal++;
        expect(r.tval).toBe(BigInt(w));
        expect(r.epc).toBe(BigInt(RAM_BASE));
      }
    }
    // Most of the 32-bit space is unassigned; a decoder that accepted everything would fail here.
    expect(illegal).toBeGreaterThan(20_000);
  });

  it("16-bit words: illegal ones carry the 16-bit encoding in mtval", { timeout: 60_000 }, () => {
    let illegal = 0;
    for (let w = 0; w < 0x10000; w++) {
      if ((w & 3) === 3) continue;
      const r = step(core, w, 2);
      if (r.trapped && r.cause === 2n) {
        illegal++;
        expect(r.tval).toBe(BigInt(w));
      }
    }
    expect(illegal).toBeGreaterThan(0);
  });

  it("known encodings: reserved ones trap, valid ones do not", () => {
    const illegalWords = [0x00000000, 0xffffffff, 0x0000_707f /* LOAD-FP f3=7 */, 0x0000_4073 /* SYSTEM f3=4 */,
      0x0400_1013 /* SLLI with imm[11:6] = 000001: reserved (on RV64 bit 25 is shamt[5], bit 26 is not) */,
      0x0200_101b /* SLLIW with shamt[5] = 1: reserved on RV64 */];
    for (const w of illegalWords) {
      const r = step(core, w, 4);
      expect(r.cause, `0x${w.toString(16)}`).toBe(2n);
      expect(r.tval).toBe(BigInt(w));
    }
    expect(step(core, 0x0200_1013, 4).trapped).toBe(false); // slli zero, zero, 32: legal on RV64 (shamt[5])
    expect(step(core, 0x0000, 2).cause).toBe(2n); // the all-zero parcel is defined illegal
    expect(step(core, 0x00100513, 4).trapped).toBe(false); // addi a0, zero, 1
    expect(core.x(10)).toBe(1n);
    expect(step(core, 0x4505, 2).trapped).toBe(false); // c.li a0, 1
    expect(step(core, 0x02b50533, 4).trapped).toBe(false); // mul a0, a0, a1
  });
});
