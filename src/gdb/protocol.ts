// GDB remote serial protocol framing (gdb manual, "Overview" of the remote protocol):
// packets are `$data#cc` with a two-digit hex checksum, acknowledged with `+` (or `-` to ask
// for a resend) until no-ack mode is agreed; `}` escapes `#`, `$`, `}` and `*` (XOR 0x20); a
// lone 0x03 byte outside a packet is an interrupt request (Ctrl-C).
//
// The decoder is fed whatever the socket delivers and never trusts it: garbage between packets
// is skipped, a bad checksum is answered with `-`, and a packet longer than `maxPacket` closes
// the connection (the caller's `onError`), so no input can make it buffer without bound.

export type ProtocolEvent =
  | { kind: "packet"; data: Buffer }
  | { kind: "interrupt" }
  | { kind: "ack" }
  | { kind: "nack" };

export class PacketDecoder {
  private state: "idle" | "data" | "escape" | "sum1" | "sum2" = "idle";
  private buf: Buffer;
  private len = 0;
  private sum = 0;
  private sumText = "";

  constructor(private readonly maxPacket: number) {
    this.buf = Buffer.alloc(Math.min(maxPacket, 4096));
  }

  /** Feeds bytes; returns the complete events (a bad checksum yields a "bad" packet). */
  feed(chunk: Buffer): (ProtocolEvent | { kind: "bad" } | { kind: "overflow" })[] {
    const out: (ProtocolEvent | { kind: "bad" } | { kind: "overflow" })[] = [];
    for (const b of chunk) {
      switch (this.state) {
        case "idle":
          if (b === 0x24) { // $
            this.state = "data";
            this.len = 0;
            this.sum = 0;
          } else if (b === 0x03) out.push({ kind: "interrupt" });
          else if (b === 0x2b) out.push({ kind: "ack" });
          else if (b === 0x2d) out.push({ kind: "nack" });
          break; // anything else between packets is noise
        case "data":
        case "escape":
          if (this.state === "data" && b === 0x23) { // #
            this.state = "sum1";
            break;
          }
          this.sum = (this.sum + b) & 0xff;
          if (this.state === "data" && b === 0x7d) { // }
            this.state = "escape";
            break;
          }
          if (!this.push(this.state === "escape" ? b ^ 0x20 : b)) {
            this.state = "idle";
            out.push({ kind: "overflow" });
            return out;
          }
          this.state = "data";
          break;
        case "sum1":
          this.sumText = String.fromCharCode(b);
          this.state = "sum2";
          break;
        case "sum2": {
          this.sumText += String.fromCharCode(b);
          this.state = "idle";
          const given = /^[0-9a-fA-F]{2}$/.test(this.sumText) ? parseInt(this.sumText, 16) : -1;
          if (given !== this.sum) out.push({ kind: "bad" });
          else out.push({ kind: "packet", data: Buffer.from(this.buf.subarray(0, this.len)) });
          break;
        }
      }
    }
    return out;
  }

  private push(b: number): boolean {
    if (this.len >= this.maxPacket) return false;
    if (this.len === this.buf.length) {
      const bigger = Buffer.alloc(Math.min(this.maxPacket, this.buf.length * 2));
      this.buf.copy(bigger);
      this.buf = bigger;
    }
    this.buf[this.len++] = b;
    return true;
  }
}

/** Frames a reply: `$data#cc`, escaping the bytes the protocol reserves. */
export function framePacket(data: string | Buffer): Buffer {
  const src = typeof data === "string" ? Buffer.from(data, "latin1") : data;
  const out: number[] = [0x24];
  let sum = 0;
  for (const b of src) {
    if (b === 0x23 || b === 0x24 || b === 0x7d || b === 0x2a) {
      out.push(0x7d, b ^ 0x20);
      sum += 0x7d + (b ^ 0x20);
    } else {
      out.push(b);
      sum += b;
    }
  }
  out.push(0x23);
  const cs = (sum & 0xff).toString(16).padStart(2, "0");
  out.push(cs.charCodeAt(0), cs.charCodeAt(1));
  return Buffer.from(out);
}

export function toHex(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString("hex");
}

/** A 64-bit register value as gdb wants it: 8 bytes, little-endian, in hex. */
export function regHex(v: bigint, bytes = 8): string {
  const b = Buffer.alloc(bytes);
  let x = BigInt.asUintN(bytes * 8, v);
  for (let i = 0; i < bytes; i++) {
    b[i] = Number(x & 0xffn);
    x >>= 8n;
  }
  return b.toString("hex");
}

export function parseRegHex(hex: string): bigint {
  let v = 0n;
  for (let i = hex.length - 2; i >= 0; i -= 2) v = (v << 8n) | BigInt(parseInt(hex.slice(i, i + 2), 16));
  return v;
}
