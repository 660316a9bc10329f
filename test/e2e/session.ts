// Drives `rvm run` through pipes, as a script or a student's terminal would: waits for text
// in the guest's output, types lines, collects the exit code.

import { spawn, ChildProcessWithoutNullStreams } from "node:child_process";
import { join } from "node:path";
import { ROOT } from "../helpers.js";

export class Session {
  private readonly child: ChildProcessWithoutNullStreams;
  output = "";
  stderr = "";
  private readonly exited: Promise<number | null>;

  constructor(args: string[]) {
    this.child = spawn(process.execPath, [join(ROOT, "bin/rvm.js"), ...args], { stdio: "pipe" });
    this.child.stdout.setEncoding("latin1");
    this.child.stderr.setEncoding("latin1");
    this.child.stdout.on("data", (s: string) => (this.output += s));
    this.child.stderr.on("data", (s: string) => (this.stderr += s));
    this.exited = new Promise((resolve) => this.child.on("exit", (code) => resolve(code)));
  }

  /** Resolves when `text` has appeared in the output after position `from`. */
  async waitFor(text: string | RegExp, timeoutMs: number, from = 0): Promise<number> {
    const t0 = Date.now();
    for (;;) {
      const hay = this.output.slice(from);
      const at = typeof text === "string" ? hay.indexOf(text) : hay.search(text);
      if (at >= 0) return from + at;
      if (Date.now() - t0 > timeoutMs) {
        throw new Error(`timed out waiting for ${String(text)}; output so far:\n${this.output.slice(-2000)}\nstderr:\n${this.stderr}`);
      }
      if (this.child.exitCode !== null) throw new Error(`rvm exited (${this.child.exitCode}) before ${String(text)}:\n${this.output.slice(-2000)}\n${this.stderr}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  type(line: string): void {
    this.child.stdin.write(line + "\n");
  }

  /** Types a shell command and waits for the next prompt; returns what the command printed. */
  async command(line: string, timeoutMs = 30_000, prompt = "~ # "): Promise<string> {
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
}
