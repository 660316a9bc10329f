/* fp-test.h: table-driven F/D tests on top of test.h.
 *
 * A test is a list of groups. A group is one instruction word (executed from a stub, so every
 * encoding - static or dynamic rounding mode, any register - is just data) and a table of
 * records. Register roles: operands in f11, f12, f13 (raw 64-bit patterns, so single-precision
 * operands may be deliberately mis-boxed) and x11 (= the first operand, for FCVT.fmt.[L|W][U]
 * and FMV.[W|D].X); the result in f10 (compared as all 64 bits, NaN-boxing included) or x10.
 *
 * Group table layout (all little-endian):
 *   .word insn, count, nops, xres, frm, 0
 *   count records of: nops x .dword operand, .dword expected result, .dword expected fflags
 * `frm` is written to the frm CSR before the group (dynamic-rm groups use it; static-rm groups
 * set it to something else to show the static field wins).
 *
 * On a mismatch the test fails with TESTNUM = the group number; `fp_fail_index` holds the record
 * index. Built with -DFP_GENERATE the same program instead prints, for every record, the result
 * and fflags as "RRRRRRRRRRRRRRRR FF\n" on the HTIF console: fp-gen.mjs runs it under QEMU to
 * freeze the expected values into the tables.
 */
#ifndef RVM_FP_TEST_H
#define RVM_FP_TEST_H

#include "test.h"

/* Enable the FPU: mstatus.FS = Initial. */
.macro FP_ENABLE
        li      t0, (1 << 13)
        csrs    mstatus, t0
        csrwi   fcsr, 0
.endm

/* One group: n = case number, tbl = its table label, word = the instruction. */
.macro FP_GROUP n, tbl, word
        li      TESTNUM, \n
        la      s0, \tbl
        la      s1, 1f
        jal     ra, fp_group
        j       2f
        .balign 4
1:      .word   \word
        ret
2:
.endm

/* The shared loop; emit once per program (after TEST_BEGIN's code, before TEST_END). */
.macro FP_SUBROUTINES
        j       fp_subroutines_end
fp_group:
        mv      s7, ra
        lwu     s2, 4(s0)
        lwu     s3, 8(s0)
        lwu     s4, 12(s0)
        lwu     t0, 16(s0)
        csrw    frm, t0
        addi    s0, s0, 24
        li      s5, 0
3:      beqz    s2, 6f
        ld      t0, 0(s0)
        fmv.d.x f11, t0
        mv      a1, t0
        ld      t0, 8(s0)
        fmv.d.x f12, t0
        ld      t0, 16(s0)
        fmv.d.x f13, t0
        li      a0, 0
        fmv.d.x f10, zero
        csrwi   fflags, 0
        jalr    ra, s1
        csrr    t1, fflags
        mv      t2, a0
        bnez    s4, 4f
        fmv.x.d t2, f10
4:      slli    t3, s3, 3
        add     t3, s0, t3
#ifdef FP_GENERATE
        mv      a0, t2
        li      a1, 16
        jal     ra, fp_puthex
        li      a0, ' '
        jal     ra, fp_putc
        mv      a0, t1
        li      a1, 2
        jal     ra, fp_puthex
        li      a0, '\n'
        jal     ra, fp_putc
#else
        ld      t4, 0(t3)
        bne     t2, t4, 5f
        ld      t4, 8(t3)
        bne     t1, t4, 5f
#endif
        addi    s0, t3, 16
        addi    s5, s5, 1
        addi    s2, s2, -1
        j       3b
5:      la      t0, fp_fail_index
        sd      s5, 0(t0)
        j       fail
6:      mv      ra, s7
        ret

#ifdef FP_GENERATE
/* HTIF console: device 1, command 1 (putchar). */
fp_putc:
        li      t5, (1 << 56) | (1 << 48)
        or      t5, t5, a0
        la      t6, tohost
        sd      t5, 0(t6)
7:      la      t6, fromhost
        ld      t5, 0(t6)
        beqz    t5, 7b
        sd      zero, 0(t6)
        ret
/* a0 = value, a1 = number of hex digits (from the top). Clobbers a2-a5, s6. */
fp_puthex:
        mv      s6, ra
        mv      a2, a0
        mv      a3, a1
8:      addi    a3, a3, -1
        slli    a4, a3, 2
        srl     a0, a2, a4
        andi    a0, a0, 15
        li      a5, 10
        blt     a0, a5, 9f
        addi    a0, a0, 'a' - '0' - 10
9:      addi    a0, a0, '0'
        jal     ra, fp_putc
        bnez    a3, 8b
        mv      ra, s6
        ret
#endif

        .pushsection .data
        .balign 8
        .globl fp_fail_index
fp_fail_index: .dword -1
        .popsection
fp_subroutines_end:
.endm

#endif
