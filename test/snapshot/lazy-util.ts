// Helpers for the lazy-restore tests (test/snapshot/lazy.test.ts): temp directories (on tmpfs
// when there is one: the disk journal fsyncs every append), the shipped Linux guest booted
// in-process with deterministic time (icount 4), shell commands typed at its console, and ways
// to drive a lazy restore's background fetcher without running the guest.

import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gunzipSync } from "node:zlib";
import { ROOT } from "../helpers.js";
import { createVirtMachine } from "../../src/board/virt.js";
import { PageState, PAGE_SIZE } from "../../src/core.js";
import type { Machine } from "../../src/machine.js";
import type { DriveConfig } from "../../src/options.js";
import type { LazyRestore } from "../../src/snapshot/restore-lazy.js";

export const GUEST = join(ROOT, "guests/linux");
export const PROMPT = "~ # ";
export const HELLO = "hello from the rvm disk";

let rootDir: string | undefined;
let dirs = 0;

export function freshDir(tag = "d"): string {
  rootDir ??= mkdtempSync(join(existsSync("/dev/shm") ? "/dev/shm" : tmpdir(), "rvm-lazytest-"));
  const d = join(rootDir, `${tag}${dirs++}`);
  mkdirSync(d);
  return d;
}

export function cleanup(): void {
  if (rootDir) rmSync(rootDir, { recursive: true, force: true });
  rootDir = undefined;
}

/** A writable copy of the guest's ext4 image in `dir`. */
export function diskCopy(dir: string, name = "disk.img"): string {
  const file = join(dir, name);
  writeFileSync(file, gunzipSync(readFileSync(join(GUEST, "disk.img.gz"))));
  return file;
}

export interface Guest {
  machine: Machine;
  out: () => string;
}

/** The Linux guest on the virt board (256 MiB, icount 4); `restoring`: nothing loaded. */
export function linuxMachine(disk: string, restoring = false): Guest {
  let out = "";
  const machine = createVirtMachine({
    ramBytes: 256 << 20,
    bios: join(GUEST, "fw_dynamic.bin"),
    kernel: join(GUEST, "Image.gz"),
    initrd: join(GUEST, "initramfs.cpio.gz"),
    append: "console=ttyS0",
    drives: [{ file: disk, readonly: false, attached: true } as DriveConfig],
    icountShift: 4,
    restoring,
    console: { write: (_fd, b) => void (out += Buffer.from(b).toString("latin1")), readByte: () => -1 },
  });
  return { machine, out: () => out };
}

export async function runUntil(g: Guest, text: string, from: number, timeoutMs = 20_000): Promise<void> {
  const r = await g.machine.run({ until: () => g.out().indexOf(text, from) >= 0, timeoutMs });
  if (r.reason !== "budget") throw new Error(`run ended (${r.reason}) before "${text}"; output:\n${g.out().slice(-1500)}`);
}

/** Types a shell command and runs until the prompt after it; returns its output. */
export async function shell(g: Guest, line: string, timeoutMs = 20_000): Promise<string> {
  const from = g.out().length;
  g.machine.input(Buffer.from(line + "\n"));
  await runUntil(g, line + "\r\n", from, timeoutMs);
  const start = g.out().indexOf(line + "\r\n", from) + line.length + 2;
  await runUntil(g, PROMPT, start, timeoutMs);
  return g.out().slice(start, g.out().indexOf(PROMPT, start)).replace(/\r/g, "");
}

/**
 * Completes a lazy restore without running the guest: calls the machine's background hook
 * (what the run loop does between slices) and lets the event loop deliver the asynchronous
 * reads, until every page is resident.
 */
export async function fetchAll(m: Machine, r: LazyRestore, timeoutMs = 20_000): Promise<void> {
  const t0 = performance.now();
  while (!r.complete) {
    if (performance.now() - t0 > timeoutMs) throw new Error(`lazy restore not complete after ${timeoutMs} ms: ${r.progress()}`);
    m.background?.();
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
}

export const isRestored = (m: Machine, p: number) => (m.core.pages[p] & PageState.NotRestored) === 0;
export const pageBytes = (m: Machine, p: number) => Buffer.from(m.core.ram.subarray(p * PAGE_SIZE, (p + 1) * PAGE_SIZE));
export const ramOf = (m: Machine) => Buffer.from(m.core.ram);
export const hartOf = (m: Machine) => Buffer.from(m.core.hartState());
