// The SiFive test device ("sifive,test1" / "syscon"), QEMU hw/misc/sifive_test.c.
//
// One 32-bit register at offset 0. The low 16 bits select the action:
//   0x5555  FINISHER_PASS  power off, exit code 0
//   0x3333  FINISHER_FAIL  power off, exit code = value >> 16
//   0x7777  FINISHER_RESET reset the machine
// Linux reaches it through the device tree's syscon-poweroff / syscon-reboot nodes (32-bit
// writes); bare-metal tests write it directly. Reads return 0; other values are ignored.

import type { MmioHandler } from "../core.js";
import { guestLog } from "../guest-log.js";

export const FINISHER_FAIL = 0x3333;
export const FINISHER_PASS = 0x5555;
export const FINISHER_RESET = 0x7777;

export type SysconAction = "poweroff" | "reset";

export class Syscon implements MmioHandler {
  constructor(private readonly onAction: (kind: SysconAction, code: number) => void) {}

  read(_offset: number, _size: number): number {
    return 0;
  }

  write(offset: number, size: number, value: number): void {
    // QEMU accepts 2- and 4-byte writes to the register at offset 0.
    if (offset !== 0 || size < 2) return;
    const v = value >>> 0;
    switch (v & 0xffff) {
      case FINISHER_PASS:
        this.onAction("poweroff", 0);
        break;
      case FINISHER_FAIL:
        this.onAction("poweroff", size === 4 ? v >>> 16 : 0);
        break;
      case FINISHER_RESET:
        this.onAction("reset", 0);
        break;
      default: // as QEMU's sifive_test
        guestLog("guest_errors", `sifive_test_write: write: addr=0x${offset.toString(16)} val=0x${v.toString(16).padStart(16, "0")}`);
    }
  }
}
