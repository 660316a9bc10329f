// The `rvm` command line (commander). Errors a user can cause print one line and exit 1.
//
// `rvm run` accepts QEMU's spelling of the options it shares with qemu-system-riscv64
// (-machine/-M virt, -cpu rv64, -m, -smp 1, -bios, -kernel, -initrd, -append, -drive, -device,
// -global, -nographic, -serial, -monitor, -S, -no-reboot, -name, -rtc, -icount, -loadvm) as well as
// rvm's own forms (a FILE argument, --kernel ...); QEMU options rvm lacks are refused by name.

import { Command, InvalidArgumentError, Option } from "commander";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { RvmError, UsageError } from "./errors.js";
import { parseTraceItems, traceHelp, Tracer } from "./trace.js";
import {
  applyGlobal, checkCpu, checkDisplay, checkSerial, DriveList, formatCommanderError, GlobalProps,
  MonitorSpec, parseIcount, parseMachine, parseMonitor, parseName, parseRtc, parseSmp, qemuArgsToLong,
} from "./options.js";
import { baseConfig, classify, parseMemorySize } from "./guest.js";
import { createVirtMachine, virtDtbFor, type VirtConfig } from "./board/virt.js";
import { Terminal } from "./console.js";
import { machineTarget, Monitor } from "./monitor.js";
import { serveMonitor } from "./monitor-server.js";
import { writeFileAtomic } from "./files.js";
import { defaultSnapshotDir, journalName, SnapshotStore } from "./snapshot/store.js";
import { SnapshotFile } from "./snapshot/format.js";
import { ActiveRestore, addSnapshotCommands, formatRestoreStats, RestoreOptions, startRestore } from "./snapshot/commands.js";
import { findSnapshot, isSnapshotFile, snapshotCommands } from "./snapshot/cli.js";
import { attachJournals } from "./snapshot/save.js";
import { restoreSvg } from "./snapshot/pictures.js";
import { configWithImages } from "./snapshot/bundle.js";
import { serveWeb } from "./web/server.js";
import type { FetchOrder } from "./snapshot/restore-lazy.js";
import { markProcess, RestoreTimeline } from "./snapshot/timeline.js";
import { StatsWriter } from "./snapshot/stats-file.js";
import { addStoreCommands, isObjectStoreUrl, storeCommand, StoreVm, storeDir } from "./store/vm.js";
import { DEFAULT_GDB_SPEC, GdbServer, parseGdbSpec, serveGdb } from "./gdb/server.js";
import { MachineDebugTarget } from "./gdb/machine-target.js";

/** Parses a memory size the way QEMU's -m does (for commander: its error type). */
export function parseSize(text: string): number {
  try {
    return parseMemorySize(text);
  } catch (e) {
    throw new InvalidArgumentError((e as Error).message);
  }
}

/** The package's version (package.json next to dist/ or src/). */
function version(): string {
  for (const rel of ["../../package.json", "../package.json"]) {
    try {
      return (JSON.parse(readFileSync(new URL(rel, import.meta.url), "utf8")) as { version: string }).version;
    } catch {
      // the other layout
    }
  }
  return "unknown";
}

/** A parser of positive numbers ("a number of seconds", ...). */
const positive = (what: string) => (text: string): number => {
  const v = Number(text);
  if (!Number.isFinite(v) || v <= 0) throw new InvalidArgumentError(`not ${what}: "${text}"`);
  return v;
};
const parseSeconds = positive("a number of seconds");
const parseRate = positive("a rate in MiB/s");


const collect = (v: string, prev: string[]) => [...prev, v];

interface RunFlags {
  snapshotDir?: string;
  /** --snapshot-store: file:DIR (a snapshot directory) or s3://BUCKET/PREFIX. */
  snapshotStore?: string;
  storeDeadline?: number;
  /** The object store a restore command opened already. */
  objectStore?: StoreVm;
  loadvm?: string;
  machine: string[];
  cpu?: string;
  memory?: number;
  smp?: string;
  bios?: string;
  kernel?: string;
  initrd?: string;
  append?: string;
  drive: string[];
  device: string[];
  global: string[];
  nographic?: boolean;
  monitor?: string;
  serial?: string;
  S?: boolean;
  s?: boolean;
  gdb?: string;
  display?: string;
  format?: "elf" | "raw";
  timeout?: number;
  trace?: boolean;
  /** -d ITEMS and -D FILE: QEMU's log (src/trace.ts). */
  d?: string;
  D?: string;
  icount?: string;
  jit?: "on" | "off";
  reboot?: boolean;
  name?: string;
  rtc?: string;
  snapshot?: boolean;
}

async function runCommand(file: string | undefined, flags: RunFlags): Promise<number> {
  if (flags.d === "help") {
    process.stdout.write(traceHelp());
    return 0;
  }
  const { dumpdtb } = parseMachine(flags.machine);
  if (flags.cpu !== undefined) checkCpu(flags.cpu);
  const harts = parseSmp(flags.smp);
  if (flags.serial !== undefined) checkSerial(flags.serial);
  if (flags.display !== undefined) checkDisplay(flags.display);
  const globals: GlobalProps = {};
  for (const g of flags.global) applyGlobal(g, globals);
  const list = new DriveList();
  for (const d of flags.drive) list.addDrive(d);
  for (const d of flags.device) list.addDevice(d);
  const bootableDisk = file !== undefined && classify(file, flags, list.drives) === "disk";
  const drives = list.finish();
  // QEMU's -snapshot: snapshot=on for every drive that does not say otherwise.
  if (flags.snapshot) for (const d of drives) d.snapshot ??= true;
  return startMachine({
    ...baseConfig(bootableDisk, flags, drives),
    ...(list.rngSlots.length > 0 ? { rng: list.rngSlots } : {}),
    harts,
    ...icountConfig(flags.icount),
    jit: jitEnabled(flags),
    virtioLegacy: globals.virtioLegacy ?? true, // QEMU 7.2's virtio-mmio default: force-legacy=on
    rtc: flags.rtc !== undefined ? parseRtc(flags.rtc) : undefined,
    restoring: flags.loadvm !== undefined,
  }, { ...flags, dumpdtb }, flags.loadvm);
}

/** --jit on|off: whether hot guest code is compiled to WebAssembly (src/jit/). */
const JIT_DEFAULT = "on";
function jitEnabled(flags: RunFlags): boolean {
  return (flags.jit ?? JIT_DEFAULT) === "on";
}

/** -icount SPEC as the board's configuration (nothing when not given). */
function icountConfig(spec: string | undefined): Pick<VirtConfig, "icountShift" | "icountSleep"> {
  if (spec === undefined) return {};
  const { shift, sleep } = parseIcount(spec);
  return { icountShift: shift, icountSleep: sleep };
}

interface RestoreFlags {
  /** QEMU's -machine dumpdtb=FILE: write the device tree the guest would get, and exit. */
  dumpdtb?: string;
  restore?: "lazy" | "eager";
  order?: FetchOrder;
  /** --restore-rate: the lazy restore's background fetch limit, MiB/s. */
  restoreRate?: number;
  stats?: boolean;
  statsJson?: string;
  plot?: string;
}

/** Builds the machine, restores a snapshot if asked, wires terminal and monitor, and runs. */
/** `opened`: `snapshotFile`, opened already (its restore takes it over). */
async function startMachine(cfg: Omit<VirtConfig, "console">, flags: RunFlags & RestoreFlags, loadvm?: string, snapshotFile?: string, opened?: SnapshotFile): Promise<number> {
  const monitorSpec: MonitorSpec = flags.monitor ? parseMonitor(flags.monitor) : { kind: "none" };
  // -snapshot: the disks are temporary, and so are snapshots of the VM (they refer to disk
  // blocks): savevm writes to a temporary directory, gone with rvm, as QEMU's go with its overlay.
  const temporaryDisks = cfg.drives.some((d) => d.snapshot === true && !d.readonly);
  if (temporaryDisks && (loadvm !== undefined || snapshotFile !== undefined)) {
    throw new UsageError("-loadvm brings a VM's disks back to their saved state; with -snapshot they are temporary overlays (run without -snapshot)");
  }
  if (temporaryDisks && flags.snapshotDir) throw new UsageError("--snapshot-dir: with -snapshot the disks are temporary, and so are the VM's snapshots");
  let terminal: Terminal | undefined;
  let snapCtl: ReturnType<typeof addSnapshotCommands> | undefined;
  if (flags.snapshotStore && !isObjectStoreUrl(flags.snapshotStore)) flags.snapshotDir = storeDir(flags.snapshotStore);
  const objectStore = flags.objectStore ?? (flags.snapshotStore && isObjectStoreUrl(flags.snapshotStore)
    ? new StoreVm(flags.snapshotStore, { deadlineMs: flags.storeDeadline !== undefined ? flags.storeDeadline * 1000 : undefined }) : undefined);
  // -loadvm from an object store: the snapshot's disks come from the store.
  if (objectStore && loadvm !== undefined && !flags.objectStore) await objectStore.prepare(loadvm, flags.restore ?? "lazy");
  const machine = createVirtMachine({
    ...cfg,
    openDisk: objectStore?.openDisk,
    console: {
      write: (fd, bytes) => {
        snapCtl?.current?.timeline.output(bytes);
        return terminal ? terminal.writeGuest(bytes) : (fd === 2 ? process.stderr : process.stdout).write(bytes);
      },
      readByte: () => -1,
    },
  });
  markProcess(`machine built (${cfg.ramBytes >> 20} MiB RAM)`);
  if (flags.dumpdtb !== undefined) {
    if (!machine.deviceTree) throw new UsageError("-machine dumpdtb: the device tree of a restored snapshot is in its RAM; run without -loadvm");
    writeFileAtomic(flags.dumpdtb, machine.deviceTree);
    for (const f of machine.onExit) f();
    return 0;
  }
  if (flags.reboot === false) machine.noReboot = true;
  // -d ITEMS (--trace is -d insn), to -D FILE or stderr.
  const traceItems = parseTraceItems(flags.d ?? "");
  if (flags.trace) traceItems.add("insn");
  const tracer = traceItems.size > 0 ? new Tracer(traceItems, flags.D) : undefined;
  machine.setTracer(tracer);
  const guestName = flags.name !== undefined ? parseName(flags.name) : undefined;
  if (guestName?.process) process.title = guestName.process;
  const temporaryStore = temporaryDisks ? mkdtempSync(join(tmpdir(), "rvm-snapshots-")) : undefined;
  const store = new SnapshotStore(temporaryStore ?? (flags.snapshotDir ? resolve(flags.snapshotDir)
    : snapshotFile ? dirname(resolve(snapshotFile)) : defaultSnapshotDir(machine.config)));
  if (!objectStore && hasJournals(store, machine)) attachJournals(machine, store);
  const restoreOpts: RestoreOptions = {
    mode: flags.restore ?? "lazy", order: flags.order ?? "workingset", rateBytesPerSec: flags.restoreRate !== undefined ? flags.restoreRate * 2 ** 20 : undefined,
    // The eager restore's progress bar: on a terminal only (a pipe or a log gets none).
    progress: process.stderr.isTTY ? (text) => process.stderr.write(text) : undefined,
  };
  let restore: ActiveRestore | undefined;
  // --stats-json is kept up to date while the VM runs (first input, the answer, every second
  // until the restore is complete): a process ended before it exits still leaves it.
  const statsFile = flags.statsJson ? new StatsWriter(flags.statsJson) : undefined;
  if (objectStore && loadvm !== undefined) {
    restore = await objectStore.restore(machine, loadvm, restoreOpts.mode, new RestoreTimeline(machine, true));
  } else if (loadvm !== undefined || snapshotFile !== undefined) {
    const timeline = new RestoreTimeline(machine, true);
    restore = startRestore(machine, store, snapshotFile ?? store.find(loadvm!), restoreOpts, timeline, snapshotFile !== undefined ? opened : undefined);
  }
  const monitor = new Monitor(machineTarget(machine, guestName?.name));
  snapCtl = addSnapshotCommands(monitor, machine, {
    store, restore: restoreOpts,
    progress: process.stderr.isTTY ? (text) => process.stderr.write(text) : undefined,
  });
  if (restore) snapCtl.current = restore;
  const ctl = snapCtl;
  statsFile?.follow(() => ctl.current);
  if (objectStore) addStoreCommands(monitor, machine, objectStore, ctl);
  monitor.defineInfo("jit", "show the JIT's state: pages translated, blocks, modules, compile time, invalidations, share run translated",
    () => machine.jit.info());
  const stdioMonitor = monitorSpec.kind === "stdio" || flags.serial === "mon:stdio" || flags.nographic === true || monitorSpec.kind === "none";
  const socketMonitor = monitorSpec.kind === "unix" || monitorSpec.kind === "tcp";
  // With stdin not a terminal there is no Ctrl-A c: the monitor is reachable from stdin only
  // with -monitor stdio (then every piped line is a monitor command), or over its socket.
  const pipedMonitor = !process.stdin.isTTY && monitorSpec.kind === "stdio";
  const gdbRequested = flags.gdb !== undefined || flags.s === true;
  if (flags.S && !process.stdin.isTTY && !pipedMonitor && !socketMonitor && !gdbRequested) {
    throw new UsageError("-S starts the machine stopped, and with stdin not a terminal nothing could resume it " +
      "(Ctrl-A c needs a terminal): pipe monitor commands with -monitor stdio, or use -monitor unix:PATH,server,nowait");
  }
  let commands = Promise.resolve();
  terminal = new Terminal({
    guestInput: (bytes) => {
      ctl.current?.timeline.input(bytes);
      machine.input(bytes);
    },
    monitorLine: (line) => {
      // One command at a time, in the order typed (execute never throws: errors are replies).
      commands = commands.then(() => monitor.execute(line)).then((out) => terminal?.writeMonitor(out + (pipedMonitor ? "" : "(rvm) ")));
    },
    quit: () => machine.requestStop(0),
    backlog: () => machine.inputBacklog(),
    inputEnded: () => {
      // A stopped machine whose only monitor input just ended would wait forever.
      if (!pipedMonitor || socketMonitor || gdbServer) return;
      void commands.then(() => {
        if (machine.running) return;
        process.stderr.write("rvm: the machine is stopped and the monitor's input (stdin) has ended: nothing can resume it\n");
        machine.requestStop(1);
      });
    },
  }, stdioMonitor && !socketMonitor);
  if (pipedMonitor) terminal.monitorOnly();
  const server = socketMonitor ? await serveMonitor(monitorSpec, monitor) : undefined;
  // The gdb stub: -gdb SPEC or -s (tcp::1234) at start, or the monitor's `gdbserver` later.
  const debugTarget = new MachineDebugTarget(machine, (line) => monitor.execute(line), () => machine.requestStop(0));
  let gdbServer: GdbServer | undefined;
  const startGdb = async (spec: string) => {
    gdbServer?.close();
    gdbServer = undefined;
    if (spec === "none") return "Disabled gdbserver\n";
    gdbServer = await serveGdb(parseGdbSpec(spec), debugTarget);
    return `Waiting for gdb connection on device '${gdbServer.address}'\n`;
  };
  monitor.define("gdbserver", "gdbserver [device]", "start gdbserver on given device (default 'tcp::1234'), stop with 'none'",
    (a) => startGdb(a[0] ?? DEFAULT_GDB_SPEC));
  if (flags.gdb !== undefined || flags.s) await startGdb(flags.gdb ?? DEFAULT_GDB_SPEC);
  if (flags.S) machine.pause();
  terminal.start();
  const report = () => {
    const r = ctl.current;
    if (!r) return;
    const stats = r.stats(Boolean(flags.statsJson || flags.plot));
    if (flags.stats) process.stderr.write(formatRestoreStats(stats));
    statsFile?.final(stats);
    if (flags.plot) writeFileAtomic(flags.plot, Buffer.from(restoreSvg(stats, r.classes?.() ?? new Uint8Array(0))));
  };
  try {
    const result = await machine.run({
      timeoutMs: flags.timeout !== undefined ? flags.timeout * 1000 : undefined,
    });
    if (result.reason === "timeout") process.stderr.write(`rvm: timeout after ${flags.timeout} s, guest still running\n`);
    report();
    return result.exitCode;
  } finally {
    statsFile?.stop();
    terminal.stop();
    server?.close();
    gdbServer?.close();
    tracer?.close();
    store.close();
    if (temporaryStore) rmSync(temporaryStore, { recursive: true, force: true });
    objectStore?.close();
  }
}

async function restoreCommand(target: string, guest: string | undefined, flags: RunFlags & RestoreFlags & { dir?: string }): Promise<number> {
  if (flags.snapshotStore && isObjectStoreUrl(flags.snapshotStore)) {
    const vm = new StoreVm(flags.snapshotStore, { deadlineMs: flags.storeDeadline !== undefined ? flags.storeDeadline * 1000 : undefined });
    const manifest = await vm.prepare(target, flags.restore ?? "lazy");
    const config = manifest.meta.config as unknown as Omit<VirtConfig, "console">;
    config.virtioLegacy ??= false;
    return startMachine({ ...config, restoring: true, ...icountConfig(flags.icount), jit: jitEnabled(flags) }, { ...flags, objectStore: vm }, target);
  }
  if (flags.snapshotStore) flags.dir = storeDir(flags.snapshotStore);
  // A name is looked up in --dir, or next to GUEST, or in the current directory.
  const dir = flags.dir ?? flags.snapshotDir ?? (guest === undefined && !isSnapshotFile(target) ? "." : undefined);
  const { file, store } = findSnapshot(target, { dir }, guest);
  flags.snapshotDir = store.dir;
  // Opened once: the restore reads from it (opening it again took ~1 ms of header, metadata
  // and index reads, checks and parsing). Closed here if the VM ended or failed before that.
  const snap = SnapshotFile.open(file);
  try {
    // GUEST is the VM's first disk: the snapshot's drive 0 is that image wherever it was saved
    // (a snapshot from another host or from the browser page: rvm snapshot import).
    const config = (guest !== undefined ? configWithImages(snap.meta, [{ index: 0, file: resolve(guest) }])
      : snap.meta.config) as unknown as Omit<VirtConfig, "console">;
    config.virtioLegacy ??= false; // snapshots from before the legacy transport existed: modern
    return await startMachine({ ...config, restoring: true, ...icountConfig(flags.icount), jit: jitEnabled(flags) }, flags, undefined, file, snap);
  } finally {
    snap.close();
  }
}

/** Whether any drive of the machine already has a journal (snapshots exist that need it). */
function hasJournals(store: SnapshotStore, machine: { drives: { index: number; file: string }[] }): boolean {
  return machine.drives.some((d) => existsSync(join(store.dir, journalName(d.index, d.file) + ".journal")));
}


function storeCommands(program: Command): void {
  const store = program.command("store").description("the object store of snapshots (s3://): disk images, space, garbage collection");
  const url = (flags: { snapshotStore?: string }): string => {
    const u = flags.snapshotStore ?? process.env.RVM_SNAPSHOT_STORE;
    if (!u) throw new UsageError("say which store: --snapshot-store s3://BUCKET/PREFIX (or RVM_SNAPSHOT_STORE)");
    if (!isObjectStoreUrl(u)) throw new UsageError(`rvm store works on object stores (s3://BUCKET/PREFIX), not "${u}"`);
    return u;
  };
  const opt = () => new Option("--snapshot-store <url>", "the store: s3://BUCKET/PREFIX (default: $RVM_SNAPSHOT_STORE)");
  store
    .command("push-image")
    .description("upload a disk image once, as content-addressed blocks: VMs booted from it share them")
    .argument("<image>", "a raw disk image")
    .addOption(opt())
    .action(async (image: string, flags: { snapshotStore?: string }) => {
      process.stdout.write(await storeCommand(url(flags), "push-image", image));
    });
  store
    .command("gc")
    .description("delete the packs and map chunks no snapshot or image refers to (safe while saves run)")
    .addOption(opt())
    .action(async (flags: { snapshotStore?: string }) => {
      process.stdout.write(await storeCommand(url(flags), "gc"));
    });
  store
    .command("du")
    .description("bytes and objects in the store")
    .addOption(opt())
    .action(async (flags: { snapshotStore?: string }) => {
      process.stdout.write(await storeCommand(url(flags), "du"));
    });
}

export function buildProgram(): Command {
  const program = new Command();
  program
    .name("rvm")
    .description("A RISC-V RV64 machine compatible with QEMU's virt board: run guests, save and restore them")
    .version(`rvm ${version()}`, "--version", "print rvm's version")
    .configureOutput({ outputError: (str, write) => write(formatCommanderError(str)) })
    .showSuggestionAfterError(false);
  program
    .command("run")
    .description("run a guest on the virt board. FILE may be a bare-metal ELF (HTIF tohost/fromhost supported), " +
      "a kernel ELF started in M-mode (like -bios none -kernel), a Linux Image, a bootable disk image, " +
      "a guest description (.json), or a raw binary (.bin) loaded at 0x80000000")
    .argument("[file]", "the guest (.gz accepted)")
    .option("-M, --machine <spec>", "machine: virt[,accel=tcg][,aclint=off][,aia=none][,dumpdtb=FILE] (repeatable)", collect, [])
    .option("--cpu <model>", "CPU model: rv64 (rvm's only one)")
    .addOption(new Option("-m, --memory <size>", "guest RAM, e.g. 128M, 1.5G (like QEMU's -m; default 128M, 256M for a bootable disk image)").argParser(parseSize))
    .option("--smp <n>", "number of harts, 1..8 (QEMU's -smp N or cpus=N)")
    .option("--bios <file>", "firmware: default (OpenSBI fw_dynamic), none, or a file")
    .option("--kernel <file>", "kernel: Linux Image (.gz ok), ELF, or raw")
    .option("--initrd <file>", "initial ramdisk")
    .option("--append <cmdline>", "kernel command line")
    .option("--drive <spec>", "disk: file=PATH,format=raw[,if=virtio|none][,id=ID][,readonly=on] (repeatable)", collect, [])
    .option("--device <spec>", "virtio-blk-device,drive=ID[,bus=virtio-mmio-bus.N] (repeatable)", collect, [])
    .option("--global <spec>", "virtio-mmio.force-legacy=on|off: the legacy (version 1, the default) or modern virtio-mmio transport", collect, [])
    .option("--nographic", "no display (the console is the terminal; always so in rvm)")
    .option("--monitor <spec>", "monitor: stdio, none, unix:PATH,server,nowait or tcp:HOST:PORT,server,nowait")
    .option("--serial <spec>", "serial console: mon:stdio (default) or stdio")
    .option("--display <type>", "display: none (rvm has no graphics)")
    .option("-S", "start with the machine stopped (use the monitor's cont, or gdb's continue)")
    .option("--no-reboot", "exit (code 0) when the guest resets instead of rebooting")
    .option("--snapshot", "write the guest's disk writes to temporary files, leaving the images untouched (QEMU's -snapshot)")
    .option("--rtc <spec>", "the goldfish RTC: [base=utc|localtime|2006-06-17T16:01:21][,clock=host|rt|vm]")
    .option("--name <name>", "the guest's name: NAME or guest=NAME[,process=TITLE] (monitor: info name)")
    .option("-s", "shorthand for -gdb tcp::1234")
    .option("--gdb <dev>", "wait for gdb on tcp::PORT, tcp:HOST:PORT or unix:PATH,server (loopback unless HOST is named)")
    .option("--loadvm <name>", "start from snapshot NAME instead of booting (QEMU's -loadvm)")
    .addOption(new Option("--restore <mode>", "with -loadvm: lazy (run at once, pages on demand; default) or eager (read everything first)").choices(["lazy", "eager"]))
    .addOption(new Option("--order <order>", "lazy restore: workingset (default: the working set read at once, then the rest in the file's order), page (page order) or demand (no background fetch)").choices(["workingset", "page", "demand"]))
    .option("--restore-rate <MiB/s>", "lazy restore: limit the background fetcher to this many MiB/s (demand faults are not limited)", parseRate)
    .option("--stats", "after the run, print the restore's statistics (TTFI, faults, TTR, ...) to stderr")
    .option("--stats-json <file>", "write the restore's statistics and utilization curve as JSON")
    .option("--plot <file.svg>", "with -loadvm: draw the restore (pages by how they came back, U(t, w), demand faults) as SVG")
    .option("--snapshot-dir <dir>", "where savevm writes snapshots (default: next to the first disk, DISK.snapshots/)")
    .option("--snapshot-store <url>", "where snapshots live: file:DIR (a directory) or s3://BUCKET/PREFIX (an S3 object store; AWS_* variables and profiles give endpoint and credentials)")
    .option("--store-deadline <seconds>", "how long a restore from an object store waits for an unreachable store before it stops the VM (default 120)", parseSeconds)
    .addOption(new Option("--format <format>", "how to load FILE (default: by its contents; raw for *.bin)").choices(["elf", "raw"]))
    .option("--timeout <seconds>", "stop the guest after this much wall-clock time (exit code 124)", parseSeconds)
    .option("--icount <spec>", "deterministic time: [shift=]N[,sleep=on|off]: mtime advances one tick every 2^N instructions; " +
      "sleep=off jumps an idle hart's time to its next timer deadline at once (default on: idle time passes at host speed)")
    .option("--trace", "print every instruction executed (privilege, pc, encoding): -d insn")
    .option("-d <items>", "QEMU's log items, comma separated: in_asm, exec, cpu, int, mmu, guest_errors, unimp (-d help)")
    .option("-D <file>", "write the -d log to FILE instead of stderr")
    .addOption(new Option("--jit <mode>", `compile hot guest code to WebAssembly: on or off (default ${JIT_DEFAULT})`).choices(["on", "off"]))
    .addHelpText("after", [
      "",
      "QEMU's one-dash spellings work too: -M virt -m 256M -smp 1 -nographic -bios fw_dynamic.bin",
      "  -kernel Image -initrd initrd.cpio -append \"console=ttyS0\"",
      "  -drive file=disk.img,format=raw,if=none,id=hd0 -device virtio-blk-device,drive=hd0",
      // At the start of a line, as in QEMU's -help: xv6's Makefile greps for '^-gdb' to choose
      // between -gdb tcp::PORT and the old -s -p PORT.
      "-gdb dev        QEMU's spelling of --gdb (-S -gdb tcp::PORT: wait for gdb-multiarch)",
      "",
      "Console keys (as QEMU -nographic): C-a x quit, C-a c console/monitor, C-a h help, C-a C-a sends C-a.",
      "The exit code is the guest's: HTIF exit (tohost = code << 1 | 1), syscon poweroff (0 or its code),",
      "or 124 on --timeout.",
    ].join("\n"))
    .action(async (file: string | undefined, flags: RunFlags) => {
      process.exitCode = await runCommand(file, flags);
    });
  snapshotCommands(program);
  storeCommands(program);
  program
    .command("restore")
    .description("start a saved VM from a snapshot (its machine configuration is in the snapshot)")
    .argument("<snapshot>", "a snapshot name (with --dir or GUEST) or a .rvmsnap file")
    .argument("[guest]", "the guest's first disk image (its snapshots are in GUEST.snapshots/)")
    .option("--dir <dir>", "the snapshot directory (for a name; default: the current directory)")
    .option("--snapshot-store <url>", "where the snapshot is: file:DIR or s3://BUCKET/PREFIX (nothing else is needed on this host)")
    .option("--store-deadline <seconds>", "how long to wait for an unreachable object store before stopping the VM (default 120)", parseSeconds)
    .addOption(new Option("--restore <mode>", "lazy (default: the VM runs at once, memory comes back behind it) or eager").choices(["lazy", "eager"]))
    .addOption(new Option("--order <order>", "lazy restore: workingset (default: the working set read at once, then the rest in the file's order), page (page order) or demand (no background fetch)").choices(["workingset", "page", "demand"]))
    .option("--restore-rate <MiB/s>", "lazy restore: limit the background fetcher to this many MiB/s (demand faults are not limited)", parseRate)
    .option("--stats", "print the restore's statistics to stderr when the VM ends")
    .option("--stats-json <file>", "write the restore's statistics and utilization curve as JSON")
    .option("--plot <file.svg>", "when the VM ends, draw the restore (pages by how they came back, U(t, w), demand faults) as SVG")
    .option("--monitor <spec>", "monitor: stdio, none, unix:PATH,server,nowait or tcp:HOST:PORT,server,nowait")
    .option("--timeout <seconds>", "stop the guest after this much wall-clock time (exit code 124)", parseSeconds)
    .option("--icount <spec>", "deterministic time: [shift=]N[,sleep=on|off]")
    .addOption(new Option("--jit <mode>", `compile hot guest code to WebAssembly: on or off (default ${JIT_DEFAULT})`).choices(["on", "off"]))
    .option("-S", "start with the machine stopped")
    .action(async (target: string, guest: string | undefined, flags: RunFlags & RestoreFlags & { dir?: string }) => {
      process.exitCode = await restoreCommand(target, guest, { ...flags, machine: [], drive: [], device: [], global: [] });
    });
  program
    .command("web")
    .description("serve the browser page on 127.0.0.1: the guest runs in the browser tab (xterm.js console, monitor, RAM pictures)")
    .argument("[guest]", "what to run, as rvm run FILE takes it (default: guests/linux.img)")
    .addOption(new Option("-m, --memory <size>", "guest RAM (as rvm run)").argParser(parseSize))
    .option("--port <port>", "TCP port (default: any free one)", (v) => {
      const n = Number(v);
      if (!Number.isInteger(n) || n < 0 || n > 65535) throw new InvalidArgumentError(`not a port number: "${v}"`);
      return n;
    })
    .option("--host <address>", "address to listen on (default 127.0.0.1, this machine only)")
    .action(async (guest: string | undefined, flags: { memory?: number; port?: number; host?: string }) => {
      const { url } = await serveWeb({ guest, memory: flags.memory, port: flags.port, host: flags.host });
      process.stdout.write(`rvm: serving the page at ${url} (Ctrl-C stops)\n`);
      await new Promise<never>(() => undefined);
    });
  program
    .command("dumpdtb")
    .description("write the virt board's device tree blob (read it with: dtc -I dtb -O dts FILE)")
    .argument("<out>", "output file")
    .addOption(new Option("-m, --memory <size>", "guest RAM (default 128M)").argParser(parseSize))
    .option("--append <cmdline>", "kernel command line for /chosen/bootargs")
    .option("--smp <n>", "number of harts, 1..8")
    .action((out: string, flags: { memory?: number; append?: string; smp?: string }) => {
      writeFileAtomic(out, virtDtbFor(flags.memory ?? 128 << 20, flags.append, parseSmp(flags.smp)));
    });
  return program;
}

export async function main(argv: string[]): Promise<void> {
  markProcess("rvm's modules loaded");
  try {
    await buildProgram().parseAsync(qemuArgsToLong(argv.slice(2)), { from: "user" });
  } catch (e) {
    if (e instanceof RvmError) {
      process.stderr.write(`rvm: ${e.message}\n`);
      process.exitCode = 1;
      return;
    }
    throw e;
  }
}
