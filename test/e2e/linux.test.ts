// End to end: the shipped Linux guest boots through the CLI with piped stdio (OpenSBI ->
// Linux -> busybox), runs commands, reads and writes the virtio disk, and powers off with
// exit code 0; what it wrote is on the disk image afterwards.

import { describe, expect, it } from "vitest";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gunzipSync } from "node:zlib";
import { ROOT } from "../helpers.js";
import { Session } from "./session.js";

const G = join(ROOT, "guests/linux");
const BOOT_MS = 120_000;

describe("Linux guest", () => {
  it("boots to a shell, uses /dev/vda, powers off with exit code 0", { timeout: 240_000 }, async () => {
    const dir = mkdtempSync(join(tmpdir(), "rvm-linux-"));
    const disk = join(dir, "disk.img");
    writeFileSync(disk, gunzipSync(readFileSync(join(G, "disk.img.gz"))));
    const token = `rvm-wrote-this-${process.pid}-${Date.now()}`;
    const s = new Session([
      "run", "-M", "virt", "-m", "256M", "-smp", "1", "-nographic",
      "-kernel", join(G, "Image.gz"), "-initrd", join(G, "initramfs.cpio.gz"), "-append", "console=ttyS0",
      "-drive", `file=${disk},format=raw,if=none,id=hd0`, "-device", "virtio-blk-device,drive=hd0",
    ]);
    try {
      await s.waitFor("OpenSBI v1.1", BOOT_MS);
      await s.waitFor("~ # ", BOOT_MS);
      expect(await s.command("echo $((6 * 7))")).toBe("42");
      expect(await s.command("cat /proc/cmdline")).toBe("console=ttyS0");
      expect(await s.command("grep -c processor /proc/cpuinfo")).toBe("1");
      // The wall-clock date, from the goldfish RTC at boot (rtc-goldfish, RTC_HCTOSYS).
      expect(await s.command("dmesg | grep -c 'goldfish_rtc 101000.rtc: registered as rtc0'")).toBe("1");
      expect(Math.abs(Number(await s.command("date -u +%s")) - Date.now() / 1000)).toBeLessThan(120);
      expect(Math.abs(Number(await s.command("cat /sys/class/rtc/rtc0/since_epoch")) - Date.now() / 1000)).toBeLessThan(120);
      // hwclock reads the RTC itself (RTC_RD_TIME on /dev/rtc0), not the system clock.
      const hw = Date.parse(`${(await s.command("hwclock -r -u")).replace(/\s+0\.0+ seconds$/, "")} UTC`);
      expect(Math.abs(hw - Date.now()) / 1000).toBeLessThan(120);
      // The negotiated feature bits: no VIRTIO_F_VERSION_1 (bit 32) on the legacy transport.
      expect((await s.command("cat /sys/bus/virtio/devices/virtio0/features"))[32]).toBe("0");
      await s.command("mount /dev/vda /mnt");
      expect(await s.command("cat /mnt/hello.txt")).toBe("hello from the rvm disk");
      // The data files carry their own checksums: reading them exercises multi-page DMA.
      expect(await s.command("(cd /mnt/data && sha256sum -c SHA256SUMS | grep -c OK)")).toMatch(/^[1-9]\d*$/);
      await s.command(`echo ${token} > /mnt/written.txt && sync`);
      await s.command("umount /mnt");
      s.type("poweroff");
      expect(await s.exitCode(60_000)).toBe(0);
    } finally {
      s.kill();
    }
    expect(readFileSync(disk).includes(Buffer.from(token))).toBe(true);
  });

  // The test above runs on the legacy virtio-mmio transport (QEMU 7.2's default, and rvm's);
  // Linux drives the modern one (version 2) as well.
  it("uses its disk on the modern virtio-mmio transport (-global virtio-mmio.force-legacy=false); -rtc base=DATE", { timeout: 240_000 }, async () => {
    const dir = mkdtempSync(join(tmpdir(), "rvm-linux-modern-"));
    const disk = join(dir, "disk.img");
    writeFileSync(disk, gunzipSync(readFileSync(join(G, "disk.img.gz"))));
    const s = new Session([
      "run", "-M", "virt", "-m", "256M", "-nographic", "-global", "virtio-mmio.force-legacy=false", "-rtc", "base=2006-06-17T16:01:21",
      "-kernel", join(G, "Image.gz"), "-initrd", join(G, "initramfs.cpio.gz"), "-append", "console=ttyS0",
      "-drive", `file=${disk},format=raw,if=none,id=hd0`, "-device", "virtio-blk-device,drive=hd0",
    ]);
    try {
      await s.waitFor("~ # ", BOOT_MS);
      expect((await s.command("cat /sys/bus/virtio/devices/virtio0/features"))[32]).toBe("1"); // VIRTIO_F_VERSION_1
      expect(await s.command("date -u +%Y-%m-%dT%H")).toBe("2006-06-17T16");
      expect(await s.command("cat /sys/class/rtc/rtc0/date")).toBe("2006-06-17");
      await s.command("mount /dev/vda /mnt");
      expect(await s.command("cat /mnt/hello.txt")).toBe("hello from the rvm disk");
      expect(await s.command("(cd /mnt/data && sha256sum -c SHA256SUMS | grep -c OK)")).toMatch(/^[1-9]\d*$/);
      await s.command("umount /mnt");
      s.type("poweroff -f");
      expect(await s.exitCode(60_000)).toBe(0);
    } finally {
      s.kill();
    }
  });
});
