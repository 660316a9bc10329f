// The restore timeline (issue 15): `rvm restore` of a saved Linux guest, timed by the test from
// spawn to the guest's answer; the timeline in --stats-json must cover exactly that span with
// its phases (Node's start, rvm's set-up, the restore's steps, then what the hart's thread did:
// guest, demand faults, fetcher, idle, host), and must be on disk before rvm exits. And with the
// background fetcher slowed down on purpose, the guest answers long before the restore is done,
// and the fetcher took nothing from the hart's thread on the way (it runs on its own thread).

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ROOT } from "../helpers.js";
import { saveLinuxGuest } from "./session.js";

const base = existsSync("/dev/shm") ? "/dev/shm" : tmpdir();

interface Breakdown { guest: number; fault: number; fetch: number; fetchIdle: number; idle: number; host: number; stopped: number }
interface Event { at: number; dir: string; text: string; run: Breakdown; instret: number }
interface Stats {
  pages: number;
  worker?: { pages: number };
  timeline: { origin: string; spawnToProcessMs: number; marks: { what: string; at: number }[]; firstInstructionMs: number; console: Event[]; answer: Event };
}

const sum = (b: Breakdown) => b.guest + b.fault + b.fetch + b.fetchIdle + b.idle + b.host + b.stopped;
const PROBE = "4242-probe";

/**
 * Spawns `rvm restore SNAP ...args` with its spawn time in RVM_SPAWN_TIME, types the probe at
 * once and waits for its output line; then waits until --stats-json holds that line and kills
 * rvm (SIGKILL: it gets no chance to write at exit). Returns the file and when the test saw the
 * line (ms after the spawn).
 */
async function probeRestore(dir: string, tag: string, args: string[]): Promise<{ stats: Stats; seenAt: number }> {
  const file = join(dir, `${tag}.json`);
  const spawnedAt = performance.timeOrigin + performance.now();
  const child = spawn(process.execPath, [join(ROOT, "bin/rvm.js"), "restore", "idle", "--dir", join(dir, "snaps"), "--stats-json", file, ...args],
    { stdio: "pipe", env: { ...process.env, RVM_SPAWN_TIME: String(spawnedAt) } });
  const exited = new Promise<void>((resolve) => child.on("exit", () => resolve()));
  try {
    let out = "";
    const seenAt = await new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no answer; output: ${out.slice(-500)}`)), 200_000);
      child.stdout.setEncoding("latin1");
      child.stdout.on("data", (d: string) => {
        out += d;
        if (new RegExp(`(^|\\n)${PROBE}\\r?\\n`).test(out)) {
          clearTimeout(timer);
          resolve(performance.timeOrigin + performance.now() - spawnedAt);
        }
      });
      child.stdin.write("echo $((4200+42))-probe\n");
    });
    // The file follows the run (rewritten every 250 ms while the restore runs): poll it, bounded.
    for (let i = 0; i < 400; i++) {
      try {
        const j = JSON.parse(readFileSync(file, "utf8")) as Stats;
        if (j.timeline.console.some((e) => e.dir === "out" && e.text === PROBE)) return { stats: j, seenAt };
      } catch {
        // not written yet, or being replaced
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`${file} never held the probe's line`);
  } finally {
    child.kill("SIGKILL");
    await exited;
  }
}

describe("restore timeline", () => {
  let dir: string;
  beforeAll(async () => {
    dir = mkdtempSync(join(base, "rvm-e2e-timeline-"));
    await saveLinuxGuest(dir, join(dir, "snaps"), "idle");
  }, 300_000);
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("covers spawn to the guest's answer, and is written before rvm exits", { timeout: 300_000 }, async () => {
    const { stats, seenAt } = await probeRestore(dir, "plain", []);
    const t = stats.timeline;
    expect(t.origin).toBe("spawn");
    expect(t.spawnToProcessMs).toBeGreaterThan(0);
    // Marks in order: spawn, process start, Node, rvm's modules, the machine, the snapshot, ...
    const names = t.marks.map((x) => x.what);
    expect(names[0]).toBe("spawn");
    for (const want of [/^Node started/, /^rvm's modules loaded/, /^machine built/, /^snapshot opened/, /^machine state restored/, /^first guest instruction/]) {
      expect(names.some((n) => want.test(n))).toBe(true);
    }
    const first = names.findIndex((n) => /^first guest instruction/.test(n));
    for (let k = 1; k <= first; k++) expect(t.marks[k].at).toBeGreaterThanOrEqual(t.marks[k - 1].at);
    expect(t.marks[first].at).toBeCloseTo(t.firstInstructionMs, 6);

    // The probe's output line: what the thread did from the first instruction to it adds up to
    // exactly the time between them, and it is no later than the test saw it.
    const line = t.console.find((e) => e.dir === "out" && e.text === PROBE)!;
    expect(sum(line.run)).toBeCloseTo(line.at - t.firstInstructionMs, 1);
    expect(line.run.guest).toBeGreaterThan(0);
    expect(line.instret).toBeGreaterThan(0);
    expect(line.at).toBeLessThanOrEqual(seenAt + 5);
    expect(line.at).toBeGreaterThan(t.firstInstructionMs);
    // The answer: the first line after the first input, no later than the probe's line.
    expect(t.answer.at).toBeLessThanOrEqual(line.at);
    expect(sum(t.answer.run)).toBeCloseTo(t.answer.at - t.firstInstructionMs, 1);
  });

  it("with the fetcher slowed to 1 MiB/s the guest answers before the restore is done, the fetcher off its path", { timeout: 300_000 }, async () => {
    const { stats } = await probeRestore(dir, "slow", ["--restore-rate", "1"]);
    const t = stats.timeline;
    const line = t.console.find((e) => e.dir === "out" && e.text === PROBE)!;
    // Not done: the fetcher thread had brought in only part of RAM, and the guest answered anyway.
    expect(t.marks.some((m) => /^every page resident/.test(m.what) && m.at <= line.at)).toBe(false);
    expect(stats.worker!.pages).toBeLessThan(stats.pages);
    // The hart's thread spent little on the fetcher before the answer: its share is marking
    // pages resident, a bit each (when the fetch ran on this thread it took 70-90% of it). The
    // bound leaves room for a loaded host, where a descheduled thread stretches any span: 5% + 5
    // ms failed once at 25.6 ms beside other tests.
    const toAnswer = line.at - t.firstInstructionMs;
    expect(line.run.fetch + line.run.fetchIdle).toBeLessThan(0.2 * toAnswer + 20);
    expect(line.run.fault).toBeGreaterThan(0); // what the guest needed came by demand
  });
});
