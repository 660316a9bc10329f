// One memory map (src/board/memmap.ts) is what the bus dispatches on, what the device tree
// describes and what `info mtree` lists: every region the machine serves appears in the tree
// with the same base and size, and the core faults outside them.

import { describe, expect, it } from "vitest";
import { createVirtMachine, virtDtbFor } from "../../src/board/virt.js";
import { VIRT_MEMMAP } from "../../src/board/memmap.js";
import { cellsOf, parseFdt } from "../fdt-reader.js";

function machine() {
  return createVirtMachine({
    ramBytes: 16 << 20, bios: "none", kernel: new URL("../../guests/isa/rv64i.elf", import.meta.url).pathname,
    drives: [], console: { write: () => {}, readByte: () => -1 },
  });
}

describe("the virt memory map", () => {
  it("is what the bus serves, the device tree describes and info mtree lists", () => {
    const m = machine();
    const regs = new Map<number, number>();
    for (const node of parseFdt(virtDtbFor(16 << 20)).nodes.values()) {
      const reg = node.props.get("reg");
      if (reg && reg.length === 16) {
        const c = cellsOf(reg);
        regs.set(c[0]! * 2 ** 32 + c[1]!, c[2]! * 2 ** 32 + c[3]!);
      }
    }
    const regions = m.core.regions();
    const mtree = m.mtree();
    for (const r of regions) {
      expect(mtree).toContain(`${r.base.toString(16).padStart(16, "0")}-${(r.base + r.size - 1).toString(16).padStart(16, "0")}`);
      if (r.base === VIRT_MEMMAP.mrom.base) continue; // the ROM is not in QEMU's tree either
      expect(regs.get(r.base), `${r.name} at 0x${r.base.toString(16)} in the device tree`).toBe(r.size);
    }
    for (const key of ["test", "clint", "plic", "uart0", "virtio", "dram"] as const) {
      expect(regions.some((r) => r.base === VIRT_MEMMAP[key].base), key).toBe(true);
    }
  });
});
