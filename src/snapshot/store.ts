// The snapshot directory: NAME.rvmsnap files, the disk journals, and the references between
// incremental snapshots.
//
// A snapshot that later ones refer to is not removed by delvm: it is renamed to a hidden
// `.ID.rvmsnap` and removed once nothing visible refers to it (reference counting by
// reachability), so deleting one snapshot never breaks another.
//
// Temp files of saves whose rvm died (`.NAME.rvmsnap.PID.tmp`, PID gone) are removed the first
// time a store looks at its directory: by every command that opens it, not only by savevm.

import { fs, path, pid, processAlive } from "../platform.js";
import { SnapshotError, SnapshotFile, SnapshotMeta } from "./format.js";
import { RvmError } from "../errors.js";
import { AUTO_COMPACT_MIN_DEAD, DiskJournal } from "./journal.js";
import type { BlockBackend } from "../devices/disk.js";

const { existsSync, mkdirSync, readdirSync, renameSync, unlinkSync } = fs;
const { basename, dirname, join, resolve } = path;

export const SNAPSHOT_EXT = ".rvmsnap";

export interface SnapshotListing {
  name: string;
  file: string;
  id: string;
  meta: SnapshotMeta;
  hidden: boolean;
}

/** Snapshot names: letters, digits, _ . + - and inner spaces (HMP's `savevm "a b"`); they name files. */
export function checkName(name: string): void {
  if (!/^[A-Za-z0-9_](?:[A-Za-z0-9_.+ -]{0,126}[A-Za-z0-9_.+-])?$/.test(name)) {
    throw new RvmError(`bad snapshot name "${name}" (letters, digits, _ . + - and spaces inside; not starting with . or -)`);
  }
}

/** A file in the snapshot directory that could not be read as a snapshot. */
export interface SkippedFile {
  file: string;
  problem: string;
}

/** Where snapshots of a machine live by default: next to its first disk, else next to its kernel. */
export function defaultSnapshotDir(config: { drives?: { file: string }[]; kernel?: string }): string {
  const anchor = config.drives?.[0]?.file ?? config.kernel;
  if (!anchor) return resolve("rvm-snapshots");
  return join(dirname(resolve(anchor)), `${basename(anchor)}.snapshots`);
}

/** A tidy that cannot know every snapshot's marks stops. */
class SkipTidy extends Error {}

export class SnapshotStore {
  private readonly journals = new Map<string, { journal: DiskJournal; disk: BlockBackend }>();
  private swept = false;

  constructor(readonly dir: string) {}

  /** Once per store, before it first looks at its directory: removes temp files of dead saves. */
  private sweep(): void {
    if (this.swept) return;
    this.swept = true;
    this.removeStaleTemps();
  }

  ensureDir(): void {
    try {
      mkdirSync(this.dir, { recursive: true });
    } catch (e) {
      throw new RvmError(`cannot create snapshot directory ${this.dir} (${(e as NodeJS.ErrnoException).code})`);
    }
  }

  pathFor(name: string): string {
    return join(this.dir, name + SNAPSHOT_EXT);
  }

  /** Every snapshot file, visible and hidden; unreadable files are skipped (and listed in `skipped`). */
  all(skipped?: SkippedFile[]): SnapshotListing[] {
    this.sweep();
    if (!existsSync(this.dir)) return [];
    const out: SnapshotListing[] = [];
    for (const f of readdirSync(this.dir).sort()) {
      if (!f.endsWith(SNAPSHOT_EXT)) continue;
      const file = join(this.dir, f);
      try {
        const s = SnapshotFile.open(file);
        out.push({ name: s.meta.name, file, id: s.meta.id, meta: s.meta, hidden: f.startsWith(".") });
        s.close();
      } catch (e) {
        skipped?.push({ file, problem: e instanceof RvmError ? e.message : String(e) });
      }
    }
    return out;
  }

  /** The visible snapshots, oldest first; files that cannot be read go to `skipped`. */
  list(skipped?: SkippedFile[]): SnapshotListing[] {
    return this.all(skipped).filter((s) => !s.hidden).sort((a, b) => a.meta.created.localeCompare(b.meta.created));
  }

  /** A snapshot by name (in this directory) or by file path. */
  find(nameOrFile: string): string {
    if (nameOrFile.endsWith(SNAPSHOT_EXT) || nameOrFile.includes("/")) {
      if (!existsSync(nameOrFile)) throw new SnapshotError(nameOrFile, "no such snapshot file");
      return nameOrFile;
    }
    checkName(nameOrFile);
    this.sweep();
    const file = this.pathFor(nameOrFile);
    if (!existsSync(file)) throw new RvmError(`no snapshot named "${nameOrFile}" in ${this.dir}`);
    return file;
  }

  /** The file of a snapshot by id (incremental references), visible or hidden. */
  fileById(id: string): string {
    const hit = this.all().find((s) => s.id === id);
    if (!hit) throw new RvmError(`snapshot ${id} that another snapshot refers to is missing from ${this.dir}`);
    return hit.file;
  }

  /** delvm: removes a snapshot, keeping its file hidden while others refer to it. */
  delete(name: string): void {
    const file = this.find(name);
    const victim = SnapshotFile.open(file);
    const id = victim.meta.id;
    victim.close();
    const referenced = this.all().some((s) => s.id !== id && s.meta.refs.some((r) => r.id === id));
    if (referenced) renameSync(file, join(this.dir, `.${id}${SNAPSHOT_EXT}`));
    else unlinkSync(file);
    this.collect();
  }

  /** Moves snapshot `name` (if any) out of the way under its hidden id name. */
  retire(name: string): void {
    const file = this.pathFor(name);
    if (!existsSync(file)) return;
    let id: string;
    try {
      const s = SnapshotFile.open(file);
      id = s.meta.id;
      s.close();
    } catch {
      unlinkSync(file); // a damaged file of that name: nothing can refer to it usefully
      return;
    }
    renameSync(file, join(this.dir, `.${id}${SNAPSHOT_EXT}`));
  }

  /** Removes hidden snapshots nothing visible refers to, and compacts the disk journals. */
  collect(): void {
    this.removeStaleTemps();
    const all = this.all();
    const byId = new Map(all.map((s) => [s.id, s]));
    const live = new Set<string>();
    const visit = (id: string) => {
      if (live.has(id)) return;
      live.add(id);
      for (const r of byId.get(id)?.meta.refs ?? []) visit(r.id);
    };
    for (const s of all) if (!s.hidden) visit(s.id);
    for (const s of all) if (s.hidden && !live.has(s.id)) unlinkSync(s.file);
    for (const [name, j] of this.journals) j.journal.compact(this.liveMarks(name));
  }

  /** Temp files of saves whose rvm died mid-write (`.NAME.rvmsnap.PID.tmp`, PID gone). */
  removeStaleTemps(): void {
    let names: string[];
    try {
      names = readdirSync(this.dir);
    } catch {
      return; // no directory yet
    }
    for (const f of names) {
      const m = /^\..*\.rvmsnap\.(\d+)\.tmp$/.exec(f);
      if (!m || Number(m[1]) === pid || processAlive(Number(m[1]))) continue; // a save in progress
      try {
        unlinkSync(join(this.dir, f));
      } catch {
        // gone already
      }
    }
  }

  /** The marks of a disk journal that snapshots in this directory still need. */
  liveMarks(journal: string, snapshots: SnapshotListing[] = this.all()): number[] {
    const marks: number[] = [];
    for (const s of snapshots) {
      for (const d of s.meta.disks) {
        if (d.journal !== journal) continue;
        marks.push(d.mark);
        // Disk-backed entries inherited from a parent keep the parent's (older) mark.
        marks.push(...(d.entryMarks ?? []));
      }
    }
    return [...new Set(marks)];
  }

  /** The journal of a drive, opened once per store and disk (a new machine brings a new disk). */
  journal(name: string, disk: BlockBackend): DiskJournal {
    const open = this.journals.get(name);
    if (open && open.disk === disk) return open.journal;
    open?.journal.close();
    this.ensureDir();
    this.sweep();
    const journal = DiskJournal.open(this.dir, name, disk);
    this.journals.set(name, { journal, disk });
    return journal;
  }

  /**
   * Compacts each open journal whose dead part dominates (`DiskJournal.compactIfWasteful`): the
   * undo marks of committed reverts (every restore leaves one, and the old contents of what the
   * guest wrote since under it) are dropped here, not only by delvm. The marks kept are those
   * the directory's snapshots need; if a snapshot file cannot be read, its marks are unknown and
   * nothing is compacted. A journal whose compaction fails stays as it was (the rename is atomic).
   */
  tidyJournals(minDead = AUTO_COMPACT_MIN_DEAD): void {
    let failed: unknown;
    for (const [name, j] of this.journals) {
      try {
        j.journal.compactIfWasteful(() => {
          const skipped: SkippedFile[] = [];
          const snapshots = this.all(skipped);
          if (skipped.length > 0) throw new SkipTidy();
          return this.liveMarks(name, snapshots);
        }, minDead);
      } catch (e) {
        if (!(e instanceof SkipTidy)) failed ??= e; // the other journals are still tidied
      }
    }
    if (failed !== undefined) throw failed;
  }

  close(): void {
    for (const j of this.journals.values()) j.journal.close();
    this.journals.clear();
  }
}

/** The journal name of a drive: its file name, with the drive index for uniqueness. */
export function journalName(index: number, file: string): string {
  return `drive${index}-${basename(file).replace(/[^A-Za-z0-9_.-]/g, "_")}`;
}
