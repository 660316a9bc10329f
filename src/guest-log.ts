// Device models report what QEMU logs under -d guest_errors and -d unimp through here; the CLI's
// tracer (src/trace.ts) is the sink while those items are asked for. No sink: nothing happens.
// (A module of its own, without Node's modules, so the devices stay usable in the browser.)

export type GuestLogItem = "guest_errors" | "unimp";

let sink: ((item: GuestLogItem, text: string) => void) | undefined;

export function setGuestLogSink(f: ((item: GuestLogItem, text: string) => void) | undefined): void {
  sink = f;
}

export function guestLog(item: GuestLogItem, text: string): void {
  sink?.(item, text);
}
