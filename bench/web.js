// `npm run bench -- web`: what a guest idle at its shell prompt costs, in a browser tab and on
// the command line. The shipped Linux (guests/linux.img) boots to "~ # " in
//   tab:  `rvm web` + Debian's chromium (headless, driven by playwright-core): CPU time of the
//         whole browser (every chromium process: UI, renderer, the worker running the machine);
//   rvm:  `rvm run guests/linux.img` (piped stdio): CPU time of the rvm process;
//   qemu: `qemu-system-riscv64 -M virt` with the same firmware, U-Boot and a copy of the disk,
//         when installed.
// then each sits at the prompt for WINDOW_S seconds and its CPU time (utime + stime from
// /proc) over that window is printed as a share of one core, with the tab's as a ratio of the
// CLI's and of QEMU's; and the same chromium on a blank page (its own floor). Also the tab's
// time from navigation to the prompt.
import { existsSync, readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { chromium } from "playwright-core";
import { GuestConsole, QEMU_MISSING, ROOT, gunzipTo, makeTempDir, qemuPath } from "./common.js";

const WINDOW_S = 20;
const SETTLE_S = 3;
const CHROMIUM = "/usr/bin/chromium";
const TICK = 100; // USER_HZ: /proc/PID/stat counts CPU time in 1/100 s

/** utime + stime of a process, in seconds. */
function cpuOf(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(f[11]) + Number(f[12])) / TICK;
  } catch {
    return 0; // gone
  }
}

/** A process and all its descendants. */
function tree(root) {
  const parent = new Map();
  for (const d of readdirSync("/proc")) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, "utf8");
      parent.set(Number(d), Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]));
    } catch {
      // exited meanwhile
    }
  }
  const out = [root];
  for (let i = 0; i < out.length; i++) for (const [p, pp] of parent) if (pp === out[i]) out.push(p);
  return out;
}

/** CPU seconds of the threads of `pid` whose name starts with `prefix`. */
function threadCpu(pid, prefix) {
  let sum = 0;
  try {
    for (const t of readdirSync(`/proc/${pid}/task`)) {
      const stat = readFileSync(`/proc/${pid}/task/${t}/stat`, "utf8");
      if (!stat.slice(stat.indexOf("(") + 1).startsWith(prefix)) continue;
      const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      sum += (Number(f[11]) + Number(f[12])) / TICK;
    }
  } catch {
    // gone
  }
  return sum;
}

/**
 * CPU share of one core used by `pids()` over WINDOW_S seconds, and that of their threads named
 * `thread...` (chromium's "DedicatedWorker thread": the worker that runs the machine).
 */
async function idleShare(pids, thread = "DedicatedWorker") {
  await new Promise((r) => setTimeout(r, SETTLE_S * 1000));
  const cpu = () => {
    let all = 0, named = 0;
    for (const p of pids()) {
      all += cpuOf(p);
      named += threadCpu(p, thread);
    }
    return { all, named };
  };
  const a = cpu();
  const t0 = performance.now();
  await new Promise((r) => setTimeout(r, WINDOW_S * 1000));
  const seconds = (performance.now() - t0) / 1000;
  const b = cpu();
  return { share: (b.all - a.all) / seconds, thread: (b.named - a.named) / seconds };
}

const pct = (x) => `${(100 * x).toFixed(2)}% of a core`;

async function tab() {
  const server = new GuestConsole(process.execPath, [join(ROOT, "bin/rvm.js"), "web", "--port", "0"]);
  const profile = makeTempDir("rvm-bench-chromium-").dir;
  let context;
  try {
    const at = await server.waitFor(/http:\/\/\S+\//, 30_000);
    const url = /http:\/\/\S+\//.exec(server.output.slice(at - server.base))[0];
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM, headless: true,
      args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"],
    });
    const page = context.pages()[0] ?? await context.newPage();
    const t0 = performance.now();
    await page.goto(url);
    await page.waitForFunction(() => window.rvmPage?.consoleText().includes("~ # "), null, { timeout: 300_000, polling: 100 });
    const boot = (performance.now() - t0) / 1000;
    const browserPid = findChromium();
    const { share, thread: worker } = await idleShare(() => tree(browserPid));
    // The same browser with the page closed and a blank one open: chromium's own floor.
    await page.goto("about:blank");
    const blank = (await idleShare(() => tree(browserPid))).share;
    return { boot, share, worker, blank };
  } finally {
    await context?.close();
    server.kill();
  }
}

/** The chromium process playwright started (launchPersistentContext hides it): our child. */
function findChromium() {
  const mine = tree(process.pid).filter((p) => p !== process.pid);
  return mine.find((p) => readFileSync(`/proc/${p}/cmdline`, "utf8").includes("chromium")) ?? process.pid;
}

async function cli(cmd, args) {
  const g = new GuestConsole(cmd, args);
  try {
    await g.waitFor("~ # ", 300_000);
    return (await idleShare(() => tree(g.child.pid))).share;
  } finally {
    g.kill();
  }
}

export async function main() {
  if (!existsSync(CHROMIUM)) {
    console.log(`web: ${CHROMIUM} is not installed (apt-get install chromium) - skipped`);
    return;
  }
  console.log(`Idle at the Linux shell prompt (guests/linux.img, 256 MiB): CPU over ${WINDOW_S} s, after ${SETTLE_S} s to settle.`);
  const t = await tab();
  console.log(`  tab   (rvm web + chromium, all processes)  ${pct(t.share)}   boot to prompt in the tab ${t.boot.toFixed(1)} s`);
  console.log(`  blank (the same chromium on about:blank)    ${pct(t.blank)}   so the page itself: ${pct(Math.max(0, t.share - t.blank))}`);
  console.log(`  the worker thread that runs the machine     ${pct(t.worker)}`);
  const { dir } = makeTempDir();
  const img = join(dir, "linux.img");
  await gunzipTo(join(ROOT, "guests/linux.img.gz"), img);
  const r = await cli(process.execPath, [join(ROOT, "bin/rvm.js"), "run", img]);
  console.log(`  rvm   (rvm run guests/linux.img)            ${pct(r)}   tab/rvm ${(t.share / Math.max(r, 1e-4)).toFixed(1)}x`);
  const qemu = qemuPath();
  if (!qemu) {
    console.log(QEMU_MISSING);
    return;
  }
  const g = (f) => join(ROOT, "guests/linux", f);
  const q = await cli(qemu, ["-M", "virt", "-m", "256M", "-smp", "1", "-nographic", "-bios", g("fw_dynamic.bin"),
    "-kernel", g("u-boot.bin"), "-drive", `file=${img},format=raw,if=virtio`]);
  console.log(`  qemu  (qemu-system-riscv64 -M virt, same disk) ${pct(q)}   tab/qemu ${(t.share / Math.max(q, 1e-4)).toFixed(1)}x`);
}
