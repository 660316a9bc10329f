// The monitor on a socket: -monitor unix:PATH,server,nowait or tcp:HOST:PORT,server,nowait.
// Each connection gets a banner and a "(rvm) " prompt, line by line, like QEMU's HMP. Commands
// run one at a time in arrival order; input lines are bounded (monitor-input.ts).

import type { Server } from "node:net";
import { unlinkSync } from "node:fs";
import type { Monitor } from "./monitor.js";
import type { MonitorSpec } from "./options.js";
import { RvmError } from "./errors.js";
import { MONITOR_BANNER, MonitorLines } from "./monitor-input.js";

export { MONITOR_BANNER };

export async function serveMonitor(spec: MonitorSpec & { kind: "unix" | "tcp" }, monitor: Monitor): Promise<Server> {
  const clients = new Set<import("node:net").Socket>();
  const { createServer } = await import("node:net"); // (only when a monitor socket is asked for: ~6 ms)
  const server = createServer((sock) => {
    clients.add(sock);
    sock.on("close", () => clients.delete(sock));
    sock.setEncoding("latin1");
    sock.write(MONITOR_BANNER + "(rvm) ");
    let chain = Promise.resolve();
    const reply = (text: string) => {
      chain = chain.then(() => {
        if (!sock.destroyed) sock.write(text + "(rvm) ");
      });
    };
    const lines = new MonitorLines(
      (line) => {
        chain = chain.then(async () => {
          const out = await monitor.execute(line); // never throws: errors are replies
          if (!sock.destroyed) sock.write(out + "(rvm) ");
        });
      },
      (message) => reply(message + "\n"),
    );
    sock.on("data", (chunk: string) => lines.push(chunk));
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
