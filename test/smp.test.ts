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

describe("a hart spinning on a lock another hart holds", () => {
  // Hart 0 takes a test-and-set lock (amoswap.w), counts down 300000 (600k instructions, ~9
  // quanta) and releases it; hart 1 spins on amoswap.w until it gets the lock, then says so;
  // hart 0 waits for that and powers off. Encoded here (riscv64-unknown-elf-as -march=rv64ia):
  //   _start:  auipc t0,0; addi t0,t0,0x200; li t1,1; bnez a0,spinner
  //            amoswap.w t2,t1,(t0); sw t1,8(t0); li t3,300000
  //   1:       addi t3,t3,-1; bnez t3,1b; sw zero,0(t0)
  //   2:       lw t4,4(t0); beqz t4,2b; li t5,0x100000; li t6,0x5555; sw t6,0(t5)   (poweroff)
  //   3:       j 3b
  //   spinner: lw t4,8(t0); beqz t4,spinner
  //   5:       amoswap.w t2,t1,(t0); bnez t2,5b; sw zero,0(t0); sw t1,4(t0)
  //   6:       wfi; j 6b
  const PROGRAM = [
    0x00000297, 0x20028293, 0x00100313, 0x02051e63, 0x0862a3af, 0x0062a423, 0x00049e37, 0x3e0e0e1b,
    0xfffe0e13, 0xfe0e1ee3, 0x0002a023, 0x0042ae83, 0xfe0e8ee3, 0x00100f37, 0x00005fb7, 0x555f8f9b,
    0x01ff2023, 0x0000006f, 0x0082ae83, 0xfe0e8ee3, 0x0862a3af, 0xfe039ee3, 0x0002a023, 0x0062a223,
    0x10500073, 0xffdff06f,
  ];

  it("gives way at once instead of spinning out its quantum (the holder cannot release it until it runs)", async () => {
    const { mkdtempSync, writeFileSync } = await import("node:fs");
    const { tmpdir } = await import("node:os");
    const { join } = await import("node:path");
    const file = join(mkdtempSync(join(tmpdir(), "rvm-spin-")), "spin.bin");
    writeFileSync(file, Buffer.from(Uint32Array.from(PROGRAM).buffer));
    const { machine } = loadGuest(file, { harts: 2, icountShift: 3 });
    const r = await machine.run({ timeoutMs: 30_000 });
    expect(r.exitCode).toBe(0);
    const instret = [0, 1].map((h) => machine.core.withHart(h, () => Number(machine.core.csr(0xb02))));
    expect(instret[0]).toBeGreaterThan(600_000);
    // Each of hart 1's ~9 turns while the lock is held: one failed amoswap and its branch, not
    // a quantum (65536 instructions) of them.
    expect(instret[1]).toBeLessThan(200);
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
