// The lab handouts in docs/labs/ are run as a student would run them (test/labs/runner.ts):
// every command in them, in a terminal, with their expected observations checked.

import { describe, expect, it } from "vitest";
import { existsSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { ROOT } from "../helpers.js";
import { runHandout } from "./runner.js";

const lab = (name: string) => join(ROOT, "docs/labs", name);

describe("lab handouts", () => {
  it("lab 1: the page cache and the size of a checkpoint", { timeout: 900_000 }, async () => {
    const run = await runHandout(lab("lab1-page-cache.md"));
    // The picture it asks for was drawn.
    expect(readFileSync(join(run.dir, "lab1/copied.svg"), "utf8")).toMatch(/<svg[\s\S]*snapshot copied/);
    // Reading the file back made its ~650 pages disk-backed: more than in the checkpoint before.
    const disk = (name: string) => Number(new RegExp(`saved ${name}: .*disk-backed (\\d+)`).exec(run.outputs.map((o) => o.output).join(""))?.[1]);
    expect(disk("cached") - disk("written")).toBeGreaterThan(500);
    rmSync(run.dir, { recursive: true, force: true });
  });

  it("lab 2: watching a lazy restore", { timeout: 900_000 }, async () => {
    const run = await runHandout(lab("lab2-lazy-restore.md"));
    for (const f of ["eager.svg", "lazy-page.svg", "lazy-ws.svg", "lazy-ws.json"]) expect(existsSync(join(run.dir, "lab2", f)), f).toBe(true);
    // The same memory came back every time.
    const sums = run.outputs.map((o) => o.output).join("").match(/memfill: sum=0x[0-9a-f]{16}/g) ?? [];
    expect(sums.length).toBe(4);
    expect(new Set(sums).size).toBe(1);
    rmSync(run.dir, { recursive: true, force: true });
  });

  it("lab 3: tracing traps and page faults (--trace, -d int, the monitor, gdb-multiarch)", { timeout: 900_000 }, async () => {
    const run = await runHandout(lab("lab3-traps.md"));
    expect(readFileSync(join(run.dir, "lab3/trace.txt"), "utf8").split("\n").length).toBeGreaterThan(1000);
    // Every page memfill wrote was a store page fault from U-mode in the -d int log.
    const faults = readFileSync(join(run.dir, "lab3/linux-int.log"), "utf8").split("desc=store_page_fault, priv:U->S").length - 1;
    expect(faults).toBeGreaterThanOrEqual(40960);
    rmSync(run.dir, { recursive: true, force: true });
  });
});
