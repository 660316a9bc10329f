/* fpbench.c: a small double-precision kernel for rvm's FP unit: dense matrix multiply
 * C = A x B (N = 32) repeated, with A and B refreshed from the previous result so every
 * iteration depends on the last. Prints
 *   fpbench: iterations=N checksum=0x... (the bits of the sum of C) instret=M
 * and exits 0 when the checksum matches the reference recorded under QEMU for the default
 * count (1 on a mismatch; "unverified" and 0 for another count). */
#include <stdint.h>
#include "htif.h"

volatile uint64_t iterations = BENCH_DEFAULT_ITERATIONS;

#define N 32
static double a[N][N], b[N][N], c[N][N];

/* reference checksums, recorded under qemu-system-riscv64 -M spike */
static const struct {
    uint64_t iterations, checksum;
} references[] = {
#include "fpbench_ref.h"
};

static uint64_t bits(double d)
{
    union {
        double d;
        uint64_t u;
    } v = {d};
    return v.u;
}

int main(void)
{
    uint64_t n = iterations;
    uint64_t i0 = read_instret();
    for (int i = 0; i < N; i++)
        for (int j = 0; j < N; j++) {
            a[i][j] = (double)((i * 7 + j * 3) % 17 - 8) / 8.0;
            b[i][j] = (double)((i * 5 + j * 11) % 13 - 6) / 16.0 + (i == j ? 1.0 : 0.0);
        }
    double sum = 0.0;
    for (uint64_t it = 0; it < n; it++) {
        for (int i = 0; i < N; i++)
            for (int j = 0; j < N; j++) {
                double s = 0.0;
                for (int k = 0; k < N; k++)
                    s += a[i][k] * b[k][j];
                c[i][j] = s;
            }
        /* keep the values bounded: a = c scaled to max |c| = 1, plus a division and sqrt */
        double m = 0.0;
        for (int i = 0; i < N; i++)
            for (int j = 0; j < N; j++) {
                double v = c[i][j] < 0 ? -c[i][j] : c[i][j];
                if (v > m)
                    m = v;
            }
        double inv = m > 0.0 ? 1.0 / m : 1.0;
        for (int i = 0; i < N; i++)
            for (int j = 0; j < N; j++)
                a[i][j] = c[i][j] * inv;
        sum += __builtin_sqrt(m);
    }
    for (int i = 0; i < N; i++)
        for (int j = 0; j < N; j++)
            sum += c[i][j];
    uint64_t i1 = read_instret();
    uint64_t ck = bits(sum);
    print_str("fpbench: iterations=");
    print_dec(n);
    print_str(" checksum=");
    print_hex(ck);
    print_str(" instret=");
    print_dec(i1 - i0);
    print_str("\n");
    for (unsigned i = 0; i < sizeof references / sizeof references[0]; i++) {
        if (references[i].iterations == n) {
            if (references[i].checksum == ck) {
                print_str("fpbench: checksum OK\n");
                return 0;
            }
            print_str("fpbench: checksum MISMATCH, expected ");
            print_hex(references[i].checksum);
            print_str("\n");
            return 1;
        }
    }
    print_str("fpbench: checksum unverified (no reference for this count)\n");
    return 0;
}
