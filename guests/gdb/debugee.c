/* debugee.c: a bare-metal guest for the gdb stub's tests (test/gdb/gdb.test.ts), built with
 * symbols and no optimization so gdb sees every variable. It calls a function (a breakpoint
 * target), stores to a global (a watchpoint target), traps with ecall from M-mode (step into
 * the handler), then maps a page through Sv39 at VA 0x40000000 and drops to S-mode, where it
 * reads that page through the mapping and ends with an ecall from S-mode. Harts other than 0
 * wait in WFI. Exit code (HTIF) 0 when everything it checked held. */
#include <stdint.h>

#define PTE_V 1
#define PTE_R 2
#define PTE_W 4
#define PTE_X 8
#define PTE_A 0x40
#define PTE_D 0x80
#define MAPPED_VA 0x40000000UL

volatile uint64_t tohost __attribute__((section(".tohost"), aligned(64)));
volatile uint64_t fromhost __attribute__((section(".tohost"), aligned(64)));

volatile long counter;
volatile long trap_count;
volatile long supervisor_sum;
static uint64_t root_table[512] __attribute__((aligned(4096)));
static uint64_t mid_table[512] __attribute__((aligned(4096)));
static uint64_t leaf_table[512] __attribute__((aligned(4096)));
char shared_page[4096] __attribute__((aligned(4096))) = "hello through sv39";

void enter_supervisor(void (*fn)(void));

void htif_exit(long code) {
  tohost = ((uint64_t)code << 1) | 1;
  for (;;) __asm__ volatile("wfi");
}

long add(long a, long b) {
  long sum = a + b;
  return sum;
}

/* Called by trap_entry (crt0.S) with mcause; returns how far to advance mepc. */
long handle_trap(long cause) {
  if (cause == 11) { /* ecall from M-mode */
    trap_count++;
    return 4;
  }
  if (cause == 9) /* ecall from S-mode: the end */
    htif_exit(supervisor_sum == 'h' + 'e' && counter == 42 && trap_count == 1 ? 0 : 3);
  htif_exit(100 + cause);
  return 0;
}

void in_supervisor(void) {
  volatile const char *p = (const char *)MAPPED_VA;
  supervisor_sum = p[0] + p[1];
  __asm__ volatile("ecall");
}

int main(void) {
  long r = add(40, 2);
  counter = r;
  __asm__ volatile("ecall");
  /* Sv39: VA 0x40000000 -> shared_page (4 KiB), VA 0x80000000.. -> itself (1 GiB, RWX). */
  root_table[1] = ((uint64_t)mid_table >> 12) << 10 | PTE_V;
  mid_table[0] = ((uint64_t)leaf_table >> 12) << 10 | PTE_V;
  leaf_table[0] = ((uint64_t)shared_page >> 12) << 10 | PTE_V | PTE_R | PTE_W | PTE_A | PTE_D;
  root_table[2] = (0x80000000UL >> 12) << 10 | PTE_V | PTE_R | PTE_W | PTE_X | PTE_A | PTE_D;
  uint64_t satp = (8UL << 60) | ((uint64_t)root_table >> 12);
  __asm__ volatile("csrw satp, %0; sfence.vma" : : "r"(satp));
  enter_supervisor(in_supervisor);
  return 1;
}
