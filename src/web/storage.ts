// The browser's storage under the worker's file system (WebFs, src/web/platform.ts): the files
// WebFs keeps (the guest's disk image, its snapshot directory, imported snapshots) outlive the
// tab. The snapshot code is the CLI's, unchanged: it reads and writes WebFs synchronously, and
// this module makes the storage match WebFs — after every monitor command and every 2 s.
//
// OPFS (the origin private file system) is the backend where a worker can open its files for
// synchronous access (FileSystemSyncAccessHandle): a stored file's bytes then live only there,
// and WebFs reads and writes them in place. A lazy restore reads each page from OPFS when it is
// needed, and a disk write goes straight to the disk image in OPFS. A file created since the
// last sync (a new snapshot, a compacted journal) is in memory until the sync stores it: written
// to NAME.part, moved over NAME, then reopened — no file is ever half-written under its name.
//
// IndexedDB is the fallback where OPFS is missing (or `?storage=indexeddb`): files are kept in
// 1 MiB chunks, loaded into memory when the worker starts, and each sync writes the chunks that
// changed, in one transaction per file.
//
// OPFS names are the WebFs paths, URI-encoded, in one directory ("rvm-files"); IndexedDB keys
// are [path, chunk].

import { CHUNK, fs, MemFile, type SyncHandle } from "./platform.js";

export type StorageKind = "opfs" | "indexeddb" | "memory";

export interface Storage {
  readonly kind: StorageKind;
  /** Puts the stored files under the kept paths into WebFs. */
  load(): Promise<void>;
  /** Makes the storage hold what WebFs keeps: new and changed files written, removed ones deleted. */
  sync(): Promise<void>;
}

/** The storage asked for (`want`), or the best the browser has: OPFS, else IndexedDB, else none. */
export async function openStorage(want?: string): Promise<Storage> {
  const opfsOk = typeof navigator !== "undefined" && typeof navigator.storage?.getDirectory === "function" &&
    typeof (globalThis as { FileSystemFileHandle?: { prototype: object } }).FileSystemFileHandle?.prototype === "object" &&
    "createSyncAccessHandle" in (globalThis as unknown as { FileSystemFileHandle: { prototype: object } }).FileSystemFileHandle.prototype;
  if (want === "memory") return new NoStorage();
  if (want !== "indexeddb" && opfsOk) {
    try {
      const root = await navigator.storage.getDirectory();
      return new OpfsStorage(await root.getDirectoryHandle("rvm-files", { create: true }));
    } catch {
      // not allowed here (a private window, a file: URL): try IndexedDB
    }
  }
  if (typeof indexedDB !== "undefined") {
    try {
      return new IdbStorage(await openDb());
    } catch {
      // no IndexedDB either
    }
  }
  return new NoStorage();
}

class NoStorage implements Storage {
  readonly kind = "memory";
  async load(): Promise<void> {}
  async sync(): Promise<void> {}
}

/** What a sync does first: forgets stored files that WebFs no longer has under that path. */
function gone(stored: Map<string, MemFile>, live: Map<string, MemFile>): string[] {
  const names: string[] = [];
  for (const [name, f] of stored) {
    if (live.get(name) === f) continue;
    stored.delete(name);
    names.push(name);
    // Renamed (still live elsewhere): its bytes come back into memory and it is stored anew.
    // Removed: its handle goes (nothing reads an unlinked file's bytes later).
    if ([...live.values()].includes(f)) f.toMemory();
    else {
      f.handle?.close();
      f.handle = undefined;
    }
  }
  return names;
}

interface OpfsFileHandle extends FileSystemFileHandle {
  createSyncAccessHandle(): Promise<SyncHandle>;
  move(name: string): Promise<void>;
}

class OpfsStorage implements Storage {
  readonly kind = "opfs";
  private readonly stored = new Map<string, MemFile>();

  constructor(private readonly dir: FileSystemDirectoryHandle) {}

  /** A handle for synchronous access; another tab (or a worker not yet gone) may hold it a while. */
  private async access(name: string, create = false): Promise<SyncHandle> {
    const fh = (await this.dir.getFileHandle(name, { create })) as OpfsFileHandle;
    for (let wait = 50; ; wait *= 2) {
      try {
        return await fh.createSyncAccessHandle();
      } catch (e) {
        if ((e as DOMException).name !== "NoModificationAllowedError" || wait > 3200) {
          throw new Error(`the browser's storage holds ${decodeURIComponent(name)} for another tab (${(e as Error).message})`);
        }
        await new Promise((r) => setTimeout(r, wait));
      }
    }
  }

  async load(): Promise<void> {
    const names: string[] = [];
    for await (const name of (this.dir as unknown as { keys(): AsyncIterable<string> }).keys()) names.push(name);
    // All or nothing: a file another tab holds leaves this tab with none of them.
    const opened: [string, MemFile][] = [];
    try {
      for (const name of names) {
        if (name.endsWith(".part")) {
          await this.dir.removeEntry(name).catch(() => undefined); // a sync that did not finish
          continue;
        }
        const path = decodeURIComponent(name);
        if (!fs.isKept(path)) continue; // another guest's
        const f = new MemFile();
        f.handle = await this.access(name);
        f.size = f.handle.getSize();
        opened.push([path, f]);
      }
    } catch (e) {
      for (const [, f] of opened) f.handle?.close();
      throw e;
    }
    for (const [path, f] of opened) {
      fs.adopt(path, f);
      this.stored.set(path, f);
    }
  }

  async sync(): Promise<void> {
    const live = fs.keptFiles();
    const removed = gone(this.stored, live);
    for (const [path, f] of live) {
      if (this.stored.get(path) === f) {
        f.handle?.flush();
        continue;
      }
      await this.store(path, f);
    }
    for (const path of removed) {
      if (!this.stored.has(path)) await this.dir.removeEntry(encodeURIComponent(path)).catch(() => undefined);
    }
  }

  /** Writes a file that is in memory to NAME.part, moves it over NAME and keeps it there. */
  private async store(path: string, f: MemFile): Promise<void> {
    const name = encodeURIComponent(path);
    const part = (await this.dir.getFileHandle(`${name}.part`, { create: true })) as OpfsFileHandle;
    let h = await part.createSyncAccessHandle();
    let version = f.version;
    h.truncate(0);
    h.write(f.bytes(), { at: 0 });
    h.flush();
    h.close();
    await this.dir.removeEntry(name).catch(() => undefined);
    await part.move(name);
    h = await this.access(name);
    // The guest may have changed it meanwhile (a journal): write it again before the swap.
    if (f.version !== version) {
      h.truncate(0);
      h.write(f.bytes(), { at: 0 });
      h.flush();
      version = f.version;
    }
    f.data = new Uint8Array(0);
    f.handle = h;
    this.stored.set(path, f);
  }
}

function openDb(): Promise<IDBDatabase> {
  return new Promise((resolve, reject) => {
    const req = indexedDB.open("rvm-files", 1);
    req.onupgradeneeded = () => {
      req.result.createObjectStore("files"); // path -> { size }
      req.result.createObjectStore("chunks"); // [path, n] -> bytes
    };
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

function done(tx: IDBTransaction): Promise<void> {
  return new Promise((resolve, reject) => {
    tx.oncomplete = () => resolve();
    tx.onerror = () => reject(tx.error);
    tx.onabort = () => reject(tx.error ?? new Error("IndexedDB transaction aborted"));
  });
}

function request<T>(req: IDBRequest<T>): Promise<T> {
  return new Promise((resolve, reject) => {
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

class IdbStorage implements Storage {
  readonly kind = "indexeddb";
  private readonly stored = new Map<string, { file: MemFile; version: number; chunks: number }>();

  constructor(private readonly db: IDBDatabase) {}

  async load(): Promise<void> {
    const tx = this.db.transaction(["files", "chunks"], "readonly");
    const paths = (await request(tx.objectStore("files").getAllKeys())) as string[];
    for (const path of paths) {
      if (!fs.isKept(path)) continue;
      const { size } = (await request(tx.objectStore("files").get(path))) as { size: number };
      const f = new MemFile();
      f.data = new Uint8Array(size);
      f.size = size;
      const chunks = Math.ceil(size / CHUNK);
      for (let c = 0; c < chunks; c++) {
        const bytes = (await request(tx.objectStore("chunks").get([path, c]))) as Uint8Array | undefined;
        if (bytes) f.data.set(bytes.subarray(0, Math.min(bytes.length, size - c * CHUNK)), c * CHUNK);
      }
      f.dirty.clear();
      fs.adopt(path, f);
      this.stored.set(path, { file: f, version: f.version, chunks });
    }
  }

  async sync(): Promise<void> {
    const live = fs.keptFiles();
    const files = new Map([...this.stored].map(([p, s]) => [p, s.file]));
    const removed = new Set(gone(files, live));
    for (const path of removed) this.stored.delete(path);
    for (const [path, f] of live) {
      const s = this.stored.get(path);
      if (s?.file === f && s.version === f.version) continue;
      // What to write is taken now, in one turn: the guest may write the file during the transaction.
      const chunks = Math.ceil(f.size / CHUNK);
      const which = s?.file === f ? [...f.dirty].filter((c) => c < chunks) : [...Array(chunks).keys()];
      const bytes = f.bytes();
      const puts = which.map((c) => [c, bytes.slice(c * CHUNK, Math.min(f.size, (c + 1) * CHUNK))] as const);
      const version = f.version;
      f.dirty.clear();
      const tx = this.db.transaction(["files", "chunks"], "readwrite");
      const store = tx.objectStore("chunks");
      for (const [c, b] of puts) store.put(b, [path, c]);
      store.delete(IDBKeyRange.bound([path, chunks], [path, Infinity]));
      tx.objectStore("files").put({ size: f.size }, path);
      removed.delete(path);
      await done(tx);
      this.stored.set(path, { file: f, version, chunks });
    }
    for (const path of removed) {
      const tx = this.db.transaction(["files", "chunks"], "readwrite");
      tx.objectStore("files").delete(path);
      tx.objectStore("chunks").delete(IDBKeyRange.bound([path, 0], [path, Infinity]));
      await done(tx);
    }
  }
}
