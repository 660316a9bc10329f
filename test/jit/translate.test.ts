// The translator's block finder (src/jit/translate.ts findBlocks): what it cuts into blocks
// decides which offsets the dispatch map knows, and an offset the map does not know where
// translated code hands over is a miss (a report to the host and a translation again).

import { describe, expect, it } from "vitest";
import { findBlocks } from "../../src/jit/translate.js";
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
