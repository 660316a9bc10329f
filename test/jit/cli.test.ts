// The JIT's switch in the CLI: on by default (issue 12), `--jit off` for the interpreter alone,
// as `info jit` in the monitor reports it; anything else is refused with one line.

import { describe, expect, it } from "vitest";
import { spawnSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ROOT } from "../helpers.js";

const dir = mkdtempSync(join(tmpdir(), "rvm-jit-cli-"));
const loop = join(dir, "loop.bin"); // li a0, 42; j .
writeFileSync(loop, Buffer.from([0x13, 0x05, 0xa0, 0x02, 0x6f, 0x00, 0x00, 0x00]));

function rvm(args: string[], input = "") {
  const r = spawnSync(process.execPath, [join(ROOT, "bin/rvm.js"), ...args], { encoding: "utf8", timeout: 90_000, input });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe("--jit", { timeout: 120_000 }, () => {
  it("is on by default; --jit off and --jit on say so in info jit; another value is one line, exit 1", () => {
    const info = (extra: string[]) => rvm(["run", loop, "-monitor", "stdio", ...extra], "info jit\nquit\n");
    let r = info([]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^jit: on \(threshold \d+\)$/m);
    r = info(["--jit", "off"]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^jit: off /m);
    r = info(["--jit", "on"]);
    expect(r.stdout).toMatch(/^jit: on /m);
    r = rvm(["run", loop, "--jit", "fast"]);
    expect(r.code).toBe(1);
    expect(r.stderr.trimEnd().split("\n")).toHaveLength(1);
    expect(r.stderr).toMatch(/^rvm: .*--jit/);
  });
});
