#!/usr/bin/env bash
# Build the integer/privileged ISA test programs (guests/isa/NAME.S -> NAME.elf; the ELFs are
# committed, so the test suite needs no cross compiler). Needs Debian's gcc-riscv64-unknown-elf.
# The F/D programs (fp-*.S) have their own fp-build.sh. Assembled and linked in two steps so
# the ELFs are reproducible (no temporary object name in the symbol table).
set -euo pipefail
cd "$(dirname "$0")"
CC=${CC:-riscv64-unknown-elf-gcc}
ARCH=(-march=rv64imac_zicsr_zifencei -mabi=lp64)
PROGRAMS=(rv64i rv64m rv64a rvc csr irq irq-priority vm access smp-harts smp-plic)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for name in "${@:-${PROGRAMS[@]}}"; do
  "$CC" "${ARCH[@]}" -I. -c -o "$tmp/$name.o" "$name.S"
  "$CC" "${ARCH[@]}" -nostdlib -nostartfiles -static -T link.ld -Wl,--no-warn-rwx-segments \
    -o "$name.elf" "$tmp/$name.o"
  echo "built $name.elf"
done
