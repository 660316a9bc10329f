// The host's handle on the WebAssembly core (assembly/index.ts).
//
// Loads build/core.wasm, wires the MMIO imports to the machine's bus, and exposes guest RAM,
// the page-state array and the reset ROM as typed-array views over the module's memory, so
// the host reads and writes guest memory without copies.

import { fs, packageRoot, path } from "./platform.js";
import { RvmError } from "./errors.js";

/** Exit reasons returned by `run` (assembly/trap.ts). */
export const enum Exit {
  Slice = 0,
  Page = 1,
  Wfi = 2,
  Htif = 3,
  Stop = 4,
  Debug = 5,
}

/** Page-state bits, one byte per 4 KiB RAM page (assembly/layout.ts). */
export const enum PageState {
  NotRestored = 1,
  Dirty = 2,
  Disk = 4,
  Watch = 8,
  Accessed = 16,
  /** Holds translated code (src/jit/): a write drops it. */
  Code = 32,
}

export const RAM_BASE = 0x8000_0000;
/** The most harts the core has room for (assembly/layout.ts MAX_HARTS). */
export const MAX_HARTS = 8;
export const PAGE_SIZE = 4096;

/** What devices on the bus implement: accesses of 1, 2 or 4 bytes at an offset. */
export interface MmioHandler {
  read(offset: number, size: number): number;
  write(offset: number, size: number, value: number): void;
}

interface CoreExports {
  memory: WebAssembly.Memory;
  init(ramPages: number, harts: number): number;
  reset(): void;
  run(maxInsns: number): number;
  ramAddress(): number;
  pagesAddress(): number;
  romAddress(): number;
  hartSlotAddress(h: number): number;
  hartSize(): number;
  machineAddress(): number;
  machineSize(): number;
  hartCount(): number;
  currentHart(): number;
  selectHart(h: number): void;
  syncHarts(): void;
  hartsRestored(): void;
  hartStateChanged(): void;
  dmaWritten(): void;
  getPc(): bigint;
  setPc(pc: bigint): void;
  getX(i: number): bigint;
  setX(i: number, v: bigint): void;
  getF(i: number): bigint;
  setF(i: number, v: bigint): void;
  getPriv(): number;
  inWfi(): number;
  setPriv(p: number): void;
  readCsr(num: number): bigint;
  writeCsr(num: number, v: bigint): void;
  csrExists(num: number): number;
  debugBreakpointTable(): number;
  debugSetBreakpointCount(n: number): void;
  debugSetNoIrq(on: number): void;
  debugRunHart(h: number, n: number): number;
  debugSetHeldHarts(mask: number): void;
  debugWatchTable(): number;
  setTraceItems(flags: number): void;
  tlbAddress(h: number): number;
  tlbSize(): number;
  debugSetWatchCount(n: number): void;
  debugWatchHitKinds(): number;
  debugWatchHitAddr(): bigint;
  instret(): bigint;
  getMtime(): bigint;
  setMtime(t: bigint): void;
  timerDeadline(): bigint;
  setIcount(shift: number): void;
  setExternalInterrupts(hart: number, lines: number): void;
  mmioFault(): void;
  requestStop(): void;
  setHtif(tohost: bigint): void;
  mapDevice(device: number, base: bigint, size: bigint): void;
  exitPage(): number;
  debugTranslate(va: bigint, access: number): bigint;
  /** The core's walk of va under a given satp/privilege/mstatus, side-effect free; log at debugWalkLog (Core.walk). */
  debugWalk(va: bigint, access: number, satp: bigint, priv: number, status: bigint): bigint;
  debugWalkLog(): number;
  debugWalkLogMax(): number;
  pagesChanged(): void;
  markClean(): void;
  /** 1 while every page without PG_DIRTY is all zero (no markClean or markAllNotRestored yet). */
  cleanPagesAreZero(): number;
  clearAccessed(): void;
  /** Accessed pages from `from` into the scratch buffer (u32 each), bits cleared; how many (sweepNext: where to go on). */
  collectAccessed(from: number): number;
  sweepNext(): number;
  storesChanged(): void;
  markAllNotRestored(): void;
  classify(first: number, count: number): number;
  pageHash(page: number): bigint;
  pageHashIs(page: number, lo: number, hi: number): number;
  pagesEqual(a: number, b: number): number;
  hashBytes(ptr: number, len: number): bigint;
  isZero(ptr: number, len: number): number;
  scratchAddress(): number;
  scratchSize(): number;
  // the JIT (assembly/jit.ts, src/jit/)
  jitSetOn(on: number): void;
  jitSetThreshold(n: number): void;
  jitInstall(page: number, fn: number): void;
  jitDefer(page: number, more: number): void;
  jitInvalidate(page: number): void;
  jitFlush(): void;
  jitQueueAddress(): number;
  jitQueued(): number;
  jitQueueOverflowed(): number;
  jitQueueClear(): void;
  jitTableAddress(): number;
  jitMaps(): number;
  jitSlots(): number;
  jitEpoch(): number;
  jitInstructions(): bigint;
  jitCalls(): bigint;
  jitCallsEnded(kind: number): bigint;
  jitLoadSlow: Function;
  jitStoreSlow: Function;
  g_status: WebAssembly.Global;
  g_loadCtx: WebAssembly.Global;
  g_storeCtx: WebAssembly.Global;
  jitXregAddress(): number;
  jitFregAddress(): number;
  jitMstatusAddress(): number;
  jitFp: Function;
  jitPcAddress(): number;
  jitTlbLoadAddress(): number;
  jitTlbStoreAddress(): number;
  jitTlbSize(): number;
  jitRvcAddress(): number;
}

let compiled: WebAssembly.Module | undefined;

function coreModule(): WebAssembly.Module {
  if (!compiled) {
    let bytes: Uint8Array;
    try {
      bytes = fs.readFileSync(path.join(packageRoot, "build", "core.wasm"));
    } catch {
      throw new RvmError("the WebAssembly core is not built: run `npm install` (or `npm run build`)");
    }
    const module = new Uint8Array(bytes);
    if (!sharedMemoryWorks) unshareMemoryImport(module);
    compiled = new WebAssembly.Module(module);
  }
  return compiled;
}

/**
 * Whether this host has shared WebAssembly memory: Node has; a browser only when the page is
 * cross-origin isolated (COOP/COEP headers). Without it the core runs on a private memory (no
 * worker thread can then write guest RAM: the lazy restore's fetcher stays on the hart's thread).
 */
export const sharedMemoryWorks: boolean = (() => {
  try {
    return typeof SharedArrayBuffer !== "undefined" && new WebAssembly.Memory({ initial: 1, maximum: 1, shared: true }).buffer instanceof SharedArrayBuffer;
  } catch {
    return false;
  }
})();

/**
 * Turns the module's import of a shared memory (env.memory) into one of a private memory, in
 * place: the limits flag of that import goes from 3 (shared, with maximum) to 1 (with maximum).
 * The code does not change: the core uses no atomic instructions.
 */
function unshareMemoryImport(wasm: Uint8Array): void {
  let pos = 8;
  const leb = (): number => {
    let v = 0, shift = 0, b: number;
    do {
      b = wasm[pos++];
      v += (b & 0x7f) * 2 ** shift;
      shift += 7;
    } while (b & 0x80);
    return v;
  };
  const name = (): string => {
    const n = leb();
    const s = String.fromCharCode(...wasm.subarray(pos, pos + n));
    pos += n;
    return s;
  };
  while (pos < wasm.length) {
    const id = wasm[pos++];
    const size = leb();
    const end = pos + size;
    if (id === 2) {
      for (let count = leb(); count > 0; count--) {
        const mod = name(), field = name(), kind = wasm[pos++];
        if (kind === 0) leb(); // function: type index
        else if (kind === 1) { pos++; const f = wasm[pos++]; leb(); if (f & 1) leb(); } // table
        else if (kind === 3) pos += 2; // global: type, mutability
        else if (kind === 2) {
          if (mod === "env" && field === "memory" && wasm[pos] === 3) {
            wasm[pos] = 1;
            return;
          }
          const f = wasm[pos++];
          leb();
          if (f & 1) leb();
        }
      }
      return;
    }
    pos = end;
  }
}

/**
 * The core's linear memory: shared (a SharedArrayBuffer underneath) where the host has shared
 * memory, so that worker threads can write guest RAM while the hart runs (the lazy restore's
 * background fetcher, src/snapshot/fetcher.ts). It starts at the size the module declares and
 * `init` grows it to hold the machine's RAM; the maximum is the 4 GiB a 32-bit memory can address.
 */
function newCoreMemory(): WebAssembly.Memory {
  return new WebAssembly.Memory({ initial: CORE_MEMORY_INITIAL_PAGES, maximum: 65536, shared: sharedMemoryWorks });
}

/** asconfig.json's initialMemory (64 KiB pages). */
const CORE_MEMORY_INITIAL_PAGES = 256;

/** The compiled core module (a worker thread instantiates it over a core's shared memory). */
export function compiledCore(): WebAssembly.Module {
  return coreModule();
}

/** A range of guest-physical addresses: where a device or memory sits (src/board/memmap.ts). */
export interface Region {
  readonly name: string;
  readonly base: number;
  readonly size: number;
}

/** A device reachable over MMIO: a range of guest-physical addresses and its handler. */
export interface BusMapping extends Region {
  handler: MmioHandler;
  /** The device's PLIC source, its QEMU type name and more properties, for `info qtree`. */
  irq?: number;
  type?: string;
  properties?: () => string[];
}

/** A region as `info mtree` shows it: memory (RAM, ROM) or I/O. */
export interface MappedRegion extends Region {
  readonly kind: "ram" | "rom" | "i/o";
}

/** The devices the core itself emulates (assembly/bus.ts: DEV_*). */
export const enum CoreDevice {
  Rom = 0,
  Clint = 1,
}

export class Core {
  readonly exports: CoreExports;
  readonly ramBytes: number;
  /**
   * Guest RAM: byte 0 is guest-physical 0x8000_0000. Writes go through GuestMemory (which marks
   * pages dirty, as a hart's store does) or come from a restore (after markClean or
   * markAllNotRestored): savevm trusts the dirty bits (incremental saves; a page never dirty in a
   * machine never saved nor restored is not even read: exports.cleanPagesAreZero).
   */
  readonly ram: Uint8Array;
  /** One state byte per RAM page (PageState bits). */
  readonly pages: Uint8Array;
  /** The reset ROM, guest-physical 0x0..0x10000. */
  readonly rom: Uint8Array;
  /**
   * The core's function table: the JIT (src/jit/) puts translated pages here and the core calls
   * them with call_indirect. Slot 0 stays empty (0 = no translation).
   */
  readonly table = new WebAssembly.Table({ element: "anyfunc", initial: 64 });
  private readonly bus: BusMapping[] = [];
  /** Regions served inside the core (RAM, reset ROM, CLINT), for `info mtree`. */
  private readonly coreRegions: MappedRegion[] = [];

  /** How many harts the machine has (-smp). */
  readonly harts: number;

  constructor(ramBytes: number, harts = 1) {
    if (ramBytes % PAGE_SIZE !== 0 || ramBytes <= 0) throw new RvmError(`memory size must be a positive multiple of 4 KiB`);
    const instance = new WebAssembly.Instance(coreModule(), {
      env: { memory: newCoreMemory(), table: this.table },
      host: {
        mmioRead: (addr: number, size: number) => this.mmioRead(addr >>> 0, size),
        mmioWrite: (addr: number, size: number, value: number) => this.mmioWrite(addr >>> 0, size, value >>> 0),
        trace: (kind: number, a: bigint, b: bigint, c: bigint) => this.onTrace?.(kind, a, b, c),
      },
    });
    this.exports = instance.exports as unknown as CoreExports;
    if (!Number.isInteger(harts) || harts < 1 || harts > MAX_HARTS) throw new RvmError(`-smp ${harts}: rvm has 1 to ${MAX_HARTS} harts`);
    this.harts = harts;
    if (!this.exports.init(ramBytes / PAGE_SIZE, harts)) {
      throw new RvmError(`cannot allocate ${ramBytes / (1 << 20)} MiB of guest memory (the limit is about 4 GiB in all)`);
    }
    this.ramBytes = ramBytes;
    const buf = this.exports.memory.buffer;
    this.ram = new Uint8Array(buf, this.exports.ramAddress(), ramBytes);
    this.pages = new Uint8Array(buf, this.exports.pagesAddress(), ramBytes / PAGE_SIZE);
    this.rom = new Uint8Array(buf, this.exports.romAddress(), 0x10000);
  }

  /** Attaches a host device at its region; `info` says what `info qtree` shows of it. */
  map(region: Region & { irq?: number }, handler: MmioHandler, info: Pick<BusMapping, "type" | "properties"> = {}): void {
    this.bus.push({ name: region.name, base: region.base, size: region.size, irq: region.irq, handler, ...info });
    this.bus.sort((a, b) => a.base - b.base);
  }

  /** Places one of the core's own devices (reset ROM, CLINT) at its region. */
  mapCore(device: CoreDevice, region: Region): void {
    this.exports.mapDevice(device, BigInt(region.base), BigInt(region.size));
    this.coreRegions.push({ name: region.name, base: region.base, size: region.size, kind: device === CoreDevice.Rom ? "rom" : "i/o" });
  }

  /** Host devices on the bus, by address. */
  mappings(): readonly BusMapping[] {
    return this.bus;
  }

  /** Names the guest RAM region (it always sits at RAM_BASE) for `info mtree`. */
  nameRam(name: string): void {
    this.coreRegions.push({ name, base: RAM_BASE, size: this.ramBytes, kind: "ram" });
  }

  /** Every region, core and host, by address (what `info mtree` lists). */
  regions(): MappedRegion[] {
    const host = this.bus.map((m): MappedRegion => ({ name: m.name, base: m.base, size: m.size, kind: "i/o" }));
    return [...this.coreRegions, ...host].sort((a, b) => a.base - b.base);
  }

  private find(addr: number): BusMapping | undefined {
    for (const m of this.bus) if (addr >= m.base && addr < m.base + m.size) return m;
    return undefined;
  }

  /** The -d log's hooks (src/trace.ts): the core's trace import, and accesses nothing answers. */
  onTrace: ((kind: number, a: bigint, b: bigint, c: bigint) => void) | undefined;
  onUnmapped: ((addr: number, size: number, write: boolean) => void) | undefined;

  private mmioRead(addr: number, size: number): number {
    const m = this.find(addr);
    if (!m) {
      this.onUnmapped?.(addr, size, false);
      this.exports.mmioFault();
      return 0;
    }
    return m.handler.read(addr - m.base, size) >>> 0;
  }

  private mmioWrite(addr: number, size: number, value: number): void {
    const m = this.find(addr);
    if (!m) {
      this.onUnmapped?.(addr, size, true);
      this.exports.mmioFault();
      return;
    }
    m.handler.write(addr - m.base, size, value);
  }

  run(maxInsns: number): Exit {
    return this.exports.run(maxInsns) as Exit;
  }

  get pc(): bigint {
    return this.exports.getPc();
  }
  set pc(v: bigint) {
    this.exports.setPc(v);
  }
  x(i: number): bigint {
    return this.exports.getX(i);
  }
  setX(i: number, v: bigint): void {
    this.exports.setX(i, BigInt.asUintN(64, v));
  }
  /** Raw bits of f register i (NaN-boxed singles as stored). */
  f(i: number): bigint {
    return this.exports.getF(i);
  }
  setF(i: number, v: bigint): void {
    this.exports.setF(i, BigInt.asUintN(64, v));
  }
  csr(num: number): bigint {
    return this.exports.readCsr(num);
  }
  get priv(): number {
    return this.exports.getPriv();
  }
  /** Whether the selected hart is stopped in WFI. */
  get inWfi(): boolean {
    return this.exports.inWfi() !== 0;
  }
  /** Instructions retired by all harts. */
  get instret(): bigint {
    return this.exports.instret();
  }

  /**
   * The core's own page-table walk (Sv39/48/57, assembly/mmu.ts) of `va` for `access` (0 fetch,
   * 1 load, 2 store) under `satp`, at privilege `priv` (0 U, 1 S; 3 M: `va` is physical) with
   * mstatus's SUM and MXR from `status`, without side effects (no A/D update, no TLB fill, no
   * trap, no page restored, no hart state changed; the selected hart's own context is not used).
   * `pa`: the physical address; -1 if `va` does not map or `access` is not permitted; -2 if a
   * page-table page is not restored. `ptes`: the guest-physical address of each page-table entry
   * the walk read, root first (the last is the leaf's or the one the walk stopped at).
   */
  walk(va: bigint, access: number, satp: bigint, priv: number, status: bigint): { pa: bigint; ptes: bigint[] } {
    const ex = this.exports;
    const pa = ex.debugWalk(BigInt.asUintN(64, va), access, BigInt.asUintN(64, satp), priv, BigInt.asUintN(64, status));
    const log = new BigUint64Array(ex.memory.buffer, ex.debugWalkLog(), 1 + ex.debugWalkLogMax());
    const n = Math.min(Number(log[0]), log.length - 1);
    return { pa, ptes: Array.from(log.subarray(1, 1 + n)) };
  }

  /** The hart the accessors above (pc, x, csr, priv) read: the running one unless selected. */
  get selectedHart(): number {
    return this.exports.currentHart();
  }

  /**
   * Runs `fn` with hart `h` selected for the accessors, then selects the previous one again:
   * the machine is left exactly as it was (the monitor's `cpu N`, `info cpus`).
   */
  withHart<T>(h: number, fn: () => T): T {
    const before = this.exports.currentHart();
    this.exports.selectHart(h);
    try {
      return fn();
    } finally {
      this.exports.selectHart(before);
    }
  }

  /**
   * Every hart's state block (registers, CSRs, privilege, WFI), as snapshots save them: views of
   * the slots, made current first. Writing them and calling `hartsRestored` brings them back.
   */
  hartStates(): Uint8Array[] {
    this.exports.syncHarts();
    const size = this.exports.hartSize();
    return Array.from({ length: this.harts }, (_, h) => new Uint8Array(this.exports.memory.buffer, this.exports.hartSlotAddress(h), size));
  }

  /** A copy of every hart's state and of the shared machine state, for comparisons. */
  hartState(): Uint8Array {
    return Buffer.concat([...this.hartStates(), this.machineState()]);
  }

  /** The state the harts share: mtime, the CLINT's msip/mtimecmp, the PLIC's lines, whose turn it is. */
  machineState(): Uint8Array {
    return new Uint8Array(this.exports.memory.buffer, this.exports.machineAddress(), this.exports.machineSize());
  }
}
