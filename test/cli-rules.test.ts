// The small input rules of issue 9: files that are no images (empty, FIFO, device) are refused,
// -S and -monitor stdio with stdin not a terminal behave and explain themselves, -m takes QEMU's
// fractions, --version, `rvm restore NAME DISK.img`, a missing snapshot hints at --dir, HMP
// quoting of snapshot names, option errors start with `rvm:`, and --help agrees with README.

import { describe, expect, it } from "vitest";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { execFileSync } from "node:child_process";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ROOT } from "./helpers.js";
import { saveSnapshot } from "../src/snapshot/save.js";
import { SnapshotStore } from "../src/snapshot/store.js";
import { endMachines, populated, prngBytes } from "./snapshot/util.js";

const dir = mkdtempSync(join(existsSync("/dev/shm") ? "/dev/shm" : tmpdir(), "rvm-rules-"));
const loop = join(dir, "loop.bin"); // li a0, 42; j .
writeFileSync(loop, Buffer.from([0x13, 0x05, 0xa0, 0x02, 0x6f, 0x00, 0x00, 0x00]));

function rvm(args: string[], input?: string) {
  const r = spawnSync(process.execPath, [join(ROOT, "bin/rvm.js"), ...args], { encoding: "utf8", timeout: 90_000, input: input ?? "" });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function oneLine(r: { code: number | null; stderr: string }, what: RegExp): void {
  expect(r.code, r.stderr).toBe(1);
  const lines = r.stderr.trimEnd().split("\n");
  expect(lines, r.stderr).toHaveLength(1);
  expect(lines[0]).toMatch(/^rvm: /);
  expect(lines[0]).toMatch(what);
}

describe("input rules", { timeout: 120_000 }, () => {
  it("an empty file, a FIFO or a device is refused, not run (and nothing hangs)", () => {
    const empty = join(dir, "empty.bin");
    writeFileSync(empty, "");
    oneLine(rvm(["run", empty]), /empty\.bin: is empty/);
    const fifo = join(dir, "fifo");
    execFileSync("mkfifo", [fifo]);
    oneLine(rvm(["run", fifo]), /fifo: not a regular file/);
    oneLine(rvm(["run", "/dev/zero"]), /\/dev\/zero: not a regular file/);
    oneLine(rvm(["run", "-bios", "none", "-kernel", "/dev/zero"]), /\/dev\/zero: not a regular file/);
    oneLine(rvm(["run", loop, "-initrd", fifo]), /fifo: not a regular file/);
  });

  it("-S with stdin not a terminal and no monitor that could say cont: one line, exit 1 (not a silent exit 13)", () => {
    oneLine(rvm(["run", loop, "-S"]), /-S starts the machine stopped.*-monitor stdio/);
  });

  it("-monitor stdio with piped stdin takes the lines as monitor commands; stopped with no input left, it says so", () => {
    let r = rvm(["run", loop, "-monitor", "stdio", "-S"], "info status\ncont\ninfo status\nquit\n");
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/VM status: paused[\s\S]*VM status: running/);
    r = rvm(["run", loop, "-monitor", "stdio"], "stop\n");
    oneLine(r, /the machine is stopped and the monitor's input \(stdin\) has ended/);
  });

  it("-m takes QEMU's sizes: fractions with a suffix, rounded up to 8 KiB", () => {
    const mtree = (m: string) => rvm(["run", loop, "-m", m, "-monitor", "stdio"], "info mtree\nquit\n");
    let r = mtree("1.5G");
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain("0000000080000000-00000000dfffffff (prio 0, ram): riscv_virt_board.ram");
    r = mtree("1024.5K"); // 1049088 bytes -> 1056768 (129 x 8 KiB)
    expect(r.stdout).toContain("0000000080000000-0000000080101fff (prio 0, ram): riscv_virt_board.ram");
    oneLine(rvm(["run", loop, "-m", "1.5x"]), /not a memory size: "1\.5x"/);
  });

  it("--version and -version", () => {
    const version = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")).version;
    for (const flag of ["--version", "-version"]) {
      const r = rvm([flag]);
      expect(r.code).toBe(0);
      expect(r.stdout).toBe(`rvm ${version}\n`);
    }
  });

  it("option errors start with rvm: and are one line", () => {
    oneLine(rvm(["run", loop, "--frobnicate"]), /^rvm: -frobnicate: unknown option/);
    oneLine(rvm(["frobnicate"]), /^rvm: unknown command 'frobnicate'/);
    oneLine(rvm(["snapshot", "info"]), /^rvm: missing required argument 'snapshot'/);
  });

  it("run --help and README agree on the -m default", () => {
    const help = rvm(["run", "--help"]).stdout;
    expect(help).toMatch(/default\s+128M, 256M for a bootable\s+disk image/);
    expect(readFileSync(join(ROOT, "README.md"), "utf8")).toMatch(/default 128M, as QEMU; 256M for a bootable disk image/);
  });

  it("rvm restore NAME DISK.img finds the snapshot next to the disk; a missing one hints at --dir", () => {
    const disk = join(dir, "disk.raw");
    writeFileSync(disk, prngBytes(64 << 10, 3));
    const store = new SnapshotStore(`${disk}.snapshots`);
    saveSnapshot(populated(16 << 20, disk), store, "s");
    store.close();
    endMachines();
    let r = rvm(["restore", "s", disk, "--timeout", "0.5"]);
    expect(r.code, r.stderr).toBe(124);
    r = rvm(["snapshot", "info", "s", disk]);
    expect(r.code).toBe(0);
    oneLine(rvm(["restore", "nosuch", disk]), /no snapshot named "nosuch" in .*disk\.raw\.snapshots \(snapshots elsewhere: --dir DIR/);
    oneLine(rvm(["restore", "nosuch", "--dir", dir]), /no snapshot named "nosuch" in .* \(snapshots elsewhere: --dir DIR/);
  });

  it('savevm "a b" takes the quoted name, as HMP does', () => {
    const snaps = join(dir, "quoted");
    const r = rvm(["run", loop, "-monitor", "stdio", "--snapshot-dir", snaps], 'savevm "before exam"\ninfo snapshots\nsavevm "unterminated\nquit\n');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/saved before exam: /);
    expect(r.stdout).toMatch(/\n1\s+before exam\s/);
    expect(r.stdout).toContain("unterminated string literal");
    expect(existsSync(join(snaps, "before exam.rvmsnap"))).toBe(true);
  });
});
