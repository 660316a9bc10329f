// softfloat.ts: the exact, integer-only reference path of the F/D unit (IEEE 754-2008 binary32 and
// binary64 with the RISC-V choices: canonical NaN results, tininess detected after rounding).
//
// Every operation unpacks its operands into (sign, exponent, significand) with the significand
// normalised so that its leading one sits at bit 62 of a u64 (value = sig * 2^(exp - 62)); the
// exact result is computed in that form (128-bit intermediates as hi/lo u64 pairs where needed),
// with every bit shifted out ORed into bit 0 ("jamming", so the rounding sees a sticky bit), and
// `roundPack` rounds once to the destination format in the current rounding mode and raises the
// flags. A binary32 operand unpacks to the same form, so one implementation serves both formats;
// only `roundPack` knows the destination format.
//
// fpu.ts calls this for whatever its native fast paths cannot prove (NaNs, infinities, subnormal
// results, overflow, fused multiply-add, conversions ...). The state is two globals: `rmode` (the
// resolved rounding mode, set by the caller) and `flags` (ORed into, read and cleared by the caller).

export const RNE: u32 = 0;
export const RTZ: u32 = 1;
export const RDN: u32 = 2;
export const RUP: u32 = 3;
export const RMM: u32 = 4;

export const NV: u32 = 16;
export const DZ: u32 = 8;
export const OF: u32 = 4;
export const UF: u32 = 2;
export const NX: u32 = 1;

export const FMT_S: u32 = 0;
export const FMT_D: u32 = 1;

export const CANON_S: u64 = 0x7fc00000;
export const CANON_D: u64 = 0x7ff8000000000000;

export let rmode: u32 = RNE;
export let flags: u32 = 0;

// Operand classes.
const ZERO: i32 = 0;
const FINITE: i32 = 1;
const INF: i32 = 2;
const QNAN: i32 = 3;
const SNAN: i32 = 4;

const BIT62: u64 = 0x4000000000000000;
const BIT63: u64 = 0x8000000000000000;

// ---------------------------------------------------------------- helpers

// The low half of the last mul128.
let mLo: u64 = 0;

// 64 x 64 -> 128-bit product; returns the high half, leaves the low half in mLo.
// @ts-ignore: decorator
@inline
export function mul128(a: u64, b: u64): u64 {
  let a0 = a & 0xffffffff, a1 = a >> 32;
  let b0 = b & 0xffffffff, b1 = b >> 32;
  let p00 = a0 * b0, p01 = a0 * b1, p10 = a1 * b0, p11 = a1 * b1;
  let mid = (p00 >> 32) + (p01 & 0xffffffff) + (p10 & 0xffffffff);
  mLo = (mid << 32) | (p00 & 0xffffffff);
  return p11 + (p01 >> 32) + (p10 >> 32) + (mid >> 32);
}

export function mul128Lo(): u64 {
  return mLo;
}

// x >> n with every bit shifted out ORed into bit 0 (n >= 0, any size).
// @ts-ignore: decorator
@inline
function shiftRightJam(x: u64, n: i32): u64 {
  if (n <= 0) return x;
  if (n >= 64) return x != 0 ? 1 : 0;
  return (x >> <u64>n) | ((x << <u64>(64 - n)) != 0 ? 1 : 0);
}

// 128-bit shift right with jamming; the result's high half in the return value, low half in jLo.
let jLo: u64 = 0;
function shiftRightJam128(hi: u64, lo: u64, n: i32): u64 {
  if (n <= 0) {
    jLo = lo;
    return hi;
  }
  if (n < 64) {
    jLo = (lo >> <u64>n) | (hi << <u64>(64 - n)) | ((lo << <u64>(64 - n)) != 0 ? 1 : 0);
    return hi >> <u64>n;
  }
  if (n == 64) {
    jLo = hi | (lo != 0 ? 1 : 0);
    return 0;
  }
  if (n < 128) {
    jLo = (hi >> <u64>(n - 64)) | ((hi << <u64>(128 - n)) != 0 || lo != 0 ? 1 : 0);
    return 0;
  }
  jLo = (hi | lo) != 0 ? 1 : 0;
  return 0;
}

// ---------------------------------------------------------------- unpacking

// Result of the last unpack.
let uSign: u32 = 0;
let uExp: i32 = 0;
let uSig: u64 = 0;
let uCls: i32 = 0;

// Unpacks a binary64 (fmt D) or binary32 (fmt S, in the low 32 bits) encoding.
function unpack(bits: u64, fmt: u32): void {
  let e: i32, f: u64;
  if (fmt == FMT_D) {
    uSign = <u32>(bits >> 63);
    e = <i32>((bits >> 52) & 0x7ff);
    f = bits & 0xfffffffffffff;
    if (e == 0x7ff) {
      uCls = f == 0 ? INF : (f >> 51) != 0 ? QNAN : SNAN;
      return;
    }
    if (e != 0) {
      uCls = FINITE;
      uExp = e - 1023;
      uSig = (f | 0x10000000000000) << 10;
      return;
    }
    if (f == 0) {
      uCls = ZERO;
      return;
    }
    // subnormal: value = f * 2^-1074
    let lz = <i32>clz(f);
    uCls = FINITE;
    uExp = 63 - lz - 1074;
    uSig = f << <u64>(lz - 1);
    return;
  }
  uSign = <u32>((bits >> 31) & 1);
  e = <i32>((bits >> 23) & 0xff);
  f = bits & 0x7fffff;
  if (e == 0xff) {
    uCls = f == 0 ? INF : (f >> 22) != 0 ? QNAN : SNAN;
    return;
  }
  if (e != 0) {
    uCls = FINITE;
    uExp = e - 127;
    uSig = (f | 0x800000) << 39;
    return;
  }
  if (f == 0) {
    uCls = ZERO;
    return;
  }
  let lz = <i32>clz(f);
  uCls = FINITE;
  uExp = 63 - lz - 149;
  uSig = f << <u64>(lz - 1);
}

// ---------------------------------------------------------------- packing

export function canonNaN(fmt: u32): u64 {
  return fmt == FMT_D ? CANON_D : CANON_S;
}

export function packInf(sign: u32, fmt: u32): u64 {
  return fmt == FMT_D ? (<u64>sign << 63) | 0x7ff0000000000000 : (<u64>sign << 31) | 0x7f800000;
}

export function packZero(sign: u32, fmt: u32): u64 {
  return fmt == FMT_D ? <u64>sign << 63 : <u64>sign << 31;
}

// Rounds sign * sig * 2^(exp - 62) (sig != 0, leading one at bit 62, bit 0 sticky) to the format
// in the current rounding mode; raises NX, UF (tiny after rounding and inexact), OF.
export function roundPack(sign: u32, exp: i32, sig: u64, fmt: u32): u64 {
  let p: i32 = fmt == FMT_D ? 52 : 23;
  let emin: i32 = fmt == FMT_D ? -1022 : -126;
  let emax: i32 = fmt == FMT_D ? 1023 : 127;
  let sh = <u64>(62 - p);
  let mask: u64 = (<u64>1 << sh) - 1;
  let half: u64 = <u64>1 << (sh - 1);
  let rm = rmode;
  let inc: u64 = 0;
  if (rm == RNE || rm == RMM) inc = half;
  else if (rm == RDN) inc = sign != 0 ? mask : 0;
  else if (rm == RUP) inc = sign != 0 ? 0 : mask;

  let tiny = false;
  if (exp < emin) {
    // Tininess after rounding: the result rounded to the format's precision with an unbounded
    // exponent would still be below 2^emin. Only exp == emin-1 can round up to 2^emin.
    tiny = exp < emin - 1 || sig + inc < BIT63;
    sig = shiftRightJam(sig, emin - exp);
    exp = emin;
  }
  let rb = sig & mask;
  let m = (sig + inc) >> sh;
  if (rb != 0) {
    flags |= NX;
    if (tiny) flags |= UF;
    if (rm == RNE && rb == half) m &= ~(<u64>1);
  }
  if (m >= (<u64>2 << <u64>p)) {
    m >>= 1;
    exp++;
  }
  if (exp > emax) {
    flags |= OF | NX;
    let toInf = rm == RNE || rm == RMM || (rm == RDN && sign != 0) || (rm == RUP && sign == 0);
    if (toInf) return packInf(sign, fmt);
    // the largest finite magnitude
    return fmt == FMT_D ? (<u64>sign << 63) | 0x7fefffffffffffff : (<u64>sign << 31) | 0x7f7fffff;
  }
  let fracMask: u64 = (<u64>1 << <u64>p) - 1;
  let field: u64 = (m >> <u64>p) != 0 ? <u64>(exp + (fmt == FMT_D ? 1023 : 127)) : 0;
  if (fmt == FMT_D) return (<u64>sign << 63) | (field << 52) | (m & fracMask);
  return (<u64>sign << 31) | (field << 23) | (m & fracMask);
}

// Rounds and packs a normalised (sign, exp, sig) of any magnitude; a zero sig packs as zero.
function pack(sign: u32, exp: i32, sig: u64, fmt: u32): u64 {
  if (sig == 0) return packZero(sign, fmt);
  return roundPack(sign, exp, sig, fmt);
}

// ---------------------------------------------------------------- add / sub

// Adds two finite non-zero normalised values and rounds.
function addCore(aS: u32, aE: i32, aSig: u64, bS: u32, bE: i32, bSig: u64, fmt: u32): u64 {
  // order so that |a| >= |b|
  if (aE < bE || (aE == bE && aSig < bSig)) {
    let ts = aS; aS = bS; bS = ts;
    let te = aE; aE = bE; bE = te;
    let tg = aSig; aSig = bSig; bSig = tg;
  }
  bSig = shiftRightJam(bSig, aE - bE);
  if (aS == bS) {
    let s = aSig + bSig;
    if (s >= BIT63) {
      s = (s >> 1) | (s & 1);
      aE++;
    }
    return roundPack(aS, aE, s, fmt);
  }
  let d = aSig - bSig;
  if (d == 0) return packZero(rmode == RDN ? 1 : 0, fmt);
  let n = <i32>clz(d) - 1;
  return roundPack(aS, aE - n, d << <u64>n, fmt);
}

export function sfAdd(a: u64, b: u64, negB: u32, fmt: u32): u64 {
  unpack(a, fmt);
  let aS = uSign, aE = uExp, aSig = uSig, aC = uCls;
  unpack(b, fmt);
  let bS = uSign ^ negB, bE = uExp, bSig = uSig, bC = uCls;
  if (aC >= QNAN || bC >= QNAN) {
    if (aC == SNAN || bC == SNAN) flags |= NV;
    return canonNaN(fmt);
  }
  if (aC == INF) {
    if (bC == INF && aS != bS) {
      flags |= NV;
      return canonNaN(fmt);
    }
    return packInf(aS, fmt);
  }
  if (bC == INF) return packInf(bS, fmt);
  if (aC == ZERO) {
    if (bC == ZERO) return packZero(aS == bS ? aS : rmode == RDN ? 1 : 0, fmt);
    return roundPack(bS, bE, bSig, fmt);
  }
  if (bC == ZERO) return roundPack(aS, aE, aSig, fmt);
  return addCore(aS, aE, aSig, bS, bE, bSig, fmt);
}

// ---------------------------------------------------------------- mul

export function sfMul(a: u64, b: u64, fmt: u32): u64 {
  unpack(a, fmt);
  let aS = uSign, aE = uExp, aSig = uSig, aC = uCls;
  unpack(b, fmt);
  let bS = uSign, bE = uExp, bSig = uSig, bC = uCls;
  let s = aS ^ bS;
  if (aC >= QNAN || bC >= QNAN) {
    if (aC == SNAN || bC == SNAN) flags |= NV;
    return canonNaN(fmt);
  }
  if (aC == INF || bC == INF) {
    if (aC == ZERO || bC == ZERO) {
      flags |= NV;
      return canonNaN(fmt);
    }
    return packInf(s, fmt);
  }
  if (aC == ZERO || bC == ZERO) return packZero(s, fmt);
  // aSig * (2 bSig) = hi * 2^64 + lo, hi in [2^61, 2^63)
  let hi = mul128(aSig, bSig << 1);
  let lo = mLo;
  let e = aE + bE;
  if (hi < BIT62) {
    hi = (hi << 1) | (lo >> 63);
    lo <<= 1;
  } else {
    e++;
  }
  return roundPack(s, e, hi | (lo != 0 ? 1 : 0), fmt);
}

// ---------------------------------------------------------------- div

export function sfDiv(a: u64, b: u64, fmt: u32): u64 {
  unpack(a, fmt);
  let aS = uSign, aE = uExp, aSig = uSig, aC = uCls;
  unpack(b, fmt);
  let bS = uSign, bE = uExp, bSig = uSig, bC = uCls;
  let s = aS ^ bS;
  if (aC >= QNAN || bC >= QNAN) {
    if (aC == SNAN || bC == SNAN) flags |= NV;
    return canonNaN(fmt);
  }
  if (aC == INF) {
    if (bC == INF) {
      flags |= NV;
      return canonNaN(fmt);
    }
    return packInf(s, fmt);
  }
  if (bC == INF) return packZero(s, fmt);
  if (bC == ZERO) {
    if (aC == ZERO) {
      flags |= NV;
      return canonNaN(fmt);
    }
    flags |= DZ;
    return packInf(s, fmt);
  }
  if (aC == ZERO) return packZero(s, fmt);
  // both significands have at most 53 significant bits at the top: divide 53-bit integers,
  // ten quotient bits per native u64 division.
  let ma = aSig >> 10, mb = bSig >> 10;
  let e = aE - bE;
  if (ma < mb) {
    ma <<= 1;
    e--;
  }
  let q: u64 = 1;
  let r = ma - mb;
  for (let i = 0; i < 6; i++) {
    r <<= 10;
    let d = r / mb;
    q = (q << 10) | d;
    r -= d * mb;
  }
  // q in [2^60, 2^61)
  return roundPack(s, e, (q << 2) | (r != 0 ? 1 : 0), fmt);
}

// ---------------------------------------------------------------- sqrt

// Square root. The native square root is correctly rounded to nearest; the exact comparison of
// its square with the operand (integers) gives the direction for the other modes. A square root
// never overflows nor underflows, and is never exactly halfway between two floats.
export function sfSqrt(a: u64, fmt: u32): u64 {
  unpack(a, fmt);
  let aS = uSign, aE = uExp, aSig = uSig, aC = uCls;
  if (aC >= QNAN) {
    if (aC == SNAN) flags |= NV;
    return canonNaN(fmt);
  }
  if (aC == ZERO) return packZero(aS, fmt);
  if (aS != 0) {
    flags |= NV;
    return canonNaN(fmt);
  }
  if (aC == INF) return packInf(0, fmt);
  let rm = rmode;
  if (fmt == FMT_S) {
    let x = <f64>reinterpret<f32>(<u32>a);
    let r = <f64>(<f32>Math.sqrt(x));
    let t = r * r; // exact: 24-bit significand squared
    let rb = <u64>reinterpret<u32>(<f32>r);
    if (t != x) {
      flags |= NX;
      if (t > x) {
        if (rm == RTZ || rm == RDN) rb--;
      } else {
        if (rm == RUP) rb++;
      }
    }
    return rb;
  }
  let x = reinterpret<f64>(a);
  let r = Math.sqrt(x);
  let rb = reinterpret<u64>(r);
  // a = ma * 2^(aE - 52), r = mr * 2^(er - 52) with 53-bit ma, mr; r^2 - a has the sign of
  // mr^2 - (ma << k); the difference is below 2^60, so the low 64 bits decide.
  let ma = aSig >> 10;
  let er = <i32>((rb >> 52) & 0x7ff) - 1023;
  let mr = (rb & 0xfffffffffffff) | 0x10000000000000;
  let k = aE - 2 * er + 52;
  let diff = <i64>(mr * mr - (ma << <u64>k));
  if (diff != 0) {
    flags |= NX;
    if (diff > 0) {
      if (rm == RTZ || rm == RDN) rb--;
    } else {
      if (rm == RUP) rb++;
    }
  }
  return rb;
}

// ---------------------------------------------------------------- fused multiply-add

// (-1)^negP * a * b + (-1)^negC * c with a single rounding.
export function sfFma(a: u64, b: u64, c: u64, negP: u32, negC: u32, fmt: u32): u64 {
  unpack(a, fmt);
  let aS = uSign, aE = uExp, aSig = uSig, aC = uCls;
  unpack(b, fmt);
  let bS = uSign, bE = uExp, bSig = uSig, bC = uCls;
  unpack(c, fmt);
  let cS = uSign ^ negC, cE = uExp, cSig = uSig, cC = uCls;
  let pS = aS ^ bS ^ negP;
  let infTimesZero = (aC == INF && bC == ZERO) || (aC == ZERO && bC == INF);
  if (aC >= QNAN || bC >= QNAN || cC >= QNAN) {
    // the ISA manual: inf * 0 + qNaN raises NV too
    if (aC == SNAN || bC == SNAN || cC == SNAN || infTimesZero) flags |= NV;
    return canonNaN(fmt);
  }
  if (infTimesZero) {
    flags |= NV;
    return canonNaN(fmt);
  }
  if (aC == INF || bC == INF) {
    if (cC == INF && cS != pS) {
      flags |= NV;
      return canonNaN(fmt);
    }
    return packInf(pS, fmt);
  }
  if (cC == INF) return packInf(cS, fmt);
  if (aC == ZERO || bC == ZERO) {
    if (cC == ZERO) return packZero(pS == cS ? pS : rmode == RDN ? 1 : 0, fmt);
    return roundPack(cS, cE, cSig, fmt);
  }
  // exact product, leading one at bit 125 of (pHi, pLo): value = P * 2^(pE - 125)
  let pHi = mul128(aSig, bSig);
  let pLo = mLo;
  let pE = aE + bE;
  if (pHi >= (<u64>1 << 61)) {
    pE++;
  } else {
    pHi = (pHi << 1) | (pLo >> 63);
    pLo <<= 1;
  }
  if (cC == ZERO) {
    // leading one at bit 125: collapse to 64 bits with bit 62 leading
    return roundPack(pS, pE, (pHi << 1) | (pLo >> 63) | ((pLo << 1) != 0 ? 1 : 0), fmt);
  }
  let cHi = cSig >> 1;
  let cLo = cSig << 63;
  let e: i32;
  if (pE >= cE) {
    e = pE;
    cHi = shiftRightJam128(cHi, cLo, pE - cE);
    cLo = jLo;
  } else {
    e = cE;
    pHi = shiftRightJam128(pHi, pLo, cE - pE);
    pLo = jLo;
  }
  let sign: u32;
  let hi: u64, lo: u64;
  if (pS == cS) {
    sign = pS;
    lo = pLo + cLo;
    hi = pHi + cHi + (lo < pLo ? 1 : 0);
    if (hi >= (<u64>1 << 62)) {
      lo = (lo >> 1) | (hi << 63) | (lo & 1);
      hi >>= 1;
      e++;
    }
  } else {
    // subtract the smaller magnitude from the larger
    if (pHi > cHi || (pHi == cHi && pLo >= cLo)) {
      sign = pS;
      lo = pLo - cLo;
      hi = pHi - cHi - (pLo < cLo ? 1 : 0);
    } else {
      sign = cS;
      lo = cLo - pLo;
      hi = cHi - pHi - (cLo < pLo ? 1 : 0);
    }
    if (hi == 0 && lo == 0) return packZero(rmode == RDN ? 1 : 0, fmt);
    // normalise the leading one back to bit 125
    let n: i32 = hi != 0 ? <i32>clz(hi) - 2 : 62 + <i32>clz(lo);
    if (n >= 64) {
      hi = lo << <u64>(n - 64);
      lo = 0;
    } else if (n > 0) {
      hi = (hi << <u64>n) | (lo >> <u64>(64 - n));
      lo <<= <u64>n;
    }
    e -= n;
  }
  return roundPack(sign, e, (hi << 1) | (lo >> 63) | ((lo << 1) != 0 ? 1 : 0), fmt);
}

// ---------------------------------------------------------------- conversions

// Float (fmt) to integer. kind: 0 W, 1 WU, 2 L, 3 LU. Returns the x-register value (32-bit results
// sign-extended). Out of range and NaN raise NV only (no NX) and give the saturated values of the
// ISA manual's table: NaN and +inf -> largest, -inf -> smallest.
export function sfToInt(a: u64, fmt: u32, kind: u32): u64 {
  unpack(a, fmt);
  let s = uSign, e = uExp, sig = uSig, cls = uCls;
  let is32 = kind < 2;
  let unsigned = (kind & 1) != 0;
  let maxV: u64 = is32 ? (unsigned ? 0xffffffffffffffff : 0x7fffffff) : unsigned ? 0xffffffffffffffff : 0x7fffffffffffffff;
  let minV: u64 = unsigned ? 0 : is32 ? 0xffffffff80000000 : 0x8000000000000000;
  if (cls >= QNAN) {
    flags |= NV;
    return maxV;
  }
  if (cls == INF) {
    flags |= NV;
    return s != 0 ? minV : maxV;
  }
  if (cls == ZERO) return 0;
  if (e > 63) {
    flags |= NV;
    return s != 0 ? minV : maxV;
  }
  // magnitude = sig * 2^(e - 62): integer part and the bits below the binary point
  let ip: u64, rb: u64, half: u64, mask: u64;
  if (e == 63) {
    ip = sig << 1;
    rb = 0;
    half = 0;
    mask = 0;
  } else if (e >= -1) {
    let sh = <u64>(62 - e); // 0 ..= 63
    ip = sig >> sh;
    mask = sh == 0 ? 0 : (<u64>1 << sh) - 1;
    half = sh == 0 ? 0 : <u64>1 << (sh - 1);
    rb = sig & mask;
  } else {
    // below one half: only the sticky information matters
    ip = 0;
    rb = 1;
    half = 2;
    mask = 3;
  }
  let inexact = rb != 0;
  if (inexact) {
    let rm = rmode;
    let up = false;
    if (rm == RNE) up = rb > half || (rb == half && (ip & 1) != 0);
    else if (rm == RMM) up = rb >= half;
    else if (rm == RDN) up = s != 0;
    else if (rm == RUP) up = s == 0;
    if (up) ip++; // ip < 2^64 - 1 here: e <= 62 gives ip < 2^63
  }
  // range check on the rounded magnitude
  let limit: u64; // the largest allowed magnitude for this sign
  if (unsigned) limit = s != 0 ? 0 : is32 ? 0xffffffff : 0xffffffffffffffff;
  else limit = is32 ? (s != 0 ? 0x80000000 : 0x7fffffff) : s != 0 ? BIT63 : 0x7fffffffffffffff;
  if (ip > limit) {
    flags |= NV;
    return s != 0 ? minV : maxV;
  }
  if (inexact) flags |= NX;
  let v: u64 = s != 0 ? 0 - ip : ip;
  if (is32) v = <u64>(<i64>(<i32>(<u32>v)));
  return v;
}

// Integer to float. kind: 0 W, 1 WU, 2 L, 3 LU; x is the x-register value.
export function sfFromInt(x: u64, kind: u32, fmt: u32): u64 {
  let s: u32 = 0;
  let m: u64;
  if (kind == 0) {
    let v = <i64>(<i32>(<u32>x));
    if (v < 0) {
      s = 1;
      m = <u64>(-v);
    } else m = <u64>v;
  } else if (kind == 1) {
    m = x & 0xffffffff;
  } else if (kind == 2) {
    if (<i64>x < 0) {
      s = 1;
      m = 0 - x;
    } else m = x;
  } else {
    m = x;
  }
  if (m == 0) return packZero(0, fmt);
  if (m >= BIT63) return roundPack(s, 63, (m >> 1) | (m & 1), fmt);
  let n = <i32>clz(m) - 1;
  return roundPack(s, 62 - n, m << <u64>n, fmt);
}

// Between the formats: fmt is the destination.
export function sfCvtFF(a: u64, from: u32, to: u32): u64 {
  unpack(a, from);
  if (uCls >= QNAN) {
    if (uCls == SNAN) flags |= NV;
    return canonNaN(to);
  }
  if (uCls == INF) return packInf(uSign, to);
  if (uCls == ZERO) return packZero(uSign, to);
  return roundPack(uSign, uExp, uSig, to);
}
