// Several harts (-smp): the multi-hart programs in guests/isa (smp-*.elf, see
// guests/isa/README.md) on four harts, in real and in deterministic time; a deterministic run is
// the same instruction for instruction every time, whatever the host does between slices.

import { describe, expect, it } from "vitest";
import { basename } from "node:path";
import { guestFiles, loadGuest, runGuest } from "./helpers.js";
import { parseSmp } from "../src/options.js";

const programs = guestFiles("guests/isa", (n) => n.startsWith("smp-"));

describe("multi-hart programs", () => {
  it("exist", () => {
    expect(programs.map((p) => basename(p))).toEqual(["smp-harts.elf", "smp-plic.elf"]);
  });
  for (const file of programs) {
    it(`${basename(file)} passes on 4 harts (real time)`, async () => {
      const r = await runGuest(file, { harts: 4 });
      expect(r.reason).toBe("exit");
      expect(r.exitCode, `first failing case of ${basename(file)}`).toBe(0);
    }, 60_000);
    it(`${basename(file)} passes on 4 harts (deterministic time), the same way every time`, async () => {
      const run = async (slice?: number) => {
        const { machine } = loadGuest(file, { harts: 4, icountShift: 3 });
        // Slices of different sizes split the run differently: the guest must not notice.
        let r;
        if (slice === undefined) r = await machine.run({ timeoutMs: 30_000 });
        else {
          do r = await machine.run({ instructions: slice, timeoutMs: 30_000 });
          while (r.reason === "budget");
        }
        return { r, instret: machine.core.instret, state: Buffer.from(machine.core.hartState()), ram: Buffer.from(machine.core.ram) };
      };
      const a = await run();
      const b = await run(77_777);
      expect(a.r.exitCode, `first failing case of ${basename(file)}`).toBe(0);
      expect(b.r.exitCode).toBe(0);
      expect(b.instret).toBe(a.instret);
      expect(b.state.equals(a.state)).toBe(true);
      expect(b.ram.equals(a.ram)).toBe(true);
    }, 60_000);
  }

  it("reads -smp as QEMU does", () => {
    expect(parseSmp(undefined)).toBe(1);
    expect(parseSmp("4")).toBe(4);
    expect(parseSmp("cpus=3")).toBe(3);
    expect(parseSmp("8,maxcpus=8")).toBe(8);
    expect(parseSmp("sockets=1,cores=2,threads=1")).toBe(2);
    expect(() => parseSmp("4,maxcpus=8")).toThrow(/no hotplug/);
    expect(() => parseSmp("9")).toThrow(/1 to 8 harts/);
  });

  it("gives every hart its own mhartid and starts all of them at the reset vector", () => {
    const { machine } = loadGuest(programs[0], { harts: 3 });
    const core = machine.core;
    expect(core.harts).toBe(3);
    for (let h = 0; h < 3; h++) {
      core.withHart(h, () => {
        expect(core.csr(0xf14)).toBe(BigInt(h));
        expect(core.pc).toBe(0x1000n);
        expect(core.priv).toBe(3);
      });
    }
    expect(machine.cpus()).toMatch(/^\* CPU #0: pc=0x0000000000001000 mode=M thread_id=\d+\n  CPU #1: .*\n  CPU #2: .*\n$/);
  });
});

describe("snapshots of several harts", () => {
  it("save every hart; a restore brings them all back and the run goes on identically; other hart counts are refused", { timeout: 60_000 }, async () => {
    const { mkdtempSync } = await import("node:fs");
    const { tmpdir } = await import("node:os");
    const { join } = await import("node:path");
    const { saveSnapshot } = await import("../src/snapshot/save.js");
    const { restoreEager } = await import("../src/snapshot/restore.js");
    const { SnapshotStore } = await import("../src/snapshot/store.js");
    const file = programs.find((p) => p.endsWith("smp-harts.elf"))!;
    const store = new SnapshotStore(join(mkdtempSync(join(tmpdir(), "rvm-smp-snap-")), "snaps"));
    // Machine A runs part way (all four harts busy in the counters), saves, runs to the end.
    const a = loadGuest(file, { harts: 4, icountShift: 3 }).machine;
    await a.run({ instructions: 400_000 });
    const saved = a.core.hartState();
    const meta = saveSnapshot(a, store, "mid");
    expect(meta.harts).toHaveLength(4);
    const ra = await a.run({ timeoutMs: 30_000 });
    expect(ra.exitCode).toBe(0);
    // Machine B, restored from the snapshot, ends exactly where A ended.
    const b = loadGuest(file, { harts: 4, icountShift: 3 }).machine;
    restoreEager(b, store, store.find("mid"));
    expect(Buffer.from(b.core.hartState()).equals(Buffer.from(saved))).toBe(true);
    const rb = await b.run({ timeoutMs: 30_000 });
    expect(rb.exitCode).toBe(0);
    expect(b.core.instret).toBe(a.core.instret);
    expect(Buffer.from(b.core.hartState()).equals(Buffer.from(a.core.hartState()))).toBe(true);
    // Another hart count: a one-line error naming both.
    const c = loadGuest(file, { harts: 2, icountShift: 3 }).machine;
    expect(() => restoreEager(c, store, store.find("mid"))).toThrow(/was taken with 4 harts, this machine has 2 \(use -smp 4\)/);
  });
});
