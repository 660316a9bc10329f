// The machine: the core, guest memory, the devices on the bus, and the run loop that serves
// the core's exit reasons (guest -> core -> exit reason -> host -> back).
//
// For issue 2 the board is what bare-metal programs need: RAM at 0x8000_0000, the reset ROM,
// the CLINT (inside the core) and HTIF. The virt board's devices attach through `core.map`.

import { Core, Exit, RAM_BASE } from "./core.js";
import { GuestMemory } from "./memory.js";
import { Htif, HtifConsole } from "./devices/htif.js";
import { ElfImage } from "./loaders/elf.js";
import { ImageError, RvmError } from "./errors.js";
import { writeResetRom } from "./rom.js";

export const MTIME_HZ = 10_000_000;
const SLICE = 1 << 20;
const TRACE_SLICE = 1;

export interface MachineOptions {
  ramBytes: number;
  /** Deterministic time: mtime advances one tick per 2^shift instructions (QEMU -icount). */
  icountShift?: number;
  console?: HtifConsole;
}

export interface RunOptions {
  /** Wall-clock limit in milliseconds. */
  timeoutMs?: number;
  /** Called before each instruction with (pc, privilege); enables single-stepping. */
  trace?: (line: string) => void;
}

export interface RunResult {
  exitCode: number;
  reason: "exit" | "timeout" | "stop";
  instret: bigint;
  seconds: number;
}

const stdConsole: HtifConsole = {
  write(fd, bytes) {
    (fd === 2 ? process.stderr : process.stdout).write(bytes);
  },
  readByte() {
    return -1;
  },
};

export class Machine {
  readonly core: Core;
  readonly mem: GuestMemory;
  readonly console: HtifConsole;
  htif: Htif | undefined;
  private readonly icount: number | undefined;
  private stopRequested: { code: number } | undefined;
  /** Guest time (mtime) while stopped; it does not move until the machine runs again. */
  private mtimeBase = 0n;

  constructor(opts: MachineOptions) {
    this.core = new Core(opts.ramBytes);
    this.mem = new GuestMemory(this.core);
    this.console = opts.console ?? stdConsole;
    this.icount = opts.icountShift;
    if (this.icount !== undefined) this.core.exports.setIcount(this.icount);
  }

  /** Loads an ELF into RAM and arranges to start at its entry; attaches HTIF if it has tohost. */
  loadElf(elf: ElfImage, file: string): void {
    for (const seg of elf.segments) {
      if (!this.mem.inRam(seg.paddr, seg.memsz)) {
        throw new ImageError(file, `segment at 0x${seg.paddr.toString(16)} (+0x${seg.memsz.toString(16)}) is outside RAM`);
      }
      const dst = this.mem.writable(seg.paddr, seg.memsz);
      dst.fill(0);
      dst.set(seg.data);
    }
    writeResetRom(this.core.rom, { start: elf.entry, fdt: 0 });
    const tohost = elf.symbols.get("tohost");
    if (tohost !== undefined) this.attachHtif(tohost, elf.symbols.get("fromhost"));
  }

  /** Loads a raw binary at the start of RAM and starts there. */
  loadRaw(data: Uint8Array, file: string): void {
    if (data.length > this.core.ramBytes) throw new ImageError(file, "larger than RAM");
    this.mem.write(RAM_BASE, data);
    writeResetRom(this.core.rom, { start: RAM_BASE, fdt: 0 });
  }

  attachHtif(tohost: number, fromhost: number | undefined): void {
    if (!this.mem.inRam(tohost, 8)) throw new RvmError(`tohost at 0x${tohost.toString(16)} is outside RAM`);
    this.htif = new Htif(this.mem, tohost, fromhost, this.console);
    this.core.exports.setHtif(BigInt(tohost));
  }

  /** Asks the run loop to stop after the current instruction with this exit code. */
  requestStop(code: number): void {
    this.stopRequested = { code };
    this.core.exports.requestStop();
  }

  async run(opts: RunOptions = {}): Promise<RunResult> {
    const core = this.core;
    const ex = core.exports;
    const start = performance.now();
    const startInstret = core.instret;
    const deadline = opts.timeoutMs !== undefined ? start + opts.timeoutMs : Infinity;
    const realtime = this.icount === undefined;
    const wallStart = start;
    const mtimeStart = this.mtimeBase;
    let lastYield = start;
    const slice = opts.trace ? TRACE_SLICE : SLICE;
    const finish = (exitCode: number, reason: RunResult["reason"]): RunResult => {
      this.mtimeBase = ex.getMtime();
      return { exitCode, reason, instret: core.instret - startInstret, seconds: (performance.now() - start) / 1000 };
    };
    for (;;) {
      const now = performance.now();
      if (realtime) ex.setMtime(mtimeStart + BigInt(Math.floor((now - wallStart) * (MTIME_HZ / 1000))));
      const pcBefore = opts.trace ? core.pc : 0n;
      const privBefore = opts.trace ? core.priv : 0;
      const reason = core.run(slice);
      if (opts.trace) {
        const insn = ex.lastInstruction() >>> 0;
        const text = (insn & 3) === 3 ? insn.toString(16).padStart(8, "0") : (insn & 0xffff).toString(16).padStart(4, "0");
        opts.trace(`${"USHM"[privBefore] ?? "?"} ${pcBefore.toString(16).padStart(16, "0")} ${text}`);
      }
      switch (reason) {
        case Exit.Htif:
          this.htif?.handle();
          if (this.htif?.exitCode !== undefined) return finish(this.htif.exitCode, "exit");
          break;
        case Exit.Stop:
          if (this.stopRequested) return finish(this.stopRequested.code, "stop");
          break;
        case Exit.Page: {
          const page = ex.exitPage();
          if (!this.mem.restorePage) throw new RvmError(`the guest touched page ${page}, which is not restored`);
          this.mem.restorePage(page);
          break;
        }
        case Exit.Wfi:
          await this.idle(realtime, deadline);
          break;
        case Exit.Slice:
          break;
      }
      if (this.htif) this.htif.poll();
      const t = performance.now();
      if (t >= deadline) return finish(124, "timeout");
      if (t - lastYield > 20) {
        await new Promise<void>((resolve) => setImmediate(resolve));
        lastYield = performance.now();
      }
    }
  }

  /** WFI with nothing pending: sleep until the next timer deadline (or skip to it). */
  private async idle(realtime: boolean, wallDeadline: number): Promise<void> {
    const ex = this.core.exports;
    const due = ex.timerDeadline();
    const now = ex.getMtime();
    if (!realtime) {
      // Deterministic time: nothing can happen before the deadline, so jump to it.
      if (due !== 0xffff_ffff_ffff_ffffn && due > now) ex.setMtime(due);
      else await new Promise<void>((resolve) => setTimeout(resolve, 1));
      return;
    }
    const ms = due > now ? Number(due - now) / (MTIME_HZ / 1000) : 0;
    const wait = Math.max(0, Math.min(ms, 10, wallDeadline - performance.now()));
    await new Promise<void>((resolve) => setTimeout(resolve, wait));
  }
}
