// Micro figures (tinybench) for the interpreter's building blocks: ALU/branch dispatch, and
// loads/stores through the TLB hit path. Each task runs 1 Mi guest instructions per call.
import { Bench } from "tinybench";
import { Core, RAM_BASE } from "../dist/src/core.js";

const PROGRAMS = {
  // alu: addi a0,a0,1; addi a1,a1,3; xor a2,a0,a1; bnez a0,alu
  "alu + branch": [0x00150513, 0x00358593, 0x00b54633, 0xfe051ae3],
  // li t0,0x80100000; 1: ld t1,0(t0); addi t1,t1,1; sd t1,8(t0); j 1b
  "load/store (TLB hit)": [0x000012b7, 0x8012829b, 0x01429293, 0x0002b303, 0x00130313, 0x0062b423, 0xff5ff06f],
};
const SLICE = 1 << 20;

export async function main() {
  const bench = new Bench({ time: 1000 });
  for (const [name, words] of Object.entries(PROGRAMS)) {
    const core = new Core(4 << 20);
    const dv = new DataView(core.ram.buffer, core.ram.byteOffset);
    words.forEach((w, i) => dv.setUint32(i * 4, w, true));
    core.pc = BigInt(RAM_BASE);
    core.exports.setPriv(3);
    bench.add(name, () => {
      core.run(SLICE);
    });
  }
  await bench.run();
  for (const task of bench.tasks) {
    const mean = task.result?.latency?.mean ?? task.result?.mean;
    const mips = SLICE / (mean / 1000) / 1e6;
    console.log(`${task.name.padEnd(24)} ${mean.toFixed(3)} ms per 1 Mi instructions = ${mips.toFixed(1)} MIPS`);
  }
}
