// QEMU's -d ITEMS / -D FILE for rvm: what the guest does, logged in QEMU's formats where QEMU has
// one (target/riscv: riscv_cpu_do_interrupt, riscv_cpu_tlb_fill; accel/tcg: IN:, Trace, the
// register dump). The core (assembly/trace.ts) reports through its "trace" import only the
// items asked for; a run that asks for none is not slowed (its hooks are one compare on slow
// paths). Blocks are QEMU's translation blocks as the interpreter sees them: a block starts at a
// jump or trap target or after a branch, jump or SYSTEM instruction.

import { closeSync, openSync, writeSync } from "node:fs";
import { Disassembler, formatQemuInsn, insnLength } from "./disasm.js";
import { UsageError } from "./errors.js";
import { setGuestLogSink } from "./guest-log.js";

/** The items, as `-d help` lists them (QEMU's names; `insn` is rvm's, what `--trace` prints). */
export const TRACE_ITEMS: Record<string, string> = {
  in_asm: "show target assembly code for each compiled TB",
  exec: "show trace before each executed TB (lots of logging)",
  cpu: "show CPU registers before entering a TB (lots of logging)",
  int: "show interrupts/exceptions in short format",
  mmu: "log MMU-related activities",
  guest_errors: "log when the guest OS does something invalid (eg accessing a non-existent register)",
  unimp: "log unimplemented functionality",
  insn: "rvm: every instruction executed: privilege, pc, encoding (what --trace prints)",
};

/** The core's item bits (assembly/trace.ts TRACE_*). */
const CORE_INSN = 1, CORE_BLOCK = 2, CORE_INT = 4, CORE_MMU = 8, CORE_GUEST_ERRORS = 16;

/** Parses `-d ITEMS` (comma-separated; `all`; `help` is handled by the caller). */
export function parseTraceItems(spec: string): Set<string> {
  const items = new Set<string>();
  for (const raw of spec.split(",")) {
    const name = raw.trim();
    if (name === "") continue;
    if (name === "all") {
      for (const k of Object.keys(TRACE_ITEMS)) if (k !== "insn") items.add(k);
      continue;
    }
    if (!(name in TRACE_ITEMS)) throw new UsageError(`-d ${spec}: unknown item '${name}' (-d help lists them)`);
    items.add(name);
  }
  return items;
}

/** `-d help`, in QEMU's layout. */
export function traceHelp(): string {
  return "Log items (comma separated):\n" +
    Object.entries(TRACE_ITEMS).map(([k, v]) => `${k.padEnd(16)}${v}`).join("\n") + "\n";
}

const EXCEPTIONS = [
  "misaligned_fetch", "fault_fetch", "illegal_instruction", "breakpoint", "misaligned_load", "fault_load",
  "misaligned_store", "fault_store", "user_ecall", "supervisor_ecall", "hypervisor_ecall", "machine_ecall",
  "exec_page_fault", "load_page_fault", "reserved", "store_page_fault",
];
const INTERRUPTS = [
  "u_software", "s_software", "vs_software", "m_software", "u_timer", "s_timer", "vs_timer", "m_timer",
  "u_external", "s_external", "vs_external", "m_external",
];

/** What the tracer needs of the machine. */
export interface TraceTarget {
  currentHart(): number;
  /** The running hart's registers, as `info registers` prints them, with `pc` for its pc. */
  registerDump(pc: bigint): string;
  /** Guest memory through the running hart's translation (throws if there is none). */
  readVirtual(addr: bigint, len: number): Uint8Array;
  satp(): bigint;
}

/** Writes the log: a file (-D) or stderr, through a buffer flushed at 64 KiB and on close. */
export class Tracer {
  readonly items: Set<string>;
  private fd: number;
  private readonly ownFd: boolean;
  private buf: string[] = [];
  private bufLen = 0;
  private readonly seen = new Set<string>();
  private readonly dis = new Disassembler();
  target: TraceTarget | undefined;

  constructor(items: Set<string>, file?: string) {
    this.items = items;
    if (file !== undefined) {
      try {
        this.fd = openSync(file, "w");
      } catch (e) {
        throw new UsageError(`-D ${file}: ${(e as NodeJS.ErrnoException).code === "ENOENT" ? "no such directory" : (e as Error).message}`);
      }
      this.ownFd = true;
    } else {
      this.fd = 2;
      this.ownFd = false;
    }
  }

  /** Makes this tracer the sink of the device models' guest_errors and unimp lines. */
  attachDevices(): void {
    setGuestLogSink((item, text) => { if (this.items.has(item)) this.log(text + "\n"); });
  }

  /** The core's item bits for these items. */
  coreFlags(): number {
    const i = this.items;
    return (i.has("insn") ? CORE_INSN : 0) | (i.has("in_asm") || i.has("exec") || i.has("cpu") ? CORE_BLOCK : 0) |
      (i.has("int") ? CORE_INT : 0) | (i.has("mmu") ? CORE_MMU : 0) | (i.has("guest_errors") ? CORE_GUEST_ERRORS : 0);
  }

  log(text: string): void {
    this.buf.push(text);
    this.bufLen += text.length;
    if (this.bufLen > 65536) this.flush();
  }

  flush(): void {
    if (this.buf.length === 0) return;
    const data = this.buf.join("");
    this.buf = [];
    this.bufLen = 0;
    try {
      writeSync(this.fd, data);
    } catch {
      // A closed stderr or a full disk: the run goes on without its log.
    }
  }

  close(): void {
    setGuestLogSink(undefined);
    this.flush();
    if (this.ownFd) closeSync(this.fd);
    this.fd = -1;
  }

  /** The core's "trace" import (assembly/trace.ts KIND_*). */
  readonly onCore = (kind: number, sa: bigint, sb: bigint, sc: bigint): void => {
    // wasm's i64 arrives signed
    const a = BigInt.asUintN(64, sa), b = BigInt.asUintN(64, sb), c = BigInt.asUintN(64, sc);
    switch (kind & 0xff) {
      case 1: return this.insn(a, Number(b), Number(c) >>> 0);
      case 2: return this.block(a, Number(b));
      case 3: return this.trap(a, b, c, (kind >> 8) & 0xf, (kind >> 12) & 0xf);
      case 4: return this.mmu(a, (kind >> 8) & 0xf, ((kind >> 12) & 1) !== 0, b, (kind >> 16) & 7, c);
      case 5: return this.log(`Illegal CSR access: csr 0x${a.toString(16).padStart(3, "0")} (${b ? "write" : "read"}), insn 0x${c.toString(16).padStart(8, "0")}, hart ${this.target?.currentHart() ?? 0}\n`);
    }
  };

  /** guest_errors from the host: an access to an address nothing answers. */
  unmapped(addr: number, size: number, write: boolean): void {
    if (this.items.has("guest_errors")) {
      this.log(`Invalid ${write ? "write" : "read"} at addr 0x${addr.toString(16).toUpperCase()}, size ${size}, region '(null)', reason: rejected\n`);
    }
  }

  private insn(pc: bigint, priv: number, raw: number): void {
    const text = (raw & 3) === 3 ? raw.toString(16).padStart(8, "0") : (raw & 0xffff).toString(16).padStart(4, "0");
    const hart = (this.target?.currentHart() ?? 0);
    this.log(`${this.multiHart ? `${hart} ` : ""}${"USHM"[priv] ?? "?"} ${pc.toString(16).padStart(16, "0")} ${text}\n`);
  }

  /** Whether lines name the hart (set by the machine: -smp 2 and more). */
  multiHart = false;

  private block(pc: bigint, priv: number): void {
    const t = this.target;
    if (!t) return;
    if (this.items.has("in_asm")) {
      const key = `${t.satp()}:${priv}:${pc}`;
      if (!this.seen.has(key)) {
        if (this.seen.size > 1 << 20) this.seen.clear(); // QEMU flushes its code cache too
        this.seen.add(key);
        this.log(`----------------\nIN: \nPriv: ${priv}; Virt: 0\n${this.disassembleBlock(pc)}\n`);
      }
    }
    if (this.items.has("exec")) {
      const flags = priv.toString(16).padStart(8, "0");
      this.log(`Trace ${t.currentHart()}: 0x${pc.toString(16)} [0000000000000000/${pc.toString(16).padStart(16, "0")}/${flags}/00000000] \n`);
    }
    if (this.items.has("cpu")) this.log(t.registerDump(pc));
  }

  /** The block at pc: up to and including its first branch, jump or SYSTEM instruction. */
  private disassembleBlock(pc: bigint): string {
    const t = this.target!;
    const lines: string[] = [];
    this.dis.resetState();
    let at = pc;
    for (let i = 0; i < 512; i++) {
      let word: number;
      let len: number;
      try {
        const lo = t.readVirtual(at, 2);
        len = insnLength(lo[0] | (lo[1] << 8));
        const bytes = len === 2 ? lo : t.readVirtual(at, 4);
        word = len === 2 ? lo[0] | (lo[1] << 8) : (bytes[0] | (bytes[1] << 8) | (bytes[2] << 16) | (bytes[3] << 24)) >>> 0;
      } catch {
        break;
      }
      lines.push(formatQemuInsn(at, word, len, this.dis));
      if (endsBlock(word, len)) break;
      at = BigInt.asUintN(64, at + BigInt(len));
      if ((at & 0xfffn) === 0n) break; // a block does not cross a page
    }
    return lines.join("\n") + "\n";
  }

  private trap(cause: bigint, epc: bigint, tval: bigint, before: number, after: number): void {
    const async = cause >> 63n !== 0n;
    const code = Number(cause & 0xffffn);
    const desc = (async ? INTERRUPTS[code] : EXCEPTIONS[code]) ?? "(unknown)";
    const hex = (v: bigint) => v.toString(16).padStart(16, "0");
    const hart = this.target?.currentHart() ?? 0;
    this.log(`riscv_cpu_do_interrupt: hart:${hart}, async:${async ? 1 : 0}, cause:${hex(cause)}, epc:0x${hex(epc)}, tval:0x${hex(tval)}, desc=${desc}, priv:${"USHM"[before]}->${"USHM"[after]}\n`);
  }

  private mmu(va: bigint, access: number, ok: boolean, pa: bigint, prot: number, mmuIdx: bigint): void {
    // QEMU's MMUAccessType: 0 load, 1 store, 2 fetch (rvm's core: 0 fetch, 1 load, 2 store).
    const rw = access === 0 ? 2 : access - 1;
    this.log(`riscv_cpu_tlb_fill ad ${va.toString(16)} rw ${rw} mmu_idx ${mmuIdx}\n` +
      `riscv_cpu_tlb_fill address=${va.toString(16)} ret ${ok ? 0 : 1} physical ${pa.toString(16).padStart(16, "0")} prot ${ok ? prot : 0}\n`);
  }
}

/** Whether an instruction ends a block (as assembly/trace.ts endsBlock). */
function endsBlock(word: number, len: number): boolean {
  if (len === 4) {
    const op = word & 0x7f;
    return op === 0x63 || op === 0x67 || op === 0x6f || op === 0x73 || op === 0x0f;
  }
  const f3 = (word >> 13) & 7;
  if ((word & 3) === 1) return f3 === 5 || f3 === 6 || f3 === 7;
  return (word & 3) === 2 && f3 === 4 && ((word >> 2) & 31) === 0 && ((word >> 7) & 31) !== 0;
}
