#!/usr/bin/env bash
# Build the F/D test programs guests/isa/fp-*.S into fp-*.elf (committed, so the test suite needs no
# cross compiler). They need F and D (rv64imafdc). Assembled and linked in two steps so that the
# ELFs are byte-for-byte reproducible (no temporary object name in the symbol table).
# To regenerate the tables of the generated programs from QEMU: `node guests/isa/fp-gen.mjs`.
set -euo pipefail
cd "$(dirname "$0")"
CC=${CC:-riscv64-unknown-elf-gcc}
ARCH=(-march=rv64imafdc_zicsr_zifencei -mabi=lp64d)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for src in fp-*.S; do
  name=${src%.S}
  "$CC" "${ARCH[@]}" -I. -c -o "$tmp/$name.o" "$src"
  "$CC" "${ARCH[@]}" -nostdlib -nostartfiles -static -T link.ld -Wl,--no-warn-rwx-segments -o "$name.elf" "$tmp/$name.o"
  echo "built $name.elf"
done
