// Monitor input: text in, command lines out — for the monitor's socket and for a monitor on
// piped stdin. Bounded and linear: each chunk is scanned once, a line longer than
// MAX_MONITOR_LINE is not kept (its bytes are dropped as they arrive, and one error is reported
// when its newline comes), so a client that never sends a newline costs neither memory nor time.
// Ctrl-U (0x15) clears the line typed so far, as in a terminal's line discipline.

export const MAX_MONITOR_LINE = 64 * 1024;

/** What a monitor prints when a client connects or the console switches to it (as QEMU's). */
export const MONITOR_BANNER = "rvm monitor - type 'help' for more information\n";

export const LINE_TOO_LONG = `Error: command line too long (more than ${MAX_MONITOR_LINE} bytes), discarded`;


export class MonitorLines {
  private parts: string[] = [];
  private length = 0;
  /** The current line outgrew the limit: its text is being dropped until its newline. */
  private discarding = false;

  constructor(
    private readonly onLine: (line: string) => void,
    /** A line was too long (called at its newline, once per line). */
    private readonly onTooLong: (message: string) => void,
    readonly max = MAX_MONITOR_LINE,
  ) {}

  push(text: string): void {
    let from = 0;
    let lf = text.indexOf("\n");
    let kill = text.indexOf("\x15");
    while (lf >= 0 || kill >= 0) {
      const i = lf >= 0 && (kill < 0 || lf < kill) ? lf : kill;
      this.append(text, from, i);
      from = i + 1;
      if (i === kill) {
        this.clear();
        kill = text.indexOf("\x15", from);
      } else {
        this.endLine();
        lf = text.indexOf("\n", from);
      }
    }
    this.append(text, from, text.length);
  }

  /** Bytes of the line being typed (for tests and the terminal's echo). */
  get pending(): number {
    return this.length;
  }

  private append(text: string, from: number, to: number): void {
    if (to <= from || this.discarding) return;
    if (this.length + (to - from) > this.max) {
      this.clear();
      this.discarding = true;
      return;
    }
    this.parts.push(text.slice(from, to));
    this.length += to - from;
  }

  private clear(): void {
    this.parts = [];
    this.length = 0;
    this.discarding = false;
  }

  private endLine(): void {
    const tooLong = this.discarding;
    const line = this.parts.join("").replace(/\r$/, "");
    this.clear();
    if (tooLong) this.onTooLong(LINE_TOO_LONG);
    else this.onLine(line);
  }
}
