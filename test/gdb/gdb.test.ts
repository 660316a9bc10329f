// The gdb stub against the real gdb-multiarch (Debian's package), in batch mode, on a guest of
// our own with symbols (guests/gdb/debugee.elf): breakpoints, continue, registers, stepping into
// a trap handler, software and hardware watchpoints, memory through Sv39, harts as threads,
// monitor commands, detach. And the stub against a raw socket: malformed packets, a client that leaves
// mid-packet, 1 MB packets.

import { describe, expect, it } from "vitest";
import { spawn, spawnSync } from "node:child_process";
import { connect, Socket } from "node:net";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Session } from "../e2e/session.js";
import { freePort, ROOT } from "../helpers.js";
import { framePacket } from "../../src/gdb/protocol.js";

const GDB = "gdb-multiarch";
const haveGdb = spawnSync(GDB, ["--version"]).status === 0;
if (!haveGdb) console.warn(`SKIPPED: ${GDB} is not installed (apt-get install gdb-multiarch); the gdb stub is not checked against gdb`);
const GUEST = join(ROOT, "guests/gdb/debugee.elf");

/** Runs gdb-multiarch in batch mode with these commands; returns what it printed. */
async function gdb(commands: string[], timeoutMs: number): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), "rvm-gdb-"));
  const script = join(dir, "cmds.gdb");
  // (the ELF's debug info names the directory it was built in, elsewhere: gdb finds debugee.c
  // and crt0.S for its source lines here)
  writeFileSync(script, ["set pagination off", "set confirm off", `directory ${join(ROOT, "guests/gdb")}`, ...commands].join("\n") + "\n");
  const child = spawn(GDB, ["-nx", "-batch", "-x", script], { stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  child.stdout.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr.on("data", (d: Buffer) => (out += d.toString()));
  const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
  await new Promise((r) => child.on("exit", r));
  clearTimeout(timer);
  return out;
}

/** Starts rvm stopped with the stub on a free port; resolves once it listens. */
async function startRvm(extra: string[] = []): Promise<{ rvm: Session; port: number }> {
  const port = await freePort();
  const rvm = new Session(["run", GUEST, "-S", "-gdb", `tcp::${port}`, "--timeout", "100", ...extra]);
  for (let i = 0; i < 200; i++) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect(port, "127.0.0.1");
      s.on("connect", () => { s.destroy(); resolve(true); });
      s.on("error", () => resolve(false));
    });
    if (ok) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  return { rvm, port };
}

describe.skipIf(!haveGdb)("gdb-multiarch against the stub", () => {
  it("break, continue, registers, step into a trap handler, watch, Sv39 memory, monitor, detach", { timeout: 120_000 }, async () => {
    // The stub took a connection to check it listens; it serves the next one (gdb).
    const { rvm, port } = await startRvm();
    try {
      const out = await gdb([
        `file ${GUEST}`,
        "set architecture riscv:rv64",
        `target remote 127.0.0.1:${port}`,
        "info threads",
        "p/x $pc",
        "break add",
        "continue",
        "p a",
        "p b",
        "p/x $a1",
        "p $priv",
        "p/x $mstatus",
        "finish",
        // The ecall in main: step onto it, then one stepi goes into the M-mode trap handler.
        "break *(main + 0)",
        "tbreak debugee.c:61",
        "continue",
        "x/i $pc",
        // gdb steps RISC-V in software (a breakpoint after the instruction), so its stepi runs
        // the whole handler; the stub's own single step ('s') goes into it.
        "maintenance packet s",
        "maintenance flush register-cache",
        "x/i $pc",
        "p $pc == trap_entry",
        "p $mcause",
        "p/x $mepc",
        // A software watchpoint (gdb single-steps through the stub and compares).
        "set can-use-hw-watchpoints 0",
        "delete",
        "break in_supervisor",
        "continue",
        "p/x $satp",
        "p $priv",
        "x/s 0x40000000",
        "monitor info registers",
        "monitor info mem",
        "monitor info tlb",
        "monitor p $pc",
        "delete",
        "detach",
      ], 100_000);
      expect(out).toContain("Thread 1.1 (CPU#0 [running]) 0x0000000000001000 in ??");
      expect(out).toMatch(/Breakpoint 1, add \(a=40, b=2\) at debugee\.c:\d+/);
      expect(out).toContain("$2 = 40\n$3 = 2\n$4 = 0x2\n$5 = 3\n");
      expect(out).toContain("Value returned is $7 = 42");
      expect(out).toMatch(/=> 0x[0-9a-f]+ <main\+\d+>:\s+ecall/);
      expect(out).toMatch(/=> 0x[0-9a-f]+ <trap_entry>:\s+add\s+sp,sp,-32/);
      expect(out).toMatch(/\$\d+ = 1\n\$\d+ = 11\n/); // pc == trap_entry, mcause 11 (ecall from M)
      expect(out).toMatch(/Breakpoint \d+, in_supervisor \(\) at debugee\.c/);
      expect(out).toMatch(/= 0x800000000008[0-9a-f]{4}\n\$\d+ = 1\n/); // satp Sv39, priv S
      expect(out).toContain('0x40000000:\t"hello through sv39"');
      expect(out).toMatch(/ pc {7}0000000080000[0-9a-f]{3}\n mhartid  0000000000000000/);
      // What QEMU's monitor prints for the same stop.
      expect(out).toContain("vaddr            paddr            size             attr\n" +
        "---------------- ---------------- ---------------- -------\n" +
        "0000000040000000 0000000080002000 0000000000001000 rw---ad\n" +
        "0000000080000000 0000000080000000 0000000040000000 rwx--ad\n");
      expect(out).toMatch(/CPU#0: \d+ pages \(fetch, load and store TLBs: 1024 entries each\)\n[^]*\n0000000080000000 0000000080000000 [r-][w-]x  S\n/);
      expect(out).toContain("[Inferior 1 (process 1) detached]");
      // After detach the guest goes on and finishes by itself (exit code 0: its checks held).
      expect(await rvm.exitCode(60_000)).toBe(0);
    } finally {
      rvm.kill();
    }
  });

  it("harts are threads: info threads, the thread that hit a breakpoint, scheduler-locking (vCont per thread)", { timeout: 120_000 }, async () => {
    const { rvm, port } = await startRvm(["-smp", "2"]);
    try {
      const out = await gdb([
        `file ${GUEST}`,
        `target remote 127.0.0.1:${port}`,
        "info threads",
        "break add",
        "continue",
        "thread 2",
        "p/x $pc",
        "p $mhartid",
        // Only thread 2 runs (vCont;c:p1.2): it reaches park, thread 1 stays in add.
        "set scheduler-locking on",
        "break park",
        "continue",
        "info threads",
        "p $mhartid",
        "thread 1",
        "stepi",
        "thread 2",
        "p $pc == park",
        "set scheduler-locking off",
        "delete",
        "continue",
      ], 100_000);
      expect(out).toMatch(/\* 1 +Thread 1\.1 \(CPU#0 \[running\]\) 0x0000000000001000 in \?\? \(\)\n +2 +Thread 1\.2 \(CPU#1 \[running\]\) 0x0000000000001000 in \?\?/);
      expect(out).toMatch(/Thread 1 hit Breakpoint 1, add \(a=40, b=2\)/);
      expect(out).toContain("[Switching to thread 2 (Thread 1.2)]");
      expect(out).toContain("$1 = 0x1000\n$2 = 1\n");
      expect(out).toMatch(/Thread 2 hit Breakpoint 2, park \(\) at crt0\.S:\d+/);
      expect(out).toMatch(/ +1 +Thread 1\.1 \(CPU#0 \[running\]\) add \(a=40, b=2\) at debugee\.c:\d+\n\* 2 +Thread 1\.2 \(CPU#1 \[running\]\) park \(\)/);
      expect(out).toContain("$3 = 1\n");
      expect(out).toMatch(/0x0+800000b0\s+36\s+long sum = a \+ b;/); // thread 1 stepped one instruction
      expect(out).toContain("$4 = 1\n"); // thread 2 did not move meanwhile
      expect(out).toContain("[Inferior 1 (process 1) exited normally]");
      expect(await rvm.exitCode(60_000)).toBe(0);
    } finally {
      rvm.kill();
    }
  });

  it("hardware watchpoints (Z2/Z3/Z4): watch, rwatch, awatch, through Sv39 in S-mode, as QEMU reports them", { timeout: 120_000 }, async () => {
    const { rvm, port } = await startRvm();
    try {
      const out = await gdb([
        `file ${GUEST}`,
        `target remote 127.0.0.1:${port}`,
        "break main",
        "continue",
        "watch counter",
        "continue",
        "p $pc",
        "rwatch trap_count",
        "awatch supervisor_sum",
        "continue",
        "continue",
        "continue",
        "continue",
        "delete",
        "continue",
      ], 100_000);
      // What gdb-multiarch prints against qemu-system-riscv64 for the same script.
      expect(out).toMatch(/Hardware watchpoint 2: counter\s+Old value = 0\s+New value = 42\s+main \(\) at debugee\.c:61/);
      expect(out).toMatch(/Hardware read watchpoint 3: trap_count\s+Value = 0\s+0x[0-9a-f]+ in handle_trap \(cause=11\) at debugee\.c:43/);
      expect(out).toMatch(/Hardware access \(read\/write\) watchpoint 4: supervisor_sum\s+Old value = 0\s+New value = 205\s+in_supervisor \(\)/);
      expect(out).toMatch(/Hardware access \(read\/write\) watchpoint 4: supervisor_sum\s+Value = 205\s+handle_trap \(cause=9\)/);
      expect(out).toMatch(/Hardware read watchpoint 3: trap_count\s+Value = 1\s+/);
      expect(out).toContain("[Inferior 1 (process 1) exited normally]");
      expect(await rvm.exitCode(60_000)).toBe(0);
    } finally {
      rvm.kill();
    }
  });

});

/** A raw protocol client. */
class Raw {
  private buf = "";
  constructor(readonly sock: Socket) {
    sock.setEncoding("latin1");
    sock.on("data", (d: string) => (this.buf += d));
  }
  static async open(port: number): Promise<Raw> {
    const s = connect(port, "127.0.0.1");
    await new Promise<void>((r, j) => { s.on("connect", r); s.on("error", j); });
    return new Raw(s);
  }
  /** Sends a packet and returns the reply's data (acks skipped). */
  async request(data: string | Buffer, timeoutMs = 20_000): Promise<string> {
    this.buf = "";
    this.sock.write(framePacket(data));
    return this.reply(timeoutMs);
  }
  async reply(timeoutMs = 20_000): Promise<string> {
    const t0 = Date.now();
    for (;;) {
      const m = /\$([^#]*)#[0-9a-f]{2}/.exec(this.buf);
      if (m) {
        this.buf = this.buf.slice(m.index + m[0].length);
        return m[1];
      }
      if (Date.now() - t0 > timeoutMs) throw new Error(`no reply; got ${JSON.stringify(this.buf.slice(0, 200))}`);
      await new Promise((r) => setTimeout(r, 10));
    }
  }
  get raw(): string {
    return this.buf;
  }
}

describe("xv6's Makefile", () => {
  it("finds the -gdb line in rvm run -help (it chooses -gdb tcp::PORT over -s -p PORT by it)", () => {
    // xv6-riscv: QEMUGDB = $(shell if $(QEMU) -help | grep -q '^-gdb'; then ...
    const r = spawnSync(process.execPath, [join(ROOT, "bin/rvm.js"), "run", "-help"], { encoding: "utf8", timeout: 60_000 });
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^-gdb /m);
  });
});

describe("the stub against bad input", () => {
  it("malformed packets get an error or a nack, a client leaving mid-packet and 1 MB packets leave the guest unharmed", { timeout: 120_000 }, async () => {
    const { rvm, port } = await startRvm();
    try {
      let c = await Raw.open(port);
      expect(await c.request("qSupported:swbreak+")).toContain("PacketSize=");
      // A bad checksum is answered with '-'.
      c.sock.write("$g#00");
      await new Promise((r) => setTimeout(r, 200));
      expect(c.raw).toContain("-");
      // Malformed commands: a clear error reply, never a crash.
      expect(await c.request("mzz,4")).toBe("E22");
      expect(await c.request("m80000000")).toBe("E22");
      expect(await c.request("M80000000,4:zz")).toBe("E22");
      expect(await c.request("Z9,80000000,4")).toBe("E22");
      expect(await c.request("Hgzz")).toBe("E22");
      expect(await c.request("p99999")).toBe("E14");
      expect(await c.request("m40000000,4")).toBe("E14"); // nothing mapped there
      expect(await c.request("xyzzy")).toBe("");
      // Memory round trip through physical addresses.
      expect(await c.request("Qqemu.PhyMemMode:1")).toBe("OK");
      expect(await c.request("m80000000,4")).toMatch(/^[0-9a-f]{8}$/);
      // 1 MB packet: a write of 512 KiB (hex-encoded), more than PacketSize: handled or refused, never a hang.
      const big = "M80100000,80000:" + "ab".repeat(0x80000);
      expect(await c.request(big, 60_000)).toMatch(/^(OK|E\d\d)$/);
      // A client that leaves in the middle of a packet: the stub forgets it, and as after a
      // detach the guest goes on; it finishes unharmed (exit code 0: its own checks held).
      c.sock.write("$m80000000,4");
      c.sock.destroy();
      expect(await rvm.exitCode(60_000)).toBe(0);
    } finally {
      rvm.kill();
    }
  });

  it("a packet larger than the stub accepts closes the connection; the guest goes on", { timeout: 60_000 }, async () => {
    const { rvm, port } = await startRvm();
    try {
      const c = await Raw.open(port);
      expect(await c.request("qC")).toBe("QC01");
      const closed = new Promise<void>((r) => c.sock.on("close", () => r()));
      c.sock.write("$" + "a".repeat(3 << 20));
      await closed;
      expect(rvm.stderr).toContain("gdb: packet longer than");
      expect(await rvm.exitCode(60_000)).toBe(0);
    } finally {
      rvm.kill();
    }
  });
});
