// Image locking as QEMU does it (block/file-posix.c: raw_apply_lock_bytes, raw_check_lock_bytes),
// so rvm and QEMU keep each other off an image that one of them writes.
//
// QEMU takes open-file-description (OFD) byte-range locks, shared (F_RDLCK), on the image file
// itself: byte 100 + p for each permission p it holds, byte 200 + p for each permission it does
// not let others have (p: 0 consistent read, 1 write, 2 write unchanged, 3 resize). Then it
// checks that nobody holds a lock on 200 + p for a permission p it wants ("Failed to get "write"
// lock") and nobody holds 100 + p for one it denies ("Failed to get shared "write" lock"). What a
// QEMU holds (measured with /proc/locks): a writer 100, 101 and 201; `readonly=on` 100 and 201;
// `-snapshot` 100, 201 and 203. rvm takes the same bytes: a writer (rvm run, restore, snapshot
// rm) excludes every other user; readers (readonly=on, a -snapshot overlay's base, snapshot
// check) share with each other.
//
// Node has no fcntl. fs-native-extensions (Holepunch; prebuilt for Linux, macOS and Windows, no
// build at install) takes exactly these locks: F_OFD_SETLK byte ranges on Linux. It has no
// F_OFD_GETLK, so a check tries an exclusive lock on the byte through rvm's own open file
// description (its own shared locks never conflict with it) and gives it back (to shared, if
// rvm holds that byte). Exclusive locks need a descriptor open for writing: on an image rvm
// cannot open for writing it takes its shared locks only (writers still see it; it cannot see
// them — then nobody can write the file anyway, most likely).
//
// Locks are between processes: within one process (tests, embedding) images are shared, as
// POSIX record locks are. When a lock is refused, rvm names the holder from /proc (the
// processes with the file open whose fdinfo lists a lock on it) where it can.

import { closeSync, existsSync, openSync, readdirSync, readFileSync, readlinkSync, statSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { ImageError } from "../errors.js";

interface FsExt {
  tryLock(fd: number, offset: number, length: number, opts?: { shared?: boolean }): boolean;
  tryDowngradeLock(fd: number, offset: number, length: number): boolean;
  unlock(fd: number, offset: number, length: number): void;
}

const PERM_BASE = 100;
const SHARED_BASE = 200;
const PERM_NAMES = ["consistent read", "write", "write unchanged", "resize"];
const CONSISTENT_READ = 0;
const WRITE = 1;
const RESIZE = 3;

export type LockRole = "write" | "read" | "read-no-resize";

/** The permissions each role holds and the ones it denies others (QEMU's bytes). */
const ROLES: Record<LockRole, { perms: number[]; deny: number[] }> = {
  write: { perms: [CONSISTENT_READ, WRITE], deny: [WRITE] },
  read: { perms: [CONSISTENT_READ], deny: [WRITE] },
  "read-no-resize": { perms: [CONSISTENT_READ], deny: [WRITE, RESIZE] },
};

let fsExt: FsExt | null | undefined;
let warned = false;

/** The native functions (fs-native-extensions 1.x's binding): EAGAIN thrown where the package returns false. */
interface FsExtBinding {
  tryLock(fd: number, offset: number, length: number, exclusive: boolean): void;
  tryDowngradeLock(fd: number, offset: number, length: number): void;
  unlock(fd: number, offset: number, length: number): void;
}

/**
 * fs-native-extensions' prebuilt binding for this platform, opened directly, with the package's
 * own wrappers of the three functions rvm uses. The package's loader (require-addon: it resolves
 * the addon through a JavaScript module resolver) costs 18-22 ms of CPU on every start of rvm,
 * on the way to a restored guest's first answer; the binding itself 2 ms. Undefined where there
 * is no such prebuild or it does not load (then the package's loader is used).
 */
function prebuiltBinding(req: NodeRequire): FsExt | undefined {
  try {
    const dir = dirname(req.resolve("fs-native-extensions/package.json"));
    const file = join(dir, "prebuilds", `${process.platform}-${process.arch}`, "fs-native-extensions.node");
    if (!existsSync(file)) return undefined;
    const m = { exports: {} as FsExtBinding };
    process.dlopen(m, file);
    const b = m.exports;
    if (typeof b.tryLock !== "function" || typeof b.tryDowngradeLock !== "function" || typeof b.unlock !== "function") return undefined;
    const unlessBusy = (f: () => void): boolean => {
      try {
        f();
        return true;
      } catch (e) {
        if ((e as { code?: string }).code === "EAGAIN") return false;
        throw e;
      }
    };
    return {
      tryLock: (fd, offset, length, opts) => unlessBusy(() => b.tryLock(fd, offset, length, opts?.shared !== true)),
      tryDowngradeLock: (fd, offset, length) => unlessBusy(() => b.tryDowngradeLock(fd, offset, length)),
      unlock: (fd, offset, length) => b.unlock(fd, offset, length),
    };
  } catch {
    return undefined;
  }
}

function locks(): FsExt | null {
  if (fsExt === undefined) {
    try {
      const req = createRequire(import.meta.url);
      fsExt = prebuiltBinding(req) ?? (req("fs-native-extensions") as FsExt);
    } catch (e) {
      fsExt = null;
      if (!warned) {
        warned = true;
        process.stderr.write(`rvm: image locking is not available here (${(e as Error).message.split("\n")[0]}): nothing keeps another rvm or QEMU off the images\n`);
      }
    }
  }
  return fsExt;
}

interface Held {
  fd: number;
  writable: boolean;
  users: Map<symbol, LockRole>;
  /** The bytes this process holds on the image. */
  bytes: Set<number>;
}

/** Images this process has locked, by device and inode. */
const held = new Map<string, Held>();

/** A lock on one image for one user (a disk, a command); release() when done. */
export class ImageLock {
  private released = false;

  private constructor(
    private readonly key: string,
    private readonly token: symbol,
  ) {}

  /**
   * Locks `file` for `role`, or throws an ImageError saying who holds it. Succeeds at once if
   * this process holds it already (images are shared within a process).
   */
  static acquire(file: string, role: LockRole): ImageLock {
    const st = statSync(file);
    const key = `${st.dev}:${st.ino}`;
    const token = Symbol(file);
    const lib = locks();
    let h = held.get(key);
    if (!h) {
      let fd: number;
      let writable = true;
      try {
        fd = openSync(file, "r+");
      } catch {
        fd = openSync(file, "r");
        writable = false;
      }
      h = { fd, writable, users: new Map(), bytes: new Set() };
      if (lib) {
        try {
          ImageLock.apply(lib, h, role, file);
        } catch (e) {
          ImageLock.releaseBytes(lib, h);
          closeSync(fd);
          throw e;
        }
      }
      held.set(key, h);
    } else if (lib && !ImageLock.covers(h, role)) {
      ImageLock.apply(lib, h, role, file);
    }
    h.users.set(token, role);
    return new ImageLock(key, token);
  }

  /** Gives this user's lock back; the image is unlocked when its last user in this process lets go. */
  release(): void {
    if (this.released) return;
    this.released = true;
    const h = held.get(this.key);
    if (!h) return;
    h.users.delete(this.token);
    if (h.users.size > 0) return;
    held.delete(this.key);
    closeSync(h.fd); // closing the open file description releases its OFD locks
  }

  private static covers(h: Held, role: LockRole): boolean {
    const r = ROLES[role];
    return r.perms.every((p) => h.bytes.has(PERM_BASE + p)) && r.deny.every((p) => h.bytes.has(SHARED_BASE + p));
  }

  /** Takes the role's bytes (shared), then checks nobody else's locks conflict, as QEMU does. */
  private static apply(lib: FsExt, h: Held, role: LockRole, file: string): void {
    const r = ROLES[role];
    const want = [...r.perms.map((p) => PERM_BASE + p), ...r.deny.map((p) => SHARED_BASE + p)];
    for (const b of want) {
      if (h.bytes.has(b)) continue;
      if (!lib.tryLock(h.fd, b, 1, { shared: true })) {
        // Someone holds this byte exclusively: only a checker in the middle of its check does.
        throw lockError(file, b >= SHARED_BASE ? `shared "${PERM_NAMES[b - SHARED_BASE]}"` : `"${PERM_NAMES[b - PERM_BASE]}"`);
      }
      h.bytes.add(b);
    }
    if (!h.writable) return; // cannot test with exclusive locks; others still see ours
    for (const p of r.perms) {
      if (ImageLock.othersHold(lib, h, SHARED_BASE + p)) throw lockError(file, `"${PERM_NAMES[p]}"`);
    }
    for (const p of r.deny) {
      if (ImageLock.othersHold(lib, h, PERM_BASE + p)) throw lockError(file, `shared "${PERM_NAMES[p]}"`);
    }
  }

  /** Whether another open file description holds a lock on byte `b` (tried with an exclusive lock of ours). */
  private static othersHold(lib: FsExt, h: Held, b: number): boolean {
    if (!lib.tryLock(h.fd, b, 1)) return true;
    if (h.bytes.has(b)) lib.tryDowngradeLock(h.fd, b, 1);
    else lib.unlock(h.fd, b, 1);
    return false;
  }

  private static releaseBytes(lib: FsExt, h: Held): void {
    for (const b of h.bytes) {
      try {
        lib.unlock(h.fd, b, 1);
      } catch {
        // closing the descriptor releases it anyway
      }
    }
    h.bytes.clear();
  }
}

function lockError(file: string, what: string): ImageError {
  const holders = lockHolders(file);
  const who = holders.length > 0
    ? `it is in use by ${holders.map((x) => `process ${x.pid} (${x.command})`).join(", ")}`
    : "is another process using the image?";
  return new ImageError(file, `Failed to get ${what} lock: ${who}`);
}

/** Processes other than this one that hold a lock on `file` (Linux /proc; empty elsewhere). */
export function lockHolders(file: string): { pid: number; command: string }[] {
  let target: { dev: number; ino: number };
  try {
    const st = statSync(file);
    target = { dev: st.dev, ino: st.ino };
  } catch {
    return [];
  }
  const out: { pid: number; command: string }[] = [];
  let pids: string[];
  try {
    pids = readdirSync("/proc").filter((p) => /^\d+$/.test(p) && Number(p) !== process.pid);
  } catch {
    return [];
  }
  for (const pid of pids) {
    let fds: string[];
    try {
      fds = readdirSync(`/proc/${pid}/fd`);
    } catch {
      continue; // gone, or not ours to look at
    }
    for (const fd of fds) {
      try {
        if (!readlinkSync(`/proc/${pid}/fd/${fd}`).startsWith("/")) continue;
        const st = statSync(`/proc/${pid}/fd/${fd}`);
        if (st.dev !== target.dev || st.ino !== target.ino) continue;
        if (!/^lock:/m.test(readFileSync(`/proc/${pid}/fdinfo/${fd}`, "utf8"))) continue;
        const cmd = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").filter(Boolean);
        const shown = cmd.map((a, i) => (i === 0 ? a.replace(/^.*\//, "") : a)).join(" ");
        out.push({ pid: Number(pid), command: shown.length > 80 ? shown.slice(0, 77) + "..." : shown });
        break;
      } catch {
        // the process or descriptor went away
      }
    }
  }
  return out;
}
