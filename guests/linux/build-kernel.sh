#!/bin/bash
# Build the rvm Linux guest kernel from Debian's linux-source-6.1 with guests/linux/kernel.config.
# Output: guests/linux/Image.gz (gzip -9n of arch/riscv/boot/Image).
# Work tree: $BUILD (default /work/build-linux), outside the repository. Idempotent.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
BUILD="${BUILD:-/work/build-linux}"
JOBS="${JOBS:-2}"
"$HERE/setup.sh"

SRC="$BUILD/linux-source-6.1"
OUT="$BUILD/kbuild"
mkdir -p "$BUILD" "$OUT"
if [ ! -f "$SRC/Makefile" ]; then
  echo "== extracting /usr/src/linux-source-6.1.tar.xz"
  tar -C "$BUILD" -xf /usr/src/linux-source-6.1.tar.xz
fi

# Reproducible-ish build identity.
export KBUILD_BUILD_USER=rvm KBUILD_BUILD_HOST=rvm KBUILD_BUILD_VERSION=1
export KBUILD_BUILD_TIMESTAMP="${KBUILD_BUILD_TIMESTAMP:-2025-01-01}"
MK=(make -C "$SRC" O="$OUT" ARCH=riscv CROSS_COMPILE=riscv64-linux-gnu-)

echo "== configuring (allnoconfig + kernel.config, olddefconfig)"
cp "$HERE/kernel.config" "$OUT/kernel.config.fragment"
"${MK[@]}" -s allnoconfig KCONFIG_ALLCONFIG="$OUT/kernel.config.fragment"
"${MK[@]}" -s olddefconfig
bad=0
while read -r line; do
  grep -qxF "$line" "$OUT/.config" || { echo "config: $line did not survive" >&2; bad=1; }
done < <(grep -E '^CONFIG_[A-Z0-9_]+=' "$HERE/kernel.config")
while read -r sym; do
  if grep -q "^$sym=" "$OUT/.config"; then echo "config: $sym should be off" >&2; bad=1; fi
done < <(grep -E '^# CONFIG_[A-Z0-9_]+ is not set' "$HERE/kernel.config" | awk '{print $2}')
[ "$bad" = 0 ] || { echo "build-kernel.sh: kernel.config does not apply cleanly" >&2; exit 1; }

echo "== building Image (nice -n 19, -j$JOBS)"
start=$(date +%s)
nice -n 19 "${MK[@]}" -j"$JOBS" Image
echo "== kernel build took $(( $(date +%s) - start )) s"

gzip -9n < "$OUT/arch/riscv/boot/Image" > "$HERE/Image.gz.tmp"
mv "$HERE/Image.gz.tmp" "$HERE/Image.gz"
# Symbols for debugging the emulator (PC -> kernel function); the kernel loads at 0x8020_0000
# physical, these are its virtual addresses (0xffffffff80000000 + offset).
gzip -9n < "$OUT/System.map" > "$HERE/System.map.gz.tmp"
mv "$HERE/System.map.gz.tmp" "$HERE/System.map.gz"
ls -l "$OUT/arch/riscv/boot/Image" "$HERE/Image.gz" "$HERE/System.map.gz"
