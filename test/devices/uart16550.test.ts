// The NS16550A against the PC16550D datasheet and the sequences Linux's 8250 driver and
// xv6-riscv's uart.c actually perform.

import { describe, expect, it } from "vitest";
import {
  DLL, DLM, FCR, IER, IIR, LCR, LSR, MCR, MSR, RBR, SCR, THR,
  FCR_FE, FCR_RFR, IER_EDSSI, IER_ERBFI, IER_ETBEI, IIR_FIFO_ENABLED, IIR_MSI, IIR_NO_INT, IIR_RDI, IIR_THRI,
  LCR_DLAB, LSR_DR, LSR_TEMT, LSR_THRE, MCR_LOOP, MCR_OUT2, MCR_RTS, MSR_DCD, MSR_DCTS, MSR_DDCD,
  Uart16550,
} from "../../src/devices/uart16550.js";

function uart() {
  const out: number[] = [];
  const irqs: boolean[] = [];
  const u = new Uart16550((b) => out.push(b), (l) => irqs.push(l));
  const irq = () => irqs[irqs.length - 1] ?? false;
  return { u, out, irq, rd: (o: number) => u.read(o, 1), wr: (o: number, v: number) => u.write(o, 1, v) };
}

describe("NS16550A UART", () => {
  it("passes Linux 8250 autoconfig: IER probe, loopback MSR test, FIFO detection as 16550A", () => {
    const { rd, wr } = uart();
    // autoconfig(): IER bits 3:0 are writable, and read back
    const scratch = rd(IER);
    wr(IER, 0);
    expect(rd(IER) & 0x0f).toBe(0);
    wr(IER, 0x0f);
    expect(rd(IER) & 0x0f).toBe(0x0f);
    wr(IER, scratch);
    // the loopback test: MCR = LOOP | OUT2 | RTS  ->  MSR 7:4 = DCD | CTS = 0x90
    const saveMcr = rd(MCR);
    wr(MCR, MCR_LOOP | 0x0a);
    expect(rd(MSR) & 0xf0).toBe(0x90);
    wr(MCR, saveMcr);
    // FIFO enabled: IIR bits 7:6 = 3 means 16550A
    wr(LCR, 0);
    wr(FCR, FCR_FE);
    expect(rd(IIR) >> 6).toBe(3);
    // the 16750 test: IIR bit 5 stays 0 with or without DLAB
    wr(FCR, FCR_FE | 0x20);
    expect(rd(IIR) >> 5).toBe(6);
    wr(LCR, LCR_DLAB);
    wr(FCR, FCR_FE | 0x20);
    expect(rd(IIR) >> 5).toBe(6);
    wr(LCR, 0);
    // XScale UUE test: IER bit 6 is not writable
    wr(IER, 0x40);
    expect(rd(IER) & 0x40).toBe(0);
    // scratch register holds a value
    wr(SCR, 0xa5);
    expect(rd(SCR)).toBe(0xa5);
  });

  it("keeps the divisor latch behind LCR.DLAB, apart from RBR/THR and IER", () => {
    const { rd, wr, out } = uart();
    wr(LCR, LCR_DLAB);
    wr(DLL, 0x03);
    wr(DLM, 0x01);
    expect(rd(DLL)).toBe(0x03);
    expect(rd(DLM)).toBe(0x01);
    wr(LCR, 0x03); // 8N1, DLAB off (xv6's LCR_EIGHT_BITS)
    expect(rd(LCR)).toBe(0x03);
    expect(rd(IER)).toBe(0);
    expect(out).toEqual([]); // divisor writes are not transmitted
    wr(THR, 0x41);
    expect(out).toEqual([0x41]);
  });

  it("transmits at once: LSR.THRE and TEMT stay set", () => {
    const { rd, wr, out } = uart();
    expect(rd(LSR) & (LSR_THRE | LSR_TEMT)).toBe(LSR_THRE | LSR_TEMT);
    for (const c of "hi\n") wr(THR, c.charCodeAt(0));
    expect(Buffer.from(out).toString()).toBe("hi\n");
    expect(rd(LSR) & (LSR_THRE | LSR_TEMT)).toBe(LSR_THRE | LSR_TEMT);
  });

  it("receives through a 16-byte FIFO; the host backlog refills it without loss", () => {
    const { u, rd, wr } = uart();
    wr(FCR, FCR_FE);
    const text = "the quick brown fox jumps over the lazy dog";
    u.receive(Buffer.from(text));
    expect(u.pendingInput()).toBe(text.length);
    let got = "";
    while (rd(LSR) & LSR_DR) got += String.fromCharCode(rd(RBR));
    expect(got).toBe(text);
    expect(rd(LSR) & LSR_DR).toBe(0);
    expect(u.pendingInput()).toBe(0);
  });

  it("FCR receiver reset empties the FIFO", () => {
    const { u, rd, wr } = uart();
    wr(FCR, FCR_FE);
    u.receive([1, 2, 3]);
    expect(rd(LSR) & LSR_DR).toBe(LSR_DR);
    wr(FCR, FCR_FE | FCR_RFR);
    expect(rd(LSR) & LSR_DR).toBe(0);
  });

  it("raises received-data-available while data is present and IER.ERBFI is set", () => {
    const { u, rd, wr, irq } = uart();
    wr(FCR, FCR_FE);
    u.receive([0x61]);
    expect(irq()).toBe(false); // not enabled
    expect(rd(IIR) & 0x0f).toBe(IIR_NO_INT);
    wr(IER, IER_ERBFI);
    expect(irq()).toBe(true);
    expect(rd(IIR)).toBe(IIR_FIFO_ENABLED | IIR_RDI);
    expect(rd(RBR)).toBe(0x61);
    expect(irq()).toBe(false);
    expect(rd(IIR) & 0x0f).toBe(IIR_NO_INT);
  });

  it("THR empty: raised when ETBEI is enabled, cleared by reading IIR or writing THR", () => {
    const { rd, wr, irq } = uart();
    wr(IER, IER_ETBEI);
    expect(irq()).toBe(true); // THR was already empty
    expect(rd(IIR) & 0x0f).toBe(IIR_THRI); // reading IIR while THRI is the source clears it
    expect(irq()).toBe(false);
    expect(rd(IIR) & 0x0f).toBe(IIR_NO_INT);
    wr(THR, 0x42); // THR empties again at once
    expect(irq()).toBe(true);
    wr(IER, 0);
    expect(irq()).toBe(false);
  });

  it("passes Linux's UART_BUG_THRE check (THRI reappears when ETBEI is toggled)", () => {
    const { rd, wr } = uart();
    wr(IER, IER_ETBEI);
    rd(LSR);
    const iir1 = rd(IIR);
    wr(IER, 0);
    wr(IER, IER_ETBEI);
    const iir = rd(IIR);
    wr(IER, 0);
    expect(iir1 & IIR_NO_INT).toBe(0);
    expect(iir & IIR_NO_INT).toBe(0);
  });

  it("reports the highest-priority source in IIR: data before THR empty before modem status", () => {
    const { u, rd, wr } = uart();
    wr(IER, IER_ERBFI | IER_ETBEI | IER_EDSSI);
    wr(MCR, MCR_LOOP); // entering loopback changes DCD/DSR/CTS: modem status deltas
    u.write(MCR, 1, 0); // and leaving it again
    u.receive([7]);
    expect(rd(IIR) & 0x0f).toBe(IIR_RDI);
    rd(RBR);
    expect(rd(IIR) & 0x0f).toBe(IIR_THRI);
    expect(rd(IIR) & 0x0f).toBe(IIR_MSI); // THRI was cleared by the previous read
    expect(rd(MSR) & 0x0f).not.toBe(0);
    expect(rd(IIR) & 0x0f).toBe(IIR_NO_INT);
  });

  it("loops transmitted bytes back to the receiver in loopback mode", () => {
    const { u, rd, wr, out } = uart();
    wr(FCR, FCR_FE);
    wr(MCR, MCR_LOOP | MCR_OUT2 | MCR_RTS);
    const msr = rd(MSR);
    expect(msr & (MSR_DCD | 0x10)).toBe(MSR_DCD | 0x10);
    wr(THR, 0x55);
    wr(THR, 0xaa);
    expect(out).toEqual([]);
    u.receive([1]); // serial input is disconnected in loopback
    expect(rd(RBR)).toBe(0x55);
    expect(rd(RBR)).toBe(0xaa);
    expect(rd(LSR) & LSR_DR).toBe(0);
    wr(MCR, MCR_OUT2);
    expect(rd(RBR)).toBe(1);
  });

  it("clears modem status deltas when MSR is read", () => {
    const { rd, wr } = uart();
    wr(MCR, MCR_LOOP);
    const v = rd(MSR);
    expect(v & (MSR_DDCD | MSR_DCTS)).toBe(MSR_DDCD | MSR_DCTS);
    expect(rd(MSR) & 0x0f).toBe(0);
  });

  it("runs xv6's uartinit and uartputc/uartintr sequence", () => {
    const { u, rd, wr, out, irq } = uart();
    wr(IER, 0x00);
    wr(LCR, LCR_DLAB);
    wr(0, 0x03);
    wr(1, 0x00);
    wr(LCR, 0x03);
    wr(FCR, 0x01 | 0x06);
    wr(IER, 0x01 | 0x02);
    expect(irq()).toBe(true); // THR empty
    if (rd(LSR) & LSR_THRE) wr(THR, 0x24);
    expect(out).toEqual([0x24]);
    u.receive([0x0d]);
    // uartintr: read while LSR.DR
    const got: number[] = [];
    while (rd(LSR) & LSR_DR) got.push(rd(RBR));
    expect(got).toEqual([0x0d]);
  });

  it("saves and restores its state as plain JSON", () => {
    const a = uart();
    a.wr(FCR, FCR_FE);
    a.wr(IER, IER_ERBFI);
    a.wr(SCR, 0x5a);
    a.u.receive(Buffer.from("0123456789abcdefXYZ"));
    a.rd(RBR);
    const s = JSON.parse(JSON.stringify(a.u.state()));
    const b = uart();
    b.u.restore(s);
    expect(b.irq()).toBe(true);
    expect(b.rd(SCR)).toBe(0x5a);
    let got = "";
    while (b.rd(LSR) & LSR_DR) got += String.fromCharCode(b.rd(RBR));
    expect(got).toBe("123456789abcdefXYZ");
  });
});
