/* rvc.S: the RV64C compressed instructions (unprivileged spec ch. 16 "C"), each forced to its
 * 16-bit encoding with a c.* mnemonic and compared with the result of its 32-bit equivalent;
 * RV64 specifics (C.ADDIW where RV32 has C.JAL, C.LD/C.SD/C.LDSP/C.SDSP, C.ADDW/C.SUBW,
 * 6-bit shift amounts); links of C.JAL-less C.JALR (pc + 2); 32-bit instructions at 2-byte
 * aligned addresses and across a page boundary; reserved/illegal encodings raise
 * illegal-instruction with mtval = the 16-bit encoding. C.FLD/C.FSD/C.FLDSP/C.FSDSP belong to
 * the F/D tests and are not covered here. */
#include "test.h"

/* Run `cinst` (16-bit) and `full` (its 32-bit equivalent) from the same a0/a1 and compare. */
.macro CMP_C n, v0, v1, cinst, full
        CASE    \n
        li      a0, \v0
        li      a1, \v1
        .option push
        .option rvc
        \cinst
        .option pop
        mv      a5, a0
        li      a0, \v0
        li      a1, \v1
        .option push
        .option norvc
        \full
        .option pop
        bne     a0, a5, fail
.endm

        TEST_BEGIN
        la      sp, stack_top
        .option rvc     /* c.* mnemonics need it; CMP_C keeps the 32-bit forms uncompressed */
        /* ---- quadrant 1 arithmetic */
        CMP_C 1, 5, 0, "c.addi a0, -7", "addi a0, a0, -7"
        CMP_C 2, 5, 0, "c.addi a0, 31", "addi a0, a0, 31"
        CMP_C 3, 0x7fffffff, 0, "c.addiw a0, 1", "addiw a0, a0, 1"
        CMP_C 4, 0x123456789, 0, "c.addiw a0, 0", "addiw a0, a0, 0"
        CMP_C 5, 0, 0, "c.li a0, -32", "li a0, -32"
        CMP_C 6, 0, 0, "c.li a0, 31", "li a0, 31"
        CMP_C 7, 0, 0, "c.lui a0, 0x1f", "lui a0, 0x1f"
        CMP_C 8, 0, 0, "c.lui a0, 0xfffe0", "lui a0, 0xfffe0"
        CMP_C 9, 0x8000000000000001, 0, "c.srli a0, 63", "srli a0, a0, 63"
        CMP_C 10, 0x8000000000000001, 0, "c.srli a0, 1", "srli a0, a0, 1"
        CMP_C 11, 0x8000000000000001, 0, "c.srai a0, 63", "srai a0, a0, 63"
        CMP_C 12, 0x8000000000000001, 0, "c.srai a0, 32", "srai a0, a0, 32"
        CMP_C 13, 0x0123456789abcdef, 0, "c.andi a0, -16", "andi a0, a0, -16"
        CMP_C 14, 0x0123456789abcdef, 0, "c.andi a0, 15", "andi a0, a0, 15"
        CMP_C 15, 10, 3, "c.sub a0, a1", "sub a0, a0, a1"
        CMP_C 16, 0xff00, 0x0ff0, "c.xor a0, a1", "xor a0, a0, a1"
        CMP_C 17, 0xff00, 0x0ff0, "c.or a0, a1", "or a0, a0, a1"
        CMP_C 18, 0xff00, 0x0ff0, "c.and a0, a1", "and a0, a0, a1"
        CMP_C 19, 0x80000000, 1, "c.subw a0, a1", "subw a0, a0, a1"
        CMP_C 20, 0x7fffffff, 1, "c.addw a0, a1", "addw a0, a0, a1"
        CMP_C 21, 0x1ffffffff, 0xffffffff, "c.addw a0, a1", "addw a0, a0, a1"
        CMP_C 22, 0, 0, "c.nop", "nop"
        /* ---- quadrant 2 arithmetic */
        CMP_C 23, 1, 0, "c.slli a0, 63", "slli a0, a0, 63"
        CMP_C 24, 0x0123456789abcdef, 0, "c.slli a0, 4", "slli a0, a0, 4"
        CMP_C 25, 1, 99, "c.mv a0, a1", "mv a0, a1"
        CMP_C 26, 1, 99, "c.add a0, a1", "add a0, a0, a1"
        CMP_C 27, 0x7fffffffffffffff, 1, "c.add a0, a1", "add a0, a0, a1"
        CASE 28                         /* full register range: c.addi/c.mv/c.add on t0..t5 (x5-x31) */
        li      t5, 40
        c.addi  t5, 2
        c.mv    t4, t5
        c.add   t4, t5
        CHECK   t4, 84
        /* ---- stack-pointer forms */
        CASE 30
        mv      a1, sp
        c.addi16sp sp, -64
        sub     a0, a1, sp
        CHECK   a0, 64
        c.addi16sp sp, 496
        c.addi16sp sp, -496
        sub     a0, a1, sp
        CHECK   a0, 64
        c.addi16sp sp, 64
        CHECKR  sp, a1
        CASE 31
        c.addi4spn a0, sp, 4
        addi    a1, sp, 4
        CHECKR  a0, a1
        CASE 32
        c.addi4spn a0, sp, 1020
        addi    a1, sp, 1020
        CHECKR  a0, a1
        CASE 33                         /* c.sdsp / c.ldsp / c.swsp / c.lwsp */
        addi    sp, sp, -512
        li      a0, 0x8877665544332211
        c.sdsp  a0, 8(sp)
        c.sdsp  a0, 504(sp)
        ld      a1, 8(sp)
        CHECKR  a1, a0
        c.ldsp  a2, 504(sp)
        CHECKR  a2, a0
        CASE 34
        li      a0, 0xfedcba98
        c.swsp  a0, 252(sp)
        c.lwsp  a3, 252(sp)
        CHECK   a3, 0xfffffffffedcba98
        lwu     a3, 252(sp)
        CHECK   a3, 0xfedcba98
        CASE 35                         /* c.sd / c.ld / c.sw / c.lw (register-based, x8-x15) */
        mv      s0, sp
        li      a4, 0x0102030405060708
        c.sd    a4, 248(s0)
        c.ld    a5, 248(s0)
        CHECKR  a5, a4
        li      a4, 0x80000001
        c.sw    a4, 124(s0)
        c.lw    a5, 124(s0)
        CHECK   a5, 0xffffffff80000001
        c.lw    a5, 0(s0)
        lw      a4, 0(s0)
        CHECKR  a5, a4
        addi    sp, sp, 512

        /* ---- control transfer */
        CASE 40
        c.j     1f
        j       fail
1:      li      a0, 0
        c.beqz  a0, 1f
        j       fail
1:      li      a0, 1
        c.beqz  a0, fail
        c.bnez  a0, 1f
        j       fail
1:      li      a0, 0
        c.bnez  a0, fail
        CASE 41                         /* backward c.bnez loop */
        li      a0, 5
        li      a1, 0
1:      c.addi  a1, 3
        c.addi  a0, -1
        c.bnez  a0, 1b
        CHECK   a1, 15
        CASE 42                         /* c.jr */
        la      a1, 1f
        c.jr    a1
        j       fail
1:
        CASE 43                         /* c.jalr: ra = pc + 2 */
        la      a1, 2f
1:      c.jalr  a1
        j       fail
2:      la      a2, 1b
        addi    a2, a2, 2
        CHECKR  ra, a2
        CASE 44                         /* a 32-bit jal landing on a 2-byte aligned address */
        .balign 4
        c.nop
        .option push
        .option norvc
        jal     ra, 1f                  /* at pc = 4k+2 */
        .option pop
2:      j       fail
1:      la      a2, 2b
        CHECKR  ra, a2
        la      a1, 2b
        andi    a1, a1, 3
        CHECK   a1, 2
        CASE 45                         /* 0x2505 is C.ADDIW a0, 1 on RV64 (C.JAL on RV32) */
        li      a0, 0x7fffffff
        mv      a1, ra
        .half   0x2505
        CHECK   a0, 0xffffffff80000000
        CHECKR  ra, a1
        CASE 46                         /* a 32-bit instruction across a page boundary */
        li      a0, 41
        la      a1, straddle
        jalr    ra, 0(a1)
        CHECK   a0, 42
        CASE 47                         /* c.ebreak: breakpoint, mepc = its address */
        la      RESUME, 8f
7:      c.ebreak
        j       fail
        .balign 4
8:      CHECK   T_CAUSE, CAUSE_BREAKPOINT
        la      t6, 7b
        CHECKR  T_EPC, t6

        /* ---- reserved encodings: illegal instruction, mtval = the 16 bits */
        .macro ILLEGAL_C n, enc
        CASE    \n
        la      RESUME, 8f
7:      .half   \enc
        j       fail
        .balign 4
8:      CHECK   T_CAUSE, CAUSE_ILLEGAL
        la      t6, 7b
        CHECKR  T_EPC, t6
        CHECK   T_TVAL, \enc
        .endm
        ILLEGAL_C 50, 0x0000            /* all zeros: defined illegal */
        ILLEGAL_C 51, 0x0004            /* C.ADDI4SPN, nzuimm = 0 */
        ILLEGAL_C 52, 0x6501            /* C.LUI a0, 0 */
        ILLEGAL_C 53, 0x6101            /* C.ADDI16SP, nzimm = 0 */
        ILLEGAL_C 54, 0x8002            /* C.JR x0 */
        ILLEGAL_C 55, 0x4002            /* C.LWSP x0 */
        ILLEGAL_C 56, 0x6002            /* C.LDSP x0 */
        ILLEGAL_C 57, 0x2001            /* C.ADDIW x0 */
        ILLEGAL_C 58, 0x9c41            /* reserved in the C.SUBW/C.ADDW group */
        ILLEGAL_C 59, 0x9c61            /* reserved in the C.SUBW/C.ADDW group */
        .option norvc
        TEST_END

        .text
        .balign 4096
        .skip   4094
straddle:                               /* at 4 KiB - 2: this addi spans two pages */
        .option push
        .option norvc
        addi    a0, a0, 1
        ret
        .option pop

        .bss
        .balign 16
stack:  .skip 4096
stack_top:
