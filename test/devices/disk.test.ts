// Raw disk images: positioned I/O on the file, QEMU's sector rounding, one-line errors; the
// temporary overlay of -snapshot.

import { afterAll, describe, expect, it } from "vitest";
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { OverlayDisk, RawDisk } from "../../src/devices/disk.js";
import { ImageError } from "../../src/errors.js";

const dir = mkdtempSync(join(tmpdir(), "rvm-disk-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function image(name: string, bytes: Uint8Array | number): string {
  const file = join(dir, name);
  writeFileSync(file, typeof bytes === "number" ? new Uint8Array(bytes) : bytes);
  return file;
}

describe("raw disk image", () => {
  it("reads and writes in place, and flushes to the file", () => {
    const file = image("rw.img", 4096);
    const d = RawDisk.open(file);
    expect(d.size).toBe(4096);
    expect(d.readOnly).toBe(false);
    d.write(Uint8Array.of(1, 2, 3), 1000);
    d.flush();
    const buf = new Uint8Array(4);
    d.read(buf, 999);
    expect([...buf]).toEqual([0, 1, 2, 3]);
    d.close();
    expect([...readFileSync(file).subarray(1000, 1003)]).toEqual([1, 2, 3]);
  });

  it("rounds a size that is not a multiple of 512 up, reading the tail as zeros (as QEMU)", () => {
    const file = image("odd.img", new Uint8Array(700).fill(0xee));
    const d = RawDisk.open(file);
    expect(d.size).toBe(1024);
    const buf = new Uint8Array(512).fill(0x11);
    d.read(buf, 512);
    expect(buf[187]).toBe(0xee);
    expect(buf[188]).toBe(0);
    expect(buf[511]).toBe(0);
    d.close();
  });

  it("gives one-line errors for missing files and directories", () => {
    expect(() => RawDisk.open(join(dir, "nope.img"))).toThrow(ImageError);
    expect(() => RawDisk.open(join(dir, "nope.img"))).toThrow(/nope\.img: no such file/);
    expect(() => RawDisk.open(dir)).toThrow(/is a directory|not a regular file/);
  });

  it("opens read-only on request and refuses writes", () => {
    const file = image("ro.img", 512);
    const d = RawDisk.open(file, { readOnly: true });
    expect(d.readOnly).toBe(true);
    expect(() => d.write(new Uint8Array(1), 0)).toThrow(/read-only/);
    d.close();
  });

  it.skipIf(process.getuid?.() === 0)("falls back to read-only for an unwritable image only when asked", () => {
    const file = image("locked.img", 512);
    chmodSync(file, 0o444);
    expect(() => RawDisk.open(file)).toThrow(/cannot open for writing.*read-only/);
    const d = RawDisk.open(file, { readOnlyFallback: true });
    expect(d.readOnly).toBe(true);
    d.close();
  });
});

describe("temporary overlay (QEMU's -snapshot)", () => {
  const pattern = (n: number) => Uint8Array.from({ length: n }, (_, i) => (i * 7 + 3) & 0xff);

  it("reads the image until a sector is written, then the overlay; the image never changes", () => {
    const base = pattern(8 * 512);
    const file = image("overlay-base.img", base);
    chmodSync(file, 0o444); // a file the user cannot write is fine
    const d = new OverlayDisk(RawDisk.open(file, { readOnly: true }), dir);
    expect(d.size).toBe(base.length);
    expect(d.readOnly).toBe(false);
    d.write(new Uint8Array(1024).fill(0xaa), 512); // sectors 1 and 2
    d.write(new Uint8Array(512).fill(0xbb), 3 * 512); // sector 3
    const all = new Uint8Array(base.length);
    d.read(all, 0); // runs: image, overlay (1..3), image
    const want = base.slice();
    want.fill(0xaa, 512, 1536);
    want.fill(0xbb, 1536, 2048);
    expect(all).toEqual(want);
    d.flush();
    d.close();
    expect(new Uint8Array(readFileSync(file))).toEqual(base);
  });

  it("completes a partial sector write from the current data", () => {
    const base = pattern(4 * 512);
    const d = new OverlayDisk(RawDisk.open(image("overlay-partial.img", base), { readOnly: true }), dir);
    d.write(Uint8Array.of(1, 2, 3), 510); // the end of sector 0 and the start of sector 1
    d.write(Uint8Array.of(9), 511); // again, inside what is now overlay data
    const got = new Uint8Array(1024);
    d.read(got, 0);
    const want = base.slice(0, 1024);
    want.set([1, 9, 3], 510);
    expect(got).toEqual(want);
    d.close();
  });

  it("leaves no file behind: the overlay is unlinked as soon as it is open", () => {
    const base = RawDisk.open(image("overlay-gone.img", 1024), { readOnly: true });
    const before = readdirSync(dir).length;
    const d = new OverlayDisk(base, dir);
    expect(readdirSync(dir).length).toBe(before);
    d.write(new Uint8Array(512).fill(1), 0);
    d.close();
  });
});
