/* gendata SEED BYTES: write BYTES deterministic pseudo-random bytes (xorshift64*, seeded by
 * SEED) to stdout. Host tool for build-disk.sh and make-bench-disk.sh. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
    if (argc != 3) { fprintf(stderr, "usage: gendata SEED BYTES\n"); return 2; }
    uint64_t s = strtoull(argv[1], NULL, 0) * 0x9e3779b97f4a7c15ULL + 0x2545f4914f6cdd1dULL;
    unsigned long long n = strtoull(argv[2], NULL, 0);
    static unsigned char buf[65536];
    while (n) {
        size_t k = n < sizeof buf ? (size_t)n : sizeof buf;
        for (size_t i = 0; i < k; i += 8) {
            s ^= s >> 12; s ^= s << 25; s ^= s >> 27;
            uint64_t v = s * 0x2545f4914f6cdd1dULL;
            for (int j = 0; j < 8 && i + j < k; j++) buf[i + j] = (unsigned char)(v >> (8 * j));
        }
        if (fwrite(buf, 1, k, stdout) != k) { perror("gendata"); return 1; }
        n -= k;
    }
    return 0;
}
