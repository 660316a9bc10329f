// The core's interface to the host: a handful of functions, in the manner of TinyEMU's
// riscv_cpu.h. The host (src/core.ts) wraps them; everything per-instruction stays inside.
//
// Guest RAM, the page-state array and the hart state are read and written by the host
// directly through views of the module's memory at the addresses in layout.ts.

import {
  RAM, PAGES, HART, HART_SIZE, HARTS, MACHINE, MACHINE_END, H_PC, H_PRIV, M_MTIME, M_EXTIRQ,
  H_WFI, XREG, FREG, CSRS, ROM, TLB_FETCH, TLB_LOAD, TLB_STORE, TLBS, TLB_BYTES, TLB_SIZE, CEXP, SCRATCH, SCRATCH_SIZE, PG_DIRTY, PG_WATCH, PG_NOT_RESTORED, PG_ACCESSED, MAX_HARTS,
  WALK_LOG, WALK_LOG_MAX,
} from "./layout";
import { csrInit, csrRead, csrWrite, setIcountShift, csrExists as coreCsrExists } from "./csr";
import { CSR_MSTATUS } from "./csrdef";
import { rvcFillAll } from "./rvc";
import { updateTranslationContext } from "./tlb";
import { g_ramPages, setRam, setTohost, setMmioFault } from "./bus";
import { translateProbe, walkProbe } from "./mmu";
import { setWpCount, triggersChanged, armed } from "./debug";
import { setTrace } from "./trace";
import {
  g_exitPage, g_status, g_hart, g_nharts, exitAfterInstruction, clearStatus, EXIT_STOP, EXIT_SLICE, ST_OK, ST_EXIT,
  statusSave, statusRestore,
} from "./status";
import {
  resetHarts, runHarts, selectHart as select, machineTimerDeadline, instretAll, syncHarts as sync,
  hartsRestored as restored, dropReservations as drop, tlbFlushAllHarts, tlbFlushStoresAllHarts,
} from "./harts";
import { jitBytes, jitInit, jitFlush } from "./jit";
import { mapPageStates } from "./pages";

// Prepares a machine with `ramPages` 4 KiB pages of RAM and `harts` harts (1..MAX_HARTS).
// Returns false when the memory cannot be had or the hart count is out of range.
// True once init ran on this instance (its memory is no longer the new, all-zero one).
let g_initDone = false;

export function init(ramPages: u32, harts: u32): bool {
  if (harts < 1 || harts > MAX_HARTS) return false;
  const needBytes = <u64>RAM + (<u64>ramPages << 12) + <u64>jitBytes(ramPages);
  if (needBytes > (<u64>65536 << 16)) return false;
  const needPages = <i32>((needBytes + 0xffff) >> 16);
  const have = memory.size();
  if (needPages > have && memory.grow(needPages - have) < 0) return false;
  // The host gives each core a new memory, all zero: the first init need not clear the page
  // states or the JIT's tables (writing zeros there made the host commit 2.3 MiB per GiB of RAM,
  // ~10 ms of CPU on the way to a restored guest's first instruction).
  const clear = g_initDone;
  g_initDone = true;
  setRam(ramPages, clear);
  jitInit(RAM + (<usize>ramPages << 12), ramPages, clear);
  csrInit();
  resetHarts(harts); // (the RVC table fills as it is used: rvc.ts)
  return true;
}

// Power-on reset of every hart: registers zero, M-mode, pc at the reset ROM (0x1000).
export function reset(): void {
  resetHarts(g_nharts);
  jitFlush();
}

// Runs the harts for at most `maxInsns` instructions in all (harts.ts).
export function run(maxInsns: i32): i32 {
  return runHarts(maxInsns);
}

// --- where things are, for the host's views ---
export function ramAddress(): usize { return RAM; }
export function pagesAddress(): usize { return PAGES; }
export function romAddress(): usize { return ROM; }
export function ramPages(): u32 { return g_ramPages; }
// Hart h's state block while it is not selected (all of them after syncHarts()).
export function hartSlotAddress(h: u32): usize { return HARTS + <usize>h * HART_SIZE; }
export function hartSize(): usize { return HART_SIZE; }
// Hart h's TLBs (fetch, load, store; TLB_SIZE entries of 16 bytes each, tlb.ts), for `info tlb`.
export function tlbAddress(h: u32): usize { return h == g_hart ? TLB_FETCH : TLBS + <usize>h * TLB_BYTES; }
export function tlbSize(): u32 { return TLB_SIZE; }
// The state the harts share: mtime, the CLINT's registers, IRQ lines, whose turn it is.
export function machineAddress(): usize { return MACHINE; }
export function machineSize(): usize { return MACHINE_END - MACHINE; }

// --- harts: getPc/getX/readCsr... read and write the selected one ---
export function hartCount(): u32 { return g_nharts; }
export function currentHart(): u32 { return g_hart; }
// Selects hart h for the accessors below (the monitor's `cpu N`). Select the previous one again
// when done: the machine is then exactly as it was.
export function selectHart(h: u32): void { select(h); }
// Copies the selected hart's state to its slot: every slot is then current (for a save).
export function syncHarts(): void { sync(); }
// After the host rewrote the hart slots and the machine block (snapshot restore).
// RAM was rewritten too: every translation goes.
export function hartsRestored(): void { restored(); jitFlush(); }
// After the host changed the selected hart's privilege state directly (registers, CSRs).
export function hartStateChanged(): void { updateTranslationContext(); triggersChanged(); tlbFlushAllHarts(); }

// --- the selected hart's state ---
export function getPc(): u64 { return load<u64>(H_PC); }
export function setPc(pc: u64): void { store<u64>(H_PC, pc); }
export function getX(i: u32): u64 { return i == 0 ? 0 : load<u64>(XREG + (<usize>(i & 31) << 3)); }
export function setX(i: u32, v: u64): void { if (i != 0) store<u64>(XREG + (<usize>(i & 31) << 3), v); }
export function getF(i: u32): u64 { return load<u64>(FREG + (<usize>(i & 31) << 3)); }
export function setF(i: u32, v: u64): void { store<u64>(FREG + (<usize>(i & 31) << 3), v); }
export function getPriv(): u32 { return <u32>load<u64>(H_PRIV); }
export function inWfi(): bool { return load<u64>(H_WFI) != 0; }
export function setPriv(p: u32): void { store<u64>(H_PRIV, p); updateTranslationContext(); }
export function readCsr(num: u32): u64 { return csrRead(num & 0xfff); }
export function writeCsr(num: u32, v: u64): void { csrWrite(num & 0xfff, v); }
export function csrExists(num: u32): bool { return coreCsrExists(num); }
// Instructions retired by all harts.
export function instret(): u64 { return instretAll(); }

// --- time and interrupts ---
export function getMtime(): u64 { return load<u64>(M_MTIME); }
export function setMtime(t: u64): void { store<u64>(M_MTIME, t); }
// The earliest timer deadline of any hart.
export function timerDeadline(): u64 { return machineTimerDeadline(); }
export function setIcount(shift: i32): void { setIcountShift(shift); }
// External interrupt lines of hart `hart` from the PLIC: bit 9 = SEIP (its S context), bit 11 =
// MEIP (its M context). Called by the PLIC, possibly in the middle of an MMIO access (a virtio
// request completing): a change for the running hart ends the current chunk so the interrupt is
// looked at after this instruction; another hart sees it when its turn comes.
export function setExternalInterrupts(hart: u32, lines: u32): void {
  if (hart >= g_nharts) return;
  const at = M_EXTIRQ + (<usize>hart << 3);
  const v = <u64>(lines & 0xa00);
  if (v == load<u64>(at)) return;
  store<u64>(at, v);
  if (hart == g_hart) exitAfterInstruction(EXIT_SLICE);
}

// --- the board: where the core's own devices sit (src/board/memmap.ts) ---
export { mapDevice } from "./bus";

// --- requests from host devices during an MMIO call ---
export function mmioFault(): void { setMmioFault(); }
export function requestStop(): void { exitAfterInstruction(EXIT_STOP); }

// --- HTIF ---
export function setHtif(tohost: u64): void { setTohost(tohost); tlbFlushStoresAllHarts(); }
// Device DMA wrote guest memory: reservations are dropped (an SC then fails and retries).
export function dmaWritten(): void { drop(); }

// Translates a virtual address for the monitor, without side effects: returns the physical
// address; -1 if unmapped; -2 if a page-table page is not restored (see exitPage()).
export function debugTranslate(va: u64, access: i32): i64 {
  clearStatus();
  const pa = translateProbe(va, access);
  const st = g_status;
  clearStatus();
  if (st == ST_EXIT) return -2;
  if (st != ST_OK) return -1;
  return <i64>pa;
}

// The page-table walk of `va` for `access` (0 fetch, 1 load, 2 store) under `satp` at privilege
// `priv` (0 U, 1 S; 3 M: `va` is physical), with mstatus's SUM and MXR taken from `status`, for
// the host (Machine.firstPages: the pages a restored hart needs first): the core's own walk, and
// no side effects: no A/D update, no TLB fill, no trap, no page restored, no hart state or core
// status changed (the running hart's own satp, privilege and mstatus are not looked at).
// Returns the physical address; -1 if `va` does not map or `access` is not permitted (or an
// argument is out of range: a satp mode other than Bare, Sv39, Sv48, Sv57; priv 2; access > 2);
// -2 if a page-table page is not restored. debugWalkLog() then holds the walk's record: a u64
// count, then the guest-physical address of each page-table entry the walk read (u64 each, root
// first; the last is the leaf's, or the entry that stopped the walk: invalid, or on a page not
// restored). A walk that did not start (Bare, M-mode, non-canonical va) or whose table pointer
// left RAM logs nothing beyond the entries read before.
export function debugWalk(va: u64, access: i32, satp: u64, priv: u32, status: u64): i64 {
  store<u64>(WALK_LOG, 0);
  const mode = satp >> 60;
  if (<u32>access > 2 || priv == 2 || priv > 3 || (mode != 0 && (mode < 8 || mode > 10))) return -1;
  statusSave();
  const pa = walkProbe(va, access, satp, priv, status);
  const st = g_status;
  statusRestore();
  if (st == ST_EXIT) return -2;
  if (st != ST_OK) return -1;
  return <i64>pa;
}
export function debugWalkLog(): usize { return WALK_LOG; }
export function debugWalkLogMax(): u32 { return <u32>WALK_LOG_MAX; }

// --- debugger (src/gdb/): breakpoints by virtual address, interrupts masked while stepping ---
export { bpTable as debugBreakpointTable, setBpCount as debugSetBreakpointCount, setDebugNoIrq as debugSetNoIrq } from "./debug";
export { runHart as debugRunHart, setHeldHarts as debugSetHeldHarts } from "./harts";
export { wpTable as debugWatchTable, watchHitKinds as debugWatchHitKinds, watchHitAddr as debugWatchHitAddr } from "./debug";
// The debugger's watchpoints changed: no hart keeps a TLB entry for a page that now holds one.
export function debugSetWatchCount(n: i32): void { setWpCount(n); tlbFlushAllHarts(); }

// --- tracing (-d, src/trace.ts): TRACE_* items; the host's "trace" import receives them ---
export function setTraceItems(flags: u32): void { setTrace(flags); armed(); }

// --- pages ---
export function exitPage(): u32 { return g_exitPage; }
// The host changed page states in a way that withdraws access (not-yet-restored, watch).
export function pagesChanged(): void { tlbFlushAllHarts(); }
// Whether every RAM page without PG_DIRTY is all zero: true from init (RAM starts zero and every
// write marks its page dirty) until the first markClean or markAllNotRestored (a snapshot saved
// or restored: pages then hold data without being dirty). savevm need not read such pages (the
// first read of never-touched memory costs the host a page fault each).
let g_cleanIsZero: bool = true;
export function cleanPagesAreZero(): bool { return g_cleanIsZero; }
// Starts a new dirty-tracking epoch: clears PG_DIRTY on every page and makes the next write
// to each page take the slow path again.
export function markClean(): void {
  g_cleanIsZero = false;
  mapPageStates(g_ramPages, ~PG_DIRTY, 0);
  tlbFlushStoresAllHarts();
}
export function clearAccessed(): void {
  const n = g_ramPages;
  for (let i: u32 = 0; i < n; i++) {
    const at = PAGES + <usize>i;
    store<u8>(at, load<u8>(at) & ~PG_ACCESSED);
  }
  tlbFlushAllHarts();
}
// The end of an access epoch (the host's working-set tracking, machine.ts sweepAccessed): the
// RAM pages from `from` on whose accessed bit is set go into SCRATCH (u32 page numbers) and
// their bits are cleared, until SCRATCH is full or every page was looked at; returns how many.
// sweepNext() says where to go on (the number of RAM pages once done: the TLBs are flushed
// then, so the next touch of each page sets its bit again). Eight page states at a time, as
// few pages are touched in an epoch; in the host's JavaScript the first sweeps (before V8
// optimized the loop, one of them soon after a restored guest starts) took 5-15 ms per GiB.
let g_sweepNext: u32 = 0;
export function collectAccessed(from: u32): u32 {
  const n = g_ramPages;
  const most = SCRATCH_SIZE >> 2;
  const mask: u64 = 0x0101010101010101 * <u64>PG_ACCESSED;
  let k: u32 = 0;
  let i = from;
  while (i < n && k + 8 <= most) {
    if (i + 8 <= n && (load<u64>(PAGES + <usize>i) & mask) == 0) {
      i += 8;
      continue;
    }
    const end = i + 8 < n ? i + 8 : n;
    for (; i < end; i++) {
      const at = PAGES + <usize>i;
      const s = load<u8>(at);
      if (s & PG_ACCESSED) {
        store<u8>(at, s & ~PG_ACCESSED);
        store<u32>(SCRATCH + (<usize>k << 2), i);
        k++;
      }
    }
  }
  g_sweepNext = i;
  if (i >= n) tlbFlushAllHarts();
  return k;
}
export function sweepNext(): u32 { return g_sweepNext; }
// The host's view of a page write it made itself (DMA): the store TLB must not hold the
// page if it is now disk-backed or watched.
export function storesChanged(): void { tlbFlushStoresAllHarts(); }
// Marks every RAM page not yet restored (lazy restore).
// Keeps only the watch bit (HTIF tohost stays watched).
export function markAllNotRestored(): void {
  g_cleanIsZero = false;
  mapPageStates(g_ramPages, PG_WATCH, PG_NOT_RESTORED);
  tlbFlushAllHarts();
  jitFlush();
}

// --- snapshots: whole-page classification (pages.ts) ---
export { classify, pageHash, pageHashIs, pagesEqual, hashBytes, isZero } from "./pages";
export function scratchAddress(): usize { return SCRATCH; }
export function scratchSize(): u32 { return SCRATCH_SIZE; }

// --- the JIT (jit.ts; the host side is src/jit/) ---
export {
  jitSetOn, jitSetThreshold, jitInstall, jitDefer, jitInvalidate, jitFlush, jitQueueAddress, jitQueued,
  jitQueueOverflowed, jitQueueClear, jitTableAddress, jitEpoch, jitInstructions, jitCalls,
  jitLoadSlow, jitStoreSlow, jitMaps, jitCallsEnded, jitSlots,
} from "./jit";
// What generated code reads: the status of the last slow path and the TLB context tags (of the
// running hart: translated code runs inside run(), never across a hart switch).
export { g_status } from "./status";
export { g_loadCtx, g_storeCtx } from "./tlb";
export function jitXregAddress(): usize { return XREG; }
export function jitFregAddress(): usize { return FREG; }
export function jitMstatusAddress(): usize { return CSRS + (<usize>CSR_MSTATUS << 3); }
// The FP unit for translated code (OP-FP, FMA): false = illegal, nothing changed.
export { execFp as jitFp } from "./fpu";
export function jitPcAddress(): usize { return H_PC; }
export function jitTlbLoadAddress(): usize { return TLB_LOAD; }
export function jitTlbStoreAddress(): usize { return TLB_STORE; }
export function jitTlbSize(): u32 { return TLB_SIZE; }
// The RVC expansion table, complete (the interpreter alone fills it as it goes: rvc.ts).
export function jitRvcAddress(): usize { rvcFillAll(); return CEXP; }
