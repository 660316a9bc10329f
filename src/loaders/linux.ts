// The RISC-V Linux kernel `Image` format (Documentation/riscv/boot-image-header.rst):
//   u32 code0, code1; u64 text_offset; u64 image_size; u64 flags; u32 version; u32 res1;
//   u64 res2; u64 magic = "RISCV\0\0\0" (deprecated); u32 magic2 = "RSC\x05"; u32 res3.

const MAGIC2 = 0x05435352; // "RSC\x05"

export interface LinuxImage {
  data: Uint8Array;
  /** Bytes the kernel occupies once running (from the header), at least the file size. */
  imageSize: number;
  textOffset: number;
}

export function isLinuxImage(data: Uint8Array): boolean {
  if (data.length < 64) return false;
  const dv = new DataView(data.buffer, data.byteOffset, 64);
  const magic = new TextDecoder().decode(data.subarray(48, 53));
  return dv.getUint32(56, true) === MAGIC2 || magic === "RISCV";
}

export function parseLinuxImage(data: Uint8Array): LinuxImage {
  const dv = new DataView(data.buffer, data.byteOffset, 64);
  const imageSize = Number(dv.getBigUint64(16, true));
  const textOffset = Number(dv.getBigUint64(8, true));
  return { data, imageSize: Math.max(imageSize, data.length), textOffset };
}
