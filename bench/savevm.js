// `npm run bench -- savevm [ROUNDS] [--base DIR] [--strace]`: the plain savevm (stop, save,
// continue) of rvm against QEMU's, repeated, on the same guests (issues 13 and 15).
//
// Each round boots, for each contestant in turn, the shipped Linux guest with `memfill N` holding N
// MiB of pseudo-random anonymous memory (the restore bench's scenario B), then times one `savevm`
// on the monitor: the command's wall time and the process's CPU time across it (user and system,
// every thread, from /proc/PID/stat), then quits. Two guests: 1 GiB with memfill 768 and 256 MiB
// with memfill 128. Contestants: this rvm, QEMU 7.2 (when installed; a qcow2 overlay, where its
// savevm writes the vmstate and flushes) and, with `--base DIR`, the rvm of another checkout
// (its bin/rvm.js and dist/), to compare two builds alternating under the same load. With
// `--strace`, each save runs under `strace -f -c` (system time per syscall; slows the save).
// SAVEVM_SIZES=1G: the 1 GiB guest only. RVM_BENCH_NODE_ARGS: options for rvm's node (e.g.
// `--cpu-prof --cpu-prof-dir=DIR`, which NODE_OPTIONS does not take).
// Prints every save, then best / median per contestant and size, and the load average.
// Prints figures only; never asserts.
import { join } from "node:path";
import { copyFileSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { spawn, spawnSync } from "node:child_process";
import { ROOT, GuestConsole, MonitorClient, QEMU_MISSING, gunzipTo, makeTempDir, qemuPath } from "./common.js";

const G = (f) => join(ROOT, "guests", f);
let withStrace = false;
const SIZES = process.env.SAVEVM_SIZES === "1G" ? [{ mem: "1G", fill: 768 }] : [
  { mem: "1G", fill: 768 },
  { mem: "256M", fill: 128 },
];

/** user and system CPU seconds of live process `pid` (every thread). */
function cpuOf(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "latin1");
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return { user: Number(f[11]) / 100, sys: Number(f[12]) / 100 };
  } catch {
    return undefined;
  }
}
const load = () => readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ");

async function saveOnce(who, size, dir, image) {
  const sock = join(dir, `${who.key}.sock`);
  rmSync(sock, { force: true });
  const disk = join(dir, `${who.key}.img`);
  writeFileSync(disk, Buffer.alloc(0));
  spawnSync("truncate", ["-s", "64M", disk]);
  let g;
  if (who.qemu) {
    const overlay = join(dir, `${who.key}.qcow2`);
    rmSync(overlay, { force: true });
    spawnSync("qemu-img", ["create", "-q", "-f", "qcow2", "-b", disk, "-F", "raw", overlay]);
    g = new GuestConsole(who.qemu, [
      "-M", "virt", "-m", size.mem, "-display", "none", "-serial", "stdio", "-bios", G("linux/fw_dynamic.bin"),
      "-kernel", image, "-initrd", G("linux/initramfs.cpio.gz"), "-append", "console=ttyS0",
      "-drive", `file=${overlay},if=none,id=hd0`, "-device", "virtio-blk-device,drive=hd0", "-monitor", `unix:${sock},server,nowait`,
    ]);
  } else {
    const snapDir = join(dir, `${who.key}.snapshots`);
    rmSync(snapDir, { recursive: true, force: true });
    g = new GuestConsole(process.execPath, [...(process.env.RVM_BENCH_NODE_ARGS ?? "").split(" ").filter(Boolean),
      join(who.root, "bin/rvm.js"), "run", "-M", "virt", "-m", size.mem, "-nographic",
      "-kernel", G("linux/Image.gz"), "-initrd", G("linux/initramfs.cpio.gz"), "-append", "console=ttyS0",
      "-drive", `file=${disk},format=raw,if=none,id=hd0`, "-device", "virtio-blk-device,drive=hd0",
      "-monitor", `unix:${sock},server,nowait`, "--snapshot-dir", snapDir,
    ], { cwd: who.root });
  }
  let mon;
  try {
    await g.waitFor("~ # ", 300_000);
    const from = g.mark;
    g.type(`mkfifo /tmp/mf; memfill ${size.fill} < /tmp/mf &`);
    g.type("exec 3> /tmp/mf");
    await g.waitFor(`memfill: ready ${size.fill} MiB`, 300_000, from);
    mon = await MonitorClient.open(sock, who.qemu ? "(qemu) " : "(rvm) ", 30_000);
    let tracer;
    if (withStrace) {
      tracer = spawn("strace", ["-f", "-c", "-p", String(g.child.pid)], { stdio: ["ignore", "ignore", "pipe"] });
      tracer.stderr.setEncoding("utf8");
      tracer.out = "";
      tracer.stderr.on("data", (s) => (tracer.out += s));
      await new Promise((r) => setTimeout(r, 1000));
    }
    const l = load();
    const c0 = cpuOf(g.child.pid);
    const t0 = performance.now();
    const reply = await mon.cmd("savevm bench", 600_000);
    const wall = (performance.now() - t0) / 1000;
    const c1 = cpuOf(g.child.pid);
    if (tracer) {
      tracer.kill("SIGINT");
      await new Promise((r) => tracer.on("close", r));
      console.log(tracer.out.split("\n").filter((l) => /^ *[0-9.]+ +[0-9.]+|^% time/.test(l)).slice(0, 14).join("\n"));
    }
    if (/error|fail|cannot/i.test(reply)) throw new Error(reply);
    const user = c1.user - c0.user, sys = c1.sys - c0.sys;
    let bytes = 0;
    if (!who.qemu) bytes = statSync(join(dir, `${who.key}.snapshots`, "bench.rvmsnap")).size;
    console.log(`  ${who.key.padEnd(5)} ${size.mem.padEnd(5)} wall ${wall.toFixed(3)} s  CPU ${(user + sys).toFixed(2)} s (user ${user.toFixed(2)}, sys ${sys.toFixed(2)})` +
      `  load ${l}${bytes ? `  file ${(bytes / 2 ** 20).toFixed(0)} MiB` : ""}  ${reply.split("\n")[0].slice(0, 80)}`);
    mon.send("quit");
    await g.end(30_000);
    return { wall, cpu: user + sys };
  } finally {
    mon?.close();
    g.kill();
    await g.end(30_000);
  }
}

export async function main(args) {
  const rounds = Number(args.find((a) => /^\d+$/.test(a)) ?? 3);
  const baseAt = args.indexOf("--base");
  const baseDir = baseAt >= 0 ? args[baseAt + 1] : undefined;
  withStrace = args.includes("--strace");
  const { dir } = makeTempDir("rvm-savevm-");
  try {
    const qemu = qemuPath();
    const who = [{ key: "rvm", root: ROOT }];
    if (baseDir) who.push({ key: "base", root: baseDir });
    let image;
    if (qemu) {
      image = join(dir, "Image");
      await gunzipTo(G("linux/Image.gz"), image);
      who.push({ key: "qemu", qemu });
    } else console.log(QEMU_MISSING);
    const res = {};
    console.log(`savevm, ${rounds} rounds, alternating ${who.map((w) => w.key).join(" / ")}; load at start ${load()}`);
    for (let r = 0; r < rounds; r++) {
      for (const size of SIZES) {
        for (const w of r % 2 ? [...who].reverse() : who) {
          try {
            const x = await saveOnce(w, size, dir, image);
            ((res[`${w.key} ${size.mem}`] ??= []).push(x));
          } catch (e) {
            console.log(`  ${w.key} ${size.mem}: FAILED: ${e.message.slice(0, 300)}`);
          }
        }
      }
    }
    const med = (v) => {
      const s = [...v].sort((a, b) => a - b);
      return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
    };
    console.log(`\nsavevm, best / median of ${rounds} (load at end ${load()})`);
    for (const [k, v] of Object.entries(res)) {
      const wall = v.map((x) => x.wall), cpu = v.map((x) => x.cpu);
      console.log(`  ${k.padEnd(11)} wall ${Math.min(...wall).toFixed(3)} / ${med(wall).toFixed(3)} s   CPU ${Math.min(...cpu).toFixed(2)} / ${med(cpu).toFixed(2)} s`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
