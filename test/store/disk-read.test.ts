// A guest disk read during a store restore does not stop the hart (issue 13): the Linux guest's
// read of blocks still in the object store stays in flight as a virtio-blk request while the
// store does not answer (radosgw stopped); the guest keeps running and answers on its console,
// the monitor says what the read waits for; a savevm taken while it is in flight completes it
// first (drain), and both the read's data and the snapshot are correct.

import { describe, expect, it } from "vitest";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gunzipSync } from "node:zlib";
import { ROOT } from "../helpers.js";
import { MonitorClient, Session } from "../e2e/session.js";
import { freshBucket, haveRadosgw, useRadosgw } from "./rgw.js";

const G = join(ROOT, "guests/linux");
const base = tmpdir();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe.skipIf(!haveRadosgw)("guest disk reads during a store restore (radosgw)", () => {
  const gw = useRadosgw();

  it("a read of blocks still in the store completes later; the guest runs meanwhile; savevm drains it", { timeout: 600_000 }, async () => {
    const url = `s3://${freshBucket("blk")}/b`;
    const a = mkdtempSync(join(base, "rvm-blkA-"));
    const disk = join(a, "disk.img");
    writeFileSync(disk, gunzipSync(readFileSync(join(G, "disk.img.gz"))));
    const sockA = join(a, "mon.sock");
    const s = new Session(["run", "-m", "256M", "-kernel", join(G, "Image.gz"), "-initrd", join(G, "initramfs.cpio.gz"),
      "-append", "console=ttyS0", "-drive", `file=${disk},format=raw,if=virtio`, "--snapshot-store", url,
      "-monitor", `unix:${sockA},server,nowait`], { cwd: a });
    let sums: string;
    try {
      await s.waitFor("~ # ", 120_000);
      const m = await MonitorClient.open(sockA);
      await s.command("mount /dev/vda /mnt");
      // The files' blocks go into the snapshot (the guest wrote them), not its page cache.
      await s.command("dd if=/dev/urandom of=/mnt/big bs=1k count=2048 2>/dev/null; sync");
      sums = (await s.command("md5sum /mnt/big /mnt/data/*")).split("\n").filter((l) => /^[0-9a-f]{32} /.test(l)).join("\n");
      expect(sums).toMatch(/\/mnt\/big/);
      await s.command("echo 3 > /proc/sys/vm/drop_caches");
      expect(await m.cmd("savevm s1", 120_000)).toMatch(/saved s1/);
      m.cmd("quit").catch(() => undefined);
      await s.exitCode(60_000);
      m.close();
    } finally {
      s.kill();
      rmSync(a, { recursive: true, force: true });
    }

    // Restore on "another host"; wait until every page of RAM is in, then stop the store.
    const b = mkdtempSync(join(base, "rvm-blkB-"));
    const sock = join(b, "mon.sock");
    const r = new Session(["restore", "s1", "--snapshot-store", url, "-monitor", `unix:${sock},server,nowait`], { cwd: b });
    try {
      const rm = await MonitorClient.open(sock, 60_000);
      let info = "";
      for (let k = 0; k < 600 && !/complete/.test(info); k++) {
        await sleep(100);
        info = await rm.cmd("info restore");
      }
      expect(info).toMatch(/complete/);
      r.type("");
      await r.waitFor("~ # ", 60_000);
      gw().pause();
      try {
        const from = r.output.length;
        r.type("md5sum /mnt/big > /tmp/sum &");
        await sleep(500);
        // The read waits on the store; the guest still answers (before: the hart's thread sat
        // in Atomics.wait, and neither the guest nor the monitor answered until the store did).
        r.type("echo alive-$((40+2))");
        await r.waitFor(/alive-42\r?\n/, 30_000, from);
        info = "";
        for (let k = 0; k < 50 && !/guest read of disk .* waiting on the store/.test(info); k++) {
          await sleep(100);
          info = await rm.cmd("info restore", 30_000);
        }
        expect(info).toMatch(/guest read of disk .* waiting on the store for \d+ ms/);
        // savevm with the read in flight: it is completed first (the store is back meanwhile).
        const saving = rm.cmd("savevm s2", 180_000);
        await sleep(1000);
        gw().resume();
        expect(await saving).toMatch(/saved s2/);
      } finally {
        gw().resume();
      }
      r.type("wait; cat /tmp/sum");
      await r.waitFor(/[0-9a-f]{32}\s+\/mnt\/big/, 120_000);
      expect(r.output).toContain(sums!.split("\n").find((l) => l.endsWith("/mnt/big"))!.trim());
      rm.cmd("quit").catch(() => undefined);
      expect(await r.exitCode(60_000)).toBe(0);
      rm.close();
    } finally {
      gw().resume();
      r.kill();
      rmSync(b, { recursive: true, force: true });
    }

    // The snapshot taken with the read in flight: the read's result is in it, and the disk reads right.
    const c = mkdtempSync(join(base, "rvm-blkC-"));
    const t = new Session(["restore", "s2", "--snapshot-store", url], { cwd: c });
    try {
      t.type("");
      await t.waitFor("~ # ", 60_000);
      expect(await t.command("wait; cat /tmp/sum", 120_000)).toContain(sums!.split("\n").find((l) => l.endsWith("/mnt/big"))!.trim());
      const again = (await t.command("md5sum /mnt/big /mnt/data/*")).split("\n").filter((l) => /^[0-9a-f]{32} /.test(l)).join("\n");
      expect(again).toBe(sums!);
      t.type("poweroff");
      await t.exitCode(60_000);
    } finally {
      t.kill();
      rmSync(c, { recursive: true, force: true });
    }
  });
});
