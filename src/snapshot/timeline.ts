// The timeline of a restore, from process start to the guest's answer (issue 15): where the
// time goes before a restored VM responds.
//
// Times are milliseconds since the process started (`performance.timeOrigin`; Node's
// `performance.now()` counts from there). A harness that knows when it spawned rvm can say so
// in the environment variable RVM_SPAWN_TIME (ms since the epoch, as Date.now()); the timeline
// then starts at the spawn and its first phase is the exec of Node itself.
//
// Before the first guest instruction the timeline is a sequence of marks (Node ready, rvm's
// modules loaded, machine built, snapshot opened, machine state restored, first instruction).
// After it, the run loop tells the meter what the hart's thread does at every moment (run the
// guest, serve the host, run the fetcher, sleep in WFI, stand stopped); demand faults are cut
// out of whatever they interrupted. So the spans cover the time without gaps or overlaps, and
// the phases add up to the wall time at any instant — in particular at the first console output
// after the first console input (the guest's answer), which the timeline keeps with the
// breakdown as it stood at that moment.

import { cpuTimeMs, envVar, runtimeStartedMs } from "../platform.js";
import type { Machine, RunKind, RunMeter } from "../machine.js";

/** What the hart's thread did, in ms (the run phase after the first instruction). */
export interface Breakdown {
  /** In the guest (core.run), demand faults during device DMA excluded. */
  guest: number;
  /** Demand faults: the hart (or a device's DMA) waited for a page. */
  fault: number;
  /** The background fetcher's work on the hart's thread while the hart was runnable. */
  fetch: number;
  /** The same while the hart idled in WFI (costs the guest nothing). */
  fetchIdle: number;
  /** Asleep in WFI, nothing to do. */
  idle: number;
  /** Host work: devices, the event loop (console, monitor, timers), saving statistics. */
  host: number;
  /** The machine stood stopped (monitor `stop`, -S, a savevm). */
  stopped: number;
}

const KINDS: RunKind[] = ["guest", "fault", "fetch", "fetchIdle", "idle", "host", "stopped"];

function zero(): Breakdown {
  return { guest: 0, fault: 0, fetch: 0, fetchIdle: 0, idle: 0, host: 0, stopped: 0 };
}

export interface Mark {
  what: string;
  /** ms since the timeline's origin. */
  at: number;
  /** Process CPU time (user + system, all threads) then, ms (not for Node's start). */
  cpuMs?: number;
}

export interface ConsoleEvent {
  at: number;
  dir: "in" | "out";
  /** For output: the line (up to 80 characters, control characters dropped); input: byte count. */
  text: string;
  /** Guest instructions retired since the first instruction, then. */
  instret: number;
  /** Process CPU time (user + system, all threads) since process start, ms. */
  cpuMs: number;
  /** The run phase's breakdown up to this moment (ms since the first instruction). */
  run: Breakdown;
}

export interface FaultRecord {
  at: number;
  page: number;
  ms: number;
  /** Pages installed by this fault (read-ahead included). */
  pages: number;
  /** "hart": an instruction touched it; "host": a device's DMA or a host access. */
  by: "hart" | "host";
  /** For a fault of more than LONG_FAULT_MS on a page a store read holds: which read it waited for (FaultWait). */
  wait?: FaultWait;
}

/** A demand fault over LONG_FAULT_MS: the store read (`reads` index) its page is in, and where in it. */
export interface FaultWait {
  /** Index in the timeline's `reads` of the read holding the page (a working-set run, or the fault's own cluster read). */
  read: number;
  /** The page's slot in that read (0 = the read's first slot). */
  slot: number;
  /** Where that slot's stored bytes start in the read's body (null: not known). */
  offset: number | null;
  /** What served it: the run's read ("run"), the fault's read of the page's slot alone ("slot", `slotRead`), or its own cluster read ("fault"). */
  via: "run" | "slot" | "fault";
  /** Index in `reads` of the fault's one-slot read, where it made one. */
  slotRead?: number;
}

/** Faults longer than this (ms) say which store read they waited for. */
export const LONG_FAULT_MS = 1;

/**
 * A store read of a restore as it happens (times: performance.now(); undefined: not yet), kept
 * by the timeline (`read`) and written out as a ReadRecord. The restore fills it in.
 */
export interface LiveRead {
  /** "ws": a working-set run; "slot": a fault's read of its page's slot alone; "index": a pack's index; "fault": a fault's cluster read (outside the working set). */
  kind: "ws" | "slot" | "index" | "fault";
  pack: string;
  first: number;
  count: number;
  /** Working-set pages the read holds (known once its pages are assigned). */
  pages: number;
  /** Stored bytes asked for (null: not known). */
  bytes: number | null;
  /** When rvm asked for it; the GET's own steps (`get`: sent, headers, first and last body byte). */
  asked: number;
  get: { sent?: number; headers?: number; firstByte?: number; lastByte?: number };
  /** Bytes in and usable (for a working-set run: its pack's index too, which its pages are checked against). */
  ready?: number;
  /** Its pages staged (waiting for the hart's touch or the fetcher's turn to be checked and installed). */
  staged?: number;
  /** Its pages checked against their hashes and installed so far, and when the first and the last were. */
  installed: number;
  firstInstalled?: number;
  lastInstalled?: number;
  /** Index in the timeline's `reads` (set by RestoreTimeline.read). */
  index?: number;
}

/** A store read in the timeline's JSON: times in ms since the origin (null: did not happen). */
export interface ReadRecord {
  kind: LiveRead["kind"];
  /** The pack's name (store reads: the object it reads from). */
  pack: string;
  first: number;
  count: number;
  pages: number;
  bytes: number | null;
  asked: number;
  sent: number | null;
  headers: number | null;
  firstByte: number | null;
  lastByte: number | null;
  ready: number | null;
  staged: number | null;
  installed: number;
  firstInstalled: number | null;
  lastInstalled: number | null;
}

export interface TimelineJson {
  origin: "spawn" | "process start";
  /** Spawn -> Node's process start, when RVM_SPAWN_TIME was given. */
  spawnToProcessMs: number | null;
  marks: Mark[];
  /** When the first guest instruction ran (ms since the origin). */
  firstInstructionMs: number | null;
  /** The run phase so far: ms since the first instruction, split by what the thread did. */
  run: Breakdown & { totalMs: number; instret: number };
  /** The first console output line completed after the first console input (the answer). */
  answer: ConsoleEvent | null;
  /** Console input and output lines after the restore began (the first 256 of each). */
  console: ConsoleEvent[];
  /** Demand faults (the first 4096; `faultCount` counts all). */
  faults: FaultRecord[];
  faultCount: number;
  /** The store's reads (a restore from the store: working-set runs, pack indexes, fault reads; the first 512), in the order they were asked for. */
  reads?: ReadRecord[];
  /** Per 100 ms since the first instruction: ms of each kind and instructions retired. */
  buckets: { ms: number; kinds: Breakdown; instret: number }[];
  /** Process CPU time (user + system, all threads) at the last update, ms. */
  cpuMs: number;
  /** When this was written (ms since the origin). */
  writtenAt: number;
}

const BUCKET_MS = 100;
const MAX_CONSOLE = 256;
const MAX_FAULTS = 4096;
const MAX_READS = 512;

/** Spawn time from the environment (RVM_SPAWN_TIME, ms since the epoch), as ms before process start. */
function spawnOffset(): number | null {
  const spawn = envVar("RVM_SPAWN_TIME");
  const v = Number(spawn);
  if (!spawn || !Number.isFinite(v)) return null;
  const d = performance.timeOrigin - v;
  // Ignore nonsense (a stale value from a parent's environment).
  return d >= 0 && d < 10_000 ? d : null;
}

const cpuMs = cpuTimeMs;

/** Process-wide marks before a restore exists (module loading, machine creation). */
const early: Mark[] = [];

/** Notes a process phase that ended now (before any restore began). */
export function markProcess(what: string): void {
  if (early.length < 64) early.push({ what, at: performance.now(), cpuMs: cpuMs() });
}

export class RestoreTimeline implements RunMeter {
  private readonly offset: number | null = spawnOffset();
  private readonly marks: Mark[] = [];
  private first: number | undefined;
  private instret0 = 0n;
  private readonly totals: Breakdown = zero();
  private kind: RunKind = "host";
  private since = 0;
  private readonly buckets: { kinds: Breakdown; instret: number }[] = [];
  private readonly events: ConsoleEvent[] = [];
  private outputs = 0;
  private inputs = 0;
  private firstInput: number | undefined;
  private answerEvent: ConsoleEvent | undefined;
  private line = "";
  private readonly faultList: FaultRecord[] = [];
  private faultCount = 0;
  private readonly readList: LiveRead[] = [];
  /** Called whenever something a reader of --stats-json waits for happened (input, the answer). */
  onNews: (() => void) | undefined;

  /**
   * `fromProcessStart`: the restore is what this process was started for (-loadvm, rvm restore),
   * so the timeline shows Node's start and rvm's set-up before it; otherwise (a monitor loadvm)
   * it starts with the restore.
   */
  constructor(private readonly machine: Machine, fromProcessStart: boolean) {
    if (fromProcessStart) {
      this.marks.push({ what: "Node started (bootstrap complete)", at: runtimeStartedMs() });
      for (const m of early) this.marks.push(m);
    } else {
      this.mark("restore began (loadvm)");
    }
  }

  /** Milliseconds since the origin (the spawn, if known, else process start). */
  now(t = performance.now()): number {
    return t + (this.offset ?? 0);
  }

  mark(what: string, t = performance.now()): void {
    this.marks.push({ what, at: t, cpuMs: cpuMs() });
  }

  /** The first guest instruction is about to run: the run phase starts. */
  started(t = performance.now()): void {
    if (this.first !== undefined) return;
    this.first = t;
    this.since = t;
    this.kind = "guest";
    this.instret0 = this.machine.core.instret;
    this.mark("first guest instruction", t);
  }

  get running(): boolean {
    return this.first !== undefined;
  }

  private add(kind: RunKind, from: number, to: number): void {
    if (to <= from || this.first === undefined) return;
    this.totals[kind] += to - from;
    // Split over the 100 ms buckets.
    let a = from - this.first;
    const b = to - this.first;
    while (a < b) {
      const k = Math.floor(a / BUCKET_MS);
      const end = Math.min(b, (k + 1) * BUCKET_MS);
      while (this.buckets.length <= k) this.buckets.push({ kinds: zero(), instret: -1 });
      this.buckets[k].kinds[kind] += end - a;
      a = end;
    }
  }

  /** RunMeter: the hart's thread switches to doing `kind` now; returns what it did before. */
  enter(kind: RunKind): RunKind {
    const prev = this.kind;
    if (this.first === undefined) {
      this.kind = kind;
      return prev;
    }
    const t = performance.now();
    // Instructions retired by the end of a bucket: sampled at the first switch after it.
    const last = this.buckets.length - 1;
    if (last >= 0 && t - this.first >= (last + 1) * BUCKET_MS && this.buckets[last].instret < 0) {
      this.buckets[last].instret = Number(this.machine.core.instret - this.instret0);
    }
    this.add(prev, this.since, t);
    this.since = t;
    this.kind = kind;
    return prev;
  }

  /** Keeps store read `r` (filled in as it happens); its index in `reads` (-1: over the limit). Once per read. */
  read(r: LiveRead): number {
    if (r.index !== undefined) return r.index;
    if (this.readList.length >= MAX_READS) return (r.index = -1);
    this.readList.push(r);
    return (r.index = this.readList.length - 1);
  }

  /** A demand fault on `page` from `start` to `end` (performance.now() times). */
  fault(page: number, start: number, end: number, pages: number, by: "hart" | "host", wait?: FaultWait): void {
    this.faultCount++;
    if (this.faultList.length < MAX_FAULTS) this.faultList.push({ at: this.now(start), page, ms: end - start, pages, by, ...(wait && end - start > LONG_FAULT_MS ? { wait } : {}) });
    if (this.first === undefined) return;
    // Cut it out of what it interrupted.
    this.add(this.kind, this.since, start);
    this.add("fault", start, end);
    this.since = Math.max(this.since, end);
  }

  private breakdown(t: number): Breakdown {
    const b = { ...this.totals };
    if (this.first !== undefined && t > this.since) b[this.kind] += t - this.since;
    return b;
  }

  private event(dir: "in" | "out", text: string): ConsoleEvent {
    const t = performance.now();
    const e: ConsoleEvent = {
      at: this.now(t), dir, text, cpuMs: cpuMs(),
      instret: this.first === undefined ? 0 : Number(this.machine.core.instret - this.instret0),
      run: this.breakdown(t),
    };
    return e;
  }

  /** Console input reached the guest. */
  input(bytes: Uint8Array): void {
    if (this.inputs >= MAX_CONSOLE) return;
    this.inputs++;
    const e = this.event("in", `${bytes.length} bytes`);
    this.events.push(e);
    if (this.firstInput === undefined) {
      this.firstInput = e.at;
      this.onNews?.();
    }
  }

  /** The guest wrote console output. Lines are noted when complete. */
  output(bytes: Uint8Array): void {
    if (this.outputs >= MAX_CONSOLE) return;
    for (const b of bytes) {
      if (b === 10) {
        this.outputs++;
        const e = this.event("out", this.line);
        this.line = "";
        this.events.push(e);
        if (this.firstInput !== undefined && !this.answerEvent) {
          this.answerEvent = e;
          this.onNews?.();
        }
        if (this.outputs >= MAX_CONSOLE) return;
      } else if (b >= 32 && b < 127 && this.line.length < 80) {
        this.line += String.fromCharCode(b);
      }
    }
  }

  private readRecord(r: LiveRead): ReadRecord {
    const t = (v: number | undefined) => (v === undefined ? null : this.now(v));
    return {
      kind: r.kind, pack: r.pack, first: r.first, count: r.count, pages: r.pages, bytes: r.bytes,
      asked: this.now(r.asked), sent: t(r.get.sent), headers: t(r.get.headers), firstByte: t(r.get.firstByte), lastByte: t(r.get.lastByte),
      ready: t(r.ready), staged: t(r.staged), installed: r.installed, firstInstalled: t(r.firstInstalled), lastInstalled: t(r.lastInstalled),
    };
  }

  json(): TimelineJson {
    const t = performance.now();
    const b = this.breakdown(t);
    const totalMs = this.first === undefined ? 0 : t - this.first;
    const shift = (m: Mark) => ({ ...m, at: this.now(m.at) });
    return {
      origin: this.offset === null ? "process start" : "spawn",
      spawnToProcessMs: this.offset,
      marks: [...(this.offset === null ? [] : [{ what: "spawn", at: 0 }, { what: "process started (exec of Node done)", at: this.offset }]), ...this.marks.map(shift)],
      firstInstructionMs: this.first === undefined ? null : this.now(this.first),
      run: { ...b, totalMs, instret: this.first === undefined ? 0 : Number(this.machine.core.instret - this.instret0) },
      answer: this.answerEvent ?? null,
      console: this.events,
      faults: this.faultList,
      faultCount: this.faultCount,
      ...(this.readList.length ? { reads: this.readList.map((r) => this.readRecord(r)) } : {}),
      buckets: this.buckets.map((x, k) => ({ ms: k * BUCKET_MS, kinds: x.kinds, instret: x.instret })),
      cpuMs: cpuMs(),
      writtenAt: this.now(t),
    };
  }
}

const f1 = (v: number) => `${v.toFixed(1)} ms`;

/** The breakdown --stats prints: phases from the origin to the answer (and to now). */
export function formatTimeline(j: TimelineJson): string {
  const lines: string[] = [];
  const origin = j.origin === "spawn" ? "spawn" : "process start";
  lines.push(`timeline (ms since ${origin}):`);
  let prev = 0;
  for (const m of j.marks) {
    if (m.what === "spawn") continue;
    const cpu = m.cpuMs === undefined ? "" : `  (CPU ${f1(m.cpuMs)})`;
    lines.push(`  ${m.at.toFixed(1).padStart(9)}  ${m.what.padEnd(44)} +${(m.at - prev).toFixed(1)}${cpu}`);
    prev = m.at;
  }
  const part = (label: string, b: Breakdown, total: number, instret: number) => {
    lines.push(`  ${label}`);
    const row = (name: string, v: number, extra = "") =>
      lines.push(`    ${name.padEnd(40)}${f1(v).padStart(11)}  ${total > 0 ? ((100 * v) / total).toFixed(0).padStart(3) : "  -"}%${extra}`);
    row("guest running", b.guest, `  (${(instret / 1e6).toFixed(1)} M instructions${b.guest > 0 ? `, ${(instret / 1e3 / b.guest).toFixed(0)} MIPS` : ""})`);
    row("demand faults (waiting for pages)", b.fault);
    row("fetcher on the hart's thread (runnable)", b.fetch);
    row("fetcher on the hart's thread (hart idle)", b.fetchIdle);
    row("idle in WFI", b.idle);
    row("host (devices, event loop, console)", b.host);
    if (b.stopped > 0) row("stopped", b.stopped);
  };
  if (j.firstInstructionMs !== null && j.answer) {
    const total = j.answer.at - j.firstInstructionMs;
    lines.push(`  ${j.answer.at.toFixed(1).padStart(9)}  answer: first output line after the first input: "${j.answer.text.slice(0, 40)}"`);
    part(`first instruction -> answer (${f1(total)}):`, j.answer.run, total, j.answer.instret);
    lines.push(`    process CPU time by then ${f1(j.answer.cpuMs)} of ${f1(j.answer.at - (j.spawnToProcessMs ?? 0))} since process start (the rest: other processes had the CPU)`);
  } else if (j.firstInstructionMs !== null) {
    lines.push(`  (no console output after console input: no answer to time)`);
  }
  if (j.firstInstructionMs !== null) {
    part(`first instruction -> end (${f1(j.run.totalMs)}):`, j.run, j.run.totalMs, j.run.instret);
    const fMs = j.faults.reduce((a, f) => a + f.ms, 0);
    if (j.faultCount > 0) {
      const worst = [...j.faults].sort((a, b) => b.ms - a.ms)[0];
      lines.push(`    demand faults: ${j.faultCount} (${j.faults.filter((f) => f.by === "host").length} by devices), mean ${(fMs / j.faults.length).toFixed(2)} ms, worst ${worst.ms.toFixed(2)} ms (page ${worst.page} at ${worst.at.toFixed(0)} ms)`);
    }
  }
  if (j.reads?.length) lines.push(...formatReads(j));
  return lines.join("\n") + "\n";
}

/** --stats: the store's reads (the first 40) and the long faults before the answer with the read each waited for. */
function formatReads(j: TimelineJson): string[] {
  const reads = j.reads!;
  const t = (v: number | null) => (v === null ? "-" : v.toFixed(0)).padStart(6);
  const lines = [`  store reads (ms since ${j.origin === "spawn" ? "spawn" : "process start"}; ${reads.length}):`,
    `    ${"#".padStart(3)} ${"kind".padEnd(5)} ${"slots".padEnd(22)} ${"pages".padStart(5)} ${"KB".padStart(6)} ${["asked", "sent", "hdrs", "byte1", "last", "ready", "staged"].map((x) => x.padStart(6)).join("")}  installed`];
  reads.slice(0, 40).forEach((r, i) => {
    const where = `..${r.pack.slice(-8)}:${r.first}+${r.count}`;
    lines.push(`    ${String(i).padStart(3)} ${r.kind.padEnd(5)} ${where.padEnd(22)} ${String(r.pages).padStart(5)} ${(r.bytes === null ? "-" : (r.bytes / 1024).toFixed(0)).padStart(6)} ` +
      `${[r.asked, r.sent, r.headers, r.firstByte, r.lastByte, r.ready, r.staged].map(t).join("")}  ${r.installed}${r.firstInstalled === null ? "" : ` (${r.firstInstalled.toFixed(0)}-${r.lastInstalled!.toFixed(0)})`}`);
  });
  const until = j.answer?.at ?? Infinity;
  const long = j.faults.filter((f) => f.wait && f.at < until);
  if (long.length) {
    lines.push(`  faults over ${LONG_FAULT_MS} ms${j.answer ? " before the answer" : ""} and the read each waited for:`);
    for (const f of long.slice(0, 40)) {
      const w = f.wait!;
      lines.push(`    page ${f.page} at ${f.at.toFixed(0)}: ${f.ms.toFixed(1)} ms, read #${w.read} slot ${w.slot}${w.offset === null ? "" : ` (byte ${w.offset})`}, served by ${w.via === "slot" ? `its slot's own read #${w.slotRead}` : w.via === "run" ? "the run" : "its own read"}`);
    }
  }
  return lines;
}
