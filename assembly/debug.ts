// Debugger support: the host's gdb stub (src/gdb/) and the guest's own debug triggers (Sdtrig).
//
// Three kinds of address watches, all on virtual addresses, all checked only on slow paths:
//  - gdb breakpoints (Z0/Z1): a table the host fills; a fetch at one exits to the host before
//    the instruction (EXIT_DEBUG).
//  - gdb watchpoints (Z2/Z3/Z4): [addr, addr + len) for writes, reads or both, on every hart;
//    an access that touches one exits before it (EXIT_DEBUG, with the watchpoint in
//    g_watchHit*), as QEMU stops for them on RISC-V.
//  - the running hart's mcontrol triggers (tselect/tdata1/tdata2, debug spec 5.x), whose action
//    is a breakpoint exception before the instruction or the access.
// The fast paths never look: the interpreter checks fetches only when it leaves its cached
// fetch page and never caches a page that holds a fetch watch; loads and stores reach
// loadSlow/storeSlow/amoAddress (mmu.ts) on a TLB miss, and tlbFill never caches a page that
// holds a data watch. Arming one flushes the TLBs, so the next access to the page comes here.
// With nothing armed, each slow path pays one compare.

import { H_PRIV, H_TRIG, TRIGGERS } from "./layout";
import { csrGet, CSR_MSTATUS, MSTATUS_MIE } from "./csrdef";
import { raiseTrap, exitBeforeEffect, EXIT_DEBUG, CAUSE_BREAKPOINT } from "./status";
import { tlbFlushAll } from "./tlb";
import { g_traceFetch } from "./trace";

export const BP_MAX: i32 = 64;
const BP_TABLE: usize = memory.data(BP_MAX * 8);
export const WP_MAX: i32 = 16;
// gdb watchpoints: [addr u64][len u64][kinds u64: WATCH_READ | WATCH_WRITE]
const WP_TABLE: usize = memory.data(WP_MAX * 24);
export const WATCH_READ: u32 = 1;
export const WATCH_WRITE: u32 = 2;

export let g_bpCount: i32 = 0;
let g_wpCount: i32 = 0;
// QEMU's default single-step mode (SSTEP_NOIRQ): no interrupt is taken while stepping.
export let g_debugNoIrq: bool = false;
// The watchpoint the last EXIT_DEBUG reports (0 = a breakpoint).
let g_watchHitKinds: u32 = 0;
let g_watchHitAddr: u64 = 0;

// What the running hart's triggers watch (recomputed by triggersChanged).
let g_trigFetch: bool = false;
let g_trigData: bool = false;
// Whether the slow paths look at all: fetch (breakpoints, execute triggers), data (the rest).
export let g_fetchWatch: bool = false;
export let g_dataWatch: bool = false;

// Also after the trace items changed (index.ts): a fetch trace looks at every fetch.
export function armed(): void {
  g_fetchWatch = g_bpCount != 0 || g_trigFetch || g_traceFetch;
  g_dataWatch = g_wpCount != 0 || g_trigData;
}

export function bpTable(): usize { return BP_TABLE; }
export function setBpCount(n: i32): void {
  g_bpCount = n < 0 ? 0 : n > BP_MAX ? BP_MAX : n;
  armed();
}
export function setDebugNoIrq(on: bool): void { g_debugNoIrq = on; }
export function wpTable(): usize { return WP_TABLE; }
// The caller flushes every hart's TLBs (index.ts).
export function setWpCount(n: i32): void {
  g_wpCount = n < 0 ? 0 : n > WP_MAX ? WP_MAX : n;
  armed();
}
export function watchHitKinds(): u32 { return g_watchHitKinds; }
export function watchHitAddr(): u64 { return g_watchHitAddr; }

// --- mcontrol triggers (debug spec, Sdtrig) ---
// tdata1 of an mcontrol (type 2) trigger:
const MC_TYPE_SHIFT: u64 = 60;
const MC_LOAD: u64 = 1;
const MC_STORE: u64 = 2;
const MC_EXECUTE: u64 = 4;
const MC_U: u64 = 8;
const MC_S: u64 = 16;
const MC_M: u64 = 64;
const MC_MATCH_SHIFT: u64 = 7;
// What a write keeps: action 0 (breakpoint exception), timing 0 (before), select 0 (address),
// sizelo 0 (any size), chain 0, dmode 0 (there is no debug mode), maskmax 0, hit 0.
const MC_WMASK: u64 = (<u64>15 << MC_MATCH_SHIFT) | MC_M | MC_S | MC_U | MC_EXECUTE | MC_STORE | MC_LOAD;
const TYPE_MCONTROL: u64 = 2;
const TYPE_DISABLED: u64 = 15;

@inline function trigSlot(i: u32): usize {
  return H_TRIG + (<usize>i << 4);
}

// tdata1 as read. A stored 0 (reset, or a snapshot from before triggers) is an mcontrol
// trigger that matches nothing, as QEMU resets them.
export function tdata1Get(i: u32): u64 {
  const v = load<u64>(trigSlot(i));
  return v == 0 ? TYPE_MCONTROL << MC_TYPE_SHIFT : v;
}
export function tdata2Get(i: u32): u64 {
  return load<u64>(trigSlot(i), 8);
}

// WARL: an mcontrol keeps the fields above and the match types equal (0), >= (2) and < (3);
// any other type or match makes the trigger disabled (type 15), as the debug spec asks of a
// type it does not support.
export function tdata1Set(i: u32, v: u64): void {
  let next = TYPE_DISABLED << MC_TYPE_SHIFT;
  if ((v >> MC_TYPE_SHIFT) == TYPE_MCONTROL) {
    const m = (v >> MC_MATCH_SHIFT) & 15;
    next = (TYPE_MCONTROL << MC_TYPE_SHIFT) | (v & MC_WMASK);
    if (m != 0 && m != 2 && m != 3) next &= ~(<u64>15 << MC_MATCH_SHIFT);
  }
  store<u64>(trigSlot(i), next);
  triggersChanged();
  tlbFlushAll();
}
export function tdata2Set(i: u32, v: u64): void {
  store<u64>(trigSlot(i), v, 8);
  triggersChanged();
  tlbFlushAll();
}

// After the running hart's triggers changed (a write, a hart switch, a restore).
export function triggersChanged(): void {
  let fetch = false, data = false;
  for (let i: u32 = 0; i < TRIGGERS; i++) {
    const t = load<u64>(trigSlot(i));
    if ((t >> MC_TYPE_SHIFT) != TYPE_MCONTROL || (t & (MC_M | MC_S | MC_U)) == 0) continue;
    if (t & MC_EXECUTE) fetch = true;
    if (t & (MC_LOAD | MC_STORE)) data = true;
  }
  g_trigFetch = fetch;
  g_trigData = data;
  armed();
}

// Whether trigger i fires for an access of [va, va + size) of kind `kinds` (MC_*) now.
function triggerHit(i: u32, va: u64, size: u64, kinds: u64): bool {
  const t = load<u64>(trigSlot(i));
  if ((t >> MC_TYPE_SHIFT) != TYPE_MCONTROL || (t & kinds) == 0) return false;
  const p = load<u64>(H_PRIV);
  if ((t & (p == 3 ? MC_M : p == 1 ? MC_S : MC_U)) == 0) return false;
  // Without tcontrol, an M-mode breakpoint-exception trigger fires only while mstatus.MIE is
  // set, so it cannot fire again inside its own trap handler (debug spec, "Native M-mode
  // triggers").
  if (p == 3 && (csrGet(CSR_MSTATUS) & MSTATUS_MIE) == 0) return false;
  const a = load<u64>(trigSlot(i), 8);
  const last = va + size - 1;
  switch (<u32>((t >> MC_MATCH_SHIFT) & 15)) {
    case 2: return last >= a; // some accessed byte >= tdata2
    case 3: return va < a; // some accessed byte < tdata2
    default: return va <= a && a <= last; // some accessed byte == tdata2
  }
}

function triggerOnPage(vpn: u64, kinds: u64): bool {
  for (let i: u32 = 0; i < TRIGGERS; i++) {
    const t = load<u64>(trigSlot(i));
    if ((t >> MC_TYPE_SHIFT) != TYPE_MCONTROL || (t & kinds) == 0 || (t & (MC_M | MC_S | MC_U)) == 0) continue;
    if (((t >> MC_MATCH_SHIFT) & 15) != 0) return true; // a range: every page
    if ((load<u64>(trigSlot(i), 8) >> 12) == vpn) return true;
  }
  return false;
}

// --- the slow paths' checks ---

// A fetch at `pc` (the interpreter, when it leaves its cached fetch page): a gdb breakpoint
// exits before the instruction; an execute trigger raises a breakpoint exception (tval = pc).
// Returns true when g_status says which.
export function fetchWatchHit(pc: u64): bool {
  for (let i = 0; i < g_bpCount; i++) {
    if (load<u64>(BP_TABLE + (<usize>i << 3)) == pc) {
      g_watchHitKinds = 0;
      exitBeforeEffect(EXIT_DEBUG, 0);
      return true;
    }
  }
  if (g_trigFetch) {
    for (let i: u32 = 0; i < TRIGGERS; i++) {
      if (triggerHit(i, pc, 2, MC_EXECUTE)) {
        raiseTrap(CAUSE_BREAKPOINT, pc);
        return true;
      }
    }
  }
  return false;
}

// Whether the virtual page `vpn` holds a fetch watch (such a page is never the cached fetch page).
export function fetchWatchOnPage(vpn: u64): bool {
  if (g_traceFetch) return true;
  for (let i = 0; i < g_bpCount; i++) if ((load<u64>(BP_TABLE + (<usize>i << 3)) >> 12) == vpn) return true;
  return g_trigFetch && triggerOnPage(vpn, MC_EXECUTE);
}

// Before a load (WATCH_READ), store (WATCH_WRITE) or atomic (both) of [va, va + size): a
// trigger raises a breakpoint exception; a gdb watchpoint exits to the host before the access
// (EXIT_DEBUG; pc stays at the instruction), which is what gdb expects of RISC-V (its
// have_nonsteppable_watchpoint: it steps the instruction with the watchpoints out, then
// compares) and what QEMU does (gdb_stop_before_watchpoint). Returns true when the access must
// not happen.
export function dataWatchBefore(va: u64, size: i32, kinds: u32): bool {
  if (g_trigData) {
    const mk = ((kinds & WATCH_READ) ? MC_LOAD : 0) | ((kinds & WATCH_WRITE) ? MC_STORE : 0);
    for (let i: u32 = 0; i < TRIGGERS; i++) {
      if (triggerHit(i, va, <u64>size, mk)) {
        raiseTrap(CAUSE_BREAKPOINT, va);
        return true;
      }
    }
  }
  const last = va + <u64>size - 1;
  for (let i = 0; i < g_wpCount; i++) {
    const e = WP_TABLE + <usize>i * 24;
    const k = <u32>load<u64>(e, 16);
    if ((k & kinds) == 0) continue;
    const a = load<u64>(e), end = a + load<u64>(e, 8) - 1;
    if (va <= end && a <= last) {
      g_watchHitKinds = k;
      g_watchHitAddr = a;
      exitBeforeEffect(EXIT_DEBUG, 0);
      return true;
    }
  }
  return false;
}

// Whether the virtual page `vpn` holds a data watch for `kinds` (such a page is never cached in
// the load or store TLB).
export function dataWatchOnPage(vpn: u64, kinds: u32): bool {
  for (let i = 0; i < g_wpCount; i++) {
    const e = WP_TABLE + <usize>i * 24;
    if ((<u32>load<u64>(e, 16) & kinds) == 0) continue;
    const a = load<u64>(e), end = a + load<u64>(e, 8) - 1;
    if ((a >> 12) <= vpn && vpn <= (end >> 12)) return true;
  }
  if (!g_trigData) return false;
  return triggerOnPage(vpn, ((kinds & WATCH_READ) ? MC_LOAD : 0) | ((kinds & WATCH_WRITE) ? MC_STORE : 0));
}
