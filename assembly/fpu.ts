// fpu.ts: the F and D extensions' arithmetic unit (RISC-V unprivileged ISA, chapters "F" and "D":
// OP-FP and the fused multiply-adds; loads/stores, fcsr and mstatus.FS live in the core).
//
// Design. WebAssembly's float operations round to nearest-even and raise no flags, so every
// instruction takes one of two paths:
//
//  * A native fast path, only where the result and the flags are proven equal to IEEE 754's:
//    - binary64 add/sub: s = a + b and the TwoSum error e (exact: s + e = a + b, no overflow as
//      both |a|, |b| < 2^1020). e = 0 means exact; otherwise NX, and for RTZ/RDN/RUP the sign of e
//      says whether the neighbour of s is the right answer (s is the nearest, so the true value
//      lies between s and that neighbour). A tiny sum is always exact, so UF never arises.
//    - binary64 mul/div: when operand and result exponents keep the result normal, the integer
//      identity "mantissa(a) * mantissa(b) == mantissa(p) << k" (resp. q * b == a) decides
//      exactness and direction: both sides are below 2^107 and differ by less than 2^63, so
//      their low 64 bits (a wrapping i64.mul) give the exact signed difference.
//    - binary32 ops are computed in binary64: products of two binary32 values are exact there;
//      sums come with their TwoSum error; then the binary64 value is made "round-to-odd"
//      (moved one ulp towards the error when even), and rounding that to 24 bits in any mode is
//      the correct rounding of the exact value (Boldo & Melquiond: rounding to odd with two extra
//      bits makes a second rounding innocuous). That last rounding is integer work on the bits.
//      Division and square root round the binary64 quotient/root to binary32 natively (correct
//      for round-to-nearest since 53 >= 2*24 + 2) and check r * b == a (r * r == a), exact in
//      binary64, for the inexact flag and the direction in the other modes.
//    - binary64 FMA: the exact product as p + e (the same integer identity gives e), then a
//      three-term sum rounded once with TwoSum and round-to-odd (argument at fastFmaD).
//    - sqrt (both formats): native root, correct for RNE, with an exact square comparison for
//      the flags and the directed modes (a square root never over/underflows or ties).
//    Every fast path bails out (returns NOFAST) near the overflow and underflow thresholds and
//    for NaN/infinite operands.
//  * softfloat.ts, an integer-only implementation of every operation (single rounding via
//    `roundPack`, tininess after rounding), for everything else: NaNs, infinities, results near
//    or beyond the range limits, conversions, inexact RMM cases of binary64 add and FMA.
//
// No allocation: plain functions, locals, globals and load/store on the hart's register files.

import { XREG, FREG, H_FFLAGS, H_FRM } from "./layout";
import * as sf from "./softfloat";
import { RNE, RTZ, RDN, RUP, RMM, NX, NV, FMT_S, FMT_D, CANON_S, CANON_D } from "./softfloat";

const NOFAST: u64 = 0xffffffffffffffff; // never a fast-path result (a NaN encoding)
const BOX: u64 = 0xffffffff00000000;
const ABS_D: u64 = 0x7fffffffffffffff;
const FRAC_D: u64 = 0x000fffffffffffff;
const HID_D: u64 = 0x0010000000000000;

// ---------------------------------------------------------------- register access

// @ts-ignore: decorator
@inline
function getD(r: u32): u64 {
  return load<u64>(FREG + (<usize>r << 3));
}

// A binary32 operand: improperly NaN-boxed values read as the canonical NaN.
// @ts-ignore: decorator
@inline
function getS(r: u32): u64 {
  let v = load<u64>(FREG + (<usize>r << 3));
  return (v >> 32) == 0xffffffff ? v & 0xffffffff : CANON_S;
}

// @ts-ignore: decorator
@inline
function setF(r: u32, v: u64, fmt: u32): void {
  store<u64>(FREG + (<usize>r << 3), fmt == FMT_D ? v : v | BOX);
}

// @ts-ignore: decorator
@inline
function setX(r: u32, v: u64): void {
  store<u64>(XREG + (<usize>r << 3), v);
}

// @ts-ignore: decorator
@inline
function getX(r: u32): u64 {
  return load<u64>(XREG + (<usize>r << 3));
}

// ---------------------------------------------------------------- fast-path helpers

// Moves the encoding `bits` (sign `neg`) one step when the exact value lies on side `dir`
// (sign of exact - value, non-zero) and the mode wants the neighbour on that side.
// Callers guarantee the neighbour is a finite normal number.
// @ts-ignore: decorator
@inline
function stepDir(bits: u64, neg: bool, dir: i32, rm: u32): u64 {
  if (rm == RTZ) {
    if ((dir > 0) == neg) bits--;
  } else if (rm == RDN) {
    if (dir < 0) bits += neg ? 1 : -1;
  } else if (rm == RUP) {
    if (dir > 0) bits += neg ? -1 : 1;
  }
  return bits;
}

// Rounds a binary64 s (close to the exact result x; dir = sign of x - s, 0 if s == x) to binary32
// in mode rm. NOFAST unless 2^-126 <= |s| < 2^127 (then the result is normal, finite, not tiny).
function roundS(s: f64, dir: i32, rm: u32): u64 {
  let sb = reinterpret<u64>(s);
  if (dir != 0 && (sb & 1) == 0) {
    // round to odd: the neighbour towards x
    sb += (dir > 0) == (<i64>sb >= 0) ? 1 : -1;
  }
  let mag = sb & ABS_D;
  if (mag < (<u64>(1023 - 126) << 52) || mag >= (<u64>(1023 + 127) << 52)) return NOFAST;
  let neg = sb >> 63;
  let m = (mag >> 29) - (<u64>(1023 - 127) << 23);
  let rb = mag & 0x1fffffff;
  if (rb != 0) {
    sf.flags |= NX;
    if (rm == RNE) {
      if (rb > 0x10000000 || (rb == 0x10000000 && (m & 1) != 0)) m++;
    } else if (rm == RMM) {
      if (rb >= 0x10000000) m++;
    } else if (rm == RDN) {
      m += neg;
    } else if (rm == RUP) {
      m += neg ^ 1;
    }
  }
  return (neg << 31) | m;
}

// Exact zero results of a sum: +0 unless both addends are -0, or -0 in RDN (IEEE 754 6.3).
// @ts-ignore: decorator
@inline
function zeroSum(s: f64, a: f64, b: f64, rm: u32): f64 {
  if (rm == RDN) return (reinterpret<u64>(a) | reinterpret<u64>(b)) >> 63 != 0 ? -0.0 : 0.0;
  return s;
}

// binary32 a + b (op 0), a * b (op 2), a / b (op 3) on encodings that are not NaN/infinite.
function fastBinS(op: u32, ab: u64, bb: u64, rm: u32): u64 {
  if ((ab & 0x7f800000) == 0x7f800000 || (bb & 0x7f800000) == 0x7f800000) return NOFAST;
  let a = <f64>reinterpret<f32>(<u32>ab);
  let b = <f64>reinterpret<f32>(<u32>bb);
  if (op == 0) {
    let s = a + b;
    if (s == 0) return <u64>reinterpret<u32>(<f32>zeroSum(s, a, b, rm));
    let bv = s - a;
    let e = (a - (s - bv)) + (b - bv);
    return roundS(s, e > 0 ? 1 : e < 0 ? -1 : 0, rm);
  }
  if (op == 2) {
    let p = a * b; // exact
    if (p == 0) return <u64>reinterpret<u32>(<f32>p);
    return roundS(p, 0, rm);
  }
  // division
  if (b == 0) return NOFAST;
  if (a == 0) return <u64>reinterpret<u32>(<f32>(a / b));
  let r = <f32>(a / b); // correctly rounded to nearest
  let rb = <u64>reinterpret<u32>(r);
  let mag = rb & 0x7fffffff;
  if (mag <= 0x00800000 || mag >= 0x7f7fffff) return NOFAST;
  let t = <f64>r * b; // exact
  if (t == a) return rb;
  sf.flags |= NX;
  // sign of (a / b - r) = sign(a - t) * sign(b)
  let dir: i32 = (a > t) == (b > 0) ? 1 : -1;
  return stepDir(rb, (rb >> 31) != 0, dir, rm);
}

// binary32 fused multiply-add: negP/negC negate the product / addend.
function fastFmaS(ab: u64, bb: u64, cb: u64, negP: u32, negC: u32, rm: u32): u64 {
  if ((ab & 0x7f800000) == 0x7f800000 || (bb & 0x7f800000) == 0x7f800000 || (cb & 0x7f800000) == 0x7f800000) return NOFAST;
  let p = <f64>reinterpret<f32>(<u32>ab) * <f64>reinterpret<f32>(<u32>bb); // exact
  let c = <f64>reinterpret<f32>(<u32>cb);
  if (negP) p = -p;
  if (negC) c = -c;
  let s = p + c;
  if (s == 0) return <u64>reinterpret<u32>(<f32>zeroSum(s, p, c, rm));
  let bv = s - p;
  let e = (p - (s - bv)) + (c - bv);
  return roundS(s, e > 0 ? 1 : e < 0 ? -1 : 0, rm);
}

// binary64 a + b (b already negated for FSUB).
function fastAddD(ab: u64, bb: u64, rm: u32): u64 {
  if (((ab >> 52) & 0x7ff) >= 0x7fb || ((bb >> 52) & 0x7ff) >= 0x7fb) return NOFAST;
  let a = reinterpret<f64>(ab);
  let b = reinterpret<f64>(bb);
  let s = a + b;
  if (s == 0) return reinterpret<u64>(zeroSum(s, a, b, rm));
  let bv = s - a;
  let e = (a - (s - bv)) + (b - bv);
  let sb = reinterpret<u64>(s);
  if (e == 0) return sb;
  if (rm == RMM) return NOFAST; // may be a tie
  sf.flags |= NX;
  return stepDir(sb, s < 0, e > 0 ? 1 : -1, rm);
}

function fastMulD(ab: u64, bb: u64, rm: u32): u64 {
  let ea = <i32>((ab >> 52) & 0x7ff);
  let eb = <i32>((bb >> 52) & 0x7ff);
  if (ea == 0x7ff || eb == 0x7ff) return NOFAST;
  if ((ab & ABS_D) == 0 || (bb & ABS_D) == 0) return (ab ^ bb) & ~ABS_D; // exact signed zero
  if (ea == 0 || eb == 0) return NOFAST;
  let es = ea + eb;
  if (es < 1025 || es > 3067) return NOFAST; // result exponent field in [2, 2045]
  let pb = reinterpret<u64>(reinterpret<f64>(ab) * reinterpret<f64>(bb));
  let ma = (ab & FRAC_D) | HID_D;
  let mb = (bb & FRAC_D) | HID_D;
  let mp = (pb & FRAC_D) | HID_D;
  let sh = <i32>((pb >> 52) & 0x7ff) - es + 1075; // 52 or 53
  let diff = <i64>(ma * mb - (mp << <u64>sh)); // exact product minus p, in product units
  if (diff == 0) return pb;
  sf.flags |= NX;
  let neg = (pb >> 63) != 0;
  let dir: i32 = (diff > 0) != neg ? 1 : -1;
  if (rm == RMM) {
    // a tie rounded to even towards zero must go away from zero
    if (diff == <i64>1 << <i64>(sh - 1)) return pb + 1;
    return pb;
  }
  return stepDir(pb, neg, dir, rm);
}

function fastDivD(ab: u64, bb: u64, rm: u32): u64 {
  let ea = <i32>((ab >> 52) & 0x7ff);
  let eb = <i32>((bb >> 52) & 0x7ff);
  if (ea == 0x7ff || eb == 0x7ff || eb == 0) return NOFAST;
  if ((ab & ABS_D) == 0) return (ab ^ bb) & ~ABS_D;
  if (ea == 0) return NOFAST;
  let ed = ea - eb;
  if (ed < 3 - 1023 || ed > 2044 - 1023) return NOFAST; // quotient exponent field in [2, 2044]
  let qb = reinterpret<u64>(reinterpret<f64>(ab) / reinterpret<f64>(bb));
  let ma = (ab & FRAC_D) | HID_D;
  let mb = (bb & FRAC_D) | HID_D;
  let mq = (qb & FRAC_D) | HID_D;
  let k = ed - <i32>((qb >> 52) & 0x7ff) + 1075; // 52 or 53
  let diff = <i64>(mq * mb - (ma << <u64>k)); // |q| * |b| - |a|, scaled
  if (diff == 0) return qb;
  sf.flags |= NX;
  let neg = (qb >> 63) != 0;
  // diff > 0: |q| too large, the exact quotient lies towards zero
  let dir: i32 = (diff > 0) == neg ? 1 : -1;
  return stepDir(qb, neg, dir, rm);
}

// binary64 fused multiply-add, negP/negC negating the product / addend.
// p = RN(a * b) and its exact error e (from the integer identity of fastMulD, scaled by a power
// of two), so a * b + c = p + e + c exactly. Then the three-term sum is rounded once:
//   th + tl = c + p (TwoSum), u + v = tl + e (TwoSum), w = u made round-to-odd with v,
//   z = RN(th + w) and f = th + w - z (TwoSum).
// Either c + p is exact (Sterbenz: tl = 0, so w = e and th + w is the exact value), or
// |tl + e| < 2^-50 |th|: then every rounding boundary near th is a multiple of ulp(th) / 4, which
// is even on w's 53-bit grid, so the round-to-odd w lies on the same side of every boundary as
// the exact tl + e, and z (and the sign of f, for the directed modes) is that of the exact sum.
// Exponent limits keep e normal, everything finite, and bail out for tiny results.
function fastFmaD(ab: u64, bb: u64, cb: u64, negP: u32, negC: u32, rm: u32): u64 {
  let ea = <i32>((ab >> 52) & 0x7ff);
  let eb = <i32>((bb >> 52) & 0x7ff);
  let ec = <i32>((cb >> 52) & 0x7ff);
  if (ea == 0 || eb == 0 || ea == 0x7ff || eb == 0x7ff || ec >= 1923) return NOFAST;
  let es = ea + eb;
  if (es < 1146 || es > 2946) return NOFAST; // |a * b| in [2^-900, 2^901]
  let p = reinterpret<f64>(ab) * reinterpret<f64>(bb);
  let pb = reinterpret<u64>(p);
  let ma = (ab & FRAC_D) | HID_D;
  let mb = (bb & FRAC_D) | HID_D;
  let mp = (pb & FRAC_D) | HID_D;
  let sh = <i32>((pb >> 52) & 0x7ff) - es + 1075;
  let diff = <i64>(ma * mb - (mp << <u64>sh)); // |diff| <= 2^52: exact as a double
  // the magnitudes' difference, scaled by 2^(es - 2150) and given p's sign: e = a * b - p
  let e = <f64>diff * reinterpret<f64>(((pb >> 63) << 63) | (<u64>(es - 1127) << 52));
  let c = reinterpret<f64>(cb);
  if (negP) {
    p = -p;
    e = -e;
  }
  if (negC) c = -c;
  let th = c + p;
  let bv = th - c;
  let tl = (c - (th - bv)) + (p - bv);
  let u = tl + e;
  bv = u - tl;
  let v = (tl - (u - bv)) + (e - bv);
  let w = u;
  if (v != 0) {
    let wb = reinterpret<u64>(u);
    if ((wb & 1) == 0) wb += (v > 0) == (u > 0) ? 1 : -1;
    w = reinterpret<f64>(wb);
  }
  let z = th + w;
  bv = z - th;
  let f = (th - (z - bv)) + (w - bv);
  if (f == 0 && v != 0) return NOFAST; // cannot happen (see above); stay safe
  if (z == 0) return rm == RDN ? 0x8000000000000000 : 0; // exact zero with a non-zero product
  let zb = reinterpret<u64>(z);
  if ((zb & ABS_D) < (<u64>2 << 52)) return NOFAST; // possibly tiny
  if (f == 0) return zb;
  if (rm == RMM) return NOFAST; // may be a tie
  sf.flags |= NX;
  return stepDir(zb, z < 0, f > 0 ? 1 : -1, rm);
}

// ---------------------------------------------------------------- comparisons, classes

// @ts-ignore: decorator
@inline
function isNaN(v: u64, fmt: u32): bool {
  return fmt == FMT_D ? (v & ABS_D) > 0x7ff0000000000000 : (v & 0x7fffffff) > 0x7f800000;
}

// @ts-ignore: decorator
@inline
function isSNaN(v: u64, fmt: u32): bool {
  return fmt == FMT_D
    ? (v & ABS_D) > 0x7ff0000000000000 && (v & 0x0008000000000000) == 0
    : (v & 0x7fffffff) > 0x7f800000 && (v & 0x00400000) == 0;
}

// @ts-ignore: decorator
@inline
function toF64(v: u64, fmt: u32): f64 {
  return fmt == FMT_D ? reinterpret<f64>(v) : <f64>reinterpret<f32>(<u32>v);
}

function fclass(v: u64, fmt: u32): u64 {
  let neg: bool, e: u64, f: u64, emax: u64, qbit: u64;
  if (fmt == FMT_D) {
    neg = (v >> 63) != 0;
    e = (v >> 52) & 0x7ff;
    f = v & FRAC_D;
    emax = 0x7ff;
    qbit = 0x0008000000000000;
  } else {
    neg = ((v >> 31) & 1) != 0;
    e = (v >> 23) & 0xff;
    f = v & 0x7fffff;
    emax = 0xff;
    qbit = 0x400000;
  }
  if (e == emax) {
    if (f == 0) return neg ? 1 << 0 : 1 << 7;
    return (f & qbit) != 0 ? 1 << 9 : 1 << 8;
  }
  if (e == 0) {
    if (f == 0) return neg ? 1 << 3 : 1 << 4;
    return neg ? 1 << 2 : 1 << 5;
  }
  return neg ? 1 << 1 : 1 << 6;
}

// FMIN/FMAX (ISA 2.2 semantics: -0 < +0; one NaN operand gives the other; NV on sNaN only).
function minMax(a: u64, b: u64, isMax: bool, fmt: u32): u64 {
  let an = isNaN(a, fmt), bn = isNaN(b, fmt);
  if (an || bn) {
    if (isSNaN(a, fmt) || isSNaN(b, fmt)) sf.flags |= NV;
    if (an && bn) return fmt == FMT_D ? CANON_D : CANON_S;
    return an ? b : a;
  }
  let x = toF64(a, fmt), y = toF64(b, fmt);
  if (x == y) {
    // equal, or zeros of either sign: min takes the negative sign, max the positive
    return isMax ? a & b : a | b;
  }
  return (x < y) != isMax ? a : b;
}

// ---------------------------------------------------------------- the instruction

// Resolves the rm field; 0xff if reserved (5, 6) or dynamic with an invalid frm.
// @ts-ignore: decorator
@inline
function resolveRm(f3: u32): u32 {
  if (f3 == 7) f3 = <u32>load<u64>(H_FRM);
  return f3 <= 4 ? f3 : 0xff;
}

// Executes one OP-FP (opcode 0x53) or fused multiply-add (0x43, 0x47, 0x4b, 0x4f) instruction.
// Returns false (and changes nothing) when the encoding is illegal.
export function execFp(insn: u32): bool {
  let opcode = insn & 0x7f;
  let rd = (insn >> 7) & 31;
  let f3 = (insn >> 12) & 7;
  let rs1 = (insn >> 15) & 31;
  let rs2 = (insn >> 20) & 31;
  let fmt = (insn >> 25) & 3;
  if (fmt > 1) return false; // H and Q are not implemented
  sf.flags = 0;

  if (opcode != 0x53) {
    if ((opcode & 0x73) != 0x43) return false;
    let rm = resolveRm(f3);
    if (rm > 4) return false;
    sf.rmode = rm;
    let k = (opcode >> 2) & 3; // 0 FMADD, 1 FMSUB, 2 FNMSUB, 3 FNMADD
    let negC = k & 1, negP = k >> 1;
    let rs3 = insn >> 27;
    let r: u64;
    if (fmt == FMT_S) {
      let a = getS(rs1), b = getS(rs2), c = getS(rs3);
      r = fastFmaS(a, b, c, negP, negC, rm);
      if (r == NOFAST) r = sf.sfFma(a, b, c, negP, negC, FMT_S);
    } else {
      let a = getD(rs1), b = getD(rs2), c = getD(rs3);
      r = fastFmaD(a, b, c, negP, negC, rm);
      if (r == NOFAST) r = sf.sfFma(a, b, c, negP, negC, FMT_D);
    }
    setF(rd, r, fmt);
    commitFlags();
    return true;
  }

  let f5 = insn >> 27;
  switch (f5) {
    case 0x00: // FADD
    case 0x01: // FSUB
    case 0x02: // FMUL
    case 0x03: {
      // FDIV
      let rm = resolveRm(f3);
      if (rm > 4) return false;
      sf.rmode = rm;
      let r: u64;
      if (fmt == FMT_D) {
        let a = getD(rs1), b = getD(rs2);
        if (f5 <= 1) {
          if (f5 == 1 && !isNaN(b, FMT_D)) b ^= 0x8000000000000000;
          r = fastAddD(a, b, rm);
          if (r == NOFAST) r = sf.sfAdd(a, b, 0, FMT_D);
        } else if (f5 == 2) {
          r = fastMulD(a, b, rm);
          if (r == NOFAST) r = sf.sfMul(a, b, FMT_D);
        } else {
          r = fastDivD(a, b, rm);
          if (r == NOFAST) r = sf.sfDiv(a, b, FMT_D);
        }
      } else {
        let a = getS(rs1), b = getS(rs2);
        if (f5 == 1 && !isNaN(b, FMT_S)) b ^= 0x80000000;
        r = fastBinS(f5 == 1 ? 0 : f5, a, b, rm);
        if (r == NOFAST) {
          if (f5 <= 1) r = sf.sfAdd(a, b, 0, FMT_S);
          else if (f5 == 2) r = sf.sfMul(a, b, FMT_S);
          else r = sf.sfDiv(a, b, FMT_S);
        }
      }
      setF(rd, r, fmt);
      break;
    }
    case 0x0b: {
      // FSQRT
      if (rs2 != 0) return false;
      let rm = resolveRm(f3);
      if (rm > 4) return false;
      sf.rmode = rm;
      setF(rd, sf.sfSqrt(fmt == FMT_D ? getD(rs1) : getS(rs1), fmt), fmt);
      break;
    }
    case 0x04: {
      // FSGNJ, FSGNJN, FSGNJX
      if (f3 > 2) return false;
      let a = fmt == FMT_D ? getD(rs1) : getS(rs1);
      let b = fmt == FMT_D ? getD(rs2) : getS(rs2);
      let sb: u64 = fmt == FMT_D ? 0x8000000000000000 : 0x80000000;
      let s = f3 == 0 ? b & sb : f3 == 1 ? ~b & sb : (a ^ b) & sb;
      setF(rd, (a & ~sb) | s, fmt);
      break;
    }
    case 0x05: {
      // FMIN, FMAX
      if (f3 > 1) return false;
      let a = fmt == FMT_D ? getD(rs1) : getS(rs1);
      let b = fmt == FMT_D ? getD(rs2) : getS(rs2);
      setF(rd, minMax(a, b, f3 == 1, fmt), fmt);
      break;
    }
    case 0x08: {
      // FCVT.S.D (fmt S, rs2 = 1), FCVT.D.S (fmt D, rs2 = 0)
      if (rs2 != (fmt ^ 1)) return false;
      let rm = resolveRm(f3);
      if (rm > 4) return false;
      sf.rmode = rm;
      if (fmt == FMT_S) setF(rd, sf.sfCvtFF(getD(rs1), FMT_D, FMT_S), FMT_S);
      else setF(rd, sf.sfCvtFF(getS(rs1), FMT_S, FMT_D), FMT_D);
      break;
    }
    case 0x14: {
      // FLE (0), FLT (1), FEQ (2)
      if (f3 > 2) return false;
      let a = fmt == FMT_D ? getD(rs1) : getS(rs1);
      let b = fmt == FMT_D ? getD(rs2) : getS(rs2);
      let r: u64 = 0;
      if (isNaN(a, fmt) || isNaN(b, fmt)) {
        // FEQ is a quiet comparison, FLT/FLE signalling
        if (f3 != 2 || isSNaN(a, fmt) || isSNaN(b, fmt)) sf.flags |= NV;
      } else {
        let x = toF64(a, fmt), y = toF64(b, fmt);
        r = f3 == 2 ? <u64>(x == y) : f3 == 1 ? <u64>(x < y) : <u64>(x <= y);
      }
      setX(rd, r);
      break;
    }
    case 0x18: {
      // FCVT.W/WU/L/LU.fmt
      if (rs2 > 3) return false;
      let rm = resolveRm(f3);
      if (rm > 4) return false;
      sf.rmode = rm;
      setX(rd, sf.sfToInt(fmt == FMT_D ? getD(rs1) : getS(rs1), fmt, rs2));
      break;
    }
    case 0x1a: {
      // FCVT.fmt.W/WU/L/LU
      if (rs2 > 3) return false;
      let rm = resolveRm(f3);
      if (rm > 4) return false;
      sf.rmode = rm;
      setF(rd, sf.sfFromInt(getX(rs1), rs2, fmt), fmt);
      break;
    }
    case 0x1c: {
      if (rs2 != 0) return false;
      if (f3 == 0) {
        // FMV.X.W (the low 32 bits as they are, sign-extended), FMV.X.D
        let v = getD(rs1);
        setX(rd, fmt == FMT_D ? v : <u64>(<i64>(<i32>(<u32>v))));
      } else if (f3 == 1) {
        // FCLASS
        setX(rd, fclass(fmt == FMT_D ? getD(rs1) : getS(rs1), fmt));
      } else return false;
      break;
    }
    case 0x1e: {
      // FMV.W.X, FMV.D.X
      if (rs2 != 0 || f3 != 0) return false;
      let v = getX(rs1);
      setF(rd, fmt == FMT_D ? v : v & 0xffffffff, fmt);
      break;
    }
    default:
      return false;
  }
  commitFlags();
  return true;
}

// @ts-ignore: decorator
@inline
function commitFlags(): void {
  let f = sf.flags;
  if (f != 0) store<u64>(H_FFLAGS, load<u64>(H_FFLAGS) | <u64>f);
}
