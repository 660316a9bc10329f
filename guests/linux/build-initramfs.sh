#!/bin/bash
# Build guests/linux/initramfs.cpio.gz: static busybox (build-busybox.sh), rootfs/ (init, etc/),
# /bin/memfill (memfill.c, static), device nodes. The archive is written by the kernel's own
# gen_init_cpio (compiled for the host from linux-source-6.1) from a sorted file list with a
# fixed timestamp and uid/gid 0, so it needs no root and is reproducible.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
BUILD="${BUILD:-/work/build-linux}"
"$HERE/setup.sh"
TIMESTAMP=1735689600   # 2025-01-01T00:00:00Z

BB="$BUILD/busybox/busybox"
[ -x "$BB" ] || "$HERE/build-busybox.sh"
BBSRC=$(ls -d "$BUILD"/bbsrc/busybox-1.35*/ | head -1); BBSRC="${BBSRC%/}"

KSRC="$BUILD/linux-source-6.1"
if [ ! -f "$KSRC/usr/gen_init_cpio.c" ]; then
  mkdir -p "$BUILD"
  tar -C "$BUILD" -xf /usr/src/linux-source-6.1.tar.xz linux-source-6.1/usr/gen_init_cpio.c
fi
GEN="$BUILD/gen_init_cpio"
gcc -O2 -o "$GEN" "$KSRC/usr/gen_init_cpio.c"

echo "== memfill"
riscv64-linux-gnu-gcc -static -O2 -Wall -o "$BUILD/memfill" "$HERE/memfill.c"
riscv64-linux-gnu-strip "$BUILD/memfill"

STAGE="$BUILD/initramfs-root"
rm -rf "$STAGE"; mkdir -p "$STAGE"
echo "== busybox install (symlinks)"
make -s -C "$BBSRC" O="$BUILD/busybox" ARCH=riscv CROSS_COMPILE=riscv64-linux-gnu- \
  CONFIG_PREFIX="$STAGE" install >/dev/null
for d in dev proc sys tmp mnt root run var var/log etc usr/bin usr/sbin; do mkdir -p "$STAGE/$d"; done
cp -a "$HERE/rootfs/." "$STAGE/"
install -m 0755 "$BUILD/memfill" "$STAGE/bin/memfill"
chmod 0755 "$STAGE/init"
chmod 1777 "$STAGE/tmp"
chmod 0700 "$STAGE/root"
# gen_init_cpio -t only fixes the times of dirs, nodes and links; files keep their mtime.
find "$STAGE" -exec touch -h -d "@$TIMESTAMP" {} +

LIST="$BUILD/initramfs.list"
{
  echo "nod /dev/console 0600 0 0 c 5 1"
  echo "nod /dev/null 0666 0 0 c 1 3"
  echo "nod /dev/ttyS0 0600 0 0 c 4 64"
  cd "$STAGE"
  find . -mindepth 1 | LC_ALL=C sort | while read -r p; do
    n="${p#.}"
    mode=$(stat -c '%a' "$p")
    if [ -L "$p" ]; then echo "slink $n $(readlink "$p") 0777 0 0"
    elif [ -d "$p" ]; then
      [ "$n" = /dev ] && continue
      echo "dir $n $mode 0 0"
    elif [ -f "$p" ]; then echo "file $n $STAGE$n $mode 0 0"
    fi
  done
} > "$LIST.tmp"
# /dev must come before its nodes.
{ echo "dir /dev 0755 0 0"; cat "$LIST.tmp"; } > "$LIST"; rm -f "$LIST.tmp"

"$GEN" -t "$TIMESTAMP" "$LIST" > "$BUILD/initramfs.cpio"
gzip -9n < "$BUILD/initramfs.cpio" > "$HERE/initramfs.cpio.gz.tmp"
mv "$HERE/initramfs.cpio.gz.tmp" "$HERE/initramfs.cpio.gz"
ls -l "$BUILD/initramfs.cpio" "$HERE/initramfs.cpio.gz"
