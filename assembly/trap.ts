// Exceptions and interrupts (privileged spec 3.1.6-3.1.9, 3.3, 4.1.1).
//
// A unit that detects an exception calls `raiseTrap(cause, tval)`: that only records it and
// sets `g_status`, and the interpreter abandons the instruction before it has any effect.
// The interpreter then calls `takeTrap(pc)`, which does the architectural trap entry:
// delegation through medeleg/mideleg, xepc/xcause/xtval, the xPIE/xIE/xPP stack, and the
// jump to xtvec (vectored for interrupts when xtvec.MODE = 1).

import { H_PRIV, H_RESV } from "./layout";
import {
  csrGet, csrSet, mipValue, CSR_MSTATUS, CSR_MEDELEG, CSR_MIDELEG, CSR_MIE, CSR_MTVEC, CSR_STVEC,
  CSR_MEPC, CSR_MCAUSE, CSR_MTVAL, CSR_SEPC, CSR_SCAUSE, CSR_STVAL, MSTATUS_MIE, MSTATUS_MPIE,
  MSTATUS_MPP, MSTATUS_MPP_SHIFT, MSTATUS_SIE, MSTATUS_SPIE, MSTATUS_SPP,
  IRQ_MEI, IRQ_MSI, IRQ_MTI, IRQ_SEI, IRQ_SSI, IRQ_STI,
} from "./csr";
import { updateTranslationContext } from "./mmu";

export const CAUSE_MISALIGNED_FETCH: u64 = 0;
export const CAUSE_FETCH_ACCESS: u64 = 1;
export const CAUSE_ILLEGAL_INSTRUCTION: u64 = 2;
export const CAUSE_BREAKPOINT: u64 = 3;
export const CAUSE_MISALIGNED_LOAD: u64 = 4;
export const CAUSE_LOAD_ACCESS: u64 = 5;
export const CAUSE_MISALIGNED_STORE: u64 = 6;
export const CAUSE_STORE_ACCESS: u64 = 7;
export const CAUSE_USER_ECALL: u64 = 8;
export const CAUSE_SUPERVISOR_ECALL: u64 = 9;
export const CAUSE_MACHINE_ECALL: u64 = 11;
export const CAUSE_FETCH_PAGE_FAULT: u64 = 12;
export const CAUSE_LOAD_PAGE_FAULT: u64 = 13;
export const CAUSE_STORE_PAGE_FAULT: u64 = 15;
export const INTERRUPT_BIT: u64 = 1 << 63;

// g_status tells the interpreter what happened inside a unit it called.
export const ST_OK: i32 = 0;
export const ST_TRAP: i32 = 1; // an exception was raised; the instruction has no effect
export const ST_EXIT: i32 = 2; // leave to the host before the instruction has any effect
export const ST_EVENT: i32 = 3; // the instruction completed; end the chunk (exit if g_exitReason set)

export let g_status: i32 = ST_OK;
export let g_cause: u64 = 0;
export let g_tval: u64 = 0;

// Exit reasons returned by run() to the host (docs/ARCHITECTURE.md, "Exit reasons").
export const EXIT_SLICE: i32 = 0; // the instruction budget is spent
export const EXIT_PAGE: i32 = 1; // a not-yet-restored page was touched (g_exitPage)
export const EXIT_WFI: i32 = 2; // WFI with nothing pending: the host may sleep
export const EXIT_HTIF: i32 = 3; // the guest wrote tohost
export const EXIT_STOP: i32 = 4; // the host asked to stop (device request, monitor, poweroff)
export let g_exitReason: i32 = EXIT_SLICE;
export let g_exitPage: u32 = 0;

export function setExitReason(reason: i32): void {
  g_exitReason = reason;
}

export function raiseTrap(cause: u64, tval: u64): void {
  g_status = ST_TRAP;
  g_cause = cause;
  g_tval = tval;
}

export function exitBeforeEffect(reason: i32, page: u32): void {
  g_status = ST_EXIT;
  g_exitReason = reason;
  g_exitPage = page;
}

export function exitAfterInstruction(reason: i32): void {
  if (g_status == ST_OK) g_status = ST_EVENT;
  if (g_exitReason == EXIT_SLICE) g_exitReason = reason;
}

export function clearStatus(): void {
  g_status = ST_OK;
}

// Performs trap entry for `cause` (with INTERRUPT_BIT for interrupts) taken at `pc`.
// Returns the new pc.
export function takeTrap(cause: u64, tval: u64, pc: u64): u64 {
  const p = load<u64>(H_PRIV);
  const isInterrupt = (cause & INTERRUPT_BIT) != 0;
  const code = cause & ~INTERRUPT_BIT;
  const deleg = isInterrupt ? csrGet(CSR_MIDELEG) : csrGet(CSR_MEDELEG);
  let status = csrGet(CSR_MSTATUS);
  let vector: u64;
  store<u64>(H_RESV, -1);
  if (p <= 1 && ((deleg >> code) & 1) != 0) {
    // Into S-mode.
    csrSet(CSR_SEPC, pc);
    csrSet(CSR_SCAUSE, cause);
    csrSet(CSR_STVAL, tval);
    status = (status & ~(MSTATUS_SPIE | MSTATUS_SPP)) |
      ((status & MSTATUS_SIE) ? MSTATUS_SPIE : 0) | (p == 1 ? MSTATUS_SPP : 0);
    status &= ~MSTATUS_SIE;
    store<u64>(H_PRIV, 1);
    vector = csrGet(CSR_STVEC);
  } else {
    csrSet(CSR_MEPC, pc);
    csrSet(CSR_MCAUSE, cause);
    csrSet(CSR_MTVAL, tval);
    status = (status & ~(MSTATUS_MPIE | MSTATUS_MPP)) |
      ((status & MSTATUS_MIE) ? MSTATUS_MPIE : 0) | (p << MSTATUS_MPP_SHIFT);
    status &= ~MSTATUS_MIE;
    store<u64>(H_PRIV, 3);
    vector = csrGet(CSR_MTVEC);
  }
  csrSet(CSR_MSTATUS, status);
  updateTranslationContext();
  const base = vector & ~(<u64>3);
  if (isInterrupt && (vector & 3) == 1) return base + 4 * code;
  return base;
}

// The highest-priority interrupt that is pending, enabled and may be taken at the current
// privilege, as a cause value with INTERRUPT_BIT set; 0 if none.
export function pendingInterrupt(): u64 {
  const pending = mipValue() & csrGet(CSR_MIE);
  if (pending == 0) return 0;
  const p = load<u64>(H_PRIV);
  const status = csrGet(CSR_MSTATUS);
  const mideleg = csrGet(CSR_MIDELEG);
  const mEnabled = p < 3 || (status & MSTATUS_MIE) != 0;
  const sEnabled = p < 1 || (p == 1 && (status & MSTATUS_SIE) != 0);
  let take: u64 = 0;
  if (mEnabled) take = pending & ~mideleg;
  if (take == 0 && sEnabled) take = pending & mideleg;
  if (take == 0) return 0;
  // Priority order: MEI, MSI, MTI, SEI, SSI, STI (priv spec 3.1.9).
  if (take & (1 << IRQ_MEI)) return INTERRUPT_BIT | IRQ_MEI;
  if (take & (1 << IRQ_MSI)) return INTERRUPT_BIT | IRQ_MSI;
  if (take & (1 << IRQ_MTI)) return INTERRUPT_BIT | IRQ_MTI;
  if (take & (1 << IRQ_SEI)) return INTERRUPT_BIT | IRQ_SEI;
  if (take & (1 << IRQ_SSI)) return INTERRUPT_BIT | IRQ_SSI;
  if (take & (1 << IRQ_STI)) return INTERRUPT_BIT | IRQ_STI;
  return 0;
}

// True when any interrupt is pending and locally enabled, whatever the global enables:
// the condition that ends WFI (priv spec 3.3.3).
export function wfiWakeup(): bool {
  return (mipValue() & csrGet(CSR_MIE)) != 0;
}

// MRET / SRET (priv spec 3.3.2). Returns the new pc.
export function trapReturnM(): u64 {
  let status = csrGet(CSR_MSTATUS);
  const mpp = (status >> MSTATUS_MPP_SHIFT) & 3;
  status = (status & ~(MSTATUS_MIE | MSTATUS_MPP)) | ((status & MSTATUS_MPIE) ? MSTATUS_MIE : 0) |
    MSTATUS_MPIE;
  // Returning to a privilege below M clears MPRV.
  if (mpp != 3) status &= ~(<u64>1 << 17);
  csrSet(CSR_MSTATUS, status);
  store<u64>(H_PRIV, mpp);
  store<u64>(H_RESV, -1);
  updateTranslationContext();
  return csrGet(CSR_MEPC);
}

export function trapReturnS(): u64 {
  let status = csrGet(CSR_MSTATUS);
  const spp: u64 = (status & MSTATUS_SPP) ? 1 : 0;
  status = (status & ~(MSTATUS_SIE | MSTATUS_SPP)) | ((status & MSTATUS_SPIE) ? MSTATUS_SIE : 0) |
    MSTATUS_SPIE;
  status &= ~(<u64>1 << 17); // MPRV: SRET always returns below M
  csrSet(CSR_MSTATUS, status);
  store<u64>(H_PRIV, spp);
  store<u64>(H_RESV, -1);
  updateTranslationContext();
  return csrGet(CSR_SEPC);
}
