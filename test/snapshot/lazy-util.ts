// Helpers for the lazy-restore tests (test/snapshot/lazy.test.ts): temp directories (on tmpfs
// when there is one: the disk journal fsyncs every append), the shipped Linux guest booted
// in-process with deterministic time (icount 4), shell commands typed at its console, and ways
// to drive a lazy restore's background fetcher without running the guest.

import { PageState, PAGE_SIZE } from "../../src/core.js";
import type { Machine } from "../../src/machine.js";
import type { LazyRestore } from "../../src/snapshot/restore-lazy.js";

// The guest, temp directories and shell helpers are shared with the savevm tests.
export { cleanup, diskCopy, endMachines, freshDir, GUEST, linuxMachine, PROMPT, runUntil, shell, TEST_JIT } from "./util.js";
export type { Guest } from "./util.js";
export const HELLO = "hello from the rvm disk";

/**
 * Completes a lazy restore without running the guest: calls the machine's background hook
 * (what the run loop does between slices) and lets the event loop deliver the asynchronous
 * reads, until every page is resident.
 */
export async function fetchAll(m: Machine, r: LazyRestore, timeoutMs = 90_000): Promise<void> {
  const t0 = performance.now();
  while (!r.complete) {
    if (performance.now() - t0 > timeoutMs) throw new Error(`lazy restore not complete after ${timeoutMs} ms: ${r.progress()}`);
    m.pageSource?.background?.();
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
}

export const isRestored = (m: Machine, p: number) => (m.core.pages[p] & PageState.NotRestored) === 0;
export const pageBytes = (m: Machine, p: number) => Buffer.from(m.core.ram.subarray(p * PAGE_SIZE, (p + 1) * PAGE_SIZE));
export const ramOf = (m: Machine) => Buffer.from(m.core.ram);
export const hartOf = (m: Machine) => Buffer.from(m.core.hartState());

/**
 * The RAM page (0-based from the start of RAM) that virtual address `va` of the selected hart
 * maps to, found by walking its page table in RAM here (Sv39/Sv48/Sv57, as the privileged spec
 * describes it; bare in M-mode or with satp's mode 0), independently of the core's MMU; -1 if it
 * does not map to RAM. `tables` gets the RAM pages of the page-table entries the walk read, in
 * order. For checking which pages savevm puts first.
 */
export function ramPageOf(m: Machine, va: bigint, fetch: boolean, tables?: number[]): number {
  const core = m.core;
  const ramBase = 0x8000_0000n;
  const ramEnd = ramBase + BigInt(core.ram.length);
  const mstatus = core.csr(0x300);
  let priv = core.priv;
  if (!fetch && priv === 3 && (mstatus >> 17n) & 1n) priv = Number((mstatus >> 11n) & 3n); // MPRV: MPP
  const satp = core.csr(0x180);
  const mode = Number(satp >> 60n);
  let pa = va;
  if (priv < 3 && mode !== 0) {
    const levels = mode === 8 ? 3 : mode === 9 ? 4 : 5;
    let table = (satp & ((1n << 44n) - 1n)) << 12n;
    pa = -1n;
    for (let i = levels - 1; i >= 0; i--) {
      const vpn = (va >> (12n + 9n * BigInt(i))) & 0x1ffn;
      const at = table + vpn * 8n;
      if (at < ramBase || at + 8n > ramEnd) return -1;
      tables?.push(Number((at - ramBase) >> 12n));
      const pte = Buffer.from(core.ram.buffer, core.ram.byteOffset + Number(at - ramBase), 8).readBigUInt64LE();
      if ((pte & 1n) === 0n) return -1;
      const ppn = (pte >> 10n) & ((1n << 44n) - 1n);
      if (pte & 0xan) { // R or X: a leaf (a superpage keeps the low VPNs of va)
        const low = (1n << (12n + 9n * BigInt(i))) - 1n;
        pa = ((ppn << 12n) & ~low) | (va & low);
        break;
      }
      table = ppn << 12n;
    }
    if (pa < 0n) return -1;
  }
  if (pa < ramBase || pa >= ramEnd) return -1;
  return Number((pa - ramBase) >> 12n);
}

/**
 * The page-table pages of the selected hart's address space (satp's whole tree), root first,
 * breadth first in entry order, RAM pages only, each once (the test's own walk, for
 * Machine.tablePages).
 */
export function tableTree(m: Machine): number[] {
  const core = m.core;
  const ramBase = 0x8000_0000n;
  const satp = BigInt.asUintN(64, core.csr(0x180));
  const mode = Number(satp >> 60n);
  if (mode === 0) return [];
  const levels = mode === 8 ? 3 : mode === 9 ? 4 : 5;
  const pageOf = (ppn: bigint) => Number(ppn - (ramBase >> 12n));
  const inRam = (p: number) => p >= 0 && p < core.pages.length;
  const root = pageOf(satp & ((1n << 44n) - 1n));
  if (!inRam(root)) return [];
  const out: number[] = [];
  const seen = new Set([root]);
  const queue: [number, number][] = [[root, levels - 1]];
  for (let q = 0; q < queue.length; q++) {
    const [t, level] = queue[q];
    out.push(t);
    if (level === 0) continue;
    const table = Buffer.from(core.ram.buffer, core.ram.byteOffset + t * 4096, 4096);
    for (let i = 0; i < 512; i++) {
      const pte = table.readBigUInt64LE(i * 8);
      if ((pte & 1n) === 0n || (pte & 0xen) !== 0n) continue; // invalid or a leaf
      const child = pageOf((pte >> 10n) & ((1n << 44n) - 1n));
      if (!inRam(child) || seen.has(child)) continue;
      seen.add(child);
      queue.push([child, level - 1]);
    }
  }
  return out;
}
