// Linux compute benchmark: the time a CPU-bound command takes inside the booted Linux guest, for
// rvm's interpreter (--jit off), rvm's JIT (--jit on) and QEMU (TCG), same images, same command.
//
// What: the shipped guest (guests/linux: kernel + initramfs, the data disk attached and
// mounted) booted to its prompt (not timed), then each workload typed at the console, timed from
// the keystroke to the next prompt (so it includes the echo and the prompt, a few milliseconds):
//   gzip   gzip -9 of the data files (~2 MiB: text-like data), 4 times, to /dev/null — integer
//          code in the style of CoreMark (tables, loops, branches)
//   awk    busybox awk running a loop of 1,000,000 arithmetic steps — an interpreter (busybox's)
//          running in the guest: branches, calls, hash-table lookups
// QEMU runs `qemu-system-riscv64 -M virt -m 256M -nographic -bios fw_dynamic.bin -kernel Image
// -initrd ... -append console=ttyS0` with the same disk; rvm the same options through its CLI.
// Each workload runs twice per guest; the better time counts. The boot to the first prompt is
// printed too: wall time from spawn, and the CPU time the process had used then (all its
// threads; /proc, Linux). Prints figures and ratios only.
import { existsSync } from "node:fs";
import { join } from "node:path";
import { GuestConsole, QEMU_MISSING, ROOT, gunzipTo, makeTempDir, processCpuSeconds, qemuPath } from "./common.js";

const G = (p) => join(ROOT, "guests", p);
const PROMPT = "~ # ";
const WORKLOADS = [
  ["gzip", "for i in 1 2 3 4; do gzip -9 -c /mnt/data/* > /dev/null; done"],
  ["awk", "awk 'BEGIN{for(i=0;i<1000000;i++)s=(s*31+i)%99991;print s}'"],
];

async function measure(who, cmd, args) {
  const g = new GuestConsole(cmd, args);
  const t0 = performance.now();
  try {
    await g.waitFor(PROMPT, 300_000);
    const times = { boot: (performance.now() - t0) / 1000, bootCpu: processCpuSeconds(g.child.pid) };
    let at = g.mark;
    g.type("mount /dev/vda /mnt");
    await g.waitFor(PROMPT, 60_000, at + 1);
    for (const [name, line] of WORKLOADS) {
      for (let i = 0; i < 2; i++) {
        at = g.mark;
        const t0 = performance.now();
        g.type(line);
        // the prompt after the command's own echo
        await g.waitFor(line, 60_000, at);
        const echoed = g.mark;
        await g.waitFor(PROMPT, 600_000, echoed);
        const s = (performance.now() - t0) / 1000;
        times[name] = Math.min(times[name] ?? Infinity, s);
      }
    }
    g.type("poweroff");
    await g.end(60_000);
    return times;
  } catch (e) {
    g.kill();
    console.log(`${who}: FAILED: ${e.message}; last output: ${g.tail()}`);
    return undefined;
  }
}

export async function main() {
  for (const f of ["linux/Image.gz", "linux/initramfs.cpio.gz", "linux/disk.img.gz", "linux/fw_dynamic.bin"]) {
    if (!existsSync(G(f))) {
      console.error(`bench linux: ${G(f)} is missing`);
      process.exit(1);
    }
  }
  const { dir, cleanup } = makeTempDir("rvm-bench-linux-");
  try {
    const image = join(dir, "Image");
    await gunzipTo(G("linux/Image.gz"), image);
    const common = ["-M", "virt", "-m", "256M", "-nographic", "-initrd", G("linux/initramfs.cpio.gz"), "-append", "console=ttyS0"];
    const disk = async (name) => {
      const f = join(dir, name);
      await gunzipTo(G("linux/disk.img.gz"), f);
      return ["-drive", `file=${f},format=raw,if=none,id=hd0`, "-device", "virtio-blk-device,drive=hd0"];
    };
    console.log("Linux compute: a command typed at the guest's prompt, keystroke to the next prompt; best of 2.");
    const rows = {};
    rows.interpreter = await measure("interpreter", process.execPath, ["bin/rvm.js", "run", ...common, "-kernel", G("linux/Image.gz"), ...(await disk("a.img")), "--jit", "off"]);
    rows.jit = await measure("jit", process.execPath, ["bin/rvm.js", "run", ...common, "-kernel", G("linux/Image.gz"), ...(await disk("b.img")), "--jit", "on"]);
    const qemu = qemuPath();
    if (qemu) rows.qemu = await measure("qemu", qemu, [...common, "-bios", G("linux/fw_dynamic.bin"), "-kernel", image, ...(await disk("c.img"))]);
    else console.log(QEMU_MISSING);
    const b = (who) => (rows[who] ? `${rows[who].boot.toFixed(2)} s${rows[who].bootCpu !== undefined ? ` (CPU ${rows[who].bootCpu.toFixed(2)} s)` : ""}` : "n/a");
    let boot = `boot : interpreter ${b("interpreter")}, jit ${b("jit")}`;
    if (rows.qemu) boot += `, qemu ${b("qemu")}`;
    if (rows.interpreter?.bootCpu && rows.jit?.bootCpu) boot += `; CPU jit/interpreter ${(rows.jit.bootCpu / rows.interpreter.bootCpu).toFixed(2)}x`;
    console.log(boot);
    for (const [name] of WORKLOADS) {
      const f = (who) => (rows[who]?.[name] !== undefined ? `${rows[who][name].toFixed(2)} s` : "n/a");
      let line = `${name.padEnd(5)}: interpreter ${f("interpreter")}, jit ${f("jit")}`;
      if (rows.qemu) line += `, qemu ${f("qemu")}; jit/qemu ${(rows.jit?.[name] / rows.qemu[name]).toFixed(2)}x, interpreter/qemu ${(rows.interpreter?.[name] / rows.qemu[name]).toFixed(2)}x`;
      line += `; interpreter/jit ${(rows.interpreter?.[name] / rows.jit?.[name]).toFixed(2)}x`;
      console.log(line);
    }
  } finally {
    cleanup();
  }
}
