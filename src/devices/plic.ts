// The platform-level interrupt controller (RISC-V PLIC specification 1.0.0), laid out as on
// QEMU's virt board (hw/intc/sifive_plic.c): 96 source IDs (0 is "no interrupt", so sources
// 1..95), 7 priority levels, and two contexts per hart, numbered as on QEMU's virt: 2h = hart
// h's M-mode (drives its mip.MEIP), 2h + 1 = its S-mode (drives its mip.SEIP). Each context has
// its own enables, threshold and claim/complete register.
//
//   0x000000 + 4*src              priority (0 = never interrupts)
//   0x001000 + 4*word             pending bits, read-only
//   0x002000 + 0x80*ctx + 4*word  enable bits of a context
//   0x200000 + 0x1000*ctx         priority threshold of a context
//   0x200004 + 0x1000*ctx         claim (read) / complete (write)
//
// Gateway: a source's request is latched as pending each time its device signals its line
// high (`setLevel(src, true)`) and dropped when the line goes low; a claim takes the request
// and marks the source claimed, so it is not delivered again until the complete. This is the
// behaviour of QEMU's PLIC, where devices re-signal on every state update (qemu_set_irq),
// rather than the specification's re-sampling of the level at completion: guests written
// against QEMU depend on it. xv6-riscv before 2024 never reads the UART's IIR, so the
// 16550's THR-empty condition stays asserted after its last byte; re-sampling at complete
// would interrupt it forever, while QEMU (and rvm) deliver it once.

import type { MmioHandler } from "../core.js";
import { guestLog } from "../guest-log.js";

/** QEMU's VIRT_IRQCHIP_NUM_SOURCES: IDs 0..95, 0 reserved. */
export const PLIC_NUM_SOURCES = 96;
/** QEMU virt: 3 priority bits (VIRT_IRQCHIP_NUM_PRIO_BITS), priorities 0..7. */
export const PLIC_MAX_PRIORITY = 7;

const PRIORITY_BASE = 0x0;
const PENDING_BASE = 0x1000;
const ENABLE_BASE = 0x2000;
const ENABLE_STRIDE = 0x80;
const CONTEXT_BASE = 0x20_0000;
const CONTEXT_STRIDE = 0x1000;
const WORDS = PLIC_NUM_SOURCES / 32;

/** Snapshot of the PLIC; plain JSON. */
export interface PlicState {
  priority: number[];
  pending: number[];
  claimed: number[];
  enable: number[][];
  threshold: number[];
}

export class Plic implements MmioHandler {
  private readonly priority = new Uint32Array(PLIC_NUM_SOURCES);
  private readonly pending = new Uint32Array(WORDS);
  private readonly claimed = new Uint32Array(WORDS);
  private readonly enable: Uint32Array[] = [];
  private readonly threshold: Uint32Array;
  /** The interrupt output of each context, as last reported. */
  private readonly output: boolean[];
  /** Requests latched per source since power-on (`info irq`): a pending bit going from 0 to 1. */
  private readonly counts = new Float64Array(PLIC_NUM_SOURCES);

  /**
   * @param contexts the number of contexts: two per hart (M, S)
   * @param onChange called whenever the output of hart h's M context (MEIP) or S context (SEIP)
   *   changes
   */
  constructor(readonly contexts: number, private readonly onChange: (hart: number, meip: boolean, seip: boolean) => void) {
    for (let c = 0; c < contexts; c++) this.enable.push(new Uint32Array(WORDS));
    this.threshold = new Uint32Array(contexts);
    this.output = new Array<boolean>(contexts).fill(false);
  }

  /**
   * A device's interrupt line. `true` latches a request (again, if the device re-signals);
   * `false` withdraws a request not yet claimed.
   */
  setLevel(source: number, level: boolean): void {
    if (source <= 0 || source >= PLIC_NUM_SOURCES) return;
    const w = source >>> 5;
    const bit = 1 << (source & 31);
    if (level) {
      if ((this.pending[w] & bit) === 0) this.counts[source]++;
      this.pending[w] |= bit;
    } else this.pending[w] &= ~bit;
    this.update();
  }

  /** The interrupt line callback for one source, for a device constructor. */
  line(source: number): (level: boolean) => void {
    return (level) => this.setLevel(source, level);
  }

  /** The best source a claim by `ctx` would return now, or 0. */
  private best(ctx: number): number {
    const en = this.enable[ctx];
    let best = 0;
    let bestPriority = this.threshold[ctx];
    for (let w = 0; w < WORDS; w++) {
      let bits = this.pending[w] & en[w] & ~this.claimed[w];
      while (bits !== 0) {
        const b = 31 - Math.clz32(bits & -bits);
        bits &= bits - 1;
        const src = w * 32 + b;
        // Strictly greater: ties go to the lowest ID, which is scanned first.
        if (this.priority[src] > bestPriority) {
          best = src;
          bestPriority = this.priority[src];
        }
      }
    }
    return best;
  }

  private update(force = false): void {
    for (let hart = 0; 2 * hart < this.contexts; hart++) {
      const meip = this.best(2 * hart) !== 0;
      const seip = this.best(2 * hart + 1) !== 0;
      if (force || meip !== this.output[2 * hart] || seip !== this.output[2 * hart + 1]) {
        this.output[2 * hart] = meip;
        this.output[2 * hart + 1] = seip;
        this.onChange(hart, meip, seip);
      }
    }
  }

  /** PLIC claim: the highest-priority pending enabled source above the threshold, or 0. */
  claim(ctx: number): number {
    const src = this.best(ctx);
    if (src !== 0) {
      const w = src >>> 5;
      const bit = 1 << (src & 31);
      this.pending[w] &= ~bit;
      this.claimed[w] |= bit;
      this.update();
    }
    return src;
  }

  /** PLIC complete: the gateway of `source` may forward requests again. */
  complete(_ctx: number, source: number): void {
    if (source <= 0 || source >= PLIC_NUM_SOURCES) return;
    this.claimed[source >>> 5] &= ~(1 << (source & 31));
    this.update();
  }

  read(offset: number, size: number): number {
    if (size !== 4 || offset & 3) return 0;
    if (offset < PENDING_BASE) {
      const src = (offset - PRIORITY_BASE) >>> 2;
      return src < PLIC_NUM_SOURCES ? this.priority[src] : 0;
    }
    if (offset < ENABLE_BASE) {
      const w = (offset - PENDING_BASE) >>> 2;
      return w < WORDS ? this.pending[w] : 0;
    }
    if (offset < CONTEXT_BASE) {
      const ctx = Math.floor((offset - ENABLE_BASE) / ENABLE_STRIDE);
      const w = ((offset - ENABLE_BASE) % ENABLE_STRIDE) >>> 2;
      return ctx < this.contexts && w < WORDS ? this.enable[ctx][w] : 0;
    }
    const ctx = Math.floor((offset - CONTEXT_BASE) / CONTEXT_STRIDE);
    if (ctx >= this.contexts) return 0;
    switch ((offset - CONTEXT_BASE) % CONTEXT_STRIDE) {
      case 0:
        return this.threshold[ctx];
      case 4:
        return this.claim(ctx);
      default:
        return 0;
    }
  }

  write(offset: number, size: number, value: number): void {
    if (size !== 4 || offset & 3) {
      guestLog("guest_errors", `plic: invalid register write: 0x${offset.toString(16)} (size ${size})`);
      return;
    }
    const v = value >>> 0;
    if (offset < PENDING_BASE) {
      const src = (offset - PRIORITY_BASE) >>> 2;
      if (src > 0 && src < PLIC_NUM_SOURCES) this.priority[src] = v & PLIC_MAX_PRIORITY;
    } else if (offset < ENABLE_BASE) {
      return; // pending bits are read-only
    } else if (offset < CONTEXT_BASE) {
      const ctx = Math.floor((offset - ENABLE_BASE) / ENABLE_STRIDE);
      const w = ((offset - ENABLE_BASE) % ENABLE_STRIDE) >>> 2;
      if (ctx >= this.contexts || w >= WORDS) return;
      this.enable[ctx][w] = w === 0 ? v & ~1 : v; // source 0 does not exist
    } else {
      const ctx = Math.floor((offset - CONTEXT_BASE) / CONTEXT_STRIDE);
      if (ctx >= this.contexts) return;
      switch ((offset - CONTEXT_BASE) % CONTEXT_STRIDE) {
        case 0:
          this.threshold[ctx] = v & PLIC_MAX_PRIORITY;
          break;
        case 4:
          this.complete(ctx, v);
          return;
        default:
          return;
      }
    }
    this.update();
  }

  /** `info irq`: requests per source. */
  irqCounts(): number[] {
    return [...this.counts];
  }

  /** `info pic`: priorities, pending and claimed sources, and each context's threshold and enables. */
  describe(): string {
    const has = (a: Uint32Array, src: number) => (a[src >>> 5] >>> (src & 31)) & 1;
    const lines = [`riscv.sifive.plic: ${PLIC_NUM_SOURCES - 1} sources, ${this.contexts} contexts, priorities 0..${PLIC_MAX_PRIORITY}`];
    const active: number[] = [];
    for (let src = 1; src < PLIC_NUM_SOURCES; src++) {
      if (this.priority[src] || has(this.pending, src) || has(this.claimed, src) || this.enable.some((e) => has(e, src))) active.push(src);
    }
    lines.push("  source priority pending claimed " + this.enable.map((_, c) => `en${c}`).join(" "));
    for (const src of active) {
      lines.push(`  ${String(src).padStart(6)} ${String(this.priority[src]).padStart(8)} ${String(has(this.pending, src)).padStart(7)} ` +
        `${String(has(this.claimed, src)).padStart(7)} ` + this.enable.map((e) => String(has(e, src)).padStart(3)).join(" "));
    }
    if (active.length === 0) lines.push("  (no source has a priority, a request or an enable)");
    for (let c = 0; c < this.contexts; c++) {
      const enabled: number[] = [];
      for (let src = 1; src < PLIC_NUM_SOURCES; src++) if (has(this.enable[c], src)) enabled.push(src);
      lines.push(`  context ${c} (hart ${c >> 1} ${c & 1 ? "S" : "M"}-mode): threshold ${this.threshold[c]}, ` +
        `enabled ${enabled.length ? enabled.join(",") : "none"}, ${c & 1 ? "SEIP" : "MEIP"} ${this.output[c] ? 1 : 0}`);
    }
    return lines.join("\n") + "\n";
  }

  state(): PlicState {
    return {
      priority: [...this.priority],
      pending: [...this.pending],
      claimed: [...this.claimed],
      enable: this.enable.map((e) => [...e]),
      threshold: [...this.threshold],
    };
  }

  restore(s: PlicState): void {
    this.priority.set(s.priority);
    this.pending.set(s.pending);
    this.claimed.set(s.claimed);
    for (let c = 0; c < this.contexts; c++) this.enable[c].set(s.enable[c]);
    this.threshold.set(s.threshold);
    // Report the restored outputs even if they match the last ones: the core is new.
    this.update(true);
  }
}
