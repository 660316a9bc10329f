/* csr.S: CSRs, privilege levels and synchronous traps (privileged spec ch. 3-4, Zicsr,
 * Zicntr). misa (RV64, I/M/A/C/S/U), mhartid, the CSR instruction forms; ECALL from M/S/U
 * (causes 11/9/8), EBREAK (cause 3, mtval = pc as QEMU does), illegal instructions (cause 2,
 * mtval = the instruction bits), nonexistent CSRs, writes to read-only CSRs, S/U touching
 * higher-privilege CSRs; misaligned loads/stores done in hardware (no trap), also across a page;
 * mscratch/sscratch; sstatus as a view of mstatus; mtvec direct and vectored; medeleg to S
 * (scause/sepc/stval, SPP, SPIE); MRET/SRET transitions (MPP/MPIE/SPP/SPIE, xPP := U);
 * MRET/SRET from too low a privilege; TSR/TW/TVM; cycle/time/instret in M, and in S/U as
 * mcounteren/scounteren allow. */
#include "test.h"

/* Execute `inst` in S-mode (or U-mode): it must raise `cause`; back in M afterwards. */
.macro TRAP_IN_S n, cause, inst:vararg
        CASE    \n
        ENTER_S
        TEST_TRAP \n, \cause, \inst
        srli    t6, T_STATUS, 11        /* the trap came from S: MPP = 1 */
        andi    t6, t6, 3
        CHECK   t6, 1
.endm
.macro TRAP_IN_U n, cause, inst:vararg
        CASE    \n
        ENTER_U
        TEST_TRAP \n, \cause, \inst
        srli    t6, T_STATUS, 11        /* the trap came from U: MPP = 0 */
        andi    t6, t6, 3
        CHECK   t6, 0
.endm
/* Execute `inst` in S-mode (or U-mode): it must not trap. */
.macro OK_IN_S n, inst:vararg
        CASE    \n
        ENTER_S
        \inst
        TO_M
        CHECK   T_CAUSE, CAUSE_ECALL_S
.endm
.macro OK_IN_U n, inst:vararg
        CASE    \n
        ENTER_U
        \inst
        TO_M
        CHECK   T_CAUSE, CAUSE_ECALL_U
.endm

        TEST_BEGIN
        /* ---- identification */
        CASE 1
        csrr    a0, misa
        srli    a1, a0, 62
        CHECK   a1, 2                   /* MXL = 64 */
        li      a2, (1 << 0) | (1 << 2) | (1 << 8) | (1 << 12) | (1 << 18) | (1 << 20) /* A C I M S U */
        and     a1, a0, a2
        CHECKR  a1, a2
        CASE 2
        csrr    a0, mhartid
        CHECK   a0, 0
        TEST_TRAP 3, CAUSE_ILLEGAL, csrw mhartid, zero     /* read-only CSR */
        TEST_TRAP 4, CAUSE_ILLEGAL, csrw mvendorid, a0
        TEST_TRAP 5, CAUSE_ILLEGAL, csrrw a0, mimpid, zero
        TEST_TRAP 6, CAUSE_ILLEGAL, csrsi cycle, 1
        TEST_TRAP 7, CAUSE_ILLEGAL, csrw instret, zero
        CASE 8                          /* reading a read-only CSR with csrrs/csrrsi rs1=0 is fine */
        csrrs   a0, mhartid, zero
        csrrsi  a0, marchid, 0
        csrrc   a0, mvendorid, zero

        /* ---- the CSR instruction forms (on mscratch) */
        CASE 10
        li      a0, 0x0123456789abcdef
        csrw    mscratch, a0
        csrr    a1, mscratch
        CHECKR  a1, a0
        CASE 11
        li      a2, 0xff
        csrrs   a1, mscratch, a2        /* returns the old value */
        CHECK   a1, 0x0123456789abcdef
        csrr    a1, mscratch
        CHECK   a1, 0x0123456789abcdff
        CASE 12
        li      a2, 0x0f
        csrrc   a1, mscratch, a2
        CHECK   a1, 0x0123456789abcdff
        csrr    a1, mscratch
        CHECK   a1, 0x0123456789abcdf0
        CASE 13
        csrrwi  a1, mscratch, 0x15
        CHECK   a1, 0x0123456789abcdf0
        csrrsi  a1, mscratch, 0x0a
        CHECK   a1, 0x15
        csrrci  a1, mscratch, 0x01
        CHECK   a1, 0x1f
        csrr    a1, mscratch
        CHECK   a1, 0x1e
        CASE 14
        li      a0, -1
        csrrw   a0, mscratch, a0        /* rd == rs1 */
        CHECK   a0, 0x1e
        csrr    a0, mscratch
        CHECK   a0, -1
        CASE 15
        li      a0, 0x5555aaaa5555aaaa
        csrw    sscratch, a0
        csrr    a1, sscratch
        CHECKR  a1, a0
        csrr    a1, mscratch            /* a different register */
        CHECK   a1, -1
        CASE 16                         /* csrrw with rd = x0 still writes */
        csrrw   zero, sscratch, zero
        csrr    a1, sscratch
        CHECK   a1, 0

        /* ---- ECALL / EBREAK / illegal instructions in M */
        TEST_TRAP 20, CAUSE_ECALL_M, ecall
        CHECK   T_TVAL, 0
        TEST_TRAP 21, CAUSE_BREAKPOINT, ebreak
        /* mtval is the pc or zero (the spec allows both; QEMU 7.2 writes 0, Spike the pc) */
        beqz    T_TVAL, 1f
        la      t6, 7b
        CHECKR  T_TVAL, t6
1:
        TEST_TRAP 22, CAUSE_ILLEGAL, .word 0x0000201b      /* OP-IMM-32 funct3 = 2: reserved */
        CHECK   T_TVAL, 0x0000201b
        TEST_TRAP 23, CAUSE_ILLEGAL, .word 0xffffffff
        TEST_TRAP 24, CAUSE_ILLEGAL, csrr a0, 0x7c0   /* nonexistent CSR (custom M space) */
        li      t6, 0x7c002573
        CHECKR  T_TVAL, t6
        TEST_TRAP 25, CAUSE_ILLEGAL, csrw 0x101, a0   /* unallocated S CSR number */
        TEST_TRAP 26, CAUSE_ILLEGAL, .word 0x0000702f /* AMO funct3 = 7: reserved */
        TEST_TRAP 27, CAUSE_ILLEGAL, .word 0x40001033 /* OP funct7 = 0x20 with SLL: reserved */
        CHECK   T_TVAL, 0x40001033
        CASE 28                         /* mepc is writable, holds a 4-byte aligned pc (C: 2) */
        li      a0, 0x80001234
        csrw    mepc, a0
        csrr    a1, mepc
        CHECK   a1, 0x80001234
        /* (mepc[0] should read zero; QEMU 7.2 keeps it, so it is not tested) */

        /* ---- ECALL from S and U */
        CASE 30
        ENTER_S
        TEST_TRAP 30, CAUSE_ECALL_S, ecall
        CHECK   T_TVAL, 0
        CASE 31
        ENTER_U
        TEST_TRAP 31, CAUSE_ECALL_U, ecall
        CHECK   T_TVAL, 0

        /* ---- privilege violations */
        TRAP_IN_S 40, CAUSE_ILLEGAL, csrr a0, mstatus
        TRAP_IN_S 41, CAUSE_ILLEGAL, csrw mscratch, a0
        TRAP_IN_S 42, CAUSE_ILLEGAL, csrr a0, mhartid
        TRAP_IN_S 43, CAUSE_ILLEGAL, csrr a0, medeleg
        TRAP_IN_S 44, CAUSE_ILLEGAL, mret
        TRAP_IN_U 45, CAUSE_ILLEGAL, csrr a0, sstatus
        TRAP_IN_U 46, CAUSE_ILLEGAL, csrw sscratch, a0
        TRAP_IN_U 47, CAUSE_ILLEGAL, mret
        TRAP_IN_U 48, CAUSE_ILLEGAL, sret
        TRAP_IN_U 49, CAUSE_ILLEGAL, sfence.vma
        TRAP_IN_S 50, CAUSE_ILLEGAL, csrr a0, mcause
        li      t6, 0x34202573          /* mtval = the instruction bits */
        CHECKR  T_TVAL, t6
        OK_IN_S 51, csrr a0, sstatus
        OK_IN_S 52, csrw sscratch, a0
        OK_IN_S 53, csrr a0, satp
        OK_IN_S 54, sfence.vma

        /* ---- misaligned loads and stores complete in hardware */
        la      a1, mis_page            /* page-aligned, the next page follows */
        li      a2, 0x1122334455667788
        sd      a2, 0(a1)
        li      a2, 0x99aabbccddeeff00
        sd      a2, 8(a1)
        CASE 60
        ld      a0, 1(a1)
        CHECK   a0, 0x0011223344556677
        CASE 61
        lw      a0, 3(a1)
        CHECK   a0, 0x22334455
        CASE 62
        lwu     a0, 6(a1)
        CHECK   a0, 0xff001122
        CASE 63
        lh      a0, 7(a1)
        CHECK   a0, 0x11
        CASE 64
        lhu     a0, 5(a1)
        CHECK   a0, 0x2233
        CASE 65
        lh      a0, 9(a1)
        CHECK   a0, 0xffffffffffffeeff
        CASE 66
        li      a2, 0xa1a2a3a4a5a6a7a8
        sd      a2, 3(a1)
        ld      a0, 0(a1)
        CHECK   a0, 0xa4a5a6a7a8667788
        ld      a0, 8(a1)
        CHECK   a0, 0x99aabbccdda1a2a3
        CASE 67
        li      a2, 0x12345678
        sw      a2, 1(a1)
        sh      a2, 13(a1)
        ld      a0, 0(a1)
        CHECK   a0, 0xa4a5a61234567888
        ld      a0, 8(a1)
        CHECK   a0, 0x995678ccdda1a2a3
        li      a3, 4096                /* across the page boundary */
        add     a1, a1, a3
        CASE 68
        li      a2, 0x0102030405060708
        sd      a2, -3(a1)
        ld      a0, -3(a1)
        CHECKR  a0, a2
        lbu     a0, -3(a1)
        CHECK   a0, 0x08
        lbu     a0, 4(a1)
        CHECK   a0, 0x01
        lwu     a0, -2(a1)
        CHECK   a0, 0x04050607
        CASE 69
        li      a2, 0xcafe
        sh      a2, -1(a1)
        lhu     a0, -1(a1)
        CHECK   a0, 0xcafe
        lbu     a0, 0(a1)
        CHECK   a0, 0xca
        lw      a0, -4(a1)
        CHECK   a0, 0xfffffffffe070800

        /* ---- sstatus is a restricted view of mstatus */
        CASE 70
        li      a0, MSTATUS_SUM
        csrs    sstatus, a0
        csrr    a1, mstatus
        and     a1, a1, a0
        CHECKR  a1, a0
        csrc    mstatus, a0
        csrr    a1, sstatus
        and     a1, a1, a0
        CHECK   a1, 0
        CASE 71                         /* M-only fields are invisible in sstatus */
        li      a0, MSTATUS_MPP | MSTATUS_MPIE | MSTATUS_TSR | MSTATUS_TW | MSTATUS_TVM | MSTATUS_MPRV
        csrr    a1, sstatus
        and     a1, a1, a0
        CHECK   a1, 0
        csrs    sstatus, a0             /* and not writable through it */
        csrr    a1, mstatus
        li      a2, MSTATUS_TSR | MSTATUS_TW | MSTATUS_TVM | MSTATUS_MPRV
        and     a1, a1, a2
        CHECK   a1, 0
        CASE 72                         /* sstatus.UXL reads 2 (64-bit U-mode) */
        csrr    a1, sstatus
        srli    a1, a1, 32
        andi    a1, a1, 3
        CHECK   a1, 2

        /* ---- MRET / SRET transitions */
        CASE 80                         /* MRET to M: MIE := MPIE, MPIE := 1, MPP := U */
        li      a0, MSTATUS_MPP | MSTATUS_MPIE
        csrs    mstatus, a0
        la      a0, 1f
        csrw    mepc, a0
        mret
        .balign 4
1:      csrr    a0, mstatus
        li      a1, MSTATUS_MPP | MSTATUS_MPIE | MSTATUS_MIE
        and     a0, a0, a1
        CHECK   a0, MSTATUS_MPIE | MSTATUS_MIE
        csrci   mstatus, MSTATUS_MIE
        CASE 81                         /* MRET with MPIE = 0 to S; ECALL records MPIE = MIE = 0 */
        li      a0, MSTATUS_MPIE
        csrc    mstatus, a0
        ENTER_S
        TO_M
        CHECK   T_CAUSE, CAUSE_ECALL_S
        li      a1, MSTATUS_MPP | MSTATUS_MPIE
        and     a0, T_STATUS, a1
        CHECK   a0, MSTATUS_MPP_S
        CASE 82                         /* MRET with MPIE = 1: in S, MIE = 1, so the ECALL saves MPIE = 1 */
        li      a0, MSTATUS_MPIE
        csrs    mstatus, a0
        li      a0, MSTATUS_MPP
        csrc    mstatus, a0
        li      a0, MSTATUS_MPP_S
        csrs    mstatus, a0
        la      a0, 1f
        csrw    mepc, a0
        mret
        .balign 4
1:      TO_M
        li      a1, MSTATUS_MPP | MSTATUS_MPIE | MSTATUS_MIE
        and     a0, T_STATUS, a1
        CHECK   a0, MSTATUS_MPP_S | MSTATUS_MPIE
        csrci   mstatus, MSTATUS_MIE
        CASE 83                         /* SRET in S: SIE := SPIE, SPIE := 1, SPP := U */
        ENTER_S
        li      a0, MSTATUS_SPP | MSTATUS_SPIE
        csrs    sstatus, a0
        la      a0, 1f
        csrw    sepc, a0
        sret
        .balign 4
1:      csrr    a0, sstatus
        TO_M
        CHECK   T_CAUSE, CAUSE_ECALL_S  /* still in S */
        li      a1, MSTATUS_SPP | MSTATUS_SPIE | MSTATUS_SIE
        and     a0, a0, a1
        CHECK   a0, MSTATUS_SPIE | MSTATUS_SIE
        csrci   sstatus, MSTATUS_SIE
        CASE 84                         /* SRET from S with SPP = 0 lands in U */
        ENTER_S
        li      a0, MSTATUS_SPP
        csrc    sstatus, a0
        la      a0, 1f
        csrw    sepc, a0
        sret
        .balign 4
1:      TO_M
        CHECK   T_CAUSE, CAUSE_ECALL_U
        CASE 85                         /* MRET with MPP = U lands in U */
        ENTER_U
        TO_M
        CHECK   T_CAUSE, CAUSE_ECALL_U

        /* ---- TSR / TW / TVM */
        li      a0, MSTATUS_TSR
        csrs    mstatus, a0
        TRAP_IN_S 90, CAUSE_ILLEGAL, sret
        li      a0, MSTATUS_TSR
        csrc    mstatus, a0
        li      a0, MSTATUS_TW
        csrs    mstatus, a0
        TRAP_IN_S 91, CAUSE_ILLEGAL, wfi
        li      t6, 0x10500073
        CHECKR  T_TVAL, t6
        li      a0, MSTATUS_TW
        csrc    mstatus, a0
        TRAP_IN_U 92, CAUSE_ILLEGAL, wfi  /* U-mode WFI with S present: illegal (as QEMU) */
        li      a0, MSTATUS_TVM
        csrs    mstatus, a0
        TRAP_IN_S 93, CAUSE_ILLEGAL, csrr a0, satp
        TRAP_IN_S 94, CAUSE_ILLEGAL, csrw satp, zero
        TRAP_IN_S 95, CAUSE_ILLEGAL, sfence.vma
        CASE 96                         /* TVM does not affect M */
        csrr    a0, satp
        sfence.vma
        li      a0, MSTATUS_TVM
        csrc    mstatus, a0
        OK_IN_S 97, csrw satp, zero

        /* ---- counters */
        CASE 100
        /* QEMU's spike machine has no time CSR (its CLINT does not provide rdtime, firmware
         * emulates it), so probe: s7 = 1 if rdtime works in M. The time cases run only then. */
        li      s7, 1
        la      RESUME, 1f
        rdtime  a1
        li      RESUME, 0
        j       2f
        .balign 4
1:      li      s7, 0
        CHECK   T_CAUSE, CAUSE_ILLEGAL
2:      rdcycle a0
        rdinstret a2
        nop
        nop
        rdinstret a3
        bgeu    a2, a3, fail            /* instret advanced */
        csrr    a0, mcycle
        csrr    a0, minstret
        beqz    s7, 1f
        CASE 99                         /* time is CLINT mtime: mtime <= time <= mtime later */
        li      a5, CLINT_MTIME
        ld      a1, 0(a5)
        rdtime  a2
        ld      a3, 0(a5)
        bltu    a2, a1, fail
        bltu    a3, a2, fail
1:
        CASE 101                        /* minstret is writable in M */
        li      a0, 1000000
        csrw    minstret, a0
        csrr    a1, minstret
        bltu    a1, a0, fail
        csrw    mcounteren, zero
        csrw    scounteren, zero
        TRAP_IN_S 102, CAUSE_ILLEGAL, rdcycle a0
        TRAP_IN_S 103, CAUSE_ILLEGAL, rdtime a0
        TRAP_IN_S 104, CAUSE_ILLEGAL, rdinstret a0
        TRAP_IN_S 105, CAUSE_ILLEGAL, csrr a0, mcycle
        csrwi   mcounteren, 1           /* CY only */
        OK_IN_S 106, rdcycle a0
        TRAP_IN_S 107, CAUSE_ILLEGAL, rdinstret a0
        TRAP_IN_U 108, CAUSE_ILLEGAL, rdcycle a0  /* scounteren = 0 */
        csrwi   mcounteren, 7
        beqz    s7, 1f
        OK_IN_S 109, rdtime a0
1:
        OK_IN_S 110, rdinstret a0
        csrwi   scounteren, 5           /* CY, IR for U */
        OK_IN_U 111, rdcycle a0
        OK_IN_U 112, rdinstret a0
        TRAP_IN_U 113, CAUSE_ILLEGAL, rdtime a0
        CASE 114
        csrwi   scounteren, 7
        csrr    a0, scounteren
        CHECK   a0, 7
        csrr    a0, mcounteren
        CHECK   a0, 7
        beqz    s7, 1f
        OK_IN_U 115, rdtime a0
1:
        csrwi   mcounteren, 5           /* mcounteren gates U too, whatever scounteren says */
        TRAP_IN_U 116, CAUSE_ILLEGAL, rdtime a0

        /* ---- mtvec: direct and vectored */
        CASE 120
        la      a0, vec_table
        ori     a0, a0, 1
        csrw    mtvec, a0
        csrr    a1, mtvec
        CHECKR  a1, a0                  /* vectored mode supported */
        ori     a2, a0, 2               /* mode 3: reserved, the write is ignored (WARL) */
        csrw    mtvec, a2
        csrr    a1, mtvec
        CHECKR  a1, a0
        CASE 121                        /* exceptions go to base */
        li      a6, -1
        TEST_TRAP 121, CAUSE_ECALL_M, ecall
        CHECK   a6, 0
        CASE 122                        /* interrupts go to base + 4 * cause: MSI -> slot 3 */
        li      a6, -1
        li      a0, 1 << IRQ_M_SOFT
        csrw    mie, a0
        li      a1, CLINT_MSIP
        la      RESUME, 1f
        li      a0, 1
        sw      a0, 0(a1)
        csrsi   mstatus, MSTATUS_MIE
2:      j       2b
        .balign 4
1:      sw      zero, 0(a1)
        csrw    mie, zero
        CHECK   a6, 3
        CHECK   T_CAUSE, INTERRUPT_BIT | IRQ_M_SOFT
        CASE 123                        /* back to direct mode */
        la      a0, trap_m
        csrw    mtvec, a0
        li      a6, -1
        TEST_TRAP 123, CAUSE_ECALL_M, ecall
        CHECK   a6, -1

        /* ---- medeleg: exceptions delegated to S */
        SET_STVEC
        li      a0, (1 << CAUSE_ECALL_U) | (1 << CAUSE_ILLEGAL) | (1 << CAUSE_BREAKPOINT)
        csrw    medeleg, a0
        csrw    mcause, zero
        CASE 130                        /* ECALL from U goes to S */
        ENTER_S
        li      a0, MSTATUS_SPP
        csrc    sstatus, a0
        li      a0, MSTATUS_SPIE
        csrs    sstatus, a0
        la      a0, 1f
        csrw    sepc, a0
        sret                            /* to U with SIE = 1 */
        .balign 4
1:      la      RESUME, 2f
3:      ecall
        j       fail
        .balign 4
2:      CHECK   T_CAUSE, CAUSE_ECALL_U  /* seen by the S handler, resumed in S */
        la      t6, 3b
        CHECKR  T_EPC, t6
        CHECK   T_TVAL, 0
        li      t6, MSTATUS_SPP | MSTATUS_SPIE | MSTATUS_SIE
        and     a0, T_STATUS, t6
        CHECK   a0, MSTATUS_SPIE        /* SPP = U, SPIE = old SIE = 1, SIE cleared */
        CASE 131                        /* illegal instruction in S goes to S, stval = bits */
        la      RESUME, 2f
3:      .word   0x0000201b
        j       fail
        .balign 4
2:      CHECK   T_CAUSE, CAUSE_ILLEGAL
        CHECK   T_TVAL, 0x0000201b
        la      t6, 3b
        CHECKR  T_EPC, t6
        li      t6, MSTATUS_SPP
        and     a0, T_STATUS, t6
        CHECK   a0, MSTATUS_SPP         /* from S */
        CASE 132                        /* EBREAK in S goes to S */
        la      RESUME, 2f
3:      ebreak
        j       fail
        .balign 4
2:      CHECK   T_CAUSE, CAUSE_BREAKPOINT
        CASE 133                        /* ECALL from S is not delegated: M */
        TO_M
        CHECK   T_CAUSE, CAUSE_ECALL_S
        csrr    a0, mcause
        CHECK   a0, CAUSE_ECALL_S
        CASE 134                        /* delegation never applies to traps taken in M */
        TEST_TRAP 134, CAUSE_ILLEGAL, .word 0x0000201b
        csrr    a0, scause
        CHECK   a0, CAUSE_BREAKPOINT    /* unchanged */
        /* (medeleg[11], ECALL from M, "should" be read-only zero; QEMU 7.2 keeps it writable) */
        csrw    medeleg, zero

        /* ---- a counter write counts from the next instruction (priv spec 3.1.11: the
         * writing instruction does not increment it) */
        CASE 140
        csrwi   minstret, 0
        csrr    a0, minstret
        CHECK   a0, 0
        CASE 141
        li      a1, 1000
        csrw    minstret, a1
        nop
        csrr    a0, minstret
        CHECK   a0, 1001
        CASE 142
        csrwi   mcycle, 0
        csrr    a0, mcycle
        CHECK   a0, 0

        /* ---- debug triggers (Sdtrig): tselect, tdata1/2/3, tinfo, WARL */
        CASE 143                        /* two triggers: 0 and 1 stick, 2 leaves tselect alone */
        csrwi   tselect, 1
        csrr    a0, tselect
        CHECK   a0, 1
        csrwi   tselect, 2
        csrr    a0, tselect
        CHECK   a0, 1
        csrwi   tselect, 0
        CASE 144                        /* tinfo: mcontrol (2) and disabled (15), version 1 */
        csrr    a0, tinfo
        CHECK   a0, 0x01008004
        CASE 145                        /* reset: an mcontrol that matches nothing */
        csrr    a0, tdata1
        CHECK   a0, 0x2000000000000000
        CASE 146                        /* mcontrol keeps m/s/u, execute/store/load, match */
        li      a1, 0x2000000000000000 | (2 << 7) | 0x5f
        csrw    tdata1, a1
        csrr    a0, tdata1
        CHECKR  a0, a1
        CASE 147                        /* dmode, maskmax, hit, select, timing, sizelo, action, chain read 0 */
        li      a1, 0x2fe0000000000000 | (1 << 20) | (1 << 19) | (1 << 18) | (3 << 16) | (1 << 12) | (1 << 11) | 0x48
        csrw    tdata1, a1
        csrr    a0, tdata1
        CHECK   a0, 0x2000000000000048
        CASE 148                        /* match NAPOT (1) is not supported: equal (0) */
        li      a1, 0x2000000000000000 | (1 << 7) | 0x41
        csrw    tdata1, a1
        csrr    a0, tdata1
        CHECK   a0, 0x2000000000000041
        CASE 149                        /* an unsupported type: disabled (15) */
        li      a1, 0x6000000000000044
        csrw    tdata1, a1
        csrr    a0, tdata1
        CHECK   a0, 0xf000000000000000
        CASE 150                        /* tdata2 holds an address, tdata3 reads zero; per trigger */
        li      a1, 0x123456789abcdef0
        csrw    tdata2, a1
        csrr    a0, tdata2
        CHECKR  a0, a1
        csrw    tdata3, a1
        csrr    a0, tdata3
        CHECK   a0, 0
        csrwi   tselect, 1
        csrr    a0, tdata2
        CHECK   a0, 0
        csrw    tdata1, zero            /* leave both disabled */
        csrwi   tselect, 0
        csrw    tdata1, zero
        TEST_END

        .text
        .balign 256
vec_table:                              /* mtvec vectored: slot n at base + 4n */
        j       vec0
        j       vec1
        j       vec2
        j       vec3
        j       vec4
        j       vec5
        j       vec6
        j       vec7
        j       vec8
        j       vec9
        j       vec10
        j       vec11
        .irp    k, 0,1,2,3,4,5,6,7,8,9,10,11
vec\k:  li      a6, \k
        j       trap_m
        .endr

        .data
        .balign 4096
mis_page: .skip 8192
