// The PLIC against the RISC-V PLIC specification's register map and claim/complete protocol,
// with QEMU's virt layout (96 source IDs, contexts 0 = M, 1 = S).

import { describe, expect, it } from "vitest";
import { Plic } from "../../src/devices/plic.js";

const priority = (src: number) => 4 * src;
const pendingWord = (w: number) => 0x1000 + 4 * w;
const enableWord = (ctx: number, w: number) => 0x2000 + 0x80 * ctx + 4 * w;
const threshold = (ctx: number) => 0x20_0000 + 0x1000 * ctx;
const claim = (ctx: number) => 0x20_0004 + 0x1000 * ctx;

function plic() {
  const outputs: [boolean, boolean][] = [];
  const p = new Plic(2, (_hart, m, s) => outputs.push([m, s]));
  const rd = (o: number) => p.read(o, 4);
  const wr = (o: number, v: number) => p.write(o, 4, v);
  const out = () => outputs[outputs.length - 1] ?? [false, false];
  return { p, rd, wr, out, outputs };
}

describe("PLIC", () => {
  it("has two contexts per hart, as QEMU virt numbers them, each with its own claim/complete", () => {
    const lines = new Map<number, [boolean, boolean]>();
    const p = new Plic(8, (hart, m, s) => lines.set(hart, [m, s]));
    const wr = (o: number, v: number) => p.write(o, 4, v);
    wr(priority(5), 1);
    wr(priority(6), 1);
    wr(enableWord(5, 0), 1 << 5); // hart 2, S-mode
    wr(enableWord(6, 0), 1 << 6); // hart 3, M-mode
    p.setLevel(5, true);
    expect(lines.get(2)).toEqual([false, true]);
    expect(lines.has(0) || lines.has(1) || lines.has(3)).toBe(false);
    p.setLevel(6, true);
    expect(lines.get(3)).toEqual([true, false]);
    expect(p.read(claim(4), 4)).toBe(0); // hart 2's M context has nothing enabled
    expect(p.read(claim(5), 4)).toBe(5);
    expect(lines.get(2)).toEqual([false, false]);
    expect(p.read(claim(6), 4)).toBe(6);
    expect(lines.get(3)).toEqual([false, false]);
    p.write(claim(5), 4, 5);
    p.write(claim(6), 4, 6);
    expect(p.read(enableWord(8, 0), 4)).toBe(0); // no context 8
    expect(p.read(claim(8), 4)).toBe(0);
  });

  it("holds priorities 0..7 and thresholds; source 0 does not exist", () => {
    const { rd, wr } = plic();
    wr(priority(10), 5);
    expect(rd(priority(10))).toBe(5);
    wr(priority(10), 0xff);
    expect(rd(priority(10))).toBe(7);
    wr(priority(0), 3);
    expect(rd(priority(0))).toBe(0);
    wr(threshold(1), 9);
    expect(rd(threshold(1))).toBe(1);
    wr(enableWord(0, 0), 0xffff_ffff);
    expect(rd(enableWord(0, 0)) >>> 0).toBe(0xffff_fffe);
    wr(enableWord(1, 2), 0x8000_0000);
    expect(rd(enableWord(1, 2)) >>> 0).toBe(0x8000_0000); // source 95
  });

  it("shows a raised line in the pending bits, read-only", () => {
    const { p, rd, wr } = plic();
    p.setLevel(10, true);
    p.setLevel(33, true);
    expect(rd(pendingWord(0))).toBe(1 << 10);
    expect(rd(pendingWord(1))).toBe(1 << 1);
    wr(pendingWord(0), 0);
    expect(rd(pendingWord(0))).toBe(1 << 10);
    p.setLevel(10, false);
    expect(rd(pendingWord(0))).toBe(0);
  });

  it("interrupts a context only for enabled sources above its threshold", () => {
    const { p, wr, out } = plic();
    p.setLevel(10, true);
    expect(out()).toEqual([false, false]); // priority 0 never interrupts
    wr(priority(10), 1);
    expect(out()).toEqual([false, false]); // not enabled
    wr(enableWord(1, 0), 1 << 10);
    expect(out()).toEqual([false, true]); // S context only
    wr(threshold(1), 1);
    expect(out()).toEqual([false, false]); // priority must exceed the threshold
    wr(priority(10), 2);
    expect(out()).toEqual([false, true]);
    wr(enableWord(0, 0), 1 << 10);
    expect(out()).toEqual([true, true]);
  });

  it("claims the highest priority first, the lowest ID on ties, and 0 when none", () => {
    const { p, rd, wr } = plic();
    for (const s of [3, 5, 7, 40]) {
      wr(priority(s), s === 5 ? 1 : 4);
      p.setLevel(s, true);
    }
    wr(enableWord(1, 0), (1 << 3) | (1 << 5) | (1 << 7));
    wr(enableWord(1, 1), 1 << 8);
    expect(rd(claim(1))).toBe(3);
    expect(rd(claim(1))).toBe(7);
    expect(rd(claim(1))).toBe(40);
    expect(rd(claim(1))).toBe(5);
    expect(rd(claim(1))).toBe(0);
    expect(rd(claim(0))).toBe(0); // nothing enabled for M
  });

  it("applies the threshold to claims", () => {
    const { p, rd, wr } = plic();
    wr(priority(1), 2);
    wr(enableWord(0, 0), 1 << 1);
    p.setLevel(1, true);
    wr(threshold(0), 2);
    expect(rd(claim(0))).toBe(0);
    wr(threshold(0), 1);
    expect(rd(claim(0))).toBe(1);
  });

  it("does not deliver a claimed source again until it is completed", () => {
    const { p, rd, wr, out } = plic();
    wr(priority(10), 1);
    wr(enableWord(1, 0), 1 << 10);
    p.setLevel(10, true);
    expect(out()).toEqual([false, true]);
    expect(rd(claim(1))).toBe(10);
    expect(out()).toEqual([false, false]);
    expect(rd(pendingWord(0))).toBe(0);
    p.setLevel(10, true); // the device signals again while being served
    expect(rd(pendingWord(0))).toBe(1 << 10);
    expect(out()).toEqual([false, false]);
    expect(rd(claim(1))).toBe(0);
    wr(claim(1), 10); // complete
    expect(out()).toEqual([false, true]);
    expect(rd(claim(1))).toBe(10);
    wr(claim(1), 10);
    expect(out()).toEqual([false, false]);
  });

  it("delivers a completed source again only if its device signalled again (QEMU's gateway)", () => {
    const { p, rd, wr, out } = plic();
    wr(priority(10), 1);
    wr(enableWord(1, 0), 1 << 10);
    p.setLevel(10, true);
    expect(rd(claim(1))).toBe(10);
    wr(claim(1), 10);
    expect(out()).toEqual([false, false]);
    p.setLevel(10, true);
    expect(out()).toEqual([false, true]);
  });

  it("withdraws an unclaimed request when the line drops", () => {
    const { p, wr, out } = plic();
    wr(priority(2), 1);
    wr(enableWord(0, 0), 1 << 2);
    p.setLevel(2, true);
    expect(out()).toEqual([true, false]);
    p.setLevel(2, false);
    expect(out()).toEqual([false, false]);
  });

  it("calls the output callback only on changes", () => {
    const { p, wr, outputs } = plic();
    wr(priority(4), 1);
    wr(enableWord(0, 0), 1 << 4);
    p.setLevel(4, true);
    p.setLevel(4, true);
    p.setLevel(4, true);
    expect(outputs).toEqual([[true, false]]);
  });

  it("saves and restores its state as plain JSON", () => {
    const a = plic();
    a.wr(priority(9), 3);
    a.wr(enableWord(1, 0), 1 << 9);
    a.wr(threshold(1), 1);
    a.p.setLevel(9, true);
    a.p.setLevel(12, true);
    const s = JSON.parse(JSON.stringify(a.p.state()));
    const b = plic();
    b.p.restore(s);
    expect(b.out()).toEqual([false, true]);
    expect(b.rd(threshold(1))).toBe(1);
    expect(b.rd(claim(1))).toBe(9);
    expect(b.rd(pendingWord(0))).toBe(1 << 12);
  });
});
