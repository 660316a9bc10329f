// Several harts on one host thread: every hart's state block and TLBs have a slot (HARTS,
// TLBS in layout.ts); the running hart's are copied to HART and TLB, where the interpreter's
// hot path finds them at constant addresses. The scheduler runs the harts round robin in
// quanta of QUANTUM instructions, counted in executed instructions, so a run is the same
// instruction for instruction whatever the host does (deterministic with --icount).
// A hart in WFI with nothing pending is skipped (costs no host time); when every hart is idle
// run() returns EXIT_WFI and the host sleeps until the earliest timer (timerDeadline).
//
// LR/SC: only the running hart executes, so another hart's store can reach a reserved address
// only after a switch. A hart loses its reservation when it is switched out (and on device
// DMA: dropReservations); its SC then fails and the LR/SC loop retries, which the A extension
// allows (an SC may fail spuriously; a quantum is far longer than a constrained LR/SC loop, so
// it succeeds on the retry).

import {
  HART, HART_SIZE, HARTS, TLBS, TLB_FETCH, TLB_BYTES, TLB_STORE, TLB_SIZE, H_PRIV, H_RESV, H_PC, H_WFI,
  H_INSTRET, M_CURRENT, M_QUANTUM, M_MSIP, M_MTIMECMP, M_EXTIRQ, CSRS, MAX_HARTS,
} from "./layout";
import { g_hart, g_nharts, setCurrentHart, setHartCount, EXIT_SLICE, EXIT_WFI, EXIT_YIELD } from "./status";
import { updateTranslationContext, tlbFlushAll, tlbFlushStores } from "./tlb";
import { csrReset, mipAt, timerDeadlineAt } from "./csr";
import { CSR_MIE, CSR_MHARTID } from "./csrdef";
import { run as hartRun, g_executed } from "./hart";
import { triggersChanged } from "./debug";

// Instructions a hart runs before the next runnable one gets its turn (~0.3 ms of host time):
// short enough that a hart spinning on a lock or waiting for an IPI's answer soon lets the
// others run, long enough that a switch (two block copies, ~6 us) costs under 2%.
export const QUANTUM: i32 = 1 << 16;

@inline function slot(h: u32): usize {
  return HARTS + <usize>h * HART_SIZE;
}
@inline function tlbSlot(h: u32): usize {
  return TLBS + <usize>h * TLB_BYTES;
}

// Where hart h's state block is now: HART while it runs, its slot otherwise.
@inline export function stateOf(h: u32): usize {
  return h == g_hart ? HART : slot(h);
}

// Power-on reset of `n` harts: registers zero, M-mode, pc at the reset ROM (0x1000),
// mhartid = the hart's number, msip clear, mtimecmp at its maximum. Hart 0 runs first.
export function resetHarts(n: u32): void {
  setHartCount(n);
  for (let h: u32 = 0; h < MAX_HARTS; h++) {
    memory.fill(HART, 0, HART_SIZE);
    csrReset();
    store<u64>(H_PRIV, 3);
    store<u64>(H_RESV, -1);
    store<u64>(H_PC, 0x1000);
    store<u64>(CSRS + (<usize>CSR_MHARTID << 3), h);
    memory.copy(slot(h), HART, HART_SIZE);
    store<u64>(M_MSIP + (<usize>h << 3), 0);
    store<u64>(M_MTIMECMP + (<usize>h << 3), -1);
    store<u64>(M_EXTIRQ + (<usize>h << 3), 0);
  }
  memory.copy(HART, slot(0), HART_SIZE);
  setCurrentHart(0);
  store<u64>(M_CURRENT, 0);
  store<u64>(M_QUANTUM, QUANTUM);
  updateTranslationContext();
  triggersChanged();
  tlbFlushAll();
  memory.fill(TLBS, 0xff, <usize>MAX_HARTS * TLB_BYTES);
}

// Makes hart h the one at HART (and TLB), keeping everything else as it is.
function bringIn(h: u32): void {
  const cur = g_hart;
  if (h == cur) return;
  memory.copy(slot(cur), HART, HART_SIZE);
  memory.copy(tlbSlot(cur), TLB_FETCH, TLB_BYTES);
  memory.copy(HART, slot(h), HART_SIZE);
  memory.copy(TLB_FETCH, tlbSlot(h), TLB_BYTES);
  setCurrentHart(h);
  store<u64>(M_CURRENT, h);
  updateTranslationContext();
  triggersChanged(); // each hart has its own
}

// For the host (monitor, gdb): selects the hart that getPc/getX/readCsr... see. Selecting one
// and then the previous one again leaves the machine exactly as it was.
export function selectHart(h: u32): void {
  if (h < g_nharts) bringIn(h);
}

// Harts the debugger holds (bit h set): the scheduler passes them by, as QEMU's gdbstub leaves
// a CPU stopped that a vCont action did not resume (gdb's scheduler-locking).
let g_held: u32 = 0;
export function setHeldHarts(mask: u32): void { g_held = mask; }

// Runs hart h alone for at most `n` instructions (a debugger's single step, or the step over
// a breakpoint): the other harts wait; h stays the running hart afterwards.
export function runHart(h: u32, n: i32): i32 {
  if (h < g_nharts) bringIn(h);
  return hartRun(n);
}

// Whether hart h (not necessarily the running one) can run: not in WFI, or woken.
function runnable(h: u32): bool {
  if (((g_held >> h) & 1) != 0) return false;
  const state = stateOf(h);
  if (load<u64>(state + (H_WFI - HART)) == 0) return true;
  const mie = load<u64>(state + (CSRS - HART) + (<usize>CSR_MIE << 3));
  return (mipAt(state, h) & mie) != 0;
}

// Gives the turn to the next runnable hart after the current one, round robin; the current
// one keeps it if no other can run. Returns false when no hart at all can run.
function nextHart(): bool {
  const n = g_nharts;
  for (let i: u32 = 1; i <= n; i++) {
    const h = (g_hart + i) % n;
    if (runnable(h)) {
      if (h != g_hart) {
        store<u64>(H_RESV, -1); // the reservation does not survive a switch (see above)
        bringIn(h);
      }
      store<u64>(M_QUANTUM, QUANTUM);
      return true;
    }
  }
  return false;
}

// Runs the machine for at most `maxInsns` instructions in all; returns an exit reason.
// Host exits (a page to restore, HTIF, a stop) leave the same hart current: the host serves
// the exit and calls run() again, and that hart goes on with what is left of its quantum.
export function runHarts(maxInsns: i32): i32 {
  if (g_nharts == 1) return hartRun(maxInsns);
  let left = maxInsns;
  if (!runnable(g_hart) && !nextHart()) return EXIT_WFI;
  while (left > 0) {
    let quantum = <i32>load<u64>(M_QUANTUM);
    if (quantum <= 0) {
      if (!nextHart()) return EXIT_WFI;
      quantum = QUANTUM;
    }
    const r = hartRun(quantum < left ? quantum : left);
    const done = g_executed;
    left -= done;
    store<u64>(M_QUANTUM, <u64>(quantum - done));
    // This hart went idle, or sent an IPI: the next runnable one goes on.
    if (r == EXIT_WFI || r == EXIT_YIELD) {
      if (!nextHart()) return EXIT_WFI;
      continue;
    }
    if (r != EXIT_SLICE) return r;
  }
  return EXIT_SLICE;
}

// --- what the host asks about all harts ---

// The earliest timer deadline of any hart (the host's sleep in WFI, the jump in icount mode).
export function machineTimerDeadline(): u64 {
  let d: u64 = -1;
  for (let h: u32 = 0; h < g_nharts; h++) {
    const t = timerDeadlineAt(stateOf(h), h);
    if (t < d) d = t;
  }
  return d;
}

// Instructions retired by all harts.
export function instretAll(): u64 {
  let s: u64 = 0;
  for (let h: u32 = 0; h < g_nharts; h++) s += load<u64>(stateOf(h) + (H_INSTRET - HART));
  return s;
}

// Copies the running hart's state to its slot, so the host sees every hart's state in the
// slots (snapshots save them from there).
export function syncHarts(): void {
  memory.copy(slot(g_hart), HART, HART_SIZE);
}

// After the host rewrote the slots and the MACHINE block (snapshot restore): the hart the
// block names runs next, with empty TLBs.
export function hartsRestored(): void {
  const h = <u32>load<u64>(M_CURRENT);
  setCurrentHart(h < g_nharts ? h : 0);
  memory.copy(HART, slot(g_hart), HART_SIZE);
  updateTranslationContext();
  triggersChanged();
  tlbFlushAllHarts();
}

// Device DMA wrote memory: no reservation survives (a hart's SC then fails and retries).
export function dropReservations(): void {
  store<u64>(H_RESV, -1);
  for (let h: u32 = 0; h < g_nharts; h++) store<u64>(slot(h) + (H_RESV - HART), -1);
}

// --- TLB flushes that must reach every hart (page states changed by the host) ---

export function tlbFlushAllHarts(): void {
  tlbFlushAll();
  if (g_nharts > 1) memory.fill(TLBS, 0xff, <usize>g_nharts * TLB_BYTES);
}

export function tlbFlushStoresAllHarts(): void {
  tlbFlushStores();
  if (g_nharts == 1) return;
  for (let h: u32 = 0; h < g_nharts; h++) {
    memory.fill(tlbSlot(h) + (TLB_STORE - TLB_FETCH), 0xff, <usize>TLB_SIZE * 16);
  }
}
