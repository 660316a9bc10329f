// HTIF, the host-target interface of Spike and riscv-tests (riscv-isa-sim fesvr).
//
// The guest writes a 64-bit command to `tohost`: bits 63:56 device, 55:48 command,
// 47:0 payload. The core watches the tohost page and exits to the host after the store
// (Exit.Htif); this device then acts and answers in `fromhost`.
//   device 0 (syscall proxy): payload odd = exit with code payload >> 1;
//     payload even = address of a "magic memory" block of eight u64: [number, a0, a1, ...];
//     the result goes to block[0] and fromhost becomes 1. Supported: write(64), exit(93).
//   device 1 (console): command 1 = putchar(payload & 0xff); command 0 = getchar, answered
//     with the next input byte in fromhost (device 1, command 0).

import type { GuestMemory } from "../memory.js";

const SYS_WRITE = 64n;
const SYS_EXIT = 93n;

export interface HtifConsole {
  write(fd: number, bytes: Uint8Array): void;
  /** The next input byte, or -1 if none is waiting. */
  readByte(): number;
}

export class Htif {
  /** Set when the guest asked to exit: the exit code. */
  exitCode: number | undefined;
  private pendingGetchar = false;

  constructor(
    private readonly mem: GuestMemory,
    readonly tohost: number,
    readonly fromhost: number | undefined,
    private readonly console: HtifConsole,
  ) {}

  /** Serves the command now in tohost. */
  handle(): void {
    const cmd = this.mem.readU64(this.tohost);
    if (cmd === 0n) return;
    this.mem.writeU64(this.tohost, 0n);
    const device = Number(cmd >> 56n);
    const command = Number((cmd >> 48n) & 0xffn);
    const payload = cmd & 0xffff_ffff_ffffn;
    if (device === 0 && command === 0) {
      if (payload & 1n) {
        this.exitCode = Number(payload >> 1n);
        return;
      }
      this.syscall(Number(payload));
    } else if (device === 1 && command === 1) {
      this.console.write(1, Uint8Array.of(Number(payload & 0xffn)));
      this.respond((1n << 56n) | (1n << 48n));
    } else if (device === 1 && command === 0) {
      this.pendingGetchar = true;
      this.poll();
    }
  }

  /** Delivers console input to a waiting getchar; called when input arrives. */
  poll(): void {
    if (!this.pendingGetchar || this.fromhost === undefined) return;
    if (this.mem.readU64(this.fromhost) !== 0n) return;
    const b = this.console.readByte();
    if (b < 0) return;
    this.pendingGetchar = false;
    this.mem.writeU64(this.fromhost, (1n << 56n) | BigInt(b & 0xff));
  }

  private respond(value: bigint): void {
    if (this.fromhost !== undefined) this.mem.writeU64(this.fromhost, value);
  }

  private syscall(block: number): void {
    if (!this.mem.inRam(block, 64)) {
      this.exitCode = 255;
      return;
    }
    const arg = (i: number): bigint => this.mem.readU64(block + 8 * i);
    const which = arg(0);
    let result = -38n; // -ENOSYS
    if (which === SYS_WRITE) {
      const fd = Number(arg(1));
      const buf = Number(arg(2));
      const len = Number(arg(3));
      if ((fd === 1 || fd === 2) && this.mem.inRam(buf, len)) {
        this.console.write(fd, this.mem.read(buf, len));
        result = BigInt(len);
      } else {
        result = -9n; // -EBADF
      }
    } else if (which === SYS_EXIT) {
      this.exitCode = Number(arg(1) & 0xffn);
      return;
    }
    this.mem.writeU64(block, BigInt.asUintN(64, result));
    this.respond(1n);
  }
}
