/* crt0.S for debugee.c: hart 0 sets up a stack and a trap vector and calls main; other harts
 * wait in WFI (they show up as threads in gdb). */
        .section .text.init, "ax", @progbits
        .globl _start
_start:
        csrr    t0, mhartid
        bnez    t0, park
        .option push
        .option norelax
        la      gp, __global_pointer$
        .option pop
        la      sp, __stack_top
        la      t0, trap_entry
        csrw    mtvec, t0
        csrwi   pmpcfg0, 0x1f           /* PMP: all of memory RWX for S/U (NAPOT, all ones) */
        li      t0, -1
        csrw    pmpaddr0, t0
        call    main
        call    htif_exit
park:   wfi
        j       park

        .text
        .globl  trap_entry
        .align  2
trap_entry:
        addi    sp, sp, -32
        sd      ra, 0(sp)
        sd      a0, 8(sp)
        csrr    a0, mcause
        call    handle_trap
        csrr    ra, mepc
        add     ra, ra, a0
        csrw    mepc, ra
        ld      ra, 0(sp)
        ld      a0, 8(sp)
        addi    sp, sp, 32
        mret

/* enter_supervisor(fn): mret into S-mode at fn, with the same stack. */
        .globl  enter_supervisor
enter_supervisor:
        csrw    mepc, a0
        li      t0, 3 << 11
        csrc    mstatus, t0
        li      t0, 1 << 11
        csrs    mstatus, t0
        mret
