// The reset ROM at guest-physical 0x1000, laid out as QEMU's virt board does: it enters the
// firmware (or a bare-metal kernel) with a0 = mhartid, a1 = device-tree address and
// a2 = the fw_dynamic info block, which tells OpenSBI's fw_dynamic where the next stage is.

export const RESET_VECTOR = 0x1000;
const FW_DYNAMIC_MAGIC = 0x4942534fn; // "OSBI"
const FW_DYNAMIC_VERSION = 2n;

export interface ResetInfo {
  /** Where the ROM jumps (firmware or kernel entry). */
  start: number;
  /** Device-tree address passed in a1 (0 if none). */
  fdt: number;
  /** For fw_dynamic: the next stage's address and privilege (1 = S). */
  nextAddr?: number;
  nextMode?: number;
}

/** Writes the reset code and its data into `rom` (the view of 0x0..0x10000). */
export function writeResetRom(rom: Uint8Array, info: ResetInfo): void {
  const code = [
    0x00000297, // auipc t0, 0
    0x02828613, // addi  a2, t0, 40   (fw_dynamic info)
    0xf1402573, // csrr  a0, mhartid
    0x0202b583, // ld    a1, 32(t0)   (device tree)
    0x0182b283, // ld    t0, 24(t0)   (start address)
    0x00028067, // jr    t0
  ];
  const dv = new DataView(rom.buffer, rom.byteOffset + RESET_VECTOR, 0x100);
  code.forEach((w, i) => dv.setUint32(i * 4, w, true));
  dv.setBigUint64(24, BigInt(info.start), true);
  dv.setBigUint64(32, BigInt(info.fdt), true);
  // struct fw_dynamic_info { magic, version, next_addr, next_mode, options, boot_hart }
  dv.setBigUint64(40, FW_DYNAMIC_MAGIC, true);
  dv.setBigUint64(48, FW_DYNAMIC_VERSION, true);
  dv.setBigUint64(56, BigInt(info.nextAddr ?? 0), true);
  dv.setBigUint64(64, BigInt(info.nextMode ?? 1), true);
  dv.setBigUint64(72, 0n, true);
  dv.setBigUint64(80, 0n, true);
}
