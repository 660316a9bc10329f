// The disassembler against binutils' objdump (riscv64-unknown-elf-objdump, Debian's
// binutils-riscv64-unknown-elf): every instruction of every guest ELF, line for line, and a sweep of
// encodings (every 16-bit one, and 32-bit ones drawn to hit every opcode, alias and operand corner).

import { describe, expect, it } from "vitest";
import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Disassembler, DisasmOptions } from "../src/disasm.js";
import { CSR_NAMES } from "../src/csr-names.js";
import { guestFiles, xorshift } from "./helpers.js";

const OBJDUMP = "riscv64-unknown-elf-objdump";
const haveObjdump = spawnSync(OBJDUMP, ["--version"]).status === 0;
if (!haveObjdump) console.warn(`SKIPPED: ${OBJDUMP} is not installed (apt-get install binutils-riscv64-unknown-elf); the disassembler is not checked`);

interface Line { addr: bigint; hex: string; text: string }

/** Parses objdump -d output: "    80000000:\t00000297          \tauipc\tt0,0x0". */
function parseObjdump(out: string): Line[] {
  const lines: Line[] = [];
  for (const l of out.split("\n")) {
    const m = /^\s*([0-9a-f]+):\t([0-9a-f]+)\s+\t(.*)$/.exec(l);
    if (m) lines.push({ addr: BigInt("0x" + m[1]), hex: m[2], text: m[3] });
  }
  return lines;
}

/** Compares objdump's lines with ours; returns the mismatches (at most `max`). */
function compare(lines: Line[], word: (l: Line) => number, dis: Disassembler, normalize: (s: string) => string, max = 40): string[] {
  const bad: string[] = [];
  for (const l of lines) {
    const mine = dis.format(dis.decode(word(l), l.addr));
    const theirs = normalize(l.text);
    if (mine !== theirs && bad.length < max) bad.push(`${l.hex}: objdump "${theirs}" rvm "${mine}"`);
  }
  return bad;
}


/** 32-bit words that reach every opcode and the special values aliases depend on. */
function sweepWords(count: number): number[] {
  const r = xorshift(0x5eed);
  const majors = [0x03, 0x07, 0x0f, 0x13, 0x17, 0x1b, 0x23, 0x27, 0x2f, 0x33, 0x37, 0x3b, 0x43, 0x47, 0x4b, 0x4f, 0x53, 0x63, 0x67, 0x6f, 0x73];
  const csrs = [...CSR_NAMES.keys()];
  const regs = [0, 1, 2, 3, 4];
  const words: number[] = [];
  for (let i = 0; i < count; i++) {
    let w = r();
    w = (w & ~0x7f) | majors[r() % majors.length];
    const pick = r() % 8;
    if (pick === 0) w = (w & ~(31 << 7)) | (regs[r() % regs.length] << 7);
    if (pick === 1) w = (w & ~(31 << 15)) | (regs[r() % regs.length] << 15);
    if (pick === 2) w = (w & ~(31 << 20)) | (regs[r() % regs.length] << 20);
    if (pick === 3) w = (w & 0xfffff) | ([0, 1, 0xfff, 0xff, 0x7ff, 0x800][r() % 6] << 20);
    if (pick === 4) w = (w & 0xfffff) | (csrs[r() % csrs.length] << 20);
    if (pick === 5) w = (w & ~(0x7f << 25)) | ([0, 1, 0x20, 0x10, 0x08, 0x2c, 0x2d, 0x50, 0x60, 0x68, 0x70, 0x78, 0x09][r() % 13] << 25);
    if (pick === 6 && (r() & 1)) w = (w & ~(31 << 20)) & ~(31 << 15);
    if (pick === 7) w = (w & ~(7 << 12)) | ((r() % 8) << 12);
    words.push(w >>> 0);
  }
  // Exact encodings with their own mnemonics.
  words.push(0x00000073, 0x00100073, 0x10200073, 0x30200073, 0x7b200073, 0x10500073, 0x12000073, 0x12050073,
    0x12b50073, 0xc0001073, 0x0ff0000f, 0x8330000f, 0x0000100f, 0x0100000f, 0x00000013);
  return words;
}

describe.skipIf(!haveObjdump)("disassembler vs objdump", () => {
  it("every instruction of every guest ELF", () => {
    const files = [...guestFiles("guests/isa"), ...guestFiles("guests/bench")];
    expect(files.length).toBeGreaterThan(10);
    let total = 0;
    for (const file of files) {
      const arch = execFileSync("riscv64-unknown-elf-readelf", ["-A", file], { encoding: "utf8" });
      const hasF = /_f\d/.test(arch), hasD = /_d\d/.test(arch);
      const gp = /^([0-9a-f]+) . __global_pointer\$$/m.exec(execFileSync("riscv64-unknown-elf-nm", [file], { encoding: "utf8" }));
      const opts: DisasmOptions = {
        f: hasF, d: hasD,
        privSpec: /Tag_RISCV_priv_spec_minor: 11/.test(arch) ? "1.11" : "1.12",
        gp: gp ? BigInt("0x" + gp[1]) : undefined,
        // objdump prints "8000208c <fail>"; the symbol is the ELF's business, the address is ours.
        formatAddress: (a) => a.toString(16),
      };
      const dis = new Disassembler(opts);
      const lines = parseObjdump(execFileSync(OBJDUMP, ["-d", file], { encoding: "utf8", maxBuffer: 64 << 20 }))
        .filter((l) => !/^\.(word|short|byte|dword)\t/.test(l.text));
      total += lines.length;
      const bad = compare(lines, (l) => parseInt(l.hex, 16), dis, (s) => s.replace(/ <[^>]*>/g, ""));
      expect(bad, file).toEqual([]);
    }
    expect(total).toBeGreaterThan(20000);
  });

  it("a sweep of encodings: all 16-bit ones, 200k 32-bit ones", () => {
    const dir = mkdtempSync(join(tmpdir(), "rvm-disasm-"));
    try {
      const words32 = sweepWords(200_000);
      const buf = Buffer.alloc(49152 * 2 + words32.length * 4);
      let off = 0;
      for (let h = 0; h < 65536; h++) if ((h & 3) !== 3) off = buf.writeUInt16LE(h, off);
      for (const w of words32) off = buf.writeUInt32LE(w, off);
      const bin = join(dir, "sweep.bin");
      writeFileSync(bin, buf);
      const out = execFileSync(OBJDUMP, ["-D", "-b", "binary", "-m", "riscv:rv64", bin], { encoding: "utf8", maxBuffer: 256 << 20 });
      const lines = parseObjdump(out);
      expect(lines.length).toBe(49152 + words32.length);
      const data = readFileSync(bin);
      const word = (l: Line) => {
        const a = Number(l.addr);
        return a + 4 <= data.length ? data.readUInt32LE(a) : data.readUInt16LE(a);
      };
      const bad = compare(lines, word, new Disassembler(), (s) => s);
      expect(bad).toEqual([]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);
});
