// The core's fixed linear-memory layout.
//
// Everything the hart needs sits at compile-time constant addresses so the
// interpreter's hot path uses immediate offsets. The AssemblyScript compiler
// places its own static data at `memoryBase` (asconfig.json: 4 MiB), above all
// of these regions. The host (src/core.ts) mirrors these numbers; it reads and
// writes guest RAM, the page-state array and the hart state through typed
// array views, without copies.
//
//   0x0000_1000  HART     hart state, one contiguous block (saved by snapshots)
//   0x0002_0000  TLB      software TLBs for fetch / load / store
//   0x0004_0000  CEXP     RVC expansion table: 65536 x u32
//   0x0010_0000  PAGES    one state byte per 4 KiB RAM page (up to 4 GiB)
//   0x0020_0000  ROM      the reset ROM, guest-physical 0x0..0x10000 (64 KiB)
//   0x0030_0000  SCRATCH  a 1 MiB buffer for bulk exchanges with the host
//   0x0040_0000  (AssemblyScript static data)
//   0x0100_0000  RAM      guest-physical 0x8000_0000 and up

export const HART: usize = 0x1000;
// x0..x31, 8 bytes each. x0 is rewritten to zero before every instruction.
export const XREG: usize = HART + 0x000;
// f0..f31, 8 bytes each (NaN-boxed singles).
export const FREG: usize = HART + 0x100;
// Scalar hart state (u64 slots) beyond the register files.
export const H_PC: usize = HART + 0x200;
export const H_PRIV: usize = HART + 0x208; // 0 = U, 1 = S, 3 = M
export const H_RESV: usize = HART + 0x210; // LR reservation address, or -1
export const H_MTIME: usize = HART + 0x218; // CLINT mtime (10 MHz ticks)
export const H_MTIMECMP: usize = HART + 0x220;
export const H_MSIP: usize = HART + 0x228;
export const H_INSTRET: usize = HART + 0x230;
export const H_EXTIRQ: usize = HART + 0x238; // external lines: bit 9 SEIP, bit 11 MEIP
export const H_WFI: usize = HART + 0x240; // 1 while stopped in WFI
export const H_FFLAGS: usize = HART + 0x248; // accrued exception flags (fcsr[4:0])
export const H_FRM: usize = HART + 0x250; // dynamic rounding mode (fcsr[7:5])
export const H_LASTINSN: usize = HART + 0x260; // the last instruction run() executed (for --trace)
export const H_ICOUNT_ACC: usize = HART + 0x258; // instructions not yet turned into mtime ticks
// CSR storage: one u64 per CSR number, indexed directly (csr.ts owns the meaning).
export const CSRS: usize = HART + 0x1000;
export const HART_END: usize = CSRS + 4096 * 8;

// Per-CSR write masks and access kind (csr.ts fills them at init).
export const CSR_WMASK: usize = 0x10000 + 0x1000; // up to 0x19000 (not part of saved state)

// TLBs: 3 x TLB_SIZE entries of 16 bytes: [vpn tag u64][host page address u32][pad u32].
export const TLB_SIZE: u32 = 1024;
export const TLB_FETCH: usize = 0x20000;
export const TLB_LOAD: usize = TLB_FETCH + TLB_SIZE * 16;
export const TLB_STORE: usize = TLB_LOAD + TLB_SIZE * 16;

export const CEXP: usize = 0x40000;

export const PAGES: usize = 0x100000;
// Page-state bits (one byte per 4 KiB page of RAM).
export const PG_NOT_RESTORED: u8 = 1; // any touch exits to the host first
export const PG_DIRTY: u8 = 2; // written since the host's last mark
export const PG_DISK: u8 = 4; // still equals a disk block (host keeps which one)
export const PG_WATCH: u8 = 8; // writes always take the slow path (HTIF tohost)
export const PG_ACCESSED: u8 = 16; // touched since the host last cleared it

// The reset ROM: guest-physical 0x0..0x10000 is held at ROM + address (the host places the
// mrom region inside it: bus.ts mapDevice).
export const ROM: usize = 0x200000;
// A buffer the host may use for bulk results and data it passes in (snapshot classification,
// pages read from a checkpoint). 1 MiB: 128 Ki u64 results.
export const SCRATCH: usize = 0x300000;
export const SCRATCH_SIZE: u32 = 0x100000;

export const RAM: usize = 0x1000000;
export const RAM_GPA: u64 = 0x80000000;
