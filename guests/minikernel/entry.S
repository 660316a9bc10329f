# Every hart starts here in M-mode (rvm and QEMU with -bios none): a0 = mhartid, a1 = the
# device tree. Each hart gets its own 4 KiB stack and calls start(hartid, dtb).
        .section .text.entry
        .globl _entry
_entry:
        csrr    a0, mhartid
        li      t0, 8
        bgeu    a0, t0, park            # more harts than stacks: keep them out of the way
        la      sp, stacks
        li      t0, 4096
        addi    t1, a0, 1
        mul     t0, t0, t1
        add     sp, sp, t0
        call    start
park:
        wfi
        j       park

        .section .bss
        .balign 16
stacks:
        .space  4096 * 8
