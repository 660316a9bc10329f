#!/usr/bin/env node
// Part of `npm install`: unpacks the gzipped bootable disk image guests/linux.img.gz into
// guests/linux.img (not tracked by git), so `npx rvm run guests/linux.img` works and the
// guest's writes persist in the unpacked image. An existing, newer image is left alone.
import { createReadStream, createWriteStream, existsSync, renameSync, statSync } from "node:fs";
import { pipeline } from "node:stream/promises";
import { createGunzip } from "node:zlib";

const root = new URL("..", import.meta.url).pathname;
for (const name of ["guests/linux.img"]) {
  const src = root + name + ".gz";
  const dst = root + name;
  if (!existsSync(src)) continue;
  if (existsSync(dst) && statSync(dst).mtimeMs >= statSync(src).mtimeMs) continue;
  const tmp = dst + ".tmp";
  await pipeline(createReadStream(src), createGunzip(), createWriteStream(tmp));
  renameSync(tmp, dst);
  console.log(`unpacked ${name}`);
}
