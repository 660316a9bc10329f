/* test.h: shared scaffolding for the rvm bare-metal ISA tests.
 *
 * Conventions (see README.md):
 *  - entry _start in M-mode at 0x8000_0000, nothing set up;
 *  - HTIF: the test ends by storing (code << 1) | 1 to `tohost`; code 0 = PASS, N = case N failed;
 *  - register roles, reserved in every test body:
 *      gp  (x3)  TESTNUM  number of the case being run (the failure code);
 *      tp  (x4)  RESUME   where a trap handler resumes; 0 = no trap expected (then a trap fails);
 *      s8  (x24) T_STATUS mstatus/sstatus as it was when the last trap was taken;
 *      s9  (x25) T_CAUSE  mcause/scause of the last trap;
 *      s10 (x26) T_EPC    mepc/sepc of the last trap;
 *      s11 (x27) T_TVAL   mtval/stval of the last trap;
 *      t6  (x31)          scratch of the check macros.
 *  - the M-mode handler resumes at RESUME in M-mode with interrupts left disabled
 *    (it sets MPP=M and clears MPIE), and clears RESUME. The S-mode handler resumes at RESUME in
 *    S-mode with SPIE cleared. To return to M from S or U: `TO_M` (an ECALL the M handler catches).
 */
#ifndef RVM_TEST_H
#define RVM_TEST_H

#define TESTNUM  gp
#define RESUME   tp
#define T_STATUS s8
#define T_CAUSE  s9
#define T_EPC    s10
#define T_TVAL   s11

/* mstatus bits (privileged spec, 3.1.6) */
#define MSTATUS_SIE   (1 << 1)
#define MSTATUS_MIE   (1 << 3)
#define MSTATUS_SPIE  (1 << 5)
#define MSTATUS_MPIE  (1 << 7)
#define MSTATUS_SPP   (1 << 8)
#define MSTATUS_MPP   (3 << 11)
#define MSTATUS_MPP_S (1 << 11)
#define MSTATUS_FS    (3 << 13)
#define MSTATUS_MPRV  (1 << 17)
#define MSTATUS_SUM   (1 << 18)
#define MSTATUS_MXR   (1 << 19)
#define MSTATUS_TVM   (1 << 20)
#define MSTATUS_TW    (1 << 21)
#define MSTATUS_TSR   (1 << 22)

/* exception causes (3.1.15) */
#define CAUSE_MISALIGNED_FETCH 0
#define CAUSE_FETCH_ACCESS     1
#define CAUSE_ILLEGAL          2
#define CAUSE_BREAKPOINT       3
#define CAUSE_MISALIGNED_LOAD  4
#define CAUSE_LOAD_ACCESS      5
#define CAUSE_MISALIGNED_STORE 6
#define CAUSE_STORE_ACCESS     7
#define CAUSE_ECALL_U          8
#define CAUSE_ECALL_S          9
#define CAUSE_ECALL_M          11
#define CAUSE_FETCH_PAGE       12
#define CAUSE_LOAD_PAGE        13
#define CAUSE_STORE_PAGE       15
#define INTERRUPT_BIT          (1 << 63)

/* interrupt numbers */
#define IRQ_S_SOFT  1
#define IRQ_M_SOFT  3
#define IRQ_S_TIMER 5
#define IRQ_M_TIMER 7
#define IRQ_S_EXT   9
#define IRQ_M_EXT   11

/* CLINT (as on QEMU's virt and spike machines) */
#define CLINT_MSIP     0x02000000
#define CLINT_MTIMECMP 0x02004000
#define CLINT_MTIME    0x0200BFF8

/* CSR numbers the old binutils may not name */
#define CSR_MENVCFG  0x30a
#define CSR_STIMECMP 0x14d

/* ---------------------------------------------------------------- start and finish */

/* Start of every test: trap vector, PMP open for S/U, everything else in a known state. */
.macro TEST_BEGIN
        .option norvc           /* 32-bit encodings unless a test says otherwise */
        .section .text.init, "ax", @progbits
        .globl _start
_start:
        /* PMP: one NAPOT entry over the whole address space with RWX, so S and U may touch memory
         * (with no matching entry, S/U accesses would fail). Skip it if PMP is not implemented. */
        la      t0, 1f
        csrw    mtvec, t0
        li      t0, -1
        csrw    pmpaddr0, t0
        li      t0, 0x1f
        csrw    pmpcfg0, t0
        .balign 4
1:
        la      t0, trap_m
        csrw    mtvec, t0
        csrw    medeleg, zero
        csrw    mideleg, zero
        csrw    mie, zero
        csrw    satp, zero
        li      t0, MSTATUS_MPP
        csrs    mstatus, t0
        li      TESTNUM, 0
        li      RESUME, 0
        li      T_STATUS, 0
        li      T_CAUSE, 0
        li      T_EPC, 0
        li      T_TVAL, 0
        j       test_main

        .text
/* M-mode trap handler: record, then resume at RESUME in M-mode (or fail if no trap expected). */
        .balign 4
        .globl trap_m
trap_m:
        csrr    T_STATUS, mstatus
        csrr    T_CAUSE, mcause
        csrr    T_EPC, mepc
        csrr    T_TVAL, mtval
        beqz    RESUME, fail
        csrw    mepc, RESUME
        li      RESUME, 0
        csrw    mscratch, t0
        li      t0, MSTATUS_MPP
        csrs    mstatus, t0
        li      t0, MSTATUS_MPIE
        csrc    mstatus, t0
        csrr    t0, mscratch
        mret

/* S-mode trap handler (install with SET_STVEC): record, resume at RESUME in S-mode. */
        .balign 4
        .globl trap_s
trap_s:
        csrr    T_STATUS, sstatus
        csrr    T_CAUSE, scause
        csrr    T_EPC, sepc
        csrr    T_TVAL, stval
        beqz    RESUME, fail
        csrw    sepc, RESUME
        li      RESUME, 0
        csrw    sscratch, t0
        li      t0, MSTATUS_SPP
        csrs    sstatus, t0
        li      t0, MSTATUS_SPIE
        csrc    sstatus, t0
        csrr    t0, sscratch
        sret

        .globl pass
pass:
        fence
        li      t0, 1
        la      t1, tohost
        sd      t0, 0(t1)
#ifdef FINISHER
        li      t0, 0x5555      /* QEMU's virt has no HTIF: the SiFive test device's PASS */
        li      t1, FINISHER
        sw      t0, 0(t1)
#endif
1:      j       1b

        .globl fail
fail:
        fence
        bnez    TESTNUM, 2f
        li      TESTNUM, 1000   /* a failure before any case: report something non-zero */
2:      slli    TESTNUM, TESTNUM, 1
        ori     TESTNUM, TESTNUM, 1
        la      t1, tohost
        sd      TESTNUM, 0(t1)
#ifdef FINISHER
        srli    TESTNUM, TESTNUM, 1     /* the SiFive test device's FAIL, code = the case */
        slli    TESTNUM, TESTNUM, 16
        li      t0, 0x3333
        or      TESTNUM, TESTNUM, t0
        li      t1, FINISHER
        sw      TESTNUM, 0(t1)
#endif
1:      j       1b

        .globl test_main
test_main:
.endm

.macro TEST_END
        j       pass

        .section .tohost, "aw", @progbits
        .balign 64
        .globl tohost
tohost: .dword 0
        .size tohost, 8
        .balign 64
        .globl fromhost
fromhost: .dword 0
        .size fromhost, 8
        .text
.endm

/* ---------------------------------------------------------------- checks */

/* Start case n. */
.macro CASE n
        li      TESTNUM, \n
.endm

/* Fail the current case unless reg == value. */
.macro CHECK reg, value
        li      t6, \value
        bne     \reg, t6, fail
.endm

/* Fail unless reg == other register. */
.macro CHECKR reg, other
        bne     \reg, \other, fail
.endm

/* Register-register op: rd = a0, operands a1, a2. */
.macro TEST_RR n, inst, expect, v1, v2
        CASE    \n
        li      a1, \v1
        li      a2, \v2
        \inst   a0, a1, a2
        CHECK   a0, \expect
.endm

/* Register-immediate op. */
.macro TEST_RI n, inst, expect, v1, imm
        CASE    \n
        li      a1, \v1
        \inst   a0, a1, \imm
        CHECK   a0, \expect
.endm

/* Single-operand register op (e.g. sext.w is addiw rd, rs, 0). */
.macro TEST_R n, inst, expect, v1
        CASE    \n
        li      a1, \v1
        \inst   a0, a1
        CHECK   a0, \expect
.endm

/* ---------------------------------------------------------------- traps */

/* Expect the code between EXPECT_TRAP and TRAP_HERE to trap; the handler resumes at TRAP_HERE.
 * If it does not trap, the case fails. */
.macro EXPECT_TRAP
        la      RESUME, 8f
.endm
.macro TRAP_HERE
        j       fail
        .balign 4
8:
.endm

/* Check the recorded trap cause (and tval). */
.macro CHECK_CAUSE cause
        CHECK   T_CAUSE, \cause
.endm
.macro CHECK_TVAL value
        CHECK   T_TVAL, \value
.endm

/* One instruction that must raise `cause`; checks mepc too. */
.macro TEST_TRAP n, cause, inst:vararg
        CASE    \n
        la      RESUME, 8f
7:      \inst
        j       fail
        .balign 4
8:      CHECK   T_CAUSE, \cause
        la      t6, 7b
        bne     T_EPC, t6, fail
.endm

/* ---------------------------------------------------------------- privilege changes */

/* From M: continue at `label` in S-mode (or U-mode) with MPIE cleared. Clobbers t0. */
.macro GOTO_S label
        li      t0, MSTATUS_MPP
        csrc    mstatus, t0
        li      t0, MSTATUS_MPP_S
        csrs    mstatus, t0
        la      t0, \label
        csrw    mepc, t0
        mret
.endm
.macro GOTO_U label
        li      t0, MSTATUS_MPP
        csrc    mstatus, t0
        la      t0, \label
        csrw    mepc, t0
        mret
.endm
/* Continue in S/U at the next instruction. */
.macro ENTER_S
        GOTO_S  9f
9:
.endm
.macro ENTER_U
        GOTO_U  9f
9:
.endm
/* From S or U (with the M handler installed and ECALL not delegated): back to M here. */
.macro TO_M
        la      RESUME, 9f
        ecall
        .balign 4
9:
.endm

.macro SET_STVEC
        la      t0, trap_s
        csrw    stvec, t0
.endm

#endif
