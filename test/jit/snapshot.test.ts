// Snapshots with the JIT on (issue 12, "Determinism"): a guest saved while translated code runs,
// restored (eagerly and lazily) on a machine whose JIT starts from nothing, continues exactly as
// the machine that was never saved — the same console output, RAM and hart state after the same
// number of instructions — although the two translate and install code at different times.

import { afterAll, describe, expect, it } from "vitest";
import { join } from "node:path";
import { saveSnapshot } from "../../src/snapshot/save.js";
import { restoreEager } from "../../src/snapshot/restore.js";
import { LazyRestore } from "../../src/snapshot/restore-lazy.js";
import { SnapshotStore } from "../../src/snapshot/store.js";
import type { Machine } from "../../src/machine.js";
import { boot, cleanup, diskCopy, freshDir, linuxMachine, shell, TEST_JIT } from "../snapshot/util.js";
import { fetchAll } from "../snapshot/lazy-util.js";

afterAll(cleanup);

const N = 60_000_000;
const ram = (m: Machine) => Buffer.from(m.core.ram);
const hart = (m: Machine) => Buffer.from(m.core.hartState());

describe("savevm and restore with the JIT on", () => {
  it("a restored guest continues exactly as one that was never saved (eager and lazy restore)", { timeout: 400_000 }, async () => {
    const dir = freshDir("jit");
    const disk = diskCopy(dir);
    const store = new SnapshotStore(join(dir, "snaps"));
    const a = linuxMachine(disk, false, undefined, TEST_JIT);
    await boot(a);
    await shell(a, "mount /dev/vda /mnt && cat /mnt/data/* > /dev/null");
    expect(a.machine.core.exports.jitInstructions()).toBeGreaterThan(0n);
    saveSnapshot(a.machine, store, "s1");
    const cmd = "md5sum /mnt/data/* /mnt/hello.txt; echo done\n";
    const from = a.out().length;
    a.machine.input(Buffer.from(cmd));
    const ra = await a.machine.run({ instructions: N, timeoutMs: 120_000 });
    expect(ra.reason).toBe("budget");
    const outA = a.out().slice(from);
    expect(outA).toMatch(/\ndone\r\n/);
    const ramA = ram(a.machine), hartA = hart(a.machine);

    for (const how of ["eager", "lazy"] as const) {
      const b = linuxMachine(disk, true, undefined, TEST_JIT);
      let lazy: LazyRestore | undefined;
      if (how === "eager") restoreEager(b.machine, store, store.pathFor("s1"));
      else lazy = new LazyRestore(b.machine, store, store.pathFor("s1"), {});
      b.machine.input(Buffer.from(cmd));
      const rb = await b.machine.run({ instructions: N, timeoutMs: 120_000 });
      expect(rb.reason).toBe("budget");
      if (lazy) await fetchAll(b.machine, lazy);
      expect(rb.instret, how).toBe(ra.instret);
      expect(b.out(), how).toBe(outA);
      expect(Buffer.compare(hart(b.machine), hartA), how).toBe(0);
      expect(Buffer.compare(ram(b.machine), ramA), how).toBe(0);
      expect(b.machine.core.exports.jitInstructions(), how).toBeGreaterThan(0n);
    }
  });

  it("a flush (restore, savevm -b's capture) clears every translation and counter the guest's run left, wherever in RAM", { timeout: 400_000 }, async () => {
    const a = linuxMachine(diskCopy(freshDir("jitflush")), false, undefined, TEST_JIT);
    await boot(a);
    await shell(a, "mount /dev/vda /mnt && cat /mnt/data/* > /dev/null && md5sum /mnt/data/*");
    const ex = a.machine.core.exports;
    const pages = a.machine.core.pages.length;
    // The table (u32 per page) and the counters (u32 per page) after it, in the core's memory.
    const arrays = () => new Uint32Array(ex.memory.buffer, ex.jitTableAddress(), 2 * pages);
    const used = (x: Uint32Array) => {
      const spans = new Set<number>();
      x.forEach((v, i) => void (v !== 0 && spans.add((i % pages) >> 10)));
      return spans;
    };
    // The run left entries in several 1024-page spans (the flush's unit), far apart.
    const before = used(arrays());
    expect(before.size).toBeGreaterThan(1);
    expect(Math.max(...before) - Math.min(...before)).toBeGreaterThan(1);
    ex.jitFlush();
    expect(used(arrays()).size).toBe(0);
    // And the guest runs on, translating again.
    const insns = ex.jitInstructions();
    expect(await shell(a, "md5sum /mnt/data/* | md5sum")).toMatch(/[0-9a-f]{32}/);
    expect(ex.jitInstructions()).toBeGreaterThan(insns);
    expect(used(arrays()).size).toBeGreaterThan(0);
  });
});
