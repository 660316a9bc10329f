// Machine configuration from the command line, in QEMU's spelling where rvm shares an option
// with qemu-system-riscv64 (so course material carries over) and in rvm's own long forms.

import { UsageError } from "./errors.js";

export interface DriveConfig {
  file: string;
  id?: string;
  readonly: boolean;
  /** Attached to a virtio-blk device (if=virtio, or -device virtio-blk-device,drive=id). */
  attached: boolean;
}

export type MonitorSpec =
  | { kind: "none" }
  | { kind: "stdio" }
  | { kind: "unix"; path: string }
  | { kind: "tcp"; host: string; port: number };

/** QEMU options that take one dash and a long name; rvm's parser wants two dashes. */
const QEMU_LONG = new Set([
  "smp", "bios", "kernel", "initrd", "append", "drive", "device", "nographic", "monitor", "serial",
  "loadvm", "icount", "snapshot-dir", "machine", "display", "no-reboot", "dtb", "snapshot",
]);

/** Rewrites `-kernel X` into `--kernel X` (and so on) before commander sees the arguments. */
export function qemuArgsToLong(args: string[]): string[] {
  return args.map((a) => {
    const m = /^-([a-z][a-z-]+)(=.*)?$/.exec(a);
    return m && QEMU_LONG.has(m[1]) ? "-" + a : a;
  });
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

function onOff(v: string | undefined, what: string): boolean {
  if (v === undefined || v === "off" || v === "false" || v === "no") return false;
  if (v === "on" || v === "true" || v === "yes") return true;
  throw new UsageError(`${what}: expected on or off, not "${v}"`);
}

/** -drive file=...,format=raw,if=none|virtio,id=...,readonly=on|off */
export function parseDrive(spec: string): DriveConfig {
  const { first, props } = parseKeyValues(spec);
  const file = props.get("file") ?? (first || undefined);
  if (!file) throw new UsageError(`-drive ${spec}: no file=`);
  const format = props.get("format") ?? "raw";
  if (format !== "raw") throw new UsageError(`-drive ${spec}: only format=raw is supported, not ${format}`);
  const iface = props.get("if") ?? "virtio";
  if (iface !== "virtio" && iface !== "none") throw new UsageError(`-drive ${spec}: if=${iface} is not available (use if=virtio or if=none)`);
  for (const key of props.keys()) {
    if (!["file", "format", "if", "id", "readonly", "cache", "media", "discard"].includes(key)) {
      throw new UsageError(`-drive ${spec}: unknown property ${key}`);
    }
  }
  return { file, id: props.get("id"), readonly: onOff(props.get("readonly"), "-drive readonly"), attached: iface === "virtio" };
}

/** -device virtio-blk-device,drive=ID attaches an if=none drive. */
export function applyDevice(spec: string, drives: DriveConfig[]): void {
  const { first, props } = parseKeyValues(spec);
  if (first !== "virtio-blk-device") {
    throw new UsageError(`-device ${first}: not available on rvm's virt board (supported: virtio-blk-device)`);
  }
  const id = props.get("drive");
  const drive = drives.find((d) => d.id === id);
  if (!drive) throw new UsageError(`-device ${spec}: no -drive with id=${id ?? "(none)"}`);
  drive.attached = true;
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
