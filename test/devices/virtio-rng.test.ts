// virtio-rng (virtio 1.1 section 5.4), driven as Linux's virtio_rng driver does it over the
// modern virtio-mmio transport: device ID 4, no features, one queue of QEMU's size 8; each
// device-writable buffer comes back filled with random bytes. On the board it is
// `-device virtio-rng-device` and takes a virtio-mmio slot as QEMU places it.

import { describe, expect, it } from "vitest";
import { Core, PageState, RAM_BASE } from "../../src/core.js";
import { GuestMemory } from "../../src/memory.js";
import { VirtioRng, VIRTIO_ID_RNG, VIRTIO_RNG_QUEUE_SIZE } from "../../src/devices/virtio-rng.js";
import {
  VIRTIO_CONFIG_S_ACKNOWLEDGE, VIRTIO_CONFIG_S_DRIVER, VIRTIO_CONFIG_S_DRIVER_OK, VIRTIO_CONFIG_S_FEATURES_OK,
  VIRTIO_F_VERSION_1, VIRTIO_MMIO_DEVICE_FEATURES, VIRTIO_MMIO_DEVICE_FEATURES_SEL, VIRTIO_MMIO_DEVICE_ID,
  VIRTIO_MMIO_DRIVER_FEATURES, VIRTIO_MMIO_DRIVER_FEATURES_SEL, VIRTIO_MMIO_QUEUE_DESC_HIGH, VIRTIO_MMIO_QUEUE_DESC_LOW,
  VIRTIO_MMIO_QUEUE_DEVICE_HIGH, VIRTIO_MMIO_QUEUE_DEVICE_LOW, VIRTIO_MMIO_QUEUE_DRIVER_HIGH, VIRTIO_MMIO_QUEUE_DRIVER_LOW,
  VIRTIO_MMIO_QUEUE_NOTIFY, VIRTIO_MMIO_QUEUE_NUM, VIRTIO_MMIO_QUEUE_NUM_MAX, VIRTIO_MMIO_QUEUE_READY,
  VIRTIO_MMIO_QUEUE_SEL, VIRTIO_MMIO_STATUS, VIRTQ_DESC_F_WRITE, VirtioMmio,
} from "../../src/devices/virtio-mmio.js";
import { DriveList } from "../../src/options.js";
import { createVirtMachine } from "../../src/board/virt.js";

const DESC = RAM_BASE + 0x1000, AVAIL = RAM_BASE + 0x2000, USED = RAM_BASE + 0x3000, BUF = RAM_BASE + 0x10000;

/** A virtio-rng device over the modern transport, initialised as Linux's driver does it (one queue at DESC, AVAIL, USED). */
function rngDevice() {
  const mem = new GuestMemory(new Core(1 << 20));
  const rng = new VirtioRng();
  const st = { irq: false };
  const dev = new VirtioMmio(mem, rng, (l) => (st.irq = l), (e) => { throw new Error(e); }, { legacy: false });
  const wr = (o: number, v: number) => dev.write(o, 4, v);
  const rd = (o: number) => dev.read(o, 4);
  expect(rd(VIRTIO_MMIO_DEVICE_ID)).toBe(VIRTIO_ID_RNG);
  wr(VIRTIO_MMIO_STATUS, 0);
  wr(VIRTIO_MMIO_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER);
  wr(VIRTIO_MMIO_DEVICE_FEATURES_SEL, 0);
  expect(rd(VIRTIO_MMIO_DEVICE_FEATURES) & 0xffffff).toBe(0); // no device-type features
  wr(VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
  wr(VIRTIO_MMIO_DRIVER_FEATURES, Number(1n << BigInt(VIRTIO_F_VERSION_1 - 32)));
  wr(VIRTIO_MMIO_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK);
  wr(VIRTIO_MMIO_QUEUE_SEL, 0);
  expect(rd(VIRTIO_MMIO_QUEUE_NUM_MAX)).toBe(VIRTIO_RNG_QUEUE_SIZE);
  wr(VIRTIO_MMIO_QUEUE_NUM, VIRTIO_RNG_QUEUE_SIZE);
  for (const [lo, hi, a] of [[VIRTIO_MMIO_QUEUE_DESC_LOW, VIRTIO_MMIO_QUEUE_DESC_HIGH, DESC], [VIRTIO_MMIO_QUEUE_DRIVER_LOW, VIRTIO_MMIO_QUEUE_DRIVER_HIGH, AVAIL], [VIRTIO_MMIO_QUEUE_DEVICE_LOW, VIRTIO_MMIO_QUEUE_DEVICE_HIGH, USED]]) {
    wr(lo, a);
    wr(hi, 0);
  }
  wr(VIRTIO_MMIO_QUEUE_READY, 1);
  wr(VIRTIO_MMIO_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK | VIRTIO_CONFIG_S_DRIVER_OK);
  return { mem, rng, dev, wr, st };
}

/** Makes `n` requests of 64 bytes at BUF available (what Linux's virtio_rng asks for). */
function offer(mem: GuestMemory, n: number): void {
  for (let i = 0; i < n; i++) {
    mem.writeU64(DESC + 16 * i, BigInt(BUF + 64 * i));
    mem.writeU32(DESC + 16 * i + 8, 64);
    mem.writeU16(DESC + 16 * i + 12, VIRTQ_DESC_F_WRITE);
    mem.writeU16(AVAIL + 4 + 2 * i, i);
  }
  mem.writeU16(AVAIL + 2, n);
}

describe("virtio-rng", () => {
  it("fills each buffer the driver makes available with random bytes and returns it", () => {
    const { mem, rng, wr, st } = rngDevice();
    // Two requests of 64 bytes (what Linux's virtio_rng asks for), one notify.
    offer(mem, 2);
    wr(VIRTIO_MMIO_QUEUE_NOTIFY, 0);
    expect(mem.readU16(USED + 2)).toBe(2);
    expect(st.irq).toBe(true);
    for (let i = 0; i < 2; i++) {
      expect(mem.readU32(USED + 4 + 8 * i)).toBe(i); // id
      expect(mem.readU32(USED + 8 + 8 * i)).toBe(64); // len
    }
    const a = Buffer.from(mem.read(BUF, 64)), b = Buffer.from(mem.read(BUF + 64, 64));
    expect(a.equals(Buffer.alloc(64))).toBe(false);
    expect(a.equals(b)).toBe(false);
    expect(new Set(a).size).toBeGreaterThan(20); // bytes of all kinds, not a pattern
    expect(rng.bytesServed).toBe(128);
  });

  it("a buffer in a page still in a remote store (a store restore): the queue waits for it, then fills it", async () => {
    const { mem, rng, dev, wr, st } = rngDevice();
    offer(mem, 2);
    const p = (BUF - RAM_BASE) >>> 12;
    mem.core.pages[p] |= PageState.NotRestored;
    let arrive!: () => void;
    const asked: number[] = [];
    mem.restorePage = () => { throw new Error("a synchronous restore"); };
    mem.restorePageLater = (pg) => {
      asked.push(pg);
      return new Promise<void>((r) => (arrive = r));
    };
    wr(VIRTIO_MMIO_QUEUE_NOTIFY, 0);
    expect(mem.readU16(USED + 2)).toBe(0);
    expect(asked).toEqual([p]);
    expect(dev.waitingForPages).toBe(1);
    expect(rng.bytesServed).toBe(0);
    mem.core.pages[p] &= ~PageState.NotRestored;
    arrive();
    await new Promise((r) => setTimeout(r, 0));
    expect(mem.readU16(USED + 2)).toBe(2);
    expect(st.irq).toBe(true);
    expect(rng.bytesServed).toBe(128);
    expect(Buffer.from(mem.read(BUF, 64)).equals(Buffer.alloc(64))).toBe(false);
  });

  it("-device virtio-rng-device takes the highest free slot, or its bus=, and the board builds it there", () => {
    const list = new DriveList();
    list.addDrive("file=/dev/null,format=raw,if=none,id=hd0");
    list.addDevice("virtio-blk-device,drive=hd0");
    list.addDevice("virtio-rng-device");
    expect(list.rngSlots).toEqual([6]); // the disk took slot 7, as QEMU places them
    list.addDevice("virtio-rng-device,bus=virtio-mmio-bus.2");
    expect(list.rngSlots).toEqual([6, 2]);
    expect(() => list.addDevice("virtio-rng-device,bus=virtio-mmio-bus.2")).toThrow(/bus 'virtio-mmio-bus.2' is full/);
    expect(() => list.addDevice("virtio-rng-device,frob=1")).toThrow(/frob/);

    const m = createVirtMachine({ ramBytes: 16 << 20, bios: "none", drives: [], rng: [6], restoring: true, console: { write() {}, readByte: () => -1 } });
    const slot6 = m.core.mappings().find((x) => x.base === 0x1000_1000 + 6 * 0x1000)!;
    expect(slot6.handler.read(VIRTIO_MMIO_DEVICE_ID, 4)).toBe(VIRTIO_ID_RNG);
    const slot7 = m.core.mappings().find((x) => x.base === 0x1000_1000 + 7 * 0x1000)!;
    expect(slot7.handler.read(VIRTIO_MMIO_DEVICE_ID, 4)).toBe(0); // an empty slot
  });
});
