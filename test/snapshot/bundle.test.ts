// Snapshot archives (NAME.rvmsnap.zip, src/snapshot/bundle.ts): what `rvm snapshot export`
// writes, `rvm snapshot import` unpacks into a directory that restores as it is, disk-backed
// pages included; archives that are not ours, or would write outside their directory, are refused.

import { afterAll, afterEach, describe, expect, it } from "vitest";
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { zipSync } from "fflate";
import { ROOT } from "../helpers.js";
import { GuestMemory } from "../../src/memory.js";
import { saveSnapshot } from "../../src/snapshot/save.js";
import { restoreEager } from "../../src/snapshot/restore.js";
import { defaultSnapshotDir, SnapshotStore } from "../../src/snapshot/store.js";
import { configWithImages, importBundle } from "../../src/snapshot/bundle.js";
import { SnapshotFile } from "../../src/snapshot/format.js";
import { bareMachine, cleanup, diskCopy, endMachines, freshDir, populated } from "./util.js";

afterEach(endMachines);
afterAll(cleanup);

const rvm = (...args: string[]) => spawnSync(process.execPath, [join(ROOT, "bin/rvm.js"), ...args], { encoding: "utf8", timeout: 60_000 });

describe("snapshot archives", () => {
  it("export, import elsewhere, restore there: the same RAM, disk-backed pages from the copied disk", () => {
    const dir = freshDir();
    const disk = diskCopy(dir);
    const m = populated(16 << 20, disk);
    const store = new SnapshotStore(defaultSnapshotDir({ drives: [{ file: disk }] }));
    saveSnapshot(m, store, "b1");
    store.close();
    const pages = [0, 1, 10, 11, 12].map((p) => m.mem.read(GuestMemory.pageAddress(p), 4096).slice());
    endMachines(); // a VM writing the image keeps export off it (the image's lock)

    const out = join(dir, "b1.rvmsnap.zip");
    const exp = rvm("snapshot", "export", "b1", disk, "-o", out);
    expect(exp.status, exp.stderr).toBe(0);
    expect(exp.stdout).toMatch(/^exported b1 to .*b1\.rvmsnap\.zip \(/);
    const other = join(dir, "elsewhere");
    const imp = rvm("snapshot", "import", out, other);
    expect(imp.status, imp.stderr).toBe(0);
    expect(imp.stdout).toContain(`restore it: rvm restore b1 `);
    expect(existsSync(join(other, "disk.img.snapshots", "b1.rvmsnap"))).toBe(true);
    expect(existsSync(join(other, "disk.img.snapshots", "drive0-disk.img.journal"))).toBe(true);
    expect(rvm("snapshot", "check", "b1", join(other, "disk.img")).status).toBe(0);

    // Restored onto the unpacked disk (drive 0 mapped as rvm restore NAME GUEST does).
    const file = join(other, "disk.img.snapshots", "b1.rvmsnap");
    const snap = SnapshotFile.open(file);
    const config = configWithImages(snap.meta, [{ index: 0, file: join(other, "disk.img") }]) as { drives: { file: string }[] };
    snap.close();
    expect(config.drives[0].file).toBe(join(other, "disk.img"));
    const back = bareMachine(16 << 20, join(other, "disk.img")).machine;
    const otherStore = new SnapshotStore(join(other, "disk.img.snapshots"));
    restoreEager(back, otherStore, file);
    otherStore.close();
    [0, 1, 10, 11, 12].forEach((p, i) => expect(back.mem.read(GuestMemory.pageAddress(p), 4096)).toEqual(pages[i]));

    // Importing again into the same place would overwrite: refused.
    const again = rvm("snapshot", "import", out, other);
    expect(again.status).not.toBe(0);
    expect(again.stderr.trim().split("\n")).toHaveLength(1);
    expect(again.stderr).toMatch(/exists already/);
  });

  it("refuses what is not an rvm archive, in one line", () => {
    const dir = freshDir();
    const garbage = join(dir, "x.rvmsnap.zip");
    writeFileSync(garbage, "not a zip at all");
    const r = rvm("snapshot", "import", garbage, join(dir, "x"));
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/^rvm: .*not a zip archive/);
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
    expect(() => importBundle(zipSync({ "a.txt": new Uint8Array(1) }), join(dir, "y"))).toThrow(/no rvm-bundle.json/);
    const manifest = new TextEncoder().encode(JSON.stringify({ format: "rvm-snapshot-bundle", version: 1, snapshot: "s", dir: "d", disks: [] }));
    const evil = zipSync({ "rvm-bundle.json": manifest, "d/s.rvmsnap": new Uint8Array(8), "../../escape": new Uint8Array(1) });
    expect(() => importBundle(evil, join(dir, "z"))).toThrow(/points outside/);
    expect(existsSync(join(dir, "escape"))).toBe(false);
    expect(readFileSync(garbage, "utf8")).toBe("not a zip at all");
  });
});
