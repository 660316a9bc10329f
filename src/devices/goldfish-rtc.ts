// The Goldfish real-time clock, as QEMU's virt board has it (at 0x101000, PLIC source 11: ../board/memmap.ts)
// (hw/rtc/goldfish_rtc.c; the register interface is Android's GOLDFISH-VIRTUAL-HARDWARE.TXT,
// "goldfish_rtc"). Linux's rtc-goldfish driver reads it at boot (CONFIG_RTC_HCTOSYS), which is
// how a guest gets the wall-clock date.
//
// The clock is a count of nanoseconds since 1970: tickOffset + the host clock the user chose
// (-rtc clock=host, the wall clock and QEMU's default; clock=rt, the host's monotonic clock;
// clock=vm, guest time, which stands still while the machine is stopped). At power-on the
// offset makes the count read the -rtc base: the host's current UTC time (base=utc), its
// local time read as if it were UTC (base=localtime, as QEMU and Windows guests expect), or a
// given date (base=2006-06-17T16:01:21, UTC). A guest write of TIME_LOW / TIME_HIGH moves the
// offset. An alarm raises the interrupt when the count reaches ALARM (writing ALARM_LOW arms it
// with the ALARM_HIGH written before), if IRQ_ENABLED. All registers are 32 bits wide; other
// access sizes read 0 and are ignored (QEMU rejects them).

import type { MmioHandler } from "../core.js";

export const RTC_TIME_LOW = 0x00;
export const RTC_TIME_HIGH = 0x04;
export const RTC_ALARM_LOW = 0x08;
export const RTC_ALARM_HIGH = 0x0c;
export const RTC_IRQ_ENABLED = 0x10;
export const RTC_CLEAR_ALARM = 0x14;
export const RTC_ALARM_STATUS = 0x18;
export const RTC_CLEAR_INTERRUPT = 0x1c;

const NS_PER_MS = 1_000_000n;
const U32 = 0xffff_ffffn;
const U64 = (1n << 64n) - 1n;

/** What -rtc base= says the clock reads at power-on. */
export type RtcBase = "utc" | "localtime" | { date: number /* ms since 1970, UTC */ };

export interface GoldfishRtcOptions {
  base: RtcBase;
  /** The clock the RTC counts with, in ns (host wall clock, host monotonic, or guest time). */
  clock: () => bigint;
  /** The host's wall clock in ms since 1970 (for the base); Date.now by default. */
  now?: () => number;
  /** Called after a host timer raised the interrupt (the machine wakes an idle hart). */
  wake?: () => void;
}

export interface GoldfishRtcState {
  tickOffset: string;
  alarmNext: string;
  alarmRunning: number;
  irqPending: number;
  irqEnabled: number;
  timeHigh: number;
}

export class GoldfishRtc implements MmioHandler {
  private tickOffset: bigint;
  private alarmNext = 0n;
  private alarmRunning = 0;
  private irqPending = 0;
  private irqEnabled = 0;
  private timeHigh = 0;
  private timer: ReturnType<typeof setTimeout> | undefined;

  constructor(
    private readonly irq: (level: boolean) => void,
    private readonly opts: GoldfishRtcOptions,
  ) {
    const nowMs = (opts.now ?? Date.now)();
    let baseSeconds: number;
    if (opts.base === "utc") baseSeconds = Math.floor(nowMs / 1000);
    else if (opts.base === "localtime") baseSeconds = Math.floor(nowMs / 1000) - new Date(nowMs).getTimezoneOffset() * 60;
    else baseSeconds = Math.floor(opts.base.date / 1000);
    // QEMU: the count starts at the base's whole second, then follows the clock.
    this.tickOffset = BigInt(baseSeconds) * 1_000_000_000n - opts.clock();
  }

  /** The clock's count: nanoseconds since 1970 (64 bits). */
  count(): bigint {
    return (this.tickOffset + this.opts.clock()) & U64;
  }

  read(offset: number, size: number): number {
    if (size !== 4) return 0;
    switch (offset) {
      case RTC_TIME_LOW: {
        const t = this.count();
        this.timeHigh = Number(t >> 32n);
        return Number(t & U32);
      }
      case RTC_TIME_HIGH:
        return this.timeHigh;
      case RTC_ALARM_LOW:
        return Number(this.alarmNext & U32);
      case RTC_ALARM_HIGH:
        return Number(this.alarmNext >> 32n);
      case RTC_IRQ_ENABLED:
        return this.irqEnabled;
      case RTC_ALARM_STATUS:
        return this.alarmRunning;
      default:
        return 0;
    }
  }

  write(offset: number, size: number, value: number): void {
    if (size !== 4) return;
    const v = BigInt(value >>> 0);
    switch (offset) {
      case RTC_TIME_LOW:
      case RTC_TIME_HIGH: {
        const now = this.count();
        const next = offset === RTC_TIME_LOW ? (now & ~U32) | v : (now & U32) | (v << 32n);
        this.tickOffset += next - now;
        return;
      }
      case RTC_ALARM_LOW:
        this.alarmNext = (this.alarmNext & ~U32) | v;
        this.setAlarm();
        return;
      case RTC_ALARM_HIGH:
        this.alarmNext = (this.alarmNext & U32) | (v << 32n);
        return;
      case RTC_IRQ_ENABLED:
        this.irqEnabled = value & 1;
        this.update();
        return;
      case RTC_CLEAR_ALARM:
        this.clearAlarm();
        return;
      case RTC_CLEAR_INTERRUPT:
        this.irqPending = 0;
        this.update();
        return;
      default:
        return;
    }
  }

  private update(): void {
    this.irq((this.irqPending & this.irqEnabled) !== 0);
  }

  private interrupt(): void {
    this.alarmRunning = 0;
    this.irqPending = 1;
    this.update();
  }

  private clearAlarm(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    this.alarmRunning = 0;
  }

  /** Arms the alarm: at once if its time has come, else a host timer that checks again when due. */
  private setAlarm(): void {
    this.clearAlarm();
    const left = this.alarmNext - this.count();
    if (left <= 0n) {
      this.interrupt();
      return;
    }
    this.alarmRunning = 1;
    // A host timer per alarm; with clock=vm guest time may run slower than the host's, so the
    // timer checks again rather than trusting the delay. Capped so it never overflows Node's.
    const ms = Number(left / NS_PER_MS) + 1;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      if (!this.alarmRunning) return;
      if (this.count() >= this.alarmNext) {
        this.interrupt();
        this.opts.wake?.();
      } else this.setAlarm();
    }, Math.min(ms, 60_000));
    this.timer.unref?.();
  }

  /** System reset: alarm and interrupt off; the time goes on (QEMU's goldfish_rtc_reset). */
  reset(): void {
    this.clearAlarm();
    this.alarmNext = 0n;
    this.irqPending = 0;
    this.irqEnabled = 0;
    this.update();
  }

  /** Stops the host timer (the machine ended). */
  close(): void {
    this.clearAlarm();
  }

  state(): GoldfishRtcState {
    return {
      tickOffset: this.tickOffset.toString(),
      alarmNext: this.alarmNext.toString(),
      alarmRunning: this.alarmRunning,
      irqPending: this.irqPending,
      irqEnabled: this.irqEnabled,
      timeHigh: this.timeHigh,
    };
  }

  /** Restores a saved state; a running alarm is armed again (QEMU's post_load). */
  restore(s: GoldfishRtcState): void {
    this.clearAlarm();
    this.tickOffset = BigInt(s.tickOffset);
    this.alarmNext = BigInt(s.alarmNext);
    this.irqPending = s.irqPending;
    this.irqEnabled = s.irqEnabled;
    this.timeHigh = s.timeHigh;
    if (s.alarmRunning) this.setAlarm();
    this.update();
  }
}
