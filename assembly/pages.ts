// Whole-page operations for snapshots (DESIGN.md section 4): the zero test, a 64-bit content
// hash and byte comparison, run over guest RAM in place, without copies. The host calls them
// in bulk (classify) while the hart is stopped; nothing here runs per guest instruction.
//
// The hash is a 64-bit multiply-rotate hash over the page's 512 little-endian u64 words in
// four independent lanes (the structure of xxHash64, with its primes); it serves to find
// identical pages (then confirmed byte by byte) and to checksum stored pages and disk blocks.

import { PAGES, RAM, SCRATCH } from "./layout";

const P1: u64 = 0x9e3779b185ebca87;
const P2: u64 = 0xc2b2ae3d27d4eb4f;
const P3: u64 = 0x165667b19e3779f9;
const P4: u64 = 0x85ebca77c2b2ae63;

@inline function round(acc: u64, v: u64): u64 {
  return rotl<u64>(acc + v * P2, 31) * P1;
}

@inline function merge(h: u64, acc: u64): u64 {
  return (h ^ round(0, acc)) * P1 + P4;
}

// Hash of `len` bytes at `ptr` (len a multiple of 32).
export function hashBytes(ptr: usize, len: u32): u64 {
  let a: u64 = P1 + P2, b: u64 = P2, c: u64 = 0, d: u64 = 0 - P1;
  const end = ptr + <usize>len;
  for (let p = ptr; p < end; p += 32) {
    a = round(a, load<u64>(p));
    b = round(b, load<u64>(p, 8));
    c = round(c, load<u64>(p, 16));
    d = round(d, load<u64>(p, 24));
  }
  let h = rotl<u64>(a, 1) + rotl<u64>(b, 7) + rotl<u64>(c, 12) + rotl<u64>(d, 18);
  h = merge(merge(merge(merge(h, a), b), c), d) + <u64>len;
  h ^= h >> 33;
  h *= P2;
  h ^= h >> 29;
  h *= P3;
  h ^= h >> 32;
  // 0 is reserved for "zero page" in classify's output.
  return h == 0 ? 1 : h;
}

@inline function pageAddress(page: u32): usize {
  return RAM + (<usize>page << 12);
}

export function isZero(ptr: usize, len: u32): bool {
  let acc: u64 = 0;
  const end = ptr + <usize>len;
  for (let p = ptr; p < end; p += 32) {
    acc |= load<u64>(p) | load<u64>(p, 8) | load<u64>(p, 16) | load<u64>(p, 24);
    if (acc != 0) return false;
  }
  return true;
}

export function pageHash(page: u32): u64 {
  return hashBytes(pageAddress(page), 4096);
}

// Whether page `page` hashes to hi:lo (the host passes the 64-bit hash as two halves: no BigInt).
export function pageHashIs(page: u32, lo: u32, hi: u32): bool {
  return hashBytes(pageAddress(page), 4096) == ((<u64>hi << 32) | <u64>lo);
}

export function pagesEqual(a: u32, b: u32): bool {
  return memory.compare(pageAddress(a), pageAddress(b), 4096) == 0;
}

// For pages [first, first + count): writes a u64 per page to SCRATCH: 0 for a zero page, else
// its hash. Returns how many were zero. count is at most SCRATCH_PAGES.
export function classify(first: u32, count: u32): u32 {
  let zeros: u32 = 0;
  for (let i: u32 = 0; i < count; i++) {
    const at = pageAddress(first + i);
    let h: u64 = 0;
    if (isZero(at, 4096)) zeros++;
    else h = hashBytes(at, 4096);
    store<u64>(SCRATCH + (<usize>i << 3), h);
  }
  return zeros;
}

/**
 * Every RAM page's state byte v becomes (v & keep) | set, eight at a time: markClean,
 * markAllNotRestored and the JIT's flush. The first call of each runs in V8's baseline wasm tier,
 * where a byte-at-a-time loop took 1.8 ms (markClean) and 4.5-5.2 ms (markAllNotRestored, two
 * loops) per GiB of RAM inside the first savevm -b's pause; eight at a time is 8x fewer turns in
 * either tier.
 */
export function mapPageStates(pages: u32, keep: u8, set: u8): void {
  const n = <usize>pages;
  const keep8 = <u64>keep * 0x0101010101010101;
  const set8 = <u64>set * 0x0101010101010101;
  let i: usize = 0;
  for (; i + 8 <= n; i += 8) store<u64>(PAGES + i, (load<u64>(PAGES + i) & keep8) | set8);
  for (; i < n; i++) store<u8>(PAGES + i, (load<u8>(PAGES + i) & keep) | set);
}
