// savevm -b into the object store under deterministic time (icount): the guest runs on and
// writes all over its memory while the save goes, and the snapshot is exactly memory at the
// instant the save started — the same as a stop-and-save at the same instruction count.
// And both kinds of save put the pages the hart needs first (the page tables of its pc, its pc
// page, its stack page; found by a page-table walk in the test) at the head of the working set,
// named in the manifest with where they are stored and their hashes, so a lazy restore's first
// read carries them without waiting for a pack's index; the rest of the hart's page tables right
// after them (in the save's order only). And a stop-and-save reports the guest's
// whole pause: its last uploads and the manifest's PUT included.

import { describe, expect, it } from "vitest";
import { join } from "node:path";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { createVirtMachine } from "../../src/board/virt.js";
import type { Machine } from "../../src/machine.js";
import { PageState } from "../../src/core.js";
import { ContentStore, decodePageList, decodeWorkingSet, EntryKind, keys, Manifest, packRange, sha256, StoreMap, WorkingSetPage } from "../../src/store/cas.js";
import { ObjectStore, S3ObjectStore } from "../../src/store/objects.js";
import { StoreVm } from "../../src/store/vm.js";
import { clearPageBit, machineState, saveToStore, setStoreLineage, stoppedCapture, StoreSaveStats } from "../../src/store/save.js";
import { workingSetRuns, wsFirstAt, wsRank } from "../../src/store/restore.js";
import { assignRuns, planReads, recordedRuns } from "../../src/store/plan.js";
import { GUEST, diskCopy, populated, PROMPT } from "../snapshot/util.js";
import { ramPageOf, tableTree } from "../snapshot/lazy-util.js";
import { freshBucket, haveRadosgw, useRadosgw } from "./rgw.js";

function guest(vm: StoreVm, disk: string): { machine: Machine; out: () => string } {
  let out = "";
  const machine = createVirtMachine({
    ramBytes: 256 << 20,
    bios: join(GUEST, "fw_dynamic.bin"),
    kernel: join(GUEST, "Image.gz"),
    initrd: join(GUEST, "initramfs.cpio.gz"),
    append: "console=ttyS0",
    drives: [{ file: disk, readonly: false, attached: true } as never],
    icountShift: 4,
    openDisk: vm.openDisk,
    console: { write: (_fd, b) => void (out += Buffer.from(b).toString("latin1")), readByte: () => -1 },
  });
  return { machine, out: () => out };
}

/**
 * The radosgw tests' set-up: a fresh bucket, a directory, a StoreVm on it and the guest booted
 * to its prompt; `test` runs with them, and the StoreVm and directory are closed and removed after.
 */
async function withGuest(tag: string, test: (vm: StoreVm, a: { machine: Machine; out: () => string }) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), `rvm-${tag}-`));
  const vm = new StoreVm(`s3://${freshBucket(tag)}/vms`);
  try {
    const a = guest(vm, diskCopy(dir, "a.img"));
    await a.machine.run({ until: () => a.out().includes(PROMPT), timeoutMs: 240_000 });
    await test(vm, a);
  } finally {
    vm.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * The manifest's working set starts (in the restore's read order) with the page tables of pc's
 * translation (`pcTables`, root first), `pc`, then `sp` (after its own tables); the manifest
 * says where each of these pages is stored and its hash, and reading them there gives pages
 * with those hashes, the ones the RAM map has.
 */
async function expectFirst(
  vm: StoreVm, m: Manifest, pc: number, sp: number, pcTables: number[], tree: number[], age?: (p: number) => number, diskBacked?: (p: number) => boolean,
  touches?: (p: number) => number,
): Promise<void> {
  expect(pc).toBeGreaterThanOrEqual(0);
  const items = decodeWorkingSet(m.workingSet!, m.packs, m.name);
  for (let i = 1; i < items.length; i++) expect(items[i].page).toBeGreaterThan(items[i - 1].page); // still by page
  const first = m.workingSet!.first!;
  const listed = new Set(items.map((x) => x.page));
  expect(pcTables.length).toBeGreaterThan(0); // the guest (Linux, S-mode) translates
  const at = first.indexOf(pc);
  expect(at).toBeGreaterThanOrEqual(0);
  expect(first.slice(0, at)).toEqual([...new Set(pcTables)].filter((p) => listed.has(p) && p !== pc));
  if (sp >= 0 && sp !== pc && listed.has(sp)) expect(first.indexOf(sp)).toBeGreaterThan(at);
  // Where each first page is stored, and its hash: reading it there gives that page.
  const firstAt = m.workingSet!.firstAt!;
  expect(firstAt.length).toBe(first.length);
  const ram = new StoreMap(vm.cs.objects, m.map, m.name);
  for (const [i, p] of first.entries()) {
    const item = items.find((x) => x.page === p)!;
    const [offset, length, hash] = firstAt[i]!;
    const page = await vm.cs.readStored(item.pack, item.slot, offset, [length]);
    expect(sha256(page).toString("hex")).toBe(hash);
    await ram.load(ram.chunkOf(p));
    expect(ram.entry(p).hash.toString("hex")).toBe(hash);
  }
  // The zero pages the guest touched last (not in the list: it names stored pages) are named
  // apart, and the RAM map has them as zero pages.
  const zero = decodePageList(m.workingSet!.zero, m.map.entries);
  expect(zero?.size).toBeGreaterThan(0);
  for (const p of zero!) {
    expect(listed.has(p)).toBe(false);
    await ram.load(ram.chunkOf(p));
    expect(ram.entry(p).kind).toBe(EntryKind.Zero);
  }
  // The restore's first read is the first pages (consecutive slots: one read, located by the
  // manifest); every page is still read exactly once.
  const runs = workingSetRuns(items, first, wsFirstAt(m));
  expect(runs[0].at).toBeDefined();
  expect(runs[0].items.map((x) => x.page)).toEqual(first.slice(0, runs[0].count));
  expect(runs.flatMap((r) => r.items.map((x) => x.page)).sort((a, b) => a - b)).toEqual(items.map((x) => x.page));
  for (const r of runs) expect(r.items.every((x) => x.pack === r.pack && x.slot >= r.first && x.slot < r.first + r.count)).toBe(true);
  // Without the list (an older snapshot), the runs are as before: whole runs in the list's order.
  const plain = workingSetRuns(items);
  expect(plain.length).toBeLessThanOrEqual(runs.length);
  // With a hot list (an earlier restore's first touches; pages outside the working set and
  // repeats are ignored): the first pages' read still first, then the runs holding hot pages, in
  // the order of their first hot page, before any run without one; every page still read once.
  expectSaveOrder(m, items, first, tree, age, diskBacked, touches);
  await expectReads(vm, m, items, first);
  const pick = items.filter((_, i) => i % 29 === 7).map((x) => x.page).reverse();
  const hot = [...pick, pick[0], 1 << 30, -1];
  const hr = workingSetRuns(items, first, wsFirstAt(m), hot);
  expect(hr[0]).toEqual(runs[0]);
  expect(hr.flatMap((r) => r.items.map((x) => x.page)).sort((a, b) => a - b)).toEqual(items.map((x) => x.page));
  for (const r of hr) expect(r.items.every((x) => x.pack === r.pack && x.slot >= r.first && x.slot < r.first + r.count && r.count <= 256)).toBe(true);
  const runOf = (p: number) => hr.findIndex((r) => r.items.some((x) => x.page === p));
  const hotSet = new Set(pick);
  const lastHot = Math.max(...pick.map(runOf));
  for (let i = lastHot + 1; i < hr.length; i++) expect(hr[i].items.some((x) => hotSet.has(x.page))).toBe(false);
  const heads = hr.findIndex((r) => !r.items.every((x) => first.includes(x.page)));
  const order = [...new Set(pick.filter((p) => !first.includes(p)).map(runOf))];
  expect(order[0]).toBe(heads);
  for (let i = 1; i < order.length; i++) expect(order[i]).toBeGreaterThan(order[i - 1]);
}

/**
 * The manifest's `workingSet.reads` (the first restore's reads, which it sends without planning
 * them) are the runs the restore's planner cuts for a restore without a hot list, in its order:
 * the first pages' read located by `firstAt`, every other read by its byte range in its pack,
 * which is where that pack's index puts those slots; given their pages (assignRuns), the reads
 * hold every working-set page once, and reading them there gives pages with the index's hashes.
 */
async function expectReads(vm: StoreVm, m: Manifest, items: WorkingSetPage[], first: number[]): Promise<void> {
  const planned = workingSetRuns(items, first, wsFirstAt(m), [], wsRank(m));
  expect(m.workingSet!.reads!.length).toBe(planned.length);
  const rec = recordedRuns(m)!;
  expect(rec).toBeDefined();
  expect(rec.filter((r) => r.unassigned).length).toBe(rec.filter((r) => !r.at).length);
  expect(assignRuns(rec, items)).toEqual([]);
  const shape = (r: (typeof planned)[number]) => ({ pack: r.pack, first: r.first, count: r.count, at: r.at, pages: r.items.map((x) => x.page).sort((a, b) => a - b) });
  expect(rec.map(shape)).toEqual(planned.map(shape));
  // The same for a later restore's reads, planned with a hot list (written with it: planReads),
  // whose runs may span each other's slots: the same reads, and each page goes to a read of its
  // slot, the one the planner puts it in wherever only one read holds that slot (pages with the
  // same content share a slot, which may then end one read and begin the next: either serves).
  for (const p of m.packs) await vm.cs.packLayout(p);
  const located = (pack: string, slot: number): [number, number] | undefined => {
    const o = vm.cs.cachedLayout(pack)!.offsets!;
    return [o[slot], o[slot + 1] - o[slot]];
  };
  const hot = items.filter((_, i) => i % 23 === 5).map((x) => x.page).reverse();
  const hotPlanned = workingSetRuns(items, first, wsFirstAt(m), hot, wsRank(m));
  const hotRec = recordedRuns(m, planReads(m, hot, located))!;
  expect(assignRuns(hotRec, items)).toEqual([]);
  const reads = (r: (typeof planned)[number]) => ({ pack: r.pack, first: r.first, count: r.count, at: r.at });
  expect(hotRec.map(reads)).toEqual(hotPlanned.map(reads));
  expect(hotRec.map(reads)).not.toEqual(rec.map(reads));
  const holds = (r: (typeof planned)[number], x: WorkingSetPage) => r.pack === x.pack && x.slot >= r.first && x.slot < r.first + r.count;
  const runOf = (runs: typeof planned, x: WorkingSetPage) => runs.findIndex((r) => r.items.some((y) => y.page === x.page));
  for (const x of items) {
    const k = runOf(hotRec, x);
    expect(holds(hotRec[k], x)).toBe(true);
    if (hotPlanned.filter((r) => holds(r, x)).length === 1) expect(k).toBe(runOf(hotPlanned, x));
  }
  expect(rec[0].at).toBeDefined();
  for (const r of rec) {
    if (r.at) continue;
    expect(r.range).toBeDefined();
    const layout = await vm.cs.packLayout(r.pack);
    expect(packRange(r.pack, layout, r.first, r.count)).toEqual(r.range);
  }
  // Read where the manifest says (before the index: readRunAt), the pages are the index's.
  for (const r of rec.filter((x) => x.range && !x.at).slice(0, 3)) {
    const run = await vm.cs.readRunAt(r.pack, r.first, r.count, r.range!.offset, r.range!.length);
    const hashes = await vm.cs.packIndex(r.pack);
    for (const x of r.items) expect(sha256(run.page(x.slot - r.first)).equals(hashes[x.slot])).toBe(true);
  }
}

/**
 * The manifest's `workingSet.order` (the save's order): every listed page once, the first pages
 * first, then the hart's other page tables (`tree`: satp's whole tree at the save's instant, root
 * first), then (`age`: the guest's touch ages at a stop-and-save) the most recently touched
 * first, within an age those touched in more access epochs (`touches`) first; the pages this save uploaded are in its packs in that order (those it found in older
 * packs are where they were); the restore reads its runs in that order (each run once, by the
 * lowest rank of its pages), every page once.
 */
function expectSaveOrder(
  m: Manifest, items: WorkingSetPage[], first: number[], tree: number[], age?: (p: number) => number, diskBacked?: (p: number) => boolean, touches?: (p: number) => number,
): void {
  const rank = wsRank(m)!;
  expect(rank).toBeDefined();
  expect([...rank.keys()].sort((a, b) => a - b)).toEqual(items.map((x) => x.page));
  const bySave = [...items].sort((a, b) => rank.get(a.page)! - rank.get(b.page)!);
  expect(bySave.slice(0, first.length).map((x) => x.page)).toEqual(first);
  const listed = new Set(items.map((x) => x.page));
  const tables = tree.filter((p) => listed.has(p) && !first.includes(p));
  expect(tree.length).toBeGreaterThan(4); // Linux: more tables than one walk reads
  expect(tables.length).toBeGreaterThan(0);
  expect(bySave.slice(first.length, first.length + tables.length).map((x) => x.page)).toEqual(tables);
  const head = first.length + tables.length;
  if (age) {
    // The pages filled by a disk read and unchanged since (PageState.Disk) after the others,
    // each part the most recently touched first.
    const rest = bySave.slice(head).map((x) => x.page);
    const disk = diskBacked ? rest.filter(diskBacked) : [];
    const other = rest.filter((p) => !disk.includes(p));
    expect(rest).toEqual([...other, ...disk]);
    if (diskBacked) expect(disk.length).toBeGreaterThan(0); // the guest read its disk just before
    // The check below says nothing if every page has one age (the guest's run fell in one
    // access epoch, possible on a loaded host): the test fails rather than pass on that.
    expect(new Set(other.map(age)).size).toBeGreaterThan(1);
    // Within an age, the pages touched in more access epochs first (Machine.touchCount).
    let mixed = 0;
    for (const part of [other, disk]) {
      const ages = part.map(age), counts = part.map(touches!);
      for (let i = 1; i < ages.length; i++) {
        expect(ages[i]).toBeGreaterThanOrEqual(ages[i - 1]);
        if (ages[i] === ages[i - 1]) expect(counts[i]).toBeLessThanOrEqual(counts[i - 1]);
        if (ages[i] === ages[i - 1] && counts[i] !== counts[i - 1]) mixed++;
      }
    }
    expect(mixed).toBeGreaterThan(0); // (else the count order was not checked)
  }
  // (A page equal to an earlier one of the same save is stored once, in the earlier one's slot.)
  const seen = new Set<string>();
  const own = bySave.filter((x) => x.pack.startsWith(m.id) && !seen.has(`${x.pack}/${x.slot}`) && seen.add(`${x.pack}/${x.slot}`));
  expect(own.length).toBeGreaterThan(0);
  for (let i = 1; i < own.length; i++) expect(own[i].pack > own[i - 1].pack || (own[i].pack === own[i - 1].pack && own[i].slot > own[i - 1].slot)).toBe(true);
  const runs = workingSetRuns(items, first, wsFirstAt(m), [], rank);
  expect(runs.flatMap((r) => r.items.map((x) => x.page)).sort((a, b) => a - b)).toEqual(items.map((x) => x.page));
  const lowest = runs.map((r) => Math.min(...r.items.map((x) => rank.get(x.page)!)));
  for (let i = 1; i < lowest.length; i++) expect(lowest[i]).toBeGreaterThan(lowest[i - 1]);
}

describe("the end of a background save gives every page back (clearPageBit)", () => {
  it("clears one bit in every page state and keeps the others: by words, and the bytes of a tail or an unaligned view", () => {
    const backing = new Uint8Array(64 + 3);
    for (let i = 0; i < backing.length; i++) backing[i] = (i * 37) & 0xff;
    for (const view of [backing.subarray(0, 64 + 3), backing.subarray(1, 1 + 40), backing.subarray(4, 4 + 2)]) {
      const before = Uint8Array.from(view);
      clearPageBit(view, PageState.NotRestored);
      expect([...view]).toEqual([...before].map((x) => x & ~PageState.NotRestored));
    }
  });
});

describe.skipIf(!haveRadosgw)("savevm -b (background) into the object store", () => {
  useRadosgw();

  it("a stop-and-save's pause includes its last uploads, the manifest's PUT and the lock's release", { timeout: 120_000 }, async () => {
    // radosgw behind a slow link for the manifest: every request reaches the real store, the
    // manifest's PUT HOLD ms late (as a distant store's round trip would be).
    const HOLD = 1500;
    const s3 = S3ObjectStore.fromUrl(`s3://${freshBucket("pause")}/vms`);
    let putAt: [number, number] | undefined;
    const slow: ObjectStore = {
      url: s3.url,
      put: async (key, body) => {
        if (key !== keys.manifest("stop")) return s3.put(key, body);
        const t = performance.now();
        await new Promise((r) => setTimeout(r, HOLD));
        await s3.put(key, body);
        putAt = [t, performance.now()];
      },
      get: (key) => s3.get(key),
      getRange: (key, offset, length) => s3.getRange(key, offset, length),
      list: (prefix) => s3.list(prefix),
      delete: (list) => s3.delete(list),
      ensure: () => s3.ensure(),
    };
    try {
      const cs = new ContentStore(slow);
      const machine = populated(16 << 20);
      const t0 = performance.now();
      const m = await saveToStore(machine, cs, "stop", machineState(machine), stoppedCapture(machine, new Map()), () => true, { t0 });
      const whole = performance.now() - t0;
      const said = m.meta.stats as StoreSaveStats;
      // The pause the save reports is the whole save: the manifest's PUT (and the lock's
      // release after it) included, and no more than the time the caller waited.
      expect(putAt).toBeDefined();
      expect(said.pauseMs).toBe(said.saveMs);
      expect(said.pauseMs).toBeGreaterThanOrEqual(Math.floor(putAt![1] - t0));
      expect(said.pauseMs).toBeLessThanOrEqual(Math.ceil(whole));
      // The manifest in the store carries the time up to its own PUT (every pack and chunk
      // stored): the held PUT is the difference.
      const stored = (await cs.readManifest("stop")).meta.stats as StoreSaveStats;
      expect(stored.pauseMs).toBeLessThanOrEqual(Math.ceil(putAt![0] - t0));
      expect(said.pauseMs - stored.pauseMs).toBeGreaterThanOrEqual(HOLD - 1);
      // The bytes uploaded count every pack, the last one (sealed at the end) too.
      const own = (await s3.list("packs/")).filter((o) => o.key.startsWith(`packs/${m.id}`) && o.key.endsWith(".pack"));
      expect(own.length).toBeGreaterThan(0);
      expect(stored.uploadedBytes).toBe(own.reduce((n, o) => n + o.size, 0));
      expect(said.uploadedBytes).toBe(stored.uploadedBytes);
    } finally {
      await s3.close();
    }
  });

  it("equals a stop-and-save at the same instruction count while the guest writes all over memory", { timeout: 600_000 }, async () => {
    await withGuest("bg", async (vmA, a) => {
      // A loop that keeps rewriting 64 MiB of fresh anonymous memory.
      a.machine.input(Buffer.from("while :; do echo quit | memfill 64 >/dev/null; done &\n"));
      await a.machine.run({ instructions: 300_000_000 });
      // The reference: a stop-and-save at this instruction count ...
      const before = a.machine.core.instret;
      const stopped = await vmA.save(a.machine, "stopped");
      expect(a.machine.core.instret).toBe(before);
      // ... and, at the same instruction count, a background save of everything (not an
      // incremental one on top of the reference), then the guest runs on until it is stored.
      setStoreLineage(a.machine, undefined);
      const job = await vmA.saveBackground(a.machine, "background");
      const at = a.machine.core.instret;
      expect(at).toBe(before);
      await a.machine.run({ until: () => job.finished !== undefined, timeoutMs: 300_000 });
      expect(job.error).toBeUndefined();
      const bg = job.manifest!;
      // The guest ran during the save and touched pages before the save had read them.
      expect(a.machine.core.instret - at).toBeGreaterThan(1_000_000n);
      expect(job.capture.copied).toBeGreaterThan(100);
      console.log(`savevm -b: guest paused ${job.pauseMs.toFixed(2)} ms, ran ${a.machine.core.instret - at} instructions ` +
        `during the save, ${job.capture.copied} pages copied ahead of it; stop-and-save paused ${(stopped.meta.stats as { pauseMs: number }).pauseMs} ms`);
      // Same machine state, same memory, page by page.
      for (const k of ["hart", "mtime", "devices", "rom"]) expect(bg.meta[k]).toEqual(stopped.meta[k]);
      const mb = new StoreMap(vmA.cs.objects, bg.map, "bg"), ms = new StoreMap(vmA.cs.objects, stopped.map, "stopped");
      await mb.loadAll();
      await ms.loadAll();
      let differ = 0;
      for (let p = 0; p < mb.entries; p++) {
        const x = mb.entry(p), y = ms.entry(p);
        if (x.kind !== y.kind || !x.hash.equals(y.hash)) differ++;
      }
      expect(differ).toBe(0);
      // And the memory the guest has now is not that memory any more.
      const now = await vmA.save(a.machine, "later");
      const ml = new StoreMap(vmA.cs.objects, now.map, "later");
      await ml.loadAll();
      let changed = 0;
      for (let p = 0; p < ml.entries; p++) if (!ml.entry(p).hash.equals(mb.entry(p).hash)) changed++;
      expect(changed).toBeGreaterThan(1000);
      expect((await vmA.cs.manifests()).map((m) => m.name).sort()).toEqual(["background", "later", "stopped"]);
    });
  });

  it("stop-and-save and savevm -b put pc's page tables, the pc page, then the stack page at the head of the working set, located in the manifest", { timeout: 600_000 }, async () => {
    await withGuest("first", async (vm, a) => {
      // A disk read first (pages filled by virtio-blk's DMA: PageState.Disk), then other work.
      // Until the command is done (not a fixed instruction count: on a loaded host that took
      // over 2 s, and the disk read's pages had left the working set by the save).
      const from = a.out().length;
      a.machine.input(Buffer.from("dd if=/dev/vda of=/dev/null bs=4096 count=64 2>/dev/null; echo quit | memfill 16 >/dev/null; echo o''k\n"));
      await a.machine.run({ until: () => /\nok\r?\n/.test(a.out().slice(from)), timeoutMs: 240_000 });
      // A new access epoch (they end by the wall clock), so the working set most likely has pages of several ages.
      await new Promise((r) => setTimeout(r, 150));
      await a.machine.run({ instructions: 8_000_000 });
      const core = a.machine.core;
      let tables: number[] = [];
      let pc = ramPageOf(a.machine, core.pc, true, tables), sp = ramPageOf(a.machine, core.x(2), false);
      let tree = tableTree(a.machine);
      await expectFirst(vm, await vm.save(a.machine, "stopped"), pc, sp, tables, tree, (p) => a.machine.touchAge(p), (p) => (core.pages[p] & PageState.Disk) !== 0, (p) => a.machine.touchCount(p));
      await a.machine.run({ instructions: 30_000_000 });
      tables = [];
      pc = ramPageOf(a.machine, core.pc, true, tables);
      sp = ramPageOf(a.machine, core.x(2), false);
      tree = tableTree(a.machine);
      const job = await vm.saveBackground(a.machine, "background");
      await a.machine.run({ until: () => job.finished !== undefined, timeoutMs: 300_000 });
      expect(job.error).toBeUndefined();
      await expectFirst(vm, job.manifest!, pc, sp, tables, tree);
    });
  });
});
