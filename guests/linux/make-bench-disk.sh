#!/bin/bash
# make-bench-disk.sh OUT.img [SIZE_MIB]: the benchmark data disk (not committed).
# A deterministic ext4 image (4 KiB blocks, default 64 MiB) with ~40 MiB of pseudo-random files:
#   bench/f00.bin .. bench/f39.bin (1 MiB each), bench/SHA256SUMS, README.
# Same bytes on every run. Read them all in the guest with:  cat /mnt/bench/*.bin > /dev/null
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
[ $# -ge 1 ] || { echo "usage: $0 OUT.img [SIZE_MIB]" >&2; exit 2; }
OUT="$1"; MIB="${2:-64}"
command -v mke2fs >/dev/null && command -v gcc >/dev/null || "$HERE/setup.sh"
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
gcc -O2 -o "$T/gendata" "$HERE/gendata.c"
mkdir -p "$T/root/bench"
for i in $(seq 0 39); do
  "$T/gendata" "$((5000 + i))" 1048576 > "$T/root/bench/$(printf 'f%02d.bin' "$i")"
done
(cd "$T/root/bench" && sha256sum f*.bin > SHA256SUMS)
printf '%s\n' "rvm benchmark disk: bench/ holds 40 x 1 MiB deterministic pseudo-random files." \
  "Made by guests/linux/make-bench-disk.sh." > "$T/root/README"
"$HERE/mkext4.sh" "$T/root" "$OUT.tmp" "$MIB" rvmbench 6c1b5b3a-2f0e-4d8e-9a51-7e0d2c1f0b02
mv "$OUT.tmp" "$OUT"
ls -l "$OUT"
