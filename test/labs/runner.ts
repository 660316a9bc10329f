// Runs a lab handout (docs/labs/*.md) as a student would, so the handouts cannot rot.
//
// A handout's fenced code blocks say where their lines are typed:
//   ```sh        host shell commands, run one by one with bash in the lab directory; each must exit 0
//   ```sh vm     one command that boots a guest (rvm run) in a terminal, waited for until its shell
//                prompt: it gets a real pseudo-terminal (util-linux `script`), so QEMU's Ctrl-A keys
//                work as for a student
//   ```sh resume one command that restores a guest (rvm restore): it goes on where it was saved
//   ```guest     lines typed at the guest's shell prompt, each waited for ("~ # "); `poweroff`
//                waits for the guest to end. ```guest TEXT waits for TEXT instead of the prompt
//                (a program reading the terminal); ```guest nowait waits for nothing (a long job)
//   ```monitor   lines typed at the monitor: Ctrl-A c, each line, its "(rvm) " prompt, Ctrl-A c back
//   ```keys      keys sent to the guest's terminal: "C-a x" (quit), ...; then the guest's exit is awaited
// An HTML comment after a block, <!-- expect: REGEX -->, is checked against that block's output
// (invisible in the rendered handout). `npx rvm` runs this checkout's bin/rvm.js.

import { spawn, spawnSync, ChildProcessWithoutNullStreams } from "node:child_process";
import { mkdtempSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ROOT } from "../helpers.js";

export interface Step {
  kind: "sh" | "vm" | "resume" | "guest" | "monitor" | "keys";
  /** ```guest TEXT: what follows each line instead of the prompt. */
  wait?: string;
  lines: string[];
  expect: RegExp[];
  /** Line of the handout where the block starts (for messages). */
  at: number;
}

export function parseHandout(md: string): Step[] {
  const steps: Step[] = [];
  const lines = md.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const fence = /^```(\w+)(?:\s+(\S+))?\s*$/.exec(lines[i]);
    const expect = /^<!--\s*expect:\s*(.*?)\s*-->$/.exec(lines[i]);
    if (expect) {
      const last = steps[steps.length - 1];
      if (!last) throw new Error(`line ${i + 1}: expect before any block`);
      last.expect.push(new RegExp(expect[1], "m"));
      continue;
    }
    if (!fence) continue;
    const kind = fence[1] === "sh" && (fence[2] === "vm" || fence[2] === "resume") ? fence[2] : fence[1];
    const body: string[] = [];
    const at = i + 1;
    for (i++; i < lines.length && lines[i] !== "```"; i++) body.push(lines[i]);
    if (!["sh", "vm", "resume", "guest", "monitor", "keys"].includes(kind)) continue; // other languages: illustrations
    const wait = kind === "guest" ? fence[2] : undefined;
    steps.push({ kind: kind as Step["kind"], wait, lines: body.filter((l) => l.trim() !== "" && !l.startsWith("#")), expect: [], at });
  }
  return steps;
}

/** A guest started by a `sh vm` line, on a pseudo-terminal. */
class Terminal {
  private readonly child: ChildProcessWithoutNullStreams;
  output = "";
  exitCode: number | null | undefined;

  constructor(command: string, cwd: string, env: NodeJS.ProcessEnv) {
    this.child = spawn("script", ["-qfec", `bash -c ${JSON.stringify(command)}`, "/dev/null"], { cwd, env, stdio: "pipe" });
    this.child.stdout.setEncoding("latin1");
    this.child.stderr.setEncoding("latin1");
    this.child.stdout.on("data", (s: string) => (this.output += s.replace(/\r/g, "")));
    this.child.stderr.on("data", (s: string) => (this.output += s.replace(/\r/g, "")));
    this.child.on("exit", (code) => (this.exitCode = code));
  }

  async waitFor(text: string, from: number, timeoutMs: number): Promise<number> {
    const t0 = Date.now();
    for (;;) {
      const at = this.output.indexOf(text, from);
      if (at >= 0) return at;
      if (this.exitCode !== undefined) throw new Error(`the guest exited (${this.exitCode}) before "${text}":\n${this.output.slice(-1500)}`);
      if (Date.now() - t0 > timeoutMs) throw new Error(`no "${text}" in ${timeoutMs / 1000} s:\n${this.output.slice(-1500)}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  send(bytes: string): void {
    this.child.stdin.write(bytes);
  }

  async exited(timeoutMs: number): Promise<number | null> {
    const t0 = Date.now();
    while (this.exitCode === undefined) {
      if (Date.now() - t0 > timeoutMs) {
        this.kill();
        throw new Error(`the guest did not exit in ${timeoutMs / 1000} s:\n${this.output.slice(-1500)}`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    return this.exitCode;
  }

  kill(): void {
    if (this.exitCode === undefined) this.child.kill("SIGKILL");
  }
}

const KEYS: Record<string, string> = { "C-a": "\x01", "C-c": "\x03", "C-d": "\x04", Enter: "\r" };

export interface LabRun {
  dir: string;
  /** Each step with its output, in order. */
  outputs: { step: Step; output: string }[];
}

/** Runs every step of a handout in a fresh lab directory; throws on the first failure. */
export async function runHandout(file: string, opts: { bootMs?: number; commandMs?: number } = {}): Promise<LabRun> {
  const bootMs = opts.bootMs ?? 180_000;
  const commandMs = opts.commandMs ?? 60_000;
  const steps = parseHandout(readFileSync(file, "utf8"));
  const dir = mkdtempSync(join(tmpdir(), "rvm-lab-"));
  // The lab directory stands for the student's checkout: guests/ as shipped, `npx rvm` this rvm.
  symlinkSync(join(ROOT, "guests"), join(dir, "guests"));
  const rc = join(dir, ".labrc");
  writeFileSync(rc, `npx() { if [ "$1" = rvm ]; then shift; node ${JSON.stringify(join(ROOT, "bin/rvm.js"))} "$@"; else command npx "$@"; fi; }\n`);
  const env = { ...process.env, BASH_ENV: rc };
  const run: LabRun = { dir, outputs: [] };
  let vm: Terminal | undefined;
  const where = (s: Step) => `${file}:${s.at}`;
  try {
    for (const step of steps) {
      let output = "";
      switch (step.kind) {
        case "sh":
          for (const line of step.lines) {
            const r = spawnSync("bash", ["-c", line], { cwd: dir, env, encoding: "utf8", timeout: commandMs * 3 });
            output += r.stdout + r.stderr;
            if (r.status !== 0) throw new Error(`${where(step)}: \`${line}\` exited ${r.status}:\n${r.stdout}${r.stderr}`);
          }
          break;
        case "vm":
        case "resume":
          if (vm) throw new Error(`${where(step)}: a guest is still running`);
          vm = new Terminal(step.lines[0], dir, env);
          if (step.kind === "vm") await vm.waitFor("~ # ", 0, bootMs);
          output = vm.output;
          break;
        case "guest": {
          if (!vm) throw new Error(`${where(step)}: no guest is running`);
          const start = vm.output.length;
          for (const line of step.lines) {
            const from = vm.output.length;
            vm.send(line + "\r");
            const echoed = await vm.waitFor(line, from, commandMs);
            if (line === "poweroff") {
              const code = await vm.exited(commandMs);
              if (code !== 0) throw new Error(`${where(step)}: the guest ended with exit code ${code}`);
              break;
            }
            if (step.wait === "nowait") continue;
            const at = await vm.waitFor(step.wait ?? "~ # ", echoed + line.length, commandMs);
            // A program's answer: the whole line of it (the prompt has no line end).
            if (step.wait !== undefined) await vm.waitFor("\n", at, commandMs);
          }
          output = vm.output.slice(start);
          if (vm.exitCode !== undefined) vm = undefined;
          break;
        }
        case "monitor": {
          if (!vm) throw new Error(`${where(step)}: no guest is running`);
          const start = vm.output.length;
          vm.send("\x01c");
          let at = await vm.waitFor("(rvm) ", start, commandMs);
          for (const line of step.lines) {
            vm.send(line + "\r");
            at = await vm.waitFor("(rvm) ", at + 6, commandMs);
          }
          vm.send("\x01c");
          output = vm.output.slice(start);
          break;
        }
        case "keys": {
          if (!vm) throw new Error(`${where(step)}: no guest is running`);
          const start = vm.output.length;
          for (const line of step.lines) vm.send(line.split(/\s+/).map((k) => KEYS[k] ?? k).join(""));
          const code = await vm.exited(commandMs);
          output = vm.output.slice(start);
          vm = undefined;
          if (code !== 0) throw new Error(`${where(step)}: the guest ended with exit code ${code}`);
          break;
        }
      }
      for (const re of step.expect) {
        if (!re.test(output)) throw new Error(`${where(step)}: expected ${re} in:\n${output.slice(-3000)}`);
      }
      run.outputs.push({ step, output });
    }
    if (vm) throw new Error(`${file}: a guest is still running at the end of the handout (end it with a \`keys\` or \`guest\` block)`);
  } finally {
    vm?.kill();
  }
  return run;
}
