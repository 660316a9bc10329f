// The hart: fetch, decode and execute RV64IMAC + Zicsr + Zifencei (+ F/D through fpu.ts).
// Unprivileged spec chapters 2 (RV32I), 5 (RV64I), 7 (M), 8 (A), 16 (C); privileged spec
// chapter 3 for the SYSTEM instructions.
//
// Layout, as DESIGN.md section 2 recommends: one large `run` function with pc and counters
// in locals and registers at fixed linear-memory addresses; a `switch` on the major opcode;
// memory accesses through a software TLB whose hit path is one compare (mmu.ts holds the
// miss path). Compressed instructions are expanded through a table (rvc.ts) and then
// executed as their 32-bit equivalents, so each instruction's semantics exist once.
//
// How an instruction ends:
//  - normally: pc = npc;
//  - with an exception: the unit sets g_status = ST_TRAP; nothing was written; trap entry;
//  - with ST_EXIT (a not-yet-restored page): nothing was written; run() returns to the
//    host with pc still at the instruction, which re-executes when the host calls back;
//  - with ST_EVENT (e.g. a store to tohost or a CLINT register): the instruction completed,
//    and the chunk ends so interrupts and exits are looked at before the next one.
// The basic block is the natural unit for a later WebAssembly JIT (docs/ARCHITECTURE.md).

import {
  XREG, H_PC, H_PRIV, RAM, H_RESV, H_INSTRET, H_WFI, M_MTIME, M_ICOUNT_ACC, CEXP, TLB_LOAD,
  TLB_STORE, TLB_FETCH, FREG,
} from "./layout";
import { csrCheck, csrRead, csrWrite, setInstretPending, g_icountShift, markFsDirty } from "./csr";
import {
  csrGet, CSR_MSTATUS, CSR_MENVCFG, CSR_STIMECMP, CSR_MIP, CSR_SIP, MSTATUS_TSR, MSTATUS_TW, MSTATUS_TVM, MSTATUS_FS,
  MENVCFG_STCE,
} from "./csrdef";
import {
  g_status, g_cause, g_tval, g_exitReason, g_nharts, ST_OK, ST_TRAP, ST_EXIT, ST_EVENT, EXIT_SLICE,
  EXIT_WFI, EXIT_YIELD, exitAfterInstruction, raiseTrap, setExitReason, clearStatus, CAUSE_ILLEGAL_INSTRUCTION, CAUSE_BREAKPOINT,
  CAUSE_USER_ECALL, CAUSE_MISALIGNED_LOAD, CAUSE_MISALIGNED_STORE,
} from "./status";
import { takeTrap, pendingInterrupt, wfiWakeup, trapReturnM, trapReturnS } from "./trap";
import { tlbEntry, tlbFlushAll, g_loadCtx, g_storeCtx, g_fetchCtx } from "./tlb";
import { ACCESS_LOAD, ACCESS_STORE } from "./bus";
import { loadSlow, storeSlow, fetchParcel, amoAddress, g_fetchVpn, g_fetchHost } from "./mmu";
import { execFp } from "./fpu";
import { rvcExpand } from "./rvc";
import { g_fetchWatch, g_debugNoIrq, fetchWatchHit, fetchWatchOnPage } from "./debug";
import {
  g_jitOn, g_jitSkip, jitFunction, jitMapAddress, jitProfile, jitProfileEnd, jitEnter, jitNoteEnd, jitLeave, UNIT_CONTINUE, UNIT_TRAP, UNIT_EXIT, UNIT_MISS,
  UNIT_INTERP,
} from "./jit";

// After translated code missed (no translation of this offset yet), the interpreter runs this
// many instructions before it tries the translation again.
const MISS_RUN: i32 = 256;

@inline function xr(i: u32): u64 {
  return load<u64>(XREG + (<usize>i << 3));
}
@inline function xw(i: u32, v: u64): void {
  store<u64>(XREG + (<usize>i << 3), v);
}
@inline function sx32(v: u64): u64 {
  return <u64><i64><i32><u32>v;
}

// Loads of T (u8, u16, u32, u64), zero-extended; the hit path is one tag compare.
@inline function ld<T>(va: u64): u64 {
  const vpn = va >> 12;
  const e = tlbEntry(TLB_LOAD, vpn);
  const off = <usize>(<u32>va & 0xfff);
  if (load<u64>(e) == (vpn | g_loadCtx) && off <= 4096 - sizeof<T>()) {
    return <u64>load<T>(<usize>load<u32>(e, 8) + off);
  }
  return loadSlow(va, <i32>sizeof<T>());
}

@inline function st<T>(va: u64, v: u64): void {
  const vpn = va >> 12;
  const e = tlbEntry(TLB_STORE, vpn);
  const off = <usize>(<u32>va & 0xfff);
  if (load<u64>(e) == (vpn | g_storeCtx) && off <= 4096 - sizeof<T>()) {
    store<T>(<usize>load<u32>(e, 8) + off, <T>v);
    return;
  }
  storeSlow(va, <i32>sizeof<T>(), v);
}

// High 64 bits of the unsigned 128-bit product.
function mulhu(a: u64, b: u64): u64 {
  const a0 = a & 0xffffffff, a1 = a >> 32, b0 = b & 0xffffffff, b1 = b >> 32;
  const p00 = a0 * b0, p01 = a0 * b1, p10 = a1 * b0, p11 = a1 * b1;
  const mid = (p00 >> 32) + (p01 & 0xffffffff) + (p10 & 0xffffffff);
  return p11 + (p01 >> 32) + (p10 >> 32) + (mid >> 32);
}

// The AMO operations (funct5) on values already loaded; `w` selects 32-bit semantics.
function amoCompute(f5: u32, a: u64, b: u64, w: bool): u64 {
  switch (f5) {
    case 0x01: return b; // AMOSWAP
    case 0x00: return a + b; // AMOADD
    case 0x04: return a ^ b; // AMOXOR
    case 0x0c: return a & b; // AMOAND
    case 0x08: return a | b; // AMOOR
    case 0x10: // AMOMIN
      if (w) return <i32>a < <i32>b ? a : b;
      return <i64>a < <i64>b ? a : b;
    case 0x14: // AMOMAX
      if (w) return <i32>a > <i32>b ? a : b;
      return <i64>a > <i64>b ? a : b;
    case 0x18: // AMOMINU
      if (w) return <u32>a < <u32>b ? a : b;
      return a < b ? a : b;
    default: // 0x1c AMOMAXU
      if (w) return <u32>a > <u32>b ? a : b;
      return a > b ? a : b;
  }
}

@inline function fpOff(): bool {
  return (csrGet(CSR_MSTATUS) & MSTATUS_FS) == 0;
}

// Instructions the last run() executed (retired or trapped; not one that exited to the host
// before any effect): the scheduler's quantum accounting (harts.ts).
export let g_executed: i32 = 0;

// Runs at most `maxInsns` instructions; returns an exit reason (trap.ts EXIT_*).
export function run(maxInsns: i32): i32 {
  clearStatus();
  setExitReason(EXIT_SLICE);
  let pc = load<u64>(H_PC);
  g_executed = 0;
  if (load<u64>(H_WFI) != 0) {
    if (!wfiWakeup()) return EXIT_WFI;
    store<u64>(H_WFI, 0);
  }
  let remaining = maxInsns;
  let exit = false;
  while (remaining > 0 && !exit) {
    const irq = g_debugNoIrq ? 0 : pendingInterrupt();
    if (irq != 0) pc = takeTrap(irq, 0, pc);

    // In deterministic time a chunk never crosses a tick: mtime advances exactly every
    // 2^shift instructions, whatever splits the slice (exits to the host, traps), so the
    // guest sees the same time at the same instruction in every run.
    let limit = remaining;
    const shift = g_icountShift;
    if (shift >= 0) {
      const left = (1 << shift) - <i32>load<u64>(M_ICOUNT_ACC);
      if (left < limit) limit = left;
    }

    let n: i32 = 0;
    let traps: i32 = 0;
    let fetchVpn: u64 = -1;
    let fetchHost: usize = 0;
    // The cached fetch page has translated code the interpreter is not running (see above):
    // a taken branch or jump drops the cache, so its target tries the translation.
    let fetchCode = false;

    while (n < limit) {
      n++;
      store<u64>(XREG, 0);
      // --- fetch ---
      let insn: u32;
      let raw: u32;
      let ilen: u64;
      const off = <usize>(<u32>pc & 0xfff);
      if ((pc >> 12) == fetchVpn && off != 0xffe) {
        raw = load<u32>(fetchHost + off);
      } else {
        if (g_jitOn) jitProfile(fetchHost, n - 1, pc);
        // A debugger's breakpoint (exits before the instruction) or an execute trigger (traps).
        if (g_fetchWatch && fetchWatchHit(pc)) raw = 0;
        else {
          raw = fetchParcel(pc);
          if (g_status == ST_OK && (raw & 3) == 3) raw |= fetchParcel(pc + 2) << 16;
        }
        if (g_status != ST_OK) {
          if (g_status == ST_EXIT) { n--; exit = true; break; }
          pc = takeTrap(g_cause, g_tval, pc);
          clearStatus();
          traps++;
          fetchVpn = -1;
          continue;
        }
        if (g_fetchVpn == (pc >> 12) && (!g_fetchWatch || !fetchWatchOnPage(g_fetchVpn))) {
          let host = g_fetchHost;
          fetchCode = false;
          // No translated code while a debugger, a trigger or -d watches fetches.
          if (!g_jitOn || host < RAM || g_fetchWatch) {
            fetchVpn = g_fetchVpn;
            fetchHost = host;
          } else {
            // A RAM page while the JIT is on: run its translated code if it has some, else
            // count it. A page with code is cached here only while its code cannot run (see
            // fetchCode), so each entry comes this way.
            let page = <u32>((host - RAM) >> 12);
            let fn = jitFunction(page);
            if (fn == 0) {
              fetchVpn = g_fetchVpn;
              fetchHost = host;
            } else if (g_jitSkip) {
              g_jitSkip = false; // this one instruction is the interpreter's
            } else {
              let codeVpn = g_fetchVpn;
              let r: u32;
              let done: i32;
              let kind: u32;
              let chunkStart: bool;
              let chained = false;
              for (;;) {
                jitEnter(page);
                const budget = limit - n + 1;
                r = call_indirect<u32>(fn, pc & ~(<u64>0xfff), <u32>pc & 0xfff, budget, budget, <u32>jitMapAddress(fn));
                done = <i32>(r >> 3);
                kind = r & 7;
                pc = load<u64>(H_PC);
                jitNoteEnd(kind);
                // A miss at the chunk's first instruction is not reported: a chunk begins wherever
                // the last one ended (a slice, an interrupt, a host exit), not where control
                // enters the code; reporting those points filled hot pages with entries at
                // nearly every instruction. Control that reaches unknown code does report it.
                chunkStart = n == 1;
                jitLeave(page, done, kind == UNIT_MISS && !chunkStart ? <u32>pc & 0xfff : 0xffffffff, n - 1, pc);
                // Control left the page for another page with translated code, whose fetch
                // translation is in the TLB, with budget left: call that page's code at once,
                // as the fetch slow path would after the same checks (fetches are not watched
                // here, and nothing between two translated instructions changes that).
                if (kind != UNIT_CONTINUE || done == 0 || n + done > limit) break;
                const vpn = pc >> 12;
                if ((<u32>pc & 0xfff) == 0xffe) break; // (may straddle: the slow path's business)
                const e = tlbEntry(TLB_FETCH, vpn);
                if (load<u64>(e) != (vpn | g_fetchCtx)) break;
                const h = <usize>load<u32>(e, 8);
                if (h < RAM) break;
                const p2 = <u32>((h - RAM) >> 12);
                const f2 = jitFunction(p2);
                if (f2 == 0) break;
                n += done;
                page = p2;
                fn = f2;
                host = h;
                codeVpn = vpn;
                chained = true;
              }
              // (a chained call that completed nothing leaves its instruction to the
              // interpreter: fetch it; pc & 0xfff != 0xffe, so it is inside the page)
              if (chained && done == 0) raw = load<u32>(host + <usize>(<u32>pc & 0xfff));
              if (kind == UNIT_INTERP) {
                // pc is at an instruction for the interpreter: it runs that one, and the
                // translation is entered again after it.
                if (done != 0) { n += done - 1; g_jitSkip = true; continue; }
              } else if (kind == UNIT_CONTINUE || kind == UNIT_MISS) {
                if (done != 0) { n += done - 1; continue; }
                // Nothing ran. Interpret from here with the page cached: inside a translated
                // block or in unknown code where a chunk began, or with too little budget,
                // until a taken branch or jump, which tries the translation again (fetchCode);
                // in code the translation does not have, reached by control (a miss: the host
                // translates the page again with it), for a while: the chunk ends early,
                // harmlessly (nothing can become pending inside it), and the next one tries
                // again.
                fetchVpn = codeVpn;
                fetchHost = host;
                if (kind == UNIT_CONTINUE || chunkStart) fetchCode = true;
                else if (limit - n > MISS_RUN) limit = n + MISS_RUN;
              } else if (kind == UNIT_TRAP) {
                n += done;
                pc = takeTrap(g_cause, g_tval, pc);
                clearStatus();
                traps++;
                fetchVpn = -1;
                limit = n;
                continue;
              } else if (kind == UNIT_EXIT) {
                n += done - 1;
                exit = true;
                break;
              } else { // UNIT_EVENT: the last instruction completed and ends the chunk
                n += done - 1;
                limit = n;
                if (g_exitReason != EXIT_SLICE) exit = true;
                clearStatus();
                continue;
              }
            }
          }
        }
      }
      if ((raw & 3) != 3) {
        raw &= 0xffff;
        insn = load<u32>(CEXP + (<usize>raw << 2));
        if (insn == 0) insn = rvcExpand(raw); // first time this parcel is met (or an illegal one)
        ilen = 2;
      } else {
        insn = raw;
        ilen = 4;
      }
      let npc = pc + ilen;
      const rd = (insn >> 7) & 31;
      const rs1 = (insn >> 15) & 31;
      const rs2 = (insn >> 20) & 31;
      const f3 = (insn >> 12) & 7;
      let bad = false; // illegal instruction

      // --- execute ---
      switch (insn & 0x7f) {
        case 0x03: { // LOAD
          const a = xr(rs1) + <u64>(<i32>insn >> 20);
          let v: u64;
          switch (f3) {
            case 0: v = <u64><i64><i8><u8>ld<u8>(a); break;
            case 1: v = <u64><i64><i16><u16>ld<u16>(a); break;
            case 2: v = sx32(ld<u32>(a)); break;
            case 3: v = ld<u64>(a); break;
            case 4: v = ld<u8>(a); break;
            case 5: v = ld<u16>(a); break;
            case 6: v = ld<u32>(a); break;
            default: bad = true; v = 0;
          }
          if (!bad) {
            const status = g_status;
            if (status == ST_OK) { xw(rd, v); pc = npc; continue; }
            // ST_EVENT: an MMIO load completed but asked to end the chunk (e.g. a PLIC claim
            // changed the interrupt lines): the value still goes to rd.
            if (status == ST_EVENT) xw(rd, v);
          }
          break;
        }
        case 0x23: { // STORE
          const imm = ((<i32>insn >> 25) << 5) | <i32>((insn >> 7) & 31);
          const a = xr(rs1) + <u64>imm;
          const v = xr(rs2);
          switch (f3) {
            case 0: st<u8>(a, v); break;
            case 1: st<u16>(a, v); break;
            case 2: st<u32>(a, v); break;
            case 3: st<u64>(a, v); break;
            default: bad = true;
          }
          if (!bad && g_status == ST_OK) { pc = npc; continue; }
          break;
        }
        case 0x13: { // OP-IMM
          const imm = <u64>(<i32>insn >> 20);
          const a = xr(rs1);
          switch (f3) {
            case 0: xw(rd, a + imm); break; // ADDI
            case 2: xw(rd, <i64>a < <i64>imm ? 1 : 0); break; // SLTI
            case 3: xw(rd, a < imm ? 1 : 0); break; // SLTIU
            case 4: xw(rd, a ^ imm); break; // XORI
            case 6: xw(rd, a | imm); break; // ORI
            case 7: xw(rd, a & imm); break; // ANDI
            case 1: // SLLI
              if ((insn >> 26) != 0) bad = true;
              else xw(rd, a << (imm & 63));
              break;
            default: { // SRLI / SRAI
              const f6 = insn >> 26;
              if (f6 == 0) xw(rd, a >> (imm & 63));
              else if (f6 == 0x10) xw(rd, <u64>(<i64>a >> <i64>(imm & 63)));
              else bad = true;
            }
          }
          // ALU, jumps and branches touch no memory and raise nothing but illegal-instruction:
          // they complete here, without the common epilogue's status checks.
          if (!bad) { pc = npc; continue; }
          break;
        }
        case 0x1b: { // OP-IMM-32
          const a = <u32>xr(rs1);
          const sh = rs2;
          const f7 = insn >> 25;
          if (f3 == 0) xw(rd, sx32(a + <u32>(<i32>insn >> 20))); // ADDIW
          else if (f3 == 1 && f7 == 0) xw(rd, sx32(a << sh)); // SLLIW
          else if (f3 == 5 && f7 == 0) xw(rd, sx32(a >> sh)); // SRLIW
          else if (f3 == 5 && f7 == 0x20) xw(rd, <u64><i64>(<i32>a >> sh)); // SRAIW
          else bad = true;
          if (!bad) { pc = npc; continue; }
          break;
        }
        case 0x33: { // OP
          const a = xr(rs1), b = xr(rs2);
          const f7 = insn >> 25;
          if (f7 == 0) {
            switch (f3) {
              case 0: xw(rd, a + b); break;
              case 1: xw(rd, a << (b & 63)); break;
              case 2: xw(rd, <i64>a < <i64>b ? 1 : 0); break;
              case 3: xw(rd, a < b ? 1 : 0); break;
              case 4: xw(rd, a ^ b); break;
              case 5: xw(rd, a >> (b & 63)); break;
              case 6: xw(rd, a | b); break;
              default: xw(rd, a & b);
            }
          } else if (f7 == 0x20) {
            if (f3 == 0) xw(rd, a - b); // SUB
            else if (f3 == 5) xw(rd, <u64>(<i64>a >> <i64>(b & 63))); // SRA
            else bad = true;
          } else if (f7 == 1) { // M extension
            switch (f3) {
              case 0: xw(rd, a * b); break; // MUL
              case 1: { // MULH
                let h = mulhu(a, b);
                if (<i64>a < 0) h -= b;
                if (<i64>b < 0) h -= a;
                xw(rd, h);
                break;
              }
              case 2: { // MULHSU
                let h = mulhu(a, b);
                if (<i64>a < 0) h -= b;
                xw(rd, h);
                break;
              }
              case 3: xw(rd, mulhu(a, b)); break; // MULHU
              case 4: // DIV
                if (b == 0) xw(rd, -1);
                else if (a == 0x8000000000000000 && b == <u64>-1) xw(rd, a);
                else xw(rd, <u64>(<i64>a / <i64>b));
                break;
              case 5: xw(rd, b == 0 ? <u64>-1 : a / b); break; // DIVU
              case 6: // REM
                if (b == 0) xw(rd, a);
                else if (a == 0x8000000000000000 && b == <u64>-1) xw(rd, 0);
                else xw(rd, <u64>(<i64>a % <i64>b));
                break;
              default: xw(rd, b == 0 ? a : a % b); // REMU
            }
          } else bad = true;
          if (!bad) { pc = npc; continue; }
          break;
        }
        case 0x3b: { // OP-32
          const a = <u32>xr(rs1), b = <u32>xr(rs2);
          const f7 = insn >> 25;
          if (f7 == 0) {
            if (f3 == 0) xw(rd, sx32(a + b));
            else if (f3 == 1) xw(rd, sx32(a << (b & 31)));
            else if (f3 == 5) xw(rd, sx32(a >> (b & 31)));
            else bad = true;
          } else if (f7 == 0x20) {
            if (f3 == 0) xw(rd, sx32(a - b));
            else if (f3 == 5) xw(rd, <u64><i64>(<i32>a >> <i32>(b & 31)));
            else bad = true;
          } else if (f7 == 1) {
            switch (f3) {
              case 0: xw(rd, sx32(a * b)); break; // MULW
              case 4: // DIVW
                if (b == 0) xw(rd, -1);
                else if (a == 0x80000000 && b == 0xffffffff) xw(rd, sx32(a));
                else xw(rd, <u64><i64>(<i32>a / <i32>b));
                break;
              case 5: xw(rd, b == 0 ? <u64>-1 : sx32(a / b)); break; // DIVUW
              case 6: // REMW
                if (b == 0) xw(rd, sx32(a));
                else if (a == 0x80000000 && b == 0xffffffff) xw(rd, 0);
                else xw(rd, <u64><i64>(<i32>a % <i32>b));
                break;
              case 7: xw(rd, b == 0 ? sx32(a) : sx32(a % b)); break; // REMUW
              default: bad = true;
            }
          } else bad = true;
          if (!bad) { pc = npc; continue; }
          break;
        }
        case 0x37: xw(rd, <u64><i64><i32>(insn & 0xfffff000)); pc = npc; continue; // LUI
        case 0x17: xw(rd, pc + <u64><i64><i32>(insn & 0xfffff000)); pc = npc; continue; // AUIPC
        case 0x6f: { // JAL
          const imm = (((<i32>insn >> 31) << 20) | <i32>(((insn >> 12) & 0xff) << 12) |
            <i32>(((insn >> 20) & 1) << 11) | <i32>(((insn >> 21) & 0x3ff) << 1));
          xw(rd, npc);
          pc += <u64>imm;
          if (fetchCode) fetchVpn = -1;
          continue;
        }
        case 0x67: { // JALR
          if (f3 != 0) { bad = true; break; }
          const target = (xr(rs1) + <u64>(<i32>insn >> 20)) & ~(<u64>1);
          xw(rd, npc);
          pc = target;
          if (fetchCode) fetchVpn = -1;
          continue;
        }
        case 0x63: { // BRANCH
          const a = xr(rs1), b = xr(rs2);
          let taken: bool;
          switch (f3) {
            case 0: taken = a == b; break;
            case 1: taken = a != b; break;
            case 4: taken = <i64>a < <i64>b; break;
            case 5: taken = <i64>a >= <i64>b; break;
            case 6: taken = a < b; break;
            case 7: taken = a >= b; break;
            default: taken = false; bad = true;
          }
          if (taken) {
            const imm = ((<i32>insn >> 31) << 12) | <i32>(((insn >> 7) & 1) << 11) |
              <i32>(((insn >> 25) & 0x3f) << 5) | <i32>(((insn >> 8) & 0xf) << 1);
            npc = pc + <u64>imm;
            if (fetchCode) fetchVpn = -1;
          }
          if (!bad) { pc = npc; continue; }
          break;
        }
        case 0x0f: // MISC-MEM: FENCE and FENCE.I (one hart, no caches to keep coherent)
          if (f3 > 1) bad = true;
          break;
        case 0x2f: { // AMO
          if (f3 != 2 && f3 != 3) { bad = true; break; }
          const f5 = insn >> 27;
          const w = f3 == 2;
          const a = xr(rs1);
          const align: u64 = w ? 3 : 7;
          if (f5 == 0x02) { // LR
            if (rs2 != 0) { bad = true; break; }
            if (a & align) { raiseTrap(CAUSE_MISALIGNED_LOAD, a); break; }
            const h = amoAddress(a, ACCESS_LOAD);
            if (g_status != ST_OK) break;
            xw(rd, w ? sx32(load<u32>(h)) : load<u64>(h));
            store<u64>(H_RESV, a);
          } else if (f5 == 0x03) { // SC
            if (a & align) { raiseTrap(CAUSE_MISALIGNED_STORE, a); break; }
            const h = amoAddress(a, ACCESS_STORE);
            if (g_status != ST_OK) break;
            if (load<u64>(H_RESV) == a) {
              if (w) store<u32>(h, <u32>xr(rs2));
              else store<u64>(h, xr(rs2));
              xw(rd, 0);
            } else {
              xw(rd, 1);
            }
            store<u64>(H_RESV, -1);
          } else {
            if (f5 != 0x00 && f5 != 0x01 && f5 != 0x04 && f5 != 0x08 && f5 != 0x0c &&
                f5 != 0x10 && f5 != 0x14 && f5 != 0x18 && f5 != 0x1c) { bad = true; break; }
            if (a & align) { raiseTrap(CAUSE_MISALIGNED_STORE, a); break; }
            const h = amoAddress(a, ACCESS_STORE);
            if (g_status != ST_OK) break;
            const b = xr(rs2);
            let old: u64;
            if (w) {
              old = sx32(load<u32>(h));
              store<u32>(h, <u32>amoCompute(f5, old, sx32(b), true));
            } else {
              old = load<u64>(h);
              store<u64>(h, amoCompute(f5, old, b, false));
            }
            xw(rd, old);
            // A swap that leaves memory as it was is a test-and-set on a taken lock (xv6's
            // acquire). Its holder is another hart, which cannot run until this one gives way:
            // spinning on would only burn the rest of the quantum (harts.ts).
            if (f5 == 0x01 && g_nharts > 1 && old == (w ? sx32(b) : b)) exitAfterInstruction(EXIT_YIELD);
          }
          break;
        }
        case 0x73: { // SYSTEM
          const p = load<u64>(H_PRIV);
          if (f3 == 0) {
            if (insn == 0x00000073) { // ECALL
              raiseTrap(CAUSE_USER_ECALL + p, 0);
            } else if (insn == 0x00100073) { // EBREAK
              raiseTrap(CAUSE_BREAKPOINT, pc);
            } else if (insn == 0x30200073) { // MRET
              if (p != 3) { bad = true; break; }
              npc = trapReturnM();
              limit = n;
            } else if (insn == 0x10200073) { // SRET
              if (p == 0 || (p == 1 && (csrGet(CSR_MSTATUS) & MSTATUS_TSR) != 0)) { bad = true; break; }
              npc = trapReturnS();
              limit = n;
            } else if (insn == 0x10500073) { // WFI
              if (p == 0 || (p == 1 && (csrGet(CSR_MSTATUS) & MSTATUS_TW) != 0)) { bad = true; break; }
              if (!wfiWakeup()) {
                store<u64>(H_WFI, 1);
                setExitReason(EXIT_WFI);
                exit = true;
                limit = n;
              }
            } else if ((insn >> 25) == 0x09 && rd == 0) { // SFENCE.VMA
              if (p == 0 || (p == 1 && (csrGet(CSR_MSTATUS) & MSTATUS_TVM) != 0)) { bad = true; break; }
              tlbFlushAll();
              limit = n;
            } else {
              bad = true;
            }
            break;
          }
          if (f3 == 4) { bad = true; break; }
          // Zicsr: CSRRW, CSRRS, CSRRC and their immediate forms.
          const csr = insn >> 20;
          const src: u64 = f3 >= 5 ? <u64>rs1 : xr(rs1);
          const op = f3 & 3;
          const writes = op == 1 || rs1 != 0;
          setInstretPending(<u64>(n - 1 - traps));
          if (!csrCheck(csr, writes, raw)) break;
          const old = csrRead(csr);
          if (writes) {
            // mip/sip: CSRRS/CSRRC modify the software-writable bits only; the value read ORs in
            // the lines (SEIP from the PLIC, priv spec 3.1.9), which must not be latched.
            const base = csr == CSR_MIP || csr == CSR_SIP ? csrGet(CSR_MIP) : old;
            const v = op == 1 ? src : op == 2 ? (base | src) : (base & ~src);
            // A counter written here counts from the next instruction: this one has retired.
            setInstretPending(<u64>(n - traps));
            if (csrWrite(csr, v)) limit = n;
          }
          setInstretPending(0);
          xw(rd, old);
          break;
        }
        case 0x07: { // LOAD-FP: FLW, FLD
          if (fpOff() || (f3 != 2 && f3 != 3)) { bad = true; break; }
          const a = xr(rs1) + <u64>(<i32>insn >> 20);
          if (f3 == 2) {
            const v = ld<u32>(a);
            if (g_status == ST_TRAP || g_status == ST_EXIT) break;
            store<u64>(FREG + (<usize>rd << 3), v | 0xffffffff00000000);
          } else {
            const v = ld<u64>(a);
            if (g_status == ST_TRAP || g_status == ST_EXIT) break;
            store<u64>(FREG + (<usize>rd << 3), v);
          }
          markFsDirty();
          break;
        }
        case 0x27: { // STORE-FP: FSW, FSD
          if (fpOff() || (f3 != 2 && f3 != 3)) { bad = true; break; }
          const imm = ((<i32>insn >> 25) << 5) | <i32>((insn >> 7) & 31);
          const a = xr(rs1) + <u64>imm;
          const v = load<u64>(FREG + (<usize>rs2 << 3));
          if (f3 == 2) st<u32>(a, v);
          else st<u64>(a, v);
          break;
        }
        case 0x43: case 0x47: case 0x4b: case 0x4f: case 0x53: // FMADD.. / OP-FP
          if (fpOff() || !execFp(insn)) { bad = true; break; }
          markFsDirty();
          break;
        default:
          bad = true;
      }

      // --- complete ---
      if (bad) raiseTrap(CAUSE_ILLEGAL_INSTRUCTION, raw);
      if (g_status == ST_OK) {
        pc = npc;
        continue;
      }
      if (g_status == ST_TRAP) {
        pc = takeTrap(g_cause, g_tval, pc);
        traps++;
        fetchVpn = -1;
        limit = n; // privilege changed: re-evaluate interrupts and translation
      } else if (g_status == ST_EXIT) {
        n--; // did not execute; it runs again when the host calls back
        exit = true;
        break;
      } else { // ST_EVENT: completed
        pc = npc;
        limit = n;
        if (g_exitReason != EXIT_SLICE) exit = true;
      }
      clearStatus();
    }
    if (g_jitOn) jitProfileEnd(fetchHost, n);
    // Account for the chunk.
    const retired = <u64>(n - traps);
    store<u64>(H_INSTRET, load<u64>(H_INSTRET) + retired);
    if (shift >= 0) {
      const acc = load<u64>(M_ICOUNT_ACC) + <u64>n;
      store<u64>(M_MTIME, load<u64>(M_MTIME) + (acc >> <u64>shift));
      store<u64>(M_ICOUNT_ACC, acc & ((<u64>1 << <u64>shift) - 1));
    }
    remaining -= n;
    if (g_status == ST_EXIT) break;
  }
  store<u64>(H_PC, pc);
  store<u64>(XREG, 0);
  g_executed = maxInsns - remaining;
  const reason = g_exitReason;
  return exit ? reason : EXIT_SLICE;
}
