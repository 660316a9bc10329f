// The working set's reads (the restore's first requests, before it has the RAM map): which runs
// of pack slots, in which order. A restore of a snapshot with a hot list plans them itself
// (workingSetRuns); the save plans the first restore's (no hot list) and writes them into the
// manifest (`workingSet.reads`), so that such a restore sends its first reads right after the
// manifest, without planning on the way to the guest's first instruction.

import { PAGE_SIZE } from "../core.js";
import { decodeWorkingSet, decodeWorkingSetOrder, type Manifest, type WorkingSetPage } from "./cas.js";
import type { LiveRead } from "../snapshot/timeline.js";

/**
 * Working-set reads' size in slots (the restore has four in flight). Each GET costs the store a
 * round trip that grows with its load more than with the bytes: with deflated pages (~1.3 KiB
 * each in the page-cache guest) a run of 256 slots is ~330 KiB, and the working set of 2976
 * pages comes in 12 reads instead of 47 (restore-to-echo at load average 10-13, alternating
 * runs: best 4.27 s -> 2.09 s, median 4.79 s -> 4.09 s).
 */
export const WS_RUN_PAGES = 256;
/** Hot pages whose slots are at most this far apart are one read (workingSetRuns). */
const HOT_GAP = 16;
/** A read of consecutive slots of one pack holding working-set pages. */
export interface WsRun {
  pack: string;
  first: number;
  count: number;
  items: WorkingSetPage[];
  read?: Promise<void>;
  /**
   * Where the run's slots are stored and their pages' hashes, from the manifest (the first
   * pages' `firstAt`): the run is read and checked without its pack's index.
   */
  at?: { offset: number; lengths: number[]; hashes: Buffer[] };
  /**
   * Where the run's slots are stored, from the manifest (`workingSet.reads`): the read is sent
   * without waiting for its pack's index (its pages are still checked against that index).
   */
  range?: { offset: number; length: number };
  /** A run of the manifest's `reads` whose pages (`items`) are not known yet (assignRuns). */
  unassigned?: boolean;
  /** The restore timeline's record of the read (when it was sent, answered, installed). */
  trace?: LiveRead;
}

/**
 * The working set's reads: runs of consecutive slots (at most WS_RUN_PAGES) per pack, in the
 * save's order (`rank`: the manifest's workingSet.order, the most recently touched first; the
 * list's, by page, for a snapshot without one), except that each page of `first` (the pages the
 * harts need first: pc, stack; the manifest's workingSet.first) is a one-slot read of its own,
 * and those go out before all others, in that order.
 */
export function workingSetRuns(
  items: WorkingSetPage[], first: number[] = [], firstAt?: Map<number, { offset: number; length: number; hash: Buffer }>, hot: number[] = [],
  rank?: Map<number, number>,
): WsRun[] {
  const byPack = [...items].sort((a, b) => (a.pack === b.pack ? a.slot - b.slot : a.pack < b.pack ? -1 : 1));
  const of = new Map<number, WsRun>();
  // A run over `its` (one pack, slots ascending), which its pages then map to.
  const runOf = (its: WorkingSetPage[]): WsRun => {
    const run: WsRun = { pack: its[0].pack, first: its[0].slot, count: its[its.length - 1].slot - its[0].slot + 1, items: its };
    for (const { page } of its) of.set(page, run);
    return run;
  };
  // The hot pages (a previous restore's first touches, `readHot`): runs of their own, over
  // slots at most HOT_GAP apart (the working-set pages between them come along), sent in the
  // order the pages were first touched, before the other runs.
  const hotRank = new Map<number, number>();
  hot.forEach((p, i) => hotRank.has(p) || hotRank.set(p, i));
  const isHot = (x: WorkingSetPage) => hotRank.has(x.page);
  const inHot = new Set<WorkingSetPage>();
  if (hotRank.size) {
    for (let i = 0; i < byPack.length; i++) {
      if (!isHot(byPack[i]) || inHot.has(byPack[i])) continue;
      let end = i; // the last hot item of this run
      for (let j = i + 1; j < byPack.length && byPack[j].pack === byPack[i].pack && byPack[j].slot - byPack[i].slot < WS_RUN_PAGES &&
        byPack[j].slot - byPack[j - 1].slot <= HOT_GAP; j++) {
        if (isHot(byPack[j])) end = j;
        else if (byPack[j].slot - byPack[end].slot > HOT_GAP) break;
      }
      const its = byPack.slice(i, end + 1);
      for (const x of its) inHot.add(x);
      runOf(its);
    }
  }
  // The other pages: runs of consecutive slots, as many as fit in WS_RUN_PAGES. A run may span
  // hot pages' slots (read again, not used: fewer GETs cost the hart's thread less than the bytes).
  for (let i = 0; i < byPack.length; ) {
    if (inHot.has(byPack[i])) {
      i++;
      continue;
    }
    const its = [byPack[i]];
    let j = i + 1;
    for (; j < byPack.length && byPack[j].pack === byPack[i].pack && byPack[j].slot - byPack[i].slot < WS_RUN_PAGES &&
      byPack[j].slot - byPack[j - 1].slot <= 1; j++) {
      if (!inHot.has(byPack[j])) its.push(byPack[j]);
    }
    runOf(its);
    i = j;
  }
  // Each first page is cut out of its run into a read of its own (one slot: one round trip, not
  // a run's transfer), and those reads go out first.
  const head: WsRun[] = [];
  for (const p of first) {
    const r = of.get(p);
    if (!r || r.count === 1) {
      if (r) head.push(r);
      continue;
    }
    const x = r.items.find((i) => i.page === p)!;
    const lo = r.items.filter((i) => i.slot < x.slot), hi = r.items.filter((i) => i.slot > x.slot);
    head.push(runOf([x]));
    if (lo.length) runOf(lo);
    if (hi.length) runOf(hi);
  }
  // First pages whose stored bytes the manifest gives (firstAt) need no index: those in
  // consecutive slots of one pack (the save wrote them so, in this order) are one read.
  const out: WsRun[] = [];
  for (const r of new Set(head)) {
    const ref = r.count === 1 ? firstAt?.get(r.items[0].page) : undefined;
    if (!ref) {
      out.push(r);
      continue;
    }
    const g = out[out.length - 1];
    if (g?.at && g.pack === r.pack && g.first + g.count === r.first && g.at.offset + g.at.lengths.reduce((a, b) => a + b, 0) === ref.offset) {
      g.count++;
      g.items.push(...r.items);
      g.at.lengths.push(ref.length);
      g.at.hashes.push(ref.hash);
      for (const { page } of r.items) of.set(page, g);
    } else {
      out.push({ ...r, items: [...r.items], at: { offset: ref.offset, lengths: [ref.length], hashes: [ref.hash] } });
      for (const { page } of r.items) of.set(page, out[out.length - 1]);
    }
  }
  const hotRuns = [...hotRank.keys()].map((p) => of.get(p)).filter((r): r is WsRun => r !== undefined);
  const inOrder = rank ? [...items].sort((a, b) => (rank.get(a.page) ?? Infinity) - (rank.get(b.page) ?? Infinity) || a.page - b.page) : items;
  return [...new Set([...out, ...hotRuns, ...inOrder.map((x) => of.get(x.page)!)])];
}


/** The manifest's working-set order (its `order`), by page; undefined without one (see decodeWorkingSetOrder). */
export function wsRank(m: Manifest): Map<number, number> | undefined {
  return m.workingSet ? decodeWorkingSetOrder(m.workingSet, decodeWorkingSet(m.workingSet, m.packs, m.name)) : undefined;
}

/**
 * The reads of a restore of `m` that reads the hot list `hot` (workingSetRuns, encodeReads):
 * written with the hot list (the restore that records it, a save that carries it), so that the
 * next restore sends them without planning. Undefined where the list cannot be decoded.
 */
export function planReads(m: Manifest, hot: number[], storedRange: (pack: string, slot: number) => [number, number] | undefined): PlannedRead[] | undefined {
  if (!m.workingSet) return undefined;
  try {
    const first = wsFirst(m);
    return encodeReads(workingSetRuns(decodeWorkingSet(m.workingSet, m.packs, m.name), first, wsFirstAt(m), hot, wsRank(m)), m.packs, first, storedRange);
  } catch {
    return undefined;
  }
}

/** The manifest's pages the harts need first (none in older snapshots, or a list that is not one). */
export function wsFirst(m: Manifest): number[] {
  const f = m.workingSet?.first;
  return Array.isArray(f) ? f.filter((p) => Number.isSafeInteger(p)) : [];
}

/** The manifest's firstAt, by page: where each first page is stored and its hash (malformed entries left out). */
export function wsFirstAt(m: Manifest): Map<number, { offset: number; length: number; hash: Buffer }> {
  const out = new Map<number, { offset: number; length: number; hash: Buffer }>();
  const at = m.workingSet?.firstAt;
  const first = wsFirst(m);
  if (!Array.isArray(at) || at.length !== first.length) return out;
  at.forEach((a, i) => {
    if (!Array.isArray(a) || a.length !== 3) return;
    const [offset, length, hash] = a;
    if (!Number.isSafeInteger(offset) || offset < 0 || !Number.isInteger(length) || length < 1 || length > PAGE_SIZE) return;
    if (typeof hash !== "string" || !/^[0-9a-f]{64}$/.test(hash)) return;
    out.set(first[i], { offset, length, hash: Buffer.from(hash, "hex") });
  });
  return out;
}

/**
 * One read of the manifest's `workingSet.reads`: [index of its pack in the manifest's `packs`,
 * first slot, slot count, byte offset, byte length] (offset and length null where the save did
 * not know them: a pack found by dedup whose index it had not read), and for a read of the
 * harts' first pages (located by `firstAt`), a sixth item: the index in `first` of its first
 * page (its pages are first[i], first[i + 1], ... in consecutive slots).
 */
export type PlannedRead = [number, number, number, number | null, number | null] | [number, number, number, number | null, number | null, number];

/**
 * The manifest's `workingSet.reads`: the runs `workingSetRuns` gives the first restore of this
 * snapshot (no hot list), in order, each located in its pack (`storedRange`: [byte offset,
 * length] of a slot, where known). `packs`: the manifest's sorted pack list.
 */
export function encodeReads(runs: WsRun[], packs: string[], first: number[], storedRange: (pack: string, slot: number) => [number, number] | undefined): PlannedRead[] {
  const ord = new Map(packs.map((p, i) => [p, i]));
  return runs.map((r): PlannedRead => {
    const a = storedRange(r.pack, r.first), b = storedRange(r.pack, r.first + r.count - 1);
    const offset = a && b ? a[0] : null, length = a && b ? b[0] + b[1] - a[0] : null;
    const read: PlannedRead = [ord.get(r.pack)!, r.first, r.count, offset, length];
    if (r.at) {
      const i = first.indexOf(r.items[0].page);
      if (i >= 0 && r.items.length === r.count && r.items.every((x, k) => x.slot === r.first + k && first[i + k] === x.page)) read.push(i);
    }
    return read;
  });
}

/** Slots a pack has at most, as far as recorded reads go (PACK_MAX_PAGES is 4096; assignRuns' tables are sized by the reads' slots). */
const SLOT_MAX = 1 << 16;

/**
 * The first restore's reads as the manifest gives them (`workingSet.reads`, see encodeReads; or
 * a later restore's, `reads` of the snapshot's hot list, planned with it),
 * before the working-set list is decoded: the runs of the harts' first pages with their pages
 * and hashes (`firstAt`), the others located by byte range where the save knew it and their
 * pages not yet known (`unassigned`: assignRuns gives them). Undefined for a snapshot without
 * them or with a list that is not one (the restore then plans its reads itself). Only the
 * reads' order and bytes come from here: every page is checked against its hash (its pack's
 * index, or `firstAt`'s under the manifest's digest) before the guest sees it.
 */
export function recordedRuns(m: Manifest, reads: unknown = m.workingSet?.reads): WsRun[] | undefined {
  if (!Array.isArray(reads) || !reads.length) return undefined;
  const first = wsFirst(m);
  const at = wsFirstAt(m);
  const out: WsRun[] = [];
  const int = (x: unknown, lo: number, hi: number): x is number => Number.isSafeInteger(x) && (x as number) >= lo && (x as number) <= hi;
  for (const e of reads as unknown[]) {
    if (!Array.isArray(e) || (e.length !== 5 && e.length !== 6)) return undefined;
    const [pi, slot, count, offset, length, fi] = e as unknown[];
    if (!int(pi, 0, m.packs.length - 1) || !int(count, 1, WS_RUN_PAGES) || !int(slot, 0, SLOT_MAX - count)) return undefined;
    const pack = m.packs[pi];
    let range: WsRun["range"];
    if (offset !== null || length !== null) {
      if (!int(offset, 0, Number.MAX_SAFE_INTEGER) || !int(length, 1, count * PAGE_SIZE)) return undefined;
      range = { offset, length };
    }
    if (fi === undefined) {
      out.push({ pack, first: slot, count, items: [], range, unassigned: true });
      continue;
    }
    // The harts' first pages: read and checked without the index (firstAt), as workingSetRuns does.
    if (!int(fi, 0, first.length - count) || !range) return undefined;
    const lengths: number[] = [], hashes: Buffer[] = [], items: WorkingSetPage[] = [];
    let end = range.offset;
    for (let k = 0; k < count; k++) {
      const f = at.get(first[fi + k]);
      if (!f || f.offset !== end) return undefined;
      end += f.length;
      lengths.push(f.length);
      hashes.push(f.hash);
      items.push({ page: first[fi + k], pack, slot: slot + k });
    }
    if (end - range.offset !== range.length) return undefined;
    out.push({ pack, first: slot, count, items, at: { offset: range.offset, lengths, hashes } });
  }
  return out;
}

/**
 * Gives the unassigned runs of `runs` (recordedRuns) their pages: each item of the working set
 * not in a located run goes to the smallest run of its pack whose slots hold it. That is the
 * run workingSetRuns put it in: its runs are consecutive slots, and two runs' slots are either
 * apart or one within the other (a run over the hot pages, or the part of a run left by cutting
 * out a first page, inside a run of other pages that spans it: the planner gives such pages to
 * the inner one). Returns the items no run holds (none for reads rvm planned from this list;
 * were there some, the restore leaves them to its plan: slower, never wrong).
 */
export function assignRuns(runs: WsRun[], items: WorkingSetPage[]): WorkingSetPage[] {
  const located = new Set<number>();
  const byPack = new Map<string, WsRun[]>();
  for (const r of runs) {
    if (!r.unassigned) {
      for (const x of r.items) located.add(x.page);
      continue;
    }
    let l = byPack.get(r.pack);
    if (!l) byPack.set(r.pack, (l = []));
    l.push(r);
  }
  // Per pack, the run that holds each slot: the runs laid down largest first, so that a run
  // within another takes its slots (one table per pack, not a search per page: this runs on the
  // hart's thread, in cold code, right after the first instruction).
  const owner = new Map<string, { lo: number; runs: WsRun[]; of: Int32Array }>();
  for (const [pack, rs] of byPack) {
    let lo = Infinity, hi = 0;
    for (const r of rs) {
      lo = Math.min(lo, r.first);
      hi = Math.max(hi, r.first + r.count);
    }
    const of = new Int32Array(hi - lo).fill(-1);
    const order = rs.map((_, i) => i).sort((a, b) => rs[b].count - rs[a].count);
    for (const i of order) of.fill(i, rs[i].first - lo, rs[i].first + rs[i].count - lo);
    owner.set(pack, { lo, runs: rs, of });
  }
  const left: WorkingSetPage[] = [];
  for (const x of items) {
    if (located.has(x.page)) continue;
    const o = owner.get(x.pack);
    const k = o && x.slot >= o.lo && x.slot - o.lo < o.of.length ? o.of[x.slot - o.lo] : -1;
    if (k >= 0) o!.runs[k].items.push(x);
    else left.push(x);
  }
  for (const r of runs) r.unassigned = undefined;
  return left;
}
