/* smp.h: scaffolding for the multi-hart tests (smp-*.S), on top of test.h.
 *
 * Every hart enters _start (as on QEMU: the reset code jumps to the ELF entry with a0 = mhartid)
 * and runs TEST_BEGIN's set-up; then hart 0 runs the cases and the others follow in `secondary`
 * code, in step with hart 0 through barriers. The tests are written for NHARTS harts
 * (run with -smp NHARTS). Any hart may fail the test (test.h's `fail`).
 *
 * The tests use the virt board's devices, so under QEMU they run on `-M virt`, which has no
 * HTIF: pass/fail also write the SiFive test device (FINISHER), after tohost (where rvm and QEMU's
 * spike machine stop). Include smp.h before test.h.
 *
 * BARRIER n: the n-th barrier (n = 1, 2, ...; each used once, in order, by every hart): an AMO
 * increments `smp_barrier`, then the hart spins until all NHARTS harts have reached barrier n. */
#ifndef RVM_SMP_H
#define RVM_SMP_H

#define NHARTS 4
#define FINISHER 0x100000

.macro BARRIER n
        la      t5, smp_barrier
        li      t6, 1
        amoadd.w zero, t6, (t5)
        li      t6, (\n) * NHARTS
1:      lw      t4, 0(t5)
        blt     t4, t6, 1b
.endm

/* BARRIER_N reg: barrier number reg + 1, for barriers in a loop. */
.macro BARRIER_N reg
        la      t5, smp_barrier
        li      t6, 1
        amoadd.w zero, t6, (t5)
        addi    t6, \reg, 1
        li      t4, NHARTS
        mul     t6, t6, t4
1:      lw      t4, 0(t5)
        blt     t4, t6, 1b
.endm

/* The shared data every smp test has. */
.macro SMP_DATA
        .data
        .balign 64
        .globl smp_barrier
smp_barrier: .word 0
        .balign 64
.endm

#endif
