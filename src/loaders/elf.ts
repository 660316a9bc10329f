// ELF64 RISC-V executables (System V gABI; RISC-V ELF psABI): program headers, entry point
// and the symbol table (for HTIF's tohost/fromhost).

import { ImageError } from "../errors.js";

export interface ElfSegment {
  /** Guest-physical load address (p_paddr). */
  paddr: number;
  /** The bytes from the file (p_filesz); the rest up to memsz is zero. */
  data: Uint8Array;
  memsz: number;
}

export interface ElfImage {
  entry: number;
  segments: ElfSegment[];
  symbols: Map<string, number>;
}

const PT_LOAD = 1;
const SHT_SYMTAB = 2;
const EM_RISCV = 243;

export function isElf(data: Uint8Array): boolean {
  return data.length >= 4 && data[0] === 0x7f && data[1] === 0x45 && data[2] === 0x4c && data[3] === 0x46;
}

export function parseElf(data: Uint8Array, file: string): ElfImage {
  if (!isElf(data)) throw new ImageError(file, "not an ELF file");
  if (data.length < 64) throw new ImageError(file, "truncated ELF header");
  if (data[4] !== 2) throw new ImageError(file, "not a 64-bit ELF (ELFCLASS64 expected)");
  if (data[5] !== 1) throw new ImageError(file, "not a little-endian ELF");
  const dv = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const machine = dv.getUint16(18, true);
  if (machine !== EM_RISCV) throw new ImageError(file, `ELF for machine ${machine}, not RISC-V (${EM_RISCV})`);
  const type = dv.getUint16(16, true);
  if (type !== 2 && type !== 3) throw new ImageError(file, "ELF is not an executable");
  const num = (off: number): number => {
    if (off + 8 > data.length) throw new ImageError(file, "truncated ELF file");
    const v = dv.getBigUint64(off, true);
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new ImageError(file, "ELF field out of range");
    return Number(v);
  };
  const entry = num(24);
  const phoff = num(32);
  const shoff = num(40);
  const phentsize = dv.getUint16(54, true);
  const phnum = dv.getUint16(56, true);
  const shentsize = dv.getUint16(58, true);
  const shnum = dv.getUint16(60, true);
  if (phnum > 0 && (phentsize < 56 || phoff + phnum * phentsize > data.length)) {
    throw new ImageError(file, "truncated ELF program headers");
  }
  const segments: ElfSegment[] = [];
  for (let i = 0; i < phnum; i++) {
    const ph = phoff + i * phentsize;
    if (dv.getUint32(ph, true) !== PT_LOAD) continue;
    const offset = num(ph + 8);
    const paddr = num(ph + 24);
    const filesz = num(ph + 32);
    const memsz = num(ph + 40);
    if (offset + filesz > data.length) throw new ImageError(file, "truncated ELF file (segment data missing)");
    if (memsz < filesz) throw new ImageError(file, "ELF segment with memsz < filesz");
    if (memsz === 0) continue;
    segments.push({ paddr, data: data.subarray(offset, offset + filesz), memsz });
  }
  if (segments.length === 0) throw new ImageError(file, "ELF has no loadable segments");

  const symbols = new Map<string, number>();
  if (shoff !== 0 && shnum > 0 && shentsize >= 64 && shoff + shnum * shentsize <= data.length) {
    for (let i = 0; i < shnum; i++) {
      const sh = shoff + i * shentsize;
      if (dv.getUint32(sh + 4, true) !== SHT_SYMTAB) continue;
      const symOff = num(sh + 24);
      const symSize = num(sh + 32);
      const link = dv.getUint32(sh + 40, true);
      if (link >= shnum) continue;
      const strSh = shoff + link * shentsize;
      const strOff = num(strSh + 24);
      const strSize = num(strSh + 32);
      if (symOff + symSize > data.length || strOff + strSize > data.length) continue;
      for (let s = symOff; s + 24 <= symOff + symSize; s += 24) {
        const nameOff = dv.getUint32(s, true);
        if (nameOff === 0 || nameOff >= strSize) continue;
        let end = strOff + nameOff;
        while (end < strOff + strSize && data[end] !== 0) end++;
        const name = new TextDecoder().decode(data.subarray(strOff + nameOff, end));
        symbols.set(name, num(s + 8));
      }
    }
  }
  return { entry, segments, symbols };
}
