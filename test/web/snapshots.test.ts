// Snapshots in the page kept in the browser's storage (OPFS, and IndexedDB where asked for), and
// carried between the page and the CLI as NAME.rvmsnap.zip archives, in a real chromium.

import { describe, expect, it } from "vitest";
import { spawnSync } from "node:child_process";
import { copyFileSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ROOT } from "../helpers.js";
import { MonitorClient, Session } from "../e2e/session.js";
import { consoleText, hasChromium, monitorCommand, openBrowser, screenshotPath, Server, waitForConsole } from "./browser.js";
import type { Page } from "playwright-core";

const rvm = (...args: string[]) => spawnSync(process.execPath, [join(ROOT, "bin/rvm.js"), ...args], { encoding: "utf8", timeout: 120_000 });

const storageOf = (page: Page) => page.evaluate(() => (window as unknown as { rvmPage: { storage: string } }).rvmPage.storage);
const notRestored = (page: Page) => page.evaluate(() =>
  (window as unknown as { rvmPage: { gridCounts(): Record<string, number> } }).rvmPage.gridCounts()["not yet restored"] ?? 0);

/** Types a shell line into the page's console and waits for its `n`-th prompt. */
async function shell(page: Page, line: string, prompts: number): Promise<void> {
  await page.click("#console");
  await page.keyboard.type(line + "\r");
  await waitForConsole(page, "~ # ", 60_000, prompts);
}

/** Waits for a lazy restore in the page to be seen in the grid, then for it to end. */
async function restoreRuns(page: Page): Promise<void> {
  await page.waitForFunction(() => ((window as unknown as { rvmPage: { gridCounts(): Record<string, number> } }).rvmPage
    .gridCounts()["not yet restored"] ?? 0) > 0, null, { timeout: 60_000, polling: 20 });
  await page.waitForFunction(() => (window as unknown as { rvmPage: { gridCounts(): Record<string, number> } }).rvmPage
    .gridCounts()["not yet restored"] === 0, null, { timeout: 120_000, polling: 50 });
}

describe.skipIf(!hasChromium)("snapshots in the page's storage, and between the page and the CLI", () => {
  it("savevm survives a reload (OPFS), loadvm restores it lazily with its disk, and rvm restore runs the download", { timeout: 600_000 }, async () => {
    const server = await Server.rvmWeb();
    const b = await openBrowser();
    const dir = mkdtempSync(join(tmpdir(), "rvm-web-opfs-"));
    try {
      await b.page.goto(server.url);
      await waitForConsole(b.page, "~ # ", 180_000);
      expect(await storageOf(b.page)).toBe("opfs");
      // The guest writes its disk before the save: the snapshot needs the disk as it was then.
      await shell(b.page, "mount /dev/vda /mnt; echo web-$((6*7)) > /mnt/note; sync; export MARK=saved-15", 2);
      expect(await monitorCommand(b.page, "savevm s1", 120_000)).toMatch(/^saved s1: /);
      await shell(b.page, "echo changed > /mnt/note; sync", 3);

      // A new visit: the snapshot is still there, and loadvm brings back the memory and the disk.
      await b.page.reload();
      await waitForConsole(b.page, "~ # ", 180_000);
      expect(await storageOf(b.page)).toBe("opfs");
      expect(await monitorCommand(b.page, "info snapshots")).toMatch(/\bs1\b/);
      expect(await monitorCommand(b.page, "loadvm s1", 120_000)).toBe("");
      await restoreRuns(b.page);
      await shell(b.page, "echo $MARK; cat /mnt/note", 2);
      await waitForConsole(b.page, "saved-15\nweb-42", 30_000);
      await b.page.screenshot({ path: screenshotPath("web-opfs-after-reload.png") });

      // Downloaded: one archive with the disk and its journal, which the CLI restores.
      const [download] = await Promise.all([b.page.waitForEvent("download"), b.page.click("#download")]);
      expect(download.suggestedFilename()).toBe("s1.rvmsnap.zip");
      const archive = join(dir, "s1.rvmsnap.zip");
      await download.saveAs(archive);
      const imp = rvm("snapshot", "import", archive, join(dir, "vm"));
      expect(imp.status, imp.stderr).toBe(0);
      expect(imp.stdout).toMatch(/restore it: rvm restore s1 \S*linux\.img/);
      const check = rvm("snapshot", "check", "s1", join(dir, "vm/linux.img"));
      expect(check.status, check.stderr).toBe(0);
      const s = new Session(["restore", "s1", join(dir, "vm/linux.img")]);
      try {
        s.type("");
        await s.waitFor("~ # ", 120_000);
        expect(await s.command("echo $MARK; cat /mnt/note")).toBe("saved-15\nweb-42");
      } finally {
        s.kill();
      }

      // A second tab of the site while this one holds the files: it runs, keeping its snapshots in memory.
      const second = await b.context.newPage();
      await second.goto(server.url);
      await waitForConsole(second, "~ # ", 180_000);
      expect(await storageOf(second)).toBe("memory");
      expect(await consoleText(second)).toMatch(/this tab keeps its snapshots in memory only/);
      await second.close();

      // delvm in the page: gone, also after another reload.
      expect(await monitorCommand(b.page, "delvm s1")).toBe("");
      await b.page.reload();
      await waitForConsole(b.page, "~ # ", 180_000);
      expect(await monitorCommand(b.page, "info snapshots")).not.toMatch(/\bs1\b/);
    } finally {
      await b.close();
      server.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("IndexedDB where OPFS is not used: savevm survives a reload", { timeout: 600_000 }, async () => {
    const server = await Server.rvmWeb();
    const b = await openBrowser();
    try {
      await b.page.goto(`${server.url}?storage=indexeddb`);
      await waitForConsole(b.page, "~ # ", 180_000);
      expect(await storageOf(b.page)).toBe("indexeddb");
      await shell(b.page, "export MARK=idb-$((2*4))", 2);
      expect(await monitorCommand(b.page, "savevm i1", 120_000)).toMatch(/^saved i1: /);
      await b.page.reload();
      await waitForConsole(b.page, "~ # ", 180_000);
      expect(await monitorCommand(b.page, "info snapshots")).toMatch(/\bi1\b/);
      expect(await monitorCommand(b.page, "loadvm i1", 120_000)).toBe("");
      await restoreRuns(b.page);
      await shell(b.page, "echo $MARK", 2);
      await waitForConsole(b.page, "idb-8", 30_000);
    } finally {
      await b.close();
      server.stop();
    }
  });

  it("a snapshot the CLI saved (rvm snapshot export) restores in the page with its disk", { timeout: 600_000 }, async () => {
    const dir = mkdtempSync(join(tmpdir(), "rvm-cli-to-web-"));
    const disk = join(dir, "linux.img");
    copyFileSync(join(ROOT, "guests/linux.img"), disk);
    const sock = join(dir, "mon.sock");
    const s = new Session(["run", disk, "-monitor", `unix:${sock},server,nowait`]);
    try {
      await s.waitFor("~ # ", 240_000);
      await s.command("mount /dev/vda /mnt");
      await s.command("echo cli-$((7*6)) > /mnt/note; sync");
      await s.command("export MARK=from-cli");
      const m = await MonitorClient.open(sock);
      expect(await m.cmd("savevm c1", 120_000)).toMatch(/saved c1/);
      m.cmd("quit").catch(() => undefined);
      expect(await s.exitCode(60_000)).toBe(0);
      m.close();
    } finally {
      s.kill();
    }
    const exp = rvm("snapshot", "export", "c1", disk, "-o", join(dir, "c1.rvmsnap.zip"));
    expect(exp.status, exp.stderr).toBe(0);
    expect(exp.stdout).toMatch(/exported c1 to /);

    const server = await Server.rvmWeb();
    const b = await openBrowser();
    try {
      await b.page.goto(server.url);
      await waitForConsole(b.page, "~ # ", 180_000);
      await b.page.setInputFiles("#upload", join(dir, "c1.rvmsnap.zip"));
      await restoreRuns(b.page);
      expect(await b.page.textContent("#status")).toMatch(/running c1 \(restored from c1\.rvmsnap\.zip\)/);
      await b.page.click("#console");
      await b.page.keyboard.type("echo $MARK; cat /mnt/note\r");
      await waitForConsole(b.page, "from-cli\ncli-42", 60_000);
      expect(await notRestored(b.page)).toBe(0);
      await b.page.screenshot({ path: screenshotPath("web-restored-from-cli.png") });
      // Uploaded again: it replaces the copy kept from the first upload, and restores the same.
      await b.page.setInputFiles("#upload", join(dir, "c1.rvmsnap.zip"));
      await restoreRuns(b.page);
      await b.page.click("#console");
      await b.page.keyboard.type("echo $MARK; cat /mnt/note\r");
      await waitForConsole(b.page, "from-cli\ncli-42", 60_000);
    } finally {
      await b.close();
      server.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
