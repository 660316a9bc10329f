// savevm / loadvm on the Linux guest (issue 5, "Tests"): a restored guest continues exactly as
// one that was never saved (console output, RAM, hart state), with every page kind in the
// checkpoint; incremental saves; the disk comes back with the RAM; delvm keeps the others.
//
// Time is deterministic (icount 4), so a run of N instructions is a pure function of the state:
// machine A runs on after its savevm, machine B is restored from the snapshot and runs the same
// N instructions, and the two must agree bit for bit.

import { afterAll, describe, expect, it } from "vitest";
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { saveSnapshot } from "../../src/snapshot/save.js";
import { restoreEager } from "../../src/snapshot/restore.js";
import { SnapshotStore } from "../../src/snapshot/store.js";
import { PageKind, SnapshotFile } from "../../src/snapshot/format.js";
import { GuestMemory } from "../../src/memory.js";
import { PAGE_SIZE } from "../../src/core.js";
import type { Machine } from "../../src/machine.js";
import { boot, cleanup, copyFile, diskCopy, freshDir, linuxMachine, prngBytes, PROMPT, runUntil, shell } from "./util.js";

afterAll(cleanup);

/** Instructions each side runs after the save point: enough for md5sum of the data files. */
const N = 60_000_000;
const HELLO = "hello from the rvm disk";

const ram = (m: Machine) => Buffer.from(m.core.ram);
const hart = (m: Machine) => Buffer.from(m.core.hartState());

/** Fills two free (zero) pages with the same 4 KiB pattern, so the save has a same-as page. */
function makeTwins(m: Machine): number[] {
  const pattern = prngBytes(PAGE_SIZE, 42);
  const pages: number[] = [];
  // Free pages near the top of RAM (the kernel allocates from the bottom up here).
  for (let p = m.core.pages.length - 1; p > 0 && pages.length < 2; p--) {
    if (m.core.ram.subarray(p * PAGE_SIZE, (p + 1) * PAGE_SIZE).every((b) => b === 0)) pages.push(p);
  }
  for (const p of pages) m.mem.writable(GuestMemory.pageAddress(p), PAGE_SIZE).set(pattern);
  return pages;
}

describe("savevm then loadvm (eager)", () => {
  it("a restored guest continues exactly as one that was never saved, also after an incremental save", { timeout: 240_000 }, async () => {
    const dir = freshDir("cont");
    const disk = diskCopy(dir);
    const store = new SnapshotStore(join(dir, "snaps"));
    try {
      const a = linuxMachine(disk);
      await boot(a);
      // Fill the page cache: these pages become disk-backed.
      await shell(a, "mount /dev/vda /mnt && cat /mnt/data/* > /dev/null");
      // Same-as pages: this guest has a few of its own (23 when measured), but two free pages
      // with one pattern pin the case down (the guest never looks at them; B must get both).
      const twins = makeTwins(a.machine);
      expect(twins.length).toBe(2);

      const s1 = saveSnapshot(a.machine, store, "s1");
      expect(s1.stats.zero).toBeGreaterThan(0);
      expect(s1.stats.disk).toBeGreaterThan(0);
      expect(s1.stats.same).toBeGreaterThan(0);
      expect(s1.stats.stored).toBeGreaterThan(0);
      expect(s1.stats.inherited).toBe(0);
      expect(s1.stats.zero + s1.stats.disk + s1.stats.same + s1.stats.stored).toBe(s1.stats.pages);
      // The page cache holds the ~2 MB of data files: hundreds of disk-backed pages.
      expect(s1.stats.disk).toBeGreaterThan(300);
      const f1 = SnapshotFile.open(store.pathFor("s1"));
      const kinds = twins.map((p) => f1.entry(p).kind).sort();
      f1.close();
      expect(kinds).toEqual([PageKind.Stored, PageKind.Same]);

      // A runs on from the save point.
      const savedAt = a.out().length;
      const cmd = "md5sum /mnt/data/* /mnt/hello.txt; echo done\n";
      a.machine.input(Buffer.from(cmd));
      const ra = await a.machine.run({ instructions: N, timeoutMs: 90_000 });
      expect(ra.reason).toBe("budget");
      const outA = a.out().slice(savedAt);
      expect(outA).toContain("/mnt/data/file00.bin");
      expect(outA).toContain("/mnt/hello.txt");
      expect(outA).toMatch(/\ndone\r\n/);
      const ramA = ram(a.machine);
      const hartA = hart(a.machine);

      // B: a machine built for a restore, on the same disk file and the same store.
      const b = linuxMachine(disk, true);
      restoreEager(b.machine, store, store.pathFor("s1"));
      b.machine.input(Buffer.from(cmd));
      const rb = await b.machine.run({ instructions: N, timeoutMs: 90_000 });
      expect(rb.reason).toBe("budget");
      expect(rb.instret).toBe(ra.instret);
      expect(b.out()).toBe(outA);
      expect(Buffer.compare(ram(b.machine), ramA)).toBe(0);
      expect(Buffer.compare(hart(b.machine), hartA)).toBe(0);

      // Incremental: B's dirty tracking is relative to s1, so s2 takes most pages over.
      const s2 = saveSnapshot(b.machine, store, "s2");
      expect(s2.stats.inherited).toBeGreaterThan(0);
      expect(s2.parent).toBe(s1.id);
      expect(s2.refs.map((r) => r.id)).toContain(s1.id);
      expect(s2.stats.fileBytes).toBeLessThan(s1.stats.fileBytes);
      expect(statSync(store.pathFor("s2")).size).toBeLessThan(statSync(store.pathFor("s1")).size);

      // B runs N more (with one more command); C, restored from s2, must do the same. B first:
      // C's restore then reverts whatever B wrote to the shared disk file since s2.
      const cmd2 = "cat /mnt/hello.txt; ls /mnt/data | wc -l\n";
      const b2At = b.out().length;
      b.machine.input(Buffer.from(cmd2));
      await b.machine.run({ instructions: N, timeoutMs: 90_000 });
      const outB2 = b.out().slice(b2At);
      expect(outB2).toContain(HELLO);

      const c = linuxMachine(disk, true);
      restoreEager(c.machine, store, store.pathFor("s2"));
      c.machine.input(Buffer.from(cmd2));
      await c.machine.run({ instructions: N, timeoutMs: 90_000 });
      expect(c.out()).toBe(outB2);
      expect(Buffer.compare(ram(c.machine), ram(b.machine))).toBe(0);
      expect(Buffer.compare(hart(c.machine), hart(b.machine))).toBe(0);
    } finally {
      store.close();
    }
  });

  it("a savevm in the middle of a run (at a slice boundary, as the monitor does it) does not disturb the guest", { timeout: 240_000 }, async () => {
    const dir = freshDir("mid");
    const disk = diskCopy(dir);
    const store = new SnapshotStore(join(dir, "snaps"));
    try {
      const a = linuxMachine(disk);
      await boot(a);
      await shell(a, "mount /dev/vda /mnt");
      // A command that keeps the guest busy for a while; wait until the shell has read all of it.
      const line = "for i in 1 2 3; do md5sum /mnt/data/*; done; echo done";
      const at = a.out().length;
      a.machine.input(Buffer.from(line + "\n"));
      await runUntil(a, line + "\r\n", at);

      const start = a.machine.core.instret;
      let savedAt: bigint | undefined;
      let outAt = 0;
      // The monitor's savevm: work queued with atBoundary while the run loop is running (here
      // from the loop's own `until` hook, a third of the way in, so the point is reproducible).
      let saving: Promise<void> | undefined;
      const requestSave = () => {
        if (!saving && a.machine.core.instret - start > BigInt(N / 3)) {
          saving = a.machine.atBoundary(() => {
            savedAt = a.machine.core.instret;
            outAt = a.out().length;
            saveSnapshot(a.machine, store, "mid");
          });
        }
        return false;
      };
      await a.machine.run({ instructions: N, until: requestSave, timeoutMs: 90_000 });
      await saving;
      // The save happened during the run, not before or after it.
      expect(savedAt).toBeDefined();
      expect(savedAt! > start && savedAt! < start + BigInt(N)).toBe(true);

      const b = linuxMachine(disk, true);
      restoreEager(b.machine, store, store.pathFor("mid"));
      expect(b.machine.core.instret).toBe(savedAt);
      await b.machine.run({ instructions: N - Number(savedAt! - start), timeoutMs: 90_000 });
      expect(b.machine.core.instret).toBe(a.machine.core.instret);
      expect(b.out()).toBe(a.out().slice(outAt));
      expect(Buffer.compare(ram(b.machine), ram(a.machine))).toBe(0);
      expect(Buffer.compare(hart(b.machine), hart(a.machine))).toBe(0);

      // And A itself ran as a machine that was never saved: same steps, no savevm.
      const r = linuxMachine(diskCopy(dir, "ref.img"));
      await boot(r);
      await shell(r, "mount /dev/vda /mnt");
      const rAt = r.out().length;
      r.machine.input(Buffer.from(line + "\n"));
      await runUntil(r, line + "\r\n", rAt);
      expect(r.machine.core.instret).toBe(start);
      await r.machine.run({ instructions: N, timeoutMs: 90_000 });
      expect(r.out()).toBe(a.out());
      expect(Buffer.compare(ram(r.machine), ram(a.machine))).toBe(0);
      expect(Buffer.compare(hart(r.machine), hart(a.machine))).toBe(0);
    } finally {
      store.close();
    }
  });

  it("a disk write after savevm does not break the snapshot; loadvm reverts the disk; delvm keeps the others", { timeout: 240_000 }, async () => {
    const dir = freshDir("disk");
    const disk = diskCopy(dir);
    const store = new SnapshotStore(join(dir, "snaps"));
    try {
      const g = linuxMachine(disk);
      await boot(g);
      expect(await shell(g, "mount /dev/vda /mnt && cat /mnt/hello.txt")).toContain(HELLO);
      const s1 = saveSnapshot(g.machine, store, "s1");
      // The disk as the snapshot saw it (ext4 may have written to it since the image was made).
      const diskAtS1 = readFileSync(copyFile(disk, join(dir, "disk-at-s1.img")));

      // The guest overwrites the file and pushes it to the disk.
      expect(await shell(g, "echo changed > /mnt/hello.txt; sync; cat /mnt/hello.txt")).toContain("changed");
      expect(readFileSync(disk).equals(diskAtS1)).toBe(false);

      // loadvm s1 into the same machine, between runs: the disk is back byte for byte...
      restoreEager(g.machine, store, store.pathFor("s1"));
      expect(readFileSync(disk).equals(diskAtS1)).toBe(true);
      // ...and so is the page cache (the shell prompt was already printed before the save).
      const at = g.out().length;
      g.machine.input(Buffer.from("cat /mnt/hello.txt\n"));
      await runUntil(g, PROMPT, at + "cat /mnt/hello.txt".length);
      expect(g.out().slice(at)).toContain(HELLO);
      expect(g.out().slice(at)).not.toContain("changed");
      // With the page cache dropped, the text comes from the (reverted) disk.
      expect(await shell(g, "echo 3 > /proc/sys/vm/drop_caches; cat /mnt/hello.txt")).toContain(HELLO);

      // An incremental snapshot on top of s1 (the machine's lineage is s1 since the loadvm).
      await shell(g, "echo second > /tmp/second.txt; md5sum /mnt/data/file0*");
      const s2 = saveSnapshot(g.machine, store, "s2");
      expect(s2.parent).toBe(s1.id);
      expect(s2.refs.map((r) => r.id)).toContain(s1.id);
      const ramAtS2 = ram(g.machine);
      const hartAtS2 = hart(g.machine);
      // The guest writes its disk after s2 too.
      await shell(g, "echo third > /mnt/hello.txt; sync");

      // delvm s1: s2 refers to it, so its file stays, hidden.
      store.delete("s1");
      expect(store.list().map((s) => s.name)).toEqual(["s2"]);
      expect(existsSync(store.pathFor("s1"))).toBe(false);
      const hidden = readdirSync(store.dir).filter((f) => f.startsWith(".") && f.endsWith(".rvmsnap"));
      expect(hidden).toEqual([`.${s1.id}.rvmsnap`]);

      // s2 still restores, to exactly what it was, into a fresh machine.
      const c = linuxMachine(disk, true);
      restoreEager(c.machine, store, store.pathFor("s2"));
      expect(Buffer.compare(ram(c.machine), ramAtS2)).toBe(0);
      expect(Buffer.compare(hart(c.machine), hartAtS2)).toBe(0);
      const back = await shell(c, "cat /tmp/second.txt; echo 3 > /proc/sys/vm/drop_caches; cat /mnt/hello.txt");
      expect(back).toMatch(/^second\n/);
      expect(back).toContain(HELLO);
      expect(back).not.toContain("third");

      // delvm s2: nothing needs s1 any more, both files go.
      store.delete("s2");
      expect(store.list()).toEqual([]);
      expect(readdirSync(store.dir).filter((f) => f.endsWith(".rvmsnap"))).toEqual([]);
    } finally {
      store.close();
    }
  });
});
