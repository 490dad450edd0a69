#!/usr/bin/env node
// Benchmark orchestrator: `npm run bench` (builds first), or `node bench/run.mjs [flags]`.
//
//   --scenario cpu|latency|large|all   (comma list allowed; default all)
//   --rounds N          rounds of the CPU scenario, contenders alternating (default 3; env BENCH_ROUNDS)
//   --objects N         objects in the CPU corpus (default 200; env BENCH_OBJECTS)
//   --events N          events in the CPU corpus (default 75000; env BENCH_EVENTS)
//   --large-mb N        MB of JSON in the large object (default 600; env BENCH_LARGE_MB)
//   --latency-ms N      delay of the slow S3 server (default 50)
//   --small-objects N   objects in the latency corpus (default 300)
//   --concurrency LIST  filter concurrencies of the latency scenario (default 1,4,8,16,32)
//   --contenders LIST   CPU contenders (default filter,filter-spaced,filter-pretty,node-floor,jq,ruby,inflate;
//                       also filter-metrics: the filter with --metrics-listen; filter-s3, filter-s3-integrity: s3://
//                       objects from a loopback S3 without delay, without and with --verify-integrity)
//   --filter-args "..." extra arguments for the filter in every scenario (e.g. "--concurrency 2")
//   --seed S            corpus seed
//   --keep-extra-ca-certs  leave NODE_EXTRA_CA_CERTS set for the contenders (by default it is removed: see below)
//   --baseline DIR      another checkout of this project (built): adds contender "baseline", its filter, to the
//                       CPU scenario, for before/after comparisons in one run (e.g. a `git worktree` at main)
//
// Everything runs on loopback or local files, every loop is bounded and every child has a timeout.

import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { availableParallelism, cpus, loadavg, tmpdir, totalmem } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import { DEFAULTS, ensureCorpus, ensureLargeObject, envInt } from "./corpus.mjs";
import {
  eventCounter,
  killGroup,
  measurementMethod,
  median,
  printHeaderHelp,
  procStat,
  runPipeline,
  which,
} from "./lib/measure.mjs";
import { startSlowS3 } from "./slow-s3.mjs";

const BENCH = dirname(fileURLToPath(import.meta.url));
const ROOT = dirname(BENCH);
/** The filter's executable in a checkout of this project (this one, or --baseline's). */
const filterBin = (root) => join(root, "bin", "cloudtrail-exec-filter");
const FILTER_BIN = filterBin(ROOT);
const NODE = process.execPath;

const { values: flags } = parseArgs({
  options: {
    scenario: { type: "string", default: "all" },
    rounds: { type: "string" },
    objects: { type: "string" },
    events: { type: "string" },
    "large-mb": { type: "string" },
    "latency-ms": { type: "string", default: "50" },
    "small-objects": { type: "string", default: String(DEFAULTS.small.objects) },
    concurrency: { type: "string", default: "1,4,8,16,32" },
    contenders: { type: "string", default: "filter,filter-spaced,filter-pretty,node-floor,jq,ruby,inflate" },
    "filter-args": { type: "string", default: "" },
    seed: { type: "string" },
    baseline: { type: "string" },
    "keep-extra-ca-certs": { type: "boolean", default: false },
    help: { type: "boolean", short: "h" },
  },
});
if (flags.help) {
  printHeaderHelp(import.meta.url);
}

function positive(name, value) {
  const n = Number(value);
  if (!Number.isInteger(n) || n <= 0) {
    console.error(`${name} must be a positive integer (got ${value})`);
    process.exit(2);
  }
  return n;
}

const scenarios =
  flags.scenario === "all" ? ["cpu", "latency", "large"] : flags.scenario.split(",").map((s) => s.trim());
for (const s of scenarios) {
  if (!["cpu", "latency", "large"].includes(s)) {
    console.error(`unknown scenario ${s} (cpu, latency, large, all)`);
    process.exit(2);
  }
}
const rounds = positive("--rounds", flags.rounds ?? envInt("BENCH_ROUNDS", 3));
const objects = positive("--objects", flags.objects ?? envInt("BENCH_OBJECTS", DEFAULTS.cpu.objects));
const events = positive("--events", flags.events ?? envInt("BENCH_EVENTS", DEFAULTS.cpu.events));
const largeMb = positive("--large-mb", flags["large-mb"] ?? envInt("BENCH_LARGE_MB", DEFAULTS.large.mb));
const latencyMs = positive("--latency-ms", flags["latency-ms"]);
const smallObjects = positive("--small-objects", flags["small-objects"]);
const concurrencies = flags.concurrency.split(",").map((c) => positive("--concurrency", c.trim()));
const filterArgs = flags["filter-args"].trim() === "" ? [] : flags["filter-args"].trim().split(/\s+/);
const seed = flags.seed ?? process.env.BENCH_SEED;

const AWS_ENV = {
  AWS_ACCESS_KEY_ID: "x",
  AWS_SECRET_ACCESS_KEY: "x",
  AWS_EC2_METADATA_DISABLED: "true",
  AWS_PROFILE: "",
};

// ---------------------------------------------------------------------------------------------------------------
// Formatting

function table(headers, rows, align) {
  const cells = [headers, ...rows].map((r) => r.map((c) => (c === undefined || c === null ? "-" : String(c))));
  const widths = headers.map((_, i) => Math.max(...cells.map((r) => r[i].length)));
  const fmt = (r) =>
    r
      .map((c, i) => ((align?.[i] ?? (i === 0 ? "l" : "r")) === "l" ? c.padEnd(widths[i]) : c.padStart(widths[i])))
      .join("  ");
  const lines = [fmt(cells[0]), widths.map((w) => "-".repeat(w)).join("  "), ...cells.slice(1).map(fmt)];
  return lines.map((l) => `  ${l.trimEnd()}`).join("\n");
}
const num = (n, digits = 0) =>
  n === undefined || Number.isNaN(n)
    ? "-"
    : n.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits });
const mb = (bytes) => bytes / 1e6;
const max = (xs) => {
  const s = xs.filter((x) => x !== undefined);
  return s.length ? Math.max(...s) : undefined;
};

function heading(text) {
  console.log(`\n== ${text} ${"=".repeat(Math.max(0, 100 - text.length))}`);
}

// ---------------------------------------------------------------------------------------------------------------

/** Why the baseline contender cannot run, or undefined. */
function baselineSkip() {
  if (flags.baseline === undefined) return "no --baseline DIR given";
  if (!existsSync(join(flags.baseline, "dist", "cli.js")))
    return `${flags.baseline} has no dist/cli.js (npm run build)`;
  return undefined;
}

function filterReady() {
  if (!existsSync(join(ROOT, "dist", "cli.js"))) return "dist/cli.js missing: run `npm run build` (or `npm run bench`)";
  return undefined;
}

function writeLines(dir, name, lines) {
  const path = join(dir, name);
  writeFileSync(path, `${lines.join("\n")}\n`);
  return path;
}

async function runSafely(label, fn) {
  try {
    return await fn();
  } catch (error) {
    console.log(`  ! ${label} failed: ${error.message}`);
    return undefined;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Scenario 1: throughput on a local corpus

async function scenarioCpu(work) {
  heading("Scenario 1: throughput (local gzipped corpus, output piped into a counting reader)");
  // The same events in three layouts: compact as AWS writes them (every contender), and for the filter alone, with
  // `json.dumps`'s separators and pretty-printed, so that its rows show what a layout costs it.
  const corpusSet = (style) =>
    ensureCorpus({
      name: style === "compact" ? "cpu" : `cpu-${style}`,
      objects,
      events,
      seed: seed ?? DEFAULTS.cpu.seed,
      style,
      log: (m) => console.log(`  ${m}`),
    });
  const urlsOf = (set) =>
    writeLines(
      work,
      `${set.name}-urls.txt`,
      set.files.map((f) => pathToFileURL(join(set.dir, f.key)).href),
    );
  const corpus = corpusSet("compact");
  const keys = corpus.files.map((f) => f.key);
  const stdinFile = urlsOf(corpus);
  console.log(
    `  corpus: ${corpus.files.length} objects, ${num(corpus.events)} events, ${num(mb(corpus.jsonBytes), 1)} MB JSON, ${num(mb(corpus.gzBytes), 1)} MB gzip (${corpus.dir})`,
  );

  // --verify-integrity hashes what it reads from S3 (a digest names S3 objects), so its cost is measured on s3://
  // objects from a loopback S3 without delay, against the same filter without the option (issue 23: at most 10%).
  const wantsS3 = flags.contenders.split(",").some((name) => name.trim().startsWith("filter-s3"));
  const cpuS3 = wantsS3 ? await startSlowS3({ root: corpus.dir, bucket: "bench", delayMs: 0 }) : undefined;
  const s3Stdin =
    cpuS3 &&
    writeLines(
      work,
      "cpu-s3-urls.txt",
      corpus.files.map((f) => `s3://bench/${f.key}`),
    );
  const s3Filter = (...extra) => [
    [
      NODE,
      FILTER_BIN,
      "--log-file",
      "/dev/null",
      "--endpoint",
      cpuS3?.url,
      "--region",
      "us-east-1",
      ...extra,
      ...filterArgs,
    ],
  ];
  const jq = existsSync("/usr/bin/jq") ? "/usr/bin/jq" : which("jq");
  const zcat = which("zcat");
  const ruby = which("ruby");
  const all = {
    filter: {
      label: "filter (file://)",
      stages: [[NODE, FILTER_BIN, "--log-file", "/dev/null", ...filterArgs]],
      stdin: stdinFile,
      skip: filterReady(),
    },
    // What --metrics-listen costs (issue 24: at most 2%): the same filter serving /metrics, unscraped; a scrape
    // reads counters only, every 15 s or so.
    "filter-metrics": {
      label: "filter (file://, --metrics-listen)",
      stages: [[NODE, FILTER_BIN, "--log-file", "/dev/null", "--metrics-listen", "127.0.0.1:0", ...filterArgs]],
      stdin: stdinFile,
      skip: filterReady(),
    },
    "filter-s3": { label: "filter (s3://, loopback)", stages: s3Filter(), stdin: s3Stdin, skip: filterReady() },
    "filter-s3-integrity": {
      label: "filter (s3://, --verify-integrity)",
      stages: s3Filter("--verify-integrity"),
      stdin: s3Stdin,
      skip: filterReady(),
    },
    "filter-spaced": { label: "filter (file://, spaced)", style: "spaced" },
    "filter-pretty": { label: "filter (file://, pretty)", style: "pretty" },
    "node-floor": {
      label: "node floor (parse+stringify)",
      stages: [[NODE, join(BENCH, "contenders", "node-floor.mjs"), ...keys]],
    },
    jq: {
      label: "zcat | jq -c '.Records[]'",
      stages: [
        [zcat, ...keys],
        [jq, "-c", ".Records[]"],
      ],
      skip: !jq || !zcat ? "jq or zcat not on PATH" : undefined,
    },
    ruby: {
      label: "ruby blog (GzipReader+JSON)",
      stages: [[ruby, join(BENCH, "contenders", "blog.rb"), ...keys]],
      skip: ruby ? undefined : "ruby not on PATH (apt-get install -y ruby)",
    },
    baseline: {
      label: "baseline filter (--baseline)",
      stages: [[NODE, filterBin(flags.baseline ?? ROOT), "--log-file", "/dev/null", ...filterArgs]],
      stdin: stdinFile,
      skip: baselineSkip(),
    },
    inflate: {
      label: "inflate only (to /dev/null)",
      stages: [[NODE, join(BENCH, "contenders", "inflate-floor.mjs"), ...keys]],
      consume: false,
    },
  };
  const names = flags.contenders
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);
  if (flags.baseline !== undefined && !names.includes("baseline")) names.splice(1, 0, "baseline");
  const contenders = [];
  for (const name of names) {
    const c = all[name];
    if (!c) {
      console.log(`  ! unknown contender ${name} (${Object.keys(all).join(", ")})`);
      continue;
    }
    if (c.style !== undefined) {
      // The filter on another layout of the same events.
      const set = corpusSet(c.style);
      console.log(
        `  corpus ${set.name}: ${num(mb(set.jsonBytes), 1)} MB JSON, ${num(mb(set.gzBytes), 1)} MB gzip (${set.dir})`,
      );
      Object.assign(c, { ...all.filter, label: c.label, corpus: set, stdin: urlsOf(set) });
    }
    if (c.skip) {
      console.log(`  note: skipping ${name}: ${c.skip}`);
      continue;
    }
    contenders.push({ name, corpus, ...c, runs: [] });
  }

  // Warm the page cache so the first contender does not pay for the disk.
  for (const set of new Set(contenders.map((c) => c.corpus))) {
    for (const f of set.files) readFileSync(join(set.dir, f.key));
  }

  console.log(`  ${rounds} round(s), contenders alternating; peak RSS by ${measurementMethod()}`);
  for (let r = 0; r < rounds; r++) {
    const order = contenders.map((_, i) => contenders[(i + r) % contenders.length]);
    const line = [];
    for (const c of order) {
      const result = await runSafely(c.name, () =>
        runPipeline(c.stages, {
          stdin: c.stdin,
          cwd: corpus.dir,
          env: AWS_ENV,
          consume: c.consume !== false,
          timeoutMs: 10 * 60_000,
        }),
      );
      if (!result) continue;
      if (result.rcs.some((rc) => rc !== 0)) console.log(`  ! ${c.name}: exit status ${result.rcs.join(",")}`);
      c.runs.push(result);
      line.push(`${c.name} ${result.elapsed.toFixed(2)}s`);
    }
    console.log(`  round ${r + 1}/${rounds}: ${line.join(", ")}`);
  }

  const rows = [];
  const summary = {};
  for (const c of contenders) {
    if (c.runs.length === 0) continue;
    const elapsed = median(c.runs.map((x) => x.elapsed));
    summary[c.name] = {
      elapsed,
      eps: c.corpus.events / elapsed,
      mbps: mb(c.corpus.jsonBytes) / elapsed,
      rssMb: max(c.runs.map((x) => x.peakRssKb)) / 1024,
      cpu: median(c.runs.map((x) => x.cpu)),
      epcs: median(c.runs.map((x) => (x.cpu ? c.corpus.events / x.cpu : undefined))),
      events: c.runs.map((x) => x.events),
      outBytes: median(c.runs.map((x) => x.bytes)),
    };
  }
  const f = summary.filter;
  for (const c of contenders) {
    const s = summary[c.name];
    if (!s) continue;
    rows.push([
      c.label,
      num(s.elapsed, 2),
      num(s.eps),
      num(s.mbps, 1),
      num(s.cpu, 2),
      num(s.epcs),
      num(s.rssMb, 0),
      s.outBytes === undefined ? "-" : num(mb(s.outBytes), 1),
      c.name === "filter" || !f ? "" : `${num(f.eps / s.eps, 2)}x`,
      c.name === "filter" || !f || !s.epcs ? "" : `${num(f.epcs / s.epcs, 2)}x`,
      c.name === "filter" || !f ? "" : `${num(f.rssMb / s.rssMb, 2)}x`,
    ]);
  }
  console.log();
  console.log(
    table(
      [
        "contender",
        "median s",
        "events/s",
        "MB/s JSON",
        "CPU s",
        "events/CPU-s",
        "peak RSS MB",
        "out MB",
        "filter/this speed",
        "filter/this CPU-eff",
        "filter/this RSS",
      ],
      rows,
    ),
  );
  console.log(
    "  events/s, MB/s: corpus events and inflated JSON bytes over the median wall time. CPU s: user+sys of the contender's",
  );
  console.log(
    "  processes (median); events/CPU-s: events per CPU second (robust when the machine is busy). peak RSS: largest process",
  );
  console.log(
    "  of the contender, worst round. out MB: bytes the consumer read. filter/this speed and CPU-eff > 1: the filter is",
  );
  console.log("  faster / needs less CPU than this contender; filter/this RSS > 1: the filter uses more memory.");
  console.log(
    "  filter (spaced), (pretty): the same events written with json.dumps's separators, or indented 2 (MB/s counts those",
  );
  console.log("  larger files); their speed ratio is how much faster the compact corpus goes through the filter.");

  // Every consumer must have received the same number of events.
  const counts = new Set();
  for (const c of contenders) {
    for (const n of summary[c.name]?.events ?? []) if (n !== undefined) counts.add(n);
  }
  for (const c of contenders) counts.add(c.corpus.events);
  if (counts.size > 1) {
    const detail = contenders
      .map((c) => `${c.name}=${(summary[c.name]?.events ?? []).filter((n) => n !== undefined).join("/") || "n/a"}`)
      .join(", ");
    console.log(`  WARNING: event counts differ (corpus ${corpus.events}): ${detail}`);
  } else {
    console.log(`  event counts: every consumer received ${num(corpus.events)} events`);
  }
  await cpuS3?.close();
  return summary;
}

// ---------------------------------------------------------------------------------------------------------------
// Scenario 2: S3 latency

/**
 * One long-lived filter (as fluentd keeps its child): `lines` are written twice to the same process, the second time
 * only after every event of the first has come out. The first pass warms the process up (V8 compiles the hot code,
 * connections are open); the second is measured: its server-side objects/s and the process's CPU per object over it
 * (from /proc, in clock ticks). Resolves to { ops, cpuMsPerObject, events, maxInFlight } or rejects on timeout.
 */
function warmRun(s3, argv, lines, eventsPerPass, timeoutMs) {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(argv[0], argv.slice(1), {
      env: { ...process.env, ...AWS_ENV },
      stdio: ["pipe", "pipe", "ignore"],
      detached: true,
    });
    const input = `${lines.join("\n")}\n`;
    const ticks = () => procStat(child.pid)?.cpuTicks; // utime + stime, in clock ticks
    let events = 0;
    const count = eventCounter();
    let pass = 1;
    let ticksAt;
    let measured;
    const timer = setTimeout(() => {
      killGroup(child);
      reject(new Error(`timed out after ${timeoutMs / 1000} s (${events} events)`));
    }, timeoutMs);
    child.stdout.on("data", (chunk) => {
      events += count(chunk);
      if (pass === 1 && events >= eventsPerPass) {
        pass = 2;
        s3.reset();
        ticksAt = ticks();
        child.stdin.end(input);
      } else if (pass === 2 && events >= 2 * eventsPerPass && measured === undefined) {
        const after = ticks();
        const window = (s3.stats.lastEndAt - s3.stats.firstAt) / 1000;
        measured = {
          ops: s3.stats.ok / window,
          // clock ticks are 10 ms (USER_HZ 100 on Linux)
          cpuMsPerObject:
            after !== undefined && ticksAt !== undefined ? (10 * (after - ticksAt)) / lines.length : undefined,
          maxInFlight: s3.stats.maxInFlight,
        };
      }
    });
    child.stdin.on("error", () => {}); // reported through the exit code
    child.on("error", reject);
    child.on("close", (code) => {
      clearTimeout(timer);
      if (measured === undefined) reject(new Error(`filter exited with ${code} after ${events} events`));
      else resolvePromise({ ...measured, events: events - eventsPerPass, rc: code });
    });
    child.stdin.write(input);
  });
}

/** Concurrencies below this get no warm runs: there the delay is the bound, and two passes at 1 take 30 s each. */
const WARM_FROM = 8;

async function scenarioLatency(work) {
  heading(`Scenario 2: S3 latency (${latencyMs} ms per GET, loopback, small objects)`);
  const ready = filterReady();
  if (ready) {
    console.log(`  skipped: ${ready}`);
    return undefined;
  }
  const corpus = ensureCorpus({
    name: "small",
    objects: smallObjects,
    events: smallObjects * 20,
    seed: seed ? `${seed}-small` : DEFAULTS.small.seed,
    log: (m) => console.log(`  ${m}`),
  });
  console.log(
    `  corpus: ${corpus.files.length} objects, ${num(corpus.events)} events, ${num(corpus.gzBytes / corpus.files.length / 1024, 1)} KB gzip per object on average`,
  );
  const urls = corpus.files.map((f) => `s3://bench/${f.key}`);
  const stdinFile = writeLines(work, "s3-urls.txt", urls);
  const s3 = await startSlowS3({ root: corpus.dir, bucket: "bench", delayMs: latencyMs });
  const filterArgv = (c) => [
    FILTER_BIN,
    "--log-file",
    "/dev/null",
    "--endpoint",
    s3.url,
    "--region",
    "us-east-1",
    ...filterArgs,
    "--concurrency",
    String(c),
  ];
  const rows = [];
  const out = [];
  const oneStdin = writeLines(work, "s3-url-one.txt", [`s3://bench/${corpus.files[0].key}`]);
  try {
    // Start-up, credentials (the SDK is loaded for them on the first s3:// object) and exit, with one object: to tell
    // the per-object CPU cost from the fixed one.
    const base = await runSafely("filter with one object", () =>
      runPipeline(
        [[NODE, FILTER_BIN, "--log-file", "/dev/null", "--endpoint", s3.url, "--region", "us-east-1", ...filterArgs]],
        {
          stdin: oneStdin,
          env: AWS_ENV,
          timeoutMs: 60_000,
        },
      ),
    );
    if (base)
      console.log(
        `  filter with one object (start-up, credentials, exit): ${num(base.elapsed, 2)} s wall, ${num(base.cpu, 2)} s CPU, ${num(base.peakRssKb / 1024, 0)} MB RSS`,
      );
    for (const c of concurrencies) {
      // Each concurrency runs --rounds times (a fresh process each); the row is the median run by objects/s.
      const runs = [];
      for (let r = 0; r < rounds; r++) {
        s3.reset();
        const result = await runSafely(`filter --concurrency ${c}`, () =>
          runPipeline([[NODE, ...filterArgv(c)]], {
            stdin: stdinFile,
            env: AWS_ENV,
            timeoutMs: 5 * 60_000,
          }),
        );
        if (!result) continue;
        const window =
          s3.stats.firstAt !== undefined && s3.stats.lastEndAt !== undefined
            ? (s3.stats.lastEndAt - s3.stats.firstAt) / 1000
            : undefined;
        runs.push({ result, stats: { ...s3.stats }, ops: window ? s3.stats.ok / window : 0 });
      }
      // The same, in a process that has served the objects once already (a long-lived child, as under fluentd).
      const warm = [];
      for (let r = 0; c >= WARM_FROM && r < rounds; r++) {
        s3.reset();
        const result = await runSafely(`warm filter --concurrency ${c}`, () =>
          warmRun(s3, [NODE, ...filterArgv(c)], urls, corpus.events, 5 * 60_000),
        );
        if (result) warm.push(result);
      }
      warm.sort((x, y) => x.ops - y.ops);
      const warmMid = warm[Math.floor((warm.length - 1) / 2)];
      if (runs.length === 0) continue;
      runs.sort((x, y) => x.ops - y.ops);
      const { result, stats, ops } = runs[Math.floor((runs.length - 1) / 2)];
      const ideal = c / (latencyMs / 1000);
      const bound = corpus.files.length / (Math.ceil(corpus.files.length / c) * (latencyMs / 1000));
      const spread =
        runs.length > 1
          ? `${num((100 * runs[0].ops) / ideal, 0)}-${num((100 * runs[runs.length - 1].ops) / ideal, 0)}%`
          : "-";
      rows.push([
        c,
        num(ops, 1),
        num(ideal, 0),
        ops ? `${num((100 * ops) / ideal, 0)}%` : "-",
        spread,
        `${num((100 * bound) / ideal, 0)}%`,
        stats.maxInFlight,
        `${stats.ok}/${stats.requests}`,
        result.events === corpus.events ? num(result.events) : `${num(result.events)} (!)`,
        num(result.elapsed, 2),
        num(result.cpu, 2),
        base?.cpu !== undefined && result.cpu !== undefined
          ? num((1000 * (result.cpu - base.cpu)) / (corpus.files.length - 1), 1)
          : "-",
        num(result.peakRssKb / 1024, 0),
        warmMid ? `${num((100 * warmMid.ops) / ideal, 0)}%` : "-",
        warm.length > 1
          ? `${num((100 * warm[0].ops) / ideal, 0)}-${num((100 * warm[warm.length - 1].ops) / ideal, 0)}%`
          : "-",
        warmMid?.cpuMsPerObject !== undefined ? num(median(warm.map((w) => w.cpuMsPerObject)), 1) : "-",
      ]);
      out.push({
        concurrency: c,
        ops,
        ideal,
        pct: ops ? (100 * ops) / ideal : undefined,
        events: result.events,
        elapsed: result.elapsed,
        cpu: result.cpu,
        baseCpu: base?.cpu,
        rssMb: result.peakRssKb / 1024,
        maxInFlight: stats.maxInFlight,
        pctRuns: runs.map((run) => (100 * run.ops) / ideal),
        warmPct: warmMid ? (100 * warmMid.ops) / ideal : undefined,
        warmPctRuns: warm.map((w) => (100 * w.ops) / ideal),
        warmCpuMsPerObject: median(warm.map((w) => w.cpuMsPerObject)),
      });
      for (const w of warm)
        if (w.events !== corpus.events)
          console.log(
            `  WARNING: warm --concurrency ${c}: second pass gave ${w.events} events, expected ${corpus.events}`,
          );
      if (result.events !== corpus.events)
        console.log(`  WARNING: --concurrency ${c}: consumer got ${result.events} events, expected ${corpus.events}`);
    }
  } finally {
    await s3.close();
  }
  console.log();
  console.log(
    table(
      [
        "concurrency",
        "objects/s",
        "ideal",
        "% of ideal",
        "runs",
        "wave bound",
        "max in flight",
        "GET ok/all",
        "events",
        "wall s",
        "CPU s",
        "CPU ms/object",
        "RSS MB",
        "warm %",
        "warm runs",
        "warm CPU ms/obj",
      ],
      rows,
    ),
  );
  console.log(
    `  objects/s: successful GETs over the server-side window (first request arrives .. last response ends),`,
  );
  console.log(
    `  process start-up excluded. ideal = concurrency / latency. wave bound: best possible with ${corpus.files.length} objects`,
  );
  console.log(
    "  in ceil(objects/concurrency) waves of one latency each. runs: lowest-highest % of ideal over the --rounds runs",
  );
  console.log("  (the row shows the median run). wall s includes Node start-up and exit. CPU ms/object:");
  console.log(
    "  (CPU s - CPU s with one object) / (objects - 1); when objects/s x CPU ms/object nears 1000 x cores, CPU is the bound.",
  );
  console.log(
    `  warm: the same objects a second time in the same process (a long-lived child, as under fluentd), from concurrency ${WARM_FROM};`,
  );
  console.log("  warm CPU ms/object: the process's CPU over the second pass / objects (from /proc, 10 ms ticks).");
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// Scenario 3: one large object

async function scenarioLarge(work) {
  heading(`Scenario 3: one large object (~${largeMb} MB of JSON, gzipped) through the filter`);
  const ready = filterReady();
  if (ready) {
    console.log(`  skipped: ${ready}`);
    return undefined;
  }
  const corpus = await ensureLargeObject({
    mb: largeMb,
    seed: seed ? `${seed}-large` : DEFAULTS.large.seed,
    log: (m) => console.log(`  ${m}`),
  });
  const file = corpus.files[0];
  console.log(
    `  object: ${num(file.events)} events, ${num(mb(file.jsonBytes), 1)} MB JSON, ${num(mb(file.gzBytes), 1)} MB gzip`,
  );
  const stdinFile = writeLines(work, "large-url.txt", [pathToFileURL(join(corpus.dir, file.key)).href]);
  readFileSync(join(corpus.dir, file.key)); // page cache
  const rows = [];
  const out = {};
  const runs = [
    ["filter", "filter (file://)", [[NODE, FILTER_BIN, "--log-file", "/dev/null", ...filterArgs]], stdinFile, true],
    [
      "inflate",
      "inflate only (to /dev/null)",
      [[NODE, join(BENCH, "contenders", "inflate-floor.mjs"), file.key]],
      undefined,
      false,
    ],
  ];
  for (const [name, label, stages, stdin, consume] of runs) {
    const r = await runSafely(name, () =>
      runPipeline(stages, { stdin, cwd: corpus.dir, env: AWS_ENV, consume, timeoutMs: 15 * 60_000 }),
    );
    if (!r) continue;
    out[name] = { elapsed: r.elapsed, rssMb: r.peakRssKb / 1024, events: r.events, cpu: r.cpu };
    rows.push([
      label,
      num(r.elapsed, 2),
      num(file.events / r.elapsed),
      num(mb(file.jsonBytes) / r.elapsed, 1),
      num(r.peakRssKb / 1024, 0),
      num(r.cpu, 2),
      r.events === undefined ? "-" : num(r.events),
    ]);
    if (consume && r.events !== file.events)
      console.log(`  WARNING: ${name}: consumer got ${r.events} events, expected ${file.events}`);
  }
  console.log();
  console.log(table(["run", "elapsed s", "events/s", "MB/s JSON", "peak RSS MB", "CPU s", "events out"], rows));
  console.log(
    "  JSON.parse of the whole object is impossible here (V8 strings stop near 512 MB): a streaming reader is required.",
  );
  return out;
}

// ---------------------------------------------------------------------------------------------------------------

const work = mkdtempSync(join(tmpdir(), "ct-bench-run-"));
const started = performance.now();
console.log(
  `cloudtrail-exec-filter benchmark: node ${process.version}, ${availableParallelism()} CPU(s) (${cpus()[0]?.model ?? "?"}), ${num(totalmem() / 2 ** 30, 1)} GiB RAM`,
);
console.log(`scenarios: ${scenarios.join(", ")}${filterArgs.length ? `; filter args: ${filterArgs.join(" ")}` : ""}`);
const loadNote = () =>
  `load average ${loadavg()
    .map((l) => l.toFixed(2))
    .join(" ")}`;
console.log(
  `${loadNote()}${loadavg()[0] > availableParallelism() * 0.5 ? " (busy machine: wall-clock figures will be pessimistic; see CPU columns)" : ""}`,
);
// NODE_EXTRA_CA_CERTS makes every Node process read and parse that certificate file before running a line of its
// own (some machines export it for every program: a whole CA bundle). No contender uses TLS here, so it is a fixed
// start-up tax that says nothing about the programs compared; it is removed for them unless --keep-extra-ca-certs.
if (process.env.NODE_EXTRA_CA_CERTS !== undefined) {
  const startMs = (env) => {
    const times = [];
    for (let i = 0; i < 5; i++) {
      const t = performance.now();
      spawnSync(NODE, ["-e", "0"], { env, stdio: "ignore" });
      times.push(performance.now() - t);
    }
    return times.sort((a, b) => a - b)[2];
  };
  const without = { ...process.env };
  delete without.NODE_EXTRA_CA_CERTS;
  const tax = startMs(process.env) - startMs(without);
  if (flags["keep-extra-ca-certs"]) {
    console.log(
      `NODE_EXTRA_CA_CERTS is set and kept (--keep-extra-ca-certs): every Node start costs ${num(tax, 0)} ms more`,
    );
  } else {
    delete process.env.NODE_EXTRA_CA_CERTS;
    console.log(
      `NODE_EXTRA_CA_CERTS removed for the contenders: it costs every Node start ${num(tax, 0)} ms here and no contender uses TLS (keep it: --keep-extra-ca-certs)`,
    );
  }
}
const results = {};
try {
  if (scenarios.includes("cpu")) results.cpu = await scenarioCpu(work);
  if (scenarios.includes("latency")) results.latency = await scenarioLatency(work);
  if (scenarios.includes("large")) results.large = await scenarioLarge(work);
} finally {
  rmSync(work, { recursive: true, force: true });
}
mkdirSync(join(BENCH, ".corpus"), { recursive: true });
writeFileSync(
  join(BENCH, ".corpus", "last-results.json"),
  `${JSON.stringify({ at: new Date().toISOString(), node: process.version, results }, null, 1)}\n`,
);
console.log(`\n${loadNote()}`);
console.log(
  `done in ${((performance.now() - started) / 1000).toFixed(0)} s (figures also in bench/.corpus/last-results.json)`,
);
