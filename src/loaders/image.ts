// Reading guest images from disk: plain or gzip-compressed (by magic, whatever the name). Only
// regular files with something in them: a FIFO or a device (/dev/zero) would never end, an
// empty file holds nothing to run.

import { fs, gunzip } from "../platform.js";
import { ImageError } from "../errors.js";

export function readImage(file: string): Uint8Array {
  let data: Uint8Array;
  try {
    const st = fs.statSync(file);
    if (st.isDirectory()) throw new ImageError(file, "is a directory, not an image");
    if (!st.isFile()) throw new ImageError(file, "not a regular file (a FIFO or a device is no image)");
    if (st.size === 0) throw new ImageError(file, "is empty");
    data = fs.readFileSync(file);
  } catch (e) {
    if (e instanceof ImageError) throw e;
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "ENOENT") throw new ImageError(file, "no such file");
    if (code === "EACCES") throw new ImageError(file, "permission denied");
    throw new ImageError(file, `cannot read (${code ?? String(e)})`);
  }
  if (data.length >= 2 && data[0] === 0x1f && data[1] === 0x8b) {
    try {
      return gunzip(data);
    } catch {
      throw new ImageError(file, "corrupt gzip data");
    }
  }
  return new Uint8Array(data.buffer, data.byteOffset, data.length);
}
