// The `rvm` command as a user meets it: exit codes, and one-line errors for bad input.

import { describe, expect, it } from "vitest";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { ROOT } from "./helpers.js";

const RVM = join(ROOT, "bin/rvm.js");
const GOOD = join(ROOT, "guests/isa/rv64i.elf");
const dir = mkdtempSync(join(tmpdir(), "rvm-cli-"));

function rvm(...args: string[]) {
  const r = spawnSync(process.execPath, [RVM, ...args], { encoding: "utf8", timeout: 60_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function variant(name: string, edit: (b: Buffer) => Buffer): string {
  const file = join(dir, name);
  writeFileSync(file, edit(Buffer.from(readFileSync(GOOD))));
  return file;
}

function expectOneLineError(r: ReturnType<typeof rvm>, pattern: RegExp) {
  expect(r.code).toBe(1);
  const lines = r.stderr.trim().split("\n");
  expect(lines).toHaveLength(1);
  expect(lines[0]).toMatch(pattern);
  expect(r.stderr).not.toMatch(/\n\s+at /); // no stack trace
}

describe("rvm run", { timeout: 120_000 }, () => {
  it("exits with the guest's HTIF exit code", () => {
    expect(rvm("run", GOOD).code).toBe(0);
  });

  it("reads gzip-compressed images", () => {
    const file = join(dir, "rv64i.elf.gz");
    writeFileSync(file, gzipSync(readFileSync(GOOD)));
    expect(rvm("run", file).code).toBe(0);
  });

  it("ends a guest that runs forever at --timeout, with exit code 124", () => {
    const file = join(dir, "loop.bin");
    writeFileSync(file, Buffer.from([0x6f, 0x00, 0x00, 0x00])); // j .
    const r = rvm("run", file, "--timeout", "0.3");
    expect(r.code).toBe(124);
    expect(r.stderr).toMatch(/timeout/);
  });

  it("--trace prints executed instructions", () => {
    const file = join(dir, "three.bin");
    // addi a0, zero, 1 ; c.nop ; j .
    writeFileSync(file, Buffer.from([0x13, 0x05, 0x10, 0x00, 0x01, 0x00, 0x6f, 0x00, 0x00, 0x00]));
    const r = spawnSync(process.execPath, [RVM, "run", file, "--trace", "--timeout", "0.2"], { encoding: "utf8", timeout: 60_000 });
    const lines = r.stderr.split("\n");
    expect(lines).toContain("M 0000000080000000 00100513");
    expect(lines).toContain("M 0000000080000004 0001");
    expect(lines[0]).toMatch(/^M 0000000000001000 00000297$/); // the reset ROM comes first
  });

  it("refuses a missing file", () => {
    expectOneLineError(rvm("run", join(dir, "nope.elf")), /nope\.elf: no such file/);
  });

  it("refuses a file that is not an ELF", () => {
    const file = join(dir, "text.elf");
    writeFileSync(file, "hello\n");
    expectOneLineError(rvm("run", file), /not an ELF file/);
  });

  it("refuses an ELF for another machine", () => {
    const file = variant("x86.elf", (b) => { b.writeUInt16LE(62, 18); return b; });
    expectOneLineError(rvm("run", file), /not RISC-V/);
  });

  it("refuses a 32-bit ELF", () => {
    const file = variant("elf32.elf", (b) => { b[4] = 1; return b; });
    expectOneLineError(rvm("run", file), /not a 64-bit ELF/);
  });

  it("refuses a truncated ELF", () => {
    const file = variant("short.elf", (b) => b.subarray(0, 40));
    expectOneLineError(rvm("run", file), /truncated/);
    const file2 = variant("short2.elf", (b) => b.subarray(0, 0x1100));
    expectOneLineError(rvm("run", file2), /truncated/);
  });

  it("refuses segments outside RAM", () => {
    const file = variant("outside.elf", (b) => {
      const phoff = Number(b.readBigUInt64LE(32));
      let ph = phoff;
      while (b.readUInt32LE(ph) !== 1) ph += 56; // the first PT_LOAD
      b.writeBigUInt64LE(0x10000000n, ph + 24); // its p_paddr
      return b;
    });
    expectOneLineError(rvm("run", file), /outside RAM/);
  });

  it("refuses bad option values", () => {
    expectOneLineError(rvm("run", GOOD, "-m", "lots"), /not a memory size/);
    expectOneLineError(rvm("run", GOOD, "--timeout", "-1"), /seconds/);
  });
});

describe("rvm run: board options", { timeout: 120_000 }, () => {
  it("refuses other machines and hart counts", () => {
    expectOneLineError(rvm("run", "-M", "spike", GOOD), /only the virt machine/);
    expectOneLineError(rvm("run", "-smp", "9", GOOD), /-smp 9: rvm has 1 to 8 harts/);
    expectOneLineError(rvm("run", "-smp", "0", GOOD), /-smp 0: rvm has 1 to 8 harts/);
    expectOneLineError(rvm("run", "-smp", "cpus=2,sockets=2", GOOD), /rvm has one socket/);
    expectOneLineError(rvm("run", "-smp", "cpus=2,foo=1", GOOD), /unknown property foo/);
    expectOneLineError(rvm("run", "-smp", "two", GOOD), /must be a number/);
  });

  it("refuses bad drives and devices", () => {
    expectOneLineError(rvm("run", "-drive", "file=x.qcow2,format=qcow2"), /only format=raw/);
    expectOneLineError(rvm("run", "-drive", `file=${join(dir, "none.img")},format=raw,if=virtio`, "-kernel", GOOD), /none\.img: no such file/);
    expectOneLineError(rvm("run", "-drive", "file=a.img,format=raw,if=none,id=hd0", "-device", "e1000,netdev=n0"), /-device e1000: not available/);
    expectOneLineError(rvm("run", "-drive", "file=a.img,format=raw,if=none,id=hd0", "-device", "virtio-blk-device,drive=hd9"), /no -drive with id=hd9/);
    expectOneLineError(rvm("run", "-drive", "format=raw"), /no file=/);
  });

  it("refuses a missing kernel, initrd or firmware", () => {
    expectOneLineError(rvm("run", "-kernel", join(dir, "nokernel")), /nokernel: no such file/);
    expectOneLineError(rvm("run", "-bios", join(dir, "nofw.bin"), "-kernel", GOOD), /nofw\.bin: no such file/);
    expectOneLineError(rvm("run", "-kernel", join(ROOT, "guests/linux/Image.gz"), "-initrd", join(dir, "noinitrd")), /noinitrd: no such file/);
    expectOneLineError(rvm("run"), /nothing to run/);
  });

  it("refuses a bad monitor spec and a bad guest description", () => {
    expectOneLineError(rvm("run", GOOD, "-monitor", "serial:/dev/ttyS0"), /-monitor serial/);
    const desc = join(dir, "bad.json");
    writeFileSync(desc, "{ not json");
    expectOneLineError(rvm("run", desc), /bad\.json: not a valid guest description/);
  });

  it("attaches a read-only drive and says so to the guest", async () => {
    // The virtio-blk device reports VIRTIO_BLK_F_RO; the drive opens even if the file is read-only.
    const img = join(dir, "ro.img");
    writeFileSync(img, Buffer.alloc(1 << 20));
    const r = rvm("run", GOOD, "-drive", `file=${img},format=raw,if=virtio,readonly=on`);
    expect(r.code).toBe(0);
  });
});
