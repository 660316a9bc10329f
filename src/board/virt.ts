// The virt board: QEMU's `-M virt` with one hart (DESIGN.md section 1). It wires the devices
// to the bus and the PLIC, places firmware, kernel, initrd and the device tree in RAM the way
// QEMU 7.2 does (hw/riscv/boot.c), and writes the reset ROM.
// The addresses are the memory map's (./memmap.ts).

import { packageRoot, path, writeOut } from "../platform.js";
import { CoreDevice, RAM_BASE } from "../core.js";
import { AttachedDrive, Machine, MachineOptions } from "../machine.js";
import type { HtifConsole } from "../devices/htif.js";
import { Plic, PlicState } from "../devices/plic.js";
import { Uart16550, UartState } from "../devices/uart16550.js";
import { Syscon } from "../devices/syscon.js";
import { VirtioMmio, VirtioMmioEmpty } from "../devices/virtio-mmio.js";
import { VIRT_MEMMAP, VIRT_VIRTIO_COUNT, virtioSlotBase, virtioSlotIrq } from "./memmap.js";
import { GoldfishRtc, GoldfishRtcState } from "../devices/goldfish-rtc.js";
import { VirtioBlk } from "../devices/virtio-blk.js";
import { VirtioRng } from "../devices/virtio-rng.js";
import { BlockBackend, MemoryDisk, OverlayDisk, RawDisk } from "../devices/disk.js";
import { buildVirtDtb, buildVirtTree, virtFdtAddress } from "./virt-dtb.js";
import { serializeFdt } from "../fdt.js";
import { writeResetRom } from "../rom.js";
import { readImage } from "../loaders/image.js";
import { isElf, parseElf } from "../loaders/elf.js";
import { isLinuxImage, parseLinuxImage } from "../loaders/linux.js";
import { ImageError, UsageError } from "../errors.js";
import { freeSlot, type DriveConfig, type RtcConfig } from "../options.js";

/** What the hart implements, for the device tree (misa says the same). */
export const VIRT_ISA = "rv64imafdc_zicntr_zicsr_zifencei_sstc";
export const VIRT_MMU = "riscv,sv48";

const MiB = 1 << 20;
const { dirname, join } = path;
const resolvePath = path.resolve;

/** The firmware rvm uses for `-bios default`: OpenSBI's generic fw_dynamic (Debian). */
export function defaultFirmware(): string {
  return join(packageRoot, "guests", "linux", "fw_dynamic.bin");
}

/** U-Boot (Debian's qemu-riscv64_smode), the payload that boots a bare disk image. */
export function defaultBootloader(): string {
  return join(dirname(defaultFirmware()), "u-boot.bin");
}

export interface VirtConfig {
  ramBytes: number;
  /** Number of harts (-smp), 1 when absent. */
  harts?: number;
  /** "default" (OpenSBI), "none" (the kernel starts in M-mode), or a firmware file. */
  bios: string;
  kernel?: string;
  initrd?: string;
  append?: string;
  drives: DriveConfig[];
  icountShift?: number;
  /** With icountShift: QEMU's -icount sleep=on (idle time passes at host speed). */
  icountSleep?: boolean;
  /**
   * The virtio-mmio transports speak the legacy (version 1) register layout: QEMU 7.2's
   * default (`-global virtio-mmio.force-legacy=on`). False: the modern (version 2) layout.
   */
  virtioLegacy?: boolean;
  /** The virtio-mmio slots of virtio-rng devices (`-device virtio-rng-device`). */
  rng?: number[];
  /** The goldfish RTC's base and clock (-rtc); default: the host's UTC wall clock. */
  rtc?: RtcConfig;
  /** Compile hot guest code to WebAssembly (src/jit/): on unless false; options for tests and benchmarks. */
  jit?: boolean | MachineOptions["jit"];
  /** Instructions per slice of the run loop (tests). */
  sliceInstructions?: number;
  console: HtifConsole;
  /** Build the machine for a snapshot restore: no images are loaded (the snapshot has RAM). */
  restoring?: boolean;
  /** Opens a drive's block backend instead of its image file (snapshots in an object store). */
  openDisk?: (drive: DriveConfig, index: number) => BlockBackend;
}

export function createVirtMachine(cfg: VirtConfig): Machine {
  const harts = cfg.harts ?? 1;
  const machine = new Machine({
    ramBytes: cfg.ramBytes,
    harts,
    icountShift: cfg.icountShift,
    icountSleep: cfg.icountSleep,
    console: cfg.console,
    jit: typeof cfg.jit === "boolean" ? { enabled: cfg.jit } : cfg.jit,
    sliceInstructions: cfg.sliceInstructions,
  });
  const core = machine.core;
  const mem = machine.mem;

  // QEMU virt's PLIC contexts: 2h = hart h's M-mode (mip.MEIP), 2h + 1 = its S-mode (mip.SEIP).
  const plic = new Plic(2 * harts, (hart, meip, seip) =>
    core.exports.setExternalInterrupts(hart, (meip ? 1 << 11 : 0) | (seip ? 1 << 9 : 0)));
  const { plic: PLIC, uart0: UART0, test: TEST } = VIRT_MEMMAP;
  core.nameRam(VIRT_MEMMAP.dram.name);
  core.mapCore(CoreDevice.Rom, VIRT_MEMMAP.mrom);
  core.mapCore(CoreDevice.Clint, VIRT_MEMMAP.clint);
  core.map(PLIC, plic, { type: "riscv.sifive.plic" });
  machine.interruptController = plic;
  // What the guest transmits in a slice is written at once after it: one write, not a write (a
  // system call, and a wake-up of whoever reads the output) per byte. The echo of a line typed
  // into a restored guest took ~60 of them. A microtask writes what a host-side access sent.
  let uartOut: number[] = [];
  const flushUart = () => {
    if (uartOut.length === 0) return;
    const bytes = Uint8Array.from(uartOut);
    uartOut = [];
    cfg.console.write(1, bytes);
  };
  const uart = new Uart16550((byte) => {
    if (uartOut.length === 0) queueMicrotask(flushUart);
    uartOut.push(byte);
  }, plic.line(UART0.irq));
  machine.afterSlice.push(flushUart);
  machine.onExit.push(flushUart);
  core.map(UART0, uart, { type: "serial-mm" });
  machine.inputSink = (bytes) => uart.receive(bytes);
  machine.inputBacklog = () => uart.pendingInput();
  const rtcConfig: RtcConfig = cfg.rtc ?? { base: "utc", clock: "host" };
  const rtc = new GoldfishRtc(plic.line(VIRT_MEMMAP.rtc.irq), { base: rtcConfig.base, clock: rtcClock(rtcConfig.clock, machine), wake: () => machine.wake() });
  core.map(VIRT_MEMMAP.rtc, rtc);
  machine.onExit.push(() => rtc.close());
  core.map(TEST, new Syscon((kind, code) => {
    if (kind === "poweroff") machine.requestStop(code);
    else machine.requestReset();
  }), { type: "riscv.sifive.test" });

  // Disks: a drive sits in the slot its -device bus= names; the others fill the virtio-mmio
  // slots from the highest one down, as QEMU's do, so the first drive is at 0x1000_8000 and is
  // the first the guest finds in the device tree (/dev/vda).
  const attached = cfg.drives.filter((d) => d.attached);
  const unattached = cfg.drives.find((d) => !d.attached);
  if (unattached) throw new UsageError(`-drive id=${unattached.id ?? "?"} is not attached to any device (add -device virtio-blk-device,drive=${unattached.id ?? "ID"})`);
  if (attached.length > VIRT_VIRTIO_COUNT) throw new UsageError(`at most ${VIRT_VIRTIO_COUNT} virtio disks`);
  const bySlot = new Map<number, { drive: DriveConfig; index: number }>();
  const rngSlots = new Set(cfg.rng ?? []);
  attached.forEach((drive, index) => {
    const slot = drive.slot ?? freeSlot(new Set([...bySlot.keys(), ...rngSlots]));
    if (rngSlots.has(slot)) throw new UsageError(`${drive.file}: virtio-mmio slot ${slot} is taken by a virtio-rng-device`);
    if (bySlot.has(slot) || slot < 0 || slot >= VIRT_VIRTIO_COUNT) throw new UsageError(`${drive.file}: virtio-mmio slot ${slot} is taken or does not exist`);
    bySlot.set(slot, { drive, index });
  });
  const transports: VirtioMmio[] = [];
  const { console: _console, openDisk: _openDisk, jit: _jit, sliceInstructions: _slice, ...plainConfig } = cfg; // (jit, slice: host settings)
  const abs = (p: string | undefined) => (p === undefined || p === "none" || p === "default" ? p : resolvePath(p));
  const legacy = cfg.virtioLegacy ?? true;
  machine.config = {
    ...plainConfig, bios: abs(cfg.bios), kernel: abs(cfg.kernel), initrd: abs(cfg.initrd), virtioLegacy: legacy,
    drives: cfg.drives.map((d) => ({ ...d, file: resolvePath(d.file), slot: [...bySlot].find(([, v]) => v.drive === d)?.[0] })),
  };
  for (let slot = VIRT_VIRTIO_COUNT - 1; slot >= 0; slot--) {
    const region = { ...VIRT_MEMMAP.virtio, base: virtioSlotBase(slot), irq: virtioSlotIrq(slot) };
    const entry = bySlot.get(slot);
    if (rngSlots.has(slot)) {
      const transport = new VirtioMmio(mem, new VirtioRng(), plic.line(virtioSlotIrq(slot)),
        (msg) => process.stderr.write(`rvm: virtio-rng: ${msg}\n`), { legacy });
      transports.push(transport);
      // A queue that waited for guest pages still in a remote store is served between slices
      // (wake the hart from WFI); a savevm or loadvm first serves it (drain), as virtio-blk's.
      transport.onDeferredDone = () => machine.wake();
      machine.quiesce.push(() => transport.drain());
      core.map(region, transport, { properties: () => [`bus: virtio-mmio-bus.${slot}`, "  type virtio-mmio-bus", `  dev: virtio-rng-device, id ""`] });
      machine.stateful.push({ name: `virtio@${region.base.toString(16)}`, state: () => transport.state(), restore: (st) => transport.restore(st as ReturnType<VirtioMmio["state"]>) });
      continue;
    }
    if (!entry) {
      core.map(region, new VirtioMmioEmpty(legacy));
      continue;
    }
    const { drive, index: i } = entry;
    const disk = cfg.openDisk ? cfg.openDisk(drive, i) : openDrive(drive);
    const attachedDrive = { index: i, file: resolvePath(drive.file), readonly: drive.readonly, disk } as AttachedDrive;
    machine.drives.push(attachedDrive);
    if (disk instanceof RawDisk || disk instanceof OverlayDisk) machine.onExit.push(() => disk.close());
    const blk = new VirtioBlk(mem, disk, { diskIndex: i });
    blk.onBeforeDiskWrite = (offset, length) => machine.beforeDiskWrite(i, offset, length);
    const transport = new VirtioMmio(mem, blk, plic.line(virtioSlotIrq(slot)),
      (msg) => writeOut(2, `rvm: virtio-blk ${drive.file}: ${msg}\n`), { legacy });
    transports.push(transport);
    // A read deferred on a remote store (or a queue that waited for guest pages still there)
    // completes between slices: wake the hart from WFI; a command with the hart stopped
    // (savevm, loadvm) first completes it (drain).
    transport.onDeferredDone = () => machine.wake();
    machine.quiesce.push(() => transport.drain());
    core.map(region, transport, {
      properties: () => [`bus: virtio-mmio-bus.${slot}`, "  type virtio-mmio-bus", `  dev: virtio-blk-device, id ""`,
        `    drive = "${resolvePath(drive.file)}"`, `    readonly = ${drive.readonly ? "on" : "off"}`],
    });
    machine.stateful.push({
      name: `virtio@${region.base.toString(16)}`,
      state: () => transport.state(),
      restore: (st) => transport.restore(st as ReturnType<VirtioMmio["state"]>),
    });
  }

  machine.drives.sort((a, b) => a.index - b.index);

  // Device reset restores each device's power-on state (PLIC last: its state wins).
  const uart0 = uart.state();
  const plic0 = plic.state();
  machine.resettables.push({ reset: () => uart.restore(uart0) });
  machine.resettables.push(rtc);
  for (const t of transports) machine.resettables.push(t);
  machine.resettables.push({ reset: () => plic.restore(plic0) });
  // Snapshot state, restored in this order: devices first, the PLIC last.
  machine.stateful.unshift({ name: "uart0", state: () => uart.state(), restore: (st) => uart.restore(st as UartState) });
  machine.stateful.push({ name: "rtc", state: () => rtc.state(), restore: (st) => rtc.restore(st as GoldfishRtcState) });
  machine.stateful.push({ name: "plic", state: () => plic.state(), restore: (st) => plic.restore(st as PlicState) });

  const load = () => loadImages(machine, cfg);
  if (!cfg.restoring) load();
  machine.onReset = load;
  return machine;
}

/**
 * Opens a drive's image. With snapshot=on (-snapshot) the image is opened read-only under a
 * temporary overlay that takes the guest's writes. A gzip-compressed image cannot be written in
 * place: it is unpacked into memory and the guest's writes stay there (said once on stderr
 * unless -snapshot asked for exactly that).
 */
function openDrive(drive: DriveConfig): BlockBackend {
  const temporary = drive.snapshot === true && !drive.readonly;
  if (/\.gz$/i.test(drive.file)) {
    const data = readImage(drive.file);
    if (!drive.readonly && !temporary) {
      writeOut(2, `rvm: ${drive.file} is compressed: the guest's writes to it are kept in memory only (gunzip it to keep them)\n`);
    }
    return new MemoryDisk(data.slice(), drive.readonly);
  }
  // QEMU locks a -snapshot overlay's base as a reader that also keeps others from resizing it.
  if (temporary) return new OverlayDisk(RawDisk.open(drive.file, { readOnly: true, lock: "read-no-resize" }));
  return RawDisk.open(drive.file, { readOnly: drive.readonly });
}

/** Places firmware, kernel, initrd and device tree, and writes the reset ROM (QEMU's rules). */
function loadImages(machine: Machine, cfg: VirtConfig): void {
  const ramEnd = RAM_BASE + cfg.ramBytes;
  let start: number; // where the reset ROM jumps
  let kernelStart: number | undefined;
  let firmwareEnd = RAM_BASE;

  const bios = cfg.bios === "default" ? defaultFirmware() : cfg.bios;
  if (bios !== "none") {
    const fw = readImage(bios);
    if (isElf(fw)) {
      const elf = parseElf(fw, bios);
      start = machine.loadElfSegments(elf, bios);
      firmwareEnd = Math.max(...elf.segments.map((s) => s.paddr + s.memsz));
    } else {
      machine.loadBytes(fw, RAM_BASE, bios);
      start = RAM_BASE;
      firmwareEnd = RAM_BASE + fw.length;
    }
  } else {
    start = RAM_BASE;
  }

  let kernelFile = cfg.kernel;
  const implicitBootloader = !kernelFile && bios !== "none" && cfg.drives.length > 0;
  if (implicitBootloader) kernelFile = defaultBootloader();
  if (kernelFile) {
    const data = readImage(kernelFile);
    if (isElf(data)) {
      const elf = parseElf(data, kernelFile);
      kernelStart = machine.loadElfSegments(elf, kernelFile);
    } else {
      // QEMU: the kernel goes at the first 2 MiB boundary after the firmware (RV64).
      kernelStart = bios === "none" ? RAM_BASE : Math.ceil(firmwareEnd / (2 * MiB)) * (2 * MiB);
      const image = isLinuxImage(data) ? parseLinuxImage(data) : undefined;
      if (image && kernelStart + image.imageSize > ramEnd) {
        throw new ImageError(kernelFile, `the kernel needs ${image.imageSize} bytes of RAM; -m is too small`);
      }
      machine.loadBytes(data, kernelStart, kernelFile);
    }
    if (bios === "none") start = kernelStart;
  } else if (bios === "none") {
    throw new UsageError("nothing to run: with -bios none, give -kernel FILE");
  }

  let initrd: { start: number; end: number } | undefined;
  if (cfg.initrd) {
    if (kernelStart === undefined) throw new UsageError("-initrd needs -kernel");
    const data = readImage(cfg.initrd);
    // QEMU: at kernel start + min(RAM / 2, 128 MiB), so the kernel can unpack below it.
    const at = kernelStart + Math.min(cfg.ramBytes / 2, 128 * MiB);
    if (at + data.length > ramEnd) throw new ImageError(cfg.initrd, "the initrd does not fit in RAM; -m is too small");
    machine.loadBytes(data, at, cfg.initrd);
    initrd = { start: at, end: at + data.length };
  }

  const tree = buildVirtTree({
    harts: cfg.harts ?? 1,
    ramBase: RAM_BASE,
    ramBytes: cfg.ramBytes,
    isa: VIRT_ISA,
    mmuType: VIRT_MMU,
    timebaseHz: 10_000_000,
    bootargs: cfg.append,
    initrd,
    virtioSlots: VIRT_VIRTIO_COUNT,
    rtc: true,
  });
  // rvm's own default boot path (U-Boot picked for a bare disk image): no 2-second autoboot
  // countdown. U-Boot reads /config/bootdelay from the tree; Linux ignores the node.
  if (implicitBootloader) tree.root.addNode("config").setU32("bootdelay", 0);
  const dtb = serializeFdt(tree, { bootCpuidPhys: 0, align: 8 });
  const fdtAddr = virtFdtAddress(RAM_BASE, cfg.ramBytes);
  machine.loadBytes(dtb, fdtAddr, "device tree");
  machine.deviceTree = dtb;
  writeResetRom(machine.core.rom, { start, fdt: fdtAddr, nextAddr: kernelStart ?? 0, nextMode: 1 });
}

/** The device tree for a configuration, for `rvm dumpdtb`. */
export function virtDtbFor(ramBytes: number, append?: string, harts = 1): Uint8Array {
  return buildVirtDtb({
    harts,
    ramBase: RAM_BASE, ramBytes, isa: VIRT_ISA, mmuType: VIRT_MMU, timebaseHz: 10_000_000,
    bootargs: append, virtioSlots: VIRT_VIRTIO_COUNT, rtc: true,
  });
}

/**
 * The RTC's clock in ns: the host's wall clock (-rtc clock=host), its monotonic clock anchored
 * to the wall clock when rvm started (clock=rt: immune to host clock steps), or guest time
 * (clock=vm: mtime at 10 MHz, which stands still while the machine is stopped).
 */
function rtcClock(kind: RtcConfig["clock"], machine: Machine): () => bigint {
  if (kind === "vm") return () => machine.mtime * 100n;
  if (kind === "rt") {
    const wall0 = BigInt(Date.now()) * 1_000_000n;
    const mono0 = performance.now();
    return () => wall0 + BigInt(Math.round((performance.now() - mono0) * 1e6));
  }
  return () => BigInt(Date.now()) * 1_000_000n;
}
