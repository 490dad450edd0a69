#!/usr/bin/env node
// How fast `verify` checks a trail when every S3 request takes --delay-ms (bench/slow-s3.mjs, loopback): files/s
// against the ceiling of concurrency / latency (issue 23 asks for >= 80% of it at concurrency 16), and the CPU it
// spends per MB. `aws cloudtrail validate-logs` makes one GET after another: at 50 ms that is about 20 files/s.
//
//   npm run build && node bench/verify.mjs [--files 2000] [--files-per-hour 20] [--delay-ms 50] [--concurrency 1,4,16,32]
//
// The corpus (one account and region, hourly digests chained and signed with a key of its own, as CloudTrail signs
// them) is made in a temporary directory each run; the public key comes from a ListPublicKeys stand-in on loopback.
import { spawn } from "node:child_process";
import { createHash, generateKeyPairSync, randomBytes, sign } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import { availableParallelism, loadavg, tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { gzipSync } from "node:zlib";
import { startSlowS3 } from "./slow-s3.mjs";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const BIN = join(ROOT, "bin/cloudtrail-exec-filter");
const { values } = parseArgs({
  options: {
    files: { type: "string", default: "2000" },
    "files-per-hour": { type: "string", default: "20" },
    "delay-ms": { type: "string", default: "50" },
    concurrency: { type: "string", default: "1,4,16,32" },
    events: { type: "string", default: "50" },
  },
});
const files = Number(values.files);
const perHour = Number(values["files-per-hour"]);
const delayMs = Number(values["delay-ms"]);
const eventsPerFile = Number(values.events);
const concurrencies = values.concurrency.split(",").map(Number);
/** Node options for the verify process (e.g. VERIFY_NODE_ARGS="--cpu-prof --cpu-prof-dir=/tmp/prof"). */
const nodeArgs = (process.env.VERIFY_NODE_ARGS ?? "").split(" ").filter(Boolean);

const ACCOUNT = "111122223333";
const REGION = "us-east-1";
const START = Date.parse("2024-03-10T00:00:00Z");
const HOUR = 3_600_000;
const pad = (n) => String(n).padStart(2, "0");
const ymd = (t) => `${t.getUTCFullYear()}/${pad(t.getUTCMonth() + 1)}/${pad(t.getUTCDate())}`;
const stamp = (t, s) =>
  `${t.getUTCFullYear()}${pad(t.getUTCMonth() + 1)}${pad(t.getUTCDate())}T${pad(t.getUTCHours())}${pad(t.getUTCMinutes())}${s ? pad(t.getUTCSeconds()) : ""}Z`;
const iso = (t) => t.toISOString().replace(/\.\d{3}Z$/, "Z");
const sha256 = (b) => createHash("sha256").update(b).digest("hex");

// The corpus.
const dir = mkdtempSync(join(tmpdir(), "ctef-bench-verify-"));
const { privateKey, publicKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
const der = publicKey.export({ type: "pkcs1", format: "der" });
const fingerprint = createHash("md5").update(der).digest("hex");
const write = (key, bytes, metadata) => {
  const path = join(dir, key);
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, bytes);
  if (metadata) writeFileSync(`${path}.metadata.json`, JSON.stringify(metadata));
};
let storedBytes = 0;
let inflatedBytes = 0;
let digests = 0;
let previous;
const hours = Math.ceil(files / perHour);
// Spread over days so that listings find a few day folders, as a real range does.
for (let h = 0; h < hours; h++) {
  const startMs = START + h * HOUR;
  const listed = [];
  for (let i = 0; i < perHour && h * perHour + i < files; i++) {
    const at = new Date(startMs + ((i + 1) * HOUR) / (perHour + 2));
    const key = `AWSLogs/${ACCOUNT}/CloudTrail/${REGION}/${ymd(at)}/${ACCOUNT}_CloudTrail_${REGION}_${stamp(at, false)}_${randomBytes(8).toString("hex")}.json.gz`;
    const records = Array.from({ length: eventsPerFile }, (_, e) => ({
      eventVersion: "1.08",
      eventTime: iso(at),
      eventSource: "s3.amazonaws.com",
      eventName: "GetObject",
      awsRegion: REGION,
      sourceIPAddress: "203.0.113.7",
      userAgent: "aws-sdk-java/1.12.0",
      requestParameters: { bucketName: "data", key: `reports/${h}/${i}/${e}.csv` },
      eventID: randomBytes(16).toString("hex"),
      recipientAccountId: ACCOUNT,
    }));
    const json = Buffer.from(JSON.stringify({ Records: records }));
    const gz = gzipSync(json);
    storedBytes += gz.length;
    inflatedBytes += json.length;
    write(key, gz);
    listed.push({ s3Bucket: "bench", s3Object: key, hashValue: sha256(json), hashAlgorithm: "SHA-256" });
  }
  const end = new Date(startMs + HOUR);
  const key = `AWSLogs/${ACCOUNT}/CloudTrail-Digest/${REGION}/${ymd(end)}/${ACCOUNT}_CloudTrail-Digest_${REGION}_bench_${REGION}_${stamp(end, true)}.json.gz`;
  const fields = {
    awsAccountId: ACCOUNT,
    digestStartTime: iso(new Date(startMs)),
    digestEndTime: iso(end),
    digestS3Bucket: "bench",
    digestS3Object: key,
    digestPublicKeyFingerprint: fingerprint,
    digestSignatureAlgorithm: "SHA256withRSA",
    previousDigestS3Bucket: previous ? "bench" : null,
    previousDigestS3Object: previous?.key ?? null,
    previousDigestHashValue: previous?.hash ?? null,
    previousDigestHashAlgorithm: previous ? "SHA-256" : null,
    previousDigestSignature: previous?.signature ?? null,
    logFiles: listed,
  };
  const json = Buffer.from(JSON.stringify(fields));
  const data = `${fields.digestEndTime}\nbench/${key}\n${sha256(json)}\n${previous?.signature ?? "null"}`;
  const signature = sign("sha256", Buffer.from(data), privateKey).toString("hex");
  const gz = gzipSync(json);
  storedBytes += gz.length;
  inflatedBytes += json.length;
  write(key, gz, { signature, "signature-algorithm": "SHA256withRSA" });
  previous = { key, hash: sha256(json), signature };
  digests++;
}

// ListPublicKeys.
const keys = createServer((req, res) => {
  req.resume();
  req.on("end", () => {
    const body = JSON.stringify({
      PublicKeyList: [
        { Value: der.toString("base64"), ValidityStartTime: 1.7e9, ValidityEndTime: 1.8e9, Fingerprint: fingerprint },
      ],
    });
    res.writeHead(200, { "Content-Type": "application/x-amz-json-1.1", "Content-Length": Buffer.byteLength(body) });
    res.end(body);
  });
});
await new Promise((ok) => keys.listen(0, "127.0.0.1", ok));
const s3 = await startSlowS3({ root: dir, bucket: "bench", delayMs });

function run(concurrency) {
  s3.reset();
  const logFile = join(dir, `verify-${concurrency}.log`);
  const started = performance.now();
  const child = spawn(
    process.execPath,
    [...nodeArgs, BIN, "verify", "s3://bench", "--concurrency", String(concurrency), "--log-file", logFile],
    {
      stdio: ["ignore", "pipe", "inherit"],
      env: {
        ...process.env,
        AWS_ACCESS_KEY_ID: "bench",
        AWS_SECRET_ACCESS_KEY: "bench",
        AWS_REGION: "us-east-1",
        AWS_ENDPOINT_URL_S3: s3.url,
        AWS_ENDPOINT_URL_CLOUDTRAIL: `http://127.0.0.1:${keys.address().port}`,
        AWS_EC2_METADATA_DISABLED: "true",
      },
    },
  );
  let lines = 0;
  let valid = 0;
  let tail = "";
  child.stdout.on("data", (chunk) => {
    const text = tail + chunk.toString();
    const parts = text.split("\n");
    tail = parts.pop();
    for (const line of parts) {
      lines++;
      if (line.includes('"status":"valid"')) valid++;
    }
  });
  return new Promise((resolve) => {
    child.on("close", (code) => {
      const seconds = (performance.now() - started) / 1000;
      const log = readFileSync(logFile, "utf8").trim().split("\n").map(JSON.parse);
      const summary = log.find((l) => l.msg === "summary") ?? {};
      // Server-side: first request to last response, as the latency scenario of run.mjs counts (start-up left out).
      const served = (s3.stats.lastEndAt - s3.stats.firstAt) / 1000;
      resolve({ code, seconds, served, lines, valid, cpuSeconds: summary.cpuSeconds, summary });
    });
  });
}

const total = files + digests;
console.log(
  `verify bench: ${files} log files + ${digests} digests (${(storedBytes / 2 ** 20).toFixed(1)} MB stored, ` +
    `${(inflatedBytes / 2 ** 20).toFixed(1)} MB inflated), ${delayMs} ms per request, ${availableParallelism()} cores`,
);
console.log(
  "concurrency | seconds | files/s | served s | served files/s | ceiling | of ceiling (served) | max in flight | CPU s | CPU ms/MB inflated | load1 | exit",
);
const results = [];
try {
  for (const c of concurrencies) {
    const r = await run(c);
    const rate = total / r.seconds;
    const servedRate = total / r.served;
    const ceiling = c / (delayMs / 1000);
    const row = {
      concurrency: c,
      seconds: Number(r.seconds.toFixed(2)),
      filesPerSecond: Math.round(rate),
      servedSeconds: Number(r.served.toFixed(2)),
      servedFilesPerSecond: Math.round(servedRate),
      ceiling,
      ofCeiling: Number((servedRate / ceiling).toFixed(2)),
      maxInFlight: s3.stats.maxInFlight,
      cpuSeconds: r.cpuSeconds,
      cpuMsPerMB:
        r.cpuSeconds === undefined ? undefined : Math.round((r.cpuSeconds * 1000) / (inflatedBytes / 2 ** 20)),
      load1: Number(loadavg()[0].toFixed(2)),
      exit: r.code,
    };
    if (r.code !== 0 || r.valid !== total) console.error(`  unexpected: exit ${r.code}, ${r.valid}/${total} valid`);
    results.push(row);
    console.log(Object.values(row).join(" | "));
  }
} finally {
  await s3.close();
  keys.close();
  rmSync(dir, { recursive: true, force: true });
}
console.log(JSON.stringify({ bench: "verify", files, digests, delayMs, results }));
