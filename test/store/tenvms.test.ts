// Ten VMs booted from one image, each doing a little work of its own, saved into one bucket:
// the bytes in the store against the sum of their ten separate local snapshots. The store keeps
// each page once: the kernel, the shared page cache, the image's blocks.

import { describe, expect, it } from "vitest";
import { join } from "node:path";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { createVirtMachine } from "../../src/board/virt.js";
import { saveSnapshot } from "../../src/snapshot/save.js";
import { SnapshotStore } from "../../src/snapshot/store.js";
import { storeCommand, StoreVm } from "../../src/store/vm.js";
import { ContentStore } from "../../src/store/cas.js";
import { S3ObjectStore } from "../../src/store/objects.js";
import { GUEST, diskCopy, PROMPT } from "../snapshot/util.js";
import { freshBucket, haveRadosgw, useRadosgw } from "./rgw.js";

describe.skipIf(!haveRadosgw)("ten desktops in one bucket", () => {
  useRadosgw();

  it("store bytes are far below the sum of ten local snapshots", { timeout: 900_000 }, async () => {
    const url = `s3://${freshBucket("ten")}/desktops`;
    const dir = mkdtempSync(join(tmpdir(), "rvm-ten-"));
    try {
      const image = diskCopy(dir, "image.img");
      expect(await storeCommand(url, "push-image", image)).toMatch(/pushed .* as image [0-9a-f]+/);
      let local = 0;
      let first = 0;
      const vm = new StoreVm(url);
      for (let i = 0; i < 10; i++) {
        let out = "";
        const machine = createVirtMachine({
          ramBytes: 256 << 20, bios: join(GUEST, "fw_dynamic.bin"), kernel: join(GUEST, "Image.gz"),
          initrd: join(GUEST, "initramfs.cpio.gz"), append: "console=ttyS0",
          drives: [{ file: diskCopy(dir, `vm${i}.img`), readonly: false, attached: true } as never],
          openDisk: vm.openDisk,
          console: { write: (_fd, b) => void (out += Buffer.from(b).toString("latin1")), readByte: () => -1 },
        });
        await machine.run({ until: () => out.includes(PROMPT), timeoutMs: 240_000 });
        const mark = out.length;
        machine.input(Buffer.from(`mount /dev/vda /mnt && cat /mnt/data/* >/dev/null && echo vm${i} > /mnt/id && seq 1 ${2000 + 1000 * i} > /root/s && echo done-${i}\n`));
        await machine.run({ until: () => out.slice(mark).includes(`done-${i}\r\n`), timeoutMs: 240_000 });
        const localStore = new SnapshotStore(join(dir, `local${i}`));
        local += saveSnapshot(machine, localStore, "desk").stats.fileBytes;
        localStore.close();
        await vm.save(machine, `desk${i}`);
        if (i === 0) first = (await vm.cs.usage()).bytes;
        vm.disks.clear();
      }
      vm.close();
      const cs = new ContentStore(S3ObjectStore.fromUrl(url));
      const store = (await cs.usage()).bytes;
      const MiB = (n: number) => `${(n / (1 << 20)).toFixed(1)} MiB`;
      console.log(`ten VMs: ${MiB(store)} in the store (after the first VM and the image: ${MiB(first)}) vs ${MiB(local)} of ten local snapshots`);
      expect(store).toBeLessThan(local / 3);
      expect((await storeCommand(url, "ls")).match(/desk\d/g)).toHaveLength(10);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
