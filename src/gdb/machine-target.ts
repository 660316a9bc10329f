// The machine as the gdb stub sees it: harts, registers in gdb's numbering, memory through the
// selected hart's MMU (no side effects) or physical, breakpoints, stops and steps. The run loop
// (src/machine.ts) does the stopping; this file only translates.

import type { Machine } from "../machine.js";
import type { DebugTarget, StopEvent, Watchpoint } from "./stub.js";
import { REG_CSR0, REG_F0, REG_PC, REG_PRIV } from "./target-xml.js";

export class MachineDebugTarget implements DebugTarget {
  onStop: ((e: StopEvent) => void) | undefined;
  private csrList: number[] | undefined;

  constructor(
    private readonly machine: Machine,
    private readonly monitorLine: (line: string) => Promise<string>,
    private readonly quit: () => void,
  ) {
    machine.debugStopped = (e) => this.onStop?.(e);
  }

  hartCount(): number {
    return this.machine.core.harts;
  }

  halted(hart: number): boolean {
    const c = this.machine.core;
    return c.withHart(hart, () => c.inWfi);
  }

  get running(): boolean {
    return this.machine.running;
  }

  stop(): void {
    this.machine.debugPause();
  }

  resume(harts?: readonly number[]): void {
    this.machine.debugResume(harts);
  }

  step(hart: number): void {
    this.machine.debugStep(hart);
  }

  csrs(): number[] {
    if (!this.csrList) {
      const ex = this.machine.core.exports;
      this.csrList = [];
      for (let n = 0; n < 4096; n++) if (ex.csrExists(n)) this.csrList.push(n);
    }
    return this.csrList;
  }

  readRegister(hart: number, n: number): bigint | undefined {
    return this.machine.core.withHart(hart, () => this.readSelected(n));
  }

  writeRegister(hart: number, n: number, v: bigint): boolean {
    return this.machine.core.withHart(hart, () => this.writeSelected(n, v));
  }

  private readSelected(n: number): bigint | undefined {
    const c = this.machine.core;
    if (n < 32) return c.x(n);
    if (n === REG_PC) return c.pc;
    if (n < REG_F0 + 32) return c.f(n - REG_F0);
    if (n === REG_PRIV) return BigInt(c.priv);
    const csr = n - REG_CSR0;
    if (csr >= 0 && csr < 4096 && c.exports.csrExists(csr)) return c.csr(csr);
    return undefined;
  }

  private writeSelected(n: number, v: bigint): boolean {
    const c = this.machine.core;
    if (n < 32) c.setX(n, v);
    else if (n === REG_PC) c.pc = BigInt.asUintN(64, v);
    else if (n < REG_F0 + 32) c.setF(n - REG_F0, v);
    else if (n === REG_PRIV) {
      const p = Number(v & 3n);
      c.exports.setPriv(p === 2 ? 1 : p);
    } else {
      const csr = n - REG_CSR0;
      if (csr < 0 || csr >= 4096 || !c.exports.csrExists(csr)) return false;
      c.exports.writeCsr(csr, BigInt.asUintN(64, v));
    }
    return true;
  }

  readMemory(hart: number, addr: bigint, len: number, physical: boolean): Uint8Array {
    return this.machine.readMemory(addr, len, !physical, hart);
  }

  writeMemory(hart: number, addr: bigint, data: Uint8Array, physical: boolean): void {
    this.machine.writeMemory(addr, data, !physical, hart);
  }

  setBreakpoints(addrs: bigint[]): void {
    this.machine.setBreakpoints(addrs);
  }

  setWatchpoints(w: Watchpoint[]): boolean {
    return this.machine.setWatchpoints(w);
  }

  setStepNoIrq(on: boolean): void {
    this.machine.debugStepNoIrq = on;
  }

  monitor(line: string): Promise<string> {
    return this.monitorLine(line);
  }

  kill(): void {
    this.quit();
  }
}
