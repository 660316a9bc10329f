// Snapshot files (issue 5, "Tests"): truncated, corrupted, foreign-version, foreign and
// wrong-machine files are refused with a one-line error naming the problem (in-process and from
// `rvm snapshot info`), before anything is changed; a savevm that cannot write is reported,
// leaves nothing behind and the VM runs on; `rvm snapshot ls|info|rm` on a directory.

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, truncateSync, writeFileSync } from "node:fs";
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { ROOT } from "../helpers.js";
import { PAGE_SIZE, RAM_BASE } from "../../src/core.js";
import { GuestMemory } from "../../src/memory.js";
import { RvmError } from "../../src/errors.js";
import { saveSnapshot } from "../../src/snapshot/save.js";
import { restoreEager, RestoreFailedError } from "../../src/snapshot/restore.js";
import { SnapshotStore } from "../../src/snapshot/store.js";
import { HEADER_SIZE, PageKind, SnapshotError, SnapshotFile } from "../../src/snapshot/format.js";
import type { Machine } from "../../src/machine.js";
import { bareMachine, cleanup, endMachines, freshDir, populated, prngBytes } from "./util.js";

const RAM = 16 << 20;

let dir: string;
let diskFile: string;
let store: SnapshotStore;
let base: string;
let machine: Machine;

beforeAll(() => {
  dir = freshDir("files");
  diskFile = join(dir, "disk.raw");
  writeFileSync(diskFile, prngBytes(64 << 10, 3));
  store = new SnapshotStore(join(dir, "snaps"));
  machine = populated(RAM, diskFile);
  const meta = saveSnapshot(machine, store, "base");
  expect(meta.stats).toMatchObject({ disk: 1, same: 1, stored: 9 });
  base = store.pathFor("base");
});

afterAll(() => {
  store.close();
  cleanup();
});

let copies = 0;
/** A copy of the base snapshot outside the store, changed by `damage`. */
function damaged(damage: (file: string, bytes: Buffer) => void): string {
  const d = join(dir, "bad");
  mkdirSync(d, { recursive: true });
  const file = join(d, `copy${copies++}.rvmsnap`);
  copyFileSync(base, file);
  damage(file, readFileSync(base));
  return file;
}

function flip(file: string, offset: number): void {
  const b = readFileSync(file);
  b[offset] ^= 0x40;
  writeFileSync(file, b);
}

function rvm(...args: string[]) {
  const r = spawnSync(process.execPath, [join(ROOT, "bin/rvm.js"), ...args], { encoding: "utf8", timeout: 60_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Both ways of opening `file` refuse it with one line matching `problem`. */
function refused(file: string, problem: RegExp): void {
  let err: unknown;
  try {
    SnapshotFile.open(file).close();
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(SnapshotError);
  const msg = (err as Error).message;
  expect(msg).toContain(file);
  expect(msg).toMatch(problem);
  expect(msg).not.toContain("\n");

  const r = rvm("snapshot", "info", file);
  expect(r.code).toBe(1);
  expect(r.stdout).toBe("");
  const lines = r.stderr.trimEnd().split("\n");
  expect(lines).toHaveLength(1);
  expect(lines[0]).toMatch(/^rvm: snapshot /);
  expect(lines[0]).toMatch(problem);
  expect(r.stderr).not.toMatch(/\n\s+at /);
}

describe("bad snapshot files are refused", { timeout: 120_000 }, () => {
  it("the intact file opens, and `rvm snapshot info FILE` shows it", () => {
    SnapshotFile.open(base).close();
    const r = rvm("snapshot", "info", base);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("snapshot base");
  });

  it("truncated in the header", () => {
    refused(damaged((f) => truncateSync(f, 100)), /truncated/);
  });

  it("truncated in the metadata", () => {
    refused(damaged((f) => truncateSync(f, HEADER_SIZE + 10)), /truncated/);
  });

  it("truncated in the page data", () => {
    refused(damaged((f, b) => truncateSync(f, b.length - PAGE_SIZE - 100)), /truncated/);
  });

  it("a flipped byte in the metadata (checksum)", () => {
    refused(damaged((f) => flip(f, HEADER_SIZE + 20)), /corrupted.*checksum/);
  });

  it("a flipped byte in the page map's index (checksum) is refused at open", () => {
    const s = SnapshotFile.open(base);
    const mapOffset = s.header.mapOffset;
    s.close();
    refused(damaged((f) => flip(f, mapOffset + 8 + 4)), /corrupted.*checksum/);
  });

  it("a flipped byte in a page-map chunk is found when the chunk is first read", () => {
    const s = SnapshotFile.open(base);
    const mapOffset = s.header.mapOffset;
    const chunk = Number(readFileSync(base).readBigUInt64LE(mapOffset + 8)); // chunk 0's offset
    s.close();
    const f = damaged((file) => flip(file, chunk + 3));
    const opened = SnapshotFile.open(f); // the index is intact
    expect(() => opened.entry(0)).toThrow(/corrupted page map \(chunk 0/);
    opened.close();
  });

  it("the page map read whole (the eager restore's plan) says what it says entry by entry; a flipped chunk byte is still found", () => {
    const whole = SnapshotFile.open(base), single = SnapshotFile.open(base);
    const t = whole.table();
    const got: number[] = [], want: number[] = [];
    for (let p = 0; p < whole.pages; p++) {
      const e = single.entry(p);
      got.push(t.kind(p), t.ref(p), t.value(p), t.hashLo(p), t.hashHi(p));
      want.push(e.kind, e.ref, e.value, Number(e.hash & 0xffffffffn), Number(e.hash >> 32n));
    }
    expect(got).toEqual(want);
    expect(new Set(got.filter((_, i) => i % 5 === 0))).toEqual(new Set([PageKind.Zero, PageKind.Stored, PageKind.Same, PageKind.Disk]));
    whole.close();
    single.close();
    const chunk = Number(readFileSync(base).readBigUInt64LE(whole.header.mapOffset + 8)); // chunk 0's offset
    const opened = SnapshotFile.open(damaged((file) => flip(file, chunk + 3)));
    expect(() => opened.table()).toThrow(/corrupted page map \(chunk 0/);
    opened.close();
  });

  it("a foreign format version", () => {
    refused(damaged((f, b) => {
      b.writeUInt32LE(99, 8);
      writeFileSync(f, b);
    }), /version 99/);
  });

  it("not a snapshot at all", () => {
    const f = join(dir, "bad", "text.rvmsnap");
    writeFileSync(f, "this is not a snapshot\n".repeat(400));
    refused(f, /not an rvm snapshot/);
    const g = join(dir, "bad", "zeros.rvmsnap");
    writeFileSync(g, Buffer.alloc(3 * PAGE_SIZE));
    refused(g, /not an rvm snapshot/);
  });

  it("a missing file", () => {
    refused(join(dir, "bad", "nothing-here.rvmsnap"), /no such snapshot file/);
  });

  it("a flipped byte in a stored page: the file opens, the restore names the page", () => {
    const s = SnapshotFile.open(base);
    const page = 5;
    const e = s.entry(page);
    s.close();
    expect(e.kind).toBe(PageKind.Stored);
    const file = damaged((f) => flip(f, e.value + 1000));
    SnapshotFile.open(file).close(); // metadata and map are intact
    expect(rvm("snapshot", "info", file).code).toBe(0);

    const fresh = bareMachine(RAM, diskFile).machine;
    let err: unknown;
    try {
      restoreEager(fresh, store, file);
    } catch (x) {
      err = x;
    }
    expect(err).toBeInstanceOf(RestoreFailedError);
    const msg = (err as Error).message;
    expect(msg).toContain(`page ${page} `);
    expect(msg).toContain(`0x${(RAM_BASE + page * PAGE_SIZE).toString(16)}`);
    expect(msg).toMatch(/checksum mismatch/);
    expect(msg).not.toContain("\n");
  });

  it("a snapshot of a 256 MiB machine is refused by a 128 MiB one before anything changes", { timeout: 120_000 }, () => {
    const big = populated(256 << 20);
    const bigStore = new SnapshotStore(join(dir, "big"));
    try {
      saveSnapshot(big, bigStore, "big");
      const small = bareMachine(128 << 20).machine;
      small.core.ram.set(prngBytes(1 << 20, 5), 0);
      small.core.ram.fill(0x5a, 64 << 20, 65 << 20);
      small.core.pc = 0x8000_1234n;
      const ram = Buffer.from(small.core.ram);
      const hart = Buffer.from(small.core.hartState());
      const pages = Buffer.from(small.core.pages);
      let err: unknown;
      try {
        restoreEager(small, bigStore, bigStore.pathFor("big"));
      } catch (x) {
        err = x;
      }
      expect(err).toBeInstanceOf(SnapshotError);
      expect(err).not.toBeInstanceOf(RestoreFailedError);
      expect((err as Error).message).toMatch(/256 MiB.*128 MiB/);
      expect(Buffer.compare(Buffer.from(small.core.ram), ram)).toBe(0);
      expect(Buffer.compare(Buffer.from(small.core.hartState()), hart)).toBe(0);
      expect(Buffer.compare(Buffer.from(small.core.pages), pages)).toBe(0);
    } finally {
      bigStore.close();
    }
  });
});

describe("a snapshot of another machine's disks", { timeout: 120_000 }, () => {
  function refusedUntouched(target: Machine, problem: RegExp): void {
    target.core.ram.fill(0x44, 0, 1 << 20);
    const ram = Buffer.from(target.core.ram);
    const hart = Buffer.from(target.core.hartState());
    let err: unknown;
    try {
      restoreEager(target, store, base);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(SnapshotError);
    expect(err).not.toBeInstanceOf(RestoreFailedError);
    expect((err as Error).message).toMatch(problem);
    expect(Buffer.compare(Buffer.from(target.core.ram), ram)).toBe(0);
    expect(Buffer.compare(Buffer.from(target.core.hartState()), hart)).toBe(0);
  }

  it("is refused by a machine without that drive", () => {
    refusedUntouched(bareMachine(RAM).machine, /needs drive 0/);
  });

  it("is refused by a machine whose drive has another size", () => {
    const other = join(dir, "other-size.raw");
    writeFileSync(other, prngBytes(128 << 10, 3));
    refusedUntouched(bareMachine(RAM, other).machine, /drive 0 is 131072 bytes, was 65536/);
  });
});

describe("edge cases of the file layout", { timeout: 120_000 }, () => {
  it("a snapshot that stores no page at all (an unchanged machine saved again) opens and restores", () => {
    // Regression: with the map before the data, a file without data ended before the page-aligned
    // data offset and was refused as "truncated" (fixed by ab01991, which puts the map last).
    const s = new SnapshotStore(join(dir, "nodata"));
    try {
      const m = populated(RAM);
      saveSnapshot(m, s, "first");
      const again = saveSnapshot(m, s, "again");
      expect(again.stats.stored + again.stats.same + again.stats.disk).toBe(0);
      expect(again.stats.inherited).toBe(again.stats.pages);
      SnapshotFile.open(s.pathFor("again")).close();
      expect(s.list().map((l) => l.name)).toEqual(["first", "again"]);
      const back = bareMachine(RAM).machine;
      restoreEager(back, s, s.pathFor("again"));
      expect(Buffer.compare(Buffer.from(back.core.ram), Buffer.from(m.core.ram))).toBe(0);
      // An all-zero machine: nothing stored in a full save either.
      const empty = bareMachine(RAM).machine;
      const meta = saveSnapshot(empty, s, "empty");
      expect(meta.stats.zero).toBe(meta.stats.pages);
      SnapshotFile.open(s.pathFor("empty")).close();
    } finally {
      s.close();
    }
  });
});

describe("references between snapshots", { timeout: 120_000 }, () => {
  it("savevm of an existing name replaces it; the old file lives on hidden while the new one needs it", () => {
    const s = new SnapshotStore(join(dir, "replace"));
    try {
      const m = populated(RAM);
      const first = saveSnapshot(m, s, "tag");
      m.mem.write(GuestMemory.pageAddress(3), prngBytes(PAGE_SIZE, 333));
      const second = saveSnapshot(m, s, "tag");
      expect(second.refs.map((r) => r.id)).toEqual([first.id]);
      expect(s.list().map((l) => l.id)).toEqual([second.id]);
      expect(existsSync(join(s.dir, `.${first.id}.rvmsnap`))).toBe(true);
      const back = bareMachine(RAM).machine;
      restoreEager(back, s, s.pathFor("tag"));
      expect(Buffer.compare(Buffer.from(back.core.ram), Buffer.from(m.core.ram))).toBe(0);
      s.delete("tag");
      expect(readdirSync(s.dir).filter((f) => f.endsWith(".rvmsnap"))).toEqual([]);
    } finally {
      s.close();
    }
  });

  it("an incremental snapshot whose parent file is gone is refused before anything changes", () => {
    const s = new SnapshotStore(join(dir, "orphan"));
    try {
      const m = populated(RAM);
      const parent = saveSnapshot(m, s, "p");
      m.mem.write(GuestMemory.pageAddress(4), prngBytes(PAGE_SIZE, 444));
      const child = saveSnapshot(m, s, "c");
      expect(child.refs.map((r) => r.id)).toEqual([parent.id]);
      rmSync(s.pathFor("p")); // behind the store's back
      const target = bareMachine(RAM).machine;
      target.core.ram.fill(0x33, 0, 1 << 20);
      const ram = Buffer.from(target.core.ram);
      const hart = Buffer.from(target.core.hartState());
      let err: unknown;
      try {
        restoreEager(target, s, s.pathFor("c"));
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(RvmError);
      expect(err).not.toBeInstanceOf(RestoreFailedError);
      expect((err as Error).message).toContain(parent.id);
      expect((err as Error).message).toMatch(/missing/);
      expect(Buffer.compare(Buffer.from(target.core.ram), ram)).toBe(0);
      expect(Buffer.compare(Buffer.from(target.core.hartState()), hart)).toBe(0);
    } finally {
      s.close();
    }
  });

  it("a disk-backed page whose block was changed behind rvm's back is refused, naming the page", () => {
    const d = join(dir, "behind");
    mkdirSync(d);
    const disk = join(d, "disk.raw");
    writeFileSync(disk, prngBytes(64 << 10, 3));
    const s = new SnapshotStore(join(d, "snaps"));
    try {
      saveSnapshot(populated(RAM, disk), s, "x");
      // Someone edits the image while no rvm runs (not through the journal).
      const bytes = readFileSync(disk);
      bytes[2 * PAGE_SIZE + 7] ^= 1;
      writeFileSync(disk, bytes);
      let err: unknown;
      try {
        restoreEager(bareMachine(RAM, disk).machine, s, s.pathFor("x"));
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(RestoreFailedError);
      expect((err as Error).message).toMatch(/page 12 .*disk block changed/);
    } finally {
      s.close();
    }
  });
});

describe("one store, several machines", { timeout: 120_000 }, () => {
  // Regression: the store once kept a drive's journal bound to the first machine's disk, so a
  // restore into another machine failed after the first had ended ("disk image is closed").
  // SnapshotStore.journal now reopens the journal for the caller's disk.
  it("a snapshot restores into a new machine after the machine that saved it has ended", () => {
    const d = join(dir, "ended");
    mkdirSync(d);
    const disk = join(d, "disk.raw");
    writeFileSync(disk, prngBytes(64 << 10, 3));
    const atSave = readFileSync(disk);
    const s = new SnapshotStore(join(d, "snaps"));
    try {
      const a = populated(RAM, disk);
      saveSnapshot(a, s, "x");
      const drv = a.drives[0];
      drv.beforeWrite!(0, PAGE_SIZE); // a guest write after savevm, as virtio-blk makes it
      drv.disk.write(Buffer.alloc(PAGE_SIZE, 0xee), 0);
      for (const f of a.onExit) f(); // the machine ends (poweroff): its disk is closed
      const b = bareMachine(RAM, disk).machine;
      restoreEager(b, s, s.pathFor("x"));
      expect(readFileSync(disk).equals(atSave)).toBe(true);
      expect(Buffer.compare(Buffer.from(b.core.ram), Buffer.from(a.core.ram))).toBe(0);
    } finally {
      s.close();
    }
  });
});

describe("a savevm that cannot write", { timeout: 120_000 }, () => {
  const tmpFiles = (d: string) => (existsSync(d) ? readdirSync(d).filter((f) => f.includes(".tmp")) : []);

  it("a save in progress is invisible: a temp file until the rename, the old snapshot of that name meanwhile", () => {
    const s = new SnapshotStore(join(dir, "atomic"));
    try {
      const m = populated(RAM);
      const old = saveSnapshot(m, s, "n");
      m.mem.write(GuestMemory.pageAddress(6), prngBytes(PAGE_SIZE, 666));
      const seen: { tmp: string[]; listed: string[] }[] = [];
      const meta = saveSnapshot(m, s, "n", () => {
        seen.push({ tmp: tmpFiles(s.dir), listed: s.list().map((l) => l.id) });
      });
      expect(seen.length).toBeGreaterThan(0);
      for (const v of seen) {
        expect(v.tmp).toHaveLength(1);
        expect(v.listed).toEqual([old.id]);
      }
      expect(tmpFiles(s.dir)).toEqual([]);
      expect(s.list().map((l) => l.id)).toEqual([meta.id]);
    } finally {
      s.close();
    }
  });

  it("into a directory that cannot exist (its parent is a file): an RvmError, nothing left, the VM runs on", async () => {
    const m = populated(RAM);
    const parent = join(dir, "a-file");
    writeFileSync(parent, "not a directory\n");
    const bad = new SnapshotStore(join(parent, "snaps"));
    const before = readdirSync(dir).sort();
    let err: unknown;
    try {
      saveSnapshot(m, bad, "x");
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(RvmError);
    expect((err as Error).message).toContain(join(parent, "snaps"));
    expect((err as Error).message).toMatch(/ENOTDIR/);
    expect((err as Error).message).not.toContain("\n");
    expect(readdirSync(dir).sort()).toEqual(before);
    expect(readFileSync(parent, "utf8")).toBe("not a directory\n");

    // The VM keeps working: the loop counts in a0.
    const a0 = m.core.x(10);
    const r = await m.run({ instructions: 1000, timeoutMs: 60_000 });
    expect(r.reason).toBe("budget");
    expect(m.core.x(10)).toBe(a0 + 500n);
    // And a save to a good place works afterwards.
    const good = new SnapshotStore(join(dir, "good"));
    saveSnapshot(m, good, "x");
    const back = bareMachine(RAM).machine;
    restoreEager(back, good, good.pathFor("x"));
    expect(Buffer.compare(Buffer.from(back.core.ram), Buffer.from(m.core.ram))).toBe(0);
    good.close();
  });

  it("when the snapshot's file cannot be created (a directory is in the way): an RvmError, no temp file, the VM runs on", async () => {
    const m = populated(RAM);
    const s = new SnapshotStore(join(dir, "blocked"));
    mkdirSync(s.pathFor("x"), { recursive: true });
    let err: unknown;
    try {
      saveSnapshot(m, s, "x");
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(RvmError);
    expect((err as Error).message).toMatch(/savevm x: cannot write .*x\.rvmsnap/);
    expect((err as Error).message).not.toContain("\n");
    expect(tmpFiles(s.dir)).toEqual([]);
    expect(s.list()).toEqual([]);

    const a0 = m.core.x(10);
    await m.run({ instructions: 1000, timeoutMs: 60_000 });
    expect(m.core.x(10)).toBe(a0 + 500n);
    // The failed save did not start a new dirty epoch: a later save under another name is full
    // and restores to exactly this state.
    const meta = saveSnapshot(m, s, "y");
    expect(meta.stats.inherited).toBe(0);
    const back = bareMachine(RAM).machine;
    restoreEager(back, s, s.pathFor("y"));
    expect(Buffer.compare(Buffer.from(back.core.ram), Buffer.from(m.core.ram))).toBe(0);
    expect(Buffer.compare(Buffer.from(back.core.hartState()), Buffer.from(m.core.hartState()))).toBe(0);
    s.close();
  });
});

describe("rvm snapshot ls | info | rm", { timeout: 120_000 }, () => {
  it("lists, describes and removes the snapshots of a directory", () => {
    const d = join(dir, "cli");
    const s = new SnapshotStore(d);
    const m = populated(RAM, diskFile);
    saveSnapshot(m, s, "one");
    saveSnapshot(m, s, "two");
    s.close();

    let r = rvm("snapshot", "ls", "--dir", d);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^ID\s+TAG\s+SIZE\s+DATE\s+VM CLOCK/);
    expect(r.stdout).toMatch(/\n1\s+one\s/);
    expect(r.stdout).toMatch(/\n2\s+two\s/);

    r = rvm("snapshot", "info", "one", "--dir", d);
    expect(r.code).toBe(0);
    expect(r.stderr).toBe("");
    for (const label of ["zero", "disk-backed", "same-as", "stored", "of RAM", "zero-skipping"]) expect(r.stdout).toContain(label);
    expect(r.stdout).toMatch(/disk-backed\s+1\s/);
    expect(r.stdout).toMatch(/same-as\s+1\s/);
    expect(r.stdout).toMatch(/stored\s+9\s/);

    r = rvm("snapshot", "info", "nosuch", "--dir", d);
    expect(r.code).toBe(1);
    expect(r.stderr.trimEnd().split("\n")).toHaveLength(1);
    expect(r.stderr).toMatch(/^rvm: no snapshot named "nosuch"/);

    endMachines(); // rm locks the disk its journal belongs to: this process lets go of it
    r = rvm("snapshot", "rm", "one", "--dir", d);
    expect(r.code).toBe(0);
    expect(existsSync(join(d, "one.rvmsnap"))).toBe(false);
    r = rvm("snapshot", "ls", "--dir", d);
    expect(r.stdout).not.toMatch(/\bone\b/);
    expect(r.stdout).toMatch(/\n1\s+two\s/);

    r = rvm("snapshot", "rm", "two", "--dir", d);
    expect(r.code).toBe(0);
    r = rvm("snapshot", "ls", "--dir", d);
    expect(r.stdout).toBe("There is no snapshot available.\n");
    expect(readdirSync(d).filter((f) => f.endsWith(".rvmsnap"))).toEqual([]);
  });
});
