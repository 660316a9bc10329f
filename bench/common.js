// Helpers shared by the benchmarks: running a guest ELF in-process, QEMU as reference, child
// processes with a time limit (every child the benchmarks start is killed when its time is up),
// driving a guest console through a pipe, temporary unpacked images, ELF symbols.
import { spawn, spawnSync } from "node:child_process";
import { createReadStream, createWriteStream, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { connect } from "node:net";
import { join } from "node:path";
import { pipeline } from "node:stream/promises";
import { createGunzip } from "node:zlib";
import { createVirtMachine } from "../dist/src/board/virt.js";

export const ROOT = new URL("..", import.meta.url).pathname;

/** Seconds QEMU may take on a bare-metal bench ELF before it is killed. */
export const QEMU_SPIKE_TIMEOUT_S = 60;

/**
 * Runs a bare-metal ELF to its HTIF exit (with the JIT when `jit`); returns instret, seconds,
 * CPU seconds, console output and the instructions run translated.
 */
export async function runElf(file, { ramBytes = 128 << 20, timeoutMs = 600_000, jit = false } = {}) {
  const out = [];
  const machine = createVirtMachine({
    ramBytes,
    bios: "none",
    kernel: file,
    drives: [],
    jit,
    console: { write: (_fd, b) => out.push(Buffer.from(b).toString("latin1")), readByte: () => -1 },
  });
  const cpu0 = process.cpuUsage();
  const r = await machine.run({ timeoutMs });
  const cpu = process.cpuUsage(cpu0);
  // cpuSeconds: this process's CPU time during the run (all its threads: V8 compiles WebAssembly
  // in the background), the figure to compare on a loaded machine.
  return {
    ...r, cpuSeconds: (cpu.user + cpu.system) / 1e6, output: out.join(""),
    translated: machine.core.exports.jitInstructions(), jitInfo: jit ? machine.jit.info() : "",
  };
}

/**
 * CPU seconds (user + system) of this process's waited-for children so far, from
 * /proc/self/stat (Linux; undefined elsewhere). spawnSync reaps its child, so the difference
 * around one spawnSync is that child's CPU time, in 10 ms ticks.
 */
export function childCpuSeconds() {
  try {
    const stat = readFileSync("/proc/self/stat", "latin1");
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    // Fields 16 and 17 of proc(5) (cutime, cstime) are at 13 and 14 after the command name.
    return (Number(f[13]) + Number(f[14])) / 100;
  } catch {
    return undefined;
  }
}

/**
 * CPU seconds (user + system, every thread: V8 compiles WebAssembly on its own threads) a live
 * process `pid` has used so far, from /proc/PID/stat (Linux; undefined elsewhere).
 */
export function processCpuSeconds(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "latin1");
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    // Fields 14 and 15 of proc(5) (utime, stime) are at 11 and 12 after the command name.
    return (Number(f[11]) + Number(f[12])) / 100;
  } catch {
    return undefined;
  }
}

/** Guest MIPS of a runElf result. */
export function mipsOf(r) {
  return Number(r.instret) / r.seconds / 1e6;
}

/**
 * The path of qemu-system-riscv64, or undefined when it is not installed. The environment
 * variable RVM_BENCH_QEMU overrides the lookup: a path to use, or "none" to run without QEMU.
 */
export function qemuPath() {
  const override = process.env.RVM_BENCH_QEMU;
  if (override === "none") return undefined;
  if (override) return override;
  const r = spawnSync("sh", ["-c", "command -v qemu-system-riscv64"], { encoding: "utf8", timeout: 10_000 });
  return r.status === 0 ? r.stdout.trim() : undefined;
}

/** The line to print when QEMU is missing. */
export const QEMU_MISSING =
  process.env.RVM_BENCH_QEMU === "none"
    ? "qemu: not used (RVM_BENCH_QEMU=none) - no reference figure"
    : "qemu: qemu-system-riscv64 is not installed (apt-get install qemu-system-misc) - no reference figure";

/**
 * Times `qemu-system-riscv64 -M spike -bios none -kernel FILE` (the guest's HTIF exit ends it),
 * killing QEMU after `timeoutS` seconds. Returns undefined when QEMU is not installed, else
 * { seconds, cpuSeconds, code, signal, timedOut, ok, output, why }: ok = exited by itself with status 0;
 * why = a one-line explanation when not ok.
 */
export function timeQemuSpike(file, { timeoutS = QEMU_SPIKE_TIMEOUT_S } = {}) {
  const qemu = qemuPath();
  if (!qemu) return undefined;
  const c0 = childCpuSeconds();
  const t0 = performance.now();
  const r = spawnSync(qemu, ["-M", "spike", "-m", "128M", "-bios", "none", "-kernel", file, "-nographic", "-monitor", "none"], {
    encoding: "latin1",
    input: "",
    timeout: timeoutS * 1000,
    killSignal: "SIGKILL",
    maxBuffer: 16 << 20,
  });
  const seconds = (performance.now() - t0) / 1000;
  const c1 = childCpuSeconds();
  const cpuSeconds = c0 === undefined || c1 === undefined ? undefined : c1 - c0;
  const timedOut = r.error?.code === "ETIMEDOUT" || (r.signal !== null && seconds >= timeoutS);
  const output = (r.stdout ?? "") + (r.stderr ?? "");
  let why;
  if (timedOut) {
    why =
      `QEMU did not finish within ${timeoutS} s and was killed` + (output.trim() ? "" : " (it printed nothing)") +
      `; the likely cause: QEMU 7.2's -M spike HTIF does not implement the syscall proxy ` +
      `(SYS_write), so a bench ELF that prints only through it waits forever for fromhost`;
  } else if (r.error) {
    why = `QEMU could not be started: ${r.error.message}`;
  } else if (r.status !== 0) {
    const last = output.trim().split(/\r?\n/).pop();
    why = (r.signal ? `QEMU was killed by ${r.signal}` : `QEMU exited with status ${r.status} (the guest's checksum or QEMU failed)`) +
      (last ? `; its last output: ${last}` : "");
  }
  return { seconds, cpuSeconds, code: r.status, signal: r.signal, timedOut, ok: !why, output, why };
}

/** A fresh temporary directory; `cleanup()` removes it (also called on process exit). */
export function makeTempDir(prefix = "rvm-bench-") {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  const cleanup = () => rmSync(dir, { recursive: true, force: true });
  process.on("exit", cleanup);
  return { dir, cleanup };
}

/** gunzip SRC to DST. */
export async function gunzipTo(src, dst) {
  await pipeline(createReadStream(src), createGunzip(), createWriteStream(dst));
  return dst;
}

/**
 * Spawns CMD ARGS with piped stdio and times it from spawn to the first appearance of `prompt`
 * in its stdout; then writes `then` (e.g. "poweroff\n") to its stdin and waits for it to exit.
 * Bounded: the child is killed (SIGKILL) if the prompt has not appeared after `promptTimeoutS`,
 * or if it has not exited `exitTimeoutS` after `then` was sent.
 * Returns { promptSeconds (undefined if never seen), promptCpuSeconds (the child's CPU time, all
 *           its threads, when the prompt appeared; Linux), totalSeconds, exitSeconds (prompt to
 *           exit), code, signal, killed: undefined | "prompt" | "exit", error, output (stdout+stderr) }.
 */
export function timeToPrompt(cmd, args, { prompt = "~ # ", then = "poweroff\n", promptTimeoutS = 300, exitTimeoutS = 60, cwd = ROOT } = {}) {
  return new Promise((resolve) => {
    const t0 = performance.now();
    const child = spawn(cmd, args, { cwd, stdio: ["pipe", "pipe", "pipe"] });
    let out = "";
    let promptAt;
    let promptCpu;
    let killed;
    let spawnError;
    const keep = (s) => (s.length > 1 << 20 ? s.slice(-(1 << 20)) : s); // the last 1 MiB
    let timer = setTimeout(() => {
      killed = "prompt";
      child.kill("SIGKILL");
    }, promptTimeoutS * 1000);
    let recent = ""; // the end of stdout, enough to see a prompt split across chunks
    child.stdout.on("data", (chunk) => {
      const text = chunk.toString("latin1");
      out = keep(out + text);
      recent = (recent + text).slice(-(text.length + prompt.length));
      if (promptAt === undefined && recent.includes(prompt)) {
        promptAt = performance.now();
        promptCpu = processCpuSeconds(child.pid);
        clearTimeout(timer);
        timer = setTimeout(() => {
          killed = "exit";
          child.kill("SIGKILL");
        }, exitTimeoutS * 1000);
        child.stdin.write(then);
      }
    });
    child.stderr.on("data", (chunk) => (out = keep(out + chunk.toString("latin1"))));
    child.stdin.on("error", () => {}); // the child may exit before reading its input
    child.on("error", (e) => (spawnError = e));
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      const end = performance.now();
      resolve({
        promptSeconds: promptAt === undefined ? undefined : (promptAt - t0) / 1000,
        promptCpuSeconds: promptCpu,
        totalSeconds: (end - t0) / 1000,
        exitSeconds: promptAt === undefined ? undefined : (end - promptAt) / 1000,
        code,
        signal,
        killed,
        error: spawnError?.message,
        output: out,
      });
    });
  });
}

/** ELF64 little-endian: symbol name -> { value, size } (from .symtab). */
export function elfSymbols(data) {
  const dv = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const u64 = (o) => Number(dv.getBigUint64(o, true));
  const shoff = u64(40);
  const shentsize = dv.getUint16(58, true);
  const shnum = dv.getUint16(60, true);
  const syms = new Map();
  for (let i = 0; i < shnum; i++) {
    const sh = shoff + i * shentsize;
    if (dv.getUint32(sh + 4, true) !== 2 /* SHT_SYMTAB */) continue;
    const off = u64(sh + 24);
    const size = u64(sh + 32);
    const strSh = shoff + dv.getUint32(sh + 40, true) * shentsize;
    const strOff = u64(strSh + 24);
    for (let s = off; s + 24 <= off + size; s += 24) {
      let p = strOff + dv.getUint32(s, true);
      let name = "";
      while (data[p] !== 0) name += String.fromCharCode(data[p++]);
      if (name) syms.set(name, { value: u64(s + 8), size: u64(s + 16) });
    }
  }
  return syms;
}

/** The file offset of virtual address ADDR in an ELF64's PT_LOAD segments (undefined if none). */
export function elfFileOffset(data, addr) {
  const dv = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const phoff = Number(dv.getBigUint64(32, true));
  const phentsize = dv.getUint16(54, true);
  const phnum = dv.getUint16(56, true);
  for (let i = 0; i < phnum; i++) {
    const ph = phoff + i * phentsize;
    if (dv.getUint32(ph, true) !== 1) continue;
    const offset = Number(dv.getBigUint64(ph + 8, true));
    const vaddr = Number(dv.getBigUint64(ph + 16, true));
    const filesz = Number(dv.getBigUint64(ph + 32, true));
    if (addr >= vaddr && addr + 8 <= vaddr + filesz) return offset + (addr - vaddr);
  }
  return undefined;
}

/**
 * Writes a copy of ELF file SRC to DST with the initialised 64-bit variable SYMBOL set to VALUE
 * (e.g. a bench's `volatile uint64_t iterations`). Returns false when the symbol is not there.
 */
export function patchElfU64(src, dst, symbol, value) {
  const data = new Uint8Array(readFileSync(src));
  const sym = elfSymbols(data).get(symbol);
  const off = sym && sym.size === 8 ? elfFileOffset(data, sym.value) : undefined;
  if (off === undefined) return false;
  new DataView(data.buffer).setBigUint64(off, BigInt(value), true);
  writeFileSync(dst, data);
  return true;
}

/** "1.234 s" */
export const secs = (s) => `${s.toFixed(s < 10 ? 3 : 2)} s`;

/**
 * A guest driven through its console on piped stdio (rvm's CLI or QEMU with `-serial stdio`):
 * spawn, wait for text in its output, type lines, end it. Bounded: every wait has a time limit,
 * and `end()` kills the child (SIGKILL) when it has not exited in time.
 */
export class GuestConsole {
  /** `env`: variables set (or, with the value undefined, removed) for the child on top of ours. */
  constructor(cmd, args, { cwd = ROOT, env: extraEnv = {} } = {}) {
    this.cmd = cmd;
    this.output = "";
    this.base = 0; // characters dropped from the front of `output` (it keeps the last 4 MiB)
    this.exitCode = undefined;
    this.signal = undefined;
    this.spawnError = undefined;
    // rvm's restore timeline counts from the spawn when told when it was (RVM_SPAWN_TIME).
    const env = { ...process.env, ...extraEnv, RVM_SPAWN_TIME: String(performance.timeOrigin + performance.now()) };
    for (const k of Object.keys(env)) if (env[k] === undefined) delete env[k];
    this.child = spawn(cmd, args, { cwd, env, stdio: ["pipe", "pipe", "pipe"] });
    // waitFor wakes on every chunk of output (polling alone would add up to its period to every
    // time it measures: the restore bench's echo probe came out on a 50 ms grid).
    this.wakers = [];
    const keep = (s) => {
      this.output += s;
      if (this.output.length > 4 << 20) {
        const drop = this.output.length - (4 << 20);
        this.output = this.output.slice(drop);
        this.base += drop;
      }
      for (const w of this.wakers.splice(0)) w();
    };
    this.child.stdout.setEncoding("latin1");
    this.child.stderr.setEncoding("latin1");
    this.child.stdout.on("data", keep);
    this.child.stderr.on("data", keep);
    this.child.stdin.on("error", () => {}); // the child may exit before reading its input
    this.child.on("error", (e) => (this.spawnError = e));
    this.exited = new Promise((resolve) =>
      this.child.on("close", (code, signal) => {
        this.exitCode = code;
        this.signal = signal;
        resolve();
      }),
    );
  }

  /** The absolute position of the end of the output so far (for `waitFor(..., from)`). */
  get mark() {
    return this.base + this.output.length;
  }

  /** The last lines of the output, for error messages. */
  tail(lines = 4) {
    return this.output.replace(/\r/g, "").trim().split("\n").slice(-lines).join(" | ") || "(none)";
  }

  /**
   * Resolves with the absolute position of `text` (string or RegExp) once it appears in the
   * output after absolute position `from`; rejects after `timeoutMs` or when the child exits.
   */
  async waitFor(text, timeoutMs, from = 0) {
    const t0 = performance.now();
    for (;;) {
      const start = Math.max(0, from - this.base);
      const hay = this.output.slice(start);
      const at = typeof text === "string" ? hay.indexOf(text) : hay.search(text);
      if (at >= 0) return this.base + start + at;
      if (this.spawnError) throw new Error(`${this.cmd} could not be started: ${this.spawnError.message}`);
      if (this.exitCode !== undefined || this.signal) {
        throw new Error(`exited (code ${this.exitCode}${this.signal ? `, ${this.signal}` : ""}) before "${text}"; last output: ${this.tail()}`);
      }
      if (performance.now() - t0 > timeoutMs) {
        throw new Error(`no "${text}" within ${(timeoutMs / 1000).toFixed(0)} s; last output: ${this.tail()}`);
      }
      await new Promise((r) => {
        const timer = setTimeout(r, 50);
        this.wakers.push(() => {
          clearTimeout(timer);
          r();
        });
      });
    }
  }

  type(line) {
    if (!this.child.stdin.destroyed) this.child.stdin.write(line + "\n");
  }

  /** Waits up to `timeoutMs` for the child to exit, then kills it. Returns the exit code. */
  async end(timeoutMs) {
    if (this.exitCode === undefined && !this.signal && !this.spawnError) {
      const timer = setTimeout(() => this.child.kill("SIGKILL"), timeoutMs);
      await this.exited;
      clearTimeout(timer);
    }
    return this.exitCode;
  }

  kill() {
    if (this.exitCode === undefined && !this.signal) this.child.kill("SIGKILL");
  }
}

/**
 * A human monitor (rvm's, prompt "(rvm) ", or QEMU's HMP, prompt "(qemu) ") on a unix socket,
 * used line by line as a script would. Terminal escape sequences (QEMU's readline echo) are
 * removed from replies. Every wait has a time limit.
 */
export class MonitorClient {
  constructor(sock, prompt) {
    this.sock = sock;
    this.prompt = prompt;
    this.buf = "";
    this.closed = false;
    sock.setEncoding("latin1");
    sock.on("data", (s) => (this.buf += s));
    sock.on("close", () => (this.closed = true));
    sock.on("error", () => (this.closed = true));
  }

  /** Connects to PATH (retrying while the server is not up yet) and reads up to the first prompt. */
  static async open(path, prompt, timeoutMs = 30_000) {
    const t0 = performance.now();
    for (;;) {
      try {
        const sock = await new Promise((resolve, reject) => {
          const s = connect(path);
          s.once("connect", () => resolve(s));
          s.once("error", reject);
        });
        const c = new MonitorClient(sock, prompt);
        await c.until(Math.max(1000, timeoutMs - (performance.now() - t0)));
        return c;
      } catch (e) {
        if (performance.now() - t0 > timeoutMs) throw new Error(`monitor ${path}: ${e.message}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  }

  async until(timeoutMs) {
    const t0 = performance.now();
    while (!this.buf.includes(this.prompt)) {
      if (this.closed) throw new Error(`monitor closed before its prompt; got ${JSON.stringify(this.buf.slice(-300))}`);
      if (performance.now() - t0 > timeoutMs) throw new Error(`monitor: no prompt within ${(timeoutMs / 1000).toFixed(0)} s; got ${JSON.stringify(this.buf.slice(-300))}`);
      await new Promise((r) => setTimeout(r, 20));
    }
    const at = this.buf.indexOf(this.prompt);
    const out = this.buf.slice(0, at);
    this.buf = this.buf.slice(at + this.prompt.length);
    // eslint-disable-next-line no-control-regex
    return out.replace(/\x1b\[[0-9;]*[A-Za-z]/g, "").replace(/\r/g, "");
  }

  /** Sends one command line; resolves with its reply (the echoed command line removed). */
  async cmd(line, timeoutMs = 30_000) {
    this.sock.write(line + "\n");
    const out = await this.until(timeoutMs);
    const lines = out.split("\n");
    if (lines[0].trim() === line.trim()) lines.shift();
    return lines.join("\n").trim();
  }

  /** Sends a line without waiting for a reply (e.g. `quit`). */
  send(line) {
    if (!this.closed) this.sock.write(line + "\n");
  }

  close() {
    this.sock.destroy();
  }
}

/**
 * Writes the benchmark data disk (guests/linux/make-bench-disk.sh OUT; needs mke2fs and gcc),
 * killed after `timeoutS`. Returns { ok, why }.
 */
export function makeBenchDisk(out, { timeoutS = 120 } = {}) {
  const r = spawnSync(join(ROOT, "guests/linux/make-bench-disk.sh"), [out], { encoding: "utf8", timeout: timeoutS * 1000, killSignal: "SIGKILL" });
  if (r.error) return { ok: false, why: r.error.code === "ETIMEDOUT" ? `did not finish within ${timeoutS} s` : r.error.message };
  if (r.status !== 0) return { ok: false, why: `exit ${r.status}${r.signal ? ` (${r.signal})` : ""}: ${(r.stderr || r.stdout).trim().split("\n").slice(-2).join(" | ")}` };
  return { ok: true };
}

/**
 * The Linux benchmarks need the shipped guest and the tools of make-bench-disk.sh. Returns
 * false (having said why) when something is missing; exits on a missing guest file.
 */
export function linuxBenchPrerequisites(bench) {
  const needed = ["linux/Image.gz", "linux/initramfs.cpio.gz", "linux/fw_dynamic.bin", "linux/make-bench-disk.sh"];
  for (const f of needed) {
    const file = join(ROOT, "guests", f);
    if (!existsSync(file)) {
      console.error(`bench ${bench}: ${file} is missing`);
      process.exit(1);
    }
  }
  for (const tool of ["mke2fs", "gcc"]) {
    const r = spawnSync("sh", ["-c", `command -v ${tool}`], { timeout: 10_000 });
    if (r.status !== 0) {
      console.log(`bench ${bench}: ${tool} is not installed; the benchmark disk (guests/linux/make-bench-disk.sh) needs it (apt-get install e2fsprogs gcc; mke2fs must be on PATH) - stopped`);
      return false;
    }
  }
  return true;
}
