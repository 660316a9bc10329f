// Physical memory: guest RAM (with its page states), the reset ROM, the core's own devices
// (CLINT) and the host's devices (MMIO, served synchronously by imported functions).
//
// The host tells the core where its devices sit (`mapDevice`, from the board's memory map,
// src/board/memmap.ts); RAM sits at RAM_GPA. Nothing here translates: mmu.ts calls these with
// physical addresses.

import { PAGES, RAM, RAM_GPA, ROM, PG_NOT_RESTORED, PG_DIRTY, PG_DISK, PG_WATCH, PG_ACCESSED, PG_CODE } from "./layout";
import {
  raiseTrap, exitBeforeEffect, EXIT_PAGE, CAUSE_FETCH_ACCESS, CAUSE_LOAD_ACCESS, CAUSE_STORE_ACCESS,
} from "./status";
import { clintRead, clintWrite } from "./clint";
import { jitInvalidate } from "./jit";

// Devices the host emulates (src/core.ts): called synchronously during the access.
@external("host", "mmioRead")
declare function hostMmioRead(addr: u32, size: i32): u32;
@external("host", "mmioWrite")
declare function hostMmioWrite(addr: u32, size: i32, value: u32): void;

export const ACCESS_FETCH: i32 = 0;
export const ACCESS_LOAD: i32 = 1;
export const ACCESS_STORE: i32 = 2;

// The core's own devices, placed by the host (src/core.ts CoreDevice).
export const DEV_ROM: i32 = 0;
export const DEV_CLINT: i32 = 1;

export let g_ramSize: u64 = 0;
export let g_ramPages: u32 = 0;
// The reset ROM: guest-physical [g_romBase, g_romBase + g_romSize), held at ROM + address.
let g_romBase: u64 = 0;
let g_romSize: u64 = 0;
let g_clintBase: u64 = 0;
let g_clintSize: u64 = 0;
// Physical address of the HTIF tohost word (0 = none): stores to it exit to the host.
export let g_tohost: u64 = 0;
// Set by the host during an MMIO call when no device answers the address.
let g_mmioFault: bool = false;

export function accessFault(access: i32, va: u64): void {
  raiseTrap(access == ACCESS_FETCH ? CAUSE_FETCH_ACCESS
    : access == ACCESS_LOAD ? CAUSE_LOAD_ACCESS : CAUSE_STORE_ACCESS, va);
}

@inline export function inRam(pa: u64): bool {
  return pa - RAM_GPA < g_ramSize;
}

// The host address of the ROM page holding `pa`, or 0 when `pa` is not ROM.
@inline export function romPage(pa: u64): usize {
  return pa - g_romBase < g_romSize ? ROM + <usize>(pa & ~(<u64>0xfff)) : 0;
}

// Checks that the RAM page holding `pa` is restored; otherwise exits to the host.
@inline export function ramPageReady(pa: u64): bool {
  const page = <u32>((pa - RAM_GPA) >> 12);
  if (load<u8>(PAGES + page) & PG_NOT_RESTORED) {
    exitBeforeEffect(EXIT_PAGE, page);
    return false;
  }
  return true;
}

// Marks a RAM page written (by the hart or a page-table A/D update). A page with translated
// code loses it: the write may change instructions (jit.ts).
@inline export function notePageWrite(pa: u64): void {
  const page = <u32>((pa - RAM_GPA) >> 12);
  const at = PAGES + <usize>page;
  if (load<u8>(at) & PG_CODE) jitInvalidate(page);
  store<u8>(at, (load<u8>(at) | PG_DIRTY | PG_ACCESSED) & ~PG_DISK);
}

// Whether a store to `size` bytes at RAM address `pa` hits the HTIF tohost word.
@inline export function hitsTohost(pa: u64, size: i32): bool {
  return g_tohost != 0 && pa <= g_tohost && g_tohost < pa + <u64>size;
}

// A read outside RAM: ROM, CLINT or a host device. An instruction fetch may only come from
// ROM (and RAM): fetching from a device raises an instruction access fault.
export function ioRead(pa: u64, size: i32, access: i32, va: u64): u64 {
  if (pa - g_romBase < g_romSize) {
    let v: u64 = 0;
    for (let i = size - 1; i >= 0; i--) v = (v << 8) | load<u8>(ROM + <usize>pa + i);
    return v;
  }
  if (access == ACCESS_FETCH || pa >= RAM_GPA) { accessFault(access, va); return 0; }
  if (pa - g_clintBase < g_clintSize) return clintRead(pa - g_clintBase, size);
  g_mmioFault = false;
  let v: u64;
  if (size == 8) {
    v = <u64>hostMmioRead(<u32>pa, 4) | (<u64>hostMmioRead(<u32>pa + 4, 4) << 32);
  } else {
    v = hostMmioRead(<u32>pa, size);
  }
  if (g_mmioFault) { accessFault(access, va); return 0; }
  return v;
}

// A write outside RAM.
export function ioWrite(pa: u64, size: i32, value: u64, va: u64): void {
  if (pa - g_romBase < g_romSize) return; // the reset ROM ignores writes, as QEMU's mrom does
  if (pa >= RAM_GPA) { accessFault(ACCESS_STORE, va); return; }
  if (pa - g_clintBase < g_clintSize) { clintWrite(pa - g_clintBase, size, value); return; }
  g_mmioFault = false;
  if (size == 8) {
    hostMmioWrite(<u32>pa, 4, <u32>value);
    hostMmioWrite(<u32>pa + 4, 4, <u32>(value >> 32));
  } else {
    hostMmioWrite(<u32>pa, size, <u32>value);
  }
  if (g_mmioFault) accessFault(ACCESS_STORE, va);
}

// --- configuration from the host ---

export function setRam(pages: u32, clear: bool = true): void {
  g_ramPages = pages;
  g_ramSize = <u64>pages << 12;
  if (clear) memory.fill(PAGES, 0, pages);
}

// Places one of the core's devices (DEV_*) at [base, base + size).
export function mapDevice(device: i32, base: u64, size: u64): void {
  if (device == DEV_ROM) { g_romBase = base; g_romSize = size; }
  else if (device == DEV_CLINT) { g_clintBase = base; g_clintSize = size; }
}

// Sets the HTIF tohost address (0 = none); its page is watched so stores reach the host.
export function setTohost(pa: u64): void {
  if (g_tohost != 0 && inRam(g_tohost)) {
    const at = PAGES + <usize>((g_tohost - RAM_GPA) >> 12);
    store<u8>(at, load<u8>(at) & ~PG_WATCH);
  }
  g_tohost = pa;
  if (pa != 0 && inRam(pa)) {
    const at = PAGES + <usize>((pa - RAM_GPA) >> 12);
    store<u8>(at, load<u8>(at) | PG_WATCH);
  }
  // The caller flushes every hart's store TLB (index.ts).
}

export function setMmioFault(): void {
  g_mmioFault = true;
}
