// The messages between the page (src/web/page.ts, the UI thread) and the worker that runs the
// machine (src/web/worker.ts). Types only.

/** A file the worker puts into its file system before the machine is built. */
export interface ManifestFile {
  /** Where the board will look for it (the path the CLI would use). */
  path: string;
  /** Where to fetch it, relative to the page. */
  url: string;
  /** The bytes at `url` are gzip-compressed (unpacked in the worker). */
  gzip?: boolean;
}

/** What to run: served as guest.json by `rvm web`, and written by `npm run build:web`. */
export interface Manifest {
  /** The package's root in the worker's file system (build/core.wasm, guests/linux/...). */
  packageRoot: string;
  /** The guest, classified exactly as `rvm run GUEST` does. */
  guest: string;
  /** `-m`, in bytes, if given. */
  memory?: number;
  files: ManifestFile[];
  /** Where the guest came from, for the page's title. */
  label: string;
}

export type ToWorker =
  | {
    type: "start"; manifest: Manifest; base: string; dropped?: { name: string; bytes: Uint8Array }[];
    /** A snapshot archive (NAME.rvmsnap.zip) to restore, with its disks, instead of booting the guest. */
    bundle?: { name: string; bytes: Uint8Array };
    /** The browser storage to keep snapshots and disks in: opfs, indexeddb or memory (default: the best there is). */
    storage?: string;
  }
  | { type: "input"; bytes: Uint8Array }
  | { type: "monitor"; line: string }
  | { type: "quit" }
  /** Ask for the page-state grid (answered with "pages"). */
  | { type: "pages" }
  /** A snapshot file to hand to the user (answered with "file"), or one the user gives. */
  | { type: "download"; name: string }
  | { type: "upload"; name: string; bytes: Uint8Array };

export interface PagesReport {
  /** One class per RAM page (PageClass in src/snapshot/pictures.ts). */
  classes: Uint8Array;
  /** SVG of the restore or checkpoint curves, when there is one to show. */
  chart?: string;
  /** One line: what the grid shows. */
  caption: string;
  /** The restore is still running (the page polls faster). */
  busy: boolean;
}

export type FromWorker =
  | { type: "loading"; text: string }
  | { type: "console"; bytes: Uint8Array }
  | { type: "stderr"; text: string }
  | { type: "monitor"; text: string }
  | { type: "running"; ramBytes: number; label: string; storage: string }
  | { type: "pages"; report: PagesReport }
  /** The snapshots in the store (after every monitor command). */
  | { type: "snapshots"; names: string[] }
  | { type: "file"; name: string; bytes: Uint8Array }
  | { type: "exit"; code: number; text: string }
  | { type: "error"; text: string };
