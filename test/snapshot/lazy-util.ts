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
