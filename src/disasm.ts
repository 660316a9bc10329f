// A disassembler for RV64GC, Zicsr, Zifencei and the privileged instructions, printing what
// binutils' objdump prints (`riscv64-unknown-elf-objdump -d`, default options: ABI register names,
// pseudo-instructions on; compressed instructions shown as the instruction they expand to, the
// way objdump 2.40 shows them). test/disasm.test.ts compares it with objdump over every
// instruction of the guests and over a sweep of encodings.
//
// Like objdump it keeps a little state between instructions: the value an auipc/lui put in a
// register, so that a following addi/load/store/jalr on that register gets a `# address` comment.
// The monitor's `x/i`, the `in_asm` trace and gdb-facing code use it.

import { csrName } from "./csr-names.js";

export const GPR_NAMES = [
  "zero", "ra", "sp", "gp", "tp", "t0", "t1", "t2", "s0", "s1", "a0", "a1", "a2", "a3", "a4", "a5",
  "a6", "a7", "s2", "s3", "s4", "s5", "s6", "s7", "s8", "s9", "s10", "s11", "t3", "t4", "t5", "t6",
];
export const FPR_NAMES = [
  "ft0", "ft1", "ft2", "ft3", "ft4", "ft5", "ft6", "ft7", "fs0", "fs1", "fa0", "fa1", "fa2", "fa3", "fa4", "fa5",
  "fa6", "fa7", "fs2", "fs3", "fs4", "fs5", "fs6", "fs7", "fs8", "fs9", "fs10", "fs11", "ft8", "ft9", "ft10", "ft11",
];
const RM = ["rne", "rtz", "rdn", "rup", "rmm", "unknown", "unknown", "dyn"];
const FENCE_SET = ["unknown", "w", "r", "rw", "o", "ow", "or", "orw", "i", "iw", "ir", "irw", "io", "iow", "ior", "iorw"];

/** One disassembled instruction. */
export interface Insn {
  /** Length in bytes (2 or 4; 6 or 8 for the reserved longer encodings). */
  length: number;
  mnemonic: string;
  /** The operands as objdump prints them ("" when there are none). */
  operands: string;
  /** A computed address objdump appends as `# ADDR` (auipc/lui pairs, absolute addresses). */
  comment?: bigint;
  /** Branch or jump target, when the instruction has one. */
  target?: bigint;
}

export interface DisasmOptions {
  /** Which extensions to decode (default: all of RV64GC). */
  f?: boolean;
  d?: boolean;
  c?: boolean;
  /** The privileged spec whose CSR names to use (objdump takes it from the ELF's attributes). */
  privSpec?: "1.11" | "1.12";
  /** The value of __global_pointer$, if known: gp-relative addresses get a comment. */
  gp?: bigint;
  /** How addresses (branch targets, comments) print; default "0x" + hex, as objdump without symbols. */
  formatAddress?: (addr: bigint) => string;
}

const mask64 = (v: bigint) => BigInt.asUintN(64, v);
const hex = (v: number) => "0x" + (v >>> 0).toString(16);

function bits(v: number, hi: number, lo: number): number {
  return (v >>> lo) & ((1 << (hi - lo + 1)) - 1);
}
function sext(v: number, width: number): number {
  const s = 32 - width;
  return (v << s) >> s;
}

/** Length of the instruction whose first 16-bit parcel is `lo16`. */
export function insnLength(lo16: number): number {
  if ((lo16 & 3) !== 3) return 2;
  if ((lo16 & 0x1f) !== 0x1f) return 4;
  if ((lo16 & 0x3f) === 0x1f) return 6;
  if ((lo16 & 0x7f) === 0x3f) return 8;
  return 2; // longer encodings: objdump treats them as a 2-byte unit
}

/**
 * One line in QEMU's disassembly layout (monitor x/i, -d in_asm):
 * "0x<pc>:  <encoding>  <mnemonic> <operands>  # <address>", with objdump's mnemonics.
 */
export function formatQemuInsn(pc: bigint, word: number, len: number, dis: Disassembler): string {
  const insn = dis.decode(word >>> 0, pc);
  const raw = len === 2 ? (word & 0xffff).toString(16).padStart(4, "0") : (word >>> 0).toString(16).padStart(8, "0");
  let text = raw.padEnd(18) + (insn.operands ? insn.mnemonic.padEnd(24) + insn.operands : insn.mnemonic);
  if (insn.comment !== undefined) text = text.padEnd(18 + 24 + 24) + "# 0x" + insn.comment.toString(16);
  return `0x${pc.toString(16).padStart(16, "0")}:  ${text.trimEnd()}`;
}

export class Disassembler {
  private readonly hiAddr: (bigint | undefined)[] = new Array(32).fill(undefined);
  private printAddr: bigint | undefined;
  readonly opts: Required<Pick<DisasmOptions, "f" | "d" | "c">> & DisasmOptions;

  constructor(opts: DisasmOptions = {}) {
    this.opts = { f: true, d: true, c: true, ...opts };
  }

  /** Forgets the auipc/lui values seen so far (a new, unrelated sequence of instructions). */
  resetState(): void {
    this.hiAddr.fill(undefined);
  }

  /** Disassembles the instruction `word` (its low 16 bits for a compressed one) at `pc`. */
  decode(word: number, pc: bigint): Insn {
    this.printAddr = undefined;
    const len = insnLength(word & 0xffff);
    let r: Omit<Insn, "length"> | undefined;
    if (len === 2) r = this.opts.c ? this.decode16(word & 0xffff, pc) : undefined;
    else if (len === 4) r = this.decode32(word >>> 0, pc);
    if (!r) {
      const w = len === 2 ? word & 0xffff : word >>> 0;
      return { length: len, mnemonic: `.${len}byte`, operands: hex(w) };
    }
    const out: Insn = { length: len, ...r };
    if (this.printAddr !== undefined) out.comment = this.printAddr;
    return out;
  }

  /** objdump's text for an instruction: "mnemonic\toperands[ # address]". */
  format(i: Insn): string {
    const fa = this.opts.formatAddress ?? ((a: bigint) => "0x" + a.toString(16));
    let s = i.mnemonic + (i.operands ? "\t" + i.operands : "");
    if (i.comment !== undefined) s += " # " + fa(i.comment);
    return s;
  }

  private addr(a: bigint): string {
    const fa = this.opts.formatAddress ?? ((x: bigint) => "0x" + x.toString(16));
    return fa(mask64(a));
  }

  /** objdump's maybe_print_address: an address from a register an auipc/lui set, gp, tp or zero. */
  private maybeAddress(base: number, offset: number, wide = false): void {
    let a: bigint;
    const hi = this.hiAddr[base];
    if (hi !== undefined) {
      a = (base !== 0 ? hi : 0n) + BigInt(offset);
      this.hiAddr[base] = undefined;
    } else if (base === 3 && this.opts.gp !== undefined) a = this.opts.gp + BigInt(offset);
    else if (base === 4 || base === 0) a = BigInt(offset);
    else return;
    if (wide) a = BigInt.asIntN(32, a);
    this.printAddr = mask64(a);
  }

  private decode32(w: number, pc: bigint): Omit<Insn, "length"> | undefined {
    const op = w & 0x7f;
    const rd = bits(w, 11, 7), rs1 = bits(w, 19, 15), rs2 = bits(w, 24, 20), f3 = bits(w, 14, 12), f7 = bits(w, 31, 25);
    const X = GPR_NAMES, F = FPR_NAMES;
    const immI = w >> 20;
    const immS = (w >> 25 << 5) | rd;
    const R = (m: string, ops: string) => ({ mnemonic: m, operands: ops });
    switch (op) {
      case 0x37: case 0x17: { // LUI, AUIPC
        const imm = BigInt(w & 0xfffff000 | 0) ;
        this.hiAddr[rd] = op === 0x37 ? imm : mask64(pc + imm);
        return R(op === 0x37 ? "lui" : "auipc", `${X[rd]},${hex(w >>> 12)}`);
      }
      case 0x6f: { // JAL
        const imm = sext((bits(w, 31, 31) << 20) | (bits(w, 19, 12) << 12) | (bits(w, 20, 20) << 11) | (bits(w, 30, 21) << 1), 21);
        const t = mask64(pc + BigInt(imm));
        if (rd === 0) return { ...R("j", this.addr(t)), target: t };
        if (rd === 1) return { ...R("jal", this.addr(t)), target: t };
        return { ...R("jal", `${X[rd]},${this.addr(t)}`), target: t };
      }
      case 0x67: { // JALR
        if (f3 !== 0) return undefined;
        if (rd === 0 && rs1 === 1 && immI === 0) return R("ret", "");
        this.maybeAddress(rs1, immI);
        // objdump looks twice at "imm(rs1)" operands of jalr: the second look finds the auipc value used up.
        if (immI !== 0) this.maybeAddress(rs1, immI);
        if (rd === 0) return R("jr", immI === 0 ? X[rs1] : `${immI}(${X[rs1]})`);
        if (rd === 1) return R("jalr", immI === 0 ? X[rs1] : `${immI}(${X[rs1]})`);
        return R("jalr", immI === 0 ? `${X[rd]},${X[rs1]}` : `${X[rd]},${immI}(${X[rs1]})`);
      }
      case 0x63: { // BRANCH
        const imm = sext((bits(w, 31, 31) << 12) | (bits(w, 7, 7) << 11) | (bits(w, 30, 25) << 5) | (bits(w, 11, 8) << 1), 13);
        const t = mask64(pc + BigInt(imm));
        const a = this.addr(t);
        const br = (m: string, ops: string) => ({ mnemonic: m, operands: ops, target: t });
        switch (f3) {
          case 0: return rs2 === 0 ? br("beqz", `${X[rs1]},${a}`) : br("beq", `${X[rs1]},${X[rs2]},${a}`);
          case 1: return rs2 === 0 ? br("bnez", `${X[rs1]},${a}`) : br("bne", `${X[rs1]},${X[rs2]},${a}`);
          case 4:
            if (rs2 === 0) return br("bltz", `${X[rs1]},${a}`);
            if (rs1 === 0) return br("bgtz", `${X[rs2]},${a}`);
            return br("blt", `${X[rs1]},${X[rs2]},${a}`);
          case 5:
            if (rs1 === 0) return br("blez", `${X[rs2]},${a}`);
            if (rs2 === 0) return br("bgez", `${X[rs1]},${a}`);
            return br("bge", `${X[rs1]},${X[rs2]},${a}`);
          case 6: return br("bltu", `${X[rs1]},${X[rs2]},${a}`);
          case 7: return br("bgeu", `${X[rs1]},${X[rs2]},${a}`);
        }
        return undefined;
      }
      case 0x03: { // LOAD
        const m = ["lb", "lh", "lw", "ld", "lbu", "lhu", "lwu"][f3];
        if (!m) return undefined;
        this.maybeAddress(rs1, immI);
        return R(m, `${X[rd]},${immI}(${X[rs1]})`);
      }
      case 0x23: { // STORE
        const m = ["sb", "sh", "sw", "sd"][f3];
        if (!m) return undefined;
        this.maybeAddress(rs1, immS);
        return R(m, `${X[rs2]},${immS}(${X[rs1]})`);
      }
      case 0x13: { // OP-IMM
        switch (f3) {
          case 0:
            if (rd === 0 && rs1 === 0 && immI === 0) return R("nop", "");
            if (rs1 === 0) return R("li", `${X[rd]},${immI}`);
            if (immI === 0) return R("mv", `${X[rd]},${X[rs1]}`);
            this.maybeAddress(rs1, immI);
            return R("add", `${X[rd]},${X[rs1]},${immI}`);
          case 1: return bits(w, 31, 26) === 0 ? R("sll", `${X[rd]},${X[rs1]},${hex(bits(w, 25, 20))}`) : undefined;
          case 2: return R("slti", `${X[rd]},${X[rs1]},${immI}`);
          case 3: return immI === 1 ? R("seqz", `${X[rd]},${X[rs1]}`) : R("sltiu", `${X[rd]},${X[rs1]},${immI}`);
          case 4: return immI === -1 ? R("not", `${X[rd]},${X[rs1]}`) : R("xor", `${X[rd]},${X[rs1]},${immI}`);
          case 5: {
            const f6 = bits(w, 31, 26);
            if (f6 === 0) return R("srl", `${X[rd]},${X[rs1]},${hex(bits(w, 25, 20))}`);
            if (f6 === 0x10) return R("sra", `${X[rd]},${X[rs1]},${hex(bits(w, 25, 20))}`);
            return undefined;
          }
          case 6: return R("or", `${X[rd]},${X[rs1]},${immI}`);
          case 7: return immI === 255 ? R("zext.b", `${X[rd]},${X[rs1]}`) : R("and", `${X[rd]},${X[rs1]},${immI}`);
        }
        return undefined;
      }
      case 0x1b: { // OP-IMM-32
        if (f3 === 0) {
          if (immI === 0) return R("sext.w", `${X[rd]},${X[rs1]}`);
          if (rs1 !== 0) this.maybeAddress(rs1, immI, true);
          return R("addw", `${X[rd]},${X[rs1]},${immI}`);
        }
        if (f3 === 1 && f7 === 0) return R("sllw", `${X[rd]},${X[rs1]},${hex(rs2)}`);
        if (f3 === 5 && f7 === 0) return R("srlw", `${X[rd]},${X[rs1]},${hex(rs2)}`);
        if (f3 === 5 && f7 === 0x20) return R("sraw", `${X[rd]},${X[rs1]},${hex(rs2)}`);
        return undefined;
      }
      case 0x33: { // OP
        const three = (m: string) => R(m, `${X[rd]},${X[rs1]},${X[rs2]}`);
        if (f7 === 0) {
          switch (f3) {
            case 0: return three("add");
            case 1: return three("sll");
            case 2:
              if (rs2 === 0) return R("sltz", `${X[rd]},${X[rs1]}`);
              if (rs1 === 0) return R("sgtz", `${X[rd]},${X[rs2]}`);
              return three("slt");
            case 3: return rs1 === 0 ? R("snez", `${X[rd]},${X[rs2]}`) : three("sltu");
            case 4: return three("xor");
            case 5: return three("srl");
            case 6: return three("or");
            case 7: return three("and");
          }
        }
        if (f7 === 0x20) {
          if (f3 === 0) return rs1 === 0 ? R("neg", `${X[rd]},${X[rs2]}`) : three("sub");
          if (f3 === 5) return three("sra");
          return undefined;
        }
        if (f7 === 1) return three(["mul", "mulh", "mulhsu", "mulhu", "div", "divu", "rem", "remu"][f3]);
        return undefined;
      }
      case 0x3b: { // OP-32
        const three = (m: string) => R(m, `${X[rd]},${X[rs1]},${X[rs2]}`);
        if (f7 === 0) return f3 === 0 ? three("addw") : f3 === 1 ? three("sllw") : f3 === 5 ? three("srlw") : undefined;
        if (f7 === 0x20) {
          if (f3 === 0) return rs1 === 0 ? R("negw", `${X[rd]},${X[rs2]}`) : three("subw");
          return f3 === 5 ? three("sraw") : undefined;
        }
        if (f7 === 1) {
          const m = ["mulw", "", "", "", "divw", "divuw", "remw", "remuw"][f3];
          return m ? three(m) : undefined;
        }
        return undefined;
      }
      case 0x0f: { // MISC-MEM
        if (f3 === 0) {
          if (rd !== 0 || rs1 !== 0) return undefined;
          const fm = bits(w, 31, 28), pred = bits(w, 27, 24), succ = bits(w, 23, 20);
          if (fm === 0) return pred === 15 && succ === 15 ? R("fence", "") : R("fence", `${FENCE_SET[pred]},${FENCE_SET[succ]}`);
          if (fm === 8 && pred === 3 && succ === 3) return R("fence.tso", "");
          return undefined;
        }
        if (f3 === 1 && rd === 0 && rs1 === 0 && immI === 0) return R("fence.i", "");
        return undefined;
      }
      case 0x73: return this.system(w, rd, rs1, rs2, f3);
      case 0x2f: { // AMO
        if (f3 !== 2 && f3 !== 3) return undefined;
        const f5 = bits(w, 31, 27);
        const sz = f3 === 2 ? ".w" : ".d";
        const ord = ["", ".rl", ".aq", ".aqrl"][bits(w, 26, 25)];
        if (f5 === 2) return rs2 === 0 ? R(`lr${sz}${ord}`, `${X[rd]},(${X[rs1]})`) : undefined;
        const names: Record<number, string> = {
          3: "sc", 1: "amoswap", 0: "amoadd", 4: "amoxor", 0xc: "amoand", 8: "amoor",
          0x10: "amomin", 0x14: "amomax", 0x18: "amominu", 0x1c: "amomaxu",
        };
        const m = names[f5];
        return m ? R(`${m}${sz}${ord}`, `${X[rd]},${X[rs2]},(${X[rs1]})`) : undefined;
      }
      case 0x07: case 0x27: { // LOAD-FP, STORE-FP
        const single = f3 === 2, double = f3 === 3;
        if (!(single && this.opts.f) && !(double && this.opts.d)) return undefined;
        if (op === 0x07) {
          this.maybeAddress(rs1, immI);
          return R(single ? "flw" : "fld", `${F[rd]},${immI}(${X[rs1]})`);
        }
        this.maybeAddress(rs1, immS);
        return R(single ? "fsw" : "fsd", `${F[rs2]},${immS}(${X[rs1]})`);
      }
      case 0x43: case 0x47: case 0x4b: case 0x4f: { // FMADD, FMSUB, FNMSUB, FNMADD
        const fmt = bits(w, 26, 25);
        if (!this.fmtOk(fmt)) return undefined;
        const m = ["fmadd", "fmsub", "fnmsub", "fnmadd"][(op - 0x43) >> 2] + (fmt === 0 ? ".s" : ".d");
        return R(m, `${F[rd]},${F[rs1]},${F[rs2]},${F[bits(w, 31, 27)]}${this.rm(f3)}`);
      }
      case 0x53: return this.opFp(w, rd, rs1, rs2, f3, f7);
    }
    return undefined;
  }

  private fmtOk(fmt: number): boolean {
    return (fmt === 0 && this.opts.f) || (fmt === 1 && this.opts.d);
  }

  private rm(f3: number): string {
    return f3 === 7 ? "" : "," + RM[f3];
  }

  private opFp(w: number, rd: number, rs1: number, rs2: number, f3: number, f7: number): Omit<Insn, "length"> | undefined {
    const X = GPR_NAMES, F = FPR_NAMES;
    const fmt = f7 & 3;
    if (fmt > 1 || !this.fmtOk(fmt)) return undefined;
    const s = fmt === 0 ? ".s" : ".d";
    const R = (m: string, ops: string) => ({ mnemonic: m, operands: ops });
    switch (f7 >> 2) {
      case 0x00: return R("fadd" + s, `${F[rd]},${F[rs1]},${F[rs2]}${this.rm(f3)}`);
      case 0x01: return R("fsub" + s, `${F[rd]},${F[rs1]},${F[rs2]}${this.rm(f3)}`);
      case 0x02: return R("fmul" + s, `${F[rd]},${F[rs1]},${F[rs2]}${this.rm(f3)}`);
      case 0x03: return R("fdiv" + s, `${F[rd]},${F[rs1]},${F[rs2]}${this.rm(f3)}`);
      case 0x0b: return rs2 === 0 ? R("fsqrt" + s, `${F[rd]},${F[rs1]}${this.rm(f3)}`) : undefined;
      case 0x04: {
        if (f3 > 2) return undefined;
        if (rs1 === rs2) return R(["fmv", "fneg", "fabs"][f3] + s, `${F[rd]},${F[rs1]}`);
        return R(["fsgnj", "fsgnjn", "fsgnjx"][f3] + s, `${F[rd]},${F[rs1]},${F[rs2]}`);
      }
      case 0x05: return f3 <= 1 ? R(["fmin", "fmax"][f3] + s, `${F[rd]},${F[rs1]},${F[rs2]}`) : undefined;
      case 0x08: { // fcvt.s.d / fcvt.d.s
        if (fmt === 0 && rs2 === 1 && this.opts.d) return R("fcvt.s.d", `${F[rd]},${F[rs1]}${this.rm(f3)}`);
        if (fmt === 1 && rs2 === 0 && f3 === 0) return R("fcvt.d.s", `${F[rd]},${F[rs1]}`);
        return undefined;
      }
      case 0x14: return f3 <= 2 ? R(["fle", "flt", "feq"][f3] + s, `${X[rd]},${F[rs1]},${F[rs2]}`) : undefined;
      case 0x18: return rs2 <= 3 ? R(`fcvt.${["w", "wu", "l", "lu"][rs2]}${s}`, `${X[rd]},${F[rs1]}${this.rm(f3)}`) : undefined;
      case 0x1a: {
        if (rs2 > 3) return undefined;
        // int -> double of a 32-bit value is exact: objdump knows it only with rm = 0, and prints none
        if (fmt === 1 && rs2 <= 1) return f3 === 0 ? R(`fcvt.d.${["w", "wu"][rs2]}`, `${F[rd]},${X[rs1]}`) : undefined;
        return R(`fcvt${s}.${["w", "wu", "l", "lu"][rs2]}`, `${F[rd]},${X[rs1]}${this.rm(f3)}`);
      }
      case 0x1c:
        if (rs2 !== 0) return undefined;
        if (f3 === 0) return R(fmt === 0 ? "fmv.x.w" : "fmv.x.d", `${X[rd]},${F[rs1]}`);
        if (f3 === 1) return R("fclass" + s, `${X[rd]},${F[rs1]}`);
        return undefined;
      case 0x1e:
        if (rs2 !== 0 || f3 !== 0) return undefined;
        return R(fmt === 0 ? "fmv.w.x" : "fmv.d.x", `${F[rd]},${X[rs1]}`);
    }
    return undefined;
  }

  private system(w: number, rd: number, rs1: number, rs2: number, f3: number): Omit<Insn, "length"> | undefined {
    const X = GPR_NAMES;
    const R = (m: string, ops: string) => ({ mnemonic: m, operands: ops });
    const csr = w >>> 20;
    if (f3 === 0) {
      switch (w >>> 0) {
        case 0x00000073: return R("ecall", "");
        case 0x00100073: return R("ebreak", "");
        case 0x10200073: return R("sret", "");
        case 0x30200073: return R("mret", "");
        case 0x7b200073: return R("dret", "");
        case 0x10500073: return R("wfi", "");
      }
      if ((w & 0xfe007fff) === 0x12000073) {
        if (rs2 === 0) return rs1 === 0 ? R("sfence.vma", "") : R("sfence.vma", X[rs1]);
        return R("sfence.vma", `${X[rs1]},${X[rs2]}`);
      }
      return undefined;
    }
    if (f3 === 4) return undefined;
    const name = csrName(csr, this.opts.privSpec) ?? hex(csr);
    const fp = this.opts.f;
    const imm = f3 >= 5;
    const src = imm ? String(rs1) : X[rs1];
    switch (f3 & 3) {
      case 1: // csrrw(i)
        if (!imm && w >>> 0 === 0xc0001073) return R("unimp", "");
        if (fp && csr >= 1 && csr <= 3 && !(imm && csr === 3)) {
          const m = ["", "fsflags", "fsrm", "fscsr"][csr] + (imm ? "i" : "");
          return R(m, rd === 0 && !imm ? src : `${X[rd]},${src}`);
        }
        return rd === 0 ? R("csrw", `${name},${src}`) : R("csrrw", `${X[rd]},${name},${src}`);
      case 2: // csrrs(i)
        if (!imm && rs1 === 0) {
          if (csr >= 0xc00 && csr <= 0xc02) return R(["rdcycle", "rdtime", "rdinstret"][csr - 0xc00], X[rd]);
          if (fp && csr >= 1 && csr <= 3) return R(["", "frflags", "frrm", "frcsr"][csr], X[rd]);
          return R("csrr", `${X[rd]},${name}`);
        }
        return rd === 0 ? R("csrs", `${name},${src}`) : R("csrrs", `${X[rd]},${name},${src}`);
      case 3: // csrrc(i)
        return rd === 0 ? R("csrc", `${name},${src}`) : R("csrrc", `${X[rd]},${name},${src}`);
    }
    return undefined;
  }

  private decode16(h: number, pc: bigint): Omit<Insn, "length"> | undefined {
    const X = GPR_NAMES, F = FPR_NAMES;
    const q = h & 3, f3 = h >>> 13;
    const R = (m: string, ops: string) => ({ mnemonic: m, operands: ops });
    const rdp = bits(h, 4, 2) + 8, rs1p = bits(h, 9, 7) + 8;
    const rd = bits(h, 11, 7), rs2 = bits(h, 6, 2);
    const immCI = sext((bits(h, 12, 12) << 5) | bits(h, 6, 2), 6);
    const uimmCL_W = (bits(h, 12, 10) << 3) | (bits(h, 6, 6) << 2) | (bits(h, 5, 5) << 6);
    const uimmCL_D = (bits(h, 12, 10) << 3) | (bits(h, 6, 5) << 6);
    if (q === 0) {
      switch (f3) {
        case 0: {
          if (h === 0) return R("unimp", "");
          const nz = (bits(h, 12, 11) << 4) | (bits(h, 10, 7) << 6) | (bits(h, 6, 6) << 2) | (bits(h, 5, 5) << 3);
          return nz === 0 ? undefined : R("add", `${X[rdp]},sp,${nz}`);
        }
        case 1: return this.opts.d ? R("fld", `${F[rdp]},${uimmCL_D}(${X[rs1p]})`) : undefined;
        case 2: return R("lw", `${X[rdp]},${uimmCL_W}(${X[rs1p]})`);
        case 3: return R("ld", `${X[rdp]},${uimmCL_D}(${X[rs1p]})`);
        case 5: return this.opts.d ? R("fsd", `${F[rdp]},${uimmCL_D}(${X[rs1p]})`) : undefined;
        case 6: return R("sw", `${X[rdp]},${uimmCL_W}(${X[rs1p]})`);
        case 7: return R("sd", `${X[rdp]},${uimmCL_D}(${X[rs1p]})`);
      }
      return undefined;
    }
    if (q === 1) {
      switch (f3) {
        case 0:
          if (rd === 0) return immCI === 0 ? R("nop", "") : R("c.nop", String(immCI));
          this.maybeAddress(rd, immCI);
          return R("add", `${X[rd]},${X[rd]},${immCI}`);
        case 1:
          if (rd === 0) return undefined;
          if (immCI === 0) return R("sext.w", `${X[rd]},${X[rd]}`);
          this.maybeAddress(rd, immCI, true);
          return R("addw", `${X[rd]},${X[rd]},${immCI}`);
        case 2: return rd === 0 ? R("c.li", `zero,${immCI}`) : R("li", `${X[rd]},${immCI}`);
        case 3: {
          if (rd === 2) {
            const imm = sext((bits(h, 12, 12) << 9) | (bits(h, 6, 6) << 4) | (bits(h, 5, 5) << 6) | (bits(h, 4, 3) << 7) | (bits(h, 2, 2) << 5), 10);
            return R("add", `sp,sp,${imm}`);
          }
          if (immCI === 0) return undefined;
          const ops = `${X[rd]},${hex(immCI & 0xfffff)}`;
          if (rd === 0) return R("c.lui", ops);
          this.hiAddr[rd] = BigInt(immCI) << 12n;
          return R("lui", ops);
        }
        case 4: {
          const f2 = bits(h, 11, 10);
          const sh = (bits(h, 12, 12) << 5) | bits(h, 6, 2);
          if (f2 === 0) return sh === 0 ? R("c.srli64", X[rs1p]) : R("srl", `${X[rs1p]},${X[rs1p]},${hex(sh)}`);
          if (f2 === 1) return sh === 0 ? R("c.srai64", X[rs1p]) : R("sra", `${X[rs1p]},${X[rs1p]},${hex(sh)}`);
          if (f2 === 2) return R("and", `${X[rs1p]},${X[rs1p]},${immCI}`);
          const f = bits(h, 6, 5);
          const m = bits(h, 12, 12) === 0 ? ["sub", "xor", "or", "and"][f] : ["subw", "addw", "", ""][f];
          return m ? R(m, `${X[rs1p]},${X[rs1p]},${X[rdp]}`) : undefined;
        }
        case 5: {
          const imm = sext((bits(h, 12, 12) << 11) | (bits(h, 11, 11) << 4) | (bits(h, 10, 9) << 8) | (bits(h, 8, 8) << 10) |
            (bits(h, 7, 7) << 6) | (bits(h, 6, 6) << 7) | (bits(h, 5, 3) << 1) | (bits(h, 2, 2) << 5), 12);
          const t = mask64(pc + BigInt(imm));
          return { ...R("j", this.addr(t)), target: t };
        }
        case 6: case 7: {
          const imm = sext((bits(h, 12, 12) << 8) | (bits(h, 11, 10) << 3) | (bits(h, 6, 5) << 6) | (bits(h, 4, 3) << 1) | (bits(h, 2, 2) << 5), 9);
          const t = mask64(pc + BigInt(imm));
          return { ...R(f3 === 6 ? "beqz" : "bnez", `${X[rs1p]},${this.addr(t)}`), target: t };
        }
      }
      return undefined;
    }
    if (q === 2) {
      switch (f3) {
        case 0: {
          const sh = (bits(h, 12, 12) << 5) | bits(h, 6, 2);
          if (sh === 0) return R("c.slli64", X[rd]);
          return rd === 0 ? R("c.slli", `zero,${hex(sh)}`) : R("sll", `${X[rd]},${X[rd]},${hex(sh)}`);
        }
        case 1: {
          if (!this.opts.d) return undefined;
          const off = (bits(h, 12, 12) << 5) | (bits(h, 6, 5) << 3) | (bits(h, 4, 2) << 6);
          return R("fld", `${F[rd]},${off}(sp)`);
        }
        case 2: {
          if (rd === 0) return undefined;
          const off = (bits(h, 12, 12) << 5) | (bits(h, 6, 4) << 2) | (bits(h, 3, 2) << 6);
          return R("lw", `${X[rd]},${off}(sp)`);
        }
        case 3: {
          if (rd === 0) return undefined;
          const off = (bits(h, 12, 12) << 5) | (bits(h, 6, 5) << 3) | (bits(h, 4, 2) << 6);
          return R("ld", `${X[rd]},${off}(sp)`);
        }
        case 4:
          if (bits(h, 12, 12) === 0) {
            if (rs2 === 0) return rd === 0 ? undefined : rd === 1 ? R("ret", "") : R("jr", X[rd]);
            return rd === 0 ? R("c.mv", `zero,${X[rs2]}`) : R("mv", `${X[rd]},${X[rs2]}`);
          }
          if (rs2 === 0) return rd === 0 ? R("ebreak", "") : R("jalr", X[rd]);
          return rd === 0 ? R("c.add", `zero,${X[rs2]}`) : R("add", `${X[rd]},${X[rd]},${X[rs2]}`);
        case 5: case 7: {
          if (f3 === 5 && !this.opts.d) return undefined;
          const off = (bits(h, 12, 10) << 3) | (bits(h, 9, 7) << 6);
          return R(f3 === 5 ? "fsd" : "sd", `${f3 === 5 ? F[rs2] : X[rs2]},${off}(sp)`);
        }
        case 6: {
          const off = (bits(h, 12, 9) << 2) | (bits(h, 8, 7) << 6);
          return R("sw", `${X[rs2]},${off}(sp)`);
        }
      }
    }
    return undefined;
  }
}
