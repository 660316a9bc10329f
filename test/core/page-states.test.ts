// Page states at the core's boundary (docs/ARCHITECTURE.md, "Page states"), each rule checked
// directly against the core, without the run loop (whose once-a-second accessed-bit sweep
// flushes every TLB and would hide a missing flush):
// - markClean withdraws the store TLB's permission: the first store after it reaches the slow
//   path and marks the page dirty again (an incremental savevm relies on it);
// - a page-table walk that reads a not-yet-restored page-table page exits to the host before
//   any effect, and the access completes once the host installed the page.

import { describe, expect, it } from "vitest";
import { Core, Exit, PageState, PAGE_SIZE, RAM_BASE } from "../../src/core.js";

const MSTATUS = 0x300, MCAUSE = 0x342, MTVEC = 0x305, SATP = 0x180;
const SENTINEL = 0xdeadn;
const SD = 0x00b53023; // sd a1, 0(a0)
const LD = 0x00053603; // ld a2, 0(a0)

function program(core: Core, ...insns: number[]): void {
  const dv = new DataView(core.ram.buffer, core.ram.byteOffset, 4 * insns.length);
  insns.forEach((w, i) => dv.setUint32(4 * i, w, true));
  core.pc = BigInt(RAM_BASE);
  core.exports.setPriv(3);
  core.exports.writeCsr(MTVEC, BigInt(RAM_BASE + 0x800));
  core.exports.writeCsr(MCAUSE, SENTINEL);
}

const dirty = (core: Core, page: number) => (core.pages[page] & PageState.Dirty) !== 0;

describe("markClean", () => {
  it("makes the next store to a page that has a store-TLB entry mark it dirty again", () => {
    const core = new Core(1 << 20);
    const page = 3;
    program(core, SD);
    core.setX(10, BigInt(RAM_BASE + page * PAGE_SIZE));
    core.setX(11, 0x1122334455667788n);
    expect(core.run(1)).toBe(Exit.Slice);
    expect(dirty(core, page)).toBe(true); // the store made a store-TLB entry for the page

    core.exports.markClean();
    expect(dirty(core, page)).toBe(false);
    core.pc = BigInt(RAM_BASE);
    core.setX(11, 0x99n);
    expect(core.run(1)).toBe(Exit.Slice);
    expect(core.exports.readCsr(MCAUSE)).toBe(SENTINEL);
    expect(new DataView(core.ram.buffer, core.ram.byteOffset + page * PAGE_SIZE, 8).getBigUint64(0, true)).toBe(0x99n);
    // Without the store-TLB flush in markClean the store hits the old entry and the page stays
    // clean: an incremental snapshot would then inherit its stale entry from the parent.
    expect(dirty(core, page)).toBe(true);
  });
});

describe("the page-table walk", () => {
  it("exits before any effect when a page-table page is not restored, and completes after the host installs it", () => {
    const core = new Core(1 << 20);
    const ex = core.exports;
    const root = 8; // the Sv39 root table's page
    const data = 5; // where the load's virtual address leads
    program(core, LD);
    // Root entry 0: a 1 GiB leaf mapping VA 0 -> PA 0x8000_0000, RWX, accessed and dirty.
    const ram = new DataView(core.ram.buffer, core.ram.byteOffset, core.ram.length);
    ram.setBigUint64(root * PAGE_SIZE, (BigInt(RAM_BASE >>> 12) << 10n) | 0xcfn, true);
    ram.setBigUint64(data * PAGE_SIZE, 0x0123456789abcdefn, true);
    ex.writeCsr(SATP, (8n << 60n) | BigInt((RAM_BASE >>> 12) + root));
    // M-mode with MPRV and MPP = S: the fetch is untranslated, the load goes through Sv39.
    ex.writeCsr(MSTATUS, (1n << 17n) | (1n << 11n));
    ex.hartStateChanged(); // the host changed privilege state: recompute the translation context
    core.setX(10, BigInt(data * PAGE_SIZE)); // VA 0x5000 -> PA 0x8000_5000
    core.setX(12, 7n);

    // A lazy restore: every page not restored; the host has installed only the code page. The
    // others hold what a restore has not filled in yet (zeros: an invalid PTE).
    const image = Buffer.from(core.ram);
    ex.markAllNotRestored();
    core.ram.fill(0, PAGE_SIZE);
    core.pages[0] &= ~PageState.NotRestored;
    const install = (p: number) => {
      core.ram.set(image.subarray(p * PAGE_SIZE, (p + 1) * PAGE_SIZE), p * PAGE_SIZE);
      core.pages[p] &= ~PageState.NotRestored;
    };

    expect(core.run(1)).toBe(Exit.Page);
    expect(ex.exitPage()).toBe(root); // the walk's read of the root table stopped the hart
    expect(core.pc).toBe(BigInt(RAM_BASE)); // nothing happened: no trap, no register written
    expect(ex.readCsr(MCAUSE)).toBe(SENTINEL);
    expect(core.x(12)).toBe(7n);

    install(root);
    expect(core.run(1)).toBe(Exit.Page);
    expect(ex.exitPage()).toBe(data);
    expect(core.x(12)).toBe(7n);

    install(data);
    expect(core.run(1)).toBe(Exit.Slice);
    expect(ex.readCsr(MCAUSE)).toBe(SENTINEL);
    expect(core.pc).toBe(BigInt(RAM_BASE + 4));
    expect(core.x(12)).toBe(0x0123456789abcdefn);
  });
});
