// The virt board's physical memory map: QEMU 7.2's virt_memmap[] (hw/riscv/virt.c) and its
// interrupt numbers, written once. Everything that needs an address reads it from here:
// the bus (src/board/virt.ts maps the host devices, and tells the core where its own devices
// sit: reset ROM, CLINT), the device tree (src/board/virt-dtb.ts) and the monitor's `info mtree`
// (Machine.mtree). Device files know only their register layout, never their address.

import { RAM_BASE } from "../core.js";

export interface MemRegion {
  /** The region's name in QEMU's `info mtree`. */
  readonly name: string;
  readonly base: number;
  readonly size: number;
  /** The PLIC source the device interrupts on (the first of them for an array of slots). */
  readonly irq?: number;
}

export const VIRT_MEMMAP = {
  /** The reset ROM (QEMU's mrom): reset code at 0x1000, then fw_dynamic info. */
  mrom: { name: "riscv_virt_board.mrom", base: 0x1000, size: 0xf000 },
  /** The SiFive test device (poweroff / reset syscon). */
  test: { name: "riscv.sifive.test", base: 0x10_0000, size: 0x1000 },
  /** The goldfish RTC. */
  rtc: { name: "goldfish_rtc", base: 0x10_1000, size: 0x1000, irq: 11 },
  /** The CLINT (SiFive-compatible ACLINT: MSWI at +0, MTIMER at +0x4000), one per socket. */
  clint: { name: "riscv.aclint", base: 0x200_0000, size: 0x1_0000 },
  /** The PLIC: sized, as QEMU does, for the most contexts virt supports (VIRT_PLIC_SIZE(512 * 2)). */
  plic: { name: "riscv.sifive.plic", base: 0xc00_0000, size: 0x60_0000 },
  /** UART0, an NS16550A. */
  uart0: { name: "serial", base: 0x1000_0000, size: 0x100, irq: 10 },
  /** The first of VIRTIO_COUNT virtio-mmio slots, one page apart, IRQ 1 + slot. */
  virtio: { name: "virtio-mmio", base: 0x1000_1000, size: 0x1000, irq: 1 },
  /** DRAM: its size is -m. */
  dram: { name: "riscv_virt_board.ram", base: RAM_BASE, size: 0 },
} as const satisfies Record<string, MemRegion>;

/** QEMU's VIRTIO_COUNT: slots at 0x1000_1000 .. 0x1000_8000. */
export const VIRT_VIRTIO_COUNT = 8;

/** The base address of virtio-mmio slot `n`. */
export function virtioSlotBase(n: number): number {
  return VIRT_MEMMAP.virtio.base + n * VIRT_MEMMAP.virtio.size;
}

/** The PLIC source of virtio-mmio slot `n`. */
export function virtioSlotIrq(n: number): number {
  return VIRT_MEMMAP.virtio.irq + n;
}

/** The CLINT's register offsets (SiFive CLINT / ACLINT MSWI + MTIMER, as QEMU lays them out). */
export const CLINT_MSIP = 0x0; // + 4 * hart
export const CLINT_MTIMECMP = 0x4000; // + 8 * hart
export const CLINT_MTIME = 0xbff8;

/** The NS16550A's input clock on virt (the device tree's clock-frequency). */
export const VIRT_UART_CLOCK_HZ = 3_686_400;
