// The JIT end to end: the shipped Linux guest through the CLI with --jit on runs programs —
// exec reuses physical pages that held other code, the page cache fills pages by DMA, the
// shell's hot loop is translated — and every command prints what it prints with --jit off, also
// on two harts (-smp 2).

import { describe, expect, it } from "vitest";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gunzipSync } from "node:zlib";
import { ROOT } from "../helpers.js";
import { MonitorClient, Session } from "../e2e/session.js";

const G = join(ROOT, "guests/linux");
const BOOT_MS = 180_000;

const COMMANDS = [
  // a hot loop in busybox's awk (its interpreter's pages get translated); commands stay under
  // 80 columns (the shell's line editor redraws longer ones)
  "awk 'BEGIN{for(i=0;i<200000;i++)s=(s*31+i)%99991;print s}'",
  "mount /dev/vda /mnt && echo mounted",
  "(cd /mnt/data && sha256sum -c SHA256SUMS | grep -c OK)",
  "md5sum /bin/busybox",
  "ls /bin | wc -l",
  "for p in cat sort uniq head tail wc; do echo hi $p | $p | md5sum; done",
  "dd if=/mnt/data/file00.bin bs=512 2>/dev/null | sort | md5sum",
  "seq 1 2000 | awk '{s+=$1*$1} END {print s}'",
];

async function session(jit: "on" | "off", disk: string, sock: string, harts = 1): Promise<{ outputs: string[]; info: string }> {
  const s = new Session([
    "run", "-smp", String(harts), "-m", "256M", "-kernel", join(G, "Image.gz"), "-initrd", join(G, "initramfs.cpio.gz"), "-append", "console=ttyS0",
    "-drive", `file=${disk},format=raw,if=none,id=hd0`, "-device", "virtio-blk-device,drive=hd0",
    "-monitor", `unix:${sock},server,nowait`, "--jit", jit,
  ]);
  try {
    await s.waitFor("~ # ", BOOT_MS);
    const outputs: string[] = [];
    // (kernel messages carry the time: not compared)
    for (const c of COMMANDS) outputs.push((await s.command(c, 120_000)).replace(/^\[ *\d+\.\d+\] .*\n/gm, ""));
    const m = await MonitorClient.open(sock);
    const info = await m.cmd("info jit");
    m.close();
    s.type("poweroff");
    expect(await s.exitCode(60_000)).toBe(0);
    return { outputs, info };
  } finally {
    s.kill();
  }
}

describe("Linux with the JIT", () => {
  it("runs programs with --jit on exactly as with --jit off", { timeout: 600_000 }, async () => {
    const dir = mkdtempSync(join(tmpdir(), "rvm-jit-linux-"));
    const image = gunzipSync(readFileSync(join(G, "disk.img.gz")));
    writeFileSync(join(dir, "off.img"), image);
    writeFileSync(join(dir, "on.img"), image);
    writeFileSync(join(dir, "smp.img"), image);
    const off = await session("off", join(dir, "off.img"), join(dir, "off.sock"));
    const on = await session("on", join(dir, "on.img"), join(dir, "on.sock"));
    // Two harts sharing the translated code (each runs it within its own quanta).
    const smp = await session("on", join(dir, "smp.img"), join(dir, "smp.sock"), 2);
    expect(on.outputs).toEqual(off.outputs);
    expect(smp.outputs).toEqual(off.outputs);
    expect(off.outputs[1]).toBe("mounted");
    expect(Number(off.outputs[2])).toBeGreaterThan(0);
    expect(off.info).toMatch(/jit: off/);
    expect(on.info).toMatch(/jit: on/);
    const translated = /instructions run translated: (\d+)/.exec(on.info);
    expect(Number(translated?.[1])).toBeGreaterThan(1_000_000);
    expect(Number(/instructions run translated: (\d+)/.exec(smp.info)?.[1])).toBeGreaterThan(1_000_000);
  });
});
