// The core's side-effect-free page-table walk for the host (debugWalk, Core.walk; used by
// Machine.firstPages): under a satp, privilege and mstatus the host gives, it returns the
// translation and lists the guest-physical address of every page-table entry it read, root first,
// and changes nothing: no A/D bit, no page state, no hart state, no core status or exit page.
// The page tables are built here, at known pages, so the expected entries are exact.

import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import { Core, PageState, PAGE_SIZE, RAM_BASE } from "../../src/core.js";

const BASE = BigInt(RAM_BASE);
const FETCH = 0, LOAD = 1, STORE = 2;
const V = 1n, R = 2n, W = 4n, X = 8n, U = 16n;
const SUM = 1n << 18n, MXR = 1n << 19n;
const SV39 = 8n, SV48 = 9n, SV57 = 10n;

const pageAddr = (p: number) => BASE + BigInt(p * PAGE_SIZE);
const vpn = (va: bigint, level: number) => (va >> BigInt(12 + 9 * level)) & 511n;

/**
 * Builds in `core`'s RAM the tables that map `va` for a walk of `levels` levels: table i (root
 * first) at page tables[i]; the leaf at level `leafLevel` (0: 4 KiB page) maps to page `target`
 * with `flags`. Returns satp and the address of each entry a walk reads, root first.
 */
function build(core: Core, mode: bigint, va: bigint, tables: number[], target: number, flags: bigint, leafLevel = 0) {
  const ram = new DataView(core.ram.buffer, core.ram.byteOffset, core.ram.length);
  const levels = tables.length + leafLevel;
  const ptes: bigint[] = [];
  for (let i = 0; i < tables.length; i++) {
    const level = levels - 1 - i;
    const at = pageAddr(tables[i]) + vpn(va, level) * 8n;
    ptes.push(at);
    const leaf = level === leafLevel;
    const ppn = pageAddr(leaf ? target : tables[i + 1]) >> 12n;
    ram.setBigUint64(Number(at - BASE), (ppn << 10n) | (leaf ? flags | V : V), true);
  }
  return { satp: (mode << 60n) | (pageAddr(tables[0]) >> 12n), ptes };
}

/** Everything a walk could change (digests): RAM, page states, every hart's state block, the exit page. */
function state(core: Core) {
  const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");
  return { ram: sha(core.ram), pages: sha(core.pages), harts: core.hartStates().map(sha), exitPage: core.exports.exitPage() };
}

describe("debugWalk (Core.walk)", () => {
  it("Sv39: lists the three entries it read and translates, with no side effect", () => {
    const core = new Core(4 << 20);
    const va = 0x4020_3456n; // VPN[2] 1, VPN[1] 1, VPN[0] 3
    const { satp, ptes } = build(core, SV39, va, [10, 11, 12], 20, R | W);
    expect(ptes).toEqual([pageAddr(10) + 8n, pageAddr(11) + 8n, pageAddr(12) + 24n]);
    const before = state(core);
    const w = core.walk(va, STORE, satp, 1, 0n);
    expect(w).toEqual({ pa: pageAddr(20) + 0x456n, ptes });
    expect(state(core)).toEqual(before); // no A/D bit set (the leaf has neither), nothing else
    // The hart's own context is not used: it is in M-mode with satp Bare.
    expect(core.priv).toBe(3);
    expect(core.csr(0x180)).toBe(0n);
    expect(core.exports.debugTranslate(va, LOAD)).toBe(va);
  });

  it("Sv39: a 2 MiB superpage ends the walk at the second level", () => {
    const core = new Core(8 << 20);
    const va = 0x4060_1234n; // VPN[2] 1, VPN[1] 3
    const { satp, ptes } = build(core, SV39, va, [10, 11], 512, R | X, 1);
    expect(ptes).toEqual([pageAddr(10) + 8n, pageAddr(11) + 24n]);
    expect(core.walk(va, FETCH, satp, 1, 0n)).toEqual({ pa: pageAddr(512) + 0x1234n, ptes });
  });

  it("Sv48 and Sv57: lists the four and five entries it read, root first", () => {
    const core = new Core(4 << 20);
    const va48 = (2n << 39n) | (3n << 30n) | (4n << 21n) | (5n << 12n) | 0x10n;
    const sv48 = build(core, SV48, va48, [30, 31, 32, 33], 40, R);
    expect(sv48.ptes).toEqual([pageAddr(30) + 16n, pageAddr(31) + 24n, pageAddr(32) + 32n, pageAddr(33) + 40n]);
    expect(core.walk(va48, LOAD, sv48.satp, 1, 0n)).toEqual({ pa: pageAddr(40) + 0x10n, ptes: sv48.ptes });

    const va57 = (7n << 48n) | (2n << 39n) | (3n << 30n) | (4n << 21n) | (5n << 12n) | 0xff8n;
    const sv57 = build(core, SV57, va57, [50, 51, 52, 53, 54], 60, R | W | U);
    expect(sv57.ptes).toEqual([pageAddr(50) + 56n, pageAddr(51) + 16n, pageAddr(52) + 24n, pageAddr(53) + 32n, pageAddr(54) + 40n]);
    const before = state(core);
    expect(core.walk(va57, LOAD, sv57.satp, 0, 0n)).toEqual({ pa: pageAddr(60) + 0xff8n, ptes: sv57.ptes });
    expect(state(core)).toEqual(before);
    // A negative address (sign-extended bit 56) under Sv57 walks root entry 511.
    const high = BigInt.asUintN(64, -(1n << 56n)) | 0x1000n;
    const neg = build(core, SV57, high, [70, 71, 72, 73, 74], 80, R);
    expect(neg.ptes[0]).toBe(pageAddr(70) + 256n * 8n);
    expect(core.walk(high, LOAD, neg.satp, 1, 0n)).toEqual({ pa: pageAddr(80), ptes: neg.ptes });
  });

  it("checks the leaf's permissions as the hart would (privilege, SUM, MXR), still listing the entries", () => {
    const core = new Core(4 << 20);
    const va = 0x4020_3000n;
    const user = build(core, SV39, va, [10, 11, 12], 20, R | W | U);
    const ok = pageAddr(20);
    expect(core.walk(va, LOAD, user.satp, 0, 0n).pa).toBe(ok);
    expect(core.walk(va, LOAD, user.satp, 1, 0n)).toEqual({ pa: -1n, ptes: user.ptes }); // S, U page, no SUM
    expect(core.walk(va, LOAD, user.satp, 1, SUM).pa).toBe(ok);
    expect(core.walk(va, FETCH, user.satp, 0, 0n).pa).toBe(-1n); // not executable
    const kernel = build(core, SV39, va, [10, 11, 12], 20, X);
    expect(core.walk(va, LOAD, kernel.satp, 0, 0n).pa).toBe(-1n); // U, not a U page
    expect(core.walk(va, FETCH, kernel.satp, 1, 0n).pa).toBe(ok);
    expect(core.walk(va, LOAD, kernel.satp, 1, 0n).pa).toBe(-1n); // execute-only
    expect(core.walk(va, LOAD, kernel.satp, 1, MXR).pa).toBe(ok);
    // M-mode and Bare: the address is physical, nothing is walked.
    expect(core.walk(va, LOAD, kernel.satp, 3, 0n)).toEqual({ pa: va, ptes: [] });
    expect(core.walk(va, LOAD, 0n, 1, 0n)).toEqual({ pa: va, ptes: [] });
  });

  it("stops at an invalid entry or at a page-table page not restored, and reports which", () => {
    const core = new Core(4 << 20);
    const va = 0x4020_3000n;
    const { satp, ptes } = build(core, SV39, va, [10, 11, 12], 20, R);
    const ram = new DataView(core.ram.buffer, core.ram.byteOffset, core.ram.length);
    ram.setBigUint64(Number(ptes[1] - BASE), 0n, true); // the middle entry invalid
    expect(core.walk(va, LOAD, satp, 1, 0n)).toEqual({ pa: -1n, ptes: ptes.slice(0, 2) });
    build(core, SV39, va, [10, 11, 12], 20, R);
    core.pages[11] |= PageState.NotRestored;
    const before = state(core);
    expect(core.walk(va, LOAD, satp, 1, 0n)).toEqual({ pa: -2n, ptes: ptes.slice(0, 2) });
    expect(state(core)).toEqual(before); // still not restored, exit page as it was
    // A table pointer outside RAM: an access fault, the entries read before are listed.
    const outside = (1n << 60n) * SV39 + (0x1000_0000n >> 12n);
    expect(core.walk(va, LOAD, outside, 1, 0n)).toEqual({ pa: -1n, ptes: [] });
  });

  it("refuses a satp mode, privilege or access that does not exist", () => {
    const core = new Core(1 << 20);
    const satp = (SV39 << 60n) | (BASE >> 12n);
    for (const [s, priv, access] of [[(1n << 60n) | (BASE >> 12n), 1, LOAD], [(11n << 60n) | (BASE >> 12n), 1, LOAD], [satp, 2, LOAD], [satp, 4, LOAD], [satp, 1, 3]] as const) {
      expect(core.walk(0x1000n, access, s, priv, 0n)).toEqual({ pa: -1n, ptes: [] });
    }
  });
});
