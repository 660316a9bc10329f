// A small WebAssembly binary encoder: the module sections and instructions the JIT emits
// (WebAssembly core specification 2.0, chapter 5 "Binary Format"). Nothing here knows about
// RISC-V; src/jit/translate.ts uses it to write one function per guest page.

/** Value types (5.3.1). */
export const enum ValType {
  I32 = 0x7f,
  I64 = 0x7e,
  F32 = 0x7d,
  F64 = 0x7c,
}

/** Block type "no result" (5.4.1). */
export const VOID = 0x40;

/** Opcodes (5.4), the subset the JIT uses. */
export const enum Op {
  unreachable = 0x00, nop = 0x01, block = 0x02, loop = 0x03, if = 0x04, else = 0x05, end = 0x0b,
  br = 0x0c, br_if = 0x0d, br_table = 0x0e, return = 0x0f, call = 0x10, call_indirect = 0x11,
  return_call = 0x12,
  drop = 0x1a, select = 0x1b,
  local_get = 0x20, local_set = 0x21, local_tee = 0x22, global_get = 0x23, global_set = 0x24,
  i32_load = 0x28, i64_load = 0x29, f32_load = 0x2a, f64_load = 0x2b,
  i32_load8_s = 0x2c, i32_load8_u = 0x2d, i32_load16_s = 0x2e, i32_load16_u = 0x2f,
  i64_load8_s = 0x30, i64_load8_u = 0x31, i64_load16_s = 0x32, i64_load16_u = 0x33,
  i64_load32_s = 0x34, i64_load32_u = 0x35,
  i32_store = 0x36, i64_store = 0x37, f32_store = 0x38, f64_store = 0x39,
  i32_store8 = 0x3a, i32_store16 = 0x3b, i64_store8 = 0x3c, i64_store16 = 0x3d, i64_store32 = 0x3e,
  i32_const = 0x41, i64_const = 0x42,
  i32_eqz = 0x45, i32_eq = 0x46, i32_ne = 0x47, i32_lt_s = 0x48, i32_lt_u = 0x49, i32_gt_s = 0x4a,
  i32_gt_u = 0x4b, i32_le_s = 0x4c, i32_le_u = 0x4d, i32_ge_s = 0x4e, i32_ge_u = 0x4f,
  i64_eqz = 0x50, i64_eq = 0x51, i64_ne = 0x52, i64_lt_s = 0x53, i64_lt_u = 0x54, i64_gt_s = 0x55,
  i64_gt_u = 0x56, i64_le_s = 0x57, i64_le_u = 0x58, i64_ge_s = 0x59, i64_ge_u = 0x5a,
  i32_add = 0x6a, i32_sub = 0x6b, i32_mul = 0x6c, i32_div_s = 0x6d, i32_div_u = 0x6e,
  i32_rem_s = 0x6f, i32_rem_u = 0x70, i32_and = 0x71, i32_or = 0x72, i32_xor = 0x73,
  i32_shl = 0x74, i32_shr_s = 0x75, i32_shr_u = 0x76,
  i64_add = 0x7c, i64_sub = 0x7d, i64_mul = 0x7e, i64_div_s = 0x7f, i64_div_u = 0x80,
  i64_rem_s = 0x81, i64_rem_u = 0x82, i64_and = 0x83, i64_or = 0x84, i64_xor = 0x85,
  i64_shl = 0x86, i64_shr_s = 0x87, i64_shr_u = 0x88,
  i32_wrap_i64 = 0xa7, i64_extend_i32_s = 0xac, i64_extend_i32_u = 0xad,
  i32_extend8_s = 0xc0, i32_extend16_s = 0xc1,
  i64_extend8_s = 0xc2, i64_extend16_s = 0xc3, i64_extend32_s = 0xc4,
}

/** A growable byte buffer with the LEB128 encodings of 5.2.2. */
export class ByteWriter {
  bytes: Uint8Array<ArrayBuffer>;
  length = 0;

  constructor(capacity = 256) {
    this.bytes = new Uint8Array(new ArrayBuffer(capacity));
  }

  private grow(n: number): void {
    let size = this.bytes.length * 2;
    while (size < this.length + n) size *= 2;
    const next = new Uint8Array(new ArrayBuffer(size));
    next.set(this.bytes.subarray(0, this.length));
    this.bytes = next;
  }

  private room(n: number): void {
    if (this.length + n > this.bytes.length) this.grow(n);
  }

  byte(b: number): void {
    if (this.length === this.bytes.length) this.grow(1);
    this.bytes[this.length++] = b;
  }

  append(data: Uint8Array): void {
    this.room(data.length);
    this.bytes.set(data, this.length);
    this.length += data.length;
  }

  /** Appends bytes [from, to) of another writer. */
  appendFrom(w: ByteWriter, from: number, to: number): void {
    this.room(to - from);
    this.bytes.set(w.bytes.subarray(from, to), this.length);
    this.length += to - from;
  }

  /** Unsigned LEB128 of a number in [0, 2^32). */
  u32(v: number): void {
    if (v < 0x80 && v >= 0) {
      this.byte(v);
      return;
    }
    this.room(5);
    v >>>= 0;
    do {
      let b = v & 0x7f;
      v >>>= 7;
      if (v !== 0) b |= 0x80;
      this.bytes[this.length++] = b;
    } while (v !== 0);
  }

  /** Signed LEB128 of a number in [-2^31, 2^31). */
  s32(v: number): void {
    if (v >= -64 && v < 64) {
      this.byte(v & 0x7f);
      return;
    }
    this.room(5);
    v |= 0;
    for (;;) {
      const b = v & 0x7f;
      v >>= 7;
      if ((v === 0 && (b & 0x40) === 0) || (v === -1 && (b & 0x40) !== 0)) {
        this.bytes[this.length++] = b;
        return;
      }
      this.bytes[this.length++] = b | 0x80;
    }
  }

  /** Signed LEB128 of a 64-bit value. */
  s64(v: bigint): void {
    v = BigInt.asIntN(64, v);
    if (v >= -0x8000_0000n && v < 0x8000_0000n) {
      this.s32(Number(v));
      return;
    }
    this.room(10);
    for (;;) {
      const b = Number(v & 0x7fn);
      v >>= 7n;
      if ((v === 0n && (b & 0x40) === 0) || (v === -1n && (b & 0x40) !== 0)) {
        this.bytes[this.length++] = b;
        return;
      }
      this.bytes[this.length++] = b | 0x80;
    }
  }

  name(s: string): void {
    const data = new TextEncoder().encode(s);
    this.u32(data.length);
    this.append(data);
  }

  /** The bytes written so far (a view). */
  view(): Uint8Array<ArrayBuffer> {
    return this.bytes.subarray(0, this.length);
  }
}

/** A structured-control label: what `br` names. Depths are computed from the open labels. */
export interface Label {
  readonly kind: "block" | "loop" | "if";
  /** Its position in the stack of open labels. */
  readonly level: number;
}

/**
 * A function body under construction. Control instructions take and return Label objects, so
 * the code that emits a branch never counts nesting depths by hand.
 */
export class FunctionBuilder {
  /** The body's instructions (one buffer reused by every function: see finish). */
  readonly code: ByteWriter;
  private readonly localTypes: ValType[] = [];
  private readonly open: Label[] = [];

  /** `params` are locals 0..params.length-1. */
  constructor(readonly params: readonly ValType[], readonly results: readonly ValType[], scratch?: ByteWriter) {
    this.code = scratch ?? new ByteWriter(1024);
    this.code.length = 0;
  }

  /** Declares a local; returns its index. */
  local(type: ValType): number {
    this.localTypes.push(type);
    return this.params.length + this.localTypes.length - 1;
  }

  op(o: Op): this {
    this.code.byte(o);
    return this;
  }

  i32(v: number): this {
    this.code.byte(Op.i32_const);
    this.code.s32(v);
    return this;
  }

  i64(v: number | bigint): this {
    this.code.byte(Op.i64_const);
    if (typeof v === "number" && v >= -0x8000_0000 && v < 0x8000_0000 && Number.isInteger(v)) this.code.s32(v);
    else this.code.s64(BigInt(v));
    return this;
  }

  get(l: number): this {
    this.code.byte(Op.local_get);
    this.code.u32(l);
    return this;
  }

  set(l: number): this {
    this.code.byte(Op.local_set);
    this.code.u32(l);
    return this;
  }

  tee(l: number): this {
    this.code.byte(Op.local_tee);
    this.code.u32(l);
    return this;
  }

  globalGet(g: number): this {
    this.code.byte(Op.global_get);
    this.code.u32(g);
    return this;
  }

  /** A load or store with its memarg (alignment as log2, and a constant offset). */
  mem(o: Op, offset: number, alignLog2 = 0): this {
    this.code.byte(o);
    this.code.u32(alignLog2);
    this.code.u32(offset);
    return this;
  }

  call(func: number): this {
    this.code.byte(Op.call);
    this.code.u32(func);
    return this;
  }

  /** A tail call (the tail-call proposal, in Chrome 112+, Firefox 121+, Safari 18.2+, Node 20). */
  returnCall(func: number): this {
    this.code.byte(Op.return_call);
    this.code.u32(func);
    return this;
  }

  private openLabel(o: Op, kind: Label["kind"], type: number): Label {
    this.code.byte(o);
    this.code.byte(type);
    const l: Label = { kind, level: this.open.length };
    this.open.push(l);
    return l;
  }

  block(type: number = VOID): Label {
    return this.openLabel(Op.block, "block", type);
  }

  loop(type: number = VOID): Label {
    return this.openLabel(Op.loop, "loop", type);
  }

  if(type: number = VOID): Label {
    return this.openLabel(Op.if, "if", type);
  }

  else(): this {
    this.code.byte(Op.else);
    return this;
  }

  end(): this {
    this.open.pop();
    this.code.byte(Op.end);
    return this;
  }

  private depth(l: Label): number {
    if (this.open[l.level] !== l) throw new Error("branch to a label that is not open");
    return this.open.length - 1 - l.level;
  }

  br(l: Label): this {
    this.code.byte(Op.br);
    this.code.u32(this.depth(l));
    return this;
  }

  brIf(l: Label): this {
    this.code.byte(Op.br_if);
    this.code.u32(this.depth(l));
    return this;
  }

  brTable(targets: readonly Label[], otherwise: Label): this {
    this.code.byte(Op.br_table);
    this.code.u32(targets.length);
    for (const t of targets) this.code.u32(this.depth(t));
    this.code.u32(this.depth(otherwise));
    return this;
  }

  /** How many labels are open (0 once the body is complete). */
  get openLabels(): number {
    return this.open.length;
  }

  /**
   * Writes the encoded body to `w`: its size, the local declarations (run-length grouped), the
   * code and the final `end`. After this the builder's code buffer may be reused.
   */
  finishInto(w: ByteWriter): void {
    if (this.open.length !== 0) throw new Error(`function body has ${this.open.length} unclosed labels`);
    const decl = new ByteWriter(32);
    let groups = 0;
    for (let i = 0; i < this.localTypes.length; groups++) {
      let j = i;
      while (j < this.localTypes.length && this.localTypes[j] === this.localTypes[i]) j++;
      i = j;
    }
    decl.u32(groups);
    for (let i = 0; i < this.localTypes.length; ) {
      let j = i;
      while (j < this.localTypes.length && this.localTypes[j] === this.localTypes[i]) j++;
      decl.u32(j - i);
      decl.byte(this.localTypes[i]);
      i = j;
    }
    w.u32(decl.length + this.code.length + 1);
    w.appendFrom(decl, 0, decl.length);
    w.appendFrom(this.code, 0, this.code.length);
    w.byte(Op.end);
  }
}

type Import =
  | { module: string; name: string; kind: "func"; type: number }
  | { module: string; name: string; kind: "memory"; min: number; max?: number; shared?: boolean }
  | { module: string; name: string; kind: "global"; type: ValType; mutable: boolean };

/** A module under construction: types, imports, functions and exports (sections 1, 2, 3, 7, 10). */
export class ModuleBuilder {
  private readonly types: string[] = [];
  private readonly typeBytes: Uint8Array[] = [];
  private readonly imports: Import[] = [];
  private funcImports = 0;
  private globalImports = 0;
  private readonly funcTypes: number[] = [];
  /** The code section's function entries (size-prefixed bodies), written as functions are added. */
  private readonly code = new ByteWriter(1 << 16);
  private readonly exports: { name: string; func: number }[] = [];
  private sealedImports = false;

  /** The index of the function type (params) -> (results), added once. */
  type(params: readonly ValType[], results: readonly ValType[]): number {
    const key = params.join(",") + ">" + results.join(",");
    const i = this.types.indexOf(key);
    if (i >= 0) return i;
    const w = new ByteWriter(16);
    w.byte(0x60);
    w.u32(params.length);
    for (const p of params) w.byte(p);
    w.u32(results.length);
    for (const r of results) w.byte(r);
    this.types.push(key);
    this.typeBytes.push(w.view());
    return this.types.length - 1;
  }

  private checkImport(): void {
    if (this.sealedImports) throw new Error("imports must come before functions");
  }

  /** Imports a function; returns its function index. */
  importFunc(module: string, name: string, params: readonly ValType[], results: readonly ValType[]): number {
    this.checkImport();
    this.imports.push({ module, name, kind: "func", type: this.type(params, results) });
    return this.funcImports++;
  }

  importMemory(module: string, name: string, minPages: number, opts: { maxPages?: number; shared?: boolean } = {}): void {
    this.checkImport();
    if (opts.shared && opts.maxPages === undefined) throw new Error("wasm: a shared memory needs a maximum");
    this.imports.push({ module, name, kind: "memory", min: minPages, max: opts.maxPages, shared: opts.shared });
  }

  /** Imports a global; returns its global index. */
  importGlobal(module: string, name: string, type: ValType, mutable: boolean): number {
    this.checkImport();
    this.imports.push({ module, name, kind: "global", type, mutable });
    return this.globalImports++;
  }

  /** Adds a function; returns its function index. */
  addFunction(f: FunctionBuilder, exportName?: string): number {
    this.sealedImports = true;
    this.funcTypes.push(this.type(f.params, f.results));
    f.finishInto(this.code);
    const index = this.funcImports + this.funcTypes.length - 1;
    if (exportName !== undefined) this.exports.push({ name: exportName, func: index });
    return index;
  }

  get functionCount(): number {
    return this.funcTypes.length;
  }

  exportFunction(name: string, func: number): void {
    this.exports.push({ name, func });
  }

  /** The index the next function added will have. */
  get nextFunctionIndex(): number {
    return this.funcImports + this.funcTypes.length;
  }

  toBytes(): Uint8Array<ArrayBuffer> {
    const out = new ByteWriter(1024 + this.code.length);
    out.append(new Uint8Array([0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00]));
    const section = (id: number, fill: (w: ByteWriter) => void) => {
      const w = new ByteWriter(256);
      fill(w);
      out.byte(id);
      out.u32(w.length);
      out.append(w.view());
    };
    section(1, (w) => {
      w.u32(this.typeBytes.length);
      for (const t of this.typeBytes) w.append(t);
    });
    section(2, (w) => {
      w.u32(this.imports.length);
      for (const im of this.imports) {
        w.name(im.module);
        w.name(im.name);
        if (im.kind === "func") {
          w.byte(0x00);
          w.u32(im.type);
        } else if (im.kind === "memory") {
          w.byte(0x02);
          // limits: 0 min only, 1 min and max, 3 shared (min and max)
          w.byte(im.shared ? 0x03 : im.max !== undefined ? 0x01 : 0x00);
          w.u32(im.min);
          if (im.max !== undefined) w.u32(im.max);
        } else {
          w.byte(0x03);
          w.byte(im.type);
          w.byte(im.mutable ? 1 : 0);
        }
      }
    });
    section(3, (w) => {
      w.u32(this.funcTypes.length);
      for (const t of this.funcTypes) w.u32(t);
    });
    section(7, (w) => {
      w.u32(this.exports.length);
      for (const e of this.exports) {
        w.name(e.name);
        w.byte(0x00);
        w.u32(e.func);
      }
    });
    const count = new ByteWriter(8);
    count.u32(this.funcTypes.length);
    out.byte(10);
    out.u32(count.length + this.code.length);
    out.appendFrom(count, 0, count.length);
    out.appendFrom(this.code, 0, this.code.length);
    return out.view();
  }
}
