#!/usr/bin/env python3
"""Boot the shipped Linux guest in qemu-system-riscv64 (the reference board) and check it.

  check-qemu.py direct   OpenSBI fw_dynamic + Image + initramfs + disk.img (virtio-blk-device)
  check-qemu.py uboot    OpenSBI fw_dynamic + U-Boot + linux.img (extlinux.conf on the disk)
  check-qemu.py uboot0   the same with QEMU's own DTB plus /config { bootdelay = <0>; }
                         (dumpdtb + dtc, passed with -dtb): U-Boot without its 2 s delay
  check-qemu.py all      direct and uboot (default)

Drives the console through a pipe: waits for the shell prompt (timing it), mounts /dev/vda,
reads and writes a file, runs memfill 8 / sum / verify, powers off and checks that QEMU exits
with 0. Prints one line per check and the time to the prompt. Needs only python3 and QEMU.
"""
import gzip, os, shutil, subprocess, sys, tempfile, time, select

HERE = os.path.dirname(os.path.abspath(__file__))
PROMPT = b"~ # "
MEMFILL8_SUM = b"memfill: sum=0x01c2beab9562065d"


class Console:
    def __init__(self, argv, log):
        self.t0 = time.monotonic()
        self.p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT)
        self.buf = b""
        self.log = log

    def expect(self, needle, timeout):
        end = time.monotonic() + timeout
        while needle not in self.buf:
            left = end - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"timed out waiting for {needle!r}")
            r, _, _ = select.select([self.p.stdout], [], [], left)
            if r:
                chunk = os.read(self.p.stdout.fileno(), 65536)
                if not chunk:
                    raise EOFError(f"QEMU exited while waiting for {needle!r}")
                self.log.write(chunk)
                self.buf += chunk
        i = self.buf.index(needle) + len(needle)
        before, self.buf = self.buf[:i], self.buf[i:]
        return before

    def send(self, line):
        self.p.stdin.write(line.encode() + b"\n")
        self.p.stdin.flush()

    def run(self, cmd, timeout=30):
        self.send(cmd)
        return self.expect(PROMPT, timeout)

    def wait_exit(self, timeout):
        try:
            rest, _ = self.p.communicate(timeout=timeout)
            self.log.write(rest or b"")
        except subprocess.TimeoutExpired:
            self.p.kill()
            raise
        return self.p.returncode


def gunzip(src, dst):
    with gzip.open(src, "rb") as f, open(dst, "wb") as g:
        shutil.copyfileobj(f, g)


def check(mode, tmp, results):
    fw = os.path.join(HERE, "fw_dynamic.bin")
    base = ["qemu-system-riscv64", "-M", "virt", "-m", "256M", "-nographic", "-bios", fw]
    if mode == "direct":
        img = os.path.join(tmp, "disk.img")
        gunzip(os.path.join(HERE, "disk.img.gz"), img)
        kern = os.path.join(tmp, "Image")
        gunzip(os.path.join(HERE, "Image.gz"), kern)
        argv = base + ["-kernel", kern, "-initrd", os.path.join(HERE, "initramfs.cpio.gz"),
                       "-append", "console=ttyS0",
                       "-drive", f"file={img},format=raw,if=none,id=hd0",
                       "-device", "virtio-blk-device,drive=hd0"]
        readme = b"rvm Linux guest's data disk"
    else:
        img = os.path.join(tmp, "linux.img")
        gunzip(os.path.join(HERE, "..", "linux.img.gz"), img)
        argv = base + ["-kernel", os.path.join(HERE, "u-boot.bin"),
                       "-drive", f"file={img},format=raw,if=none,id=hd0",
                       "-device", "virtio-blk-device,drive=hd0"]
        if mode == "uboot0":
            dtb = os.path.join(tmp, "virt.dtb")
            subprocess.run(base[:5] + ["-M", f"dumpdtb={dtb}"], check=True, capture_output=True)
            dts = subprocess.run(["dtc", "-q", "-I", "dtb", "-O", "dts", dtb], check=True,
                                 capture_output=True, text=True).stdout
            i = dts.rindex("};")
            dts = dts[:i] + "\tconfig {\n\t\tbootdelay = <0>;\n\t};\n" + dts[i:]
            subprocess.run(["dtc", "-q", "-I", "dts", "-O", "dtb", "-o", dtb + "0", "-"],
                           input=dts, check=True, text=True)
            argv += ["-dtb", dtb + "0"]
        readme = b"rvm's bootable Linux guest disk"
    if mode not in ("direct", "uboot", "uboot0"):
        sys.exit(f"check-qemu.py: unknown mode {mode!r} (direct, uboot, uboot0, all)")
    logpath = os.path.join(tmp, f"{mode}.log")
    ok = True

    def report(name, good, extra=""):
        nonlocal ok
        ok &= good
        print(f"{mode}: {'ok  ' if good else 'FAIL'} {name}{(' ' + extra) if extra else ''}", flush=True)

    with open(logpath, "wb") as log:
        c = Console(argv, log)
        try:
            out = c.expect(PROMPT, 120)
            t = time.monotonic() - c.t0
            results[mode] = t
            report("shell prompt", True, f"after {t:.2f} s")
            kt = None
            for line in out.split(b"\n"):
                if b"Run /init as init process" in line and line.startswith(b"["):
                    kt = float(line[1:line.index(b"]")])
            if kt is not None:
                report("kernel reached /init", True, f"at {kt:.3f} s kernel time")
            out = c.run("cat /proc/cmdline")
            report("cmdline", b"console=ttyS0" in out, out.split(b"\n")[1].strip().decode(errors="replace"))
            out = c.run("mount /dev/vda /mnt && cat /mnt/README && echo written-by-guest > /mnt/new.txt && sync && cat /mnt/new.txt")
            report("mount /dev/vda, read README, write a file", readme in out and b"written-by-guest\r\n" in out)
            if mode == "direct":
                out = c.run("cd /mnt/data && sha256sum -c SHA256SUMS | grep -c ': OK'; cd", 60)
                report("data/ checksums", b"\n16\r\n" in out)
            out = c.run("umount /mnt && echo umounted")
            report("umount", b"umounted" in out)
            c.send("memfill 8")
            c.expect(b"memfill: ready 8 MiB", 60)
            c.send("sum")
            c.expect(b"memfill: sum=", 60)
            out = b"memfill: sum=" + c.expect(b"\n", 10).strip()
            report("memfill 8 / sum", out == MEMFILL8_SUM, out.decode(errors="replace"))
            c.send("verify")
            c.expect(b"memfill: verify ok", 60)
            report("memfill verify", True)
            c.run("quit")
            c.send("poweroff")
            t1 = time.monotonic()
            rc = c.wait_exit(60)
            report("poweroff ends QEMU with exit 0", rc == 0, f"(rc={rc}, {time.monotonic() - t1:.2f} s)")
        except Exception as e:  # noqa: BLE001
            report("boot/session", False, f"{e} (log: {logpath})")
            c.p.kill()
    # The written file must be on the image.
    if ok:
        dump = subprocess.run(["debugfs", "-R", "cat /new.txt", img], capture_output=True)
        report("written file is on the image (debugfs)", dump.stdout == b"written-by-guest\n")
    return ok


def main():
    modes = sys.argv[1:] or ["all"]
    if modes == ["all"]:
        modes = ["direct", "uboot"]
    tmp = tempfile.mkdtemp(prefix="rvm-linux-check-")
    results, ok = {}, True
    for m in modes:
        ok &= check(m, tmp, results)
    for m, t in results.items():
        print(f"time to shell prompt ({m}): {t:.2f} s")
    if ok:
        shutil.rmtree(tmp)
    else:
        print(f"logs kept in {tmp}")
    print(f"{'all checks passed' if ok else 'SOME CHECKS FAILED'}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
