// savevm -b into the object store under deterministic time (icount): the guest runs on and
// writes all over its memory while the save goes, and the snapshot is exactly memory at the
// instant the save started — the same as a stop-and-save at the same instruction count.

import { describe, expect, it } from "vitest";
import { join } from "node:path";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { createVirtMachine } from "../../src/board/virt.js";
import type { Machine } from "../../src/machine.js";
import { StoreMap } from "../../src/store/cas.js";
import { StoreVm } from "../../src/store/vm.js";
import { setStoreLineage } from "../../src/store/save.js";
import { GUEST, diskCopy, PROMPT } from "../snapshot/util.js";
import { freshBucket, haveRadosgw, useRadosgw } from "./rgw.js";

function guest(vm: StoreVm, disk: string): { machine: Machine; out: () => string } {
  let out = "";
  const machine = createVirtMachine({
    ramBytes: 256 << 20,
    bios: join(GUEST, "fw_dynamic.bin"),
    kernel: join(GUEST, "Image.gz"),
    initrd: join(GUEST, "initramfs.cpio.gz"),
    append: "console=ttyS0",
    drives: [{ file: disk, readonly: false, attached: true } as never],
    icountShift: 4,
    openDisk: vm.openDisk,
    console: { write: (_fd, b) => void (out += Buffer.from(b).toString("latin1")), readByte: () => -1 },
  });
  return { machine, out: () => out };
}

describe.skipIf(!haveRadosgw)("savevm -b (background) into the object store", () => {
  useRadosgw();

  it("equals a stop-and-save at the same instruction count while the guest writes all over memory", { timeout: 600_000 }, async () => {
    const url = `s3://${freshBucket("bg")}/vms`;
    const dir = mkdtempSync(join(tmpdir(), "rvm-bg-"));
    const vmA = new StoreVm(url);
    try {
      const a = guest(vmA, diskCopy(dir, "a.img"));
      await a.machine.run({ until: () => a.out().includes(PROMPT), timeoutMs: 240_000 });
      // A loop that keeps rewriting 64 MiB of fresh anonymous memory.
      a.machine.input(Buffer.from("while :; do echo quit | memfill 64 >/dev/null; done &\n"));
      await a.machine.run({ instructions: 300_000_000 });
      // The reference: a stop-and-save at this instruction count ...
      const before = a.machine.core.instret;
      const stopped = await vmA.save(a.machine, "stopped");
      expect(a.machine.core.instret).toBe(before);
      // ... and, at the same instruction count, a background save of everything (not an
      // incremental one on top of the reference), then the guest runs on until it is stored.
      setStoreLineage(a.machine, undefined);
      const job = await vmA.saveBackground(a.machine, "background");
      const at = a.machine.core.instret;
      expect(at).toBe(before);
      await a.machine.run({ until: () => job.finished !== undefined, timeoutMs: 300_000 });
      expect(job.error).toBeUndefined();
      const bg = job.manifest!;
      // The guest ran during the save and touched pages before the save had read them.
      expect(a.machine.core.instret - at).toBeGreaterThan(1_000_000n);
      expect(job.capture.copied).toBeGreaterThan(100);
      console.log(`savevm -b: guest paused ${job.pauseMs.toFixed(2)} ms, ran ${a.machine.core.instret - at} instructions ` +
        `during the save, ${job.capture.copied} pages copied ahead of it; stop-and-save paused ${(stopped.meta.stats as { pauseMs: number }).pauseMs} ms`);
      // Same machine state, same memory, page by page.
      for (const k of ["hart", "mtime", "devices", "rom"]) expect(bg.meta[k]).toEqual(stopped.meta[k]);
      const mb = new StoreMap(vmA.cs.objects, bg.map, "bg"), ms = new StoreMap(vmA.cs.objects, stopped.map, "stopped");
      await mb.loadAll();
      await ms.loadAll();
      let differ = 0;
      for (let p = 0; p < mb.entries; p++) {
        const x = mb.entry(p), y = ms.entry(p);
        if (x.kind !== y.kind || !x.hash.equals(y.hash)) differ++;
      }
      expect(differ).toBe(0);
      // And the memory the guest has now is not that memory any more.
      const now = await vmA.save(a.machine, "later");
      const ml = new StoreMap(vmA.cs.objects, now.map, "later");
      await ml.loadAll();
      let changed = 0;
      for (let p = 0; p < ml.entries; p++) if (!ml.entry(p).hash.equals(mb.entry(p).hash)) changed++;
      expect(changed).toBeGreaterThan(1000);
      expect((await vmA.cs.manifests()).map((m) => m.name).sort()).toEqual(["background", "later", "stopped"]);
    } finally {
      vmA.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
