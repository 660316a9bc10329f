// NS16550A UART, as on QEMU's virt board (hw/char/serial.c): base 0x1000_0000, reg-shift 0,
// IRQ 10. Register semantics follow the National Semiconductor PC16550D datasheet, which is
// what Linux's 8250 driver (drivers/tty/serial/8250) and xv6-riscv's uart.c program against.
//
//   offset  read (DLAB=0)  write (DLAB=0)  DLAB=1
//   0       RBR            THR             DLL
//   1       IER            IER             DLM
//   2       IIR            FCR
//   3       LCR            LCR
//   4       MCR            MCR
//   5       LSR            (factory test, ignored)
//   6       MSR            (ignored)
//   7       SCR            SCR
//
// Transmission is instantaneous: a byte written to THR goes to the output callback at once, so
// LSR.THRE and LSR.TEMT are always set. Received bytes from the host wait in a backlog and
// enter the 16-byte receive FIFO (1 byte with FIFOs disabled) as the guest drains it: input is
// never lost (the backlog acts as flow control), so LSR.OE never occurs.
//
// Interrupts (datasheet table "Interrupt Control Functions"), in priority order:
//   receiver line status (IIR 0x6), received data available (0x4), THR empty (0x2), modem
//   status (0x0). "Data available" is reported whenever the FIFO holds data and IER.ERBFI is
//   set (the FIFO trigger level is not modelled, so there is no character timeout). The
//   THR-empty interrupt is set when THR empties (after every write) and when IER.ETBEI is
//   turned on while THR is empty; it is cleared by reading IIR while it is the reported source,
//   or by writing THR — Linux's UART_BUG_THRE probe and its transmit path rely on exactly this.
//
// The interrupt callback is called whenever the interrupt state is re-evaluated (like QEMU's
// serial_update_irq, which calls qemu_set_irq each time), not only when it changes: the PLIC
// latches a request on every call with `true` (see plic.ts for why).

import type { MmioHandler } from "../core.js";
import { guestLog } from "../guest-log.js";


// Register offsets (reg-shift 0).
export const RBR = 0; // receiver buffer (read, DLAB=0)
export const THR = 0; // transmitter holding (write, DLAB=0)
export const DLL = 0; // divisor latch low (DLAB=1)
export const IER = 1; // interrupt enable (DLAB=0)
export const DLM = 1; // divisor latch high (DLAB=1)
export const IIR = 2; // interrupt identification (read)
export const FCR = 2; // FIFO control (write)
export const LCR = 3; // line control
export const MCR = 4; // modem control
export const LSR = 5; // line status
export const MSR = 6; // modem status
export const SCR = 7; // scratch

// IER bits.
export const IER_ERBFI = 0x01; // received data available
export const IER_ETBEI = 0x02; // transmitter holding register empty
export const IER_ELSI = 0x04; // receiver line status
export const IER_EDSSI = 0x08; // modem status

// IIR values (bits 3:0); bits 7:6 are set when the FIFOs are enabled.
export const IIR_NO_INT = 0x01;
export const IIR_MSI = 0x00;
export const IIR_THRI = 0x02;
export const IIR_RDI = 0x04;
export const IIR_RLSI = 0x06;
export const IIR_FIFO_ENABLED = 0xc0;

// FCR bits.
export const FCR_FE = 0x01; // FIFO enable
export const FCR_RFR = 0x02; // receiver FIFO reset
export const FCR_XFR = 0x04; // transmitter FIFO reset
export const FCR_DMS = 0x08; // DMA mode select
export const FCR_ITL = 0xc0; // receiver trigger level

// LCR bits.
export const LCR_DLAB = 0x80;

// MCR bits.
export const MCR_DTR = 0x01;
export const MCR_RTS = 0x02;
export const MCR_OUT1 = 0x04;
export const MCR_OUT2 = 0x08;
export const MCR_LOOP = 0x10;

// LSR bits.
export const LSR_DR = 0x01; // data ready
export const LSR_OE = 0x02; // overrun error
export const LSR_BI = 0x10; // break interrupt
export const LSR_THRE = 0x20; // THR empty
export const LSR_TEMT = 0x40; // transmitter empty

// MSR bits.
export const MSR_DCTS = 0x01;
export const MSR_DDSR = 0x02;
export const MSR_TERI = 0x04;
export const MSR_DDCD = 0x08;
export const MSR_CTS = 0x10;
export const MSR_DSR = 0x20;
export const MSR_RI = 0x40;
export const MSR_DCD = 0x80;

const FIFO_SIZE = 16;

/** Everything a snapshot needs to bring the UART back; plain JSON. */
export interface UartState {
  ier: number;
  fcr: number;
  lcr: number;
  mcr: number;
  msr: number;
  scr: number;
  dll: number;
  dlm: number;
  lsrErrors: number;
  thrIpending: boolean;
  rxFifo: number[];
  backlog: number[];
}

export class Uart16550 implements MmioHandler {
  private ier = 0;
  private fcr = 0;
  private lcr = 0;
  private mcr = MCR_OUT2;
  /** Modem status: lines in bits 7:4, deltas in bits 3:0. */
  private msr = MSR_DCD | MSR_DSR | MSR_CTS;
  private scr = 0;
  private dll = 0x0c; // 9600 baud at 1.8432 MHz, the power-on value of many BIOSes; unused
  private dlm = 0;
  /** LSR error bits (OE, BI) cleared by reading LSR. */
  private lsrErrors = 0;
  private thrIpending = false;
  private rxFifo: number[] = [];
  /** Host input not yet in the FIFO: backlog[backlogHead..]. */
  private backlog: number[] = [];
  private backlogHead = 0;

  /**
   * @param output receives each byte the guest transmits
   * @param irq the interrupt line, re-evaluated after every register access
   */
  constructor(
    private readonly output: (byte: number) => void,
    private readonly irq: (level: boolean) => void = () => {},
  ) {}

  /** Bytes from the host (keyboard, pipe) for the guest to read. */
  receive(bytes: Uint8Array | readonly number[]): void {
    for (const b of bytes) this.backlog.push(b & 0xff);
    this.refill();
    this.update();
  }

  /** Bytes received from the host that the guest has not read yet. */
  pendingInput(): number {
    return this.rxFifo.length + this.backlog.length - this.backlogHead;
  }

  private get fifoEnabled(): boolean {
    return (this.fcr & FCR_FE) !== 0;
  }

  private get loopback(): boolean {
    return (this.mcr & MCR_LOOP) !== 0;
  }

  private refill(): void {
    if (this.loopback) return; // in loopback the serial input is disconnected
    const cap = this.fifoEnabled ? FIFO_SIZE : 1;
    while (this.rxFifo.length < cap && this.backlogHead < this.backlog.length) {
      this.rxFifo.push(this.backlog[this.backlogHead++]);
    }
    if (this.backlogHead === this.backlog.length) {
      this.backlog = [];
      this.backlogHead = 0;
    } else if (this.backlogHead > 4096) {
      this.backlog = this.backlog.slice(this.backlogHead);
      this.backlogHead = 0;
    }
  }

  private lsr(): number {
    return (this.rxFifo.length > 0 ? LSR_DR : 0) | LSR_THRE | LSR_TEMT | this.lsrErrors;
  }

  /** The highest-priority pending interrupt, as IIR bits 3:0. */
  private interruptId(): number {
    if (this.ier & IER_ELSI && this.lsrErrors) return IIR_RLSI;
    if (this.ier & IER_ERBFI && this.rxFifo.length > 0) return IIR_RDI;
    if (this.ier & IER_ETBEI && this.thrIpending) return IIR_THRI;
    if (this.ier & IER_EDSSI && this.msr & 0x0f) return IIR_MSI;
    return IIR_NO_INT;
  }

  private update(): void {
    this.irq(this.interruptId() !== IIR_NO_INT);
  }

  /** In loopback the modem inputs follow the modem outputs (datasheet: MCR bit 4). */
  private setModemLines(lines: number): void {
    const old = this.msr;
    let delta = old & 0x0f;
    const changed = (old ^ lines) & 0xf0;
    if (changed & MSR_CTS) delta |= MSR_DCTS;
    if (changed & MSR_DSR) delta |= MSR_DDSR;
    if (changed & MSR_DCD) delta |= MSR_DDCD;
    if (old & MSR_RI && !(lines & MSR_RI)) delta |= MSR_TERI; // trailing edge of RI
    this.msr = lines | delta;
  }

  private modemLinesFromMcr(): number {
    if (!this.loopback) return MSR_DCD | MSR_DSR | MSR_CTS;
    let lines = 0;
    if (this.mcr & MCR_RTS) lines |= MSR_CTS;
    if (this.mcr & MCR_DTR) lines |= MSR_DSR;
    if (this.mcr & MCR_OUT1) lines |= MSR_RI;
    if (this.mcr & MCR_OUT2) lines |= MSR_DCD;
    return lines;
  }

  private transmit(byte: number): void {
    if (this.loopback) {
      const cap = this.fifoEnabled ? FIFO_SIZE : 1;
      if (this.rxFifo.length < cap) this.rxFifo.push(byte);
      else this.lsrErrors |= LSR_OE;
    } else {
      this.output(byte);
    }
  }

  read(offset: number, _size: number): number {
    const dlab = (this.lcr & LCR_DLAB) !== 0;
    switch (offset) {
      case RBR: {
        if (dlab) return this.dll;
        const byte = this.rxFifo.length > 0 ? this.rxFifo.shift()! : 0;
        this.refill();
        this.update();
        return byte;
      }
      case IER:
        return dlab ? this.dlm : this.ier;
      case IIR: {
        const id = this.interruptId();
        if (id === IIR_THRI) {
          this.thrIpending = false;
          this.update();
        }
        return id | (this.fifoEnabled ? IIR_FIFO_ENABLED : 0);
      }
      case LCR:
        return this.lcr;
      case MCR:
        return this.mcr;
      case LSR: {
        const v = this.lsr();
        if (this.lsrErrors) {
          this.lsrErrors = 0;
          this.update();
        }
        return v;
      }
      case MSR: {
        const v = this.msr;
        if (v & 0x0f) {
          this.msr &= 0xf0;
          this.update();
        }
        return v;
      }
      case SCR:
        return this.scr;
      default:
        return 0;
    }
  }

  write(offset: number, _size: number, value: number): void {
    const v = value & 0xff;
    const dlab = (this.lcr & LCR_DLAB) !== 0;
    switch (offset) {
      case THR:
        if (dlab) {
          this.dll = v;
          return;
        }
        this.thrIpending = false;
        this.transmit(v);
        // The byte left at once: THR is empty again, which raises THRI if enabled.
        this.thrIpending = true;
        this.update();
        return;
      case IER: {
        if (dlab) {
          this.dlm = v;
          return;
        }
        const changed = (this.ier ^ v) & 0x0f;
        this.ier = v & 0x0f; // bits 7:4 read as 0 (Linux probes this)
        // Enabling ETBEI while THR is empty interrupts at once (Linux's UART_BUG_THRE test,
        // and QEMU, which samples on every change of the bit).
        if (changed & IER_ETBEI) this.thrIpending = (this.ier & IER_ETBEI) !== 0;
        this.update();
        return;
      }
      case FCR: {
        let f = v;
        // Changing FCR.FE clears both FIFOs (datasheet, FCR bit 0).
        if ((f ^ this.fcr) & FCR_FE) f |= FCR_RFR | FCR_XFR;
        if (f & FCR_RFR) this.rxFifo = [];
        this.fcr = f & (FCR_FE | FCR_DMS | FCR_ITL);
        this.refill();
        this.update();
        return;
      }
      case LCR:
        this.lcr = v;
        return;
      case MCR: {
        const wasLoop = this.loopback;
        this.mcr = v & 0x1f;
        this.setModemLines(this.modemLinesFromMcr());
        if (wasLoop && !this.loopback) this.refill();
        this.update();
        return;
      }
      case SCR:
        this.scr = v;
        return;
      default: // LSR and MSR writes are factory test modes: ignored
        guestLog("unimp", `serial: write to ${offset === 5 ? "LSR" : "MSR"} (factory test mode) not implemented: 0x${v.toString(16)}`);
        return;
    }
  }

  state(): UartState {
    return {
      ier: this.ier,
      fcr: this.fcr,
      lcr: this.lcr,
      mcr: this.mcr,
      msr: this.msr,
      scr: this.scr,
      dll: this.dll,
      dlm: this.dlm,
      lsrErrors: this.lsrErrors,
      thrIpending: this.thrIpending,
      rxFifo: [...this.rxFifo],
      backlog: this.backlog.slice(this.backlogHead),
    };
  }

  restore(s: UartState): void {
    this.ier = s.ier & 0x0f;
    this.fcr = s.fcr;
    this.lcr = s.lcr;
    this.mcr = s.mcr & 0x1f;
    this.msr = s.msr;
    this.scr = s.scr;
    this.dll = s.dll;
    this.dlm = s.dlm;
    this.lsrErrors = s.lsrErrors;
    this.thrIpending = s.thrIpending;
    this.rxFifo = [...s.rxFifo];
    this.backlog = [...s.backlog];
    this.backlogHead = 0;
    this.update();
  }
}
