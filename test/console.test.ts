// The terminal's QEMU -nographic keys, on a fake TTY: Ctrl-A x quits, Ctrl-A c switches to the
// monitor and back, Ctrl-A h prints help, Ctrl-A Ctrl-A sends one Ctrl-A; pipes pass through.

import { describe, expect, it } from "vitest";
import { PassThrough } from "node:stream";
import { ESCAPE_HELP, Terminal } from "../src/console.js";

function fakeTty(tty: boolean) {
  const input = new PassThrough() as unknown as NodeJS.ReadStream & PassThrough;
  const written: string[] = [];
  const output = { isTTY: tty, write: (b: Uint8Array | string) => (written.push(typeof b === "string" ? b : Buffer.from(b).toString("latin1")), true) } as unknown as NodeJS.WriteStream;
  (input as unknown as { isTTY: boolean }).isTTY = tty;
  let raw = false;
  (input as unknown as { setRawMode: (v: boolean) => void }).setRawMode = (v: boolean) => { raw = v; };
  return { input, output, written, isRaw: () => raw };
}

function harness(tty: boolean) {
  const t = fakeTty(tty);
  const guest: number[] = [];
  const lines: string[] = [];
  let quits = 0;
  const term = new Terminal({
    guestInput: (b) => guest.push(...b),
    monitorLine: (l) => lines.push(l),
    quit: () => quits++,
  }, true, t.input, t.output);
  term.start();
  const type = async (s: string) => {
    t.input.write(Buffer.from(s, "latin1"));
    await new Promise((r) => setImmediate(r));
  };
  return { term, type, guest, lines, quits: () => quits, ...t };
}

describe("terminal", () => {
  it("puts a terminal in raw mode and restores it", () => {
    const h = harness(true);
    expect(h.isRaw()).toBe(true);
    h.term.stop();
    expect(h.isRaw()).toBe(false);
  });

  it("passes ordinary keys to the guest", async () => {
    const h = harness(true);
    await h.type("ls\r");
    expect(Buffer.from(h.guest).toString()).toBe("ls\r");
    h.term.stop();
  });

  it("Ctrl-A x quits, Ctrl-A h prints help, Ctrl-A Ctrl-A sends Ctrl-A", async () => {
    const h = harness(true);
    await h.type("\x01h");
    expect(h.written.join("")).toContain(ESCAPE_HELP);
    await h.type("a\x01\x01b");
    expect(h.guest).toEqual([0x61, 0x01, 0x62]);
    await h.type("\x01x");
    expect(h.quits()).toBe(1);
    h.term.stop();
  });

  it("Ctrl-A c switches to the monitor and back", async () => {
    const h = harness(true);
    await h.type("\x01c");
    expect(h.term.monitorFocused).toBe(true);
    expect(h.written.join("")).toContain("(rvm) ");
    await h.type("info statuz\x7fs\r");
    expect(h.lines).toEqual(["info status"]);
    expect(h.guest).toEqual([]);
    await h.type("\x01c");
    expect(h.term.monitorFocused).toBe(false);
    await h.type("x");
    expect(h.guest).toEqual([0x78]);
    h.term.stop();
  });

  it("Ctrl-A c greets with the monitor banner and its help hint; Ctrl-U clears the line; lines are bounded", async () => {
    const h = harness(true);
    await h.type("\x01c");
    expect(h.written.join("")).toContain("rvm monitor - type 'help' for more information\r\n(rvm) ");
    await h.type("info regs\x15info status\r");
    expect(h.lines).toEqual(["info status"]);
    expect(h.written.join("")).toContain("\r\x1b[K(rvm) "); // the cleared line is redrawn
    await h.type("x".repeat(70 * 1024) + "\r");
    expect(h.lines[1]).toHaveLength(64 * 1024); // keys past the limit ring the bell instead
    expect(h.written.join("")).toContain("\x07");
    h.term.stop();
  });

  it("with pipes, bytes pass straight through (Ctrl-A included)", async () => {
    const h = harness(false);
    await h.type("echo hi\n\x01x");
    expect(Buffer.from(h.guest).toString("latin1")).toBe("echo hi\n\x01x");
    expect(h.quits()).toBe(0);
    h.term.stop();
  });
});
