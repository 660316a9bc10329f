// A failed restore leaves the disk exactly as it was before the restore began (issue 9): for
// every class of failure — a bad header, bad metadata, a damaged page-map chunk, damaged page
// data, a damaged or truncated journal, a disk block changed behind rvm's back — and every way
// to restore — in-process lazy and eager, `rvm restore` lazy and eager, `rvm run ... -loadvm` —
// the disk's hash and the journal's records are the same before and after, and the error is one
// line. The lazy restores meet the damaged page after the guest started (and, in-process, after
// it wrote to the disk); the snapshot restores correctly once the damage is repaired.

import { afterAll, describe, expect, it } from "vitest";
import { createHash } from "node:crypto";
import { readFileSync, truncateSync, writeFileSync } from "node:fs";
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { ROOT } from "../helpers.js";
import { PAGE_SIZE } from "../../src/core.js";
import { RvmError } from "../../src/errors.js";
import { saveSnapshot } from "../../src/snapshot/save.js";
import { restoreEager, RestoreFailedError } from "../../src/snapshot/restore.js";
import { LazyOptions, LazyRestore } from "../../src/snapshot/restore-lazy.js";
import { SnapshotStore } from "../../src/snapshot/store.js";
import { HEADER_SIZE, SnapshotFile } from "../../src/snapshot/format.js";
import { JOURNAL_HEAD_SIZE, JOURNAL_RECORD_HEADER } from "../../src/snapshot/journal.js";
import { bareMachine, cleanup, freshDir, populated, prngBytes } from "./util.js";

afterAll(cleanup);

const RAM = 16 << 20;
const sha = (file: string) => createHash("sha256").update(readFileSync(file)).digest("hex");

interface Scenario {
  disk: string;
  snaps: string;
  file: string;
  journal: string;
  /** The disk as it was when the snapshot was taken. */
  atSave: Buffer;
}

/**
 * A disk, a snapshot of a machine using it, and guest writes to blocks 0 and 5 after it (none
 * with `writesAfter` false: the restore's revert then has nothing to rewrite and writes nothing).
 */
function scenario(writesAfter = true): Scenario {
  const d = freshDir("rf");
  const disk = join(d, "disk.raw");
  writeFileSync(disk, prngBytes(64 << 10, 3));
  const store = new SnapshotStore(join(d, "snaps"));
  const m = populated(RAM, disk);
  saveSnapshot(m, store, "s");
  const atSave = readFileSync(disk);
  const drive = m.drives[0];
  for (const b of writesAfter ? [0, 5] : []) {
    drive.beforeWrite!(b * PAGE_SIZE, PAGE_SIZE); // as virtio-blk writes: journal first
    drive.disk.write(Buffer.alloc(PAGE_SIZE, 0xe0 + b), b * PAGE_SIZE);
  }
  for (const f of m.onExit) f(); // the machine ends: its disk is closed
  store.close();
  return { disk, snaps: store.dir, file: store.pathFor("s"), journal: join(store.dir, "drive0-disk.raw.journal"), atSave };
}

function flip(file: string, offset: number): void {
  const b = readFileSync(file);
  b[offset] ^= 0x40;
  writeFileSync(file, b);
}

/** A failure class: how to damage a scenario, what the error says, whether it is met before anything changes. */
interface Damage {
  name: string;
  damage(s: Scenario): void;
  problem: RegExp;
  /** Found while opening (before any change), or only while pages come in. */
  early: boolean;
}

const damages: Damage[] = [
  { name: "bad header", damage: (s) => flip(s.file, 8), problem: /format version/, early: true },
  { name: "bad metadata", damage: (s) => flip(s.file, HEADER_SIZE + 20), problem: /corrupted \(metadata checksum mismatch\)/, early: true },
  {
    name: "a damaged page-map chunk",
    damage: (s) => {
      const f = SnapshotFile.open(s.file);
      const chunk = Number(readFileSync(s.file).readBigUInt64LE(f.header.mapOffset + 8));
      f.close();
      flip(s.file, chunk + 3);
    },
    problem: /corrupted page map \(chunk 0/,
    early: false,
  },
  {
    name: "damaged page data",
    damage: (s) => {
      const f = SnapshotFile.open(s.file);
      const e = f.entry(5);
      f.close();
      flip(s.file, e.value + 1000);
    },
    problem: /page 5 .*checksum mismatch in the snapshot data/,
    early: false,
  },
  {
    name: "a damaged journal record",
    damage: (s) => flip(s.journal, readFileSync(s.journal).length - 100),
    problem: /journal: corrupted journal record at byte \d+/,
    early: true,
  },
  {
    name: "a truncated journal",
    damage: (s) => truncateSync(s.journal, readFileSync(s.journal).length - (JOURNAL_RECORD_HEADER + PAGE_SIZE)),
    problem: /journal: truncated journal/,
    early: true,
  },
  {
    name: "a disk block changed behind rvm's back",
    damage: (s) => {
      const b = readFileSync(s.disk);
      b[2 * PAGE_SIZE + 7] ^= 1; // block 2: page 12 mirrors it
      writeFileSync(s.disk, b);
    },
    problem: /page 12 .*disk block changed/,
    early: false,
  },
];

/** What must not change: the disk's bytes and the journal's records. */
function state(s: Scenario) {
  return { disk: sha(s.disk), journal: createHash("sha256").update(readFileSync(s.journal).subarray(JOURNAL_HEAD_SIZE)).digest("hex") };
}

function rvm(...args: string[]) {
  const r = spawnSync(process.execPath, [join(ROOT, "bin/rvm.js"), ...args], { encoding: "utf8", timeout: 90_000 });
  return { code: r.status, stderr: r.stderr };
}

function oneLineRefusal(r: { code: number | null; stderr: string }, problem: RegExp): void {
  expect(r.code, r.stderr).toBe(1);
  const lines = r.stderr.trimEnd().split("\n");
  expect(lines, r.stderr).toHaveLength(1);
  expect(lines[0]).toMatch(/^rvm: /);
  expect(lines[0]).toMatch(problem);
}

/**
 * In-process lazy restore: the guest runs and writes to the disk before the fetcher's failure is
 * acted on (with the fetcher on its own thread, or in turns on the hart's thread).
 */
async function lazyInProcess(s: Scenario, d: Damage, opts: LazyOptions): Promise<void> {
  const m = bareMachine(RAM, s.disk).machine;
  const store = new SnapshotStore(s.snaps);
  let r: LazyRestore | undefined;
  try {
    r = new LazyRestore(m, store, s.file, opts);
  } catch (e) {
    expect(d.early).toBe(true);
    expect(e).not.toBeInstanceOf(RestoreFailedError);
    expect((e as Error).message).toMatch(d.problem);
    for (const f of m.onExit) f();
    return;
  }
  expect(d.early).toBe(false);
  // The guest runs a while before the background fetcher gets a turn, so the damage is met
  // after it started (the damaged map chunk is met at its first instruction fetch already).
  const fetcher = r.background;
  r.background = () => undefined;
  let first: unknown;
  try {
    await m.run({ instructions: 1000, timeoutMs: 60_000 });
  } catch (e) {
    first = e;
  }
  if (first === undefined) {
    expect(m.core.instret).toBeGreaterThan(0n);
    // The restored guest writes block 7 (through the journal, as virtio-blk does).
    m.beforeDiskWrite(0, 7 * PAGE_SIZE, PAGE_SIZE);
    m.drives[0].disk.write(Buffer.alloc(PAGE_SIZE, 0x77), 7 * PAGE_SIZE);
    r.background = fetcher;
    await expect(m.run({ timeoutMs: 60_000 })).rejects.toThrow(d.problem);
  } else {
    expect(d.name).toBe("a damaged page-map chunk");
    expect(first).toBeInstanceOf(RestoreFailedError);
    expect((first as Error).message).toMatch(d.problem);
  }
  expect(r.complete).toBe(false);
  expect(() => m.beforeDiskWrite(0, 0, PAGE_SIZE)).toThrow(RestoreFailedError); // the failed VM writes nothing more
  store.close();
  for (const f of m.onExit) f();
}

const modes: { name: string; run(s: Scenario, d: Damage): Promise<void> | void }[] = [
  {
    name: "in-process eager",
    run(s, d) {
      const m = bareMachine(RAM, s.disk).machine;
      let err: unknown;
      try {
        restoreEager(m, new SnapshotStore(s.snaps), s.file);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(RvmError);
      expect((err as Error).message).toMatch(d.problem);
      expect((err as Error).message).not.toContain("\n");
      for (const f of m.onExit) f();
    },
  },
  { name: "in-process lazy, the guest running and writing to the disk", run: (s, d) => lazyInProcess(s, d, {}) },
  {
    name: "in-process lazy, the fetcher taking turns on the hart's thread (no shared memory: a browser page)",
    run: (s, d) => lazyInProcess(s, d, { fetcherThread: false }),
  },
  { name: "rvm restore (lazy)", run: (s, d) => oneLineRefusal(rvm("restore", "s", "--dir", s.snaps, "--timeout", "60"), d.problem) },
  { name: "rvm restore --restore eager", run: (s, d) => oneLineRefusal(rvm("restore", "s", "--dir", s.snaps, "--restore", "eager", "--timeout", "60"), d.problem) },
  {
    name: "rvm run -loadvm",
    run: (s, d) => oneLineRefusal(rvm("run", "-m", "16M", "-bios", "none", "-drive", `file=${s.disk},format=raw`,
      "--snapshot-dir", s.snaps, "-loadvm", "s", "--timeout", "60"), d.problem),
  },
];

describe("a failed restore leaves the disk as it was", { timeout: 180_000 }, () => {
  for (const d of damages) {
    for (const mode of modes) {
      it(`${d.name}: ${mode.name}`, async () => {
        const s = scenario();
        d.damage(s);
        const before = state(s);
        await mode.run(s, d);
        expect(state(s)).toEqual(before);
      });
    }
  }

  it("no block changed since the save: the revert writes nothing, and the failed restore still takes the guest's writes back", async () => {
    for (const d of damages.filter((x) => x.name === "damaged page data")) {
      for (const opts of [{}, { fetcherThread: false }]) {
        const s = scenario(false);
        d.damage(s);
        const before = state(s);
        await lazyInProcess(s, d, opts); // the guest writes block 7 before the failure is met
        expect(state(s)).toEqual(before);
        expect(readFileSync(s.disk).equals(s.atSave)).toBe(true);
      }
    }
  });

  it("the snapshot still restores correctly once the damage is repaired", () => {
    for (const d of damages.filter((x) => !x.early)) {
      const s = scenario();
      const file = readFileSync(s.file);
      const disk = readFileSync(s.disk);
      d.damage(s);
      const m = bareMachine(RAM, s.disk).machine;
      expect(() => restoreEager(m, new SnapshotStore(s.snaps), s.file)).toThrow(d.problem);
      for (const f of m.onExit) f();
      writeFileSync(s.file, file);
      writeFileSync(s.disk, disk);
      const ok = bareMachine(RAM, s.disk).machine;
      const store = new SnapshotStore(s.snaps);
      restoreEager(ok, store, s.file);
      for (const f of ok.onExit) f();
      store.close();
      expect(readFileSync(s.disk).equals(s.atSave)).toBe(true);
    }
  });
});
