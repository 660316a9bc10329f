// The terminal: the guest's serial console on stdin/stdout, with QEMU's -nographic keys.
//
// On a terminal, stdin goes raw and Ctrl-A is the escape: Ctrl-A x quits, Ctrl-A c switches
// between the console and the monitor, Ctrl-A h prints help, Ctrl-A Ctrl-A sends Ctrl-A.
// With stdin or stdout not a terminal (pipes), bytes pass straight through, so scripts can
// drive the guest; with `-monitor stdio` (monitorOnly) piped lines go to the monitor instead.
//
// The keys (EscapeKeys) and the monitor's line editing (LineEditor: backspace, Ctrl-U clears the
// line, lines bounded at MAX_MONITOR_LINE — further keys ring the bell) are plain state machines
// over bytes, shared with the browser page (src/web/page.ts), whose terminal is xterm.js.

import { MAX_MONITOR_LINE, MONITOR_BANNER, MonitorLines } from "./monitor-input.js";

const CTRL_A = 0x01;
const CTRL_U = "\x15";

export const ESCAPE_HELP = [
  "C-a h    print this help",
  "C-a x    exit emulator",
  "C-a c    switch between console and monitor",
  "C-a C-a  sends C-a",
].join("\r\n") + "\r\n";

/** One thing the Ctrl-A decoder found in the input. */
export type EscapeEvent =
  | { kind: "data"; bytes: Uint8Array }
  | { kind: "quit" }
  | { kind: "help" }
  | { kind: "switch" };

/** QEMU's -nographic escape keys over a raw byte stream (keys after Ctrl-A other than x h c C-a are dropped). */
export class EscapeKeys {
  private escape = false;

  feed(chunk: Uint8Array): EscapeEvent[] {
    const events: EscapeEvent[] = [];
    const pass: number[] = [];
    const flush = () => {
      if (pass.length === 0) return;
      events.push({ kind: "data", bytes: Uint8Array.from(pass) });
      pass.length = 0;
    };
    for (const b of chunk) {
      if (this.escape) {
        this.escape = false;
        const key = String.fromCharCode(b).toLowerCase();
        if (b === CTRL_A) pass.push(CTRL_A);
        else if (key === "x" || key === "h" || key === "c") {
          flush();
          events.push({ kind: key === "x" ? "quit" : key === "h" ? "help" : "switch" });
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
    return events;
  }
}

/** The monitor's line editing: echo, backspace, Ctrl-U, a line per Enter, at most MAX_MONITOR_LINE characters. */
export class LineEditor {
  private buffer = "";

  /** `raw`: the terminal does not echo or edit by itself (a TTY in raw mode, xterm.js). */
  constructor(private readonly raw: boolean) {}

  feed(text: string): { echo: string; lines: string[] } {
    let echo = "";
    const lines: string[] = [];
    for (const ch of text) {
      if (ch === "\r" || ch === "\n") {
        if (this.raw) echo += "\r\n";
        const line = this.buffer;
        this.buffer = "";
        if (ch === "\n" && !this.raw && line === "") continue;
        lines.push(line);
      } else if (ch === "\x7f" || ch === "\b") {
        if (this.buffer.length > 0) {
          this.buffer = this.buffer.slice(0, -1);
          if (this.raw) echo += "\b \b";
        }
      } else if (ch === CTRL_U) {
        this.buffer = "";
        if (this.raw) echo += "\r\x1b[K(rvm) ";
      } else if (this.buffer.length >= MAX_MONITOR_LINE) {
        if (this.raw) echo += "\x07";
      } else {
        this.buffer += ch;
        if (this.raw) echo += ch;
      }
    }
    return { echo, lines };
  }
}

export interface TerminalHandlers {
  /** Bytes typed for the guest. */
  guestInput(bytes: Uint8Array): void;
  /** A line typed at the monitor (when the monitor is multiplexed on stdio). */
  monitorLine(line: string): void;
  /** Ctrl-A x. */
  quit(): void;
  /** Bytes the guest has not read yet: input pauses while this is large (a piped file). */
  backlog?(): number;
  /** stdin reached its end (a pipe or file): no more input will come. */
  inputEnded?(): void;
}

const MAX_BACKLOG = 1 << 20;

export class Terminal {
  private readonly keys = new EscapeKeys();
  private readonly editor: LineEditor;
  private focus: "guest" | "monitor" = "guest";
  /** Monitor lines from a pipe (bounded, linear). */
  private readonly pipedLines = new MonitorLines(
    (line) => {
      if (line !== "") this.handlers.monitorLine(line);
    },
    (message) => this.writeMonitor(message + "\n"),
  );
  private readonly raw: boolean;
  private readonly onData = (chunk: Buffer) => {
    this.input(chunk);
    this.throttle();
  };
  private readonly onEnd = () => this.handlers.inputEnded?.();
  private throttleTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly handlers: TerminalHandlers,
    /** Multiplex the monitor on this terminal (Ctrl-A c). */
    private readonly muxMonitor: boolean,
    private readonly input_: NodeJS.ReadStream = process.stdin,
    private readonly output: NodeJS.WriteStream = process.stdout,
  ) {
    this.raw = Boolean(input_.isTTY && output.isTTY);
    this.editor = new LineEditor(this.raw);
  }

  start(): void {
    if (this.raw) this.input_.setRawMode(true);
    this.input_.on("data", this.onData);
    this.input_.on("end", this.onEnd);
    this.input_.resume();
  }

  stop(): void {
    if (this.throttleTimer) clearInterval(this.throttleTimer);
    this.input_.off("data", this.onData);
    this.input_.off("end", this.onEnd);
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
      if (this.focus === "monitor") this.pipedLines.push(chunk.toString("latin1"));
      else this.handlers.guestInput(chunk);
      return;
    }
    for (const ev of this.keys.feed(chunk)) {
      switch (ev.kind) {
        case "data":
          if (this.focus === "guest") this.handlers.guestInput(ev.bytes);
          else this.monitorText(Buffer.from(ev.bytes).toString("latin1"));
          break;
        case "quit":
          this.output.write("rvm: Terminated\r\n");
          this.handlers.quit();
          return;
        case "help":
          this.output.write(ESCAPE_HELP);
          break;
        case "switch":
          if (this.muxMonitor) this.switchFocus();
          break;
      }
    }
  }

  /** Sends everything typed to the monitor (used when -monitor stdio without a console). */
  monitorOnly(): void {
    this.focus = "monitor";
  }

  private switchFocus(): void {
    this.focus = this.focus === "guest" ? "monitor" : "guest";
    if (this.focus === "monitor") this.writeMonitor("\n" + MONITOR_BANNER + "(rvm) ");
  }

  /** Keys typed at the monitor on a terminal: echo and line editing. */
  private monitorText(text: string): void {
    const { echo, lines } = this.editor.feed(text);
    if (echo) this.output.write(echo);
    for (const line of lines) this.handlers.monitorLine(line);
  }
}
