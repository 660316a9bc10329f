#!/bin/bash
# Build guests/linux/disk.img.gz: a 64 MiB ext4 image (4 KiB blocks) with a README, a few text
# files and data/ (~2 MiB of deterministic pseudo-random files, with data/SHA256SUMS so the guest
# can check them: cd /mnt/data && sha256sum -c SHA256SUMS). Reproducible: same bytes every build.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
BUILD="${BUILD:-/work/build-linux}"
"$HERE/setup.sh"
mkdir -p "$BUILD"
gcc -O2 -o "$BUILD/gendata" "$HERE/gendata.c"

D="$BUILD/disk-root"
rm -rf "$D"; mkdir -p "$D/data" "$D/text"
cat > "$D/README" <<'TXT'
This is the rvm Linux guest's data disk (guests/linux/disk.img.gz), an ext4 file system
with 4 KiB blocks, made by guests/linux/build-disk.sh with mke2fs -d.

  README            this file
  hello.txt         one line
  text/             a few text files
  data/             deterministic pseudo-random files (~2 MiB) and their SHA256SUMS

In the guest:  mount /dev/vda /mnt && cat /mnt/README
               cd /mnt/data && sha256sum -c SHA256SUMS
TXT
echo "hello from the rvm disk" > "$D/hello.txt"
seq 1 1000 > "$D/text/numbers.txt"
for i in $(seq 1 200); do echo "line $i: the quick brown fox jumps over the lazy dog"; done > "$D/text/fox.txt"
printf '%s\n' "Mary had a little lamb," "its fleece was white as snow;" \
  "and everywhere that Mary went," "the lamb was sure to go." > "$D/text/lamb.txt"
# data/: 16 files, 4 KiB .. 512 KiB plus odd sizes; 2 MiB in all.
sizes=(4096 4096 8192 12288 16384 32768 65536 100000 131072 131072 262144 262144 485628 524288 100 57344)
total=0
for i in "${!sizes[@]}"; do
  f=$(printf 'file%02d.bin' "$i")
  "$BUILD/gendata" "$((1000 + i))" "${sizes[$i]}" > "$D/data/$f"
  total=$((total + sizes[i]))
done
(cd "$D/data" && sha256sum file*.bin > SHA256SUMS)
echo "data/: $total bytes"

"$HERE/mkext4.sh" "$D" "$BUILD/disk.img" 64 rvmdata 6c1b5b3a-2f0e-4d8e-9a51-7e0d2c1f0a01
gzip -9n < "$BUILD/disk.img" > "$HERE/disk.img.gz.tmp"
mv "$HERE/disk.img.gz.tmp" "$HERE/disk.img.gz"
ls -l "$BUILD/disk.img" "$HERE/disk.img.gz"
