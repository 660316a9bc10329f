// Reading guest images from disk: plain or gzip-compressed (by magic, whatever the name).

import { readFileSync, statSync } from "node:fs";
import { gunzipSync } from "node:zlib";
import { ImageError } from "../errors.js";

export function readImage(file: string): Uint8Array {
  let data: Buffer;
  try {
    if (statSync(file).isDirectory()) throw new ImageError(file, "is a directory, not an image");
    data = readFileSync(file);
  } catch (e) {
    if (e instanceof ImageError) throw e;
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "ENOENT") throw new ImageError(file, "no such file");
    if (code === "EACCES") throw new ImageError(file, "permission denied");
    throw new ImageError(file, `cannot read (${code ?? String(e)})`);
  }
  if (data.length >= 2 && data[0] === 0x1f && data[1] === 0x8b) {
    try {
      return new Uint8Array(gunzipSync(data));
    } catch {
      throw new ImageError(file, "corrupt gzip data");
    }
  }
  return new Uint8Array(data.buffer, data.byteOffset, data.length);
}
