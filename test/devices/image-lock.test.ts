// Image locking (issue 9), as QEMU locks images (OFD byte-range locks on bytes 100+/200+): an
// image one rvm writes is refused to a second rvm — run, restore, snapshot rm — with one line
// naming the holder's pid; read-only users share; rvm and QEMU keep each other off an image;
// within one process images are shared and let go when the last user closes.

import { describe, expect, it } from "vitest";
import { spawn, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ROOT } from "../helpers.js";
import { RawDisk } from "../../src/devices/disk.js";
import { MonitorClient, Session } from "../e2e/session.js";

const dir = mkdtempSync(join(existsSync("/dev/shm") ? "/dev/shm" : tmpdir(), "rvm-lock-"));
// li a0, 42; j .
const loop = join(dir, "loop.bin");
writeFileSync(loop, Buffer.from([0x13, 0x05, 0xa0, 0x02, 0x6f, 0x00, 0x00, 0x00]));
let images = 0;
function image(): string {
  const f = join(dir, `disk${images++}.raw`);
  writeFileSync(f, Buffer.alloc(1 << 20, 0x5a));
  return f;
}
/** The bytes of `file` that any process holds an OFD lock on now (Linux /proc/locks), sorted. */
function lockBytes(file: string): number[] {
  const st = statSync(file);
  const major = (st.dev >> 8) & 0xfff;
  const minor = (st.dev & 0xff) | ((st.dev >> 12) & 0xfff00);
  const id = `${major.toString(16).padStart(2, "0")}:${minor.toString(16).padStart(2, "0")}:${st.ino}`;
  const bytes = readFileSync("/proc/locks", "utf8").split("\n")
    .map((l) => l.trim().split(/\s+/))
    .filter((f) => f[1] === "OFDLCK" && f[5] === id)
    .map((f) => Number(f[6]));
  return [...new Set(bytes)].sort((a, b) => a - b);
}
const sha = (f: string) => createHash("sha256").update(readFileSync(f)).digest("hex");

function rvm(...args: string[]) {
  const r = spawnSync(process.execPath, [join(ROOT, "bin/rvm.js"), ...args], { encoding: "utf8", timeout: 90_000 });
  return { code: r.status, stderr: r.stderr, stdout: r.stdout };
}

function refused(r: { code: number | null; stderr: string }, what: RegExp): void {
  expect(r.code, r.stderr).toBe(1);
  const lines = r.stderr.trimEnd().split("\n");
  expect(lines, r.stderr).toHaveLength(1);
  expect(lines[0]).toMatch(/^rvm: /);
  expect(lines[0]).toMatch(what);
}

/** An rvm running the loop on `img`, with a monitor; resolves once it runs (and holds its image). */
async function running(img: string, extra = ""): Promise<{ s: Session; m: MonitorClient; snaps: string }> {
  const sock = `${img}.sock`;
  const snaps = `${img}.snaps`;
  const s = new Session(["run", loop, "-drive", `file=${img},format=raw${extra}`, "-monitor", `unix:${sock},server,nowait`, "--snapshot-dir", snaps]);
  const m = await MonitorClient.open(sock);
  return { s, m, snaps };
}

async function stop(v: { s: Session; m: MonitorClient }): Promise<void> {
  v.m.cmd("quit").catch(() => undefined);
  expect(await v.s.exitCode(60_000)).toBe(0);
  v.m.close();
}

describe("image locking", { timeout: 180_000 }, () => {
  it("a second rvm on an image an rvm writes is refused with one line naming the holder's pid", async () => {
    const img = image();
    const a = await running(img);
    try {
      refused(rvm("run", loop, "-drive", `file=${img},format=raw`, "--timeout", "30"),
        new RegExp(`${img}: Failed to get "write" lock: it is in use by process ${a.s.pid} \\(node .*rvm\\.js run`));
      refused(rvm("run", loop, "-drive", `file=${img},format=raw,readonly=on`, "--timeout", "30"),
        new RegExp(`Failed to get shared "write" lock: it is in use by process ${a.s.pid}`));
    } finally {
      await stop(a);
      a.s.kill();
    }
    expect(rvm("run", loop, "-drive", `file=${img},format=raw`, "--timeout", "0.5").code).toBe(124); // free again
  });

  it("rvm restore and rvm snapshot rm of the disk of a running VM are refused, and change nothing", async () => {
    const img = image();
    const a = await running(img);
    const snaps = a.snaps;
    try {
      expect(await a.m.cmd("savevm s1")).toMatch(/saved s1/);
      const before = sha(img);
      refused(rvm("restore", "s1", "--dir", snaps, "--timeout", "30"), new RegExp(`Failed to get "write" lock: it is in use by process ${a.s.pid}`));
      refused(rvm("snapshot", "rm", "s1", "--dir", snaps), new RegExp(`Failed to get "write" lock: it is in use by process ${a.s.pid}`));
      expect(existsSync(join(snaps, "s1.rvmsnap"))).toBe(true);
      expect(sha(img)).toBe(before);
      expect(await a.m.cmd("info status")).toContain("running");
    } finally {
      await stop(a);
      a.s.kill();
    }
    // Once it ended, both work.
    expect(rvm("snapshot", "rm", "s1", "--dir", snaps).code).toBe(0);
  });

  it("read-only users share an image", async () => {
    const img = image();
    const a = await running(img, ",readonly=on");
    try {
      const r = rvm("run", loop, "-drive", `file=${img},format=raw,readonly=on`, "--timeout", "0.5");
      expect(r.code, r.stderr).toBe(124);
    } finally {
      await stop(a);
      a.s.kill();
    }
  });

  it("within one process an image is shared, and let go when its last user closes it", () => {
    const img = image();
    const d1 = RawDisk.open(img);
    const d2 = RawDisk.open(img); // a second machine in this process (tests, embedding)
    refused(rvm("run", loop, "-drive", `file=${img},format=raw`, "--timeout", "30"), /Failed to get "write" lock/);
    d1.close();
    refused(rvm("run", loop, "-drive", `file=${img},format=raw`, "--timeout", "30"), /Failed to get "write" lock/);
    d2.close();
    expect(rvm("run", loop, "-drive", `file=${img},format=raw`, "--timeout", "0.5").code).toBe(124);
  });

  const qemu = spawnSync("qemu-system-riscv64", ["--version"]).status === 0;
  it.skipIf(!qemu)("rvm and QEMU keep each other off an image (QEMU's own lock bytes)", async () => {
    const img = image();
    // QEMU holds it: rvm is refused, and names QEMU.
    const q = spawn("qemu-system-riscv64", ["-M", "virt", "-display", "none", "-monitor", "stdio", "-serial", "none", "-S", "-bios", "none",
      "-drive", `file=${img},format=raw,if=none,id=hd0`, "-device", "virtio-blk-device,drive=hd0"], { stdio: ["pipe", "pipe", "pipe"] });
    try {
      await new Promise<void>((resolve) => q.stdout.on("data", (b: Buffer) => b.toString().includes("(qemu)") && resolve()));
      refused(rvm("run", loop, "-drive", `file=${img},format=raw`, "--timeout", "30"),
        new RegExp(`Failed to get "write" lock: it is in use by process ${q.pid} \\(qemu-system-riscv64`));
    } finally {
      q.stdin.write("quit\n");
      await new Promise((resolve) => q.on("exit", resolve));
    }
    // rvm holds it: QEMU is refused with its own message.
    const a = await running(img);
    try {
      const r = spawnSync("qemu-system-riscv64", ["-M", "virt", "-display", "none", "-monitor", "none", "-serial", "none", "-S", "-bios", "none",
        "-drive", `file=${img},format=raw,if=none,id=hd0`, "-device", "virtio-blk-device,drive=hd0"], { encoding: "utf8", timeout: 60_000 });
      expect(r.status).toBe(1);
      expect(r.stderr).toMatch(/Failed to get "write" lock/);
    } finally {
      await stop(a);
      a.s.kill();
    }
  });

  it("-snapshot locks the image as QEMU's -snapshot does: a reader that denies write and resize", async () => {
    const img = image();
    const sock = `${img}.sock`;
    const s = new Session(["run", loop, "-drive", `file=${img},format=raw`, "-snapshot", "-monitor", `unix:${sock},server,nowait`]);
    const m = await MonitorClient.open(sock);
    try {
      expect(lockBytes(img)).toEqual([100, 201, 203]); // QEMU's -snapshot: consistent read; deny write, resize
      refused(rvm("run", loop, "-drive", `file=${img},format=raw`, "--timeout", "30"),
        new RegExp(`Failed to get "write" lock: it is in use by process ${s.pid}`));
      expect(rvm("run", loop, "-drive", `file=${img},format=raw`, "-snapshot", "--timeout", "0.5").code).toBe(124); // readers share
      expect(rvm("run", loop, "-drive", `file=${img},format=raw,readonly=on`, "--timeout", "0.5").code).toBe(124);
    } finally {
      await stop({ s, m });
      s.kill();
    }
    expect(lockBytes(img)).toEqual([]);
    if (!qemu) return;
    // What QEMU itself holds with -snapshot, measured the same way.
    const q = spawn("qemu-system-riscv64", ["-M", "virt", "-display", "none", "-monitor", "stdio", "-serial", "none", "-S", "-bios", "none",
      "-snapshot", "-drive", `file=${img},format=raw,if=none,id=hd0`, "-device", "virtio-blk-device,drive=hd0"], { stdio: ["pipe", "pipe", "pipe"] });
    try {
      // The first prompt can come before QEMU has put the overlay over the image; the answer to a
      // command comes from the main loop, once everything is set up.
      let out = "";
      q.stdout.on("data", (b: Buffer) => (out += b.toString()));
      q.stdin.write("info block\n");
      await new Promise<void>((resolve) => q.stdout.on("data", () => out.split("(qemu)").length > 2 && resolve()));
      expect(lockBytes(img)).toEqual([100, 201, 203]);
      expect(rvm("run", loop, "-drive", `file=${img},format=raw`, "-snapshot", "--timeout", "0.5").code).toBe(124);
    } finally {
      q.stdin.write("quit\n");
      await new Promise((resolve) => q.on("exit", resolve));
    }
  });

  if (!qemu) console.warn("SKIPPED: qemu-system-riscv64 is not installed: the rvm/QEMU locking test did not run");
});
