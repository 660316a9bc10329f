// The translator's block finder (src/jit/translate.ts findBlocks): what it cuts into blocks
// decides which offsets the dispatch map knows, and an offset the map does not know where
// translated code hands over is a miss (a report to the host and a translation again).

import { describe, expect, it } from "vitest";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { gunzipSync } from "node:zlib";
import { Core } from "../../src/core.js";
import { findBlocks, isDelayLoop } from "../../src/jit/translate.js";
import { ROOT } from "../helpers.js";
import { enc } from "./gen.js";

const NO_RVC = new Uint32Array(65536); // (the pages here hold no compressed instructions)

function page(words: number[]): Uint8Array {
  const code = new Uint8Array(4096);
  words.forEach((w, i) => new DataView(code.buffer).setUint32(i * 4, w, true));
  return code;
}

describe("findBlocks", () => {
  it("cuts a long straight run into blocks that each begin where the last one ends", () => {
    // 900 ALU instructions, then a loop branch back to the start (an unrolled hash round:
    // Linux's chacha20 is ~1,300 straight instructions)
    const n = 900;
    const words = Array.from({ length: n }, (_, i) => enc.addi(5 + (i % 3), 5 + (i % 3), 1));
    words.push(enc.bne(5, 0, -n * 4));
    const blocks = findBlocks(page(words), [0], NO_RVC);
    const starts = new Set(blocks.map((b) => b.start));
    let covered = 0;
    for (const b of blocks) {
      expect(b.insns.length).toBeLessThanOrEqual(200);
      covered += b.insns.length;
      if (b.start > n * 4) continue; // (after the branch: the zero word, left to the interpreter)
      // a block that falls through ends where a known block begins
      if (b.next !== (n + 1) * 4) expect(starts.has(b.next)).toBe(true);
    }
    expect(covered).toBe(n + 1);
    expect(Math.min(...starts)).toBe(0);
  });
});

describe("isDelayLoop: a hot page entered at a wait on the clock is left to the interpreter", () => {
  const TIME = 0xc01, A0 = 10, A5 = 15, RA = 1;
  const rdtime = (rd: number) => enc.csrrs(rd, TIME, 0);
  const ret = enc.jalr(0, RA, 0);

  it("a small routine with a loop reading the time CSR is one; a loop that does not read it is not", () => {
    // wait: rdtime a5; addi a5, a5, 1; bne a5, a0, wait; ret
    expect(isDelayLoop(page([rdtime(A5), enc.addi(A5, A5, 1), enc.bne(A5, A0, -8), ret]), 0, NO_RVC)).toBe(true);
    // the same loop without rdtime (a compute loop)
    expect(isDelayLoop(page([enc.addi(A5, A5, 1), enc.addi(A5, A5, 1), enc.bne(A5, A0, -8), ret]), 0, NO_RVC)).toBe(false);
    // rdtime once before a compute loop (a timestamp, not a wait)
    expect(isDelayLoop(page([rdtime(A0), enc.addi(A5, A5, 1), enc.bne(A5, A0, -4), ret]), 0, NO_RVC)).toBe(false);
  });

  it("not when the loop is long or the routine large (real work that happens to read the clock)", () => {
    const body = Array.from({ length: 20 }, () => enc.addi(A5, A5, 1));
    expect(isDelayLoop(page([rdtime(A5), ...body, enc.bne(A5, A0, -(body.length + 1) * 4), ret]), 0, NO_RVC)).toBe(false);
    const before = Array.from({ length: 200 }, () => enc.addi(A0, A0, 1));
    expect(isDelayLoop(page([...before, rdtime(A5), enc.bne(A5, A0, -4), ret]), 0, NO_RVC)).toBe(false);
  });

  it("the shipped Linux kernel: udelay is one, inflate_fast is not (offsets from System.map)", () => {
    const core = new Core(1 << 20);
    const ex = core.exports;
    const rvc = new Uint32Array(ex.memory.buffer, ex.jitRvcAddress(), 65536);
    const image = gunzipSync(readFileSync(join(ROOT, "guests/linux/Image.gz")));
    // Image is linked at 0xffffffff80000000: udelay at ...801f9db6, inflate_fast at ...8019452e
    const at = (va: number) => new Uint8Array(image.subarray(va & ~0xfff, (va & ~0xfff) + 4096));
    expect(isDelayLoop(at(0x1f9db6), 0xdb6, rvc)).toBe(true);
    expect(isDelayLoop(at(0x19452e), 0x52e, rvc)).toBe(false);
  });
});
