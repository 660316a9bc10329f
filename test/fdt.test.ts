// The FDT writer against the Devicetree Specification v0.4, chapter 5: header fields, block
// alignment, token stream, strings deduplication, value encodings (section 2.2.4).

import { describe, expect, it } from "vitest";
import { spawnSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  FdtError,
  FdtNode,
  FdtTree,
  cells,
  empty,
  phandle,
  serializeFdt,
  string,
  stringList,
  u32,
  u64,
  u64Cells,
} from "../src/fdt.js";
import { cellsOf, parseFdt, stringsOf } from "./fdt-reader.js";

const hex = (b: Uint8Array): string => Buffer.from(b).toString("hex");

const HAVE_DTC = spawnSync("dtc", ["--version"]).status === 0;

describe("value encodings (2.2.4)", () => {
  it("writes cells big-endian", () => {
    expect(hex(u32(0x12345678))).toBe("12345678");
    expect(hex(cells(1, 0xffffffff))).toBe("00000001ffffffff");
  });
  it("writes u64 as two cells, high first", () => {
    expect(hex(u64(0x1_8000_0000))).toBe("0000000180000000");
    expect(hex(u64(5n, 0x10000000))).toBe("00000000000000050000000010000000");
    expect(u64Cells(0x2_0000_0003)).toEqual([2, 3]);
  });
  it("writes strings and string lists NUL-terminated", () => {
    expect(Buffer.from(string("okay")).toString("latin1")).toBe("okay\0");
    expect(Buffer.from(stringList("sifive,test1", "syscon")).toString("latin1")).toBe("sifive,test1\0syscon\0");
    expect(empty().length).toBe(0);
  });
  it("refuses values that do not fit", () => {
    expect(() => u32(-1)).toThrow(FdtError);
    expect(() => u32(2 ** 32)).toThrow(FdtError);
    expect(() => u32(1.5)).toThrow(FdtError);
    expect(() => u64(2 ** 64)).toThrow(FdtError);
    expect(() => string("a\0b")).toThrow(FdtError);
    expect(() => phandle(0)).toThrow(FdtError);
    expect(() => phandle(0xffffffff)).toThrow(FdtError);
  });
});

describe("tree building", () => {
  it("checks node and property names (2.2.1, 2.2.4.1)", () => {
    const root = new FdtNode("");
    expect(() => root.addNode("bad name")).toThrow(FdtError);
    expect(() => root.addNode("")).toThrow(FdtError);
    expect(() => root.addNode("a".repeat(32))).toThrow(FdtError);
    root.addNode("serial@10000000");
    expect(() => root.addNode("serial@10000000")).toThrow(/already exists/);
    expect(() => root.set("bad prop", empty())).toThrow(FdtError);
    root.setU32("#address-cells", 2);
    root.setU32("#address-cells", 1); // replaced, not duplicated
    expect(root.props.length).toBe(1);
    expect(cellsOf(root.get("#address-cells"))).toEqual([1]);
  });
  it("hands out phandles 1, 2, 3 in request order, once per node", () => {
    const t = new FdtTree();
    const a = t.root.addNode("a");
    const b = t.root.addNode("b");
    expect(t.phandleOf(b)).toBe(1);
    expect(t.phandleOf(a)).toBe(2);
    expect(t.phandleOf(b)).toBe(1);
    expect(cellsOf(a.get("phandle"))).toEqual([2]);
    expect(t.find("/b")).toBe(b);
    expect(t.find("/")).toBe(t.root);
    expect(t.find("/c")).toBeUndefined();
  });
});

describe("blob layout (chapter 5)", () => {
  it("writes the smallest tree exactly", () => {
    const blob = serializeFdt(new FdtNode(""));
    const f = parseFdt(blob);
    expect(f.header).toEqual({
      magic: 0xd00dfeed,
      totalsize: 72, // 40 header + 16 reservation terminator + 16 structure
      offDtStruct: 56,
      offDtStrings: 72,
      offMemRsvmap: 40,
      version: 17,
      lastCompVersion: 16,
      bootCpuidPhys: 0,
      sizeDtStrings: 0,
      sizeDtStruct: 16,
    });
    expect(blob.length).toBe(72);
    // FDT_BEGIN_NODE, "" padded to 4, FDT_END_NODE, FDT_END
    expect(hex(blob.subarray(56, 72))).toBe("00000001" + "00000000" + "00000002" + "00000009");
  });

  it("writes nodes, properties and reservations that read back the same", () => {
    const t = new FdtTree();
    t.root.setU32("#address-cells", 2).setStrings("compatible", "x,y", "z");
    const soc = t.root.addNode("soc");
    const uart = soc.addNode("serial@10000000");
    uart.setString("compatible", "ns16550a").setU64("reg", 0x1000_0000, 0x100).setEmpty("dma-coherent");
    soc.addNode("odd-name"); // 8 chars + NUL: padding after a name that is not a multiple of 4
    const blob = serializeFdt(t, { reservations: [{ address: 0x8000_0000, size: 0x20_0000 }], bootCpuidPhys: 3 });
    const f = parseFdt(blob);
    expect(f.header.bootCpuidPhys).toBe(3);
    expect(f.reservations).toEqual([{ address: 0x8000_0000n, size: 0x20_0000n }]);
    expect([...f.nodes.keys()]).toEqual(["/", "/soc", "/soc/serial@10000000", "/soc/odd-name"]);
    const s = f.nodes.get("/soc/serial@10000000")!;
    expect(stringsOf(s.props.get("compatible"))).toEqual(["ns16550a"]);
    expect(cellsOf(s.props.get("reg"))).toEqual([0, 0x1000_0000, 0, 0x100]);
    expect(s.props.get("dma-coherent")!.length).toBe(0);
    expect(stringsOf(f.root.props.get("compatible"))).toEqual(["x,y", "z"]);
  });

  it("stores each property name once in the strings block", () => {
    const root = new FdtNode("");
    for (let i = 0; i < 5; i++) {
      root.addNode(`n@${i}`).setString("compatible", "c").setU32("reg", i).setString("status", "okay");
    }
    root.setString("compatible", "top");
    const f = parseFdt(serializeFdt(root));
    expect(f.strings.sort()).toEqual(["compatible", "reg", "status"]);
    expect(f.header.sizeDtStrings).toBe("compatible\0reg\0status\0".length);
  });

  it("pads totalsize to the alignment and adds free space on request", () => {
    const root = new FdtNode("");
    root.setString("model", "abc"); // strings block "model\0" = 6 bytes: not a multiple of 8
    const plain = serializeFdt(root);
    expect(plain.length % 8).toBe(0);
    expect(parseFdt(plain).header.totalsize).toBe(plain.length);
    const roomy = serializeFdt(root, { extraSpace: 1000, align: 4096 });
    expect(roomy.length).toBe(4096);
    const f = parseFdt(roomy);
    expect(f.header.totalsize).toBe(4096);
    expect(f.header.offDtStrings + f.header.sizeDtStrings + 1000).toBeLessThanOrEqual(4096);
    expect(roomy.subarray(f.header.offDtStrings + f.header.sizeDtStrings).every((b) => b === 0)).toBe(true);
  });

  it("refuses a root with a name and bad options", () => {
    expect(() => serializeFdt(new FdtNode("soc"))).toThrow(FdtError);
    expect(() => serializeFdt(new FdtNode(""), { align: 0 })).toThrow(FdtError);
    expect(() => serializeFdt(new FdtNode(""), { extraSpace: -1 })).toThrow(FdtError);
  });

  it.runIf(HAVE_DTC)("is accepted by dtc", () => {
    const t = new FdtTree();
    t.root.setU32("#address-cells", 1).setU32("#size-cells", 1).setString("compatible", "test");
    const n = t.root.addNode("thing@1000");
    n.setCells("reg", 0x1000, 0x10).setStrings("compatible", "a", "b");
    t.phandleOf(n);
    t.root.addNode("user").setCells("link", t.phandleOf(n));
    const dir = mkdtempSync(join(tmpdir(), "rvm-fdt-"));
    const file = join(dir, "t.dtb");
    writeFileSync(file, serializeFdt(t, { reservations: [{ address: 0x1000, size: 0x1000 }] }));
    const r = spawnSync("dtc", ["-I", "dtb", "-O", "dts", file], { encoding: "utf8" });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toBe("");
    expect(r.stdout).toContain("/memreserve/\t0x0000000000001000 0x0000000000001000;");
    expect(r.stdout).toContain('compatible = "a\\0b";');
    expect(r.stdout).toMatch(/link = <0x0?1>;/);
  });
});

if (!HAVE_DTC) {
  console.warn("\n*** dtc (device-tree-compiler) is not installed: skipping the dtc checks in test/fdt.test.ts ***\n");
}
