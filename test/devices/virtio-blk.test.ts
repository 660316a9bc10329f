// virtio-blk over the virtio-mmio transport, driven like a guest driver would: a real split
// virtqueue (descriptor table, available ring, used ring) in guest RAM, requests submitted
// through QueueNotify, results read back from RAM. Virtio 1.1 sections 2.7, 4.2.2 and 5.2; the
// legacy (version 1) interface of section 4.2.4 and its ring layout (2.7.2) at the end.

import { beforeEach, describe, expect, it } from "vitest";
import { Core, PageState, PAGE_SIZE, RAM_BASE } from "../../src/core.js";
import { GuestMemory } from "../../src/memory.js";
import { MemoryDisk } from "../../src/devices/disk.js";
import {
  VIRTIO_BLK_F_BLK_SIZE, VIRTIO_BLK_F_FLUSH, VIRTIO_BLK_F_RO, VIRTIO_BLK_F_SEG_MAX,
  VIRTIO_BLK_S_IOERR, VIRTIO_BLK_S_OK, VIRTIO_BLK_S_UNSUPP,
  VIRTIO_BLK_T_FLUSH, VIRTIO_BLK_T_GET_ID, VIRTIO_BLK_T_IN, VIRTIO_BLK_T_OUT, VirtioBlk,
} from "../../src/devices/virtio-blk.js";
import {
  VIRTIO_CONFIG_S_ACKNOWLEDGE, VIRTIO_CONFIG_S_DRIVER, VIRTIO_CONFIG_S_DRIVER_OK, VIRTIO_CONFIG_S_FEATURES_OK,
  VIRTIO_CONFIG_S_NEEDS_RESET, VIRTIO_F_VERSION_1, VIRTIO_MMIO_CONFIG, VIRTIO_MMIO_DEVICE_FEATURES,
  VIRTIO_MMIO_DEVICE_FEATURES_SEL, VIRTIO_MMIO_DEVICE_ID, VIRTIO_MMIO_DRIVER_FEATURES, VIRTIO_MMIO_DRIVER_FEATURES_SEL,
  VIRTIO_MMIO_INT_CONFIG, VIRTIO_MMIO_INT_VRING, VIRTIO_MMIO_INTERRUPT_ACK, VIRTIO_MMIO_INTERRUPT_STATUS,
  VIRTIO_MMIO_MAGIC_VALUE, VIRTIO_MMIO_QUEUE_DESC_HIGH, VIRTIO_MMIO_QUEUE_DESC_LOW, VIRTIO_MMIO_QUEUE_DEVICE_HIGH,
  VIRTIO_MMIO_QUEUE_DEVICE_LOW, VIRTIO_MMIO_QUEUE_DRIVER_HIGH, VIRTIO_MMIO_QUEUE_DRIVER_LOW, VIRTIO_MMIO_QUEUE_NOTIFY,
  VIRTIO_MMIO_QUEUE_NUM, VIRTIO_MMIO_QUEUE_NUM_MAX, VIRTIO_MMIO_QUEUE_READY, VIRTIO_MMIO_QUEUE_SEL, VIRTIO_MMIO_STATUS,
  VIRTIO_MMIO_VENDOR_ID, VIRTIO_MMIO_VERSION, VIRTIO_RING_F_EVENT_IDX, VIRTIO_RING_F_INDIRECT_DESC,
  VIRTIO_MMIO_GUEST_PAGE_SIZE, VIRTIO_MMIO_QUEUE_ALIGN, VIRTIO_MMIO_QUEUE_PFN, VIRTIO_MMIO_CONFIG_GENERATION,
  VIRTQ_AVAIL_F_NO_INTERRUPT, VIRTQ_DESC_F_INDIRECT, VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_WRITE, VirtioMmio, VirtioMmioEmpty,
} from "../../src/devices/virtio-mmio.js";

const QSIZE = 16;
const DESC = RAM_BASE + 0x1000;
const AVAIL = RAM_BASE + 0x2000;
const USED = RAM_BASE + 0x3000;
const INDIRECT = RAM_BASE + 0x4000;
const HEADER = RAM_BASE + 0x5000;
const STATUS = RAM_BASE + 0x5800;
const DATA = RAM_BASE + 0x10000; // page-aligned data buffers
const DISK_BYTES = 1 << 20;

const F = (n: number) => 1n << BigInt(n);

interface Buf {
  addr: number;
  len: number;
  write?: boolean;
}

// One core for all tests (instantiating one per test dominates the run time); each Driver
// starts from zeroed RAM and page states and a fresh GuestMemory.
let sharedCore: Core | undefined;
function freshCore(): Core {
  sharedCore ??= new Core(16 << 20);
  sharedCore.ram.fill(0);
  sharedCore.pages.fill(0);
  return sharedCore;
}

/** A minimal virtio driver over one queue, as Linux's virtio_mmio + virtio_ring do it. */
class Driver {
  readonly core = freshCore();
  readonly mem = new GuestMemory(this.core);
  readonly disk: MemoryDisk;
  readonly blk: VirtioBlk;
  dev: VirtioMmio;
  irq = false;
  errors: string[] = [];
  private nextDesc = 0;
  private availIdx = 0;
  /** Where the rings are: fixed for the modern transport, from QueuePFN for the legacy one. */
  desc = DESC;
  avail = AVAIL;
  usedRing = USED;

  constructor(opts: { readOnly?: boolean; serial?: string; legacy?: boolean; remote?: boolean } = {}) {
    const words = new Uint32Array(DISK_BYTES / 4);
    for (let i = 0; i < words.length; i++) words[i] = 4 * i; // each word holds its own offset
    const data = new Uint8Array(words.buffer);
    this.disk = opts.remote ? new RemoteDisk(data) : new MemoryDisk(data, opts.readOnly);
    this.blk = new VirtioBlk(this.mem, this.disk, { serial: opts.serial });
    this.dev = new VirtioMmio(this.mem, this.blk, (l) => (this.irq = l), (e) => this.errors.push(e), { legacy: opts.legacy });
  }

  /**
   * Legacy device initialisation as Linux's virtio_mmio does it for version 1 (GuestPageSize
   * at probe, then reset, features word 0, and each queue placed by QueuePFN).
   */
  initLegacy(opts: { features?: bigint; pageSize?: number; align?: number; pfnAt?: number } = {}): void {
    const pageSize = opts.pageSize ?? 4096;
    this.wr(VIRTIO_MMIO_GUEST_PAGE_SIZE, pageSize);
    this.wr(VIRTIO_MMIO_STATUS, 0);
    this.wr(VIRTIO_MMIO_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE);
    this.wr(VIRTIO_MMIO_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER);
    this.wr(VIRTIO_MMIO_DEVICE_FEATURES_SEL, 0);
    const want = (opts.features ?? F(VIRTIO_RING_F_INDIRECT_DESC) | F(VIRTIO_BLK_F_FLUSH)) & BigInt(this.rd(VIRTIO_MMIO_DEVICE_FEATURES));
    this.wr(VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
    this.wr(VIRTIO_MMIO_DRIVER_FEATURES, Number(want));
    this.wr(VIRTIO_MMIO_QUEUE_SEL, 0);
    expect(this.rd(VIRTIO_MMIO_QUEUE_PFN)).toBe(0);
    const align = opts.align ?? 4096;
    this.desc = opts.pfnAt ?? DESC;
    this.avail = this.desc + 16 * QSIZE;
    this.usedRing = Math.ceil((this.avail + 6 + 2 * QSIZE) / align) * align; // 2.7.2
    this.mem.writable(this.desc, this.usedRing + 6 + 8 * QSIZE - this.desc).fill(0);
    this.wr(VIRTIO_MMIO_QUEUE_NUM, QSIZE);
    if (opts.align !== undefined) this.wr(VIRTIO_MMIO_QUEUE_ALIGN, align);
    this.wr(VIRTIO_MMIO_QUEUE_PFN, this.desc / pageSize);
    this.wr(VIRTIO_MMIO_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_DRIVER_OK);
    this.nextDesc = 0;
    this.availIdx = 0;
  }

  rd(off: number): number {
    return this.dev.read(off, 4);
  }
  wr(off: number, v: number): void {
    this.dev.write(off, 4, v);
  }

  deviceFeatures(): bigint {
    this.wr(VIRTIO_MMIO_DEVICE_FEATURES_SEL, 0);
    const low = this.rd(VIRTIO_MMIO_DEVICE_FEATURES);
    this.wr(VIRTIO_MMIO_DEVICE_FEATURES_SEL, 1);
    const high = this.rd(VIRTIO_MMIO_DEVICE_FEATURES);
    return (BigInt(high) << 32n) | BigInt(low);
  }

  /** Device initialisation (3.1.1); returns whether FEATURES_OK stuck. */
  init(features: bigint = F(VIRTIO_F_VERSION_1) | F(VIRTIO_RING_F_INDIRECT_DESC) | F(VIRTIO_BLK_F_FLUSH)): boolean {
    this.wr(VIRTIO_MMIO_STATUS, 0);
    this.wr(VIRTIO_MMIO_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE);
    this.wr(VIRTIO_MMIO_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER);
    const offered = this.deviceFeatures();
    const want = features & offered;
    this.wr(VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
    this.wr(VIRTIO_MMIO_DRIVER_FEATURES, Number(want & 0xffff_ffffn));
    this.wr(VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
    this.wr(VIRTIO_MMIO_DRIVER_FEATURES, Number(want >> 32n));
    this.wr(VIRTIO_MMIO_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK);
    if (!(this.rd(VIRTIO_MMIO_STATUS) & VIRTIO_CONFIG_S_FEATURES_OK)) return false;
    this.mem.writable(DESC, 0x3000).fill(0);
    this.wr(VIRTIO_MMIO_QUEUE_SEL, 0);
    expect(this.rd(VIRTIO_MMIO_QUEUE_READY)).toBe(0);
    this.placeQueue(QSIZE);
    this.wr(VIRTIO_MMIO_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK | VIRTIO_CONFIG_S_DRIVER_OK);
    this.nextDesc = 0;
    this.availIdx = 0;
    return true;
  }

  /** Queue 0 (selected) of `num` entries at DESC, AVAIL, USED, made ready (modern interface). */
  placeQueue(num: number): void {
    this.wr(VIRTIO_MMIO_QUEUE_NUM, num);
    this.wr(VIRTIO_MMIO_QUEUE_DESC_LOW, DESC);
    this.wr(VIRTIO_MMIO_QUEUE_DESC_HIGH, 0);
    this.wr(VIRTIO_MMIO_QUEUE_DRIVER_LOW, AVAIL);
    this.wr(VIRTIO_MMIO_QUEUE_DRIVER_HIGH, 0);
    this.wr(VIRTIO_MMIO_QUEUE_DEVICE_LOW, USED);
    this.wr(VIRTIO_MMIO_QUEUE_DEVICE_HIGH, 0);
    this.wr(VIRTIO_MMIO_QUEUE_READY, 1);
  }

  writeDesc(table: number, i: number, addr: number, len: number, flags: number, next: number): void {
    const at = table + 16 * i;
    this.mem.writeU64(at, BigInt(addr));
    this.mem.writeU32(at + 8, len);
    this.mem.writeU16(at + 12, flags);
    this.mem.writeU16(at + 14, next);
  }

  /** Puts a chain in the descriptor table (or in an indirect table) and makes it available. */
  add(bufs: Buf[], opts: { indirect?: boolean } = {}): number {
    const head = this.nextDesc % QSIZE;
    if (opts.indirect) {
      bufs.forEach((b, i) => this.writeDesc(INDIRECT, i, b.addr, b.len, (b.write ? VIRTQ_DESC_F_WRITE : 0) | (i + 1 < bufs.length ? VIRTQ_DESC_F_NEXT : 0), i + 1));
      this.writeDesc(this.desc, head, INDIRECT, 16 * bufs.length, VIRTQ_DESC_F_INDIRECT, 0);
      this.nextDesc++;
    } else {
      bufs.forEach((b, i) => {
        const d = (head + i) % QSIZE;
        this.writeDesc(this.desc, d, b.addr, b.len, (b.write ? VIRTQ_DESC_F_WRITE : 0) | (i + 1 < bufs.length ? VIRTQ_DESC_F_NEXT : 0), (d + 1) % QSIZE);
      });
      this.nextDesc += bufs.length;
    }
    this.mem.writeU16(this.avail + 4 + 2 * (this.availIdx % QSIZE), head);
    this.availIdx = (this.availIdx + 1) & 0xffff;
    this.mem.writeU16(this.avail + 2, this.availIdx);
    return head;
  }

  notify(): void {
    this.wr(VIRTIO_MMIO_QUEUE_NOTIFY, 0);
  }

  usedIdx(): number {
    return this.mem.readU16(this.usedRing + 2);
  }
  used(i: number): { id: number; len: number } {
    return { id: this.mem.readU32(this.usedRing + 4 + 8 * (i % QSIZE)), len: this.mem.readU32(this.usedRing + 8 + 8 * (i % QSIZE)) };
  }

  /** A virtio-blk request: header, data buffers, status byte. */
  request(type: number, sector: number, data: Buf[], opts: { indirect?: boolean; status?: number; header?: number } = {}): number {
    const status = opts.status ?? STATUS;
    const header = opts.header ?? HEADER;
    this.mem.writeU32(header, type);
    this.mem.writeU32(header + 4, 0);
    this.mem.writeU64(header + 8, BigInt(sector));
    this.mem.writable(status, 1)[0] = 0xff;
    return this.add([{ addr: header, len: 16 }, ...data, { addr: status, len: 1, write: true }], opts);
  }

  status(at = STATUS): number {
    return this.mem.view(at, 1)[0];
  }

  /** Submits one request, notifies, and returns its status byte. */
  run(type: number, sector: number, data: Buf[], opts: { indirect?: boolean } = {}): number {
    this.request(type, sector, data, opts);
    this.notify();
    return this.status();
  }

  diskWord(offset: number): number {
    return new DataView(this.disk.data.buffer).getUint32(offset, true);
  }
  ramWord(pa: number): number {
    return this.mem.readU32(pa);
  }
}

const page = (pa: number) => (pa - RAM_BASE) / PAGE_SIZE;

/**
 * A disk whose blocks arrive later (as StoreDisk's from an object store): a read of a block not
 * yet arrived, or a write of part of a 4 KiB block (StoreDisk merges it into the block's old
 * content), is "not now" (whenReadable, whenWritable) until arrive(), or fails after fail();
 * read() and write() themselves always answer (the synchronous way, as StoreDisk's do when a
 * savevm drains the device: counted in syncReads).
 */
class RemoteDisk extends MemoryDisk {
  private pending: { offset: number; length: number; resolve: () => void; reject: (e: Error) => void }[] = [];
  arrived = false;
  syncReads = 0;

  whenReadable(offset: number, length: number): Promise<void> | undefined {
    if (this.arrived) return undefined;
    return new Promise<void>((resolve, reject) => this.pending.push({ offset, length, resolve, reject }));
  }

  whenWritable(offset: number, length: number): Promise<void> | undefined {
    return offset % PAGE_SIZE !== 0 || length % PAGE_SIZE !== 0 ? this.whenReadable(offset, length) : undefined;
  }

  /** Ranges whose fetch is done (arriveAt). */
  private landed: { offset: number; length: number }[] = [];

  read(buf: Uint8Array, offset: number): void {
    if (!this.arrived && !this.landed.some((l) => l.offset <= offset && offset + buf.length <= l.offset + l.length)) this.syncReads++;
    super.read(buf, offset);
  }

  write(buf: Uint8Array, offset: number): void {
    if (this.whenWritable(offset, buf.length)) this.syncReads++;
    super.write(buf, offset);
  }

  arrive(): void {
    this.arrived = true;
    for (const p of this.pending.splice(0)) p.resolve();
  }

  /** The fetch of the request waiting on byte `offset` is done (the other requests still wait). */
  arriveAt(offset: number): void {
    const done = this.pending.filter((p) => p.offset <= offset && offset < p.offset + p.length);
    this.pending = this.pending.filter((p) => !done.includes(p));
    this.landed.push(...done);
    for (const p of done) p.resolve();
  }

  fail(): void {
    for (const p of this.pending.splice(0)) p.reject(new Error("the store's deadline passed"));
  }
}

const settle = () => new Promise((r) => setTimeout(r, 0));

/** A driver of a device over a RemoteDisk, initialised. */
function remoteDriver(): { d: Driver; disk: RemoteDisk } {
  const d = new Driver({ remote: true });
  expect(d.init()).toBe(true);
  return { d, disk: d.disk as RemoteDisk };
}

/** xv6-riscv's virtio_disk_init up to FEATURES_OK (the low feature word only); returns the status it wrote. */
function xv6Features(d: Driver): number {
  let status = 0;
  d.wr(VIRTIO_MMIO_STATUS, status);
  d.wr(VIRTIO_MMIO_STATUS, (status |= VIRTIO_CONFIG_S_ACKNOWLEDGE));
  d.wr(VIRTIO_MMIO_STATUS, (status |= VIRTIO_CONFIG_S_DRIVER));
  let features = d.rd(VIRTIO_MMIO_DEVICE_FEATURES);
  for (const b of [VIRTIO_BLK_F_RO, 7, 11, 12, 27, VIRTIO_RING_F_EVENT_IDX, VIRTIO_RING_F_INDIRECT_DESC]) features &= ~(1 << b);
  d.wr(VIRTIO_MMIO_DRIVER_FEATURES, features >>> 0);
  d.wr(VIRTIO_MMIO_STATUS, (status |= VIRTIO_CONFIG_S_FEATURES_OK));
  return status;
}

/**
 * xv6-riscv's virtio_disk_rw(b, 0) for block 1 (1 KiB: header, data, status in three
 * descriptors) and its virtio_disk_intr, on rings at the given addresses.
 */
function xv6ReadBlock1(d: Driver, desc: number, avail: number, used: number): void {
  d.mem.writeU32(HEADER, VIRTIO_BLK_T_IN);
  d.mem.writeU64(HEADER + 8, 2n);
  d.writeDesc(desc, 0, HEADER, 16, VIRTQ_DESC_F_NEXT, 1);
  d.writeDesc(desc, 1, DATA, 1024, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 2);
  d.mem.writable(STATUS, 1)[0] = 0xff;
  d.writeDesc(desc, 2, STATUS, 1, VIRTQ_DESC_F_WRITE, 0);
  d.mem.writeU16(avail + 4, 0);
  d.mem.writeU16(avail + 2, 1);
  d.wr(VIRTIO_MMIO_QUEUE_NOTIFY, 0);
  expect(d.irq).toBe(true);
  d.wr(VIRTIO_MMIO_INTERRUPT_ACK, d.rd(VIRTIO_MMIO_INTERRUPT_STATUS) & 3);
  expect(d.irq).toBe(false);
  expect(d.mem.readU16(used + 2)).toBe(1);
  expect(d.mem.readU32(used + 4)).toBe(0);
  expect(d.status()).toBe(VIRTIO_BLK_S_OK);
  expect(d.ramWord(DATA)).toBe(1024);
}

describe("virtio-mmio transport", () => {
  let d: Driver;
  beforeEach(() => {
    d = new Driver();
  });

  it("identifies itself as a version 2 virtio-mmio block device from QEMU", () => {
    expect(d.rd(VIRTIO_MMIO_MAGIC_VALUE)).toBe(0x74726976);
    expect(d.rd(VIRTIO_MMIO_VERSION)).toBe(2);
    expect(d.rd(VIRTIO_MMIO_DEVICE_ID)).toBe(2);
    expect(d.rd(VIRTIO_MMIO_VENDOR_ID)).toBe(0x554d4551);
    d.wr(VIRTIO_MMIO_QUEUE_SEL, 0);
    expect(d.rd(VIRTIO_MMIO_QUEUE_NUM_MAX)).toBe(256);
    d.wr(VIRTIO_MMIO_QUEUE_SEL, 1);
    expect(d.rd(VIRTIO_MMIO_QUEUE_NUM_MAX)).toBe(0); // only one queue
  });

  it("an empty slot answers the magic value and device ID 0", () => {
    const e = new VirtioMmioEmpty();
    expect(e.read(VIRTIO_MMIO_MAGIC_VALUE, 4)).toBe(0x74726976);
    expect(e.read(VIRTIO_MMIO_VERSION, 4)).toBe(2);
    expect(e.read(VIRTIO_MMIO_DEVICE_ID, 4)).toBe(0);
  });

  it("offers VERSION_1, INDIRECT_DESC, EVENT_IDX and the block features", () => {
    const f = d.deviceFeatures();
    for (const b of [VIRTIO_F_VERSION_1, VIRTIO_RING_F_INDIRECT_DESC, VIRTIO_RING_F_EVENT_IDX, VIRTIO_BLK_F_FLUSH, VIRTIO_BLK_F_BLK_SIZE, VIRTIO_BLK_F_SEG_MAX]) {
      expect(f & F(b)).not.toBe(0n);
    }
    expect(f & F(VIRTIO_BLK_F_RO)).toBe(0n);
  });

  it("refuses FEATURES_OK for features it did not offer", () => {
    d.wr(VIRTIO_MMIO_STATUS, 0);
    d.wr(VIRTIO_MMIO_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER);
    d.wr(VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
    d.wr(VIRTIO_MMIO_DRIVER_FEATURES, 1 | 2); // VERSION_1 and bit 33, never offered
    d.wr(VIRTIO_MMIO_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK);
    expect(d.rd(VIRTIO_MMIO_STATUS) & VIRTIO_CONFIG_S_FEATURES_OK).toBe(0);
    expect(d.init()).toBe(true);
  });

  it("serves several requests per notify and interrupts once; InterruptACK lowers the line", () => {
    d.init();
    d.request(VIRTIO_BLK_T_IN, 0, [{ addr: DATA, len: 512, write: true }], { status: STATUS });
    d.request(VIRTIO_BLK_T_IN, 1, [{ addr: DATA + 512, len: 512, write: true }], { status: STATUS + 1, header: HEADER + 16 });
    d.request(VIRTIO_BLK_T_FLUSH, 0, [], { status: STATUS + 2, header: HEADER + 32 });
    expect(d.irq).toBe(false);
    d.notify();
    expect(d.usedIdx()).toBe(3);
    expect([d.status(STATUS), d.status(STATUS + 1), d.status(STATUS + 2)]).toEqual([0, 0, 0]);
    expect(d.used(0)).toEqual({ id: 0, len: 513 });
    expect(d.used(1)).toEqual({ id: 3, len: 513 });
    expect(d.used(2)).toEqual({ id: 6, len: 1 });
    expect(d.irq).toBe(true);
    expect(d.rd(VIRTIO_MMIO_INTERRUPT_STATUS)).toBe(VIRTIO_MMIO_INT_VRING);
    d.wr(VIRTIO_MMIO_INTERRUPT_ACK, VIRTIO_MMIO_INT_VRING);
    expect(d.rd(VIRTIO_MMIO_INTERRUPT_STATUS)).toBe(0);
    expect(d.irq).toBe(false);
  });

  it("runs xv6-riscv's virtio_disk_init and a block read (features word 0 only, no VERSION_1)", () => {
    // virtio_disk.c: check identity, negotiate the low feature word, set up an 8-entry queue.
    expect(d.rd(VIRTIO_MMIO_MAGIC_VALUE) === 0x74726976 && d.rd(VIRTIO_MMIO_VERSION) === 2).toBe(true);
    expect(d.rd(VIRTIO_MMIO_DEVICE_ID) === 2 && d.rd(VIRTIO_MMIO_VENDOR_ID) === 0x554d4551).toBe(true);
    let status = xv6Features(d);
    expect(d.rd(VIRTIO_MMIO_STATUS) & VIRTIO_CONFIG_S_FEATURES_OK).toBe(VIRTIO_CONFIG_S_FEATURES_OK);
    d.wr(VIRTIO_MMIO_QUEUE_SEL, 0);
    expect(d.rd(VIRTIO_MMIO_QUEUE_READY)).toBe(0);
    expect(d.rd(VIRTIO_MMIO_QUEUE_NUM_MAX)).toBeGreaterThanOrEqual(8);
    d.mem.writable(DESC, 0x3000).fill(0);
    d.placeQueue(8);
    d.wr(VIRTIO_MMIO_STATUS, (status |= VIRTIO_CONFIG_S_DRIVER_OK));
    xv6ReadBlock1(d, DESC, AVAIL, USED);
  });

  it("ignores notifications before DRIVER_OK", () => {
    d.init();
    d.wr(VIRTIO_MMIO_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK);
    d.run(VIRTIO_BLK_T_FLUSH, 0, []);
    expect(d.usedIdx()).toBe(0);
  });

  it("follows indirect descriptor tables", () => {
    d.init();
    const st = d.run(VIRTIO_BLK_T_IN, 8, [{ addr: DATA, len: 1024, write: true }, { addr: DATA + 0x2000, len: 512, write: true }], { indirect: true });
    expect(st).toBe(VIRTIO_BLK_S_OK);
    expect(d.ramWord(DATA)).toBe(8 * 512);
    expect(d.ramWord(DATA + 1020)).toBe(8 * 512 + 1020);
    expect(d.ramWord(DATA + 0x2000)).toBe(8 * 512 + 1024);
    expect(d.used(0)).toEqual({ id: 0, len: 1537 });
  });

  it("suppresses interrupts with VIRTQ_AVAIL_F_NO_INTERRUPT when EVENT_IDX is not negotiated", () => {
    d.init();
    d.mem.writeU16(AVAIL, VIRTQ_AVAIL_F_NO_INTERRUPT);
    d.run(VIRTIO_BLK_T_FLUSH, 0, []);
    expect(d.usedIdx()).toBe(1);
    expect(d.irq).toBe(false);
    d.mem.writeU16(AVAIL, 0);
    d.run(VIRTIO_BLK_T_FLUSH, 0, []);
    expect(d.irq).toBe(true);
  });

  it("implements EVENT_IDX: used_event decides interrupts, avail_event is published", () => {
    expect(d.init(F(VIRTIO_F_VERSION_1) | F(VIRTIO_RING_F_EVENT_IDX))).toBe(true);
    const usedEvent = AVAIL + 4 + 2 * QSIZE;
    const availEvent = USED + 4 + 8 * QSIZE;
    d.mem.writeU16(AVAIL, VIRTQ_AVAIL_F_NO_INTERRUPT); // ignored with EVENT_IDX
    d.mem.writeU16(usedEvent, 1); // interrupt when used idx passes 1, i.e. after the 2nd buffer
    d.run(VIRTIO_BLK_T_FLUSH, 0, []);
    expect(d.usedIdx()).toBe(1);
    expect(d.irq).toBe(false);
    expect(d.mem.readU16(availEvent)).toBe(1);
    d.run(VIRTIO_BLK_T_FLUSH, 0, []);
    expect(d.usedIdx()).toBe(2);
    expect(d.irq).toBe(true);
    expect(d.mem.readU16(availEvent)).toBe(2);
    d.wr(VIRTIO_MMIO_INTERRUPT_ACK, 1);
    d.run(VIRTIO_BLK_T_FLUSH, 0, []); // used_event still 1: already passed
    expect(d.irq).toBe(false);
  });

  it("resets everything when the driver writes 0 to Status", () => {
    d.init();
    d.run(VIRTIO_BLK_T_FLUSH, 0, []);
    d.wr(VIRTIO_MMIO_STATUS, 0);
    expect(d.rd(VIRTIO_MMIO_STATUS)).toBe(0);
    expect(d.rd(VIRTIO_MMIO_INTERRUPT_STATUS)).toBe(0);
    expect(d.irq).toBe(false);
    d.wr(VIRTIO_MMIO_QUEUE_SEL, 0);
    expect(d.rd(VIRTIO_MMIO_QUEUE_READY)).toBe(0);
    expect(d.init()).toBe(true);
    expect(d.run(VIRTIO_BLK_T_FLUSH, 0, [])).toBe(VIRTIO_BLK_S_OK);
    expect(d.usedIdx()).toBe(1);
  });

  it("saves and restores queue state as plain JSON", () => {
    d.init();
    d.run(VIRTIO_BLK_T_FLUSH, 0, []);
    const s = JSON.parse(JSON.stringify(d.dev.state()));
    // A new transport over the same RAM and disk continues where the old one stopped.
    d.dev = new VirtioMmio(d.mem, d.blk, (l) => (d.irq = l));
    d.dev.restore(s);
    expect(d.irq).toBe(true);
    expect(d.run(VIRTIO_BLK_T_IN, 2, [{ addr: DATA, len: 512, write: true }])).toBe(VIRTIO_BLK_S_OK);
    expect(d.usedIdx()).toBe(2);
    expect(d.used(1).id).toBe(2); // the flush used descriptors 0 and 1
    expect(d.ramWord(DATA)).toBe(1024);
  });

  it("restores a not-yet-restored page before DMA touches it", () => {
    d.init();
    const p = page(DATA);
    d.core.pages[p] |= PageState.NotRestored;
    const restored: number[] = [];
    d.mem.restorePage = (pg) => {
      restored.push(pg);
      d.core.pages[pg] &= ~PageState.NotRestored;
    };
    expect(d.run(VIRTIO_BLK_T_IN, 0, [{ addr: DATA, len: 512, write: true }])).toBe(VIRTIO_BLK_S_OK);
    expect(restored).toEqual([p]);
  });
});

describe("virtio-mmio: malformed requests set DEVICE_NEEDS_RESET and never throw", () => {
  let d: Driver;
  beforeEach(() => {
    d = new Driver();
    d.init();
  });

  /** Makes the chain at descriptor `head` available, as written by hand, and notifies. */
  function submit(head: number): void {
    d.mem.writeU16(AVAIL + 4, head);
    d.mem.writeU16(AVAIL + 2, 1);
    expect(() => d.notify()).not.toThrow();
  }

  function expectBroken(): void {
    expect(d.rd(VIRTIO_MMIO_STATUS) & VIRTIO_CONFIG_S_NEEDS_RESET).toBe(VIRTIO_CONFIG_S_NEEDS_RESET);
    expect(d.rd(VIRTIO_MMIO_INTERRUPT_STATUS) & VIRTIO_MMIO_INT_CONFIG).toBe(VIRTIO_MMIO_INT_CONFIG);
    expect(d.irq).toBe(true);
    expect(d.errors.length).toBe(1);
    // Later notifications are ignored until a reset; a reset brings the device back.
    expect(() => d.notify()).not.toThrow();
    expect(d.init()).toBe(true);
    expect(d.rd(VIRTIO_MMIO_STATUS) & VIRTIO_CONFIG_S_NEEDS_RESET).toBe(0);
    expect(d.run(VIRTIO_BLK_T_FLUSH, 0, [])).toBe(VIRTIO_BLK_S_OK);
  }

  it("a descriptor chain that loops", () => {
    d.writeDesc(DESC, 0, HEADER, 16, VIRTQ_DESC_F_NEXT, 1);
    d.writeDesc(DESC, 1, STATUS, 1, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 0);
    submit(0);
    expectBroken();
  });

  it("a loop inside an indirect table", () => {
    d.writeDesc(INDIRECT, 0, HEADER, 16, VIRTQ_DESC_F_NEXT, 1);
    d.writeDesc(INDIRECT, 1, STATUS, 1, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 0);
    d.writeDesc(DESC, 0, INDIRECT, 32, VIRTQ_DESC_F_INDIRECT, 0);
    submit(0);
    expectBroken();
  });

  it("an indirect table inside an indirect table", () => {
    d.writeDesc(INDIRECT, 0, INDIRECT, 16, VIRTQ_DESC_F_INDIRECT, 0);
    d.writeDesc(DESC, 0, INDIRECT, 16, VIRTQ_DESC_F_INDIRECT, 0);
    submit(0);
    expectBroken();
  });

  it("a buffer outside RAM", () => {
    d.request(VIRTIO_BLK_T_IN, 0, [{ addr: 0x1000, len: 512, write: true }]);
    d.notify();
    expectBroken();
  });

  it("a buffer running past the end of RAM", () => {
    d.request(VIRTIO_BLK_T_IN, 0, [{ addr: RAM_BASE + (16 << 20) - 256, len: 512, write: true }]);
    d.notify();
    expectBroken();
  });

  it("a head index beyond the queue size", () => {
    submit(QSIZE + 3);
    expectBroken();
  });

  it("an available index that jumps by more than the queue size", () => {
    d.mem.writeU16(AVAIL + 2, QSIZE + 1);
    d.notify();
    expectBroken();
  });

  it("a device-readable buffer after a device-writable one", () => {
    d.mem.writeU32(HEADER, VIRTIO_BLK_T_IN);
    d.add([{ addr: HEADER, len: 16 }, { addr: STATUS, len: 1, write: true }, { addr: DATA, len: 512 }]);
    d.notify();
    expectBroken();
  });

  it("a request without a status byte", () => {
    d.add([{ addr: HEADER, len: 16 }]);
    d.notify();
    expectBroken();
  });

  it("a header shorter than 16 bytes", () => {
    d.add([{ addr: HEADER, len: 8 }, { addr: STATUS, len: 1, write: true }]);
    d.notify();
    expectBroken();
  });

  it("rings placed outside RAM", () => {
    d.wr(VIRTIO_MMIO_QUEUE_DEVICE_HIGH, 1);
    d.run(VIRTIO_BLK_T_FLUSH, 0, []);
    expectBroken();
  });
});

describe("virtio-blk requests", () => {
  let d: Driver;
  beforeEach(() => {
    d = new Driver({ serial: "rvm-disk-0" });
    d.init();
  });

  it("reports capacity, seg_max and blk_size in its configuration space", () => {
    const cfg = (o: number) => d.dev.read(VIRTIO_MMIO_CONFIG + o, 4);
    expect(cfg(0)).toBe(DISK_BYTES / 512); // capacity, low word
    expect(cfg(4)).toBe(0); // capacity, high word
    expect(cfg(0x0c)).toBe(254); // seg_max
    expect(cfg(0x14)).toBe(512); // blk_size
    expect(d.dev.read(VIRTIO_MMIO_CONFIG + 0x14, 2)).toBe(512);
  });

  it("VIRTIO_BLK_T_IN reads sectors into guest memory", () => {
    expect(d.run(VIRTIO_BLK_T_IN, 3, [{ addr: DATA + 100, len: 1024, write: true }])).toBe(VIRTIO_BLK_S_OK);
    expect(d.ramWord(DATA + 100)).toBe(3 * 512);
    expect(d.ramWord(DATA + 100 + 1020)).toBe(3 * 512 + 1020);
    expect(d.used(0).len).toBe(1025);
  });

  it("VIRTIO_BLK_T_OUT writes guest memory to the disk", () => {
    const buf = d.mem.writable(DATA, 1024);
    buf.fill(0xab, 0, 512);
    buf.fill(0xcd, 512, 1024);
    expect(d.run(VIRTIO_BLK_T_OUT, 10, [{ addr: DATA, len: 512 }, { addr: DATA + 512, len: 512 }])).toBe(VIRTIO_BLK_S_OK);
    expect(d.disk.data[10 * 512]).toBe(0xab);
    expect(d.disk.data[11 * 512 + 511]).toBe(0xcd);
    expect(d.diskWord(12 * 512)).toBe(12 * 512);
    expect(d.used(0).len).toBe(1);
  });

  it("VIRTIO_BLK_T_FLUSH flushes the backend", () => {
    expect(d.run(VIRTIO_BLK_T_FLUSH, 0, [])).toBe(VIRTIO_BLK_S_OK);
    expect(d.disk.flushes).toBe(1);
  });

  it("VIRTIO_BLK_T_GET_ID returns the 20-byte serial, zero-padded", () => {
    d.mem.writable(DATA, 20).fill(0xff);
    expect(d.run(VIRTIO_BLK_T_GET_ID, 0, [{ addr: DATA, len: 20, write: true }])).toBe(VIRTIO_BLK_S_OK);
    const id = d.mem.read(DATA, 20);
    expect(Buffer.from(id.subarray(0, 10)).toString()).toBe("rvm-disk-0");
    expect([...id.subarray(10)]).toEqual(new Array(10).fill(0));
    expect(d.used(0).len).toBe(21);
  });

  it("answers VIRTIO_BLK_S_UNSUPP to unknown request types", () => {
    expect(d.run(11, 0, [{ addr: DATA, len: 512 }])).toBe(VIRTIO_BLK_S_UNSUPP); // DISCARD, not offered
    expect(d.run(0x99, 0, [])).toBe(VIRTIO_BLK_S_UNSUPP);
  });

  it("answers VIRTIO_BLK_S_IOERR beyond the capacity or for partial sectors", () => {
    const last = DISK_BYTES / 512 - 1;
    expect(d.run(VIRTIO_BLK_T_IN, last, [{ addr: DATA, len: 512, write: true }])).toBe(VIRTIO_BLK_S_OK);
    expect(d.run(VIRTIO_BLK_T_IN, last, [{ addr: DATA, len: 1024, write: true }])).toBe(VIRTIO_BLK_S_IOERR);
    expect(d.run(VIRTIO_BLK_T_OUT, last + 1, [{ addr: DATA, len: 512 }])).toBe(VIRTIO_BLK_S_IOERR);
    expect(d.run(VIRTIO_BLK_T_IN, 2 ** 60, [{ addr: DATA, len: 512, write: true }])).toBe(VIRTIO_BLK_S_IOERR);
    expect(d.run(VIRTIO_BLK_T_IN, 0, [{ addr: DATA, len: 100, write: true }])).toBe(VIRTIO_BLK_S_IOERR);
    expect(d.run(VIRTIO_BLK_T_IN, 0, [{ addr: DATA, len: 512, write: true }])).toBe(VIRTIO_BLK_S_OK);
  });

  it("a read-only disk offers VIRTIO_BLK_F_RO and fails writes with IOERR", () => {
    const ro = new Driver({ readOnly: true });
    expect(ro.deviceFeatures() & F(VIRTIO_BLK_F_RO)).not.toBe(0n);
    ro.init();
    ro.mem.writable(DATA, 512).fill(0x77);
    expect(ro.run(VIRTIO_BLK_T_OUT, 0, [{ addr: DATA, len: 512 }])).toBe(VIRTIO_BLK_S_IOERR);
    expect(ro.diskWord(0)).toBe(0);
    expect(ro.run(VIRTIO_BLK_T_IN, 1, [{ addr: DATA, len: 512, write: true }])).toBe(VIRTIO_BLK_S_OK);
    expect(ro.run(VIRTIO_BLK_T_FLUSH, 0, [])).toBe(VIRTIO_BLK_S_OK);
  });

  it("handles a header split across descriptors and data sharing the status descriptor", () => {
    d.mem.writeU32(HEADER, VIRTIO_BLK_T_IN);
    d.mem.writeU32(HEADER + 4, 0);
    d.mem.writeU64(HEADER + 8, 5n);
    // 512 bytes of data and the status byte in one 513-byte writable buffer.
    d.add([{ addr: HEADER, len: 6 }, { addr: HEADER + 6, len: 10 }, { addr: DATA, len: 513, write: true }]);
    d.notify();
    expect(d.ramWord(DATA)).toBe(5 * 512);
    expect(d.mem.view(DATA + 512, 1)[0]).toBe(VIRTIO_BLK_S_OK);
  });
});

describe("virtio-blk page-cache tracking", () => {
  let d: Driver;
  beforeEach(() => {
    d = new Driver();
    d.init();
  });

  it("marks whole 4 KiB pages read from 4 KiB-aligned disk offsets as disk-backed", () => {
    // Sectors 16..31 = disk blocks 2 and 3 into two pages.
    expect(d.run(VIRTIO_BLK_T_IN, 16, [{ addr: DATA, len: 8192, write: true }])).toBe(VIRTIO_BLK_S_OK);
    expect(d.core.pages[page(DATA)] & PageState.Disk).toBe(PageState.Disk);
    expect(d.mem.diskBlockOf(page(DATA))).toBe(2);
    expect(d.mem.diskBlockOf(page(DATA + 4096))).toBe(3);
  });

  it("tracks pages in scattered segments and indirect chains", () => {
    const st = d.run(VIRTIO_BLK_T_IN, 8 * 7, [{ addr: DATA + 0x5000, len: 4096, write: true }, { addr: DATA + 0x2000, len: 4096, write: true }], { indirect: true });
    expect(st).toBe(VIRTIO_BLK_S_OK);
    expect(d.mem.diskBlockOf(page(DATA + 0x5000))).toBe(7);
    expect(d.mem.diskBlockOf(page(DATA + 0x2000))).toBe(8);
  });

  it("does not mark partial pages, unaligned pages or unaligned disk offsets", () => {
    d.run(VIRTIO_BLK_T_IN, 1, [{ addr: DATA, len: 4096, write: true }]); // disk offset 512
    expect(d.mem.diskBlockOf(page(DATA))).toBe(-1);
    d.run(VIRTIO_BLK_T_IN, 8, [{ addr: DATA + 0x1000 + 512, len: 4096, write: true }]); // straddles two pages
    expect(d.mem.diskBlockOf(page(DATA + 0x1000))).toBe(-1);
    expect(d.mem.diskBlockOf(page(DATA + 0x2000))).toBe(-1);
    d.run(VIRTIO_BLK_T_IN, 8, [{ addr: DATA + 0x3000, len: 2048, write: true }]); // half a page
    expect(d.mem.diskBlockOf(page(DATA + 0x3000))).toBe(-1);
    // Within a larger segment, pages whose disk offset is aligned still count.
    d.run(VIRTIO_BLK_T_IN, 4, [{ addr: DATA + 0x4000 - 2048, len: 2048 + 4096, write: true }]);
    expect(d.mem.diskBlockOf(page(DATA + 0x4000))).toBe(1);
  });

  it("the page is dirty as any DMA write leaves it, and disk-backed on top", () => {
    d.run(VIRTIO_BLK_T_IN, 0, [{ addr: DATA, len: 4096, write: true }]);
    const st = d.core.pages[page(DATA)];
    expect(st & PageState.Disk).toBe(PageState.Disk);
    expect(st & PageState.Dirty).toBe(PageState.Dirty);
  });

  it("a later DMA write into the page ends its disk backing", () => {
    d.run(VIRTIO_BLK_T_IN, 0, [{ addr: DATA, len: 4096, write: true }]);
    d.run(VIRTIO_BLK_T_IN, 1, [{ addr: DATA, len: 512, write: true }]);
    expect(d.mem.diskBlockOf(page(DATA))).toBe(-1);
  });

  it("a VIRTIO_BLK_T_OUT to the block clears pages that mirrored it, after onBeforeDiskWrite", () => {
    d.run(VIRTIO_BLK_T_IN, 16, [{ addr: DATA, len: 4096, write: true }]); // block 2
    expect(d.mem.diskBlockOf(page(DATA))).toBe(2);
    const calls: [number, number, number][] = [];
    d.blk.onBeforeDiskWrite = (off, len) => calls.push([off, len, d.diskWord(off)]);
    d.mem.writable(DATA + 0x8000, 512).fill(0x5a);
    // One sector inside block 2 is enough.
    expect(d.run(VIRTIO_BLK_T_OUT, 17, [{ addr: DATA + 0x8000, len: 512 }])).toBe(VIRTIO_BLK_S_OK);
    expect(calls).toEqual([[17 * 512, 512, 17 * 512]]); // called before the data changed
    expect(d.disk.data[17 * 512]).toBe(0x5a);
    expect(d.mem.diskBlockOf(page(DATA))).toBe(-1);
    expect(d.core.pages[page(DATA)] & PageState.Disk).toBe(0);
  });

  it("a write spanning blocks clears every block it touches, and no other", () => {
    d.run(VIRTIO_BLK_T_IN, 0, [{ addr: DATA, len: 4 * 4096, write: true }]); // blocks 0..3
    d.run(VIRTIO_BLK_T_OUT, 15, [{ addr: DATA + 0x8000, len: 1024 }]); // sectors 15,16: blocks 1 and 2
    expect([0, 1, 2, 3].map((i) => d.mem.diskBlockOf(page(DATA + i * 4096)))).toEqual([0, -1, -1, 3]);
  });
});

describe("virtio-mmio legacy transport (version 1, QEMU's force-legacy=on)", () => {
  let d: Driver;
  beforeEach(() => {
    d = new Driver({ legacy: true });
  });

  it("identifies itself as version 1; an empty legacy slot too", () => {
    expect(d.rd(VIRTIO_MMIO_MAGIC_VALUE)).toBe(0x74726976);
    expect(d.rd(VIRTIO_MMIO_VERSION)).toBe(1);
    expect(d.rd(VIRTIO_MMIO_DEVICE_ID)).toBe(2);
    expect(d.rd(VIRTIO_MMIO_VENDOR_ID)).toBe(0x554d4551);
    expect(new VirtioMmioEmpty(true).read(VIRTIO_MMIO_VERSION, 4)).toBe(1);
  });

  it("offers the low 32 feature bits only, never VIRTIO_F_VERSION_1", () => {
    const f = d.deviceFeatures();
    expect(f >> 32n).toBe(0n);
    for (const b of [VIRTIO_RING_F_INDIRECT_DESC, VIRTIO_RING_F_EVENT_IDX, VIRTIO_BLK_F_FLUSH, VIRTIO_BLK_F_BLK_SIZE, VIRTIO_BLK_F_SEG_MAX]) {
      expect(f & F(b)).not.toBe(0n);
    }
  });

  it("places the rings from QueuePFN in the legacy layout and serves requests", () => {
    d.initLegacy();
    expect(d.avail).toBe(DESC + 16 * QSIZE);
    expect(d.usedRing).toBe(DESC + 0x1000); // the next 4 KiB boundary
    expect(d.rd(VIRTIO_MMIO_QUEUE_PFN)).toBe(DESC / 4096);
    expect(d.run(VIRTIO_BLK_T_IN, 4, [{ addr: DATA, len: 1024, write: true }])).toBe(VIRTIO_BLK_S_OK);
    expect(d.ramWord(DATA + 4)).toBe(4 * 512 + 4);
    expect(d.usedIdx()).toBe(1);
    expect(d.used(0)).toEqual({ id: 0, len: 1025 });
    expect(d.irq).toBe(true);
    d.wr(VIRTIO_MMIO_INTERRUPT_ACK, VIRTIO_MMIO_INT_VRING);
    expect(d.irq).toBe(false);
    expect(d.run(VIRTIO_BLK_T_IN, 0, [{ addr: DATA, len: 512, write: true }], { indirect: true })).toBe(VIRTIO_BLK_S_OK);
    expect(d.usedIdx()).toBe(2);
  });

  it("honours QueueAlign and GuestPageSize", () => {
    // 64-byte alignment: used = align_up(avail + 6 + 2 * QSIZE, 64); 16 KiB pages scale QueuePFN.
    d.initLegacy({ align: 64, pageSize: 0x4000, pfnAt: RAM_BASE + 0x8000 });
    expect(d.usedRing).toBe(RAM_BASE + 0x8000 + 256 + 64);
    expect(d.rd(VIRTIO_MMIO_QUEUE_PFN)).toBe((RAM_BASE + 0x8000) / 0x4000);
    expect(d.run(VIRTIO_BLK_T_IN, 1, [{ addr: DATA, len: 512, write: true }])).toBe(VIRTIO_BLK_S_OK);
    expect(d.ramWord(DATA)).toBe(512);
    expect(d.mem.readU16(d.usedRing + 2)).toBe(1);
  });

  it("implements EVENT_IDX at the legacy ring positions", () => {
    d.initLegacy({ features: F(VIRTIO_RING_F_EVENT_IDX) });
    d.mem.writeU16(d.avail + 4 + 2 * QSIZE, 1); // used_event: after the 2nd buffer
    d.run(VIRTIO_BLK_T_FLUSH, 0, []);
    expect(d.irq).toBe(false);
    expect(d.mem.readU16(d.usedRing + 4 + 8 * QSIZE)).toBe(1); // avail_event
    d.run(VIRTIO_BLK_T_FLUSH, 0, []);
    expect(d.irq).toBe(true);
  });

  it("has no FEATURES_OK handshake and keeps the features it offered of what the driver wrote", () => {
    d.wr(VIRTIO_MMIO_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER);
    d.wr(VIRTIO_MMIO_DRIVER_FEATURES, 0xffff_ffff);
    d.wr(VIRTIO_MMIO_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK);
    expect(d.rd(VIRTIO_MMIO_STATUS) & VIRTIO_CONFIG_S_FEATURES_OK).toBe(VIRTIO_CONFIG_S_FEATURES_OK);
    expect(d.dev.state().driverFeatures).toBe(d.dev.features.toString(16));
  });

  it("reads modern-only registers as zero and ignores writes to them", () => {
    d.initLegacy();
    expect(d.rd(VIRTIO_MMIO_QUEUE_READY)).toBe(0);
    expect(d.rd(VIRTIO_MMIO_CONFIG_GENERATION)).toBe(0);
    d.wr(VIRTIO_MMIO_QUEUE_DESC_LOW, RAM_BASE + 0x9000);
    d.wr(VIRTIO_MMIO_QUEUE_READY, 0);
    expect(d.run(VIRTIO_BLK_T_FLUSH, 0, [])).toBe(VIRTIO_BLK_S_OK); // the queue is where QueuePFN put it
  });

  it("the modern transport ignores the legacy registers", () => {
    const m = new Driver();
    m.init();
    m.wr(VIRTIO_MMIO_QUEUE_PFN, (RAM_BASE + 0x9000) / 4096);
    expect(m.rd(VIRTIO_MMIO_QUEUE_PFN)).toBe(0);
    expect(m.rd(VIRTIO_MMIO_QUEUE_READY)).toBe(1);
    expect(m.run(VIRTIO_BLK_T_FLUSH, 0, [])).toBe(VIRTIO_BLK_S_OK);
  });

  it("a Status reset keeps GuestPageSize; QueuePFN 0 resets the device", () => {
    d.wr(VIRTIO_MMIO_GUEST_PAGE_SIZE, 0x4000); // Linux writes it once, at probe, before the reset
    d.wr(VIRTIO_MMIO_STATUS, 0);
    d.wr(VIRTIO_MMIO_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_DRIVER_OK);
    d.wr(VIRTIO_MMIO_QUEUE_SEL, 0);
    d.wr(VIRTIO_MMIO_QUEUE_NUM, QSIZE);
    d.wr(VIRTIO_MMIO_QUEUE_PFN, 2);
    expect(d.dev.state().queues[0].desc).toBe(2 * 0x4000); // the 16 KiB page size survived the reset
    d.wr(VIRTIO_MMIO_QUEUE_PFN, 0);
    expect(d.rd(VIRTIO_MMIO_STATUS)).toBe(0);
    expect(d.rd(VIRTIO_MMIO_QUEUE_PFN)).toBe(0);
  });

  it("runs the 2020-2021 xv6-riscv legacy virtio_disk_init and a block read", () => {
    // Older xv6 (before its 2021 port to virtio 1.0): DRIVER_OK first, then GuestPageSize,
    // an 8-entry queue at a page (desc + avail in it, used on the next page), QueuePFN.
    d.wr(VIRTIO_MMIO_STATUS, xv6Features(d) | VIRTIO_CONFIG_S_DRIVER_OK);
    d.wr(VIRTIO_MMIO_GUEST_PAGE_SIZE, 4096);
    d.wr(VIRTIO_MMIO_QUEUE_SEL, 0);
    expect(d.rd(VIRTIO_MMIO_QUEUE_NUM_MAX)).toBeGreaterThanOrEqual(8);
    d.wr(VIRTIO_MMIO_QUEUE_NUM, 8);
    const pages = RAM_BASE + 0x8000;
    d.mem.writable(pages, 0x2000).fill(0);
    d.wr(VIRTIO_MMIO_QUEUE_PFN, pages >>> 12);
    xv6ReadBlock1(d, pages, pages + 8 * 16, pages + 4096);
  });

  it("saves and restores GuestPageSize and the queue placement", () => {
    d.initLegacy({ pageSize: 0x4000, pfnAt: RAM_BASE + 0x8000, align: 128 });
    d.run(VIRTIO_BLK_T_FLUSH, 0, []);
    const s = JSON.parse(JSON.stringify(d.dev.state()));
    d.dev = new VirtioMmio(d.mem, d.blk, (l) => (d.irq = l), undefined, { legacy: true });
    d.dev.restore(s);
    expect(d.rd(VIRTIO_MMIO_QUEUE_PFN)).toBe((RAM_BASE + 0x8000) / 0x4000);
    expect(d.run(VIRTIO_BLK_T_IN, 2, [{ addr: DATA, len: 512, write: true }])).toBe(VIRTIO_BLK_S_OK);
    expect(d.usedIdx()).toBe(2);
    expect(d.ramWord(DATA)).toBe(1024);
    // A system reset forgets GuestPageSize (a Status reset does not).
    d.dev.reset();
    expect(d.dev.state().guestPageShift).toBe(0);
  });
});

describe("virtio-blk: reads the backend cannot serve at once complete later", () => {
  it("a read stays in flight; the requests after it wait; all complete in order when its blocks arrive", async () => {
    const { d, disk } = remoteDriver();
    const read = d.request(VIRTIO_BLK_T_IN, 8, [{ addr: DATA, len: 4096, write: true }]);
    d.notify();
    // In flight: no status, no used entry, no interrupt, no data; the hart would run on.
    expect(d.status()).toBe(0xff);
    expect(d.usedIdx()).toBe(0);
    expect(d.irq).toBe(false);
    expect(d.ramWord(DATA)).toBe(0);
    expect(d.dev.inFlight).toBe(1);
    // A WRITE of the same sector made available after it is not served before it.
    d.mem.writable(DATA + 0x2000, 512).fill(0xab);
    const write = d.request(VIRTIO_BLK_T_OUT, 8, [{ addr: DATA + 0x2000, len: 512 }], { status: STATUS + 1, header: HEADER + 0x100 });
    d.notify();
    expect(d.usedIdx()).toBe(0);
    expect(d.diskWord(8 * 512)).toBe(8 * 512);
    disk.arrive();
    await settle();
    expect(d.dev.inFlight).toBe(0);
    expect(d.usedIdx()).toBe(2);
    expect(d.used(0)).toEqual({ id: read, len: 4097 });
    expect(d.used(1).id).toBe(write);
    expect(d.status()).toBe(VIRTIO_BLK_S_OK);
    expect(d.status(STATUS + 1)).toBe(VIRTIO_BLK_S_OK);
    expect(d.ramWord(DATA)).toBe(8 * 512); // the data from before the write
    expect(d.diskWord(8 * 512)).toBe(0xabababab);
    expect(d.irq).toBe(true);
    expect(disk.syncReads).toBe(0);
  });

  it("drain completes a read in flight at once (savevm), and its late arrival changes nothing", async () => {
    const { d, disk } = remoteDriver();
    const head = d.request(VIRTIO_BLK_T_IN, 16, [{ addr: DATA, len: 1024, write: true }]);
    d.notify();
    expect(d.usedIdx()).toBe(0);
    d.dev.drain();
    expect(disk.syncReads).toBe(1);
    expect(d.usedIdx()).toBe(1);
    expect(d.used(0)).toEqual({ id: head, len: 1025 });
    expect(d.status()).toBe(VIRTIO_BLK_S_OK);
    expect(d.ramWord(DATA)).toBe(16 * 512);
    expect(d.dev.inFlight).toBe(0);
    disk.arrive();
    await settle();
    expect(d.usedIdx()).toBe(1);
  });

  it("a device reset drops a read in flight: its arrival writes nothing into guest memory", async () => {
    const { d, disk } = remoteDriver();
    d.request(VIRTIO_BLK_T_IN, 16, [{ addr: DATA, len: 1024, write: true }]);
    d.notify();
    d.wr(VIRTIO_MMIO_STATUS, 0);
    expect(d.dev.inFlight).toBe(0);
    disk.arrive();
    await settle();
    expect(d.ramWord(DATA)).toBe(0);
    expect(d.status()).toBe(0xff);
    expect(d.usedIdx()).toBe(0);
  });

  it("a write of part of a block not at hand completes once the block is in (read-modify-write); whole blocks at once", async () => {
    const { d, disk } = remoteDriver();
    d.mem.writable(DATA, 2 * PAGE_SIZE).fill(0xab);
    // Whole 4 KiB blocks need no old content: served at once, as before.
    expect(d.run(VIRTIO_BLK_T_OUT, 8, [{ addr: DATA, len: PAGE_SIZE }])).toBe(VIRTIO_BLK_S_OK);
    expect(d.usedIdx()).toBe(1);
    expect(d.diskWord(8 * 512)).toBe(0xabababab);
    // 512 bytes in the middle of block 2: in flight, nothing written, no synchronous read.
    const write = d.request(VIRTIO_BLK_T_OUT, 17, [{ addr: DATA + PAGE_SIZE, len: 512 }]);
    d.notify();
    expect(d.status()).toBe(0xff);
    expect(d.usedIdx()).toBe(1);
    expect(d.dev.inFlight).toBe(1);
    expect(d.diskWord(17 * 512)).toBe(17 * 512);
    // A READ of that block made available after it waits for it, and sees the write.
    d.request(VIRTIO_BLK_T_IN, 16, [{ addr: DATA + 0x4000, len: PAGE_SIZE, write: true }], { status: STATUS + 1, header: HEADER + 0x100 });
    d.notify();
    expect(d.usedIdx()).toBe(1);
    expect(disk.syncReads).toBe(0);
    disk.arrive();
    await settle();
    expect(d.usedIdx()).toBe(3);
    expect(d.used(1)).toEqual({ id: write, len: 1 });
    expect(d.status()).toBe(VIRTIO_BLK_S_OK);
    expect(d.status(STATUS + 1)).toBe(VIRTIO_BLK_S_OK);
    expect(d.diskWord(16 * 512)).toBe(16 * 512);
    expect(d.diskWord(17 * 512)).toBe(0xabababab);
    expect(d.diskWord(18 * 512)).toBe(18 * 512);
    expect(d.ramWord(DATA + 0x4000 + 512)).toBe(0xabababab);
    expect(disk.syncReads).toBe(0);
    expect(d.irq).toBe(true);
  });

  it("a partial-block write in flight: drain completes it (savevm), a reset drops it, a failed fetch fails it and writes nothing", async () => {
    const { d: drained } = remoteDriver();
    drained.mem.writable(DATA, 512).fill(0xcd);
    drained.request(VIRTIO_BLK_T_OUT, 3, [{ addr: DATA, len: 512 }]);
    drained.notify();
    expect(drained.usedIdx()).toBe(0);
    drained.dev.drain();
    expect((drained.disk as RemoteDisk).syncReads).toBe(1);
    expect(drained.usedIdx()).toBe(1);
    expect(drained.status()).toBe(VIRTIO_BLK_S_OK);
    expect(drained.diskWord(3 * 512)).toBe(0xcdcdcdcd);

    const { d: reset } = remoteDriver();
    reset.mem.writable(DATA, 512).fill(0xcd);
    reset.request(VIRTIO_BLK_T_OUT, 3, [{ addr: DATA, len: 512 }]);
    reset.notify();
    reset.wr(VIRTIO_MMIO_STATUS, 0);
    (reset.disk as RemoteDisk).arrive();
    await settle();
    expect(reset.diskWord(3 * 512)).toBe(3 * 512);
    expect(reset.status()).toBe(0xff);

    const { d: failed } = remoteDriver();
    failed.mem.writable(DATA, 512).fill(0xcd);
    failed.request(VIRTIO_BLK_T_OUT, 3, [{ addr: DATA, len: 512 }]);
    failed.notify();
    (failed.disk as RemoteDisk).fail();
    await settle();
    expect(failed.usedIdx()).toBe(1);
    expect(failed.status()).toBe(VIRTIO_BLK_S_IOERR);
    expect(failed.diskWord(3 * 512)).toBe(3 * 512);
  });

  it("reads of different blocks are in flight together and complete as their blocks arrive (out of order)", async () => {
    const { d, disk } = remoteDriver();
    const a = d.request(VIRTIO_BLK_T_IN, 8, [{ addr: DATA, len: 4096, write: true }]);
    const b = d.request(VIRTIO_BLK_T_IN, 64, [{ addr: DATA + 0x2000, len: 4096, write: true }], { status: STATUS + 1, header: HEADER + 0x100 });
    d.notify();
    expect(d.dev.inFlight).toBe(2);
    expect(d.usedIdx()).toBe(0);
    disk.arriveAt(64 * 512);
    await settle();
    expect(d.usedIdx()).toBe(1);
    expect(d.used(0)).toEqual({ id: b, len: 4097 });
    expect(d.status(STATUS + 1)).toBe(VIRTIO_BLK_S_OK);
    expect(d.status()).toBe(0xff);
    expect(d.ramWord(DATA + 0x2000)).toBe(64 * 512);
    expect(d.irq).toBe(true);
    disk.arriveAt(8 * 512);
    await settle();
    expect(d.usedIdx()).toBe(2);
    expect(d.used(1)).toEqual({ id: a, len: 4097 });
    expect(d.ramWord(DATA)).toBe(8 * 512);
    expect(d.dev.inFlight).toBe(0);
    expect(disk.syncReads).toBe(0);
  });

  it("a request that overlaps one in flight is held until it completes; the requests after it that overlap nothing go on", async () => {
    const { d, disk } = remoteDriver();
    d.mem.writable(DATA + 0x1000, 4096).fill(0xab);
    const read = d.request(VIRTIO_BLK_T_IN, 8, [{ addr: DATA, len: 4096, write: true }]);
    // A whole-block WRITE of the same block (the backend would take it at once), a READ of that
    // block again (after the WRITE: held behind it, though it does not conflict with the first
    // READ), then a READ elsewhere (overlaps nothing: served at once, before main's head-of-line
    // hold kept it in the ring until the first READ completed).
    const write = d.request(VIRTIO_BLK_T_OUT, 8, [{ addr: DATA + 0x1000, len: 4096 }], { status: STATUS + 1, header: HEADER + 0x100 });
    const again = d.request(VIRTIO_BLK_T_IN, 8, [{ addr: DATA + 0x3000, len: 512, write: true }], { status: STATUS + 4, header: HEADER + 0x400 });
    const other = d.request(VIRTIO_BLK_T_IN, 64, [{ addr: DATA + 0x2000, len: 512, write: true }], { status: STATUS + 2, header: HEADER + 0x200 });
    d.notify();
    expect(d.dev.inFlight).toBe(2);
    expect(d.dev.heldBack).toBe(2);
    disk.arriveAt(64 * 512);
    await settle();
    // The unrelated read completed first; the write still waits for the read of its block.
    expect(d.usedIdx()).toBe(1);
    expect(d.used(0).id).toBe(other);
    expect(d.ramWord(DATA + 0x2000)).toBe(64 * 512);
    expect(d.diskWord(8 * 512)).toBe(8 * 512);
    disk.arriveAt(8 * 512);
    await settle();
    // The read completed with the data from before the write; then the write; then the read after it, with the write's data.
    expect(d.usedIdx()).toBe(3);
    expect([d.used(1).id, d.used(2).id]).toEqual([read, write]);
    expect(d.ramWord(DATA)).toBe(8 * 512);
    expect(d.diskWord(8 * 512)).toBe(0xabababab);
    expect(d.dev.heldBack).toBe(0);
    expect(d.dev.inFlight).toBe(1);
    disk.arriveAt(8 * 512);
    await settle();
    expect(d.usedIdx()).toBe(4);
    expect(d.used(3).id).toBe(again);
    expect(d.ramWord(DATA + 0x3000)).toBe(0xabababab);
    expect([d.status(), d.status(STATUS + 1), d.status(STATUS + 2), d.status(STATUS + 4)]).toEqual([VIRTIO_BLK_S_OK, VIRTIO_BLK_S_OK, VIRTIO_BLK_S_OK, VIRTIO_BLK_S_OK]);
  });

  it("a FLUSH waits for every request before it, and the requests after it wait for the FLUSH", async () => {
    const { d, disk } = remoteDriver();
    const read = d.request(VIRTIO_BLK_T_IN, 8, [{ addr: DATA, len: 512, write: true }]);
    const flush = d.request(VIRTIO_BLK_T_FLUSH, 0, [], { status: STATUS + 1, header: HEADER + 0x100 });
    const after = d.request(VIRTIO_BLK_T_IN, 64, [{ addr: DATA + 0x2000, len: 512, write: true }], { status: STATUS + 2, header: HEADER + 0x200 });
    d.notify();
    expect(d.dev.inFlight).toBe(1);
    expect(d.dev.heldBack).toBe(2);
    disk.arriveAt(64 * 512); // nothing asked for it yet
    await settle();
    expect(d.usedIdx()).toBe(0);
    disk.arriveAt(8 * 512);
    await settle();
    expect(d.usedIdx()).toBe(2);
    expect([d.used(0).id, d.used(1).id]).toEqual([read, flush]);
    expect(d.dev.inFlight).toBe(1);
    disk.arriveAt(64 * 512);
    await settle();
    expect(d.usedIdx()).toBe(3);
    expect(d.used(2).id).toBe(after);
    expect([d.status(), d.status(STATUS + 1), d.status(STATUS + 2)]).toEqual([VIRTIO_BLK_S_OK, VIRTIO_BLK_S_OK, VIRTIO_BLK_S_OK]);
  });

  it("drain completes the requests in flight and then the held ones, in the order they were made available", () => {
    const { d } = remoteDriver();
    d.mem.writable(DATA + 0x1000, 4096).fill(0xcd);
    const a = d.request(VIRTIO_BLK_T_IN, 8, [{ addr: DATA, len: 4096, write: true }]);
    const w = d.request(VIRTIO_BLK_T_OUT, 8, [{ addr: DATA + 0x1000, len: 4096 }], { status: STATUS + 1, header: HEADER + 0x100 });
    d.notify();
    expect([d.dev.inFlight, d.dev.heldBack]).toEqual([1, 1]);
    d.dev.drain();
    expect([d.dev.inFlight, d.dev.heldBack]).toEqual([0, 0]);
    expect([d.used(0).id, d.used(1).id]).toEqual([a, w]);
    expect(d.ramWord(DATA)).toBe(8 * 512);
    expect(d.diskWord(8 * 512)).toBe(0xcdcdcdcd);
  });

  it("a device reset drops the held requests too", async () => {
    const { d, disk } = remoteDriver();
    d.mem.writable(DATA + 0x1000, 4096).fill(0xee);
    d.request(VIRTIO_BLK_T_IN, 8, [{ addr: DATA, len: 4096, write: true }]);
    d.request(VIRTIO_BLK_T_OUT, 8, [{ addr: DATA + 0x1000, len: 4096 }], { status: STATUS + 1, header: HEADER + 0x100 });
    d.notify();
    expect(d.dev.heldBack).toBe(1);
    d.init();
    expect(d.dev.heldBack).toBe(0);
    disk.arriveAt(8 * 512);
    await settle();
    expect(d.diskWord(8 * 512)).toBe(8 * 512);
    expect(d.status(STATUS + 1)).toBe(0xff);
  });

  it("drain completes every request in flight, in the order they were made available", () => {
    const { d } = remoteDriver();
    const a = d.request(VIRTIO_BLK_T_IN, 8, [{ addr: DATA, len: 4096, write: true }]);
    const b = d.request(VIRTIO_BLK_T_IN, 64, [{ addr: DATA + 0x2000, len: 4096, write: true }], { status: STATUS + 1, header: HEADER + 0x100 });
    d.notify();
    expect(d.dev.inFlight).toBe(2);
    d.dev.drain();
    expect(d.dev.inFlight).toBe(0);
    expect(d.usedIdx()).toBe(2);
    expect([d.used(0).id, d.used(1).id]).toEqual([a, b]);
    expect([d.ramWord(DATA), d.ramWord(DATA + 0x2000)]).toEqual([8 * 512, 64 * 512]);
  });

  it("reads the backend holds are served at once, as before", () => {
    const { d } = remoteDriver();
    (d.disk as RemoteDisk).arrive();
    expect(d.run(VIRTIO_BLK_T_IN, 2, [{ addr: DATA, len: 512, write: true }])).toBe(VIRTIO_BLK_S_OK);
    expect(d.usedIdx()).toBe(1);
    expect(d.ramWord(DATA)).toBe(1024);
  });
});

/**
 * Guest pages still in a remote store (a lazy restore from an object store; GuestMemory's
 * restorePageLater gives the promise of a page, as StoreRestore.demandHost does): a queue that
 * needs one (its rings, an indirect table, a request's buffers) waits for it without blocking
 * (no synchronous restorePage), the request left in the available ring with those after it,
 * and is served once the page is in. drain() serves it the synchronous way; a reset drops it.
 */
describe("virtio-mmio: guest pages still on their way (a store restore)", () => {
  /** Marks `pas`' pages not present; the synchronous restores (`sync`) and the pages asked for later (`asked`); arrive(pa) brings one in. */
  function far(d: Driver, ...pas: number[]) {
    const sync: number[] = [], asked: number[] = [];
    // As StoreRestore.demandHost: one fetch per page, shared by whoever asks for it meanwhile.
    const waits = new Map<number, { done: Promise<void>; resolve: () => void }>();
    for (const pa of pas) d.core.pages[page(pa)] |= PageState.NotRestored;
    d.mem.restorePage = (p) => {
      sync.push(p);
      d.core.pages[p] &= ~PageState.NotRestored;
    };
    d.mem.restorePageLater = (p) => {
      asked.push(p);
      let w = waits.get(p);
      if (!w) {
        let resolve!: () => void;
        const done = new Promise<void>((r) => (resolve = r));
        waits.set(p, (w = { done, resolve }));
      }
      return w.done;
    };
    /** The fetch asked for page pa is done: it brought `count` pages from pa (a cluster). */
    const arrive = async (pa: number, count = 1) => {
      for (let k = 0; k < count; k++) d.core.pages[page(pa) + k] &= ~PageState.NotRestored;
      waits.get(page(pa))!.resolve();
      await settle();
    };
    return { sync, asked, arrive };
  }
  /** The used ring's index, read without touching page states. */
  const rawUsedIdx = (d: Driver) => d.core.ram[d.usedRing - RAM_BASE + 2] | (d.core.ram[d.usedRing - RAM_BASE + 3] << 8);

  it("a request whose buffer is not in yet waits, with the requests after it; the process is not blocked", async () => {
    const d = new Driver();
    d.init();
    const f = far(d, DATA);
    const a = d.request(VIRTIO_BLK_T_IN, 2, [{ addr: DATA, len: 512, write: true }]);
    const b = d.request(VIRTIO_BLK_T_IN, 3, [{ addr: DATA + 0x8000, len: 512, write: true }], { status: STATUS + 1, header: HEADER + 0x100 });
    d.notify();
    expect(d.usedIdx()).toBe(0);
    expect(d.dev.waitingForPages).toBe(1);
    d.notify(); // a notify meanwhile: the same wait
    expect(f.asked).toEqual([page(DATA), page(DATA)]);
    expect(d.dev.pageWaits).toBe(1);
    expect(d.irq).toBe(false);
    await f.arrive(DATA);
    expect(d.usedIdx()).toBe(2);
    expect([d.used(0).id, d.used(1).id]).toEqual([a, b]);
    expect([d.status(), d.status(STATUS + 1)]).toEqual([VIRTIO_BLK_S_OK, VIRTIO_BLK_S_OK]);
    expect([d.ramWord(DATA), d.ramWord(DATA + 0x8000)]).toEqual([1024, 3 * 512]);
    expect(d.irq).toBe(true);
    expect(d.dev.waitingForPages).toBe(0);
    expect(f.sync).toEqual([]);
    expect(d.errors).toEqual([]);
  });

  it("a buffer over many pages on their way: one fetch asked per 16 pages (each brings its cluster), the others once those are in", async () => {
    const d = new Driver();
    d.init();
    const pages = Array.from({ length: 20 }, (_, k) => DATA + k * PAGE_SIZE);
    const f = far(d, ...pages);
    d.request(VIRTIO_BLK_T_IN, 0, [{ addr: DATA, len: 20 * PAGE_SIZE, write: true }]);
    d.notify();
    expect(f.asked).toEqual([page(DATA), page(DATA) + 16]);
    // The first fetch brings 12 pages; the second its 4.
    await f.arrive(DATA, 12);
    await f.arrive(DATA + 16 * PAGE_SIZE, 4);
    expect(d.usedIdx()).toBe(0);
    expect(f.asked).toEqual([page(DATA), page(DATA) + 16, page(DATA) + 12]);
    await f.arrive(DATA + 12 * PAGE_SIZE, 4);
    expect(d.usedIdx()).toBe(1);
    expect(d.status()).toBe(VIRTIO_BLK_S_OK);
    expect(d.ramWord(DATA + 19 * PAGE_SIZE)).toBe(19 * PAGE_SIZE);
    expect(f.sync).toEqual([]);
  });

  it("the rings and an indirect table wait the same way", async () => {
    const d = new Driver();
    d.init();
    d.request(VIRTIO_BLK_T_IN, 2, [{ addr: DATA, len: 512, write: true }], { indirect: true });
    const f = far(d, USED, INDIRECT);
    d.notify();
    expect(rawUsedIdx(d)).toBe(0);
    expect(f.asked).toEqual([page(USED)]);
    await f.arrive(USED);
    // The used ring is in; the indirect table is not.
    expect(rawUsedIdx(d)).toBe(0);
    expect(f.asked).toEqual([page(USED), page(INDIRECT)]);
    await f.arrive(INDIRECT);
    expect(d.usedIdx()).toBe(1);
    expect(d.status()).toBe(VIRTIO_BLK_S_OK);
    expect(d.ramWord(DATA)).toBe(1024);
    expect(f.sync).toEqual([]);
  });

  it("a write's buffer (device-readable) waits too; nothing reaches the disk before it is in", async () => {
    const d = new Driver();
    d.init();
    d.mem.writable(DATA, 512).fill(0x5a);
    const f = far(d, DATA);
    d.request(VIRTIO_BLK_T_OUT, 4, [{ addr: DATA, len: 512 }]);
    d.notify();
    expect(d.diskWord(4 * 512)).toBe(4 * 512);
    await f.arrive(DATA);
    expect(d.status()).toBe(VIRTIO_BLK_S_OK);
    expect(d.diskWord(4 * 512)).toBe(0x5a5a5a5a);
  });

  it("drain serves a waiting queue at once (the synchronous way); the page's arrival later changes nothing", async () => {
    const d = new Driver();
    d.init();
    const f = far(d, DATA);
    const a = d.request(VIRTIO_BLK_T_IN, 2, [{ addr: DATA, len: 512, write: true }]);
    d.notify();
    expect(d.usedIdx()).toBe(0);
    d.dev.drain();
    expect(f.sync).toEqual([page(DATA)]);
    expect(d.usedIdx()).toBe(1);
    expect(d.used(0).id).toBe(a);
    expect(d.ramWord(DATA)).toBe(1024);
    d.mem.writable(DATA, 4).fill(0);
    await f.arrive(DATA);
    expect(d.usedIdx()).toBe(1);
    expect(d.ramWord(DATA)).toBe(0);
  });

  it("a device reset drops the wait: the page's arrival writes nothing", async () => {
    const d = new Driver();
    d.init();
    const f = far(d, DATA);
    d.request(VIRTIO_BLK_T_IN, 2, [{ addr: DATA, len: 512, write: true }]);
    d.notify();
    d.init();
    await f.arrive(DATA);
    expect(d.usedIdx()).toBe(0);
    expect(d.status()).toBe(0xff);
    expect(d.ramWord(DATA)).toBe(0);
    expect(d.dev.waitingForPages).toBe(0);
  });

  it("without restorePageLater (a local snapshot file) pages are restored at once, as before", () => {
    const d = new Driver();
    d.init();
    const f = far(d, DATA);
    d.mem.restorePageLater = undefined;
    expect(d.run(VIRTIO_BLK_T_IN, 2, [{ addr: DATA, len: 512, write: true }])).toBe(VIRTIO_BLK_S_OK);
    expect(f.sync).toEqual([page(DATA)]);
  });
});
