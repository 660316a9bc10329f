// info mem (QEMU's RISC-V page-table walk and merge rules) and info tlb on hand-made tables.

import { describe, expect, it } from "vitest";
import { infoMem, infoTlb } from "../src/mmu-info.js";

const V = 1n, R = 2n, W = 4n, X = 8n, U = 16n, A = 64n, D = 128n;

describe("info mem", () => {
  it("says so without translation", () => {
    expect(infoMem(0n, () => 0n)).toBe("No translation or protection\n");
  });

  it("merges contiguous leaves with the same bits, splits on a change, sign-extends the top half (Sv39)", () => {
    const mem = new Map<bigint, bigint>();
    const root = 0x80001000n, mid = 0x80002000n, leaf = 0x80003000n;
    const pte = (pa: bigint, bits: bigint) => ((pa >> 12n) << 10n) | bits;
    mem.set(root + 0n * 8n, pte(mid, V)); // VA 0..1 GiB: a table
    mem.set(mid + 0n * 8n, pte(leaf, V)); // VA 0..2 MiB: 4 KiB pages
    mem.set(leaf + 1n * 8n, pte(0x80100000n, V | R | W | U | A | D));
    mem.set(leaf + 2n * 8n, pte(0x80101000n, V | R | W | U | A | D)); // contiguous: merged
    mem.set(leaf + 3n * 8n, pte(0x80102000n, V | R | U | A)); // other bits: a new range
    mem.set(root + 2n * 8n, pte(0x80000000n, V | R | W | X | A | D)); // a 1 GiB page
    mem.set(root + 511n * 8n, pte(0x80000000n, V | R | X | A)); // the top GiB: 0xffffffffc0000000
    const out = infoMem((8n << 60n) | (root >> 12n), (pa) => mem.get(pa) ?? 0n);
    expect(out).toBe([
      "vaddr            paddr            size             attr",
      "---------------- ---------------- ---------------- -------",
      "0000000000001000 0000000080100000 0000000000002000 rw-u-ad",
      "0000000000003000 0000000080102000 0000000000001000 r--u-a-",
      "0000000080000000 0000000080000000 0000000040000000 rwx--ad",
      "ffffffffc0000000 0000000080000000 0000000040000000 r-x--a-",
      "",
    ].join("\n"));
  });
});

describe("info tlb", () => {
  it("lists each hart's cached pages with the TLBs that hold them and their privilege", () => {
    const entries = 4;
    const buf = new DataView(new ArrayBuffer(entries * 16 * 3));
    for (let i = 0; i < entries * 3; i++) buf.setBigUint64(i * 16, 0xffffffffffffffffn, true);
    const put = (table: number, slot: number, tag: bigint, host: number) => {
      buf.setBigUint64((table * entries + slot) * 16, tag, true);
      buf.setUint32((table * entries + slot) * 16 + 8, host, true);
    };
    const S = 1n << 52n, SUM = 1n << 54n;
    put(0, 0, 0x80000n | S, 0x1000000); // fetch, S: RAM page 0
    put(1, 0, 0x80000n | S, 0x1000000); // load, same page
    put(2, 1, 0x40001n | S | SUM, 0x1002000); // store, S with SUM
    put(1, 2, 0xffffffffc0000n | S, 0x1000000); // load at 0xffffffffc0000000
    const out = infoTlb([{ hart: 0, tables: buf, entries, physical: (h) => BigInt(h - 0x1000000) + 0x80000000n }]);
    expect(out).toBe([
      "CPU#0: 3 pages (fetch, load and store TLBs: 4 entries each)",
      "vaddr            paddr            attr priv",
      "---------------- ---------------- ---- ----",
      "0000000040001000 0000000080002000 -w-  S    sum",
      "0000000080000000 0000000080000000 r-x  S",
      "ffffffffc0000000 0000000080000000 r--  S",
      "",
    ].join("\n"));
  });
});
