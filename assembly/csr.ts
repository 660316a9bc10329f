// Control and status registers (privileged spec chapters 2, 3, 4; Zicsr, Zicntr, Sstc).
//
// CSRs are a table, in the manner of QEMU's target/riscv/csr.c: every CSR number has a
// kind (absent, plain storage, or "special" with side effects) and a write mask. Plain
// CSRs live at CSRS + 8*number and need no code at all; the few with side effects or
// derived values are handled in `readSpecial` / `writeSpecial`. The privilege and
// read-only checks follow from the number itself (csr[9:8] = lowest privilege,
// csr[11:10] == 3 = read-only), so the table only says what exists.

import { CSRS, CSR_WMASK, HART, M_EXTIRQ, H_INSTRET, H_FFLAGS, H_FRM } from "./layout";
import { raiseTrap, g_hart, CAUSE_ILLEGAL_INSTRUCTION } from "./status";
import { mtimeNow, mtimecmpOf, msipOf } from "./clint";
import { tlbFlushAll, updateTranslationContext } from "./tlb";
import { tdata1Get, tdata1Set, tdata2Get, tdata2Set } from "./debug";
import { TRIGGERS } from "./layout";
import { g_trace, TRACE_GUEST_ERRORS, traceCsr } from "./trace";
import {
  csrGet, csrSet, priv, CSR_FFLAGS, CSR_FRM, CSR_FCSR, CSR_CYCLE, CSR_TIME, CSR_INSTRET, CSR_SSTATUS,
  CSR_SIE, CSR_STVEC, CSR_SCOUNTEREN, CSR_SENVCFG, CSR_SSCRATCH, CSR_SEPC, CSR_SCAUSE, CSR_STVAL,
  CSR_SIP, CSR_STIMECMP, CSR_SATP, CSR_MVENDORID, CSR_MARCHID, CSR_MIMPID, CSR_MHARTID,
  CSR_MCONFIGPTR, CSR_MSTATUS, CSR_MISA, CSR_MEDELEG, CSR_MIDELEG, CSR_MIE, CSR_MTVEC,
  CSR_MCOUNTEREN, CSR_MENVCFG, CSR_MCOUNTINHIBIT, CSR_MSCRATCH, CSR_MEPC, CSR_MCAUSE, CSR_MTVAL,
  CSR_MIP, CSR_PMPCFG0, CSR_PMPADDR0, CSR_MCYCLE, CSR_MINSTRET, CSR_TSELECT, CSR_TDATA1, CSR_TDATA2,
  CSR_TDATA3, CSR_TINFO, MSTATUS_SIE, MSTATUS_MIE,
  MSTATUS_SPIE, MSTATUS_MPIE, MSTATUS_SPP, MSTATUS_MPP, MSTATUS_MPP_SHIFT, MSTATUS_FS,
  MSTATUS_MPRV, MSTATUS_SUM, MSTATUS_MXR, MSTATUS_TVM, MSTATUS_TW, MSTATUS_TSR, MSTATUS_UXL,
  MSTATUS_SXL, MSTATUS_SD, MSTATUS_XL_64, SSTATUS_RMASK, MIP_SSIP, MIP_MSIP, MIP_STIP, MIP_MTIP,
  MIP_SEIP, MIP_MEIP, MENVCFG_STCE, MENVCFG_FIOM, MISA_VALUE, MSTATUS_WMASK, SSTATUS_WMASK,
  S_INTERRUPTS, ALL_INTERRUPTS,
} from "./csrdef";

// --- the table ---
const KIND_ABSENT: u8 = 0;
const KIND_PLAIN: u8 = 1;
const KIND_SPECIAL: u8 = 2;
// The kind array lives just past the write masks.
const CSR_KIND: usize = CSR_WMASK + 4096 * 8;

function define(num: u32, kind: u8, wmask: u64): void {
  store<u8>(CSR_KIND + num, kind);
  store<u64>(CSR_WMASK + (<usize>num << 3), wmask);
}

export function csrInit(): void {
  memory.fill(CSR_KIND, 0, 4096);
  const ALL: u64 = 0xffffffffffffffff;
  // Floating point (valid only while mstatus.FS != Off).
  define(CSR_FFLAGS, KIND_SPECIAL, 0x1f);
  define(CSR_FRM, KIND_SPECIAL, 0x7);
  define(CSR_FCSR, KIND_SPECIAL, 0xff);
  // Zicntr / Zihpm user counters: read-only shadows, gated by [ms]counteren.
  for (let n: u32 = CSR_CYCLE; n <= 0xc1f; n++) define(n, KIND_SPECIAL, 0);
  // Supervisor
  define(CSR_SSTATUS, KIND_SPECIAL, SSTATUS_WMASK);
  define(CSR_SIE, KIND_SPECIAL, S_INTERRUPTS);
  define(CSR_STVEC, KIND_SPECIAL, ALL);
  define(CSR_SCOUNTEREN, KIND_PLAIN, 0xffffffff);
  define(CSR_SENVCFG, KIND_PLAIN, MENVCFG_FIOM);
  define(CSR_SSCRATCH, KIND_PLAIN, ALL);
  define(CSR_SEPC, KIND_PLAIN, ~(<u64>1));
  define(CSR_SCAUSE, KIND_PLAIN, ALL);
  define(CSR_STVAL, KIND_PLAIN, ALL);
  define(CSR_SIP, KIND_SPECIAL, MIP_SSIP);
  define(CSR_STIMECMP, KIND_SPECIAL, ALL);
  define(CSR_SATP, KIND_SPECIAL, ALL);
  // Machine information (read-only zero, mhartid = 0)
  define(CSR_MVENDORID, KIND_PLAIN, 0);
  define(CSR_MARCHID, KIND_PLAIN, 0);
  define(CSR_MIMPID, KIND_PLAIN, 0);
  define(CSR_MHARTID, KIND_PLAIN, 0);
  define(CSR_MCONFIGPTR, KIND_PLAIN, 0);
  // Machine trap setup and handling
  define(CSR_MSTATUS, KIND_SPECIAL, MSTATUS_WMASK);
  define(CSR_MISA, KIND_PLAIN, 0); // WARL, not writable here
  // medeleg: every exception but ECALL from M (11) and the reserved 10 and 14.
  define(CSR_MEDELEG, KIND_PLAIN, 0xb3ff);
  define(CSR_MIDELEG, KIND_SPECIAL, S_INTERRUPTS);
  define(CSR_MIE, KIND_SPECIAL, ALL_INTERRUPTS);
  define(CSR_MTVEC, KIND_SPECIAL, ALL);
  define(CSR_MCOUNTEREN, KIND_PLAIN, 0xffffffff);
  define(CSR_MENVCFG, KIND_SPECIAL, MENVCFG_STCE | MENVCFG_FIOM);
  define(CSR_MCOUNTINHIBIT, KIND_PLAIN, 0);
  for (let n: u32 = 0x323; n <= 0x33f; n++) define(n, KIND_PLAIN, 0); // mhpmevent3..31
  define(CSR_MSCRATCH, KIND_PLAIN, ALL);
  define(CSR_MEPC, KIND_PLAIN, ~(<u64>1));
  define(CSR_MCAUSE, KIND_PLAIN, ALL);
  define(CSR_MTVAL, KIND_PLAIN, ALL);
  define(CSR_MIP, KIND_SPECIAL, S_INTERRUPTS);
  // PMP: held as WARL registers, not enforced. RV64 has only the even pmpcfg registers;
  // the two WIRI bits of each cfg byte (bits 5 and 6) read zero.
  for (let i: u32 = 0; i < 16; i += 2) define(CSR_PMPCFG0 + i, KIND_PLAIN, 0x9f9f9f9f9f9f9f9f);
  for (let i: u32 = 0; i < 64; i++) define(CSR_PMPADDR0 + i, KIND_PLAIN, 0x3fffffffffffff);
  // Machine counters: mcycle/minstret live, mhpmcounter3..31 read-only zero.
  define(CSR_MCYCLE, KIND_SPECIAL, ALL);
  define(CSR_MINSTRET, KIND_SPECIAL, ALL);
  for (let n: u32 = 0xb03; n <= 0xb1f; n++) define(n, KIND_PLAIN, 0);
  // Debug triggers (Sdtrig, debug.ts): TRIGGERS mcontrol triggers; tdata3 (textra) reads zero.
  define(CSR_TSELECT, KIND_SPECIAL, 0);
  define(CSR_TDATA1, KIND_SPECIAL, 0);
  define(CSR_TDATA2, KIND_SPECIAL, 0);
  define(CSR_TDATA3, KIND_PLAIN, 0);
  define(CSR_TINFO, KIND_SPECIAL, 0);
}

// Resets the CSR values (not the table) to their reset state.
export function csrReset(): void {
  memory.fill(CSRS, 0, 4096 * 8);
  csrSet(CSR_MISA, MISA_VALUE);
  csrSet(CSR_MSTATUS, MSTATUS_XL_64);
}

// --- derived state the hart uses ---

// Instructions retired inside the current chunk but not yet added to H_INSTRET
// (the interpreter keeps that count in a local and publishes it before CSR access).
export let g_instretPending: u64 = 0;
// Deterministic time: mtime advances one tick every 2^shift instructions; -1 = host clock.
export let g_icountShift: i32 = -1;

export function setInstretPending(n: u64): void {
  g_instretPending = n;
}

export function setIcountShift(shift: i32): void {
  g_icountShift = shift;
}

@inline export function instretNow(): u64 {
  return load<u64>(H_INSTRET) + g_instretPending;
}

// The effective mip of hart `h`, whose state block starts at `state` (HART while it runs, its
// slot otherwise): software-writable bits plus the lines wired to the hart. mtime is the
// CLINT's; in deterministic time it advances at chunk boundaries (the interpreter ends a chunk
// exactly at each tick), so the time CSR and the CLINT's mtime register always agree.
export function mipAt(state: usize, h: u32): u64 {
  const csrs = state + (CSRS - HART);
  let mip = load<u64>(csrs + (<usize>CSR_MIP << 3)) & (MIP_SSIP | MIP_SEIP | MIP_STIP);
  const now = mtimeNow();
  if (load<u64>(csrs + (<usize>CSR_MENVCFG << 3)) & MENVCFG_STCE) {
    mip &= ~MIP_STIP;
    if (now >= load<u64>(csrs + (<usize>CSR_STIMECMP << 3))) mip |= MIP_STIP;
  }
  if (now >= mtimecmpOf(h)) mip |= MIP_MTIP;
  if (msipOf(h) & 1) mip |= MIP_MSIP;
  mip |= load<u64>(M_EXTIRQ + (<usize>h << 3)) & (MIP_SEIP | MIP_MEIP);
  return mip;
}

// The running hart's mip.
export function mipValue(): u64 {
  return mipAt(HART, g_hart);
}

// The next time (mtime) at which a timer of hart `h` can wake it: mtimecmp, or stimecmp under
// Sstc, each only while its interrupt is enabled in mie (WFI wakes on mip & mie). A disabled
// timer long past (Linux leaves stimecmp behind with STIE clear on an idle CPU) is no deadline:
// counting it would keep the host from sleeping.
export function timerDeadlineAt(state: usize, h: u32): u64 {
  const csrs = state + (CSRS - HART);
  const mie = load<u64>(csrs + (<usize>CSR_MIE << 3));
  let d: u64 = -1;
  if (mie & MIP_MTIP) d = mtimecmpOf(h);
  if ((mie & MIP_STIP) != 0 && (load<u64>(csrs + (<usize>CSR_MENVCFG << 3)) & MENVCFG_STCE) != 0) {
    const s = load<u64>(csrs + (<usize>CSR_STIMECMP << 3));
    if (s < d) d = s;
  }
  return d;
}

export function mstatusValue(): u64 {
  let s = csrGet(CSR_MSTATUS);
  if ((s & MSTATUS_FS) == MSTATUS_FS) s |= MSTATUS_SD;
  return s;
}

// --- access from the guest ---

// Counter CSRs are readable below M only where mcounteren (and, for U, scounteren) allow.
function counterAllowed(num: u32, p: u64): bool {
  const bit: u64 = <u64>1 << <u64>(num & 31);
  if (p < 3 && (csrGet(CSR_MCOUNTEREN) & bit) == 0) return false;
  if (p == 0 && (csrGet(CSR_SCOUNTEREN) & bit) == 0) return false;
  return true;
}

// Checks whether the current privilege may access CSR `num`; raises illegal-instruction if not.
export function csrCheck(num: u32, write: bool, insn: u32): bool {
  const kind = load<u8>(CSR_KIND + num);
  const p = priv();
  if (kind == KIND_ABSENT || p < <u64>((num >> 8) & 3) || (write && (num >> 10) == 3)) {
    if (g_trace & TRACE_GUEST_ERRORS) traceCsr(num, write, insn);
    raiseTrap(CAUSE_ILLEGAL_INSTRUCTION, insn);
    return false;
  }
  if (num <= CSR_FCSR && (csrGet(CSR_MSTATUS) & MSTATUS_FS) == 0) {
    raiseTrap(CAUSE_ILLEGAL_INSTRUCTION, insn);
    return false;
  }
  if (num >= CSR_CYCLE && num <= 0xc1f && !counterAllowed(num, p)) {
    raiseTrap(CAUSE_ILLEGAL_INSTRUCTION, insn);
    return false;
  }
  if (num == CSR_SATP && p == 1 && (csrGet(CSR_MSTATUS) & MSTATUS_TVM)) {
    raiseTrap(CAUSE_ILLEGAL_INSTRUCTION, insn);
    return false;
  }
  if (num == CSR_STIMECMP && p == 1 &&
      ((csrGet(CSR_MENVCFG) & MENVCFG_STCE) == 0 || (csrGet(CSR_MCOUNTEREN) & 2) == 0)) {
    raiseTrap(CAUSE_ILLEGAL_INSTRUCTION, insn);
    return false;
  }
  return true;
}

// Whether CSR `num` exists on this hart (for the debugger's register list).
export function csrExists(num: u32): bool {
  return load<u8>(CSR_KIND + (num & 0xfff)) != KIND_ABSENT;
}

export function csrRead(num: u32): u64 {
  if (load<u8>(CSR_KIND + num) != KIND_SPECIAL) return csrGet(num);
  switch (num) {
    case CSR_FFLAGS: return load<u64>(H_FFLAGS);
    case CSR_FRM: return load<u64>(H_FRM);
    case CSR_FCSR: return (load<u64>(H_FRM) << 5) | load<u64>(H_FFLAGS);
    case CSR_CYCLE: case CSR_MCYCLE: return instretNow() + csrGet(CSR_MCYCLE);
    case CSR_INSTRET: case CSR_MINSTRET: return instretNow();
    case CSR_TIME: return mtimeNow();
    case CSR_SSTATUS: return mstatusValue() & SSTATUS_RMASK;
    case CSR_MSTATUS: return mstatusValue();
    case CSR_SIE: return csrGet(CSR_MIE) & csrGet(CSR_MIDELEG);
    case CSR_SIP: return mipValue() & csrGet(CSR_MIDELEG);
    case CSR_MIP: return mipValue();
    case CSR_TDATA1: return tdata1Get(<u32>csrGet(CSR_TSELECT));
    case CSR_TDATA2: return tdata2Get(<u32>csrGet(CSR_TSELECT));
    // Sdtrig 1.0 (version 1 in bits 31:24); types mcontrol (2) and disabled (15).
    case CSR_TINFO: return (<u64>1 << 24) | (1 << 15) | (1 << 2);
    default: return csrGet(num); // hpmcounters (zero), stvec, mtvec, satp, stimecmp, ...
  }
}

// Writes CSR `num` (already checked). Returns true when the write may change pending
// interrupts or address translation, so the hart must re-evaluate before going on.
export function csrWrite(num: u32, v: u64): bool {
  const mask = load<u64>(CSR_WMASK + (<usize>num << 3));
  if (load<u8>(CSR_KIND + num) != KIND_SPECIAL) {
    csrSet(num, (csrGet(num) & ~mask) | (v & mask));
    return false;
  }
  switch (num) {
    case CSR_FFLAGS: store<u64>(H_FFLAGS, v & 0x1f); markFsDirty(); return false;
    case CSR_FRM: store<u64>(H_FRM, v & 7); markFsDirty(); return false;
    case CSR_FCSR:
      store<u64>(H_FFLAGS, v & 0x1f);
      store<u64>(H_FRM, (v >> 5) & 7);
      markFsDirty();
      return false;
    case CSR_MCYCLE: csrSet(CSR_MCYCLE, v - instretNow()); return false;
    case CSR_MINSTRET: store<u64>(H_INSTRET, v - g_instretPending); return false;
    case CSR_MSTATUS: writeMstatus(v, MSTATUS_WMASK); return true;
    case CSR_SSTATUS: writeMstatus(v, SSTATUS_WMASK); return true;
    case CSR_MIE: csrSet(CSR_MIE, v & mask); return true;
    case CSR_SIE: {
      const m = mask & csrGet(CSR_MIDELEG);
      csrSet(CSR_MIE, (csrGet(CSR_MIE) & ~m) | (v & m));
      return true;
    }
    case CSR_MIP: {
      // STIP is writable by M only while Sstc does not drive it.
      let m = mask;
      if (csrGet(CSR_MENVCFG) & MENVCFG_STCE) m &= ~MIP_STIP;
      csrSet(CSR_MIP, (csrGet(CSR_MIP) & ~m) | (v & m));
      return true;
    }
    case CSR_SIP: {
      const m = mask & csrGet(CSR_MIDELEG);
      csrSet(CSR_MIP, (csrGet(CSR_MIP) & ~m) | (v & m));
      return true;
    }
    case CSR_MIDELEG: csrSet(CSR_MIDELEG, v & mask); return true;
    case CSR_MTVEC: case CSR_STVEC:
      // Modes 2 and 3 are reserved: the write is ignored, as QEMU does.
      if ((v & 3) < 2) csrSet(num, v);
      return false;
    case CSR_MENVCFG: csrSet(CSR_MENVCFG, v & mask); return true;
    case CSR_STIMECMP: csrSet(CSR_STIMECMP, v); return true;
    // WARL: a trigger number that does not exist leaves tselect as it was (how a debugger
    // counts the triggers).
    case CSR_TSELECT: if (v < <u64>TRIGGERS) csrSet(CSR_TSELECT, v); return false;
    case CSR_TDATA1: tdata1Set(<u32>csrGet(CSR_TSELECT), v); return true;
    case CSR_TDATA2: tdata2Set(<u32>csrGet(CSR_TSELECT), v); return true;
    case CSR_SATP: {
      // Bare, Sv39, Sv48 and Sv57; any other mode leaves satp unchanged (priv spec 4.1.11).
      const mode = v >> 60;
      if (mode != 0 && mode != 8 && mode != 9 && mode != 10) return false;
      // ASID is 16 bits wide; PPN covers the physical address space (44 bits).
      csrSet(CSR_SATP, v & 0xf000ffffffffffff);
      tlbFlushAll();
      return true;
    }
    default:
      return false; // read-only counters
  }
}

function writeMstatus(v: u64, mask: u64): void {
  let next = (csrGet(CSR_MSTATUS) & ~mask) | (v & mask);
  // MPP is WARL over {U, S, M}: the reserved value 2 reads back as U.
  if (((next >> MSTATUS_MPP_SHIFT) & 3) == 2) next &= ~MSTATUS_MPP;
  csrSet(CSR_MSTATUS, (next & ~(MSTATUS_UXL | MSTATUS_SXL | MSTATUS_SD)) | MSTATUS_XL_64);
  updateTranslationContext();
}

@inline export function markFsDirty(): void {
  csrSet(CSR_MSTATUS, csrGet(CSR_MSTATUS) | MSTATUS_FS);
}
