/*
 * memfill: anonymous-memory workload for rvm's save/restore benchmarks.
 *
 *   memfill N      allocate N MiB (anonymous mmap), fill it with a deterministic pseudo-random
 *                  sequence (xorshift64, constant seed), which touches every page, print
 *                  "memfill: ready N MiB", then read commands from stdin, one per line:
 *     sum          read every word, print "memfill: sum=0x%016llx" (FNV-1a-style 64-bit hash
 *                  over the 64-bit words, in address order). Depends only on N.
 *     verify       regenerate the sequence and compare; print "memfill: verify ok" or
 *                  "memfill: verify FAILED n words differ (first at byte offset 0x...)".
 *     touch        read one word of every page (no output but "memfill: touched P pages").
 *     quit         exit 0 (end of input does the same).
 *
 * Built statically with riscv64-linux-gnu-gcc by guests/linux/build-initramfs.sh.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define SEED 0x9e3779b97f4a7c15ULL

static inline uint64_t xorshift64(uint64_t *s) {
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

static uint64_t hash_words(const volatile uint64_t *p, size_t n) {
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: memfill MiB   (then commands on stdin: sum, verify, touch, quit)\n");
        return 2;
    }
    char *end;
    unsigned long mib = strtoul(argv[1], &end, 10);
    if (*end || mib == 0) {
        fprintf(stderr, "memfill: bad size '%s'\n", argv[1]);
        return 2;
    }
    size_t bytes = (size_t)mib << 20, words = bytes / 8;
    uint64_t *mem = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED) {
        perror("memfill: mmap");
        return 1;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);

    uint64_t s = SEED;
    for (size_t i = 0; i < words; i++) mem[i] = xorshift64(&s);
    printf("memfill: ready %lu MiB\n", mib);

    char line[128];
    while (fgets(line, sizeof line, stdin)) {
        line[strcspn(line, "\r\n")] = 0;
        if (!strcmp(line, "sum")) {
            printf("memfill: sum=0x%016llx\n", (unsigned long long)hash_words(mem, words));
        } else if (!strcmp(line, "verify")) {
            uint64_t t = SEED;
            size_t bad = 0, first = 0;
            for (size_t i = 0; i < words; i++) {
                if (mem[i] != xorshift64(&t)) {
                    if (!bad) first = i * 8;
                    bad++;
                }
            }
            if (bad)
                printf("memfill: verify FAILED %zu words differ (first at byte offset 0x%zx)\n", bad, first);
            else
                printf("memfill: verify ok\n");
        } else if (!strcmp(line, "touch")) {
            volatile uint64_t *v = mem;
            uint64_t acc = 0;
            size_t pages = bytes / 4096;
            for (size_t i = 0; i < pages; i++) acc += v[i * 512];
            (void)acc;
            printf("memfill: touched %zu pages\n", pages);
        } else if (!strcmp(line, "quit")) {
            break;
        } else if (line[0]) {
            printf("memfill: unknown command '%s' (sum, verify, touch, quit)\n", line);
        }
    }
    return 0;
}
