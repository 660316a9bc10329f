// virtio-blk, the block device (Virtual I/O Device (VIRTIO) Version 1.1, section 5.2), device
// ID 2, one request queue. Modelled on QEMU's hw/block/virtio-blk.c with its defaults: queue
// size 256, seg_max = queue size - 2, 512-byte logical blocks.
//
// A request is a device-readable header { u32 type; u32 reserved; u64 sector }, the data
// (device-readable for VIRTIO_BLK_T_OUT, device-writable for VIRTIO_BLK_T_IN and
// VIRTIO_BLK_T_GET_ID), and a final device-writable status byte.
//
// Page-cache tracking (docs/ARCHITECTURE.md, DESIGN.md section 3): after a VIRTIO_BLK_T_IN,
// every guest page the request filled entirely from a 4 KiB-aligned disk offset is recorded as
// disk-backed (`GuestMemory.noteDiskBacked`), so a snapshot can refer to the disk block instead
// of storing the page. Every VIRTIO_BLK_T_OUT calls `onBeforeDiskWrite` before touching the
// image (copy-before-write for snapshots) and `GuestMemory.diskWritten` for each 4 KiB block it
// touched afterwards, so no page claims to mirror a block that has changed.
//
// Requests that wait: a VIRTIO_BLK_T_IN whose blocks the backend cannot give at once
// (`BlockBackend.whenReadable`: a StoreDisk block still in the object store), or a
// VIRTIO_BLK_T_OUT that changes such a block only in part (`whenWritable`: a read-modify-write),
// is deferred, as QEMU's block layer completes AIO: the hart runs on, and the data, status,
// used-ring entry and interrupt come when the bytes are in and checked (a write is merged then).
// Everything else is served at once, in order. Several requests may be in flight at once and
// complete out of order (the virtio spec allows it, and QEMU does it) unless they touch the same
// bytes (`extent`): the transport then serves the later one after the earlier completes.

import { PAGE_SIZE } from "../core.js";
import type { GuestMemory } from "../memory.js";
import { SECTOR_SIZE, type BlockBackend } from "./disk.js";
import { bit, DescriptorChain, sliceSegments, VirtioError, type DeferredRequest, type RequestExtent, type VirtioDevice } from "./virtio-mmio.js";

export const VIRTIO_ID_BLOCK = 2;

// Feature bits (5.2.3).
export const VIRTIO_BLK_F_SIZE_MAX = 1;
export const VIRTIO_BLK_F_SEG_MAX = 2;
export const VIRTIO_BLK_F_GEOMETRY = 4;
export const VIRTIO_BLK_F_RO = 5;
export const VIRTIO_BLK_F_BLK_SIZE = 6;
export const VIRTIO_BLK_F_FLUSH = 9;

// Request types (5.2.6).
export const VIRTIO_BLK_T_IN = 0;
export const VIRTIO_BLK_T_OUT = 1;
export const VIRTIO_BLK_T_FLUSH = 4;
export const VIRTIO_BLK_T_GET_ID = 8;

// Status values.
export const VIRTIO_BLK_S_OK = 0;
export const VIRTIO_BLK_S_IOERR = 1;
export const VIRTIO_BLK_S_UNSUPP = 2;

/** Length of the device ID string returned by VIRTIO_BLK_T_GET_ID. */
export const VIRTIO_BLK_ID_BYTES = 20;

export const VIRTIO_BLK_QUEUE_SIZE = 256;
const HEADER_SIZE = 16;

// struct virtio_blk_config offsets (5.2.4).
const CFG_CAPACITY = 0x00;
const CFG_SEG_MAX = 0x0c;
const CFG_BLK_SIZE = 0x14;
const CFG_NUM_QUEUES = 0x22;
const CFG_SIZE = 0x3c;

export interface VirtioBlkOptions {
  /** The serial number VIRTIO_BLK_T_GET_ID returns (at most 20 bytes; QEMU's default is empty). */
  serial?: string;
  /** Which drive of the machine this is (page-cache tracking keys blocks by drive). */
  diskIndex?: number;
}

export class VirtioBlk implements VirtioDevice {
  readonly deviceId = VIRTIO_ID_BLOCK;
  readonly numQueues = 1;
  readonly queueNumMax = VIRTIO_BLK_QUEUE_SIZE;
  readonly deviceFeatures: bigint;
  /** Called before any write to the image, with the byte range about to change. */
  onBeforeDiskWrite?: (offset: number, length: number) => void;
  private readonly config = new Uint8Array(CFG_SIZE);
  private readonly serial: Uint8Array;
  readonly diskIndex: number;

  constructor(
    private readonly mem: GuestMemory,
    readonly disk: BlockBackend,
    opts: VirtioBlkOptions = {},
  ) {
    this.deviceFeatures = bit(VIRTIO_BLK_F_SEG_MAX) | bit(VIRTIO_BLK_F_BLK_SIZE) | bit(VIRTIO_BLK_F_FLUSH) | (disk.readOnly ? bit(VIRTIO_BLK_F_RO) : 0n);
    const cfg = new DataView(this.config.buffer);
    cfg.setBigUint64(CFG_CAPACITY, BigInt(Math.floor(disk.size / SECTOR_SIZE)), true);
    cfg.setUint32(CFG_SEG_MAX, VIRTIO_BLK_QUEUE_SIZE - 2, true);
    cfg.setUint32(CFG_BLK_SIZE, SECTOR_SIZE, true);
    cfg.setUint16(CFG_NUM_QUEUES, 1, true);
    this.diskIndex = opts.diskIndex ?? 0;
    this.serial = new Uint8Array(VIRTIO_BLK_ID_BYTES);
    this.serial.set(new TextEncoder().encode(opts.serial ?? "").subarray(0, VIRTIO_BLK_ID_BYTES));
  }

  readConfig(offset: number, size: number): number {
    if (offset + size > CFG_SIZE) return 0;
    let v = 0;
    for (let i = size - 1; i >= 0; i--) v = v * 256 + this.config[offset + i];
    return v;
  }

  writeConfig(_offset: number, _size: number, _value: number): void {
    // Nothing is writable without VIRTIO_BLK_F_CONFIG_WCE.
  }

  reset(): void {}

  handle(_queue: number, chain: DescriptorChain, mayDefer = false): number | DeferredRequest {
    if (chain.readableLength < HEADER_SIZE) throw new VirtioError("virtio-blk request without a header");
    if (chain.writableLength < 1) throw new VirtioError("virtio-blk request without a status byte");
    const header = new DataView(chain.read(0, HEADER_SIZE).buffer);
    const type = header.getUint32(0, true);
    const sector = header.getBigUint64(8, true);
    const statusAt = chain.writableLength - 1;
    let status = VIRTIO_BLK_S_OK;
    let written = 0; // bytes of data written before the status byte
    switch (type) {
      case VIRTIO_BLK_T_IN: {
        const len = statusAt;
        const offset = this.range(sector, len);
        if (offset < 0) status = VIRTIO_BLK_S_IOERR;
        else if (mayDefer && this.disk.whenReadable) {
          // A read the backend cannot serve at once completes later; the hart runs meanwhile.
          const wait = this.disk.whenReadable(offset, len);
          if (wait) return this.defer(chain, wait, statusAt, len, () => this.readDisk(sliceSegments(chain.writable, 0, len), offset));
        }
        if (offset >= 0) {
          status = this.readDisk(sliceSegments(chain.writable, 0, len), offset);
          written = len;
        }
        break;
      }
      case VIRTIO_BLK_T_OUT: {
        const len = chain.readableLength - HEADER_SIZE;
        const offset = this.range(sector, len);
        if (offset < 0 || this.disk.readOnly) status = VIRTIO_BLK_S_IOERR;
        else {
          if (mayDefer && this.disk.whenWritable) {
            // A write of part of a block still in the store (read-modify-write) completes later too.
            const wait = this.disk.whenWritable(offset, len);
            if (wait) return this.defer(chain, wait, statusAt, 0, () => this.writeDisk(sliceSegments(chain.readable, HEADER_SIZE, len), offset, len));
          }
          status = this.writeDisk(sliceSegments(chain.readable, HEADER_SIZE, len), offset, len);
        }
        break;
      }
      case VIRTIO_BLK_T_FLUSH:
        try {
          this.disk.flush();
        } catch {
          status = VIRTIO_BLK_S_IOERR;
        }
        break;
      case VIRTIO_BLK_T_GET_ID:
        written = Math.min(VIRTIO_BLK_ID_BYTES, statusAt);
        chain.write(0, this.serial.subarray(0, written));
        break;
      default:
        status = VIRTIO_BLK_S_UNSUPP;
    }
    chain.write(statusAt, Uint8Array.of(status));
    return written + 1;
  }

  /**
   * The bytes of the disk a request reads (IN) or writes (OUT), for the transport's ordering of
   * requests in flight. A FLUSH comes after every write before it, so after all requests in
   * flight (as any other type: a barrier); GET_ID and a transfer outside the disk (answered at
   * once with IOERR) touch nothing.
   */
  extent(_queue: number, chain: DescriptorChain): RequestExtent {
    if (chain.readableLength < HEADER_SIZE || chain.writableLength < 1) return "barrier";
    const header = new DataView(chain.read(0, HEADER_SIZE).buffer);
    const type = header.getUint32(0, true);
    if (type !== VIRTIO_BLK_T_IN && type !== VIRTIO_BLK_T_OUT) return type === VIRTIO_BLK_T_GET_ID ? "none" : "barrier";
    const len = type === VIRTIO_BLK_T_IN ? chain.writableLength - 1 : chain.readableLength - HEADER_SIZE;
    const start = this.range(header.getBigUint64(8, true), len);
    return start < 0 ? "none" : { start, end: start + len, write: type === VIRTIO_BLK_T_OUT };
  }

  /**
   * A request completed once `wait` settles: `run` does the transfer then (a read from what the
   * backend fetched and checked; a write merged into it) and gives its status; a fetch that
   * failed (the store's deadline, a corrupted object) is VIRTIO_BLK_S_IOERR, as the same request
   * done at once, and a write then changes nothing. `written`: the data bytes before the status.
   */
  private defer(chain: DescriptorChain, wait: Promise<void>, statusAt: number, written: number, run: () => number): DeferredRequest {
    let failed = false;
    const ready = wait.then(() => undefined, () => {
      failed = true;
    });
    return {
      ready,
      complete: () => {
        chain.write(statusAt, Uint8Array.of(failed ? VIRTIO_BLK_S_IOERR : run()));
        return written + 1;
      },
    };
  }

  /** The byte offset of a transfer of `len` bytes at `sector`, or -1 if it is not allowed. */
  private range(sector: bigint, len: number): number {
    if (len % SECTOR_SIZE !== 0) return -1;
    const capacity = BigInt(this.disk.size / SECTOR_SIZE);
    if (sector > capacity || BigInt(len / SECTOR_SIZE) > capacity - sector) return -1;
    return Number(sector) * SECTOR_SIZE;
  }

  private readDisk(segs: readonly { addr: number; len: number }[], offset: number): number {
    const mem = this.mem;
    let pos = offset;
    try {
      for (const s of segs) {
        this.disk.read(mem.writable(s.addr, s.len), pos);
        // Whole pages of this segment that now hold exactly one 4 KiB disk block.
        const first = Math.ceil(s.addr / PAGE_SIZE) * PAGE_SIZE;
        for (let pa = first; pa + PAGE_SIZE <= s.addr + s.len; pa += PAGE_SIZE) {
          const disk = pos + (pa - s.addr);
          if (disk % PAGE_SIZE === 0) mem.noteDiskBacked(pa, disk / PAGE_SIZE, this.diskIndex);
        }
        pos += s.len;
      }
    } catch {
      return VIRTIO_BLK_S_IOERR;
    }
    return VIRTIO_BLK_S_OK;
  }

  private writeDisk(segs: readonly { addr: number; len: number }[], offset: number, len: number): number {
    if (len === 0) return VIRTIO_BLK_S_OK;
    const mem = this.mem;
    let status = VIRTIO_BLK_S_OK;
    try {
      this.onBeforeDiskWrite?.(offset, len);
      let pos = offset;
      for (const s of segs) {
        this.disk.write(mem.view(s.addr, s.len), pos);
        pos += s.len;
      }
    } catch {
      status = VIRTIO_BLK_S_IOERR;
    }
    // Even a failed write may have changed part of the range.
    const last = Math.floor((offset + len - 1) / PAGE_SIZE);
    for (let b = Math.floor(offset / PAGE_SIZE); b <= last; b++) mem.diskWritten(b, this.diskIndex);
    return status;
  }
}
