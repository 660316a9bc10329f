// A lazy restore meets the other machine operations: a savevm before every page is back
// saves complete memory, and a system reset abandons the restore and boots cleanly.

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { join } from "node:path";
import { saveSnapshot } from "../../src/snapshot/save.js";
import { restoreEager } from "../../src/snapshot/restore.js";
import { LazyRestore } from "../../src/snapshot/restore-lazy.js";
import { SnapshotStore } from "../../src/snapshot/store.js";
import { PageState } from "../../src/core.js";
import { boot, cleanup, diskCopy, freshDir, Guest, linuxMachine, PROMPT, runUntil, shell } from "./util.js";

afterAll(cleanup);

let disk: string;
let store: SnapshotStore;
let source: Guest;

beforeAll(async () => {
  const dir = freshDir("interplay");
  disk = diskCopy(dir);
  store = new SnapshotStore(join(dir, "snaps"));
  source = linuxMachine(disk);
  await boot(source);
  await shell(source, "mount /dev/vda /mnt && cat /mnt/data/* > /dev/null");
  saveSnapshot(source.machine, store, "s");
}, 180_000);

describe("lazy restore and other operations", () => {
  it("savevm during a lazy restore brings the missing pages in first and saves all of RAM", { timeout: 180_000 }, () => {
    const g = linuxMachine(disk, true);
    const r = new LazyRestore(g.machine, store, store.pathFor("s"));
    expect(r.complete).toBe(false);
    saveSnapshot(g.machine, store, "during");
    expect(g.machine.core.pages.every((s) => (s & PageState.NotRestored) === 0)).toBe(true);
    expect(Buffer.compare(Buffer.from(g.machine.core.ram), Buffer.from(source.machine.core.ram))).toBe(0);
    const e = linuxMachine(disk, true);
    restoreEager(e.machine, store, store.pathFor("during"));
    expect(Buffer.compare(Buffer.from(e.machine.core.ram), Buffer.from(source.machine.core.ram))).toBe(0);
  });

  it("a system reset during a lazy restore abandons it and the guest boots again", { timeout: 180_000 }, async () => {
    const g = linuxMachine(disk, true);
    const r = new LazyRestore(g.machine, store, store.pathFor("s"));
    await g.machine.run({ instructions: 100_000, timeoutMs: 60_000 });
    expect(r.complete).toBe(false);
    g.machine.reset();
    expect(g.machine.mem.restorePage).toBeUndefined();
    expect(g.machine.pageSource).toBeUndefined();
    const from = g.out().length;
    await runUntil(g, PROMPT, from, 120_000);
    expect((await shell(g, "echo $((20+22))")).trim()).toBe("42");
  });
});
