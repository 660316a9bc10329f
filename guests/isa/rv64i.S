/* rv64i.S: every RV64I instruction (RV64I base, unprivileged spec ch. 2 and 5).
 * ALU ops with edge values (sign extension, shifts by 0/31/32/63, overflow wrap), W forms,
 * LUI/AUIPC, loads and stores of every width, branches taken and not taken, JAL/JALR link and
 * bit-0 clearing, writes to x0 discarded, FENCE and FENCE.I over self-modifying code. */
#include "test.h"

        TEST_BEGIN
        /* ---- register-register ALU ops */
        TEST_RR 1, add, 0x0, 0x0, 0x0
        TEST_RR 2, add, 0x2, 0x1, 0x1
        TEST_RR 3, add, 0xa, 0x3, 0x7
        TEST_RR 4, add, 0x0, 0xffffffffffffffff, 0x1
        TEST_RR 5, add, 0x8000000000000000, 0x7fffffffffffffff, 0x1
        TEST_RR 6, add, 0x7fffffffffffffff, 0x8000000000000000, 0xffffffffffffffff
        TEST_RR 7, add, 0x80000000, 0x7fffffff, 0x1
        TEST_RR 8, add, 0xffffffffffffffff, 0x123456789abcdef, 0xfedcba9876543210
        TEST_RR 9, sub, 0x0, 0x0, 0x0
        TEST_RR 10, sub, 0x0, 0x1, 0x1
        TEST_RR 11, sub, 0xfffffffffffffffc, 0x3, 0x7
        TEST_RR 12, sub, 0x7fffffffffffffff, 0x8000000000000000, 0x1
        TEST_RR 13, sub, 0x8000000000000000, 0x0, 0x8000000000000000
        TEST_RR 14, sub, 0x7fffffff, 0x80000000, 0x1
        TEST_RR 15, sll, 0x1, 0x1, 0x0
        TEST_RR 16, sll, 0x8000000000000000, 0x1, 0x3f
        TEST_RR 17, sll, 0x8000000000000000, 0xffffffffffffffff, 0x3f
        TEST_RR 18, sll, 0x2, 0x8000000000000001, 0x1
        TEST_RR 19, sll, 0x123456789abcdef0, 0x123456789abcdef, 0x4
        TEST_RR 20, sll, 0x0, 0x8000000000000000, 0x3f
        TEST_RR 21, sll, 0xfffffffffffffff0, 0xfffffffffffffffe, 0x43
        TEST_RR 22, sll, 0x3b2a190800000000, 0xfedcba9876543210, 0x1f
        TEST_RR 23, sll, 0x7654321000000000, 0xfedcba9876543210, 0x20
        TEST_RR 24, srl, 0x1, 0x1, 0x0
        TEST_RR 25, srl, 0x0, 0x1, 0x3f
        TEST_RR 26, srl, 0x1, 0xffffffffffffffff, 0x3f
        TEST_RR 27, srl, 0x4000000000000000, 0x8000000000000001, 0x1
        TEST_RR 28, srl, 0x123456789abcde, 0x123456789abcdef, 0x4
        TEST_RR 29, srl, 0x1, 0x8000000000000000, 0x3f
        TEST_RR 30, srl, 0x1fffffffffffffff, 0xfffffffffffffffe, 0x43
        TEST_RR 31, srl, 0x1fdb97530, 0xfedcba9876543210, 0x1f
        TEST_RR 32, srl, 0xfedcba98, 0xfedcba9876543210, 0x20
        TEST_RR 33, sra, 0x1, 0x1, 0x0
        TEST_RR 34, sra, 0x0, 0x1, 0x3f
        TEST_RR 35, sra, 0xffffffffffffffff, 0xffffffffffffffff, 0x3f
        TEST_RR 36, sra, 0xc000000000000000, 0x8000000000000001, 0x1
        TEST_RR 37, sra, 0x123456789abcde, 0x123456789abcdef, 0x4
        TEST_RR 38, sra, 0xffffffffffffffff, 0x8000000000000000, 0x3f
        TEST_RR 39, sra, 0xffffffffffffffff, 0xfffffffffffffffe, 0x43
        TEST_RR 40, sra, 0xfffffffffdb97530, 0xfedcba9876543210, 0x1f
        TEST_RR 41, sra, 0xfffffffffedcba98, 0xfedcba9876543210, 0x20
        TEST_RR 42, slt, 0x0, 0x0, 0x0
        TEST_RR 43, slt, 0x1, 0x0, 0x1
        TEST_RR 44, slt, 0x0, 0x1, 0x0
        TEST_RR 45, slt, 0x1, 0xffffffffffffffff, 0x1
        TEST_RR 46, slt, 0x0, 0x1, 0xffffffffffffffff
        TEST_RR 47, slt, 0x1, 0x8000000000000000, 0x7fffffffffffffff
        TEST_RR 48, slt, 0x0, 0x7fffffffffffffff, 0x8000000000000000
        TEST_RR 49, slt, 0x1, 0xfffffffffffffffe, 0xffffffffffffffff
        TEST_RR 50, sltu, 0x0, 0x0, 0x0
        TEST_RR 51, sltu, 0x1, 0x0, 0x1
        TEST_RR 52, sltu, 0x0, 0x1, 0x0
        TEST_RR 53, sltu, 0x0, 0xffffffffffffffff, 0x1
        TEST_RR 54, sltu, 0x1, 0x1, 0xffffffffffffffff
        TEST_RR 55, sltu, 0x0, 0x8000000000000000, 0x7fffffffffffffff
        TEST_RR 56, sltu, 0x1, 0x7fffffffffffffff, 0x8000000000000000
        TEST_RR 57, sltu, 0x1, 0xfffffffffffffffe, 0xffffffffffffffff
        TEST_RR 58, xor, 0xf00ff00ff00ff00f, 0xff00ff00ff00ff00, 0xf0f0f0f0f0f0f0f
        TEST_RR 59, xor, 0xffffffffffffffff, 0x0, 0xffffffffffffffff
        TEST_RR 60, xor, 0xffffffffffffffff, 0x123456789abcdef, 0xfedcba9876543210
        TEST_RR 61, or, 0xff0fff0fff0fff0f, 0xff00ff00ff00ff00, 0xf0f0f0f0f0f0f0f
        TEST_RR 62, or, 0xffffffffffffffff, 0x0, 0xffffffffffffffff
        TEST_RR 63, or, 0xffffffffffffffff, 0x123456789abcdef, 0xfedcba9876543210
        TEST_RR 64, and, 0xf000f000f000f00, 0xff00ff00ff00ff00, 0xf0f0f0f0f0f0f0f
        TEST_RR 65, and, 0x0, 0x0, 0xffffffffffffffff
        TEST_RR 66, and, 0x0, 0x123456789abcdef, 0xfedcba9876543210
        /* ---- register-immediate ALU ops */
        TEST_RI 67, addi, 0x0, 0x0, 0
        TEST_RI 68, addi, 0x2, 0x1, 1
        TEST_RI 69, addi, 0xfffffffffffffffc, 0x3, -7
        TEST_RI 70, addi, 0x8000000000000000, 0x7fffffffffffffff, 1
        TEST_RI 71, addi, 0x7fffffffffffffff, 0x8000000000000000, -1
        TEST_RI 72, addi, 0x80000000, 0x7fffffff, 1
        TEST_RI 73, addi, 0x804, 0x5, 2047
        TEST_RI 74, addi, 0xfffffffffffff805, 0x5, -2048
        TEST_RI 75, slti, 0x0, 0x0, 0
        TEST_RI 76, slti, 0x1, 0x0, 1
        TEST_RI 77, slti, 0x0, 0x1, 0
        TEST_RI 78, slti, 0x1, 0xffffffffffffffff, 1
        TEST_RI 79, slti, 0x0, 0x1, -1
        TEST_RI 80, slti, 0x1, 0xfffffffffffffffe, -1
        TEST_RI 81, slti, 0x1, 0x8000000000000000, 0
        TEST_RI 82, slti, 0x1, 0x5, 2047
        TEST_RI 83, slti, 0x0, 0x800, -2048
        TEST_RI 84, sltiu, 0x0, 0x0, 0
        TEST_RI 85, sltiu, 0x1, 0x0, 1
        TEST_RI 86, sltiu, 0x0, 0x1, 0
        TEST_RI 87, sltiu, 0x0, 0xffffffffffffffff, 1
        TEST_RI 88, sltiu, 0x1, 0x1, -1
        TEST_RI 89, sltiu, 0x1, 0xfffffffffffffffe, -1
        TEST_RI 90, sltiu, 0x0, 0x8000000000000000, 0
        TEST_RI 91, sltiu, 0x1, 0x5, 2047
        TEST_RI 92, sltiu, 0x1, 0x800, -2048
        TEST_RI 93, xori, 0xff00ff00ff00fff0, 0xff00ff00ff00ff00, 240
        TEST_RI 94, xori, 0xfedcba9876543210, 0x123456789abcdef, -1
        TEST_RI 95, xori, 0xfedcba98765435ef, 0x123456789abcdef, -2048
        TEST_RI 96, xori, 0x123456789abca10, 0x123456789abcdef, 2047
        TEST_RI 97, ori, 0xff00ff00ff00fff0, 0xff00ff00ff00ff00, 240
        TEST_RI 98, ori, 0xffffffffffffffff, 0x123456789abcdef, -1
        TEST_RI 99, ori, 0xfffffffffffffdef, 0x123456789abcdef, -2048
        TEST_RI 100, ori, 0x123456789abcfff, 0x123456789abcdef, 2047
        TEST_RI 101, andi, 0x0, 0xff00ff00ff00ff00, 240
        TEST_RI 102, andi, 0x123456789abcdef, 0x123456789abcdef, -1
        TEST_RI 103, andi, 0x123456789abc800, 0x123456789abcdef, -2048
        TEST_RI 104, andi, 0x5ef, 0x123456789abcdef, 2047
        TEST_RI 105, slli, 0x1, 0x1, 0
        TEST_RI 106, slli, 0x8000000000000000, 0x1, 63
        TEST_RI 107, slli, 0x8000000000000000, 0xffffffffffffffff, 63
        TEST_RI 108, slli, 0x2, 0x8000000000000001, 1
        TEST_RI 109, slli, 0x123456789abcdef0, 0x123456789abcdef, 4
        TEST_RI 110, slli, 0x0, 0x8000000000000000, 63
        TEST_RI 111, slli, 0x3b2a190800000000, 0xfedcba9876543210, 31
        TEST_RI 112, slli, 0x7654321000000000, 0xfedcba9876543210, 32
        TEST_RI 113, srli, 0x1, 0x1, 0
        TEST_RI 114, srli, 0x0, 0x1, 63
        TEST_RI 115, srli, 0x1, 0xffffffffffffffff, 63
        TEST_RI 116, srli, 0x4000000000000000, 0x8000000000000001, 1
        TEST_RI 117, srli, 0x123456789abcde, 0x123456789abcdef, 4
        TEST_RI 118, srli, 0x1, 0x8000000000000000, 63
        TEST_RI 119, srli, 0x1fdb97530, 0xfedcba9876543210, 31
        TEST_RI 120, srli, 0xfedcba98, 0xfedcba9876543210, 32
        TEST_RI 121, srai, 0x1, 0x1, 0
        TEST_RI 122, srai, 0x0, 0x1, 63
        TEST_RI 123, srai, 0xffffffffffffffff, 0xffffffffffffffff, 63
        TEST_RI 124, srai, 0xc000000000000000, 0x8000000000000001, 1
        TEST_RI 125, srai, 0x123456789abcde, 0x123456789abcdef, 4
        TEST_RI 126, srai, 0xffffffffffffffff, 0x8000000000000000, 63
        TEST_RI 127, srai, 0xfffffffffdb97530, 0xfedcba9876543210, 31
        TEST_RI 128, srai, 0xfffffffffedcba98, 0xfedcba9876543210, 32
        /* ---- W forms: 32-bit result sign-extended */
        TEST_RR 129, addw, 0x0, 0x0, 0x0
        TEST_RR 130, addw, 0x2, 0x1, 0x1
        TEST_RR 131, addw, 0xffffffff80000000, 0x7fffffff, 0x1
        TEST_RR 132, addw, 0x0, 0xffffffff, 0x1
        TEST_RR 133, addw, 0xfffffffffffffffe, 0xffffffffffffffff, 0xffffffffffffffff
        TEST_RR 134, addw, 0x13579bde, 0x123456789abcdef, 0x123456789abcdef
        TEST_RR 135, addw, 0x0, 0x80000000, 0x80000000
        TEST_RR 136, subw, 0x0, 0x0, 0x0
        TEST_RR 137, subw, 0xffffffffffffffff, 0x0, 0x1
        TEST_RR 138, subw, 0x7fffffff, 0x80000000, 0x1
        TEST_RR 139, subw, 0xffffffff80000000, 0x7fffffff, 0xffffffffffffffff
        TEST_RR 140, subw, 0x0, 0x123400000000, 0x0
        TEST_RR 141, sllw, 0x1, 0x1, 0x0
        TEST_RR 142, sllw, 0xffffffff80000000, 0x1, 0x1f
        TEST_RR 143, sllw, 0xffffffff80000000, 0xffffffffffffffff, 0x1f
        TEST_RR 144, sllw, 0x2, 0x80000001, 0x1
        TEST_RR 145, sllw, 0xffffffff9abcdef0, 0x123456789abcdef, 0x4
        TEST_RR 146, sllw, 0x0, 0xfedcba9876543210, 0x1f
        TEST_RR 147, sllw, 0xffffffffeca86420, 0xfedcba9876543210, 0x21
        TEST_RR 148, sllw, 0xffffffff80000000, 0x80000000, 0x0
        TEST_RR 149, sllw, 0x23456780, 0x12345678, 0x24
        TEST_RR 150, srlw, 0x1, 0x1, 0x0
        TEST_RR 151, srlw, 0x0, 0x1, 0x1f
        TEST_RR 152, srlw, 0x1, 0xffffffffffffffff, 0x1f
        TEST_RR 153, srlw, 0x40000000, 0x80000001, 0x1
        TEST_RR 154, srlw, 0x89abcde, 0x123456789abcdef, 0x4
        TEST_RR 155, srlw, 0x0, 0xfedcba9876543210, 0x1f
        TEST_RR 156, srlw, 0x3b2a1908, 0xfedcba9876543210, 0x21
        TEST_RR 157, srlw, 0xffffffff80000000, 0x80000000, 0x0
        TEST_RR 158, srlw, 0x1234567, 0x12345678, 0x24
        TEST_RR 159, sraw, 0x1, 0x1, 0x0
        TEST_RR 160, sraw, 0x0, 0x1, 0x1f
        TEST_RR 161, sraw, 0xffffffffffffffff, 0xffffffffffffffff, 0x1f
        TEST_RR 162, sraw, 0xffffffffc0000000, 0x80000001, 0x1
        TEST_RR 163, sraw, 0xfffffffff89abcde, 0x123456789abcdef, 0x4
        TEST_RR 164, sraw, 0x0, 0xfedcba9876543210, 0x1f
        TEST_RR 165, sraw, 0x3b2a1908, 0xfedcba9876543210, 0x21
        TEST_RR 166, sraw, 0xffffffff80000000, 0x80000000, 0x0
        TEST_RR 167, sraw, 0x1234567, 0x12345678, 0x24
        TEST_RI 168, addiw, 0x0, 0x0, 0
        TEST_RI 169, addiw, 0x2, 0x1, 1
        TEST_RI 170, addiw, 0xffffffff80000000, 0x7fffffff, 1
        TEST_RI 171, addiw, 0x0, 0xffffffff, 1
        TEST_RI 172, addiw, 0xffffffff89abcdef, 0x123456789abcdef, 0
        TEST_RI 173, addiw, 0x7fffffff, 0x80000000, -1
        TEST_RI 174, addiw, 0xfffffffffffff805, 0x5, -2048
        TEST_RI 175, slliw, 0x1, 0x1, 0
        TEST_RI 176, slliw, 0xffffffff80000000, 0x1, 31
        TEST_RI 177, slliw, 0xffffffff80000000, 0xffffffffffffffff, 31
        TEST_RI 178, slliw, 0x2, 0x80000001, 1
        TEST_RI 179, slliw, 0xffffffff9abcdef0, 0x123456789abcdef, 4
        TEST_RI 180, slliw, 0x0, 0xfedcba9876543210, 31
        TEST_RI 181, slliw, 0xffffffff80000000, 0x80000000, 0
        TEST_RI 182, slliw, 0x76543210, 0xfedcba9876543210, 0
        TEST_RI 183, srliw, 0x1, 0x1, 0
        TEST_RI 184, srliw, 0x0, 0x1, 31
        TEST_RI 185, srliw, 0x1, 0xffffffffffffffff, 31
        TEST_RI 186, srliw, 0x40000000, 0x80000001, 1
        TEST_RI 187, srliw, 0x89abcde, 0x123456789abcdef, 4
        TEST_RI 188, srliw, 0x0, 0xfedcba9876543210, 31
        TEST_RI 189, srliw, 0xffffffff80000000, 0x80000000, 0
        TEST_RI 190, srliw, 0x76543210, 0xfedcba9876543210, 0
        TEST_RI 191, sraiw, 0x1, 0x1, 0
        TEST_RI 192, sraiw, 0x0, 0x1, 31
        TEST_RI 193, sraiw, 0xffffffffffffffff, 0xffffffffffffffff, 31
        TEST_RI 194, sraiw, 0xffffffffc0000000, 0x80000001, 1
        TEST_RI 195, sraiw, 0xfffffffff89abcde, 0x123456789abcdef, 4
        TEST_RI 196, sraiw, 0x0, 0xfedcba9876543210, 31
        TEST_RI 197, sraiw, 0xffffffff80000000, 0x80000000, 0
        TEST_RI 198, sraiw, 0x76543210, 0xfedcba9876543210, 0
        /* next case: 199 */
        /* ---- LUI / AUIPC */
        CASE 200
        lui     a0, 0x12345
        CHECK   a0, 0x12345000
        CASE 201
        lui     a0, 0x80000             /* bit 31 set: sign-extended to 64 bits */
        CHECK   a0, 0xffffffff80000000
        CASE 202
        lui     a0, 0xfffff
        CHECK   a0, 0xfffffffffffff000
        CASE 203
        lui     a0, 0
        CHECK   a0, 0
        CASE 204
1:      auipc   a0, 0
        la      a1, 1b
        CHECKR  a0, a1
        CASE 205
1:      auipc   a0, 1
        la      a1, 1b
        sub     a0, a0, a1
        CHECK   a0, 0x1000
        CASE 206
1:      auipc   a0, 0xfffff             /* pc - 0x1000 */
        la      a1, 1b
        sub     a0, a0, a1
        CHECK   a0, -0x1000

        /* ---- writes to x0 are discarded */
        CASE 210
        li      a1, 5
        addi    x0, a1, 7
        CHECK   x0, 0
        CASE 211
        lui     x0, 0x12345
        add     a0, x0, x0
        CHECK   a0, 0
        CASE 212
        la      a1, ldata
        ld      x0, 0(a1)
        mv      a0, x0
        CHECK   a0, 0
        CASE 213
        jal     x0, 1f
        j       fail
1:      CHECK   x0, 0

        /* ---- loads: every width, sign and zero extension */
        la      a1, ldata
        CASE 220
        lb      a0, 0(a1)
        CHECK   a0, 0xffffffffffffff80
        CASE 221
        lbu     a0, 0(a1)
        CHECK   a0, 0x80
        CASE 222
        lb      a0, 1(a1)
        CHECK   a0, 0x7f
        CASE 223
        lh      a0, 2(a1)
        CHECK   a0, 0xffffffffffff8001
        CASE 224
        lhu     a0, 2(a1)
        CHECK   a0, 0x8001
        CASE 225
        lw      a0, 4(a1)
        CHECK   a0, 0xffffffff80000002
        CASE 226
        lwu     a0, 4(a1)
        CHECK   a0, 0x80000002
        CASE 227
        ld      a0, 8(a1)
        CHECK   a0, 0x8877665544332211
        CASE 228
        lw      a0, 8(a1)
        CHECK   a0, 0x44332211
        CASE 229
        lh      a0, 14(a1)
        CHECK   a0, 0xffffffffffff8877
        CASE 230
        addi    a2, a1, 16
        ld      a0, -8(a2)              /* negative offset */
        CHECK   a0, 0x8877665544332211
        CASE 231
        lw      a0, 12(a1)
        CHECK   a0, 0xffffffff88776655
        CASE 232
        lwu     a0, 12(a1)
        CHECK   a0, 0x88776655

        /* ---- stores: every width, only the addressed bytes change */
        la      a1, sdata
        li      a2, -1
        sd      a2, 0(a1)
        sd      a2, 8(a1)
        CASE 240
        li      a3, 0x0123456789abcdef
        sb      a3, 0(a1)
        ld      a0, 0(a1)
        CHECK   a0, 0xffffffffffffffef
        CASE 241
        sh      a3, 2(a1)
        ld      a0, 0(a1)
        CHECK   a0, 0xffffffffcdefffef
        CASE 242
        sw      a3, 4(a1)
        ld      a0, 0(a1)
        CHECK   a0, 0x89abcdefcdefffef
        CASE 243
        sd      a3, 8(a1)
        ld      a0, 8(a1)
        CHECK   a0, 0x0123456789abcdef
        CASE 244
        addi    a2, a1, 16
        sw      zero, -4(a2)            /* negative offset */
        ld      a0, 8(a1)
        CHECK   a0, 0x0000000089abcdef
        CASE 245
        sb      zero, 8(a1)
        lbu     a0, 8(a1)
        CHECK   a0, 0

        /* ---- branches: taken and not taken */
        .macro BR_TAKEN n, inst, v1, v2
        CASE    \n
        li      a1, \v1
        li      a2, \v2
        \inst   a1, a2, 1f
        j       fail
1:
        .endm
        .macro BR_NOT n, inst, v1, v2
        CASE    \n
        li      a1, \v1
        li      a2, \v2
        \inst   a1, a2, fail
        .endm
        BR_TAKEN 250, beq, 5, 5
        BR_NOT   251, beq, 5, 6
        BR_TAKEN 252, bne, 5, 6
        BR_NOT   253, bne, -1, -1
        BR_TAKEN 254, blt, -1, 0
        BR_NOT   255, blt, 0, -1
        BR_NOT   256, blt, 7, 7
        BR_TAKEN 257, bge, 0, -1
        BR_TAKEN 258, bge, 7, 7
        BR_NOT   259, bge, -2, -1
        BR_TAKEN 260, bltu, 0, -1
        BR_NOT   261, bltu, -1, 0
        BR_NOT   262, bltu, 3, 3
        BR_TAKEN 263, bgeu, -1, 0
        BR_TAKEN 264, bgeu, 3, 3
        BR_NOT   265, bgeu, 0, 1
        BR_TAKEN 266, blt, 0x8000000000000000, 0x7fffffffffffffff
        BR_TAKEN 267, bltu, 0x7fffffffffffffff, 0x8000000000000000
        CASE 268                        /* backward branch */
        li      a1, 3
        li      a0, 0
1:      addi    a0, a0, 1
        addi    a1, a1, -1
        bnez    a1, 1b
        CHECK   a0, 3

        /* ---- JAL / JALR: link value, target, lowest bit cleared */
        CASE 270
        jal     ra, 1f
2:      j       fail
1:      la      a1, 2b
        CHECKR  ra, a1
        CASE 271
        la      a1, 1f
        jalr    a0, 0(a1)
2:      j       fail
1:      la      a2, 2b
        CHECKR  a0, a2
        CASE 272
        la      a1, 1f
        addi    a1, a1, 1               /* odd target: bit 0 is cleared, no trap */
        jalr    a0, 0(a1)
        j       fail
        .balign 4
1:
        CASE 273
        la      a1, 1f
        addi    a1, a1, -5
        jalr    a0, 5(a1)               /* offset added, then bit 0 cleared */
        j       fail
        .balign 4
1:
        CASE 274
        la      a1, 1f
        jalr    a1, 0(a1)               /* rd == rs1: target uses the old value */
2:      j       fail
1:      la      a2, 2b
        CHECKR  a1, a2
        CASE 275
        la      a1, 1f
        addi    a1, a1, 1
        jalr    a1, -1(a1)              /* rd == rs1 with an offset */
2:      j       fail
1:      la      a2, 2b
        CHECKR  a1, a2
        CASE 276                        /* a call and return */
        li      a0, 0
        jal     ra, 3f
        CHECK   a0, 42
        j       4f
3:      li      a0, 42
        ret
4:

        /* ---- FENCE, FENCE.I (self-modifying code) */
        CASE 280
        fence
        fence   rw, rw
        fence   r, w
        fence.tso
        la      a1, sdata
        li      a2, 77
        sd      a2, 0(a1)
        fence   w, r
        ld      a0, 0(a1)
        CHECK   a0, 77
        CASE 281
        la      a1, smc_slot
        la      a2, smc_insn            /* "li a0, 123" */
        lw      a2, 0(a2)
        sw      a2, 0(a1)
        fence.i
        li      a0, 0
        jal     ra, smc_slot
        CHECK   a0, 123
        CASE 282                        /* patch it again: the new instruction is executed */
        la      a1, smc_slot
        la      a2, smc_insn2           /* "li a0, -9" */
        lw      a2, 0(a2)
        sw      a2, 0(a1)
        fence.i
        li      a0, 0
        jal     ra, smc_slot
        CHECK   a0, -9
        TEST_END

        .text
        .balign 4
smc_slot:                               /* patched at run time */
        nop
        ret
smc_insn:
        li      a0, 123
smc_insn2:
        li      a0, -9

        .data
        .balign 8
ldata:  .byte 0x80, 0x7f, 0x01, 0x80, 0x02, 0x00, 0x00, 0x80
        .dword 0x8877665544332211
sdata:  .dword 0, 0
