// The JIT's host side (docs/ARCHITECTURE.md, "The JIT"): between slices it drains the core's
// events (hot pages, dispatch misses, invalidations), translates hot pages in batches into one
// WebAssembly module each (translate.ts), compiles them with WebAssembly.compile off the hot path
// while the interpreter runs on, and installs finished modules into the core's function table.
// Only the standard WebAssembly JS API is used, so the same JIT runs in a browser.
//
// The code cache is bounded: at most `maxUnits` translated pages and `maxBytes` of generated
// code are live; beyond that the oldest translations are evicted (their table slots emptied, the
// core's PG_CODE bit cleared; a module is freed by the engine once none of its functions is in
// the table).

import type { Core } from "../core.js";
import { yieldToEventLoop } from "../platform.js";
import { ModuleBuilder } from "./wasm.js";
import { CoreLayout, PAGE_BYTES, UNIT_PARAMS, UNIT_RESULTS, declareImports, findBlocks, isDelayLoop, translatePage } from "./translate.js";

export interface JitOptions {
  /**
   * Instructions the interpreter runs on a page before it is translated; a page whose
   * translation would be larger than `typicalSize` runs proportionally more first.
   */
  threshold?: number;
  /**
   * The translation size (instructions + 1 per block) that `threshold` pays for (default 500;
   * with `threshold` given and this not, every page is translated at exactly `threshold`).
   */
  typicalSize?: number;
  /** Pages per module (one WebAssembly.compile). */
  batchPages?: number;
  /** Bound of the code cache: translated pages. */
  maxUnits?: number;
  /** Bound of the code cache: bytes of generated WebAssembly. */
  maxBytes?: number;
  /** Translations of a page after which it is left as it is (self-modifying code, misses). */
  maxRetranslations?: number;
  /**
   * Compile synchronously and install at once, in the same poll (tests: translated code runs
   * from the next slice on, wherever the engine's compile threads are).
   */
  sync?: boolean;
}

const EV_HOT = 1, EV_MISS = 2, EV_INVALIDATED = 3;
/** Times a page entered at a delay routine is left interpreted before it is translated anyway. */
const MAX_DELAY_DEFERRALS = 8;

interface Unit {
  page: number;
  slot: number;
  bytes: number;
}

interface Pending {
  page: number;
  code: Uint8Array;
  map: Uint8Array;
}

interface Batch {
  epoch: number;
  pages: Pending[];
  module?: WebAssembly.Module;
  bytes: number;
  started: number;
  error?: unknown;
}

export interface JitStats {
  pagesTranslated: number;
  blocks: number;
  instructionsTranslated: number;
  modules: number;
  compileMs: number;
  translateMs: number;
  invalidations: number;
  evictions: number;
  discarded: number;
}

export class Jit {
  private on = false;
  readonly threshold: number;
  private readonly typicalSize: number;
  private readonly batchPages: number;
  private readonly maxUnits: number;
  private readonly maxBytes: number;
  private readonly maxRetranslations: number;
  private readonly sync: boolean;
  private readonly ex: Core["exports"];
  private readonly layout: CoreLayout;
  private rvcTable: Uint32Array | undefined;
  /**
   * The core's RVC expansion table, asked for when the first page is translated: the core fills
   * it completely then (the interpreter alone fills it as it meets parcels; filling it at the
   * machine's creation cost ~10 ms of CPU before the guest's first instruction).
   */
  private get rvc(): Uint32Array {
    return (this.rvcTable ??= new Uint32Array(this.ex.memory.buffer, this.ex.jitRvcAddress(), 65536));
  }
  /** Installed translations, oldest first (Map keeps insertion order: FIFO eviction). */
  private readonly units = new Map<number, Unit>();
  private liveBytes = 0;
  /**
   * Entry offsets seen per page (from hot and miss events), each with how often it was reported:
   * a translation holds at most MAX_BLOCKS blocks, and when a page's entries are more than that
   * (a large hot page entered at many points: chunks that begin anywhere in code not yet
   * translated report those points too), the most reported ones are kept.
   */
  private readonly entries = new Map<number, Map<number, number>>();
  /**
   * Pages reported hot whose translation would cost more than the interpreter has run on them
   * so far (ripen), with the instructions counted on them until now.
   */
  private readonly ripening = new Map<number, number>();
  /** Pages left interpreted so far because they were entered at a delay routine, and how often. */
  private readonly delays = new Map<number, number>();
  /** Translated pages whose misses wait for the page to be reported hot (deferMiss). */
  private readonly missed = new Set<number>();
  /** Translations per page so far. */
  private readonly translations = new Map<number, number>();
  /** Pages waiting to be translated, and pages in a batch being compiled. */
  private readonly queued = new Set<number>();
  private readonly inFlight = new Set<number>();
  private compiling: Batch | undefined;
  private readonly ready: Batch[] = [];
  private freeSlots: number[] = [];
  private epoch = 0;
  private coreEpoch: number;
  readonly stats: JitStats = {
    pagesTranslated: 0, blocks: 0, instructionsTranslated: 0, modules: 0, compileMs: 0, translateMs: 0,
    invalidations: 0, evictions: 0, discarded: 0,
  };
  private readonly imports: WebAssembly.Imports;
  /** The last module built (for debugging: `wasm-objdump`, tests). */
  lastModule: Uint8Array | undefined;

  constructor(private readonly core: Core, opts: JitOptions = {}) {
    this.ex = core.exports;
    this.threshold = opts.threshold ?? 4_000_000;
    this.typicalSize = opts.typicalSize ?? (opts.threshold !== undefined ? Infinity : 500);
    this.batchPages = opts.batchPages ?? 32;
    this.maxUnits = Math.min(opts.maxUnits ?? 4095, core.exports.jitSlots() - 1);
    this.maxBytes = opts.maxBytes ?? 64 << 20;
    this.maxRetranslations = opts.maxRetranslations ?? 16;
    this.sync = opts.sync ?? false;
    const ex = this.ex;
    this.layout = {
      xreg: ex.jitXregAddress(), freg: ex.jitFregAddress(), mstatus: ex.jitMstatusAddress(), pc: ex.jitPcAddress(), tlbLoad: ex.jitTlbLoadAddress(),
      tlbStore: ex.jitTlbStoreAddress(), tlbSize: ex.jitTlbSize(),
    };
    this.coreEpoch = ex.jitEpoch();
    for (let i = core.table.length - 1; i >= 1; i--) this.freeSlots.push(i);
    ex.jitSetThreshold(this.threshold);
    this.imports = {
      core: {
        memory: ex.memory, loadSlow: ex.jitLoadSlow, storeSlow: ex.jitStoreSlow, fp: ex.jitFp,
        status: ex.g_status, loadCtx: ex.g_loadCtx, storeCtx: ex.g_storeCtx,
      },
    };
  }

  get enabled(): boolean {
    return this.on;
  }

  set enabled(on: boolean) {
    this.on = on;
    this.ex.jitSetOn(on ? 1 : 0);
  }

  /** Between slices: take the core's events, start a compile, install what finished. */
  poll(): void {
    if (this.ex.jitEpoch() !== this.coreEpoch) this.forget();
    if (this.ex.jitQueued() > 0) this.drain();
    if (this.ready.length > 0) this.installReady();
    if (this.on && !this.compiling && this.queued.size > 0) this.startBatch();
  }

  /** The core flushed every translation (reset, restore): drop ours. */
  private forget(): void {
    this.coreEpoch = this.ex.jitEpoch();
    for (const u of this.units.values()) this.freeSlot(u.slot);
    this.units.clear();
    this.liveBytes = 0;
    this.queued.clear();
    this.entries.clear();
    this.ripening.clear();
    this.delays.clear();
    this.missed.clear();
    this.epoch++;
  }

  /** Drops every translation (the monitor, tests). */
  flush(): void {
    this.ex.jitFlush();
    this.forget();
  }

  private drain(): void {
    const ex = this.ex;
    const n = ex.jitQueued();
    const q = new BigUint64Array(ex.memory.buffer, ex.jitQueueAddress(), n);
    for (let i = 0; i < n; i++) {
      const e = q[i];
      const kind = Number(e >> 32n);
      const page = Number((e >> 12n) & 0xfffffn);
      const off = Number(e & 0xfffn);
      if (kind === EV_INVALIDATED) {
        const u = this.units.get(page);
        if (u) this.drop(u);
        this.stats.invalidations++;
        continue;
      }
      if (kind === EV_HOT && !this.translations.has(page) && this.waitsOnClock(page, off)) continue;
      let seen = this.entries.get(page);
      if (!seen) this.entries.set(page, (seen = new Map()));
      const count = seen.get(off) ?? 0;
      seen.set(off, count + 1);
      // (a translation with it is on its way, or it did not fit: the next one ranks it higher)
      if (kind === EV_MISS && count > 0) continue;
      if (kind === EV_MISS && this.units.has(page) && this.deferMiss(page)) continue;
      if (kind === EV_HOT) this.missed.delete(page);
      if ((this.translations.get(page) ?? 0) >= this.maxRetranslations) continue;
      if (kind === EV_HOT && !this.translations.has(page) && this.ripen(page)) continue;
      if (!this.inFlight.has(page)) this.queued.add(page);
    }
    const overflowed = ex.jitQueueOverflowed() !== 0;
    ex.jitQueueClear();
    if (overflowed) {
      // Invalidations may have been lost: keep only what the core still has installed.
      const table = new Uint32Array(ex.memory.buffer, ex.jitTableAddress(), this.core.ramBytes / PAGE_BYTES);
      for (const u of [...this.units.values()]) if (table[u.page] !== u.slot) this.drop(u);
    }
  }

  /**
   * A page reported hot for its first translation: whether it must run longer first. Compiling
   * costs about in proportion to the code translated (the engine's optimizing tier most of
   * all), so a page whose translation is larger than typical must have run proportionally more
   * instructions: a Linux boot runs each of its hottest pages (OpenSBI's, chacha20's: 1,100-1,300
   * instructions and up to 253 blocks each) for 5-8 million instructions and then hardly again,
   * which does not pay for compiling them.
   */
  private ripen(page: number): boolean {
    const ran = this.ripening.get(page) ?? this.threshold;
    const code = this.core.ram.subarray(page * PAGE_BYTES, (page + 1) * PAGE_BYTES);
    const blocks = findBlocks(code, this.entries.get(page)?.keys() ?? [], this.rvc);
    const size = blocks.reduce((n, b) => n + b.insns.length + 1, 0);
    const need = (this.threshold * size) / this.typicalSize;
    if (ran >= need) {
      this.ripening.delete(page);
      return false;
    }
    const more = Math.min(Math.ceil(need - ran), this.threshold);
    this.ex.jitDefer(page, more);
    this.ripening.set(page, ran + more);
    return true;
  }

  /**
   * A page reported hot for its first translation, entered at a delay routine (translate.ts
   * isDelayLoop): it runs on interpreted, reported again after another `threshold`
   * instructions; after MAX_DELAY_DEFERRALS of those it is translated as any other page.
   */
  private waitsOnClock(page: number, off: number): boolean {
    const n = this.delays.get(page) ?? 0;
    if (n >= MAX_DELAY_DEFERRALS) return false;
    const code = this.core.ram.subarray(page * PAGE_BYTES, (page + 1) * PAGE_BYTES);
    if (!isDelayLoop(code, off, this.rvc)) return false;
    this.delays.set(page, n + 1);
    this.ex.jitDefer(page, this.threshold);
    return true;
  }

  /**
   * Translated code of `page` met an entry it does not have. Translating the page again costs
   * what its first translation cost, so, as for that one (ripen), the interpreter first runs as
   * many instructions on the page as the new translation's size asks for (the page is then
   * reported hot and translated with every entry seen until then). Translating at once compiled
   * the hot page of a Linux boot's inflate (~55 KB of wasm) a second time for an entry met
   * shortly before the prompt.
   */
  private deferMiss(page: number): boolean {
    if (this.missed.has(page)) return true;
    const code = this.core.ram.subarray(page * PAGE_BYTES, (page + 1) * PAGE_BYTES);
    const blocks = findBlocks(code, this.entries.get(page)?.keys() ?? [], this.rvc);
    const size = blocks.reduce((n, b) => n + b.insns.length + 1, 0);
    const more = Math.min(Math.ceil((this.threshold * size) / this.typicalSize), this.threshold);
    if (!(more > 0)) return false;
    this.ex.jitDefer(page, more);
    this.missed.add(page);
    return true;
  }

  private drop(u: Unit): void {
    this.units.delete(u.page);
    this.missed.delete(u.page);
    this.liveBytes -= u.bytes;
    this.freeSlot(u.slot);
  }

  private freeSlot(slot: number): void {
    this.core.table.set(slot, null);
    this.freeSlots.push(slot);
  }

  /** A free function-table slot (1 .. jitSlots - 1; makeRoom keeps one available). */
  private allocSlot(): number {
    const s = this.freeSlots.pop();
    if (s !== undefined) return s;
    const t = this.core.table;
    const slot = Math.max(1, t.length);
    t.grow(Math.min(Math.max(64, t.length >> 1), this.ex.jitSlots() - t.length));
    for (let i = t.length - 1; i > slot; i--) this.freeSlots.push(i);
    return slot;
  }

  private startBatch(): void {
    const t0 = performance.now();
    const m = new ModuleBuilder();
    const imp = declareImports(m, this.ex.memory);
    const batch: Batch = { epoch: this.epoch, pages: [], bytes: 0, started: 0 };
    const ram = this.core.ram;
    for (const page of this.queued) {
      if (batch.pages.length >= this.batchPages) break;
      this.queued.delete(page);
      const code = ram.slice(page * PAGE_BYTES, (page + 1) * PAGE_BYTES);
      const entries = [...(this.entries.get(page) ?? [])].sort((a, b) => b[1] - a[1]).map(([off]) => off);
      const t = translatePage(m, code, entries, this.rvc, this.layout, imp);
      this.translations.set(page, (this.translations.get(page) ?? 0) + 1);
      if (!t) continue;
      m.exportFunction(`p${batch.pages.length}`, t.entry);
      batch.pages.push({ page, code, map: t.info.map });
      this.inFlight.add(page);
      this.stats.blocks += t.info.blocks;
      this.stats.instructionsTranslated += t.info.instructions;
    }
    this.stats.translateMs += performance.now() - t0;
    if (batch.pages.length === 0) return;
    const bytes = m.toBytes();
    this.lastModule = bytes;
    batch.bytes = bytes.length;
    batch.started = performance.now();
    this.compiling = batch;
    if (this.sync) {
      try {
        batch.module = new WebAssembly.Module(bytes);
      } catch (e) {
        batch.error = e;
      }
      this.finished(batch);
      this.installReady();
      return;
    }
    WebAssembly.compile(bytes).then(
      (module) => {
        batch.module = module;
        this.finished(batch);
      },
      (error) => {
        batch.error = error;
        this.finished(batch);
      },
    );
  }

  private finished(batch: Batch): void {
    this.stats.compileMs += performance.now() - batch.started;
    this.compiling = undefined;
    this.ready.push(batch);
  }

  private installReady(): void {
    const ex = this.ex;
    const ram = this.core.ram;
    for (const batch of this.ready.splice(0)) {
      for (const p of batch.pages) this.inFlight.delete(p.page);
      if (batch.error !== undefined) throw new Error(`JIT: generated module rejected: ${String(batch.error)}`);
      if (batch.epoch !== this.epoch || !batch.module) {
        this.stats.discarded += batch.pages.length;
        continue;
      }
      const instance = new WebAssembly.Instance(batch.module, this.imports);
      this.stats.modules++;
      const per = Math.ceil(batch.bytes / batch.pages.length);
      batch.pages.forEach((p, i) => {
        // The page must still hold the bytes that were translated (a write in the meantime
        // went to a page without PG_CODE and left no other trace).
        const now = ram.subarray(p.page * PAGE_BYTES, (p.page + 1) * PAGE_BYTES);
        if (!sameBytes(now, p.code)) {
          this.stats.discarded++;
          return;
        }
        const old = this.units.get(p.page);
        if (old) this.drop(old);
        this.makeRoom(per);
        const slot = this.allocSlot();
        new Uint8Array(ex.memory.buffer, ex.jitMaps() + slot * 2048, 2048).set(p.map);
        this.core.table.set(slot, instance.exports[`p${i}`] as WebAssembly.ExportValue as Function);
        ex.jitInstall(p.page, slot);
        this.units.set(p.page, { page: p.page, slot, bytes: per });
        this.liveBytes += per;
        this.stats.pagesTranslated++;
      });
    }
  }

  private makeRoom(bytes: number): void {
    for (const u of this.units.values()) {
      if (this.units.size < this.maxUnits && this.liveBytes + bytes <= this.maxBytes) return;
      this.ex.jitInstall(u.page, 0);
      this.drop(u);
      this.stats.evictions++;
    }
  }

  /** Waits until nothing is queued or compiling, installing as it goes (tests, benchmarks). */
  async settle(): Promise<void> {
    for (;;) {
      this.poll();
      if (!this.compiling && this.queued.size === 0 && this.ready.length === 0) return;
      await yieldToEventLoop();
    }
  }

  /** `info jit`. */
  info(): string {
    const s = this.stats;
    const insns = this.ex.jitInstructions();
    const total = this.core.instret;
    const share = total > 0n ? Number((insns * 10000n) / total) / 100 : 0;
    return [
      `jit: ${this.on ? "on" : "off"} (threshold ${this.threshold})`,
      `  pages translated   ${s.pagesTranslated} (${this.units.size} live, ${(this.liveBytes / 1024).toFixed(0)} KiB of code)`,
      `  blocks             ${s.blocks} (${s.instructionsTranslated} instructions)`,
      `  modules            ${s.modules} (compile ${s.compileMs.toFixed(1)} ms, translate ${s.translateMs.toFixed(1)} ms)`,
      `  invalidations      ${s.invalidations}`,
      `  evictions          ${s.evictions}, discarded ${s.discarded}`,
      `  calls              ${this.ex.jitCalls()}: ended ${["jump out/budget", "trap", "page exit", "event", "miss", "interp"].map((n, k) => `${n} ${this.ex.jitCallsEnded(k)}`).join(", ")}; ${this.ex.jitCallsEnded(8)} completed nothing`,
      `  instructions run translated: ${insns} of ${total} (${share}%)`,
    ].join("\n") + "\n";
  }
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  const wa = new BigUint64Array(a.buffer, a.byteOffset, a.length >> 3);
  const wb = new BigUint64Array(b.buffer, b.byteOffset, b.length >> 3);
  for (let i = 0; i < wa.length; i++) if (wa[i] !== wb[i]) return false;
  return true;
}
