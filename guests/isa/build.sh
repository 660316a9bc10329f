#!/usr/bin/env bash
# Build every guests/isa/*.S into guests/isa/NAME.elf (the ELFs are committed, so the test
# suite needs no cross compiler). Needs Debian's gcc-riscv64-unknown-elf.
set -euo pipefail
cd "$(dirname "$0")"
CC=${CC:-riscv64-unknown-elf-gcc}
CFLAGS=(-march=rv64imac_zicsr_zifencei -mabi=lp64 -nostdlib -nostartfiles -static -T link.ld -I. -Wl,--no-warn-rwx-segments)
for src in *.S; do
  name=${src%.S}
  "$CC" "${CFLAGS[@]}" -o "$name.elf" "$src"
  echo "built $name.elf"
done
