// The goldfish RTC against its specification (Android's GOLDFISH-VIRTUAL-HARDWARE.TXT,
// "goldfish_rtc") and QEMU's model of it (hw/rtc/goldfish_rtc.c), with a clock the test moves.

import { describe, expect, it } from "vitest";
import {
  GoldfishRtc, RTC_ALARM_HIGH, RTC_ALARM_LOW, RTC_ALARM_STATUS, RTC_CLEAR_ALARM, RTC_CLEAR_INTERRUPT,
  RTC_IRQ_ENABLED, RTC_TIME_HIGH, RTC_TIME_LOW, type RtcBase,
} from "../../src/devices/goldfish-rtc.js";
import { parseRtc } from "../../src/options.js";

const S = 1_000_000_000n;
/** 2024-02-29T12:34:56.789Z, the host's wall clock in these tests. */
const NOW_MS = Date.UTC(2024, 1, 29, 12, 34, 56, 789);

class Rig {
  ns = 5_000_000_000n; // the clock the RTC counts with (any origin)
  irq = false;
  wakes = 0;
  readonly rtc: GoldfishRtc;
  constructor(base: RtcBase = "utc") {
    this.rtc = new GoldfishRtc((l) => (this.irq = l), { base, clock: () => this.ns, now: () => NOW_MS, wake: () => this.wakes++ });
  }
  rd(off: number): number {
    return this.rtc.read(off, 4);
  }
  wr(off: number, v: number): void {
    this.rtc.write(off, 4, v);
  }
  /** TIME_LOW then TIME_HIGH, as the spec says a driver reads it. */
  time(): bigint {
    const lo = BigInt(this.rd(RTC_TIME_LOW));
    return (BigInt(this.rd(RTC_TIME_HIGH)) << 32n) | lo;
  }
  setAlarm(ns: bigint): void {
    this.wr(RTC_ALARM_HIGH, Number(ns >> 32n));
    this.wr(RTC_ALARM_LOW, Number(ns & 0xffff_ffffn));
  }
}

describe("goldfish RTC", () => {
  it("counts nanoseconds since 1970 from the -rtc base, at the base's whole second", () => {
    const r = new Rig();
    expect(r.time()).toBe(BigInt(Math.floor(NOW_MS / 1000)) * S);
    r.ns += 1_500_000_000n;
    expect(r.time()).toBe(BigInt(Math.floor(NOW_MS / 1000)) * S + 1_500_000_000n);
  });

  it("base=localtime reads the host's local wall clock as if it were UTC; base=DATE starts there", () => {
    const local = new Rig("localtime");
    const offsetS = -new Date(NOW_MS).getTimezoneOffset() * 60;
    expect(local.time()).toBe(BigInt(Math.floor(NOW_MS / 1000) + offsetS) * S);
    const dated = new Rig(parseRtc("base=2006-06-17T16:01:21").base);
    expect(dated.time()).toBe(1150560081n * S);
    expect(new Rig(parseRtc("base=2006-06-17,clock=vm").base).time()).toBe(1150502400n * S);
  });

  it("TIME_LOW latches the high half, so a read pair is consistent across a carry", () => {
    const r = new Rig({ date: 0 });
    r.ns += 0xffff_fff0n; // just below a carry into the high word
    const lo = r.rd(RTC_TIME_LOW);
    r.ns += 0x100n; // the clock carries between the two reads
    expect(r.rd(RTC_TIME_HIGH)).toBe(0); // the latched half, not the new one
    expect(lo).toBe(0xffff_fff0);
    expect(r.time()).toBe(0x1_0000_00f0n);
  });

  it("a guest write of TIME_LOW or TIME_HIGH sets the clock, which then runs on", () => {
    const r = new Rig();
    r.wr(RTC_TIME_HIGH, 0x1234);
    r.wr(RTC_TIME_LOW, 0x5678);
    expect(r.time()).toBe(0x1234_0000_5678n);
    r.ns += 10n;
    expect(r.time()).toBe(0x1234_0000_5682n);
  });

  it("an alarm already due raises the interrupt at once, if enabled; CLEAR_INTERRUPT lowers it", () => {
    const r = new Rig();
    r.setAlarm(r.time() - 1n);
    expect(r.rd(RTC_ALARM_STATUS)).toBe(0);
    expect(r.irq).toBe(false); // pending but not enabled
    r.wr(RTC_IRQ_ENABLED, 1);
    expect(r.rd(RTC_IRQ_ENABLED)).toBe(1);
    expect(r.irq).toBe(true);
    r.wr(RTC_CLEAR_INTERRUPT, 1);
    expect(r.irq).toBe(false);
  });

  it("reads back the alarm; ALARM_LOW arms it with the ALARM_HIGH written before", () => {
    const r = new Rig();
    const at = r.time() + 3600n * S;
    r.setAlarm(at);
    expect(r.rd(RTC_ALARM_STATUS)).toBe(1);
    expect((BigInt(r.rd(RTC_ALARM_HIGH)) << 32n) | BigInt(r.rd(RTC_ALARM_LOW))).toBe(at);
    r.wr(RTC_CLEAR_ALARM, 1);
    expect(r.rd(RTC_ALARM_STATUS)).toBe(0);
    r.rtc.close();
  });

  it("a future alarm fires from a host timer when the clock reaches it and wakes the machine", async () => {
    // A real clock here, held still while the alarm is set (on a loaded host more than 30 ms
    // could pass between reading the time and arming, and the alarm would then fire at once,
    // from the write, with no host timer): the alarm is 30 ms ahead when it is armed.
    let t0: bigint | undefined;
    let irq = false;
    const fired = new Promise<void>((resolve) => {
      const rtc = new GoldfishRtc((l) => (irq = l), { base: "utc", clock: () => (t0 === undefined ? 0n : process.hrtime.bigint() - t0), wake: resolve });
      rtc.write(RTC_IRQ_ENABLED, 4, 1);
      const lo = BigInt(rtc.read(RTC_TIME_LOW, 4));
      const now = (BigInt(rtc.read(RTC_TIME_HIGH, 4)) << 32n) | lo;
      const at = now + 30_000_000n;
      rtc.write(RTC_ALARM_HIGH, 4, Number(at >> 32n));
      rtc.write(RTC_ALARM_LOW, 4, Number(at & 0xffff_ffffn));
      t0 = process.hrtime.bigint();
      expect(irq).toBe(false);
    });
    await fired;
    expect(irq).toBe(true);
    expect(Number(process.hrtime.bigint() - t0!) / 1e6).toBeGreaterThanOrEqual(29);
  });

  it("a reset turns alarm and interrupt off and keeps the time", () => {
    const r = new Rig();
    r.wr(RTC_TIME_LOW, 42);
    r.wr(RTC_IRQ_ENABLED, 1);
    r.setAlarm(0n);
    expect(r.irq).toBe(true);
    const before = r.time();
    r.rtc.reset();
    expect(r.irq).toBe(false);
    expect(r.rd(RTC_IRQ_ENABLED)).toBe(0);
    expect(r.time()).toBe(before);
  });

  it("ignores accesses other than 32 bits wide", () => {
    const r = new Rig();
    expect(r.rtc.read(RTC_TIME_LOW, 8)).toBe(0);
    const before = r.time();
    r.rtc.write(RTC_TIME_LOW, 1, 0);
    expect(r.time()).toBe(before);
  });

  it("saves and restores its state as JSON; a running alarm is armed again", () => {
    const r = new Rig();
    r.wr(RTC_TIME_HIGH, 7);
    r.wr(RTC_IRQ_ENABLED, 1);
    r.setAlarm(r.time() + 1000n);
    const saved = JSON.parse(JSON.stringify(r.rtc.state()));
    r.rtc.close();
    const r2 = new Rig();
    r2.ns = r.ns;
    r2.rtc.restore(saved);
    expect(r2.time()).toBe(r.time());
    expect(r2.rd(RTC_ALARM_STATUS)).toBe(1);
    expect(r2.irq).toBe(false);
    r2.ns += 1000n;
    r2.rtc.restore(saved); // due now: fires on restore, as QEMU's post_load does
    expect(r2.irq).toBe(true);
  });

  it("-rtc refuses what rvm does not have", () => {
    expect(() => parseRtc("base=yesterday")).toThrow(/-rtc base=yesterday: expected utc, localtime or a date/);
    expect(() => parseRtc("base=2006-02-30")).toThrow(/expected utc, localtime or a date/);
    expect(() => parseRtc("clock=tsc")).toThrow(/clock=tsc/);
    expect(() => parseRtc("driftfix=slew")).toThrow(/driftfix=slew: not supported/);
    expect(() => parseRtc("base=utc,foo=1")).toThrow(/unknown property 'foo'/);
    expect(parseRtc("base=localtime,clock=vm,driftfix=none")).toEqual({ base: "localtime", clock: "vm" });
  });
});
