// Tests from the public riscv-tests suite, built (guests/riscv-tests/README.md): each reports
// through HTIF, exit code 0 when every case passed, else the failing case's number.

import { describe, expect, it } from "vitest";
import { basename } from "node:path";
import { guestFiles, runGuest } from "./helpers.js";

const programs = guestFiles("guests/riscv-tests", () => true);

describe("riscv-tests", { timeout: 60_000 }, () => {
  it("exist", () => {
    expect(programs.map((p) => basename(p))).toContain("rv64mi-p-breakpoint.elf");
  });
  for (const file of programs) {
    it(`${basename(file)} passes`, async () => {
      const r = await runGuest(file);
      expect(r.reason).toBe("exit");
      expect(r.exitCode, `first failing case of ${basename(file)}`).toBe(0);
    });
  }
});
