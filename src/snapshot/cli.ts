// `rvm snapshot ls | info | check | rm`: snapshots offline, and how the CLI finds a snapshot
// (by name in a directory — --dir, or next to the guest's disk image — or by file).

import { Command, Option } from "commander";
import { existsSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { ImageError, RvmError, UsageError } from "../errors.js";
import { RawDisk } from "../devices/disk.js";
import { SnapshotFile } from "./format.js";
import { defaultSnapshotDir, SNAPSHOT_EXT, SnapshotStore, type SkippedFile } from "./store.js";
import { formatInfo, formatList } from "./commands.js";
import { checkSnapshot, dependencySizes, type CheckReport } from "./check.js";
import { checkpointClasses, checkpointSvg } from "./pictures.js";
import { writeFileAtomic } from "../files.js";
import { BUNDLE_EXT, exportBundle, importBundle } from "./bundle.js";
import { isObjectStoreUrl, storeCommand, storeDir } from "../store/vm.js";

const MiB = 1024 * 1024;

/** A snapshot given as a file (a path, or a name ending in .rvmsnap) rather than a name. */
export function isSnapshotFile(target: string): boolean {
  return target.endsWith(SNAPSHOT_EXT) || target.includes("/");
}

/**
 * The store a command means: --dir DIR, else the directory next to the guest's disk image
 * (GUEST.snapshots/), which must exist as a file.
 */
export function storeFor(flags: { dir?: string }, guest?: string): SnapshotStore {
  if (flags.dir) {
    const dir = resolve(flags.dir);
    if (existsSync(dir) && !statSync(dir).isDirectory()) throw new UsageError(`--dir ${flags.dir}: not a directory`);
    return new SnapshotStore(dir);
  }
  if (guest) {
    if (!existsSync(guest)) throw new ImageError(guest, "no such file");
    return new SnapshotStore(defaultSnapshotDir({ drives: [{ file: guest }] }));
  }
  throw new UsageError("say where the snapshots are: --dir DIR, or the guest's disk image");
}

/** The file of a snapshot named on the command line, and the store it lives in. */
export function findSnapshot(target: string, flags: { dir?: string }, guest?: string): { file: string; store: SnapshotStore } {
  if (isSnapshotFile(target)) {
    if (!existsSync(target)) throw new RvmError(`snapshot ${target}: no such snapshot file`);
    return { file: target, store: new SnapshotStore(flags.dir ? resolve(flags.dir) : dirname(resolve(target))) };
  }
  const store = storeFor(flags, guest);
  try {
    return { file: store.find(target), store };
  } catch (e) {
    if (e instanceof RvmError && /^no snapshot named/.test(e.message)) {
      throw new RvmError(`${e.message} (snapshots elsewhere: --dir DIR, or the guest's disk image: rvm ... ${target} DISK.img)`);
    }
    throw e;
  }
}

/** A path relative to the current directory when it is inside it, else absolute. */
function shortPath(p: string): string {
  const r = relative(process.cwd(), p);
  return r === "" || r.startsWith("..") ? p : r;
}

function size(bytes: number): string {
  return bytes >= 10 * MiB ? `${(bytes / MiB).toFixed(0)} MiB` : bytes >= MiB ? `${(bytes / MiB).toFixed(1)} MiB` : `${(bytes / 1024).toFixed(1)} KiB`;
}

function formatCheck(r: CheckReport, file: string): string {
  const k = r.kinds;
  const lines = [
    `snapshot ${r.name}: OK  (${file})`,
    `  pages       ${r.pages} checked: ${k.zero} zero, ${k.disk} disk-backed, ${k.same} same-as, ${k.stored} stored` +
      (r.parents.length > 0 ? ` (${k.inParents} of those in ${r.parents.length} parent file${r.parents.length > 1 ? "s" : ""})` : ""),
    `  page map    ${r.chunks} chunk${r.chunks > 1 ? "s" : ""} checked`,
    ...r.journals.map((j) => `  journal     ${j.file}: ${j.records} records, ${size(j.bytes)}, marks ${j.marks.join(", ") || "none"}`),
    ...r.disks.map((d) => `  disk ${d.index}      ${d.file} (${d.size} bytes)`),
  ];
  return lines.join("\n") + "\n";
}

/**
 * `snapshot rm`: the disks whose journals the directory holds are locked for writing while
 * the snapshot goes and the journals are compacted (a VM running on one of them is refused).
 */
function removeSnapshot(store: SnapshotStore, name: string): void {
  const disks: RawDisk[] = [];
  try {
    const seen = new Set<string>();
    for (const s of store.all()) {
      for (const d of s.meta.disks) {
        if (d.readonly || d.volatile || seen.has(d.journal)) continue;
        seen.add(d.journal);
        if (!existsSync(d.file) || !existsSync(join(store.dir, `${d.journal}.journal`))) continue;
        const disk = RawDisk.open(d.file); // the image's write lock
        disks.push(disk);
        store.journal(d.journal, disk); // compacted by delete
      }
    }
    store.delete(name);
  } finally {
    store.close();
    for (const d of disks) d.close();
  }
}

export function snapshotCommands(program: Command): void {
  const snap = program.command("snapshot").description("work with saved snapshots offline (ls, info, check, rm)");
  const dirOption = () => new Option("--dir <dir>", "the snapshot directory (default: next to the guest's first disk, FILE.snapshots/)");
  const urlOption = () => new Option("--snapshot-store <url>", "where the snapshots are: file:DIR or s3://BUCKET/PREFIX");
  type Where = { dir?: string; snapshotStore?: string };
  /** With an object store, runs the command there and returns true (file:DIR becomes --dir). */
  const inObjectStore = async (flags: Where, cmd: "ls" | "info" | "rm", name?: string): Promise<boolean> => {
    if (!flags.snapshotStore) return false;
    if (!isObjectStoreUrl(flags.snapshotStore)) {
      flags.dir = storeDir(flags.snapshotStore);
      return false;
    }
    process.stdout.write(await storeCommand(flags.snapshotStore, cmd, name));
    return true;
  };
  snap
    .command("ls")
    .description("list the snapshots of a guest (by its disk image) or in a directory")
    .argument("[guest]", "the guest's first disk image (its snapshots are in GUEST.snapshots/)")
    .addOption(dirOption())
    .addOption(urlOption())
    .action(async (guest: string | undefined, flags: Where) => {
      if (await inObjectStore(flags, "ls")) return;
      const store = storeFor(flags, guest);
      if (flags.dir && !existsSync(store.dir)) throw new RvmError(`--dir ${flags.dir}: no such directory`);
      const skipped: SkippedFile[] = [];
      const list = store.list(skipped);
      process.stdout.write(formatList(list));
      for (const s of skipped) process.stderr.write(`rvm: skipped ${s.file}: ${s.problem.replace(`snapshot ${s.file}: `, "")}\n`);
    });
  snap
    .command("info")
    .description("show a snapshot's breakdown: zero / disk-backed / same-as / stored pages, size with what it depends on, save time")
    .argument("<snapshot>", "a snapshot name (with --dir or GUEST) or a .rvmsnap file")
    .argument("[guest]", "the guest's first disk image")
    .addOption(dirOption())
    .option("--plot <file.svg>", "also draw what each page became, and the size against RAM and a plain save, as SVG")
    .addOption(urlOption())
    .action(async (name: string, guest: string | undefined, flags: Where & { plot?: string }) => {
      if (await inObjectStore(flags, "info", name)) return;
      const { file, store } = findSnapshot(name, flags, guest);
      const s = SnapshotFile.open(file);
      try {
        process.stdout.write(formatInfo(s.meta, file, dependencySizes(store, file)));
        if (flags.plot) writeFileAtomic(flags.plot, Buffer.from(checkpointSvg(s.meta, checkpointClasses(s))));
      } finally {
        s.close();
      }
    });
  snap
    .command("check")
    .description("verify everything a restore needs: every page, the page map, the parents, the disk journals and images; exits 1 naming the first problem")
    .argument("<snapshot>", "a snapshot name (with --dir or GUEST) or a .rvmsnap file")
    .argument("[guest]", "the guest's first disk image")
    .addOption(dirOption())
    .action((name: string, guest: string | undefined, flags: { dir?: string }) => {
      const { file, store } = findSnapshot(name, flags, guest);
      let report: CheckReport;
      try {
        report = checkSnapshot(store, file);
      } catch (e) {
        if (e instanceof RvmError) throw new RvmError(`snapshot check ${name}: ${e.message.replace(`snapshot ${file}: `, "")}`);
        throw e;
      } finally {
        store.close();
      }
      process.stdout.write(formatCheck(report, file));
    });
  snap
    .command("rm")
    .description("delete a snapshot (snapshots that depend on it stay restorable)")
    .argument("<snapshot>", "the snapshot name")
    .argument("[guest]", "the guest's first disk image")
    .addOption(dirOption())
    .addOption(urlOption())
    .action(async (name: string, guest: string | undefined, flags: Where) => {
      if (await inObjectStore(flags, "rm", name)) return;
      removeSnapshot(storeFor(flags, guest), name);
    });
  snap
    .command("export")
    .description("write a snapshot, its disk images and journals as one file (NAME.rvmsnap.zip) for another host or the browser page")
    .argument("<snapshot>", "a snapshot name (with --dir or GUEST) or a .rvmsnap file")
    .argument("[guest]", "the guest's first disk image")
    .addOption(dirOption())
    .option("-o, --output <file>", "where to write it (default: NAME.rvmsnap.zip in the current directory)")
    .action((name: string, guest: string | undefined, flags: { dir?: string; output?: string }) => {
      const { file, store } = findSnapshot(name, flags, guest);
      const bundle = exportBundle(store, file);
      const out = flags.output ?? `${bundle.name}${BUNDLE_EXT}`;
      writeFileAtomic(out, bundle.bytes);
      process.stdout.write(`exported ${bundle.name} to ${out} (${size(bundle.bytes.length)})\n`);
    });
  snap
    .command("import")
    .description("unpack a snapshot archive (NAME.rvmsnap.zip, from rvm snapshot export or the browser page) into a directory")
    .argument("<archive>", "the .rvmsnap.zip file")
    .argument("[dir]", "where to unpack it (default: the archive's name without .rvmsnap.zip)")
    .action((archive: string, dir: string | undefined) => {
      if (!existsSync(archive)) throw new RvmError(`${archive}: no such file`);
      const dest = resolve(dir ?? archive.replace(/(\.rvmsnap)?\.zip$/, "") + (archive.endsWith(".zip") ? "" : ".d"));
      const imported = importBundle(readFileSync(archive), dest, archive);
      const disk = imported.images[0]?.file;
      process.stdout.write(`imported ${imported.manifest.snapshot} into ${dest}\n` +
        `restore it: rvm restore ${imported.manifest.snapshot.includes(" ") ? `"${imported.manifest.snapshot}"` : imported.manifest.snapshot} ` +
        `${disk ? shortPath(disk) : `--dir ${shortPath(imported.dir)}`}\n`);
    });
}
