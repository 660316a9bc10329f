// minikernel: a small multi-hart kernel for the virt board, in the manner of xv6-riscv, that
// checks the parts of the machine xv6 and course kernels rely on. Started with -bios none,
// every hart enters _entry in M-mode. Hart 0 then:
//   - counts the harts in the device tree (/cpus/cpu@N),
//   - reads the goldfish RTC at 0x101000,
//   - finds a virtio block device in virtio-mmio slot 0 (0x10001000, as xv6 does) and drives
//     it through whichever transport it offers: legacy (version 1: GuestPageSize, QueuePFN) or
//     modern (version 2: queue addresses, QueueReady, FEATURES_OK with VIRTIO_F_VERSION_1),
//   - reads block 0 and prints the text at its start, writes block 2 and reads it back,
//     waiting for each request's interrupt through the PLIC (source 1 + slot, M-mode context),
//   - lets the other harts go; each says it is up; then hart 0 prints how many did and powers
//     the machine off through the SiFive test device (exit code 0; 1 + step on a failure).

#include <stdint.h>

#define UART0 0x10000000UL
#define SYSCON 0x100000UL
#define RTC 0x101000UL
#define CLINT_MTIME 0x200bff8UL
#define PLIC 0x0c000000UL
#define VIRTIO0 0x10001000UL
#define VIRTIO_IRQ0 1

#define R32(a) (*(volatile uint32_t *)(uintptr_t)(a))
#define R8(a) (*(volatile uint8_t *)(uintptr_t)(a))

// virtio-mmio registers (virtio 1.1, 4.2.2 and 4.2.4).
enum {
  MAGIC = 0x000, VERSION = 0x004, DEVICE_ID = 0x008, VENDOR_ID = 0x00c,
  DEVICE_FEATURES = 0x010, DEVICE_FEATURES_SEL = 0x014, DRIVER_FEATURES = 0x020, DRIVER_FEATURES_SEL = 0x024,
  GUEST_PAGE_SIZE = 0x028, QUEUE_SEL = 0x030, QUEUE_NUM_MAX = 0x034, QUEUE_NUM = 0x038, QUEUE_ALIGN = 0x03c,
  QUEUE_PFN = 0x040, QUEUE_READY = 0x044, QUEUE_NOTIFY = 0x050, INTERRUPT_STATUS = 0x060, INTERRUPT_ACK = 0x064,
  STATUS = 0x070, QUEUE_DESC_LOW = 0x080, QUEUE_DESC_HIGH = 0x084, QUEUE_DRIVER_LOW = 0x090,
  QUEUE_DRIVER_HIGH = 0x094, QUEUE_DEVICE_LOW = 0x0a0, QUEUE_DEVICE_HIGH = 0x0a4,
};
enum { S_ACKNOWLEDGE = 1, S_DRIVER = 2, S_DRIVER_OK = 4, S_FEATURES_OK = 8 };
enum { DESC_F_NEXT = 1, DESC_F_WRITE = 2 };
enum { BLK_T_IN = 0, BLK_T_OUT = 1 };

#define QNUM 8

struct desc { uint64_t addr; uint32_t len; uint16_t flags; uint16_t next; };
struct blk_req { uint32_t type; uint32_t reserved; uint64_t sector; };

// The queue's memory: descriptors and available ring in the first page, the used ring in the
// second (the legacy layout for 8 entries and 4 KiB alignment; the modern transport is told
// the same three addresses).
static uint8_t ring[2 * 4096] __attribute__((aligned(4096)));
static uint8_t buf[512] __attribute__((aligned(512)));
static struct blk_req req;
static volatile uint8_t req_status;
static uint16_t avail_idx, used_seen;

static volatile uint32_t print_lock, go, up;

static void lock(void) {
  while (__atomic_exchange_n(&print_lock, 1, __ATOMIC_ACQUIRE)) {
  }
}
static void unlock(void) { __atomic_store_n(&print_lock, 0, __ATOMIC_RELEASE); }

static void uart_putc(char c) {
  while (!(R8(UART0 + 5) & 0x20)) {  // LSR.THRE
  }
  R8(UART0) = c;
}
static void uart_puts(const char *s) {
  while (*s) uart_putc(*s++);
}
static void uart_putu(uint64_t v) {
  char d[21];
  int n = 0;
  do d[n++] = '0' + v % 10; while ((v /= 10) != 0);
  while (n) uart_putc(d[--n]);
}
static void uart_puthex(uint64_t v) {
  uart_puts("0x");
  for (int i = 60; i >= 0; i -= 4) {
    if (v >> i || i == 0) uart_putc("0123456789abcdef"[(v >> i) & 15]);
  }
}

static void poweroff(uint32_t code) {
  R32(SYSCON) = code ? (code << 16) | 0x3333 : 0x5555;
  for (;;) asm volatile("wfi");
}

static void fail(int step, const char *what) {
  uart_puts("minikernel: FAILED: ");
  uart_puts(what);
  uart_puts("\n");
  poweroff(1 + step);
}

static uint32_t be32(const uint8_t *p) { return (uint32_t)p[0] << 24 | p[1] << 16 | p[2] << 8 | p[3]; }

// Counts the /cpus/cpu@N nodes of a flattened device tree (devicetree spec 5.4).
static int count_cpus(const uint8_t *fdt) {
  if (be32(fdt) != 0xd00dfeed) return -1;
  const uint8_t *p = fdt + be32(fdt + 8);
  int depth = 0, in_cpus = 0, cpus = 0;
  for (;;) {
    uint32_t tok = be32(p);
    p += 4;
    if (tok == 1) {  // FDT_BEGIN_NODE
      const char *name = (const char *)p;
      int len = 0;
      while (name[len]) len++;
      depth++;
      if (depth == 2 && len == 4 && name[0] == 'c' && name[1] == 'p' && name[2] == 'u' && name[3] == 's') in_cpus = 1;
      else if (in_cpus && depth == 3 && len > 4 && name[0] == 'c' && name[1] == 'p' && name[2] == 'u' && name[3] == '@') cpus++;
      p += (len + 4) & ~3u;
    } else if (tok == 2) {  // FDT_END_NODE
      if (depth == 2) in_cpus = 0;
      depth--;
    } else if (tok == 3) {  // FDT_PROP: len, nameoff, value
      p += 8 + ((be32(p) + 3) & ~3u);
    } else if (tok == 4) {  // FDT_NOP
    } else {
      return cpus;  // FDT_END
    }
  }
}

// Submits one request (header, data, status) and waits for its interrupt through the PLIC.
static void disk_rw(uint64_t sector, int write) {
  struct desc *d = (struct desc *)ring;
  volatile uint16_t *avail = (volatile uint16_t *)(ring + QNUM * sizeof(struct desc));
  volatile uint16_t *used = (volatile uint16_t *)(ring + 4096);
  req.type = write ? BLK_T_OUT : BLK_T_IN;
  req.reserved = 0;
  req.sector = sector;
  req_status = 0xff;
  d[0] = (struct desc){ (uintptr_t)&req, sizeof req, DESC_F_NEXT, 1 };
  d[1] = (struct desc){ (uintptr_t)buf, sizeof buf, (uint16_t)((write ? 0 : DESC_F_WRITE) | DESC_F_NEXT), 2 };
  d[2] = (struct desc){ (uintptr_t)&req_status, 1, DESC_F_WRITE, 0 };
  avail[2 + avail_idx % QNUM] = 0;
  __sync_synchronize();
  avail[1] = ++avail_idx;
  __sync_synchronize();
  R32(VIRTIO0 + QUEUE_NOTIFY) = 0;
  // Sleep until the PLIC raises MEIP (mie.MEIE is set, mstatus.MIE is not: WFI wakes, no trap).
  while (used[1] == used_seen) asm volatile("wfi");
  used_seen = used[1];
  uint32_t irq = R32(PLIC + 0x200004);  // claim, context 0 = hart 0 M-mode
  if (irq != VIRTIO_IRQ0) fail(7, "the disk's interrupt is not PLIC source 1");
  R32(VIRTIO0 + INTERRUPT_ACK) = R32(VIRTIO0 + INTERRUPT_STATUS) & 3;
  R32(PLIC + 0x200004) = irq;  // complete
  if (req_status != 0) fail(8, "the request failed");
}

static void disk_init(void) {
  uint64_t v = VIRTIO0;
  if (R32(v + MAGIC) != 0x74726976 || R32(v + DEVICE_ID) != 2) fail(2, "no virtio disk in slot 0 (0x10001000)");
  uint32_t version = R32(v + VERSION);
  if (version != 1 && version != 2) fail(2, "unknown virtio-mmio version");
  lock();
  uart_puts("virtio-mmio slot 0: version ");
  uart_putu(version);
  uart_puts(version == 1 ? " (legacy)" : " (modern)");
  uart_puts(", block device, vendor ");
  uart_puthex(R32(v + VENDOR_ID));
  uart_puts("\n");
  unlock();

  uint32_t status = 0;
  R32(v + STATUS) = status;
  R32(v + STATUS) = status |= S_ACKNOWLEDGE;
  R32(v + STATUS) = status |= S_DRIVER;
  R32(v + DRIVER_FEATURES_SEL) = 0;
  R32(v + DRIVER_FEATURES) = 0;  // no optional features
  if (version == 2) {
    R32(v + DRIVER_FEATURES_SEL) = 1;
    R32(v + DRIVER_FEATURES) = 1;  // VIRTIO_F_VERSION_1 (bit 32)
    R32(v + STATUS) = status |= S_FEATURES_OK;
    if (!(R32(v + STATUS) & S_FEATURES_OK)) fail(3, "FEATURES_OK refused");
  }
  R32(v + QUEUE_SEL) = 0;
  if (R32(v + QUEUE_NUM_MAX) < QNUM) fail(4, "queue too short");
  R32(v + QUEUE_NUM) = QNUM;
  uint64_t desc = (uintptr_t)ring, driver = desc + QNUM * sizeof(struct desc), device = desc + 4096;
  if (version == 1) {
    R32(v + GUEST_PAGE_SIZE) = 4096;
    R32(v + QUEUE_ALIGN) = 4096;
    R32(v + QUEUE_PFN) = (uint32_t)(desc >> 12);
    if (R32(v + QUEUE_PFN) != (uint32_t)(desc >> 12)) fail(5, "QueuePFN does not read back");
  } else {
    if (R32(v + QUEUE_READY)) fail(5, "queue 0 already ready");
    R32(v + QUEUE_DESC_LOW) = (uint32_t)desc;
    R32(v + QUEUE_DESC_HIGH) = (uint32_t)(desc >> 32);
    R32(v + QUEUE_DRIVER_LOW) = (uint32_t)driver;
    R32(v + QUEUE_DRIVER_HIGH) = (uint32_t)(driver >> 32);
    R32(v + QUEUE_DEVICE_LOW) = (uint32_t)device;
    R32(v + QUEUE_DEVICE_HIGH) = (uint32_t)(device >> 32);
    R32(v + QUEUE_READY) = 1;
  }
  R32(v + STATUS) = status |= S_DRIVER_OK;

  // The disk's interrupt (source 1) to hart 0's M-mode context; MEIP wakes WFI.
  R32(PLIC + 4 * VIRTIO_IRQ0) = 1;
  R32(PLIC + 0x2000) = 1u << VIRTIO_IRQ0;
  R32(PLIC + 0x200000) = 0;
  asm volatile("csrs mie, %0" ::"r"(1ul << 11));
}

static void print_block(const char *label) {
  uart_puts(label);
  uart_puts("\"");
  for (int i = 0; i < 64 && buf[i] >= ' ' && buf[i] < 127; i++) uart_putc(buf[i]);
  uart_puts("\"\n");
}

static const char marker[] = "minikernel wrote this block";

void start(uint64_t hart, const uint8_t *dtb) {
  if (hart != 0) {
    while (!__atomic_load_n(&go, __ATOMIC_ACQUIRE)) {
    }
    lock();
    uart_puts("hart ");
    uart_putu(hart);
    uart_puts(" up\n");
    unlock();
    __atomic_fetch_add(&up, 1, __ATOMIC_RELEASE);
    for (;;) asm volatile("wfi");
  }
  int harts = count_cpus(dtb);
  lock();
  uart_puts("minikernel: hart 0, ");
  uart_putu(harts < 0 ? 0 : harts);
  uart_puts(" harts in the device tree\n");
  unlock();
  if (harts < 1) fail(1, "no device tree in a1");

  // The goldfish RTC: nanoseconds since 1970; TIME_LOW first (it latches TIME_HIGH).
  uint32_t lo = R32(RTC + 0x00), hi = R32(RTC + 0x04);
  uart_puts("rtc: ");
  uart_putu((((uint64_t)hi << 32) | lo) / 1000000000u);
  uart_puts(" s since 1970\n");

  disk_init();
  disk_rw(0, 0);
  print_block("disk block 0: ");
  for (unsigned i = 0; i < sizeof buf; i++) buf[i] = i < sizeof marker ? marker[i] : 0;
  disk_rw(2, 1);
  for (unsigned i = 0; i < sizeof buf; i++) buf[i] = 0;
  disk_rw(2, 0);
  print_block("disk block 2 after writing it: ");

  __atomic_store_n(&go, 1, __ATOMIC_RELEASE);
  // Wait for the others, at most 2 s of machine time (mtime runs at 10 MHz).
  volatile uint64_t *mtime = (volatile uint64_t *)CLINT_MTIME;
  uint64_t t0 = *mtime;
  for (;;) {
    uint64_t t = *mtime;
    if (__atomic_load_n(&up, __ATOMIC_ACQUIRE) == (uint32_t)harts - 1 || t - t0 > 20000000) break;
  }
  lock();
  uart_puts("harts up: ");
  uart_putu(1 + __atomic_load_n(&up, __ATOMIC_ACQUIRE));
  uart_puts(" of ");
  uart_putu(harts);
  uart_puts("\nminikernel: done\n");
  unlock();
  poweroff(__atomic_load_n(&up, __ATOMIC_ACQUIRE) == (uint32_t)harts - 1 ? 0 : 9);
}
