/* htif.h: HTIF exit and console output for the bare-metal benchmark guests. */
#ifndef HTIF_H
#define HTIF_H
#include <stdint.h>

void htif_exit(int code) __attribute__((noreturn));
void htif_write(const char *buf, unsigned long len);
void print_str(const char *s);
void print_dec(uint64_t v);
void print_hex(uint64_t v);

static inline uint64_t read_instret(void)
{
    uint64_t v;
    __asm__ volatile("rdinstret %0" : "=r"(v));
    return v;
}
static inline uint64_t read_cycle(void)
{
    uint64_t v;
    __asm__ volatile("rdcycle %0" : "=r"(v));
    return v;
}
#endif
