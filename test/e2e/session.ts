// Drives `rvm run` through pipes, as a script or a student's terminal would: waits for text
// in the guest's output, types lines, collects the exit code.

import { spawn, ChildProcessWithoutNullStreams } from "node:child_process";
import { connect, Socket } from "node:net";
import { join } from "node:path";
import { ROOT } from "../helpers.js";

/** Resolves when `notify` is called or after `ms`, whichever comes first (event-driven waits). */
class Changes {
  private readonly waiters = new Set<() => void>();

  notify(): void {
    for (const w of [...this.waiters]) w();
  }

  next(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.waiters.delete(done);
        resolve();
      };
      const timer = setTimeout(done, Math.max(0, ms));
      this.waiters.add(done);
    });
  }
}

export class Session {
  private readonly child: ChildProcessWithoutNullStreams;
  output = "";
  stderr = "";
  private readonly exited: Promise<number | null>;
  private readonly changes = new Changes();

  constructor(args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}) {
    this.child = spawn(process.execPath, [join(ROOT, "bin/rvm.js"), ...args], { stdio: "pipe", cwd: opts.cwd, env: opts.env });
    this.child.stdout.setEncoding("latin1");
    this.child.stderr.setEncoding("latin1");
    this.child.stdout.on("data", (s: string) => {
      this.output += s;
      this.changes.notify();
    });
    this.child.stderr.on("data", (s: string) => (this.stderr += s));
    this.exited = new Promise((resolve) => this.child.on("exit", (code) => {
      resolve(code);
      this.changes.notify();
    }));
  }

  /** Resolves when `text` has appeared in the output after position `from` (woken by each output chunk). */
  async waitFor(text: string | RegExp, timeoutMs: number, from = 0): Promise<number> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const hay = this.output.slice(from);
      const at = typeof text === "string" ? hay.indexOf(text) : hay.search(text);
      if (at >= 0) return from + at;
      if (this.child.exitCode !== null) throw new Error(`rvm exited (${this.child.exitCode}) before ${String(text)}:\n${this.output.slice(-2000)}\n${this.stderr}`);
      if (Date.now() > deadline) {
        throw new Error(`timed out waiting for ${String(text)}; output so far:\n${this.output.slice(-2000)}\nstderr:\n${this.stderr}`);
      }
      await this.changes.next(deadline - Date.now());
    }
  }

  type(line: string): void {
    this.child.stdin.write(line + "\n");
  }

  /** Types a shell command and waits for the next prompt; returns what the command printed. */
  async command(line: string, timeoutMs = 90_000, prompt = "~ # "): Promise<string> {
    const from = this.output.length;
    this.type(line);
    const echoed = await this.waitFor(line, timeoutMs, from);
    const end = await this.waitFor(prompt, timeoutMs, echoed + line.length);
    return this.output.slice(echoed + line.length, end).replace(/\r/g, "").trim();
  }

  async exitCode(timeoutMs: number): Promise<number | null> {
    const timer = setTimeout(() => this.child.kill("SIGKILL"), timeoutMs);
    const code = await this.exited;
    clearTimeout(timer);
    return code;
  }

  kill(): void {
    this.child.kill("SIGKILL");
  }

  get pid(): number {
    return this.child.pid!;
  }
}

/** A client of rvm's monitor socket: one command, one answer up to the next prompt. */
export class MonitorClient {
  private buf = "";
  private closed = false;
  private readonly changes = new Changes();
  private constructor(private readonly sock: Socket) {
    sock.setEncoding("latin1");
    sock.on("data", (s: string) => {
      this.buf += s;
      this.changes.notify();
    });
    sock.on("close", () => {
      this.closed = true;
      this.changes.notify();
    });
  }

  /** Connects, retrying while rvm has not started listening yet. */
  static async open(target: string | { port: number }, timeoutMs = 60_000): Promise<MonitorClient> {
    const t0 = Date.now();
    for (;;) {
      try {
        const sock = await new Promise<Socket>((resolve, reject) => {
          const s = typeof target === "string" ? connect(target) : connect(target.port, "127.0.0.1");
          s.once("connect", () => resolve(s));
          s.once("error", reject);
        });
        const c = new MonitorClient(sock);
        await c.until("(rvm) ");
        return c;
      } catch (e) {
        if (Date.now() - t0 > timeoutMs) throw e;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  }

  /** Everything up to the next `text` (woken by each chunk the socket delivers). */
  async until(text: string, timeoutMs = 60_000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    while (!this.buf.includes(text)) {
      if (this.closed) throw new Error(`monitor: connection closed before "${text}"; got ${JSON.stringify(this.buf)}`);
      if (Date.now() > deadline) throw new Error(`monitor: no "${text}" in ${JSON.stringify(this.buf)}`);
      await this.changes.next(deadline - Date.now());
    }
    const at = this.buf.indexOf(text);
    const out = this.buf.slice(0, at);
    this.buf = this.buf.slice(at + text.length);
    return out;
  }

  async cmd(line: string, timeoutMs = 60_000): Promise<string> {
    this.sock.write(line + "\n");
    return this.until("(rvm) ", timeoutMs);
  }

  /** Sends raw bytes (no newline added). */
  send(data: string | Uint8Array): void {
    this.sock.write(data);
  }

  close(): void {
    this.sock.end();
  }
}

/**
 * Boots the shipped Linux guest (256 MiB, kernel + initramfs) with its snapshots in `snapDir`,
 * runs `prepare` at its shell, saves snapshot `name` from the monitor and quits.
 */
export async function saveLinuxGuest(dir: string, snapDir: string, name: string, prepare?: (s: Session) => Promise<void>): Promise<void> {
  const G = join(ROOT, "guests/linux");
  const sock = join(dir, `save-${name}.sock`);
  const s = new Session(["run", "-m", "256M", "-kernel", join(G, "Image.gz"), "-initrd", join(G, "initramfs.cpio.gz"),
    "-append", "console=ttyS0", "--snapshot-dir", snapDir, "-monitor", `unix:${sock},server,nowait`]);
  try {
    await s.waitFor("~ # ", 200_000);
    await prepare?.(s);
    const m = await MonitorClient.open(sock);
    const reply = await m.cmd(`savevm ${name}`);
    if (!new RegExp(`saved ${name}`).test(reply)) throw new Error(`savevm ${name}: ${reply}`);
    m.cmd("quit").catch(() => undefined);
    const code = await s.exitCode(60_000);
    if (code !== 0) throw new Error(`rvm exited with ${code} after savevm`);
    m.close();
  } finally {
    s.kill();
  }
}
