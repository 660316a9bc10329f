// The restore timeline (issue 15): `rvm restore` of a saved Linux guest, timed by the test from
// spawn to the guest's answer; the timeline in --stats-json must cover exactly that span with
// its phases (Node's start, rvm's set-up, the restore's steps, then what the hart's thread did:
// guest, demand faults, fetcher, idle, host), and must be on disk before rvm exits.

import { describe, expect, it } from "vitest";
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ROOT } from "../helpers.js";
import { saveLinuxGuest } from "./session.js";

const base = existsSync("/dev/shm") ? "/dev/shm" : tmpdir();

interface Breakdown { guest: number; fault: number; fetch: number; fetchIdle: number; idle: number; host: number; stopped: number }
interface Event { at: number; dir: string; text: string; run: Breakdown; instret: number }

const sum = (b: Breakdown) => b.guest + b.fault + b.fetch + b.fetchIdle + b.idle + b.host + b.stopped;

describe("restore timeline", () => {
  it("covers spawn to the guest's answer, and is written before rvm exits", { timeout: 400_000 }, async () => {
    const dir = mkdtempSync(join(base, "rvm-e2e-timeline-"));
    try {
      await saveLinuxGuest(dir, join(dir, "snaps"), "idle");

      // Spawned by hand (not Session) to pass the spawn time and measure spawn -> answer here.
      const stats = join(dir, "stats.json");
      const spawnedAt = performance.timeOrigin + performance.now();
      const child = spawn(process.execPath, [join(ROOT, "bin/rvm.js"), "restore", "idle", "--dir", join(dir, "snaps"), "--stats-json", stats],
        { stdio: "pipe", env: { ...process.env, RVM_SPAWN_TIME: String(spawnedAt) } });
      let out = "";
      let seenAt: number | undefined;
      const probe = /(^|\n)4242-probe\r?\n/;
      const exited = new Promise<void>((resolve) => child.on("exit", () => resolve()));
      const answered = new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no answer; output: ${out.slice(-500)}`)), 200_000);
        child.stdout.setEncoding("latin1");
        child.stdout.on("data", (d: string) => {
          out += d;
          if (seenAt === undefined && probe.test(out)) {
            seenAt = performance.timeOrigin + performance.now() - spawnedAt;
            clearTimeout(timer);
            resolve();
          }
        });
      });
      child.stdin.write("echo $((4200+42))-probe\n");
      try {
        await answered;
        // The file follows the run: wait (event-free polling of a file; bounded) until it holds
        // the probe's line, then end rvm the hard way — it gets no chance to write at exit.
        let j: { timeline: { origin: string; spawnToProcessMs: number; marks: { what: string; at: number }[]; firstInstructionMs: number; console: Event[]; answer: Event } } | undefined;
        for (let i = 0; i < 400; i++) {
          try {
            j = JSON.parse(readFileSync(stats, "utf8"));
            if (j!.timeline.console.some((e) => e.dir === "out" && e.text === "4242-probe")) break;
          } catch {
            // not written yet
          }
          j = undefined;
          await new Promise((r) => setTimeout(r, 50));
        }
        child.kill("SIGKILL");
        await exited;
        expect(j).toBeDefined();
        const t = j!.timeline;
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

        // The probe's output line: what the thread did from the first instruction to it adds up
        // to exactly the time between them, and it is no later than the test saw it.
        const line = t.console.find((e) => e.dir === "out" && e.text === "4242-probe")!;
        expect(sum(line.run)).toBeCloseTo(line.at - t.firstInstructionMs, 1);
        expect(line.run.guest).toBeGreaterThan(0);
        expect(line.instret).toBeGreaterThan(0);
        expect(line.at).toBeLessThanOrEqual(seenAt! + 5);
        expect(line.at).toBeGreaterThan(t.firstInstructionMs);
        // The answer: the first line after the first input, no later than the probe's line.
        expect(t.answer.at).toBeLessThanOrEqual(line.at);
        expect(sum(t.answer.run)).toBeCloseTo(t.answer.at - t.firstInstructionMs, 1);
      } finally {
        child.kill("SIGKILL");
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
