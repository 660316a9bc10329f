// Guest-physical memory as the host sees it (DMA, loaders, HTIF, the monitor).
//
// Every host access keeps the page states the core relies on (DESIGN.md section 3):
// a touch of a not-yet-restored page restores it first (through `restorePage`, which the
// machine sets from its page source, snapshot/source.ts), and a host write marks the page dirty and no longer disk-backed, exactly
// like a hart store would.

import { Core, PageState, PAGE_SIZE, RAM_BASE } from "./core.js";
import { RvmError } from "./errors.js";

export class GuestMemory {
  /** Called for a page that is not yet restored before the host touches it (Machine.attachSource sets it). */
  restorePage: ((page: number) => void) | undefined;
  /**
   * The same for host code that can wait (a device's DMA, whenPresent): may return a promise
   * (a remote store) instead of making the page present at once. Unset: restorePage serves.
   */
  restorePageLater: ((page: number) => void | Promise<void>) | undefined;
  /**
   * For each disk-backed page: 1 + the disk block it still equals, as a key
   * `disk * 2^36 + block` (block in 4 KiB units, disk the drive's index), else 0. Zero for none:
   * a new array is then ready as it is (filling 2 MiB per GiB of RAM with -1 made the host commit
   * that memory, 5-6 ms of CPU on the way to a restored guest's first instruction).
   */
  readonly diskBlock: Float64Array;
  /** False while no entry of diskBlock was set since it was last cleared. */
  private diskBlocksSet = false;
  /**
   * True while guest RAM is all zero because nothing has written it yet (a machine built for a
   * restore): a restore then need not write zero pages — writing them would make the host
   * commit memory for nothing. Any host write, a run of the hart, a reset and a restore end it.
   */
  untouched = true;
  /** Reverse map: block key -> the pages that hold a copy of it. */
  private readonly blockPages = new Map<number, number[]>();

  constructor(readonly core: Core) {
    this.diskBlock = new Float64Array(core.ramBytes / PAGE_SIZE);
  }

  /** No page mirrors a disk block any more (reset, restore). */
  clearDiskBlocks(): void {
    if (this.diskBlocksSet) this.diskBlock.fill(0);
    this.diskBlocksSet = false;
    this.blockPages.clear();
  }

  static blockKey(disk: number, block: number): number {
    return disk * 2 ** 36 + block;
  }

  /** The drive and block of a key made by blockKey. */
  static splitBlockKey(key: number): { disk: number; block: number } {
    const disk = Math.floor(key / 2 ** 36);
    return { disk, block: key - disk * 2 ** 36 };
  }

  get size(): number {
    return this.core.ramBytes;
  }

  /** True when [pa, pa + len) lies inside RAM. */
  inRam(pa: number, len: number): boolean {
    return pa >= RAM_BASE && pa + len <= RAM_BASE + this.core.ramBytes && len >= 0;
  }

  private check(pa: number, len: number): number {
    if (!this.inRam(pa, len)) {
      throw new RvmError(`guest-physical range 0x${pa.toString(16)}+${len} is outside RAM`);
    }
    return pa - RAM_BASE;
  }

  private ready(off: number, len: number): void {
    if (len === 0) return;
    const pages = this.core.pages;
    const last = (off + len - 1) >>> 12;
    for (let p = off >>> 12; p <= last; p++) {
      if (pages[p] & PageState.NotRestored) {
        if (!this.restorePage) throw new RvmError(`page ${p} is not restored and no restore is running`);
        this.restorePage(p);
      }
    }
  }

  /**
   * Makes [pa, pa + len) present for host code that can wait (a device's DMA): undefined once
   * every page is present (restored now, synchronously, where the page source does so: a local
   * file), else a promise that settles (rejected if the restore failed) when the pages the
   * source fetches from far away (an object store) are in. The caller then touches the range
   * again (whenPresent once more: the pages that were present stay present).
   */
  whenPresent(pa: number, len: number): Promise<void> | undefined {
    const off = this.check(pa, len);
    if (len === 0) return undefined;
    const pages = this.core.pages;
    const last = (off + len - 1) >>> 12;
    let waits: Promise<void>[] | undefined;
    let asked = -Infinity;
    for (let p = off >>> 12; p <= last; p++) {
      if ((pages[p] & PageState.NotRestored) === 0) continue;
      if (!this.restorePageLater) {
        this.ready(p * PAGE_SIZE, 1);
        continue;
      }
      // One fetch per FETCH_SPAN pages of a run of missing pages: a store restore's fetch reads
      // its page's cluster (the missing neighbours in its pack, which holds pages in page order
      // outside the working set), and fetches started side by side would each read the same
      // slots. The pages it did not bring are asked for when the caller comes back.
      if (p - asked < GuestMemory.FETCH_SPAN) continue;
      const w = this.restorePageLater(p);
      if (w) {
        (waits ??= []).push(w);
        asked = p;
      }
    }
    return waits && (waits.length === 1 ? waits[0] : Promise.all(waits).then(() => undefined));
  }

  /** Pages one fetch of whenPresent stands for (a store restore's demand fault reads up to 16 slots). */
  static readonly FETCH_SPAN = 16;

  /** A view of guest RAM for reading (restoring the pages first). */
  view(pa: number, len: number): Uint8Array {
    const off = this.check(pa, len);
    this.ready(off, len);
    return this.core.ram.subarray(off, off + len);
  }

  read(pa: number, len: number): Uint8Array {
    return this.view(pa, len).slice();
  }

  /** A view of guest RAM the host is about to write: pages become dirty, not disk-backed. */
  writable(pa: number, len: number): Uint8Array {
    const off = this.check(pa, len);
    this.untouched = false;
    this.ready(off, len);
    this.noteWrite(off, len);
    return this.core.ram.subarray(off, off + len);
  }

  write(pa: number, bytes: Uint8Array): void {
    this.writable(pa, bytes.length).set(bytes);
  }

  readU64(pa: number): bigint {
    const v = this.view(pa, 8);
    return new DataView(v.buffer, v.byteOffset, 8).getBigUint64(0, true);
  }

  writeU64(pa: number, value: bigint): void {
    const v = this.writable(pa, 8);
    new DataView(v.buffer, v.byteOffset, 8).setBigUint64(0, BigInt.asUintN(64, value), true);
  }

  readU32(pa: number): number {
    const v = this.view(pa, 4);
    return new DataView(v.buffer, v.byteOffset, 4).getUint32(0, true);
  }

  writeU32(pa: number, value: number): void {
    const v = this.writable(pa, 4);
    new DataView(v.buffer, v.byteOffset, 4).setUint32(0, value >>> 0, true);
  }

  readU16(pa: number): number {
    const v = this.view(pa, 2);
    return v[0] | (v[1] << 8);
  }

  writeU16(pa: number, value: number): void {
    const v = this.writable(pa, 2);
    v[0] = value & 0xff;
    v[1] = (value >>> 8) & 0xff;
  }

  private noteWrite(off: number, len: number): void {
    if (len === 0) return;
    // A device's write breaks LR reservations (of any hart that may hold one on it).
    if (this.core.harts > 1) this.core.exports.dmaWritten();
    const pages = this.core.pages;
    const last = (off + len - 1) >>> 12;
    for (let p = off >>> 12; p <= last; p++) {
      // A page with translated code loses it (a device's DMA writing code, a loader).
      if (pages[p] & PageState.Code) this.core.exports.jitInvalidate(p);
      pages[p] = (pages[p] | PageState.Dirty | PageState.Accessed) & ~PageState.Disk;
    }
  }

  /**
   * Records that the page at `pa` (page-aligned) now holds exactly disk block `block`: a
   * virtio-blk read filled the whole page from a 4 KiB-aligned disk offset. Call it after the
   * DMA write. The page stays disk-backed until the hart, a DMA or a disk write changes it.
   */
  noteDiskBacked(pa: number, block: number, disk = 0): void {
    const page = this.check(pa, PAGE_SIZE) >>> 12;
    block = GuestMemory.blockKey(disk, block);
    this.forgetDisk(page);
    this.core.pages[page] |= PageState.Disk;
    this.diskBlock[page] = block + 1;
    this.diskBlocksSet = true;
    const list = this.blockPages.get(block);
    if (list) list.push(page);
    else this.blockPages.set(block, [page]);
    // The store TLB may hold this page: the next hart write must reach the slow path.
    this.core.exports.storesChanged();
  }

  /** The guest wrote disk block `block`: pages that still mirrored it no longer do. */
  diskWritten(block: number, disk = 0): void {
    block = GuestMemory.blockKey(disk, block);
    const list = this.blockPages.get(block);
    if (!list) return;
    for (const page of list) {
      if (this.diskBlock[page] === block + 1) {
        this.core.pages[page] &= ~PageState.Disk;
        this.diskBlock[page] = 0;
      }
    }
    this.blockPages.delete(block);
  }

  /** The block key a page still mirrors, or -1 (checks the core's bit: a hart store clears it). */
  diskBlockOf(page: number): number {
    if ((this.core.pages[page] & PageState.Disk) === 0) return -1;
    return this.diskBlock[page] - 1;
  }

  private forgetDisk(page: number): void {
    const old = this.diskBlock[page] - 1;
    if (old < 0) return;
    this.diskBlock[page] = 0;
    const list = this.blockPages.get(old);
    if (!list) return;
    const i = list.indexOf(page);
    if (i >= 0) list.splice(i, 1);
    if (list.length === 0) this.blockPages.delete(old);
  }

  static pageAddress(page: number): number {
    return RAM_BASE + page * PAGE_SIZE;
  }
}
