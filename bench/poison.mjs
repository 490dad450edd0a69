#!/usr/bin/env node
// Poison scenario: how long a good line waits for its events when a queue writer mixes poison messages in.
// `node bench/poison.mjs [flags]` (uses the dist/ already built):
//
//   --good N            good lines (default 200): file:// copies of the test fixtures, one line each
//   --every N           one poison message per N good lines (default 10)
//   --poison KIND       regions: an S3 event naming the bucket in 10 made-up regions (run in a network namespace of
//                       its own, `unshare -n`: every lookup fails with EAI_AGAIN, retried for --retry-for);
//                       keys: a CloudTrail notification of 4,000 keys outside --buckets; garbage: 100 KB lines
//                       (default regions, keys where `unshare -n` is not allowed)
//   --pace-ms N         a line written every N ms (default 10)
//   --retry-for S       the filter's --retry-for (default 300, its own default)
//   --baseline DIR      another built checkout of this project: measured too, alternating, under the same load
//   --rounds N          rounds (default 2)
//
// Each run is measured twice, without poison and with it; latency is from writing a good line to the last of its
// events on stdout (every event carries --source-field, which names the line's own file copy).

import { spawn, spawnSync } from "node:child_process";
import { copyFileSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { printHeaderHelp } from "./lib/measure.mjs";

const ROOT = dirname(dirname(fileURLToPath(import.meta.url)));
const FIXTURES = join(ROOT, "test/fixtures/invictus-cloudtrail");
const BUCKET = "trail-bucket";

const { values: flags } = parseArgs({
  options: {
    good: { type: "string", default: "200" },
    every: { type: "string", default: "10" },
    poison: { type: "string" },
    "pace-ms": { type: "string", default: "10" },
    "retry-for": { type: "string", default: "300" },
    baseline: { type: "string" },
    rounds: { type: "string", default: "2" },
    help: { type: "boolean", short: "h" },
  },
});
if (flags.help) {
  printHeaderHelp(import.meta.url);
}

const netns = spawnSync("unshare", ["-n", "true"]).status === 0;
const kind = flags.poison ?? (netns ? "regions" : "keys");
if (!["regions", "keys", "garbage"].includes(kind)) {
  console.error(`unknown --poison ${kind} (regions, keys, garbage)`);
  process.exit(2);
}
if (kind === "regions" && !netns) {
  console.error("--poison regions needs `unshare -n` (a network namespace), which is not allowed here");
  process.exit(2);
}
const good = Number(flags.good);
const every = Number(flags.every);
const paceMs = Number(flags["pace-ms"]);
const rounds = Number(flags.rounds);

/** `n` in letters (a, b, …, z, ba, …). */
function letters(n) {
  let text = "";
  do {
    text = String.fromCharCode(97 + (n % 26)) + text;
    n = Math.floor(n / 26);
  } while (n > 0);
  return text;
}

/** One poison message of the chosen kind; `n` makes each one distinct. */
function poisonLine(n) {
  if (kind === "regions") {
    return JSON.stringify({
      Records: Array.from({ length: 10 }, (_, i) => ({
        eventVersion: "2.1",
        eventSource: "aws:s3",
        // Made-up and distinct per message (letters only before the number, as a region name parses).
        awsRegion: `zz-fake${letters(n)}-${i}`,
        eventName: "ObjectCreated:Put",
        s3: { bucket: { name: BUCKET }, object: { key: `AWSLogs/poison/${n}/${i}.json.gz` } },
      })),
    });
  }
  if (kind === "keys") {
    const keys = Array.from({ length: 4000 }, (_, i) => `AWSLogs/111122223333/CloudTrail/x/${n}-${i}.json.gz`);
    return JSON.stringify({ s3Bucket: "other-bucket", s3ObjectKey: keys });
  }
  return "x".repeat(100_000);
}

/** Good lines: one copy of a fixture per line, so each event's source names its line. */
function goodFiles(dir) {
  const names = readdirSync(FIXTURES).filter((n) => n.endsWith(".json"));
  const files = [];
  for (let i = 0; i < good; i++) {
    const file = join(dir, `good-${String(i).padStart(5, "0")}.json`);
    copyFileSync(join(FIXTURES, names[i % names.length]), file);
    files.push({ file, events: JSON.parse(readFileSync(file, "utf8")).Records.length });
  }
  return files;
}

/** One run of `root`'s filter over the good lines, with poison mixed in or not; per-line latencies in ms. */
async function run(root, files, withPoison) {
  const bin = join(root, "bin", "cloudtrail-exec-filter");
  const args = [
    "--pad-bytes",
    "0",
    "--source-field",
    "source",
    "--buckets",
    BUCKET,
    "--retry-for",
    flags["retry-for"],
    "--log-file",
    "/dev/null",
  ];
  const [command, ...rest] = kind === "regions" ? ["unshare", "-n", bin, ...args] : [bin, ...args];
  const child = spawn(command, rest, {
    stdio: ["pipe", "pipe", "ignore"],
    env: {
      ...process.env,
      AWS_ACCESS_KEY_ID: "AKIDEXAMPLE",
      AWS_SECRET_ACCESS_KEY: "secret",
      AWS_REGION: "us-east-1",
      AWS_EC2_METADATA_DISABLED: "true",
    },
  });
  child.stdin.on("error", () => {});
  const written = new Map();
  const remaining = new Map(files.map((f) => [f.file, f.events]));
  const latencies = [];
  let tail = "";
  let allDone;
  const finished = new Promise((resolve) => {
    allDone = resolve;
  });
  child.stdout.on("data", (chunk) => {
    const text = tail + chunk.toString("utf8");
    const lines = text.split("\n");
    tail = lines.pop() ?? "";
    const now = performance.now();
    for (const line of lines) {
      const match = /"source":\{"file":"([^"]+)"\}/.exec(line);
      if (match === null) continue;
      const left = (remaining.get(match[1]) ?? 0) - 1;
      remaining.set(match[1], left);
      if (left === 0) {
        latencies.push(now - written.get(match[1]));
        if (latencies.length === files.length) allDone();
      }
    }
  });
  const started = performance.now();
  for (let i = 0; i < files.length; i++) {
    if (withPoison && i % every === 0) child.stdin.write(`${poisonLine(i)}\n`);
    const { file } = files[i];
    written.set(file, performance.now());
    child.stdin.write(`file://${file}\n`);
    await new Promise((resolve) => setTimeout(resolve, paceMs));
  }
  const timeout = new Promise((resolve) => setTimeout(() => resolve("timeout"), 120_000));
  const outcome = await Promise.race([finished, timeout]);
  const seconds = (performance.now() - started) / 1000;
  child.stdin.end();
  child.kill("SIGTERM");
  await new Promise((resolve) => child.on("close", resolve));
  latencies.sort((a, b) => a - b);
  const at = (q) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? Number.NaN;
  return {
    complete: outcome !== "timeout",
    lines: latencies.length,
    p50: at(0.5),
    p95: at(0.95),
    max: latencies.at(-1) ?? Number.NaN,
    seconds,
  };
}

const work = mkdtempSync(join(tmpdir(), "ctef-poison-"));
try {
  const files = goodFiles(work);
  const contenders = [["filter", ROOT]];
  if (flags.baseline !== undefined) contenders.push(["baseline", flags.baseline]);
  const f = (n) => (Number.isFinite(n) ? n.toFixed(0).padStart(7) : "      -");
  console.log(
    `poison: ${kind}, 1 per ${every} good lines; ${good} good lines every ${paceMs} ms; --retry-for ${flags["retry-for"]}`,
  );
  console.log(`load average (1 min) at start: ${loadavg()[0].toFixed(2)}`);
  console.log("contender  poison  round  lines  p50 ms  p95 ms  max ms  complete");
  for (let round = 1; round <= rounds; round++) {
    for (const [name, root] of contenders) {
      for (const withPoison of [false, true]) {
        const r = await run(root, files, withPoison);
        console.log(
          `${name.padEnd(10)} ${(withPoison ? "yes" : "no").padEnd(6)} ${String(round).padStart(6)} ${String(r.lines).padStart(6)} ${f(r.p50)} ${f(r.p95)} ${f(r.max)}  ${r.complete ? "yes" : `no (${r.lines}/${good} in 120 s)`}`,
        );
      }
    }
  }
  console.log(`load average (1 min) at end: ${loadavg()[0].toFixed(2)}`);
} finally {
  rmSync(work, { recursive: true, force: true });
}
