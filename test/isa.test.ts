// The bare-metal ISA test programs in guests/isa/ (see guests/isa/README.md): each checks its
// own results and reports through HTIF; exit code 0 means every case passed, N the first
// failing case.

import { describe, expect, it } from "vitest";
import { basename } from "node:path";
import { guestFiles, runGuest } from "./helpers.js";

// The multi-hart programs (smp-*.elf) have their own suite: test/smp.test.ts.
const programs = guestFiles("guests/isa", (n) => !n.startsWith("smp-"));

describe("ISA test programs", { timeout: 120_000 }, () => {
  it("exist", () => {
    expect(programs.length).toBeGreaterThanOrEqual(5);
  });
  for (const file of programs) {
    it(`${basename(file)} passes (real time)`, async () => {
      const r = await runGuest(file);
      expect(r.reason).toBe("exit");
      expect(r.exitCode, `first failing case of ${basename(file)}`).toBe(0);
    });
    it(`${basename(file)} passes (deterministic time)`, async () => {
      const r = await runGuest(file, { icountShift: 3 });
      expect(r.exitCode, `first failing case of ${basename(file)}`).toBe(0);
    });
  }
});
