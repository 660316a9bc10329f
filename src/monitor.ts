// The monitor: a small subset of QEMU's HMP (human monitor protocol), so the commands course
// material teaches work here: help, info status|registers|mtree|pages|pic|irq|qtree|mem|tlb, stop, cont,
// x, xp (with /i: disassembly), print, system_reset, system_powerdown, quit. The snapshot
// commands register themselves here too.
//
// The monitor never takes the VM down: `execute` always answers with text. A command's error is
// one line (as QEMU prints it where QEMU has a message: "unknown command", "Cannot access
// memory"); an unexpected exception becomes a one-line "Error: internal error: ..." reply.
// Arguments are split as HMP does: a word, or a "double-quoted string" with \\ \" \' \n \r.

import { Disassembler, formatQemuInsn, insnLength } from "./disasm.js";
import { evaluate, ExprError } from "./monitor-expr.js";
import { MemoryAccessError, RvmError } from "./errors.js";

export interface MonitorTarget {
  readonly running: boolean;
  stop(): void;
  cont(): void;
  reset(): void;
  powerdown(): void;
  quit(): void;
  registers(): string;
  /** `info cpus`: every hart. */
  cpus(): string;
  /** `cpu N`: the hart `info registers` and `x` look at; an error message, or undefined. */
  selectCpu(n: number): string | undefined;
  mtree(): string;
  pageSummary(): string;
  /** Reads guest memory; virtual addresses go through the hart's current translation. */
  readMemory(addr: bigint, len: number, virtual: boolean): Uint8Array;
  /** The guest's name (-name), for info name. */
  readonly name?: string;
  /** A register of the selected hart by name (pc, x5, t0, f1, fa0, mstatus, ...), for `print $reg`. */
  register(name: string): bigint | undefined;
  /** info pic, info irq, info qtree, info mem, info tlb. */
  pic(): string;
  mem(): string;
  tlb(): string;
  irq(): string;
  qtree(): string;
}

/** The monitor's view of a machine (the CLI and the browser page drive the same one). */
export function machineTarget(machine: import("./machine.js").Machine, name?: string): MonitorTarget {
  return {
    name,
    get running() { return machine.running; },
    stop: () => machine.pause(),
    cont: () => machine.resume(),
    reset: () => machine.requestReset(),
    powerdown: () => machine.requestStop(0),
    quit: () => machine.requestStop(0),
    registers: () => machine.registers(),
    cpus: () => machine.cpus(),
    selectCpu: (n) => machine.selectCpu(n),
    mtree: () => machine.mtree(),
    pageSummary: () => machine.pageSummary(),
    readMemory: (a, n, v) => machine.readMemory(a, n, v),
    register: (r) => machine.register(r),
    pic: () => machine.pic(),
    mem: () => machine.memInfo(),
    tlb: () => machine.tlbInfo(),
    irq: () => machine.irq(),
    qtree: () => machine.qtree(),
  };
}

export type MonitorCommand = (args: string[]) => string | Promise<string>;

interface Entry {
  usage: string;
  help: string;
  run: MonitorCommand;
}

export class MonitorError extends Error {}

export class Monitor {
  private readonly commands = new Map<string, Entry>();
  private readonly infos = new Map<string, Entry>();

  constructor(private readonly target: MonitorTarget) {
    this.define("help", "help|? [cmd]", "show the help", (a) => this.help(a[0]));
    this.define("?", "", "", (a) => this.help(a[0]));
    this.define("info", "info [subcommand]", "show various information about the system state", (a) => this.info(a));
    this.define("stop", "stop", "stop emulation", () => (target.stop(), ""));
    this.define("cont", "cont|c", "resume emulation", () => (target.cont(), ""));
    this.define("c", "", "", () => (target.cont(), ""));
    this.define("x", "x /fmt addr", "virtual memory dump starting at 'addr'", (a) => this.examine(a, true));
    this.define("xp", "xp /fmt addr", "physical memory dump starting at 'addr'", (a) => this.examine(a, false));
    this.define("print", "print|p /fmt expr", "print expression value (use $reg for CPU register access)", (a) => this.print(a));
    this.define("p", "", "", (a) => this.print(a));
    this.define("system_reset", "system_reset", "reset the system", () => (target.reset(), ""));
    this.define("system_powerdown", "system_powerdown", "power the system off (rvm has no ACPI: at once)", () => (target.powerdown(), ""));
    this.define("quit", "quit|q", "quit the emulator", () => (target.quit(), ""));
    this.define("q", "", "", () => (target.quit(), ""));
    this.defineInfo("status", "show the current VM status (running|paused)", () =>
      `VM status: ${target.running ? "running" : "paused"}\n`);
    this.defineInfo("registers", "show the cpu registers", () => target.registers());
    this.defineInfo("cpus", "show infos for each CPU", () => target.cpus());
    this.define("cpu", "cpu index", "set the default CPU", (a) => {
      const err = target.selectCpu(a[0] !== undefined && /^\d+$/.test(a[0]) ? Number(a[0]) : NaN);
      return err ? err + "\n" : "";
    });
    this.defineInfo("mtree", "show memory tree", () => target.mtree());
    this.defineInfo("name", "show the current VM name", () => (target.name !== undefined ? `${target.name}\n` : ""));
    this.defineInfo("pages", "show guest RAM page states (restored, dirty, disk-backed)", () => target.pageSummary());
    this.defineInfo("pic", "show PIC state", () => target.pic());
    this.defineInfo("mem", "show the active virtual memory mappings", () => target.mem());
    this.defineInfo("tlb", "show virtual to physical memory mappings", () => target.tlb());
    this.defineInfo("irq", "show the interrupts statistics (if available)", () => target.irq());
    this.defineInfo("qtree", "show device tree", () => target.qtree());
  }

  /** Adds a command (the snapshot code adds savevm, loadvm, delvm). */
  define(name: string, usage: string, help: string, run: MonitorCommand): void {
    this.commands.set(name, { usage, help, run });
  }

  defineInfo(name: string, help: string, run: MonitorCommand): void {
    this.infos.set(name, { usage: `info ${name}`, help, run });
  }

  /**
   * Runs one command line; returns its output. Never throws: errors are output too, one line
   * each (as in QEMU), whatever the command met.
   */
  async execute(line: string): Promise<string> {
    try {
      const words = splitArgs(line);
      if (words.length === 0) return "";
      // QEMU accepts "x/4x addr" as well as "x /4x addr".
      const m = /^(xp?|p|print)(\/\S+)$/.exec(words[0]);
      if (m) words.splice(0, 1, m[1], m[2]);
      const cmd = this.commands.get(words[0]);
      if (!cmd) return `unknown command: '${oneLine(words[0])}'\n`;
      return await cmd.run(words.slice(1));
    } catch (e) {
      if (e instanceof MonitorError) return oneLine(e.message) + "\n";
      if (e instanceof RvmError) return `Error: ${oneLine(e.message)}\n`;
      return `Error: internal error: ${oneLine(e instanceof Error ? e.message : String(e))}\n`;
    }
  }

  private help(name?: string): string {
    if (name) {
      const c = this.commands.get(name);
      return c ? `${c.usage} -- ${c.help}\n` : `unknown command: '${name}'\n`;
    }
    return [...this.commands.values()].filter((c) => c.usage).map((c) => `${c.usage} -- ${c.help}`).join("\n") + "\n";
  }

  private async info(args: string[]): Promise<string> {
    const sub = args[0];
    if (!sub) return [...this.infos.values()].map((c) => `${c.usage} -- ${c.help}`).join("\n") + "\n";
    const c = this.infos.get(sub);
    if (!c) return `info: unknown subcommand '${sub}' (try 'info' for the list)\n`;
    return c.run(args.slice(1));
  }

  /** x/xp: /[count][format][size]; format x d u o c; size b h w g (QEMU's defaults: 1, x, w). */
  private examine(args: string[], virtual: boolean): string {
    let fmt = "";
    let rest = args;
    if (args[0]?.startsWith("/")) {
      fmt = args[0].slice(1);
      rest = args.slice(1);
    }
    // QEMU's /fmt: a count, then format and size letters in either order (/2wx = /2xw).
    const fm = /^(\d*)([a-z]*)$/.exec(fmt);
    if (!fm) throw new MonitorError(`invalid format '/${fmt}'`);
    const count = fm[1] ? Number(fm[1]) : 1;
    let format = "";
    let sizeLetter = "";
    for (const ch of fm[2]) {
      if ("xduoci".includes(ch) && !format) format = ch;
      else if ("bhwg".includes(ch) && !sizeLetter) sizeLetter = ch;
      else throw new MonitorError(`invalid format '/${fmt}'`);
    }
    format ||= "x";
    const size = { b: 1, h: 2, w: 4, g: 8 }[sizeLetter || (format === "c" ? "b" : "w")] as 1 | 2 | 4 | 8;
    if (rest.length === 0) throw new MonitorError(`usage: ${virtual ? "x" : "xp"} /fmt addr`);
    let addr = this.expression(rest.join(" "));
    if (count > 4096) throw new MonitorError("count too large (at most 4096)");
    addr = BigInt.asUintN(64, addr); // -1 is the last address, as QEMU reads it
    if (format === "i") return this.disassemble(addr, count, virtual);
    const perLine = size === 1 ? 8 : 16 / size; // QEMU: 8 bytes a line for bytes, else 16
    const lines: string[] = [];
    for (let i = 0; i < count; i += perLine) {
      const n = Math.min(count, i + perLine) - i;
      const lineAddr = BigInt.asUintN(64, addr + BigInt(i * size));
      const at = lineAddr.toString(16).padStart(16, "0");
      let bytes: Uint8Array;
      try {
        bytes = this.target.readMemory(lineAddr, n * size, virtual);
      } catch (e) {
        // QEMU's memory_dump: the lines read so far, then this one's address and the message.
        if (!(e instanceof MemoryAccessError)) throw e;
        lines.push(`${at}: Cannot access memory`);
        break;
      }
      const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
      const items: string[] = [];
      for (let j = 0; j < n; j++) {
        const off = j * size;
        const v = size === 8 ? dv.getBigUint64(off, true) : BigInt(size === 4 ? dv.getUint32(off, true) : size === 2 ? dv.getUint16(off, true) : dv.getUint8(off));
        items.push(formatValue(v, format, size));
      }
      lines.push(`${at}: ${items.join(" ")}`);
    }
    return lines.join("\n") + "\n";
  }

  private expression(text: string): bigint {
    try {
      return evaluate(text, (name) => this.target.register(name));
    } catch (e) {
      if (e instanceof ExprError) throw new MonitorError(e.message);
      throw e;
    }
  }

  /** print /fmt expr: x (default, as QEMU's), d, u, o, c. */
  private print(args: string[]): string {
    let format = "x";
    let rest = args;
    if (args[0]?.startsWith("/")) {
      const f = /^\/\d*([xduoc])?[bhwg]?$/.exec(args[0]);
      if (!f) throw new MonitorError(`invalid format '${args[0]}'`);
      format = f[1] ?? "x";
      rest = args.slice(1);
    }
    if (rest.length === 0) throw new MonitorError("usage: print /fmt expr");
    const v = this.expression(rest.join(" "));
    switch (format) {
      case "d": return BigInt.asIntN(64, v).toString() + "\n";
      case "u": return v.toString() + "\n";
      case "o": return (v === 0n ? "0" : "0" + v.toString(8)) + "\n";
      case "c": return formatValue(v, "c", 1) + "\n";
      default: return (v === 0n ? "0" : "0x" + v.toString(16)) + "\n";
    }
  }

  /** x/Ni, xp/Ni: QEMU's layout ("0x...:  insn  mnemonic  operands  # addr"), objdump's mnemonics. */
  private disassemble(addr: bigint, count: number, virtual: boolean): string {
    const dis = new Disassembler();
    const lines: string[] = [];
    let pc = addr;
    for (let i = 0; i < count; i++) {
      let bytes: Uint8Array;
      try {
        const lo = this.target.readMemory(pc, 2, virtual);
        const len = insnLength(lo[0] | (lo[1] << 8));
        bytes = len === 2 ? lo : this.target.readMemory(pc, len, virtual);
      } catch (e) {
        if (lines.length === 0) throw e;
        break;
      }
      const len = bytes.length;
      let word = 0;
      for (let b = Math.min(len, 4) - 1; b >= 0; b--) word = (word << 8) | bytes[b];
      lines.push(formatQemuInsn(pc, word, len, dis));
      pc = BigInt.asUintN(64, pc + BigInt(len));
    }
    return lines.join("\n") + "\n";
  }
}

/** Text for a one-line reply: control characters shown escaped, at most 200 characters. */
function oneLine(text: string): string {
  const clean = text.replace(/[\x00-\x1f\x7f]/g, (c) => (c === "\n" ? " " : `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`));
  return clean.length > 200 ? clean.slice(0, 200) + "..." : clean;
}

/**
 * Splits a command line into words as HMP does (monitor/hmp.c, get_str): words are separated by
 * blanks; a word that starts with a double quote runs to the closing quote and may contain
 * blanks and the escapes \\, \", \', \n and \r.
 */
export function splitArgs(line: string): string[] {
  const words: string[] = [];
  let i = 0;
  const blank = (c: string) => c === " " || c === "\t" || c === "\r" || c === "\n";
  for (;;) {
    while (i < line.length && blank(line[i])) i++;
    if (i >= line.length) return words;
    if (line[i] !== '"') {
      const start = i;
      while (i < line.length && !blank(line[i])) i++;
      words.push(line.slice(start, i));
      continue;
    }
    let word = "";
    for (i++; ; i++) {
      if (i >= line.length) throw new MonitorError("unterminated string literal");
      const c = line[i];
      if (c === '"') break;
      if (c === "\\") {
        const e = line[++i];
        if (e === "\\" || e === "'" || e === '"') word += e;
        else if (e === "n") word += "\n";
        else if (e === "r") word += "\r";
        else throw new MonitorError(`unsupported escape code: '\\${e === undefined ? "" : oneLine(e)}'`);
      } else word += c;
    }
    i++;
    if (i < line.length && !blank(line[i])) throw new MonitorError("expected a blank after a quoted string");
    words.push(word);
  }
}

export function formatValue(v: bigint, format: string, size: number): string {
  const bits = size * 8;
  switch (format) {
    case "d": return BigInt.asIntN(bits, v).toString();
    case "u": return v.toString();
    case "o": return "0" + v.toString(8);
    case "c": {
      const c = Number(v & 0xffn);
      return c >= 32 && c < 127 ? `'${String.fromCharCode(c)}'` : `'\\x${c.toString(16).padStart(2, "0")}'`;
    }
    default: return "0x" + v.toString(16).padStart(size * 2, "0");
  }
}
