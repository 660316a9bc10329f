// `rvm web [GUEST]`: serves the browser page (dist/web, built by `npm run build:web`) and the
// files of one guest, on 127.0.0.1 unless the user names another address. Nothing else on the
// host is reachable: the server answers the page's own files and the guest's, by index.

import { createReadStream, existsSync, readdirSync, statSync } from "node:fs";
import type { Server } from "node:http";
import { basename, extname, join, resolve } from "node:path";
import type { AddressInfo } from "node:net";
import { packageRoot } from "../platform.js";
import { guestConfig } from "../guest.js";
import { defaultBootloader, defaultFirmware } from "../board/virt.js";
import { RvmError } from "../errors.js";
import type { Manifest } from "./protocol.js";

export interface WebOptions {
  guest?: string;
  memory?: number;
  port?: number;
  host?: string;
}

const TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".json": "application/json",
  ".map": "application/json",
  ".wasm": "application/wasm",
  ".txt": "text/plain; charset=utf-8",
};

/** The manifest of a guest: its files as the board will look for them, each under files/N/. */
export function manifestFor(guest: string, memory: number | undefined, label = guest): { manifest: Manifest; paths: string[] } {
  const file = resolve(guest);
  const config = guestConfig(file, { memory });
  const paths = [join(packageRoot, "build", "core.wasm")];
  const add = (p: string | undefined) => {
    if (p !== undefined && p !== "none" && p !== "default" && !paths.includes(resolve(p))) paths.push(resolve(p));
  };
  if (config.bios === "default") {
    add(defaultFirmware());
    if (!config.kernel && config.drives.length > 0) add(defaultBootloader());
  }
  add(config.bios);
  add(config.kernel);
  add(config.initrd);
  for (const d of config.drives) add(d.file);
  add(file);
  const manifest: Manifest = {
    packageRoot,
    guest: file,
    memory,
    label,
    files: paths.map((p, i) => ({ path: p, url: `files/${i}/${encodeURIComponent(basename(p))}` })),
  };
  return { manifest, paths };
}

/** Starts the server; resolves with its URL once it listens. */
export async function serveWeb(opts: WebOptions): Promise<{ url: string; server: Server }> {
  const dir = join(packageRoot, "dist", "web");
  if (!existsSync(join(dir, "index.html"))) throw new RvmError(`the web page is not built (${dir}): run npm run build:web`);
  const pageFiles = new Set(readdirSync(dir).filter((f) => statSync(join(dir, f)).isFile() && f !== "guest.json"));
  const { manifest, paths } = manifestFor(opts.guest ?? join(packageRoot, "guests", "linux.img"), opts.memory, opts.guest ?? "guests/linux.img");
  const guestJson = JSON.stringify(manifest);

  // node:http is loaded here, not with rvm's modules: every other command would pay ~10 ms for it.
  const { createServer } = await import("node:http");
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://localhost");
    const send = (status: number, type: string, body: string) => {
      res.writeHead(status, { "content-type": type, "cache-control": "no-store" });
      res.end(body);
    };
    if (req.method !== "GET" && req.method !== "HEAD") return send(405, "text/plain", "method not allowed\n");
    const name = url.pathname === "/" ? "index.html" : url.pathname.slice(1);
    if (name === "guest.json") return send(200, TYPES[".json"], guestJson);
    let file: string | undefined;
    if (pageFiles.has(name)) file = join(dir, name);
    const m = /^files\/(\d+)\//.exec(name);
    if (m) file = paths[Number(m[1])];
    if (!file) return send(404, "text/plain", "not found\n");
    let size: number;
    try {
      size = statSync(file).size;
    } catch {
      return send(404, "text/plain", "not found\n");
    }
    res.writeHead(200, {
      "content-type": TYPES[extname(file)] ?? "application/octet-stream",
      "content-length": size,
      "cache-control": "no-store",
    });
    if (req.method === "HEAD") return res.end();
    createReadStream(file).on("error", () => res.destroy()).pipe(res);
  });
  const host = opts.host ?? "127.0.0.1";
  await new Promise<void>((ok, fail) => {
    server.once("error", (e: NodeJS.ErrnoException) =>
      fail(new RvmError(`cannot listen on ${host}:${opts.port ?? 0} (${e.code ?? e.message})`)));
    server.listen(opts.port ?? 0, host, () => ok());
  });
  const { port } = server.address() as AddressInfo;
  const shown = host.includes(":") ? `[${host}]` : host;
  return { url: `http://${shown}:${port}/`, server };
}
