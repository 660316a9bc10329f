/* smp-plic.S: the PLIC's contexts on a 4-hart virt board (run with -smp 4), numbered as on QEMU
 * virt: context 2h is hart h's M-mode external interrupt (mip.MEIP), 2h + 1 its S-mode one
 * (mip.SEIP). In turn, each hart enables the UART's source (10) in one of its contexts only,
 * makes the UART raise it (THR empty interrupt), sees the matching mip bit, finds nothing to
 * claim in its other context and in the next hart's, claims the source in its own context,
 * completes it. Case 10 * h + 1 is hart h's M context, 10 * h + 2 its S context. Case 90: a
 * CSRRS/CSRRC of mip while the PLIC holds SEIP high leaves no SEIP behind once the line drops. */
#include "smp.h"
#include "test.h"

#define PLIC            0x0c000000
#define PLIC_ENABLE     (PLIC + 0x2000)         /* + 0x80 * context */
#define PLIC_THRESHOLD  (PLIC + 0x200000)       /* + 0x1000 * context */
#define PLIC_CLAIM      (PLIC + 0x200004)       /* + 0x1000 * context */
#define UART            0x10000000
#define UART_IRQ        10

        TEST_BEGIN
        csrr    s0, mhartid
        li      t0, PLIC + 4 * UART_IRQ /* priority 1 (every hart writes the same) */
        li      t1, 1
        sw      t1, 0(t0)
        li      s1, 0                   /* whose turn */
turn:   BARRIER_N s1
        bne     s1, s0, 2f
        li      TESTNUM, 10
        mul     TESTNUM, TESTNUM, s0
        addi    TESTNUM, TESTNUM, 1
        slli    a0, s0, 1               /* M context 2h, mip bit 11 */
        addi    a1, a0, 1               /* its other context */
        li      a2, 1 << IRQ_M_EXT
        call    route
        addi    TESTNUM, TESTNUM, 1
        slli    a0, s0, 1               /* S context 2h + 1, mip bit 9 */
        addi    a0, a0, 1
        addi    a1, a0, -1
        li      a2, 1 << IRQ_S_EXT
        call    route
2:      addi    s1, s1, 1
        li      t0, NHARTS
        blt     s1, t0, turn
        BARRIER_N s1
        bnez    s0, 3f

        /* Hart 0: CSRRS/CSRRC of mip while the PLIC holds SEIP high must not latch SEIP (only
         * the software-writable bit takes part in the read-modify-write, priv spec 3.1.9). */
        CASE 90
        li      t0, PLIC_THRESHOLD + 0x1000     /* context 1: hart 0, S-mode */
        sw      zero, 0(t0)
        li      t0, PLIC_ENABLE + 0x80
        li      t1, 1 << UART_IRQ
        sw      t1, 0(t0)
        li      t0, 1 << IRQ_S_EXT
        csrw    mie, t0
        li      t0, UART
        sb      zero, 1(t0)
        li      t1, 2
        sb      t1, 1(t0)
1:      wfi
        csrr    t1, mip
        andi    t1, t1, 1 << IRQ_S_EXT
        beqz    t1, 1b
        li      t0, 1 << IRQ_S_SOFT     /* set and clear SSIP by read-modify-write */
        csrs    mip, t0
        csrc    mip, t0
        li      t0, PLIC_CLAIM + 0x1000 /* claim: the line drops */
        lw      t3, 0(t0)
        li      t1, UART_IRQ
        bne     t3, t1, fail
        li      t1, UART
        sb      zero, 1(t1)
        sw      t3, 0(t0)
        li      t0, PLIC_ENABLE + 0x80
        sw      zero, 0(t0)
        csrw    mie, zero
        csrr    t1, mip                 /* nothing left pending */
        andi    t1, t1, (1 << IRQ_S_EXT) | (1 << IRQ_S_SOFT)
        bnez    t1, fail
        TEST_END
3:      wfi
        j       3b

/* route(a0 = context, a1 = another context of this hart, a2 = the mip bit of a0). */
route:
        li      t0, PLIC_THRESHOLD      /* threshold 0, source enabled in this context only */
        slli    t1, a0, 12
        add     t0, t0, t1
        sw      zero, 0(t0)
        li      t0, PLIC_ENABLE
        slli    t1, a0, 7
        add     t0, t0, t1
        li      t1, 1 << UART_IRQ
        sw      t1, 0(t0)
        csrw    mie, a2                 /* WFI wakes on it; mstatus.MIE = 0: no trap */
        li      t0, UART                /* IER: THR empty interrupt -> source 10 */
        sb      zero, 1(t0)
        li      t1, 2
        sb      t1, 1(t0)
1:      wfi
        csrr    t1, mip
        and     t1, t1, a2
        beqz    t1, 1b
        li      t0, PLIC_CLAIM          /* nothing for the other context */
        slli    t1, a1, 12
        add     t0, t0, t1
        lw      t1, 0(t0)
        bnez    t1, fail
        addi    t2, s0, 1               /* nor for the next hart's M context */
        li      t3, NHARTS
        remu    t2, t2, t3
        slli    t2, t2, 1
        li      t0, PLIC_CLAIM
        slli    t1, t2, 12
        add     t0, t0, t1
        lw      t1, 0(t0)
        bnez    t1, fail
        li      t0, PLIC_CLAIM          /* our context claims source 10 */
        slli    t1, a0, 12
        add     t0, t0, t1
        lw      t3, 0(t0)
        li      t1, UART_IRQ
        bne     t3, t1, fail
        csrr    t1, mip                 /* claimed: the line is down */
        and     t1, t1, a2
        bnez    t1, fail
        li      t1, UART                /* quiet the UART, complete, disable */
        sb      zero, 1(t1)
        sw      t3, 0(t0)
        li      t0, PLIC_ENABLE
        slli    t1, a0, 7
        add     t0, t0, t1
        sw      zero, 0(t0)
        csrw    mie, zero
        ret

        SMP_DATA
