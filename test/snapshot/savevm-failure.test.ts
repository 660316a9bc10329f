// A savevm that fails changes nothing (issue 9): the disk journal is as before the attempt (no
// mark of a snapshot that does not exist, so it does not grow for one), the guest's disk keeps
// working, no temp file holds space, and temp files of saves whose rvm died are removed by every
// command that opens the directory. A disk whose image does not keep the guest's writes (a .gz
// image) is saved only while unwritten, never into a snapshot that cannot be restored.

import { afterAll, describe, expect, it } from "vitest";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { ROOT } from "../helpers.js";
import { PAGE_SIZE } from "../../src/core.js";
import { RvmError } from "../../src/errors.js";
import { saveSnapshot } from "../../src/snapshot/save.js";
import { restoreEager } from "../../src/snapshot/restore.js";
import { SnapshotStore } from "../../src/snapshot/store.js";
import { JOURNAL_HEAD_SIZE, JOURNAL_RECORD_HEADER } from "../../src/snapshot/journal.js";
import type { Machine } from "../../src/machine.js";
import { bareMachine, cleanup, freshDir, populated, prngBytes } from "./util.js";

afterAll(cleanup);

const RAM = 16 << 20;
const records = (journal: string) => createHash("sha256").update(readFileSync(journal).subarray(JOURNAL_HEAD_SIZE)).digest("hex");

/** A guest write of one block, as virtio-blk makes it: journal first, then the image. */
function guestWrite(m: Machine, block: number, value: number): void {
  const d = m.drives[0];
  d.beforeWrite?.(block * PAGE_SIZE, PAGE_SIZE);
  d.disk.write(Buffer.alloc(PAGE_SIZE, value), block * PAGE_SIZE);
  m.mem.diskWritten(block, d.index); // pages that mirrored the block no longer do
}

function setup() {
  const dir = freshDir("sf");
  const disk = join(dir, "disk.raw");
  writeFileSync(disk, prngBytes(64 << 10, 3));
  const store = new SnapshotStore(join(dir, "snaps"));
  const m = populated(RAM, disk);
  return { dir, disk, store, m, journal: join(store.dir, "drive0-disk.raw.journal") };
}

describe("a savevm that fails changes nothing", { timeout: 120_000 }, () => {
  it("the snapshot's file is in the way (EISDIR): the journal is as before, the VM and its disk go on", async () => {
    const { store, m, journal } = setup();
    saveSnapshot(m, store, "first");
    guestWrite(m, 1, 0x11);
    const before = { records: records(journal), marks: store.journal("drive0-disk.raw", m.drives[0].disk).liveMarks };
    mkdirSync(store.pathFor("x"));
    expect(() => saveSnapshot(m, store, "x")).toThrow(/savevm x: cannot write .*x\.rvmsnap \(EISDIR\)/);
    const j = store.journal("drive0-disk.raw", m.drives[0].disk);
    expect(records(journal)).toBe(before.records);
    expect(j.liveMarks).toEqual(before.marks);
    expect(readdirSync(store.dir).filter((f) => f.includes(".tmp"))).toEqual([]);
    // The guest's writes still work and are preserved for the one real snapshot only: block 2
    // gets one entry; block 1, preserved once already for "first", none.
    const size = j.size();
    guestWrite(m, 1, 0x12);
    guestWrite(m, 2, 0x22);
    expect(j.size()).toBe(size + JOURNAL_RECORD_HEADER + PAGE_SIZE);
    const a0 = m.core.x(10);
    await m.run({ instructions: 1000, timeoutMs: 60_000 });
    expect(m.core.x(10)).toBe(a0 + 500n);
    store.close();
  });

  it.each([false, true])("the directory is full (ENOSPC): one line saying so, the journal as before, no temp file, the guest's disk writes go on (writer thread: %s)", (writerThread) => {
    const { store, m, journal, disk } = setup();
    store.ensureDir();
    // The save's temp file leads to /dev/full: every write to it fails with ENOSPC.
    symlinkSync("/dev/full", join(store.dir, `.x.rvmsnap.${process.pid}.tmp`));
    let err: unknown;
    try {
      saveSnapshot(m, store, "x", undefined, { writerThread });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(RvmError);
    expect((err as Error).message).toMatch(/^savevm x: cannot write .*x\.rvmsnap \(disk full\)$/);
    expect(readdirSync(store.dir).filter((f) => f.endsWith(".rvmsnap") || f.includes(".tmp"))).toEqual([]);
    const j = store.journal("drive0-disk.raw", m.drives[0].disk);
    expect(j.liveMarks).toEqual([]); // no mark for the snapshot that does not exist
    const r = records(journal);
    for (let b = 0; b < 8; b++) guestWrite(m, b, b); // 8 blocks written: nothing preserved for nobody
    expect(records(journal)).toBe(r);
    expect(readFileSync(disk).subarray(7 * PAGE_SIZE, 7 * PAGE_SIZE + 4)).toEqual(Buffer.alloc(4, 7));
    // Space again: the next savevm works and restores.
    saveSnapshot(m, store, "x", undefined, { writerThread });
    const back = bareMachine(RAM, disk).machine;
    restoreEager(back, store, store.pathFor("x"));
    expect(Buffer.compare(Buffer.from(back.core.ram), Buffer.from(m.core.ram))).toBe(0);
    store.close();
  });

  it("temp files of saves whose rvm died are removed by every command that opens the directory", () => {
    const { store, m } = setup();
    saveSnapshot(m, store, "s");
    store.close();
    for (const args of [["snapshot", "ls", "--dir", store.dir], ["snapshot", "info", "s", "--dir", store.dir]]) {
      const stale = join(store.dir, ".s.rvmsnap.4194305.tmp"); // above pid_max: no such process
      writeFileSync(stale, Buffer.alloc(1 << 20));
      const r = spawnSync(process.execPath, [join(ROOT, "bin/rvm.js"), ...args], { encoding: "utf8", timeout: 60_000 });
      expect(r.status, `${args.join(" ")}: ${r.stderr}`).toBe(0);
      expect(existsSync(stale), args.join(" ")).toBe(false);
    }
  });
});

describe("disks whose image does not keep the guest's writes (.gz)", { timeout: 120_000 }, () => {
  function gzMachine() {
    const dir = freshDir("gz");
    const gz = join(dir, "disk.img.gz");
    writeFileSync(gz, gzipSync(prngBytes(64 << 10, 4)));
    return { dir, gz, m: populated(RAM, gz), store: new SnapshotStore(join(dir, "snaps")) };
  }

  it("savevm of an unwritten one works without a journal and restores", () => {
    const { gz, m, store } = gzMachine();
    const meta = saveSnapshot(m, store, "clean");
    expect(meta.disks[0]).toMatchObject({ volatile: true, mark: 0 });
    expect(meta.stats.disk).toBe(1); // page 12 refers to the image's block
    expect(readdirSync(store.dir).filter((f) => f.endsWith(".journal"))).toEqual([]);
    const back = bareMachine(RAM, gz).machine;
    restoreEager(back, store, store.pathFor("clean"));
    expect(Buffer.compare(Buffer.from(back.core.ram), Buffer.from(m.core.ram))).toBe(0);
  });

  it("once the guest wrote to it, savevm refuses with one line and creates nothing", () => {
    const { m, store, dir } = gzMachine();
    guestWrite(m, 3, 0x33);
    let err: unknown;
    try {
      saveSnapshot(m, store, "dirty");
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(RvmError);
    expect((err as Error).message).toMatch(/savevm dirty: drive 0 \(.*disk\.img\.gz\) keeps the guest's writes in memory only .*gunzip/);
    expect((err as Error).message).not.toContain("\n");
    expect(existsSync(store.dir)).toBe(false);
    expect(readdirSync(dir)).toEqual(["disk.img.gz"]);
  });

  it("loadvm into a machine whose .gz disk was written since it was opened is refused before anything changes", () => {
    const { gz, m, store } = gzMachine();
    saveSnapshot(m, store, "clean");
    const target = bareMachine(RAM, gz).machine;
    guestWrite(target, 3, 0x33);
    const ram = Buffer.from(target.core.ram);
    expect(() => restoreEager(target, store, store.pathFor("clean"))).toThrow(/keeps the guest's writes in memory only.*cannot be brought back/);
    expect(Buffer.compare(Buffer.from(target.core.ram), ram)).toBe(0);
  });
});
