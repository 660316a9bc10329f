// savevm of a machine that no snapshot was saved from or restored into reads only its dirty pages:
// a page never written is zero there (the core's cleanPagesAreZero). Once a snapshot has been
// saved or restored, pages hold data without being dirty, and a full save must read them all -
// after an eager restore, during a lazy one, after an earlier savevm (issue 15).

import { afterAll, describe, expect, it } from "vitest";
import { join } from "node:path";
import { saveSnapshot, setLineage } from "../../src/snapshot/save.js";
import { restoreEager } from "../../src/snapshot/restore.js";
import { LazyRestore } from "../../src/snapshot/restore-lazy.js";
import { SnapshotStore } from "../../src/snapshot/store.js";
import { GuestMemory } from "../../src/memory.js";
import { PAGE_SIZE } from "../../src/core.js";
import type { Machine } from "../../src/machine.js";
import { bareMachine, cleanup, freshDir, prngBytes } from "./util.js";

afterAll(cleanup);

const RAM = 16 << 20;
const PAGES = RAM / PAGE_SIZE;
const WRITTEN = [0, 1, 2, 100, 101, 2047, 4095];

function machine(): Machine {
  const m = bareMachine(RAM).machine;
  for (const p of WRITTEN) m.mem.write(GuestMemory.pageAddress(p), prngBytes(PAGE_SIZE, p + 7));
  m.mem.write(GuestMemory.pageAddress(3000), new Uint8Array(PAGE_SIZE)); // written, but with zeros
  return m;
}

/** A full save of `m` (no parent to inherit from), eagerly restored into a fresh machine. */
function fullSaveAndBack(m: Machine, store: SnapshotStore, name: string): Buffer {
  setLineage(m, undefined);
  const meta = saveSnapshot(m, store, name);
  expect(meta.stats.inherited).toBe(0);
  const back = bareMachine(RAM).machine;
  restoreEager(back, store, store.pathFor(name));
  return Buffer.from(back.core.ram);
}

describe("savevm reads only the dirty pages of a machine never saved nor restored", () => {
  it("a fresh machine: the written pages stored, the rest zero, exactly", { timeout: 120_000 }, () => {
    const store = new SnapshotStore(join(freshDir("fresh"), "snaps"));
    const a = machine();
    expect(a.core.exports.cleanPagesAreZero()).toBe(1);
    const meta = saveSnapshot(a, store, "a");
    expect(meta.stats.stored).toBe(WRITTEN.length);
    expect(meta.stats.zero).toBe(PAGES - WRITTEN.length);
    expect(a.core.exports.cleanPagesAreZero()).toBe(0); // its pages are clean now, and hold data
    // ... so its next full save reads every page again.
    expect(Buffer.compare(fullSaveAndBack(a, store, "again"), Buffer.from(a.core.ram))).toBe(0);
    store.close();
  });

  it("after an eager restore and during a lazy one, a full save holds every page", { timeout: 120_000 }, () => {
    const store = new SnapshotStore(join(freshDir("restored"), "snaps"));
    const a = machine();
    saveSnapshot(a, store, "a");
    const ram = Buffer.from(a.core.ram);

    const eager = bareMachine(RAM).machine;
    restoreEager(eager, store, store.pathFor("a"));
    expect(eager.core.exports.cleanPagesAreZero()).toBe(0);
    expect(Buffer.compare(fullSaveAndBack(eager, store, "e"), ram)).toBe(0);

    const lazy = bareMachine(RAM).machine;
    const r = new LazyRestore(lazy, store, store.pathFor("a"), { budgetMs: 0 });
    expect(lazy.core.exports.cleanPagesAreZero()).toBe(0);
    expect(Buffer.compare(fullSaveAndBack(lazy, store, "l"), ram)).toBe(0); // savevm brings the rest in first
    r.cancel();
    store.close();
  });
});
