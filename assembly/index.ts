// The core's interface to the host: a handful of functions, in the manner of TinyEMU's
// riscv_cpu.h. The host (src/core.ts) wraps them; everything per-instruction stays inside.
//
// Guest RAM, the page-state array and the hart state are read and written by the host
// directly through views of the module's memory at the addresses in layout.ts.

import {
  RAM, PAGES, HART, HART_END, H_PC, H_PRIV, H_RESV, H_MTIME, H_MTIMECMP, H_EXTIRQ,
  H_INSTRET, H_LASTINSN, XREG, ROM, SCRATCH, SCRATCH_SIZE, PG_DIRTY, PG_WATCH, PG_NOT_RESTORED, PG_ACCESSED,
} from "./layout";
import { csrInit, csrReset, csrRead, csrWrite, setIcountShift } from "./csr";
import { rvcInit } from "./rvc";
import { tlbFlushAll, tlbFlushStores, updateTranslationContext } from "./tlb";
import { g_ramPages, setRam, setTohost, setMmioFault } from "./bus";
import { translateProbe } from "./mmu";
import { g_exitPage, g_status, exitAfterInstruction, clearStatus, EXIT_STOP, EXIT_SLICE, ST_OK, ST_EXIT } from "./status";
import { run as hartRun, nextTimerDeadline } from "./hart";

// Prepares a machine with `ramPages` 4 KiB pages of RAM. Returns false when the memory
// cannot be had.
export function init(ramPages: u32): bool {
  const needBytes = <u64>RAM + (<u64>ramPages << 12);
  if (needBytes > (<u64>65536 << 16)) return false;
  const needPages = <i32>((needBytes + 0xffff) >> 16);
  const have = memory.size();
  if (needPages > have && memory.grow(needPages - have) < 0) return false;
  setRam(ramPages);
  csrInit();
  rvcInit();
  reset();
  return true;
}

// Power-on reset: registers zero, M-mode, pc at the reset ROM (0x1000).
export function reset(): void {
  memory.fill(HART, 0, HART_END - HART);
  csrReset();
  store<u64>(H_PRIV, 3);
  store<u64>(H_RESV, -1);
  store<u64>(H_MTIMECMP, -1);
  store<u64>(H_PC, 0x1000);
  updateTranslationContext();
  tlbFlushAll();
}

export function run(maxInsns: i32): i32 {
  return hartRun(maxInsns);
}

// --- where things are, for the host's views ---
export function ramAddress(): usize { return RAM; }
export function pagesAddress(): usize { return PAGES; }
export function romAddress(): usize { return ROM; }
export function hartAddress(): usize { return HART; }
export function hartSize(): usize { return HART_END - HART; }
export function ramPages(): u32 { return g_ramPages; }

// --- hart state ---
export function getPc(): u64 { return load<u64>(H_PC); }
export function setPc(pc: u64): void { store<u64>(H_PC, pc); }
export function getX(i: u32): u64 { return i == 0 ? 0 : load<u64>(XREG + (<usize>(i & 31) << 3)); }
export function setX(i: u32, v: u64): void { if (i != 0) store<u64>(XREG + (<usize>(i & 31) << 3), v); }
export function getPriv(): u32 { return <u32>load<u64>(H_PRIV); }
export function setPriv(p: u32): void { store<u64>(H_PRIV, p); updateTranslationContext(); }
export function readCsr(num: u32): u64 { return csrRead(num & 0xfff); }
export function writeCsr(num: u32, v: u64): void { csrWrite(num & 0xfff, v); }
export function lastInstruction(): u32 { return <u32>load<u64>(H_LASTINSN); }
export function instret(): u64 { return load<u64>(H_INSTRET); }
// After the host rewrote the hart state block (snapshot restore).
export function hartStateChanged(): void { updateTranslationContext(); tlbFlushAll(); }

// --- time and interrupts ---
export function getMtime(): u64 { return load<u64>(H_MTIME); }
export function setMtime(t: u64): void { store<u64>(H_MTIME, t); }
export function timerDeadline(): u64 { return nextTimerDeadline(); }
export function setIcount(shift: i32): void { setIcountShift(shift); }
// External interrupt lines from the PLIC: bit 9 = SEIP (context 1), bit 11 = MEIP (context 0).
// Called by the PLIC, possibly in the middle of an MMIO access (a virtio request completing):
// a change ends the current chunk so the interrupt is looked at after this instruction.
export function setExternalInterrupts(lines: u32): void {
  const v = <u64>(lines & 0xa00);
  if (v == load<u64>(H_EXTIRQ)) return;
  store<u64>(H_EXTIRQ, v);
  exitAfterInstruction(EXIT_SLICE);
}

// --- the board: where the core's own devices sit (src/board/memmap.ts) ---
export { mapDevice } from "./bus";

// --- requests from host devices during an MMIO call ---
export function mmioFault(): void { setMmioFault(); }
export function requestStop(): void { exitAfterInstruction(EXIT_STOP); }

// --- HTIF ---
export function setHtif(tohost: u64): void { setTohost(tohost); }

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

// --- pages ---
export function exitPage(): u32 { return g_exitPage; }
// The host changed page states in a way that withdraws access (not-yet-restored, watch).
export function pagesChanged(): void { tlbFlushAll(); }
// Starts a new dirty-tracking epoch: clears PG_DIRTY on every page and makes the next write
// to each page take the slow path again.
export function markClean(): void {
  const n = g_ramPages;
  for (let i: u32 = 0; i < n; i++) {
    const at = PAGES + <usize>i;
    store<u8>(at, load<u8>(at) & ~PG_DIRTY);
  }
  tlbFlushStores();
}
export function clearAccessed(): void {
  const n = g_ramPages;
  for (let i: u32 = 0; i < n; i++) {
    const at = PAGES + <usize>i;
    store<u8>(at, load<u8>(at) & ~PG_ACCESSED);
  }
  tlbFlushAll();
}
// The host's view of a page write it made itself (DMA): the store TLB must not hold the
// page if it is now disk-backed or watched.
export function storesChanged(): void { tlbFlushStores(); }
// Marks every RAM page not yet restored (lazy restore).
// Keeps only the watch bit (HTIF tohost stays watched).
export function markAllNotRestored(): void {
  const n = g_ramPages;
  for (let i: u32 = 0; i < n; i++) {
    const at = PAGES + <usize>i;
    store<u8>(at, PG_NOT_RESTORED | (load<u8>(at) & PG_WATCH));
  }
  tlbFlushAll();
}

// --- snapshots: whole-page classification (pages.ts) ---
export { classify, pageHash, pagesEqual, hashBytes, isZero } from "./pages";
export function scratchAddress(): usize { return SCRATCH; }
export function scratchSize(): u32 { return SCRATCH_SIZE; }
