// The monitor over its socket (-monitor unix:PATH,server,nowait and tcp:...), driven as a
// script would: status, stop/cont, registers, memory dumps, page states, quit.

import { describe, expect, it } from "vitest";
import { createServer } from "node:net";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { MonitorClient, Session } from "./session.js";

async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", () => r()));
  const port = (srv.address() as { port: number }).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

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
      expect(await m.cmd("info mtree")).toMatch(/0000000080000000-0000000087ffffff: riscv_virt_board.ram/);
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
});
