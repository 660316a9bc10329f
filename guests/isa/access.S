/* access.S: access faults from the physical memory map (privileged spec 3.6 "Physical Memory
 * Attributes", 3.1.15): an instruction fetch from a device region (the CLINT) raises an
 * instruction access fault (cause 1, mtval = the address) instead of executing the device's
 * registers; LR on a device raises a load access fault (cause 5), SC and AMOs a store/AMO
 * access fault (cause 7), all with mtval = the address and no effect on the device; a fetch
 * from an address where nothing is mapped raises cause 1. The CLINT is at 0x0200_0000 on both
 * QEMU machines (virt and spike). QEMU 7.2 executes LR/SC/AMOs on the CLINT like plain loads
 * and stores, so under QEMU cases 3..5 fail (run-qemu.sh lists the program as XFAIL). */
#include "test.h"

        TEST_BEGIN
        CASE 1                          /* jump into the CLINT's mtimecmp: fetch access fault */
        li      a1, CLINT_MTIMECMP
        li      t0, 0x00000013          /* a NOP in mtimecmp, so executing it would not trap */
        sw      t0, 0(a1)
        sw      zero, 4(a1)
        la      RESUME, 1f
        jr      a1
        j       fail
        .balign 4
1:      CHECK   T_CAUSE, CAUSE_FETCH_ACCESS
        CHECKR  T_EPC, a1
        CHECKR  T_TVAL, a1
        li      t0, -1                  /* mtimecmp back to "never" */
        sd      t0, 0(a1)

        CASE 2                          /* a fetch from the CLINT's msip page likewise */
        li      a1, CLINT_MSIP
        la      RESUME, 1f
        jalr    a1
        j       fail
        .balign 4
1:      CHECK   T_CAUSE, CAUSE_FETCH_ACCESS
        CHECKR  T_TVAL, a1

        CASE 3                          /* LR.D on a device: load access fault */
        li      a1, CLINT_MTIMECMP
        li      a0, 12345
        la      RESUME, 1f
        lr.d    a0, (a1)
        j       fail
        .balign 4
1:      CHECK   T_CAUSE, CAUSE_LOAD_ACCESS
        CHECKR  T_TVAL, a1
        CHECK   a0, 12345               /* rd not written */

        CASE 4                          /* SC.D on a device: store/AMO access fault, no write */
        li      a1, CLINT_MTIMECMP
        li      a2, 0x55
        la      RESUME, 1f
        sc.d    a0, a2, (a1)
        j       fail
        .balign 4
1:      CHECK   T_CAUSE, CAUSE_STORE_ACCESS
        CHECKR  T_TVAL, a1
        ld      a3, 0(a1)
        CHECK   a3, -1

        CASE 5                          /* AMOADD.W on a device: store/AMO access fault, no write */
        li      a1, CLINT_MSIP
        li      a2, 1
        la      RESUME, 1f
        amoadd.w a0, a2, (a1)
        j       fail
        .balign 4
1:      CHECK   T_CAUSE, CAUSE_STORE_ACCESS
        CHECKR  T_TVAL, a1
        lw      a3, 0(a1)
        CHECK   a3, 0

        CASE 6                          /* a fetch where nothing is mapped */
        li      a1, 0x40000000
        la      RESUME, 1f
        jr      a1
        j       fail
        .balign 4
1:      CHECK   T_CAUSE, CAUSE_FETCH_ACCESS
        CHECKR  T_TVAL, a1
        TEST_END
