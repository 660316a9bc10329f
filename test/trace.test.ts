// -d ITEMS / -D FILE (src/trace.ts, assembly/trace.ts): each item on small guests, in QEMU's
// formats; -d int checked line for line against qemu-system-riscv64 on the same program.

import { describe, expect, it } from "vitest";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ROOT } from "./helpers.js";

const RVM = join(ROOT, "bin/rvm.js");
const VM = join(ROOT, "guests/isa/vm.elf");
const CSR = join(ROOT, "guests/isa/csr.elf");
const HAVE_QEMU = spawnSync("qemu-system-riscv64", ["--version"]).status === 0;
const dir = mkdtempSync(join(tmpdir(), "rvm-trace-"));

/** Runs rvm with these arguments and returns its -D log. */
function traced(args: string[], name: string): { log: string; status: number | null; stderr: string } {
  const log = join(dir, name);
  const r = spawnSync(process.execPath, [RVM, "run", ...args, "-D", log, "--timeout", "30"], { encoding: "utf8", timeout: 60_000 });
  return { log: readFileSync(log, "utf8"), status: r.status, stderr: r.stderr };
}

describe("-d and -D", { timeout: 120_000 }, () => {
  it("-d help lists QEMU's items; an unknown item is a one-line error", () => {
    const r = spawnSync(process.execPath, [RVM, "run", "-d", "help"], { encoding: "utf8", timeout: 60_000 });
    expect(r.status).toBe(0);
    for (const item of ["in_asm", "exec", "cpu", "int", "mmu", "guest_errors", "unimp"]) expect(r.stdout).toMatch(new RegExp(`^${item} +\\S`, "m"));
    const bad = spawnSync(process.execPath, [RVM, "run", VM, "-d", "in_asm,bogus"], { encoding: "utf8", timeout: 60_000 });
    expect(bad.status).not.toBe(0);
    expect(bad.stderr.trim()).toBe("rvm: -d in_asm,bogus: unknown item 'bogus' (-d help lists them)");
  });

  it("in_asm: each new block once, disassembled in QEMU's layout, with its privilege", () => {
    const { log, status } = traced([VM, "-d", "in_asm"], "in_asm.log");
    expect(status).toBe(0);
    expect(log.startsWith("----------------\nIN: \nPriv: 3; Virt: 0\n" +
      "0x0000000000001000:  00000297          auipc                   t0,0x0\n" +
      "0x0000000000001004:  02828613          add                     a2,t0,40                # 0x1028\n" +
      "0x0000000000001008:  f1402573          csrr                    a0,mhartid\n\n")).toBe(true);
    expect(log).toMatch(/IN: \nPriv: 0; Virt: 0\n0x0000000040005000:  0005b503 +ld +a0,0\(a1\)/); // U-mode code through Sv39
    // A block is logged when first run (again only under another satp), far fewer than run.
    const logged = log.match(/^IN: $/gm)!.length;
    const executed = traced([VM, "-d", "exec"], "exec-count.log").log.match(/^Trace 0: /gm)!.length;
    expect(logged).toBeGreaterThan(100);
    expect(logged * 3).toBeLessThan(executed);
  });

  it("exec and cpu: a line and the registers before every block", () => {
    const { log, status } = traced([VM, "-d", "exec,cpu"], "exec.log");
    expect(status).toBe(0);
    expect(log.startsWith("Trace 0: 0x1000 [0000000000000000/0000000000001000/00000003/00000000] \n pc       0000000000001000\n mhartid  0000000000000000\n")).toBe(true);
    expect(log).toContain("Trace 0: 0x100c [");
    const blocks = log.match(/^Trace 0: /gm)!.length;
    expect(log.match(/^ pc {7}/gm)!.length).toBe(blocks);
    expect(log).toMatch(/ x10\/a0 +[0-9a-f]{16} /);
  });

  it.skipIf(!HAVE_QEMU)("int: every trap, the same lines as qemu-system-riscv64 -d int (plus the privileges)", () => {
    const { log, status } = traced([VM, "-d", "int"], "int.log");
    expect(status).toBe(0);
    const qlog = join(dir, "qemu-int.log");
    // QEMU's spike machine has HTIF, so the program ends there as in rvm.
    const q = spawnSync("qemu-system-riscv64", ["-M", "spike", "-bios", "none", "-kernel", VM, "-nographic", "-d", "int", "-D", qlog], { timeout: 60_000 });
    expect(q.status).toBe(0);
    const ours = log.trim().split("\n");
    expect(ours.length).toBeGreaterThan(50);
    expect(ours.map((l) => l.replace(/, priv:[USM]->[USM]$/, ""))).toEqual(readFileSync(qlog, "utf8").trim().split("\n"));
    expect(log).toContain("desc=load_page_fault, priv:S->S\n");
    expect(log).toMatch(/desc=user_ecall, priv:U->[SM]\n/);
  });

  it("mmu: each TLB fill and its outcome, the page faults as QEMU prints them", () => {
    const { log, status } = traced([VM, "-d", "mmu"], "mmu.log");
    expect(status).toBe(0);
    expect(log.startsWith("riscv_cpu_tlb_fill ad 1000 rw 2 mmu_idx 3\nriscv_cpu_tlb_fill address=1000 ret 0 physical 0000000000001000 prot 7\n")).toBe(true);
    expect(log).toContain("riscv_cpu_tlb_fill ad 40400000 rw 0 mmu_idx 1\nriscv_cpu_tlb_fill address=40400000 ret 1 physical 0000000000000000 prot 0\n");
    expect(log).toContain("riscv_cpu_tlb_fill address=ffffffffc0000000 ret 1");
  });

  it("guest_errors: illegal CSR accesses, accesses to nothing, a bad test-device write; unimp: a UART factory-test write", () => {
    const { log } = traced([CSR, "-d", "guest_errors"], "csr.log");
    expect(log).toContain("Illegal CSR access: csr 0xf14 (write), insn 0xf1401073, hart 0\n");
    // mtvec = handler (mepc += 4; mret); lui t0,0x3000; lw a0,0(t0) (nothing at 0x3000000);
    // sb a1,5(t1) to the UART's LSR; li a1,0x1234; sw a1,0(t2) to the test device (not a
    // finisher value); then j .
    const prog = join(dir, "errors.bin");
    const words = [0x00000e17, 0x030e0e13, 0x305e1073, 0x030002b7, 0x0002a503, 0x10000337, 0x00b302a3, 0x001003b7,
      0x000015b7, 0x2345859b, 0x00b3a023, 0x0000006f, 0x34102ef3, 0x004e8e93, 0x341e9073, 0x30200073];
    writeFileSync(prog, Buffer.from(new Uint32Array(words).buffer));
    const r = spawnSync(process.execPath, [RVM, "run", prog, "-d", "guest_errors,unimp", "--timeout", "1"], { encoding: "utf8", timeout: 60_000 });
    expect(r.stderr).toContain("Invalid read at addr 0x3000000, size 4, region '(null)', reason: rejected\n");
    expect(r.stderr).toContain("serial: write to LSR (factory test mode) not implemented");
    expect(r.stderr).toContain("sifive_test_write: write: addr=0x0 val=0x0000000000001234\n");
  });

  it("--trace is -d insn: every instruction, privilege, pc, encoding", () => {
    const { log, status } = traced([VM, "--trace"], "insn.log");
    expect(status).toBe(0);
    const lines = log.trim().split("\n");
    expect(lines[0]).toBe("M 0000000000001000 00000297");
    expect(lines).toContain("U 0000000040005000 0005b503");
    expect(lines.length).toBeGreaterThan(1000);
  });
});
