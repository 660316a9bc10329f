/* Reference checksums recorded under qemu-system-riscv64 -M spike by record-fp-refs.sh. */
    {1, 0x3fe52e677fb18c90ULL},
    {10, 0x402f45b8095d1204ULL},
    {200, 0x4074cf08f8161807ULL},
