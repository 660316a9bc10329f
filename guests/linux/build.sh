#!/bin/bash
# Build every Linux guest image from Debian packages, in order:
#   kernel (Image.gz) -> busybox -> initramfs (initramfs.cpio.gz) -> data disk (disk.img.gz)
#   -> firmware copies + bootable image (../linux.img.gz)
# then, unless NOCHECK=1, boot them in qemu-system-riscv64 (check-qemu.py).
# Run as root on Debian 12 (setup.sh apt-get installs what is missing). Sources and build trees
# go to $BUILD (default /work/build-linux), never into the repository. Heavy steps run with
# nice -n 19 and -j$JOBS (default 2). Idempotent: rerunning rebuilds incrementally.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export BUILD="${BUILD:-/work/build-linux}" JOBS="${JOBS:-2}"
t0=$(date +%s)
step() { echo; echo "######## $1 ($(( $(date +%s) - t0 )) s)"; }

step setup;      "$HERE/setup.sh"
step kernel;     "$HERE/build-kernel.sh"
step busybox;    "$HERE/build-busybox.sh"
step initramfs;  "$HERE/build-initramfs.sh"
step disk;       "$HERE/build-disk.sh"
step bootimg;    "$HERE/build-bootimg.sh"
if [ "${NOCHECK:-0}" != 1 ]; then
  step "check in QEMU"; "$HERE/check-qemu.py"
fi
step "done"
ls -l "$HERE"/*.gz "$HERE"/*.bin "$HERE/../linux.img.gz"
