// Loading a build-time CommonJS bundle with V8's code cache next to it (FILE.cache): the code
// V8 compiled for the bundle, so a process compiles none of it again. Two bundles are loaded this
// way, both on the way to a restored guest's first answer: rvm's own (dist/src/cli.bundle.cjs,
// by bin/rvm.js) and the parts of the AWS SDK an object-store restore needs (dist/s3-sdk.cjs, by
// store/objects.ts). The build writes each cache (scripts/build-cli.js, scripts/build-s3.js)
// after running the bundle's code once, so the functions a run needs are in it, not only the
// top level. V8 rejects a cache made by another Node or V8 version (or other V8 flags): the
// bundle is then compiled as usual, just slower. Node 22's module.enableCompileCache does the
// same for ES modules; Node 20 has only this (vm.Script's cachedData), hence CommonJS bundles.
//
// CommonJS (.cts), importing nothing of rvm's: bin/rvm.js, CommonJS too, requires it before the bundle.

import { existsSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { createRequire, Module } from "node:module";
import { dirname } from "node:path";
import { Script } from "node:vm";

export interface CachedBundle<T> {
  exports: T;
  /** True when a cache was there and V8 took it. */
  cacheUsed: boolean;
  /** Writes V8's code cache of everything compiled so far to FILE.cache (temp file, rename). */
  writeCache(): void;
}

/**
 * Runs the CommonJS bundle `file` (as Node would: exports, require relative to it, __filename,
 * __dirname) from V8's code cache FILE.cache when there is one and `useCache` is not false.
 */
export function loadCachedBundle<T>(file: string, { useCache = true }: { useCache?: boolean } = {}): CachedBundle<T> {
  const cacheFile = file + ".cache";
  const cachedData = useCache && existsSync(cacheFile) ? readFileSync(cacheFile) : undefined;
  const script = new Script(Module.wrap(readFileSync(file, "utf8")), { filename: file, cachedData });
  const mod = { exports: {} as T };
  const fn = script.runInThisContext() as (e: object, r: NodeRequire, m: object, f: string, d: string) => void;
  fn.call(mod.exports, mod.exports as object, createRequire(file), mod, file, dirname(file));
  return {
    exports: mod.exports,
    cacheUsed: cachedData !== undefined && !script.cachedDataRejected,
    writeCache() {
      writeFileSync(cacheFile + ".tmp", script.createCachedData());
      renameSync(cacheFile + ".tmp", cacheFile);
    },
  };
}
