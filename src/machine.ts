// The machine: the core, guest memory, the devices on the bus, and the run loop that serves
// the core's exit reasons (guest -> core -> exit reason -> host -> back). The board that
// builds a machine (devices, images, device tree) is src/board/virt.ts.

import { Core, Exit, RAM_BASE, PageState } from "./core.js";
import { GuestMemory } from "./memory.js";
import { Htif, HtifConsole } from "./devices/htif.js";
import { ElfImage } from "./loaders/elf.js";
import { ImageError, MemoryAccessError, RvmError } from "./errors.js";
import { writeOut, yieldToEventLoop } from "./platform.js";
import type { PageSource } from "./snapshot/source.js";
import { FPR_NAMES, GPR_NAMES } from "./disasm.js";
import { CSR_NUMBERS } from "./csr-names.js";
import type { StopEvent, Watchpoint } from "./gdb/stub.js";
import type { Tracer } from "./trace.js";
import { infoMem, infoTlb } from "./mmu-info.js";
import { Jit, JitOptions } from "./jit/jit.js";

export const MTIME_HZ = 10_000_000;
/** The core's watchpoint table (assembly/debug.ts WP_MAX). */
const WATCHPOINTS_MAX = 16;
const SLICE = 1 << 20;
const NO_DEADLINE = 0xffff_ffff_ffff_ffffn;
/**
 * How often the host sweeps the core's accessed bits into per-page "last touched" epochs (the
 * working set and its order, for savevm). A sweep costs a pass over the page states and a TLB
 * flush: ~0.3 ms per GiB of RAM, so 100 ms keeps it under 1%.
 */
const ACCESS_EPOCH_MS = 100;
/** The working set: what the guest touched in the last two seconds it ran. */
export const WORKING_SET_MS = 2000;
const WORKING_SET_EPOCHS = WORKING_SET_MS / ACCESS_EPOCH_MS;
/** A page's touch count as of now: its swept count, and the current epoch if its accessed bit is set. */
function touches(state: number, last: number, count: number, epoch: number): number {
  if ((state & PageState.Accessed) === 0) return last === 0 ? 0 : count;
  return last !== 0 && epoch - last <= WORKING_SET_EPOCHS ? Math.min(255, count + 1) : 1;
}
/** At most this many page-table pages from Machine.tablePages (its walk reads 512 entries each). */
const TABLE_PAGES_MAX = 512;
/** The reset ROM as QEMU's virt maps it (riscv_virt_board.mrom): 0x1000..0x10000. */
const ROM_START = 0x1000;

export interface MachineOptions {
  ramBytes: number;
  /** Number of harts (-smp), 1 by default. */
  harts?: number;
  /** Deterministic time: mtime advances one tick per 2^shift instructions (like QEMU -icount). */
  icountShift?: number;
  /**
   * With icountShift: QEMU's -icount sleep=on (true): an idle hart lets guest time pass at host
   * speed until its next deadline. Off (the default here): guest time jumps to the deadline.
   */
  icountSleep?: boolean;
  /** Where guest console output goes (UART and HTIF). */
  console?: HtifConsole;
  /** Compile hot guest code to WebAssembly (src/jit/); on unless `enabled: false`. */
  jit?: JitOptions & { enabled?: boolean };
  /** Instructions per slice (the run loop's unit between host work; default 2^20). */
  sliceInstructions?: number;
}

export interface RunOptions {
  /** Wall-clock limit in milliseconds. */
  timeoutMs?: number;
  /** Return after about this many instructions retired (reason "budget"); deterministic with icount. */
  instructions?: number;
  /** Return once this is true, checked between slices (reason "budget"). */
  until?: () => boolean;
}

export interface RunResult {
  exitCode: number;
  reason: "exit" | "timeout" | "stop" | "budget";
  instret: bigint;
  seconds: number;
}

/** The interrupt controller, as the monitor sees it (info pic, info irq). */
export interface InterruptController {
  describe(): string;
  irqCounts(): number[];
}

/** Something with state to reset on system_reset (devices). */
export interface Resettable {
  reset(): void;
}

/** A device whose state a snapshot saves (plain JSON); restored in registration order. */
export interface StatefulDevice {
  name: string;
  state(): unknown;
  restore(state: unknown): void;
}

/** What the hart's thread is doing, for a RunMeter (the restore timeline). */
export type RunKind = "guest" | "fault" | "fetch" | "fetchIdle" | "idle" | "host" | "stopped";

/** Told by the run loop what the hart's thread does from now on (src/snapshot/timeline.ts). */
export interface RunMeter {
  /** Switches to `kind` now; returns what the thread did before. */
  enter(kind: RunKind): RunKind;
}

/** A disk attached to the machine (the board fills these in). */
export interface AttachedDrive {
  index: number;
  file: string;
  readonly: boolean;
  disk: import("./devices/disk.js").BlockBackend;
  /** Set by the snapshot code: called before the guest writes [offset, offset + length). */
  beforeWrite?: (offset: number, length: number) => void;
}

const stdConsole: HtifConsole = {
  write(fd, bytes) {
    writeOut(fd === 2 ? 2 : 1, bytes);
  },
  readByte() {
    return -1;
  },
};

export class Machine {
  readonly core: Core;
  readonly mem: GuestMemory;
  readonly console: HtifConsole;
  /** The JIT: translates hot pages between slices (src/jit/jit.ts). */
  readonly jit: Jit;
  htif: Htif | undefined;
  /** The board's interrupt controller (the PLIC on virt). */
  interruptController: InterruptController | undefined;
  /** Devices to reset with the machine. */
  readonly resettables: Resettable[] = [];
  /** Devices whose state snapshots save, in restore order. */
  readonly stateful: StatefulDevice[] = [];
  /** Disks, in drive order. */
  readonly drives: AttachedDrive[] = [];
  /** The device tree blob the board placed in RAM (QEMU's -machine dumpdtb writes it). */
  deviceTree: Uint8Array | undefined;
  /** The board's configuration (what a snapshot records to rebuild the machine). */
  config: Record<string, unknown> = {};
  /**
   * Called at a slice boundary before commands that run with the hart stopped (savevm, loadvm):
   * devices complete their requests in flight (virtio-blk's deferred reads), so no snapshot
   * captures a half-done request.
   */
  readonly quiesce: (() => void)[] = [];
  /** Commands that must run while the hart is stopped between slices (savevm, loadvm). */
  private pendingWork: (() => Promise<void> | void)[] = [];
  /** Reloads images after a reset (set by the board). */
  onReset: (() => void) | undefined;
  /** Called when the machine ends (flush and close disks). */
  readonly onExit: (() => void)[] = [];
  /** Guest console input is delivered here (the UART's receive). */
  inputSink: ((bytes: Uint8Array) => void) | undefined;
  /** Where pages not present come from (snapshot/source.ts); set with attachSource. */
  private source: PageSource | undefined;
  /** Called before each slice (the lazy restore notes the first guest instruction). */
  beforeSlice: (() => void) | undefined;
  /** Called after each slice, before its exit is handled (the board writes the UART's output). */
  readonly afterSlice: (() => void)[] = [];
  /**
   * While a page source with a background turn is attached, how long the hart's thread may sleep
   * in WFI before it calls it again (ms): short when the turn has work only this thread can do,
   * longer when it only collects what another thread did. Back to 1 when the source detaches.
   */
  backgroundPollMs = 1;
  /** True while the hart sits in WFI with nothing to do (host work then costs the guest nothing). */
  idleNow = false;
  /** Accounts the hart thread's time while a restore is timed (set by the restore timeline). */
  meter: RunMeter | undefined;
  /** Console input the guest has not read yet (the UART's backlog). */
  inputBacklog: () => number = () => this.htifInput.length;
  private readonly icount: number | undefined;
  private readonly icountSleep: boolean;
  /** -no-reboot: a guest reset ends the run (exit code 0) instead of rebooting. */
  noReboot = false;
  private readonly slice: number;
  private stopRequested: { code: number } | undefined;
  private resetRequested = false;
  private paused = false;
  private wakeIdle: (() => void) | undefined;
  private resumeWaiters: (() => void)[] = [];
  /** Guest time (mtime) where the machine stopped; it does not move while stopped. */
  private mtimeBase = 0n;
  /** Input for HTIF's getchar. */
  private readonly htifInput: number[] = [];
  private looping = false;
  /** Per page, the access epoch in which the guest last touched it (0: not since start). */
  private lastTouched: Uint32Array | undefined;
  /**
   * Per page, in how many access epochs the guest touched it since it last left the working set
   * (not touched for WORKING_SET_MS), up to 255: its steady pages (the kernel's paths, the
   * shell) against those of one command.
   */
  private touchCounts: Uint8Array | undefined;
  private accessEpoch = 1;
  private accessEpochStart = 0;
  /** The debugger (src/gdb/): stops it asked for or that hit its breakpoints are reported here. */
  debugStopped: ((e: StopEvent) => void) | undefined;
  /** Interrupts stay masked while single-stepping (QEMU's default, SSTEP_NOIRQ). */
  debugStepNoIrq = false;
  /** The hart the debugger single-steps: it alone runs one instruction, then the machine stops. */
  private debugStepHart: number | undefined;
  private debugPauseWanted = false;
  /** The hart that runs its next instruction alone with breakpoints off (resuming from one). */
  private overBreakpoint: number | undefined;
  private breakpoints: bigint[] = [];

  constructor(opts: MachineOptions) {
    this.core = new Core(opts.ramBytes, opts.harts ?? 1);
    this.mem = new GuestMemory(this.core);
    this.console = opts.console ?? stdConsole;
    this.icount = opts.icountShift;
    this.icountSleep = opts.icountSleep ?? false;
    if (this.icount !== undefined) this.core.exports.setIcount(this.icount);
    this.slice = opts.sliceInstructions ?? SLICE;
    this.jit = new Jit(this.core, opts.jit);
    this.jit.enabled = opts.jit?.enabled ?? true;
  }

  /** Loads ELF segments into RAM (guest-physical addresses); returns the entry point. */
  loadElfSegments(elf: ElfImage, file: string): number {
    for (const seg of elf.segments) {
      if (!this.mem.inRam(seg.paddr, seg.memsz)) {
        throw new ImageError(file, `segment at 0x${seg.paddr.toString(16)} (+0x${seg.memsz.toString(16)}) is outside RAM`);
      }
      const dst = this.mem.writable(seg.paddr, seg.memsz);
      dst.fill(0);
      dst.set(seg.data);
    }
    const tohost = elf.symbols.get("tohost");
    if (tohost !== undefined) this.attachHtif(tohost, elf.symbols.get("fromhost"));
    return elf.entry;
  }

  /** Copies an image into RAM at `pa`. */
  loadBytes(data: Uint8Array, pa: number, file: string): void {
    if (!this.mem.inRam(pa, data.length)) {
      throw new ImageError(file, `does not fit in RAM at 0x${pa.toString(16)} (${data.length} bytes; try a larger -m)`);
    }
    this.mem.write(pa, data);
  }

  attachHtif(tohost: number, fromhost: number | undefined): void {
    if (!this.mem.inRam(tohost, 8)) throw new RvmError(`tohost at 0x${tohost.toString(16)} is outside RAM`);
    const con: HtifConsole = {
      write: (fd, bytes) => this.console.write(fd, bytes),
      readByte: () => this.htifInput.shift() ?? -1,
    };
    this.htif = new Htif(this.mem, tohost, fromhost, con);
    this.core.exports.setHtif(BigInt(tohost));
  }

  /** Console input typed by the user (or piped in). */
  input(bytes: Uint8Array): void {
    this.inputSink?.(bytes);
    if (this.htif) for (const b of bytes) this.htifInput.push(b);
    this.wakeIdle?.();
  }

  /** Something outside the guest (a host timer) may have raised an interrupt: end an idle wait. */
  wake(): void {
    this.wakeIdle?.();
  }

  /** Asks the run loop to end after the current instruction with this exit code. */
  requestStop(code: number): void {
    this.stopRequested = { code };
    this.core.exports.requestStop();
    this.wakeIdle?.();
    this.resume();
  }

  /** system_reset (syscon 0x7777 or the monitor): reset at the next instruction boundary. */
  requestReset(): void {
    if (this.noReboot) {
      this.requestStop(0);
      return;
    }
    this.resetRequested = true;
    this.core.exports.requestStop();
    this.wakeIdle?.();
  }

  /**
   * Runs `work` at the next slice boundary, with the hart stopped (or at once if the run loop is
   * not running). The machine's clock does not advance during it.
   */
  atBoundary<T>(work: () => Promise<T> | T): Promise<T> {
    if (!this.looping) {
      return Promise.resolve().then(() => {
        for (const q of this.quiesce) q();
        return work();
      });
    }
    return new Promise<T>((resolve, reject) => {
      this.pendingWork.push(async () => {
        try {
          resolve(await work());
        } catch (e) {
          reject(e);
        }
      });
      this.core.exports.requestStop();
      this.wakeIdle?.();
      const waiters = this.resumeWaiters;
      this.resumeWaiters = [];
      for (const w of waiters) w();
    });
  }

  /** Guest time where the machine stands (for snapshots). */
  get mtime(): bigint {
    return this.core.exports.getMtime();
  }

  /** After a restore rewrote the hart state: guest time continues from its saved mtime. */
  timeRestored(): void {
    this.mtimeBase = this.core.exports.getMtime();
  }

  get running(): boolean {
    return !this.paused;
  }

  /** Monitor `stop`: the hart stops at the next slice boundary; guest time stands still. */
  pause(): void {
    this.paused = true;
    this.core.exports.requestStop();
    this.wakeIdle?.();
  }

  /** The debugger stops the machine; the stop is reported through debugStopped once reached. */
  debugPause(): void {
    if (this.paused && this.debugStepHart === undefined) {
      this.debugStopped?.({ reason: "interrupt", hart: this.core.selectedHart });
      return;
    }
    this.debugPauseWanted = true;
    this.pause();
  }

  /**
   * The debugger continues the harts in `harts` (all when absent; the others stay where they are,
   * as with gdb's scheduler-locking); the running hart's instruction at pc runs even if it has a
   * breakpoint.
   */
  debugResume(harts?: readonly number[]): void {
    let held = 0;
    if (harts) for (let h = 0; h < this.core.harts; h++) if (!harts.includes(h)) held |= 1 << h;
    this.core.exports.debugSetHeldHarts(held);
    const current = this.core.selectedHart;
    this.overBreakpoint = this.breakpoints.length > 0 && (held & (1 << current)) === 0 ? current : undefined;
    this.resume();
  }

  /** The debugger steps one instruction of `hart` (into the trap handler if it traps); the others wait. */
  debugStep(hart: number): void {
    this.debugStepHart = hart;
    this.resume();
  }

  /** The -d log (src/trace.ts): the core reports the items it asks for. */
  private tracer: Tracer | undefined;

  setTracer(tracer: Tracer | undefined): void {
    this.tracer = tracer;
    const ex = this.core.exports;
    this.core.onTrace = tracer?.onCore;
    this.core.onUnmapped = tracer ? (addr, size, write) => tracer.unmapped(addr, size, write) : undefined;
    if (tracer) {
      tracer.attachDevices();
      tracer.multiHart = this.core.harts > 1;
      const core = this.core;
      tracer.target = {
        currentHart: () => core.selectedHart,
        registerDump: (pc) => this.selectedRegisters(pc),
        satp: () => core.csr(0x180),
        // Code for in_asm, read while the hart runs: translated without side effects, from RAM
        // or the reset ROM only, never restoring a page.
        readVirtual: (addr, len) => {
          const pa = ex.debugTranslate(addr, 0);
          if (pa < 0n) throw new MemoryAccessError(addr, "no mapping");
          const p = Number(pa);
          if (this.mem.inRam(p, len) && (core.pages[(p - RAM_BASE) / 4096 | 0] & PageState.NotRestored) === 0) return this.mem.view(p, len).slice();
          if (p >= ROM_START && p + len <= core.rom.length) return core.rom.slice(p, p + len);
          throw new MemoryAccessError(pa, "not RAM or ROM");
        },
      };
    }
    ex.setTraceItems(tracer?.coreFlags() ?? 0);
  }

  /** The debugger's breakpoints (virtual addresses), kept in the core's table, not in memory. */
  setBreakpoints(addrs: bigint[]): void {
    const ex = this.core.exports;
    const n = Math.min(addrs.length, 64);
    const table = new DataView(ex.memory.buffer, ex.debugBreakpointTable(), 64 * 8);
    for (let i = 0; i < n; i++) table.setBigUint64(i * 8, BigInt.asUintN(64, addrs[i]), true);
    this.breakpoints = addrs.slice(0, n);
    ex.debugSetBreakpointCount(n);
  }

  /**
   * The debugger's watchpoints (virtual addresses, every hart), kept in the core's table: an access
   * that touches one completes its instruction, then the machine stops. False if there are more
   * than the core holds (gdb then watches in software).
   */
  setWatchpoints(list: readonly Watchpoint[]): boolean {
    const ex = this.core.exports;
    if (list.length > WATCHPOINTS_MAX) return false;
    const table = new DataView(ex.memory.buffer, ex.debugWatchTable(), WATCHPOINTS_MAX * 24);
    list.forEach((w, i) => {
      table.setBigUint64(i * 24, BigInt.asUintN(64, w.addr), true);
      table.setBigUint64(i * 24 + 8, BigInt(Math.max(1, w.len)), true);
      table.setBigUint64(i * 24 + 16, BigInt(w.kind === "watch" ? 2 : w.kind === "rwatch" ? 1 : 3), true);
    });
    ex.debugSetWatchCount(list.length);
    return true;
  }

  /** Monitor `cont`. */
  resume(): void {
    this.paused = false;
    const waiters = this.resumeWaiters;
    this.resumeWaiters = [];
    for (const w of waiters) w();
  }

  /** The machine's page source, if one is attached (a restore or a background save's capture). */
  get pageSource(): PageSource | undefined {
    return this.source;
  }

  /**
   * Makes `source` the machine's page source: the run loop's demand faults and background turns,
   * GuestMemory's host accesses and the disks' writes go to it. A source already attached is
   * cancelled first (the machine's memory is being replaced).
   */
  attachSource(source: PageSource): void {
    const old = this.source;
    this.source = undefined;
    if (old && old !== source) old.cancel?.();
    this.source = source;
    this.mem.restorePage = (p) => source.demandNow(p);
    this.mem.restorePageLater = source.demandHost ? (p) => source.demandHost!(p) : undefined;
  }

  /** Detaches `source` if it is the machine's (or, without an argument, whatever is attached). */
  detachSource(source?: PageSource): void {
    if (source && this.source !== source) return;
    this.source = undefined;
    this.mem.restorePage = undefined;
    this.mem.restorePageLater = undefined;
    this.backgroundPollMs = 1;
  }

  /**
   * The guest is about to write [offset, offset + length) of drive `drive` (virtio-blk calls
   * this before the disk changes): the page source first (a restore brings in pages that still
   * mirror those blocks, a capture keeps the old blocks), then the drive's own journal.
   */
  beforeDiskWrite(drive: number, offset: number, length: number): void {
    this.source?.beforeDiskWrite?.(drive, offset, length);
    this.drives.find((d) => d.index === drive)?.beforeWrite?.(offset, length);
  }

  /** Power-on reset of the hart, RAM and devices, then the board reloads its images. */
  reset(): void {
    // A restore or capture in progress gives up: RAM starts over.
    const source = this.source;
    this.detachSource();
    source?.cancel?.();
    const ex = this.core.exports;
    ex.reset();
    if (this.icount !== undefined) ex.setIcount(this.icount);
    this.core.ram.fill(0);
    this.mem.untouched = false;
    this.core.pages.fill(0);
    this.mem.clearDiskBlocks();
    if (this.htif) ex.setHtif(BigInt(this.htif.tohost));
    for (const d of this.resettables) d.reset();
    this.mtimeBase = 0n;
    this.onReset?.();
  }

  async run(opts: RunOptions = {}): Promise<RunResult> {
    this.mem.untouched = false;
    try {
      return await this.loop(opts);
    } finally {
      this.looping = false; // also when a restore failure or a device error ends the run
    }
  }

  private async loop(opts: RunOptions): Promise<RunResult> {
    const core = this.core;
    const ex = core.exports;
    const start = performance.now();
    const startInstret = core.instret;
    const deadline = opts.timeoutMs !== undefined ? start + opts.timeoutMs : Infinity;
    const realtime = this.icount === undefined;
    let wallStart = start;
    let mtimeStart = this.mtimeBase;
    let lastYield = start;
    // The first access epoch starts with the first run, not at the machine's creation: its sweep
    // (and the TLB flush that comes with it) is not due the moment a restored guest starts.
    if (this.accessEpochStart === 0) this.accessEpochStart = start;
    const finish = (exitCode: number, reason: RunResult["reason"]): RunResult => {
      this.looping = false;
      this.mtimeBase = ex.getMtime();
      if (reason !== "budget") for (const f of this.onExit) f();
      if (reason === "exit" || reason === "stop") this.debugStopped?.({ reason: "exited", hart: 0, exitCode });
      this.tracer?.flush();
      return { exitCode, reason, instret: core.instret - startInstret, seconds: (performance.now() - start) / 1000 };
    };
    this.looping = true;
    for (;;) {
      if (this.pendingWork.length > 0) {
        this.mtimeBase = ex.getMtime();
        const work = this.pendingWork;
        this.pendingWork = [];
        this.meter?.enter("stopped");
        for (const q of this.quiesce) q();
        for (const w of work) await w();
        this.meter?.enter("host");
        // Guest time stood still during the work (or was restored by it).
        wallStart = performance.now();
        mtimeStart = this.mtimeBase;
        continue;
      }
      if (this.stopRequested) return finish(this.stopRequested.code, "stop");
      if (this.paused) {
        this.mtimeBase = ex.getMtime();
        this.meter?.enter("stopped");
        if (this.debugPauseWanted) {
          this.debugPauseWanted = false;
          this.debugStopped?.({ reason: "interrupt", hart: core.selectedHart });
        }
        await new Promise<void>((resolve) => this.resumeWaiters.push(resolve));
        this.meter?.enter("host");
        if (this.pendingWork.length > 0) continue;
        wallStart = performance.now();
        mtimeStart = this.mtimeBase;
        continue;
      }
      const now = performance.now();
      if (realtime) ex.setMtime(mtimeStart + BigInt(Math.floor((now - wallStart) * (MTIME_HZ / 1000))));
      if (opts.until?.()) return finish(0, "budget");
      let slice = this.slice;
      // A debugger's step, or the step over the breakpoint a hart resumes from: that hart alone
      // runs one instruction, with breakpoints off.
      const stepping = this.debugStepHart !== undefined;
      const alone = this.debugStepHart ?? this.overBreakpoint;
      if (alone !== undefined) {
        slice = 1;
        ex.debugSetBreakpointCount(0);
        if (stepping && this.debugStepNoIrq) ex.debugSetNoIrq(1);
      }
      if (opts.instructions !== undefined) {
        const left = opts.instructions - Number(core.instret - startInstret);
        if (left <= 0) return finish(0, "budget");
        slice = Math.min(slice, left);
      }
      this.beforeSlice?.();
      this.meter?.enter("guest");
      const reason = alone === undefined ? core.run(slice) : ex.debugRunHart(alone, 1) as Exit;
      this.meter?.enter("host");
      for (const f of this.afterSlice) f();
      if (alone !== undefined) {
        ex.debugSetBreakpointCount(this.breakpoints.length);
        ex.debugSetNoIrq(0);
        if (reason !== Exit.Page) this.overBreakpoint = undefined;
      }
      const stop = this.stopRequested as { code: number } | undefined;
      switch (reason) {
        case Exit.Htif:
          this.htif?.handle();
          if (this.htif?.exitCode !== undefined) return finish(this.htif.exitCode, "exit");
          break;
        case Exit.Stop:
          if (stop) return finish(stop.code, "stop");
          if (this.resetRequested) {
            this.resetRequested = false;
            this.reset();
            wallStart = performance.now();
            mtimeStart = 0n;
          }
          break;
        case Exit.Page: {
          const page = ex.exitPage();
          if (!this.source) throw new RvmError(`the guest touched page ${page}, which is not restored`);
          const wait = this.source.demand(page);
          if (wait) await wait;
          break;
        }
        case Exit.Wfi:
          if (alone !== undefined) break; // a step of a hart in WFI: it stays there
          this.idleNow = true;
          if (this.source?.background) {
            this.meter?.enter("fetchIdle");
            this.source.background();
          }
          this.meter?.enter("idle");
          await this.idle(realtime, deadline);
          this.meter?.enter("host");
          this.idleNow = false;
          break;
        case Exit.Debug: {
          // A breakpoint (before the instruction) or a watchpoint (after it; also ends a step).
          this.paused = true;
          this.debugStepHart = undefined;
          const kinds = ex.debugWatchHitKinds();
          const hart = core.selectedHart;
          if (kinds === 0) this.debugStopped?.({ reason: "breakpoint", hart });
          else this.debugStopped?.({ reason: "watch", hart, watch: { kind: kinds === 2 ? "watch" : kinds === 1 ? "rwatch" : "awatch", addr: ex.debugWatchHitAddr() } });
          break;
        }
        case Exit.Slice:
          break;
      }
      // A step is done once the instruction ran or trapped (not when it waited for a page).
      if (stepping && reason !== Exit.Page && reason !== Exit.Debug) {
        this.debugStepHart = undefined;
        this.paused = true;
        this.debugStopped?.({ reason: "step", hart: core.selectedHart });
      }
      this.htif?.poll();
      if (this.source?.background) {
        this.meter?.enter("fetch");
        this.source.background();
        this.meter?.enter("host");
      }
      this.jit.poll();
      const t = performance.now();
      if (t - this.accessEpochStart > ACCESS_EPOCH_MS) this.sweepAccessed(t);
      if (t >= deadline) return finish(124, "timeout");
      if (t - lastYield > 20) {
        await yieldToEventLoop();
        lastYield = performance.now();
      }
    }
  }

  /**
   * Ends an access epoch: every page the guest touched in it (accessed bit set) gets the epoch's
   * number, and the bits are cleared in the core (which flushes the TLBs, so the next touch of
   * each page sets its bit again).
   */
  private sweepAccessed(now: number): void {
    const pages = this.core.pages;
    const last = (this.lastTouched ??= new Uint32Array(pages.length));
    const count = (this.touchCounts ??= new Uint8Array(pages.length));
    const epoch = this.accessEpoch++;
    // The core finds the touched pages (a loop over every page state here, before V8 optimized
    // it, took 5-15 ms per GiB of RAM, one of them soon after a restored guest starts).
    const ex = this.core.exports;
    const found = new Uint32Array(ex.memory.buffer, ex.scratchAddress(), ex.scratchSize() / 4);
    for (let from = 0; from < pages.length; from = ex.sweepNext()) {
      const n = ex.collectAccessed(from);
      for (let k = 0; k < n; k++) {
        const p = found[k];
        count[p] = last[p] !== 0 && epoch - last[p] <= WORKING_SET_EPOCHS ? Math.min(255, count[p] + 1) : 1;
        last[p] = epoch;
      }
    }
    this.accessEpochStart = now;
  }

  /**
   * The working set as of now, for a save that reads it later (savevm -b): recentlyAccessed over
   * copies of the accessed bits and last-touched epochs, taken with two memory copies (no pass
   * over the pages in JavaScript while the guest waits).
   */
  workingSetNow(): (page: number) => boolean {
    const age = this.touchAgesNow();
    return (p) => age(p) <= WORKING_SET_MS;
  }

  /**
   * touchAge as of now, for a save that reads it later (savevm -b; a store save orders its
   * working set by it): copies of the accessed bits and last-touched epochs (two memory copies).
   */
  touchAgesNow(): (page: number) => number {
    return this.touchesNow().age;
  }

  /**
   * touchAge and touchCount as of now (a save orders its working set by them): copies of the
   * accessed bits, last-touched epochs and touch counts (three memory copies).
   */
  touchesNow(): { age: (page: number) => number; count: (page: number) => number } {
    const now = this.core.pages.slice();
    const last = this.lastTouched?.slice();
    const count = this.touchCounts?.slice();
    const epoch = this.accessEpoch;
    return {
      age: (p) => ((now[p] & PageState.Accessed) !== 0 ? 0 : last === undefined || last[p] === 0 ? Infinity : (epoch - last[p]) * ACCESS_EPOCH_MS),
      count: (p) => touches(now[p], last?.[p] ?? 0, count?.[p] ?? 0, epoch),
    };
  }

  /**
   * In how many access epochs (the current one included) the guest touched `page` since it last
   * left the working set (see touchCounts); 0 if not since the machine started. Within an age,
   * savevm puts the pages with more first: measured on the page-cache guest (issue 13, ord10),
   * the pages its echo needs are ~80% of the newest epoch's pages touched in every epoch, and
   * 2-16% of those touched in one or two (the last command's).
   */
  touchCount(page: number): number {
    return touches(this.core.pages[page], this.lastTouched?.[page] ?? 0, this.touchCounts?.[page] ?? 0, this.accessEpoch);
  }

  /**
   * The RAM pages the harts need first once restored: for each hart, the page-table pages its
   * translation of pc walks (root first) and the pc page, then the same for its stack pointer
   * (sp), its trap vector (stvec) and its thread pointer (tp); guest-physical through the core's
   * own page-table walk (Core.walk, which lists the page-table entries it read) without side
   * effects (no A/D update, no trap, no page restored); what does not translate or is not RAM is
   * left out. Measured on the page-cache guest (demand
   * faults of a store restore, in order): the page-table root, the pc walk's tables, the trap
   * vector (a timer interrupt is taken at once), the stack's tables, the task at tp, the stack.
   * savevm puts them at the head of the working set, so a lazy restore brings them in first.
   * The kernel's addresses go through satp whatever the hart's mode: in M-mode (OpenSBI, e.g.
   * in an SBI call: pc and sp are OpenSBI's, physical) the trap vector, the task at tp (OpenSBI
   * keeps the caller's tp outside its trap entry) and, when MPP is S or U, mepc (where the hart
   * returns); in U-mode the trap vector and the task in sscratch (Linux keeps it there while in
   * user mode; pc, sp and tp are then the process's).
   */
  firstPages(): number[] {
    const core = this.core;
    const out: number[] = [];
    const page = (pa: number): number | undefined => {
      if (!this.mem.inRam(pa, 8)) return undefined;
      const p = Math.floor((pa - RAM_BASE) / 4096);
      if (!out.includes(p)) out.push(p);
      return (core.pages[p] & PageState.NotRestored) === 0 ? p : undefined;
    };
    // `va` as the hart sees it now, with the page-table pages its walk reads (satp's root first,
    // up to the leaf) ahead of the page it maps to; the core walks (Core.walk: no A/D update, no
    // trap, no page restored). A supervisor address (`sv`) goes through satp whatever the hart's
    // mode: a hart saved in M-mode (OpenSBI: an SBI call or a timer) translates nothing, yet
    // returns to the kernel, whose trap vector, task and code come first after the restore. The
    // walk is the kernel's S-mode load with SUM and MXR: any valid leaf maps, whatever its
    // permissions (the pages are wanted even where this access would fault).
    const SUM_MXR = (1n << 18n) | (1n << 19n);
    const add = (va: bigint, access: number, sv = false) => {
      if (core.priv === 3 && !sv) {
        // Physical (or through satp under MPRV, for a load): no page-table pages wanted.
        const pa = core.exports.debugTranslate(va, access);
        if (pa >= 0n) page(Number(pa));
        return;
      }
      const { pa, ptes } = core.walk(va, 1, core.csr(0x180), 1, SUM_MXR);
      for (const pte of ptes) if (page(Number(pte)) === undefined) return;
      if (pa >= 0n && pa <= BigInt(Number.MAX_SAFE_INTEGER)) page(Number(pa));
    };
    for (let h = 0; h < core.harts; h++) {
      core.withHart(h, () => {
        const priv = core.priv;
        add(core.pc, 0); // fetch
        add(core.x(2), 1); // load
        // In M-mode (OpenSBI), where the hart returns to: mepc, when MPP is S or U.
        if (priv === 3 && ((core.csr(0x300) >> 11n) & 3n) !== 3n) add(core.csr(0x341), 0, true);
        // A restored hart often takes an interrupt at once (a timer due while it was saved):
        // the trap vector, and what a kernel's entry touches first (Linux: the task at tp, which
        // OpenSBI leaves in tp, and keeps in sscratch while the hart is in U-mode).
        add(BigInt.asUintN(64, core.csr(0x105)) & ~3n, 0, true); // stvec
        add(core.x(4), 1, priv !== 0); // tp
        if (priv === 0 && core.csr(0x140) !== 0n) add(core.csr(0x140), 1, true); // sscratch
      });
    }
    return out;
  }

  /**
   * The page-table pages of each hart's current address space: satp's tree (Sv39/48/57), the
   * root first, then each level's tables in the order their entries name them; RAM pages only,
   * each once, at most TABLE_PAGES_MAX (a tree that large is cut, not slowed: the walk reads 512
   * entries per table). A table not restored yet (a lazy restore still running) is listed but
   * not descended into (its entries are not known). Read from RAM without side effects. savevm
   * puts them right after the harts' first pages (firstPages): measured on the page-cache
   * guest (issue 13, ord10), a restored guest walks these tables within its first ~100 demand
   * faults (the current process's mappings, the kernel's), but the guest had not touched many
   * of them for 300-700 ms before the save (its TLBs held the translations), so by recency
   * they came after ~3.3 MB of the working set; together they are ~29 pages, ~5 KB stored.
   */
  tablePages(): number[] {
    const core = this.core;
    const pages = core.pages.length;
    const words = new Uint32Array(core.ram.buffer, core.ram.byteOffset, core.ram.byteLength >>> 2);
    const base = RAM_BASE / 4096;
    const out: number[] = [];
    const seen = new Set<number>();
    for (let h = 0; h < core.harts && out.length < TABLE_PAGES_MAX; h++) {
      const satp = BigInt.asUintN(64, core.withHart(h, () => core.csr(0x180)));
      const mode = Number(satp >> 60n);
      const levels = mode === 8 ? 3 : mode === 9 ? 4 : mode === 10 ? 5 : 0;
      if (levels === 0) continue;
      const root = Number(satp & 0xfff_ffff_ffffn) - base;
      if (root < 0 || root >= pages || seen.has(root)) continue;
      // Breadth first: [page, level] pairs.
      const queue: number[] = [root, levels - 1];
      seen.add(root);
      for (let q = 0; q < queue.length && out.length < TABLE_PAGES_MAX; q += 2) {
        const t = queue[q], level = queue[q + 1];
        out.push(t);
        if (level === 0 || core.pages[t] & PageState.NotRestored) continue;
        for (let i = 0, w = t * 1024; i < 512; i++, w += 2) {
          const lo = words[w];
          if ((lo & 1) === 0 || (lo & 0xe) !== 0) continue; // invalid, or a leaf
          const child = (words[w + 1] & 0x3f_ffff) * 2 ** 22 + (lo >>> 10) - base;
          if (child < 0 || child >= pages || seen.has(child)) continue;
          seen.add(child);
          queue.push(child, level - 1);
        }
      }
    }
    return out;
  }

  /** Whether the guest touched `page` in the last WORKING_SET_MS it ran (its working set). */
  recentlyAccessed(page: number): boolean {
    return this.touchAge(page) <= WORKING_SET_MS;
  }

  /**
   * How long ago (in ms of guest running, to the access-epoch granularity) the guest last
   * touched `page`: 0 in the current epoch; Infinity if not since the machine started.
   */
  touchAge(page: number): number {
    if (this.core.pages[page] & PageState.Accessed) return 0;
    const e = this.lastTouched?.[page] ?? 0;
    return e === 0 ? Infinity : (this.accessEpoch - e) * ACCESS_EPOCH_MS;
  }

  /** WFI with nothing pending: sleep until the next timer deadline or input (or skip ahead). */
  private async idle(realtime: boolean, wallDeadline: number): Promise<void> {
    const ex = this.core.exports;
    const due = ex.timerDeadline();
    const now = ex.getMtime();
    if (!realtime && !this.icountSleep) {
      // Deterministic time: nothing but input can happen before the deadline, so jump to it.
      if (due !== NO_DEADLINE && due > now) {
        ex.setMtime(due);
        return;
      }
    }
    let ms = due > now ? Number(due - now) / (MTIME_HZ / 1000) : 0;
    if (!realtime && !this.icountSleep) ms = 50; // no timer armed: wait for input
    // A restore in progress uses the idle time; look again soon.
    if (this.source?.background) ms = Math.min(ms, this.backgroundPollMs);
    const wait = Math.max(0, Math.min(ms, 1000, wallDeadline - performance.now()));
    if (wait <= 0) return;
    const t0 = performance.now();
    let reachedDeadline = false;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        reachedDeadline = wait === ms;
        resolve();
      }, wait);
      this.wakeIdle = () => {
        clearTimeout(timer);
        resolve();
      };
    });
    this.wakeIdle = undefined;
    if (!realtime && this.icountSleep) {
      // QEMU's icount sleep=on: the idle time passed at host speed, up to the deadline. A wait
      // that input did not cut short ends exactly on it, so timer-only runs stay reproducible.
      const passed = now + BigInt(Math.round((performance.now() - t0) * (MTIME_HZ / 1000)));
      ex.setMtime(due !== NO_DEADLINE && (reachedDeadline || passed >= due) ? due : passed);
    }
  }

  // --- for the monitor ---

  /** The hart the monitor looks at (`cpu N`; QEMU's default is the first). */
  monitorCpu = 0;

  /** Monitor `cpu N`: an error message, or undefined. */
  selectCpu(n: number): string | undefined {
    if (!Number.isInteger(n) || n < 0 || n >= this.core.harts) return `invalid CPU index ${n} (this machine has ${this.core.harts})`;
    this.monitorCpu = n;
    return undefined;
  }

  /** Monitor `info cpus`, in QEMU's format with each hart's pc, privilege and WFI state. */
  cpus(): string {
    const lines: string[] = [];
    for (let h = 0; h < this.core.harts; h++) {
      const { pc, priv, wfi } = this.core.withHart(h, () => ({ pc: this.core.pc, priv: this.core.priv, wfi: this.core.inWfi }));
      const mark = h === this.monitorCpu ? "*" : " ";
      lines.push(`${mark} CPU #${h}: pc=0x${BigInt.asUintN(64, pc).toString(16).padStart(16, "0")} mode=${"USHM"[priv]}${wfi ? " (halted)" : ""} thread_id=${process.pid}`);
    }
    return lines.join("\n") + "\n";
  }

  registers(): string {
    return this.core.withHart(this.monitorCpu, () => this.selectedRegisters());
  }

  private selectedRegisters(pc = this.core.pc): string {
    const c = this.core;
    const hex = (v: bigint) => BigInt.asUintN(64, v).toString(16).padStart(16, "0");
    const names = GPR_NAMES;
    const lines = [
      ` pc       ${hex(pc)}`,
      ` mhartid  ${hex(c.csr(0xf14))}`,
      ` mstatus  ${hex(c.csr(0x300))}`,
      ` priv     ${"USHM"[c.priv]}`,
      ` satp     ${hex(c.csr(0x180))}`,
      ` mip      ${hex(c.csr(0x344))}`,
      ` mie      ${hex(c.csr(0x304))}`,
      ` mideleg  ${hex(c.csr(0x303))}`,
      ` medeleg  ${hex(c.csr(0x302))}`,
      ` mtvec    ${hex(c.csr(0x305))}`,
      ` stvec    ${hex(c.csr(0x105))}`,
      ` mepc     ${hex(c.csr(0x341))}`,
      ` sepc     ${hex(c.csr(0x141))}`,
      ` mcause   ${hex(c.csr(0x342))}`,
      ` scause   ${hex(c.csr(0x142))}`,
      ` mtval    ${hex(c.csr(0x343))}`,
      ` stval    ${hex(c.csr(0x143))}`,
      ` mscratch ${hex(c.csr(0x340))}`,
      ` menvcfg  ${hex(c.csr(0x30a))}`,
      ` stimecmp ${hex(c.csr(0x14d))}`,
      ` time     ${hex(c.csr(0xc01))}`,
      ` sscratch ${hex(c.csr(0x140))}`,
    ];
    for (let i = 0; i < 32; i += 4) {
      lines.push([0, 1, 2, 3].map((j) => ` x${i + j}/${names[i + j]}`.padEnd(10) + ` ${hex(c.x(i + j))}`).join(""));
    }
    return lines.join("\n") + "\n";
  }

  mtree(): string {
    const hex = (v: number) => v.toString(16).padStart(16, "0");
    const rows = this.core.regions().map((r) => `  ${hex(r.base)}-${hex(r.base + r.size - 1)} (prio 0, ${r.kind}): ${r.name}`);
    return "address-space: memory\n" + rows.join("\n") + "\n";
  }

  /** A register by name for the monitor's expressions: pc, priv, x0..x31 and ABI names, f0..f31, CSRs. */
  register(name: string): bigint | undefined {
    const c = this.core;
    if (name === "pc") return c.pc;
    if (name === "priv") return BigInt(c.priv);
    let m = /^x(\d+)$/.exec(name);
    if (m && Number(m[1]) < 32) return c.x(Number(m[1]));
    const gi = name === "fp" ? 8 : GPR_NAMES.indexOf(name);
    if (gi >= 0) return c.x(gi);
    m = /^f(\d+)$/.exec(name);
    const fi = m && Number(m[1]) < 32 ? Number(m[1]) : FPR_NAMES.indexOf(name);
    if (fi >= 0) return c.f(fi);
    const csr = CSR_NUMBERS.get(name);
    if (csr !== undefined) return c.csr(csr);
    return undefined;
  }

  /** info mem: the monitor hart's address space from its page table, as QEMU prints it. */
  memInfo(): string {
    const c = this.core;
    const satp = BigInt.asUintN(64, c.withHart(this.monitorCpu, () => c.csr(0x180)));
    // Page-table pages are read as the hart would: RAM only (a page not yet restored is restored).
    return infoMem(satp, (pa) => (this.mem.inRam(Number(pa), 8) ? this.mem.readU64(Number(pa)) : 0n));
  }

  /** info tlb: what every hart's software TLBs hold now. */
  tlbInfo(): string {
    const ex = this.core.exports;
    const ram = ex.ramAddress(), rom = ex.romAddress(), entries = ex.tlbSize();
    const views = Array.from({ length: this.core.harts }, (_, h) => ({
      hart: h,
      tables: new DataView(ex.memory.buffer, ex.tlbAddress(h), entries * 16 * 3),
      entries,
      physical: (host: number) => host >= ram ? BigInt(host - ram) + BigInt(RAM_BASE)
        : host >= rom && host < rom + 0x10000 ? BigInt(host - rom) : undefined,
    }));
    return infoTlb(views);
  }

  /** info pic */
  pic(): string {
    return this.interruptController?.describe() ?? "Interrupt controller information not available.\n";
  }

  /** info irq, as QEMU prints it: sources that were raised, with their counts. */
  irq(): string {
    const counts = this.interruptController?.irqCounts();
    if (!counts) return "IRQ statistics not available.\n";
    const lines = ["IRQ statistics for riscv.sifive.plic:"];
    counts.forEach((n, i) => { if (n > 0) lines.push(`${String(i).padStart(2)}: ${n}`); });
    return lines.join("\n") + "\n";
  }

  /** info qtree: the devices on the system bus, QEMU's layout, with their MMIO ranges and PLIC sources. */
  qtree(): string {
    const hex = (v: number) => v.toString(16).padStart(16, "0");
    const lines = ["bus: main-system-bus", "  type System"];
    const devices: { name: string; base: number; size: number; irq?: number; props: string[] }[] = [];
    // The core's CLINT is QEMU's two ACLINT devices: MSWI at +0 (16 KiB), MTIMER at +0x4000.
    const clint = this.core.regions().find((r) => r.name === "riscv.aclint");
    if (clint) {
      const harts = `num-harts = ${this.core.harts} (0x${this.core.harts.toString(16)})`;
      devices.push({ name: "riscv.aclint.swi", base: clint.base, size: 0x4000, props: [harts] });
      devices.push({ name: "riscv.aclint.mtimer", base: clint.base + 0x4000, size: clint.size - 0x4000, props: [harts, "timebase-freq = 10000000 (0x989680)"] });
    }
    for (const m of this.core.mappings()) {
      devices.push({ name: m.type ?? m.name, base: m.base, size: m.size, irq: m.irq, props: m.properties?.() ?? [] });
    }
    devices.sort((a, b) => b.base - a.base);
    for (const d of devices) {
      lines.push(`  dev: ${d.name}, id ""`);
      if (d.irq !== undefined) lines.push(`    gpio-out "sysbus-irq" 1`, `    irq ${d.irq} (riscv.sifive.plic source)`);
      lines.push(`    mmio ${hex(d.base)}/${hex(d.size)}`);
      for (const p of d.props) lines.push("    " + p);
    }
    return lines.join("\n") + "\n";
  }

  pageSummary(): string {
    const pages = this.core.pages;
    let notRestored = 0, dirty = 0, disk = 0, accessed = 0;
    for (let i = 0; i < pages.length; i++) {
      const s = pages[i];
      if (s & PageState.NotRestored) notRestored++;
      if (s & PageState.Dirty) dirty++;
      if (s & PageState.Disk) disk++;
      if (s & PageState.Accessed) accessed++;
    }
    return [
      `pages: ${pages.length} of 4 KiB (${this.core.ramBytes >> 20} MiB)`,
      `  resident        ${pages.length - notRestored}`,
      `  not restored    ${notRestored}`,
      `  dirty           ${dirty}`,
      `  disk-backed     ${disk}`,
      `  accessed        ${accessed}`,
    ].join("\n") + "\n";
  }

  /**
   * Walks [addr, addr + len) page by page for the monitor and the debugger: virtual addresses go
   * through the hart's current translation without side effects (no A/D update, no trap; a page
   * table page not yet restored is restored first). Only RAM and the reset ROM are read (device
   * registers are not: a read may have side effects); anything else throws a MemoryAccessError,
   * which the monitor prints as QEMU does.
   */
  private debugPages(addr: bigint, len: number, virtual: boolean, hart: number, each: (pa: bigint, done: number, chunk: number) => void): void {
    for (let done = 0; done < len; ) {
      const va = BigInt.asUintN(64, addr + BigInt(done));
      const chunk = Math.min(len - done, 4096 - Number(va & 0xfffn));
      let pa = va;
      if (virtual) {
        const translate = () => this.core.withHart(hart, () => this.core.exports.debugTranslate(va, 1));
        let r = translate();
        if (r === -2n && this.mem.restorePage) {
          this.mem.restorePage(this.core.exports.exitPage());
          r = translate();
        }
        if (r < 0n) throw new MemoryAccessError(va, `cannot access virtual address 0x${va.toString(16)}`);
        pa = r;
      }
      each(pa, done, chunk);
      done += chunk;
    }
  }

  /** Writes guest memory for the debugger (RAM only; pages become dirty as after a hart store). */
  writeMemory(addr: bigint, data: Uint8Array, virtual: boolean, hart = this.monitorCpu): void {
    this.debugPages(addr, data.length, virtual, hart, (pa, done, chunk) => {
      if (!this.mem.inRam(Number(pa), chunk)) throw new MemoryAccessError(pa, `cannot write memory at 0x${pa.toString(16)} (not RAM)`);
    });
    this.debugPages(addr, data.length, virtual, hart, (pa, done, chunk) => this.mem.write(Number(pa), data.subarray(done, done + chunk)));
    this.core.exports.storesChanged();
  }

  /** Reads guest memory for the monitor; virtual addresses use the hart's translation. */
  readMemory(addr: bigint, len: number, virtual: boolean, hart = this.monitorCpu): Uint8Array {
    const out = new Uint8Array(len);
    this.debugPages(addr, len, virtual, hart, (pa, done, chunk) => {
      const p = Number(pa);
      if (this.mem.inRam(p, chunk)) out.set(this.mem.view(p, chunk), done);
      else if (p >= ROM_START && p + chunk <= this.core.rom.length) out.set(this.core.rom.subarray(p, p + chunk), done);
      else throw new MemoryAccessError(pa, `cannot access memory at 0x${pa.toString(16)} (not RAM or ROM)`);
    });
    return out;
  }
}
