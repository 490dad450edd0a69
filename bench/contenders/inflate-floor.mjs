#!/usr/bin/env node
// Decompression-only floor: inflate every gzipped file named on the command line and throw the bytes away.
// No parsing and no output: the physical limit of anything that has to read these files.
import { createReadStream } from "node:fs";
import { Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { createGunzip } from "node:zlib";

for (const file of process.argv.slice(2)) {
  await pipeline(
    createReadStream(file, { highWaterMark: 1 << 20 }),
    createGunzip({ chunkSize: 1 << 20 }),
    new Writable({
      write(_chunk, _enc, done) {
        done();
      },
    }),
  );
}
