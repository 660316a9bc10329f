// Pictures of RAM: one class per 4 KiB page, a colour per class. The page's live grid
// (src/web/page.ts) and the SVG files (`--plot`) draw the same classes in the same colours.

import { PageState } from "../core.js";

export const enum PageClass {
  /** Live machine: never written since boot, or unchanged since the last savevm/loadvm. */
  Clean = 0,
  /** Live machine: written since boot or since the last savevm/loadvm. */
  Written = 1,
  /** Still equal to a disk block (the page cache): a checkpoint stores a reference. */
  Disk = 2,
  /** Lazy restore: not yet restored. */
  NotRestored = 3,
  /** Lazy restore: brought in because the guest touched it (a demand fault). */
  Demand = 4,
  /** Lazy restore: read from the snapshot file by the background fetcher. */
  Prefetched = 5,
  /** Checkpoint: all zero, no bytes stored. */
  Zero = 6,
  /** Checkpoint: identical to another stored page. */
  Same = 7,
  /** Checkpoint: its bytes are in the file. */
  Stored = 8,
  /** Checkpoint: unchanged since the parent snapshot, whose file holds it (incremental save). */
  Inherited = 9,
}

export const PAGE_CLASSES: readonly { name: string; color: string }[] = [
  { name: "clean (untouched, or unchanged since the last snapshot)", color: "#e9ecef" },
  { name: "written", color: "#4e79a7" },
  { name: "disk-backed", color: "#59a14f" },
  { name: "not yet restored", color: "#3b4252" },
  { name: "restored on demand", color: "#e15759" },
  { name: "prefetched", color: "#76b7f2" },
  { name: "zero", color: "#f5f5f5" },
  { name: "same-as", color: "#edc948" },
  { name: "stored", color: "#4e79a7" },
  { name: "in a parent snapshot", color: "#b07aa1" },
];

/** The live machine's pages, from the core's page-state bytes. */
export function liveClasses(states: Uint8Array, out = new Uint8Array(states.length)): Uint8Array {
  for (let p = 0; p < states.length; p++) {
    const s = states[p];
    out[p] = s & PageState.NotRestored ? PageClass.NotRestored
      : s & PageState.Disk ? PageClass.Disk
      : s & PageState.Dirty ? PageClass.Written
      : PageClass.Clean;
  }
  return out;
}

/** How many pages of each class. */
export function classCounts(classes: Uint8Array): number[] {
  const counts = new Array<number>(PAGE_CLASSES.length).fill(0);
  for (const c of classes) counts[c]++;
  return counts;
}
