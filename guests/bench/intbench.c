/* intbench.c: a CPU-bound integer workload for rvm, in the spirit of CoreMark (but its own
 * code): per iteration, linked-list manipulation (build, reverse, filter, insertion sort),
 * a 12x12 integer matrix multiply, a state machine classifying the tokens of a byte string, and
 * CRC16 over the results. The checksum is a function of the iteration count; the program checks
 * it against references computed under QEMU and on the build host, prints
 *   bench: iterations=N checksum=0x... instret=M
 * and exits with code 0 when it matches (1 when it does not, 0 with "unverified" for a count
 * that has no reference). Patch `iterations` in the ELF to change the work. */
#include <stdint.h>
#include "htif.h"

volatile uint64_t iterations = BENCH_DEFAULT_ITERATIONS;

/* ---------------------------------------------------------------- helpers */

static uint32_t lcg_state;
static uint32_t rnd(void)
{
    lcg_state = lcg_state * 1664525u + 1013904223u;
    return lcg_state >> 8;
}

static uint16_t crc16_byte(uint16_t crc, uint8_t b)
{
    crc ^= (uint16_t)b << 8;
    for (int i = 0; i < 8; i++)
        crc = (crc & 0x8000) ? (uint16_t)((crc << 1) ^ 0x1021) : (uint16_t)(crc << 1);
    return crc;
}
static uint16_t crc16_u32(uint16_t crc, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        crc = crc16_byte(crc, (uint8_t)(v >> (8 * i)));
    return crc;
}

/* ---------------------------------------------------------------- linked list */

#define NODES 48
struct node {
    struct node *next;
    int32_t value;
    uint32_t tag;
};
static struct node pool[NODES];

static uint16_t list_work(uint16_t crc)
{
    struct node *head = 0;
    for (int i = 0; i < NODES; i++) {
        pool[i].value = (int32_t)(rnd() & 0xffff) - 0x8000;
        pool[i].tag = (uint32_t)i;
        pool[i].next = head;
        head = &pool[i];
    }
    /* reverse */
    struct node *prev = 0;
    while (head) {
        struct node *n = head->next;
        head->next = prev;
        prev = head;
        head = n;
    }
    head = prev;
    /* drop nodes whose value is divisible by 3 */
    struct node **pp = &head;
    while (*pp) {
        if ((*pp)->value % 3 == 0)
            *pp = (*pp)->next;
        else
            pp = &(*pp)->next;
    }
    /* insertion sort by value, ties by tag */
    struct node *sorted = 0;
    while (head) {
        struct node *n = head;
        head = head->next;
        struct node **q = &sorted;
        while (*q && ((*q)->value < n->value || ((*q)->value == n->value && (*q)->tag < n->tag)))
            q = &(*q)->next;
        n->next = *q;
        *q = n;
    }
    /* find the median-ish element and fold the list into the CRC */
    uint32_t count = 0;
    for (struct node *n = sorted; n; n = n->next) {
        crc = crc16_u32(crc, (uint32_t)n->value ^ (n->tag << 20));
        count++;
    }
    return crc16_u32(crc, count);
}

/* ---------------------------------------------------------------- matrix multiply */

#define MN 12
static int32_t ma[MN][MN], mb[MN][MN], mc[MN][MN];

static uint16_t matrix_work(uint16_t crc)
{
    for (int i = 0; i < MN; i++)
        for (int j = 0; j < MN; j++) {
            ma[i][j] = (int32_t)(rnd() % 2001) - 1000;
            mb[i][j] = (int32_t)(rnd() % 201) - 100;
        }
    for (int i = 0; i < MN; i++)
        for (int j = 0; j < MN; j++) {
            int32_t s = 0;
            for (int k = 0; k < MN; k++)
                s += ma[i][k] * mb[k][j];
            mc[i][j] = s;
        }
    uint32_t acc = 0;
    for (int i = 0; i < MN; i++) {
        int32_t rowmax = mc[i][0];
        for (int j = 0; j < MN; j++) {
            acc = (acc << 3 | acc >> 29) ^ (uint32_t)mc[i][j];
            if (mc[i][j] > rowmax)
                rowmax = mc[i][j];
        }
        acc += (uint32_t)rowmax;
    }
    return crc16_u32(crc, acc);
}

/* ---------------------------------------------------------------- state machine */

enum state { S_START, S_INT, S_FRAC, S_EXP0, S_EXP, S_WORD, S_BAD, S_COUNT };
#define TEXT 160
static uint8_t text[TEXT];
static const char alphabet[] = "0123456789.e-+ ,abcxyz9876";

static uint16_t fsm_work(uint16_t crc)
{
    for (int i = 0; i < TEXT; i++)
        text[i] = (uint8_t)alphabet[rnd() % (sizeof alphabet - 1)];
    uint32_t counts[S_COUNT] = {0};
    uint32_t transitions = 0;
    enum state st = S_START;
    for (int i = 0; i <= TEXT; i++) {
        uint8_t c = i < TEXT ? text[i] : ' ';
        enum state next;
        int sep = c == ' ' || c == ',';
        int digit = c >= '0' && c <= '9';
        if (sep) {
            if (st != S_START)
                counts[st]++;
            next = S_START;
        } else {
            switch (st) {
            case S_START:
                next = digit ? S_INT : (c == '-' || c == '+') ? S_INT : (c >= 'a' && c <= 'z') ? S_WORD : S_BAD;
                break;
            case S_INT:
                next = digit ? S_INT : c == '.' ? S_FRAC : c == 'e' ? S_EXP0 : S_BAD;
                break;
            case S_FRAC:
                next = digit ? S_FRAC : c == 'e' ? S_EXP0 : S_BAD;
                break;
            case S_EXP0:
                next = (digit || c == '-' || c == '+') ? S_EXP : S_BAD;
                break;
            case S_EXP:
                next = digit ? S_EXP : S_BAD;
                break;
            case S_WORD:
                next = (c >= 'a' && c <= 'z') || digit ? S_WORD : S_BAD;
                break;
            default:
                next = S_BAD;
                break;
            }
        }
        if (next != st)
            transitions++;
        st = next;
        crc = crc16_byte(crc, (uint8_t)(c ^ (uint8_t)st));
    }
    for (int s = 0; s < S_COUNT; s++)
        crc = crc16_u32(crc, counts[s]);
    return crc16_u32(crc, transitions);
}

/* ---------------------------------------------------------------- driver */

static uint64_t run(uint64_t n)
{
    uint64_t sum = 0;
    for (uint64_t it = 0; it < n; it++) {
        lcg_state = (uint32_t)(it * 2654435761u) ^ 0x5eed1234u;
        uint16_t crc = 0xffff;
        crc = list_work(crc);
        crc = matrix_work(crc);
        crc = fsm_work(crc);
        sum = (sum << 7 | sum >> 57) ^ crc ^ (it << 16);
    }
    return sum;
}

#ifndef HOST_CHECK
struct reference {
    uint64_t iterations, checksum;
};
#include "intbench_ref.h"

int main(void)
{
    uint64_t n = iterations;
    uint64_t i0 = read_instret();
    uint64_t sum = run(n);
    uint64_t i1 = read_instret();
    print_str("bench: iterations=");
    print_dec(n);
    print_str(" checksum=");
    print_hex(sum);
    print_str(" instret=");
    print_dec(i1 - i0);
    print_str("\n");
    for (unsigned i = 0; i < sizeof references / sizeof references[0]; i++) {
        if (references[i].iterations == n) {
            if (references[i].checksum == sum) {
                print_str("bench: checksum OK\n");
                return 0;
            }
            print_str("bench: checksum MISMATCH, expected ");
            print_hex(references[i].checksum);
            print_str("\n");
            return 1;
        }
    }
    print_str("bench: checksum unverified (no reference for this count)\n");
    return 0;
}
#else
#include <stdio.h>
#include <stdlib.h>
int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        uint64_t n = strtoull(argv[i], 0, 0);
        printf("    {%llu, 0x%llxULL},\n", (unsigned long long)n, (unsigned long long)run(n));
    }
    return 0;
}
#endif
