// The gdb remote stub: the GDB remote serial protocol as QEMU serves it (gdbstub/gdbstub.c),
// over one connection at a time. Each hart is a thread (ids 1..N, as QEMU numbers CPUs).
//
// Registers use QEMU's RISC-V numbering, which its target description spells out: x0..x31 = 0..31,
// pc = 32, f0..f31 = 33..64, priv = 65 (org.gnu.gdb.riscv.virtual), CSR n = 66 + n.
// Memory addresses are virtual, translated through the selected hart's MMU without side effects,
// unless `maintenance packet Qqemu.PhyMemMode:1` switched to physical addresses.
// Breakpoints (Z0 software, Z1 hardware: the same here) are kept in the stub and the core's table,
// never written into guest memory. Stops freeze guest time, as the monitor's `stop` does.

import { framePacket, PacketDecoder, parseRegHex, regHex, toHex } from "./protocol.js";
import { targetXml } from "./target-xml.js";

/** Why the machine stopped for the debugger. */
export interface StopEvent {
  reason: "breakpoint" | "step" | "interrupt" | "watch" | "exited";
  hart: number;
  watch?: { kind: "watch" | "rwatch" | "awatch"; addr: bigint };
  exitCode?: number;
}

/** What the stub needs from the machine (src/gdb/machine-target.ts implements it). */
export interface DebugTarget {
  hartCount(): number;
  /** True while the guest runs. */
  readonly running: boolean;
  /** Stops the guest; the stop is reported through onStop (reason "interrupt"). */
  stop(): void;
  /** Lets the harts in `harts` (all when absent) run until a breakpoint, watchpoint, stop or exit. */
  resume(harts?: readonly number[]): void;
  /** Whether `hart` waits in WFI (QEMU's "halted"). */
  halted(hart: number): boolean;
  /** Runs exactly one instruction on `hart` (into the trap handler if it traps), then stops. */
  step(hart: number): void;
  onStop: ((e: StopEvent) => void) | undefined;
  readRegister(hart: number, regnum: number): bigint | undefined;
  writeRegister(hart: number, regnum: number, value: bigint): boolean;
  /** CSR numbers the hart implements (for the target description). */
  csrs(): number[];
  readMemory(hart: number, addr: bigint, len: number, physical: boolean): Uint8Array;
  writeMemory(hart: number, addr: bigint, data: Uint8Array, physical: boolean): void;
  setBreakpoints(addrs: bigint[]): void;
  setWatchpoints(w: Watchpoint[]): boolean;
  /** Interrupts masked while stepping (QEMU's SSTEP_NOIRQ, the default). */
  setStepNoIrq(on: boolean): void;
  monitor(line: string): Promise<string>;
  kill(): void;
}

export interface Watchpoint {
  kind: "watch" | "rwatch" | "awatch";
  addr: bigint;
  len: number;
}

/** Largest packet we accept; we advertise a smaller PacketSize, so only a broken client gets here. */
export const MAX_PACKET = 2 << 20;
const PACKET_SIZE = 0x4000;
const SIGINT = 2, SIGTRAP = 5;
const SSTEP_ENABLE = 1, SSTEP_NOIRQ = 2, SSTEP_NOTIMER = 4;

/** One debugger connection. `send` writes to the socket; `close` ends the connection. */
export class GdbSession {
  private readonly decoder = new PacketDecoder(MAX_PACKET);
  private noAck = false;
  /** gdb's multiprocess extensions (thread ids p1.N, as QEMU answers them). */
  private multiprocess = false;
  private gThread = 1;
  private cThread = -1;
  private phyMem = false;
  private sstep = SSTEP_ENABLE | SSTEP_NOIRQ | SSTEP_NOTIMER;
  private readonly breakpoints = new Map<bigint, number>(); // address -> references (Z0 and Z1)
  private watchpoints: Watchpoint[] = [];
  /** The stop reply for `?`, and whether a c/s/vCont waits for the next stop. */
  private lastStop: StopEvent;
  private waitingForStop = false;
  private closed = false;
  private queue: Promise<void> = Promise.resolve();

  constructor(
    private readonly target: DebugTarget,
    private readonly send: (bytes: Buffer) => void,
    private readonly close: (why?: string) => void,
  ) {
    this.lastStop = { reason: "interrupt", hart: 0 };
    target.onStop = (e) => this.stopped(e);
    // A guest that was running when gdb attached is stopped, as QEMU does; packets wait for it.
    if (target.running) {
      this.queue = new Promise<void>((resolve) => (this.initialStop = resolve));
      target.stop();
    }
  }

  private initialStop: (() => void) | undefined;

  /** Bytes from the socket. */
  receive(chunk: Buffer): void {
    for (const ev of this.decoder.feed(chunk)) {
      if (this.closed) return;
      switch (ev.kind) {
        case "interrupt":
          if (this.target.running) this.target.stop();
          break;
        case "bad":
          if (!this.noAck) this.send(Buffer.from("-"));
          break;
        case "overflow":
          this.close(`gdb: packet longer than ${MAX_PACKET} bytes, closing the connection`);
          this.closed = true;
          return;
        case "packet": {
          if (!this.noAck) this.send(Buffer.from("+"));
          const data = ev.data;
          this.queue = this.queue.then(() => this.handle(data)).catch((e) => {
            this.reply("E01");
            process.stderr.write(`rvm: gdb: ${(e as Error).message}\n`);
          });
          break;
        }
        default: break; // acks: we do not resend
      }
    }
  }

  /** The connection closed: breakpoints go, a stopped guest goes on (as after `detach`). */
  disconnected(): void {
    this.closed = true;
    this.target.onStop = undefined;
    this.target.setBreakpoints([]);
    this.target.setWatchpoints([]);
    this.target.setStepNoIrq(false);
    this.target.resume(); // every hart, also those a vCont left stopped
  }

  private reply(text: string | Buffer): void {
    if (!this.closed) this.send(framePacket(text));
  }

  private stopped(e: StopEvent): void {
    if (this.initialStop) {
      this.lastStop = { reason: "interrupt", hart: e.hart };
      const release = this.initialStop;
      this.initialStop = undefined;
      release();
      return;
    }
    this.lastStop = e;
    this.target.setStepNoIrq(false);
    // The hart that stopped becomes the one gdb's g/m/s packets mean (QEMU's gdb_set_stop_cpu).
    if (e.reason !== "exited") this.gThread = this.cThread = e.hart + 1;
    if (this.waitingForStop) {
      this.waitingForStop = false;
      this.reply(this.stopReply(e));
    }
  }

  private tid(hart: number): string {
    const tid = (hart + 1).toString(16).padStart(2, "0");
    return this.multiprocess ? `p01.${tid}` : tid;
  }

  private stopReply(e: StopEvent): string {
    if (e.reason === "exited") return `W${(e.exitCode ?? 0).toString(16).padStart(2, "0")}`;
    const sig = e.reason === "interrupt" ? SIGINT : SIGTRAP;
    let r = `T${sig.toString(16).padStart(2, "0")}thread:${this.tid(e.hart)};`;
    if (e.reason === "watch" && e.watch) r += `${e.watch.kind}:${e.watch.addr.toString(16)};`;
    if (e.reason === "breakpoint") r += "swbreak:;";
    return r;
  }

  /**
   * Thread id from the protocol -> hart index, -1 for all, or undefined if there is none. Ids are
   * hex (0 = any, -1 = all), with the multiprocess extensions pPID.TID or pPID (all its threads);
   * the machine is process 1.
   */
  private hartOf(text: string): number | undefined {
    const m = /^(?:p(-1|[0-9a-fA-F]+)(?:\.(-1|[0-9a-fA-F]+))?|(-1|[0-9a-fA-F]+))$/.exec(text);
    if (!m) return undefined;
    if (m[1] !== undefined && m[1] !== "-1" && parseInt(m[1], 16) > 1) return undefined;
    const tid = m[3] ?? m[2] ?? "-1";
    if (tid === "-1" || tid === "0") return tid === "0" ? 0 : -1;
    const n = parseInt(tid, 16);
    if (!Number.isInteger(n) || n < 1 || n > this.target.hartCount()) return undefined;
    return n - 1;
  }

  private get gHart(): number {
    return this.gThread <= 0 ? 0 : this.gThread - 1;
  }

  private async handle(pkt: Buffer): Promise<void> {
    const text = pkt.toString("latin1");
    const t = this.target;
    const cmd = text[0];
    switch (cmd) {
      case "?": // QEMU answers SIGTRAP for the thread gdb looks at, whatever stopped the machine
        if (this.lastStop.reason === "exited") return this.reply(this.stopReply(this.lastStop));
        return this.reply(`T${SIGTRAP.toString(16).padStart(2, "0")}thread:${this.tid(this.gHart)};`);
      case "g": {
        let out = "";
        for (let r = 0; r <= 32; r++) out += regHex(t.readRegister(this.gHart, r) ?? 0n);
        return this.reply(out);
      }
      case "G": {
        const hex = text.slice(1);
        if (!/^[0-9a-fA-F]*$/.test(hex) || hex.length < 33 * 16) return this.reply("E22");
        for (let r = 0; r <= 32; r++) t.writeRegister(this.gHart, r, parseRegHex(hex.slice(r * 16, r * 16 + 16)));
        return this.reply("OK");
      }
      case "p": {
        const n = parseInt(text.slice(1), 16);
        const v = Number.isInteger(n) ? t.readRegister(this.gHart, n) : undefined;
        return this.reply(v === undefined ? "E14" : regHex(v));
      }
      case "P": {
        const m = /^P([0-9a-fA-F]+)=([0-9a-fA-F]+)$/.exec(text);
        if (!m) return this.reply("E22");
        return this.reply(t.writeRegister(this.gHart, parseInt(m[1], 16), parseRegHex(m[2])) ? "OK" : "E14");
      }
      case "m": {
        const m = /^m([0-9a-fA-F]+),([0-9a-fA-F]+)$/.exec(text);
        if (!m) return this.reply("E22");
        const len = parseInt(m[2], 16);
        if (len > PACKET_SIZE / 2) return this.reply("E22");
        try {
          return this.reply(toHex(t.readMemory(this.gHart, BigInt("0x" + m[1]), len, this.phyMem)));
        } catch {
          return this.reply("E14");
        }
      }
      case "M":
      case "X": {
        const colon = pkt.indexOf(0x3a);
        const m = /^[MX]([0-9a-fA-F]+),([0-9a-fA-F]+)$/.exec(text.slice(0, colon < 0 ? undefined : colon));
        if (!m || colon < 0) return this.reply("E22");
        const len = parseInt(m[2], 16);
        let data: Uint8Array;
        if (cmd === "M") {
          const hex = text.slice(colon + 1);
          if (hex.length !== len * 2 || !/^[0-9a-fA-F]*$/.test(hex)) return this.reply("E22");
          data = Buffer.from(hex, "hex");
        } else {
          data = pkt.subarray(colon + 1);
          if (data.length !== len) return this.reply("E22");
        }
        try {
          if (len > 0) t.writeMemory(this.gHart, BigInt("0x" + m[1]), data, this.phyMem);
          return this.reply("OK");
        } catch {
          return this.reply("E14");
        }
      }
      case "Z":
      case "z":
        return this.reply(this.breakpoint(cmd === "Z", text.slice(1)));
      case "c":
      case "C":
      case "s":
      case "S": {
        // An address after c/s resumes there ("C sig;addr": the signal is ignored, as QEMU does).
        const arg = cmd === "c" || cmd === "s" ? text.slice(1) : text.split(";")[1] ?? "";
        if (arg && /^[0-9a-fA-F]+$/.test(arg)) t.writeRegister(this.cThread > 0 ? this.cThread - 1 : this.gHart, 32, BigInt("0x" + arg));
        if (cmd === "c" || cmd === "C") return this.cont();
        return this.stepHart(this.cThread > 0 ? this.cThread - 1 : this.gHart);
      }
      case "v":
        return this.vPacket(text);
      case "H": {
        const hart = this.hartOf(text.slice(2));
        if (hart === undefined || (text[1] !== "g" && text[1] !== "c")) return this.reply("E22");
        if (text[1] === "g") this.gThread = hart < 0 ? 1 : hart + 1;
        else this.cThread = hart < 0 ? -1 : hart + 1;
        return this.reply("OK");
      }
      case "T": {
        const hart = this.hartOf(text.slice(1));
        return this.reply(hart !== undefined && hart >= 0 ? "OK" : "E22");
      }
      case "D":
        this.reply("OK");
        this.disconnected();
        this.close();
        return;
      case "k":
        this.closed = true;
        this.close();
        t.kill();
        return;
      case "q":
      case "Q":
        return this.query(text);
      default:
        return this.reply(""); // unsupported: the empty reply
    }
  }

  private breakpoint(insert: boolean, args: string): string {
    const m = /^([0-4]),([0-9a-fA-F]+),([0-9a-fA-F]+)/.exec(args);
    if (!m) return "E22";
    const type = Number(m[1]);
    const addr = BigInt("0x" + m[2]);
    const len = parseInt(m[3], 16);
    if (type <= 1) {
      const n = this.breakpoints.get(addr) ?? 0;
      if (insert) this.breakpoints.set(addr, n + 1);
      else if (n <= 1) this.breakpoints.delete(addr);
      else this.breakpoints.set(addr, n - 1);
      this.target.setBreakpoints([...this.breakpoints.keys()]);
      return "OK";
    }
    const kind = (["watch", "rwatch", "awatch"] as const)[type - 2];
    const next = insert ? [...this.watchpoints, { kind, addr, len }]
      : this.watchpoints.filter((w, i, all) => !(w.kind === kind && w.addr === addr && w.len === len && all.findIndex((x) => x === w) === i));
    if (!this.target.setWatchpoints(next)) return ""; // not supported: gdb falls back to software watchpoints
    this.watchpoints = next;
    return "OK";
  }

  private cont(harts?: number[]): void {
    this.waitingForStop = true;
    this.target.resume(harts);
  }

  private stepHart(hart: number): void {
    this.waitingForStop = true;
    this.target.setStepNoIrq((this.sstep & SSTEP_NOIRQ) !== 0);
    this.target.step(hart);
  }

  private vPacket(text: string): void {
    if (text === "vCont?") return this.reply("vCont;c;C;s;S");
    if (text.startsWith("vCont;")) {
      // Actions apply to the threads they name, the leftmost match wins; one with no thread
      // applies to the rest. A hart with no action stays stopped (gdb's scheduler-locking). A
      // step runs its hart alone for one instruction (all-stop: the others need not move);
      // otherwise the harts with a continue action run.
      const n = this.target.hartCount();
      const act: (string | undefined)[] = new Array<string | undefined>(n).fill(undefined);
      for (const a of text.slice(6).split(";")) {
        const colon = a.indexOf(":");
        const kind = a[0]?.toLowerCase();
        if (kind !== "c" && kind !== "s") return this.reply("E22");
        const hart = colon < 0 ? -1 : this.hartOf(a.slice(colon + 1));
        if (hart === undefined) return this.reply("E22");
        for (let h = 0; h < n; h++) if (hart < 0 || h === hart) act[h] ??= kind;
      }
      const step = act.indexOf("s");
      if (step >= 0) return this.stepHart(step);
      const running = act.flatMap((a, h) => (a === "c" ? [h] : []));
      if (running.length === 0) return this.reply("E22");
      return this.cont(running.length === n ? undefined : running);
    }
    if (text === "vMustReplyEmpty") return this.reply("");
    if (text.startsWith("vKill")) {
      this.reply("OK");
      this.closed = true;
      this.close();
      this.target.kill();
      return;
    }
    return this.reply("");
  }

  private async query(text: string): Promise<void> {
    const t = this.target;
    if (text.startsWith("qSupported")) {
      this.multiprocess = /[:;]multiprocess\+/.test(text);
      return this.reply(`PacketSize=${PACKET_SIZE.toString(16)};qXfer:features:read+;vContSupported+;swbreak+;hwbreak+;QStartNoAckMode+${this.multiprocess ? ";multiprocess+" : ""}`);
    }
    if (text === "QStartNoAckMode") {
      this.reply("OK");
      this.noAck = true;
      return;
    }
    if (text === "qAttached" || text.startsWith("qAttached:")) return this.reply("1");
    if (text === "qC") return this.reply(`QC${this.tid(this.gHart)}`);
    if (text === "qfThreadInfo") {
      const ids = Array.from({ length: t.hartCount() }, (_, i) => this.tid(i));
      return this.reply("m" + ids.join(","));
    }
    if (text === "qsThreadInfo") return this.reply("l");
    if (text.startsWith("qThreadExtraInfo,")) {
      const hart = this.hartOf(text.slice(17));
      if (hart === undefined || hart < 0) return this.reply("E22");
      const h = hart < 0 ? 0 : hart;
      return this.reply(Buffer.from(`CPU#${h} [${t.halted(h) ? "halted " : "running"}]`).toString("hex"));
    }
    if (text.startsWith("qXfer:features:read:")) {
      const m = /^qXfer:features:read:([^:]+):([0-9a-fA-F]+),([0-9a-fA-F]+)$/.exec(text);
      if (!m) return this.reply("E00");
      if (m[1] !== "target.xml") return this.reply("E00");
      const xml = Buffer.from(targetXml(t.csrs()));
      const off = parseInt(m[2], 16), len = parseInt(m[3], 16);
      const part = xml.subarray(off, off + len);
      return this.reply(Buffer.concat([Buffer.from(off + len >= xml.length ? "l" : "m"), part]));
    }
    if (text.startsWith("qRcmd,")) {
      const hex = text.slice(6);
      if (!/^([0-9a-fA-F]{2})*$/.test(hex)) return this.reply("E22");
      const out = await t.monitor(Buffer.from(hex, "hex").toString("utf8"));
      // Output goes to gdb's console in O packets (at most half a packet each), then OK.
      const bytes = Buffer.from(out);
      for (let i = 0; i < bytes.length; i += PACKET_SIZE / 4) this.reply("O" + toHex(bytes.subarray(i, i + PACKET_SIZE / 4)));
      return this.reply("OK");
    }
    if (text === "qqemu.sstepbits") return this.reply(`ENABLE=${SSTEP_ENABLE},NOIRQ=${SSTEP_NOIRQ},NOTIMER=${SSTEP_NOTIMER}`);
    if (text === "qqemu.sstep") return this.reply("0x" + this.sstep.toString(16));
    if (text.startsWith("Qqemu.sstep=")) {
      const v = Number(text.slice(12));
      if (!Number.isInteger(v) || v < 0 || v > 7) return this.reply("E22");
      this.sstep = v;
      return this.reply("OK");
    }
    if (text === "qqemu.PhyMemMode") return this.reply(this.phyMem ? "1" : "0");
    if (text.startsWith("Qqemu.PhyMemMode:")) {
      const v = text.slice(17);
      if (v !== "0" && v !== "1") return this.reply("E22");
      this.phyMem = v === "1";
      return this.reply("OK");
    }
    if (text.startsWith("qSymbol")) return this.reply("OK");
    return this.reply("");
  }
}
