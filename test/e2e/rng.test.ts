// -device virtio-rng-device as on QEMU's virt: the Linux guest finds a virtio device of type 4
// (entropy) in the slot QEMU would put it in, next to its disk, and reads random bytes from it
// through /dev/hwrng.

import { describe, expect, it } from "vitest";
import { join } from "node:path";
import { ROOT } from "../helpers.js";
import { Session } from "./session.js";

const G = join(ROOT, "guests/linux");

describe("virtio-rng", () => {
  it("the guest sees the entropy device", { timeout: 300_000 }, async () => {
    const s = new Session(["run", "-m", "256M", "-kernel", join(G, "Image.gz"), "-initrd", join(G, "initramfs.cpio.gz"),
      "-append", "console=ttyS0", "-device", "virtio-rng-device"]);
    try {
      await s.waitFor("~ # ", 240_000);
      expect(await s.command("cat /sys/bus/virtio/devices/*/device")).toBe("0x0004");
      expect(await s.command("ls /sys/firmware/devicetree/base/soc | grep -c virtio_mmio")).toBe("8");
      // The kernel's hw_random core took it (CONFIG_HW_RANDOM_VIRTIO): /dev/hwrng reads the host's bytes.
      expect(await s.command("cat /sys/class/misc/hw_random/rng_current")).toBe("virtio_rng.0");
      const read = () => s.command("head -c 64 /dev/hwrng | od -An -v -tx1 | tr -d ' \\n'");
      const a = await read();
      const b = await read();
      expect(a).toMatch(/^[0-9a-f]{128}$/);
      expect(b).toMatch(/^[0-9a-f]{128}$/);
      expect(a).not.toBe(b);
      expect(new Set(a.match(/../g)).size).toBeGreaterThan(20); // 64 random bytes: many distinct values
      s.type("poweroff");
      expect(await s.exitCode(60_000)).toBe(0);
    } finally {
      s.kill();
    }
  });
});
