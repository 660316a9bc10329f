// The virt board's device tree: the blob read back structurally, checked by dtc, and compared
// with the tree QEMU 7.2 builds for the same machine (`-M virt -smp 1`), where QEMU is installed.

import { describe, expect, it } from "vitest";
import { spawnSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FdtError } from "../../src/fdt.js";
import { buildVirtDtb, virtFdtAddress, VIRT_STDOUT_PATH, type VirtDtbConfig } from "../../src/board/virt-dtb.js";
import { cellsOf, parseFdt, stringsOf, type ParsedFdt } from "../fdt-reader.js";
import { VIRT_ISA } from "../../src/board/virt.js";
import { ROOT } from "../helpers.js";

const MiB = 1024 * 1024;
const CFG: VirtDtbConfig = {
  ramBase: 0x8000_0000,
  ramBytes: 256 * MiB,
  isa: "rv64imafdc_zicsr_zifencei_zicntr_sstc",
  mmuType: "riscv,sv48",
  timebaseHz: 10_000_000,
  virtioSlots: 8,
};

const HAVE_DTC = spawnSync("dtc", ["--version"]).status === 0;
const HAVE_QEMU = spawnSync("qemu-system-riscv64", ["--version"]).status === 0;
if (!HAVE_DTC || !HAVE_QEMU) {
  console.warn(
    `\n*** test/board/virt-dtb.test.ts: ${HAVE_DTC ? "" : "dtc (device-tree-compiler) "}` +
      `${HAVE_QEMU ? "" : "qemu-system-riscv64 "}not installed: skipping the dtc/QEMU comparisons ***\n`,
  );
}

const dir = mkdtempSync(join(tmpdir(), "rvm-virt-dtb-"));

function tree(cfg: Partial<VirtDtbConfig> = {}): ParsedFdt {
  return parseFdt(buildVirtDtb({ ...CFG, ...cfg }));
}

function prop(f: ParsedFdt, path: string, name: string): Uint8Array {
  const node = f.nodes.get(path);
  if (!node) throw new Error(`no node ${path}`);
  const v = node.props.get(name);
  if (!v) throw new Error(`no property ${name} in ${path}`);
  return v;
}
const str = (f: ParsedFdt, path: string, name: string): string[] => stringsOf(prop(f, path, name));
const num = (f: ParsedFdt, path: string, name: string): number[] => cellsOf(prop(f, path, name));

const VIRTIO = [8, 7, 6, 5, 4, 3, 2, 1].map((n) => `/soc/virtio_mmio@1000${n}000`);

describe("virt device tree: structure", { timeout: 120_000 }, () => {
  const f = tree();

  it("has a valid header, 8-byte totalsize and no reservations", () => {
    expect(f.header.version).toBe(17);
    expect(f.header.bootCpuidPhys).toBe(0);
    expect(f.header.totalsize % 8).toBe(0);
    expect(f.reservations).toEqual([]);
    expect(new Set(f.strings).size).toBe(f.strings.length); // deduplicated names
  });

  it("has QEMU's nodes, in QEMU's order", () => {
    expect([...f.nodes.keys()]).toEqual([
      "/",
      "/chosen",
      "/poweroff",
      "/reboot",
      "/memory@80000000",
      "/cpus",
      "/cpus/cpu@0",
      "/cpus/cpu@0/interrupt-controller",
      "/cpus/cpu-map",
      "/cpus/cpu-map/cluster0",
      "/cpus/cpu-map/cluster0/core0",
      "/soc",
      "/soc/serial@10000000",
      "/soc/test@100000",
      ...VIRTIO, // highest slot first, as QEMU lists them (Linux probes in tree order)
      "/soc/plic@c000000",
      "/soc/clint@2000000",
    ]);
  });

  it("describes the root, memory and buses with two address and size cells", () => {
    for (const p of ["/", "/soc"]) {
      expect(num(f, p, "#address-cells")).toEqual([2]);
      expect(num(f, p, "#size-cells")).toEqual([2]);
    }
    expect(str(f, "/", "compatible")).toEqual(["riscv-virtio"]);
    expect(str(f, "/", "model")).toEqual(["riscv-virtio,qemu"]);
    expect(str(f, "/soc", "compatible")).toEqual(["simple-bus"]);
    expect(prop(f, "/soc", "ranges").length).toBe(0);
    expect(str(f, "/memory@80000000", "device_type")).toEqual(["memory"]);
    expect(num(f, "/memory@80000000", "reg")).toEqual([0, 0x8000_0000, 0, 0x1000_0000]);
  });

  it("describes the hart and its interrupt controller", () => {
    expect(num(f, "/cpus", "#address-cells")).toEqual([1]);
    expect(num(f, "/cpus", "#size-cells")).toEqual([0]);
    expect(num(f, "/cpus", "timebase-frequency")).toEqual([10_000_000]);
    const cpu = "/cpus/cpu@0";
    expect(str(f, cpu, "device_type")).toEqual(["cpu"]);
    expect(num(f, cpu, "reg")).toEqual([0]);
    expect(str(f, cpu, "status")).toEqual(["okay"]);
    expect(str(f, cpu, "compatible")).toEqual(["riscv"]);
    expect(str(f, cpu, "riscv,isa")).toEqual([CFG.isa]);
    expect(str(f, cpu, "mmu-type")).toEqual(["riscv,sv48"]);
    const intc = `${cpu}/interrupt-controller`;
    expect(str(f, intc, "compatible")).toEqual(["riscv,cpu-intc"]);
    expect(num(f, intc, "#interrupt-cells")).toEqual([1]);
    expect(prop(f, intc, "interrupt-controller").length).toBe(0);
    expect(num(f, "/cpus/cpu-map/cluster0/core0", "cpu")).toEqual(num(f, cpu, "phandle"));
  });

  it("numbers phandles as QEMU does and points every reference at the right node", () => {
    const ph = (p: string): number => num(f, p, "phandle")[0]!;
    expect(ph("/cpus/cpu@0")).toBe(1);
    expect(ph("/cpus/cpu@0/interrupt-controller")).toBe(2);
    expect(ph("/soc/plic@c000000")).toBe(3);
    expect(ph("/soc/test@100000")).toBe(4);
    const phandles = [...f.nodes.values()].flatMap((n) => (n.props.has("phandle") ? cellsOf(n.props.get("phandle")) : []));
    expect(new Set(phandles).size).toBe(phandles.length);
    for (const p of ["/soc/serial@10000000", ...VIRTIO]) expect(num(f, p, "interrupt-parent")).toEqual([3]);
  });

  it("wires the CLINT and PLIC to the hart's M and S interrupts", () => {
    const clint = "/soc/clint@2000000";
    expect(str(f, clint, "compatible")).toEqual(["sifive,clint0", "riscv,clint0"]);
    expect(num(f, clint, "reg")).toEqual([0, 0x200_0000, 0, 0x1_0000]);
    expect(num(f, clint, "interrupts-extended")).toEqual([2, 3, 2, 7]); // M soft, M timer
    const plic = "/soc/plic@c000000";
    expect(str(f, plic, "compatible")).toEqual(["sifive,plic-1.0.0", "riscv,plic0"]);
    expect(num(f, plic, "reg")).toEqual([0, 0xc00_0000, 0, 0x60_0000]);
    expect(num(f, plic, "interrupts-extended")).toEqual([2, 11, 2, 9]); // context 0 = M, 1 = S
    expect(num(f, plic, "riscv,ndev")).toEqual([96]);
    expect(num(f, plic, "#interrupt-cells")).toEqual([1]);
    expect(num(f, plic, "#address-cells")).toEqual([0]);
    expect(prop(f, plic, "interrupt-controller").length).toBe(0);
  });

  it("describes the UART, virtio slots and the test device with its syscon users", () => {
    const uart = "/soc/serial@10000000";
    expect(str(f, uart, "compatible")).toEqual(["ns16550a"]);
    expect(num(f, uart, "reg")).toEqual([0, 0x1000_0000, 0, 0x100]);
    expect(num(f, uart, "clock-frequency")).toEqual([3_686_400]);
    expect(num(f, uart, "interrupts")).toEqual([10]);
    for (let n = 0; n < 8; n++) {
      const p = `/soc/virtio_mmio@${(0x1000_1000 + n * 0x1000).toString(16)}`;
      expect(str(f, p, "compatible")).toEqual(["virtio,mmio"]);
      expect(num(f, p, "reg")).toEqual([0, 0x1000_1000 + n * 0x1000, 0, 0x1000]);
      expect(num(f, p, "interrupts")).toEqual([1 + n]);
    }
    const test = "/soc/test@100000";
    expect(str(f, test, "compatible")).toEqual(["sifive,test1", "sifive,test0", "syscon"]);
    expect(num(f, test, "reg")).toEqual([0, 0x10_0000, 0, 0x1000]);
    for (const [p, compatible, value] of [
      ["/poweroff", "syscon-poweroff", 0x5555],
      ["/reboot", "syscon-reboot", 0x7777],
    ] as const) {
      expect(str(f, p, "compatible")).toEqual([compatible]);
      expect(num(f, p, "regmap")).toEqual([4]);
      expect(num(f, p, "offset")).toEqual([0]);
      expect(num(f, p, "value")).toEqual([value]);
    }
  });

  it("has /chosen with stdout-path, and bootargs and initrd only when given", () => {
    expect(str(f, "/chosen", "stdout-path")).toEqual(["/soc/serial@10000000"]);
    expect(VIRT_STDOUT_PATH).toBe("/soc/serial@10000000");
    expect([...f.nodes.get("/chosen")!.props.keys()]).toEqual(["stdout-path"]);
    expect([...tree({ bootargs: "" }).nodes.get("/chosen")!.props.keys()]).toEqual(["stdout-path"]);

    const g = tree({ bootargs: "console=ttyS0 root=/dev/vda", initrd: { start: 0x8820_0000, end: 0x8830_0000 } });
    expect(str(g, "/chosen", "bootargs")).toEqual(["console=ttyS0 root=/dev/vda"]);
    expect(num(g, "/chosen", "linux,initrd-start")).toEqual([0x8820_0000]); // one cell, as QEMU 7.2
    expect(num(g, "/chosen", "linux,initrd-end")).toEqual([0x8830_0000]);
    const high = tree({ ramBytes: 8192 * MiB, initrd: { start: 0x1_2000_0000, end: 0x1_2000_1000 } });
    expect(num(high, "/chosen", "linux,initrd-start")).toEqual([1, 0x2000_0000]); // above 4 GiB: two cells
    expect(num(high, "/memory@80000000", "reg")).toEqual([0, 0x8000_0000, 2, 0]);
  });

  it("follows the configuration: virtio slot count, RTC, ISA, MMU, timebase", () => {
    const g = tree({ virtioSlots: 2, rtc: true, isa: "rv64imac", mmuType: "riscv,sv39", timebaseHz: 1_000_000 });
    const paths = [...g.nodes.keys()];
    expect(paths.filter((p) => p.includes("virtio"))).toEqual(["/soc/virtio_mmio@10002000", "/soc/virtio_mmio@10001000"]);
    expect(paths.indexOf("/soc/rtc@101000")).toBe(paths.indexOf("/soc") + 1);
    expect(str(g, "/soc/rtc@101000", "compatible")).toEqual(["google,goldfish-rtc"]);
    expect(num(g, "/soc/rtc@101000", "reg")).toEqual([0, 0x10_1000, 0, 0x1000]);
    expect(num(g, "/soc/rtc@101000", "interrupts")).toEqual([11]);
    expect(num(g, "/soc/rtc@101000", "interrupt-parent")).toEqual([3]);
    expect(str(g, "/cpus/cpu@0", "riscv,isa")).toEqual(["rv64imac"]);
    expect(str(g, "/cpus/cpu@0", "mmu-type")).toEqual(["riscv,sv39"]);
    expect(num(g, "/cpus", "timebase-frequency")).toEqual([1_000_000]);
    expect([...tree({ virtioSlots: 0 }).nodes.keys()].some((p) => p.includes("virtio"))).toBe(false);
    expect(tree({ ramBase: 0x4000_0000 }).nodes.has("/memory@40000000")).toBe(true);
  });

  it("refuses configurations it cannot describe", () => {
    expect(() => buildVirtDtb({ ...CFG, virtioSlots: 9 })).toThrow(FdtError);
    expect(() => buildVirtDtb({ ...CFG, ramBytes: 0 })).toThrow(FdtError);
    expect(() => buildVirtDtb({ ...CFG, timebaseHz: 2 ** 32 })).toThrow(FdtError);
    expect(() => buildVirtDtb({ ...CFG, isa: "" })).toThrow(FdtError);
    expect(() => buildVirtDtb({ ...CFG, initrd: { start: 0x9000, end: 0x8000 } })).toThrow(/initrd end/);
    expect(() => buildVirtDtb({ ...CFG, bootargs: "a\0b" })).toThrow(FdtError);
  });
});

describe("virt device tree: placement in RAM", { timeout: 120_000 }, () => {
  it("follows QEMU 7.2's rule: min(RAM end, 3 GiB) - 1 MiB, aligned down to 2 MiB", () => {
    expect(virtFdtAddress(0x8000_0000, 256 * MiB)).toBe(0x8fe0_0000);
    expect(virtFdtAddress(0x8000_0000, 128 * MiB)).toBe(0x87e0_0000);
    expect(virtFdtAddress(0x8000_0000, 1024 * MiB)).toBe(0xbfe0_0000);
    expect(virtFdtAddress(0x8000_0000, 4096 * MiB)).toBe(0xbfe0_0000); // capped below 3 GiB
    expect(virtFdtAddress(0x8000_0000, 1 * MiB)).toBe(0x8000_0000); // QEMU does the same
    expect(() => virtFdtAddress(0x8000_0000, MiB / 2)).toThrow(FdtError);
  });

  // QEMU's reset ROM holds the device-tree address at 0x1020 (the word that `ld a1, 32(t0)` reads).
  it.runIf(HAVE_QEMU)("matches where qemu-system-riscv64 puts it", () => {
    for (const mib of [128, 256, 1024]) {
      const r = spawnSync(
        "qemu-system-riscv64",
        ["-M", "virt", "-m", `${mib}M`, "-smp", "1", "-bios", "none", "-S", "-display", "none", "-serial", "none", "-monitor", "stdio"],
        { input: "xp /2wx 0x1020\nquit\n", encoding: "utf8", timeout: 60_000 },
      );
      const m = /0000000000001020: (0x[0-9a-f]+) (0x[0-9a-f]+)/.exec(r.stdout);
      expect(m, r.stdout + r.stderr).not.toBeNull();
      const qemuAddr = Number(m![2]) * 2 ** 32 + Number(m![1]);
      expect(virtFdtAddress(0x8000_0000, mib * MiB)).toBe(qemuAddr);
    }
  });
});

/** dtc's decompiled output as a map from node path to its properties' source text, in order. */
function parseDts(text: string): Map<string, Map<string, string>> {
  const nodes = new Map<string, Map<string, string>>();
  const stack: string[] = [];
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (line === "" || line === "/dts-v1/;" || line.startsWith("/memreserve/")) continue;
    let m: RegExpExecArray | null;
    if ((m = /^(\S+) \{$/.exec(line))) {
      const name = m[1]!;
      const path = stack.length === 0 ? "/" : `${stack.length === 1 ? "" : stack[stack.length - 1]}/${name}`;
      stack.push(path);
      nodes.set(path, new Map());
    } else if (line === "};") {
      stack.pop();
    } else if ((m = /^([^\s=]+)(?: = (.*))?;$/.exec(line))) {
      nodes.get(stack[stack.length - 1]!)!.set(m[1]!, m[2] ?? "");
    } else {
      throw new Error(`unexpected dtc output line: ${line}`);
    }
  }
  return nodes;
}

function dtc(file: string): { dts: string; warnings: string[] } {
  const r = spawnSync("dtc", ["-I", "dtb", "-O", "dts", file], { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`dtc failed on ${file}: ${r.stderr}`);
  const warnings = r.stderr
    .split("\n")
    .filter((l) => l.trim() !== "")
    .map((l) => l.replace(/^[^:]*: /, "")); // drop the file name
  return { dts: r.stdout, warnings };
}

describe.runIf(HAVE_DTC)("virt device tree: dtc", () => {
  it("decompiles cleanly; the only warning is the one QEMU's tree has too", () => {
    const file = join(dir, "rvm.dtb");
    writeFileSync(file, buildVirtDtb({ ...CFG, rtc: true, bootargs: "console=ttyS0" }));
    const { dts, warnings } = dtc(file);
    // QEMU's cpu interrupt controllers have no #address-cells either; kept identical on purpose.
    expect(warnings).toEqual([
      "Warning (interrupt_provider): /cpus/cpu@0/interrupt-controller: Missing #address-cells in interrupt provider",
    ]);
    expect(dts).toContain('bootargs = "console=ttyS0";');
    expect(dts).toContain('stdout-path = "/soc/serial@10000000";');
  });
});

describe.runIf(HAVE_DTC && HAVE_QEMU)("virt device tree: against QEMU's", () => {
  // The intentional differences (each explained at the top of src/board/virt-dtb.ts).
  const QEMU_ONLY_NODES = ["/pmu", "/fw-cfg@10100000", "/flash@20000000", "/platform-bus@4000000", "/soc/pci@30000000"];
  const QEMU_ONLY_PROPS: Record<string, string[]> = { "/chosen": ["rng-seed"] };

  for (const smp of [1, 3, 4, 8])
  it(`has QEMU's nodes and property values, minus the devices rvm leaves out (-smp ${smp})`, () => {
    const kernel = join(dir, "kernel.bin");
    const initrd = join(dir, "initrd.img");
    writeFileSync(kernel, Buffer.alloc(64));
    writeFileSync(initrd, Buffer.alloc(4096, 0x5a));
    const qemuFile = join(dir, `qemu-${smp}.dtb`);
    const q = spawnSync(
      "qemu-system-riscv64",
      ["-M", "virt", "-m", "256M", "-smp", String(smp), "-display", "none", "-serial", "none",
        "-kernel", kernel, "-initrd", initrd, "-append", "console=ttyS0 rdinit=/bin/sh", "-M", `dumpdtb=${qemuFile}`],
      { encoding: "utf8", timeout: 60_000 },
    );
    expect(q.status, q.stderr).toBe(0);
    const qemu = parseDts(dtc(qemuFile).dts);

    // Pass through what QEMU chose where rvm's lead chooses: the ISA string and the initrd address.
    const chosen = qemu.get("/chosen")!;
    const cell = (s: string | undefined): number => Number(/^<(0x[0-9a-f]+)>$/.exec(s ?? "")![1]);
    const isa = JSON.parse(qemu.get("/cpus/cpu@0")!.get("riscv,isa")!) as string;
    const rvmFile = join(dir, `rvm-same-${smp}.dtb`);
    writeFileSync(
      rvmFile,
      buildVirtDtb({
        ...CFG,
        harts: smp,
        isa,
        rtc: true,
        bootargs: "console=ttyS0 rdinit=/bin/sh",
        initrd: { start: cell(chosen.get("linux,initrd-start")), end: cell(chosen.get("linux,initrd-end")) },
      }),
    );
    const rvm = parseDts(dtc(rvmFile).dts);

    // Same nodes in the same order, except the ones rvm leaves out.
    for (const p of QEMU_ONLY_NODES) expect(qemu.has(p), `QEMU no longer has ${p}`).toBe(true);
    expect([...rvm.keys()]).toEqual([...qemu.keys()].filter((p) => !QEMU_ONLY_NODES.includes(p)));

    // Every property of every shared node: same set, same value (dtc's rendering).
    for (const [path, props] of rvm) {
      const qprops = qemu.get(path)!;
      const expected = [...qprops.keys()].filter((k) => !(QEMU_ONLY_PROPS[path] ?? []).includes(k)).sort();
      expect([...props.keys()].sort(), path).toEqual(expected);
      for (const [name, value] of props) expect(value, `${path} ${name}`).toBe(qprops.get(name));
    }
    // And the ones the brief singles out, spelled out for the record.
    expect(rvm.get("/soc/plic@c000000")!.get("compatible")).toBe('"sifive,plic-1.0.0\\0riscv,plic0"');
    expect(rvm.get("/soc/virtio_mmio@10008000")!.get("interrupts")).toBe("<0x08>");
    expect(rvm.get("/soc/clint@2000000")!.get("reg")).toBe("<0x00 0x2000000 0x00 0x10000>");
    expect([...rvm.keys()].filter((p) => /^\/cpus\/cpu@\d+$/.test(p))).toHaveLength(smp);
    expect(rvm.get("/soc/plic@c000000")!.get("interrupts-extended")!.split(" ")).toHaveLength(4 * smp);
  });
});

describe.runIf(HAVE_DTC && HAVE_QEMU)("virt device tree: rvm run vs QEMU for the same command line", () => {
  const QEMU_ONLY_NODES = ["/pmu", "/fw-cfg@10100000", "/flash@20000000", "/platform-bus@4000000", "/soc/pci@30000000"];

  it("xv6-riscv's Makefile line (-bios none, bus=virtio-mmio-bus.0, force-legacy=false): same tree, RTC included", { timeout: 60_000 }, () => {
    const kernel = join(ROOT, "guests/isa/rv64i.elf");
    const img = join(dir, "fs.img");
    writeFileSync(img, Buffer.alloc(1 << 20));
    const line = (out: string) => [
      "-machine", "virt", "-bios", "none", "-kernel", kernel, "-m", "128M", "-smp", "1", "-nographic",
      "-global", "virtio-mmio.force-legacy=false", "-drive", `file=${img},if=none,format=raw,id=x0`,
      "-device", "virtio-blk-device,drive=x0,bus=virtio-mmio-bus.0", "-machine", `dumpdtb=${out}`,
    ];
    const qemuFile = join(dir, "xv6-qemu.dtb");
    const rvmFile = join(dir, "xv6-rvm.dtb");
    const q = spawnSync("qemu-system-riscv64", line(qemuFile), { encoding: "utf8", timeout: 20_000 });
    expect(q.status, q.stderr).toBe(0);
    const r = spawnSync(process.execPath, [join(ROOT, "bin/rvm.js"), "run", ...line(rvmFile)], { encoding: "utf8", timeout: 20_000 });
    expect(r.status, r.stderr).toBe(0);
    const qemu = parseDts(dtc(qemuFile).dts);
    const rvm = parseDts(dtc(rvmFile).dts);
    expect([...rvm.keys()]).toEqual([...qemu.keys()].filter((p) => !QEMU_ONLY_NODES.includes(p)));
    for (const [path, props] of rvm) {
      const qprops = qemu.get(path)!;
      expect([...props.keys()].sort(), path).toEqual([...qprops.keys()].filter((k) => !(path === "/chosen" && k === "rng-seed")).sort());
      for (const [name, value] of props) {
        if (path === "/cpus/cpu@0" && name === "riscv,isa") expect(value).toBe(JSON.stringify(VIRT_ISA)); // what rvm's hart has
        else expect(value, `${path} ${name}`).toBe(qprops.get(name));
      }
    }
    expect(rvm.get("/soc/rtc@101000")!.get("compatible")).toBe('"google,goldfish-rtc"');
    expect(rvm.get("/soc/rtc@101000")!.get("interrupts")).toBe("<0x0b>");
    expect(rvm.get("/soc/virtio_mmio@10001000")!.get("interrupts")).toBe("<0x01>");
  });
});
