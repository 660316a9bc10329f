/* smp-harts.S: several harts (run with -smp 4). mhartid 0..3, every hart starting at the ELF
 * entry; IPIs through the CLINT's msip (msip of hart h at +4h, writable by any hart, waking a
 * hart in WFI); per-hart mtimecmp (+0x4000 + 8h) and per-hart Sstc stimecmp; an AMO counter and
 * an LR/SC counter incremented by all harts at once; a store by another hart breaking an LR
 * reservation (the SC fails, memory keeps the other hart's value); FENCE.I after another hart
 * wrote code (the new code runs, also when rewritten). Hart 0 runs the cases, harts 1..3 follow
 * in step through barriers; any hart may fail. Cases run by a secondary hart h are numbered
 * 100 * h + n. */
#include "smp.h"
#include "test.h"

#define ROUNDS 500

        TEST_BEGIN
        csrr    s0, mhartid
        CASE 1                          /* mhartid is 0..NHARTS-1 */
        li      t0, NHARTS
        bgeu    s0, t0, fail
        la      t0, seen                /* each hart reports once */
        li      t1, 1
        sll     t1, t1, s0
        amoor.w zero, t1, (t0)
        BARRIER 1
        lw      t1, 0(t0)
        CHECK   t1, (1 << NHARTS) - 1
        bnez    s0, secondary

        /* ---------------------------------------------------- hart 0 */
        CASE 2                          /* IPI to each other hart through msip */
        li      s1, 1
1:      li      t0, CLINT_MSIP
        slli    t1, s1, 2
        add     t0, t0, t1
        li      t1, 1
        sw      t1, 0(t0)
        la      t0, ack
        slli    t1, s1, 2
        add     t0, t0, t1
2:      lw      t1, 0(t0)
        beqz    t1, 2b
        addi    s1, s1, 1
        li      t0, NHARTS
        blt     s1, t0, 1b
        csrr    t0, mip                 /* hart 0 got none */
        andi    t0, t0, 1 << IRQ_M_SOFT
        bnez    t0, fail
        BARRIER 2

        CASE 3                          /* per-hart mtimecmp: each hart's timer is its own */
        li      t0, CLINT_MTIMECMP      /* ours at "never" (QEMU's reset value is 0) */
        li      t1, -1
        sd      t1, 0(t0)
        BARRIER 3                       /* the others armed theirs */
        li      s1, 1
1:      li      t0, CLINT_MTIMECMP      /* hart s1's mtimecmp reads back what it wrote */
        slli    t1, s1, 3
        add     t0, t0, t1
        ld      t2, 0(t0)
        la      t0, armed
        add     t0, t0, t1
        ld      t3, 0(t0)
        bne     t2, t3, fail
        addi    s1, s1, 1
        li      t0, NHARTS
        blt     s1, t0, 1b
        csrr    t0, mip                 /* hart 0's timer did not fire */
        andi    t0, t0, 1 << IRQ_M_TIMER
        bnez    t0, fail
        BARRIER 4                       /* they saw their timers fire */

        CASE 4                          /* per-hart Sstc: only the arming hart sees STIP */
        BARRIER 5
        csrr    t0, mip
        andi    t0, t0, 1 << IRQ_S_TIMER
        bnez    t0, fail

        CASE 5                          /* an AMO counter and an LR/SC counter, all harts */
        call    count
        BARRIER 6
        la      t0, amo_count
        lw      t1, 0(t0)
        CHECK   t1, NHARTS * ROUNDS
        la      t0, lrsc_count
        lw      t1, 0(t0)
        CHECK   t1, NHARTS * ROUNDS

        CASE 6                          /* LR, then hart 1 stores, then SC: the SC must fail */
        la      a1, resv_word
        li      t0, 7
        sd      t0, 0(a1)
        lr.d    a0, (a1)
        CHECK   a0, 7
        la      t0, go                  /* tell hart 1 to store, wait until it did */
        li      t1, 1
        sw      t1, 0(t0)
1:      lw      t1, 0(t0)
        bnez    t1, 1b
        li      a2, 99
        sc.d    a3, a2, (a1)
        beqz    a3, fail
        ld      a0, 0(a1)
        CHECK   a0, 0x1234
        BARRIER 7

        CASE 8                          /* FENCE.I after hart 2 wrote code */
        BARRIER 8                       /* hart 2 wrote "li a0, 42; ret" */
        fence.i
        li      a0, 0
        la      t0, code
        jalr    t0
        CHECK   a0, 42
        BARRIER 9
        BARRIER 10                      /* hart 2 rewrote it: "li a0, 43; ret" */
        fence.i
        la      t0, code
        jalr    t0
        CHECK   a0, 43
        BARRIER 11
        TEST_END

        /* ---------------------------------------------------- harts 1..3 */
secondary:
        li      TESTNUM, 100
        mul     TESTNUM, TESTNUM, s0
        /* IPI: sleep until msip, with only MSIE enabled and mstatus.MIE clear (no trap). */
        addi    TESTNUM, TESTNUM, 2
        li      t0, 1 << IRQ_M_SOFT
        csrw    mie, t0
1:      wfi
        csrr    t0, mip
        andi    t0, t0, 1 << IRQ_M_SOFT
        beqz    t0, 1b
        li      t0, CLINT_MSIP          /* clear our own msip: the pending bit goes */
        slli    t1, s0, 2
        add     t0, t0, t1
        sw      zero, 0(t0)
        csrr    t0, mip
        andi    t0, t0, 1 << IRQ_M_SOFT
        bnez    t0, fail
        la      t0, ack
        slli    t1, s0, 2
        add     t0, t0, t1
        li      t1, 1
        sw      t1, 0(t0)
        BARRIER 2

        addi    TESTNUM, TESTNUM, 1     /* mtimecmp: arm ours a little ahead, wait for MTIP */
        li      t0, 1 << IRQ_M_TIMER
        csrw    mie, t0
        li      t0, CLINT_MTIME
        ld      t1, 0(t0)
        slli    t2, s0, 10
        add     t1, t1, t2
        addi    t1, t1, 500
        li      t0, CLINT_MTIMECMP
        slli    t2, s0, 3
        add     t0, t0, t2
        sd      t1, 0(t0)
        la      t0, armed
        add     t0, t0, t2
        sd      t1, 0(t0)
        BARRIER 3
1:      wfi
        csrr    t0, mip
        andi    t0, t0, 1 << IRQ_M_TIMER
        beqz    t0, 1b
        BARRIER 4                       /* (hart 0 read our mtimecmp before this) */
        li      t0, CLINT_MTIMECMP      /* disarm */
        slli    t2, s0, 3
        add     t0, t0, t2
        li      t1, -1
        sd      t1, 0(t0)
        csrw    mie, zero

        addi    TESTNUM, TESTNUM, 1     /* Sstc: our stimecmp fires our STIP only */
        li      t0, 1 << 63             /* menvcfg.STCE */
        csrs    CSR_MENVCFG, t0
        li      t0, 1 << IRQ_S_TIMER
        csrw    mie, t0
        csrr    t1, time
        addi    t1, t1, 300
        csrw    CSR_STIMECMP, t1
1:      wfi
        csrr    t0, mip
        andi    t0, t0, 1 << IRQ_S_TIMER
        beqz    t0, 1b
        li      t1, -1
        csrw    CSR_STIMECMP, t1
        csrr    t0, mip
        andi    t0, t0, 1 << IRQ_S_TIMER
        bnez    t0, fail
        csrw    mie, zero
        BARRIER 5

        addi    TESTNUM, TESTNUM, 1     /* counters */
        call    count
        BARRIER 6

        addi    TESTNUM, TESTNUM, 1     /* hart 1 stores to hart 0's reserved word */
        li      t0, 1
        bne     s0, t0, 2f
        la      t0, go
1:      lw      t1, 0(t0)
        beqz    t1, 1b
        la      a1, resv_word
        li      t1, 0x1234
        sd      t1, 0(a1)
        sw      zero, 0(t0)
2:      BARRIER 7

        addi    TESTNUM, TESTNUM, 1     /* hart 2 writes the code hart 0 runs */
        li      t0, 2
        bne     s0, t0, 2f
        la      t0, code
        li      t1, 0x02a00513          /* addi a0, zero, 42 */
        sw      t1, 0(t0)
        li      t1, 0x00008067          /* jalr zero, 0(ra) */
        sw      t1, 4(t0)
        fence   w, w
2:      BARRIER 8
        BARRIER 9
        li      t0, 2
        bne     s0, t0, 2f
        la      t0, code
        li      t1, 0x02b00513          /* addi a0, zero, 43 */
        sw      t1, 0(t0)
        fence   w, w
2:      BARRIER 10
        BARRIER 11
1:      wfi                             /* done: hart 0 ends the test */
        j       1b

/* ROUNDS increments of amo_count with AMOADD.W and of lrsc_count with an LR/SC loop. */
count:
        li      t2, ROUNDS
        la      t0, amo_count
        la      t1, lrsc_count
        li      t3, 1
1:      amoadd.w zero, t3, (t0)
2:      lr.w    t4, (t1)
        addi    t4, t4, 1
        sc.w    t5, t4, (t1)
        bnez    t5, 2b
        addi    t2, t2, -1
        bnez    t2, 1b
        ret

        SMP_DATA
seen:       .word 0
        .balign 64
ack:        .word 0, 0, 0, 0, 0, 0, 0, 0
        .balign 64
armed:      .dword 0, 0, 0, 0, 0, 0, 0, 0
        .balign 64
amo_count:  .word 0
        .balign 64
lrsc_count: .word 0
        .balign 64
go:         .word 0
        .balign 64
resv_word:  .dword 0, 0
        .balign 64
code:       .word 0x00008067, 0x00008067   /* ret, until hart 2 writes it */
