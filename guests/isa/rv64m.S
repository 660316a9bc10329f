/* rv64m.S: every RV64M instruction (unprivileged spec ch. 13): MUL/MULH/MULHU/MULHSU/MULW,
 * DIV/DIVU/REM/REMU and the W forms, with the division edge cases of table 13.1 (division by
 * zero, signed overflow MIN / -1) in both 64-bit and W forms, and W operands with dirty upper
 * halves. */
#include "test.h"

        TEST_BEGIN
        /* mul */
        TEST_RR 1, mul, 0x0, 0x0, 0x0
        TEST_RR 2, mul, 0x1, 0x1, 0x1
        TEST_RR 3, mul, 0x15, 0x3, 0x7
        TEST_RR 4, mul, 0xffffffffffffffeb, 0xfffffffffffffffd, 0x7
        TEST_RR 5, mul, 0xffffffffffffffeb, 0x3, 0xfffffffffffffff9
        TEST_RR 6, mul, 0x15, 0xfffffffffffffffd, 0xfffffffffffffff9
        TEST_RR 7, mul, 0x8000000000000000, 0x8000000000000000, 0xffffffffffffffff
        TEST_RR 8, mul, 0x8000000000000000, 0x8000000000000000, 0x1
        TEST_RR 9, mul, 0x1, 0x7fffffffffffffff, 0x7fffffffffffffff
        TEST_RR 10, mul, 0x0, 0x8000000000000000, 0x8000000000000000
        TEST_RR 11, mul, 0x1, 0xffffffffffffffff, 0xffffffffffffffff
        TEST_RR 12, mul, 0x2236d88fe5618cf0, 0x123456789abcdef, 0xfedcba9876543210
        TEST_RR 13, mul, 0x3fffffff00000001, 0x7fffffff, 0x7fffffff
        TEST_RR 14, mul, 0xfffffffe00000001, 0xffffffff, 0xffffffff
        /* mulh */
        TEST_RR 15, mulh, 0x0, 0x0, 0x0
        TEST_RR 16, mulh, 0x0, 0x1, 0x1
        TEST_RR 17, mulh, 0x0, 0x3, 0x7
        TEST_RR 18, mulh, 0xffffffffffffffff, 0xfffffffffffffffd, 0x7
        TEST_RR 19, mulh, 0xffffffffffffffff, 0x3, 0xfffffffffffffff9
        TEST_RR 20, mulh, 0x0, 0xfffffffffffffffd, 0xfffffffffffffff9
        TEST_RR 21, mulh, 0x0, 0x8000000000000000, 0xffffffffffffffff
        TEST_RR 22, mulh, 0xffffffffffffffff, 0x8000000000000000, 0x1
        TEST_RR 23, mulh, 0x3fffffffffffffff, 0x7fffffffffffffff, 0x7fffffffffffffff
        TEST_RR 24, mulh, 0x4000000000000000, 0x8000000000000000, 0x8000000000000000
        TEST_RR 25, mulh, 0x0, 0xffffffffffffffff, 0xffffffffffffffff
        TEST_RR 26, mulh, 0xfffeb49923cc0953, 0x123456789abcdef, 0xfedcba9876543210
        TEST_RR 27, mulh, 0x0, 0x7fffffff, 0x7fffffff
        TEST_RR 28, mulh, 0x0, 0xffffffff, 0xffffffff
        /* mulhu */
        TEST_RR 29, mulhu, 0x0, 0x0, 0x0
        TEST_RR 30, mulhu, 0x0, 0x1, 0x1
        TEST_RR 31, mulhu, 0x0, 0x3, 0x7
        TEST_RR 32, mulhu, 0x6, 0xfffffffffffffffd, 0x7
        TEST_RR 33, mulhu, 0x2, 0x3, 0xfffffffffffffff9
        TEST_RR 34, mulhu, 0xfffffffffffffff6, 0xfffffffffffffffd, 0xfffffffffffffff9
        TEST_RR 35, mulhu, 0x7fffffffffffffff, 0x8000000000000000, 0xffffffffffffffff
        TEST_RR 36, mulhu, 0x0, 0x8000000000000000, 0x1
        TEST_RR 37, mulhu, 0x3fffffffffffffff, 0x7fffffffffffffff, 0x7fffffffffffffff
        TEST_RR 38, mulhu, 0x4000000000000000, 0x8000000000000000, 0x8000000000000000
        TEST_RR 39, mulhu, 0xfffffffffffffffe, 0xffffffffffffffff, 0xffffffffffffffff
        TEST_RR 40, mulhu, 0x121fa00ad77d742, 0x123456789abcdef, 0xfedcba9876543210
        TEST_RR 41, mulhu, 0x0, 0x7fffffff, 0x7fffffff
        TEST_RR 42, mulhu, 0x0, 0xffffffff, 0xffffffff
        /* mulhsu */
        TEST_RR 43, mulhsu, 0x0, 0x0, 0x0
        TEST_RR 44, mulhsu, 0x0, 0x1, 0x1
        TEST_RR 45, mulhsu, 0x0, 0x3, 0x7
        TEST_RR 46, mulhsu, 0xffffffffffffffff, 0xfffffffffffffffd, 0x7
        TEST_RR 47, mulhsu, 0x2, 0x3, 0xfffffffffffffff9
        TEST_RR 48, mulhsu, 0xfffffffffffffffd, 0xfffffffffffffffd, 0xfffffffffffffff9
        TEST_RR 49, mulhsu, 0x8000000000000000, 0x8000000000000000, 0xffffffffffffffff
        TEST_RR 50, mulhsu, 0xffffffffffffffff, 0x8000000000000000, 0x1
        TEST_RR 51, mulhsu, 0x3fffffffffffffff, 0x7fffffffffffffff, 0x7fffffffffffffff
        TEST_RR 52, mulhsu, 0xc000000000000000, 0x8000000000000000, 0x8000000000000000
        TEST_RR 53, mulhsu, 0xffffffffffffffff, 0xffffffffffffffff, 0xffffffffffffffff
        TEST_RR 54, mulhsu, 0x121fa00ad77d742, 0x123456789abcdef, 0xfedcba9876543210
        TEST_RR 55, mulhsu, 0x0, 0x7fffffff, 0x7fffffff
        TEST_RR 56, mulhsu, 0x0, 0xffffffff, 0xffffffff
        /* mulw */
        TEST_RR 57, mulw, 0x0, 0x0, 0x0
        TEST_RR 58, mulw, 0x15, 0x3, 0x7
        TEST_RR 59, mulw, 0xffffffffffffffeb, 0xfffffffffffffffd, 0x7
        TEST_RR 60, mulw, 0xfffffffffffffffe, 0x7fffffff, 0x2
        TEST_RR 61, mulw, 0x0, 0x80000000, 0x80000000
        TEST_RR 62, mulw, 0xffffffffe5618cf0, 0x123456789abcdef, 0xfedcba9876543210
        TEST_RR 63, mulw, 0x1, 0xffffffff, 0xffffffff
        TEST_RR 64, mulw, 0x3, 0x100000001, 0x3
        /* div (div by zero: quotient all ones, remainder = dividend; overflow: MIN/-1) */
        TEST_RR 65, div, 0x3, 0x14, 0x6
        TEST_RR 66, div, 0xfffffffffffffffd, 0xffffffffffffffec, 0x6
        TEST_RR 67, div, 0xfffffffffffffffd, 0x14, 0xfffffffffffffffa
        TEST_RR 68, div, 0x3, 0xffffffffffffffec, 0xfffffffffffffffa
        TEST_RR 69, div, 0x0, 0x0, 0x5
        TEST_RR 70, div, 0xffffffffffffffff, 0x7, 0x0
        TEST_RR 71, div, 0xffffffffffffffff, 0xfffffffffffffff9, 0x0
        TEST_RR 72, div, 0xffffffffffffffff, 0x0, 0x0
        TEST_RR 73, div, 0x8000000000000000, 0x8000000000000000, 0xffffffffffffffff
        TEST_RR 74, div, 0x8000000000000000, 0x8000000000000000, 0x1
        TEST_RR 75, div, 0x1, 0x8000000000000000, 0x8000000000000000
        TEST_RR 76, div, 0x8000000000000001, 0x7fffffffffffffff, 0xffffffffffffffff
        TEST_RR 77, div, 0x0, 0xffffffffffffffff, 0x8000000000000000
        TEST_RR 78, div, 0x123456789ab, 0x123456789abcdef, 0x10000
        TEST_RR 79, div, 0xff9ee8dd7cc6bb5b, 0xfedcba9876543210, 0x3
        /* divu (div by zero: quotient all ones, remainder = dividend; overflow: MIN/-1) */
        TEST_RR 80, divu, 0x3, 0x14, 0x6
        TEST_RR 81, divu, 0x2aaaaaaaaaaaaaa7, 0xffffffffffffffec, 0x6
        TEST_RR 82, divu, 0x0, 0x14, 0xfffffffffffffffa
        TEST_RR 83, divu, 0x0, 0xffffffffffffffec, 0xfffffffffffffffa
        TEST_RR 84, divu, 0x0, 0x0, 0x5
        TEST_RR 85, divu, 0xffffffffffffffff, 0x7, 0x0
        TEST_RR 86, divu, 0xffffffffffffffff, 0xfffffffffffffff9, 0x0
        TEST_RR 87, divu, 0xffffffffffffffff, 0x0, 0x0
        TEST_RR 88, divu, 0x0, 0x8000000000000000, 0xffffffffffffffff
        TEST_RR 89, divu, 0x8000000000000000, 0x8000000000000000, 0x1
        TEST_RR 90, divu, 0x1, 0x8000000000000000, 0x8000000000000000
        TEST_RR 91, divu, 0x0, 0x7fffffffffffffff, 0xffffffffffffffff
        TEST_RR 92, divu, 0x1, 0xffffffffffffffff, 0x8000000000000000
        TEST_RR 93, divu, 0x123456789ab, 0x123456789abcdef, 0x10000
        TEST_RR 94, divu, 0x54f43e32d21c10b0, 0xfedcba9876543210, 0x3
        /* rem (div by zero: quotient all ones, remainder = dividend; overflow: MIN/-1) */
        TEST_RR 95, rem, 0x2, 0x14, 0x6
        TEST_RR 96, rem, 0xfffffffffffffffe, 0xffffffffffffffec, 0x6
        TEST_RR 97, rem, 0x2, 0x14, 0xfffffffffffffffa
        TEST_RR 98, rem, 0xfffffffffffffffe, 0xffffffffffffffec, 0xfffffffffffffffa
        TEST_RR 99, rem, 0x0, 0x0, 0x5
        TEST_RR 100, rem, 0x7, 0x7, 0x0
        TEST_RR 101, rem, 0xfffffffffffffff9, 0xfffffffffffffff9, 0x0
        TEST_RR 102, rem, 0x0, 0x0, 0x0
        TEST_RR 103, rem, 0x0, 0x8000000000000000, 0xffffffffffffffff
        TEST_RR 104, rem, 0x0, 0x8000000000000000, 0x1
        TEST_RR 105, rem, 0x0, 0x8000000000000000, 0x8000000000000000
        TEST_RR 106, rem, 0x0, 0x7fffffffffffffff, 0xffffffffffffffff
        TEST_RR 107, rem, 0xffffffffffffffff, 0xffffffffffffffff, 0x8000000000000000
        TEST_RR 108, rem, 0xcdef, 0x123456789abcdef, 0x10000
        TEST_RR 109, rem, 0xffffffffffffffff, 0xfedcba9876543210, 0x3
        /* remu (div by zero: quotient all ones, remainder = dividend; overflow: MIN/-1) */
        TEST_RR 110, remu, 0x2, 0x14, 0x6
        TEST_RR 111, remu, 0x2, 0xffffffffffffffec, 0x6
        TEST_RR 112, remu, 0x14, 0x14, 0xfffffffffffffffa
        TEST_RR 113, remu, 0xffffffffffffffec, 0xffffffffffffffec, 0xfffffffffffffffa
        TEST_RR 114, remu, 0x0, 0x0, 0x5
        TEST_RR 115, remu, 0x7, 0x7, 0x0
        TEST_RR 116, remu, 0xfffffffffffffff9, 0xfffffffffffffff9, 0x0
        TEST_RR 117, remu, 0x0, 0x0, 0x0
        TEST_RR 118, remu, 0x8000000000000000, 0x8000000000000000, 0xffffffffffffffff
        TEST_RR 119, remu, 0x0, 0x8000000000000000, 0x1
        TEST_RR 120, remu, 0x0, 0x8000000000000000, 0x8000000000000000
        TEST_RR 121, remu, 0x7fffffffffffffff, 0x7fffffffffffffff, 0xffffffffffffffff
        TEST_RR 122, remu, 0x7fffffffffffffff, 0xffffffffffffffff, 0x8000000000000000
        TEST_RR 123, remu, 0xcdef, 0x123456789abcdef, 0x10000
        TEST_RR 124, remu, 0x0, 0xfedcba9876543210, 0x3
        /* divw (operands are the low 32 bits; result sign-extended) */
        TEST_RR 125, divw, 0x3, 0x14, 0x6
        TEST_RR 126, divw, 0xfffffffffffffffd, 0xffffffffffffffec, 0x6
        TEST_RR 127, divw, 0xfffffffffffffffd, 0x14, 0xfffffffffffffffa
        TEST_RR 128, divw, 0x3, 0xffffffffffffffec, 0xfffffffffffffffa
        TEST_RR 129, divw, 0xffffffffffffffff, 0x7, 0x0
        TEST_RR 130, divw, 0xffffffffffffffff, 0xfffffffffffffff9, 0x0
        TEST_RR 131, divw, 0xffffffffffffffff, 0x0, 0x0
        TEST_RR 132, divw, 0xffffffff80000000, 0xffffffff80000000, 0xffffffffffffffff
        TEST_RR 133, divw, 0xffffffff80000000, 0xffffffff80000000, 0xffffffff
        TEST_RR 134, divw, 0xffffffff80000000, 0xffffffff80000000, 0x1
        TEST_RR 135, divw, 0xffffffff80000001, 0x7fffffff, 0xffffffffffffffff
        TEST_RR 136, divw, 0x3, 0x123456780000000a, 0x3
        TEST_RR 137, divw, 0x3, 0xfffffffe00000014, 0x1000000006
        TEST_RR 138, divw, 0xffffffffffffffff, 0x7, 0x100000000
        TEST_RR 139, divw, 0xffffffffc0000000, 0x80000000, 0x2
        TEST_RR 140, divw, 0x0, 0xffffffff, 0x2
        /* divuw (operands are the low 32 bits; result sign-extended) */
        TEST_RR 141, divuw, 0x3, 0x14, 0x6
        TEST_RR 142, divuw, 0x2aaaaaa7, 0xffffffffffffffec, 0x6
        TEST_RR 143, divuw, 0x0, 0x14, 0xfffffffffffffffa
        TEST_RR 144, divuw, 0x0, 0xffffffffffffffec, 0xfffffffffffffffa
        TEST_RR 145, divuw, 0xffffffffffffffff, 0x7, 0x0
        TEST_RR 146, divuw, 0xffffffffffffffff, 0xfffffffffffffff9, 0x0
        TEST_RR 147, divuw, 0xffffffffffffffff, 0x0, 0x0
        TEST_RR 148, divuw, 0x0, 0xffffffff80000000, 0xffffffffffffffff
        TEST_RR 149, divuw, 0x0, 0xffffffff80000000, 0xffffffff
        TEST_RR 150, divuw, 0xffffffff80000000, 0xffffffff80000000, 0x1
        TEST_RR 151, divuw, 0x0, 0x7fffffff, 0xffffffffffffffff
        TEST_RR 152, divuw, 0x3, 0x123456780000000a, 0x3
        TEST_RR 153, divuw, 0x3, 0xfffffffe00000014, 0x1000000006
        TEST_RR 154, divuw, 0xffffffffffffffff, 0x7, 0x100000000
        TEST_RR 155, divuw, 0x40000000, 0x80000000, 0x2
        TEST_RR 156, divuw, 0x7fffffff, 0xffffffff, 0x2
        /* remw (operands are the low 32 bits; result sign-extended) */
        TEST_RR 157, remw, 0x2, 0x14, 0x6
        TEST_RR 158, remw, 0xfffffffffffffffe, 0xffffffffffffffec, 0x6
        TEST_RR 159, remw, 0x2, 0x14, 0xfffffffffffffffa
        TEST_RR 160, remw, 0xfffffffffffffffe, 0xffffffffffffffec, 0xfffffffffffffffa
        TEST_RR 161, remw, 0x7, 0x7, 0x0
        TEST_RR 162, remw, 0xfffffffffffffff9, 0xfffffffffffffff9, 0x0
        TEST_RR 163, remw, 0x0, 0x0, 0x0
        TEST_RR 164, remw, 0x0, 0xffffffff80000000, 0xffffffffffffffff
        TEST_RR 165, remw, 0x0, 0xffffffff80000000, 0xffffffff
        TEST_RR 166, remw, 0x0, 0xffffffff80000000, 0x1
        TEST_RR 167, remw, 0x0, 0x7fffffff, 0xffffffffffffffff
        TEST_RR 168, remw, 0x1, 0x123456780000000a, 0x3
        TEST_RR 169, remw, 0x2, 0xfffffffe00000014, 0x1000000006
        TEST_RR 170, remw, 0x7, 0x7, 0x100000000
        TEST_RR 171, remw, 0x0, 0x80000000, 0x2
        TEST_RR 172, remw, 0xffffffffffffffff, 0xffffffff, 0x2
        /* remuw (operands are the low 32 bits; result sign-extended) */
        TEST_RR 173, remuw, 0x2, 0x14, 0x6
        TEST_RR 174, remuw, 0x2, 0xffffffffffffffec, 0x6
        TEST_RR 175, remuw, 0x14, 0x14, 0xfffffffffffffffa
        TEST_RR 176, remuw, 0xffffffffffffffec, 0xffffffffffffffec, 0xfffffffffffffffa
        TEST_RR 177, remuw, 0x7, 0x7, 0x0
        TEST_RR 178, remuw, 0xfffffffffffffff9, 0xfffffffffffffff9, 0x0
        TEST_RR 179, remuw, 0x0, 0x0, 0x0
        TEST_RR 180, remuw, 0xffffffff80000000, 0xffffffff80000000, 0xffffffffffffffff
        TEST_RR 181, remuw, 0xffffffff80000000, 0xffffffff80000000, 0xffffffff
        TEST_RR 182, remuw, 0x0, 0xffffffff80000000, 0x1
        TEST_RR 183, remuw, 0x7fffffff, 0x7fffffff, 0xffffffffffffffff
        TEST_RR 184, remuw, 0x1, 0x123456780000000a, 0x3
        TEST_RR 185, remuw, 0x2, 0xfffffffe00000014, 0x1000000006
        TEST_RR 186, remuw, 0x7, 0x7, 0x100000000
        TEST_RR 187, remuw, 0x0, 0x80000000, 0x2
        TEST_RR 188, remuw, 0x1, 0xffffffff, 0x2
        /* next: 189 */
        /* rd overlapping a source */
        CASE 200
        li      a0, 6
        li      a1, 7
        mul     a0, a0, a1
        CHECK   a0, 42
        CASE 201
        li      a0, 100
        divu    a0, a0, a0
        CHECK   a0, 1
        CASE 202
        li      a0, 5
        mul     x0, a0, a0              /* x0 stays zero */
        CHECK   x0, 0
        TEST_END
