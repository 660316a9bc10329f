// The translator: one guest page's code -> a few WebAssembly functions (docs/ARCHITECTURE.md,
// "The JIT"). The unit of translation is a 4 KiB guest-physical page: its basic blocks, found
// from the entry points the profiler saw, become the cases of a dispatch loop, so direct
// branches inside the page are wasm branches (forward: `br`; backward: through the loop head)
// and a loop in the page runs without leaving the function.
//
// A page becomes a few functions: its blocks are cut into regions of consecutive blocks (a
// loop is kept whole where it can be), one function each, plus a lookup function the core calls.
// A jump to another region is a tail call (return_call) of that region's function; the engine
// compiles (and tiers up) each function on its own, so compile time stays linear and only the
// hot regions reach the optimizing tier. Every function has the signature
// (vbase: i64, at: i32, left: i32, budget: i32, map: i32) -> i32:
//   vbase  the virtual address of the page (pc-relative values are computed from it at run
//          time, so one translation serves every mapping of the physical page),
//   at     for the lookup function the page offset of pc, for a region its block number there,
//   left   the most instructions it may still complete (the interpreter's chunk limit: interrupts
//          and deterministic-time ticks fall exactly where the interpreter would put them),
//   budget left at the core's call (so done = budget - left),
//   map    the page's dispatch map in the core's memory (offset -> block number).
// It returns (completed << 3) | kind and leaves pc in the hart state. Guest registers live in
// wasm locals within a block: loaded at their first use in the block, written back when the
// block ends or leaves early (so no value lives across blocks, which keeps the engine's register
// allocation local and cheap).
//
// What it translates: RV64I and M (C expands through the core's own table, so semantics exist
// once), loads and stores with the TLB hit path inlined (one compare) and the core's loadSlow /
// storeSlow on a miss, FENCE and FENCE.I (translated code is kept coherent with every store, see
// jit.ts). Everything else — CSRs, AMOs, SYSTEM, floating point, illegal encodings — ends the
// block before it; the interpreter executes that instruction and the page's function is entered
// again after it.

import { ByteWriter, FunctionBuilder, Label, ModuleBuilder, Op, ValType } from "./wasm.js";

/** How a translated function ended (the low three bits of its result). */
export const enum UnitExit {
  /** Stopped at an instruction boundary (pc stored): a jump out of the page, the budget, an instruction it does not translate. */
  Continue = 0,
  /** A load or store raised an exception (g_status = ST_TRAP): pc at that instruction, not counted. */
  Trap = 1,
  /** A load or store touched a not-yet-restored page (ST_EXIT): pc at it, no effect. */
  Exit = 2,
  /** A load or store completed and ends the chunk (ST_EVENT): pc after it, counted. */
  Event = 3,
  /** Control reached an offset that is not a block of this translation (pc stored). */
  Miss = 4,
  /**
   * pc is at an instruction left to the interpreter (CSR, AMO, SYSTEM, FP, illegal, straddling
   * the page end): it executes that one and enters the translation again after it.
   */
  Interp = 5,
}

/** Addresses in the core's linear memory that generated code uses (assembly/layout.ts). */
export interface CoreLayout {
  xreg: number;
  freg: number;
  /** mstatus in the CSR array (FS: the FP unit's state) */
  mstatus: number;
  pc: number;
  tlbLoad: number;
  tlbStore: number;
  /** TLB entries per TLB (a power of two; entries are 16 bytes). */
  tlbSize: number;
}

export const PAGE_BYTES = 4096;

// ---------------------------------------------------------------- decoding

/** The classes of instruction the translator distinguishes. */
const enum Kind {
  Alu, // writes at most rd, no memory, cannot trap
  Load,
  Store,
  Branch,
  Jal,
  Jalr,
  Nop, // FENCE, FENCE.I
  FpLoad, // FLW, FLD
  FpStore, // FSW, FSD
  FpOp, // OP-FP and the fused multiply-adds: the core's FP unit (execFp), called
  Interp, // left to the interpreter (ends the block before it)
}

interface Insn {
  off: number;
  len: number; // 2 or 4
  insn: number; // the 32-bit form (compressed ones expanded)
  kind: Kind;
}

const bits = (v: number, hi: number, lo: number) => (v >>> lo) & ((1 << (hi - lo + 1)) - 1);
const immI = (i: number) => i >> 20;
const immS = (i: number) => ((i >> 25) << 5) | bits(i, 11, 7);
const immB = (i: number) => ((i >> 31) << 12) | (bits(i, 7, 7) << 11) | (bits(i, 30, 25) << 5) | (bits(i, 11, 8) << 1);
const immJ = (i: number) => ((i >> 31) << 20) | (bits(i, 19, 12) << 12) | (bits(i, 20, 20) << 11) | (bits(i, 30, 21) << 1);
const immU = (i: number) => i & 0xfffff000; // as a signed 32-bit value

/**
 * The class of a 32-bit instruction, mirroring the interpreter's legality checks exactly
 * (assembly/hart.ts): an encoding the interpreter calls illegal must not be translated.
 */
function classify(insn: number): Kind {
  const f3 = bits(insn, 14, 12);
  const f7 = insn >>> 25;
  switch (insn & 0x7f) {
    case 0x03: return f3 === 7 ? Kind.Interp : Kind.Load;
    case 0x23: return f3 > 3 ? Kind.Interp : Kind.Store;
    case 0x13:
      if (f3 === 1) return insn >>> 26 !== 0 ? Kind.Interp : Kind.Alu;
      if (f3 === 5) return insn >>> 26 === 0 || insn >>> 26 === 0x10 ? Kind.Alu : Kind.Interp;
      return Kind.Alu;
    case 0x1b:
      if (f3 === 0) return Kind.Alu;
      if (f3 === 1 && f7 === 0) return Kind.Alu;
      if (f3 === 5 && (f7 === 0 || f7 === 0x20)) return Kind.Alu;
      return Kind.Interp;
    case 0x33:
      if (f7 === 0 || f7 === 1) return Kind.Alu;
      if (f7 === 0x20 && (f3 === 0 || f3 === 5)) return Kind.Alu;
      return Kind.Interp;
    case 0x3b:
      if (f7 === 0) return f3 === 0 || f3 === 1 || f3 === 5 ? Kind.Alu : Kind.Interp;
      if (f7 === 0x20) return f3 === 0 || f3 === 5 ? Kind.Alu : Kind.Interp;
      if (f7 === 1) return f3 === 0 || f3 >= 4 ? Kind.Alu : Kind.Interp;
      return Kind.Interp;
    case 0x37: case 0x17: return Kind.Alu;
    case 0x6f: return Kind.Jal;
    case 0x67: return f3 === 0 ? Kind.Jalr : Kind.Interp;
    case 0x63: return f3 === 2 || f3 === 3 ? Kind.Interp : Kind.Branch;
    case 0x0f: return f3 <= 1 ? Kind.Nop : Kind.Interp;
    case 0x07: return f3 === 2 || f3 === 3 ? Kind.FpLoad : Kind.Interp;
    case 0x27: return f3 === 2 || f3 === 3 ? Kind.FpStore : Kind.Interp;
    case 0x43: case 0x47: case 0x4b: case 0x4f: case 0x53:
      return bits(insn, 26, 25) > 1 ? Kind.Interp : Kind.FpOp; // (formats H and Q: illegal)
    default: return Kind.Interp;
  }
}

/** Decodes the instruction at `off`, or undefined when it cannot be had inside the page. */
function decodeAt(code: Uint8Array, off: number, rvc: Uint32Array): Insn | undefined {
  if (off + 2 > PAGE_BYTES) return undefined;
  const lo = code[off] | (code[off + 1] << 8);
  if ((lo & 3) !== 3) {
    const insn = rvc[lo] | 0;
    return { off, len: 2, insn, kind: insn === 0 ? Kind.Interp : classify(insn) };
  }
  if (off + 4 > PAGE_BYTES) return undefined; // straddles the page: the interpreter's business
  const insn = (lo | (code[off + 2] << 16) | (code[off + 3] << 24)) | 0;
  return { off, len: 4, insn, kind: classify(insn) };
}

const endsBlock = (k: Kind) => k === Kind.Branch || k === Kind.Jal || k === Kind.Jalr;

/** The most instructions in one block. */
const MAX_BLOCK = 200;
/** The most blocks in one translation (the dispatch map holds a block number in a byte). */
export const MAX_BLOCKS = 253;
/** Dispatch map values (one byte per 2-byte offset of the page; else block number + 1). */
export const MAP_UNKNOWN = 0;
export const MAP_INSIDE = 255;

export interface Block {
  start: number;
  insns: Insn[];
  /**
   * Where the block hands over to the interpreter, if it does: the offset of an instruction it
   * does not translate, of one that straddles the page end, or the page end itself.
   */
  stop: number | undefined;
  /** Page offset after the block's last instruction (its fall-through). */
  next: number;
}

/**
 * The basic blocks reachable from `entries` without leaving the page. Every branch target in
 * the page, every return point (after a call), every instruction the interpreter executes and
 * the one after it start a block. (Code reached only through computed jumps, or from other
 * pages at offsets not seen yet, comes in with later entries.)
 */
export function findBlocks(code: Uint8Array, entries: Iterable<number>, rvc: Uint32Array): Block[] {
  const leaders = new Set<number>();
  const work: number[] = [];
  const lead = (off: number, speculative = false) => {
    if (off < 0 || off >= PAGE_BYTES || (off & 1) !== 0 || leaders.has(off)) return;
    if (speculative) {
      const d = decodeAt(code, off, rvc);
      if (!d || d.kind === Kind.Interp) return;
    }
    leaders.add(off);
    work.push(off);
  };
  for (const e of entries) lead(e);
  // Breadth first from the entries, so a page with more blocks than a unit may hold keeps
  // those nearest to where it is entered.
  for (let w = 0; w < work.length && leaders.size < MAX_BLOCKS; w++) {
    let off = work[w];
    for (let k = 0; ; k++) {
      if (k === MAX_BLOCK) {
        lead(off); // a long straight run goes on in a block of its own
        break;
      }
      const d = decodeAt(code, off, rvc);
      if (!d) {
        if (off < PAGE_BYTES) lead(off); // straddles the page end: a block that hands it over
        break;
      }
      const next = off + d.len;
      if (d.kind === Kind.Interp) {
        lead(off); // a block of its own that hands it over
        lead(next);
        break;
      }
      if (d.kind === Kind.Branch) {
        lead(off + immB(d.insn));
        lead(next);
        break;
      }
      if (d.kind === Kind.Jal) {
        lead(off + immJ(d.insn));
        lead(next, bits(d.insn, 11, 7) === 0); // a return point, or maybe code that follows
        break;
      }
      if (d.kind === Kind.Jalr) {
        lead(next, bits(d.insn, 11, 7) === 0);
        break;
      }
      off = next;
      if (leaders.has(off)) break;
    }
  }
  const blocks: Block[] = [];
  for (const start of [...leaders].slice(0, MAX_BLOCKS).sort((a, b) => a - b)) {
    const insns: Insn[] = [];
    let off = start;
    let stop: number | undefined;
    for (;;) {
      const d = decodeAt(code, off, rvc);
      if (!d || d.kind === Kind.Interp) {
        stop = off;
        break;
      }
      insns.push(d);
      off += d.len;
      if (endsBlock(d.kind) || leaders.has(off) || insns.length === MAX_BLOCK) break;
    }
    blocks.push({ start, insns, stop, next: off });
  }
  return blocks;
}

/** Reads the `time` CSR (csrrs/csrrc rd, time or timeh, x0: rdtime, rdtimeh). */
const readsClock = (i: number) => (bits(i, 6, 0) === 0x73 && (bits(i, 14, 12) === 2 || bits(i, 14, 12) === 3) &&
  bits(i, 19, 15) === 0 && ((i >>> 20) === 0xc01 || (i >>> 20) === 0xc81));

/** The most instructions a delay routine reaches from its entry (udelay and its kind: ~50). */
const DELAY_ROUTINE = 128;
/** The most instructions in a loop that waits on the clock (Linux's __delay: 6). */
const CLOCK_LOOP = 16;

/**
 * Whether the code entered at `entry` is a delay routine: at most DELAY_ROUTINE instructions
 * reachable in the page without calls or returns (branches, jumps and fall-through followed),
 * with a loop of at most CLOCK_LOOP instructions that reads the `time` CSR. Such a loop runs
 * until the clock (the host's, unless -icount) says so, however fast each pass is, and every
 * pass leaves translated code for the interpreter at the CSR read: translating it costs a
 * compile and saves nothing (Linux's udelay, the one page a Linux boot made hot enough to be
 * compiled: ~30 ms more CPU to the prompt).
 */
export function isDelayLoop(code: Uint8Array, entry: number, rvc: Uint32Array): boolean {
  const seen = new Set<number>();
  const work = [entry];
  const loops: [number, number][] = [];
  while (work.length > 0) {
    let off = work.pop()!;
    while (!seen.has(off)) {
      const d = decodeAt(code, off, rvc);
      if (!d) break;
      seen.add(off);
      if (seen.size > DELAY_ROUTINE) return false;
      const next = off + d.len;
      let to: number | undefined;
      if (d.kind === Kind.Branch) to = off + immB(d.insn);
      else if (d.kind === Kind.Jal && bits(d.insn, 11, 7) === 0) to = off + immJ(d.insn);
      if (to !== undefined && to >= 0 && to < PAGE_BYTES) {
        if (to <= off) loops.push([to, off]);
        work.push(to);
      }
      if (d.kind === Kind.Jalr || (d.kind === Kind.Jal && bits(d.insn, 11, 7) === 0)) break;
      off = next; // (a call's return point too: the routine goes on there)
    }
  }
  return loops.some(([from, to]) => {
    let clock = false;
    for (let off = from, n = 0; off <= to; n++) {
      const d = decodeAt(code, off, rvc);
      if (!d || n === CLOCK_LOOP) return false;
      clock ||= readsClock(d.insn);
      off += d.len;
    }
    return clock;
  });
}

// ---------------------------------------------------------------- emission

/** What a module's functions import from the core (indices in the module being built). */
export interface UnitImports {
  loadSlow: number; // (va i64, size i32) -> i64
  storeSlow: number; // (va i64, size i32, value i64) -> ()
  status: number; // global g_status (mut i32)
  loadCtx: number; // global (mut i64): translation-context tag of data loads
  storeCtx: number; // global (mut i64)
  mulhu: number; // internal (a i64, b i64) -> i64
  fp: number; // (insn i32) -> i32: the core's FP unit; 0 = illegal, nothing changed
}

/** Declares the core's imports in a fresh module and adds its helper functions. */
export function declareImports(m: ModuleBuilder, memory: WebAssembly.Memory): UnitImports {
  const I64 = ValType.I64, I32 = ValType.I32;
  // The core's memory as it is: shared where the host has shared memory (src/core.ts), whose
  // import must say so, with the core's maximum (4 GiB).
  const shared = typeof SharedArrayBuffer !== "undefined" && memory.buffer instanceof SharedArrayBuffer;
  m.importMemory("core", "memory", memory.buffer.byteLength >>> 16, shared ? { maxPages: 65536, shared } : {});
  const loadSlow = m.importFunc("core", "loadSlow", [I64, I32], [I64]);
  const storeSlow = m.importFunc("core", "storeSlow", [I64, I32, I64], []);
  const fp = m.importFunc("core", "fp", [I32], [I32]);
  const status = m.importGlobal("core", "status", I32, true);
  const loadCtx = m.importGlobal("core", "loadCtx", I64, true);
  const storeCtx = m.importGlobal("core", "storeCtx", I64, true);
  // mulhu(a, b): the high 64 bits of the unsigned 128-bit product, from 32-bit halves.
  const f = new FunctionBuilder([I64, I64], [I64]);
  const p01 = f.local(I64), p10 = f.local(I64), mid = f.local(I64);
  const M = 0xffff_ffffn;
  f.get(0).i64(M).op(Op.i64_and).get(1).i64(32).op(Op.i64_shr_u).op(Op.i64_mul).set(p01);
  f.get(0).i64(32).op(Op.i64_shr_u).get(1).i64(M).op(Op.i64_and).op(Op.i64_mul).set(p10);
  f.get(0).i64(M).op(Op.i64_and).get(1).i64(M).op(Op.i64_and).op(Op.i64_mul).i64(32).op(Op.i64_shr_u);
  f.get(p01).i64(M).op(Op.i64_and).op(Op.i64_add).get(p10).i64(M).op(Op.i64_and).op(Op.i64_add).set(mid);
  f.get(0).i64(32).op(Op.i64_shr_u).get(1).i64(32).op(Op.i64_shr_u).op(Op.i64_mul);
  f.get(p01).i64(32).op(Op.i64_shr_u).op(Op.i64_add);
  f.get(p10).i64(32).op(Op.i64_shr_u).op(Op.i64_add);
  f.get(mid).i64(32).op(Op.i64_shr_u).op(Op.i64_add);
  const mulhu = m.addFunction(f);
  return { loadSlow, storeSlow, status, loadCtx, storeCtx, mulhu, fp };
}

/** The function type of a page's functions (see the top of this file). */
export const UNIT_PARAMS = [ValType.I64, ValType.I32, ValType.I32, ValType.I32, ValType.I32] as const;
export const UNIT_RESULTS = [ValType.I32] as const;

const LOAD_OPS: { op: Op; size: number; ext?: Op }[] = [
  { op: Op.i64_load8_s, size: 1, ext: Op.i64_extend8_s }, // LB
  { op: Op.i64_load16_s, size: 2, ext: Op.i64_extend16_s }, // LH
  { op: Op.i64_load32_s, size: 4, ext: Op.i64_extend32_s }, // LW
  { op: Op.i64_load, size: 8 }, // LD
  { op: Op.i64_load8_u, size: 1 }, // LBU
  { op: Op.i64_load16_u, size: 2 }, // LHU
  { op: Op.i64_load32_u, size: 4 }, // LWU
];
const STORE_OPS: { op: Op; size: number }[] = [
  { op: Op.i64_store8, size: 1 },
  { op: Op.i64_store16, size: 2 },
  { op: Op.i64_store32, size: 4 },
  { op: Op.i64_store, size: 8 },
];

/** Statistics of one translation. */
export interface UnitInfo {
  blocks: number;
  instructions: number;
  /**
   * The dispatch map the core keeps for the function (2048 bytes, one per 2-byte offset):
   * MAP_UNKNOWN, MAP_INSIDE (inside a translated block), or the number of the block starting
   * there + 1.
   */
  map: Uint8Array;
}

/**
 * Blocks per region function (a loop that starts in a region may take it up to twice that).
 * V8's optimizing compiler (TurboFan, which a region function gets once it is hot) spends most
 * of its time in register allocation, which grows faster than the function: the page of Linux's
 * inflate_fast (1,198 instructions, 224 blocks) took 179 ms of CPU in regions of 24 blocks,
 * 110 ms in 12, 95 ms in 8, 89 ms in 4. With 8 a bootable-disk Linux boot (which inflates its
 * initramfs in the guest) costs the interpreter's CPU instead of ~0.1 s more, and bench cpu,
 * bench fp and the Linux workloads are as fast or faster (fewer compile cycles, same code).
 */
const REGION_BLOCKS = 8;

/**
 * Translates one page into `m`: its lookup function and its region functions. Returns the
 * lookup function's index (the one the core calls), or undefined when no block has an
 * instruction to translate (the page would only bounce to the interpreter).
 */
export function translatePage(
  m: ModuleBuilder,
  code: Uint8Array,
  entries: Iterable<number>,
  rvc: Uint32Array,
  layout: CoreLayout,
  imp: UnitImports,
): { entry: number; info: UnitInfo } | undefined {
  const blocks = findBlocks(code, entries, rvc).filter((b) => b.insns.length > 0 || b.stop !== undefined);
  const instructions = blocks.reduce((n, b) => n + b.insns.length, 0);
  if (instructions === 0) return undefined;
  const map = new Uint8Array(PAGE_BYTES / 2);
  for (const b of blocks) map.fill(MAP_INSIDE, b.start >> 1, Math.max(b.next, b.start + 2) >> 1);
  blocks.forEach((b, i) => (map[b.start >> 1] = i + 1));
  const page = new PageCode(blocks, cutRegions(blocks), m.nextFunctionIndex, layout, imp);
  const entry = m.addFunction(page.lookup());
  for (let r = 0; r < page.regions.length; r++) m.addFunction(new Emitter(page, r).emit());
  return { entry, info: { blocks: blocks.length, instructions, map } };
}

/** The static successors of a block inside the page (branch, jump and fall-through targets). */
function successors(b: Block): number[] {
  const last = b.insns[b.insns.length - 1];
  const out: number[] = [];
  if (last?.kind === Kind.Branch) out.push(last.off + immB(last.insn), b.next);
  else if (last?.kind === Kind.Jal) out.push(last.off + immJ(last.insn));
  else if (last?.kind !== Kind.Jalr && b.stop === undefined) out.push(b.next);
  return out;
}

/**
 * Cuts the blocks (in address order) into regions [start, end) of about REGION_BLOCKS blocks; a
 * region grows to hold the loops that start in it (a backward branch to one of its blocks), up
 * to twice that, so a loop's iterations stay inside one function.
 */
function cutRegions(blocks: Block[]): [number, number][] {
  const index = new Map<number, number>();
  blocks.forEach((b, i) => index.set(b.start, i));
  // lastBack[t]: the last block with a backward branch to block t
  const lastBack = new Int32Array(blocks.length).fill(-1);
  blocks.forEach((b, i) => {
    for (const t of successors(b)) {
      const ti = index.get(t);
      if (ti !== undefined && ti <= i) lastBack[ti] = Math.max(lastBack[ti], i);
    }
  });
  const regions: [number, number][] = [];
  for (let start = 0; start < blocks.length; ) {
    let end = start + 1;
    let need = lastBack[start] + 1;
    while (end < blocks.length && (end - start < REGION_BLOCKS || end < need) && end - start < 2 * REGION_BLOCKS) {
      need = Math.max(need, lastBack[end] + 1);
      end++;
    }
    regions.push([start, end]);
    start = end;
  }
  return regions;
}

/** What a page's functions share: its blocks, its regions and their function indices. */
class PageCode {
  readonly regionOf: Int32Array;
  readonly blockIndex = new Map<number, number>();
  constructor(
    readonly blocks: Block[],
    readonly regions: [number, number][],
    /** Function index of the lookup function; region r is lookupIndex + 1 + r. */
    readonly lookupIndex: number,
    readonly layout: CoreLayout,
    readonly imp: UnitImports,
  ) {
    this.regionOf = new Int32Array(blocks.length);
    regions.forEach(([a, z], r) => this.regionOf.fill(r, a, z));
    blocks.forEach((b, i) => this.blockIndex.set(b.start, i));
  }

  /**
   * The lookup function: the block starting at the offset `at`, from the dispatch map, entered
   * through its region's function; or a stop: inside a translated block (a chunk ended there)
   * the interpreter goes on from it (Continue, nothing done); elsewhere it is code this
   * translation does not know (Miss: the host translates the page again with it).
   */
  lookup(): FunctionBuilder {
    const f = new FunctionBuilder(UNIT_PARAMS, UNIT_RESULTS, scratch);
    const v = f.local(ValType.I32);
    f.get(4).get(1).i32(1).op(Op.i32_shr_u).op(Op.i32_add).mem(Op.i32_load8_u, 0, 0).tee(v);
    f.i32(MAP_INSIDE).op(Op.i32_eq);
    f.if();
    this.stopAt(f, UnitExit.Continue);
    f.end();
    f.get(v).op(Op.i32_eqz);
    f.if();
    this.stopAt(f, UnitExit.Miss);
    f.end();
    // block number v - 1: a br_table on it to its region's call
    const labels: Label[] = [];
    for (let r = this.regions.length - 1; r >= 0; r--) labels[r] = f.block();
    const table: Label[] = [];
    this.blocks.forEach((_, i) => table.push(labels[this.regionOf[i]]));
    f.get(v).i32(1).op(Op.i32_sub).tee(v).brTable(table, labels[0]);
    for (let r = 0; r < this.regions.length; r++) {
      f.end();
      f.get(0).get(v).i32(this.regions[r][0]).op(Op.i32_sub).get(2).get(3).get(4).returnCall(this.lookupIndex + 1 + r);
    }
    f.op(Op.unreachable);
    return f;
  }

  /** Returns from the lookup function at pc = vbase + at with `kind`. */
  private stopAt(f: FunctionBuilder, kind: UnitExit): void {
    f.i32(0).get(0).get(1).op(Op.i64_extend_i32_u).op(Op.i64_add).mem(Op.i64_store, this.layout.pc, 3);
    f.get(3).get(2).op(Op.i32_sub).i32(3).op(Op.i32_shl).i32(kind).op(Op.i32_or);
    f.op(Op.return);
  }
}

/** One buffer for the code of the function being emitted (translation is synchronous). */
const scratch = new ByteWriter(1 << 16);

class Emitter {
  private readonly f = new FunctionBuilder(UNIT_PARAMS, UNIT_RESULTS, scratch);
  private readonly vbase = 0;
  private readonly left = 2;
  private readonly budget = 3;
  private readonly mapArg = 4;
  /** Locals for guest registers, reused by every block (no value lives across blocks). */
  private readonly pool: number[] = [];
  /** The pool local of each guest register used in the block being emitted. */
  private readonly slot = new Map<number, number>();
  /** Registers whose local holds the current value in the block being emitted. */
  private readonly loaded = new Set<number>();
  /** Registers written in the block being emitted (their locals are newer than memory). */
  private readonly dirty = new Set<number>();
  /** Depth of conditional code in the block (a register may be loaded only at depth 0). */
  private nest = 0;
  /** The block being emitted checked that mstatus.FS is on (FP instructions are legal). */
  private fpChecked = false;
  private readonly idx = 1;
  private readonly npc: number;
  private readonly kind: number;
  private readonly eoff: number;
  private readonly va: number;
  private readonly tmp: number;
  private readonly tmp2: number;
  private readonly ent: number;
  private readonly ta: number;
  private readonly tb: number;
  private readonly blocks: Block[];
  private readonly blockIndex: Map<number, number>;
  private readonly layout: CoreLayout;
  private readonly imp: UnitImports;
  /** The region's blocks: [first, end) of the page's. */
  private readonly first: number;
  private readonly end: number;
  private labels: Label[] = [];
  private loopL!: Label;
  private jexitL!: Label;
  private memexitL!: Label;
  private exitL!: Label;

  constructor(private readonly page: PageCode, private readonly region: number) {
    const f = this.f;
    this.blocks = page.blocks;
    this.blockIndex = page.blockIndex;
    this.layout = page.layout;
    this.imp = page.imp;
    [this.first, this.end] = page.regions[region];
    this.kind = f.local(ValType.I32);
    this.eoff = f.local(ValType.I32);
    this.ent = f.local(ValType.I32);
    this.ta = f.local(ValType.I32);
    this.tb = f.local(ValType.I32);
    this.npc = f.local(ValType.I64);
    this.va = f.local(ValType.I64);
    this.tmp = f.local(ValType.I64);
    this.tmp2 = f.local(ValType.I64);
  }

  // --- registers ---
  private local(r: number): number {
    let k = this.slot.get(r);
    if (k === undefined) {
      k = this.slot.size;
      this.slot.set(r, k);
      if (k === this.pool.length) this.pool.push(this.f.local(ValType.I64));
    }
    return this.pool[k];
  }
  /** Pushes register r (loads it from the hart state at its first use in the block). */
  private getX(r: number): void {
    const f = this.f;
    if (r === 0) {
      f.i64(0);
    } else if (this.loaded.has(r)) {
      f.get(this.local(r));
    } else {
      if (this.nest !== 0) throw new Error("translator: register load in conditional code");
      f.i32(0).mem(Op.i64_load, this.layout.xreg + r * 8, 3).tee(this.local(r));
      this.loaded.add(r);
    }
  }
  /** Makes sure r's local is valid (before conditional code that reads it). */
  private ensure(r: number): void {
    if (r === 0 || this.loaded.has(r)) return;
    this.getX(r);
    this.f.op(Op.drop);
  }
  /** Stores the value on the stack into rd (dropped for x0). */
  private setX(r: number): void {
    if (r === 0) {
      this.f.op(Op.drop);
      return;
    }
    if (this.nest !== 0) throw new Error("translator: register write in conditional code");
    this.f.set(this.local(r));
    this.loaded.add(r);
    this.dirty.add(r);
  }
  /** Writes the block's changed registers back to the hart state (before leaving the block). */
  private flush(): void {
    for (const r of this.dirty) this.f.i32(0).get(this.local(r)).mem(Op.i64_store, this.layout.xreg + r * 8, 3);
  }
  private ifThen(type?: number): Label {
    this.nest++;
    return this.f.if(type);
  }
  private endIf(): void {
    this.nest--;
    this.f.end();
  }

  emit(): FunctionBuilder {
    const f = this.f;
    this.exitL = f.block();
    this.memexitL = f.block();
    this.jexitL = f.block();
    this.loopL = f.loop();
    // The dispatch on the block number (idx, relative to the region): labels from the last
    // (outermost) to the first; labels[i] is indexed by the page's block number.
    const labels: Label[] = [];
    for (let i = this.end - 1; i >= this.first; i--) labels[i] = f.block();
    this.labels = labels;
    f.get(this.idx).brTable(labels.slice(this.first, this.end), labels[this.first]);
    for (let i = this.first; i < this.end; i++) {
      f.end(); // the label of block i ends: its code follows
      this.emitBlock(i);
    }
    f.end(); // loop
    f.op(Op.unreachable);
    f.end(); // jexit: pc = vbase + eoff, a clean stop at an instruction boundary (kind set)
    f.get(this.vbase).get(this.eoff).op(Op.i64_extend_i32_s).op(Op.i64_add).set(this.npc);
    f.br(this.exitL);
    f.end(); // memexit: a load or store's slow path set g_status
    this.emitMemExit();
    f.end(); // exit
    f.i32(0).get(this.npc).mem(Op.i64_store, this.layout.pc, 3);
    f.get(this.budget).get(this.left).op(Op.i32_sub).i32(3).op(Op.i32_shl).get(this.kind).op(Op.i32_or);
    return f;
  }

  /**
   * A stop in the middle of a block, with kind set: a load's or store's g_status (ST_TRAP 1,
   * ST_EXIT 2, ST_EVENT 3 are the UnitExits of the same value), or Interp (the FP unit found
   * the instruction illegal at run time). eoff = the instruction's offset | (its length == 4) << 12 | instructions of its block not
   * done, counting itself, << 13 (a completed ST_EVENT instruction counts).
   */
  private emitMemExit(): void {
    const f = this.f;
    const at = this.ta, adj = this.tb;
    f.get(this.eoff).i32(0xfff).op(Op.i32_and).set(at);
    f.get(this.eoff).i32(13).op(Op.i32_shr_u).set(adj);
    f.get(this.kind).i32(UnitExit.Event).op(Op.i32_eq).if();
    // pc after the instruction: + 2, or + 4 for a 32-bit one
    f.get(at).i32(2).op(Op.i32_add).get(this.eoff).i32(11).op(Op.i32_shr_u).i32(2).op(Op.i32_and).op(Op.i32_add).set(at);
    f.get(adj).i32(1).op(Op.i32_sub).set(adj);
    f.end();
    f.get(this.vbase).get(at).op(Op.i64_extend_i32_u).op(Op.i64_add).set(this.npc);
    f.get(this.left).get(adj).op(Op.i32_add).set(this.left);
  }

  /** Leaves at pc = vbase + off (a clean stop at an instruction boundary). */
  private stopAt(off: number, kind = UnitExit.Continue): void {
    this.f.i32(kind).set(this.kind).i32(off).set(this.eoff).br(this.jexitL);
  }

  /**
   * Control goes to page offset `target` (any value: outside the page means leaving it): a
   * block of this region (forward: br; backward: through the loop head), a block of another
   * region (a tail call of its function), or a stop.
   */
  private jumpTo(target: number, from: number): void {
    const f = this.f;
    const b = this.blockIndex.get(target);
    if (b === undefined) {
      this.stopAt(target);
    } else if (b < this.first || b >= this.end) {
      const r = this.page.regionOf[b];
      f.get(this.vbase).i32(b - this.page.regions[r][0]).get(this.left).get(this.budget).get(this.mapArg);
      f.returnCall(this.page.lookupIndex + 1 + r);
    } else if (b > from) {
      f.br(this.labels[b]);
    } else {
      f.i32(b - this.first).set(this.idx).br(this.loopL);
    }
  }

  private emitBlock(i: number): void {
    const f = this.f;
    const b = this.blocks[i];
    const len = b.insns.length;
    this.loaded.clear();
    this.dirty.clear();
    this.slot.clear();
    this.fpChecked = false;
    if (len > 0) {
      // Budget: the whole block or nothing (the interpreter finishes the chunk).
      f.get(this.left).i32(len).op(Op.i32_lt_s);
      f.if();
      this.stopAt(b.start);
      f.end();
      f.get(this.left).i32(len).op(Op.i32_sub).set(this.left);
    }
    b.insns.forEach((d, k) => this.emitInsn(d, i, len - k));
    const last = b.insns[len - 1];
    if (last && (last.kind === Kind.Jal || last.kind === Kind.Jalr)) return; // emitted its jump
    if (!last || last.kind !== Kind.Branch) this.flush(); // (a branch flushed before its test)
    if (b.stop !== undefined) {
      // An instruction for the interpreter, or the end of the page.
      this.stopAt(b.stop, b.stop < PAGE_BYTES ? UnitExit.Interp : UnitExit.Continue);
      return;
    }
    this.fallThrough(i, b.next); // also a conditional branch's not-taken path
  }

  private fallThrough(i: number, next: number): void {
    const nb = this.blockIndex.get(next);
    if (nb === i + 1 && nb < this.end) return; // the next block's code follows
    this.jumpTo(next, i);
  }
  /** `adj` = instructions of the block from this one to its end (for exits in the middle). */
  private emitInsn(d: Insn, block: number, adj: number): void {
    const f = this.f;
    const insn = d.insn;
    const rd = bits(insn, 11, 7), rs1 = bits(insn, 19, 15), rs2 = bits(insn, 24, 20);
    const f3 = bits(insn, 14, 12);
    const f7 = insn >>> 25;
    switch (insn & 0x7f) {
      case 0x37: // LUI
        if (rd === 0) return;
        f.i64(immU(insn));
        this.setX(rd);
        return;
      case 0x17: // AUIPC
        if (rd === 0) return;
        f.get(this.vbase).i64(d.off + immU(insn)).op(Op.i64_add);
        this.setX(rd);
        return;
      case 0x13:
        if (rd === 0) return;
        this.opImm(f3, rs1, immI(insn), insn);
        this.setX(rd);
        return;
      case 0x1b:
        if (rd === 0) return;
        this.opImm32(f3, f7, rs1, insn);
        this.setX(rd);
        return;
      case 0x33:
        if (rd === 0) return;
        this.op(f3, f7, rs1, rs2);
        this.setX(rd);
        return;
      case 0x3b:
        if (rd === 0) return;
        this.op32(f3, f7, rs1, rs2);
        this.setX(rd);
        return;
      case 0x0f:
        return; // FENCE / FENCE.I: one hart at a time, stores invalidate translations at once
      case 0x03:
        this.load(d, f3, rd, rs1, immI(insn), adj);
        return;
      case 0x07:
        this.fpCheck(d, adj);
        this.fpLoad(d, f3, rd, rs1, immI(insn), adj);
        return;
      case 0x27:
        this.fpCheck(d, adj);
        this.fpStore(d, f3, rs1, rs2, immS(insn), adj);
        return;
      case 0x43: case 0x47: case 0x4b: case 0x4f: case 0x53:
        this.fpCheck(d, adj);
        this.fpOp(d, adj);
        return;
      case 0x23:
        this.store(d, f3, rs1, rs2, immS(insn), adj);
        return;
      case 0x63: {
        const target = d.off + immB(insn);
        this.ensure(rs1);
        this.ensure(rs2);
        this.flush();
        this.getX(rs1);
        this.getX(rs2);
        f.op([Op.i64_eq, Op.i64_ne, 0, 0, Op.i64_lt_s, Op.i64_ge_s, Op.i64_lt_u, Op.i64_ge_u][f3] as Op);
        const tb = this.blockIndex.get(target);
        if (tb !== undefined && tb > block && tb < this.end) {
          f.brIf(this.labels[tb]);
        } else {
          this.ifThen();
          this.jumpTo(target, block);
          this.endIf();
        }
        return;
      }
      case 0x6f: { // JAL
        if (rd !== 0) {
          f.get(this.vbase).i64(d.off + d.len).op(Op.i64_add);
          this.setX(rd);
        }
        this.flush();
        this.jumpTo(d.off + immJ(insn), block);
        return;
      }
      case 0x67: { // JALR: target computed before rd is written (rd may be rs1)
        this.getX(rs1);
        f.i64(immI(insn)).op(Op.i64_add).i64(-2).op(Op.i64_and).set(this.npc);
        if (rd !== 0) {
          f.get(this.vbase).i64(d.off + d.len).op(Op.i64_add);
          this.setX(rd);
        }
        this.flush();
        // A target in this page goes through the lookup function; anywhere else leaves.
        f.get(this.npc).get(this.vbase).op(Op.i64_sub).tee(this.tmp).i64(PAGE_BYTES).op(Op.i64_lt_u);
        this.ifThen();
        f.get(this.vbase).get(this.tmp).op(Op.i32_wrap_i64).get(this.left).get(this.budget).get(this.mapArg);
        f.returnCall(this.page.lookupIndex);
        this.endIf();
        f.i32(UnitExit.Continue).set(this.kind).br(this.exitL);
        return;
      }
    }
    throw new Error(`translator: unexpected instruction 0x${(insn >>> 0).toString(16)}`);
  }

  private opImm(f3: number, rs1: number, imm: number, insn: number): void {
    const f = this.f;
    if (rs1 === 0 && (f3 === 0 || f3 === 6 || f3 === 4)) {
      f.i64(imm); // li
      return;
    }
    this.getX(rs1);
    switch (f3) {
      case 0: if (imm !== 0) f.i64(imm).op(Op.i64_add); return; // ADDI (mv when imm = 0)
      case 2: f.i64(imm).op(Op.i64_lt_s).op(Op.i64_extend_i32_u); return; // SLTI
      case 3: f.i64(imm).op(Op.i64_lt_u).op(Op.i64_extend_i32_u); return; // SLTIU
      case 4: f.i64(imm).op(Op.i64_xor); return;
      case 6: f.i64(imm).op(Op.i64_or); return;
      case 7: f.i64(imm).op(Op.i64_and); return;
      case 1: f.i64(imm & 63).op(Op.i64_shl); return;
      default: f.i64(imm & 63).op(insn >>> 26 === 0 ? Op.i64_shr_u : Op.i64_shr_s); return;
    }
  }

  private opImm32(f3: number, f7: number, rs1: number, insn: number): void {
    const f = this.f;
    if (f3 === 0) { // ADDIW (sext.w when imm = 0)
      this.getX(rs1);
      const imm = immI(insn);
      if (imm !== 0) f.i64(imm).op(Op.i64_add);
      f.op(Op.i64_extend32_s);
      return;
    }
    this.getX(rs1);
    f.op(Op.i32_wrap_i64).i32(bits(insn, 24, 20));
    f.op(f3 === 1 ? Op.i32_shl : f7 === 0 ? Op.i32_shr_u : Op.i32_shr_s);
    f.op(Op.i64_extend_i32_s);
  }

  private op(f3: number, f7: number, rs1: number, rs2: number): void {
    const f = this.f;
    if (f7 === 1) {
      this.mulDiv(f3, rs1, rs2);
      return;
    }
    this.getX(rs1);
    this.getX(rs2);
    if (f7 === 0x20) {
      f.op(f3 === 0 ? Op.i64_sub : Op.i64_shr_s);
      return;
    }
    switch (f3) {
      case 0: f.op(Op.i64_add); return;
      case 1: f.op(Op.i64_shl); return;
      case 2: f.op(Op.i64_lt_s).op(Op.i64_extend_i32_u); return;
      case 3: f.op(Op.i64_lt_u).op(Op.i64_extend_i32_u); return;
      case 4: f.op(Op.i64_xor); return;
      case 5: f.op(Op.i64_shr_u); return;
      case 6: f.op(Op.i64_or); return;
      default: f.op(Op.i64_and); return;
    }
  }

  /** M extension, 64-bit: division by zero and overflow as the spec defines (wasm would trap). */
  private mulDiv(f3: number, rs1: number, rs2: number): void {
    const f = this.f;
    const a = this.tmp, b = this.tmp2;
    this.getX(rs1);
    f.set(a);
    this.getX(rs2);
    f.set(b);
    const I64 = ValType.I64;
    switch (f3) {
      case 0: f.get(a).get(b).op(Op.i64_mul); return;
      case 1: // MULH = mulhu - (a < 0 ? b : 0) - (b < 0 ? a : 0)
        f.get(a).get(b).call(this.imp.mulhu);
        f.get(b).get(a).i64(63).op(Op.i64_shr_s).op(Op.i64_and).op(Op.i64_sub);
        f.get(a).get(b).i64(63).op(Op.i64_shr_s).op(Op.i64_and).op(Op.i64_sub);
        return;
      case 2: // MULHSU = mulhu - (a < 0 ? b : 0)
        f.get(a).get(b).call(this.imp.mulhu);
        f.get(b).get(a).i64(63).op(Op.i64_shr_s).op(Op.i64_and).op(Op.i64_sub);
        return;
      case 3: f.get(a).get(b).call(this.imp.mulhu); return;
      case 4: // DIV
        f.get(b).op(Op.i64_eqz);
        f.if(I64);
        f.i64(-1);
        f.else();
        f.get(a).i64(-0x8000_0000_0000_0000n).op(Op.i64_eq).get(b).i64(-1).op(Op.i64_eq).op(Op.i32_and);
        f.if(I64);
        f.get(a);
        f.else();
        f.get(a).get(b).op(Op.i64_div_s);
        f.end();
        f.end();
        return;
      case 5: // DIVU
        this.guarded(b, () => f.i64(-1), () => f.get(a).get(b).op(Op.i64_div_u), I64);
        return;
      case 6: // REM (wasm's rem_s of MIN by -1 is 0, as RISC-V's)
        this.guarded(b, () => f.get(a), () => f.get(a).get(b).op(Op.i64_rem_s), I64);
        return;
      default: // REMU
        this.guarded(b, () => f.get(a), () => f.get(a).get(b).op(Op.i64_rem_u), I64);
        return;
    }
  }

  /** if (b == 0) zero() else other(), as an expression of type t (b: a local of type t). */
  private guarded(b: number, zero: () => void, other: () => void, t: ValType): void {
    const f = this.f;
    f.get(b).op(t === ValType.I64 ? Op.i64_eqz : Op.i32_eqz);
    f.if(t);
    zero();
    f.else();
    other();
    f.end();
  }

  private op32(f3: number, f7: number, rs1: number, rs2: number): void {
    const f = this.f;
    const I32 = ValType.I32;
    this.getX(rs1);
    f.op(Op.i32_wrap_i64);
    this.getX(rs2);
    f.op(Op.i32_wrap_i64);
    if (f7 === 0) {
      f.op(f3 === 0 ? Op.i32_add : f3 === 1 ? Op.i32_shl : Op.i32_shr_u);
    } else if (f7 === 0x20) {
      f.op(f3 === 0 ? Op.i32_sub : Op.i32_shr_s);
    } else {
      // Operands as i32 in the two temporaries' low halves.
      const a = this.ta, b = this.tb;
      f.set(b).set(a);
      switch (f3) {
        case 0: f.get(a).get(b).op(Op.i32_mul); break;
        case 4: // DIVW
          f.get(b).op(Op.i32_eqz);
          f.if(I32);
          f.i32(-1);
          f.else();
          f.get(a).i32(-0x8000_0000).op(Op.i32_eq).get(b).i32(-1).op(Op.i32_eq).op(Op.i32_and);
          f.if(I32);
          f.get(a);
          f.else();
          f.get(a).get(b).op(Op.i32_div_s);
          f.end();
          f.end();
          break;
        case 5: this.guarded(b, () => f.i32(-1), () => f.get(a).get(b).op(Op.i32_div_u), I32); break;
        case 6: this.guarded(b, () => f.get(a), () => f.get(a).get(b).op(Op.i32_rem_s), I32); break;
        default: this.guarded(b, () => f.get(a), () => f.get(a).get(b).op(Op.i32_rem_u), I32); break;
      }
    }
    f.op(Op.i64_extend_i32_s);
  }

  /** Pushes the TLB entry's address for va (in this.va) and compares its tag; leaves an i32. */
  private tlbHit(tlb: number, size: number, ctx: number): void {
    const f = this.f;
    f.get(this.va).op(Op.i32_wrap_i64).i32(8).op(Op.i32_shr_u).i32((this.layout.tlbSize - 1) << 4).op(Op.i32_and).tee(this.ent);
    f.mem(Op.i64_load, tlb, 3);
    // An access that crosses the page has a different last-byte page: it misses.
    f.get(this.va);
    if (size > 1) f.i64(size - 1).op(Op.i64_add);
    f.i64(12).op(Op.i64_shr_u).globalGet(ctx).op(Op.i64_or).op(Op.i64_eq);
  }

  /** The host address of va through the TLB entry in this.ent. */
  private hostAddress(tlb: number): void {
    const f = this.f;
    f.get(this.ent).mem(Op.i32_load, tlb + 8, 2);
    f.get(this.va).op(Op.i32_wrap_i64).i32(0xfff).op(Op.i32_and).op(Op.i32_add);
  }

  /**
   * Leaves from the middle of a block (registers written so far flushed): kind is g_status (a
   * load's or store's slow path failed or ends the chunk) or `kind`.
   */
  private memExit(d: Insn, adj: number, flush = true, kind?: UnitExit): void {
    if (flush) this.flush();
    const f = this.f;
    if (kind === undefined) f.globalGet(this.imp.status);
    else f.i32(kind);
    f.set(this.kind);
    f.i32(d.off | (d.len === 4 ? 1 << 12 : 0) | (adj << 13)).set(this.eoff).br(this.memexitL);
  }

  /** A load of `op` (`size` bytes, `ext` sign-extends a slow-path value) to `dest`. */
  private loadTo(d: Insn, op: Op, size: number, ext: Op | undefined, rs1: number, imm: number, adj: number,
    dest: { set(): void; store(): void }): void {
    const f = this.f;
    this.getX(rs1);
    if (imm !== 0) f.i64(imm).op(Op.i64_add);
    f.set(this.va);
    this.tlbHit(this.layout.tlbLoad, size, this.imp.loadCtx);
    this.ifThen(ValType.I64);
    this.hostAddress(this.layout.tlbLoad);
    f.mem(op, 0, 0);
    f.else();
    f.get(this.va).i32(size).call(this.imp.loadSlow);
    if (ext !== undefined) f.op(ext);
    f.set(this.tmp);
    f.globalGet(this.imp.status).if();
    this.flush(); // the block's registers as before this instruction
    // ST_EVENT: an MMIO load that completed and ends the chunk: its value still goes to rd.
    f.globalGet(this.imp.status).i32(UnitExit.Event).op(Op.i32_eq).if();
    f.get(this.tmp);
    dest.store();
    f.end();
    this.memExit(d, adj, false);
    f.end();
    f.get(this.tmp);
    this.endIf();
    dest.set();
  }

  private load(d: Insn, f3: number, rd: number, rs1: number, imm: number, adj: number): void {
    const { op, size, ext } = LOAD_OPS[f3];
    const f = this.f;
    const slot = this.layout.xreg + rd * 8;
    this.loadTo(d, op, size, ext, rs1, imm, adj, {
      set: () => this.setX(rd),
      store: () => (rd === 0 ? f.op(Op.drop) : f.set(this.tmp2).i32(0).get(this.tmp2).mem(Op.i64_store, slot, 3)),
    });
  }

  /** FLW, FLD: to the FP register file in memory (singles NaN-boxed), then mstatus.FS dirty. */
  private fpLoad(d: Insn, f3: number, rd: number, rs1: number, imm: number, adj: number): void {
    const f = this.f;
    const slot = this.layout.freg + rd * 8;
    const put = () => {
      if (f3 === 2) f.i64(-0x1_0000_0000).op(Op.i64_or);
      f.set(this.tmp2).i32(0).get(this.tmp2).mem(Op.i64_store, slot, 3);
    };
    this.loadTo(d, f3 === 2 ? Op.i64_load32_u : Op.i64_load, f3 === 2 ? 4 : 8, undefined, rs1, imm, adj, {
      set: () => { put(); this.fsDirty(); },
      store: () => { put(); this.fsDirty(); },
    });
  }

  /**
   * Before the block's first FP instruction: with mstatus.FS off they are illegal, and the
   * interpreter raises that (nothing in a block can turn FS off: CSR writes and traps end it).
   */
  private fpCheck(d: Insn, adj: number): void {
    if (this.fpChecked) return;
    this.fpChecked = true;
    const f = this.f;
    f.i32(0).mem(Op.i64_load, this.layout.mstatus, 3).i64(3 << 13).op(Op.i64_and).op(Op.i64_eqz);
    this.ifThen();
    this.memExit(d, adj, true, UnitExit.Interp);
    this.endIf();
  }

  /** mstatus.FS = Dirty (what the interpreter's markFsDirty does). */
  private fsDirty(): void {
    const f = this.f;
    f.i32(0).i32(0).mem(Op.i64_load, this.layout.mstatus, 3).i64(3 << 13).op(Op.i64_or).mem(Op.i64_store, this.layout.mstatus, 3);
  }

  /** A store of `op` (`size` bytes) of the value `value` pushes. */
  private storeOf(d: Insn, op: Op, size: number, rs1: number, imm: number, adj: number, value: () => void): void {
    const f = this.f;
    this.getX(rs1);
    if (imm !== 0) f.i64(imm).op(Op.i64_add);
    f.set(this.va);
    this.tlbHit(this.layout.tlbStore, size, this.imp.storeCtx);
    this.ifThen();
    this.hostAddress(this.layout.tlbStore);
    value();
    f.mem(op, 0, 0);
    f.else();
    f.get(this.va).i32(size);
    value();
    f.call(this.imp.storeSlow);
    f.globalGet(this.imp.status).if();
    this.memExit(d, adj);
    f.end();
    this.endIf();
  }

  private store(d: Insn, f3: number, rs1: number, rs2: number, imm: number, adj: number): void {
    const { op, size } = STORE_OPS[f3];
    this.ensure(rs2);
    this.storeOf(d, op, size, rs1, imm, adj, () => this.getX(rs2));
  }

  /** FSW (the low 32 bits as they are), FSD. */
  private fpStore(d: Insn, f3: number, rs1: number, rs2: number, imm: number, adj: number): void {
    const slot = this.layout.freg + rs2 * 8;
    this.storeOf(d, f3 === 2 ? Op.i64_store32 : Op.i64_store, f3 === 2 ? 4 : 8, rs1, imm, adj,
      () => this.f.i32(0).mem(Op.i64_load, slot, 3));
  }

  /**
   * OP-FP and FMA through the core's FP unit, which works on the register files in memory: an
   * integer source is written back first, an integer destination is read again after. An
   * encoding the unit refuses (a reserved rounding mode, ...) stops here for the interpreter.
   */
  private fpOp(d: Insn, adj: number): void {
    const f = this.f;
    const insn = d.insn;
    const rd = bits(insn, 11, 7), rs1 = bits(insn, 19, 15);
    const f5 = insn >>> 27;
    const op = insn & 0x7f;
    const intSource = op === 0x53 && (f5 === 0x1a || f5 === 0x1e);
    const intDest = op === 0x53 && (f5 === 0x14 || f5 === 0x18 || f5 === 0x1c);
    if (intSource && rs1 !== 0 && this.dirty.has(rs1)) {
      f.i32(0).get(this.local(rs1)).mem(Op.i64_store, this.layout.xreg + rs1 * 8, 3);
    }
    f.i32(insn).call(this.imp.fp).op(Op.i32_eqz);
    this.ifThen();
    this.memExit(d, adj, true, UnitExit.Interp);
    this.endIf();
    if (intDest) {
      // The unit wrote x[rd] in memory (x0 too: the interpreter zeroes it before each instruction).
      this.loaded.delete(rd);
      this.dirty.delete(rd);
      if (rd === 0) f.i32(0).i64(0).mem(Op.i64_store, this.layout.xreg, 3);
    }
    this.fsDirty();
  }
}
