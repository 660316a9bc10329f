// A real browser for the page's tests: Debian's chromium driven by playwright-core, with a fresh
// profile each time. Tests skip, loudly, where chromium is not installed.

import { spawn, spawnSync, ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium, type BrowserContext, type Page } from "playwright-core";
import { ROOT } from "../helpers.js";

export const CHROMIUM = "/usr/bin/chromium";
export const hasChromium = existsSync(CHROMIUM);
if (!hasChromium) {
  console.warn(`SKIPPED: the browser tests need Debian's chromium at ${CHROMIUM} (apt-get install chromium)`);
}

/** Screenshots and other things a person may want to look at after a run (gitignored). */
export const ARTIFACTS = join(ROOT, "test-artifacts");

const ARGS = [
  "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync",
];

export interface Browser {
  context: BrowserContext;
  page: Page;
  close(): Promise<void>;
}

export async function openBrowser(): Promise<Browser> {
  const profile = mkdtempSync(join(tmpdir(), "rvm-chromium-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM, headless: true, args: ARGS, viewport: { width: 1400, height: 900 },
  });
  const page = context.pages()[0] ?? await context.newPage();
  const errors: string[] = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  return {
    context,
    page,
    async close() {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
      if (errors.length) console.warn(`page errors: ${errors.join("\n")}`);
    },
  };
}

/** A server process that prints its URL: `rvm web ...`, or a plain file server. */
export class Server {
  private constructor(private readonly child: ChildProcess, readonly url: string) {}

  static async start(cmd: string, args: string[], urlPattern = /http:\/\/\S+?\//): Promise<Server> {
    const child = spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe"], cwd: ROOT });
    let out = "";
    const url = await new Promise<string>((resolve, reject) => {
      const look = (d: Buffer) => {
        out += d.toString();
        const m = urlPattern.exec(out);
        if (m) resolve(m[0]);
      };
      child.stdout!.on("data", look);
      child.stderr!.on("data", look);
      child.on("exit", (code) => reject(new Error(`${cmd} exited (${code}): ${out}`)));
      setTimeout(() => reject(new Error(`${cmd} printed no URL in 30 s: ${out}`)), 30_000);
    });
    return new Server(child, url);
  }

  static rvmWeb(...args: string[]): Promise<Server> {
    return Server.start(process.execPath, [join(ROOT, "bin/rvm.js"), "web", ...args]);
  }

  stop(): void {
    this.child.kill("SIGTERM");
  }
}

export function hasPython(): boolean {
  return spawnSync("python3", ["-c", "import http.server"]).status === 0;
}

/** What the page's terminals show (the page's rvmPage hook reads xterm.js's buffer). */
export function consoleText(page: Page): Promise<string> {
  return page.evaluate(() => (window as unknown as { rvmPage: { consoleText(): string } }).rvmPage.consoleText());
}

export function monitorText(page: Page): Promise<string> {
  return page.evaluate(() => (window as unknown as { rvmPage: { monitorText(): string } }).rvmPage.monitorText());
}

/** Waits until the console shows `text` at or after its `from`-th occurrence count. */
export async function waitForConsole(page: Page, text: string, timeoutMs: number, occurrences = 1): Promise<void> {
  await page.waitForFunction(([t, n]) => {
    const all = (window as unknown as { rvmPage?: { consoleText(): string } }).rvmPage?.consoleText() ?? "";
    return all.split(t as string).length - 1 >= (n as number);
  }, [text, occurrences] as const, { timeout: timeoutMs, polling: 100 });
}

export async function waitForMonitor(page: Page, text: string | RegExp, timeoutMs: number): Promise<string> {
  const src = typeof text === "string" ? text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&") : text.source;
  await page.waitForFunction((s) => new RegExp(s as string).test(
    (window as unknown as { rvmPage: { monitorText(): string } }).rvmPage.monitorText()), src, { timeout: timeoutMs, polling: 100 });
  return monitorText(page);
}

/** The monitor's text split at its prompts (xterm.js trims the prompt's trailing space). */
const PROMPT = /^\(rvm\)(?: |$)/m;

/** Types a line into the monitor pane and waits for its next prompt; returns the command's output. */
export async function monitorCommand(page: Page, line: string, timeoutMs = 60_000): Promise<string> {
  const prompts = (await monitorText(page)).split(PROMPT).length;
  await page.click("#monitor");
  await page.keyboard.type(line + "\r");
  await page.waitForFunction(([n, re]) => (window as unknown as { rvmPage: { monitorText(): string } }).rvmPage.monitorText()
    .split(new RegExp(re as string, "m")).length > (n as number), [prompts, PROMPT.source] as const, { timeout: timeoutMs, polling: 100 });
  const parts = (await monitorText(page)).split(PROMPT);
  const out = parts[prompts - 1];
  return out.slice(out.indexOf("\n") + 1).trim();
}

export function screenshotPath(name: string): string {
  mkdirSync(ARTIFACTS, { recursive: true });
  return join(ARTIFACTS, name);
}
