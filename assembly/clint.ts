// The CLINT (SiFive CLINT / RISC-V ACLINT MSWI + MTIMER, as QEMU's virt lays it out): msip of
// hart h at +4h, mtimecmp of hart h at +0x4000 + 8h, one mtime at +0xbff8. It lives in the core
// because the harts read its comparisons on every interrupt check. Its registers are in the
// MACHINE block (layout.ts), not in a hart's block: any hart may write another's msip or
// mtimecmp. The bus (bus.ts) routes accesses here; where the CLINT sits is the host's memory
// map's (src/board/memmap.ts).

import { M_MTIME, M_MTIMECMP, M_MSIP } from "./layout";
import { exitAfterInstruction, g_hart, g_nharts, EXIT_SLICE, EXIT_YIELD } from "./status";

const MSIP: u64 = 0x0;
const MTIMECMP: u64 = 0x4000;
const MTIME: u64 = 0xbff8;

@inline export function msipOf(h: u32): u64 {
  return load<u64>(M_MSIP + (<usize>h << 3));
}
@inline export function mtimecmpOf(h: u32): u64 {
  return load<u64>(M_MTIMECMP + (<usize>h << 3));
}
@inline export function mtimeNow(): u64 {
  return load<u64>(M_MTIME);
}

export function clintRead(off: u64, size: i32): u64 {
  let v: u64 = 0;
  let base: u64 = 0;
  const n = <u64>g_nharts;
  if (off < MSIP + 4 * n) { base = off & ~(<u64>3); v = msipOf(<u32>(off >> 2)); }
  else if (off >= MTIMECMP && off < MTIMECMP + 8 * n) {
    base = off & ~(<u64>7);
    v = mtimecmpOf(<u32>((off - MTIMECMP) >> 3));
  } else if (off >= MTIME) { v = mtimeNow(); base = MTIME; }
  else return 0;
  v >>= (off - base) << 3;
  return size == 8 ? v : v & ((<u64>1 << <u64>(size * 8)) - 1);
}

export function clintWrite(off: u64, size: i32, value: u64): void {
  let slot: usize = 0;
  let base: u64 = 0;
  const n = <u64>g_nharts;
  if (off < MSIP + 4 * n) {
    if ((off & 3) != 0) return;
    const h = <u32>(off >> 2);
    store<u64>(M_MSIP + (<usize>h << 3), value & 1);
    // An IPI to another hart: let it run soon (harts.ts); to this one: look at it now.
    exitAfterInstruction(h != g_hart && (value & 1) != 0 ? EXIT_YIELD : EXIT_SLICE);
    return;
  }
  if (off >= MTIMECMP && off < MTIMECMP + 8 * n) {
    base = off & ~(<u64>7);
    slot = M_MTIMECMP + <usize>(base - MTIMECMP);
  } else if (off >= MTIME) { slot = M_MTIME; base = MTIME; }
  else return;
  const shift = (off - base) << 3;
  const mask: u64 = size == 8 ? <u64>-1 : ((<u64>1 << <u64>(size * 8)) - 1) << shift;
  store<u64>(slot, (load<u64>(slot) & ~mask) | ((value << shift) & mask));
  // The timer comparison changed: re-evaluate interrupts before the next instruction.
  exitAfterInstruction(EXIT_SLICE);
}
