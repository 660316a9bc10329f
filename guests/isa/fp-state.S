/* fp-state.S: F/D architectural state around the arithmetic (hand-written).
 *  - mstatus.FS = Off makes FP instructions and the fcsr/frm/fflags CSRs illegal;
 *  - writes to f registers and fcsr set FS = Dirty and SD;
 *  - fcsr/frm/fflags views and masks;
 *  - reserved rounding modes (static 5/6, dynamic with frm 5..7) and other reserved encodings
 *    trap as illegal instructions without writing rd or fflags;
 *  - FLW NaN-boxes, FSW/FMV.X.W take the low 32 bits, FLD/FSD and the compressed forms
 *    (C.FLD, C.FSD, C.FLDSP, C.FSDSP) move 64 bits unchanged;
 *  - a mis-boxed single operand reads as the canonical NaN.
 */
#include "fp-test.h"

#define MSTATUS_SD (1 << 63)

/* Instruction that must trap as illegal and leave f10, a0 and fflags alone. */
.macro FP_ILLEGAL n, word
        CASE    \n
        li      t0, 0x123456789abcdef0
        fmv.d.x f10, t0
        mv      a0, t0
        csrwi   fflags, 0
        la      RESUME, 8f
7:      .word   \word
        j       fail
        .balign 4
8:      CHECK   T_CAUSE, CAUSE_ILLEGAL
        la      t6, 7b
        bne     T_EPC, t6, fail
        li      t6, \word
        csrr    t5, mtval
        beqz    t5, 9f          /* mtval may be 0 or the instruction bits */
        bne     t5, t6, fail
9:      fmv.x.d t1, f10
        li      t6, 0x123456789abcdef0
        bne     t1, t6, fail
        bne     a0, t6, fail
        csrr    t1, fflags
        bnez    t1, fail
.endm

/* OP-FP encoding with rd = f10/x10, rs1 = 11, rs2 field, rm. */
#define OPFP(f5, fmt, rs2, rm) ((((f5) << 27) | ((fmt) << 25) | ((rs2) << 20) | (11 << 15) | ((rm) << 12) | (10 << 7) | 0x53))
#define R4(opc, fmt, rm) ((13 << 27) | ((fmt) << 25) | (12 << 20) | (11 << 15) | ((rm) << 12) | (10 << 7) | (opc))

        TEST_BEGIN

        /* ---- FS = Off: everything FP is illegal */
        li      t0, MSTATUS_FS
        csrc    mstatus, t0
        TEST_TRAP 1, CAUSE_ILLEGAL, fadd.d f1, f2, f3
        TEST_TRAP 2, CAUSE_ILLEGAL, fmv.x.d a0, f1
        TEST_TRAP 3, CAUSE_ILLEGAL, fmv.w.x f1, a0
        TEST_TRAP 4, CAUSE_ILLEGAL, csrr a0, fcsr
        TEST_TRAP 5, CAUSE_ILLEGAL, csrw fflags, zero
        TEST_TRAP 6, CAUSE_ILLEGAL, csrr a0, frm
        la      s0, buf
        TEST_TRAP 7, CAUSE_ILLEGAL, flw f1, 0(s0)
        TEST_TRAP 8, CAUSE_ILLEGAL, fsd f1, 0(s0)
        TEST_TRAP 9, CAUSE_ILLEGAL, fmadd.s f1, f2, f3, f4
        CASE    10
        la      RESUME, 8f
        .option push
        .option rvc
7:      c.fld   f8, 0(s0)
        .option pop
        j       fail
        .balign 4
8:      CHECK   T_CAUSE, CAUSE_ILLEGAL
        TEST_TRAP 11, CAUSE_ILLEGAL, fcvt.d.l f1, a0

        /* ---- FS = Initial, then a write makes it Dirty (and SD) */
        CASE    20
        li      t0, (1 << 13)
        csrs    mstatus, t0
        csrr    t1, mstatus
        srli    t2, t1, 13
        andi    t2, t2, 3
        CHECK   t2, 1
        li      t0, 0x3ff0000000000000
        fmv.d.x f1, t0
        csrr    t1, mstatus
        srli    t2, t1, 13
        andi    t2, t2, 3
        CHECK   t2, 3
        srli    t2, t1, 63
        CHECK   t2, 1
        CASE    21              /* an fcsr write dirties too */
        li      t0, MSTATUS_FS
        csrc    mstatus, t0
        li      t0, (1 << 13)
        csrs    mstatus, t0
        csrwi   fflags, 1
        csrr    t1, mstatus
        srli    t2, t1, 13
        andi    t2, t2, 3
        CHECK   t2, 3
        CASE    22              /* an arithmetic result dirties */
        li      t0, MSTATUS_FS
        csrc    mstatus, t0
        li      t0, (1 << 13)
        csrs    mstatus, t0
        fadd.d  f2, f1, f1
        csrr    t1, mstatus
        srli    t2, t1, 13
        andi    t2, t2, 3
        CHECK   t2, 3

        /* ---- fcsr, frm, fflags */
        CASE    30
        li      t0, 0xff
        csrw    fcsr, t0
        csrr    t1, fcsr
        CHECK   t1, 0xff
        csrr    t1, frm
        CHECK   t1, 7
        csrr    t1, fflags
        CHECK   t1, 0x1f
        CASE    31
        li      t0, 0xfffffff00
        csrw    fcsr, t0
        csrr    t1, fcsr
        CHECK   t1, 0
        CASE    32
        li      t0, -1
        csrw    frm, t0
        csrr    t1, frm
        CHECK   t1, 7
        csrr    t1, fcsr
        CHECK   t1, 0xe0
        li      t0, -1
        csrw    fflags, t0
        csrr    t1, fcsr
        CHECK   t1, 0xff
        CASE    33              /* csrrs / csrrc on fflags */
        csrwi   fcsr, 0
        csrsi   fflags, 0x5
        csrrci  t1, fflags, 0x1
        CHECK   t1, 0x5
        csrr    t1, fcsr
        CHECK   t1, 0x4
        CASE    34              /* flags accrue: an inexact add ORs NX into what is there */
        li      t0, 0x3ff0000000000000
        fmv.d.x f1, t0
        li      t0, 0x3ca0000000000001
        fmv.d.x f2, t0
        csrwi   fflags, 0x10
        fadd.d  f3, f1, f2
        csrr    t1, fflags
        CHECK   t1, 0x11
        CASE    35              /* fsrm/fsflags swap */
        csrwi   fcsr, 0
        li      t0, 3
        fsrm    t1, t0
        CHECK   t1, 0
        frrm    t1
        CHECK   t1, 3
        csrwi   fcsr, 0

        /* ---- reserved rounding modes and encodings */
        li      t0, 0x3ff0000000000000
        fmv.d.x f11, t0
        fmv.d.x f12, t0
        fmv.d.x f13, t0
        csrwi   frm, 0
        FP_ILLEGAL 40, OPFP(0, 1, 12, 5)        /* fadd.d rm=5 */
        FP_ILLEGAL 41, OPFP(0, 0, 12, 6)        /* fadd.s rm=6 */
        FP_ILLEGAL 42, OPFP(0x0b, 1, 0, 5)      /* fsqrt.d rm=5 */
        FP_ILLEGAL 43, R4(0x43, 1, 5)           /* fmadd.d rm=5 */
        FP_ILLEGAL 44, R4(0x4f, 0, 6)           /* fnmadd.s rm=6 */
        FP_ILLEGAL 45, OPFP(0x18, 1, 2, 6)      /* fcvt.l.d rm=6 */
        FP_ILLEGAL 46, OPFP(0x1a, 0, 0, 5)      /* fcvt.s.w rm=5 */
        FP_ILLEGAL 47, OPFP(0x08, 0, 1, 5)      /* fcvt.s.d rm=5 */
        FP_ILLEGAL 48, OPFP(0x04, 1, 12, 3)     /* fsgnj funct3=3 */
        FP_ILLEGAL 49, OPFP(0x05, 0, 12, 2)     /* fmin/fmax funct3=2 */
        FP_ILLEGAL 50, OPFP(0x14, 1, 12, 3)     /* compare funct3=3 */
        FP_ILLEGAL 51, OPFP(0x0b, 1, 1, 0)      /* fsqrt rs2 != 0 */
        FP_ILLEGAL 52, OPFP(0x18, 0, 4, 0)      /* fcvt.int rs2 = 4 */
        FP_ILLEGAL 53, OPFP(0x1c, 1, 0, 2)      /* fmv.x / fclass funct3=2 */
        FP_ILLEGAL 54, OPFP(0x1e, 0, 0, 1)      /* fmv.w.x funct3=1 */
        FP_ILLEGAL 55, OPFP(0x06, 1, 12, 0)     /* funct5 6 */
        FP_ILLEGAL 56, OPFP(0x08, 1, 1, 0)      /* fcvt.d.d */
        FP_ILLEGAL 57, OPFP(0x00, 3, 12, 0)     /* fadd.q */
        FP_ILLEGAL 58, R4(0x43, 3, 0)           /* fmadd.q */
        csrwi   frm, 5
        FP_ILLEGAL 60, OPFP(0, 1, 12, 7)        /* dynamic, frm = 5 */
        csrwi   frm, 6
        FP_ILLEGAL 61, OPFP(2, 0, 12, 7)
        csrwi   frm, 7
        FP_ILLEGAL 62, R4(0x47, 1, 7)
        FP_ILLEGAL 63, OPFP(0x18, 1, 0, 7)      /* fcvt.w.d dyn */
        FP_ILLEGAL 64, OPFP(0x1a, 1, 2, 7)      /* fcvt.d.l dyn */
        CASE    65              /* the same with a valid frm executes */
        csrwi   frm, 1
        fadd.d  f10, f11, f12, dyn
        fmv.x.d t1, f10
        CHECK   t1, 0x4000000000000000
        csrwi   fcsr, 0

        /* ---- loads, stores and moves */
        la      s0, buf
        CASE    70              /* flw NaN-boxes */
        li      t0, 0x7f80000140490fdb
        sd      t0, 0(s0)
        flw     f1, 0(s0)
        fmv.x.d t1, f1
        CHECK   t1, 0xffffffff40490fdb
        flw     f2, 4(s0)
        fmv.x.d t1, f2
        CHECK   t1, 0xffffffff7f800001
        CASE    71              /* fsw stores the low 32 bits, boxed or not */
        li      t0, 0x12345678cafef00d
        fmv.d.x f3, t0
        sd      zero, 8(s0)
        fsw     f3, 8(s0)
        ld      t1, 8(s0)
        CHECK   t1, 0xcafef00d
        CASE    72              /* fmv.x.w: low 32 bits sign-extended, no box check */
        fmv.x.w t1, f3
        CHECK   t1, 0xffffffffcafef00d
        CASE    73              /* fld/fsd keep NaN payloads */
        li      t0, 0x7ff0000000000001
        sd      t0, 16(s0)
        fld     f4, 16(s0)
        fsd     f4, 24(s0)
        ld      t1, 24(s0)
        CHECK   t1, 0x7ff0000000000001
        CASE    74              /* compressed forms */
        .option push
        .option rvc
        li      t0, 0xfff4000000000123
        sd      t0, 32(s0)
        c.fld   f8, 32(s0)
        fmv.x.d t1, f8
        CHECK   t1, 0xfff4000000000123
        c.fsd   f8, 40(s0)
        ld      t1, 40(s0)
        CHECK   t1, 0xfff4000000000123
        mv      t2, sp
        addi    sp, s0, 48
        c.fsdsp f8, 8(sp)
        c.fldsp f9, 8(sp)
        mv      sp, t2
        .option pop
        fmv.x.d t1, f9
        CHECK   t1, 0xfff4000000000123
        ld      t1, 56(s0)
        CHECK   t1, 0xfff4000000000123
        CASE    75              /* a mis-boxed single operand is the canonical NaN */
        li      t0, 0x000000003f800000
        fmv.d.x f5, t0
        fadd.s  f6, f5, f5
        fmv.x.d t1, f6
        CHECK   t1, 0xffffffff7fc00000
        fsgnj.s f6, f5, f5
        fmv.x.d t1, f6
        CHECK   t1, 0xffffffff7fc00000
        fclass.s t1, f5
        CHECK   t1, (1 << 9)
        csrr    t1, fflags
        CHECK   t1, 0
        CASE    76              /* fmv.w.x boxes */
        li      t0, 0x123456783f800000
        fmv.w.x f7, t0
        fmv.x.d t1, f7
        CHECK   t1, 0xffffffff3f800000

        TEST_END

        .data
        .balign 64
buf:    .skip   128
