// The page in a real browser (Debian's chromium, driven by playwright-core): `rvm web` serves
// it, the worker boots the shipped Linux guest, keys typed into the xterm.js console reach the
// guest's shell, the monitor pane answers, and the static build works from a plain file server.

import { describe, expect, it } from "vitest";
import { join } from "node:path";
import { ROOT } from "../helpers.js";
import {
  consoleText, hasChromium, hasPython, monitorCommand, openBrowser, screenshotPath, Server, waitForConsole,
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
      expect(await monitorCommand(b.page, "info mtree")).toMatch(/0000000080000000-000000008fffffff: riscv_virt_board.ram/);
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
    try {
      await b.page.goto(server.url);
      await waitForConsole(b.page, "~ # ", 180_000);
      await b.page.click("#console");
      await b.page.keyboard.type("cat /proc/cpuinfo | grep -c processor\r");
      await waitForConsole(b.page, "\n1\n", 30_000);
      expect(await consoleText(b.page)).toMatch(/U-Boot/);
    } finally {
      await b.close();
      server.stop();
    }
  });
});
