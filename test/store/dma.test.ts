// A device's DMA into a page a store restore has not brought in yet does not block the process
// (issue 13: "a slow or unreachable store during a lazy restore stalls only the harts that need a
// missing page"). A machine is saved into radosgw and restored lazily in this process; with
// radosgw stopped (SIGSTOP), a virtio-blk read into a page still in the store waits in its queue
// (GuestMemory.whenPresent -> StoreRestore.demandHost) while the event loop runs on and the
// restore says what the DMA waits for; once radosgw is back, the read completes and the page holds
// the saved content with the disk's bytes over it. Before, the transport's DMA fetched the page
// synchronously (demandNow, the worker reader): the whole process stood in that read until the
// store answered or the deadline passed.

import { describe, expect, it } from "vitest";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createVirtMachine } from "../../src/board/virt.js";
import type { Machine } from "../../src/machine.js";
import { PageState, PAGE_SIZE, RAM_BASE } from "../../src/core.js";
import { GuestMemory } from "../../src/memory.js";
import { StoreVm } from "../../src/store/vm.js";
import type { StoreRestore } from "../../src/store/restore.js";
import { VirtioBlk, VIRTIO_BLK_S_OK, VIRTIO_BLK_T_IN } from "../../src/devices/virtio-blk.js";
import {
  VIRTIO_CONFIG_S_ACKNOWLEDGE, VIRTIO_CONFIG_S_DRIVER, VIRTIO_CONFIG_S_DRIVER_OK, VIRTIO_CONFIG_S_FEATURES_OK,
  VIRTIO_MMIO_DRIVER_FEATURES, VIRTIO_MMIO_DRIVER_FEATURES_SEL, VIRTIO_MMIO_QUEUE_DESC_LOW, VIRTIO_MMIO_QUEUE_DEVICE_LOW,
  VIRTIO_MMIO_QUEUE_DRIVER_LOW, VIRTIO_MMIO_QUEUE_NOTIFY, VIRTIO_MMIO_QUEUE_NUM, VIRTIO_MMIO_QUEUE_READY, VIRTIO_MMIO_QUEUE_SEL,
  VIRTIO_MMIO_STATUS, VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_WRITE, VirtioMmio,
} from "../../src/devices/virtio-mmio.js";
import { diskCopy, prngBytes } from "../snapshot/util.js";
import { sleep } from "./guest.js";
import { freshBucket, haveRadosgw, useRadosgw } from "./rgw.js";

const RAM = 32 << 20;
/** Pages with content of their own (stored, not in the working set: written without the host's accessed bit). */
const DATA_PAGES = [100, 163];
/** The page the device's read lands in. */
const TARGET = 120;
/** The rings and the request header, in pages the test writes (restored synchronously, the store up). */
const RING = RAM_BASE + 200 * PAGE_SIZE;
const HEADER = RAM_BASE + 201 * PAGE_SIZE;
const STATUS = HEADER + 0x800;
const USED = RAM_BASE + 202 * PAGE_SIZE;

function machine(vm: StoreVm, disk: string): Machine {
  return createVirtMachine({
    ramBytes: RAM,
    bios: "none",
    drives: [{ file: disk, readonly: false, attached: true } as never],
    restoring: true,
    virtioLegacy: false,
    openDisk: vm.openDisk,
    console: { write: () => undefined, readByte: () => -1 },
  });
}

/** The machine's virtio-blk transport. */
function blkTransport(m: Machine): VirtioMmio {
  const t = m.resettables.find((r): r is VirtioMmio => r instanceof VirtioMmio && r.device instanceof VirtioBlk);
  if (!t) throw new Error("no virtio-blk transport");
  return t;
}

/** Guest memory read without touching page states (no restore). */
const raw = (m: Machine, pa: number, len: number) => m.core.ram.slice(pa - RAM_BASE, pa - RAM_BASE + len);
const rawU16 = (m: Machine, pa: number) => { const b = raw(m, pa, 2); return b[0] | (b[1] << 8); };

interface Setup {
  m: Machine;
  r: StoreRestore;
  t: VirtioMmio;
  /** The disk's first 512 bytes (what the read brings), and page TARGET as saved. */
  disk: Uint8Array;
  saved: Uint8Array;
  /** Notifies the device of the request made available. */
  notify(): void;
}

/**
 * A machine saved into the store, restored lazily here (its hart never runs: only what is asked
 * for comes in) with a StoreVm of deadline `deadlineMs`, and one virtio-blk request made available
 * by a driver: IN of 512 bytes at sector 0 into page TARGET, still in the store. `test` runs with it.
 */
async function withRequest(deadlineMs: number, test: (s: Setup) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "rvm-dma-"));
  const url = `s3://${freshBucket("dma")}/d`;
  const vmA = new StoreVm(url);
  const vmB = new StoreVm(url, { deadlineMs });
  let b: Machine | undefined;
  try {
    const a = machine(vmA, diskCopy(dir, "a.img"));
    const [first, last] = DATA_PAGES;
    for (let p = first; p <= last; p++) a.core.ram.set(prngBytes(PAGE_SIZE, p), p * PAGE_SIZE);
    const saved = raw(a, GuestMemory.pageAddress(TARGET), PAGE_SIZE);
    await vmA.save(a, "s");

    await vmB.prepare("s");
    b = machine(vmB, diskCopy(dir, "b.img"));
    const r = await vmB.restore(b, "s", "lazy");
    const m = b;
    expect(m.core.pages[TARGET] & PageState.NotRestored).toBe(PageState.NotRestored);
    // The disk block the read wants is at hand (the test is about RAM, not the disk).
    await vmB.disks.get(0)!.whenReadable?.(0, PAGE_SIZE);
    const disk = new Uint8Array(512);
    vmB.disks.get(0)!.read(disk, 0);
    expect(disk).toEqual(new Uint8Array(readFileSync(join(dir, "b.img")).subarray(0, 512)));

    // A driver: one queue of 16, rings and header in pages of its own, one IN request of 512
    // bytes at sector 0 into page TARGET.
    const t = blkTransport(m);
    const wr = (off: number, v: number) => t.write(off, 4, v);
    wr(VIRTIO_MMIO_STATUS, 0);
    wr(VIRTIO_MMIO_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER);
    wr(VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
    wr(VIRTIO_MMIO_DRIVER_FEATURES, 1); // VIRTIO_F_VERSION_1
    wr(VIRTIO_MMIO_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK);
    wr(VIRTIO_MMIO_QUEUE_SEL, 0);
    wr(VIRTIO_MMIO_QUEUE_NUM, 16);
    wr(VIRTIO_MMIO_QUEUE_DESC_LOW, RING);
    wr(VIRTIO_MMIO_QUEUE_DRIVER_LOW, RING + 0x400);
    wr(VIRTIO_MMIO_QUEUE_DEVICE_LOW, USED);
    wr(VIRTIO_MMIO_QUEUE_READY, 1);
    wr(VIRTIO_MMIO_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK | VIRTIO_CONFIG_S_DRIVER_OK);
    const mem = m.mem;
    mem.writable(RING, PAGE_SIZE).fill(0);
    mem.writable(USED, PAGE_SIZE).fill(0);
    mem.writable(HEADER, PAGE_SIZE).fill(0);
    mem.writeU32(HEADER, VIRTIO_BLK_T_IN);
    mem.writable(STATUS, 1)[0] = 0xff;
    const desc = (i: number, addr: number, len: number, flags: number) => {
      mem.writeU64(RING + 16 * i, BigInt(addr));
      mem.writeU32(RING + 16 * i + 8, len);
      mem.writeU16(RING + 16 * i + 12, flags);
      mem.writeU16(RING + 16 * i + 14, i + 1);
    };
    desc(0, HEADER, 16, VIRTQ_DESC_F_NEXT);
    desc(1, GuestMemory.pageAddress(TARGET), 512, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT);
    desc(2, STATUS, 1, VIRTQ_DESC_F_WRITE);
    mem.writeU16(RING + 0x400 + 4, 0);
    mem.writeU16(RING + 0x400 + 2, 1);
    expect(m.core.pages[TARGET] & PageState.NotRestored).toBe(PageState.NotRestored);
    await test({ m, r, t, disk, saved, notify: () => wr(VIRTIO_MMIO_QUEUE_NOTIFY, 0) });
  } finally {
    if (b) for (const f of b.onExit) f();
    vmA.close();
    vmB.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

describe.skipIf(!haveRadosgw)("device DMA during a lazy restore from the store (radosgw)", () => {
  const gw = useRadosgw();

  it("a virtio-blk read into a page still in the store waits for it; the process goes on; the page is right after", { timeout: 300_000 }, async () => {
    // A deadline the test would reach if the process stood in a synchronous read (before).
    await withRequest(30_000, async ({ m, r, t, disk, saved, notify }) => {
      gw().pause();
      try {
        notify();
        // The request waits for its page; the process goes on (this very test's timers run).
        expect(rawU16(m, USED + 2)).toBe(0);
        expect(t.waitingForPages).toBe(1);
        expect(t.error).toBeNull();
        expect(r.progress()).toMatch(new RegExp(`device DMA into page ${TARGET} waiting on the store for \\d+ ms`));
        let ticks = 0;
        const timer = setInterval(() => ticks++, 100);
        await sleep(2500);
        clearInterval(timer);
        expect(ticks).toBeGreaterThan(10);
        expect(rawU16(m, USED + 2)).toBe(0);
        const info = r.progress();
        expect(info).toMatch(/waiting on the store s3:\/\//);
        expect(info).toMatch(new RegExp(`device DMA into page ${TARGET} waiting on the store for [1-9]\\d{3,} ms \\(the hart runs meanwhile\\)`));
      } finally {
        gw().resume();
      }
      for (let k = 0; k < 600 && rawU16(m, USED + 2) === 0; k++) await sleep(100);
      expect(rawU16(m, USED + 2)).toBe(1);
      expect(raw(m, STATUS, 1)[0]).toBe(VIRTIO_BLK_S_OK);
      expect(t.waitingForPages).toBe(0);
      expect(m.core.pages[TARGET] & PageState.NotRestored).toBe(0);
      const got = raw(m, GuestMemory.pageAddress(TARGET), PAGE_SIZE);
      expect(got.subarray(0, 512)).toEqual(disk);
      expect(got.subarray(512)).toEqual(saved.subarray(512));
      expect(r.progress()).not.toMatch(/device DMA/);
    });
  });

  it("past the deadline the restore fails with a one-line error and the request is left unanswered (the VM stops)", { timeout: 300_000 }, async () => {
    await withRequest(2_000, async ({ m, r, t, notify }) => {
      gw().pause();
      try {
        notify();
        expect(t.waitingForPages).toBe(1);
        // The store's request timeout (10 s) then the deadline: the fetch fails.
        let failure: unknown;
        for (let k = 0; k < 600 && failure === undefined; k++) {
          await sleep(100);
          try {
            r.background();
          } catch (e) {
            failure = e;
          }
        }
        expect(failure).toBeInstanceOf(Error);
        const msg = (failure as Error).message;
        expect(msg).toMatch(/the object store did not answer for 2 s/);
        expect(msg).toMatch(/the VM is stopped/);
        expect(msg).not.toContain("\n");
        // Nothing written into the guest: the request is neither used nor half done.
        expect(rawU16(m, USED + 2)).toBe(0);
        expect(raw(m, STATUS, 1)[0]).toBe(0xff);
        expect(t.waitingForPages).toBe(0);
        expect(t.error).toBeNull();
      } finally {
        gw().resume();
      }
    });
  });
});
