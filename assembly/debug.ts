// Debugger support for the host's gdb stub (src/gdb/).
//
// Breakpoints are virtual addresses in a small table the host fills; they are never written
// into guest memory, so snapshots and checksums never see them. The check costs nothing on the
// fast path: the interpreter looks at the table only when it fetches through the slow path
// (a new fetch page), and it never caches a page that holds a breakpoint, so every fetch from
// such a page takes the slow path and is checked. With no breakpoint set, the slow path pays
// one compare.

export const BP_MAX: i32 = 64;
const BP_TABLE: usize = memory.data(BP_MAX * 8);

export let g_bpCount: i32 = 0;
// QEMU's default single-step mode (SSTEP_NOIRQ): no interrupt is taken while stepping.
export let g_debugNoIrq: bool = false;

export function bpTable(): usize { return BP_TABLE; }
export function setBpCount(n: i32): void { g_bpCount = n < 0 ? 0 : n > BP_MAX ? BP_MAX : n; }
export function setDebugNoIrq(on: bool): void { g_debugNoIrq = on; }

// Whether a breakpoint is set at `pc`.
export function bpAt(pc: u64): bool {
  for (let i = 0; i < g_bpCount; i++) if (load<u64>(BP_TABLE + (<usize>i << 3)) == pc) return true;
  return false;
}

// Whether the virtual page `vpn` holds a breakpoint (such a page is never the cached fetch page).
export function bpOnPage(vpn: u64): bool {
  for (let i = 0; i < g_bpCount; i++) if ((load<u64>(BP_TABLE + (<usize>i << 3)) >> 12) == vpn) return true;
  return false;
}
