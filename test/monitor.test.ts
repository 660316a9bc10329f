// The monitor in-process: HMP's argument quoting, every error a one-line reply (never an
// exception), x/xp outside memory answered as QEMU answers, and the bounded, linear input of
// monitor lines (monitor-input.ts).

import { describe, expect, it } from "vitest";
import { Monitor, splitArgs } from "../src/monitor.js";
import { LINE_TOO_LONG, MAX_MONITOR_LINE, MonitorLines } from "../src/monitor-input.js";
import { MemoryAccessError } from "../src/errors.js";
import { loadGuest } from "./helpers.js";
import { join } from "node:path";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";

/** A monitor on a real machine (a two-instruction loop in 4 MiB of RAM). */
function monitorOnMachine() {
  const dir = mkdtempSync(join(tmpdir(), "rvm-monitor-"));
  const file = join(dir, "loop.bin");
  writeFileSync(file, Buffer.from([0x13, 0x05, 0xa0, 0x02, 0x6f, 0x00, 0x00, 0x00])); // li a0, 42; j .
  const { machine } = loadGuest(file, { ramBytes: 4 << 20 });
  const monitor = new Monitor({
    get running() { return machine.running; },
    stop: () => machine.pause(),
    cont: () => machine.resume(),
    reset: () => machine.requestReset(),
    powerdown: () => machine.requestStop(0),
    quit: () => machine.requestStop(0),
    registers: () => machine.registers(),
    mtree: () => machine.mtree(),
    pageSummary: () => machine.pageSummary(),
    readMemory: (a, n, v) => machine.readMemory(a, n, v),
  });
  return { machine, monitor };
}

describe("HMP argument splitting", () => {
  it("splits on blanks and keeps double-quoted strings whole, with HMP's escapes", () => {
    expect(splitArgs("  savevm   a  ")).toEqual(["savevm", "a"]);
    expect(splitArgs('savevm "a b"')).toEqual(["savevm", "a b"]);
    expect(splitArgs('savevm "say \\"hi\\" \\\\ \\n"')).toEqual(["savevm", 'say "hi" \\ \n']);
    expect(splitArgs('x ""')).toEqual(["x", ""]);
    expect(() => splitArgs('savevm "a b')).toThrow("unterminated string literal");
    expect(() => splitArgs('savevm "a\\q"')).toThrow(/unsupported escape code/);
  });
});

describe("monitor replies", () => {
  it("x and xp outside RAM and ROM print QEMU's 'Cannot access memory' after the lines that could be read", async () => {
    const { monitor } = monitorOnMachine();
    const end = 0x8000_0000 + (4 << 20);
    expect(await monitor.execute(`xp /4wx 0x${end.toString(16)}`)).toBe(`00000000${end.toString(16)}: Cannot access memory\n`);
    expect(await monitor.execute("xp /x 0")).toBe("0000000000000000: Cannot access memory\n");
    expect(await monitor.execute("xp /x -1")).toBe("ffffffffffffffff: Cannot access memory\n");
    expect(await monitor.execute("xp /x 0x10000000")).toBe("0000000010000000: Cannot access memory\n"); // the UART: not read
    expect(await monitor.execute("x /x 0xdeadbeef000")).toBe("00000deadbeef000: Cannot access memory\n");
    // Two lines fit below the end of RAM, the third does not.
    const out = await monitor.execute(`xp /12wx 0x${(end - 32).toString(16)}`);
    expect(out.split("\n")).toEqual([
      `00000000${(end - 32).toString(16)}: 0x00000000 0x00000000 0x00000000 0x00000000`,
      `00000000${(end - 16).toString(16)}: 0x00000000 0x00000000 0x00000000 0x00000000`,
      `00000000${end.toString(16)}: Cannot access memory`,
      "",
    ]);
    // The reset ROM (QEMU's mrom at 0x1000) is memory.
    expect(await monitor.execute("xp /1wx 0x1000")).toMatch(/^0000000000001000: 0x[0-9a-f]{8}\n$/);
    expect(await monitor.execute("xp /2wx 0x80000000")).toBe("0000000080000000: 0x02a00513 0x0000006f\n");
  });

  it("bytes and characters: 8 a line, as QEMU prints them", async () => {
    const { monitor } = monitorOnMachine();
    expect((await monitor.execute("xp /16xb 0x80000000")).trimEnd().split("\n")).toHaveLength(2);
    expect(await monitor.execute("xp /8c 0x80000000")).toMatch(/^0000000080000000: ('[^']+' ){7}'[^']+'\n$/);
  });

  it("every error is a one-line reply, whatever the command met", async () => {
    const { monitor } = monitorOnMachine();
    const replies = await Promise.all([
      "frobnicate", "x", "x /zz 0x80000000", "x /4x nothing", "xp /99999x 0x80000000", 'savevm "a', "info nosuch",
      "x /4x 0x80000000 extra", "\u0000\u0001\u0002", "help nosuch",
    ].map((l) => monitor.execute(l)));
    for (const r of replies) {
      expect(r.endsWith("\n")).toBe(true);
      expect(r.slice(0, -1)).not.toContain("\n");
      expect(r).not.toMatch(/\bat .*\(.*:\d+:\d+\)/); // no stack trace
    }
    expect(replies[0]).toBe("unknown command: 'frobnicate'\n");
    expect(replies[5]).toBe("unterminated string literal\n");
  });

  it("a command that throws (a bug, or a failure deep in the machine) is answered, not rethrown", async () => {
    const { monitor } = monitorOnMachine();
    monitor.define("boom", "boom", "throws", () => {
      throw new TypeError("cannot read properties of undefined\n    at somewhere (x.js:1:2)");
    });
    monitor.define("denied", "denied", "throws an RvmError", () => {
      throw new MemoryAccessError(0n, "no");
    });
    expect(await monitor.execute("boom")).toBe("Error: internal error: cannot read properties of undefined     at somewhere (x.js:1:2)\n");
    expect(await monitor.execute("denied")).toBe("Error: no\n");
  });
});

describe("monitor input lines", () => {
  function collect() {
    const lines: string[] = [];
    const errors: string[] = [];
    const input = new MonitorLines((l) => lines.push(l), (e) => errors.push(e));
    return { input, lines, errors };
  }

  it("splits lines across chunks, strips CR, and Ctrl-U clears the line typed so far", () => {
    const { input, lines } = collect();
    input.push("info st");
    input.push("atus\r\nhel");
    input.push("p\n");
    input.push("typo\x15info pages\n");
    expect(lines).toEqual(["info status", "help", "info pages"]);
  });

  it("drops a line longer than 64 KiB as it arrives, reports it once at its newline, and goes on", { timeout: 60_000 }, () => {
    const { input, lines, errors } = collect();
    const chunk = "y".repeat(1 << 20);
    for (let i = 0; i < 64; i++) input.push(chunk); // 64 MiB without a newline
    expect(input.pending).toBe(0); // nothing of it is kept
    input.push("\ninfo status\n");
    expect(errors).toEqual([LINE_TOO_LONG]);
    expect(lines).toEqual(["info status"]);
    input.push("z".repeat(MAX_MONITOR_LINE) + "\n"); // exactly at the limit: kept
    expect(lines[1]).toHaveLength(MAX_MONITOR_LINE);
  });
});
