// The software TLBs (fetch, load, store) and the translation context their tags carry.
//
// Three direct-mapped TLBs of TLB_SIZE entries each. An entry maps one virtual page to the host
// (wasm) address of a RAM or ROM page:
//   [tag: u64][host page address: u32][unused: u32]
// The tag is the virtual page number with the translation context in bits 52..55 (effective
// privilege, and for data accesses SUM and MXR), so a change of privilege or of SUM/MXR needs
// no flush: it simply selects other tags. A TLB hit is one compare.
//
// Entries are only ever created for pages that may be accessed without the host knowing
// (mmu.ts, tlbFill):
//  - no entry for a not-yet-restored page (the touch must exit to the host first),
//  - a store entry only for a page already marked dirty, not disk-backed, not watched, without
//    translated code (jit.ts), so the first write to a page (dirty tracking, page-cache
//    tracking, self-modifying code) takes the slow path,
//  - never an entry for devices (MMIO always takes the slow path).
// Whoever changes a page's state in a way that withdraws permission flushes the TLBs.

import { TLB_FETCH, TLB_STORE, TLB_SIZE, H_PRIV } from "./layout";
import { csrGet, CSR_MSTATUS, MSTATUS_MPRV, MSTATUS_MPP_SHIFT, MSTATUS_SUM, MSTATUS_MXR } from "./csrdef";

// Translation context tags (bits 52..55 of a TLB tag) of the current hart.
export let g_fetchCtx: u64 = 0;
export let g_loadCtx: u64 = 0;
export let g_storeCtx: u64 = 0;

export function tlbFlushAll(): void {
  memory.fill(TLB_FETCH, 0xff, <usize>TLB_SIZE * 16 * 3);
}

export function tlbFlushStores(): void {
  memory.fill(TLB_STORE, 0xff, <usize>TLB_SIZE * 16);
}

// Recomputes the context tags after a change of privilege or of mstatus.
export function updateTranslationContext(): void {
  const p = load<u64>(H_PRIV);
  const status = csrGet(CSR_MSTATUS);
  let dataPriv = p;
  if (p == 3 && (status & MSTATUS_MPRV) != 0) dataPriv = (status >> MSTATUS_MPP_SHIFT) & 3;
  const sum: u64 = (status & MSTATUS_SUM) ? 1 : 0;
  const mxr: u64 = (status & MSTATUS_MXR) ? 1 : 0;
  g_fetchCtx = p << 52;
  g_storeCtx = (dataPriv << 52) | (sum << 54);
  g_loadCtx = g_storeCtx | (mxr << 55);
}

@inline export function tlbEntry(tlb: usize, vpn: u64): usize {
  return tlb + ((<usize>(<u32>vpn & (TLB_SIZE - 1))) << 4);
}
