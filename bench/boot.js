// Boot benchmark: wall time from start to the Linux shell prompt, rvm next to QEMU.
//
// What: the shipped Linux guest (guests/linux: Linux 6.1, busybox initramfs) booted two ways,
// each by rvm's CLI and by qemu-system-riscv64 (when installed) in the same run:
//   kernel+initrd   OpenSBI fw_dynamic -> Image -> initramfs, with the data disk attached:
//                   rvm:  node bin/rvm.js run -M virt -m 256M -nographic -kernel guests/linux/Image.gz
//                           -initrd guests/linux/initramfs.cpio.gz -append "console=ttyS0"
//                           -drive file=DISK,format=raw,if=none,id=hd0 -device virtio-blk-device,drive=hd0
//                   qemu: the same options plus -bios guests/linux/fw_dynamic.bin, with the Image
//                         unpacked (QEMU does not take a gzip kernel); rvm's -bios default is the
//                         same OpenSBI file. DISK is disk.img.gz unpacked, the same file for both.
//   bootable disk   OpenSBI -> U-Boot -> extlinux.conf on the disk -> Image + initramfs:
//                   rvm:  node bin/rvm.js run IMG -m 256M
//                   qemu: -M virt -m 256M -nographic -bios guests/linux/fw_dynamic.bin
//                           -kernel guests/linux/u-boot.bin
//                           -drive file=IMG,format=raw,if=none,id=hd0 -device virtio-blk-device,drive=hd0
//                   IMG is guests/linux.img.gz unpacked to a temporary file (the shipped bytes for
//                   both, and the tree's guests/linux.img, which guests may write, is not touched;
//                   guests/linux.img is used only if the .gz is missing). QEMU gets the disk as
//                   virtio-blk-device (virtio-mmio), the device rvm's if=virtio is: QEMU's own
//                   `if=virtio` on virt makes a virtio-PCI disk (see guests/linux/README.md).
//                   QEMU's figure includes U-Boot's 2 s autoboot delay (bootdelay=2 in Debian's
//                   U-Boot build, which keeps no environment); rvm's does not: when rvm picks
//                   U-Boot itself it puts /config/bootdelay = 0 in the device tree.
// How: each command is spawned with piped stdio; the time is from spawn to the first appearance
// of the shell prompt "~ # " in its stdout (so it includes process start-up: Node + loading the
// core for rvm, QEMU's start-up for QEMU). Then "poweroff\n" is written to stdin and the exit is
// awaited; its time (busybox init's two 1 s pauses, ~2 s) and exit code (0 expected: OpenSBI's
// SRST -> the sifive,test poweroff) are reported but not part of the boot figure. Each
// measurement runs RUNS times (rvm and QEMU alternating) and the best is printed. Bounded: a child is
// killed if it shows no prompt within BOOT_TIMEOUT_S or does not exit within EXIT_TIMEOUT_S of
// the poweroff; a measurement that failed once is not repeated.
// rvm boots each way twice: with its defaults (the JIT on) and with `--jit off` (the
// interpreter alone), alternating with QEMU, RUNS times each; besides the wall time, the CPU
// time the process had used when the prompt appeared (all its threads: V8 compiles the JIT's
// WebAssembly on its own; from /proc, Linux) is printed, and the median CPU of the JIT's runs
// against the interpreter's (the JIT must not make a boot cost more than it saves).
// Prints figures only; never asserts. Other load on the host (tests running in parallel) shows up
// directly in these wall times.
import { existsSync } from "node:fs";
import { join } from "node:path";
import { ROOT, QEMU_MISSING, gunzipTo, makeTempDir, qemuPath, timeToPrompt } from "./common.js";

const RUNS = 3;
const BOOT_TIMEOUT_S = { rvm: 300, "rvm --jit off": 300, qemu: 120 };
const EXIT_TIMEOUT_S = 60;
const G = (p) => join(ROOT, "guests", p);

/** The kernel's own timestamp of "Run /init as init process" in a boot log, if printed. */
function initKernelTime(output) {
  const m = /\[\s*(\d+\.\d+)\]\s+Run \/init as init process/.exec(output);
  return m ? Number(m[1]) : undefined;
}

/** U-Boot's autoboot countdown start ("Hit any key to stop autoboot:  2"), if printed. */
function autobootDelay(output) {
  const m = /Hit any key to stop autoboot:\s*(\d+)/.exec(output);
  return m ? Number(m[1]) : undefined;
}

function describe(r) {
  if (r.error) return `could not start: ${r.error}`;
  if (r.promptSeconds === undefined) {
    const why = r.killed === "prompt" ? "no prompt before the time limit, killed" : `exited (code ${r.code}${r.signal ? `, ${r.signal}` : ""}) without a prompt`;
    const last = r.output.trim().split(/\r?\n/).slice(-3).join(" | ");
    return `FAILED: ${why}; last output: ${last || "(none)"}`;
  }
  const kt = initKernelTime(r.output);
  const cpu = r.promptCpuSeconds !== undefined ? ` (CPU ${r.promptCpuSeconds.toFixed(2)} s)` : "";
  const exit = r.killed === "exit" ? `did not exit within ${EXIT_TIMEOUT_S} s of poweroff, killed` : `poweroff -> exit ${r.exitSeconds.toFixed(2)} s, exit code ${r.code}${r.signal ? ` (${r.signal})` : ""}`;
  const delay = autobootDelay(r.output);
  const notes = [
    delay !== undefined ? `U-Boot autoboot delay ${delay} s` : undefined,
    kt !== undefined ? `kernel ran /init at ${kt.toFixed(2)} s kernel time` : undefined,
  ].filter(Boolean);
  return `prompt after ${r.promptSeconds.toFixed(2)} s${cpu}${notes.length ? ` (${notes.join("; ")})` : ""}; ${exit}`;
}

export async function main() {
  const needed = ["linux/Image.gz", "linux/initramfs.cpio.gz", "linux/disk.img.gz", "linux/fw_dynamic.bin", "linux/u-boot.bin"];
  for (const f of needed) {
    if (!existsSync(G(f))) {
      console.error(`bench boot: ${G(f)} is missing`);
      process.exit(1);
    }
  }
  const qemu = qemuPath();
  const { dir, cleanup } = makeTempDir("rvm-bench-boot-");
  try {
    const image = join(dir, "Image");
    const disk = join(dir, "disk.img");
    let bootImg = join(dir, "linux.img");
    await gunzipTo(G("linux/Image.gz"), image);
    await gunzipTo(G("linux/disk.img.gz"), disk);
    if (existsSync(G("linux.img.gz"))) await gunzipTo(G("linux.img.gz"), bootImg);
    else if (existsSync(G("linux.img"))) bootImg = G("linux.img");
    else bootImg = undefined;

    const fw = G("linux/fw_dynamic.bin");
    const board = ["-M", "virt", "-m", "256M", "-nographic"];
    const diskOpts = (file) => ["-drive", `file=${file},format=raw,if=none,id=hd0`, "-device", "virtio-blk-device,drive=hd0"];
    const direct = ["-initrd", G("linux/initramfs.cpio.gz"), "-append", "console=ttyS0", ...diskOpts(disk)];
    const cases = [
      {
        name: "boot (kernel+initrd)",
        rvm: ["bin/rvm.js", "run", ...board, "-kernel", G("linux/Image.gz"), ...direct],
        "rvm --jit off": ["bin/rvm.js", "run", ...board, "-kernel", G("linux/Image.gz"), ...direct, "--jit", "off"],
        qemu: [...board, "-bios", fw, "-kernel", image, ...direct],
      },
    ];
    if (bootImg) {
      cases.push({
        name: "boot (bootable disk: OpenSBI+U-Boot+extlinux; rvm's default path sets bootdelay=0, QEMU waits U-Boot's 2 s)",
        rvm: ["bin/rvm.js", "run", bootImg, "-m", "256M"],
        "rvm --jit off": ["bin/rvm.js", "run", bootImg, "-m", "256M", "--jit", "off"],
        qemu: [...board, "-bios", fw, "-kernel", G("linux/u-boot.bin"), ...diskOpts(bootImg)],
      });
    } else {
      console.log("boot (bootable disk): guests/linux.img(.gz) is missing - skipped");
    }

    console.log(`Linux boot to the "~ # " prompt, wall time from spawn; best of ${RUNS} runs each.`);
    if (!qemu) console.log(QEMU_MISSING);
    const summary = [];
    for (const c of cases) {
      console.log(`${c.name}:`);
      const best = {};
      const cpus = {};
      const failed = {};
      for (let i = 1; i <= RUNS; i++) {
        for (const who of qemu ? ["rvm", "rvm --jit off", "qemu"] : ["rvm", "rvm --jit off"]) {
          if (failed[who]) continue;
          const cmd = who === "qemu" ? qemu : process.execPath;
          const r = await timeToPrompt(cmd, c[who], { promptTimeoutS: BOOT_TIMEOUT_S[who], exitTimeoutS: EXIT_TIMEOUT_S });
          console.log(`  ${who.padEnd(13)} run ${i}: ${describe(r)}`);
          if (r.promptSeconds === undefined) failed[who] = true;
          else if (best[who] === undefined || r.promptSeconds < best[who]) best[who] = r.promptSeconds;
          if (r.promptCpuSeconds !== undefined) (cpus[who] ??= []).push(r.promptCpuSeconds);
        }
      }
      const fig = (who) => (best[who] === undefined ? "failed" : `${best[who].toFixed(2)} s`);
      const median = (a) => [...a].sort((x, y) => x - y)[(a.length - 1) >> 1];
      const [cj, ci] = [cpus.rvm, cpus["rvm --jit off"]];
      if (cj?.length && ci?.length && !failed.rvm && !failed["rvm --jit off"]) {
        summary.push(`${c.name}: CPU to the prompt, median of ${RUNS}: rvm (JIT) ${median(cj).toFixed(2)} s, ` +
          `--jit off ${median(ci).toFixed(2)} s, JIT/interpreter ${(median(cj) / median(ci)).toFixed(2)}x`);
      }
      let line = `${c.name}: rvm ${fig("rvm")}, rvm --jit off ${fig("rvm --jit off")}`;
      if (qemu) {
        line += `, qemu ${fig("qemu")}`;
        if (best.rvm !== undefined && best.qemu !== undefined) line += `, rvm/qemu ${(best.rvm / best.qemu).toFixed(2)}x`;
      } else {
        line += " (no QEMU reference)";
      }
      summary.push(line + ` (best of ${RUNS})`);
    }
    console.log("");
    for (const line of summary) console.log(line);
  } finally {
    cleanup();
  }
}
