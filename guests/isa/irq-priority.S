/* irq-priority.S: the privileged spec's order for simultaneous interrupts taken in M
 * (3.1.9: MEI > MSI > MTI > SEI > SSI > STI; MEI needs an interrupt controller and is left out).
 * All five other sources are made pending at once, none delegated; each interrupt taken must be
 * the highest-priority one still pending.
 * Known QEMU 7.2 deviation: without AIA it takes the lowest-numbered pending interrupt
 * (SSI first), so this program FAILS under QEMU 7.2 (at case 1); run-qemu.sh reports it as an
 * expected failure. rvm follows the spec. */
#include "test.h"

.macro TAKE n, irq
        CASE    \n
        la      RESUME, 8f
        csrsi   mstatus, MSTATUS_MIE
7:      j       7b
        .balign 4
8:      CHECK   T_CAUSE, INTERRUPT_BIT | \irq
.endm

        TEST_BEGIN
        li      t0, CLINT_MTIMECMP      /* nothing pending yet */
        li      t1, -1
        sd      t1, 0(t0)
        li      a0, (1 << IRQ_M_SOFT) | (1 << IRQ_M_TIMER) | (1 << IRQ_S_EXT) | (1 << IRQ_S_SOFT) | (1 << IRQ_S_TIMER)
        csrw    mie, a0
        li      a0, (1 << IRQ_S_EXT) | (1 << IRQ_S_SOFT) | (1 << IRQ_S_TIMER)
        csrs    mip, a0
        li      t0, CLINT_MSIP
        li      t1, 1
        sw      t1, 0(t0)
        li      t0, CLINT_MTIMECMP
        sd      zero, 0(t0)
1:      csrr    a1, mip
        andi    a1, a1, (1 << IRQ_M_SOFT) | (1 << IRQ_M_TIMER)
        li      t6, (1 << IRQ_M_SOFT) | (1 << IRQ_M_TIMER)
        bne     a1, t6, 1b
        TAKE    1, IRQ_M_SOFT
        li      t0, CLINT_MSIP
        sw      zero, 0(t0)
        TAKE    2, IRQ_M_TIMER
        li      t0, CLINT_MTIMECMP
        li      t1, -1
        sd      t1, 0(t0)
        TAKE    3, IRQ_S_EXT
        li      a0, 1 << IRQ_S_EXT
        csrc    mip, a0
        TAKE    4, IRQ_S_SOFT
        csrci   mip, 1 << IRQ_S_SOFT
        TAKE    5, IRQ_S_TIMER
        li      a0, 1 << IRQ_S_TIMER
        csrc    mip, a0
        CASE 6
        csrw    mie, zero
        TEST_END
