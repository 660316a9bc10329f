// Linux on four harts, as a user runs it: `rvm run -smp 4 ...`; /proc/cpuinfo lists four harts,
// a parallel job keeps all four busy (each CPU's time in /proc/stat grows), and savevm, loadvm
// and a lazy `rvm restore` come back with four harts running.

import { describe, expect, it } from "vitest";
import { existsSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ROOT } from "../helpers.js";
import { MonitorClient, Session } from "./session.js";

const G = join(ROOT, "guests/linux");
const base = existsSync("/dev/shm") ? "/dev/shm" : tmpdir();
const HARTS = 4;

/** Busy time (user + nice + system jiffies) of each CPU, from /proc/stat. */
async function cpuBusy(s: Session): Promise<number[]> {
  const text = await s.command("grep '^cpu[0-9]' /proc/stat");
  return text.split("\n").map((line) => {
    const f = line.trim().split(/\s+/).map(Number);
    return f[1] + f[2] + f[3];
  });
}

/** Runs one busy loop per hart for `seconds` of guest time; returns each CPU's busy jiffies. */
async function parallelJob(s: Session, seconds: number): Promise<number[]> {
  const before = await cpuBusy(s);
  // (Short lines: the guest's tty wraps long echoed ones.)
  await s.command(`b(){ t=$(date +%s);while [ $(($(date +%s)-t)) -lt ${seconds} ];do :;done;}`);
  await s.command("b & b & b & b & wait", 120_000);
  const after = await cpuBusy(s);
  return after.map((v, i) => v - before[i]);
}

async function checkHarts(s: Session, m?: MonitorClient): Promise<void> {
  expect(await s.command("grep -c ^processor /proc/cpuinfo")).toBe(String(HARTS));
  const busy = await parallelJob(s, 3);
  expect(busy).toHaveLength(HARTS);
  // HZ = 100. An idle CPU gains ~0 busy jiffies in three seconds; each busy one gets a tick only
  // when its hart has its turn after the tick is due (the four harts share one host thread), so
  // it is charged less than the 300 a real CPU would be (about 70 measured): ask for 25.
  for (const b of busy) expect(b, `per-CPU busy jiffies ${busy.join(" ")}`).toBeGreaterThan(25);
  if (m) {
    const cpus = await m.cmd("info cpus");
    expect(cpus.trim().split("\n")).toHaveLength(HARTS);
    expect(cpus).toMatch(/^\* CPU #0: pc=0x[0-9a-f]{16} mode=[USM]/);
    expect(cpus).toMatch(/\n {2}CPU #3: pc=0x[0-9a-f]{16}/);
  }
}

describe("Linux with -smp 4", () => {
  it("runs on four harts, and savevm, loadvm and a lazy restore bring back four running harts", { timeout: 600_000 }, async () => {
    const dir = mkdtempSync(join(base, "rvm-e2e-smp-"));
    const sock = join(dir, "mon.sock");
    const vm = ["-smp", String(HARTS), "-m", "256M", "-kernel", join(G, "Image.gz"), "-initrd", join(G, "initramfs.cpio.gz"),
      "-append", "console=ttyS0", "--snapshot-dir", join(dir, "snaps")];
    const s = new Session(["run", ...vm, "-monitor", `unix:${sock},server,nowait`]);
    try {
      await s.waitFor("~ # ", 240_000);
      const m = await MonitorClient.open(sock);
      await checkHarts(s, m);
      expect(await m.cmd("cpu 2")).toBe("");
      expect(await m.cmd("info registers")).toMatch(/mhartid\s+0000000000000002/);
      expect(await m.cmd("cpu 9")).toMatch(/invalid CPU index 9/);
      expect(await m.cmd("info cpus")).toMatch(/\n\* CPU #2: /);
      await m.cmd("cpu 0");
      await s.command("export MARK=saved-on-four");
      expect(await m.cmd("savevm four")).toMatch(/saved four/);
      await s.command("export MARK=changed");
      await m.cmd("loadvm four");
      expect(await s.command("echo $MARK")).toBe("saved-on-four");
      await checkHarts(s, m);
      m.cmd("quit").catch(() => undefined);
      expect(await s.exitCode(60_000)).toBe(0);
      m.close();
    } finally {
      s.kill();
    }
    // A lazy restore (rvm restore's default) in a new process.
    const r = new Session(["restore", "four", "--dir", join(dir, "snaps")]);
    try {
      expect(await r.command("echo $MARK")).toBe("saved-on-four");
      await checkHarts(r);
      r.type("poweroff");
      expect(await r.exitCode(60_000)).toBe(0);
    } finally {
      r.kill();
    }
  });
});
