// Shared test helpers: run guest ELFs in-process with captured console output.

import { readdirSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";
import { Machine, RunResult } from "../src/machine.js";
import { createVirtMachine } from "../src/board/virt.js";

export const ROOT = new URL("..", import.meta.url).pathname;

/** A TCP port on 127.0.0.1 that was free a moment ago (for a listener the test starts). */
export async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", () => r()));
  const port = (srv.address() as { port: number }).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

export interface GuestRun extends RunResult {
  stdout: string;
  machine: Machine;
}

export interface GuestOptions {
  ramBytes?: number;
  /** Number of harts (-smp). */
  harts?: number;
  icountShift?: number;
  timeoutMs?: number;
  /** Called after loading, before running (e.g. to mark pages not restored). */
  prepare?: (m: Machine) => void;
}

export function loadGuest(file: string, opts: GuestOptions = {}): { machine: Machine; out: string[] } {
  const out: string[] = [];
  const machine = createVirtMachine({
    ramBytes: opts.ramBytes ?? 128 << 20,
    harts: opts.harts,
    icountShift: opts.icountShift,
    bios: "none",
    kernel: file,
    drives: [],
    console: {
      write: (_fd, bytes) => out.push(Buffer.from(bytes).toString("latin1")),
      readByte: () => -1,
    },
  });
  return { machine, out };
}

export async function runGuest(file: string, opts: GuestOptions = {}): Promise<GuestRun> {
  const { machine, out } = loadGuest(file, opts);
  opts.prepare?.(machine);
  const result = await machine.run({ timeoutMs: opts.timeoutMs ?? 60_000 });
  return { ...result, stdout: out.join(""), machine };
}

export function guestFiles(dir: string, filter: (name: string) => boolean = () => true): string[] {
  return readdirSync(join(ROOT, dir))
    .filter((n) => n.endsWith(".elf") && filter(n))
    .sort()
    .map((n) => join(ROOT, dir, n));
}

/** A small deterministic PRNG (xorshift32) for reproducible random test inputs. */
export function xorshift(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13; s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5; s >>>= 0;
    return s;
  };
}
