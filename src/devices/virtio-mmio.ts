// The virtio-mmio transport and split virtqueues. Virtual I/O Device (VIRTIO) Version 1.1:
// section 4.2.2 (MMIO device register layout, version 2, "modern"), 4.2.4 (the legacy
// interface, version 1), section 2.7 (split virtqueues; 2.7.2 the legacy ring layout),
// 2.7.5.3 (indirect descriptors), 2.7.7/2.7.10 (event index notification suppression), 2.1.2
// (DEVICE_NEEDS_RESET). Modelled on QEMU's hw/virtio/virtio-mmio.c: vendor ID "QEMU", one
// device per 0x1000-byte slot, and its `force-legacy` property choosing the version (QEMU 7.2
// defaults to legacy; xv6-riscv since 2022 asks for modern, older xv6 and Linux drive both).
//
// Legacy (version 1) differs from modern in: a queue is placed by one page frame number
// (QueuePFN, in units of GuestPageSize) with the rings laid out contiguously (avail after the
// descriptors, used at the next QueueAlign boundary); writing QueuePFN 0 resets the device;
// there is no QueueReady, no ConfigGeneration, no FEATURES_OK negotiation and only the low 32
// feature bits (no VIRTIO_F_VERSION_1).
//
// Requests are served synchronously inside the guest's store to QueueNotify, except those the
// device defers (a virtio-blk request whose blocks are still in a remote object store): each stays
// in flight while the hart runs and completes (data, used-ring entry, interrupt) when its bytes are
// in. Several may be in flight on a queue, completing in any order (no VIRTIO_F_IN_ORDER), as long
// as the device says they do not touch the same data (`VirtioDevice.extent`); a request that does
// is held (popped, not yet served) until the ones it overlaps complete, and the requests after it
// that overlap nothing go on. drain() completes them at once (savevm, loadvm). All guest memory
// goes through GuestMemory, so pages not yet restored are restored first and pages the device
// writes are marked. Where a page a queue needs (its rings, an indirect table, a request's buffers)
// is still in a remote store (a lazy restore from an object store), the queue waits for it
// (GuestMemory.whenPresent) instead of blocking the process: the request stays in the available
// ring, with every one after it, and the queue is served again once the page is in. A malformed
// ring or descriptor chain (out-of-RAM address, loop, chain too long, bad ordering) never throws
// into the core: the device sets DEVICE_NEEDS_RESET, sends a configuration-change interrupt and
// ignores its queues until the driver resets it, as QEMU's virtio_error does.

import type { MmioHandler } from "../core.js";
import type { GuestMemory } from "../memory.js";


// Register offsets (4.2.2).
export const VIRTIO_MMIO_MAGIC_VALUE = 0x000;
export const VIRTIO_MMIO_VERSION = 0x004;
export const VIRTIO_MMIO_DEVICE_ID = 0x008;
export const VIRTIO_MMIO_VENDOR_ID = 0x00c;
export const VIRTIO_MMIO_DEVICE_FEATURES = 0x010;
export const VIRTIO_MMIO_DEVICE_FEATURES_SEL = 0x014;
export const VIRTIO_MMIO_DRIVER_FEATURES = 0x020;
export const VIRTIO_MMIO_DRIVER_FEATURES_SEL = 0x024;
export const VIRTIO_MMIO_GUEST_PAGE_SIZE = 0x028; // legacy
export const VIRTIO_MMIO_QUEUE_SEL = 0x030;
export const VIRTIO_MMIO_QUEUE_NUM_MAX = 0x034;
export const VIRTIO_MMIO_QUEUE_NUM = 0x038;
export const VIRTIO_MMIO_QUEUE_ALIGN = 0x03c; // legacy
export const VIRTIO_MMIO_QUEUE_PFN = 0x040; // legacy
export const VIRTIO_MMIO_QUEUE_READY = 0x044;
export const VIRTIO_MMIO_QUEUE_NOTIFY = 0x050;
export const VIRTIO_MMIO_INTERRUPT_STATUS = 0x060;
export const VIRTIO_MMIO_INTERRUPT_ACK = 0x064;
export const VIRTIO_MMIO_STATUS = 0x070;
export const VIRTIO_MMIO_QUEUE_DESC_LOW = 0x080;
export const VIRTIO_MMIO_QUEUE_DESC_HIGH = 0x084;
export const VIRTIO_MMIO_QUEUE_DRIVER_LOW = 0x090;
export const VIRTIO_MMIO_QUEUE_DRIVER_HIGH = 0x094;
export const VIRTIO_MMIO_QUEUE_DEVICE_LOW = 0x0a0;
export const VIRTIO_MMIO_QUEUE_DEVICE_HIGH = 0x0a4;
export const VIRTIO_MMIO_SHM_SEL = 0x0ac;
export const VIRTIO_MMIO_SHM_LEN_LOW = 0x0b0;
export const VIRTIO_MMIO_SHM_LEN_HIGH = 0x0b4;
export const VIRTIO_MMIO_SHM_BASE_LOW = 0x0b8;
export const VIRTIO_MMIO_SHM_BASE_HIGH = 0x0bc;
export const VIRTIO_MMIO_CONFIG_GENERATION = 0x0fc;
export const VIRTIO_MMIO_CONFIG = 0x100;

export const VIRTIO_MMIO_MAGIC = 0x74726976; // "virt"
export const VIRTIO_MMIO_VENDOR_QEMU = 0x554d4551; // "QEMU"

// InterruptStatus bits.
export const VIRTIO_MMIO_INT_VRING = 1;
export const VIRTIO_MMIO_INT_CONFIG = 2;

// Device status (2.1).
export const VIRTIO_CONFIG_S_ACKNOWLEDGE = 1;
export const VIRTIO_CONFIG_S_DRIVER = 2;
export const VIRTIO_CONFIG_S_DRIVER_OK = 4;
export const VIRTIO_CONFIG_S_FEATURES_OK = 8;
export const VIRTIO_CONFIG_S_NEEDS_RESET = 0x40;
export const VIRTIO_CONFIG_S_FAILED = 0x80;

// Transport feature bits (6).
export const VIRTIO_RING_F_INDIRECT_DESC = 28;
export const VIRTIO_RING_F_EVENT_IDX = 29;
export const VIRTIO_F_VERSION_1 = 32;

// Descriptor flags (2.7.5).
export const VIRTQ_DESC_F_NEXT = 1;
export const VIRTQ_DESC_F_WRITE = 2;
export const VIRTQ_DESC_F_INDIRECT = 4;
export const VIRTQ_AVAIL_F_NO_INTERRUPT = 1;
export const VIRTQ_USED_F_NO_NOTIFY = 1;

/** QueueAlign before a legacy driver writes it (QEMU's VIRTIO_PCI_VRING_ALIGN). */
export const VIRTIO_LEGACY_QUEUE_ALIGN = 4096;

/** The longest indirect table accepted (QEMU's VIRTQUEUE_MAX_SIZE is 1024). */
const MAX_INDIRECT = 1024;

export const bit = (n: number): bigint => 1n << BigInt(n);

/** A guest request is malformed: the device needs a reset (2.1.2). */
export class VirtioError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "VirtioError";
  }
}

/** A run of guest-physical memory named by a descriptor. */
export interface VirtqSegment {
  addr: number;
  len: number;
}

/** The part of `segs`, taken as one byte string, between `offset` and `offset + len`. */
export function sliceSegments(segs: readonly VirtqSegment[], offset: number, len: number): VirtqSegment[] {
  const out: VirtqSegment[] = [];
  let pos = 0;
  for (const s of segs) {
    if (len <= 0) break;
    const end = pos + s.len;
    if (end > offset) {
      const skip = Math.max(0, offset - pos);
      const take = Math.min(s.len - skip, len);
      if (take > 0) out.push({ addr: s.addr + skip, len: take });
      offset += take;
      len -= take;
    }
    pos = end;
  }
  return out;
}

/** A descriptor chain popped from the available ring: device-readable, then device-writable. */
export class DescriptorChain {
  readonly readableLength: number;
  readonly writableLength: number;

  constructor(
    private readonly mem: GuestMemory,
    readonly head: number,
    readonly readable: readonly VirtqSegment[],
    readonly writable: readonly VirtqSegment[],
  ) {
    this.readableLength = readable.reduce((n, s) => n + s.len, 0);
    this.writableLength = writable.reduce((n, s) => n + s.len, 0);
  }

  /** Copies `len` device-readable bytes from `offset`. */
  read(offset: number, len: number): Uint8Array {
    const out = new Uint8Array(len);
    let at = 0;
    for (const s of sliceSegments(this.readable, offset, len)) {
      out.set(this.mem.view(s.addr, s.len), at);
      at += s.len;
    }
    if (at < len) throw new VirtioError(`request needs ${offset + len} readable bytes, chain has ${this.readableLength}`);
    return out;
  }

  /** Writes `bytes` into the device-writable part at `offset`. */
  write(offset: number, bytes: Uint8Array): void {
    let at = 0;
    for (const s of sliceSegments(this.writable, offset, bytes.length)) {
      this.mem.writable(s.addr, s.len).set(bytes.subarray(at, at + s.len));
      at += s.len;
    }
    if (at < bytes.length) throw new VirtioError(`request needs ${offset + bytes.length} writable bytes, chain has ${this.writableLength}`);
  }
}

/**
 * A request a device completes later, as QEMU's block layer completes an AIO request: it stays
 * in flight (popped from the available ring, not yet in the used ring) while the hart runs.
 */
export interface DeferredRequest {
  /** Settles (either way) once complete() no longer waits. */
  readonly ready: Promise<unknown>;
  /** Completes it (synchronously, waiting if `ready` has not settled): the used ring's len. */
  complete(): number;
}

/**
 * What a request touches, for ordering it against the requests in flight on its queue: a range
 * of the device's data and whether the request changes it; `barrier`: it comes after every
 * request in flight (a flush); `none`: it touches no data (an ID).
 */
export type RequestExtent = { start: number; end: number; write: boolean } | "barrier" | "none";

/** Whether a request of extent `b` must wait for one of extent `a` in flight (a write and anything else on the same bytes). */
export function overlaps(a: RequestExtent, b: RequestExtent): boolean {
  if (a === "barrier" || b === "barrier") return true;
  if (a === "none" || b === "none") return false;
  return (a.write || b.write) && a.start < b.end && b.start < a.end;
}

/**
 * Thrown inside serve() when guest memory a queue needs is not present yet and its page source
 * fetches it from far away: the queue is served again once `ready` settles.
 */
class PagesPending {
  constructor(readonly ready: Promise<void>) {}
}

/** A request in flight on a queue: its head descriptor, the device's deferred request, what it touches. */
interface InFlight {
  head: number;
  req: DeferredRequest;
  extent: RequestExtent;
}

/** A request popped from the available ring and held behind the ones it overlaps (not yet handed to the device). */
interface Held {
  head: number;
  chain: DescriptorChain;
  extent: RequestExtent;
}

/** A device type behind the transport (virtio-blk, ...). */
export interface VirtioDevice {
  readonly deviceId: number;
  /** Device-type feature bits; the transport adds VERSION_1, INDIRECT_DESC and EVENT_IDX. */
  readonly deviceFeatures: bigint;
  readonly numQueues: number;
  readonly queueNumMax: number;
  readConfig(offset: number, size: number): number;
  writeConfig(offset: number, size: number, value: number): void;
  /**
   * Serves one request; returns the number of bytes written into its device-writable buffers
   * (the used ring's len). Throws VirtioError for a malformed request. With `mayDefer`, a request
   * the device cannot serve at once (virtio-blk: a disk read whose blocks are in a remote store)
   * may instead return a DeferredRequest, which the transport completes later.
   */
  handle(queue: number, chain: DescriptorChain, mayDefer?: boolean): number | DeferredRequest;
  /**
   * What request `chain` touches (it must not throw: a request it cannot make sense of is a
   * `barrier`, and handle() says what is wrong with it). Without it, a queue with a request in
   * flight serves nothing more until that one completes.
   */
  extent?(queue: number, chain: DescriptorChain): RequestExtent;
  /** The driver reset the device (status 0). */
  reset(): void;
}

interface Virtqueue {
  num: number;
  ready: boolean;
  desc: number;
  driver: number;
  device: number;
  /** The next available-ring index the device will read (last_avail_idx). */
  lastAvail: number;
  /** The next used-ring index the device will write. */
  usedIdx: number;
  /** Legacy: QueuePFN as written (0: no queue) and QueueAlign. */
  pfn: number;
  align: number;
}

export interface VirtqueueState {
  num: number;
  ready: boolean;
  desc: number;
  driver: number;
  device: number;
  lastAvail: number;
  usedIdx: number;
  pfn?: number;
  align?: number;
}

/** Transport state for snapshots; plain JSON (64-bit feature words as hex strings). */
export interface VirtioMmioState {
  status: number;
  deviceFeaturesSel: number;
  driverFeatures: string;
  driverFeaturesSel: number;
  queueSel: number;
  interruptStatus: number;
  configGeneration: number;
  broken: string | null;
  queues: VirtqueueState[];
  /** Legacy: log2 of GuestPageSize. */
  guestPageShift?: number;
}

function newQueue(): Virtqueue {
  return { num: 0, ready: false, desc: 0, driver: 0, device: 0, lastAvail: 0, usedIdx: 0, pfn: 0, align: VIRTIO_LEGACY_QUEUE_ALIGN };
}

/** The legacy ring layout (2.7.2): descriptors, then the available ring, then the used ring at the next `align` boundary. */
function legacyRings(q: Virtqueue, pageShift: number): void {
  q.desc = q.pfn * 2 ** pageShift;
  q.driver = q.desc + 16 * q.num;
  const align = q.align > 0 ? q.align : 1;
  q.device = Math.ceil((q.driver + 6 + 2 * q.num) / align) * align;
  q.ready = q.pfn !== 0;
}

export interface VirtioMmioOptions {
  /** The legacy (version 1) register layout, as QEMU's `force-legacy=on`. Default: modern. */
  legacy?: boolean;
}

const lo = (v: number): number => v % 0x1_0000_0000 >>> 0;
const hi = (v: number): number => Math.floor(v / 0x1_0000_0000) >>> 0;
const setLo = (v: number, w: number): number => hi(v) * 0x1_0000_0000 + (w >>> 0);
const setHi = (v: number, w: number): number => (w >>> 0) * 0x1_0000_0000 + lo(v);

export class VirtioMmio implements MmioHandler {
  private status = 0;
  private deviceFeaturesSel = 0;
  private driverFeatures = 0n;
  private driverFeaturesSel = 0;
  private queueSel = 0;
  private interruptStatus = 0;
  private configGeneration = 0;
  private shmSel = 0;
  /** Legacy: log2 of GuestPageSize, the unit of QueuePFN. */
  private guestPageShift = 0;
  /** Why the device needs a reset, or null. */
  private broken: string | null = null;
  private queues: Virtqueue[];
  readonly features: bigint;
  /** The legacy (version 1) interface. */
  readonly legacy: boolean;
  /**
   * The requests in flight on each queue (deferred ones), in the order they were made available.
   * A request that overlaps one of them (`overlaps`) is held (`held`) until they complete: a WRITE
   * never overtakes a READ of the same blocks made available before it, nor a READ a WRITE, and
   * a FLUSH (a barrier) waits for all before it; a request after it that overlaps nothing in
   * flight or held is served meanwhile.
   */
  private inflight: InFlight[][] = [];
  /**
   * Per queue, the requests held behind an overlapping one (in flight or held before them), in
   * the order they were made available: each is served once it overlaps none of those.
   */
  private held: Held[][] = [];
  /** Bumped by a device reset or a state restore: a deferred request of before is dropped. */
  private generation = 0;
  /** Requests deferred so far, and the time they were in flight (ms). */
  deferred = 0;
  deferredMs = 0;
  /**
   * Queues waiting for guest pages still in a remote store (serve() found one it needs missing):
   * the wait serves the queue again. Waits so far, and their time (ms).
   */
  private pageWait: boolean[] = [];
  pageWaits = 0;
  pageWaitMs = 0;
  /** Told when a deferred request completed between slices (the run loop wakes from WFI). */
  onDeferredDone: (() => void) | undefined;

  /**
   * @param irq the interrupt line (level = InterruptStatus != 0); called on every update
   * @param onError told once when a malformed request makes the device need a reset
   */
  constructor(
    private readonly mem: GuestMemory,
    readonly device: VirtioDevice,
    private readonly irq: (level: boolean) => void = () => {},
    private readonly onError?: (message: string) => void,
    opts: VirtioMmioOptions = {},
  ) {
    this.legacy = opts.legacy ?? false;
    const ring = bit(VIRTIO_RING_F_INDIRECT_DESC) | bit(VIRTIO_RING_F_EVENT_IDX);
    // A legacy device offers only the low 32 feature bits, and never VIRTIO_F_VERSION_1.
    this.features = this.legacy ? (device.deviceFeatures | ring) & 0xffff_ffffn : device.deviceFeatures | ring | bit(VIRTIO_F_VERSION_1);
    this.queues = Array.from({ length: device.numQueues }, newQueue);
  }

  /** The reason the device needs a reset, if it does. */
  get error(): string | null {
    return this.broken;
  }

  private negotiated(feature: number): boolean {
    return (this.driverFeatures & bit(feature)) !== 0n;
  }

  private get selected(): Virtqueue | undefined {
    return this.queues[this.queueSel];
  }

  read(offset: number, size: number): number {
    if (offset >= VIRTIO_MMIO_CONFIG) return this.device.readConfig(offset - VIRTIO_MMIO_CONFIG, size) >>> 0;
    if (size !== 4) return 0; // the register block is 32-bit only (4.2.2.2)
    const q = this.selected;
    switch (offset) {
      case VIRTIO_MMIO_MAGIC_VALUE:
        return VIRTIO_MMIO_MAGIC;
      case VIRTIO_MMIO_VERSION:
        return this.legacy ? 1 : 2;
      case VIRTIO_MMIO_DEVICE_ID:
        return this.device.deviceId;
      case VIRTIO_MMIO_VENDOR_ID:
        return VIRTIO_MMIO_VENDOR_QEMU;
      case VIRTIO_MMIO_DEVICE_FEATURES:
        if (this.deviceFeaturesSel > 1) return 0;
        return Number((this.features >> BigInt(32 * this.deviceFeaturesSel)) & 0xffff_ffffn);
      case VIRTIO_MMIO_QUEUE_NUM_MAX:
        return q ? this.device.queueNumMax : 0;
      case VIRTIO_MMIO_QUEUE_PFN:
        return this.legacy && q ? q.pfn : 0;
      case VIRTIO_MMIO_INTERRUPT_STATUS:
        return this.interruptStatus;
      case VIRTIO_MMIO_STATUS:
        return this.status;
    }
    // The rest exist in the modern layout only; a legacy device reads them as zero, as QEMU's.
    if (this.legacy) return 0;
    switch (offset) {
      case VIRTIO_MMIO_QUEUE_READY:
        return q?.ready ? 1 : 0;
      case VIRTIO_MMIO_SHM_LEN_LOW:
      case VIRTIO_MMIO_SHM_LEN_HIGH:
      case VIRTIO_MMIO_SHM_BASE_LOW:
      case VIRTIO_MMIO_SHM_BASE_HIGH:
        return 0xffff_ffff; // no shared memory regions: length -1 (4.2.2)
      case VIRTIO_MMIO_CONFIG_GENERATION:
        return this.configGeneration;
      // Registers the driver writes; reading them back is harmless and helps debugging.
      case VIRTIO_MMIO_DEVICE_FEATURES_SEL:
        return this.deviceFeaturesSel;
      case VIRTIO_MMIO_DRIVER_FEATURES_SEL:
        return this.driverFeaturesSel;
      case VIRTIO_MMIO_QUEUE_SEL:
        return this.queueSel;
      case VIRTIO_MMIO_QUEUE_NUM:
        return q ? q.num : 0;
      case VIRTIO_MMIO_QUEUE_DESC_LOW:
        return q ? lo(q.desc) : 0;
      case VIRTIO_MMIO_QUEUE_DESC_HIGH:
        return q ? hi(q.desc) : 0;
      case VIRTIO_MMIO_QUEUE_DRIVER_LOW:
        return q ? lo(q.driver) : 0;
      case VIRTIO_MMIO_QUEUE_DRIVER_HIGH:
        return q ? hi(q.driver) : 0;
      case VIRTIO_MMIO_QUEUE_DEVICE_LOW:
        return q ? lo(q.device) : 0;
      case VIRTIO_MMIO_QUEUE_DEVICE_HIGH:
        return q ? hi(q.device) : 0;
      default:
        return 0;
    }
  }

  write(offset: number, size: number, value: number): void {
    if (offset >= VIRTIO_MMIO_CONFIG) {
      this.device.writeConfig(offset - VIRTIO_MMIO_CONFIG, size, value);
      return;
    }
    if (size !== 4) return;
    const v = value >>> 0;
    const q = this.selected;
    switch (offset) {
      case VIRTIO_MMIO_DEVICE_FEATURES_SEL:
        this.deviceFeaturesSel = v;
        return;
      case VIRTIO_MMIO_DRIVER_FEATURES:
        // Features are fixed once FEATURES_OK is set (3.1.1); a legacy device has one word.
        if (this.status & VIRTIO_CONFIG_S_FEATURES_OK || this.driverFeaturesSel > (this.legacy ? 0 : 1)) return;
        {
          const shift = BigInt(32 * this.driverFeaturesSel);
          this.driverFeatures = (this.driverFeatures & ~(0xffff_ffffn << shift)) | (BigInt(v) << shift);
          // Legacy: no FEATURES_OK check, so keep only what was offered (as QEMU's virtio_set_features).
          if (this.legacy) this.driverFeatures &= this.features;
        }
        return;
      case VIRTIO_MMIO_DRIVER_FEATURES_SEL:
        this.driverFeaturesSel = v;
        return;
      case VIRTIO_MMIO_QUEUE_SEL:
        this.queueSel = v;
        return;
      case VIRTIO_MMIO_QUEUE_NUM:
        if (!q) return;
        q.num = v;
        if (this.legacy) legacyRings(q, this.guestPageShift);
        return;
      case VIRTIO_MMIO_QUEUE_NOTIFY:
        this.processQueue(v & 0xffff);
        return;
      case VIRTIO_MMIO_INTERRUPT_ACK:
        this.interruptStatus &= ~v;
        this.updateIrq();
        return;
      case VIRTIO_MMIO_STATUS:
        this.writeStatus(v & 0xff);
        return;
    }
    if (this.legacy) {
      switch (offset) {
        case VIRTIO_MMIO_GUEST_PAGE_SIZE: {
          // QEMU: the shift is the number of trailing zeros; 0 (or beyond 31) means 1-byte pages.
          const shift = v === 0 ? 32 : 31 - Math.clz32(v & -v);
          this.guestPageShift = shift > 31 ? 0 : shift;
          return;
        }
        case VIRTIO_MMIO_QUEUE_ALIGN:
          if (q) {
            q.align = v;
            legacyRings(q, this.guestPageShift);
          }
          return;
        case VIRTIO_MMIO_QUEUE_PFN:
          if (!q) return;
          if (v === 0) {
            this.resetDevice(); // as QEMU: QueuePFN 0 resets the device
            return;
          }
          q.pfn = v;
          legacyRings(q, this.guestPageShift);
          return;
        default:
          return; // modern-only and read-only registers
      }
    }
    switch (offset) {
      case VIRTIO_MMIO_QUEUE_READY:
        if (q) q.ready = (v & 1) !== 0;
        return;
      case VIRTIO_MMIO_QUEUE_DESC_LOW:
        if (q) q.desc = setLo(q.desc, v);
        return;
      case VIRTIO_MMIO_QUEUE_DESC_HIGH:
        if (q) q.desc = setHi(q.desc, v);
        return;
      case VIRTIO_MMIO_QUEUE_DRIVER_LOW:
        if (q) q.driver = setLo(q.driver, v);
        return;
      case VIRTIO_MMIO_QUEUE_DRIVER_HIGH:
        if (q) q.driver = setHi(q.driver, v);
        return;
      case VIRTIO_MMIO_QUEUE_DEVICE_LOW:
        if (q) q.device = setLo(q.device, v);
        return;
      case VIRTIO_MMIO_QUEUE_DEVICE_HIGH:
        if (q) q.device = setHi(q.device, v);
        return;
      case VIRTIO_MMIO_SHM_SEL:
        this.shmSel = v;
        return;
      default:
        return; // read-only and legacy (version 1) registers
    }
  }

  private writeStatus(v: number): void {
    if (v === 0) {
      this.resetDevice();
      return;
    }
    // FEATURES_OK sticks only if the device accepts the driver's features (3.1.1 step 5): a
    // subset of what it offered. A driver that leaves out VIRTIO_F_VERSION_1 is accepted, as
    // QEMU accepts it (it validates features only once VERSION_1 is negotiated): xv6-riscv
    // writes only DriverFeatures word 0. The split ring is the same either way, and
    // little-endian on RISC-V.
    // A legacy device has no FEATURES_OK handshake: whatever the driver writes stands.
    if (!this.legacy && v & VIRTIO_CONFIG_S_FEATURES_OK && !(this.status & VIRTIO_CONFIG_S_FEATURES_OK)) {
      if ((this.driverFeatures & ~this.features) !== 0n) v &= ~VIRTIO_CONFIG_S_FEATURES_OK;
    }
    this.status = v | (this.status & VIRTIO_CONFIG_S_NEEDS_RESET);
  }

  /** System reset: the device and the transport's own registers (GuestPageSize) back to power-on. */
  reset(): void {
    this.guestPageShift = 0;
    this.resetDevice();
  }

  /**
   * Device reset (status 0, or legacy QueuePFN 0): everything back to its initial state (2.1,
   * 4.2.3.1) but GuestPageSize, which a legacy driver writes once, before it resets the device.
   */
  private resetDevice(): void {
    this.status = 0;
    this.deviceFeaturesSel = 0;
    this.driverFeatures = 0n;
    this.driverFeaturesSel = 0;
    this.queueSel = 0;
    this.interruptStatus = 0;
    this.shmSel = 0;
    this.broken = null;
    this.queues = Array.from({ length: this.device.numQueues }, newQueue);
    this.dropInflight();
    this.device.reset();
    this.updateIrq();
  }

  private updateIrq(): void {
    this.irq(this.interruptStatus !== 0);
  }

  /** The device's configuration space changed (e.g. a resized disk): tell the driver. */
  configChanged(): void {
    this.configGeneration = (this.configGeneration + 1) >>> 0;
    if (this.status & VIRTIO_CONFIG_S_DRIVER_OK) {
      this.interruptStatus |= VIRTIO_MMIO_INT_CONFIG;
      this.updateIrq();
    }
  }

  private needsReset(reason: string): void {
    if (this.broken !== null) return;
    this.broken = reason;
    this.status |= VIRTIO_CONFIG_S_NEEDS_RESET;
    this.onError?.(reason);
    if (this.status & VIRTIO_CONFIG_S_DRIVER_OK) {
      this.interruptStatus |= VIRTIO_MMIO_INT_CONFIG;
      this.updateIrq();
    }
  }

  /** Serves every request on the available ring of queue `index` (a QueueNotify). */
  processQueue(index: number): void {
    this.serve(index, undefined, true);
  }

  /** Requests in flight (deferred, not yet in the used ring). */
  get inFlight(): number {
    return this.inflight.reduce((n, list) => n + (list?.length ?? 0), 0);
  }

  /** Requests held behind an overlapping one (popped, not yet handed to the device). */
  get heldBack(): number {
    return this.held.reduce((n, list) => n + (list?.length ?? 0), 0);
  }

  /** Queues waiting for guest pages still in a remote store. */
  get waitingForPages(): number {
    return this.pageWait.filter((w) => w).length;
  }

  /**
   * Completes every request in flight now (synchronously), and what queued behind it, with no
   * deferral: the device then holds no half-done request. The machine calls it at each slice
   * boundary where a command runs with the hart stopped (savevm, savevm -b's capture, loadvm),
   * as QEMU drains the block layer before a snapshot.
   */
  drain(): void {
    for (let index = 0; index < this.queues.length; index++) {
      const list = this.inflight[index];
      if (!list?.length && !this.held[index]?.length && !this.pageWait[index]) continue;
      // A queue waiting for pages is served now too (the synchronous way): no request the guest
      // made available is left for a notify that already came.
      this.inflight[index] = [];
      this.pageWait[index] = false;
      this.serve(index, list, false);
    }
  }

  /** A device reset or restored state: requests in flight are dropped (their completion is ignored). */
  private dropInflight(): void {
    this.generation++;
    this.inflight = [];
    this.held = [];
    this.pageWait = [];
  }

  /**
   * Serves queue `index`: first `done` (requests that were in flight: completed now, in order, and
   * put in the used ring), then the held requests they released, then the available ring; a request
   * that overlaps one in flight or held is held; requests the device defers (with `mayDefer`) stay
   * in flight. With `mayDefer`, a page the rings or a request need that a remote store has not
   * brought in yet makes the queue wait for it (waitForPages), the request left in the ring;
   * without, it is fetched synchronously (drain). One interrupt decision for the whole batch.
   */
  private serve(index: number, done: InFlight[] | undefined, mayDefer: boolean): void {
    const q = this.queues[index];
    if (!q || !q.ready || !(this.status & VIRTIO_CONFIG_S_DRIVER_OK) || this.broken !== null) return;
    const flight = (this.inflight[index] ??= []);
    const mem = this.mem;
    const oldUsed = q.usedIdx;
    try {
      const num = q.num;
      if (num === 0 || num > this.device.queueNumMax) throw new VirtioError(`queue ${index}: size ${num} is invalid`);
      if (!mem.inRam(q.desc, 16 * num) || !mem.inRam(q.driver, 6 + 2 * num) || !mem.inRam(q.device, 6 + 8 * num)) {
        throw new VirtioError(`queue ${index}: rings outside RAM`);
      }
      const eventIdx = this.negotiated(VIRTIO_RING_F_EVENT_IDX);
      // (The rings of a request in flight or held were present when it was popped, and stay so.)
      for (const f of done ?? []) this.publish(q, f.head, f.req.complete());
      this.release(index, q, flight, mayDefer);
      let pending: Promise<void> | undefined;
      let ringsIn = true;
      try {
        if (mayDefer) {
          ringsIn = false;
          this.need(q.desc, 16 * num);
          this.need(q.driver, 6 + 2 * num);
          this.need(q.device, 6 + 8 * num);
          ringsIn = true;
        }
        this.serveAvailable(index, q, flight, mayDefer);
      } catch (err) {
        if (!(err instanceof PagesPending)) throw err;
        pending = err.ready;
      }
      // Ask to be notified of the next buffer (avail_event, 2.7.10).
      if (eventIdx && ringsIn) mem.writeU16(q.device + 4 + 8 * num, q.lastAvail);
      if (q.usedIdx !== oldUsed && this.wantsInterrupt(q, oldUsed, eventIdx)) {
        this.interruptStatus |= VIRTIO_MMIO_INT_VRING;
        this.updateIrq();
      }
      if (pending) this.waitForPages(index, pending);
    } catch (err) {
      // Buffers already used stay used; the guest may see them after its reset.
      const msg = err instanceof Error ? err.message : String(err);
      this.needsReset(`virtio device ${this.device.deviceId}: ${msg}`);
    }
  }

  /** The available ring of queue `index` (serve()): requests handled at once, deferred, or left in the ring. */
  private serveAvailable(index: number, q: Virtqueue, flight: InFlight[], mayDefer: boolean): void {
    const mem = this.mem;
    const num = q.num;
    const availIdx = mem.readU16(q.driver + 2);
    if (((availIdx - q.lastAvail) & 0xffff) > num) {
      throw new VirtioError(`queue ${index}: available index moved from ${q.lastAvail} to ${availIdx}`);
    }
    while (q.lastAvail !== availIdx) {
      const head = mem.readU16(q.driver + 4 + 2 * (q.lastAvail % num));
      const chain = this.popChain(q, head, mayDefer);
      if (mayDefer) for (const s of [...chain.readable, ...chain.writable]) this.need(s.addr, s.len);
      let extent: RequestExtent | undefined;
      // (Requests are held only while some are in flight.)
      if (flight.length > 0) {
        // A device that does not say what its requests touch: one in flight at a time (left in the ring).
        if (!this.device.extent) break;
        extent = this.device.extent(index, chain);
        const held = (this.held[index] ??= []);
        if (flight.some((f) => overlaps(f.extent, extent!)) || held.some((h) => overlaps(h.extent, extent!))) {
          // Served after the requests it overlaps; those after it that overlap nothing go on.
          q.lastAvail = (q.lastAvail + 1) & 0xffff;
          held.push({ head, chain, extent });
          continue;
        }
      }
      q.lastAvail = (q.lastAvail + 1) & 0xffff;
      this.start(index, q, head, chain, extent, mayDefer);
    }
  }

  /** Hands request `chain` to the device: completed now (used ring) or deferred (in flight). */
  private start(index: number, q: Virtqueue, head: number, chain: DescriptorChain, extent: RequestExtent | undefined, mayDefer: boolean): void {
    const len = this.device.handle(index, chain, mayDefer);
    if (typeof len !== "number") {
      extent ??= this.device.extent ? this.device.extent(index, chain) : "barrier";
      this.defer(index, { head, req: len, extent });
      return;
    }
    this.publish(q, head, len);
  }

  /** The held requests of queue `index` that no longer overlap one in flight or held before them are served, in order. */
  private release(index: number, q: Virtqueue, flight: InFlight[], mayDefer: boolean): void {
    const held = this.held[index];
    if (!held?.length) return;
    const still: Held[] = [];
    this.held[index] = still;
    for (const h of held) {
      if (flight.some((f) => overlaps(f.extent, h.extent)) || still.some((s) => overlaps(s.extent, h.extent))) still.push(h);
      else this.start(index, q, h.head, h.chain, h.extent, mayDefer);
    }
  }

  /** Guest memory [pa, pa + len) a queue needs: present now, or PagesPending (its source fetches it from far away). */
  private need(pa: number, len: number): void {
    const ready = this.mem.whenPresent(pa, len);
    if (ready) throw new PagesPending(ready);
  }

  /**
   * Queue `index` needs pages still on their way (`ready`): it is served again once they are in
   * (one wait per queue; a notify meanwhile finds the same pages missing). A fetch that failed
   * leaves it: the restore has failed and stops the VM.
   */
  private waitForPages(index: number, ready: Promise<void>): void {
    if (this.pageWait[index]) {
      ready.catch(() => undefined);
      return;
    }
    this.pageWait[index] = true;
    this.pageWaits++;
    const gen = this.generation;
    const t = performance.now();
    const again = () => {
      if (gen !== this.generation || !this.pageWait[index]) return; // reset, restored or drained meanwhile
      this.pageWait[index] = false;
      this.pageWaitMs += performance.now() - t;
      this.serve(index, undefined, true);
      this.onDeferredDone?.();
    };
    ready.then(again, () => {
      if (gen === this.generation) this.pageWait[index] = false;
    });
  }

  /** Used element first, then the index that publishes it (2.7.8). */
  private publish(q: Virtqueue, head: number, len: number): void {
    const mem = this.mem;
    const slot = q.device + 4 + 8 * (q.usedIdx % q.num);
    mem.writeU32(slot, head);
    mem.writeU32(slot + 4, len);
    q.usedIdx = (q.usedIdx + 1) & 0xffff;
    mem.writeU16(q.device + 2, q.usedIdx);
  }

  /** Request `f` of queue `index` stays in flight until it is ready; then it completes and the queue goes on. */
  private defer(index: number, f: InFlight): void {
    const flight = this.inflight[index];
    flight.push(f);
    this.deferred++;
    const gen = this.generation;
    const t = performance.now();
    const settled = () => {
      const at = flight.indexOf(f);
      if (gen !== this.generation || this.inflight[index] !== flight || at < 0) return; // reset, restored or drained meanwhile
      this.deferredMs += performance.now() - t;
      flight.splice(at, 1);
      this.serve(index, [f], true);
      this.onDeferredDone?.();
    };
    f.req.ready.then(settled, settled);
  }

  /** Used buffer notification suppression (2.7.7.2, 2.7.10). */
  private wantsInterrupt(q: Virtqueue, oldUsed: number, eventIdx: boolean): boolean {
    if (eventIdx) {
      const usedEvent = this.mem.readU16(q.driver + 4 + 2 * q.num);
      // vring_need_event(): did used_idx step over used_event since the last interrupt?
      return ((q.usedIdx - usedEvent - 1) & 0xffff) < ((q.usedIdx - oldUsed) & 0xffff);
    }
    return (this.mem.readU16(q.driver) & VIRTQ_AVAIL_F_NO_INTERRUPT) === 0;
  }

  /** Walks a descriptor chain (2.7.5), following one indirect table at its head (2.7.5.3). */
  private popChain(q: Virtqueue, head: number, mayDefer = false): DescriptorChain {
    const mem = this.mem;
    const readable: VirtqSegment[] = [];
    const writable: VirtqSegment[] = [];
    let table = q.desc;
    let size = q.num;
    let idx = head;
    let count = 0;
    let total = 0;
    let indirect = false;
    if (idx >= size) throw new VirtioError(`descriptor index ${idx} out of range`);
    for (;;) {
      // A chain visits each descriptor of its table at most once: more means a loop.
      if (++count > size) throw new VirtioError(`descriptor chain from ${head} is longer than its table (a loop?)`);
      const d = mem.view(table + 16 * idx, 16);
      const dv = new DataView(d.buffer, d.byteOffset, 16);
      const addr = Number(dv.getBigUint64(0, true));
      const len = dv.getUint32(8, true);
      const flags = dv.getUint16(12, true);
      const next = dv.getUint16(14, true);
      if (flags & VIRTQ_DESC_F_INDIRECT) {
        if (indirect) throw new VirtioError("indirect descriptor inside an indirect table");
        if (count !== 1) throw new VirtioError("indirect descriptor not at the head of its chain");
        if (!this.negotiated(VIRTIO_RING_F_INDIRECT_DESC)) throw new VirtioError("indirect descriptor without VIRTIO_RING_F_INDIRECT_DESC");
        if (len === 0 || len % 16 !== 0 || len / 16 > MAX_INDIRECT) throw new VirtioError(`indirect table of ${len} bytes`);
        if (!mem.inRam(addr, len)) throw new VirtioError(`indirect table at 0x${addr.toString(16)} outside RAM`);
        if (mayDefer) this.need(addr, len);
        indirect = true;
        table = addr;
        size = len / 16;
        idx = 0;
        count = 0;
        continue;
      }
      if (len > 0) {
        if (!mem.inRam(addr, len)) throw new VirtioError(`buffer 0x${addr.toString(16)}+${len} outside RAM`);
        total += len;
        if (total > 0xffff_ffff) throw new VirtioError("descriptor chain longer than 4 GiB");
        if (flags & VIRTQ_DESC_F_WRITE) writable.push({ addr, len });
        else if (writable.length > 0) throw new VirtioError("device-readable descriptor after a device-writable one");
        else readable.push({ addr, len });
      }
      if (!(flags & VIRTQ_DESC_F_NEXT)) break;
      idx = next;
      if (idx >= size) throw new VirtioError(`descriptor index ${idx} out of range`);
    }
    return new DescriptorChain(mem, head, readable, writable);
  }

  state(): VirtioMmioState {
    return {
      status: this.status,
      deviceFeaturesSel: this.deviceFeaturesSel,
      driverFeatures: this.driverFeatures.toString(16),
      driverFeaturesSel: this.driverFeaturesSel,
      queueSel: this.queueSel,
      interruptStatus: this.interruptStatus,
      configGeneration: this.configGeneration,
      broken: this.broken,
      queues: this.queues.map((q) => ({ ...q })),
      guestPageShift: this.guestPageShift,
    };
  }

  restore(s: VirtioMmioState): void {
    this.status = s.status;
    this.deviceFeaturesSel = s.deviceFeaturesSel;
    this.driverFeatures = BigInt("0x" + s.driverFeatures);
    this.driverFeaturesSel = s.driverFeaturesSel;
    this.queueSel = s.queueSel;
    this.interruptStatus = s.interruptStatus;
    this.configGeneration = s.configGeneration;
    this.broken = s.broken;
    this.guestPageShift = s.guestPageShift ?? 0;
    this.queues = Array.from({ length: this.device.numQueues }, (_, i) => ({ ...newQueue(), ...s.queues[i] }));
    this.dropInflight();
    this.updateIrq();
  }
}

/**
 * An empty virtio-mmio slot: device ID 0, "no device" (4.2.3.1.1). QEMU's virt board fills
 * all eight slots this way, and Linux probes every slot the device tree lists.
 */
export class VirtioMmioEmpty implements MmioHandler {
  constructor(readonly legacy = false) {}

  read(offset: number, size: number): number {
    if (size !== 4) return 0;
    switch (offset) {
      case VIRTIO_MMIO_MAGIC_VALUE:
        return VIRTIO_MMIO_MAGIC;
      case VIRTIO_MMIO_VERSION:
        return this.legacy ? 1 : 2;
      case VIRTIO_MMIO_VENDOR_ID:
        return VIRTIO_MMIO_VENDOR_QEMU;
      default:
        return 0;
    }
  }

  write(_offset: number, _size: number, _value: number): void {}
}
