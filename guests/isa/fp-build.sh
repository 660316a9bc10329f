#!/usr/bin/env bash
# Build the F/D test programs guests/isa/fp-*.S into fp-*.elf (committed, so the test suite needs no
# cross compiler). They need F and D (rv64imafdc). To regenerate the .S tables from QEMU:
# `node guests/isa/fp-gen.mjs` (then run this script).
set -euo pipefail
cd "$(dirname "$0")"
CC=${CC:-riscv64-unknown-elf-gcc}
CFLAGS=(-march=rv64imafdc_zicsr_zifencei -mabi=lp64d -nostdlib -nostartfiles -static -T link.ld -I.)
for src in fp-*.S; do
  name=${src%.S}
  "$CC" "${CFLAGS[@]}" -o "$name.elf" "$src"
  echo "built $name.elf"
done
