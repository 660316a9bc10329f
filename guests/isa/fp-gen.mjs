#!/usr/bin/env node
// fp-gen.mjs: generates the table-driven F/D test programs guests/isa/fp-*.S (see fp-test.h).
//
// The cases (operands) come from a seeded generator below: special values in all combinations,
// plus random values aimed at the hard spots (halfway cases, the underflow and overflow
// thresholds, massive cancellation, conversion limits). The expected results and fflags come from
// QEMU: each program is first built with -DFP_GENERATE, run under qemu-system-riscv64 -M spike,
// and what it prints is frozen into the tables. The committed .S files therefore need neither
// this script nor QEMU.
//
//   node guests/isa/fp-gen.mjs              regenerate every fp-*.S (needs the cross gcc and QEMU)
//   node guests/isa/fp-gen.mjs --big N DIR  write a larger random set (N cases per group) to DIR
//                                           with expectations, for one-off differential runs
import { execFileSync } from "node:child_process";
import { mkdtempSync, writeFileSync, readFileSync, openSync, closeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";

const HERE = dirname(fileURLToPath(import.meta.url));
const CC = process.env.CC ?? "riscv64-unknown-elf-gcc";
const QEMU = process.env.QEMU ?? "qemu-system-riscv64";

// ---------------------------------------------------------------- a seeded PRNG (xorshift64*)
let seed = 0x9e3779b97f4a7c15n;
const M64 = (1n << 64n) - 1n;
function rnd64() {
  seed ^= seed >> 12n;
  seed ^= (seed << 25n) & M64;
  seed ^= seed >> 27n;
  return (seed * 0x2545f4914f6cdd1dn) & M64;
}
const rnd = (n) => Number(rnd64() % BigInt(n)); // 0 <= r < n
const pick = (a) => a[rnd(a.length)];

// ---------------------------------------------------------------- formats
const S = { name: "s", fmt: 0, e: 8, p: 23, bias: 127, w: 32 };
const D = { name: "d", fmt: 1, e: 11, p: 52, bias: 1023, w: 64 };
const emaxField = (F) => (1 << F.e) - 1;
function bits(F, sign, ef, frac) {
  return (BigInt(sign) << BigInt(F.w - 1)) | (BigInt(ef) << BigInt(F.p)) | (frac & ((1n << BigInt(F.p)) - 1n));
}
const box = (F, v) => (F.w === 32 ? v | 0xffffffff00000000n : v);
const fracBits = (F) => (1n << BigInt(F.p)) - 1n;

// special magnitudes (as (exponent field, fraction) builders)
function specials(F) {
  const E = emaxField(F), B = F.bias, P = BigInt(F.p), FM = fracBits(F);
  const mags = [
    bits(F, 0, 0, 0n), // 0
    bits(F, 0, 0, 1n), // min subnormal
    bits(F, 0, 0, FM), // max subnormal
    bits(F, 0, 1, 0n), // min normal
    bits(F, 0, B, 0n), // 1
    bits(F, 0, B, 1n), // 1 + ulp
    bits(F, 0, B - 1, FM), // 1 - ulp/2
    bits(F, 0, B, 1n << (P - 1n)), // 1.5
    bits(F, 0, B + 1, 1n << (P - 1n)), // 3
    bits(F, 0, E - 1, FM), // max
    bits(F, 0, E, 0n), // inf
    bits(F, 0, E, 1n << (P - 1n)), // qNaN
    bits(F, 0, E, 1n), // sNaN
    bits(F, 0, B - (F.p + 1), 0n), // 2^-(p+1): half ulp of 1
  ];
  return mags;
}
const neg = (F, v) => v ^ (1n << BigInt(F.w - 1));
function specialSet(F) {
  const out = [];
  for (const m of specials(F)) {
    out.push(m);
    out.push(neg(F, m));
  }
  return out;
}

// random values with an exponent field drawn from a few regions
function randFrac(F) {
  const FM = fracBits(F);
  switch (rnd(6)) {
    case 0: return rnd64() & FM;
    case 1: return (rnd64() & FM) >> BigInt(rnd(F.p)); // few low bits
    case 2: return FM ^ ((rnd64() & FM) >> BigInt(rnd(F.p) + 1)); // mostly ones
    case 3: return (1n << BigInt(rnd(F.p))) | (rnd(2) ? 0n : 1n);
    case 4: return (rnd64() & FM) & ~((1n << BigInt(rnd(F.p))) - 1n); // few high bits
    default: return rnd64() & FM;
  }
}
function randExp(F) {
  const E = emaxField(F);
  switch (rnd(5)) {
    case 0: return rnd(E); // anywhere finite
    case 1: return rnd(4); // subnormal / tiny
    case 2: return E - 1 - rnd(4); // huge
    default: return F.bias - 8 + rnd(17); // near 1
  }
}
function randVal(F) {
  return bits(F, rnd(2), randExp(F), randFrac(F));
}
function withExp(F, v, ef) {
  const E = emaxField(F);
  ef = Math.max(0, Math.min(E - 1, ef));
  const sign = Number(v >> BigInt(F.w - 1)) & 1;
  return bits(F, sign, ef, v & fracBits(F));
}
const expOf = (F, v) => Number((v >> BigInt(F.p)) & BigInt(emaxField(F)));

// operand pairs aimed at each binary operation's hard spots
function targetedPair(F, op) {
  let a = randVal(F), b = randVal(F);
  const ea = expOf(F, a);
  const E = emaxField(F);
  switch (op) {
    case "add":
    case "sub":
      // exponent gap around the precision: halfway and sticky cases, and cancellation
      if (rnd(3) === 0) b = neg(F, a) ^ BigInt(rnd(4)); // massive cancellation
      else b = withExp(F, b, ea - rnd(F.p + 4));
      if (rnd(2)) a = withExp(F, a, rnd(3) ? a === 0n ? 1 : ea : rnd(3));
      break;
    case "mul": {
      // product exponent near the underflow or overflow threshold, or near 1
      const where = rnd(3);
      const target = where === 0 ? 1 - rnd(F.p + 3) + rnd(3) : where === 1 ? E - 1 + rnd(3) - 1 : F.bias;
      const eb = target - ea + F.bias;
      b = withExp(F, b, eb);
      break;
    }
    case "div": {
      const where = rnd(3);
      const target = where === 0 ? 1 - rnd(F.p + 3) + rnd(3) : where === 1 ? E - 1 + rnd(3) - 1 : F.bias;
      const eb = ea - target + F.bias;
      b = withExp(F, b, eb);
      break;
    }
  }
  return [a, b];
}

// ---------------------------------------------------------------- encodings
const RD = 10, RS1 = 11, RS2 = 12, RS3 = 13;
function opfp(f5, fmt, rs2, rm) {
  return ((((f5 << 2) | fmt) << 25) | (rs2 << 20) | (RS1 << 15) | (rm << 12) | (RD << 7) | 0x53) >>> 0;
}
function r4(opcode, fmt, rm) {
  return ((RS3 << 27) | (fmt << 25) | (RS2 << 20) | (RS1 << 15) | (rm << 12) | (RD << 7) | opcode) >>> 0;
}
const RMS = ["rne", "rtz", "rdn", "rup", "rmm"];

// ---------------------------------------------------------------- programs
// A group: { name, insn, nops, xres, frm, cases: [[op...]] }

function rmVariants(F, make) {
  // every static mode (frm set to a different mode), plus dynamic with each frm
  const out = [];
  for (let rm = 0; rm < 5; rm++) out.push(make(rm, (rm + 2) % 5, RMS[rm]));
  for (let frm = 0; frm < 5; frm++) out.push(make(7, frm, "dyn/" + RMS[frm], true));
  return out;
}

function arithGroups(F, n) {
  const groups = [];
  const sp = specialSet(F);
  const ops = [["add", 0], ["sub", 1], ["mul", 2], ["div", 3]];
  for (const [name, f5] of ops) {
    for (const g of rmVariants(F, (rm, frm, rmName, dyn) => {
      const cases = [];
      if (!dyn) for (const a of sp) for (const b of sp) cases.push([a, b]);
      for (let i = 0; i < (dyn ? n / 4 : n); i++) cases.push(targetedPair(F, name));
      return { name: `f${name}.${F.name} ${rmName}`, insn: opfp(f5, F.fmt, RS2, rm), nops: 2, xres: 0, frm, cases };
    })) groups.push(g);
  }
  for (const g of rmVariants(F, (rm, frm, rmName, dyn) => {
    const cases = [];
    if (!dyn) for (const a of sp) cases.push([a]);
    for (let i = 0; i < (dyn ? n / 4 : n); i++) {
      let a = randVal(F);
      if (rnd(2)) a &= ~(1n << BigInt(F.w - 1));
      // perfect squares and near-squares
      if (rnd(4) === 0) {
        const m = rnd64() & ((1n << BigInt(F.p >> 1)) - 1n);
        a = bits(F, 0, F.bias + rnd(40) - 20, (m * m) << BigInt(rnd(4)));
      }
      cases.push([a]);
    }
    return { name: `fsqrt.${F.name} ${rmName}`, insn: opfp(0x0b, F.fmt, 0, rm), nops: 1, xres: 0, frm, cases };
  })) groups.push(g);
  for (const g of groups) if (F.w === 32) g.cases = g.cases.map((c) => c.map((v) => box(F, v)));
  return groups;
}

function fmaGroups(F, n) {
  const groups = [];
  const sp = specialSet(F);
  const small = [sp[0], sp[1], sp[8], sp[20], sp[21], sp[22], sp[24], sp[4], sp[18]];
  const variants = [["fmadd", 0x43], ["fmsub", 0x47], ["fnmsub", 0x4b], ["fnmadd", 0x4f]];
  for (const [name, opcode] of variants) {
    for (const g of rmVariants(F, (rm, frm, rmName, dyn) => {
      const cases = [];
      if (!dyn && (rm === 0 || rm === 2)) for (const a of small) for (const b of small) for (const c of small) cases.push([a, b, c]);
      for (let i = 0; i < (dyn ? n / 4 : n); i++) {
        let [a, b] = targetedPair(F, "mul");
        let c;
        switch (rnd(4)) {
          case 0: c = randVal(F); break;
          case 1: {
            // c near -(a*b): cancellation; computed from the exponents only
            const ep = expOf(F, a) + expOf(F, b) - F.bias;
            c = withExp(F, rnd64() & ((1n << BigInt(F.w)) - 1n), ep + rnd(3) - 1);
            break;
          }
          case 2: c = withExp(F, randVal(F), expOf(F, a) + expOf(F, b) - F.bias - rnd(2 * F.p + 8)); break;
          default: {
            [a, b] = targetedPair(F, "add");
            c = randVal(F);
          }
        }
        cases.push([a, b, c]);
      }
      return { name: `${name}.${F.name} ${rmName}`, insn: r4(opcode, F.fmt, rm), nops: 3, xres: 0, frm, cases };
    })) groups.push(g);
  }
  for (const g of groups) if (F.w === 32) g.cases = g.cases.map((c) => c.map((v) => box(F, v)));
  return groups;
}

// values around the integer conversion limits
function intLimitVals(F) {
  const out = [];
  const B = F.bias;
  for (const k of [0, 1, 30, 31, 32, 52, 53, 62, 63, 64, 65]) {
    if (B + k >= emaxField(F)) continue;
    for (const s of [0, 1]) {
      out.push(bits(F, s, B + k, 0n));
      out.push(bits(F, s, B + k - 1, fracBits(F))); // just below 2^k
      out.push(bits(F, s, B + k, 1n)); // just above
      out.push(bits(F, s, B + k - 1, fracBits(F) >> 1n));
    }
  }
  for (const s of [0, 1]) {
    for (const m of [B - 1, B - 2, B - 3]) out.push(bits(F, s, m, BigInt(rnd(1 << 20))));
    out.push(bits(F, s, B - 1, 0n)); // 0.5
    out.push(bits(F, s, B, 1n << BigInt(F.p - 1))); // 1.5
    out.push(bits(F, s, B + 1, 1n << BigInt(F.p - 2))); // 2.5
    out.push(bits(F, s, B + 1, 1n << BigInt(F.p - 1))); // 3
    out.push(bits(F, s, B + 1, 3n << BigInt(F.p - 2))); // 3.5
  }
  return out;
}

function cvtGroups(F, n) {
  const groups = [];
  const kinds = ["w", "wu", "l", "lu"];
  for (let k = 0; k < 4; k++) {
    for (const g of rmVariants(F, (rm, frm, rmName, dyn) => {
      const cases = [];
      if (!dyn) for (const v of [...specialSet(F), ...intLimitVals(F)]) cases.push([box(F, v)]);
      for (let i = 0; i < (dyn ? n / 8 : n / 2); i++) {
        let v = randVal(F);
        v = withExp(F, v, F.bias + rnd(70) - 3);
        cases.push([box(F, v)]);
      }
      return { name: `fcvt.${kinds[k]}.${F.name} ${rmName}`, insn: opfp(0x18, F.fmt, k, rm), nops: 1, xres: 1, frm, cases };
    })) groups.push(g);
  }
  for (let k = 0; k < 4; k++) {
    for (const g of rmVariants(F, (rm, frm, rmName, dyn) => {
      const cases = [];
      const ints = [0n, 1n, M64, 0x7fffffffn, 0x80000000n, 0xffffffffn, 0xffffffff80000000n, 0x7fffffffffffffffn,
        0x8000000000000000n, 0x8000000000000001n, 0xfffffffffffffffen, 0x1000001n, 0x1000003n, 0x20000000000001n, 0x20000000000003n,
        0xffffff7fn, 0xffffff80n, 0xffffff81n, 0x7fffffbfn, 0x7fffffc0n, 0xfffffffffffff800n, 0xfffffffffffffc00n, 0xfffffffffffffbffn];
      if (!dyn) for (const v of ints) cases.push([v]);
      for (let i = 0; i < (dyn ? n / 8 : n / 2); i++) {
        let v = rnd64() >> BigInt(rnd(64));
        if (rnd(2)) v = (M64 - v + 1n) & M64;
        if (rnd(3) === 0) v = (v & ~0xffffffffn) | (rnd(2) ? 0n : 0xffffffffn);
        cases.push([v]);
      }
      return { name: `fcvt.${F.name}.${kinds[k]} ${rmName}`, insn: opfp(0x1a, F.fmt, k, rm), nops: 1, xres: 0, frm, cases };
    })) groups.push(g);
  }
  return groups;
}

function ffGroups(n) {
  const groups = [];
  // fcvt.s.d: S destination, D source
  for (const g of rmVariants(D, (rm, frm, rmName, dyn) => {
    const cases = [];
    if (!dyn) for (const v of specialSet(D)) cases.push([v]);
    for (let i = 0; i < (dyn ? n / 4 : 2 * n); i++) {
      let v = randVal(D);
      // around the single range: overflow, underflow, subnormal singles, halfway cases
      const where = rnd(4);
      if (where === 0) v = withExp(D, v, 1023 + 127 + rnd(3) - 1);
      else if (where === 1) v = withExp(D, v, 1023 - 126 - rnd(27));
      else if (where === 2) v = (v & ~((1n << 29n) - 1n)) | (BigInt(rnd(2)) << 28n) | BigInt(rnd(2));
      cases.push([v]);
    }
    return { name: `fcvt.s.d ${rmName}`, insn: opfp(0x08, 0, 1, rm), nops: 1, xres: 0, frm, cases };
  })) groups.push(g);
  for (const g of rmVariants(S, (rm, frm, rmName, dyn) => {
    const cases = [];
    if (!dyn) for (const v of specialSet(S)) cases.push([box(S, v)]);
    for (let i = 0; i < n / 4; i++) cases.push([box(S, randVal(S))]);
    if (!dyn) cases.push([0x7f800000n], [0xfffffffe3f800000n], [0x3f800000ffffffffn]); // mis-boxed
    return { name: `fcvt.d.s ${rmName}`, insn: opfp(0x08, 1, 0, rm), nops: 1, xres: 0, frm, cases };
  })) groups.push(g);
  return groups;
}

// sign injection, min/max, compares, class, moves: no rounding mode
function miscGroups(F, n) {
  const groups = [];
  const sp = specialSet(F);
  const vals = [...sp.map((v) => box(F, v))];
  if (F.w === 32) vals.push(0x3f800000n, 0x7fc00000n, 0xfffffffe3f800000n, 0x00000000ffffffffn); // mis-boxed
  const pairs = [];
  for (const a of vals) for (const b of vals) pairs.push([a, b]);
  for (let i = 0; i < n; i++) pairs.push([box(F, randVal(F)), box(F, randVal(F))]);
  const two = (name, f5, rm, xres) => ({ name: `${name}.${F.name}`, insn: opfp(f5, F.fmt, RS2, rm), nops: 2, xres, frm: 0, cases: pairs });
  groups.push(two("fsgnj", 4, 0, 0), two("fsgnjn", 4, 1, 0), two("fsgnjx", 4, 2, 0));
  groups.push(two("fmin", 5, 0, 0), two("fmax", 5, 1, 0));
  groups.push(two("fle", 0x14, 0, 1), two("flt", 0x14, 1, 1), two("feq", 0x14, 2, 1));
  const singles = [...vals.map((v) => [v])];
  for (let i = 0; i < n; i++) singles.push([box(F, randVal(F))]);
  groups.push({ name: `fclass.${F.name}`, insn: opfp(0x1c, F.fmt, 0, 1), nops: 1, xres: 1, frm: 0, cases: singles });
  groups.push({ name: `fmv.x.${F.w === 32 ? "w" : "d"}`, insn: opfp(0x1c, F.fmt, 0, 0), nops: 1, xres: 1, frm: 0, cases: singles });
  const ints = singles.map(([v]) => [v ^ (rnd(2) ? 0xffffffff00000000n : 0n)]);
  groups.push({ name: `fmv.${F.w === 32 ? "w" : "d"}.x`, insn: opfp(0x1e, F.fmt, 0, 0), nops: 1, xres: 0, frm: 0, cases: ints });
  return groups;
}

// ---------------------------------------------------------------- output
const hex = (v) => "0x" + v.toString(16).padStart(16, "0");

function writeProgram(path, title, groups, expected) {
  let k = 0;
  const text = [];
  text.push(`/* ${title}`);
  text.push(` * GENERATED by fp-gen.mjs; expected values computed by qemu-system-riscv64. Do not edit. */`);
  text.push(`#include "fp-test.h"`);
  text.push(``);
  text.push(`        TEST_BEGIN`);
  text.push(`        FP_ENABLE`);
  groups.forEach((g, i) => {
    text.push(`        FP_GROUP ${i + 1}, fp_t${i + 1}, 0x${g.insn.toString(16).padStart(8, "0")} /* ${g.name} */`);
  });
  text.push(`        TEST_END`);
  text.push(`        FP_SUBROUTINES`);
  text.push(``);
  text.push(`        .data`);
  text.push(`        .balign 8`);
  groups.forEach((g, i) => {
    text.push(`fp_t${i + 1}: /* ${g.name} */`);
    text.push(`        .word 0x${g.insn.toString(16).padStart(8, "0")}, ${g.cases.length}, ${g.nops}, ${g.xres}, ${g.frm}, 0`);
    for (const c of g.cases) {
      const e = expected ? expected[k++] : [0n, 0n];
      text.push(`        .dword ${c.map(hex).join(", ")}, ${hex(e[0])}, 0x${e[1].toString(16)}`);
    }
  });
  writeFileSync(path, text.join("\n") + "\n");
}

function build(src, elf, defs = []) {
  execFileSync(CC, ["-march=rv64imafdc_zicsr_zifencei", "-mabi=lp64d", "-nostdlib", "-nostartfiles", "-static",
    "-T", join(HERE, "link.ld"), "-I", HERE, ...defs, "-o", elf, src]);
}

// QEMU's stdio console drops characters when a pipe is full: write to a file instead.
function runQemu(elf) {
  const outPath = elf + ".out";
  const fd = openSync(outPath, "w");
  try {
    execFileSync(QEMU, ["-M", "spike", "-bios", "none", "-kernel", elf, "-nographic", "-monitor", "none"], {
      timeout: 600000, stdio: ["ignore", fd, "inherit"],
    });
  } catch (e) {
    throw new Error(`QEMU run of ${elf} failed: ${e.message}`);
  } finally {
    closeSync(fd);
  }
  return readFileSync(outPath, "utf8");
}

// Builds the generator variant, runs it under QEMU, writes the program with the expectations.
function generate(path, title, groups) {
  const dir = mkdtempSync(join(tmpdir(), "fp-gen-"));
  const tmpSrc = join(dir, "gen.S");
  writeProgram(tmpSrc, title, groups, null);
  build(tmpSrc, join(dir, "gen.elf"), ["-DFP_GENERATE"]);
  const out = runQemu(join(dir, "gen.elf"));
  const lines = out.split(/\r?\n/).filter((l) => /^[0-9a-f]{16} [0-9a-f]{2}$/.test(l));
  const total = groups.reduce((s, g) => s + g.cases.length, 0);
  if (lines.length !== total) throw new Error(`${path}: QEMU printed ${lines.length} results for ${total} cases`);
  const expected = lines.map((l) => [BigInt("0x" + l.slice(0, 16)), BigInt("0x" + l.slice(17))]);
  writeProgram(path, title, groups, expected);
  console.log(`${path}: ${groups.length} groups, ${total} cases`);
}

const PROGRAMS = (n) => [
  ["fp-arith-s", "F: fadd/fsub/fmul/fdiv/fsqrt.s in every rounding mode", () => arithGroups(S, n)],
  ["fp-arith-d", "D: fadd/fsub/fmul/fdiv/fsqrt.d in every rounding mode", () => arithGroups(D, n)],
  ["fp-fma", "F and D: fused multiply-add family in every rounding mode", () => [...fmaGroups(S, n), ...fmaGroups(D, n)]],
  ["fp-cvt", "F and D: conversions to/from integers and between formats", () => [...cvtGroups(S, n), ...cvtGroups(D, n), ...ffGroups(n)]],
  ["fp-misc", "F and D: sign injection, min/max, compares, fclass, moves", () => [...miscGroups(S, n), ...miscGroups(D, n)]],
];

const args = process.argv.slice(2);
if (args[0] === "--big") {
  const n = Number(args[1]);
  const dir = args[2];
  seed = BigInt(args[3] ?? 12345) | 1n;
  for (const [name, title, make] of PROGRAMS(n)) generate(join(dir, name + ".S"), title, make());
} else {
  for (const [name, title, make] of PROGRAMS(160)) generate(join(HERE, name + ".S"), title, make());
}
