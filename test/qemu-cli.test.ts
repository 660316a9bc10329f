// QEMU's command line as courses and tutorials write it: each option rvm accepts does what
// QEMU's does, and each one it does not have is refused with one line naming it.

import { describe, expect, it } from "vitest";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ROOT } from "./helpers.js";
import { DriveList, applyGlobal, parseIcount, parseMachine, qemuArgsToLong, type GlobalProps } from "../src/options.js";
import { MonitorClient, Session } from "./e2e/session.js";

const RVM = join(ROOT, "bin/rvm.js");
const GOOD = join(ROOT, "guests/isa/rv64i.elf");
const dir = mkdtempSync(join(tmpdir(), "rvm-qemu-cli-"));
const IMG = join(dir, "a.img");
const IMG2 = join(dir, "b.img");
writeFileSync(IMG, Buffer.alloc(1 << 20));
writeFileSync(IMG2, Buffer.alloc(1 << 20));

function rvm(...args: string[]) {
  const r = spawnSync(process.execPath, [RVM, "run", ...args], { encoding: "utf8", timeout: 60_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function expectRefused(args: string[], pattern: RegExp) {
  const r = rvm(...args);
  expect(r.code, r.stderr).toBe(1);
  const lines = r.stderr.trim().split("\n");
  expect(lines, r.stderr).toHaveLength(1);
  expect(lines[0]).toMatch(/^rvm: /);
  expect(lines[0]).toMatch(pattern);
}

function expectRuns(args: string[]) {
  const r = rvm(GOOD, ...args);
  expect(r.stderr).toBe("");
  expect(r.code).toBe(0);
}

/** A raw program that resets the machine through the SiFive test device (0x7777), then spins. */
function resetter(): string {
  const file = join(dir, "reset.bin");
  const words = [0x001002b7, 0x00007337, 0x7773031b, 0x0062a023, 0x0000006f]; // lui t0,0x100; li t1,0x7777; sw t1,0(t0); j .
  writeFileSync(file, Buffer.from(new Uint32Array(words).buffer));
  return file;
}

// Each case spawns rvm (about half a second on a loaded 2-core machine): generous timeouts.
const SLOW = { timeout: 120_000 };

/**
 * A raw program that arms the CLINT timer 60 s of guest time ahead (mtimecmp = mtime + 600M),
 * waits for it in WFI, then powers off (0x5555 to the SiFive test device).
 */
function sleeper(): string {
  const file = join(dir, "sleep60.bin");
  const words = [
    0x0200c2b7, 0xff82829b, 0x0002b303, 0x23c343b7, 0x6003839b, 0x00730333, 0x020042b7, 0x0062b023, 0x08000293,
    0x3042a073, 0x10500073, 0x34402e73, 0x080e7e13, 0xfe0e0ae3, 0x001002b7, 0x00005337, 0x5553031b, 0x0062a023, 0x0000006f,
  ];
  writeFileSync(file, Buffer.from(new Uint32Array(words).buffer));
  return file;
}

describe("QEMU options rvm accepts", SLOW, () => {
  it("-machine/-M virt with the properties that describe rvm's board", () => {
    expectRuns(["-machine", "virt"]);
    expectRuns(["-M", "virt,accel=tcg,aclint=off,aia=none"]);
    expectRuns(["-M", "virt", "-machine", "accel=tcg"]);
  });

  it("-cpu rv64, -smp 1, -m, -nographic, -serial mon:stdio, -display none, -name", () => {
    expectRuns(["-cpu", "rv64", "-smp", "1", "-m", "128M", "-nographic", "-serial", "mon:stdio", "-display", "none", "-name", "guest=lab1,debug-threads=on"]);
    expectRuns(["-serial", "stdio", "-name", "lab1"]);
  });

  it("-global virtio-mmio.force-legacy in both spellings", () => {
    expectRuns(["-global", "virtio-mmio.force-legacy=false"]);
    expectRuns(["-global", "driver=virtio-mmio,property=force-legacy,value=on"]);
  });

  it("-icount N and its properties", () => {
    expectRuns(["-icount", "3"]);
    expectRuns(["-icount", "shift=4,sleep=off,align=off"]);
    expect(parseIcount("shift=2")).toEqual({ shift: 2, sleep: true });
    // sleep=off: an idle hart's guest time jumps to its timer deadline, 60 s of it at once;
    // sleep=on (QEMU's default): it passes at host speed, so 2 s are not enough.
    expect(rvm(sleeper(), "-icount", "shift=4,sleep=off", "--timeout", "50").code).toBe(0);
    expect(rvm(sleeper(), "-icount", "4", "--timeout", "2").code).toBe(124);
    expect(parseIcount("7,sleep=off")).toEqual({ shift: 7, sleep: false });
  });

  it("-no-reboot: a guest reset ends rvm with exit code 0 instead of rebooting", () => {
    const prog = resetter();
    const r = rvm(prog, "-no-reboot");
    expect(r.code, r.stderr).toBe(0);
    // Without it the machine resets, runs the program again, resets again ... until --timeout.
    expect(rvm(prog, "--timeout", "1").code).toBe(124);
  });

  it("-machine dumpdtb=FILE writes the tree the guest would get and exits, as QEMU does", () => {
    const out = join(dir, "dump.dtb");
    const r = rvm("-M", "virt", "-m", "256M", "-bios", "none", "-kernel", GOOD, "-append", "console=ttyS0", "-M", `dumpdtb=${out}`);
    expect(r.code, r.stderr).toBe(0);
    const dtb = readFileSync(out);
    expect(dtb.readUInt32BE(0)).toBe(0xd00dfeed);
    expect(dtb.includes(Buffer.from("console=ttyS0\0"))).toBe(true);
  });

  it("-name appears in the monitor's info name", async () => {
    const sock = join(dir, "mon.sock");
    const s = new Session(["run", "-bios", "none", "-kernel", resetter(), "-name", "guest=lab1", "-S", "-monitor", `unix:${sock},server,nowait`]);
    try {
      const mon = await MonitorClient.open(sock);
      expect((await mon.cmd("info name")).trim()).toBe("lab1");
      await mon.cmd("quit");
      mon.close();
      expect(await s.exitCode(30_000)).toBe(0);
    } finally {
      s.kill();
    }
  });
});

describe("-snapshot", SLOW, () => {
  it("keeps the VM's snapshots in a temporary directory, gone with rvm; refuses -loadvm and --snapshot-dir", async () => {
    const img = join(dir, "snap.img");
    writeFileSync(img, Buffer.alloc(1 << 20));
    const sock = join(dir, "snap-mon.sock");
    const s = new Session(["run", "-bios", "none", "-kernel", resetter(), "-S", "-snapshot", "-drive", `file=${img},format=raw,if=virtio`,
      "-monitor", `unix:${sock},server,nowait`]);
    try {
      const mon = await MonitorClient.open(sock);
      expect(await mon.cmd("savevm s1")).toMatch(/saved s1/);
      expect(await mon.cmd("info snapshots")).toMatch(/s1/);
      await mon.cmd("quit");
      mon.close();
      expect(await s.exitCode(30_000)).toBe(0);
    } finally {
      s.kill();
    }
    expect(existsSync(`${img}.snapshots`)).toBe(false);
    expectRefused([GOOD, "-drive", `file=${img},format=raw`, "-snapshot", "-loadvm", "s1"], /-loadvm .*-snapshot/);
    expectRefused([GOOD, "-drive", `file=${img},format=raw,snapshot=on`, "--snapshot-dir", dir], /--snapshot-dir: with -snapshot/);
  });
});

describe("-device bus= placement (QEMU's order: -device in turn, bus= or the highest free slot)", SLOW, () => {
  const list = (...args: [string, string][]) => {
    const l = new DriveList();
    for (const [kind, spec] of args) {
      if (kind === "drive") l.addDrive(spec);
      else l.addDevice(spec);
    }
    return l.finish();
  };

  it("puts a disk on virtio-mmio-bus.N in slot N", () => {
    const [d] = list(["drive", "file=fs.img,if=none,format=raw,id=x0"], ["device", "virtio-blk-device,drive=x0,bus=virtio-mmio-bus.0"]);
    expect(d.slot).toBe(0);
  });

  it("without bus=, -device order decides: the first takes the highest free slot", () => {
    const d = list(["drive", "file=a,if=none,id=A"], ["drive", "file=b,if=none,id=B"], ["device", "virtio-blk-device,drive=B"],
      ["device", "virtio-blk-device,drive=A,bus=virtio-mmio-bus.3"], ["drive", "file=c,if=virtio"]);
    expect(d.map((x) => [x.file, x.slot])).toEqual([["b", 7], ["a", 3], ["c", 6]]);
  });

  it("refuses a taken, a missing or a malformed bus, an unknown property and a second device for a drive", () => {
    const two = (a: string, b: string) => () => list(["drive", "file=a,if=none,id=A"], ["drive", "file=b,if=none,id=B"], ["device", a], ["device", b]);
    expect(two("virtio-blk-device,drive=A", "virtio-blk-device,drive=B,bus=virtio-mmio-bus.7")).toThrow(/bus 'virtio-mmio-bus.7' is full \(drive A is on it\)/);
    expect(two("virtio-blk-device,drive=A,bus=virtio-mmio-bus.0", "virtio-blk-device,drive=B,bus=virtio-mmio-bus.0")).toThrow(/is full/);
    expect(two("virtio-blk-device,drive=A", "virtio-blk-device,drive=A")).toThrow(/already attached/);
    expectRefused(["-drive", `file=${IMG},if=none,format=raw,id=x0`, "-device", "virtio-blk-device,drive=x0,bus=virtio-mmio-bus.8", "-kernel", GOOD],
      /-device virtio-blk-device,drive=x0,bus=virtio-mmio-bus.8: bus 'virtio-mmio-bus.8' not found/);
    expectRefused(["-drive", `file=${IMG},if=none,format=raw,id=x0`, "-device", "virtio-blk-device,drive=x0,bus=pcie.0", "-kernel", GOOD],
      /bus 'pcie.0' not found/);
    expectRefused(["-drive", `file=${IMG},if=none,format=raw,id=x0`, "-device", "virtio-blk-device,drive=x0,num-queues=2", "-kernel", GOOD],
      /unknown property 'num-queues'/);
    expectRefused(["-drive", `file=${IMG},if=none,format=raw,id=A`, "-drive", `file=${IMG2},if=none,format=raw,id=B`,
      "-device", "virtio-blk-device,drive=A", "-device", "virtio-blk-device,drive=B,bus=virtio-mmio-bus.7", "-kernel", GOOD], /bus 'virtio-mmio-bus.7' is full/);
  });

  it("fills all eight slots and refuses a ninth disk", () => {
    const l = new DriveList();
    for (let i = 0; i < 9; i++) l.addDrive(`file=d${i},if=none,id=d${i}`);
    for (let i = 0; i < 8; i++) l.addDevice(`virtio-blk-device,drive=d${i}`);
    expect(() => l.addDevice("virtio-blk-device,drive=d8")).toThrow(/no free virtio-mmio slot/);
  });
});

describe("QEMU options and properties rvm does not have: one line naming them", SLOW, () => {
  it("unknown and unimplemented options", () => {
    expectRefused([GOOD, "-netdev", "user,id=n0"], /^rvm: -netdev: not supported: rvm has no network devices$/);
    expectRefused([GOOD, "-chardev", "stdio,id=c0"], /^rvm: -chardev: not supported/);
    expectRefused([GOOD, "-enable-kvm"], /^rvm: -enable-kvm: not supported/);
    expectRefused([GOOD, "-frobnicate"], /^rvm: -frobnicate: unknown option/);
  });

  it("-machine, -cpu, -smp", () => {
    expectRefused([GOOD, "-M", "sifive_u"], /-machine sifive_u: rvm has only the virt machine/);
    expectRefused([GOOD, "-M", "virt,aia=aplic"], /aia=aplic: not supported/);
    expectRefused([GOOD, "-M", "virt,aclint=on"], /aclint=on: not supported/);
    expectRefused([GOOD, "-M", "virt,acpi=off"], /unknown property 'acpi'/);
    expectRefused([GOOD, "-M", "accel=kvm"], /accel=kvm/);
    expectRefused([GOOD, "-cpu", "sifive-u54"], /-cpu sifive-u54: rvm has only the rv64 CPU model/);
    expectRefused([GOOD, "-cpu", "rv64,v=true,vlen=256"], /-cpu rv64,v=true,vlen=256: .*no configurable properties \(v\)/);
  });

  it("-global", () => {
    expectRefused([GOOD, "-global", "virtio-mmio.ioeventfd=off"], /virtio-mmio has no property 'ioeventfd'/);
    expectRefused([GOOD, "-global", "virtio-blk-device.scsi=off"], /no global properties of 'virtio-blk-device'/);
    expectRefused([GOOD, "-global", "virtio-mmio.force-legacy=perhaps"], /expected on or off/);
    expectRefused([GOOD, "-global", "force-legacy"], /expected DRIVER.PROPERTY=VALUE/);
  });

  it("-drive, -device, -serial, -display, -icount", () => {
    expectRefused(["-drive", `file=${IMG},format=qcow2`], /only format=raw/);
    expectRefused(["-drive", `file=${IMG},format=raw,if=ide`], /if=ide is not available/);
    expectRefused(["-drive", `file=${IMG},format=raw,media=cdrom`], /media=cdrom/);
    expectRefused(["-drive", `file=${IMG},format=raw,aio=native`], /unknown property 'aio'/);
    expectRefused([GOOD, "-device", "virtio-net-device,netdev=n0"], /-device virtio-net-device: not available/);
    expectRefused([GOOD, "-serial", "pty"], /-serial pty: not supported/);
    expectRefused([GOOD, "-display", "gtk"], /-display gtk: rvm has no graphics/);
    expectRefused([GOOD, "-icount", "shift=auto"], /shift=auto is not supported/);
    expectRefused([GOOD, "-icount", "4,align=on"], /align=on is not supported/);
  });
});

describe("option parsing", () => {
  it("rewrites one-dash long options but never an option's value", () => {
    expect(qemuArgsToLong(["-kernel", "k", "-append", "-quiet root=/dev/vda", "-nographic", "x.img", "-m", "1G"]))
      .toEqual(["--kernel", "k", "--append", "-quiet root=/dev/vda", "--nographic", "x.img", "-m", "1G"]);
  });

  it("collects -machine properties over several options", () => {
    expect(parseMachine(["virt", "dumpdtb=x.dtb"])).toEqual({ dumpdtb: "x.dtb" });
    expect(() => parseMachine(["accel=tcg"])).toThrow(/no machine type/);
  });

  it("-global sets virtio-mmio's transport", () => {
    const g: GlobalProps = {};
    applyGlobal("virtio-mmio.force-legacy=false", g);
    expect(g.virtioLegacy).toBe(false);
    applyGlobal("virtio-mmio.force-legacy=yes", g);
    expect(g.virtioLegacy).toBe(true);
  });
});
