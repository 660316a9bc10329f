// Random RV64 programs for the JIT's differential tests: bare-metal M-mode code, loaded as a raw
// binary at 0x8000_0000, that exercises what translated code must get exactly right — random
// ALU and M ops on random registers, loads and stores of every width (aligned, misaligned, some
// crossing a page), forward branches and counted loops, compressed instructions, instructions
// straddling a page boundary, traps (illegal, ECALL, EBREAK, access faults on unmapped
// addresses), machine timer interrupts (taken at instruction counts only deterministic time
// fixes), CSR reads, and self-modifying stores into code that runs again. It ends with a write
// to the SiFive test device (poweroff). Every run of a program is a pure function of the seed.
//
// Register roles: x3 (gp) = data area base, x27/x28 = the generator's scratch, x29 = loop
// counter, x30/x31 = trap handler scratch; everything else is fair game for random values.

export const BASE = 0x8000_0000;
const CODE_PAGES = 6;
export const DATA = BASE + 0x10_000; // 64 KiB of data, 16 pages
const DATA_SIZE = 0x10_000;
const HANDLER = BASE; // page 0: start + trap handler
const SYSCON = 0x10_0000;

/** xorshift32: a small deterministic generator. */
export function rng(seed: number): { next(): number; below(n: number): number; pick<T>(a: readonly T[]): T; chance(p: number): boolean } {
  let s = seed >>> 0 || 0x9e3779b9;
  const next = () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s;
  };
  return {
    next,
    below: (n: number) => next() % n,
    pick: <T>(a: readonly T[]) => a[next() % a.length],
    chance: (p: number) => next() / 0x1_0000_0000 < p,
  };
}

// --- encoders (unprivileged spec chapter 34 "RV32/64G Instruction Set Listings") ---
export const R = (op: number, f3: number, f7: number, rd: number, rs1: number, rs2: number) =>
  ((f7 << 25) | (rs2 << 20) | (rs1 << 15) | (f3 << 12) | (rd << 7) | op) >>> 0;
export const I = (op: number, f3: number, rd: number, rs1: number, imm: number) =>
  (((imm & 0xfff) << 20) | (rs1 << 15) | (f3 << 12) | (rd << 7) | op) >>> 0;
export const S = (op: number, f3: number, rs1: number, rs2: number, imm: number) =>
  ((((imm >> 5) & 0x7f) << 25) | (rs2 << 20) | (rs1 << 15) | (f3 << 12) | ((imm & 0x1f) << 7) | op) >>> 0;
export const B = (f3: number, rs1: number, rs2: number, imm: number) =>
  ((((imm >> 12) & 1) << 31) | (((imm >> 5) & 0x3f) << 25) | (rs2 << 20) | (rs1 << 15) | (f3 << 12) |
    (((imm >> 1) & 0xf) << 8) | (((imm >> 11) & 1) << 7) | 0x63) >>> 0;
export const U = (op: number, rd: number, imm: number) => ((imm & 0xfffff000) | (rd << 7) | op) >>> 0;
export const J = (rd: number, imm: number) =>
  ((((imm >> 20) & 1) << 31) | (((imm >> 1) & 0x3ff) << 21) | (((imm >> 11) & 1) << 20) | (((imm >> 12) & 0xff) << 12) |
    (rd << 7) | 0x6f) >>> 0;

export const enc = {
  addi: (rd: number, rs1: number, imm: number) => I(0x13, 0, rd, rs1, imm),
  lui: (rd: number, imm: number) => U(0x37, rd, imm),
  jal: (rd: number, off: number) => J(rd, off),
  jalr: (rd: number, rs1: number, imm: number) => I(0x67, 0, rd, rs1, imm),
  beq: (a: number, b: number, off: number) => B(0, a, b, off),
  bne: (a: number, b: number, off: number) => B(1, a, b, off),
  csrrw: (rd: number, csr: number, rs1: number) => I(0x73, 1, rd, rs1, csr),
  csrrs: (rd: number, csr: number, rs1: number) => I(0x73, 2, rd, rs1, csr),
  sw: (rs1: number, rs2: number, imm: number) => S(0x23, 2, rs1, rs2, imm),
  sd: (rs1: number, rs2: number, imm: number) => S(0x23, 3, rs1, rs2, imm),
  ld: (rd: number, rs1: number, imm: number) => I(0x03, 3, rd, rs1, imm),
  lhu: (rd: number, rs1: number, imm: number) => I(0x03, 5, rd, rs1, imm),
  mret: () => 0x30200073,
  ecall: () => 0x00000073,
  ebreak: () => 0x00100073,
};

const GP = 3, SCR = 27, SCR2 = 28, LOOP = 29, T0 = 30, T1 = 31;
const FREE = [1, 2, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26];
const MSTATUS = 0x300, MIE = 0x304, MTVEC = 0x305, MEPC = 0x341, MCAUSE = 0x342, MSCRATCH = 0x340;
const CLINT_MTIMECMP = 0x200_4000;

/** Code being assembled at a fixed address; 16-bit granularity. */
export class Asm {
  readonly bytes: Uint8Array;
  pos = 0;
  constructor(readonly base: number, size: number) {
    this.bytes = new Uint8Array(size);
  }
  get pc(): number {
    return this.base + this.pos;
  }
  w32(v: number): void {
    new DataView(this.bytes.buffer).setUint32(this.pos, v >>> 0, true);
    this.pos += 4;
  }
  w16(v: number): void {
    new DataView(this.bytes.buffer).setUint16(this.pos, v & 0xffff, true);
    this.pos += 2;
  }
  /** Loads a 64-bit constant (lui/addi/slli sequence, 32-bit words). */
  li(rd: number, v: bigint): void {
    v = BigInt.asIntN(64, v);
    if (v >= -2048n && v < 2048n) {
      this.w32(enc.addi(rd, 0, Number(v)));
      return;
    }
    if (v >= -0x8000_0000n && v < 0x8000_0000n) {
      const n = Number(v);
      const lo = (n << 20) >> 20;
      const hi = (n - lo) | 0;
      this.w32(enc.lui(rd, hi));
      if (lo !== 0) this.w32(I(0x1b, 0, rd, rd, lo)); // addiw
      return;
    }
    // upper part, then shift in 11 bits at a time
    const lo = Number(BigInt.asIntN(12, v));
    this.li(rd, (v - BigInt(lo)) >> 12n);
    this.w32(I(0x13, 1, rd, rd, 12)); // slli
    if (lo !== 0) this.w32(enc.addi(rd, rd, lo));
  }
}

export interface Program {
  image: Uint8Array;
  /** Where the code pages end (the data area starts at DATA). */
  codeEnd: number;
}

/** One random program. `size` ~ instructions in its random body. */
export function generate(seed: number, size = 400): Program {
  const r = rng(seed);
  const image = new Uint8Array(DATA - BASE + DATA_SIZE);
  const dv = new DataView(image.buffer);
  // Random data.
  for (let i = 0; i < DATA_SIZE; i += 4) dv.setUint32(DATA - BASE + i, r.next(), true);

  // Page 0: start-up and the trap handler.
  const a = new Asm(HANDLER, 0x1000);
  // (after the start-up code: up to 8 instructions for each of the 20-odd registers' values)
  const handlerAt = 0x800;
  a.li(T0, BigInt(HANDLER + handlerAt));
  a.w32(enc.csrrw(0, MTVEC, T0));
  a.li(GP, BigInt(DATA));
  for (const x of FREE) a.li(x, BigInt.asIntN(64, (BigInt(r.next()) << 32n) | BigInt(r.next())));
  const timer = r.chance(0.6);
  if (timer) {
    // A machine timer interrupt every few hundred ticks (deterministic time: instructions).
    a.li(T0, BigInt(CLINT_MTIMECMP));
    a.li(T1, BigInt(50 + r.below(400)));
    a.w32(enc.sd(T0, T1, 0));
    a.li(T0, 1n << 7n);
    a.w32(enc.csrrs(0, MIE, T0));
    a.li(T0, 1n << 3n);
    a.w32(enc.csrrs(0, MSTATUS, T0));
  }
  a.li(T0, BigInt(BASE + 0x1000));
  a.w32(enc.jalr(0, T0, 0));
  // Handler: an interrupt re-arms the timer and returns; an exception skips the instruction
  // (2 or 4 bytes, from its low bits). mcause goes to mscratch so it shows in the hart state.
  if (a.pos > handlerAt) throw new Error(`gen: start-up code (${a.pos} bytes) runs into the trap handler`);
  a.pos = handlerAt;
  a.w32(enc.csrrs(T0, MCAUSE, 0));
  a.w32(enc.csrrw(0, MSCRATCH, T0));
  const bge = a.pos;
  a.w32(0); // bge t0, x0, exception (mcause >= 0: not an interrupt)
  a.li(T0, BigInt(CLINT_MTIMECMP));
  a.w32(enc.ld(T1, T0, 0));
  a.w32(enc.addi(T1, T1, 100 + r.below(300)));
  a.w32(enc.sd(T0, T1, 0));
  a.w32(enc.mret());
  new DataView(a.bytes.buffer).setUint32(bge, B(5, T0, 0, a.pos - bge), true);
  a.w32(enc.csrrs(T0, MEPC, 0));
  a.w32(enc.lhu(T1, T0, 0));
  a.w32(I(0x13, 7, T1, T1, 3)); // andi t1, t1, 3
  a.w32(enc.addi(T1, T1, -3)); // 0 when 32-bit
  a.w32(enc.beq(T1, 0, 8));
  a.w32(enc.addi(T0, T0, -2)); // 16-bit: +2 instead of +4
  a.w32(enc.addi(T0, T0, 4));
  a.w32(enc.csrrw(0, MEPC, T0));
  a.w32(enc.mret());
  image.set(a.bytes, 0);

  // Pages 1..CODE_PAGES: the random body.
  const c = new Asm(BASE + 0x1000, CODE_PAGES * 0x1000);
  const limit = CODE_PAGES * 0x1000 - 64;
  const reg = () => r.pick(FREE);
  let emitted = 0;
  const body = (n: number, inLoop: boolean) => {
    for (let i = 0; i < n && c.pos < limit - 256; i++, emitted++) randomInsn(c, r, reg, inLoop);
  };
  while (emitted < size && c.pos < limit - 600) {
    const what = r.below(10);
    if (what < 5) {
      body(1 + r.below(12), false);
    } else if (what < 7) {
      // A counted loop; its body may patch an instruction of itself (self-modifying code).
      c.li(LOOP, BigInt(2 + r.below(20)));
      const top = c.pos;
      let patchAt = -1;
      if (r.chance(0.5)) {
        patchAt = c.pos;
        c.w32(enc.addi(reg(), reg(), r.below(2048)));
      }
      body(2 + r.below(10), true);
      if (patchAt >= 0) {
        // Rewrite the addi at patchAt with a new immediate derived from the loop counter.
        // The new word: li a0, <loop counter> (addi x10, x0, imm).
        const target = c.base + patchAt;
        c.li(SCR, BigInt(target));
        c.w32(I(0x13, 1, SCR2, LOOP, 20)); // slli scr2, loop, 20: the immediate field
        c.w32(I(0x13, 6, SCR2, SCR2, 0x513)); // ori scr2, scr2, 0x513
        c.w32(enc.sw(SCR, SCR2, 0));
      }
      c.w32(enc.addi(LOOP, LOOP, -1));
      c.w32(enc.bne(LOOP, 0, top - c.pos));
    } else if (what < 8) {
      // A forward branch over a few instructions.
      const at = c.pos;
      c.w32(0);
      body(1 + r.below(5), false);
      const f3 = r.pick([0, 1, 4, 5, 6, 7]);
      new DataView(c.bytes.buffer).setUint32(at, B(f3, reg(), reg(), c.pos - at), true);
    } else if (what < 9) {
      // Cross into the next page with a 32-bit instruction straddling the boundary.
      const toBoundary = 0x1000 - (c.pos & 0xfff);
      if (toBoundary >= 6 && c.pos + toBoundary < limit - 600 && r.chance(0.5)) {
        while ((c.pos & 0xfff) !== 0xffe) {
          if ((c.pos & 0xfff) <= 0xff8) c.w32(enc.addi(reg(), reg(), r.below(100)));
          else c.w16(0x0001); // c.nop
        }
        c.w32(enc.addi(reg(), reg(), 1)); // straddles
      } else body(3, false);
    } else {
      // A call and return through a register (JAL/JALR with links).
      c.w32(enc.jal(1, 8));
      c.w32(enc.jal(0, 8));
      c.w32(enc.jalr(0, 1, 0)); // returns to the jal x0 after the call
    }
  }
  // Done: power off through the test device.
  c.li(SCR, BigInt(SYSCON));
  c.li(SCR2, 0x5555n);
  c.w32(enc.sw(SCR, SCR2, 0));
  c.w32(enc.jal(0, 0));
  image.set(c.bytes, 0x1000);
  return { image, codeEnd: BASE + 0x1000 + c.pos };
}

const LOAD_F3 = [0, 1, 2, 3, 4, 5, 6];
const STORE_F3 = [0, 1, 2, 3];

function randomInsn(c: Asm, r: ReturnType<typeof rng>, reg: () => number, inLoop: boolean): void {
  const k = r.below(100);
  if (k < 30) {
    // OP
    const [f3, f7] = r.pick([[0, 0], [0, 0x20], [1, 0], [2, 0], [3, 0], [4, 0], [5, 0], [5, 0x20], [6, 0], [7, 0],
      [0, 1], [1, 1], [2, 1], [3, 1], [4, 1], [5, 1], [6, 1], [7, 1]]);
    c.w32(R(0x33, f3, f7, reg(), reg(), reg()));
  } else if (k < 40) {
    const [f3, f7] = r.pick([[0, 0], [0, 0x20], [1, 0], [5, 0], [5, 0x20], [0, 1], [4, 1], [5, 1], [6, 1], [7, 1]]);
    c.w32(R(0x3b, f3, f7, reg(), reg(), reg()));
  } else if (k < 55) {
    const f3 = r.pick([0, 1, 2, 3, 4, 5, 6, 7]);
    let imm = (r.next() << 20) >> 20;
    if (f3 === 1) imm &= 63;
    if (f3 === 5) imm = (imm & 63) | (r.chance(0.5) ? 0x400 : 0);
    c.w32(I(0x13, f3, reg(), reg(), imm));
  } else if (k < 60) {
    const f3 = r.pick([0, 1, 5, 5]);
    let imm = (r.next() << 20) >> 20;
    if (f3 === 1) imm &= 31;
    if (f3 === 5) imm = (imm & 31) | (r.chance(0.5) ? 0x400 : 0);
    c.w32(I(0x1b, f3, reg(), reg(), imm));
  } else if (k < 63) {
    c.w32(U(r.chance(0.5) ? 0x37 : 0x17, reg(), r.next()));
  } else if (k < 73) {
    // load from the data area; sometimes misaligned, sometimes across a page of it
    const f3 = r.pick(LOAD_F3);
    c.w32(I(0x03, f3, reg(), GP, r.chance(0.2) ? 0x7fd + r.below(3) : r.below(2040)));
  } else if (k < 83) {
    const f3 = r.pick(STORE_F3);
    c.w32(S(0x23, f3, GP, reg(), r.chance(0.2) ? 0x7fd + r.below(3) : r.below(2040)));
  } else if (k < 86) {
    // move the data pointer around the area (kept inside it)
    c.li(SCR, BigInt(DATA + (r.below(DATA_SIZE - 4096) & ~7) + (r.chance(0.3) ? r.below(8) : 0)));
    c.w32(enc.addi(GP, SCR, 0));
  } else if (k < 94) {
    // compressed forms (RVC quadrants 0-2), registers x8..x15 for the 3-bit fields
    const r3 = () => 8 + r.below(8);
    const rr = () => r.pick(FREE);
    const choice = r.below(10);
    const nz6 = () => 1 + r.below(31);
    if (choice === 0) c.w16(0x0001 | ((rr() & 31) << 7) | ((nz6() & 31) << 2)); // c.addi
    else if (choice === 1) c.w16(0x4001 | ((rr() & 31) << 7) | ((r.below(32)) << 2)); // c.li
    else if (choice === 2) c.w16(0x8002 | (rr() << 7) | (rr() << 2)); // c.mv
    else if (choice === 3) c.w16(0x9002 | (rr() << 7) | (rr() << 2)); // c.add
    else if (choice === 4) c.w16(0x8c01 | ((r3() - 8) << 7) | (r.below(4) << 5) | ((r3() - 8) << 2)); // c.sub/xor/or/and
    else if (choice === 5) c.w16(0x9c01 | ((r3() - 8) << 7) | (r.below(2) << 5) | ((r3() - 8) << 2)); // c.subw/addw
    else if (choice === 6) c.w16(0x2001 | (rr() << 7) | (r.below(32) << 2)); // c.addiw
    else if (choice === 7) c.w16(0x0002 | (rr() << 7) | (nz6() << 2)); // c.slli
    else if (choice === 8) c.w16(0x8001 | (r.below(3) << 10) | ((r3() - 8) << 7) | (nz6() << 2)); // c.srli/srai/andi
    else c.w16(0x0001); // c.nop
  } else if (k < 96) {
    // a trap: illegal, ECALL, EBREAK, or a load from an address nothing answers
    const t = r.below(4);
    if (t === 0) c.w32(0xffffffff);
    else if (t === 1) c.w32(enc.ecall());
    else if (t === 2) c.w32(enc.ebreak());
    else {
      c.li(SCR, 0x5_0000n + BigInt(r.below(0x1000)));
      c.w32(I(0x03, r.pick(LOAD_F3), reg(), SCR, 0));
    }
  } else if (k < 98) {
    // a CSR read the interpreter serves (instret changes with every instruction)
    c.w32(enc.csrrs(reg(), r.pick([0xc02, 0xc00, MSCRATCH, 0xc01]), 0));
  } else if (!inLoop) {
    // FENCE / FENCE.I
    c.w32(r.chance(0.5) ? 0x0ff0000f : 0x0000100f);
  } else {
    c.w32(enc.addi(reg(), reg(), r.below(2048) - 1024));
  }
}
