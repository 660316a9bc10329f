#!/bin/bash
# Build busybox 1.35 from Debian's source package (apt-get source busybox), statically,
# with gcc-riscv64-linux-gnu: `make defconfig` + CONFIG_STATIC=y, minus the applets listed below.
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

# Configuration: defconfig, static, and these applets off (they do not build against
# Debian 12's riscv64 glibc/kernel headers statically, or make no sense here).
OFF=(CONFIG_TC CONFIG_FEATURE_TC_INGRESS CONFIG_NSENTER CONFIG_UNSHARE)
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
SOURCE_DATE_EPOCH=1735689600 KCONFIG_NOTIMESTAMP=1 nice -n 19 "${MK[@]}" -j"$JOBS" busybox
echo "== busybox build took $(( $(date +%s) - start )) s"
file "$OUT/busybox" 2>/dev/null || true
ls -l "$OUT/busybox"
