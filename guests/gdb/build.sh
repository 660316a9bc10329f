#!/usr/bin/env bash
# Build the gdb test guest (Debian's gcc-riscv64-unknown-elf): debugee.elf, with debug
# information and no optimization. The built ELF is committed; the tests need no cross-compiler.
set -euo pipefail
cd "$(dirname "$0")"
CC=${CC:-riscv64-unknown-elf-gcc}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
FLAGS=(-march=rv64imac_zicsr -mabi=lp64 -O0 -g -mcmodel=medany -nostdlib -nostartfiles -static
       -ffreestanding -fno-builtin -T link.ld -Wall -Wextra -Wl,--no-warn-rwx-segments)
"$CC" "${FLAGS[@]}" -c -o "$tmp/crt0.o" crt0.S
"$CC" "${FLAGS[@]}" -c -o "$tmp/debugee.o" debugee.c
"$CC" "${FLAGS[@]}" -o debugee.elf "$tmp/crt0.o" "$tmp/debugee.o"
echo "built debugee.elf"
