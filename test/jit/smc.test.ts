// Self-modifying code and code written by a device (issue 12, "Exactness"): translated code
// must never run stale. A store into the page whose translation is running ends it right after
// the store; a virtio-blk read (DMA) into a translated page drops the translation. Each program
// computes a sum whose value the test knows, with the JIT off and on (translating at once).

import { afterAll, describe, expect, it } from "vitest";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createVirtMachine } from "../../src/board/virt.js";
import { Asm, B, BASE, I, R, S, enc } from "./gen.js";

const dir = mkdtempSync(join(tmpdir(), "rvm-jit-smc-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const RESULT = BASE + 0x7000;
const SYSCON = 0x10_0000;
const A0 = 10, S0 = 8, S1 = 9, T0 = 5, T1 = 6, T2 = 7, RA = 1;
const add = (rd: number, a: number, b: number) => R(0x33, 0, 0, rd, a, b);
const sd = (base: number, v: number, imm: number) => S(0x23, 3, base, v, imm);
const sh = (base: number, v: number, imm: number) => S(0x23, 1, base, v, imm);

/** Writes RESULT = s0 and powers off. */
function finish(a: Asm): void {
  a.li(T0, BigInt(RESULT));
  a.w32(sd(T0, S0, 0));
  a.li(T0, BigInt(SYSCON));
  a.li(T1, 0x5555n);
  a.w32(enc.sw(T0, T1, 0));
  a.w32(enc.jal(0, 0));
}

/** Calls the function at `fn` `times` times, adding its a0 to s0. */
function callLoop(a: Asm, fn: number, times: number): void {
  a.li(S1, BigInt(times));
  const top = a.pos;
  a.li(T0, BigInt(fn));
  a.w32(enc.jalr(RA, T0, 0));
  a.w32(add(S0, S0, A0));
  a.w32(enc.addi(S1, S1, -1));
  a.w32(enc.bne(S1, 0, top - a.pos));
}

async function run(image: Uint8Array, jit: boolean, disk?: string) {
  const file = join(dir, `p${Math.random().toString(36).slice(2)}.bin`);
  writeFileSync(file, image);
  const m = createVirtMachine({
    ramBytes: 16 << 20, icountShift: 5, bios: "none", kernel: file,
    drives: disk ? [{ file: disk, readonly: false, attached: true }] : [],
    jit: jit ? { enabled: true, threshold: 1, sync: true } : false, sliceInstructions: 101,
    console: { write: () => {}, readByte: () => -1 },
  });
  const r = await m.run({ timeoutMs: 60_000 });
  expect(r.reason).toBe("stop");
  return {
    result: m.mem.readU64(RESULT),
    translated: m.core.exports.jitInstructions(),
    invalidations: m.jit.stats.invalidations,
    ram: Buffer.from(m.core.ram),
    hart: Buffer.from(m.core.hartState()),
  };
}

describe("self-modifying code", () => {
  it("a loop that rewrites an instruction of itself runs the new one each time", { timeout: 60_000 }, async () => {
    // for i in 1..100: patch `addi a0, x0, i` into the loop, run it, s0 += a0 (s0 = 5050)
    const a = new Asm(BASE, 0x1000);
    a.li(S0, 0n);
    a.li(S1, 1n);
    a.li(T2, 101n);
    const top = a.pos;
    // t1 = (i << 20) | 0x513 = addi a0, x0, i
    a.w32(I(0x13, 1, T1, S1, 20));
    a.w32(I(0x13, 6, T1, T1, 0x513));
    const auipcAt = a.pos;
    a.w32(0x00000297); // auipc t0, 0
    a.w32(enc.sw(T0, T1, 0)); // patched below to the offset of `target`
    const target = a.pos;
    a.w32(enc.addi(A0, 0, 0)); // rewritten every iteration
    a.w32(add(S0, S0, A0));
    a.w32(enc.addi(S1, S1, 1));
    a.w32(enc.bne(S1, T2, top - a.pos));
    finish(a);
    new DataView(a.bytes.buffer).setUint32(auipcAt + 4, enc.sw(T0, T1, target - auipcAt), true);
    const image = a.bytes;
    const off = await run(image, false);
    const on = await run(image, true);
    expect(off.result).toBe(5050n);
    expect(on.result).toBe(5050n);
    expect(on.translated).toBeGreaterThan(0n);
    expect(on.invalidations).toBeGreaterThan(1); // (then the page is left to the interpreter a while)
    expect(on.ram.equals(off.ram)).toBe(true);
    expect(on.hart.equals(off.hart)).toBe(true);
  });
});

describe("code written by a device", () => {
  it("a virtio-blk read into a translated page replaces its code", { timeout: 60_000 }, async () => {
    const CODE = BASE + 0x3000, QUEUE = BASE + 0x4000, REQ = BASE + 0x6000;
    const VIRTIO = 0x1000_1000 + 7 * 0x1000; // the first drive: the highest virtio-mmio slot
    const image = new Uint8Array(0x8000);
    const dv = new DataView(image.buffer);
    // f: li a0, 1; ret     (the disk's sector 0 holds: li a0, 2; ret)
    dv.setUint32(CODE - BASE, enc.addi(A0, 0, 1), true);
    dv.setUint32(CODE - BASE + 4, enc.jalr(0, RA, 0), true);
    // A legacy split virtqueue of 8 at QUEUE (used ring at QUEUE + 0x1000): one read request,
    // header -> data into CODE (device-writable) -> status byte.
    const desc = (i: number, addr: number, len: number, flags: number, next: number) => {
      const o = QUEUE - BASE + i * 16;
      dv.setBigUint64(o, BigInt(addr), true);
      dv.setUint32(o + 8, len, true);
      dv.setUint16(o + 12, flags, true);
      dv.setUint16(o + 14, next, true);
    };
    desc(0, REQ, 16, 1, 1);
    desc(1, CODE, 512, 1 | 2, 2);
    desc(2, REQ + 16, 1, 2, 0);
    dv.setUint16(QUEUE - BASE + 128 + 4, 0, true); // avail.ring[0] = descriptor 0
    // (the request header: type 0 = IN, sector 0: all zero)
    const a = new Asm(BASE, 0x3000);
    a.li(S0, 0n);
    callLoop(a, CODE, 100);
    const reg = (off: number, v: number) => {
      a.li(T0, BigInt(VIRTIO + off));
      a.li(T1, BigInt(v));
      a.w32(enc.sw(T0, T1, 0));
    };
    reg(0x070, 0); // status: reset
    reg(0x070, 3); // ACKNOWLEDGE | DRIVER
    reg(0x028, 4096); // GuestPageSize
    reg(0x030, 0); // QueueSel
    reg(0x038, 8); // QueueNum
    reg(0x03c, 4096); // QueueAlign
    reg(0x040, QUEUE >>> 12); // QueuePFN
    reg(0x070, 7); // DRIVER_OK
    a.li(T0, BigInt(QUEUE + 128));
    a.li(T1, 1n);
    a.w32(sh(T0, T1, 2)); // avail.idx = 1
    reg(0x050, 0); // QueueNotify
    // wait for used.idx == 1
    a.li(T0, BigInt(QUEUE + 0x1000));
    const wait = a.pos;
    a.w32(I(0x03, 5, T1, T0, 2)); // lhu t1, 2(t0)
    a.w32(B(0, T1, 0, wait - a.pos)); // beqz t1, wait
    callLoop(a, CODE, 100);
    finish(a);
    image.set(a.bytes.subarray(0, 0x3000), 0);
    const disk = join(dir, "code.img");
    const sector = new Uint8Array(4096);
    new DataView(sector.buffer).setUint32(0, enc.addi(A0, 0, 2), true);
    new DataView(sector.buffer).setUint32(4, enc.jalr(0, RA, 0), true);
    writeFileSync(disk, sector);
    const off = await run(image, false, disk);
    const on = await run(image, true, disk);
    expect(off.result).toBe(300n);
    expect(on.result).toBe(300n);
    expect(on.translated).toBeGreaterThan(0n);
    expect(on.invalidations).toBeGreaterThan(0);
  });
});
