// A guest disk read during a store restore does not stop the hart (issue 13): the Linux guest's
// read of blocks still in the object store stays in flight as a virtio-blk request while the
// store does not answer (radosgw stopped); the guest keeps running and answers on its console,
// the monitor says what the read waits for; a savevm taken while it is in flight completes it
// first (drain), and both the read's data and the snapshot are correct. A write of part of a
// 4 KiB block still in the store (a read-modify-write) waits the same way, and lands right.

import { describe, expect, it } from "vitest";
import { createHash, randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Session } from "../e2e/session.js";
import { onHostA, onHostB, sleep, untilRestored } from "./guest.js";
import { freshBucket, haveRadosgw, useRadosgw } from "./rgw.js";

describe.skipIf(!haveRadosgw)("guest disk reads during a store restore (radosgw)", () => {
  const gw = useRadosgw();

  it("a read of blocks still in the store completes later; the guest runs meanwhile; savevm drains it", { timeout: 600_000 }, async () => {
    const url = `s3://${freshBucket("blk")}/b`;
    // A second drive the guest never reads (/dev/vdb), for the partial-block write: its block 128
    // is in the store only, and what it will hold once 512 bytes in it are written is known here.
    const second = randomBytes(1 << 20);
    const block = Buffer.from(second.subarray(128 * 4096, 129 * 4096));
    block.fill("x", 512, 1024);
    const patched = createHash("md5").update(block).digest("hex");
    let sums = "";
    await onHostA(url, async ({ s, m }) => {
      await s.command("mount /dev/vda /mnt");
      // The files' blocks go into the snapshot (the guest wrote them), not its page cache.
      await s.command("dd if=/dev/urandom of=/mnt/big bs=1k count=2048 2>/dev/null; sync");
      sums = (await s.command("md5sum /mnt/big /mnt/data/*")).split("\n").filter((l) => /^[0-9a-f]{32} /.test(l)).join("\n");
      expect(sums).toMatch(/\/mnt\/big/);
      await s.command("echo 3 > /proc/sys/vm/drop_caches");
      expect(await m.cmd("savevm s1", 120_000)).toMatch(/saved s1/);
    }, {
      extra: (dir) => {
        writeFileSync(join(dir, "second.img"), second);
        return ["-drive", `file=${join(dir, "second.img")},format=raw,if=virtio`];
      },
    });

    // Restore on "another host"; wait until every page of RAM is in, then stop the store.
    await onHostB(url, "s1", [], async (r, rm) => {
      await untilRestored(rm);
      r.type("");
      await r.waitFor("~ # ", 60_000);
      /**
       * Types `line` (a background job) with the store stopped; the guest still answers, and
       * `info restore` comes to say what waits (before: the hart's thread sat in Atomics.wait,
       * and neither the guest nor the monitor answered until the store did).
       */
      const whileStopped = async (line: string, waits: RegExp, n: number) => {
        const from = r.output.length;
        r.type(line);
        await sleep(500);
        r.type(`echo alive-$((${n}+1))`);
        await r.waitFor(new RegExp(`alive-${n + 1}\\r?\\n`), 30_000, from);
        let now = "";
        for (let k = 0; k < 50 && !waits.test(now); k++) {
          await sleep(100);
          now = await rm.cmd("info restore", 30_000);
        }
        expect(now).toMatch(waits);
        return from;
      };
      gw().pause();
      try {
        await whileStopped("md5sum /mnt/big > /tmp/sum &", /guest read of disk .* waiting on the store for \d+ ms/, 41);
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
      expect(r.output).toContain(sums.split("\n").find((l) => l.endsWith("/mnt/big"))!.trim());

      // 512 bytes written into block 128 of the second drive are a read-modify-write of a block
      // still in the store: it waits without stopping the hart (before: the synchronous read of
      // the block stopped the guest and the monitor until the store was back), then lands merged
      // into the block's old content. (The drive's block size set to 512 bytes, held open: Linux
      // then writes back only the 512-byte buffer the guest changed, and reads nothing first.)
      await r.command("head -c 512 /dev/zero | tr '\\0' x > /tmp/p");
      await r.command("exec 3<>/dev/vdb; blockdev --setbsz 512 /dev/vdb");
      gw().pause();
      try {
        const from = await whileStopped("(dd if=/tmp/p of=/dev/vdb bs=512 seek=1025 count=1 conv=notrunc,fsync; echo wrote-$((1+1))) &",
          /guest read of disk \S*second\.img block 128 \(for a partial-block write\) waiting on the store for \d+ ms/, 42);
        expect(r.output.slice(from)).not.toMatch(/wrote-2/);
      } finally {
        gw().resume();
      }
      await r.waitFor(/wrote-2\r?\n/, 120_000);
      await r.command("exec 3<&-; echo 3 > /proc/sys/vm/drop_caches");
      expect(await r.command("dd if=/dev/vdb bs=4k skip=128 count=1 | md5sum")).toContain(patched);
    });

    // The snapshot taken with the read in flight: the read's result is in it, and the disk reads right.
    const c = mkdtempSync(join(tmpdir(), "rvm-blkC-"));
    const t = new Session(["restore", "s2", "--snapshot-store", url], { cwd: c });
    try {
      t.type("");
      await t.waitFor("~ # ", 60_000);
      expect(await t.command("wait; cat /tmp/sum", 120_000)).toContain(sums.split("\n").find((l) => l.endsWith("/mnt/big"))!.trim());
      const again = (await t.command("md5sum /mnt/big /mnt/data/*")).split("\n").filter((l) => /^[0-9a-f]{32} /.test(l)).join("\n");
      expect(again).toBe(sums);
      t.type("poweroff");
      await t.exitCode(60_000);
    } finally {
      t.kill();
      rmSync(c, { recursive: true, force: true });
    }
  });
});
