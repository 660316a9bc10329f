// guests/minikernel booted with xv6-riscv's own Makefile line (-bios none, the disk on
// virtio-mmio-bus.0, -global virtio-mmio.force-legacy) on both virtio-mmio transports: it must
// find its disk in slot 0, read and write it with interrupts through the PLIC, read the RTC and
// hear from every hart. The same kernel under QEMU, where installed, prints the same.

import { describe, expect, it } from "vitest";
import { spawnSync } from "node:child_process";
import { chmodSync, copyFileSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ROOT } from "./helpers.js";

const KERNEL = join(ROOT, "guests/minikernel/kernel.elf");
const HAVE_QEMU = spawnSync("qemu-system-riscv64", ["--version"]).status === 0;
if (!HAVE_QEMU) console.warn("\n*** test/minikernel.test.ts: qemu-system-riscv64 not installed: skipping the QEMU comparison ***\n");
/** Harts on the command line: xv6's CPUS. */
const SMP = 3;
const TEXT = "hello from block 0 of the test disk";

const dir = mkdtempSync(join(tmpdir(), "rvm-minikernel-"));
const pristine = join(dir, "pristine.img");
writeFileSync(pristine, Buffer.concat([Buffer.from(TEXT + "\0"), Buffer.alloc(64 * 1024 - TEXT.length - 1)]));
let n = 0;
function freshDisk(): string {
  const f = join(dir, `fs${n++}.img`);
  copyFileSync(pristine, f);
  return f;
}

interface LineOptions {
  /** -global virtio-mmio.force-legacy=...; left out when undefined. */
  legacy?: boolean;
  /** The -device's bus= property ("" for none). */
  bus?: string;
  /** More -drive properties. */
  drive?: string;
  extra?: string[];
}

/** xv6-riscv's QEMUOPTS, with the disk image and the transport given. */
function xv6Line(disk: string, o: LineOptions = {}): string[] {
  const bus = o.bus ?? "bus=virtio-mmio-bus.0";
  return [
    "-machine", "virt", "-bios", "none", "-kernel", KERNEL, "-m", "128M", "-smp", String(SMP), "-nographic",
    ...(o.legacy === undefined ? [] : ["-global", `virtio-mmio.force-legacy=${o.legacy}`]),
    "-drive", `file=${disk},if=none,format=raw,id=x0${o.drive ?? ""}`, "-device", `virtio-blk-device,drive=x0${bus ? "," + bus : ""}`,
    ...(o.extra ?? []),
  ];
}

function run(cmd: "rvm" | "qemu", args: string[]) {
  const r = cmd === "rvm"
    ? spawnSync(process.execPath, [join(ROOT, "bin/rvm.js"), "run", ...args], { encoding: "utf8", timeout: 60_000 })
    : spawnSync("qemu-system-riscv64", args, { encoding: "utf8", timeout: 60_000 });
  return { code: r.status, out: r.stdout.replace(/\r/g, ""), err: r.stderr };
}

/** The lines every run prints in this order (the harts' own lines may come in any order). */
function ordered(out: string): string[] {
  return out.split("\n").filter((l) => l !== "" && !/^hart \d+ up$/.test(l));
}

function expectBooted(out: string, version: 1 | 2) {
  expect(ordered(out)).toEqual([
    `minikernel: hart 0, ${SMP} harts in the device tree`,
    expect.stringMatching(/^rtc: \d+ s since 1970$/),
    `virtio-mmio slot 0: version ${version} (${version === 1 ? "legacy" : "modern"}), block device, vendor 0x554d4551`,
    `disk block 0: "${TEXT}"`,
    'disk block 2 after writing it: "minikernel wrote this block"',
    `harts up: ${SMP} of ${SMP}`,
    "minikernel: done",
  ]);
  const harts = out.split("\n").filter((l) => /^hart \d+ up$/.test(l)).sort();
  expect(harts).toEqual(Array.from({ length: SMP - 1 }, (_, i) => `hart ${i + 1} up`).sort());
}

describe("minikernel with xv6-riscv's command line", { timeout: 120_000 }, () => {
  for (const [legacy, version] of [[false, 2], [true, 1], [undefined, 1]] as const) {
    it(`finds its disk in slot 0 on the ${version === 2 ? "modern" : "legacy"} transport (force-legacy=${legacy ?? "default"})`, () => {
      const disk = freshDisk();
      const r = run("rvm", xv6Line(disk, { legacy }));
      expect(r.err).toBe("");
      expect(r.code).toBe(0);
      expectBooted(r.out, version);
      expect(readFileSync(disk).subarray(1024, 1024 + 27).toString()).toBe("minikernel wrote this block");
    });
  }

  it("does not find it when bus= names another slot, nor without bus= (the highest slot)", () => {
    for (const bus of ["bus=virtio-mmio-bus.3", ""]) {
      const r = run("rvm", xv6Line(freshDisk(), { legacy: false, bus }));
      expect(r.out).toContain("minikernel: FAILED: no virtio disk in slot 0 (0x10001000)");
      expect(r.code).toBe(3);
    }
  });

  it("-snapshot: the guest reads back what it wrote, the image stays as it was", () => {
    const disk = freshDisk();
    const r = run("rvm", xv6Line(disk, { legacy: false, extra: ["-snapshot"] }));
    expect(r.code).toBe(0);
    expect(r.out).toContain('disk block 2 after writing it: "minikernel wrote this block"');
    expect(readFileSync(disk)).toEqual(readFileSync(pristine));
    // The same per drive (snapshot=on), on a file the user may not even write.
    chmodSync(disk, 0o444);
    const ro = run("rvm", xv6Line(disk, { legacy: true, drive: ",snapshot=on" }));
    expect(ro.code).toBe(0);
    expect(ro.out).toContain('disk block 2 after writing it: "minikernel wrote this block"');
    expect(readFileSync(disk)).toEqual(readFileSync(pristine));
  });

  it("-rtc base=DATE sets the date the RTC counts from", () => {
    const r = run("rvm", xv6Line(freshDisk(), { extra: ["-rtc", "base=2006-06-17T16:01:21"] }));
    const s = Number(/rtc: (\d+) s/.exec(r.out)?.[1]);
    expect(s).toBeGreaterThanOrEqual(1150560081);
    expect(s).toBeLessThan(1150560081 + 30);
  });

  it.runIf(HAVE_QEMU)("prints the same under QEMU, on both transports", () => {
    for (const legacy of [false, true]) {
      const o = { legacy, extra: ["-rtc", "base=2006-06-17T16:01:21"] };
      const q = run("qemu", xv6Line(freshDisk(), o));
      const r = run("rvm", xv6Line(freshDisk(), o));
      expect(q.code, `QEMU: ${q.err}\n${q.out}`).toBe(0);
      expect(r.code, `rvm: ${r.err}\n${r.out}`).toBe(0);
      // The RTC's second depends on when each read it: checked apart.
      const rtc = (out: string) => Number(/^rtc: (\d+) s/m.exec(out)?.[1]) - 1150560081;
      for (const out of [q.out, r.out]) {
        expect(rtc(out), out).toBeGreaterThanOrEqual(0);
        expect(rtc(out), out).toBeLessThan(30);
      }
      const same = (out: string) => ordered(out).filter((l) => !l.startsWith("rtc: "));
      expect(same(r.out), `rvm:\n${r.out}\nQEMU:\n${q.out}`).toEqual(same(q.out));
    }
  });
});
