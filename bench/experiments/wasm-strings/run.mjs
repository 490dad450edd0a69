#!/usr/bin/env node
// Experiment, not wired into the filter: a WebAssembly SIMD pass that finds where every JSON string ends, for a whole
// buffer at once, so that the scanner would no longer loop over string bytes in JavaScript (about 55% of the
// scanner's time). Checks the pass against a plain JavaScript reference on the CPU corpus, then times it.
//
//   apt-get install -y wabt && wat2wasm bench/experiments/wasm-strings/strings.wat -o /tmp/strings.wasm
//   node bench/experiments/wasm-strings/run.mjs /tmp/strings.wasm
//
// Measured on the 2-core development machine (100 MB corpus): copy into WebAssembly memory 9.5 ms, the pass 63-69 ms
// (about 1.5 GB/s), identical to the reference on 4,613,029 strings.
//
// Wired into the scanner (integration.patch: an (open, close) pair per string, readString jumps to the close unless
// the string is marked for the byte loop; identical results on 9,996 checked cases including ~2,700 damaged inputs),
// it did not pay: the scanner took 258-268 ms per 100 MB pass with the index against 267-281 ms without it (the byte
// loop's cost was partly the first touch of each cache line, which the copy and the pass now pay). It would need a
// pass about twice as fast. ends.wat tries that with a prefix-XOR of the quote mask (closing quotes = quotes &
// ~prefix; the scalar path only for blocks with a backslash or a control byte inside a string): identical to the
// reference, but 76 ms per 100 MB, no faster (same with --no-liftoff): WebAssembly SIMD here tops out near 1.4 GB/s
// for this work, so this road gives a few percent at best. The patch applies to the commit that added it (wabt:
// strings.wat -> src/strings-wasm.ts through scripts/build-wasm.mjs).
import { readFileSync } from "node:fs";
import { gunzipSync } from "node:zlib";
import { DEFAULTS, ensureCorpus } from "../../corpus.mjs";

const wasmPath = process.argv[2];
if (!wasmPath) {
  console.error("usage: node bench/experiments/wasm-strings/run.mjs STRINGS.wasm");
  process.exit(2);
}
const { mem, strings } = new WebAssembly.Instance(new WebAssembly.Module(readFileSync(wasmPath))).exports;
const corpus = ensureCorpus({ name: "cpu", ...DEFAULTS.cpu });
const files = corpus.files.map((f) => gunzipSync(readFileSync(`${corpus.dir}/${f.key}`)));
const total = files.reduce((sum, b) => sum + b.length, 0);

function ensureMemory(bytes) {
  const pages = Math.ceil(bytes / 65536) - mem.buffer.byteLength / 65536;
  if (pages > 0) mem.grow(pages);
}

/** Closing-quote offsets, bit 31 set for strings holding a backslash or a byte < 0x20. */
function reference(b) {
  const out = [];
  let inString = false;
  let flag = 0;
  for (let i = 0; i < b.length; i++) {
    const c = b[i];
    if (!inString) {
      if (c === 0x22) {
        inString = true;
        flag = 0;
      }
    } else if (c === 0x22) {
      out.push((i | (flag << 31)) >>> 0);
      inString = false;
    } else if (c === 0x5c) {
      flag = 1;
      i++;
    } else if (c < 0x20) {
      flag = 1;
    }
  }
  return out;
}

let count = 0;
for (const b of files) {
  const outAt = (b.length + 16 + 3) & ~3;
  ensureMemory(outAt + b.length * 2 + 64);
  new Uint8Array(mem.buffer).set(b, 0);
  const n = strings(0, b.length, outAt);
  const got = new Uint32Array(mem.buffer, outAt, n);
  const want = reference(b);
  if (n !== want.length || want.some((x, k) => got[k] !== x)) throw new Error("the pass differs from the reference");
  count += n;
}
console.log(`identical to the reference on ${count} strings`);
for (let round = 0; round < 5; round++) {
  let copy = 0;
  let pass = 0;
  for (const b of files) {
    const outAt = (b.length + 16 + 3) & ~3;
    let t = performance.now();
    new Uint8Array(mem.buffer).set(b, 0);
    copy += performance.now() - t;
    t = performance.now();
    strings(0, b.length, outAt);
    pass += performance.now() - t;
  }
  console.log(`copy ${copy.toFixed(1)} ms, pass ${pass.toFixed(1)} ms for ${(total / 1e6).toFixed(0)} MB`);
}
