// The browser's platform layer (src/web/platform.ts) against Node's, which it stands in for:
// the same paths from the same path operations, the same bytes and errors from the same file
// operations.

import { describe, expect, it } from "vitest";
import * as nodeFs from "node:fs";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import * as nodePath from "node:path";
import { gzipSync } from "node:zlib";
import { fs as webFs, gunzip, path as webPath, yieldToEventLoop } from "../../src/web/platform.js";

describe("the browser's platform layer behaves as Node's", () => {
  it("path operations", () => {
    const cases: string[][] = [["/a/b", "c"], ["/a/b/", "../c"], ["a", "b"], ["/", "x"], ["/a/./b", "c/.."]];
    for (const c of cases) {
      expect(webPath.join(...c)).toBe(nodePath.join(...c));
      expect(webPath.resolve("/work", ...c)).toBe(nodePath.resolve("/work", ...c));
    }
    for (const p of ["/a/b/c.img", "/a", "/", "/a/b/"]) {
      expect(webPath.dirname(p)).toBe(nodePath.dirname(p));
      expect(webPath.basename(p)).toBe(nodePath.basename(p));
    }
  });

  it("file operations: the same bytes, sizes and error codes", () => {
    const dir = mkdtempSync(nodePath.join(tmpdir(), "rvm-webfs-"));
    for (const [fs, base] of [[nodeFs, dir], [webFs, "/t"]] as const) {
      const f = nodePath.join(base, "f.bin");
      const code = (fn: () => unknown) => {
        try {
          fn();
          return "ok";
        } catch (e) {
          return (e as NodeJS.ErrnoException).code;
        }
      };
      expect(code(() => fs.openSync(f, "r"))).toBe("ENOENT");
      const fd = fs.openSync(f, "w");
      expect(fs.writeSync(fd, Uint8Array.of(1, 2, 3, 4), 1, 2, 10)).toBe(2);
      expect(fs.fstatSync(fd).size).toBe(12);
      fs.closeSync(fd);
      const rd = fs.openSync(f, "r");
      const buf = new Uint8Array(16).fill(9);
      expect(fs.readSync(rd, buf, 0, 16, 8)).toBe(4);
      expect([...buf.subarray(0, 5)]).toEqual([0, 0, 2, 3, 9]);
      expect(code(() => fs.writeSync(rd, buf, 0, 1, 0))).toBe("EBADF");
      fs.closeSync(rd);
      expect(code(() => fs.closeSync(rd))).toBe("EBADF");
      expect(fs.existsSync(f)).toBe(true);
      expect(fs.statSync(base).isDirectory()).toBe(true);
      expect(code(() => fs.readFileSync(base))).toBe("EISDIR");
      expect(fs.readFileSync(f).length).toBe(12);
    }
  });

  it("gunzip, and yielding to the event loop", async () => {
    const data = new TextEncoder().encode("rvm ".repeat(1000));
    expect(gunzip(gzipSync(data))).toEqual(data);
    // A loop that only yields (as the run loop does) still lets timers run.
    let ran = false;
    setTimeout(() => (ran = true), 1);
    const t0 = Date.now();
    while (!ran && Date.now() - t0 < 10_000) await yieldToEventLoop();
    expect(ran).toBe(true);
  });
});
