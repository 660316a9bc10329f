// Writing files so that no reader ever sees half of one: temp file, fsync, rename.

import { fs, path, pid } from "./platform.js";
import { RvmError } from "./errors.js";

const { closeSync, fsyncSync, openSync, renameSync, unlinkSync, writeSync } = fs;
const { dirname, basename, join } = path;

export function writeFileAtomic(file: string, data: Uint8Array): void {
  const tmp = join(dirname(file), `.${basename(file)}.${pid}.tmp`);
  let fd: number | undefined;
  try {
    fd = openSync(tmp, "w");
    for (let off = 0; off < data.length; ) off += writeSync(fd, data, off, data.length - off, off);
    fsyncSync(fd);
    closeSync(fd);
    fd = undefined;
    renameSync(tmp, file);
  } catch (e) {
    if (fd !== undefined) closeSync(fd);
    try {
      unlinkSync(tmp);
    } catch {
      // nothing to clean up
    }
    throw new RvmError(`cannot write ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
}
