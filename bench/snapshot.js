// Snapshot benchmark: how big a savevm of a Linux guest is, and how fast it is written, next to
// what QEMU's migration stream stores for the same guest state (issue 5, "Speed and size").
//
// What: the shipped Linux guest (guests/linux: OpenSBI fw_dynamic -> Linux 6.1 Image -> busybox
// initramfs, console=ttyS0) with 256 MiB of RAM and the benchmark disk as /dev/vda (made by
// guests/linux/make-bench-disk.sh in a temporary directory: 64 MiB ext4, bench/f00..f39.bin =
// 40 x 1 MiB of pseudo-random data; needs mke2fs and gcc - without them the bench says so and
// stops). Two scenarios, each on a freshly booted guest and a fresh copy of that disk:
//   (a) page cache   `mount /dev/vda /mnt && cat /mnt/bench/*.bin > /dev/null` (~40 MiB read
//                    from the disk into the page cache), then save;
//   (b) + memfill    as (a), then `sleep 1000 | memfill 32 &` (32 MiB of anonymous process memory
//                    filled with xorshift64 data; memfill waits on its stdin, here a pipe from a
//                    sleep), and once it printed "memfill: ready 32 MiB", save.
// rvm:  `node bin/rvm.js run -M virt -m 256M -nographic -kernel guests/linux/Image.gz -initrd
//       guests/linux/initramfs.cpio.gz -append console=ttyS0 -drive file=DISK,format=raw,if=none,
//       id=hd0 -device virtio-blk-device,drive=hd0 -monitor unix:SOCK,server,nowait
//       --snapshot-dir DIR`, the console on piped stdio, then `savevm bench` on the monitor socket.
//       The figures are the snapshot's own statistics (its metadata, read back from the file with
//       dist/'s SnapshotFile): pages zero / disk-backed / same-as / stored, file size, size as %
//       of RAM and as % of a save that only skips zero pages (stats.zeroSkipBytes: what QEMU's
//       stream stores, roughly), save time and pause time (stats.saveMs / pauseMs), and save
//       throughput = MiB of guest RAM / save time. Also the wall time of the monitor command.
//       Compression is not implemented in rvm: stored pages are raw 4 KiB.
// QEMU (when qemu-system-riscv64 is installed; RVM_BENCH_QEMU as in run.js): the same firmware,
//       kernel (unpacked: QEMU takes no gzip kernel), initramfs, -m 256M and disk (as
//       virtio-blk-device), `-display none -serial stdio -monitor unix:SOCK,server,nowait`, the
//       same guest commands; then on its monitor `stop` (as savevm does: no live-migration
//       passes) and `migrate "exec:cat > FILE"`, polling `info migrate` until "completed", and
//       waiting until FILE stops growing (cat may still be writing). That file is QEMU's
//       migration stream - what its savevm writes into a qcow2 - which sends zero pages as a
//       few bytes each and every other page whole. Printed: its size, QEMU's "total time", and
//       rvm's size as % of it. Target (issue 5): in (a) rvm's snapshot is at most 25% of QEMU's;
//       the verdict line says "target met" or by how much it is missed. Without QEMU the verdict
//       is against the issue's reference figure (~54 MB at 256 MiB) and says so.
// Bounded: every wait has a limit (boot, guest commands, save/migrate, exit; TIMEOUT_S below);
// a child that overruns is killed (SIGKILL), as is every child still running at the end, and a
// failed run is reported with its reason and the bench goes on. Temporary files are removed.
// Prints figures only; never asserts.
import { copyFileSync, existsSync, statSync } from "node:fs";
import { join } from "node:path";
import { ROOT, GuestConsole, MonitorClient, QEMU_MISSING, gunzipTo, makeBenchDisk, makeTempDir, qemuPath, linuxBenchPrerequisites,
} from "./common.js";
import { SnapshotFile } from "../dist/src/snapshot/format.js";

const RAM_BYTES = 256 << 20;
const MiB = 1 << 20;
/** Time limits in seconds. */
const TIMEOUT_S = {
  boot: { rvm: 300, qemu: 120 },
  read: { rvm: 600, qemu: 180 }, // cat of the 40 files
  memfill: { rvm: 600, qemu: 180 },
  monitor: 30, // connecting, and commands other than the save
  save: 300, // savevm / migrate to completion
  exit: 30, // after quit
};
/** QEMU's figure from issue 5, used for the verdict when QEMU is not installed. */
const ISSUE_QEMU_BYTES = 54e6;
const TARGET = 0.25;

const SCENARIOS = [
  { key: "a", title: "(a) page cache: ~40 MiB of files read from the disk, then save", memfill: false },
  { key: "b", title: "(b) as (a), then memfill 32 (32 MiB of pseudo-random process memory), then save", memfill: true },
];

const G = (p) => join(ROOT, "guests", p);
const mib = (n) => `${(n / MiB).toFixed(1)} MiB`;
const bytes = (n) => `${mib(n)} (${n.toLocaleString("en-US")} bytes)`;
const pct = (n, d) => (d ? `${((100 * n) / d).toFixed(1)}%` : "-");
const elapsed = (t0) => (performance.now() - t0) / 1000;

/** Boots to the prompt and puts the guest in the scenario's state; returns the phase times. */
async function prepare(g, sc, who) {
  const times = {};
  let t0 = performance.now();
  await g.waitFor("~ # ", TIMEOUT_S.boot[who] * 1000);
  times.boot = elapsed(t0);
  t0 = performance.now();
  let from = g.mark;
  // The quotes keep the echoed command line from matching the marker.
  g.type('mount /dev/vda /mnt && cat /mnt/bench/*.bin > /dev/null && echo BENCH""-READ-OK || echo BENCH""-READ-FAILED');
  const at = await g.waitFor(/BENCH-READ-(OK|FAILED)/, TIMEOUT_S.read[who] * 1000, from);
  if (g.output.slice(at - g.base).startsWith("BENCH-READ-FAILED")) throw new Error(`mount/cat failed in the guest: ${g.tail(6)}`);
  times.read = elapsed(t0);
  if (sc.memfill) {
    t0 = performance.now();
    from = g.mark;
    g.type("sleep 1000 | memfill 32 &");
    await g.waitFor("memfill: ready 32 MiB", TIMEOUT_S.memfill[who] * 1000, from);
    times.memfill = elapsed(t0);
  }
  return times;
}

const phaseLine = (t) =>
  `guest ready: boot ${t.boot.toFixed(1)} s, read ${t.read.toFixed(1)} s${t.memfill !== undefined ? `, memfill ${t.memfill.toFixed(1)} s` : ""}`;

async function runRvm(sc, dir, pristineDisk) {
  const disk = join(dir, `rvm-${sc.key}.img`);
  copyFileSync(pristineDisk, disk);
  const sock = join(dir, `rvm-${sc.key}.sock`);
  const snapDir = join(dir, `rvm-${sc.key}.snapshots`);
  const g = new GuestConsole(process.execPath, [
    "bin/rvm.js", "run", "-M", "virt", "-m", "256M", "-nographic",
    "-kernel", G("linux/Image.gz"), "-initrd", G("linux/initramfs.cpio.gz"), "-append", "console=ttyS0",
    "-drive", `file=${disk},format=raw,if=none,id=hd0`, "-device", "virtio-blk-device,drive=hd0",
    "-monitor", `unix:${sock},server,nowait`, "--snapshot-dir", snapDir,
  ]);
  let mon;
  try {
    const times = await prepare(g, sc, "rvm");
    mon = await MonitorClient.open(sock, "(rvm) ", TIMEOUT_S.monitor * 1000);
    const pages = await mon.cmd("info pages", TIMEOUT_S.monitor * 1000);
    const t0 = performance.now();
    const reply = await mon.cmd("savevm bench", TIMEOUT_S.save * 1000);
    const wallMs = performance.now() - t0;
    if (!reply.startsWith("saved")) throw new Error(`savevm failed: ${reply}`);
    const file = join(snapDir, "bench.rvmsnap");
    const snap = SnapshotFile.open(file);
    const meta = snap.meta;
    snap.close();
    const fileBytes = statSync(file).size;
    mon.send("quit");
    const code = await g.end(TIMEOUT_S.exit * 1000);
    return { ok: true, times, meta, fileBytes, wallMs, reply, pages, exit: code };
  } catch (e) {
    return { ok: false, why: e.message };
  } finally {
    mon?.close();
    g.kill();
    await g.end(TIMEOUT_S.exit * 1000);
  }
}

async function runQemu(qemu, sc, dir, pristineDisk, image) {
  const disk = join(dir, `qemu-${sc.key}.img`);
  copyFileSync(pristineDisk, disk);
  const sock = join(dir, `qemu-${sc.key}.sock`);
  const file = join(dir, `qemu-${sc.key}.migration`);
  const g = new GuestConsole(qemu, [
    "-M", "virt", "-m", "256M", "-display", "none", "-serial", "stdio",
    "-bios", G("linux/fw_dynamic.bin"), "-kernel", image, "-initrd", G("linux/initramfs.cpio.gz"), "-append", "console=ttyS0",
    "-drive", `file=${disk},format=raw,if=none,id=hd0`, "-device", "virtio-blk-device,drive=hd0",
    "-monitor", `unix:${sock},server,nowait`,
  ]);
  let mon;
  try {
    const times = await prepare(g, sc, "qemu");
    mon = await MonitorClient.open(sock, "(qemu) ", TIMEOUT_S.monitor * 1000);
    await mon.cmd("stop", TIMEOUT_S.monitor * 1000);
    const t0 = performance.now();
    const started = await mon.cmd(`migrate "exec:cat > ${file}"`, TIMEOUT_S.save * 1000);
    if (/error|fail/i.test(started)) throw new Error(`migrate: ${started}`);
    let info = "";
    for (;;) {
      info = await mon.cmd("info migrate", TIMEOUT_S.monitor * 1000);
      const status = /Migration status:\s*(\S+)/.exec(info)?.[1];
      if (status === "completed") break;
      if (status === "failed" || status === "cancelled") throw new Error(`migration ${status}: ${info.replace(/\s+/g, " ").slice(0, 300)}`);
      if (elapsed(t0) > TIMEOUT_S.save) throw new Error(`migration not completed within ${TIMEOUT_S.save} s (status ${status ?? "?"})`);
      await new Promise((r) => setTimeout(r, 100));
    }
    // QEMU is done writing to the pipe; wait for cat to finish writing the file (size stable).
    let size = -1;
    for (let stable = 0; stable < 3; ) {
      const now = existsSync(file) ? statSync(file).size : 0;
      stable = now === size ? stable + 1 : 0;
      size = now;
      if (elapsed(t0) > TIMEOUT_S.save) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    const wallMs = performance.now() - t0;
    const totalMs = Number(/total time:\s*(\d+)/.exec(info)?.[1]);
    mon.send("quit");
    const code = await g.end(TIMEOUT_S.exit * 1000);
    return { ok: true, times, fileBytes: size, wallMs, totalMs, exit: code };
  } catch (e) {
    return { ok: false, why: e.message };
  } finally {
    mon?.close();
    g.kill();
    await g.end(TIMEOUT_S.exit * 1000);
  }
}

function printRvm(r) {
  if (!r.ok) {
    console.log(`  rvm:  FAILED: ${r.why}`);
    return;
  }
  const s = r.meta.stats;
  const ram = r.meta.ramBytes;
  console.log(`  rvm:  ${phaseLine(r.times)}`);
  console.log(`        monitor before the save: ${r.pages.replace(/\s*\n\s*/g, "; ").replace(/ {2,}/g, " ")}`);
  console.log(
    `        pages (${s.pages} x 4 KiB): zero ${s.zero} (${pct(s.zero, s.pages)}), disk-backed ${s.disk} (${pct(s.disk, s.pages)}), ` +
      `same-as ${s.same} (${pct(s.same, s.pages)}), stored ${s.stored} (${pct(s.stored, s.pages)})` +
      (s.inherited ? `, inherited ${s.inherited}` : ""),
  );
  if (r.fileBytes !== s.fileBytes) console.log(`        NOTE: the file is ${r.fileBytes} bytes but its stats say ${s.fileBytes}`);
  console.log(`        snapshot file: ${bytes(r.fileBytes)} = ${pct(r.fileBytes, ram)} of RAM, ${pct(r.fileBytes, s.zeroSkipBytes)} of a zero-skipping save (${mib(s.zeroSkipBytes)})`);
  const mibps = s.saveMs > 0 ? `${(ram / MiB / (s.saveMs / 1000)).toFixed(0)} MiB of guest RAM/s` : "- (under 1 ms)";
  console.log(`        save: ${s.saveMs} ms (VM paused ${s.pauseMs} ms) = ${mibps}; savevm over the monitor ${r.wallMs.toFixed(0)} ms wall; compression: not implemented`);
  console.log(`        exit after quit: code ${r.exit}`);
}

function printQemu(q, r) {
  if (!q) return;
  if (!q.ok) {
    console.log(`  qemu: FAILED: ${q.why}`);
    return;
  }
  console.log(`  qemu: ${phaseLine(q.times)}`);
  console.log(
    `        migration stream (stop; migrate "exec:cat > FILE"): ${bytes(q.fileBytes)} = ${pct(q.fileBytes, RAM_BYTES)} of RAM; ` +
      `QEMU's total time ${Number.isFinite(q.totalMs) ? `${q.totalMs} ms` : "?"}, ${q.wallMs.toFixed(0)} ms wall from migrate to the file complete (incl. 0.3 s of size-stable checks)`,
  );
  if (r?.ok) {
    console.log(
      `        rvm's snapshot = ${pct(r.fileBytes, q.fileBytes)} of QEMU's file; rvm's zero-skipping figure ${mib(r.meta.stats.zeroSkipBytes)} ` +
        `= ${pct(r.meta.stats.zeroSkipBytes, q.fileBytes)} of it`,
    );
  }
}

export async function main() {
  if (!linuxBenchPrerequisites("snapshot")) return;
  const qemu = qemuPath();
  const { dir, cleanup } = makeTempDir("rvm-bench-snapshot-");
  try {
    const pristine = join(dir, "bench.img");
    const made = makeBenchDisk(pristine);
    if (!made.ok) {
      console.log(`bench snapshot: guests/linux/make-bench-disk.sh failed (${made.why}) - stopped`);
      return;
    }
    let image;
    if (qemu) {
      image = join(dir, "Image");
      await gunzipTo(G("linux/Image.gz"), image);
    }
    console.log("savevm of the Linux guest, 256 MiB RAM, benchmark disk (40 x 1 MiB files) as /dev/vda; each run a fresh boot.");
    console.log("rvm: savevm over the monitor socket; compression of stored pages is not implemented (raw 4 KiB pages).");
    console.log(qemu ? `qemu: ${qemu}: stop + migrate "exec:cat > FILE" (its migration stream, zero pages skipped)` : QEMU_MISSING);
    const results = [];
    for (const sc of SCENARIOS) {
      console.log("");
      console.log(sc.title);
      const r = await runRvm(sc, dir, pristine);
      printRvm(r);
      const q = qemu ? await runQemu(qemu, sc, dir, pristine, image) : undefined;
      printQemu(q, r);
      results.push({ sc, r, q });
    }

    console.log("");
    console.log("summary (256 MiB guest):");
    for (const { sc, r, q } of results) {
      const rvm = r.ok
        ? `rvm ${mib(r.fileBytes)} = ${pct(r.fileBytes, RAM_BYTES)} of RAM, ${pct(r.fileBytes, r.meta.stats.zeroSkipBytes)} of zero-skipping, ` +
          `save ${r.meta.stats.saveMs} ms (${r.meta.stats.saveMs > 0 ? (RAM_BYTES / MiB / (r.meta.stats.saveMs / 1000)).toFixed(0) : "-"} MiB/s)`
        : "rvm failed";
      const qm = !q ? "no QEMU" : q.ok ? `qemu ${mib(q.fileBytes)}${r.ok ? `, rvm/qemu ${pct(r.fileBytes, q.fileBytes)}` : ""}` : "qemu failed";
      console.log(`  (${sc.key}) ${rvm}; ${qm}`);
    }
    console.log("  compression: not implemented in rvm (stored pages are raw); QEMU's stream is uncompressed as well.");
    const { r, q } = results[0];
    let ref;
    let refName;
    if (q?.ok) {
      ref = q.fileBytes;
      refName = "QEMU's migration stream in this run";
    } else if (!q) {
      ref = ISSUE_QEMU_BYTES;
      refName = "the issue's QEMU figure (~54 MB; QEMU not run here)";
    }
    const target = `target (issue 5): scenario (a) snapshot <= ${TARGET * 100}% of what QEMU stores`;
    if (!r.ok || ref === undefined) {
      console.log(`${target}: no verdict (${!r.ok ? "rvm's run failed" : "QEMU's run failed"})`);
    } else {
      const ratio = r.fileBytes / ref;
      const budget = TARGET * ref;
      if (ratio <= TARGET) {
        console.log(`${target}: target met - rvm ${mib(r.fileBytes)} is ${(100 * ratio).toFixed(1)}% of ${refName} (${mib(ref)}; budget ${mib(budget)})`);
      } else {
        console.log(
          `${target}: target missed by ${(100 * (ratio - TARGET)).toFixed(1)} percentage points - rvm ${mib(r.fileBytes)} is ` +
            `${(100 * ratio).toFixed(1)}% of ${refName} (${mib(ref)}), ${mib(r.fileBytes - budget)} over the ${mib(budget)} budget`,
        );
      }
    }
  } finally {
    cleanup();
  }
}
