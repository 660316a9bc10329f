// virtio-rng, the entropy device (Virtual I/O Device 1.1, section 5.4; QEMU hw/virtio/virtio-rng.c,
// `-device virtio-rng-device` on the virt board's virtio-mmio slots). Device ID 4, one request
// queue, no feature bits, no configuration space. The driver makes device-writable buffers
// available; each is filled with random bytes from the host's CSPRNG (crypto.getRandomValues, as
// QEMU's default rng-random backend reads /dev/urandom) and returned. A guest with the driver
// (Linux: CONFIG_HW_RANDOM_VIRTIO) seeds its random pool from it at boot.

import type { DescriptorChain, VirtioDevice } from "./virtio-mmio.js";

export const VIRTIO_ID_RNG = 4;
/** QEMU's queue size for virtio-rng (virtio_add_queue(vdev, 8, ...)). */
export const VIRTIO_RNG_QUEUE_SIZE = 8;
/** The most bytes one request gets (a guest asks for far less: Linux reads 32..64 at a time). */
const MAX_REQUEST = 64 * 1024;

export class VirtioRng implements VirtioDevice {
  readonly deviceId = VIRTIO_ID_RNG;
  readonly deviceFeatures = 0n;
  readonly numQueues = 1;
  readonly queueNumMax = VIRTIO_RNG_QUEUE_SIZE;
  /** Bytes handed to the guest so far. */
  bytesServed = 0;

  readConfig(): number {
    return 0;
  }

  writeConfig(): void {
    // no configuration
  }

  reset(): void {}

  handle(_queue: number, chain: DescriptorChain): number {
    const n = Math.min(chain.writableLength, MAX_REQUEST);
    if (n === 0) return 0;
    const bytes = new Uint8Array(n);
    globalThis.crypto.getRandomValues(bytes); // the Web Crypto API: Node 20 and browsers alike
    chain.write(0, bytes);
    this.bytesServed += n;
    return n;
  }
}
