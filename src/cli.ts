// The `rvm` command line (commander). Errors a user can cause print one line and exit 1.

import { Command, InvalidArgumentError, Option } from "commander";
import { ImageError, RvmError, UsageError } from "./errors.js";
import { readImage } from "./loaders/image.js";
import { isElf, parseElf } from "./loaders/elf.js";
import { Machine } from "./machine.js";

/** Parses a memory size the way QEMU's -m does: a number of MiB, or with a K/M/G suffix. */
export function parseSize(text: string): number {
  const m = /^(\d+)([KMG]i?B?)?$/i.exec(text.trim());
  if (!m) throw new InvalidArgumentError(`not a memory size: "${text}" (examples: 128M, 1G)`);
  const n = Number(m[1]);
  const unit = (m[2] ?? "M")[0].toUpperCase();
  const bytes = n * (unit === "K" ? 1024 : unit === "M" ? 1 << 20 : 1 << 30);
  if (bytes < 1 << 20 || bytes > 3 * 2 ** 30) throw new InvalidArgumentError(`memory size ${text} is out of range (1M to 3G)`);
  if (bytes % 4096 !== 0) throw new InvalidArgumentError(`memory size ${text} is not a multiple of 4 KiB`);
  return bytes;
}

function parseSeconds(text: string): number {
  const v = Number(text);
  if (!Number.isFinite(v) || v <= 0) throw new InvalidArgumentError(`not a number of seconds: "${text}"`);
  return v;
}

function parseShift(text: string): number {
  const v = Number(text);
  if (!Number.isInteger(v) || v < 0 || v > 10) throw new InvalidArgumentError(`icount shift must be an integer 0..10, not "${text}"`);
  return v;
}

interface RunFlags {
  memory: number;
  format?: "elf" | "raw";
  timeout?: number;
  trace?: boolean;
  icount?: number;
}

async function runCommand(file: string, flags: RunFlags): Promise<number> {
  const data = readImage(file);
  const raw = flags.format === "raw" || (flags.format === undefined && /\.bin(\.gz)?$/i.test(file) && !isElf(data));
  if (!raw && !isElf(data)) {
    throw new ImageError(file, "not an ELF file (to load a raw binary at 0x80000000, name it .bin or pass --format raw)");
  }
  const machine = new Machine({ ramBytes: flags.memory, icountShift: flags.icount });
  if (raw) machine.loadRaw(data, file);
  else machine.loadElf(parseElf(data, file), file);
  const result = await machine.run({
    timeoutMs: flags.timeout !== undefined ? flags.timeout * 1000 : undefined,
    trace: flags.trace ? (line) => process.stderr.write(line + "\n") : undefined,
  });
  if (result.reason === "timeout") process.stderr.write(`rvm: timeout after ${flags.timeout} s, guest still running\n`);
  return result.exitCode;
}

export function buildProgram(): Command {
  const program = new Command();
  program
    .name("rvm")
    .description("A RISC-V RV64 machine: run guests, save and restore them")
    .configureOutput({ outputError: (str, write) => write(str) });
  program
    .command("run")
    .description("run a guest: a bare-metal RISC-V ELF (HTIF tohost/fromhost) or a raw binary loaded at 0x80000000")
    .argument("<file>", "the guest image (.gz accepted)")
    .addOption(new Option("-m, --memory <size>", "guest RAM, e.g. 128M or 1G (like QEMU's -m)").argParser(parseSize).default(128 << 20, "128M"))
    .addOption(new Option("--format <format>", "how to load FILE (default: ELF by its magic, raw for *.bin)").choices(["elf", "raw"]))
    .option("--timeout <seconds>", "stop the guest after this much wall-clock time (exit code 124)", parseSeconds)
    .option("--icount <shift>", "deterministic time: mtime advances one tick every 2^shift instructions", parseShift)
    .option("--trace", "print every instruction executed (privilege, pc, encoding) to stderr")
    .addHelpText("after", "\nThe exit code is the guest's: HTIF exit (tohost = code << 1 | 1), or 124 on --timeout.")
    .action(async (file: string, flags: RunFlags) => {
      process.exitCode = await runCommand(file, flags);
    });
  return program;
}

export async function main(argv: string[]): Promise<void> {
  try {
    await buildProgram().parseAsync(argv);
  } catch (e) {
    if (e instanceof RvmError || e instanceof UsageError) {
      process.stderr.write(`rvm: ${e.message}\n`);
      process.exitCode = 1;
      return;
    }
    throw e;
  }
}
