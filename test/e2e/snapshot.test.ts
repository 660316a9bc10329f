// Snapshots as a user drives them: savevm in the monitor of a running Linux guest, then
// `rvm run <same options> -loadvm NAME` and `rvm restore NAME`, lazy and eager, with --stats-json;
// `rvm snapshot ls|info`.

import { describe, expect, it } from "vitest";
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gunzipSync } from "node:zlib";
import { ROOT } from "../helpers.js";
import { MonitorClient, saveLinuxGuest, Session } from "./session.js";

const G = join(ROOT, "guests/linux");
const base = existsSync("/dev/shm") ? "/dev/shm" : tmpdir();

describe("savevm / loadvm through the CLI", () => {
  it("saves a running guest and brings it back with -loadvm and rvm restore", { timeout: 300_000 }, async () => {
    const dir = mkdtempSync(join(base, "rvm-e2e-snap-"));
    const disk = join(dir, "disk.img");
    writeFileSync(disk, gunzipSync(readFileSync(join(G, "disk.img.gz"))));
    const sock = join(dir, "mon.sock");
    const vm = ["-m", "256M", "-kernel", join(G, "Image.gz"), "-initrd", join(G, "initramfs.cpio.gz"),
      "-append", "console=ttyS0", "-drive", `file=${disk},format=raw,if=virtio`];
    const s = new Session(["run", ...vm, "-monitor", `unix:${sock},server,nowait`]);
    try {
      await s.waitFor("~ # ", 120_000);
      // (Commands stay short: the tty wraps long echoed lines.)
      await s.command("mount /dev/vda /mnt");
      await s.command("cat /mnt/data/* > /dev/null");
      await s.command("export MARK=before-save");
      const m = await MonitorClient.open(sock);
      expect(await m.cmd("savevm s1")).toMatch(/saved s1: .*disk-backed [1-9]\d*.*stored [1-9]\d*/);
      expect(await m.cmd("info snapshots")).toMatch(/s1\s/);
      await s.command("echo changed > /mnt/hello.txt && sync");
      m.cmd("quit").catch(() => undefined);
      expect(await s.exitCode(60_000)).toBe(0);
      m.close();
    } finally {
      s.kill();
    }
    // Snapshots are next to the disk.
    const snapDir = `${disk}.snapshots`;
    expect(existsSync(join(snapDir, "s1.rvmsnap"))).toBe(true);
    const ls = spawnSync(process.execPath, [join(ROOT, "bin/rvm.js"), "snapshot", "ls", disk], { encoding: "utf8" });
    expect(ls.stdout).toMatch(/s1/);
    const info = spawnSync(process.execPath, [join(ROOT, "bin/rvm.js"), "snapshot", "info", "s1", disk], { encoding: "utf8" });
    expect(info.stdout).toMatch(/disk-backed\s+[1-9]/);
    expect(info.stdout).toMatch(/of a zero-skipping save/);

    // The same VM options plus -loadvm: the shell is back where it was (its variable, its
    // disk), lazily; and again through rvm restore, eager and lazy, with statistics.
    const runs: string[][] = [
      ["run", ...vm, "-loadvm", "s1"],
      ["restore", "s1", "--dir", snapDir, "--restore", "eager"],
      ["restore", join(snapDir, "s1.rvmsnap"), "--order", "page"],
    ];
    for (const args of runs) {
      const stats = join(dir, `stats-${runs.indexOf(args)}.json`);
      const r = new Session([...args, "--stats-json", stats, "--stats"]);
      try {
        expect(await r.command("echo $MARK")).toBe("before-save");
        expect(await r.command("cat /mnt/hello.txt")).toBe("hello from the rvm disk");
        r.type("poweroff");
        expect(await r.exitCode(60_000)).toBe(0);
      } finally {
        r.kill();
      }
      expect(r.stderr).toContain("time to first instruction");
      // stderr is a pipe here, not a terminal: no progress bar in it.
      expect(r.stderr).not.toMatch(/loadvm \[|savevm \[/);
      // The guest sat idle at its shell: there is no workload view, and --stats says nothing of one.
      expect(r.stderr).not.toContain("workload");
      const j = JSON.parse(readFileSync(stats, "utf8"));
      expect(j.pages).toBe(65536);
      expect(j.workload ?? null).toBeNull();
      expect(j.ttfiMs).toBeGreaterThan(0);
      expect(j.totalMs).toBeGreaterThan(0);
      expect(Object.keys(j.ttr)).toContain("w=100ms u=0.9");
      if (args.includes("eager")) expect(j.demandFaults).toBe(0);
      else expect(j.demandFaults).toBeGreaterThan(0);
    }
  });
});

describe("progress bars", () => {
  it("the eager restore and savevm draw one on a terminal (a pty), none on a pipe", { timeout: 300_000 }, async () => {
    const dir = mkdtempSync(join(base, "rvm-e2e-bar-"));
    const snaps = join(dir, "snaps");
    // 24 MiB of pseudo-random pages the guest keeps (memfill, as bench restore uses it): a save
    // with more than 16 MiB of stored pages, which is when savevm draws its bar.
    await saveLinuxGuest(dir, snaps, "s1", async (s) => {
      s.type("mkfifo /tmp/mf; memfill 24 < /tmp/mf &");
      s.type("exec 3> /tmp/mf");
      await s.waitFor("memfill: ready 24 MiB", 120_000);
    });
    const sock = join(dir, "bar.sock");
    // util-linux `script` gives rvm a pseudo-terminal as stdin, stdout and stderr.
    const cmd = [process.execPath, join(ROOT, "bin/rvm.js"), "restore", "s1", "--dir", snaps, "--restore", "eager", "--monitor", `unix:${sock},server,nowait`]
      .map((a) => `'${a}'`).join(" ");
    const child = spawn("script", ["-qfec", cmd, "/dev/null"], { stdio: "pipe" });
    let out = "";
    child.stdout.on("data", (b: Buffer) => (out += b.toString("latin1")));
    const exited = new Promise<number | null>((resolve) => child.on("close", resolve));
    try {
      const m = await MonitorClient.open(sock, 180_000);
      // Without s1 (the parent) s2 is a full save, large enough for a bar. Over the socket; the
      // bar goes to rvm's stderr, the terminal.
      await m.cmd("delvm s1");
      expect(await m.cmd("savevm s2")).toMatch(/saved s2: .* inherited 0 pages/);
      m.cmd("quit").catch(() => undefined);
      expect(await exited).toBe(0);
      m.close();
    } finally {
      child.kill("SIGKILL");
    }
    // The restore of 256 MiB: the bar from 0% to 100%, then cleared (the save's too).
    expect(out).toContain("\rloadvm [....................]   0% of 256 MiB");
    expect(out).toContain("\rloadvm [####################] 100% of 256 MiB\r\x1b[K");
    expect(out).toMatch(/\rsavevm \[#+\.*\] +\d+% of \d/);
  });
});

describe("the workload-based view of a restore", () => {
  it("is computed for a guest that computes across the restore", { timeout: 300_000 }, async () => {
    const dir = mkdtempSync(join(base, "rvm-e2e-work-"));
    // The loop keeps the hart busy from the savevm on.
    await saveLinuxGuest(dir, join(dir, "snaps"), "busy", (s) => s.command("(while :; do :; done) &").then(() => undefined));
    const stats = join(dir, "stats.json");
    const rsock = join(dir, "restore.sock");
    const r = new Session(["restore", "busy", "--dir", join(dir, "snaps"), "--stats-json", stats, "--stats", "-monitor", `unix:${rsock},server,nowait`]);
    try {
      // However long the restore takes on a busy machine: ask until every page is in and the
      // guest's rate with all of RAM resident has been measured, then quit.
      const m = await MonitorClient.open(rsock);
      for (let i = 0; !/workload measured/.test(await m.cmd("info restore")); i++) {
        expect(i).toBeLessThan(1000);
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      m.cmd("quit").catch(() => undefined);
      expect(await r.exitCode(60_000)).toBe(0);
      m.close();
    } finally {
      r.kill();
    }
    const j = JSON.parse(readFileSync(stats, "utf8"));
    expect(j.workload).not.toBeNull();
    expect(r.stderr).toMatch(/workload view \(vs [\d.]+ MIPS once resident\)/);
    expect(j.workload.fullRateMips).toBeGreaterThan(1);
    for (const k of ["w=100ms u=0.5", "w=1000ms u=0.9"]) {
      expect(j.workload.ttr[k]).toBeGreaterThanOrEqual(0);
      expect(j.workload.ttr[k]).toBeLessThanOrEqual(j.totalMs);
    }
  });
});
