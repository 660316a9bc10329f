// Snapshots in an object store, end to end through the CLI against a real radosgw: savevm of a
// running Linux guest into a bucket; `rvm restore` in a second process and another working
// directory with nothing but the store URL and the credentials (the disk image deleted), lazy
// and eager; the store stopped in the middle of a lazy restore; kill -9 during an upload;
// snapshot ls / info / rm, store gc; a corrupted object refused.

import { describe, expect, it } from "vitest";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gunzipSync } from "node:zlib";
import { ROOT } from "../helpers.js";
import { Session } from "../e2e/session.js";
import { ContentStore, keys } from "../../src/store/cas.js";
import { S3ObjectStore } from "../../src/store/objects.js";
import type { TimelineJson } from "../../src/snapshot/timeline.js";
import { boot, G, onHostA, onHostB, untilRestored } from "./guest.js";
import { freshBucket, haveRadosgw, useRadosgw } from "./rgw.js";

const base = tmpdir();

function rvm(args: string[], cwd?: string) {
  const r = spawnSync(process.execPath, [join(ROOT, "bin/rvm.js"), ...args], { encoding: "utf8", cwd, timeout: 120_000 });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

/** Guest state to compare after a restore: files read from the disk, RAM-only data (tmpfs). */
async function fingerprint(s: Session): Promise<string> {
  return [
    await s.command("md5sum /mnt/data/* | md5sum"),
    await s.command("md5sum /root/r"),
    await s.command("cat /mnt/a.txt"),
    await s.command("echo $MARK"),
  ].join("\n");
}

describe.skipIf(!haveRadosgw)("snapshots in an object store (rvm CLI, radosgw)", () => {
  const gw = useRadosgw();

  it("a store command prints none of the AWS SDK's notices on stderr (its Node support notice, Node 20)", { timeout: 120_000 }, () => {
    // Without the switch in this process's environment (this test process's own SDK use sets it,
    // and a child inherits it): rvm must turn the notice off for its own client itself.
    const env = { ...process.env };
    delete env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED;
    const url = `s3://${freshBucket("quiet")}/p`;
    for (const args of [["snapshot", "ls", "--snapshot-store", url], ["store", "gc", "--snapshot-store", url]]) {
      const r = spawnSync(process.execPath, [join(ROOT, "bin/rvm.js"), ...args], { encoding: "utf8", env, timeout: 120_000 });
      expect(r.status, r.stderr).toBe(0);
      expect(r.stderr).not.toMatch(/NodeVersionSupportWarning|AWS SDK for JavaScript/);
      expect(r.stderr).toBe("");
    }
  });

  it("saves into a bucket; another process in another directory restores it, lazily and eagerly", { timeout: 600_000 }, async () => {
    const url = `s3://${freshBucket("vm")}/desktops`;
    let before = "";
    await onHostA(url, async ({ s, m }) => {
      await s.command("mount /dev/vda /mnt");
      await s.command("cat /mnt/data/* > /dev/null");
      await s.command("echo from-host-a > /mnt/a.txt");
      await s.command("dd if=/dev/urandom of=/root/r bs=1k count=4096 2>/dev/null");
      await s.command("export MARK=before-save");
      before = await fingerprint(s);
      expect(await m.cmd("savevm s1", 120_000)).toMatch(/saved s1 to s3:\/\/.* uploaded/);
      expect(await m.cmd("info snapshots")).toMatch(/\bs1\b/);
      // Changes after the save are not in it.
      await s.command("echo after-save > /mnt/a.txt");
    }, {
      // The image on "host A" is never written with an object store (the writes went to the
      // snapshot), and is not needed for the restore: deleted with host A's directory.
      afterQuit: ({ disk }) => expect(gunzipSync(readFileSync(join(G, "disk.img.gz"))).equals(readFileSync(disk))).toBe(true),
    });
    expect(rvm(["snapshot", "ls", "--snapshot-store", url]).out).toMatch(/\bs1\b/);
    expect(rvm(["snapshot", "info", "s1", "--snapshot-store", url]).out).toMatch(/uploaded\s+\d+/);

    // The first lazy restore records the snapshot's hot list (the working-set pages its guest
    // touched first) once every page is in; the second reads those pages first.
    const cs = new ContentStore(S3ObjectStore.fromUrl(url));
    for (const [i, mode] of (["lazy", "lazy", "eager"] as const).entries()) {
      let marks: { what: string }[] = [];
      let timeline: TimelineJson | undefined;
      await onHostB(url, "s1", ["--restore", mode, "--stats-json", "stats.json"], async (r, rm) => {
        r.type("");
        await r.waitFor("~ # ", 60_000);
        expect(await fingerprint(r)).toBe(before);
        expect(await rm.cmd("info restore")).toMatch(new RegExp(`restore: ${mode} from s3://`));
        await untilRestored(rm);
        // A save of the restored VM carries the restore's first touches into its snapshot's hot
        // list: that snapshot's first restore reads them first.
        if (i === 0) expect(await rm.cmd("savevm s2", 120_000)).toMatch(/saved s2 to s3:\/\//);
      }, (dir) => (marks = (timeline = JSON.parse(readFileSync(join(dir, "stats.json"), "utf8")).timeline as TimelineJson).marks));
      {
        const wsMark = marks.find((x) => x.what.startsWith("working set in"));
        if (i === 0) {
          expect(wsMark?.what).not.toMatch(/hot/);
          const m1 = await cs.readManifest("s1");
          const recorded = m1.workingSet!.reads!;
          expect(wsMark?.what).toMatch(new RegExp(` in ${recorded.length} reads\\)$`));
          // The timeline's record of the store's reads: each of the manifest's reads once, at its
          // byte length, its steps in order; every working-set page installed by one of them or
          // by a fault's read of its slot alone.
          const reads = timeline!.reads!;
          const ws = reads.filter((r) => r.kind === "ws");
          expect(ws.map((r) => `${r.first}+${r.count}`).sort()).toEqual(recorded.map((e) => `${e[1]}+${e[2]}`).sort());
          for (const r of ws) {
            const e = recorded.find((x) => x[1] === r.first && x[2] === r.count && m1.packs[x[0]] === r.pack)!;
            expect(e).toBeDefined();
            if (e[4] !== null) expect(r.bytes).toBe(e[4]);
            const steps = [r.asked, r.sent, r.headers, r.firstByte, r.lastByte, r.ready, r.staged];
            expect(steps.every((x) => x !== null)).toBe(true);
            for (let k = 1; k < steps.length; k++) if (k !== 5) expect(steps[k]!).toBeGreaterThanOrEqual(steps[k - 1]!);
            expect(r.ready!).toBeGreaterThanOrEqual(r.lastByte!);
            expect(r.installed).toBeLessThanOrEqual(r.pages);
            if (r.installed) expect(r.firstInstalled!).toBeGreaterThanOrEqual(r.ready!);
          }
          const pages = Number(/working set in \((\d+) pages/.exec(wsMark!.what)![1]);
          expect(reads.filter((r) => r.kind === "ws" || r.kind === "slot").reduce((n, r) => n + r.installed, 0)).toBe(pages);
          expect(reads.filter((r) => r.kind === "index").length).toBe(new Set(ws.map((r) => r.pack)).size);
          let hot = await cs.readHot("s1");
          for (let k = 0; k < 50 && !hot; k++) {
            await new Promise((w) => setTimeout(w, 100));
            hot = await cs.readHot("s1");
          }
          expect(hot?.id).toBe((await cs.readManifest("s1")).id);
          expect(hot!.pages.length).toBeGreaterThan(10);
          expect(new Set(hot!.pages).size).toBe(hot!.pages.length);
          const s2 = await cs.readManifest("s2");
          const carried = await cs.readHot("s2");
          expect(carried?.id).toBe(s2.id);
          expect(carried!.pages.length).toBeGreaterThan(0);
          expect(carried!.pages.every((p) => hot!.pages.includes(p))).toBe(true);
          expect(Array.isArray(carried?.reads)).toBe(true);
          expect(rvm(["snapshot", "rm", "s2", "--snapshot-store", url]).code).toBe(0);
        }
        if (i === 1) {
          // The hot list carries the reads planned with it, and this restore made those.
          const hot = await cs.readHot("s1");
          expect(Array.isArray(hot?.reads)).toBe(true);
          expect(wsMark?.what).toMatch(new RegExp(` in ${(hot!.reads as unknown[]).length} reads, ${hot!.pages.length} hot pages first\\)$`));
        }
      }
    }
    expect(rvm(["snapshot", "ls", "--snapshot-store", url]).out.trim().split("\n").filter((l) => /\bs1\b/.test(l))).toHaveLength(1);

    // The first restore's working-set reads come from the manifest (`workingSet.reads`, written
    // by the save; that restore sends them without planning). They are used: a manifest whose
    // reads are cut otherwise (one read split in two, without byte ranges) is restored with those
    // reads; a read whose byte range is wrong is read again where the pack's index says, never
    // installed wrong; and a manifest without them (an older rvm's) is restored as before, its
    // reads planned by the restore (the same ones). Each restore's guest is the saved one.
    const s1 = await cs.readManifest("s1");
    const reads = s1.workingSet!.reads!;
    const located = reads.filter((e) => e.length === 6).length;
    expect(located).toBeGreaterThan(0); // the harts' first pages
    const [split, shifted] = reads.map((e, i) => (e.length === 5 && e[2] > 1 ? i : -1)).filter((i) => i >= 0);
    expect(shifted).toBeDefined();
    const alt = reads.flatMap((e, i): typeof reads => {
      if (i === split) return [[e[0], e[1], e[2] >> 1, null, null], [e[0], e[1] + (e[2] >> 1), e[2] - (e[2] >> 1), null, null]];
      if (i === shifted) return [[e[0], e[1], e[2], e[3]! + 1, e[4]]];
      return [e];
    });
    const { reads: _r, ...old } = s1.workingSet!;
    await cs.writeManifest({ ...s1, name: "s1alt", workingSet: { ...s1.workingSet!, reads: alt } });
    await cs.writeManifest({ ...s1, name: "s1old", workingSet: old });
    for (const [name, expected] of [["s1alt", alt.length], ["s1old", reads.length]] as const) {
      let marks: { what: string }[] = [];
      await onHostB(url, name, ["--stats-json", "stats.json"], async (r, rm) => {
        r.type("");
        await r.waitFor("~ # ", 60_000);
        expect(await fingerprint(r)).toBe(before);
        await untilRestored(rm);
      }, (dir) => (marks = JSON.parse(readFileSync(join(dir, "stats.json"), "utf8")).timeline.marks));
      expect(marks.find((x) => x.what.startsWith("working set in"))?.what).toMatch(new RegExp(` in ${expected} reads\\)$`));
      expect(rvm(["snapshot", "rm", name, "--snapshot-store", url]).code).toBe(0);
    }

    // The working set's cut: every read past the first one held (RVM_WS_CUT=1) and never released
    // here (no delay, not when the hart idles), so the stream stops after one read. The guest
    // still answers with its saved memory: each page it touches past the cut is read by its own
    // fault at once (the run, or the slot alone), never behind the held reads.
    {
      const env = { RVM_WS_CUT: "1", RVM_WS_HOLD_MS: "-1", RVM_WS_IDLE_MS: "-1" };
      Object.assign(process.env, env);
      let t: TimelineJson | undefined;
      try {
        await onHostB(url, "s1", ["--stats-json", "stats.json"], async (r, rm) => {
          r.type("");
          await r.waitFor("~ # ", 60_000);
          expect(await fingerprint(r)).toBe(before);
          expect(await rm.cmd("info restore")).not.toMatch(/complete/);
        }, (dir) => (t = JSON.parse(readFileSync(join(dir, "stats.json"), "utf8")).timeline));
      } finally {
        for (const k of Object.keys(env)) delete process.env[k];
      }
      const marks = t!.marks.map((x) => x.what);
      const part = /^working set's first part in \(1 of (\d+) reads; (\d+) held until the hart idles\)$/.exec(marks.find((w) => w.startsWith("working set's first part")) ?? "");
      expect(part).not.toBeNull();
      expect(Number(part![2])).toBe(Number(part![1]) - 1);
      expect(Number(part![2])).toBeGreaterThan(0);
      expect(marks.some((w) => w.startsWith("working set in"))).toBe(false);
      expect(marks.some((w) => w.startsWith("every page resident"))).toBe(false);
      expect(t!.faultCount).toBeGreaterThan(100);
      // Faults past the cut each read their run (and their slot alone, only against a run sent
      // before the fault whose answer had not begun): the long ones say which read held the page
      // (a working-set run, or a fault's own read) and where in it.
      const long = t!.faults.filter((f) => f.wait);
      expect(long.length).toBeGreaterThan(0);
      expect(t!.faults.filter((f) => f.ms > 5 && !f.wait).length).toBeLessThan(long.length);
      for (const f of long) {
        const w = f.wait!, r = t!.reads![w.read];
        expect(f.ms).toBeGreaterThan(1);
        expect(["ws", "fault"]).toContain(r.kind);
        expect(w.slot).toBeGreaterThanOrEqual(0);
        expect(w.slot).toBeLessThan(r.count);
        if (r.kind === "ws" && r.bytes !== null) expect(w.offset!).toBeLessThan(r.bytes);
        if (w.slotRead !== undefined) {
          expect(r.asked).toBeLessThanOrEqual(f.at);
          if (r.headers !== null) expect(r.headers).toBeGreaterThanOrEqual(f.at);
        }
        if (w.via === "slot") {
          const own = t!.reads![w.slotRead!];
          expect([own.kind, own.pack, own.first, own.count, own.installed]).toEqual(["slot", r.pack, r.first + w.slot, 1, 1]);
        }
      }
    }

    // No credential in any object of the store.
    for (const o of await cs.objects.list("")) {
      if (o.key.startsWith("packs/")) continue;
      const body = Buffer.from((await cs.objects.get(o.key))!);
      expect(body.includes(gw().secretAccessKey)).toBe(false);
      expect(body.includes(gw().accessKeyId)).toBe(false);
    }
    // A snapshot that is not there, and a damaged manifest: one-line errors.
    const good = Buffer.from((await cs.objects.get(keys.manifest("s1")))!);
    const damaged = Buffer.from(good.toString("latin1").replace(/"created": "(\d)/, (_m, d) => `"created": "${(Number(d) + 1) % 10}`), "latin1");
    expect(damaged.equals(good)).toBe(false);
    await cs.objects.put(keys.manifest("s1bad"), damaged);
    const none = rvm(["restore", "nosuch", "--snapshot-store", url]);
    expect(none.code).toBe(1);
    expect(none.err).toMatch(/^rvm: no snapshot named "nosuch" in s3:\/\//);
    expect(none.err.trim().split("\n")).toHaveLength(1);
    const dmg = rvm(["restore", "s1bad", "--snapshot-store", url]);
    expect(dmg.code).toBe(1);
    expect(dmg.err).toMatch(/^rvm: .*s1bad\.json.*corrupted \(checksum mismatch\)/);
    expect(dmg.err.trim().split("\n")).toHaveLength(1);
    await cs.objects.delete([keys.manifest("s1bad")]);
    // A corrupted pack is refused with a one-line error.
    const man = await cs.readManifest("s1");
    const pk = keys.pack(man.packs.find((p) => p.startsWith(man.id))!);
    const body = Buffer.from((await cs.objects.get(pk))!);
    body[100] ^= 0xff;
    await cs.objects.put(pk, body);
    const bad = rvm(["restore", "s1", "--snapshot-store", url, "--restore", "eager", "--timeout", "30"], mkdtempSync(join(base, "rvm-hostC-")));
    expect(bad.code).toBe(1);
    expect(bad.err).toMatch(/^rvm: .*checksum mismatch \(corrupted object\)/);
    expect(bad.err.trim().split("\n")).toHaveLength(1);
    // Lazily too: the damaged page is in the working set (the save's first pack), which the
    // restore reads ahead and checks when the page is installed.
    const badLazy = rvm(["restore", "s1", "--snapshot-store", url, "--timeout", "60"], mkdtempSync(join(base, "rvm-hostD-")));
    expect(badLazy.code).toBe(1);
    expect(badLazy.err).toMatch(/^rvm: .*checksum mismatch \(corrupted object\)/);
    // rm + gc reclaim the snapshot's packs; rm takes its hot list along, gc the hot list of a
    // snapshot no longer there (an older rvm's rm).
    expect(await cs.objects.get(keys.hot("s1"))).toBeDefined();
    expect(rvm(["snapshot", "rm", "s1", "--snapshot-store", url]).code).toBe(0);
    expect(await cs.objects.get(keys.hot("s1"))).toBeUndefined();
    expect(rvm(["snapshot", "ls", "--snapshot-store", url]).out).toMatch(/no snapshot/);
    await cs.objects.put(keys.hot("gone"), Buffer.from(JSON.stringify({ format: "rvm-store-hot", id: "x", pages: [1] })));
    const gc = rvm(["store", "gc", "--snapshot-store", url]);
    expect(gc.out).toMatch(/removed [1-9]\d* pack/);
    expect(await cs.objects.get(keys.hot("gone"))).toBeUndefined();
    await (cs.objects as S3ObjectStore).close();
  });

  it("the store stopped in the middle of a lazy restore: the guest waits, then goes on with correct memory", { timeout: 600_000 }, async () => {
    const url = `s3://${freshBucket("pause")}/p`;
    let before = "";
    await onHostA(url, async ({ s, m }) => {
      await s.command("dd if=/dev/urandom of=/root/r bs=1k count=16384 2>/dev/null");
      before = await s.command("md5sum /root/r");
      expect(await m.cmd("savevm p1", 120_000)).toMatch(/saved p1/);
    });
    // -S: the hart waits until the store is stopped; the background fetcher makes little
    // progress before the guest needs its pages.
    await onHostB(url, "p1", ["-S"], async (r, rm) => {
      gw().pause();
      try {
        await rm.cmd("cont");
        r.type("md5sum /root/r");
        // The monitor still answers, and says what the restore waits for.
        let info = "";
        for (let i = 0; i < 100 && !/waiting on the store/.test(info); i++) {
          await new Promise((res) => setTimeout(res, 200));
          info = await rm.cmd("info restore", 30_000);
        }
        expect(info).toMatch(/waiting on the store s3:\/\//);
        expect(r.output).not.toMatch(/[0-9a-f]{32}\s+\/root\/r/);
      } finally {
        gw().resume();
      }
      await r.waitFor(/[0-9a-f]{32}\s+\/root\/r/, 120_000);
      expect(r.output).toContain(before.split("\n").pop()!.trim());
    });
  });

  it("kill -9 of rvm during an upload leaves no listed snapshot that cannot be restored", { timeout: 600_000 }, async () => {
    const url = `s3://${freshBucket("kill")}/k`;
    const a = mkdtempSync(join(base, "rvm-hostA-"));
    const { s, m } = await boot(a, url);
    try {
      expect(await m.cmd("savevm good", 120_000)).toMatch(/saved good/);
      await s.command("dd if=/dev/urandom of=/root/r bs=1M count=96 2>/dev/null", 120_000);
      void m.cmd("savevm doomed", 120_000).catch(() => undefined);
      // Kill once the upload is under way: the first new pack is in the store.
      const cs = new ContentStore(S3ObjectStore.fromUrl(url));
      const packsBefore = (await cs.objects.list("packs/")).length;
      for (let i = 0; i < 600 && (await cs.objects.list("packs/")).length <= packsBefore; i++) await new Promise((res) => setTimeout(res, 50));
      process.kill(s.pid!, "SIGKILL");
      await s.exitCode(10_000);
      const listed = (await cs.manifests()).map((x) => x.name);
      expect(listed).toContain("good");
      expect(listed).not.toContain("doomed");
      await (cs.objects as S3ObjectStore).close();
    } finally {
      s.kill();
      m.close();
      rmSync(a, { recursive: true, force: true });
    }
    // Every listed snapshot restores.
    const b = mkdtempSync(join(base, "rvm-hostB-"));
    try {
      const r = new Session(["restore", "good", "--snapshot-store", url, "--restore", "eager", "--timeout", "60"], { cwd: b });
      r.type("");
      await r.waitFor("~ # ", 120_000);
      r.kill();
    } finally {
      rmSync(b, { recursive: true, force: true });
    }
  });
});
