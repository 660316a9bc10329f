// QEMU-style tracing (-d ITEMS, src/trace.ts): while the host asks, the core tells it what the
// running hart does through one import. With no item set, `g_trace` is 0 and each hook below is
// one compare on a slow path; the interpreter's fast paths never look.
//  - fetches (in_asm, exec, cpu; the per-instruction --trace): every fetch takes the slow path
//    (debug.ts never lets the interpreter cache a fetch page while g_traceFetch), whose
//    fetchParcel (mmu.ts) reports each parcel: block starts go to the host (a jump, a trap, or the instruction after a branch,
//    jump or SYSTEM instruction, as QEMU ends its translation blocks), and for --trace every
//    instruction does;
//  - traps (int): takeTrap reports cause, epc, tval and the privilege before and after;
//  - page walks (mmu): tlbFill reports each TLB fill (QEMU's tlb_fill) and its outcome;
//  - guest errors: a CSR access that is illegal.

import { H_PRIV } from "./layout";

@external("host", "trace")
declare function hostTrace(kind: i32, a: u64, b: u64, c: u64): void;

export const TRACE_INSN: u32 = 1;
export const TRACE_BLOCK: u32 = 2;
export const TRACE_INT: u32 = 4;
export const TRACE_MMU: u32 = 8;
export const TRACE_GUEST_ERRORS: u32 = 16;

// What hostTrace's `kind` says (low byte; the rest carries small fields).
const KIND_INSN: i32 = 1; // a = pc, b = priv, c = raw instruction
const KIND_BLOCK: i32 = 2; // a = pc, b = priv
const KIND_TRAP: i32 = 3; // kind | priv before << 8 | priv after << 12; a = cause, b = epc, c = tval
const KIND_MMU: i32 = 4; // kind | access << 8 | ok << 12 | prot << 16; a = va, b = pa, c = mmu index
const KIND_CSR: i32 = 5; // a = csr number, b = write, c = instruction bits

export let g_trace: u32 = 0;
// Whether fetches are traced (then no fetch page is cached: debug.ts fetchWatchOnPage).
export let g_traceFetch: bool = false;
let g_traceNext: u64 = -1;
let g_traceEnds: bool = true;

export function setTrace(flags: u32): void {
  g_trace = flags;
  g_traceFetch = (flags & (TRACE_INSN | TRACE_BLOCK)) != 0;
  g_traceNext = -1;
  g_halfPc = -1;
}

// Whether the instruction ends a block: branches, jumps, SYSTEM (CSR, ecall, mret, ...), fences.
function endsBlock(raw: u32): bool {
  if ((raw & 3) == 3) {
    const op = raw & 0x7f;
    return op == 0x63 || op == 0x67 || op == 0x6f || op == 0x73 || op == 0x0f;
  }
  const f3 = (raw >> 13) & 7;
  if ((raw & 3) == 1) return f3 == 5 || f3 == 6 || f3 == 7; // c.j, c.beqz, c.bnez
  return (raw & 3) == 2 && f3 == 4 && ((raw >> 2) & 31) == 0 && ((raw >> 7) & 31) != 0; // c.jr, c.jalr
}

// A parcel fetched at `va` (mmu.ts fetchParcel: while fetches are traced, every fetch takes the
// slow path). The low parcel of a 32-bit instruction waits for its high one; an instruction
// whose second parcel faults did not run and is not reported.
let g_halfPc: u64 = -1;
let g_halfLo: u32 = 0;
export function traceParcel(va: u64, parcel: u32): void {
  if (g_halfPc != <u64>-1 && va == g_halfPc + 2) {
    const pc = g_halfPc;
    g_halfPc = -1;
    traceFetch(pc, g_halfLo | (parcel << 16));
    return;
  }
  if ((parcel & 3) == 3) {
    g_halfPc = va;
    g_halfLo = parcel;
    return;
  }
  g_halfPc = -1;
  traceFetch(va, parcel);
}

// An instruction fetched: `raw` at `pc`.
function traceFetch(pc: u64, raw: u32): void {
  const p = load<u64>(H_PRIV);
  if ((g_trace & TRACE_BLOCK) != 0 && (pc != g_traceNext || g_traceEnds)) hostTrace(KIND_BLOCK, pc, p, 0);
  if (g_trace & TRACE_INSN) hostTrace(KIND_INSN, pc, p, raw);
  g_traceNext = pc + ((raw & 3) == 3 ? 4 : 2);
  g_traceEnds = endsBlock(raw);
}

export function traceTrap(cause: u64, epc: u64, tval: u64, before: u64, after: u64): void {
  hostTrace(KIND_TRAP | (<i32>before << 8) | (<i32>after << 12), cause, epc, tval);
}

// access: bus.ts ACCESS_* (0 fetch, 1 load, 2 store); prot: 1 read, 2 write, 4 execute.
export function traceMmu(va: u64, access: i32, ok: bool, pa: u64, prot: i32, mmuIdx: u64): void {
  hostTrace(KIND_MMU | (access << 8) | ((ok ? 1 : 0) << 12) | (prot << 16), va, pa, mmuIdx);
}

export function traceCsr(num: u32, write: bool, insn: u32): void {
  hostTrace(KIND_CSR, num, write ? 1 : 0, insn);
}
