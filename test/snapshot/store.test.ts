// The snapshot directory's housekeeping: temp files of saves whose rvm died are removed, those
// of a save still running are not; names are checked.

import { describe, expect, it } from "vitest";
import { existsSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { checkName, SnapshotStore } from "../../src/snapshot/store.js";

describe("snapshot store", () => {
  it("removes temp files of dead saves and keeps those of live ones", () => {
    const dir = mkdtempSync(join(tmpdir(), "rvm-store-"));
    const store = new SnapshotStore(dir);
    // PID 2^22 + 1 is above Linux's pid_max limit (4194304): no such process can exist.
    const dead = join(dir, ".s1.rvmsnap.4194305.tmp");
    const live = join(dir, `.s2.rvmsnap.${process.pid}.tmp`);
    writeFileSync(dead, "partial");
    writeFileSync(live, "partial");
    store.collect();
    expect(existsSync(dead)).toBe(false);
    expect(existsSync(live)).toBe(true);
    expect(store.list()).toEqual([]);
  });

  it("accepts QEMU-style names and refuses path-like ones", () => {
    expect(() => checkName("vm-20261124201500")).not.toThrow();
    expect(() => checkName("before_exam.1")).not.toThrow();
    expect(() => checkName("a b")).not.toThrow(); // HMP: savevm "a b"
    for (const bad of ["../x", ".hidden", "a/b", "", "-x", " a", "a ", "a\tb", "a\nb"]) expect(() => checkName(bad)).toThrow(/bad snapshot name/);
  });
});
