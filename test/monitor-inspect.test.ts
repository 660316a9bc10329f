// The monitor's inspection commands on a running machine: x/i and xp/i (QEMU's layout, objdump's
// mnemonics), print with registers and arithmetic (QEMU HMP's expression grammar), info pic,
// info irq, info qtree.

import { describe, expect, it } from "vitest";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createVirtMachine } from "../src/board/virt.js";
import { Machine } from "../src/machine.js";
import { Monitor } from "../src/monitor.js";
import { ROOT } from "./helpers.js";

function monitorFor(m: Machine): Monitor {
  return new Monitor({
    get running() { return m.running; },
    stop: () => m.pause(), cont: () => m.resume(), reset: () => m.requestReset(),
    powerdown: () => m.requestStop(0), quit: () => m.requestStop(0),
    registers: () => m.registers(), mtree: () => m.mtree(), pageSummary: () => m.pageSummary(),
    readMemory: (a, n, v) => m.readMemory(a, n, v), register: (n) => m.register(n),
    pic: () => m.pic(), irq: () => m.irq(), qtree: () => m.qtree(),
  });
}

function machineFor(kernel: string, drives: { file: string; readonly: boolean; attached: boolean }[] = []): Machine {
  return createVirtMachine({ ramBytes: 64 << 20, bios: "none", kernel, drives, console: { write() {}, readByte: () => -1 } });
}

describe("monitor inspection commands", () => {
  it("x/i and xp/i disassemble in QEMU's layout with objdump's mnemonics", async () => {
    const m = machineFor(join(ROOT, "guests/isa/rvc.elf"));
    const mon = monitorFor(m);
    expect(await mon.execute("xp /3i 0x80000000")).toBe([
      "0x0000000080000000:  00000297          auipc                   t0,0x0",
      "0x0000000080000004:  01c28293          add                     t0,t0,28                # 0x8000001c",
      "0x0000000080000008:  30529073          csrw                    mtvec,t0",
      "",
    ].join("\n"));
    // Compressed instructions show their 16-bit encoding.
    expect(await mon.execute("x/2i 0x800020b8")).toBe([
      "0x00000000800020b8:  4185              li                      gp,1",
      "0x00000000800020ba:  4515              li                      a0,5",
      "",
    ].join("\n"));
    // The address is an expression: $pc.
    await m.run({ instructions: 9 }); // 6 in the reset ROM, 3 at 0x80000000
    expect(await mon.execute("x/1i $pc")).toBe("0x000000008000000c:  fff00293          li                      t0,-1\n");
    expect(await mon.execute("x/1i $pc - 4")).toContain("csrw                    mtvec,t0");
    // The reset ROM is memory too.
    expect(await mon.execute("xp/2i 0x1000")).toBe([
      "0x0000000000001000:  00000297          auipc                   t0,0x0",
      "0x0000000000001004:  02828613          add                     a2,t0,40                # 0x1028",
      "",
    ].join("\n"));
    // Nothing mapped there: an error, not a crash.
    expect(await mon.execute("xp/1i 0x40000000")).toMatch(/cannot access/);
  });

  it("print: registers, arithmetic with QEMU's precedence, formats, errors", async () => {
    const m = machineFor(join(ROOT, "guests/isa/rvc.elf"));
    const mon = monitorFor(m);
    await m.run({ instructions: 9 }); // 6 in the reset ROM, 3 at 0x80000000
    expect(await mon.execute("p $pc")).toBe("0x8000000c\n");
    expect(await mon.execute("p $pc + 4")).toBe("0x80000010\n");
    expect(await mon.execute("print $t0 - $pc")).toBe(`0x${(m.core.x(5) - m.core.pc).toString(16)}\n`);
    expect(await mon.execute("p $mtvec")).toBe("0x8000001c\n");
    expect(await mon.execute("p $x5 == $t0")).toMatch(/invalid char/);
    expect(await mon.execute("p/d 13")).toBe("13\n");
    expect(await mon.execute("p/d -1")).toBe("-1\n");
    expect(await mon.execute("p/u -1")).toBe("18446744073709551615\n");
    expect(await mon.execute("p/o 8")).toBe("010\n");
    expect(await mon.execute("p/c 65")).toBe("'A'\n");
    expect(await mon.execute("print 3*4+1")).toBe("0xd\n");
    expect(await mon.execute("p/x 0x10 * 2")).toBe("0x20\n");
    expect(await mon.execute("p 7 & 3 + 1")).toBe("0x4\n"); // & binds tighter than + in HMP
    expect(await mon.execute("p (1 + 2) * 3")).toBe("0x9\n");
    expect(await mon.execute("p ~0 >> 1")).toMatch(/invalid char/);
    expect(await mon.execute("p 010 + 'a'")).toBe("0x69\n");
    expect(await mon.execute("p 1/0")).toBe("division by zero\n");
    expect(await mon.execute("p 1+")).toBe("unexpected end of expression\n");
    expect(await mon.execute("p $nosuch")).toBe("unknown register\n");
  });

  it("info pic and info irq show the PLIC as a guest programmed it and the requests it saw", async () => {
    // lui t0,0x10000; li t1,1; sb t1,1(t0) (UART IER = receive); lui t2,0xc000; sw t1,40(t2)
    // (priority[10] = 1); lui t3,0xc002; li t4,1024; sw t4,0(t3) (context 0 enables source 10); j .
    const words = [0x100002b7, 0x00100313, 0x006280a3, 0x0c0003b7, 0x0263a423, 0x0c002e37, 0x40000e93, 0x01de2023, 0x0000006f];
    const dir = mkdtempSync(join(tmpdir(), "rvm-pic-"));
    const bin = join(dir, "irq.bin");
    writeFileSync(bin, Buffer.from(new Uint32Array(words).buffer));
    const m = machineFor(bin);
    const mon = monitorFor(m);
    await m.run({ instructions: 20 });
    expect(await mon.execute("info irq")).toBe("IRQ statistics for riscv.sifive.plic:\n");
    m.input(Buffer.from("x"));
    await m.run({ instructions: 20 });
    expect(await mon.execute("info irq")).toBe("IRQ statistics for riscv.sifive.plic:\n10: 1\n");
    const pic = await mon.execute("info pic");
    expect(pic).toContain("riscv.sifive.plic: 95 sources, 2 contexts");
    expect(pic).toMatch(/^\s+10\s+1\s+1\s+0\s+1\s+0$/m); // source 10: priority 1, pending, not claimed, enabled in context 0
    expect(pic).toContain("context 0 (hart 0 M-mode): threshold 0, enabled 10, MEIP 1");
    expect(pic).toContain("context 1 (hart 0 S-mode): threshold 0, enabled none, SEIP 0");
  });

  it("info qtree lists the devices with their MMIO ranges, PLIC sources and disks", async () => {
    const dir = mkdtempSync(join(tmpdir(), "rvm-qtree-"));
    const disk = join(dir, "d.img");
    writeFileSync(disk, Buffer.alloc(1 << 20));
    const m = machineFor(join(ROOT, "guests/isa/rvc.elf"), [{ file: disk, readonly: false, attached: true }]);
    const q = await monitorFor(m).execute("info qtree");
    expect(q.startsWith("bus: main-system-bus\n  type System\n")).toBe(true);
    expect(q).toContain('  dev: serial-mm, id ""\n    gpio-out "sysbus-irq" 1\n    irq 10 (riscv.sifive.plic source)\n    mmio 0000000010000000/0000000000000100\n');
    expect(q).toContain('  dev: riscv.sifive.plic, id ""\n    mmio 000000000c000000/0000000000600000\n');
    expect(q).toContain("mmio 0000000010008000/0000000000001000\n    bus: virtio-mmio-bus.7\n      type virtio-mmio-bus\n" +
      `      dev: virtio-blk-device, id ""\n        drive = "${disk}"`);
    expect(q.match(/dev: virtio-mmio,/g)?.length).toBe(8);
    expect(q).toContain('dev: riscv.aclint.mtimer, id ""\n    mmio 0000000002004000/000000000000c000');
  });
});
