// The F/D unit (assembly/fpu.ts, assembly/softfloat.ts) tested directly, without a hart:
//  - every case of the guests/isa/fp-*.S tables (expected results and fflags computed by QEMU)
//    through execFp, in-process;
//  - illegal encodings (reserved rounding modes, bad frm, bad funct fields) change nothing;
//  - the native fast paths against the integer softfloat path on random operands aimed at
//    rounding boundaries, in every static rounding mode.

import { beforeAll, describe, expect, it } from "vitest";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";

const ROOT = new URL("..", import.meta.url).pathname;

// Hart layout offsets (assembly/layout.ts).
const XREG = 0x1000 / 8;
const FREG = 0x1100 / 8;
const H_FFLAGS = 0x1248 / 8;
const H_FRM = 0x1250 / 8;

// A test module around the unit: execFp itself, plus a fuzzer (in AssemblyScript, to keep
// BigInt crossings out of the inner loop) comparing execFp with the softfloat path.
function harnessSource(dir: string): string {
  const rel = (f: string) => relative(dir, join(ROOT, "assembly", f)).replace(/\\/g, "/");
  return `
import { execFp } from "${rel("fpu")}";
import * as sf from "${rel("softfloat")}";
import { FREG, H_FFLAGS } from "${rel("layout")}";
export { execFp };

let s: u64 = 1;
function rnd(): u64 {
  s ^= s >> 12; s ^= s << 25; s ^= s >> 27;
  return s * 0x2545f4914f6cdd1d;
}
function below(n: u64): u64 { return rnd() % n; }

// A random fraction of p bits with runs of zeros and ones (halfway and sticky patterns).
function frac(p: u64): u64 {
  let m: u64 = (<u64>1 << p) - 1;
  let f = rnd() & m;
  let k = below(5);
  if (k == 0) f &= ~((<u64>1 << below(p)) - 1);
  else if (k == 1) f |= (<u64>1 << below(p)) - 1;
  else if (k == 2) f >>= below(p);
  else if (k == 3) f = (f & ~((<u64>1 << below(p)) - 1)) | (<u64>1 << below(p));
  return f & m;
}
// exponent field: anywhere, near the bottom, near the top, or near 1, or relative to 'near'
function expField(fmt: u32, near: i64): u64 {
  let top: i64 = fmt == 1 ? 2046 : 254;
  let bias: i64 = fmt == 1 ? 1023 : 127;
  let k = below(6);
  let e: i64;
  if (k == 0) e = <i64>below(<u64>top + 1);
  else if (k == 1) e = <i64>below(4);
  else if (k == 2) e = top - <i64>below(4);
  else if (k == 3) e = bias - 20 + <i64>below(41);
  else e = near + <i64>below(9) - 4;
  if (e < 0) e = 0;
  if (e > top) e = top;
  return <u64>e;
}
function val(fmt: u32, near: i64): u64 {
  let sign = rnd() >> 63;
  if (fmt == 1) return (sign << 63) | (expField(1, near) << 52) | frac(52);
  return 0xffffffff00000000 | (sign << 31) | (expField(0, near) << 23) | frac(23);
}
function expOf(v: u64, fmt: u32): i64 {
  return fmt == 1 ? <i64>((v >> 52) & 0x7ff) : <i64>((v >> 23) & 0xff);
}

export let badA: u64 = 0, badB: u64 = 0, badC: u64 = 0, badGot: u64 = 0, badWant: u64 = 0;
export let badGotFl: u32 = 0, badWantFl: u32 = 0;

// Runs n random cases of one static-rm instruction (rd f10, rs1 f11, rs2 f12, rs3 f13) and
// returns the number of disagreements with the softfloat path (the first one kept in bad*).
export function fuzz(insn: u32, n: u32, seed: u64): u32 {
  s = seed | 1;
  let fmt = (insn >> 25) & 3;
  let rm = (insn >> 12) & 7;
  let r4 = (insn & 0x7f) != 0x53;
  let f5 = insn >> 27;
  let bias: i64 = fmt == 1 ? 1023 : 127;
  let top: i64 = fmt == 1 ? 2046 : 254;
  let bad: u32 = 0;
  for (let i: u32 = 0; i < n; i++) {
    let a = val(fmt, bias);
    let ea = expOf(a, fmt);
    let near: i64;
    let op = r4 ? 2 : f5;
    if (op <= 1) near = ea - <i64>below(fmt == 1 ? 58 : 29);
    else if (op == 2) near = (below(2) == 0 ? 2 * bias - ea + (below(2) == 0 ? -bias : top - bias) : 2 * bias - ea);
    else near = ea - bias + (below(2) == 0 ? bias : below(2) == 0 ? 0 : top);
    let b = val(fmt, near);
    let c = val(fmt, r4 ? ea + expOf(b, fmt) - bias : 0);
    if (r4 && below(3) == 0) c = val(fmt, ea + expOf(b, fmt) - bias - <i64>below(fmt == 1 ? 110 : 50));
    store<u64>(FREG + 11 * 8, a);
    store<u64>(FREG + 12 * 8, b);
    store<u64>(FREG + 13 * 8, c);
    store<u64>(H_FFLAGS, 0);
    execFp(insn);
    let got = load<u64>(FREG + 10 * 8);
    let gotFl = <u32>load<u64>(H_FFLAGS);
    sf.rmode = rm;
    sf.flags = 0;
    let sa = fmt == 1 ? a : a & 0xffffffff, sb = fmt == 1 ? b : b & 0xffffffff, sc = fmt == 1 ? c : c & 0xffffffff;
    let want: u64;
    if (r4) {
      let k = (insn >> 2) & 3;
      want = sf.sfFma(sa, sb, sc, k >> 1, k & 1, fmt);
    } else if (f5 <= 1) want = sf.sfAdd(sa, sb, f5, fmt);
    else if (f5 == 2) want = sf.sfMul(sa, sb, fmt);
    else want = sf.sfDiv(sa, sb, fmt);
    if (fmt == 0) want |= 0xffffffff00000000;
    if (got != want || gotFl != sf.flags) {
      if (bad == 0) {
        badA = a; badB = b; badC = c; badGot = got; badWant = want; badGotFl = gotFl; badWantFl = sf.flags;
      }
      bad++;
    }
  }
  return bad;
}
`;
}

interface Harness {
  memory: WebAssembly.Memory;
  execFp(insn: number): number;
  fuzz(insn: number, n: number, seed: bigint): number;
  [k: string]: unknown;
}

let hx: Harness;
let mem: BigUint64Array;

beforeAll(() => {
  const dir = mkdtempSync(join(tmpdir(), "rvm-fpu-"));
  writeFileSync(join(dir, "harness.ts"), harnessSource(dir));
  const asc = join(ROOT, "node_modules", ".bin", "asc");
  execFileSync(asc, [join(dir, "harness.ts"), "-O3", "--runtime", "stub", "--noAssert", "--uncheckedBehavior", "always",
    "--memoryBase", "4194304", "--initialMemory", "80", "-o", join(dir, "harness.wasm")], { stdio: "pipe", cwd: dir }); // not the core's asconfig.json (shared memory)
  const module = new WebAssembly.Module(readFileSync(join(dir, "harness.wasm")));
  const inst = new WebAssembly.Instance(module, { env: { abort: () => { throw new Error("abort"); } } });
  hx = inst.exports as unknown as Harness;
  mem = new BigUint64Array(hx.memory.buffer);
}, 60_000);

const g64 = (name: string): bigint => (hx[name] as WebAssembly.Global).value as bigint;
const g32 = (name: string): number => (hx[name] as WebAssembly.Global).value as number;
const hex = (v: bigint): string => "0x" + v.toString(16);

interface Group {
  name: string;
  insn: number;
  nops: number;
  xres: boolean;
  frm: bigint;
  cases: bigint[][];
}

// Parses the tables of a generated fp-*.S program (format in guests/isa/fp-test.h).
function parseTables(file: string): Group[] {
  const groups: Group[] = [];
  let name = "";
  let g: Group | null = null;
  for (const line of readFileSync(file, "utf8").split("\n")) {
    let m = /^fp_t\d+: \/\* (.*) \*\//.exec(line);
    if (m) {
      name = m[1];
      continue;
    }
    m = /^\s+\.word 0x([0-9a-f]+), (\d+), (\d+), (\d+), (\d+), 0/.exec(line);
    if (m) {
      g = { name, insn: parseInt(m[1], 16), nops: +m[3], xres: m[4] === "1", frm: BigInt(m[5]), cases: [] };
      groups.push(g);
      continue;
    }
    m = /^\s+\.dword (.*)$/.exec(line);
    if (m && g) g.cases.push(m[1].split(", ").map((s) => BigInt(s)));
  }
  return groups;
}

// the generated programs (fp-state.S is hand-written, without tables)
const tableFiles = readdirSync(join(ROOT, "guests/isa"))
  .filter((n) => /^fp-.*\.S$/.test(n) && readFileSync(join(ROOT, "guests/isa", n), "utf8").includes("GENERATED by fp-gen.mjs"))
  .sort();

describe("F/D unit against the QEMU-computed tables", { timeout: 120_000 }, () => {
  it("has the tables", () => {
    expect(tableFiles.length).toBeGreaterThanOrEqual(5);
  });
  for (const file of tableFiles) {
    it(file, () => {
      const groups = parseTables(join(ROOT, "guests/isa", file));
      let total = 0;
      const failures: string[] = [];
      for (const g of groups) {
        for (const c of g.cases) {
          const ops = c.slice(0, g.nops);
          const want = c[g.nops];
          const wantFl = c[g.nops + 1];
          mem[FREG + 11] = ops[0];
          mem[FREG + 12] = ops[1] ?? 0n;
          mem[FREG + 13] = ops[2] ?? 0n;
          mem[XREG + 11] = ops[0];
          mem[FREG + 10] = 0n;
          mem[XREG + 10] = 0n;
          mem[H_FRM] = g.frm;
          mem[H_FFLAGS] = 0n;
          const ok = hx.execFp(g.insn);
          const got = g.xres ? mem[XREG + 10] : mem[FREG + 10];
          const gotFl = mem[H_FFLAGS];
          total++;
          if (!ok || got !== want || gotFl !== wantFl) {
            if (failures.length < 10) {
              failures.push(`${g.name} (${ops.map(hex).join(", ")}): want ${hex(want)} flags ${hex(wantFl)}, ` +
                `got ${ok ? hex(got) : "illegal"} flags ${hex(gotFl)}`);
            }
          }
        }
      }
      expect(failures).toEqual([]);
      expect(total).toBeGreaterThan(1000);
    });
  }
});

// encoders (rd 10, rs1 11, rs2 12, rs3 13)
const opfp = (f5: number, fmt: number, rs2: number, rm: number): number =>
  ((((f5 << 2) | fmt) << 25) | (rs2 << 20) | (11 << 15) | (rm << 12) | (10 << 7) | 0x53) >>> 0;
const r4 = (opcode: number, fmt: number, rm: number): number =>
  ((13 << 27) | (fmt << 25) | (12 << 20) | (11 << 15) | (rm << 12) | (10 << 7) | opcode) >>> 0;

describe("illegal encodings change nothing", { timeout: 120_000 }, () => {
  const cases: [string, number, bigint][] = [];
  for (const fmt of [0, 1]) {
    for (const rm of [5, 6]) {
      cases.push([`fadd rm=${rm}`, opfp(0, fmt, 12, rm), 0n]);
      cases.push([`fsqrt rm=${rm}`, opfp(0x0b, fmt, 0, rm), 0n]);
      cases.push([`fmadd rm=${rm}`, r4(0x43, fmt, rm), 0n]);
      cases.push([`fcvt.w rm=${rm}`, opfp(0x18, fmt, 0, rm), 0n]);
      cases.push([`fcvt.from.w rm=${rm}`, opfp(0x1a, fmt, 0, rm), 0n]);
    }
    for (const frm of [5n, 6n, 7n]) {
      cases.push([`fmul dyn frm=${frm}`, opfp(2, fmt, 12, 7), frm]);
      cases.push([`fnmadd dyn frm=${frm}`, r4(0x4f, fmt, 7), frm]);
      cases.push([`fcvt.l dyn frm=${frm}`, opfp(0x18, fmt, 2, 7), frm]);
    }
    cases.push([`fsgnj rm=3`, opfp(4, fmt, 12, 3), 0n]);
    cases.push([`fmin rm=2`, opfp(5, fmt, 12, 2), 0n]);
    cases.push([`fcmp rm=3`, opfp(0x14, fmt, 12, 3), 0n]);
    cases.push([`fsqrt rs2=1`, opfp(0x0b, fmt, 1, 0), 0n]);
    cases.push([`fcvt.int rs2=4`, opfp(0x18, fmt, 4, 0), 0n]);
    cases.push([`fcvt.fmt.int rs2=5`, opfp(0x1a, fmt, 5, 0), 0n]);
    cases.push([`fclass rs2=1`, opfp(0x1c, fmt, 1, 1), 0n]);
    cases.push([`fmv.x rm=2`, opfp(0x1c, fmt, 0, 2), 0n]);
    cases.push([`fmv.f.x rm=1`, opfp(0x1e, fmt, 0, 1), 0n]);
    cases.push([`funct5 0x06`, opfp(0x06, fmt, 12, 0), 0n]);
    cases.push([`fcvt.${fmt ? "d" : "s"}.${fmt ? "d" : "s"}`, opfp(0x08, fmt, fmt, 0), 0n]);
    cases.push([`fcvt.fmt.h`, opfp(0x08, fmt, 2, 0), 0n]);
  }
  cases.push([`fadd.h`, opfp(0, 2, 12, 0), 0n]);
  cases.push([`fadd.q`, opfp(0, 3, 12, 0), 0n]);
  cases.push([`fmadd.q`, r4(0x43, 3, 0), 0n]);
  cases.push([`not an FP opcode`, 0x00000013, 0n]);
  for (const [name, insn, frm] of cases) {
    it(name, () => {
      for (let i = 0; i < 32; i++) {
        mem[FREG + i] = 0x1111111111111111n * BigInt(i);
        mem[XREG + i] = 0x2222222222222222n ^ BigInt(i);
      }
      mem[FREG + 11] = 0xffffffff7f800001n; // sNaN operands: a legal op would raise NV
      mem[FREG + 12] = 0x7ff0000000000001n;
      mem[H_FRM] = frm;
      mem[H_FFLAGS] = 0n;
      expect(hx.execFp(insn)).toBe(0);
      expect(mem[H_FFLAGS]).toBe(0n);
      expect(mem[FREG + 10]).toBe(0x1111111111111111n * 10n);
      expect(mem[XREG + 10]).toBe(0x2222222222222222n ^ 10n);
    });
  }
});

describe("native fast paths agree with the softfloat path", { timeout: 120_000 }, () => {
  const rmNames = ["rne", "rtz", "rdn", "rup", "rmm"];
  const ops: [string, (fmt: number, rm: number) => number][] = [
    ["fadd", (fmt, rm) => opfp(0, fmt, 12, rm)],
    ["fsub", (fmt, rm) => opfp(1, fmt, 12, rm)],
    ["fmul", (fmt, rm) => opfp(2, fmt, 12, rm)],
    ["fdiv", (fmt, rm) => opfp(3, fmt, 12, rm)],
    ["fmadd", (fmt, rm) => r4(0x43, fmt, rm)],
    ["fnmsub", (fmt, rm) => r4(0x4b, fmt, rm)],
  ];
  for (const fmt of [0, 1]) {
    for (const [name, enc] of ops) {
      it(`${name}.${fmt ? "d" : "s"} in every mode`, () => {
        for (let rm = 0; rm < 5; rm++) {
          const n = hx.fuzz(enc(fmt, rm), 40_000, BigInt(1 + rm * 7919 + fmt * 104729));
          const detail = n === 0 ? "" : `${rmNames[rm]}: ${hex(g64("badA"))} ${hex(g64("badB"))} ${hex(g64("badC"))} ` +
            `got ${hex(g64("badGot"))}/${g32("badGotFl")} want ${hex(g64("badWant"))}/${g32("badWantFl")}`;
          expect(detail).toBe("");
        }
      });
    }
  }
});
