// The eager restore's page check without a first touch of guest RAM (issue 15).
//
// The data area is read with O_DIRECT straight into guest RAM: the kernel maps each fresh page
// and the device fills it, and nothing in user space has touched it yet. Checking a page there
// with the core's hash reads it from user space, and on a host whose page tables are shadowed by
// a hypervisor (these hosts: a PVM guest) that first user-space access of each 4 KiB page is a
// trip out of the guest: measured, 768 MiB read with O_DIRECT and then hashed in place took 1.7-2.1
// s, nearly all of it those trips (the same hash over memory already touched: 61 ms). Here the
// kernel copies the run's pages out of guest RAM (/proc/self/mem: its own mapping of the memory,
// no user-space page-table entry needed) into a small buffer that stays mapped, and the core's
// hash runs there: 0.37 s for the same 768 MiB. It is still the bytes in guest RAM that are
// checked, each page against its hash before the guest can run. The trips are then taken by
// the guest, page by page as it first uses them (as on any fresh memory), not all before its
// first instruction.
//
// The hash runs in a second instance of the core module over a memory of its own (its "RAM" is
// the buffer), so that neither the hart's memory nor its scratch area is written; each checking
// thread has its own. Where the kernel will not read (no /proc/self/mem, the address not found),
// there is no RamCheck and the engine checks in place as before; a page whose copy does not match
// is checked in place too, which names it as before.

import { PAGE_SIZE, sharedMemoryWorks } from "../core.js";
import { openSelfMemory, SelfMemory } from "../platform.js";

/** Pages per copy out of guest RAM (1 MiB: the eager restore's runs). */
export const RAM_CHECK_PAGES = 256;

/** The core's initial memory (asconfig.json: 256 pages of 64 KiB) - at least what its import asks. */
const CORE_MEMORY_INITIAL_PAGES = 256;

export class RamCheck {
  private readonly buf: Uint8Array;
  private readonly hashIs: (page: number, lo: number, hi: number) => number;

  private constructor(
    private readonly mem: SelfMemory,
    /** The virtual address of guest RAM's first byte in this process. */
    private readonly ramAddress: number,
    module: WebAssembly.Module,
    /** Where RAM begins in the core's memory (Core.exports.ramAddress()). */
    ramOffset: number,
  ) {
    const noDevice = () => {
      throw new Error("no devices in a page checker");
    };
    // The core's RAM starts at the same offset in every instance (layout.ts): a memory that holds
    // RAM_CHECK_PAGES pages past it, the buffer being that "RAM".
    const pages = Math.ceil((ramOffset + RAM_CHECK_PAGES * PAGE_SIZE) / 65536);
    const memory = newMemory(Math.max(CORE_MEMORY_INITIAL_PAGES, pages));
    const core = new WebAssembly.Instance(module, {
      env: { memory, table: new WebAssembly.Table({ element: "anyfunc", initial: 64 }) },
      host: { mmioRead: noDevice, mmioWrite: noDevice, trace: noDevice },
    }).exports as unknown as { pageHashIs(page: number, lo: number, hi: number): number };
    this.buf = new Uint8Array(memory.buffer, ramOffset, RAM_CHECK_PAGES * PAGE_SIZE);
    this.hashIs = core.pageHashIs;
  }

  /**
   * A checker for guest RAM at virtual address `ramAddress` (memoryAddress: the core memory's
   * address plus `ramOffset`), or undefined where the kernel will not read it.
   */
  static open(ramAddress: number | undefined, module: WebAssembly.Module, ramOffset: number): RamCheck | undefined {
    if (ramAddress === undefined) return undefined;
    const mem = openSelfMemory();
    if (!mem) return undefined;
    try {
      return new RamCheck(mem, ramAddress, module, ramOffset);
    } catch {
      mem.close();
      return undefined;
    }
  }

  /**
   * Copies pages [p0, p0 + count) of guest RAM (count <= RAM_CHECK_PAGES) into the buffer; false
   * if the kernel would not (the caller checks them in place).
   */
  load(p0: number, count: number): boolean {
    return this.mem.read(this.buf.subarray(0, count * PAGE_SIZE), this.ramAddress + p0 * PAGE_SIZE);
  }

  /** Whether the i-th page of the last load hashes to hi:lo. */
  pageIs(i: number, lo: number, hi: number): boolean {
    return this.hashIs(i, lo, hi) !== 0;
  }

  close(): void {
    this.mem.close();
  }
}

function newMemory(initial: number): WebAssembly.Memory {
  return new WebAssembly.Memory({ initial, maximum: 65536, shared: sharedMemoryWorks });
}
