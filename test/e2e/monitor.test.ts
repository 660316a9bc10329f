// The monitor over its socket (-monitor unix:PATH,server,nowait and tcp:...), driven as a
// script would: status, stop/cont, registers, memory dumps, page states, quit; and driven as a
// fuzzer would: random and malformed lines, an endless line, while the guest keeps running.

import { describe, expect, it } from "vitest";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { MonitorClient, Session } from "./session.js";
import { freePort } from "../helpers.js";
import { LINE_TOO_LONG } from "../../src/monitor-input.js";

describe("monitor", () => {
  const dir = mkdtempSync(join(tmpdir(), "rvm-mon-"));
  // A raw guest: li a0, 0x2a (c.li); sd a0, 0x100(zero)? no - keep it simple: spin in place.
  //   80000000: 02a00513  li a0, 42
  //   80000004: 0000006f  j .
  const loop = join(dir, "loop.bin");
  writeFileSync(loop, Buffer.from([0x13, 0x05, 0xa0, 0x02, 0x6f, 0x00, 0x00, 0x00]));

  it("over a unix socket: status, stop, registers, xp, pages, cont, quit", { timeout: 120_000 }, async () => {
    const sock = join(dir, "mon.sock");
    const s = new Session(["run", loop, "-monitor", `unix:${sock},server,nowait`, "--timeout", "120"]);
    try {
      const m = await MonitorClient.open(sock);
      expect(await m.cmd("info status")).toContain("VM status: running");
      await m.cmd("stop");
      expect(await m.cmd("info status")).toContain("VM status: paused");
      const regs = await m.cmd("info registers");
      expect(regs).toMatch(/pc\s+0000000080000004/);
      expect(regs).toMatch(/x10\/a0\s+000000000000002a/);
      expect(await m.cmd("xp /2wx 0x80000000")).toContain("0000000080000000: 0x02a00513 0x0000006f");
      expect(await m.cmd("x /1gx 0x80000000")).toContain("0x0000006f02a00513");
      expect(await m.cmd("info pages")).toMatch(/dirty\s+\d+/);
      expect(await m.cmd("info mtree")).toMatch(/0000000080000000-0000000087ffffff \(prio 0, ram\): riscv_virt_board.ram/);
      expect(await m.cmd("frobnicate")).toContain("unknown command: 'frobnicate'");
      expect(await m.cmd("help")).toContain("info [subcommand]");
      await m.cmd("cont");
      expect(await m.cmd("info status")).toContain("VM status: running");
      m.cmd("quit").catch(() => undefined);
      expect(await s.exitCode(60_000)).toBe(0);
      m.close();
    } finally {
      s.kill();
    }
  });

  it("over tcp on the loopback address", { timeout: 120_000 }, async () => {
    const port = await freePort();
    const s = new Session(["run", loop, "-S", "-monitor", `tcp:127.0.0.1:${port},server,nowait`, "--timeout", "120"]);
    try {
      const m = await MonitorClient.open({ port });
      // -S: stopped before the first instruction, at the reset vector.
      expect(await m.cmd("info status")).toContain("VM status: paused");
      expect(await m.cmd("info registers")).toMatch(/pc\s+0000000000001000/);
      m.cmd("system_powerdown").catch(() => undefined); // the connection ends with rvm
      expect(await s.exitCode(60_000)).toBe(0);
      m.close();
    } finally {
      s.kill();
    }
  });

  // A guest that counts in a0 forever: addi a0, a0, 1; j .-4
  const counter = join(dir, "counter.bin");
  writeFileSync(counter, Buffer.from([0x13, 0x05, 0x15, 0x00, 0x6f, 0xf0, 0xdf, 0xff]));
  const a0 = async (m: MonitorClient) => BigInt("0x" + /x10\/a0\s+([0-9a-f]+)/.exec(await m.cmd("info registers"))![1]);

  it("random and malformed command lines: each gets one reply, errors are one line, the guest keeps running", { timeout: 300_000 }, async () => {
    const sock = join(dir, "fuzz.sock");
    const s = new Session(["run", counter, "-monitor", `unix:${sock},server,nowait`, "--snapshot-dir", join(dir, "fuzz-snaps")]);
    try {
      const m = await MonitorClient.open(sock);
      const before = await a0(m);
      let seed = 0x1234567;
      const rand = (n: number) => {
        seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
        return (seed >>> 8) % n;
      };
      const pick = <T>(xs: T[]) => xs[rand(xs.length)];
      const words = ["help", "?", "info", "x", "xp", "c", "cont", "savevm", "loadvm", "delvm", "status", "registers", "pages",
        "mtree", "snapshots", "restore", "/", "/4wx", "/zz", "/99999x", "/2gx", "/16c", "0x80000000", "-1", "0", "0x90000000",
        "0xffffffffffffffff", "18446744073709551616", "$pc", '"', '"a b"', '"unterminated', "\\", "\t", "\x00", "é"];
      // Commands that end or stop the VM, reset it or restore another state are the user's to
      // give; the fuzzer leaves them out (and anything the tokenizer could read as them).
      const forbidden = /^\s*(q|quit|stop|system_reset|system_powerdown|loadvm|delvm)(\s|$)/;
      for (let i = 0; i < 400; i++) {
        let line: string;
        switch (rand(5)) {
          case 0: { // random bytes, no newline
            const n = rand(200);
            line = Array.from({ length: n }, () => String.fromCharCode(rand(256))).join("").replace(/\n/g, " ");
            break;
          }
          case 1: // known words in random order
            line = Array.from({ length: 1 + rand(5) }, () => pick(words)).join(pick([" ", "  ", "\t"]));
            break;
          case 2: // x/xp with random formats and addresses
            line = `${pick(["x", "xp", "x/", "xp/"])}${pick(["", " "])}/${rand(20)}${pick(["x", "d", "u", "o", "c", "i", "q", ""])}${pick(["b", "h", "w", "g", ""])} 0x${(rand(1 << 30) * 16).toString(16)}`;
            break;
          case 3: // info with anything
            line = `info ${pick(words)} ${pick(words)}`;
            break;
          default: // control characters, CR, Ctrl-U
            line = pick(["", "\r", "\x15", "abc\x15help", "\x01c", "\x1b[A", "\x7f\x7f", " \r ", "savevm \"x\\"]);
        }
        if (forbidden.test(line.split("\x15").pop()!)) continue; // what is left after the last Ctrl-U
        const reply = await m.cmd(line);
        expect(reply, JSON.stringify(line)).not.toMatch(/\n\s+at .*:\d+:\d+/); // never a stack trace
        if (/^(Error|unknown command|unterminated|unsupported|invalid|usage|count too large|info: unknown)/.test(reply)) {
          expect(reply.trimEnd().split("\n"), JSON.stringify(line)).toHaveLength(1);
        }
      }
      // A line that never ends: dropped as it arrives, one error at its newline.
      const mib = "z".repeat(1 << 20);
      for (let i = 0; i < 16; i++) m.send(mib);
      expect(await m.cmd("")).toBe(LINE_TOO_LONG + "\n");
      expect(await m.cmd("info status")).toContain("VM status: running");
      const after = await a0(m);
      expect(after).toBeGreaterThan(before);
      expect(await a0(m)).toBeGreaterThan(after); // still counting
      m.cmd("quit").catch(() => undefined);
      expect(await s.exitCode(60_000)).toBe(0);
      expect(s.stderr).not.toMatch(/\n\s+at /);
      m.close();
    } finally {
      s.kill();
    }
  });
});
