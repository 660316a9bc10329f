// The other ways in: `rvm run guests/linux.img` (OpenSBI -> U-Boot -> extlinux.conf -> Linux,
// with nothing else named), a guest description file, and the device tree dump.

import { describe, expect, it } from "vitest";
import { spawnSync } from "node:child_process";
import { copyFileSync, existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gunzipSync } from "node:zlib";
import { ROOT } from "../helpers.js";
import { Session } from "./session.js";

const dir = mkdtempSync(join(tmpdir(), "rvm-boot-"));

function hasDtc(): boolean {
  return spawnSync("sh", ["-c", "command -v dtc"]).status === 0;
}

describe("booting", () => {
  it("rvm run linux.img boots the single disk image through U-Boot's extlinux.conf", { timeout: 300_000 }, async () => {
    const img = join(dir, "linux.img");
    const shipped = join(ROOT, "guests/linux.img");
    if (existsSync(shipped)) copyFileSync(shipped, img);
    else writeFileSync(img, gunzipSync(readFileSync(shipped + ".gz")));
    const s = new Session(["run", img]); // exactly the README's command: no other option
    try {
      await s.waitFor("U-Boot", 60_000);
      await s.waitFor("~ # ", 120_000);
      expect(s.output).toMatch(/Retrieving file: \/boot\/Image|extlinux/i);
      expect(await s.command("cat /proc/cmdline")).toMatch(/console=ttyS0/);
      // The disk's /boot/Image is the shipped kernel (guests/linux/Image.gz), SMP build and all.
      const version = /Linux version [^\n\0]*/.exec(gunzipSync(readFileSync(join(ROOT, "guests/linux/Image.gz"))).toString("latin1"))![0];
      expect(version).toMatch(/ SMP /);
      expect(await s.command("cat /proc/version")).toBe(version.trimEnd());
      s.type("poweroff");
      expect(await s.exitCode(60_000)).toBe(0);
    } finally {
      s.kill();
    }
  });

  it("runs a guest description file", { timeout: 300_000 }, async () => {
    const s = new Session(["run", join(ROOT, "guests/linux/guest.json")]);
    try {
      await s.waitFor("~ # ", 90_000);
      expect(s.stderr).toMatch(/compressed: the guest's writes to it are kept in memory only/);
      expect(await s.command("cat /sys/block/vda/size")).toBe("131072");
      s.type("poweroff");
      expect(await s.exitCode(60_000)).toBe(0);
    } finally {
      s.kill();
    }
  });

  it("dumpdtb writes the device tree the guest sees", () => {
    const out = join(dir, "virt.dtb");
    const r = spawnSync(process.execPath, [join(ROOT, "bin/rvm.js"), "dumpdtb", out, "-m", "256M", "--append", "console=ttyS0"], { encoding: "utf8" });
    expect(r.status).toBe(0);
    const blob = readFileSync(out);
    expect(blob.readUInt32BE(0)).toBe(0xd00dfeed);
    expect(blob.readUInt32BE(4)).toBe(blob.length);
    if (!hasDtc()) {
      console.warn("SKIPPED the dtc check of dumpdtb: device-tree-compiler is not installed");
      return;
    }
    const dts = spawnSync("dtc", ["-I", "dtb", "-O", "dts", out], { encoding: "utf8" }).stdout;
    expect(dts).toContain('bootargs = "console=ttyS0"');
    expect(dts).toContain('riscv,isa = "rv64imafdc_zicntr_zicsr_zifencei_sstc"');
    expect(dts).toContain("memory@80000000");
    expect(dts).toMatch(/reg = <0x00 0x80000000 0x00 0x10000000>/);
  });
});
