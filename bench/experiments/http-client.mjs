#!/usr/bin/env node
// Experiment behind src/http1.ts: CPU per GET of node:http (`http.request` with a keep-alive agent) against the
// project's own HTTP/1.1 client, on the small corpus served by the benchmark's slow S3 stand-in (50 ms per GET).
// Each client runs in a child process of its own (the stand-in stays in this one), fresh, once with the 300 objects
// and once with them ten times over; the child reports its own CPU time (process.cpuUsage) per GET.
//
//   npm run build && node bench/experiments/http-client.mjs [--concurrency 32] [--rounds 2]
//
// Measured on the 2-core development machine, concurrency 32, two rounds: node:http 0.68-0.86 ms per GET fresh
// (300 GETs) and 0.50-0.56 ms over 3,000; http1 0.36-0.37 and 0.26-0.27 ms. (A bare prototype without timeouts,
// aborts, the pool's limit or the sentinel copy had taken 0.22 and 0.18 ms.)
import { spawn } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import { DEFAULTS, ensureCorpus } from "../corpus.mjs";
import { startSlowS3 } from "../slow-s3.mjs";

const ROOT = dirname(dirname(dirname(fileURLToPath(import.meta.url))));

if (process.argv[2] === "--child") {
  await child(process.argv[3], process.argv[4], Number(process.argv[5]), Number(process.argv[6]));
} else {
  await parent();
}

async function parent() {
  const { values } = parseArgs({
    options: { concurrency: { type: "string", default: "32" }, rounds: { type: "string", default: "2" } },
  });
  const corpus = ensureCorpus({ name: "small", ...DEFAULTS.small, log: (m) => console.error(m) });
  const s3 = await startSlowS3({ root: corpus.dir, bucket: "bench", delayMs: 50 });
  const keys = corpus.files.map((f) => f.key);
  try {
    for (let round = 0; round < Number(values.rounds); round++) {
      for (const repeat of [1, 10]) {
        for (const mode of ["node:http", "http1"]) {
          const result = await new Promise((resolve, reject) => {
            const c = spawn(
              process.execPath,
              [fileURLToPath(import.meta.url), "--child", mode, s3.url, values.concurrency, String(repeat)],
              { stdio: ["ignore", "pipe", "inherit"] },
            );
            let out = "";
            c.stdout.on("data", (d) => {
              out += d;
            });
            c.on("error", reject);
            c.on("close", () => resolve(out.trim()));
          });
          console.log(`${mode.padEnd(9)} ${String(repeat * keys.length).padStart(5)} GETs: ${result}`);
        }
      }
    }
  } finally {
    await s3.close();
  }
}

async function child(mode, base, concurrency, repeat) {
  const corpus = ensureCorpus({ name: "small", ...DEFAULTS.small, log: () => {} });
  const keys = Array.from({ length: repeat }, () => corpus.files.map((f) => f.key)).flat();
  const url = new URL(base);
  const headers = {
    "x-amz-content-sha256": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "x-amz-date": "20261127T000000Z",
    authorization: `AWS4-HMAC-SHA256 Credential=x/20261127/us-east-1/s3/aws4_request, SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature=${"0".repeat(64)}`,
  };
  let get;
  if (mode === "node:http") {
    const http = await import("node:http");
    const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
    get = (path) =>
      new Promise((resolve, reject) => {
        const req = http.request({ hostname: url.hostname, port: url.port, path, agent, headers }, (res) => {
          const parts = [];
          res.on("data", (d) => parts.push(d));
          res.on("end", () => resolve(Buffer.concat(parts).length));
          res.on("error", reject);
        });
        req.on("error", reject);
        req.end();
      });
  } else {
    const { Http1Pool } = await import(pathToFileURL(join(ROOT, "dist", "http1.js")).href);
    const pool = new Http1Pool(concurrency);
    const origin = { secure: false, hostname: url.hostname, port: Number(url.port), key: base };
    const lines = Object.entries(headers)
      .map(([k, v]) => `${k}: ${v}\r\n`)
      .join("");
    const signal = new AbortController().signal;
    get = async (path) => {
      const head = `GET ${path} HTTP/1.1\r\nHost: ${url.host}\r\n${lines}\r\n`;
      return (await (await pool.request(origin, head, 30_000, signal)).whole()).length;
    };
  }
  const before = process.cpuUsage();
  let next = 0;
  let bytes = 0;
  const worker = async () => {
    while (next < keys.length) {
      const got = await get(`/bench/${keys[next++]}`);
      bytes += got;
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  const cpu = process.cpuUsage(before);
  const ms = (cpu.user + cpu.system) / 1000 / keys.length;
  console.log(`${ms.toFixed(3)} ms CPU per GET (${bytes} bytes)`);
  process.exit(0);
}
