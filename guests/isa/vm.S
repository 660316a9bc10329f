/* vm.S: virtual memory (privileged spec ch. 10 "Supervisor-level ISA": Sv39, Sv48 and Sv57).
 * Page tables are built at run time in memory: 4 KiB pages, 2 MiB and 1 GiB superpages (and a
 * 512 GiB Sv48 leaf, a 256 TiB Sv57 leaf), misaligned superpages fault; S access to U pages with and without SUM, S
 * never executes U pages, U cannot touch S pages; execute-only pages with and without MXR;
 * read-only and W-without-R pages; invalid PTEs; hardware A/D update (A after a load, D after a
 * store, as QEMU 7.2 does); page faults 12/13/15 with mtval = the virtual address, also
 * delegated to S (stval); misaligned accesses across two pages with different frames;
 * non-canonical addresses; MPRV with MPP = S/U; SFENCE.VMA after a PTE change; satp writes with
 * an unsupported mode are ignored. */
#include "test.h"

#define PTE_V 0x01
#define PTE_R 0x02
#define PTE_W 0x04
#define PTE_X 0x08
#define PTE_U 0x10
#define PTE_A 0x40
#define PTE_D 0x80
#define RWXAD (PTE_V | PTE_R | PTE_W | PTE_X | PTE_A | PTE_D)
#define RWAD  (PTE_V | PTE_R | PTE_W | PTE_A | PTE_D)

#define SATP_SV39 (8 << 60)
#define SATP_SV48 (9 << 60)
#define SATP_SV57 (10 << 60)

/* Virtual addresses used by the tests */
#define VA_S     0x40000000     /* dpage0, S RW */
#define VA_U     0x40001000     /* dpage1, U RW */
#define VA_RO    0x40002000     /* dpage2, S R */
#define VA_XO    0x40003000     /* xpage, X only */
#define VA_AD    0x40004000     /* dpage1, RW with A = D = 0 */
#define VA_UCODE 0x40005000     /* ucode, U RX */
#define VA_INV   0x40006000     /* invalid PTE */
#define VA_WO    0x40007000     /* W without R: reserved */
#define VA_D0    0x40008000     /* dpage0, RW, A = 1, D = 0 */
#define VA_NX    0x40009000     /* dpage2, RW, not executable */
#define VA_SF    0x4000a000     /* dpage0, then changed to dpage1 */
#define VA_P1    0x4000b000     /* dpage1 ... */
#define VA_P2    0x4000c000     /* ... followed by dpage0 */
#define VA_P3    0x4000d000     /* dpage2, followed by an invalid page */
#define VA_2M    0x40200000     /* 2 MiB page -> 0x8000_0000 */
#define VA_2MBAD 0x40400000     /* 2 MiB page with a misaligned frame */
#define VA_1G    0xc0000000     /* 1 GiB page -> 0x8000_0000 */
#define VA_1GBAD 0x100000000    /* 1 GiB page with a misaligned frame */
#define VA_HIGH  0xffffffffc0000000 /* top 1 GiB (root[511]) -> 0x8000_0000 */

/* table[idx] = PTE for the frame at symbol `target` (+ offset) */
.macro PTE_SYM table, idx, target, flags
        la      t0, \target
        srli    t0, t0, 12
        slli    t0, t0, 10
        ori     t0, t0, \flags
        la      t1, \table
        sd      t0, (\idx * 8)(t1)
.endm
/* table[idx] = PTE for physical address pa */
.macro PTE_PA table, idx, pa, flags
        li      t0, ((\pa) >> 12) << 10 | (\flags)
        la      t1, \table
        li      t2, \idx * 8
        add     t1, t1, t2
        sd      t0, 0(t1)
.endm
/* Zero a 4 KiB table */
.macro ZERO_PAGE table
        la      t0, \table
        li      t1, 512
1:      sd      zero, 0(t0)
        addi    t0, t0, 8
        addi    t1, t1, -1
        bnez    t1, 1b
.endm

/* Instruction arguments are quoted strings ("ld a0, 0(a1)").
 * In S-mode: `inst` (address in a1) must not trap. */
.macro S_OK n, va, inst, inst2, inst3
        CASE    \n
        li      a1, \va
        ENTER_S
        \inst
        \inst2
        \inst3
        TO_M
        CHECK   T_CAUSE, CAUSE_ECALL_S
.endm
/* In S-mode: `inst` (address in a1) must fault with `cause`, mtval = va. */
.macro S_FAULT n, cause, va, inst, pre
        CASE    \n
        li      a1, \va
        ENTER_S
        \pre
        TEST_TRAP \n, \cause, \inst
        li      t6, \va
        CHECKR  T_TVAL, t6
.endm
.macro S_OK_MAGIC n, delta         /* a1 = magic + delta; S: ld a0, 0(a1) */
        CASE    \n
        la      a1, magic
        li      t0, \delta
        add     a1, a1, t0
        ENTER_S
        ld      a0, 0(a1)
        TO_M
        CHECK   T_CAUSE, CAUSE_ECALL_S
        CHECK   a0, 0x5a5aa5a5f00d1234
.endm
/* In U-mode, run the user routine at VA_UCODE + off (a1 = address); expect ECALL or a fault. */
.macro U_RUN n, off, va
        CASE    \n
        li      a1, \va
        li      t0, MSTATUS_MPP
        csrc    mstatus, t0
        li      t0, VA_UCODE + \off
        csrw    mepc, t0
        la      RESUME, 8f
        mret
        .balign 4
8:
.endm
/* S-mode fetch from va: must fault with cause 12, mepc = mtval = va. */
.macro S_FETCH_FAULT n, va
        CASE    \n
        li      a1, \va
        ENTER_S
        la      RESUME, 8f
        jalr    a1
        j       fail
        .balign 4
8:      CHECK   T_CAUSE, CAUSE_FETCH_PAGE
        li      t6, \va
        CHECKR  T_TVAL, t6
        CHECKR  T_EPC, t6
.endm

        TEST_BEGIN
        /* ---- data pages: dpageN holds N * 0x1111111111111111 in its first dword */
        la      a0, dpage0
        li      a1, 0x1111111111111111
        sd      a1, 0(a0)
        la      a0, dpage1
        li      a1, 0x2222222222222222
        sd      a1, 0(a0)
        li      a1, 0x2121212121212121
        li      t0, 4088
        add     t0, t0, a0
        sd      a1, 0(t0)               /* last dword of dpage1 */
        la      a0, dpage2
        li      a1, 0x3333333333333333
        sd      a1, 0(a0)
        li      a1, 0x3131313131313131
        li      t0, 4088
        add     t0, t0, a0
        sd      a1, 0(t0)
        la      a0, magic
        li      a1, 0x5a5aa5a5f00d1234
        sd      a1, 0(a0)

        /* ---- Sv39 tables */
        ZERO_PAGE root
        ZERO_PAGE l1
        ZERO_PAGE l0
        PTE_PA  root, 2, 0x80000000, RWXAD              /* identity gigapage: code and data */
        PTE_SYM root, 1, l1, PTE_V
        PTE_PA  root, 3, 0x80000000, RWAD               /* VA_1G */
        PTE_PA  root, 4, 0x80200000, RWAD               /* VA_1GBAD: misaligned frame */
        PTE_PA  root, 511, 0x80000000, RWAD             /* VA_HIGH */
        PTE_SYM l1, 0, l0, PTE_V
        PTE_PA  l1, 1, 0x80000000, RWXAD                /* VA_2M */
        PTE_PA  l1, 2, 0x80001000, RWAD                 /* VA_2MBAD: misaligned frame */
        PTE_SYM l0, 0, dpage0, RWAD
        PTE_SYM l0, 1, dpage1, RWAD | PTE_U
        PTE_SYM l0, 2, dpage2, PTE_V | PTE_R | PTE_A
        PTE_SYM l0, 3, xpage, PTE_V | PTE_X | PTE_A
        PTE_SYM l0, 4, dpage1, PTE_V | PTE_R | PTE_W
        PTE_SYM l0, 5, ucode, PTE_V | PTE_R | PTE_X | PTE_U | PTE_A
        PTE_SYM l0, 7, dpage2, PTE_V | PTE_W | PTE_A | PTE_D
        PTE_SYM l0, 8, dpage0, PTE_V | PTE_R | PTE_W | PTE_A
        PTE_SYM l0, 9, dpage2, RWAD
        PTE_SYM l0, 10, dpage0, RWAD
        PTE_SYM l0, 11, dpage1, RWAD
        PTE_SYM l0, 12, dpage0, RWAD
        PTE_SYM l0, 13, dpage2, RWAD
        /* l0[6] and l0[14] stay invalid */

        CASE 1                          /* an unsupported mode leaves satp unchanged */
        csrw    satp, zero
        li      a0, (11 << 60) | 5      /* Sv64: not implemented */
        csrw    satp, a0
        csrr    a1, satp
        CHECK   a1, 0
        li      a0, (5 << 60) | 5       /* reserved */
        csrw    satp, a0
        csrr    a1, satp
        CHECK   a1, 0
        CASE 2                          /* Sv39 is accepted */
        la      a0, root
        srli    a0, a0, 12
        li      a1, SATP_SV39
        or      a0, a0, a1
        csrw    satp, a0
        csrr    a1, satp
        CHECKR  a1, a0
        sfence.vma
        CASE 3                          /* M-mode is not translated */
        la      a1, dpage0
        ld      a0, 0(a1)
        CHECK   a0, 0x1111111111111111

        /* ---- 4 KiB pages, superpages */
        S_OK    10, VA_S, "ld a0, 0(a1)"
        CHECK   a0, 0x1111111111111111
        S_OK    11, VA_RO, "ld a0, 0(a1)"
        CHECK   a0, 0x3333333333333333
        S_OK    12, VA_S + 8, "li a2, 0x4444", "sd a2, 0(a1)", "ld a0, 0(a1)"
        CHECK   a0, 0x4444
        la      a1, dpage0              /* the store reached the frame */
        ld      a0, 8(a1)
        CHECK   a0, 0x4444
        S_OK_MAGIC 13, VA_2M - 0x80000000
        nop
        CHECK   a0, 0x5a5aa5a5f00d1234
        S_OK_MAGIC 14, VA_1G - 0x80000000
        nop
        CHECK   a0, 0x5a5aa5a5f00d1234
        S_OK_MAGIC 15, VA_HIGH - 0x80000000
        nop
        CHECK   a0, 0x5a5aa5a5f00d1234
        S_FAULT 16, CAUSE_LOAD_PAGE, VA_2MBAD, "ld a0, 0(a1)"
        S_FAULT 17, CAUSE_LOAD_PAGE, VA_1GBAD + 0x10, "ld a0, 0(a1)"
        S_FAULT 18, CAUSE_STORE_PAGE, VA_2MBAD + 8, "sd a0, 0(a1)"
        S_OK    19, VA_P1 + 4093, "ld a0, 0(a1)"   /* misaligned across two pages, frames apart */
        CHECK   a0, 0x1111111111212121
        S_OK    20, VA_P1 + 4094, "li a2, 0x0a0b0c0d", "sw a2, 0(a1)"
        la      a1, dpage0
        lhu     a0, 0(a1)
        CHECK   a0, 0x0a0b
        la      a1, dpage1
        li      t0, 4094
        add     a1, a1, t0
        lhu     a0, 0(a1)
        CHECK   a0, 0x0c0d
        la      a1, dpage0
        li      a0, 0x1111111111111111
        sd      a0, 0(a1)
        /* a misaligned access whose second page is invalid: the fault address is the access
         * address or the start of the invalid page (the spec allows either) */
        CASE 21
        li      a1, VA_P3 + 4092
        ENTER_S
        TEST_TRAP 21, CAUSE_LOAD_PAGE, ld a0, 0(a1)
        li      t6, VA_P3 + 4092
        beq     T_TVAL, t6, 1f
        CHECK   T_TVAL, VA_P3 + 4096
1:
        /* ---- faults: invalid, reserved, read-only, non-executable, non-canonical */
        S_FAULT 30, CAUSE_LOAD_PAGE, VA_INV, "ld a0, 0(a1)"
        S_FAULT 31, CAUSE_STORE_PAGE, VA_INV + 16, "sd a0, 0(a1)"
        S_FAULT 32, CAUSE_STORE_PAGE, VA_RO + 8, "sd a0, 0(a1)"
        S_FAULT 33, CAUSE_LOAD_PAGE, VA_WO, "ld a0, 0(a1)"
        S_FAULT 34, CAUSE_STORE_PAGE, VA_WO, "sd a0, 0(a1)"
        S_FAULT 35, CAUSE_STORE_PAGE, VA_RO, "amoadd.d a0, a0, (a1)"
        S_FAULT 36, CAUSE_LOAD_PAGE, 0x8000000000, "ld a0, 0(a1)"       /* bit 39 set: not canonical */
        S_FAULT 37, CAUSE_STORE_PAGE, 0x4000000000000000, "sd a0, 0(a1)"
        S_FETCH_FAULT 38, VA_NX
        S_FETCH_FAULT 39, VA_INV
        S_FAULT 40, CAUSE_LOAD_PAGE, 0x400000000, "ld a0, 0(a1)"       /* root[16] invalid */

        /* ---- execute-only pages and MXR */
        CASE 45
        li      a1, VA_XO
        ENTER_S
        jalr    a1                      /* xcode: a0 = 0x77 */
        TO_M
        CHECK   a0, 0x77
        S_FAULT 46, CAUSE_LOAD_PAGE, VA_XO, "lw a0, 0(a1)"
        li      a0, MSTATUS_MXR
        csrs    mstatus, a0
        S_OK    47, VA_XO, "lw a0, 0(a1)"
        la      a2, xcode
        lw      a2, 0(a2)
        CHECKR  a0, a2
        S_FAULT 48, CAUSE_STORE_PAGE, VA_XO, "sw a0, 0(a1)"       /* MXR does not grant writes */
        li      a0, MSTATUS_MXR
        csrc    mstatus, a0

        /* ---- U and S: SUM */
        S_FAULT 50, CAUSE_LOAD_PAGE, VA_U, "ld a0, 0(a1)"
        S_FAULT 51, CAUSE_STORE_PAGE, VA_U, "sd a0, 0(a1)"
        li      a0, MSTATUS_SUM
        csrs    mstatus, a0
        S_OK    52, VA_U, "ld a0, 0(a1)"
        CHECK   a0, 0x2222222222222222
        S_FETCH_FAULT 53, VA_UCODE      /* S never executes U pages, SUM or not */
        li      a0, MSTATUS_SUM
        csrc    mstatus, a0
        U_RUN   54, 0, VA_U             /* ucode: ld a0, 0(a1); ecall */
        CHECK   T_CAUSE, CAUSE_ECALL_U
        CHECK   a0, 0x2222222222222222
        U_RUN   55, 0, VA_S
        CHECK   T_CAUSE, CAUSE_LOAD_PAGE
        CHECK   T_TVAL, VA_S
        U_RUN   56, 8, VA_S             /* ucode+8: sd a0, 0(a1); ecall */
        CHECK   T_CAUSE, CAUSE_STORE_PAGE
        CHECK   T_TVAL, VA_S
        U_RUN   57, 0, VA_1G            /* a non-U gigapage */
        CHECK   T_CAUSE, CAUSE_LOAD_PAGE
        CASE 58                         /* U fetch from an S page */
        li      t0, MSTATUS_MPP
        csrc    mstatus, t0
        li      t0, VA_S
        csrw    mepc, t0
        la      RESUME, 8f
        mret
        .balign 4
8:      CHECK   T_CAUSE, CAUSE_FETCH_PAGE
        CHECK   T_TVAL, VA_S

        /* ---- hardware A/D update */
        CASE 60
        la      a2, l0
        ld      a0, 4*8(a2)
        andi    a0, a0, PTE_A | PTE_D
        CHECK   a0, 0
        S_OK    61, VA_AD, "ld a0, 0(a1)"
        CHECK   a0, 0x2222222222222222
        la      a2, l0
        ld      a0, 4*8(a2)
        andi    a0, a0, PTE_A | PTE_D
        CHECK   a0, PTE_A               /* accessed, not dirty */
        S_OK    62, VA_AD + 16, "sd zero, 0(a1)"
        la      a2, l0
        ld      a0, 4*8(a2)
        andi    a0, a0, PTE_A | PTE_D
        CHECK   a0, PTE_A | PTE_D
        S_OK    63, VA_D0 + 16, "sd zero, 0(a1)"
        la      a2, l0
        ld      a0, 8*8(a2)
        andi    a0, a0, PTE_D
        CHECK   a0, PTE_D

        /* ---- SFENCE.VMA after changing a PTE */
        S_OK    70, VA_SF, "ld a0, 0(a1)"
        CHECK   a0, 0x1111111111111111
        PTE_SYM l0, 10, dpage1, RWAD
        sfence.vma
        S_OK    71, VA_SF, "ld a0, 0(a1)"
        CHECK   a0, 0x2222222222222222
        PTE_SYM l0, 10, dpage2, RWAD
        S_OK    72, VA_SF, "sfence.vma a1, zero", "ld a0, 0(a1)"   /* by address, from S */
        CHECK   a0, 0x3333333333333333
        la      t1, l0
        sd      zero, 10*8(t1)
        S_FAULT 73, CAUSE_LOAD_PAGE, VA_SF, "ld a0, 0(a1)", "sfence.vma"

        /* ---- MPRV: M-mode loads and stores translated as MPP */
        CASE 80
        li      a0, MSTATUS_MPP
        csrc    mstatus, a0
        li      a0, MSTATUS_MPP_S | MSTATUS_MPRV
        csrs    mstatus, a0
        li      a1, VA_S
        ld      a0, 0(a1)
        li      a2, VA_RO
        ld      a3, 0(a2)
        li      t6, MSTATUS_MPRV
        csrc    mstatus, t6
        CHECK   a0, 0x1111111111111111
        CHECK   a3, 0x3333333333333333
        CASE 81                         /* a fault under MPRV: tval = the virtual address */
        li      a0, MSTATUS_MPP
        csrc    mstatus, a0
        li      a0, MSTATUS_MPP_S | MSTATUS_MPRV
        csrs    mstatus, a0
        li      a1, VA_RO
        TEST_TRAP 81, CAUSE_STORE_PAGE, sd zero, 0(a1)
        csrr    a0, mstatus             /* the trap set MPP = M, so MPRV no longer translates */
        li      t6, MSTATUS_MPRV
        csrc    mstatus, t6
        CHECK   T_TVAL, VA_RO
        CASE 82                         /* MPRV with MPP = U: S pages are out of reach */
        li      a0, MSTATUS_MPP
        csrc    mstatus, a0             /* MPP = U */
        li      a0, MSTATUS_MPRV
        csrs    mstatus, a0
        li      a1, VA_S
        TEST_TRAP 82, CAUSE_LOAD_PAGE, ld a0, 0(a1)
        li      t6, MSTATUS_MPRV
        csrc    mstatus, t6
        CHECK   T_TVAL, VA_S
        /* the handler left MPP = M */

        /* ---- page faults delegated to S: scause/stval */
        SET_STVEC
        li      a0, (1 << CAUSE_FETCH_PAGE) | (1 << CAUSE_LOAD_PAGE) | (1 << CAUSE_STORE_PAGE)
        csrw    medeleg, a0
        CASE 90
        li      a1, VA_INV + 0x123
        ENTER_S
        la      RESUME, 8f
7:      ld      a0, 0(a1)
        j       fail
        .balign 4
8:      CHECK   T_CAUSE, CAUSE_LOAD_PAGE
        CHECK   T_TVAL, VA_INV + 0x123
        la      t6, 7b
        CHECKR  T_EPC, t6
        csrr    a0, scause
        CHECK   a0, CAUSE_LOAD_PAGE
        csrr    a0, stval
        CHECK   a0, VA_INV + 0x123
        CASE 91
        li      a1, VA_RO + 0x10
        la      RESUME, 8f
        sd      a0, 0(a1)
        j       fail
        .balign 4
8:      CHECK   T_CAUSE, CAUSE_STORE_PAGE
        CHECK   T_TVAL, VA_RO + 0x10
        TO_M
        csrw    medeleg, zero

        /* ---- Sv48: the Sv39 root serves as the level-2 table under a new root */
        ZERO_PAGE root4
        ZERO_PAGE l2b
        PTE_SYM root4, 0, root, PTE_V
        PTE_SYM root4, 1, l2b, PTE_V                    /* VA 512 GiB */
        PTE_PA  l2b, 0, 0x80000000, RWAD                /* VA 0x80_0000_0000 -> 0x8000_0000 */
        PTE_PA  root4, 2, 0, RWAD                       /* 512 GiB leaf: VA 0x100_0000_0000 -> 0 */
        PTE_PA  root4, 3, 0x80000000, RWAD              /* 512 GiB leaf, misaligned frame */
        CASE 100
        la      a0, root4
        srli    a0, a0, 12
        li      a1, SATP_SV48
        or      a0, a0, a1
        csrw    satp, a0
        csrr    a1, satp
        CHECKR  a1, a0
        sfence.vma
        S_OK    101, VA_S, "ld a0, 0(a1)"
        CHECK   a0, 0x1111111111111111
        S_OK_MAGIC 102, 0x8000000000 - 0x80000000
        nop
        CHECK   a0, 0x5a5aa5a5f00d1234
        S_OK_MAGIC 103, 0x10000000000
        nop
        CHECK   a0, 0x5a5aa5a5f00d1234
        S_FAULT 104, CAUSE_LOAD_PAGE, 0x18000000000, "ld a0, 0(a1)"
        S_FAULT 105, CAUSE_LOAD_PAGE, 0x800000000000, "ld a0, 0(a1)"       /* bit 47 alone: not canonical */
        S_FAULT 106, CAUSE_LOAD_PAGE, 0xffffffffc0000000, "ld a0, 0(a1)"       /* root4[511] invalid */
        S_FAULT 107, CAUSE_STORE_PAGE, VA_RO, "sd a0, 0(a1)"
        S_OK_MAGIC 108, VA_2M - 0x80000000
        nop
        CHECK   a0, 0x5a5aa5a5f00d1234
        U_RUN   109, 0, VA_U
        CHECK   T_CAUSE, CAUSE_ECALL_U
        CHECK   a0, 0x2222222222222222
        CASE 110                        /* unsupported mode while Sv48 is on: unchanged */
        csrr    a2, satp
        li      a0, (11 << 60) | 5
        csrw    satp, a0
        csrr    a1, satp
        CHECKR  a1, a2

        /* ---- Sv57: the Sv48 root serves as the level-3 table under a new root */
        ZERO_PAGE root5
        PTE_SYM root5, 0, root4, PTE_V
        PTE_PA  root5, 1, 0, RWAD                       /* 256 TiB leaf: VA 0x1_0000_0000_0000 -> 0 */
        PTE_PA  root5, 2, 0x80000000, RWAD              /* 256 TiB leaf, misaligned frame */
        CASE 120
        la      a0, root5
        srli    a0, a0, 12
        li      a1, SATP_SV57
        or      a0, a0, a1
        csrw    satp, a0
        csrr    a1, satp
        CHECKR  a1, a0
        sfence.vma
        S_OK    121, VA_S, "ld a0, 0(a1)"
        CHECK   a0, 0x1111111111111111
        S_OK_MAGIC 122, 0x8000000000 - 0x80000000       /* through root5[0], root4[1], l2b */
        nop
        S_OK_MAGIC 123, 0x1000000000000                 /* the 256 TiB leaf */
        nop
        S_FAULT 124, CAUSE_LOAD_PAGE, 0x2000000000000, "ld a0, 0(a1)"      /* misaligned leaf */
        S_FAULT 125, CAUSE_LOAD_PAGE, 0x100000000000000, "ld a0, 0(a1)"    /* bit 56 alone: not canonical */
        S_FAULT 126, CAUSE_LOAD_PAGE, 0xff00000000000000, "ld a0, 0(a1)"   /* canonical; root5[256] invalid */
        S_OK_MAGIC 127, VA_2M - 0x80000000
        nop
        U_RUN   128, 0, VA_U
        CHECK   T_CAUSE, CAUSE_ECALL_U
        CHECK   a0, 0x2222222222222222
        CASE 129                        /* unsupported mode while Sv57 is on: unchanged */
        csrr    a2, satp
        li      a0, (11 << 60) | 5
        csrw    satp, a0
        csrr    a1, satp
        CHECKR  a1, a2
        csrw    satp, zero
        sfence.vma
        TEST_END

        .text
        .balign 4096
xpage:                                  /* mapped execute-only at VA_XO */
xcode:  li      a0, 0x77
        ret
        .balign 4096
ucode:                                  /* mapped U RX at VA_UCODE */
        ld      a0, 0(a1)
        ecall
        sd      a0, 0(a1)
        ecall
        .balign 4096

        .data
        .balign 8
magic:  .dword 0

        .bss
        .balign 4096
root:   .skip 4096
l1:     .skip 4096
l0:     .skip 4096
root4:  .skip 4096
root5:  .skip 4096
l2b:    .skip 4096
dpage0: .skip 4096
dpage1: .skip 4096
dpage2: .skip 4096
