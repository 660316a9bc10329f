// Where the gdb stub listens: QEMU's `-gdb` device spellings — tcp::PORT (loopback),
// tcp:HOST:PORT, unix:PATH[,server][,nowait] — and `-s` (= tcp::1234). One debugger at a time,
// as QEMU: a second connection is refused while one is attached.

import type { Server, Socket } from "node:net";
import { existsSync, unlinkSync } from "node:fs";
import { UsageError } from "../errors.js";
import { DebugTarget, GdbSession } from "./stub.js";

export type GdbSpec = { kind: "tcp"; host: string; port: number } | { kind: "unix"; path: string };

export const DEFAULT_GDB_SPEC = "tcp::1234";

export function parseGdbSpec(spec: string): GdbSpec {
  const [first, ...opts] = spec.split(",");
  for (const o of opts) {
    if (!["server", "nowait", "wait=off", "server=on"].includes(o)) throw new UsageError(`-gdb ${spec}: unknown option ${o}`);
  }
  if (first.startsWith("unix:")) {
    const path = first.slice(5);
    if (!path) throw new UsageError(`-gdb ${spec}: empty socket path`);
    return { kind: "unix", path };
  }
  const m = /^(?:tcp:)?(?:(\[[^\]]*\]|[^:]*):)?(\d+)$/.exec(first);
  if (!m) throw new UsageError(`-gdb ${spec}: expected tcp::PORT, tcp:HOST:PORT or unix:PATH,server`);
  const port = Number(m[2]);
  if (port < 0 || port > 65535) throw new UsageError(`-gdb ${spec}: bad port`);
  const host = (m[1] ?? "").replace(/^\[|\]$/g, "");
  return { kind: "tcp", host: host === "" ? "127.0.0.1" : host, port };
}

export function describeGdbSpec(spec: GdbSpec): string {
  return spec.kind === "unix" ? `unix:${spec.path},server` : `tcp:${spec.host}:${spec.port}`;
}

export interface GdbServer {
  /** Where it listens (the actual port for tcp::0). */
  readonly address: string;
  close(): void;
}

/** Listens for gdb; each connection gets a session on `target`. */
export async function serveGdb(spec: GdbSpec, target: DebugTarget): Promise<GdbServer> {
  let active: Socket | undefined;
  let activeSpoke = false;
  const { createServer } = await import("node:net"); // (only when a gdb stub is asked for)
  const server: Server = createServer((sock) => {
    if (active && activeSpoke) {
      sock.end();
      return;
    }
    active?.destroy(); // a connection that never said a word gives way
    active = sock;
    activeSpoke = false;
    sock.setNoDelay(true);
    // The session (which stops a running guest) starts with the first byte: a connection that
    // closes without a word (a port probe) changes nothing.
    let session: GdbSession | undefined;
    sock.on("data", (chunk: Buffer) => {
      if (active === sock) activeSpoke = true;
      session ??= new GdbSession(target, (b) => sock.write(b), (why) => {
        if (why) process.stderr.write(`rvm: ${why}\n`);
        sock.end();
        sock.destroy();
      });
      session.receive(chunk);
    });
    sock.on("error", () => sock.destroy());
    sock.on("close", () => {
      session?.disconnected();
      if (active === sock) active = undefined;
    });
  });
  if (spec.kind === "unix" && existsSync(spec.path)) unlinkSync(spec.path);
  await new Promise<void>((resolve, reject) => {
    server.once("error", (e: NodeJS.ErrnoException) =>
      reject(new UsageError(`-gdb ${describeGdbSpec(spec)}: ${e.code === "EADDRINUSE" ? "address in use" : e.message}`)));
    if (spec.kind === "unix") server.listen(spec.path, () => resolve());
    else server.listen(spec.port, spec.host, () => resolve());
  });
  const addr = server.address();
  const address = spec.kind === "unix" ? `unix:${spec.path},server`
    : `tcp:${spec.host}:${typeof addr === "object" && addr ? addr.port : spec.port}`;
  return {
    address,
    close: () => {
      active?.destroy();
      server.close();
      if (spec.kind === "unix" && existsSync(spec.path)) unlinkSync(spec.path);
    },
  };
}
