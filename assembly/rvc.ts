// The compressed instruction set, RV64C (unprivileged spec chapter 16 "C" Standard Extension).
//
// Every 16-bit parcel is expanded once into the 32-bit instruction it stands for; the table
// (CEXP, 64 Ki x u32) then makes a compressed instruction cost one extra load in the
// interpreter. Reserved and illegal encodings expand to 0, which is itself an illegal
// instruction; the interpreter reports the original 16 bits in tval.
//
// The table fills as parcels are met: it starts all 0 (the core's memory is new), the
// interpreter expands a parcel whose entry is 0 (rvcExpand; an illegal one again each time it
// is met), and the JIT's translator, which reads the table itself, gets it complete
// (jitRvcAddress -> rvcFillAll). Expanding all 64 Ki parcels when the core was made took ~10 ms
// of CPU (the core runs baseline-compiled code then), on the way to every guest's first
// instruction, a restored one's too.

import { CEXP } from "./layout";

// 32-bit encoders (unprivileged spec 2.3, instruction formats).
function iType(op: u32, rd: u32, f3: u32, rs1: u32, imm: i32): u32 {
  return ((<u32>imm & 0xfff) << 20) | (rs1 << 15) | (f3 << 12) | (rd << 7) | op;
}
function sType(op: u32, f3: u32, rs1: u32, rs2: u32, imm: i32): u32 {
  const u = <u32>imm;
  return (((u >> 5) & 0x7f) << 25) | (rs2 << 20) | (rs1 << 15) | (f3 << 12) | ((u & 0x1f) << 7) | op;
}
function rType(op: u32, rd: u32, f3: u32, rs1: u32, rs2: u32, f7: u32): u32 {
  return (f7 << 25) | (rs2 << 20) | (rs1 << 15) | (f3 << 12) | (rd << 7) | op;
}
function bType(f3: u32, rs1: u32, rs2: u32, imm: i32): u32 {
  const u = <u32>imm;
  return (((u >> 12) & 1) << 31) | (((u >> 5) & 0x3f) << 25) | (rs2 << 20) | (rs1 << 15) |
    (f3 << 12) | (((u >> 1) & 0xf) << 8) | (((u >> 11) & 1) << 7) | 0x63;
}
function jType(rd: u32, imm: i32): u32 {
  const u = <u32>imm;
  return (((u >> 20) & 1) << 31) | (((u >> 1) & 0x3ff) << 21) | (((u >> 11) & 1) << 20) |
    (((u >> 12) & 0xff) << 12) | (rd << 7) | 0x6f;
}

@inline function bit(x: u32, n: u32): u32 {
  return (x >> n) & 1;
}
@inline function sext(x: u32, bits: u32): i32 {
  const s = 32 - bits;
  return (<i32>(x << s)) >> s;
}

const OP_LOAD: u32 = 0x03, OP_LOAD_FP: u32 = 0x07, OP_IMM: u32 = 0x13, OP_IMM_32: u32 = 0x1b;
const OP_STORE: u32 = 0x23, OP_STORE_FP: u32 = 0x27, OP_OP: u32 = 0x33, OP_LUI: u32 = 0x37;
const OP_OP_32: u32 = 0x3b, OP_JALR: u32 = 0x67;

// Expands one 16-bit parcel (whose low two bits are not 11). Returns 0 when illegal.
export function expand(c: u32): u32 {
  const quadrant = c & 3;
  const f3 = (c >> 13) & 7;
  const rdp = ((c >> 2) & 7) + 8; // rd' / rs2'
  const rs1p = ((c >> 7) & 7) + 8; // rs1' / rd'
  const rd = (c >> 7) & 31;
  const rs2 = (c >> 2) & 31;
  // The 6-bit immediate of CI-format instructions: imm[5] = c[12], imm[4:0] = c[6:2].
  const ci = (bit(c, 12) << 5) | ((c >> 2) & 31);

  if (quadrant == 0) {
    // CL/CS offsets: LW/SW scaled by 4, LD/SD/FLD/FSD by 8.
    const offW = (((c >> 10) & 7) << 3) | (bit(c, 6) << 2) | (bit(c, 5) << 6);
    const offD = (((c >> 10) & 7) << 3) | (((c >> 5) & 3) << 6);
    switch (f3) {
      case 0: { // C.ADDI4SPN
        const imm = (((c >> 11) & 3) << 4) | (((c >> 7) & 15) << 6) | (bit(c, 6) << 2) | (bit(c, 5) << 3);
        if (imm == 0) return 0;
        return iType(OP_IMM, rdp, 0, 2, imm);
      }
      case 1: return iType(OP_LOAD_FP, rdp, 3, rs1p, offD); // C.FLD
      case 2: return iType(OP_LOAD, rdp, 2, rs1p, offW); // C.LW
      case 3: return iType(OP_LOAD, rdp, 3, rs1p, offD); // C.LD
      case 5: return sType(OP_STORE_FP, 3, rs1p, rdp, offD); // C.FSD
      case 6: return sType(OP_STORE, 2, rs1p, rdp, offW); // C.SW
      case 7: return sType(OP_STORE, 3, rs1p, rdp, offD); // C.SD
      default: return 0;
    }
  }

  if (quadrant == 1) {
    switch (f3) {
      case 0: return iType(OP_IMM, rd, 0, rd, sext(ci, 6)); // C.ADDI (C.NOP)
      case 1: // C.ADDIW
        if (rd == 0) return 0;
        return iType(OP_IMM_32, rd, 0, rd, sext(ci, 6));
      case 2: return iType(OP_IMM, rd, 0, 0, sext(ci, 6)); // C.LI
      case 3: {
        if (rd == 2) { // C.ADDI16SP
          const imm = (bit(c, 12) << 9) | (bit(c, 6) << 4) | (bit(c, 5) << 6) | (((c >> 3) & 3) << 7) |
            (bit(c, 2) << 5);
          if (imm == 0) return 0;
          return iType(OP_IMM, 2, 0, 2, sext(imm, 10));
        }
        if (ci == 0) return 0; // C.LUI with nzimm = 0 is reserved
        return (<u32>(sext(ci, 6) << 12)) | (rd << 7) | OP_LUI;
      }
      case 4: {
        const f2 = (c >> 10) & 3;
        if (f2 == 0) return iType(OP_IMM, rs1p, 5, rs1p, ci & 63); // C.SRLI
        if (f2 == 1) return iType(OP_IMM, rs1p, 5, rs1p, (ci & 63) | 0x400); // C.SRAI
        if (f2 == 2) return iType(OP_IMM, rs1p, 7, rs1p, sext(ci, 6)); // C.ANDI
        const sel = (c >> 5) & 3;
        if (bit(c, 12) == 0) {
          if (sel == 0) return rType(OP_OP, rs1p, 0, rs1p, rdp, 0x20); // C.SUB
          if (sel == 1) return rType(OP_OP, rs1p, 4, rs1p, rdp, 0); // C.XOR
          if (sel == 2) return rType(OP_OP, rs1p, 6, rs1p, rdp, 0); // C.OR
          return rType(OP_OP, rs1p, 7, rs1p, rdp, 0); // C.AND
        }
        if (sel == 0) return rType(OP_OP_32, rs1p, 0, rs1p, rdp, 0x20); // C.SUBW
        if (sel == 1) return rType(OP_OP_32, rs1p, 0, rs1p, rdp, 0); // C.ADDW
        return 0;
      }
      case 5: { // C.J
        const imm = (bit(c, 12) << 11) | (bit(c, 11) << 4) | (((c >> 9) & 3) << 8) | (bit(c, 8) << 10) |
          (bit(c, 7) << 6) | (bit(c, 6) << 7) | (((c >> 3) & 7) << 1) | (bit(c, 2) << 5);
        return jType(0, sext(imm, 12));
      }
      default: { // 6: C.BEQZ, 7: C.BNEZ
        const imm = (bit(c, 12) << 8) | (((c >> 10) & 3) << 3) | (((c >> 5) & 3) << 6) |
          (((c >> 3) & 3) << 1) | (bit(c, 2) << 5);
        return bType(f3 == 6 ? 0 : 1, rs1p, 0, sext(imm, 9));
      }
    }
  }

  if (quadrant == 2) {
    switch (f3) {
      case 0: return iType(OP_IMM, rd, 1, rd, ci & 63); // C.SLLI
      case 1: { // C.FLDSP
        const imm = (bit(c, 12) << 5) | (((c >> 5) & 3) << 3) | (((c >> 2) & 7) << 6);
        return iType(OP_LOAD_FP, rd, 3, 2, imm);
      }
      case 2: { // C.LWSP
        if (rd == 0) return 0;
        const imm = (bit(c, 12) << 5) | (((c >> 4) & 7) << 2) | (((c >> 2) & 3) << 6);
        return iType(OP_LOAD, rd, 2, 2, imm);
      }
      case 3: { // C.LDSP
        if (rd == 0) return 0;
        const imm = (bit(c, 12) << 5) | (((c >> 5) & 3) << 3) | (((c >> 2) & 7) << 6);
        return iType(OP_LOAD, rd, 3, 2, imm);
      }
      case 4: {
        if (bit(c, 12) == 0) {
          if (rs2 == 0) {
            if (rd == 0) return 0; // C.JR with rs1 = 0 is reserved
            return iType(OP_JALR, 0, 0, rd, 0); // C.JR
          }
          return rType(OP_OP, rd, 0, 0, rs2, 0); // C.MV
        }
        if (rs2 == 0) {
          if (rd == 0) return 0x00100073; // C.EBREAK
          return iType(OP_JALR, 1, 0, rd, 0); // C.JALR
        }
        return rType(OP_OP, rd, 0, rd, rs2, 0); // C.ADD
      }
      case 5: { // C.FSDSP
        const imm = (((c >> 10) & 7) << 3) | (((c >> 7) & 7) << 6);
        return sType(OP_STORE_FP, 3, 2, rs2, imm);
      }
      case 6: { // C.SWSP
        const imm = (((c >> 9) & 15) << 2) | (((c >> 7) & 3) << 6);
        return sType(OP_STORE, 2, 2, rs2, imm);
      }
      default: { // C.SDSP
        const imm = (((c >> 10) & 7) << 3) | (((c >> 7) & 7) << 6);
        return sType(OP_STORE, 3, 2, rs2, imm);
      }
    }
  }
  return 0;
}

/** The 32-bit instruction compressed parcel `c` stands for (0: illegal), now in the table too. */
export function rvcExpand(c: u32): u32 {
  const insn = expand(c);
  store<u32>(CEXP + (<usize>c << 2), insn);
  return insn;
}

let g_rvcFull = false;

/** Every entry of the table (the JIT's translator reads it as a whole). */
export function rvcFillAll(): void {
  if (g_rvcFull) return;
  for (let c: u32 = 0; c < 0x10000; c++) {
    if ((c & 3) != 3) store<u32>(CEXP + (<usize>c << 2), expand(c));
  }
  g_rvcFull = true;
}
