// Not-yet-restored pages (DESIGN.md section 3): a guest whose RAM starts entirely
// "not restored", with the host installing each page only when the core reports a touch,
// must end byte-for-byte where a normal run ends — output, RAM and hart state.

import { describe, expect, it } from "vitest";
import { basename } from "node:path";
import { guestFiles, loadGuest } from "../helpers.js";
import { PageState } from "../../src/core.js";

// The single-hart programs with one hart, the multi-hart ones (smp-*) with four.
const programs = guestFiles("guests/isa", (n) => !n.startsWith("fp-"));
const hartsOf = (file: string) => (basename(file).startsWith("smp-") ? 4 : 1);

async function normalRun(file: string) {
  const { machine, out } = loadGuest(file, { icountShift: 2, ramBytes: 16 << 20, harts: hartsOf(file) });
  const r = await machine.run({ timeoutMs: 60_000 });
  return { r, out: out.join(""), ram: Buffer.from(machine.core.ram), hart: Buffer.from(machine.core.hartState()) };
}

async function lazyRun(file: string) {
  const { machine, out } = loadGuest(file, { icountShift: 2, ramBytes: 16 << 20, harts: hartsOf(file) });
  const core = machine.core;
  const image = Buffer.from(core.ram); // what a checkpoint would hold
  core.exports.markAllNotRestored();
  core.ram.fill(0xa5); // anything not fetched through the restore path would show
  const fetched: number[] = [];
  const restore = (p: number) => {
    expect(core.pages[p] & PageState.NotRestored).toBeTruthy();
    core.ram.set(image.subarray(p * 4096, (p + 1) * 4096), p * 4096);
    core.pages[p] &= ~PageState.NotRestored;
    fetched.push(p);
  };
  // A page source (snapshot/source.ts) serving the hart's faults and host accesses.
  machine.attachSource({ demand: restore, demandNow: restore });
  const r = await machine.run({ timeoutMs: 60_000 });
  // Fill in what the guest never touched, as a background fetcher would.
  for (let p = 0; p < core.pages.length; p++) {
    if (core.pages[p] & PageState.NotRestored) restore(p);
  }
  return { r, out: out.join(""), ram: Buffer.from(core.ram), hart: Buffer.from(core.hartState()), fetched };
}

describe("demand paging of not-yet-restored RAM", { timeout: 120_000 }, () => {
  for (const file of programs) {
    it(`${basename(file)} runs identically with every page restored on demand (${hartsOf(file)} hart${hartsOf(file) > 1 ? "s" : ""})`, async () => {
      const a = await normalRun(file);
      const b = await lazyRun(file);
      expect(b.r.exitCode).toBe(a.r.exitCode);
      expect(b.r.exitCode).toBe(0);
      expect(b.out).toBe(a.out);
      expect(b.r.instret).toBe(a.r.instret);
      expect(b.fetched.length).toBeGreaterThan(0);
      expect(new Set(b.fetched).size).toBe(b.fetched.length); // each page fetched once
      expect(b.ram.equals(a.ram)).toBe(true);
      expect(b.hart.equals(a.hart)).toBe(true);
    });
  }
});
