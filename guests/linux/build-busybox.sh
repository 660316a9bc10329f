#!/bin/bash
# Build busybox 1.35 from Debian's source package (apt-get source busybox), statically,
# with gcc-riscv64-linux-gnu: `make defconfig` + CONFIG_STATIC=y (minus the applets in OFF below).
# Output: $BUILD/busybox/busybox (riscv64 static ELF). Idempotent.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
BUILD="${BUILD:-/work/build-linux}"
JOBS="${JOBS:-2}"
"$HERE/setup.sh"

mkdir -p "$BUILD/bbsrc"
SRC=$(ls -d "$BUILD"/bbsrc/busybox-1.35*/ 2>/dev/null | head -1 || true)
if [ -z "$SRC" ] || [ ! -f "$SRC/Makefile" ]; then
  echo "== apt-get source busybox"
  (cd "$BUILD/bbsrc" && apt-get source busybox)
  SRC=$(ls -d "$BUILD"/bbsrc/busybox-1.35*/ | head -1)
fi
SRC="${SRC%/}"
OUT="$BUILD/busybox"
mkdir -p "$OUT"
MK=(make -C "$SRC" O="$OUT" ARCH=riscv CROSS_COMPILE=riscv64-linux-gnu-)
# Reproducible: busybox's kconfig writes AUTOCONF_TIMESTAMP (shown in the banner) from this.
export SOURCE_DATE_EPOCH=1735689600

# Configuration: defconfig, static, and the applets in OFF switched off. With Debian 12's
# gcc-riscv64-linux-gnu 12.2 / glibc 2.36 / linux 6.1 headers every defconfig applet builds
# (tc included), so OFF is empty; glibc's usual static-link warnings (getpwnam etc. want the
# shared NSS modules at run time) are harmless here: /etc/passwd is read through busybox's own
# code (CONFIG_USE_BB_PWD_GRP=y in defconfig).
OFF=()
echo "== configuring busybox (defconfig + STATIC)"
"${MK[@]}" -s defconfig >/dev/null
cfg="$OUT/.config"
sed -i 's/^# CONFIG_STATIC is not set/CONFIG_STATIC=y/' "$cfg"
for s in "${OFF[@]}"; do
  sed -i "s/^$s=y/# $s is not set/" "$cfg"
done
"${MK[@]}" -s oldconfig </dev/null >/dev/null || yes "" | "${MK[@]}" -s oldconfig >/dev/null
grep -qx 'CONFIG_STATIC=y' "$cfg"

echo "== building busybox (nice -n 19, -j$JOBS)"
start=$(date +%s)
nice -n 19 "${MK[@]}" -j"$JOBS" busybox
echo "== busybox build took $(( $(date +%s) - start )) s"
file "$OUT/busybox" 2>/dev/null || true
ls -l "$OUT/busybox"
