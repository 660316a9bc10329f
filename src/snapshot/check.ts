// `rvm snapshot check NAME`: verifies everything a restore of the snapshot would need, without
// restoring it and without changing any file — the header and metadata, every page-map chunk,
// every page against its hash (stored and same-as pages from this file or the parents it refers
// to, disk-backed pages from the disk's journal as of the mark, or from the image), each disk
// journal (every record, its head's length and chain, the marks the snapshot needs, its
// identity) and each disk image (present, same size). The first problem ends the check with a
// one-line error naming it; the images are locked shared meanwhile (a VM writing one must be
// stopped first, as for `qemu-img check`).

import { statSync } from "node:fs";
import { join } from "node:path";
import { Core, PAGE_SIZE, RAM_BASE } from "../core.js";
import { MemoryDisk, RawDisk, type BlockBackend } from "../devices/disk.js";
import { readImage } from "../loaders/image.js";
import { GuestMemory } from "../memory.js";
import { MAP_CHUNK_PAGES, PageKind, SnapshotError, SnapshotFile } from "./format.js";
import { DiskJournal } from "./journal.js";
import { SnapshotStore } from "./store.js";

export interface CheckReport {
  name: string;
  pages: number;
  kinds: { zero: number; disk: number; same: number; stored: number; inParents: number };
  chunks: number;
  parents: string[];
  journals: { file: string; records: number; bytes: number; marks: number[] }[];
  disks: { index: number; file: string; size: number }[];
}

/** Pages hashed per batch (through the core's page hash, as the restore verifies them). */
const BATCH = 256;

export function checkSnapshot(store: SnapshotStore, file: string): CheckReport {
  const snap = SnapshotFile.open(file);
  const opened: { close(): void }[] = [snap];
  try {
    const m = snap.meta;
    const fail = (problem: string): never => {
      throw new SnapshotError(file, problem);
    };
    // The files it refers to (incremental saves).
    const files = [snap];
    for (const r of m.refs) {
      const f = SnapshotFile.open(store.fileById(r.id));
      opened.push(f);
      files.push(f);
    }
    // Its disks and their journals, read-only.
    const disks = new Map<number, { disk: BlockBackend; journal?: DiskJournal }>();
    const report: CheckReport = {
      name: m.name, pages: snap.pages, kinds: { zero: 0, disk: 0, same: 0, stored: 0, inParents: 0 },
      chunks: Math.ceil(snap.pages / MAP_CHUNK_PAGES), parents: files.slice(1).map((f) => f.file), journals: [], disks: [],
    };
    for (const d of m.disks) {
      let size: number;
      try {
        size = statSync(d.file).size;
      } catch {
        return fail(`drive ${d.index}: its image ${d.file} is missing`);
      }
      const sectors = Math.ceil(size / 512) * 512;
      if (sectors !== d.size) fail(`drive ${d.index}: ${d.file} is ${sectors} bytes, was ${d.size} at savevm`);
      let disk: BlockBackend;
      if (d.volatile) {
        disk = new MemoryDisk(readImage(d.file), true);
      } else {
        const raw = RawDisk.open(d.file, { readOnly: true, lock: "read" });
        opened.push(raw);
        disk = raw;
      }
      let journal: DiskJournal | undefined;
      if (!d.readonly && !d.volatile) {
        journal = DiskJournal.open(store.dir, d.journal, disk, { readOnly: true });
        opened.push(journal);
        if (d.journalId !== undefined && d.journalId !== journal.journalId) fail(`the disk journal ${journal.file} is not the one this snapshot was taken with (it was replaced)`);
        for (const g of [d.mark, ...(d.entryMarks ?? [])]) {
          if (!journal.hasMark(g)) fail(`the disk journal ${journal.file} no longer goes back to this snapshot (mark ${g} is gone)`);
        }
        report.journals.push({ file: journal.file, records: journal.records, bytes: journal.size(), marks: journal.liveMarks });
      }
      disks.set(d.index, { disk, journal });
      report.disks.push({ index: d.index, file: d.file, size: d.size });
    }

    // Every page: read it where the restore would, hash it in the core, compare.
    const core = new Core(BATCH * PAGE_SIZE);
    const where = (p: number) => `page ${p} (guest-physical 0x${(RAM_BASE + p * PAGE_SIZE).toString(16)})`;
    let batch: { page: number; hash: bigint; disk: boolean }[] = [];
    const verifyBatch = () => {
      batch.forEach((b, slot) => {
        const h = BigInt.asUintN(64, core.exports.pageHash(slot));
        if (h !== b.hash) fail(`${where(b.page)}: ${b.disk ? "its disk block changed or is unreadable" : "checksum mismatch in the snapshot data"}`);
      });
      batch = [];
    };
    for (let p = 0; p < snap.pages; p++) {
      const e = snap.entry(p); // each map chunk is read and checked on first use
      const slot = core.ram.subarray(batch.length * PAGE_SIZE, (batch.length + 1) * PAGE_SIZE);
      switch (e.kind) {
        case PageKind.Zero:
          report.kinds.zero++;
          if (e.hash !== 0n) fail(`${where(p)}: corrupted page map (a zero page with a hash)`);
          continue;
        case PageKind.Stored:
        case PageKind.Same: {
          if (e.kind === PageKind.Stored) report.kinds.stored++;
          else report.kinds.same++;
          if (e.ref > 0) report.kinds.inParents++;
          const f = files[e.ref];
          if (!f) fail(`${where(p)}: refers to file ${e.ref}, the snapshot refers to ${files.length - 1}`);
          f.read(e.value, slot);
          batch.push({ page: p, hash: e.hash, disk: false });
          break;
        }
        case PageKind.Disk: {
          report.kinds.disk++;
          const { disk, block } = GuestMemory.splitBlockKey(e.value);
          const d = disks.get(disk);
          if (!d) fail(`${where(p)}: refers to drive ${disk}, which the snapshot does not record`);
          if (d!.journal) d!.journal.readBlock(block, e.mark, slot);
          else {
            slot.fill(0);
            d!.disk.read(slot.subarray(0, Math.max(0, Math.min(PAGE_SIZE, d!.disk.size - block * PAGE_SIZE))), block * PAGE_SIZE);
          }
          batch.push({ page: p, hash: e.hash, disk: true });
          break;
        }
        default:
          fail(`${where(p)}: unknown page kind ${e.kind as number}`);
      }
      if (batch.length === BATCH) verifyBatch();
    }
    verifyBatch();
    return report;
  } finally {
    for (const o of opened.reverse()) o.close();
  }
}

/** The size a snapshot needs on disk: its file, the parents it refers to, its disks' journals. */
export function dependencySizes(store: SnapshotStore, file: string): { own: number; parents: number; parentFiles: number; journals: number } {
  const snap = SnapshotFile.open(file);
  try {
    const out = { own: snap.fileSize, parents: 0, parentFiles: 0, journals: 0 };
    for (const r of snap.meta.refs) {
      try {
        out.parents += statSync(store.fileById(r.id)).size;
        out.parentFiles++;
      } catch {
        // a missing parent is reported by check and restore
      }
    }
    for (const d of snap.meta.disks) {
      if (d.readonly || d.volatile) continue;
      try {
        out.journals += statSync(join(store.dir, `${d.journal}.journal`)).size;
      } catch {
        // no journal (yet)
      }
    }
    return out;
  } finally {
    snap.close();
  }
}
