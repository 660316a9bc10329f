// The terminal: the guest's serial console on stdin/stdout, with QEMU's -nographic keys.
//
// On a terminal, stdin goes raw and Ctrl-A is the escape: Ctrl-A x quits, Ctrl-A c switches
// between the console and the monitor, Ctrl-A h prints help, Ctrl-A Ctrl-A sends Ctrl-A.
// With stdin or stdout not a terminal (pipes), bytes pass straight through, so scripts can
// drive the guest.

const CTRL_A = 0x01;

export const ESCAPE_HELP = [
  "C-a h    print this help",
  "C-a x    exit emulator",
  "C-a c    switch between console and monitor",
  "C-a C-a  sends C-a",
].join("\r\n") + "\r\n";

export interface TerminalHandlers {
  /** Bytes typed for the guest. */
  guestInput(bytes: Uint8Array): void;
  /** A line typed at the monitor (when the monitor is multiplexed on stdio). */
  monitorLine(line: string): void;
  /** Ctrl-A x. */
  quit(): void;
  /** Bytes the guest has not read yet: input pauses while this is large (a piped file). */
  backlog?(): number;
}

const MAX_BACKLOG = 1 << 20;

export class Terminal {
  private escape = false;
  private focus: "guest" | "monitor" = "guest";
  private monitorBuffer = "";
  private readonly raw: boolean;
  private readonly onData = (chunk: Buffer) => {
    this.input(chunk);
    this.throttle();
  };
  private throttleTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly handlers: TerminalHandlers,
    /** Multiplex the monitor on this terminal (Ctrl-A c). */
    private readonly muxMonitor: boolean,
    private readonly input_: NodeJS.ReadStream = process.stdin,
    private readonly output: NodeJS.WriteStream = process.stdout,
  ) {
    this.raw = Boolean(input_.isTTY && output.isTTY);
  }

  start(): void {
    if (this.raw) this.input_.setRawMode(true);
    this.input_.on("data", this.onData);
    this.input_.resume();
  }

  stop(): void {
    if (this.throttleTimer) clearInterval(this.throttleTimer);
    this.input_.off("data", this.onData);
    if (this.raw) this.input_.setRawMode(false);
    this.input_.pause();
  }

  /** Holds stdin back while the guest has a megabyte of unread input. */
  private throttle(): void {
    const backlog = this.handlers.backlog;
    if (!backlog || this.throttleTimer || backlog() < MAX_BACKLOG) return;
    this.input_.pause();
    this.throttleTimer = setInterval(() => {
      if (backlog() >= MAX_BACKLOG / 2) return;
      clearInterval(this.throttleTimer);
      this.throttleTimer = undefined;
      this.input_.resume();
    }, 20);
  }

  /** Output from the guest's console. */
  writeGuest(bytes: Uint8Array): void {
    this.output.write(bytes);
  }

  /** Output from the monitor. */
  writeMonitor(text: string): void {
    this.output.write(this.raw ? text.replace(/\r?\n/g, "\r\n") : text);
  }

  get monitorFocused(): boolean {
    return this.focus === "monitor";
  }

  private input(chunk: Buffer): void {
    if (!this.raw) {
      // Pipes: no escapes; with the monitor on stdio (and no console), lines go to it.
      if (this.focus === "monitor") this.monitorText(chunk.toString("latin1"));
      else this.handlers.guestInput(chunk);
      return;
    }
    const pass: number[] = [];
    const flush = () => {
      if (pass.length === 0) return;
      const bytes = Uint8Array.from(pass);
      pass.length = 0;
      if (this.focus === "guest") this.handlers.guestInput(bytes);
      else this.monitorText(Buffer.from(bytes).toString("latin1"));
    };
    for (const b of chunk) {
      if (this.escape) {
        this.escape = false;
        const key = String.fromCharCode(b).toLowerCase();
        if (b === CTRL_A) pass.push(CTRL_A);
        else if (key === "x") {
          flush();
          this.output.write("rvm: Terminated\r\n");
          this.handlers.quit();
          return;
        } else if (key === "h") {
          flush();
          this.output.write(ESCAPE_HELP);
        } else if (key === "c" && this.muxMonitor) {
          flush();
          this.switchFocus();
        }
        continue;
      }
      if (b === CTRL_A) {
        flush();
        this.escape = true;
        continue;
      }
      pass.push(b);
    }
    flush();
  }

  /** Sends everything typed to the monitor (used when -monitor stdio without a console). */
  monitorOnly(): void {
    this.focus = "monitor";
  }

  private switchFocus(): void {
    this.focus = this.focus === "guest" ? "monitor" : "guest";
    if (this.focus === "monitor") this.writeMonitor("\n(rvm) ");
  }

  private monitorText(text: string): void {
    for (const ch of text) {
      if (ch === "\r" || ch === "\n") {
        if (this.raw) this.output.write("\r\n");
        const line = this.monitorBuffer;
        this.monitorBuffer = "";
        if (ch === "\n" && !this.raw && line === "") continue;
        this.handlers.monitorLine(line);
      } else if (ch === "\x7f" || ch === "\b") {
        if (this.monitorBuffer.length > 0) {
          this.monitorBuffer = this.monitorBuffer.slice(0, -1);
          if (this.raw) this.output.write("\b \b");
        }
      } else {
        this.monitorBuffer += ch;
        if (this.raw) this.output.write(ch);
      }
    }
  }
}
