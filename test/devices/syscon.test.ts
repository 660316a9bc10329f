// The SiFive test device as QEMU's virt board has it (hw/misc/sifive_test.c).

import { describe, expect, it } from "vitest";
import { Syscon, SysconAction } from "../../src/devices/syscon.js";

function syscon() {
  const actions: [SysconAction, number][] = [];
  return { s: new Syscon((k, c) => actions.push([k, c])), actions };
}

describe("SiFive test (syscon)", () => {
  it("powers off with exit code 0 on FINISHER_PASS (0x5555)", () => {
    const { s, actions } = syscon();
    s.write(0, 4, 0x5555);
    expect(actions).toEqual([["poweroff", 0]]);
  });

  it("powers off with the code from bits 31:16 on FINISHER_FAIL (0x3333)", () => {
    const { s, actions } = syscon();
    s.write(0, 4, (3 << 16) | 0x3333);
    expect(actions).toEqual([["poweroff", 3]]);
  });

  it("resets on FINISHER_RESET (0x7777), as Linux's syscon-reboot writes it", () => {
    const { s, actions } = syscon();
    s.write(0, 4, 0x7777);
    expect(actions).toEqual([["reset", 0]]);
  });

  it("ignores other values and offsets, and reads as 0", () => {
    const { s, actions } = syscon();
    s.write(0, 4, 0x1234);
    s.write(4, 4, 0x5555);
    s.write(0, 1, 0x55);
    expect(actions).toEqual([]);
    expect(s.read(0, 4)).toBe(0);
  });
});
