// Address translation and the hart's memory accesses (privileged spec 4.3-4.6: Sv39, Sv48, Sv57).
//
// The interpreter's hit path looks up the TLBs itself (tlb.ts); on a miss it calls the slow
// paths here, which walk the page table, fill the TLB when the page may be accessed without the
// host knowing, and otherwise go to physical memory through bus.ts.

import { PAGES, RAM, RAM_GPA, TLB_FETCH, TLB_LOAD, TLB_STORE, H_PRIV, PG_WATCH, PG_ACCESSED, WALK_LOG, WALK_LOG_MAX } from "./layout";
import { csrGet, CSR_SATP, CSR_MSTATUS, MSTATUS_MPRV, MSTATUS_MPP_SHIFT, MSTATUS_SUM, MSTATUS_MXR } from "./csrdef";
import {
  raiseTrap, exitAfterInstruction, g_status, ST_OK, EXIT_HTIF,
  CAUSE_FETCH_PAGE_FAULT, CAUSE_LOAD_PAGE_FAULT, CAUSE_STORE_PAGE_FAULT,
} from "./status";
import { g_fetchCtx, g_loadCtx, g_storeCtx, tlbEntry } from "./tlb";
import {
  ACCESS_FETCH, ACCESS_LOAD, ACCESS_STORE, accessFault, inRam, romPage, ramPageReady, notePageWrite,
  hitsTohost, ioRead, ioWrite,
} from "./bus";
import { g_dataWatch, dataWatchBefore, dataWatchOnPage, WATCH_READ, WATCH_WRITE } from "./debug";
import { g_trace, g_traceFetch, TRACE_MMU, traceMmu, traceParcel } from "./trace";

// --- translation ---

function pageFault(access: i32, va: u64): void {
  raiseTrap(access == ACCESS_FETCH ? CAUSE_FETCH_PAGE_FAULT
    : access == ACCESS_LOAD ? CAUSE_LOAD_PAGE_FAULT : CAUSE_STORE_PAGE_FAULT, va);
}

// What the last walk found, for the mmu trace: the leaf's R/W/X and the privilege it used.
let g_walkProt: i32 = 0;
let g_walkIdx: u64 = 0;

// While probing (the monitor's `x` command, debugWalk), a walk has no side effects: no A/D
// update, and a fault or a not-yet-restored table page is reported through g_status like any
// other; the guest-physical address of each page-table entry it reads is logged at WALK_LOG.
let g_probe: bool = false;

// Translates for the host without side effects. Returns the physical address, or -1 with
// g_status = ST_TRAP (no mapping) or ST_EXIT (a page-table page is not restored: g_exitPage).
// The page-table entries the walk read are at WALK_LOG.
export function translateProbe(va: u64, access: i32): u64 {
  store<u64>(WALK_LOG, 0);
  g_probe = true;
  const pa = translate(va, access);
  g_probe = false;
  return pa;
}

// Walks `va` for `access` for the host under a context it gives (satp, the effective privilege,
// mstatus's SUM and MXR), without side effects, as translateProbe does; the hart's own context is
// not looked at. The page-table entries the walk read are at WALK_LOG.
export function walkProbe(va: u64, access: i32, satp: u64, effPriv: u64, status: u64): u64 {
  store<u64>(WALK_LOG, 0);
  g_probe = true;
  const pa = walk(va, access, satp, effPriv, status);
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
  return walk(va, access, csrGet(CSR_SATP), effPriv, status);
}

// While probing, each page-table entry a walk reads is logged at WALK_LOG (debugWalk).
function logPte(pteAddr: u64): void {
  const n = load<u64>(WALK_LOG);
  if (n < WALK_LOG_MAX) store<u64>(WALK_LOG + 8 + (<usize>n << 3), pteAddr);
  store<u64>(WALK_LOG, n + 1);
}

// The page-table walk (the one the harts and every debug view use): `va` for `access` under
// `satp`, at the effective privilege `effPriv` (0 U, 1 S, 3 M: no translation), with SUM and
// MXR from `status`. Returns the physical address; on failure raises the trap (or the
// not-restored exit) and returns -1.
function walk(va: u64, access: i32, satp: u64, effPriv: u64, status: u64): u64 {
  const mode = satp >> 60;
  g_walkIdx = effPriv;
  g_walkProt = 7;
  if (effPriv == 3 || mode == 0) return va;

  const levels: i32 = mode == 8 ? 3 : mode == 9 ? 4 : 5; // Sv39, Sv48, Sv57
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
    if (g_probe) logPte(pteAddr);
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
  g_walkProt = <i32>((pte >> 1) & 7); // R, W, X: QEMU's PAGE_READ, PAGE_WRITE, PAGE_EXEC
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
  if (g_trace & TRACE_MMU) traceMmu(va, access, g_status == ST_OK, g_status == ST_OK ? pa : 0, g_status == ST_OK ? g_walkProt : 0, g_walkIdx);
  if (g_status != ST_OK) return -1;
  let host: usize;
  if (inRam(pa)) {
    if (!ramPageReady(pa)) return -1;
    const at = PAGES + <usize>((pa - RAM_GPA) >> 12);
    const state = load<u8>(at);
    if (access == ACCESS_STORE) {
      if (state & PG_WATCH) return 0;
      notePageWrite(pa);
    } else {
      store<u8>(at, state | PG_ACCESSED);
    }
    host = RAM + <usize>((pa - RAM_GPA) & ~(<u64>0xfff));
  } else {
    host = access != ACCESS_STORE ? romPage(pa) : 0;
    if (host == 0) return 0;
  }
  const vpn = va >> 12;
  // A page with a debugger watchpoint or a trigger is never cached: its accesses come back here.
  if (g_dataWatch && access != ACCESS_FETCH && dataWatchOnPage(vpn, access == ACCESS_LOAD ? WATCH_READ : WATCH_WRITE)) return <isize>host;
  const tlb = access == ACCESS_FETCH ? TLB_FETCH : access == ACCESS_LOAD ? TLB_LOAD : TLB_STORE;
  const ctx = access == ACCESS_FETCH ? g_fetchCtx : access == ACCESS_LOAD ? g_loadCtx : g_storeCtx;
  const e = tlbEntry(tlb, vpn);
  store<u64>(e, vpn | ctx);
  store<u32>(e, <u32>host, 8);
  return <isize>host;
}

// --- the slow paths the interpreter calls on a TLB miss ---

// Loads `size` bytes (1, 2, 4, 8) at `va`, zero-extended. On failure g_status is set.
export function loadSlow(va: u64, size: i32): u64 {
  if (g_dataWatch && dataWatchBefore(va, size, WATCH_READ)) return 0;
  return loadAccess(va, size);
}

function loadAccess(va: u64, size: i32): u64 {
  const off = <i32>(va & 0xfff);
  if (off + size > 4096) {
    // Crosses a page: byte by byte, lowest first, so a fault reports the start address or
    // the first byte of the second page (priv spec 3.1.16: the faulting portion).
    let v: u64 = 0;
    for (let i = 0; i < size; i++) {
      const b = loadAccess(va + <u64>i, 1);
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
  if (g_dataWatch && dataWatchBefore(va, size, WATCH_WRITE)) return;
  storeAccess(va, size, value);
}

function storeAccess(va: u64, size: i32, value: u64): void {
  const off = <i32>(va & 0xfff);
  if (off + size > 4096) {
    // Crosses a page: translate (and ready) both pages before writing any byte.
    const first = 4096 - off;
    storeProbe(va);
    if (g_status != ST_OK) return;
    storeProbe(va + <u64>first);
    if (g_status != ST_OK) return;
    for (let i = 0; i < size; i++) {
      storeAccess(va + <u64>i, 1, value >> <u64>(i * 8));
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
      if (hitsTohost(pa, size)) {
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
  const parcel = <u32>load<u16>(<usize>host + <usize>(va & 0xfff));
  if (g_traceFetch) traceParcel(va, parcel); // -d in_asm/exec/cpu, --trace: every fetch comes here
  return parcel;
}

// Translates `va` for an atomic read-modify-write (LR/SC/AMO): RAM only, store permission
// (LR asks only for load permission). Returns the host address or 0 with g_status set.
export function amoAddress(va: u64, access: i32): usize {
  const vpn = va >> 12;
  const tlb = access == ACCESS_STORE ? TLB_STORE : TLB_LOAD;
  const ctx = access == ACCESS_STORE ? g_storeCtx : g_loadCtx;
  const e = tlbEntry(tlb, vpn);
  if (load<u64>(e) == (vpn | ctx)) return <usize>load<u32>(e, 8) + <usize>(va & 0xfff);
  // An AMO reads and writes; LR reads (SC writes, but tells no watch apart from an AMO).
  const kinds = access == ACCESS_STORE ? WATCH_READ | WATCH_WRITE : WATCH_READ;
  if (g_dataWatch && dataWatchBefore(va, 1, kinds)) return 0;
  return amoAccess(va, access);
}

function amoAccess(va: u64, access: i32): usize {
  const host = tlbFill(va, access);
  if (host < 0) return 0;
  if (host == 0) {
    const pa = translate(va, access);
    if (g_status != ST_OK) return 0;
    // LR asks for a load, SC and AMOs for a store: the fault follows (a device is no RAM).
    if (!inRam(pa)) { accessFault(access, va); return 0; }
    // A watched RAM page (tohost): allow the atomic, but note the write.
    notePageWrite(pa);
    return RAM + <usize>(pa - RAM_GPA);
  }
  return <usize>host + <usize>(va & 0xfff);
}

