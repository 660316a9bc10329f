#!/bin/bash
# Build guests/linux.img.gz: one bootable disk image for `rvm run guests/linux.img` and for
# QEMU's  -bios fw_dynamic.bin -kernel u-boot.bin -drive file=linux.img,format=raw,if=virtio
#
# Layout: a whole-disk ext4 file system (4 KiB blocks, 64 MiB) holding
#   /boot/extlinux/extlinux.conf, /boot/Image (uncompressed), /boot/initramfs.cpio.gz,
#   README, hello.txt
# plus a "hybrid" MBR in sector 0 (ext4 leaves bytes 0..1023 unused): one bootable Linux (0x83)
# partition that starts at LBA 0 and covers the whole disk. U-Boot's distro boot only scans
# partitions (part 1 on a disk without a table is an error), so it finds the file system as
# virtio 0:1; Linux sees the same ext4 at /dev/vda (and an identical /dev/vda1), so
# `mount /dev/vda /mnt` works in the guest.
#
# Also copies the firmware from Debian's packages: fw_dynamic.bin, fw_jump.bin (opensbi) and
# u-boot.bin (u-boot-qemu, qemu-riscv64_smode), with their copyright files.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
BUILD="${BUILD:-/work/build-linux}"
"$HERE/setup.sh"
mkdir -p "$BUILD"

echo "== firmware from Debian packages"
install -m 0644 /usr/lib/riscv64-linux-gnu/opensbi/generic/fw_dynamic.bin "$HERE/fw_dynamic.bin"
install -m 0644 /usr/lib/riscv64-linux-gnu/opensbi/generic/fw_jump.bin "$HERE/fw_jump.bin"
install -m 0644 /usr/share/doc/opensbi/copyright "$HERE/OPENSBI-COPYING"
install -m 0644 /usr/lib/u-boot/qemu-riscv64_smode/u-boot.bin "$HERE/u-boot.bin"
install -m 0644 /usr/share/doc/u-boot-qemu/copyright "$HERE/U-BOOT-COPYING"
dpkg-query -W -f='${Package} ${Version}\n' opensbi u-boot-qemu linux-source-6.1 busybox gcc-riscv64-linux-gnu 2>/dev/null > "$HERE/VERSIONS" || true
# busybox is built from the source package; record its version from the unpacked tree.
BBSRC=$(ls -d "$BUILD"/bbsrc/busybox-1.35*/ 2>/dev/null | head -1 || true)
if [ -n "$BBSRC" ] && [ -f "$BBSRC/debian/changelog" ]; then
  sed -i '/^busybox /d' "$HERE/VERSIONS"
  echo "busybox(source) $(dpkg-parsechangelog -l "$BBSRC/debian/changelog" -S Version)" >> "$HERE/VERSIONS"
fi

[ -f "$HERE/Image.gz" ] || "$HERE/build-kernel.sh"
[ -f "$HERE/initramfs.cpio.gz" ] || "$HERE/build-initramfs.sh"

D="$BUILD/bootimg-root"
rm -rf "$D"; mkdir -p "$D/boot/extlinux"
gunzip -c "$HERE/Image.gz" > "$D/boot/Image"
cp "$HERE/initramfs.cpio.gz" "$D/boot/initramfs.cpio.gz"
# U-Boot 2023.01 (boot/pxe_utils.c) ignores PROMPT, and any top-level MENU line turns the prompt
# on ("Enter choice:" waits forever with TIMEOUT 0). So: no MENU lines; then the DEFAULT label
# boots at once. TIMEOUT is in 1/10 s and only matters with a prompt.
cat > "$D/boot/extlinux/extlinux.conf" <<'TXT'
# rvm Linux guest (guests/linux/build-bootimg.sh). No MENU lines: they make U-Boot prompt.
DEFAULT rvm
TIMEOUT 0

LABEL rvm
    LINUX /boot/Image
    INITRD /boot/initramfs.cpio.gz
    APPEND console=ttyS0
TXT
cat > "$D/README" <<'TXT'
This is rvm's bootable Linux guest disk (guests/linux.img), an ext4 file system (4 KiB blocks)
made by guests/linux/build-bootimg.sh. /boot holds the kernel, the initramfs and
extlinux/extlinux.conf, which U-Boot (or rvm's own extlinux reader) boots.
In the guest it is /dev/vda:  mount /dev/vda /mnt && ls /mnt
TXT
echo "hello from the rvm boot disk" > "$D/hello.txt"

IMG="$BUILD/linux.img"
MIB=64
"$HERE/mkext4.sh" "$D" "$IMG" "$MIB" rvmboot 6c1b5b3a-2f0e-4d8e-9a51-7e0d2c1f0c03

# Hybrid MBR: disk signature, one entry (bootable, type 0x83, LBA 0, all sectors), 0x55AA.
sectors=$((MIB * 1024 * 1024 / 512))
le32() { printf '\\x%02x\\x%02x\\x%02x\\x%02x' $(($1 & 255)) $((($1 >> 8) & 255)) $((($1 >> 16) & 255)) $((($1 >> 24) & 255)); }
{
  printf "$(le32 $((0x52564d31)))\\x00\\x00"                    # 440: disk signature "1MVR", 2 bytes 0
  printf '\x80\x00\x01\x00\x83\xfe\xff\xff'                  # 446: boot flag, CHS start, type, CHS end
  printf "$(le32 0)$(le32 $sectors)"                          # 454: start LBA, sector count
  head -c 48 /dev/zero                                         # entries 2..4 empty
  printf '\x55\xaa'
} > "$BUILD/mbr.bin"
[ "$(stat -c %s "$BUILD/mbr.bin")" = 72 ] || { echo "build-bootimg.sh: bad MBR size" >&2; exit 1; }
dd if="$BUILD/mbr.bin" of="$IMG" bs=1 seek=440 conv=notrunc status=none
e2fsck -fn "$IMG" >/dev/null 2>&1 || { echo "build-bootimg.sh: ext4 damaged by the MBR" >&2; exit 1; }

gzip -9n < "$IMG" > "$HERE/../linux.img.gz.tmp"
mv "$HERE/../linux.img.gz.tmp" "$HERE/../linux.img.gz"
ls -l "$IMG" "$HERE/../linux.img.gz"
