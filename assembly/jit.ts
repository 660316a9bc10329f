// The core's half of the JIT (docs/ARCHITECTURE.md, "The JIT"). The host (src/jit/) translates
// hot guest pages into WebAssembly functions and puts them in the core's function table; this
// file keeps, per RAM page, which function holds the page's code, a hotness counter, and the
// PG_CODE bit of the page-state byte that routes every write to such a page through the slow
// path, where it invalidates the translation. Events for the host (a page got hot, a dispatch
// found no block at an entry, a translation was invalidated) go into a small queue it drains
// between slices.
//
// A translated function is called by the interpreter (hart.ts) at an instruction boundary of a
// PG_CODE page with the chunk's remaining budget, and returns how many instructions it completed
// and how it stopped (translate.ts UnitExit); the interpreter then goes on exactly as if it had
// executed those instructions itself.

import { PAGES, PG_CODE, RAM } from "./layout";
import { mapPageStates } from "./pages";
import { loadSlow, storeSlow } from "./mmu";
import { tlbFlushStoresAllHarts } from "./harts";
import { g_status, ST_OK, exitAfterInstruction, EXIT_SLICE } from "./status";

// How a translated function stopped (src/jit/translate.ts UnitExit): the low 3 bits of its result.
export const UNIT_CONTINUE: u32 = 0;
export const UNIT_TRAP: u32 = 1;
export const UNIT_EXIT: u32 = 2;
export const UNIT_EVENT: u32 = 3;
export const UNIT_MISS: u32 = 4;
export const UNIT_INTERP: u32 = 5;

// Queue events (u64: kind << 32 | page << 12 | offset).
export const EV_HOT: u64 = 1; // a page crossed the hotness threshold (again), entered at offset
export const EV_MISS: u64 = 2; // translated code has no block at offset
export const EV_INVALIDATED: u64 = 3; // a write to the page dropped its translation
const QUEUE_SIZE: u32 = 4096;
// Function-table slots for translations; each has a dispatch map of one byte per 2-byte offset
// of its page (src/jit/translate.ts MAP_*), which the host writes when it installs the function.
export const JIT_SLOTS: u32 = 4096;
const MAP_BYTES: u32 = 2048;

export let g_jitOn: bool = false;
let g_threshold: u32 = 4000000;
// Base addresses of the per-page arrays (placed after RAM by jitInit).
let g_table: usize = 0; // u32 per page: index in the function table, 0 = none
let g_count: usize = 0; // u32 per page: instructions interpreted on it (hotness)
let g_queue: usize = 0; // QUEUE_SIZE u64 events
let g_maps: usize = 0; // JIT_SLOTS dispatch maps
// One byte per TOUCH_PAGES pages (4 KiB of the table and of the counters): 1 once an entry of
// the table or the counters in that span may be non-zero. A flush clears only those spans: a
// span never written is memory the host has not committed, and writing its zeros made the host
// commit it - the first savevm -b (markAllNotRestored) of a 1 GiB guest that had run spent
// ~10-15 ms of its pause committing the 2 MiB of both arrays (bench store: 11.5 ms at 1 GiB).
let g_touched: usize = 0;
const TOUCH_SHIFT: u32 = 10;
let g_queued: u32 = 0;
let g_overflow: bool = false;
let g_pages: u32 = 0;
// The page whose translated code is running (-1: none), and whether a write changed it.
let g_current: u32 = -1;
let g_selfModified: bool = false;
// Bumped by every flush, so the host knows its bookkeeping is void.
let g_epoch: u32 = 0;
// The table, the counters and the PG_CODE bits are all zero (new memory, or flushed since and
// not written): a flush has nothing to clear. A restore flushes twice (hartsRestored,
// markAllNotRestored); clearing the 2 MiB of tables of a 1 GiB core that was never run made the
// host commit that memory (~10-15 ms of CPU on the way to a restored guest's first instruction).
let g_clean: bool = false;
// Statistics for `info jit`.
let g_insns: u64 = 0;
let g_calls: u64 = 0;
// Calls by how they ended (UNIT_*), and those that completed nothing.
const g_ends = new StaticArray<u64>(8);
let g_idle: u64 = 0;

/** Bytes the JIT's per-page arrays need after RAM for `pages` pages. */
export function jitBytes(pages: u32): usize {
  return (<usize>pages << 3) + <usize>QUEUE_SIZE * 8 + <usize>JIT_SLOTS * MAP_BYTES + touchBytes(pages) + 16;
}

function touchBytes(pages: u32): usize {
  return <usize>((pages + (1 << TOUCH_SHIFT) - 1) >> TOUCH_SHIFT);
}

/** An entry of page `page` in the table or the counters may become non-zero. */
@inline function touch(page: u32): void {
  store<u8>(g_touched + <usize>(page >> TOUCH_SHIFT), 1);
}

/** `clear`: false when the memory is new (all zero): nothing to flush but the epoch. */
export function jitInit(base: usize, pages: u32, clear: bool = true): void {
  g_pages = pages;
  g_table = (base + 7) & ~(<usize>7);
  g_count = g_table + (<usize>pages << 2);
  g_queue = g_count + (<usize>pages << 2);
  g_maps = g_queue + <usize>QUEUE_SIZE * 8;
  g_touched = g_maps + <usize>JIT_SLOTS * MAP_BYTES;
  if (clear) {
    // Memory used before (another layout, maybe): every span may hold old entries.
    memory.fill(g_touched, 1, touchBytes(pages));
    g_clean = false;
    jitFlush();
  } else {
    g_epoch++;
    g_clean = true;
  }
}

/** Drops every translation (reset, restore): clears PG_CODE, the table and the counters. */
export function jitFlush(): void {
  if (!g_clean) {
    mapPageStates(g_pages, ~PG_CODE, 0);
    const spans = <u32>touchBytes(g_pages);
    for (let b: u32 = 0; b < spans; b++) {
      if (load<u8>(g_touched + <usize>b) == 0) continue;
      const first = b << TOUCH_SHIFT;
      const n = <usize>(min<u32>(g_pages - first, 1 << TOUCH_SHIFT)) << 2;
      memory.fill(g_table + (<usize>first << 2), 0, n);
      memory.fill(g_count + (<usize>first << 2), 0, n);
      store<u8>(g_touched + <usize>b, 0);
    }
    g_clean = true;
  }
  g_queued = 0;
  g_overflow = false;
  g_epoch++;
}

export function jitSetOn(on: bool): void {
  g_jitOn = on;
}

export function jitSetThreshold(n: u32): void {
  g_threshold = n < 1 ? 1 : n;
}

function push(kind: u64, page: u32, off: u32): void {
  if (g_queued >= QUEUE_SIZE) {
    g_overflow = true;
    return;
  }
  store<u64>(g_queue + (<usize>g_queued << 3), (kind << 32) | (<u64>page << 12) | <u64>(off & 0xfff));
  g_queued++;
}

// --- the profile (hart.ts calls these only while the JIT is on) ---
// Instructions of the current chunk accounted for so far, and the offset where the interpreter
// entered the page it has cached.
let g_profN: i32 = 0;
let g_profEntry: u32 = 0;
// The interpreter's next instruction is its own even on a page with translated code (after
// translated code stopped at an instruction it leaves to the interpreter).
export let g_jitSkip: bool = false;

/**
 * In the interpreter's fetch slow path, before instruction `n + 1` of the chunk (at `pc`): the
 * instructions since the last call ran on the page the interpreter had cached (host address
 * `fetchHost`).
 */
export function jitProfile(fetchHost: usize, n: i32, pc: u64): void {
  if (fetchHost >= RAM) jitCount(<u32>((fetchHost - RAM) >> 12), g_profEntry, <u32>(n - g_profN));
  g_profN = n;
  g_profEntry = <u32>pc & 0xfff;
}

/** At the end of a chunk of `n` instructions. */
export function jitProfileEnd(fetchHost: usize, n: i32): void {
  if (fetchHost >= RAM) jitCount(<u32>((fetchHost - RAM) >> 12), g_profEntry, <u32>(n - g_profN));
  g_profN = 0;
  g_jitSkip = false;
}

/**
 * Counts `n` instructions the interpreter ran on a page (entered at offset `off`); tells the
 * host when the count crosses the threshold: the page is hot, or — when it has a translation —
 * much of it still runs interpreted (code the translation does not cover).
 */
export function jitCount(page: u32, off: u32, n: u32): void {
  const at = g_count + (<usize>page << 2);
  const old = load<u32>(at);
  const now = old + n;
  g_clean = false;
  touch(page);
  store<u32>(at, now < old ? 0xffffffff : now);
  if (old < g_threshold && now >= g_threshold) push(EV_HOT, page, off);
}

/** The table index of a page's translated function (0 = none). */
@inline export function jitFunction(page: u32): u32 {
  return load<u32>(g_table + (<usize>page << 2));
}

/** The dispatch map of the function in table slot `fn`. */
@inline export function jitMapAddress(fn: u32): usize {
  return g_maps + (<usize>fn << 11);
}

/** Around a call of translated code (hart.ts). */
export function jitEnter(page: u32): void {
  g_current = page;
  g_selfModified = false;
  g_calls++;
}

/**
 * After a call: `done` instructions ran translated after the `before` of the chunk; pc is where
 * the interpreter goes on.
 */
export function jitLeave(page: u32, done: i32, missAt: u32, before: i32, pc: u64): void {
  g_current = -1;
  g_insns += <u64>done;
  if (done == 0) g_idle++;
  g_profN = before + done; // (translated instructions are not profiled)
  g_profEntry = <u32>pc & 0xfff;
  // (a miss repeats at every taken branch into unknown code: the host needs it once)
  if (missAt != 0xffffffff && g_queued < QUEUE_SIZE / 2) push(EV_MISS, page, missAt);
}

/** A write reached page `page` (RAM index) that holds translated code: drop the translation. */
export function jitInvalidate(page: u32): void {
  const at = PAGES + <usize>page;
  store<u8>(at, load<u8>(at) & ~PG_CODE);
  store<u32>(g_table + (<usize>page << 2), 0);
  store<u32>(g_count + (<usize>page << 2), 0);
  push(EV_INVALIDATED, page, 0);
  if (page == g_current) g_selfModified = true;
}

// --- the host's interface ---

/** Installs table index `fn` as page `page`'s code (0 removes it without an event). */
export function jitInstall(page: u32, fn: u32): void {
  const at = PAGES + <usize>page;
  g_clean = false;
  touch(page);
  store<u32>(g_table + (<usize>page << 2), fn);
  store<u32>(g_count + (<usize>page << 2), 0);
  if (fn != 0) {
    store<u8>(at, load<u8>(at) | PG_CODE);
    // Store TLB entries made before now (by any hart) would let writes to the page bypass the
    // slow path.
    tlbFlushStoresAllHarts();
  } else {
    store<u8>(at, load<u8>(at) & ~PG_CODE);
  }
}

/**
 * The host defers a hot page (its translation would cost more than the interpreter has run on
 * it so far): it is reported hot again after `more` further instructions.
 */
export function jitDefer(page: u32, more: u32): void {
  g_clean = false;
  touch(page);
  store<u32>(g_count + (<usize>page << 2), more >= g_threshold ? 0 : g_threshold - more);
}

export function jitQueueAddress(): usize { return g_queue; }
/** Events in the queue; the host reads them and then calls jitQueueClear. */
export function jitQueued(): u32 { return g_queued; }
export function jitQueueOverflowed(): bool { return g_overflow; }
export function jitQueueClear(): void { g_queued = 0; g_overflow = false; }
export function jitTableAddress(): usize { return g_table; }
export function jitMaps(): usize { return g_maps; }
export function jitSlots(): u32 { return JIT_SLOTS; }
export function jitEpoch(): u32 { return g_epoch; }
export function jitInstructions(): u64 { return g_insns; }
export function jitCalls(): u64 { return g_calls; }
/** Calls that ended with UNIT_* `kind` (8: that completed nothing). */
export function jitCallsEnded(kind: u32): u64 { return kind < 8 ? g_ends[kind] : g_idle; }
export function jitNoteEnd(kind: u32): void { g_ends[kind & 7]++; }

// --- slow paths for translated code ---
// As loadSlow / storeSlow, and when the access changed the code that is running (a store to
// its own page, a device's DMA during an MMIO access), the instruction completes and the
// translated code stops after it (ST_EVENT), so the next instruction comes from memory.

export function jitLoadSlow(va: u64, size: i32): u64 {
  const v = loadSlow(va, size);
  if (g_selfModified && g_status == ST_OK) exitAfterInstruction(EXIT_SLICE);
  return v;
}

export function jitStoreSlow(va: u64, size: i32, value: u64): void {
  storeSlow(va, size, value);
  if (g_selfModified && g_status == ST_OK) exitAfterInstruction(EXIT_SLICE);
}
