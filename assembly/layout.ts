// The core's fixed linear-memory layout.
//
// Everything the hart needs sits at compile-time constant addresses so the interpreter's hot
// path uses immediate offsets. The AssemblyScript compiler places its own static data at
// `memoryBase` (asconfig.json: 5 MiB), above all of these regions. The host (src/core.ts)
// reads and writes guest RAM, the page-state array and the hart states through typed-array
// views, without copies.
//
//   0x0000_1000  HART     the running hart's state, one contiguous block
//   0x0000_a000  MACHINE  state the harts share: mtime, the CLINT's msip/mtimecmp, IRQ lines
//   0x0000_b000  WALK_LOG the page-table entries the last debug walk read (mmu.ts debugWalk)
//   0x0002_0000  TLB      the running hart's software TLBs for fetch / load / store
//   0x0004_0000  CEXP     RVC expansion table: 65536 x u32
//   0x0010_0000  PAGES    one state byte per 4 KiB RAM page (up to 4 GiB)
//   0x0020_0000  ROM      the reset ROM, guest-physical 0x0..0x10000 (64 KiB)
//   0x0030_0000  SCRATCH  a 1 MiB buffer for bulk exchanges with the host
//   0x0040_0000  HARTS    every hart's state block, MAX_HARTS x HART_SIZE (harts.ts)
//   0x0045_0000  TLBS     every hart's TLBs, MAX_HARTS x TLB_BYTES
//   0x0050_0000  (AssemblyScript static data)
//   0x0100_0000  RAM      guest-physical 0x8000_0000 and up
//
// Several harts: the interpreter always runs "the current hart" at HART / TLB; at a quantum
// boundary the scheduler (harts.ts) copies it out to its slot and the next one in
// (docs/ARCHITECTURE.md, "Several harts").
//   (after RAM)  JIT      per-page arrays of the JIT (jit.ts), placed by init

export const HART: usize = 0x1000;
// x0..x31, 8 bytes each. x0 is rewritten to zero before every instruction.
export const XREG: usize = HART + 0x000;
// f0..f31, 8 bytes each (NaN-boxed singles).
export const FREG: usize = HART + 0x100;
// Scalar hart state (u64 slots) beyond the register files.
export const H_PC: usize = HART + 0x200;
export const H_PRIV: usize = HART + 0x208; // 0 = U, 1 = S, 3 = M
export const H_RESV: usize = HART + 0x210; // LR reservation address, or -1
export const H_INSTRET: usize = HART + 0x230;
export const H_WFI: usize = HART + 0x240; // 1 while stopped in WFI
export const H_FFLAGS: usize = HART + 0x248; // accrued exception flags (fcsr[4:0])
export const H_FRM: usize = HART + 0x250; // dynamic rounding mode (fcsr[7:5])
// Debug triggers (Sdtrig, debug.ts): TRIGGERS x [tdata1 u64][tdata2 u64]; tselect is a CSR slot.
export const TRIGGERS: u32 = 2;
export const H_TRIG: usize = HART + 0x300;
// CSR storage: one u64 per CSR number, indexed directly (csr.ts owns the meaning).
export const CSRS: usize = HART + 0x1000;
export const HART_END: usize = CSRS + 4096 * 8;
export const HART_SIZE: usize = HART_END - HART;

// What the harts share. mtime and the CLINT's per-hart registers live here, not in a hart's
// block, because any hart may write another's msip or mtimecmp.
export const MAX_HARTS: u32 = 8;
export const MACHINE: usize = 0xa000;
export const M_MTIME: usize = MACHINE + 0x00; // CLINT mtime (10 MHz ticks)
export const M_ICOUNT_ACC: usize = MACHINE + 0x08; // instructions not yet turned into mtime ticks
export const M_CURRENT: usize = MACHINE + 0x10; // the hart at HART
export const M_QUANTUM: usize = MACHINE + 0x18; // instructions left in its quantum
export const M_MSIP: usize = MACHINE + 0x100; // u64 per hart
export const M_MTIMECMP: usize = MACHINE + 0x140; // u64 per hart
export const M_EXTIRQ: usize = MACHINE + 0x180; // u64 per hart: bit 9 SEIP, bit 11 MEIP
export const MACHINE_END: usize = MACHINE + 0x1c0;

// The log of the last side-effect-free walk (mmu.ts translateProbe / walkProbe, for the host's
// debugWalk): [count u64] then the guest-physical address of each page-table entry read, root
// first (u64 each; at most WALK_LOG_MAX, Sv57's five levels).
export const WALK_LOG: usize = 0xb000;
export const WALK_LOG_MAX: u64 = 5;

// Per-CSR write masks and access kind (csr.ts fills them at init).
export const CSR_WMASK: usize = 0x10000 + 0x1000; // up to 0x19000 (not part of saved state)

// TLBs: 3 x TLB_SIZE entries of 16 bytes: [vpn tag u64][host page address u32][pad u32].
export const TLB_SIZE: u32 = 1024;
export const TLB_FETCH: usize = 0x20000;
export const TLB_LOAD: usize = TLB_FETCH + TLB_SIZE * 16;
export const TLB_STORE: usize = TLB_LOAD + TLB_SIZE * 16;
export const TLB_BYTES: usize = TLB_SIZE * 16 * 3;

export const CEXP: usize = 0x40000;

export const PAGES: usize = 0x100000;
// Page-state bits (one byte per 4 KiB page of RAM).
export const PG_NOT_RESTORED: u8 = 1; // any touch exits to the host first
export const PG_DIRTY: u8 = 2; // written since the host's last mark
export const PG_DISK: u8 = 4; // still equals a disk block (host keeps which one)
export const PG_WATCH: u8 = 8; // writes always take the slow path (HTIF tohost)
export const PG_ACCESSED: u8 = 16; // touched since the host last cleared it
export const PG_CODE: u8 = 32; // holds translated code: writes take the slow path and invalidate it

// The reset ROM: guest-physical 0x0..0x10000 is held at ROM + address (the host places the
// mrom region inside it: bus.ts mapDevice).
export const ROM: usize = 0x200000;
// A buffer the host may use for bulk results and data it passes in (snapshot classification,
// pages read from a checkpoint). 1 MiB: 128 Ki u64 results.
export const SCRATCH: usize = 0x300000;
export const SCRATCH_SIZE: u32 = 0x100000;

// Every hart's state and TLBs while it is not the one running (harts.ts).
export const HARTS: usize = 0x400000;
export const TLBS: usize = 0x450000;

export const RAM: usize = 0x1000000;
export const RAM_GPA: u64 = 0x80000000;
