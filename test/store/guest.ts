// The Linux guest of the object-store end-to-end tests (vm.test.ts, disk-read.test.ts): booted
// on "host A" with a snapshot store, saved there, and restored by another rvm process on "host
// B" (another working directory, with nothing but the store URL and the credentials).

import { expect } from "vitest";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gunzipSync } from "node:zlib";
import { ROOT } from "../helpers.js";
import { MonitorClient, Session } from "../e2e/session.js";

export const G = join(ROOT, "guests/linux");
export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export interface Guest {
  s: Session;
  m: MonitorClient;
  /** Its working directory, and its disk image (a fresh copy of the guest's) in it. */
  dir: string;
  disk: string;
}

/** Boots the guest in `dir` with the store `url` and a monitor; `extra`: more options of `rvm run`. */
export async function boot(dir: string, url: string, extra: string[] = []): Promise<Guest> {
  const disk = join(dir, "disk.img");
  writeFileSync(disk, gunzipSync(readFileSync(join(G, "disk.img.gz"))));
  const sock = join(dir, "mon.sock");
  const s = new Session(["run", "-m", "256M", "-kernel", join(G, "Image.gz"), "-initrd", join(G, "initramfs.cpio.gz"),
    "-append", "console=ttyS0", "-drive", `file=${disk},format=raw,if=virtio`, "--snapshot-store", url,
    "-monitor", `unix:${sock},server,nowait`, ...extra], { cwd: dir });
  await s.waitFor("~ # ", 120_000);
  const m = await MonitorClient.open(sock);
  return { s, m, dir, disk };
}

/** `quit` in the monitor: rvm exits with 0. */
export async function quit(s: Session, m: MonitorClient): Promise<void> {
  m.cmd("quit").catch(() => undefined);
  expect(await s.exitCode(60_000)).toBe(0);
  m.close();
}

/**
 * On "host A": boots the guest in a directory of its own, runs `work` with it (which saves what
 * the test needs), quits, runs `afterQuit` and deletes the directory. `extra(dir)`: more options.
 */
export async function onHostA(url: string, work: (g: Guest) => Promise<void>, opts: { extra?: (dir: string) => string[]; afterQuit?: (g: Guest) => void } = {}): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "rvm-hostA-"));
  try {
    const g = await boot(dir, url, opts.extra?.(dir));
    try {
      await work(g);
      await quit(g.s, g.m);
    } finally {
      g.s.kill();
    }
    opts.afterQuit?.(g);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * On "host B": `rvm restore NAME` from the store (with `args`) and a monitor, in a directory of
 * its own; runs `work` with it, quits, runs `afterQuit(dir)` and deletes the directory.
 */
export async function onHostB(url: string, name: string, args: string[], work: (r: Session, rm: MonitorClient) => Promise<void>, afterQuit?: (dir: string) => void): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "rvm-hostB-"));
  const sock = join(dir, "mon.sock");
  const r = new Session(["restore", name, "--snapshot-store", url, ...args, "-monitor", `unix:${sock},server,nowait`], { cwd: dir });
  try {
    const rm = await MonitorClient.open(sock, 60_000);
    await work(r, rm);
    await quit(r, rm);
    afterQuit?.(dir);
  } finally {
    r.kill();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Waits until `info restore` says every page is in; returns its last answer. */
export async function untilRestored(rm: MonitorClient): Promise<string> {
  let info = await rm.cmd("info restore");
  for (let k = 0; k < 600 && !/complete/.test(info); k++) {
    await sleep(100);
    info = await rm.cmd("info restore");
  }
  expect(info).toMatch(/complete/);
  return info;
}
