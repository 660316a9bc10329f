#!/bin/sh
# Builds guests/minikernel/kernel.elf with Debian's gcc-riscv64-unknown-elf.
set -eu
cd "$(dirname "$0")"
riscv64-unknown-elf-gcc -march=rv64imac_zicsr -mabi=lp64 -mcmodel=medany -ffreestanding -fno-builtin -nostdlib \
  -fno-common -fno-pie -no-pie -O2 -Wall -Wextra -Werror -T kernel.ld -Wl,--build-id=none -o kernel.elf entry.S kernel.c
riscv64-unknown-elf-size kernel.elf
