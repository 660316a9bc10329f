// Machine.firstPages (the pages a lazy restore brings in first: each hart's page-table walks and
// pages of pc, sp, the trap vector and the kernel's task) whatever the hart's privilege mode at
// the save. A Linux hart saved in M-mode (inside OpenSBI: an SBI call, a timer) translates
// nothing, yet returns to the kernel through mepc and takes its next trap at stvec; saved in
// U-mode, its kernel task pointer is in sscratch. Those pages are found through satp.

import { afterAll, describe, expect, it } from "vitest";
import { boot, cleanup, diskCopy, endMachines, freshDir, linuxMachine } from "./util.js";
import { ramPageOf, tableTree } from "./lazy-util.js";

afterAll(() => {
  endMachines();
  cleanup();
});

describe("Machine.firstPages", () => {
  it("names the kernel's trap vector, task and return pc through satp when the hart is in M-mode or U-mode", { timeout: 300_000 }, async () => {
    const g = linuxMachine(diskCopy(freshDir("first")));
    await boot(g);
    const m = g.machine, core = m.core;
    // The kernel's view (S-mode): its task pointer (tp in the kernel, sscratch in user mode),
    // its trap vector, a kernel pc (the trap vector's page stands in when the hart is in U-mode).
    const user = core.priv === 0;
    const ktp = user ? core.csr(0x140) : core.x(4);
    const kpc = user ? core.csr(0x105) & ~3n : core.pc;
    core.exports.setPriv(1);
    const tables: number[] = [];
    const stvec = ramPageOf(m, core.csr(0x105) & ~3n, true, tables);
    const task = ramPageOf(m, ktp, false);
    const ret = ramPageOf(m, kpc, true);
    for (const p of [stvec, task, ret]) expect(p).toBeGreaterThanOrEqual(0);
    expect(tables.length).toBeGreaterThan(2); // Linux translates (Sv39 or more)
    const s = m.firstPages();
    for (const p of [stvec, task, ret, ...tables]) expect(s).toContain(p);
    // Machine.tablePages: satp's whole tree (the test's own walk), root first, breadth first;
    // it holds the walks' tables and more (the other mappings' tables).
    const tree = tableTree(m);
    expect(m.tablePages()).toEqual(tree);
    for (const p of tables) expect(tree).toContain(p);
    expect(tree.length).toBeGreaterThan(new Set(tables).size);

    // U-mode: pc, sp and tp are the process's; the task is in sscratch.
    core.exports.setPriv(0);
    core.exports.writeCsr(0x140, ktp);
    core.setX(4, 0x1000n); // a user TLS pointer (not mapped: left out)
    const u = m.firstPages();
    expect(u).toContain(stvec);
    expect(u).toContain(task);

    // M-mode (OpenSBI) with MPP = S: pc and sp are OpenSBI's (physical), the kernel's are
    // reached through satp: mepc's page, the trap vector, the task at tp.
    core.setX(4, ktp);
    core.exports.writeCsr(0x341, kpc);
    core.exports.writeCsr(0x300, (core.csr(0x300) & ~(3n << 11n)) | (1n << 11n));
    core.exports.setPriv(3);
    core.pc = 0x8000_0100n; // in OpenSBI
    const mm = m.firstPages();
    expect(mm[0]).toBe(0); // pc: OpenSBI's page, untranslated
    for (const p of [ret, stvec, task, ...tables]) expect(mm).toContain(p);
    // Without a way back to S (MPP = M), mepc is OpenSBI's: not followed through satp.
    core.exports.writeCsr(0x300, core.csr(0x300) | (3n << 11n));
    core.exports.writeCsr(0x341, 0x8000_0200n);
    expect(m.firstPages()).toContain(stvec);
  });
});
