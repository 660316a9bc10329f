// The page source: the one host interface behind the pages a machine does not have yet.
//
// While a page's state says "not present" (PG_NOT_RESTORED), the hart cannot touch it: the core
// exits (EXIT_PAGE) before the access has any effect, and host code (device DMA, the monitor,
// HTIF) goes through GuestMemory, which asks first. Who makes the page present is the machine's
// page source — at most one at a time (Machine.attachSource):
//   - a lazy restore from a snapshot file (snapshot/restore-lazy.ts),
//   - a lazy restore from an object store (store/restore.ts),
//   - a background savevm's capture (store/save.ts: the page is copied aside, then handed back),
//   - in the browser, a restore from OPFS or IndexedDB.
// The run loop, GuestMemory and the disks call the source; nothing else reassigns hooks.

export interface PageSource {
  /**
   * The hart touched page `page`: make it present. Returns a promise when the page must be
   * fetched from far away: the run loop awaits it (the hart waits; the monitor, timers and the
   * event loop go on). Throwing stops the VM with that error.
   */
  demand(page: number): void | Promise<void>;
  /** Host code needs page `page` now (the monitor, HTIF, loaders, a drain): make it present synchronously. */
  demandNow(page: number): void;
  /**
   * A device's DMA needs page `page` and can wait (GuestMemory.whenPresent: the virtio queue
   * layer holds the request until its pages are in): make it present, or return a promise when it
   * must be fetched from far away, so that the process (monitor, event loop, the hart) goes on
   * meanwhile. Without it, demandNow serves (a local file is read at once).
   */
  demandHost?(page: number): void | Promise<void>;
  /** Between slices (and while the hart idles): background work within a small time budget. */
  background?(): void;
  /**
   * Before the guest writes [offset, offset + length) of drive `drive` (the disk still holds the
   * old content): a restore brings in pages that mirror those blocks, a capture keeps the old
   * blocks.
   */
  beforeDiskWrite?(drive: number, offset: number, length: number): void;
  /** The machine's memory is being replaced (reset, another restore): stop, let go. */
  cancel?(): void;
}
