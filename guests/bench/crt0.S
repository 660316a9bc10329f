/* crt0.S: bare-metal start for the benchmark guests. M-mode, nothing set up: point sp at the
 * static stack, zero .bss, (with FP) turn on mstatus.FS before any FP instruction, call main,
 * then report main's return value as the HTIF exit code. */
        .section .text.init, "ax", @progbits
        .globl _start
_start:
        .option push
        .option norelax
        la      gp, __global_pointer$
        .option pop
        la      sp, __stack_top
        la      t0, __bss_start
        la      t1, __bss_end
1:      bgeu    t0, t1, 2f
        sd      zero, 0(t0)
        addi    t0, t0, 8
        j       1b
2:
#ifdef WITH_FP
        li      t0, 1 << 13             /* mstatus.FS = Initial */
        csrs    mstatus, t0
        csrwi   fcsr, 0
#endif
        call    main
        call    htif_exit
3:      j       3b
