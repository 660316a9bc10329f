// Time-to-responsiveness (DESIGN.md section 5, after Zhang et al., VEE'11): the utilization
// U(t, w) of a window [t, t + w] is the share of it in which the hart was free to run, i.e. not
// stalled on restore work; TTR(w, u) is the earliest t after which every later window has
// U >= u. Times are in milliseconds from the start of the restore.

export interface Interval {
  start: number;
  end: number;
}

/** Merges overlapping intervals, sorted by start. */
export function mergeIntervals(list: Interval[]): Interval[] {
  const sorted = [...list].sort((a, b) => a.start - b.start);
  const out: Interval[] = [];
  for (const i of sorted) {
    const last = out[out.length - 1];
    if (last && i.start <= last.end) last.end = Math.max(last.end, i.end);
    else out.push({ ...i });
  }
  return out;
}

/** Stalled time inside [a, b]. */
function stalledIn(merged: Interval[], a: number, b: number): number {
  let s = 0;
  for (const i of merged) {
    if (i.end <= a) continue;
    if (i.start >= b) break;
    s += Math.min(b, i.end) - Math.max(a, i.start);
  }
  return s;
}

export function utilization(merged: Interval[], t: number, w: number): number {
  return 1 - stalledIn(merged, t, t + w) / w;
}

/** Stalled time per millisecond of the timeline [0, end + w], as prefix sums. */
function stallPrefix(merged: Interval[], end: number, w: number): Float64Array {
  const n = Math.ceil(end + w) + 2;
  const perMs = new Float64Array(n);
  for (const i of merged) {
    for (let ms = Math.floor(i.start); ms < Math.min(n, Math.ceil(i.end)); ms++) {
      perMs[ms] += Math.min(ms + 1, i.end) - Math.max(ms, i.start);
    }
  }
  const prefix = new Float64Array(n + 1);
  for (let k = 0; k < n; k++) prefix[k + 1] = prefix[k] + perMs[k];
  return prefix;
}

/**
 * TTR(w, u) over a timeline that ends at `end` (after which nothing stalls), with windows
 * starting every millisecond. Returns 0 if every window qualifies. O(end + stalls).
 */
export function ttr(merged: Interval[], end: number, w: number, u: number): number {
  const prefix = stallPrefix(merged, end, w);
  let answer = 0;
  for (let t = 0; t <= end; t++) {
    const stalled = prefix[Math.min(prefix.length - 1, t + w)] - prefix[t];
    if (1 - stalled / w < u) answer = t + 1;
  }
  return Math.min(answer, end);
}

export const TTR_WINDOWS = [100, 1000];
export const TTR_LEVELS = [0.5, 0.8, 0.9];

/** TTR for the standard windows and levels, keyed "w=100ms u=0.5". */
export function ttrTable(intervals: Interval[], end: number): Record<string, number> {
  const merged = mergeIntervals(intervals);
  const out: Record<string, number> = {};
  for (const w of TTR_WINDOWS) for (const u of TTR_LEVELS) out[`w=${w}ms u=${u}`] = ttr(merged, end, w, u);
  return out;
}

/** U(t, w) sampled every `step` ms up to `end`, for the curve in --stats-json. */
export function utilizationCurve(intervals: Interval[], end: number, w: number, step: number): { t: number; u: number }[] {
  const prefix = stallPrefix(mergeIntervals(intervals), end, w);
  const out: { t: number; u: number }[] = [];
  for (let t = 0; t <= end; t += step) {
    const stalled = prefix[Math.min(prefix.length - 1, t + w)] - prefix[t];
    out.push({ t, u: Number((1 - stalled / w).toFixed(4)) });
  }
  return out;
}
