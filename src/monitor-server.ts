// The monitor on a socket: -monitor unix:PATH,server,nowait or tcp:HOST:PORT,server,nowait.
// Each connection gets a banner and a "(rvm) " prompt, line by line, like QEMU's HMP.

import { createServer, Server } from "node:net";
import { unlinkSync } from "node:fs";
import type { Monitor } from "./monitor.js";
import type { MonitorSpec } from "./options.js";
import { RvmError } from "./errors.js";

export const MONITOR_BANNER = "rvm monitor - type 'help' for more information\n";

export async function serveMonitor(spec: MonitorSpec & { kind: "unix" | "tcp" }, monitor: Monitor): Promise<Server> {
  const clients = new Set<import("node:net").Socket>();
  const server = createServer((sock) => {
    clients.add(sock);
    sock.on("close", () => clients.delete(sock));
    sock.setEncoding("latin1");
    sock.write(MONITOR_BANNER + "(rvm) ");
    let buf = "";
    let chain = Promise.resolve();
    sock.on("data", (chunk: string) => {
      buf += chunk;
      let nl: number;
      while ((nl = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, nl).replace(/\r$/, "");
        buf = buf.slice(nl + 1);
        chain = chain.then(async () => {
          const out = await monitor.execute(line);
          if (!sock.destroyed) sock.write(out + "(rvm) ");
        });
      }
    });
    sock.on("error", () => sock.destroy());
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", (e: NodeJS.ErrnoException) => reject(new RvmError(`monitor: cannot listen on ${spec.kind === "unix" ? spec.path : `${spec.host}:${spec.port}`} (${e.code ?? e.message})`)));
    if (spec.kind === "unix") {
      try {
        unlinkSync(spec.path);
      } catch {
        // no stale socket
      }
      server.listen(spec.path, () => resolve());
    } else {
      server.listen(spec.port, spec.host, () => resolve());
    }
  });
  // Closing the server also ends the sessions still connected, so rvm can exit.
  const close = server.close.bind(server);
  server.close = (cb?: (err?: Error) => void) => {
    for (const c of clients) c.destroy();
    return close(cb);
  };
  return server;
}
