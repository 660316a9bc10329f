// The CLINT (SiFive CLINT / RISC-V ACLINT MSWI + MTIMER, as QEMU's virt lays it out): msip at
// +0, mtimecmp at +0x4000, mtime at +0xbff8. It lives in the core because the hart reads its
// comparison on every interrupt check. The bus (bus.ts) routes accesses here; where the CLINT
// sits is the host's memory map's (src/board/memmap.ts).

import { H_MTIME, H_MTIMECMP, H_MSIP } from "./layout";
import { exitAfterInstruction, EXIT_SLICE } from "./status";

const MSIP: u64 = 0x0;
const MTIMECMP: u64 = 0x4000;
const MTIME: u64 = 0xbff8;

export function clintRead(off: u64, size: i32): u64 {
  let v: u64 = 0;
  let base: u64 = 0;
  if (off < MTIMECMP) { v = load<u64>(H_MSIP) & 1; base = MSIP; }
  else if (off >= MTIMECMP && off < MTIMECMP + 8) { v = load<u64>(H_MTIMECMP); base = MTIMECMP; }
  else if (off >= MTIME) { v = load<u64>(H_MTIME); base = MTIME; }
  else return 0;
  v >>= (off - base) << 3;
  return size == 8 ? v : v & ((<u64>1 << <u64>(size * 8)) - 1);
}

export function clintWrite(off: u64, size: i32, value: u64): void {
  let slot: usize = 0;
  let base: u64 = 0;
  if (off < MSIP + 4) { store<u64>(H_MSIP, value & 1); exitAfterInstruction(EXIT_SLICE); return; }
  if (off >= MTIMECMP && off < MTIMECMP + 8) { slot = H_MTIMECMP; base = MTIMECMP; }
  else if (off >= MTIME) { slot = H_MTIME; base = MTIME; }
  else return;
  const shift = (off - base) << 3;
  const mask: u64 = size == 8 ? <u64>-1 : ((<u64>1 << <u64>(size * 8)) - 1) << shift;
  store<u64>(slot, (load<u64>(slot) & ~mask) | ((value << shift) & mask));
  // The timer comparison changed: re-evaluate interrupts before the next instruction.
  exitAfterInstruction(EXIT_SLICE);
}
