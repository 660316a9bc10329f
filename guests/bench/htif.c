/* htif.c: the HTIF mailbox (tohost/fromhost, found by the loader in the ELF symbol table) and
 * output through the HTIF syscall proxy: tohost = address of a 64-byte aligned magic_mem
 * {SYS_write = 64, fd, buf, len}; the host performs the write and sets fromhost = 1.
 * QEMU 7.2's spike machine does not implement the proxy (fromhost stays 0), so after a bounded
 * wait the guest falls back to the HTIF console device (device 1, command 1: putchar). */
#include "htif.h"

volatile uint64_t tohost __attribute__((section(".tohost"), aligned(64)));
volatile uint64_t fromhost __attribute__((section(".tohost"), aligned(64)));

static volatile uint64_t magic_mem[8] __attribute__((aligned(64)));
static int use_console; /* 1 once the syscall proxy was found missing */

#define SYS_write 64
#define PROXY_WAIT 100000

void htif_exit(int code)
{
    __asm__ volatile("fence" ::: "memory");
    tohost = ((uint64_t)code << 1) | 1;
    for (;;)
        ;
}

static int htif_request(uint64_t req, unsigned long wait)
{
    __asm__ volatile("fence" ::: "memory");
    tohost = req;
    for (unsigned long i = 0; wait == 0 || i < wait; i++) {
        if (fromhost != 0) {
            fromhost = 0;
            return 1;
        }
    }
    return 0;
}

static void console_putc(char c)
{
    htif_request((1ULL << 56) | (1ULL << 48) | (uint8_t)c, 0);
}

void htif_write(const char *buf, unsigned long len)
{
    if (!use_console) {
        magic_mem[0] = SYS_write;
        magic_mem[1] = 1;
        magic_mem[2] = (uint64_t)(uintptr_t)buf;
        magic_mem[3] = len;
        for (int i = 4; i < 8; i++)
            magic_mem[i] = 0;
        if (htif_request((uint64_t)(uintptr_t)magic_mem, PROXY_WAIT))
            return;
        use_console = 1;
        tohost = 0;
    }
    for (unsigned long i = 0; i < len; i++)
        console_putc(buf[i]);
}

void print_str(const char *s)
{
    unsigned long n = 0;
    while (s[n])
        n++;
    htif_write(s, n);
}

void print_dec(uint64_t v)
{
    char b[24];
    int i = sizeof b;
    do {
        b[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    htif_write(b + i, sizeof b - i);
}

void print_hex(uint64_t v)
{
    char b[18];
    int i = sizeof b;
    do {
        b[--i] = "0123456789abcdef"[v & 15];
        v >>= 4;
    } while (v);
    b[--i] = 'x';
    b[--i] = '0';
    htif_write(b + i, sizeof b - i);
}
