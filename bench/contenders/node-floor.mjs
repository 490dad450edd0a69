#!/usr/bin/env node
// Minimal Node.js floor: read each gzipped log file named on the command line, gunzip, JSON.parse, and write
// JSON.stringify(record) + "\n" for each record, in large batches. Nothing else: no "@timestamp", no error
// handling, no byte fidelity (JSON.parse rounds big integers), no streaming (a file must fit in one string).
import { readFileSync, writeSync } from "node:fs";
import { gunzipSync } from "node:zlib";

const BATCH = 4 << 20;
let parts = [];
let size = 0;
const flush = () => {
  const buf = Buffer.from(parts.join(""), "utf8");
  let off = 0;
  while (off < buf.length) {
    try {
      off += writeSync(1, buf, off);
    } catch (error) {
      if (error.code !== "EAGAIN") throw error;
    }
  }
  parts = [];
  size = 0;
};
for (const file of process.argv.slice(2)) {
  const { Records } = JSON.parse(gunzipSync(readFileSync(file)).toString("utf8"));
  for (const record of Records) {
    const line = `${JSON.stringify(record)}\n`;
    parts.push(line);
    size += line.length;
    if (size >= BATCH) flush();
  }
}
flush();
