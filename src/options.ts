// Machine configuration from the command line, in QEMU's spelling where rvm shares an option
// with qemu-system-riscv64 (so course material carries over) and in rvm's own long forms.
// Every option and property either does what QEMU's does or is refused with a one-line error
// that names it: nothing on a QEMU command line is silently ignored.

import { UsageError } from "./errors.js";
import type { RtcBase } from "./devices/goldfish-rtc.js";

export interface DriveConfig {
  file: string;
  id?: string;
  readonly: boolean;
  /** Attached to a virtio-blk device (if=virtio, or -device virtio-blk-device,drive=id). */
  attached: boolean;
  /** The virtio-mmio slot (`bus=virtio-mmio-bus.N`), 0..7; the board fills in the rest. */
  slot?: number;
  /** QEMU's snapshot=on (-snapshot): the guest's writes go to a temporary overlay, the image is not written. */
  snapshot?: boolean;
}

/** Machine-wide properties set with -global DRIVER.PROPERTY=VALUE. */
export interface GlobalProps {
  /** virtio-mmio.force-legacy: the version 1 (legacy) register layout. */
  virtioLegacy?: boolean;
}

export type MonitorSpec =
  | { kind: "none" }
  | { kind: "stdio" }
  | { kind: "unix"; path: string }
  | { kind: "tcp"; host: string; port: number };

/** The virtio-mmio slots of QEMU's virt board: virtio-mmio-bus.0 .. .7 at 0x1000_1000 + N * 0x1000. */
export const VIRTIO_BUSES = 8;

/**
 * QEMU options that take one dash and a long name (rvm's parser wants two dashes), and whether
 * each takes a value. Single-letter ones (-m, -M, -S) are commander's short options already.
 */
const QEMU_LONG: Record<string, boolean> = {
  smp: true, bios: true, kernel: true, initrd: true, append: true, drive: true, device: true, global: true,
  machine: true, cpu: true, nographic: false, monitor: true, serial: true, display: true, loadvm: true,
  icount: true, "snapshot-dir": true, "no-reboot": false, name: true, snapshot: false, rtc: true, gdb: true,
};

/** QEMU options rvm does not have, with what to do instead (named in the error). */
const NOT_IMPLEMENTED: Record<string, string> = {
  netdev: "rvm has no network devices",
  nic: "rvm has no network devices",
  net: "rvm has no network devices",
  object: "rvm has no backend objects (rng, memory backends, ...)",
  chardev: "rvm's only character device is the console on the terminal",
  dtb: "rvm always builds the virt board's device tree itself (see rvm dumpdtb)",
  accel: "rvm runs guests on its own interpreter (like accel=tcg); there is no other accelerator",
  "enable-kvm": "rvm runs guests on its own interpreter; there is no KVM",
  vga: "rvm has no graphics",
  usb: "rvm has no USB",
  audiodev: "rvm has no sound",
  fsdev: "rvm has no 9p file sharing",
  virtfs: "rvm has no 9p file sharing",
  hda: "rvm has no IDE; use -drive file=F,format=raw,if=virtio",
  cdrom: "rvm has no CD-ROM",
  boot: "rvm's virt board boots what -bios and -kernel say",
  qmp: "rvm's monitor speaks HMP only (-monitor)",
  incoming: "rvm has no live migration; use savevm and -loadvm",
  "daemonize": "rvm runs in the foreground",
  pidfile: "rvm writes no pid file",
  L: "rvm finds its firmware itself",
};

/**
 * Rewrites QEMU's one-dash long options into commander's two-dash form (`-kernel X` becomes
 * `--kernel X`), leaving option values alone (`-append "-x"` keeps its value). Unknown
 * one-dash words are rewritten too, so commander reports them as unknown options.
 */
export function qemuArgsToLong(args: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === "--") {
      out.push(...args.slice(i));
      break;
    }
    const m = /^-([a-zA-Z][a-zA-Z0-9-]+)(=.*)?$/.exec(a);
    if (!m) {
      out.push(a);
      continue;
    }
    out.push("-" + a);
    if (QEMU_LONG[m[1]] && m[2] === undefined && i + 1 < args.length) out.push(args[++i]);
  }
  return out;
}

/**
 * Turns commander's error text into rvm's one line: `rvm: -netdev: not supported (...)`.
 * Commander names options with two dashes; QEMU's users wrote one.
 */
export function formatCommanderError(text: string): string {
  const lines = text.trim().split("\n").map((l) => l.trim()).filter(Boolean);
  let msg = lines.join("; ").replace(/^error: /, "");
  const unknown = /^unknown option '--?([^']+)'/.exec(msg);
  if (unknown) {
    const name = unknown[1];
    const why = NOT_IMPLEMENTED[name];
    msg = why ? `-${name}: not supported: ${why}` : `-${name}: unknown option (rvm run --help lists the options rvm has)`;
  }
  return `rvm: ${msg}\n`;
}

/** Splits a QEMU option string `a=b,c=d,flag` (",," is a literal comma). */
export function parseKeyValues(spec: string): { first: string; props: Map<string, string> } {
  const parts: string[] = [];
  let cur = "";
  for (let i = 0; i < spec.length; i++) {
    if (spec[i] === ",") {
      if (spec[i + 1] === ",") {
        cur += ",";
        i++;
        continue;
      }
      parts.push(cur);
      cur = "";
    } else cur += spec[i];
  }
  parts.push(cur);
  const props = new Map<string, string>();
  let first = "";
  parts.forEach((p, i) => {
    const eq = p.indexOf("=");
    if (eq < 0) {
      if (i === 0) first = p;
      else props.set(p, "on");
    } else props.set(p.slice(0, eq), p.slice(eq + 1));
  });
  return { first, props };
}

/** A QEMU boolean: on/off, yes/no, true/false (QEMU's qapi accepts all three pairs). */
export function parseBool(v: string | undefined, what: string): boolean {
  if (v === undefined || v === "off" || v === "false" || v === "no") return false;
  if (v === "on" || v === "true" || v === "yes") return true;
  throw new UsageError(`${what}: expected on or off, not "${v}"`);
}

/** Refuses properties outside `known`, naming the first unknown one. */
function checkKnown(option: string, spec: string, props: Map<string, string>, known: readonly string[]): void {
  for (const key of props.keys()) {
    if (!known.includes(key)) throw new UsageError(`${option} ${spec}: unknown property '${key}' (rvm has: ${known.join(", ")})`);
  }
}

/** -drive file=...,format=raw,if=none|virtio,id=...,readonly=on|off */
export function parseDrive(spec: string): DriveConfig {
  const { first, props } = parseKeyValues(spec);
  const file = props.get("file") ?? (first || undefined);
  if (!file) throw new UsageError(`-drive ${spec}: no file=`);
  checkKnown("-drive", spec, props, ["file", "format", "if", "id", "readonly", "media", "snapshot"]);
  const format = props.get("format") ?? "raw";
  if (format !== "raw") throw new UsageError(`-drive ${spec}: only format=raw is supported, not ${format}`);
  const iface = props.get("if") ?? "virtio";
  if (iface !== "virtio" && iface !== "none") throw new UsageError(`-drive ${spec}: if=${iface} is not available (use if=virtio or if=none)`);
  const media = props.get("media") ?? "disk";
  if (media !== "disk") throw new UsageError(`-drive ${spec}: media=${media} is not available (rvm has disks only)`);
  const drive: DriveConfig = { file, id: props.get("id"), readonly: parseBool(props.get("readonly"), "-drive readonly"), attached: iface === "virtio" };
  if (props.has("snapshot")) drive.snapshot = parseBool(props.get("snapshot"), "-drive snapshot");
  return drive;
}

/** `virtio-mmio-bus.N` -> N, or a one-line error naming the bus. */
function parseBus(spec: string, bus: string): number {
  const m = /^virtio-mmio-bus\.(\d+)$/.exec(bus);
  if (!m) throw new UsageError(`-device ${spec}: bus '${bus}' not found (virtio-blk-device goes on virtio-mmio-bus.0 .. virtio-mmio-bus.${VIRTIO_BUSES - 1})`);
  const n = Number(m[1]);
  if (n >= VIRTIO_BUSES) throw new UsageError(`-device ${spec}: bus '${bus}' not found (the virt board has virtio-mmio-bus.0 .. virtio-mmio-bus.${VIRTIO_BUSES - 1})`);
  return n;
}

/**
 * The drives of a command line and the order QEMU creates their devices in, which decides
 * their virtio-mmio slots: `-device` entries in command-line order, each taking its `bus=` or
 * else the highest free slot (QEMU's bus search finds the last-created free bus first), then
 * rvm's own attachments (if=virtio drives, a disk image given as FILE).
 */
export class DriveList {
  readonly drives: DriveConfig[] = [];
  private readonly slots = new Map<number, DriveConfig>();
  /** The slots of `-device virtio-rng-device`s. */
  readonly rngSlots: number[] = [];

  addDrive(spec: string): void {
    this.drives.push(parseDrive(spec));
  }

  /** -device virtio-blk-device,drive=ID[,bus=virtio-mmio-bus.N] attaches an if=none drive. */
  addDevice(spec: string): void {
    const { first, props } = parseKeyValues(spec);
    if (first === "virtio-rng-device") {
      // QEMU's properties: rng= (a backend object; rvm's is the host's CSPRNG), max-bytes, period.
      checkKnown("-device", spec, props, ["bus", "id", "max-bytes", "period"]);
      const bus = props.get("bus");
      const n = bus !== undefined ? parseBus(spec, bus) : this.highestFree(`-device ${spec}`);
      if (this.slots.has(n) || this.rngSlots.includes(n)) throw new UsageError(`-device ${spec}: bus '${bus}' is full`);
      this.rngSlots.push(n);
      return;
    }
    if (first !== "virtio-blk-device") {
      throw new UsageError(`-device ${first}: not available on rvm's virt board (supported: virtio-blk-device, virtio-rng-device)`);
    }
    checkKnown("-device", spec, props, ["drive", "bus"]);
    const id = props.get("drive");
    const drive = this.drives.find((d) => d.id === id && id !== undefined);
    if (!drive) throw new UsageError(`-device ${spec}: no -drive with id=${id ?? "(none)"}`);
    if (drive.attached) throw new UsageError(`-device ${spec}: drive ${id} is already attached to a device`);
    const bus = props.get("bus");
    if (bus !== undefined) {
      const n = parseBus(spec, bus);
      if (this.rngSlots.includes(n)) throw new UsageError(`-device ${spec}: bus '${bus}' is full (a virtio-rng-device is on it)`);
      if (this.slots.has(n)) throw new UsageError(`-device ${spec}: bus '${bus}' is full (drive ${this.slots.get(n)!.id ?? this.slots.get(n)!.file} is on it)`);
      this.place(drive, n);
    } else {
      this.place(drive, this.highestFree(`-device ${spec}`));
    }
  }

  /**
   * All drives, the attached ones first in device order (the first lands in the highest slot,
   * the guest's first disk). Drives rvm attached itself (if=virtio, FILE, a guest description)
   * take the highest free slots after the -device ones.
   */
  finish(): DriveConfig[] {
    for (const d of this.drives) if (d.attached && d.slot === undefined) this.place(d, this.highestFree(d.file));
    const attached = [...this.slots.values()];
    return [...attached, ...this.drives.filter((d) => !attached.includes(d))];
  }

  private place(drive: DriveConfig, slot: number): void {
    drive.attached = true;
    drive.slot = slot;
    this.slots.set(slot, drive);
  }

  private highestFree(what: string): number {
    const slot = freeSlot(new Set([...this.slots.keys(), ...this.rngSlots]));
    if (slot < 0) throw new UsageError(`${what}: no free virtio-mmio slot (the virt board has ${VIRTIO_BUSES})`);
    return slot;
  }
}

/** The highest virtio-mmio slot not in `taken`, or -1. */
export function freeSlot(taken: ReadonlySet<number>): number {
  for (let n = VIRTIO_BUSES - 1; n >= 0; n--) if (!taken.has(n)) return n;
  return -1;
}

/** -global DRIVER.PROPERTY=VALUE, or -global driver=D,property=P,value=V. */
export function applyGlobal(spec: string, globals: GlobalProps): void {
  let driver: string | undefined, property: string | undefined, value: string | undefined;
  const dotted = /^([^.=,]+)\.([^=,]+)=(.*)$/.exec(spec);
  if (dotted) [, driver, property, value] = dotted;
  else {
    const { props } = parseKeyValues(spec);
    checkKnown("-global", spec, props, ["driver", "property", "value"]);
    driver = props.get("driver");
    property = props.get("property");
    value = props.get("value");
  }
  if (!driver || !property || value === undefined) throw new UsageError(`-global ${spec}: expected DRIVER.PROPERTY=VALUE`);
  if (driver !== "virtio-mmio") throw new UsageError(`-global ${spec}: rvm has no global properties of '${driver}' (it has virtio-mmio.force-legacy)`);
  if (property !== "force-legacy") throw new UsageError(`-global ${spec}: virtio-mmio has no property '${property}' (rvm has force-legacy)`);
  globals.virtioLegacy = parseBool(value, `-global ${spec}`);
}

/** -machine / -M: `virt` and the properties rvm has. Returns where to dump the device tree, if asked. */
export function parseMachine(specs: readonly string[]): { dumpdtb?: string } {
  let type: string | undefined;
  let dumpdtb: string | undefined;
  for (const spec of specs) {
    const { first, props } = parseKeyValues(spec);
    if (first !== "") {
      if (first !== "virt") throw new UsageError(`-machine ${first}: rvm has only the virt machine`);
      type = first;
    }
    for (const [key, value] of props) {
      switch (key) {
        case "type":
          if (value !== "virt") throw new UsageError(`-machine type=${value}: rvm has only the virt machine`);
          type = value;
          break;
        case "accel":
          if (value !== "tcg") throw new UsageError(`-machine accel=${value}: rvm runs guests on its own interpreter (accel=tcg); there is no ${value}`);
          break;
        case "aclint":
          if (parseBool(value, "-machine aclint")) throw new UsageError("-machine aclint=on: not supported (rvm's virt board has the SiFive CLINT, as aclint=off)");
          break;
        case "aia":
          if (value !== "none") throw new UsageError(`-machine aia=${value}: not supported (rvm's virt board has the PLIC, as aia=none)`);
          break;
        case "dumpdtb":
          if (!value) throw new UsageError("-machine dumpdtb: needs a file name");
          dumpdtb = value;
          break;
        default:
          throw new UsageError(`-machine ${spec}: unknown property '${key}' (rvm has: accel=tcg, aclint=off, aia=none, dumpdtb=FILE)`);
      }
    }
  }
  if (specs.length > 0 && type === undefined) throw new UsageError(`-machine ${specs.join(" ")}: no machine type (rvm has virt)`);
  return { dumpdtb };
}

/** -cpu: rvm's hart is QEMU's `rv64` model (without its optional extensions). */
export function checkCpu(spec: string): void {
  const { first, props } = parseKeyValues(spec);
  if (first !== "rv64") throw new UsageError(`-cpu ${first}: rvm has only the rv64 CPU model (rv64imafdc, Sv39/Sv48, Sstc)`);
  if (props.size > 0) throw new UsageError(`-cpu ${spec}: rvm's rv64 has no configurable properties (${[...props.keys()][0]})`);
}

/** -serial: the console is the terminal, with or without the monitor multiplexed on it. */
export function checkSerial(spec: string): void {
  if (spec !== "mon:stdio" && spec !== "stdio") throw new UsageError(`-serial ${spec}: not supported (rvm's serial console is the terminal: mon:stdio or stdio)`);
}

/** -display: rvm has no graphics; only `none` is meaningful. */
export function checkDisplay(spec: string): void {
  if (parseKeyValues(spec).first !== "none") throw new UsageError(`-display ${spec}: rvm has no graphics (use -display none or -nographic)`);
}

export interface IcountConfig {
  shift: number;
  /** QEMU's sleep=on (default): an idle hart lets guest time pass at host speed; off: jump to the next deadline. */
  sleep: boolean;
}

/** -icount [shift=]N[,sleep=on|off][,align=off] */
export function parseIcount(spec: string): IcountConfig {
  const { first, props } = parseKeyValues(spec);
  checkKnown("-icount", spec, props, ["shift", "sleep", "align"]);
  const text = props.get("shift") ?? first;
  if (text === "auto") throw new UsageError(`-icount ${spec}: shift=auto is not supported (give a fixed shift 0..10)`);
  const shift = Number(text);
  if (text === "" || !Number.isInteger(shift) || shift < 0 || shift > 10) throw new UsageError(`-icount ${spec}: shift must be an integer 0..10`);
  if (parseBool(props.get("align"), "-icount align")) throw new UsageError(`-icount ${spec}: align=on is not supported`);
  return { shift, sleep: props.has("sleep") ? parseBool(props.get("sleep"), "-icount sleep") : true };
}

/** The goldfish RTC's configuration (-rtc). */
export interface RtcConfig {
  base: RtcBase;
  /** host: the host's wall clock (QEMU's default); rt: its monotonic clock; vm: guest time. */
  clock: "host" | "rt" | "vm";
}

/** -rtc [base=utc|localtime|DATE][,clock=host|rt|vm][,driftfix=none] */
export function parseRtc(spec: string): RtcConfig {
  const { first, props } = parseKeyValues(spec);
  if (first !== "") throw new UsageError(`-rtc ${spec}: expected base=..., clock=... (e.g. -rtc base=localtime)`);
  checkKnown("-rtc", spec, props, ["base", "clock", "driftfix"]);
  const b = props.get("base") ?? "utc";
  let base: RtcBase;
  if (b === "utc" || b === "localtime") base = b;
  else {
    // QEMU's forms: 2006-06-17T16:01:21 or 2006-06-17, in UTC.
    const m = /^(\d{4})-(\d{2})-(\d{2})(?:T(\d{2}):(\d{2}):(\d{2}))?$/.exec(b);
    const date = m ? Date.UTC(+m[1], +m[2] - 1, +m[3], +(m[4] ?? 0), +(m[5] ?? 0), +(m[6] ?? 0)) : NaN;
    if (!m || Number.isNaN(date) || new Date(date).getUTCDate() !== +m[3]) {
      throw new UsageError(`-rtc base=${b}: expected utc, localtime or a date like 2006-06-17T16:01:21`);
    }
    base = { date };
  }
  const clock = props.get("clock") ?? "host";
  if (clock !== "host" && clock !== "rt" && clock !== "vm") throw new UsageError(`-rtc clock=${clock}: expected host, rt or vm`);
  const driftfix = props.get("driftfix") ?? "none";
  if (driftfix !== "none") throw new UsageError(`-rtc driftfix=${driftfix}: not supported (it concerns the x86 RTC; rvm has driftfix=none)`);
  return { base, clock };
}

/** -name NAME or -name guest=NAME[,process=P][,debug-threads=on|off] */
export function parseName(spec: string): { name: string; process?: string } {
  const { first, props } = parseKeyValues(spec);
  checkKnown("-name", spec, props, ["guest", "process", "debug-threads"]);
  parseBool(props.get("debug-threads"), "-name debug-threads"); // rvm has one thread: nothing to name
  return { name: props.get("guest") ?? first, process: props.get("process") };
}

/** -monitor stdio | none | unix:PATH,server,nowait | tcp:HOST:PORT,server,nowait */
export function parseMonitor(spec: string): MonitorSpec {
  const { first } = parseKeyValues(spec);
  if (first === "stdio") return { kind: "stdio" };
  if (first === "none") return { kind: "none" };
  if (first.startsWith("unix:")) {
    const path = first.slice(5);
    if (!path) throw new UsageError(`-monitor ${spec}: empty socket path`);
    return { kind: "unix", path };
  }
  if (first.startsWith("tcp:")) {
    const rest = first.slice(4);
    const colon = rest.lastIndexOf(":");
    const host = colon > 0 ? rest.slice(0, colon) : "127.0.0.1";
    const port = Number(rest.slice(colon + 1));
    if (!Number.isInteger(port) || port < 0 || port > 65535) throw new UsageError(`-monitor ${spec}: bad port`);
    return { kind: "tcp", host: host === "" ? "127.0.0.1" : host, port };
  }
  throw new UsageError(`-monitor ${spec}: expected stdio, none, unix:PATH,server,nowait or tcp:HOST:PORT,server,nowait`);
}

/** The most harts -smp may ask for (the core's MAX_HARTS). */
export const SMP_MAX = 8;

/**
 * -smp [cpus=]N[,sockets=1][,cores=N][,threads=1][,maxcpus=N]: the number of harts, 1..SMP_MAX.
 * rvm's harts sit in one socket and one cluster, each a core with one thread, as QEMU's default.
 */
export function parseSmp(spec: string | undefined): number {
  if (spec === undefined) return 1;
  const { first, props } = parseKeyValues(spec);
  const count = (key: string, v: string): number => {
    if (!/^\d+$/.test(v)) throw new UsageError(`-smp ${spec}: ${key} must be a number, not "${v}"`);
    return Number(v);
  };
  let cpus = first !== "" ? count("the hart count", first) : undefined;
  for (const [key, v] of props) {
    if (key === "cpus" || key === "maxcpus") cpus ??= count(key, v);
    else if (key === "cores") cpus ??= count(key, v);
    else if (key === "sockets" || key === "threads" || key === "dies" || key === "clusters") {
      if (count(key, v) !== 1) throw new UsageError(`-smp ${spec}: rvm has one ${key.replace(/s$/, "")} (${key}=1)`);
    } else throw new UsageError(`-smp ${spec}: unknown property ${key}`);
  }
  for (const key of ["cpus", "maxcpus", "cores"]) {
    const v = props.get(key);
    if (v !== undefined && cpus !== undefined && count(key, v) !== cpus) throw new UsageError(`-smp ${spec}: ${key}=${v} does not match ${cpus} harts (rvm has no hotplug)`);
  }
  if (cpus === undefined || cpus < 1 || cpus > SMP_MAX) throw new UsageError(`-smp ${spec}: rvm has 1 to ${SMP_MAX} harts`);
  return cpus;
}
