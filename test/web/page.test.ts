// The page in a real browser (Debian's chromium, driven by playwright-core): `rvm web` serves
// it, the worker boots the shipped Linux guest, keys typed into the xterm.js console reach the
// guest's shell, the monitor pane answers, and the static build works from a plain file server.

import { describe, expect, it } from "vitest";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ROOT } from "../helpers.js";
import { Session } from "../e2e/session.js";
import { createVirtMachine } from "../../src/board/virt.js";
import { saveSnapshot } from "../../src/snapshot/save.js";
import { SnapshotStore } from "../../src/snapshot/store.js";
import {
  consoleText, hasChromium, hasPython, monitorCommand, openBrowser, screenshotPath, Server, waitForConsole, waitForMonitor,
} from "./browser.js";

describe.skipIf(!hasChromium)("the page in chromium", () => {
  it("rvm web: boots Linux, runs a shell command, answers the monitor", { timeout: 240_000 }, async () => {
    const server = await Server.rvmWeb("--port", "0");
    expect(server.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/$/);
    const b = await openBrowser();
    try {
      await b.page.goto(server.url);
      await waitForConsole(b.page, "~ # ", 180_000);
      await b.page.click("#console");
      await b.page.keyboard.type("echo hello-$((6*7)) from $(uname -m)\r");
      await waitForConsole(b.page, "hello-42 from riscv64", 30_000);
      expect(await monitorCommand(b.page, "info status")).toBe("VM status: running");
      expect(await monitorCommand(b.page, "info mtree")).toMatch(/0000000080000000-000000008fffffff \(prio 0, ram\): riscv_virt_board.ram/);
      // Ctrl-A c in the console moves to the monitor, as in QEMU's -nographic.
      await b.page.click("#console");
      await b.page.keyboard.press("Control+a");
      await b.page.keyboard.press("c");
      expect(await b.page.evaluate(() => document.activeElement?.closest("#monitor") !== null)).toBe(true);
      const counts = await b.page.evaluate(() => (window as unknown as { rvmPage: { gridCounts(): Record<string, number> } }).rvmPage.gridCounts());
      expect(counts["written"]).toBeGreaterThan(1000); // the kernel and its data
      await b.page.screenshot({ path: screenshotPath("web-linux.png") });
    } finally {
      await b.close();
      server.stop();
    }
  });

  it.skipIf(!hasPython())("npm run build:web: the static files boot Linux from a plain file server", { timeout: 240_000 }, async () => {
    // python3's http.server: a plain static file server, nothing rvm-specific.
    const server = await Server.start("python3", ["-u", "-m", "http.server", "--bind", "127.0.0.1", "0", "--directory", join(ROOT, "dist/web")],
      /http:\/\/127\.0\.0\.1:\d+\//);
    const b = await openBrowser();
    const dir = mkdtempSync(join(tmpdir(), "rvm-web-static-"));
    try {
      await b.page.goto(server.url);
      await waitForConsole(b.page, "~ # ", 180_000);
      await b.page.click("#console");
      await b.page.keyboard.type("cat /proc/cpuinfo | grep -c processor\r");
      await waitForConsole(b.page, "\n1\n", 30_000);
      expect(await consoleText(b.page)).toMatch(/U-Boot/);
      // A snapshot of the static page (its files under /rvm/ in the worker) restores in the CLI.
      await b.page.keyboard.type("export MARK=static-$((3+4))\r");
      await waitForConsole(b.page, "~ # ", 30_000, 3);
      expect(await monitorCommand(b.page, "savevm st", 120_000)).toMatch(/^saved st: /);
      const [download] = await Promise.all([b.page.waitForEvent("download"), b.page.click("#download")]);
      await download.saveAs(join(dir, "st.rvmsnap.zip"));
      const imp = spawnSync(process.execPath, [join(ROOT, "bin/rvm.js"), "snapshot", "import", join(dir, "st.rvmsnap.zip"), join(dir, "vm")], { encoding: "utf8" });
      expect(imp.status, imp.stderr).toBe(0);
      const s = new Session(["restore", "st", join(dir, "vm/linux.img")]);
      try {
        s.type("");
        await s.waitFor("~ # ", 120_000);
        expect(await s.command("echo $MARK")).toBe("static-7");
      } finally {
        s.kill();
      }
    } finally {
      await b.close();
      server.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("savevm and loadvm in the monitor pane; the RAM grid shows the lazy restore", { timeout: 300_000 }, async () => {
    const server = await Server.rvmWeb();
    const b = await openBrowser();
    try {
      const counts = () => b.page.evaluate(() => (window as unknown as { rvmPage: { gridCounts(): Record<string, number> } }).rvmPage.gridCounts());
      await b.page.goto(server.url);
      await waitForConsole(b.page, "~ # ", 180_000);
      await b.page.click("#console");
      await b.page.keyboard.type("mount /dev/vda /mnt; cat /mnt/boot/Image > /dev/null; export MARK=saved-$((3*5))\r");
      await waitForConsole(b.page, "~ # ", 30_000, 2);
      expect(await monitorCommand(b.page, "savevm s1", 120_000)).toMatch(/^saved s1: .*disk-backed [1-9]\d*.*stored [1-9]\d*/);
      expect(await monitorCommand(b.page, "info snapshots")).toMatch(/\bs1\b/);
      // Downloaded, the browser's snapshot is a file the CLI reads.
      const dir = mkdtempSync(join(tmpdir(), "rvm-web-snap-"));
      const [download] = await Promise.all([b.page.waitForEvent("download"), b.page.click("#download")]);
      expect(download.suggestedFilename()).toBe("s1.rvmsnap.zip");
      await download.saveAs(join(dir, "s1.rvmsnap.zip"));
      const imp = spawnSync(process.execPath, [join(ROOT, "bin/rvm.js"), "snapshot", "import", join(dir, "s1.rvmsnap.zip"), join(dir, "vm")], { encoding: "utf8" });
      expect(imp.status, imp.stderr).toBe(0);
      const info = spawnSync(process.execPath, [join(ROOT, "bin/rvm.js"), "snapshot", "info", "s1", join(dir, "vm/linux.img"), "--plot", join(dir, "s1.svg")], { encoding: "utf8" });
      expect(info.status, info.stderr).toBe(0);
      expect(info.stdout).toMatch(/snapshot s1 .*\n[\s\S]*disk-backed\s+[1-9]/);
      // And a snapshot the CLI's code saved, uploaded, is one the page lists.
      const m = createVirtMachine({ ramBytes: 16 << 20, bios: "none", kernel: join(ROOT, "guests/bench/intbench.elf"), drives: [],
        console: { write: () => undefined, readByte: () => -1 } });
      await m.run({ instructions: 100_000 });
      saveSnapshot(m, new SnapshotStore(dir), "from-cli");
      await b.page.setInputFiles("#upload", join(dir, "from-cli.rvmsnap"));
      await waitForMonitor(b.page, "uploaded from-cli", 30_000);
      expect(await monitorCommand(b.page, "info snapshots")).toMatch(/\bfrom-cli\b/);
      rmSync(dir, { recursive: true, force: true });
      await b.page.click("#console");
      await b.page.keyboard.type("export MARK=changed\r");
      await waitForConsole(b.page, "~ # ", 30_000, 3);
      expect(await monitorCommand(b.page, "loadvm s1")).toBe("");
      // The grid while the restore runs: pages not yet restored, then fewer, then none.
      const seen: number[] = [];
      await b.page.waitForFunction(() => ((window as unknown as { rvmPage: { gridCounts(): Record<string, number> } }).rvmPage.gridCounts()["not yet restored"] ?? 0) > 0,
        null, { timeout: 30_000, polling: 20 });
      seen.push((await counts())["not yet restored"]);
      await b.page.screenshot({ path: screenshotPath("web-lazy-restore.png") });
      await b.page.waitForFunction(() => (window as unknown as { rvmPage: { gridCounts(): Record<string, number> } }).rvmPage.gridCounts()["not yet restored"] === 0,
        null, { timeout: 120_000, polling: 50 });
      const after = await counts();
      expect(seen[0]).toBeGreaterThan(0);
      expect(after["prefetched"] + after["restored on demand"]).toBeGreaterThan(1000);
      expect(await monitorCommand(b.page, "info restore")).toMatch(/65536\/65536 pages resident \(100\.0%\), complete/);
      // The guest is back where it was saved.
      await b.page.click("#console");
      await b.page.keyboard.type("echo $MARK\r");
      await waitForConsole(b.page, "saved-15", 30_000, 1);
      await b.page.screenshot({ path: screenshotPath("web-after-restore.png") });
    } finally {
      await b.close();
      server.stop();
    }
  });
});
