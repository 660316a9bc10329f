// How a unit reports what happened to the interpreter, and what run() returns to the host.
//
// A unit that detects an exception calls `raiseTrap(cause, tval)`: that only records it and
// sets `g_status`, and the interpreter abandons the instruction before it has any effect
// (trap.ts performs the trap entry). A unit that needs the host calls `exitBeforeEffect`
// (nothing happened; the instruction re-executes) or `exitAfterInstruction` (it completed).
// This file depends on nothing, so every unit may report.

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
export const EXIT_DEBUG: i32 = 5; // a debugger breakpoint at pc (before the instruction)
export let g_exitReason: i32 = EXIT_SLICE;
export let g_exitPage: u32 = 0;

// What a side-effect-free probe (index.ts debugWalk) keeps as it found it: the status, the
// recorded trap and the exit reason and page.
let s_status: i32 = 0, s_cause: u64 = 0, s_tval: u64 = 0, s_exitReason: i32 = 0, s_exitPage: u32 = 0;
export function statusSave(): void {
  s_status = g_status; s_cause = g_cause; s_tval = g_tval; s_exitReason = g_exitReason; s_exitPage = g_exitPage;
  g_status = ST_OK;
}
export function statusRestore(): void {
  g_status = s_status; g_cause = s_cause; g_tval = s_tval; g_exitReason = s_exitReason; g_exitPage = s_exitPage;
}

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


// Internal to the core (harts.ts): the running hart asked to give way (it sent an IPI), so
// the scheduler switches harts now; never returned to the host (a number no host exit uses).
export const EXIT_YIELD: i32 = 100;

// Which hart is running (its state is at HART, layout.ts) and how many there are (harts.ts).
export let g_hart: u32 = 0;
export let g_nharts: u32 = 1;

export function setCurrentHart(h: u32): void {
  g_hart = h;
}

export function setHartCount(n: u32): void {
  g_nharts = n;
}
