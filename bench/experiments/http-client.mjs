#!/usr/bin/env node
// Experiment behind src/s3-get.ts and src/http-handler.ts: CPU per signed GET of the maintained ways to fetch an S3
// object, on the small corpus served by the benchmark's slow S3 stand-in (50 ms per GET):
//   sdk+node:http  S3Client GetObject with the SDK's default handler (node:http, keep-alive agent of N sockets)
//   sdk+undici     S3Client GetObject with the project's handler (dist/http-handler.js: undici, N connections)
//   signer+undici  the SDK's own signer (@smithy/signature-v4) and a bare undici Pool request: no SDK pipeline
// Each runs in a child process of its own (the stand-in stays in this one), fresh, once with the 300 objects and once
// with them ten times over; the child reports its own CPU time (process.cpuUsage) per GET, bodies read whole.
//
//   npm run build && node bench/experiments/http-client.mjs [--concurrency 32] [--rounds 2]
//
// Figures are in bench/README.md ("Where the filter's time goes").
import { spawn } from "node:child_process";
import { createHash, createHmac } from "node:crypto";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import { DEFAULTS, ensureCorpus } from "../corpus.mjs";
import { startSlowS3 } from "../slow-s3.mjs";

const ROOT = dirname(dirname(dirname(fileURLToPath(import.meta.url))));
const MODES = ["sdk+node:http", "sdk+undici", "sdk+undici+cache", "signer+undici"];
const CREDENTIALS = { accessKeyId: "AKIDEXAMPLE", secretAccessKey: "secret" };

class NodeSha256 {
  constructor(secret) {
    this.hash = secret === undefined ? createHash("sha256") : createHmac("sha256", secret);
  }
  update(data) {
    this.hash.update(data);
  }
  async digest() {
    return new Uint8Array(this.hash.digest());
  }
}

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
        for (const mode of MODES) {
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
          console.log(`${mode.padEnd(14)} ${String(repeat * keys.length).padStart(5)} GETs: ${result}`);
        }
      }
    }
  } finally {
    await s3.close();
  }
}

/** A body read whole, as the filter reads small objects. */
async function drain(body) {
  let n = 0;
  for await (const chunk of body) n += chunk.length;
  return n;
}

async function child(mode, base, concurrency, repeat) {
  const corpus = ensureCorpus({ name: "small", ...DEFAULTS.small, log: () => {} });
  const keys = Array.from({ length: repeat }, () => corpus.files.map((f) => f.key)).flat();
  const url = new URL(base);
  let get;
  if (mode.startsWith("sdk+")) {
    const { S3Client, GetObjectCommand } = await import("@aws-sdk/client-s3");
    let requestHandler;
    if (mode.startsWith("sdk+undici")) {
      const { createDispatcher, UndiciHttpHandler } = await import(
        pathToFileURL(join(ROOT, "dist", "http-handler.js")).href
      );
      requestHandler = new UndiciHttpHandler(createDispatcher({ connections: concurrency, timeoutMs: 30_000 }), 30_000);
    } else {
      const http = await import("node:http");
      requestHandler = { httpAgent: new http.Agent({ keepAlive: true, maxSockets: concurrency }) };
    }
    const client = new S3Client({
      region: "us-east-1",
      endpoint: base,
      forcePathStyle: true,
      credentials: CREDENTIALS,
      maxAttempts: 1,
      requestHandler,
      cacheMiddleware: mode.endsWith("+cache"),
    });
    get = async (key) => {
      const out = await client.send(new GetObjectCommand({ Bucket: "bench", Key: key, ChecksumMode: "ENABLED" }));
      return drain(out.Body);
    };
  } else {
    const [{ SignatureV4 }, { Pool }] = await Promise.all([import("@smithy/signature-v4"), import("undici")]);
    const signer = new SignatureV4({
      credentials: CREDENTIALS,
      region: "us-east-1",
      service: "s3",
      sha256: NodeSha256,
      uriEscapePath: false,
    });
    const pool = new Pool(url.origin, { connections: concurrency });
    get = async (key) => {
      const path = `/bench/${key}`;
      const signed = await signer.sign({
        method: "GET",
        protocol: url.protocol,
        hostname: url.hostname,
        port: Number(url.port),
        path,
        headers: { host: url.host, "x-amz-content-sha256": "UNSIGNED-PAYLOAD" },
      });
      const response = await pool.request({ path, method: "GET", headers: signed.headers });
      return drain(response.body);
    };
  }
  const before = process.cpuUsage();
  const startedAt = performance.now();
  let next = 0;
  let bytes = 0;
  const worker = async () => {
    while (next < keys.length) {
      const got = await get(keys[next++]);
      bytes += got;
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  const cpu = process.cpuUsage(before);
  const ms = (cpu.user + cpu.system) / 1000 / keys.length;
  const ideal = (keys.length / concurrency) * 50;
  const share = Math.round((ideal / (performance.now() - startedAt)) * 100);
  console.log(`${ms.toFixed(3)} ms CPU per GET, ${share}% of ideal (${bytes} bytes)`);
  process.exit(0);
}
