// The target description the stub serves (qXfer:features:read:target.xml): riscv:rv64 with the
// features gdb's RISC-V support knows, numbered as QEMU numbers them — org.gnu.gdb.riscv.cpu
// (x0..x31, pc: 0..32), org.gnu.gdb.riscv.fpu (f0..f31: 33..64), org.gnu.gdb.riscv.virtual
// (priv: 65) and org.gnu.gdb.riscv.csr (CSR n: 66 + n, the CSRs the hart implements), so
// `info registers`, `info all-registers`, `p $mstatus` and `p $satp` work.

import { FPR_NAMES, GPR_NAMES } from "../disasm.js";
import { CSR_NAMES } from "../csr-names.js";

export const REG_PC = 32;
export const REG_F0 = 33;
export const REG_PRIV = 65;
export const REG_CSR0 = 66;

export function targetXml(csrs: number[]): string {
  const cpu = GPR_NAMES.map((n, i) => {
    const name = i === 8 ? "fp" : n;
    const type = i === 1 ? "code_ptr" : i === 2 || i === 3 || i === 4 || i === 8 ? "data_ptr" : "int";
    return `    <reg name="${name}" bitsize="64" type="${type}" regnum="${i}"/>`;
  });
  cpu.push(`    <reg name="pc" bitsize="64" type="code_ptr" regnum="${REG_PC}"/>`);
  const fpu = FPR_NAMES.map((n, i) => `    <reg name="${n}" bitsize="64" type="riscv_double" regnum="${REG_F0 + i}"/>`);
  const csr = csrs.map((n) => `    <reg name="${CSR_NAMES.get(n) ?? `csr${n.toString(16).padStart(3, "0")}`}" bitsize="64" type="int" regnum="${REG_CSR0 + n}"/>`);
  return [
    `<?xml version="1.0"?>`,
    `<!DOCTYPE target SYSTEM "gdb-target.dtd">`,
    `<target>`,
    `  <architecture>riscv:rv64</architecture>`,
    `  <feature name="org.gnu.gdb.riscv.cpu">`,
    ...cpu,
    `  </feature>`,
    `  <feature name="org.gnu.gdb.riscv.fpu">`,
    `    <union id="riscv_double">`,
    `      <field name="float" type="ieee_single"/>`,
    `      <field name="double" type="ieee_double"/>`,
    `    </union>`,
    ...fpu,
    `  </feature>`,
    `  <feature name="org.gnu.gdb.riscv.virtual">`,
    `    <reg name="priv" bitsize="64" regnum="${REG_PRIV}"/>`,
    `  </feature>`,
    `  <feature name="org.gnu.gdb.riscv.csr">`,
    ...csr,
    `  </feature>`,
    `</target>`,
    ``,
  ].join("\n");
}
