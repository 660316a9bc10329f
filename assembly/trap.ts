// Exceptions and interrupts (privileged spec 3.1.6-3.1.9, 3.3, 4.1.1).
//
// Units report exceptions through status.ts (`raiseTrap`): nothing happens until the
// interpreter calls `takeTrap(pc)`, which does the architectural trap entry:
// delegation through medeleg/mideleg, xepc/xcause/xtval, the xPIE/xIE/xPP stack, and the
// jump to xtvec (vectored for interrupts when xtvec.MODE = 1).

import { H_PRIV, H_RESV } from "./layout";
import {
  csrGet, csrSet, CSR_MSTATUS, CSR_MEDELEG, CSR_MIDELEG, CSR_MIE, CSR_MTVEC, CSR_STVEC,
  CSR_MEPC, CSR_MCAUSE, CSR_MTVAL, CSR_SEPC, CSR_SCAUSE, CSR_STVAL, MSTATUS_MIE, MSTATUS_MPIE,
  MSTATUS_MPP, MSTATUS_MPP_SHIFT, MSTATUS_SIE, MSTATUS_SPIE, MSTATUS_SPP,
  IRQ_MEI, IRQ_MSI, IRQ_MTI, IRQ_SEI, IRQ_SSI, IRQ_STI,
} from "./csrdef";
import { mipValue } from "./csr";
import { INTERRUPT_BIT } from "./status";
import { updateTranslationContext } from "./tlb";
import { g_trace, TRACE_INT, traceTrap } from "./trace";

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
  if (g_trace & TRACE_INT) traceTrap(cause, pc, tval, p, load<u64>(H_PRIV));
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
