// `rvm snapshot check | info | ls` (issue 9): check verifies every page, the page map, the
// parents, the journal and the disk references, exits 1 naming the first problem and changes no
// file; info tells the size with what the snapshot depends on; ls says which files it skipped
// and refuses a missing image or directory.

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createHash } from "node:crypto";
import { cpSync, readdirSync, readFileSync, renameSync, rmSync, truncateSync, writeFileSync } from "node:fs";
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { ROOT } from "../helpers.js";
import { PAGE_SIZE } from "../../src/core.js";
import { GuestMemory } from "../../src/memory.js";
import { RawDisk } from "../../src/devices/disk.js";
import { saveSnapshot } from "../../src/snapshot/save.js";
import { SnapshotStore } from "../../src/snapshot/store.js";
import { SnapshotFile } from "../../src/snapshot/format.js";
import { JOURNAL_RECORD_HEADER } from "../../src/snapshot/journal.js";
import { cleanup, endMachines, freshDir, populated, prngBytes } from "./util.js";

const RAM = 16 << 20;
let base: string; // a directory with disk.raw and snaps/ holding "p" and its incremental child "c"

function rvm(...args: string[]) {
  const r = spawnSync(process.execPath, [join(ROOT, "bin/rvm.js"), ...args], { encoding: "utf8", timeout: 90_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

beforeAll(() => {
  base = freshDir("check");
  const disk = join(base, "disk.raw");
  writeFileSync(disk, prngBytes(64 << 10, 3));
  const store = new SnapshotStore(join(base, "snaps"));
  const m = populated(RAM, disk);
  saveSnapshot(m, store, "p");
  m.mem.write(GuestMemory.pageAddress(3), prngBytes(PAGE_SIZE, 333));
  const d = m.drives[0];
  d.beforeWrite!(0, PAGE_SIZE); // a guest write after the first snapshot: a journal entry
  d.disk.write(Buffer.alloc(PAGE_SIZE, 0xee), 0);
  saveSnapshot(m, store, "c");
  store.close();
  endMachines();
}, 60_000);
afterAll(cleanup);

/** A copy of the base setup (for listings: the snapshots in it still name the original disk). */
function copy(): { snaps: string; disk: string } {
  const dir = freshDir("ck");
  cpSync(base, dir, { recursive: true });
  return { snaps: join(dir, "snaps"), disk: join(dir, "disk.raw") };
}

/** The file offset of a stored page's bytes. */
function storedAt(file: string, page: number): number {
  const s = SnapshotFile.open(file);
  try {
    return s.entry(page).value;
  } finally {
    s.close();
  }
}

/** Hashes of every file under a directory (check must change none). */
function tree(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const f of readdirSync(dir, { recursive: true }) as string[]) {
    try {
      out[f] = createHash("sha256").update(readFileSync(join(dir, f))).digest("hex");
    } catch {
      // a directory
    }
  }
  return out;
}

describe("rvm snapshot check", { timeout: 180_000 }, () => {
  it("passes a sound snapshot and its incremental child, naming what it checked, changing nothing", () => {
    const before = tree(base);
    let r = rvm("snapshot", "check", "c", "--dir", join(base, "snaps"));
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^snapshot c: OK/);
    expect(r.stdout).toMatch(/pages\s+4096 checked: \d+ zero, 1 disk-backed, 1 same-as, \d+ stored \(\d+ of those in 1 parent file\)/);
    expect(r.stdout).toMatch(/journal\s+.*drive0-disk\.raw\.journal: \d+ records/);
    r = rvm("snapshot", "check", "p", join(base, "disk.raw"), "--dir", join(base, "snaps"));
    expect(r.code, r.stderr).toBe(0);
    expect(tree(base)).toEqual(before);
  });

  // Each damage is made to the base setup and undone after (the snapshots name the disk by its path).
  const cases: { name: string; damage(): () => void; problem: RegExp }[] = [
    {
      name: "a stored page",
      damage: () => flipIn(join(base, "snaps", "p.rvmsnap"), storedAt(join(base, "snaps", "p.rvmsnap"), 6) + 10),
      problem: /^rvm: snapshot check c: page 6 \(guest-physical 0x80006000\): checksum mismatch in the snapshot data$/,
    },
    {
      name: "a page-map chunk",
      damage: () => {
        const f = join(base, "snaps", "c.rvmsnap");
        const s = SnapshotFile.open(f);
        const at = Number(readFileSync(f).readBigUInt64LE(s.header.mapOffset + 8)) + 5;
        s.close();
        return flipIn(f, at);
      },
      problem: /^rvm: snapshot check c: corrupted page map \(chunk 0/,
    },
    {
      name: "the parent file",
      damage: () => {
        const f = join(base, "snaps", "p.rvmsnap");
        renameSync(f, f + ".away");
        return () => renameSync(f + ".away", f);
      },
      problem: /^rvm: snapshot check c: snapshot [0-9a-f]+ that another snapshot refers to is missing/,
    },
    {
      name: "a journal record",
      damage: () => {
        const j = join(base, "snaps", "drive0-disk.raw.journal");
        return flipIn(j, readFileSync(j).length - 50);
      },
      problem: /^rvm: snapshot check c: .*drive0-disk\.raw\.journal: corrupted journal record at byte \d+/,
    },
    {
      name: "the journal, cut at a record boundary",
      damage: () => {
        const j = join(base, "snaps", "drive0-disk.raw.journal");
        const keep = readFileSync(j);
        truncateSync(j, keep.length - (JOURNAL_RECORD_HEADER + PAGE_SIZE));
        return () => writeFileSync(j, keep);
      },
      problem: /^rvm: snapshot check c: .*journal: truncated journal/,
    },
    {
      name: "a disk block behind rvm's back",
      damage: () => flipIn(join(base, "disk.raw"), 2 * PAGE_SIZE + 9),
      problem: /^rvm: snapshot check c: page 12 \(guest-physical 0x8000c000\): its disk block changed or is unreadable$/,
    },
    {
      name: "the disk image",
      damage: () => {
        const f = join(base, "disk.raw");
        renameSync(f, f + ".away");
        return () => renameSync(f + ".away", f);
      },
      problem: /^rvm: snapshot check c: drive 0: its image .*disk\.raw is missing$/,
    },
    {
      name: "the disk's size",
      damage: () => {
        const f = join(base, "disk.raw");
        const keep = readFileSync(f);
        writeFileSync(f, Buffer.concat([keep, Buffer.alloc(PAGE_SIZE)]));
        return () => writeFileSync(f, keep);
      },
      problem: /^rvm: snapshot check c: drive 0: .*disk\.raw is 69632 bytes, was 65536 at savevm$/,
    },
  ];
  for (const c of cases) {
    it(`names the first problem, one line, exit 1: ${c.name}`, () => {
      const undo = c.damage();
      try {
        const before = tree(base);
        const r = rvm("snapshot", "check", "c", "--dir", join(base, "snaps"));
        expect(r.code, r.stdout + r.stderr).toBe(1);
        expect(r.stdout).toBe("");
        expect(r.stderr.trimEnd().split("\n"), r.stderr).toHaveLength(1);
        expect(r.stderr.trimEnd()).toMatch(c.problem);
        expect(tree(base)).toEqual(before);
      } finally {
        undo();
      }
      expect(rvm("snapshot", "check", "c", "--dir", join(base, "snaps")).code).toBe(0);
    });
  }

  it("is refused while a VM writes the disk (the image is locked shared)", () => {
    const d = RawDisk.open(join(base, "disk.raw")); // this process writes it
    try {
      const r = rvm("snapshot", "check", "c", "--dir", join(base, "snaps"));
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/Failed to get shared "write" lock/);
    } finally {
      d.close();
    }
  });
});

function flipIn(file: string, offset: number): () => void {
  const keep = readFileSync(file);
  const b = Buffer.from(keep);
  b[offset] ^= 0x20;
  writeFileSync(file, b);
  return () => writeFileSync(file, keep);
}

describe("rvm snapshot info and ls", { timeout: 120_000 }, () => {
  it("info tells the size with the parents and the journal the snapshot needs", () => {
    const snaps = join(base, "snaps");
    const size = (f: string) => readFileSync(join(snaps, f)).length;
    const r = rvm("snapshot", "info", "c", "--dir", snaps);
    expect(r.code, r.stderr).toBe(0);
    const m = /needs\s+([\d.]+) (KiB|MiB) on disk: this file ([\d.]+) KiB \+ 1 parent file ([\d.]+) KiB \+ disk journal ([\d.]+) KiB/.exec(r.stdout);
    expect(m, r.stdout).not.toBeNull();
    expect(Number(m![3])).toBeCloseTo(size("c.rvmsnap") / 1024, 1);
    expect(Number(m![4])).toBeCloseTo(size("p.rvmsnap") / 1024, 1);
    expect(Number(m![5])).toBeCloseTo(size("drive0-disk.raw.journal") / 1024, 1);
  });

  it("ls says which files it skipped; a missing image or directory is an error", () => {
    const { snaps, disk } = copy();
    writeFileSync(join(snaps, "junk.rvmsnap"), "not a snapshot at all, but named like one\n".repeat(200));
    let r = rvm("snapshot", "ls", "--dir", snaps);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/\n1\s+p\s/);
    expect(r.stdout).toMatch(/\n2\s+c\s/);
    expect(r.stderr).toMatch(/^rvm: skipped .*junk\.rvmsnap: not an rvm snapshot\n$/);
    r = rvm("snapshot", "ls", join(snaps, "..", "nosuch.img"));
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^rvm: .*nosuch\.img: no such file\n$/);
    r = rvm("snapshot", "ls", "--dir", join(snaps, "nosuch"));
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^rvm: --dir .*nosuch: no such directory\n$/);
    // An image without snapshots yet: nothing to list, no error.
    rmSync(snaps, { recursive: true });
    r = rvm("snapshot", "ls", disk);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe("There is no snapshot available.\n");
  });
});
