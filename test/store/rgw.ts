// A real S3 server for the store tests: Ceph's radosgw on a throw-away single-node cluster
// (scripts/radosgw.js), started once per test file and stopped after it (exactly the processes
// it started). Where Ceph is not installed the tests skip, and say so loudly.

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll } from "vitest";
// @ts-expect-error plain JavaScript module (also run as a script)
import { radosgwMissing, startRadosgw } from "../../scripts/radosgw.js";

export interface Gateway {
  dir: string;
  endpoint: string;
  accessKeyId: string;
  secretAccessKey: string;
  region: string;
  env: Record<string, string>;
  stop(): Promise<void>;
  pause(): void;
  resume(): void;
  pids(): { name: string; pid: number }[];
}

export const missing: string[] = radosgwMissing();
export const haveRadosgw = missing.length === 0;
if (!haveRadosgw) {
  console.warn(`\n*** SKIPPING object-store tests: Ceph is not installed (${missing.join(", ")} missing).\n` +
    "*** apt-get install --no-install-recommends ceph-mon ceph-mgr ceph-osd radosgw ceph-common\n");
}

/**
 * Starts radosgw before the file's tests and stops it after; sets the AWS_* variables of this
 * process to it (the SDK reads them like any user's). Returns a getter.
 */
export function useRadosgw(): () => Gateway {
  let gw: Gateway | undefined;
  let dir: string | undefined;
  const saved: Record<string, string | undefined> = {};
  beforeAll(async () => {
    if (!haveRadosgw) return;
    dir = mkdtempSync(join(tmpdir(), "rvm-rgw-"));
    gw = (await startRadosgw({ dir, memstore: true })) as Gateway;
    for (const [k, v] of Object.entries(gw.env)) {
      saved[k] = process.env[k];
      process.env[k] = v;
    }
  }, 180_000);
  afterAll(async () => {
    await gw?.stop();
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
    if (dir) rmSync(dir, { recursive: true, force: true });
  }, 60_000);
  return () => {
    if (!gw) throw new Error("radosgw is not running");
    return gw;
  };
}

let buckets = 0;
/** A bucket name no other test in this run uses. */
export function freshBucket(tag = "b"): string {
  return `rvm-${tag}-${process.pid}-${buckets++}`;
}
