// --stats-json, kept up to date while the VM runs: written when the guest gets its first console
// input and when it answers (its first output line after that), every quarter second while the
// restore is under way, and once more when rvm exits. So a process that is ended before the
// restore completes (killed by a harness once it saw the echo) still leaves the figures.
//
// Interim writes are asynchronous (the file is written by libuv's thread pool, then renamed into
// place): they cost the hart's thread only the JSON. They hold no TTR figures (ttr {}, no
// workload view): those are computed over the whole restore for the last write, which is
// synchronous and atomic, and no interim write lands after it.

import { renameSync, unlinkSync, writeFile } from "node:fs";
import { basename, dirname, join } from "node:path";
import { writeFileAtomic } from "../files.js";
import type { RestoreStats } from "./restore-lazy.js";
import type { RestoreTimeline } from "./timeline.js";

interface Followed {
  stats(withCurve?: boolean, interim?: boolean): RestoreStats;
  readonly timeline: RestoreTimeline;
  readonly complete?: boolean;
}

const INTERVAL_MS = 250;
/** Interim writes go on this long after the restore completed (the workload view samples 1 s). */
const AFTER_COMPLETE_MS = 1500;

export class StatsWriter {
  private timer: NodeJS.Timeout | undefined;
  private writing = false;
  private again = false;
  private finished = false;
  private completeAt: number | undefined;
  private readonly tmp: string;

  constructor(readonly file: string) {
    this.tmp = join(dirname(file), `.${basename(file)}.${process.pid}.interim.tmp`);
  }

  /** Keeps the file up to date with whatever restore `current()` returns. */
  follow(current: () => Followed | undefined): void {
    let hooked: RestoreTimeline | undefined;
    const tick = () => {
      const r = current();
      if (!r) return;
      if (hooked !== r.timeline) {
        hooked = r.timeline;
        r.timeline.onNews = () => setImmediate(() => this.write(r));
      }
      if (r.complete) {
        this.completeAt ??= performance.now();
        if (performance.now() - this.completeAt > AFTER_COMPLETE_MS) return;
      } else {
        this.completeAt = undefined;
      }
      this.write(r);
    };
    this.timer = setInterval(tick, INTERVAL_MS);
    this.timer.unref();
    setImmediate(tick);
  }

  private write(r: Followed): void {
    if (this.finished) return;
    if (this.writing) {
      this.again = true;
      return;
    }
    this.writing = true;
    // The utilization curves and TTR come with the last write: computing TTR over every demand
    // fault so far took ~5-15 ms of the hart's thread at each write (one of them at the guest's
    // answer, between the echo of a typed line and the command's output).
    const body = JSON.stringify(r.stats(false, true), null, 2) + "\n";
    // (fs's callback form: node:fs/promises is not loaded at start for this, ~3 ms)
    writeFile(this.tmp, body, (err) => {
      this.writing = false;
      if (err || this.finished) return this.discard();
      try {
        renameSync(this.tmp, this.file); // synchronous: the final write cannot overtake it
      } catch {
        this.discard();
      }
      if (this.again) {
        this.again = false;
        this.write(r);
      }
    });
  }

  private discard(): void {
    try {
      unlinkSync(this.tmp);
    } catch {
      // already gone
    }
  }

  /** The last write, when the VM ends. */
  final(stats: RestoreStats): void {
    this.stop();
    writeFileAtomic(this.file, Buffer.from(JSON.stringify(stats, null, 2) + "\n"));
  }

  stop(): void {
    this.finished = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }
}
