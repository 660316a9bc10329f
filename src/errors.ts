// Errors a user sees: one line, no stack trace (the CLI prints `rvm: <message>` and exits 1).

export class RvmError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "RvmError";
  }
}

/** A guest image, firmware or disk that cannot be used. */
export class ImageError extends RvmError {
  constructor(file: string, problem: string) {
    super(`${file}: ${problem}`);
    this.name = "ImageError";
  }
}

/** Guest memory that cannot be read (not RAM or ROM, or no translation): the monitor's x/xp. */
export class MemoryAccessError extends RvmError {
  constructor(readonly address: bigint, message: string) {
    super(message);
    this.name = "MemoryAccessError";
  }
}

/** A command-line option with a value rvm does not accept. */
export class UsageError extends RvmError {
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}
