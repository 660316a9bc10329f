// Helpers for the snapshot tests: temp directories (on tmpfs when there is one: the disk journal
// fsyncs every append), the Linux guest booted in-process with deterministic time, and small
// "restoring" machines (no images loaded) whose RAM a test fills by hand.

import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gunzipSync } from "node:zlib";
import { ROOT } from "../helpers.js";
import { createVirtMachine } from "../../src/board/virt.js";
import type { Machine } from "../../src/machine.js";
import type { DriveConfig } from "../../src/options.js";
import { PAGE_SIZE, RAM_BASE } from "../../src/core.js";
import { GuestMemory } from "../../src/memory.js";
import { readImage } from "../../src/loaders/image.js";

export const GUEST = join(ROOT, "guests/linux");
/** The prompt of the guest's busybox shell. */
export const PROMPT = "~ # ";

let rootDir: string | undefined;
let dirs = 0;

/** A fresh empty directory under this test file's temp root. */
export function freshDir(tag = "d"): string {
  rootDir ??= mkdtempSync(join(existsSync("/dev/shm") ? "/dev/shm" : tmpdir(), "rvm-snaptest-"));
  const d = join(rootDir, `${tag}${dirs++}`);
  mkdirSync(d);
  return d;
}

/** Removes the temp root (call from afterAll). */
export function cleanup(): void {
  if (rootDir) rmSync(rootDir, { recursive: true, force: true });
  rootDir = undefined;
}

let diskImage: Buffer | undefined;

/** A fresh writable copy of the guest's ext4 disk image in `dir`. */
export function diskCopy(dir: string, name = "disk.img"): string {
  diskImage ??= gunzipSync(readFileSync(join(GUEST, "disk.img.gz")));
  const file = join(dir, name);
  writeFileSync(file, diskImage);
  return file;
}

export function copyFile(from: string, to: string): string {
  copyFileSync(from, to);
  return to;
}

/** A machine plus everything it printed. */
export interface Guest {
  machine: Machine;
  /** All console output so far (latin1). */
  out: () => string;
}

function drive(file: string): DriveConfig {
  return { file, readonly: false, attached: true } as DriveConfig;
}

/** Machines made by linuxMachine and bareMachine that still have their disks open. */
const openMachines = new Set<Machine>();

/**
 * Ends every machine this test file made (their disks are flushed and closed, which gives their
 * image locks back): before another process (a spawned rvm) uses the same disk image.
 */
export function endMachines(): void {
  for (const m of openMachines) for (const f of m.onExit) f();
  openMachines.clear();
}

/**
 * The Linux guest on the virt board, 256 MiB, deterministic time (icount 4) and a deterministic
 * RTC (a fixed date, counting guest time: Linux reads it at boot, and the wall clock would make
 * two boots differ). With `restoring` nothing is loaded: the machine waits for a snapshot.
 */
/** The JIT as tests run it: a page translated after 200,000 instructions, compiled at once. */
export const TEST_JIT = { enabled: true, threshold: 200_000, sync: true };

export function linuxMachine(disk: string, restoring = false, ramBytes = 256 << 20, jit: typeof TEST_JIT | false = false): Guest {
  let out = "";
  const machine = createVirtMachine({
    ramBytes,
    // The firmware by path: "default" resolves relative to dist/, not src/.
    bios: join(GUEST, "fw_dynamic.bin"),
    kernel: join(GUEST, "Image.gz"),
    initrd: join(GUEST, "initramfs.cpio.gz"),
    append: "console=ttyS0",
    drives: [drive(disk)],
    icountShift: 4,
    rtc: { base: { date: Date.UTC(2024, 0, 1) }, clock: "vm" },
    restoring,
    jit,
    console: { write: (_fd, b) => void (out += Buffer.from(b).toString("latin1")), readByte: () => -1 },
  });
  openMachines.add(machine);
  return { machine, out: () => out };
}

/** Runs until `text` appears in the output after position `from`; fails on a timeout. */
export async function runUntil(g: Guest, text: string, from: number, timeoutMs = 90_000): Promise<void> {
  const r = await g.machine.run({ until: () => g.out().indexOf(text, from) >= 0, timeoutMs });
  if (r.reason !== "budget") throw new Error(`run ended (${r.reason}) before "${text}"; output:\n${g.out().slice(-1500)}`);
}

/** Types a shell command and runs until the next prompt after it. */
export async function shell(g: Guest, line: string, timeoutMs = 90_000): Promise<string> {
  const from = g.out().length;
  g.machine.input(Buffer.from(line + "\n"));
  // The echo of the line ends with "\r\n"; the prompt comes after the command's output.
  await runUntil(g, line + "\r\n", from, timeoutMs);
  const start = g.out().indexOf(line + "\r\n", from) + line.length + 2;
  await runUntil(g, PROMPT, start, timeoutMs);
  return g.out().slice(start, g.out().indexOf(PROMPT, start)).replace(/\r/g, "");
}

/** Boots the guest to its shell prompt. */
export async function boot(g: Guest): Promise<void> {
  await runUntil(g, PROMPT, 0, 120_000);
}

/** A small machine with nothing loaded: RAM, pages and hart are the test's to set up. */
export function bareMachine(ramBytes: number, disk?: string): Guest {
  let out = "";
  const machine = createVirtMachine({
    ramBytes,
    bios: "none",
    drives: disk ? [drive(disk)] : [],
    restoring: true,
    console: { write: (_fd, b) => void (out += Buffer.from(b).toString("latin1")), readByte: () => -1 },
  });
  if (disk) openMachines.add(machine);
  return { machine, out: () => out };
}

/** Deterministic PRNG bytes (mulberry32). */
export function prngBytes(len: number, seed: number): Uint8Array {
  let a = seed >>> 0;
  const out = new Uint8Array(len);
  for (let i = 0; i < len; i++) {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    out[i] = (t ^ (t >>> 14)) >>> 0;
  }
  return out;
}

const ADDI = 0x00150513; // addi a0, a0, 1
const JBACK = 0xffdff06f; // j .-4

/**
 * A small machine with every page kind and a two-instruction loop (counting in a0) at the start
 * of RAM: pages 1..7 and 10 stored, 11 the same as 10, 12 disk-backed (block 2 of `disk`).
 */
export function populated(ramBytes: number, disk?: string): Machine {
  const m = bareMachine(ramBytes, disk).machine;
  const code = m.mem.writable(RAM_BASE, 8);
  new DataView(code.buffer, code.byteOffset).setUint32(0, ADDI, true);
  new DataView(code.buffer, code.byteOffset).setUint32(4, JBACK, true);
  for (let p = 1; p < 8; p++) m.mem.write(GuestMemory.pageAddress(p), prngBytes(PAGE_SIZE, p)); // stored
  const twin = prngBytes(PAGE_SIZE, 99);
  m.mem.write(GuestMemory.pageAddress(10), twin); // stored
  m.mem.write(GuestMemory.pageAddress(11), twin); // same-as
  if (disk) {
    const blk = readImage(disk).subarray(2 * PAGE_SIZE, 3 * PAGE_SIZE); // .gz images unpacked
    m.mem.write(GuestMemory.pageAddress(12), blk);
    m.mem.noteDiskBacked(GuestMemory.pageAddress(12), 2, 0); // disk-backed
  }
  m.core.pc = BigInt(RAM_BASE);
  m.core.exports.setPriv(3);
  return m;
}
