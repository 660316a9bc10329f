// The device tree of rvm's `virt` board: QEMU 7.2's `-M virt -smp N` tree (hw/riscv/virt.c,
// create_fdt*), node for node, minus the devices rvm does not have. Node names, unit addresses,
// compatible strings, phandle numbers and the order of nodes are QEMU's, so guests and their
// scripts see the same machine. Order matters beyond looks: Linux probes virtio-mmio devices in
// tree order, and QEMU lists the slots from the highest address down (its first `-device`
// lands in the highest slot), so keeping QEMU's order keeps /dev/vda the same disk.
//
// Left out on purpose (QEMU has them, rvm does not):
// - /pmu: QEMU's maps SBI PMU events to mhpmcounter3..; rvm's hart has no programmable event
//   counters, so advertising them would make OpenSBI offer counters that never count.
// - /fw-cfg@10100000: QEMU's firmware configuration interface; rvm has no fw_cfg device.
// - /flash@20000000: the two CFI pflash banks; rvm has no flash.
// - /platform-bus@4000000: QEMU's dynamic sysbus device area; rvm adds no devices at run time.
// - /soc/pci@30000000: the PCIe host bridge; rvm's devices are virtio-mmio only.
// - /chosen/rng-seed: QEMU writes 32 fresh random bytes each boot; rvm's tree is a pure function
//   of its configuration, so boots (and deterministic-time runs) are reproducible.
// (/soc/rtc@101000, the goldfish RTC, is there when `rtc` is set, as the board does.)

import { FdtTree, FdtError, serializeFdt, u64Cells, type FdtNode } from "../fdt.js";
import { VIRT_MEMMAP, VIRT_UART_CLOCK_HZ, VIRT_VIRTIO_COUNT, virtioSlotBase, virtioSlotIrq } from "./memmap.js";

export interface VirtDtbConfig {
  /** Number of harts (-smp), 1 when absent: one cpu node each, all in cluster0. */
  harts?: number;
  /** Guest-physical base of DRAM: 0x8000_0000 on virt. */
  ramBase: number;
  /** DRAM size in bytes (`-m`). */
  ramBytes: number;
  /** The cpu's `riscv,isa` string, e.g. "rv64imafdc_zicsr_zifencei_zicntr_sstc". */
  isa: string;
  /** The cpu's `mmu-type`: the deepest paging mode the hart implements, e.g. "riscv,sv48". */
  mmuType: string;
  /** /cpus/timebase-frequency: the rate of mtime (10 MHz on virt). */
  timebaseHz: number;
  /** /chosen/bootargs: the kernel command line (`-append`); left out when absent or empty. */
  bootargs?: string;
  /** /chosen linux,initrd-start and linux,initrd-end (end is exclusive). */
  initrd?: { start: number; end: number };
  /** How many virtio-mmio slots to describe (QEMU always has 8). */
  virtioSlots: number;
  /** Describe the goldfish RTC at 0x101000 (QEMU always has it). */
  rtc?: boolean;
}

const { test: TEST, rtc: RTC, clint: CLINT, plic: PLIC, uart0: UART0 } = VIRT_MEMMAP;
/** QEMU's VIRTIO_COUNT: slots at 0x1000_1000 .. 0x1000_8000. */
export const VIRT_VIRTIO_SLOTS_MAX = VIRT_VIRTIO_COUNT;
/** `riscv,ndev` of the PLIC: the number of interrupt sources (1..96), QEMU 7.2's value. */
export const VIRT_PLIC_NDEV = 96;

// Local interrupt numbers (privileged spec, mip bits) wired to the CLINT and PLIC.
const IRQ_M_SOFT = 3;
const IRQ_M_TIMER = 7;
const IRQ_S_EXT = 9;
const IRQ_M_EXT = 11;

// The syscon values of the SiFive test device (DESIGN.md section 1).
const TEST_POWEROFF = 0x5555;
const TEST_RESET = 0x7777;

/** The path /chosen/stdout-path names: QEMU's value, the UART. */
export const VIRT_STDOUT_PATH = `/soc/serial@${UART0.base.toString(16)}`;

const MiB = 1024 * 1024;
/**
 * The room QEMU sets aside for the tree: libfdt's buffer (FDT_MAX_SIZE, 1 MiB). QEMU copies
 * the whole buffer into guest RAM; firmware that grows the tree in place (OpenSBI adds
 * reserved-memory nodes) relies on the free space after the blob.
 */
export const VIRT_FDT_SLOT_BYTES = 1 * MiB;

/**
 * Where QEMU 7.2 puts the tree (hw/riscv/boot.c, riscv_load_fdt): below the end of DRAM or
 * 3 GiB, whichever is lower (so 32-bit code can reach it), minus the 1 MiB slot, aligned down
 * to 2 MiB. For 256 MiB at 0x8000_0000: 0x8fe0_0000.
 */
export function virtFdtAddress(ramBase: number, ramBytes: number, slotBytes = VIRT_FDT_SLOT_BYTES): number {
  const end = ramBase + ramBytes;
  const top = ramBase < 3072 * MiB ? Math.min(end, 3072 * MiB) : end;
  const addr = Math.floor((top - slotBytes) / (2 * MiB)) * (2 * MiB);
  if (addr < ramBase) {
    throw new FdtError(`${ramBytes} bytes of RAM leave no room for the device tree`);
  }
  return addr;
}

function hex(n: number): string {
  return n.toString(16);
}

/** `reg = <addr-hi addr-lo size-hi size-lo>` for #address-cells = #size-cells = 2. */
function reg2(node: FdtNode, base: number, size: number): void {
  node.setCells("reg", ...u64Cells(base), ...u64Cells(size));
}

function checkConfig(cfg: VirtDtbConfig): void {
  const int = (v: number, what: string): void => {
    if (!Number.isSafeInteger(v) || v < 0) throw new FdtError(`${what} must be a non-negative integer, not ${v}`);
  };
  int(cfg.ramBase, "ramBase");
  int(cfg.ramBytes, "ramBytes");
  int(cfg.timebaseHz, "timebaseHz");
  if (cfg.ramBytes === 0) throw new FdtError("ramBytes must not be 0");
  if (cfg.timebaseHz === 0 || cfg.timebaseHz > 0xffff_ffff) {
    throw new FdtError(`timebaseHz ${cfg.timebaseHz} does not fit timebase-frequency (one cell)`);
  }
  if (!Number.isInteger(cfg.virtioSlots) || cfg.virtioSlots < 0 || cfg.virtioSlots > VIRT_VIRTIO_SLOTS_MAX) {
    throw new FdtError(`virtioSlots must be 0..${VIRT_VIRTIO_SLOTS_MAX}, not ${cfg.virtioSlots}`);
  }
  if (cfg.isa === "") throw new FdtError("the riscv,isa string is empty");
  const harts = cfg.harts ?? 1;
  if (!Number.isInteger(harts) || harts < 1 || harts > 8) throw new FdtError(`harts must be 1..8, not ${harts}`);
  if (cfg.initrd) {
    const { start, end } = cfg.initrd;
    int(start, "initrd start");
    int(end, "initrd end");
    if (end < start) throw new FdtError(`initrd end 0x${hex(end)} is below its start 0x${hex(start)}`);
  }
}

/** Sets a /chosen initrd bound: one cell while it fits, as QEMU 7.2 does, else two. */
function setAddress(node: FdtNode, name: string, value: number): void {
  if (value <= 0xffff_ffff) node.setCells(name, value);
  else node.setCells(name, ...u64Cells(value));
}

/** The virt board's tree, for callers that want to inspect or extend it before writing. */
export function buildVirtTree(cfg: VirtDtbConfig): FdtTree {
  checkConfig(cfg);
  const tree = new FdtTree();
  const root = tree.root;

  // Create the nodes first, in QEMU's order, then allocate phandles in QEMU's order (QEMU
  // creates the cpus from the last down: cpu N-1 gets 1, its interrupt controller 2, ...,
  // cpu 0 2N-1 and its controller 2N; then the PLIC 2N+1 and the test device 2N+2), then fill
  // in properties.
  const harts = cfg.harts ?? 1;
  const chosen = root.addNode("chosen");
  const poweroff = root.addNode("poweroff");
  const reboot = root.addNode("reboot");
  const memory = root.addNode(`memory@${hex(cfg.ramBase)}`);
  const cpus = root.addNode("cpus");
  const cpu: FdtNode[] = [];
  const intc: FdtNode[] = [];
  for (let h = 0; h < harts; h++) {
    cpu.push(cpus.addNode(`cpu@${h}`));
    intc.push(cpu[h].addNode("interrupt-controller"));
  }
  const cluster = cpus.addNode("cpu-map").addNode("cluster0");
  const core = Array.from({ length: harts }, (_, h) => cluster.addNode(`core${h}`));
  const soc = root.addNode("soc");
  const rtc = cfg.rtc ? soc.addNode(`rtc@${hex(RTC.base)}`) : undefined;
  const uart = soc.addNode(`serial@${hex(UART0.base)}`);
  const test = soc.addNode(`test@${hex(TEST.base)}`);
  const virtio: FdtNode[] = [];
  for (let n = cfg.virtioSlots - 1; n >= 0; n--) {
    virtio[n] = soc.addNode(`virtio_mmio@${hex(virtioSlotBase(n))}`);
  }
  const plic = soc.addNode(`plic@${hex(PLIC.base)}`);
  const clint = soc.addNode(`clint@${hex(CLINT.base)}`);

  const cpuPh: number[] = [];
  const intcPh: number[] = [];
  for (let h = harts - 1; h >= 0; h--) {
    cpuPh[h] = tree.phandleOf(cpu[h]);
    intcPh[h] = tree.phandleOf(intc[h]);
  }
  const plicPh = tree.phandleOf(plic);
  const testPh = tree.phandleOf(test);

  root.setU32("#address-cells", 2).setU32("#size-cells", 2);
  root.setString("compatible", "riscv-virtio").setString("model", "riscv-virtio,qemu");

  chosen.setString("stdout-path", VIRT_STDOUT_PATH);
  if (cfg.bootargs) chosen.setString("bootargs", cfg.bootargs);
  if (cfg.initrd) {
    setAddress(chosen, "linux,initrd-start", cfg.initrd.start);
    setAddress(chosen, "linux,initrd-end", cfg.initrd.end);
  }

  // Power off and reset through the SiFive test device, as a syscon register map.
  for (const [node, compatible, value] of [
    [poweroff, "syscon-poweroff", TEST_POWEROFF],
    [reboot, "syscon-reboot", TEST_RESET],
  ] as const) {
    node.setString("compatible", compatible);
    node.setCells("regmap", testPh).setU32("offset", 0).setU32("value", value);
  }

  memory.setString("device_type", "memory");
  reg2(memory, cfg.ramBase, cfg.ramBytes);

  cpus.setU32("#address-cells", 1).setU32("#size-cells", 0);
  cpus.setU32("timebase-frequency", cfg.timebaseHz);
  for (let h = 0; h < harts; h++) {
    cpu[h].setString("device_type", "cpu").setU32("reg", h).setString("status", "okay");
    cpu[h].setString("compatible", "riscv").setString("riscv,isa", cfg.isa).setString("mmu-type", cfg.mmuType);
    intc[h].setU32("#interrupt-cells", 1).setEmpty("interrupt-controller").setString("compatible", "riscv,cpu-intc");
    core[h].setCells("cpu", cpuPh[h]);
  }

  soc.setU32("#address-cells", 2).setU32("#size-cells", 2);
  soc.setString("compatible", "simple-bus").setEmpty("ranges");

  if (rtc) {
    rtc.setString("compatible", "google,goldfish-rtc");
    reg2(rtc, RTC.base, RTC.size);
    rtc.setCells("interrupt-parent", plicPh).setU32("interrupts", RTC.irq);
  }

  uart.setString("compatible", "ns16550a");
  reg2(uart, UART0.base, UART0.size);
  uart.setU32("clock-frequency", VIRT_UART_CLOCK_HZ);
  uart.setCells("interrupt-parent", plicPh).setU32("interrupts", UART0.irq);

  test.setStrings("compatible", "sifive,test1", "sifive,test0", "syscon");
  reg2(test, TEST.base, TEST.size);

  virtio.forEach((node, n) => {
    node.setString("compatible", "virtio,mmio");
    reg2(node, virtioSlotBase(n), VIRT_MEMMAP.virtio.size);
    node.setCells("interrupt-parent", plicPh).setU32("interrupts", virtioSlotIrq(n));
  });

  // PLIC contexts: 2h = hart h's M-mode external interrupt, 2h + 1 = its S-mode one.
  plic.setU32("#interrupt-cells", 1).setU32("#address-cells", 0);
  plic.setStrings("compatible", "sifive,plic-1.0.0", "riscv,plic0");
  plic.setEmpty("interrupt-controller");
  plic.setCells("interrupts-extended", ...intcPh.flatMap((ph) => [ph, IRQ_M_EXT, ph, IRQ_S_EXT]));
  reg2(plic, PLIC.base, PLIC.size);
  plic.setU32("riscv,ndev", VIRT_PLIC_NDEV);

  clint.setStrings("compatible", "sifive,clint0", "riscv,clint0");
  reg2(clint, CLINT.base, CLINT.size);
  clint.setCells("interrupts-extended", ...intcPh.flatMap((ph) => [ph, IRQ_M_SOFT, ph, IRQ_M_TIMER]));

  return tree;
}

/**
 * The virt board's device tree blob. `totalsize` is padded to a multiple of 8 bytes; place it
 * with `virtFdtAddress` (QEMU's rule), which leaves the rest of a 1 MiB slot free after it.
 */
export function buildVirtDtb(cfg: VirtDtbConfig): Uint8Array {
  return serializeFdt(buildVirtTree(cfg), { bootCpuidPhys: 0, align: 8 });
}
