#!/bin/bash
# Install the Debian packages the Linux guest build needs, and make `apt-get source` work
# by adding a deb-src twin of the existing (deb822) Debian entry. Idempotent.
set -euo pipefail

if [ "$(id -u)" != 0 ]; then echo "setup.sh: run as root (apt-get install)" >&2; exit 1; fi

SRCLIST=/etc/apt/sources.list.d/rvm-deb-src.sources
added=0
if ! grep -rqsE '^(Types:.*deb-src|deb-src )' /etc/apt/sources.list /etc/apt/sources.list.d/ 2>/dev/null; then
  # Twin of each enabled Debian deb822 entry with Types: deb-src.
  : > "$SRCLIST.tmp"
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -e "$f" ] || continue
    [ "$f" = "$SRCLIST" ] && continue
    grep -q 'debian' "$f" || continue
    sed -e 's/^Types:.*/Types: deb-src/' "$f" >> "$SRCLIST.tmp"
    echo >> "$SRCLIST.tmp"
  done
  if [ -e /etc/apt/sources.list ]; then
    grep -E '^deb ' /etc/apt/sources.list | sed 's/^deb /deb-src /' > /etc/apt/sources.list.d/rvm-deb-src.list || true
  fi
  if [ -s "$SRCLIST.tmp" ]; then mv "$SRCLIST.tmp" "$SRCLIST"; else rm -f "$SRCLIST.tmp"; fi
  added=1
fi

PKGS=(linux-source-6.1 gcc-riscv64-linux-gnu libc6-dev-riscv64-cross opensbi u-boot-qemu
      e2fsprogs cpio device-tree-compiler qemu-system-misc dpkg-dev
      build-essential bc bison flex libelf-dev libssl-dev xz-utils rsync kmod gzip file python3)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ "$added" = 1 ] || [ "${#missing[@]}" -gt 0 ] || [ -n "${RVM_APT_UPDATE:-}" ]; then
  apt-get update
fi
if [ "${#missing[@]}" -gt 0 ]; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
fi
