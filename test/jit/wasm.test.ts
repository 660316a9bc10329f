// The JIT's WebAssembly encoder (src/jit/wasm.ts) against the binary format: LEB128 encodings
// (core spec 5.2.2) and modules the engine accepts and runs as intended.

import { describe, expect, it } from "vitest";
import { ByteWriter, FunctionBuilder, ModuleBuilder, Op, ValType } from "../../src/jit/wasm.js";

const bytes = (f: (w: ByteWriter) => void) => {
  const w = new ByteWriter(2);
  f(w);
  return [...w.view()];
};

describe("LEB128", () => {
  it("unsigned", () => {
    expect(bytes((w) => w.u32(0))).toEqual([0]);
    expect(bytes((w) => w.u32(127))).toEqual([0x7f]);
    expect(bytes((w) => w.u32(128))).toEqual([0x80, 0x01]);
    expect(bytes((w) => w.u32(624485))).toEqual([0xe5, 0x8e, 0x26]);
    expect(bytes((w) => w.u32(0xffff_ffff))).toEqual([0xff, 0xff, 0xff, 0xff, 0x0f]);
  });
  it("signed 32 and 64", () => {
    expect(bytes((w) => w.s32(-1))).toEqual([0x7f]);
    expect(bytes((w) => w.s32(63))).toEqual([0x3f]);
    expect(bytes((w) => w.s32(64))).toEqual([0xc0, 0x00]);
    expect(bytes((w) => w.s32(-64))).toEqual([0x40]);
    expect(bytes((w) => w.s32(-65))).toEqual([0xbf, 0x7f]);
    expect(bytes((w) => w.s32(-123456))).toEqual([0xc0, 0xbb, 0x78]);
    expect(bytes((w) => w.s32(-0x8000_0000))).toEqual([0x80, 0x80, 0x80, 0x80, 0x78]);
    expect(bytes((w) => w.s64(-0x8000_0000_0000_0000n))).toEqual([0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x7f]);
    expect(bytes((w) => w.s64(0x7fff_ffff_ffff_ffffn))).toEqual([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00]);
  });
});

describe("modules", () => {
  it("a loop, a br_table, i64 constants and an imported memory run as written", () => {
    const m = new ModuleBuilder();
    m.importMemory("env", "memory", 1);
    const I32 = ValType.I32, I64 = ValType.I64;
    // sum(n): 1 + 2 + ... + n with a loop
    const sum = new FunctionBuilder([I32], [I64]);
    const acc = sum.local(I64);
    const done = sum.block();
    const top = sum.loop();
    sum.get(0).op(Op.i32_eqz).brIf(done);
    sum.get(acc).get(0).op(Op.i64_extend_i32_u).op(Op.i64_add).set(acc);
    sum.get(0).i32(1).op(Op.i32_sub).set(0).br(top);
    sum.end();
    sum.end();
    sum.get(acc);
    m.addFunction(sum, "sum");
    // pick(i): a switch through br_table; the default case answers a 64-bit constant
    const pick = new FunctionBuilder([I32], [I64]);
    const out = pick.block(I64);
    const dflt = pick.block();
    const c1 = pick.block();
    const c0 = pick.block();
    pick.get(0).brTable([c0, c1], dflt);
    pick.end();
    pick.i64(10).br(out);
    pick.end();
    pick.i64(-0x8000_0000_0000_0000n).br(out);
    pick.end();
    pick.i64(0x1234_5678_9abc_def0n);
    pick.end();
    m.addFunction(pick, "pick");
    // peek(a): an i64 load from the imported memory
    const peek = new FunctionBuilder([I32], [I64]);
    peek.get(0).mem(Op.i64_load, 8, 3);
    m.addFunction(peek, "peek");
    const code = m.toBytes();
    expect(WebAssembly.validate(code)).toBe(true);
    const memory = new WebAssembly.Memory({ initial: 1 });
    new DataView(memory.buffer).setBigUint64(24, 0xfeedn, true);
    const ex = new WebAssembly.Instance(new WebAssembly.Module(code), { env: { memory } }).exports as Record<string, (x: number) => bigint>;
    expect(ex.sum(100)).toBe(5050n);
    expect(ex.pick(0)).toBe(10n);
    expect(ex.pick(1)).toBe(-0x8000_0000_0000_0000n);
    expect(ex.pick(7)).toBe(0x1234_5678_9abc_def0n);
    expect(ex.peek(16)).toBe(0xfeedn);
  });

  it("refuses a branch to a label that is no longer open, and unclosed bodies", () => {
    const f = new FunctionBuilder([], []);
    const b = f.block();
    f.end();
    expect(() => f.br(b)).toThrow(/not open/);
    const g = new FunctionBuilder([], []);
    g.block();
    expect(() => new ModuleBuilder().addFunction(g)).toThrow(/unclosed/);
  });
});
