// What to run: `rvm run FILE` and its options turned into the board's configuration, as QEMU
// would need it spelled out (firmware, kernel, initrd, drives, memory). Shared by the CLI and
// the browser page (which classifies a dropped file the same way).

import { fs, path } from "./platform.js";
import { ImageError, UsageError } from "./errors.js";
import { readImage } from "./loaders/image.js";
import { isElf, parseElf } from "./loaders/elf.js";
import { isLinuxImage } from "./loaders/linux.js";
import type { DriveConfig } from "./options.js";
import type { VirtConfig } from "./board/virt.js";

const { dirname, resolve } = path;

/** Parses a memory size the way QEMU's -m does: a number of MiB, or with a K/M/G suffix. */
export function parseMemorySize(text: string): number {
  // As QEMU's -m (qemu_strtosz_MiB, then vl.c): a decimal number, fractions allowed (`1.5G`), of
  // MiB or with a B/K/M/G/T suffix; the fraction of a byte is dropped, the size rounded up to 8 KiB.
  const m = /^(?:size=)?(\d+(?:\.\d*)?|\.\d+)(?:([BKMGT])(?:i?B)?)?$/i.exec(text.trim());
  if (!m) throw new UsageError(`not a memory size: "${text}" (examples: 128M, 1.5G)`);
  const mul = { B: 1, K: 1024, M: 1 << 20, G: 2 ** 30, T: 2 ** 40 }[(m[2] ?? "M").toUpperCase()]!;
  const bytes = Math.ceil(Math.floor(Number(m[1]) * mul) / 8192) * 8192;
  if (bytes < 1 << 20 || bytes > 3 * 2 ** 30) throw new UsageError(`memory size ${text} is out of range (1M to 3G)`);
  return bytes;
}

/** The options that say what the guest is (a subset of `rvm run`'s). */
export interface GuestFlags {
  memory?: number;
  bios?: string;
  kernel?: string;
  initrd?: string;
  append?: string;
  format?: "elf" | "raw";
}

/** A guest description file (JSON): paths are relative to the file. */
interface GuestDescription {
  memory?: string;
  bios?: string;
  kernel?: string;
  initrd?: string;
  append?: string;
  drives?: (string | { file: string; readonly?: boolean })[];
}

function readDescription(file: string, flags: GuestFlags, drives: DriveConfig[]): void {
  let desc: GuestDescription;
  try {
    if (!fs.statSync(file).isFile()) throw new ImageError(file, "not a regular file"); // a FIFO would never end
    desc = JSON.parse(new TextDecoder().decode(fs.readFileSync(file))) as GuestDescription;
  } catch (e) {
    if (e instanceof ImageError) throw e;
    const code = (e as NodeJS.ErrnoException).code;
    throw new ImageError(file, code === "ENOENT" ? "no such file" : `not a valid guest description (${(e as Error).message})`);
  }
  const base = dirname(file);
  const rel = (p: string | undefined) => (p === undefined || p === "none" || p === "default" ? p : resolve(base, p));
  if (desc.memory !== undefined && flags.memory === undefined) flags.memory = parseMemorySize(desc.memory);
  flags.bios ??= rel(desc.bios);
  flags.kernel ??= rel(desc.kernel);
  flags.initrd ??= rel(desc.initrd);
  flags.append ??= desc.append;
  for (const d of desc.drives ?? []) {
    const spec = typeof d === "string" ? { file: d } : d;
    drives.push({ file: resolve(base, spec.file), readonly: spec.readonly ?? false, attached: true });
  }
}

/** Decides what FILE is and fills in the configuration QEMU would need for it. */
export function classify(file: string, flags: GuestFlags, drives: DriveConfig[]): "description" | "kernel" | "disk" {
  if (/\.json$/i.test(file)) {
    readDescription(file, flags, drives);
    return "description";
  }
  const data = readImage(file);
  const raw = flags.format === "raw" || (flags.format === undefined && /\.bin(\.gz)?$/i.test(file) && !isElf(data));
  if (raw || isElf(data)) {
    if (isElf(data)) parseElf(data, file); // validate now, for a clear error
    flags.bios ??= "none";
    if (flags.kernel) throw new UsageError("give either FILE or -kernel, not both");
    flags.kernel = file;
    return "kernel";
  }
  if (flags.format === "elf") throw new ImageError(file, "not an ELF file");
  if (isLinuxImage(data)) {
    flags.kernel ??= file;
    return "kernel";
  }
  if (data.length >= 64 * 1024 && data.length % 512 === 0) {
    drives.push({ file, readonly: false, attached: true }); // a bootable disk image
    return "disk";
  }
  throw new ImageError(file, "not an ELF file, Linux Image or disk image (to load a raw binary at 0x80000000, name it .bin or pass --format raw)");
}

/**
 * QEMU's defaults around what classify found: the board configuration for `rvm run [FILE]
 * [options]` (the CLI adds -icount and -global settings).
 */
export function baseConfig(bootableDisk: boolean, flags: GuestFlags, drives: DriveConfig[]): Omit<VirtConfig, "console"> {
  // A bootable disk goes through U-Boot, whose built-in environment loads the initrd above
  // 128 MiB (ramdisk_addr_r = 0x8830_0000): such a guest gets 256 MiB unless -m says otherwise.
  if (bootableDisk && flags.memory === undefined && !flags.kernel) flags.memory = 256 << 20;
  if (!flags.kernel && drives.length === 0 && flags.bios === undefined) throw new UsageError("nothing to run: give FILE, -kernel or -drive (see rvm run --help)");
  return {
    ramBytes: flags.memory ?? 128 << 20,
    bios: flags.bios ?? "default",
    kernel: flags.kernel,
    initrd: flags.initrd,
    append: flags.append,
    drives,
  };
}

/** The board configuration for `rvm run FILE` with these options and no -drive (the browser page). */
export function guestConfig(file: string, flags: GuestFlags): Omit<VirtConfig, "console"> {
  const drives: DriveConfig[] = [];
  return baseConfig(classify(file, flags, drives) === "disk", flags, drives);
}
