// Address translation and physical memory (privileged spec 4.3-4.4, Sv39 and Sv48).
//
// Three software TLBs (fetch, load, store), direct-mapped, TLB_SIZE entries each. An entry
// maps one virtual page to the host (wasm) address of a RAM or ROM page:
//   [tag: u64][host page address: u32][unused: u32]
// The tag is the virtual page number with the translation context in bits 52..55
// (effective privilege, and for data accesses SUM and MXR), so a change of privilege or of
// SUM/MXR needs no flush: it simply selects other tags. A TLB hit is one compare.
//
// Entries are only ever created for pages that may be accessed without the host knowing:
//  - no entry for a not-yet-restored page (the touch must exit to the host first),
//  - a store entry only for a page already marked dirty, not disk-backed, not watched,
//    so the first write to a page (dirty tracking, page-cache tracking) takes the slow path,
//  - never an entry for devices (MMIO always takes the slow path).
// Whoever changes a page's state in a way that withdraws permission flushes the TLBs.

import {
  TLB_FETCH, TLB_LOAD, TLB_STORE, TLB_SIZE, PAGES, RAM, RAM_GPA, ROM, ROM_SIZE, H_PRIV,
  PG_NOT_RESTORED, PG_DIRTY, PG_DISK, PG_WATCH, PG_ACCESSED, H_MTIME, H_MTIMECMP, H_MSIP,
} from "./layout";
import {
  csrGet, CSR_SATP, CSR_MSTATUS, MSTATUS_MPRV, MSTATUS_MPP_SHIFT, MSTATUS_SUM, MSTATUS_MXR,
} from "./csr";
import {
  raiseTrap, exitBeforeEffect, exitAfterInstruction, g_status, ST_OK, EXIT_PAGE, EXIT_HTIF,
  CAUSE_FETCH_ACCESS, CAUSE_LOAD_ACCESS, CAUSE_STORE_ACCESS, CAUSE_FETCH_PAGE_FAULT,
  CAUSE_LOAD_PAGE_FAULT, CAUSE_STORE_PAGE_FAULT,
} from "./trap";

// Devices the host emulates (src/machine.ts): called synchronously during the access.
@external("host", "mmioRead")
declare function hostMmioRead(addr: u32, size: i32): u32;
@external("host", "mmioWrite")
declare function hostMmioWrite(addr: u32, size: i32, value: u32): void;

export const ACCESS_FETCH: i32 = 0;
export const ACCESS_LOAD: i32 = 1;
export const ACCESS_STORE: i32 = 2;

export let g_ramSize: u64 = 0;
export let g_ramPages: u32 = 0;
// Physical address of the HTIF tohost word (0 = none): stores to it exit to the host.
export let g_tohost: u64 = 0;
// Set by the host during an MMIO call when no device answers the address.
export let g_mmioFault: bool = false;

// Translation context tags (bits 52..55 of a TLB tag).
export let g_fetchCtx: u64 = 0;
export let g_loadCtx: u64 = 0;
export let g_storeCtx: u64 = 0;

const CLINT_BASE: u64 = 0x2000000;
const CLINT_SIZE: u64 = 0x10000;

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

// --- translation ---

function pageFault(access: i32, va: u64): void {
  raiseTrap(access == ACCESS_FETCH ? CAUSE_FETCH_PAGE_FAULT
    : access == ACCESS_LOAD ? CAUSE_LOAD_PAGE_FAULT : CAUSE_STORE_PAGE_FAULT, va);
}

export function accessFault(access: i32, va: u64): void {
  raiseTrap(access == ACCESS_FETCH ? CAUSE_FETCH_ACCESS
    : access == ACCESS_LOAD ? CAUSE_LOAD_ACCESS : CAUSE_STORE_ACCESS, va);
}

@inline function inRam(pa: u64): bool {
  return pa - RAM_GPA < g_ramSize;
}

// Checks that the RAM page holding `pa` is restored; otherwise exits to the host.
@inline function ramPageReady(pa: u64): bool {
  const page = <u32>((pa - RAM_GPA) >> 12);
  if (load<u8>(PAGES + page) & PG_NOT_RESTORED) {
    exitBeforeEffect(EXIT_PAGE, page);
    return false;
  }
  return true;
}

// Marks a RAM page written (by the hart or a page-table A/D update).
@inline function notePageWrite(pa: u64): void {
  const at = PAGES + <usize>((pa - RAM_GPA) >> 12);
  store<u8>(at, (load<u8>(at) | PG_DIRTY | PG_ACCESSED) & ~PG_DISK);
}

// While probing (the monitor's `x` command), a walk has no side effects: no A/D update, and a
// fault or a not-yet-restored table page is reported through g_status like any other.
let g_probe: bool = false;

// Translates for the host without side effects. Returns the physical address, or -1 with
// g_status = ST_TRAP (no mapping) or ST_EXIT (a page-table page is not restored: g_exitPage).
export function translateProbe(va: u64, access: i32): u64 {
  g_probe = true;
  const pa = translate(va, access);
  g_probe = false;
  return pa;
}

// Translates `va` for `access` under the current context. Returns the physical address;
// on failure raises the trap (or the not-restored exit) and returns -1.
export function translate(va: u64, access: i32): u64 {
  const p = load<u64>(H_PRIV);
  const status = csrGet(CSR_MSTATUS);
  let effPriv = p;
  if (access != ACCESS_FETCH && p == 3 && (status & MSTATUS_MPRV) != 0) {
    effPriv = (status >> MSTATUS_MPP_SHIFT) & 3;
  }
  const satp = csrGet(CSR_SATP);
  const mode = satp >> 60;
  if (effPriv == 3 || mode == 0) return va;

  const levels: i32 = mode == 8 ? 3 : 4;
  const vaBits: u64 = <u64>(12 + 9 * levels);
  // The address must be the sign extension of its low vaBits bits.
  const high = <i64>va >> <i64>(vaBits - 1);
  if (high != 0 && high != -1) {
    pageFault(access, va);
    return -1;
  }
  let a: u64 = (satp & 0xfffffffffff) << 12;
  let level = levels - 1;
  let pte: u64 = 0;
  let pteAddr: u64 = 0;
  while (true) {
    pteAddr = a + (((va >> <u64>(12 + 9 * level)) & 0x1ff) << 3);
    if (!inRam(pteAddr)) {
      accessFault(access, va);
      return -1;
    }
    if (!ramPageReady(pteAddr)) return -1;
    pte = load<u64>(RAM + <usize>(pteAddr - RAM_GPA));
    const v = pte & 1, r = (pte >> 1) & 1, w = (pte >> 2) & 1, x = (pte >> 3) & 1;
    // Reserved bits, Svpbmt and Svnapot bits must be zero (not implemented here).
    if (v == 0 || (r == 0 && w == 1) || (pte >> 54) != 0) {
      pageFault(access, va);
      return -1;
    }
    if (r | x) break;
    // Non-leaf: D, A and U are reserved and must be zero.
    if ((pte & 0xd0) != 0 || level == 0) {
      pageFault(access, va);
      return -1;
    }
    a = ((pte >> 10) & 0xfffffffffff) << 12;
    level--;
  }
  // Leaf permission checks.
  const u = (pte >> 4) & 1;
  if (effPriv == 0 && u == 0) { pageFault(access, va); return -1; }
  if (effPriv == 1 && u == 1) {
    if (access == ACCESS_FETCH || (status & MSTATUS_SUM) == 0) { pageFault(access, va); return -1; }
  }
  if (access == ACCESS_FETCH) {
    if ((pte & 8) == 0) { pageFault(access, va); return -1; }
  } else if (access == ACCESS_LOAD) {
    if ((pte & 2) == 0 && !((status & MSTATUS_MXR) != 0 && (pte & 8) != 0)) {
      pageFault(access, va); return -1;
    }
  } else if ((pte & 4) == 0) {
    pageFault(access, va);
    return -1;
  }
  const ppn = (pte >> 10) & 0xfffffffffff;
  const superMask: u64 = (<u64>1 << <u64>(9 * level)) - 1;
  if (ppn & superMask) { pageFault(access, va); return -1; } // misaligned superpage
  // Hardware A/D update (Svadu behaviour, as QEMU does).
  let want = pte | 0x40;
  if (access == ACCESS_STORE) want |= 0x80;
  if (want != pte && !g_probe) {
    store<u64>(RAM + <usize>(pteAddr - RAM_GPA), want);
    notePageWrite(pteAddr);
  }
  const pageOff = va & ((superMask << 12) | 0xfff);
  return ((ppn & ~superMask) << 12) | pageOff;
}

// Finds the host page for `va` and caches it in `tlb`. Returns the host address of the
// page, or 0 when the access must take the slow path every time (device, watched page),
// or -1 after raising a trap / exit.
function tlbFill(va: u64, access: i32): isize {
  const pa = translate(va, access);
  if (g_status != ST_OK) return -1;
  let host: usize;
  if (inRam(pa)) {
    if (!ramPageReady(pa)) return -1;
    const at = PAGES + <usize>((pa - RAM_GPA) >> 12);
    const state = load<u8>(at);
    if (access == ACCESS_STORE) {
      if (state & PG_WATCH) return 0;
      store<u8>(at, (state | PG_DIRTY | PG_ACCESSED) & ~PG_DISK);
    } else {
      store<u8>(at, state | PG_ACCESSED);
    }
    host = RAM + <usize>((pa - RAM_GPA) & ~(<u64>0xfff));
  } else if (pa < ROM_SIZE && access != ACCESS_STORE) {
    host = ROM + <usize>(pa & ~(<u64>0xfff));
  } else {
    return 0;
  }
  const vpn = va >> 12;
  const tlb = access == ACCESS_FETCH ? TLB_FETCH : access == ACCESS_LOAD ? TLB_LOAD : TLB_STORE;
  const ctx = access == ACCESS_FETCH ? g_fetchCtx : access == ACCESS_LOAD ? g_loadCtx : g_storeCtx;
  const e = tlbEntry(tlb, vpn);
  store<u64>(e, vpn | ctx);
  store<u32>(e, <u32>host, 8);
  return <isize>host;
}

// --- physical access outside the TLB (devices, ROM writes, watched pages) ---

function clintRead(off: u64, size: i32): u64 {
  let v: u64 = 0;
  let base: u64 = 0;
  if (off < 0x4000) { v = load<u64>(H_MSIP) & 1; base = 0; }
  else if (off >= 0x4000 && off < 0x4008) { v = load<u64>(H_MTIMECMP); base = 0x4000; }
  else if (off >= 0xbff8) { v = load<u64>(H_MTIME); base = 0xbff8; }
  else return 0;
  v >>= (off - base) << 3;
  return size == 8 ? v : v & ((<u64>1 << <u64>(size * 8)) - 1);
}

function clintWrite(off: u64, size: i32, value: u64): void {
  let slot: usize = 0;
  let base: u64 = 0;
  if (off < 4) { store<u64>(H_MSIP, value & 1); exitAfterInstruction(0); return; }
  if (off >= 0x4000 && off < 0x4008) { slot = H_MTIMECMP; base = 0x4000; }
  else if (off >= 0xbff8) { slot = H_MTIME; base = 0xbff8; }
  else return;
  const shift = (off - base) << 3;
  const mask: u64 = size == 8 ? <u64>-1 : ((<u64>1 << <u64>(size * 8)) - 1) << shift;
  store<u64>(slot, (load<u64>(slot) & ~mask) | ((value << shift) & mask));
  // The timer comparison changed: re-evaluate interrupts before the next instruction.
  exitAfterInstruction(0);
}

function ioRead(pa: u64, size: i32, access: i32, va: u64): u64 {
  if (pa < ROM_SIZE) {
    let v: u64 = 0;
    for (let i = size - 1; i >= 0; i--) v = (v << 8) | load<u8>(ROM + <usize>pa + i);
    return v;
  }
  if (pa - CLINT_BASE < CLINT_SIZE) return clintRead(pa - CLINT_BASE, size);
  if (access == ACCESS_FETCH || pa >= 0x80000000) { accessFault(access, va); return 0; }
  g_mmioFault = false;
  let v: u64;
  if (size == 8) {
    v = <u64>hostMmioRead(<u32>pa, 4) | (<u64>hostMmioRead(<u32>pa + 4, 4) << 32);
  } else {
    v = hostMmioRead(<u32>pa, size);
  }
  if (g_mmioFault) { accessFault(access, va); return 0; }
  return v;
}

function ioWrite(pa: u64, size: i32, value: u64, va: u64): void {
  if (pa < ROM_SIZE) return; // the reset ROM ignores writes, as QEMU's mrom does
  if (pa - CLINT_BASE < CLINT_SIZE) { clintWrite(pa - CLINT_BASE, size, value); return; }
  if (pa >= 0x80000000) { accessFault(ACCESS_STORE, va); return; }
  g_mmioFault = false;
  if (size == 8) {
    hostMmioWrite(<u32>pa, 4, <u32>value);
    hostMmioWrite(<u32>pa + 4, 4, <u32>(value >> 32));
  } else {
    hostMmioWrite(<u32>pa, size, <u32>value);
  }
  if (g_mmioFault) accessFault(ACCESS_STORE, va);
}

// --- the slow paths the interpreter calls on a TLB miss ---

// Loads `size` bytes (1, 2, 4, 8) at `va`, zero-extended. On failure g_status is set.
export function loadSlow(va: u64, size: i32): u64 {
  const off = <i32>(va & 0xfff);
  if (off + size > 4096) {
    // Crosses a page: byte by byte, lowest first, so a fault reports the start address or
    // the first byte of the second page (priv spec 3.1.16: the faulting portion).
    let v: u64 = 0;
    for (let i = 0; i < size; i++) {
      const b = loadSlow(va + <u64>i, 1);
      if (g_status != ST_OK) return 0;
      v |= b << <u64>(i * 8);
    }
    return v;
  }
  const host = tlbFill(va, ACCESS_LOAD);
  if (host < 0) return 0;
  if (host == 0) {
    const pa = translate(va, ACCESS_LOAD);
    if (g_status != ST_OK) return 0;
    return ioRead(pa, size, ACCESS_LOAD, va);
  }
  const at = <usize>host + <usize>off;
  switch (size) {
    case 1: return load<u8>(at);
    case 2: return load<u16>(at);
    case 4: return load<u32>(at);
    default: return load<u64>(at);
  }
}

// Stores the low `size` bytes of `value` at `va`. On failure g_status is set and nothing
// has been written.
export function storeSlow(va: u64, size: i32, value: u64): void {
  const off = <i32>(va & 0xfff);
  if (off + size > 4096) {
    // Crosses a page: translate (and ready) both pages before writing any byte.
    const first = 4096 - off;
    storeProbe(va);
    if (g_status != ST_OK) return;
    storeProbe(va + <u64>first);
    if (g_status != ST_OK) return;
    for (let i = 0; i < size; i++) {
      storeSlow(va + <u64>i, 1, value >> <u64>(i * 8));
    }
    return;
  }
  const host = tlbFill(va, ACCESS_STORE);
  if (host < 0) return;
  if (host == 0) {
    const pa = translate(va, ACCESS_STORE);
    if (g_status != ST_OK) return;
    if (inRam(pa)) {
      // A watched page: write it, then tell the host if tohost was hit.
      notePageWrite(pa);
      storeRam(RAM + <usize>(pa - RAM_GPA), size, value);
      if (g_tohost != 0 && pa <= g_tohost && g_tohost < pa + <u64>size) {
        exitAfterInstruction(EXIT_HTIF);
      }
      return;
    }
    ioWrite(pa, size, value, va);
    return;
  }
  storeRam(<usize>host + <usize>off, size, value);
}

function storeProbe(va: u64): void {
  const host = tlbFill(va, ACCESS_STORE);
  if (host == 0) translate(va, ACCESS_STORE);
}

@inline function storeRam(at: usize, size: i32, value: u64): void {
  switch (size) {
    case 1: store<u8>(at, <u8>value); break;
    case 2: store<u16>(at, <u16>value); break;
    case 4: store<u32>(at, <u32>value); break;
    default: store<u64>(at, value);
  }
}

// Fetches the 16-bit parcel at `va` (instruction fetch; va is 2-aligned). Also caches the
// page in g_fetchPage / g_fetchHost for the interpreter when it is RAM or ROM.
export let g_fetchVpn: u64 = -1;
export let g_fetchHost: usize = 0;

export function fetchParcel(va: u64): u32 {
  const vpn = va >> 12;
  const e = tlbEntry(TLB_FETCH, vpn);
  let host: isize;
  if (load<u64>(e) == (vpn | g_fetchCtx)) host = <isize>load<u32>(e, 8);
  else host = tlbFill(va, ACCESS_FETCH);
  if (host < 0) return 0;
  if (host == 0) {
    const pa = translate(va, ACCESS_FETCH);
    if (g_status != ST_OK) return 0;
    return <u32>ioRead(pa, 2, ACCESS_FETCH, va);
  }
  g_fetchVpn = vpn;
  g_fetchHost = <usize>host;
  return load<u16>(<usize>host + <usize>(va & 0xfff));
}

// Translates `va` for an atomic read-modify-write (LR/SC/AMO): RAM only, store permission
// (LR asks only for load permission). Returns the host address or 0 with g_status set.
export function amoAddress(va: u64, access: i32): usize {
  const vpn = va >> 12;
  const tlb = access == ACCESS_STORE ? TLB_STORE : TLB_LOAD;
  const ctx = access == ACCESS_STORE ? g_storeCtx : g_loadCtx;
  const e = tlbEntry(tlb, vpn);
  if (load<u64>(e) == (vpn | ctx)) return <usize>load<u32>(e, 8) + <usize>(va & 0xfff);
  const host = tlbFill(va, access);
  if (host < 0) return 0;
  if (host == 0) {
    const pa = translate(va, access);
    if (g_status != ST_OK) return 0;
    if (!inRam(pa)) { accessFault(ACCESS_STORE, va); return 0; }
    // A watched RAM page (tohost): allow the atomic, but note the write.
    notePageWrite(pa);
    return RAM + <usize>(pa - RAM_GPA);
  }
  return <usize>host + <usize>(va & 0xfff);
}

// --- configuration from the host ---

export function setRam(pages: u32): void {
  g_ramPages = pages;
  g_ramSize = <u64>pages << 12;
  memory.fill(PAGES, 0, pages);
}

// Sets the HTIF tohost address (0 = none); its page is watched so stores reach the host.
export function setTohost(pa: u64): void {
  if (g_tohost != 0 && inRam(g_tohost)) {
    const at = PAGES + <usize>((g_tohost - RAM_GPA) >> 12);
    store<u8>(at, load<u8>(at) & ~PG_WATCH);
  }
  g_tohost = pa;
  if (pa != 0 && inRam(pa)) {
    const at = PAGES + <usize>((pa - RAM_GPA) >> 12);
    store<u8>(at, load<u8>(at) | PG_WATCH);
  }
  tlbFlushStores();
}

export function setMmioFault(): void {
  g_mmioFault = true;
}
