// A snapshot as one file to carry to another host or into a browser tab and back: a zip
// archive (NAME.rvmsnap.zip) that unpacks into a directory the CLI reads as it is.
//
//   rvm-bundle.json              what it holds (format "rvm-snapshot-bundle", version 1)
//   DISK.img                     each disk image of the VM, as it is now (the guest's writes in it)
//   DISK.img.snapshots/
//     NAME.rvmsnap               the snapshot,
//     .ID.rvmsnap                the snapshots its pages refer to (incremental saves),
//     driveN-DISK.img.journal    and each disk's journal, which brings the disk back to the
//                                snapshot (loadvm reverts the guest's later writes through it)
//
// The disk travels whole, because a snapshot's disk-backed pages and its device state need the
// disk exactly as it was at savevm, and only the image and its journal together hold that. The
// snapshot directory sits next to the first disk, where the CLI looks for it: after unpacking,
// `rvm restore NAME DIR/DISK.img` restores it (the GUEST argument stands for drive 0).
//
// The page (src/web/worker.ts) and the CLI (`rvm snapshot export` / `import`) use this same code
// over the platform layer's files; the archive is deflated (level 1: disk images are mostly
// zeros and compress well at any level, and a tab should not spend seconds on it).

import { unzipSync, zipSync, type Zippable } from "fflate";
import { fs, lockImage, path } from "../platform.js";
import { RvmError } from "../errors.js";
import { SnapshotFile, type SnapshotMeta } from "./format.js";
import { SNAPSHOT_EXT, SnapshotStore } from "./store.js";
import { writeFileAtomic } from "../files.js";

export const BUNDLE_EXT = ".rvmsnap.zip";
const MANIFEST = "rvm-bundle.json";

export interface BundleManifest {
  format: "rvm-snapshot-bundle";
  version: 1;
  /** The snapshot's name. */
  snapshot: string;
  /** The snapshot directory, relative to the archive's root. */
  dir: string;
  /** Each drive's image in the archive (relative to its root) and its journal's file name in `dir`. */
  disks: { index: number; image: string; journal?: string }[];
}

/** Every file a snapshot needs from its store: its own and those its map refers to. */
function snapshotFiles(store: SnapshotStore, file: string): { file: string; meta: SnapshotMeta }[] {
  const out: { file: string; meta: SnapshotMeta }[] = [];
  const seen = new Set<string>();
  const visit = (f: string) => {
    const s = SnapshotFile.open(f);
    const meta = s.meta;
    s.close();
    if (seen.has(meta.id)) return;
    seen.add(meta.id);
    out.push({ file: f, meta });
    for (const r of meta.refs) visit(store.fileById(r.id));
  };
  visit(file);
  return out;
}

/** The archive of snapshot `name` (or file) of `store`, with its disks and journals. */
export function exportBundle(store: SnapshotStore, nameOrFile: string): { name: string; bytes: Uint8Array } {
  const [own, ...parents] = snapshotFiles(store, store.find(nameOrFile));
  const meta = own.meta;
  const used = new Set<string>([MANIFEST]);
  const disks: BundleManifest["disks"] = [];
  const entries: Zippable = {};
  for (const d of meta.disks) {
    let image = path.basename(d.file);
    if (used.has(image)) image = `drive${d.index}-${image}`;
    used.add(image);
    if (!fs.existsSync(d.file)) throw new RvmError(`snapshot ${meta.name} needs drive ${d.index}'s image ${d.file}, which is missing`);
    // Read under a read lock: a VM writing the image (another rvm, QEMU) is refused.
    const lock = lockImage(d.file, "read");
    try {
      entries[image] = fs.readFileSync(d.file);
    } finally {
      lock.release();
    }
    const journal = `${d.journal}.journal`;
    const hasJournal = !d.readonly && !d.volatile && fs.existsSync(path.join(store.dir, journal));
    disks.push({ index: d.index, image, journal: hasJournal ? journal : undefined });
  }
  const dir = disks.length > 0 ? `${disks[0].image}.snapshots` : "snapshots";
  const inDir: Zippable = {};
  inDir[`${meta.name}${SNAPSHOT_EXT}`] = fs.readFileSync(own.file);
  for (const p of parents) inDir[`.${p.meta.id}${SNAPSHOT_EXT}`] = fs.readFileSync(p.file);
  for (const d of disks) if (d.journal) inDir[d.journal] = fs.readFileSync(path.join(store.dir, d.journal));
  entries[dir] = inDir;
  const manifest: BundleManifest = { format: "rvm-snapshot-bundle", version: 1, snapshot: meta.name, dir, disks };
  entries[MANIFEST] = new TextEncoder().encode(JSON.stringify(manifest, null, 2) + "\n");
  return { name: meta.name, bytes: zipSync(entries, { level: 1 }) };
}

export interface ImportedBundle {
  manifest: BundleManifest;
  /** The snapshot file and its directory, and each drive's image, where they were unpacked. */
  snapshot: string;
  dir: string;
  images: { index: number; file: string }[];
}

/** A path inside the archive that stays inside it (no "..", no absolute path). */
function inside(p: string, what: string): string {
  if (p === "" || p.startsWith("/") || p.split("/").some((x) => x === ".." || x === ".")) {
    throw new RvmError(`not an rvm snapshot archive: ${what} "${p}" points outside it`);
  }
  return p;
}

/** Unpacks an archive made by exportBundle into `dest` (which must not hold its files yet). */
export function importBundle(bytes: Uint8Array, dest: string, label = "archive"): ImportedBundle {
  let files: Record<string, Uint8Array>;
  try {
    files = unzipSync(bytes);
  } catch (e) {
    throw new RvmError(`${label}: not a zip archive (${(e as Error).message})`);
  }
  const raw = files[MANIFEST];
  if (!raw) throw new RvmError(`${label}: not an rvm snapshot archive (no ${MANIFEST} in it)`);
  let manifest: BundleManifest;
  try {
    manifest = JSON.parse(new TextDecoder().decode(raw)) as BundleManifest;
  } catch {
    throw new RvmError(`${label}: ${MANIFEST} is not JSON`);
  }
  if (manifest.format !== "rvm-snapshot-bundle" || manifest.version !== 1 || !Array.isArray(manifest.disks) || typeof manifest.dir !== "string") {
    throw new RvmError(`${label}: not an rvm snapshot archive this rvm reads (format ${manifest.format} version ${manifest.version})`);
  }
  const snapshotEntry = `${inside(manifest.dir, "its directory")}/${manifest.snapshot}${SNAPSHOT_EXT}`;
  if (!files[snapshotEntry]) throw new RvmError(`${label}: the snapshot ${snapshotEntry} is missing from it`);
  const wanted = Object.keys(files).filter((k) => !k.endsWith("/") && k !== MANIFEST).map((k) => inside(k, "file"));
  for (const k of wanted) {
    const target = path.join(dest, k);
    if (fs.existsSync(target)) throw new RvmError(`${path.join(dest, k)} exists already: import into another directory`);
  }
  // The snapshot last: a directory that has it has everything it needs.
  for (const k of wanted.sort((a, b) => (a === snapshotEntry ? 1 : 0) - (b === snapshotEntry ? 1 : 0))) {
    const target = path.join(dest, k);
    fs.mkdirSync(path.dirname(target), { recursive: true });
    writeFileAtomic(target, files[k]);
  }
  // The archive was read: the snapshot in it must open (header, metadata digest).
  SnapshotFile.open(path.join(dest, snapshotEntry)).close();
  return {
    manifest,
    snapshot: path.join(dest, snapshotEntry),
    dir: path.join(dest, manifest.dir),
    images: manifest.disks.map((d) => ({ index: d.index, file: path.join(dest, inside(d.image, "disk image")) })),
  };
}

/** The machine configuration of a snapshot with its drives at the images of an imported archive. */
export function configWithImages(meta: SnapshotMeta, images: { index: number; file: string }[]): Record<string, unknown> {
  const config = structuredClone(meta.config) as { drives?: { file: string; attached?: boolean }[] } & Record<string, unknown>;
  const attached = (config.drives ?? []).filter((d) => d.attached !== false); // the index counts attached drives
  for (const img of images) {
    const d = attached[img.index];
    if (d) d.file = img.file;
  }
  return config;
}
