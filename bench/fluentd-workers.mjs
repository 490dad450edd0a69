#!/usr/bin/env node
// Events/s through a real fluentd (FLUENTD_HOME, a fluentd on PATH, or ../shared/vendor's) with 1, 2… workers,
// laid out as examples/fluent-workers.conf lays them out: a <worker K> block per worker with its own input and its
// own exec_filter running the filter, the output shared. `npm run build` first; then
// `node bench/fluentd-workers.mjs [flags]`.
//
//   --workers LIST      worker counts to compare (default 1,2)
//   --rounds N          rounds, the worker counts alternating (default 3)
//   --output null|file  what the events go to: out_null (fluentd's floor), or out_file with a file buffer and JSON
//                       lines (the cost of a real output's buffer and formatting, without a network) (default file)
//   --format json|msgpack  what the filter prints and fluentd parses: fluent.conf's JSON (default), or
//                       --output-format msgpack with <parse> @type msgpack
//   --filter-args "..." extra arguments for the filter
//   --objects N, --events N, --seed S   the CPU corpus of bench/run.mjs (default 200 objects, 75,000 events)
//
// The corpus's objects are split round-robin between the workers; each worker's in_tail reads one file:// line per
// object (`<format> @type single_value`: the line itself, as the filter reads it, S3 left out) and its exec_filter has
// fluent.conf's <parse> json and <extract>. The clock starts when the lines are appended (every worker already
// running) and stops when fluentd's monitor agent (127.0.0.1, one port per worker) counts every event at the output.
// `steady` leaves out the first second or so (in_tail's pickup, the 1 s flush of the exec_filter buffer, the first
// object): events/s from the first event counted to the last. CPU seconds are read from /proc for fluentd (the
// supervisor and its workers, ruby) and the filters (node) just before fluentd is stopped. Every wait is bounded.

import { appendFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { availableParallelism, loadavg, tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import { CORPUS_ROOT, DEFAULTS, ensureCorpus } from "./corpus.mjs";
import { emitRecords, fluentdUnavailable, startFluentd } from "./lib/fluentd.mjs";
import { killGroup, median, processes } from "./lib/measure.mjs";

const BENCH = dirname(fileURLToPath(import.meta.url));
const ROOT = dirname(BENCH);
const FILTER_BIN = join(ROOT, "bin", "cloudtrail-exec-filter");
const RUN_TIMEOUT_MS = 10 * 60_000;
const START_TIMEOUT_MS = 60_000;

const { values: flags } = parseArgs({
  options: {
    workers: { type: "string", default: "1,2" },
    rounds: { type: "string", default: "3" },
    output: { type: "string", default: "file" },
    format: { type: "string", default: "json" },
    "filter-args": { type: "string", default: "" },
    objects: { type: "string", default: String(DEFAULTS.cpu.objects) },
    events: { type: "string", default: String(DEFAULTS.cpu.events) },
    seed: { type: "string", default: DEFAULTS.cpu.seed },
    help: { type: "boolean", short: "h" },
  },
});
if (flags.help) {
  const lines = readFileSync(fileURLToPath(import.meta.url), "utf8").split("\n");
  console.log(
    lines
      .slice(1, lines.indexOf(""))
      .map((l) => l.replace(/^\/\/ ?/, ""))
      .join("\n"),
  );
  process.exit(0);
}

const workerCounts = flags.workers.split(",").map(Number);
const rounds = Number(flags.rounds);
if (!["null", "file"].includes(flags.output)) throw new Error("--output is null or file");
if (!["json", "msgpack"].includes(flags.format)) throw new Error("--format is json or msgpack");
if (fluentdUnavailable() !== undefined) {
  console.error(fluentdUnavailable());
  process.exit(2);
}
if (!existsSync(join(ROOT, "dist"))) {
  console.error("run `npm run build` first");
  process.exit(2);
}

/** `count` consecutive free TCP ports on 127.0.0.1 (the monitor agent listens on port + worker id). */
async function freePorts(count) {
  const free = (port) =>
    new Promise((resolve) => {
      const server = createServer();
      server.once("error", () => resolve(false));
      server.listen(port, "127.0.0.1", () => server.close(() => resolve(true)));
    });
  for (let attempt = 0; attempt < 50; attempt++) {
    const base = 20_000 + Math.floor(Math.random() * 30_000);
    let ok = true;
    for (let i = 0; i < count && ok; i++) ok = await free(base + i);
    if (ok) return base;
  }
  throw new Error("no free ports");
}

function config({ dir, workers, port, filterArgs, output, format }) {
  const formatArgs = format === "msgpack" ? " --output-format msgpack" : "";
  const worker = (k) => `
<worker ${k}>
  <source>
    @type tail
    @id in_tail_${k}
    path ${dir}/input-${k}.txt
    pos_file ${dir}/input-${k}.pos
    tag sqs.cloudtrail
    @label @IN_${k}
    read_from_head true
    <parse>
      @type none
    </parse>
  </source>
  <label @IN_${k}>
    <match sqs.cloudtrail>
      @type exec_filter
      @id exec_filter_${k}
      @label @CLOUDTRAIL
      command ${FILTER_BIN} --log-file ${dir}/filter-${k}.log --time-field _time --spool-dir ${dir}/spool-${k}${formatArgs} ${filterArgs}
      tag cloudtrail.event
      child_respawn inf
      <format>
        @type single_value
      </format>
      <parse>
        @type ${format}
      </parse>
      <extract>
        tag_key _tag
        time_key _time
        time_type float
      </extract>
      <buffer>
        @type file
        path ${dir}/buffer/exec-filter-${k}
        flush_mode interval
        flush_interval 1s
        chunk_limit_size 1m
        overflow_action block
        retry_forever true
      </buffer>
    </match>
  </label>
</worker>`;
  const out =
    output === "null"
      ? "    @type null"
      : `    @type file
    path ${dir}/out/events
    append true
    <format>
      @type json
    </format>
    <buffer>
      @type file
      path ${dir}/buffer/out
      flush_mode interval
      flush_interval 1s
    </buffer>`;
  return `<system>
  workers ${workers}
</system>
<source>
  @type monitor_agent
  bind 127.0.0.1
  port ${port}
</source>
${Array.from({ length: workers }, (_, k) => worker(k)).join("\n")}
<label @CLOUDTRAIL>
  <match **>
    @id out
${out}
  </match>
</label>
`;
}

/** Events each worker's output has taken, from the monitor agents; undefined while one does not answer. */
async function counted(port, workers) {
  let total = 0;
  for (let k = 0; k < workers; k++) {
    const n = await emitRecords(port + k, "out");
    if (n === undefined) return undefined;
    total += n;
  }
  return total;
}

/** CPU seconds (user + system) of the processes in `pgid`, as fluentd's (ruby) and the filters' (everything else). */
function cpuOfGroup(pgid) {
  const cpu = { fluentd: 0, filter: 0 };
  for (const { pgid: group, comm, cpuSeconds } of processes()) {
    if (group !== pgid) continue;
    if (comm.startsWith("ruby") || comm.includes("fluentd")) cpu.fluentd += cpuSeconds;
    else cpu.filter += cpuSeconds;
  }
  return cpu;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function runOnce(corpus, workers) {
  const dir = mkdtempSync(join(tmpdir(), "ctef-fluentd-bench-"));
  let child;
  try {
    mkdirSync(join(dir, "out"));
    const lines = Array.from({ length: workers }, () => []);
    corpus.files.forEach((file, i) => {
      lines[i % workers].push(pathToFileURL(join(corpus.dir, file.key)).href);
    });
    for (let k = 0; k < workers; k++) writeFileSync(join(dir, `input-${k}.txt`), "");
    const port = await freePorts(workers);
    const conf = join(dir, "fluent.conf");
    writeFileSync(
      conf,
      config({ dir, workers, port, filterArgs: flags["filter-args"], output: flags.output, format: flags.format }),
    );

    const startBy = Date.now() + START_TIMEOUT_MS;
    const fluentd = await startFluentd(conf, { workers, timeoutMs: START_TIMEOUT_MS });
    child = fluentd.child;
    const { exited } = fluentd;
    while ((await counted(port, workers)) === undefined) {
      if (Date.now() > startBy) throw new Error(`fluentd did not start:\n${fluentd.log().slice(-3000)}`);
      await sleep(100);
    }

    const load = loadavg()[0];
    const started = performance.now();
    for (let k = 0; k < workers; k++) appendFileSync(join(dir, `input-${k}.txt`), `${lines[k].join("\n")}\n`);
    let first;
    let count = 0;
    const stopBy = Date.now() + RUN_TIMEOUT_MS;
    while (count < corpus.events) {
      if (Date.now() > stopBy) throw new Error(`only ${count} of ${corpus.events} events after ${RUN_TIMEOUT_MS} ms`);
      await sleep(100);
      count = (await counted(port, workers)) ?? count;
      if (first === undefined && count > 0) first = performance.now();
    }
    const done = performance.now();
    const cpu = cpuOfGroup(child.pid);
    child.kill("SIGTERM");
    const stopped = await Promise.race([exited, sleep(30_000).then(() => undefined)]);
    if (stopped === undefined) console.error("fluentd did not stop within 30 s of SIGTERM; killed");
    if (count !== corpus.events) console.error(`warning: ${count} events counted, ${corpus.events} expected`);
    return {
      workers,
      events: count,
      seconds: (done - started) / 1000,
      steadySeconds: (done - first) / 1000,
      fluentdCpu: cpu.fluentd,
      filterCpu: cpu.filter,
      load,
      loadAfter: loadavg()[0],
    };
  } finally {
    if (child) killGroup(child);
    rmSync(dir, { recursive: true, force: true });
  }
}

const corpus = ensureCorpus({
  name: "cpu",
  objects: Number(flags.objects),
  events: Number(flags.events),
  seed: flags.seed,
});
console.log(
  `fluentd 1.15.3 workers: ${corpus.files.length} objects, ${corpus.events} events, ${flags.format} from the ` +
    `filter, output ${flags.output}, ` +
    `${rounds} rounds, ${availableParallelism()} cores, load average at start ${loadavg()
      .map((l) => l.toFixed(2))
      .join(" ")}`,
);
const results = [];
for (let round = 0; round < rounds; round++) {
  // Alternate the order so that neither count always runs first (or right after the other).
  const order = round % 2 === 0 ? workerCounts : [...workerCounts].reverse();
  for (const workers of order) {
    const r = await runOnce(corpus, workers);
    results.push(r);
    console.log(
      `  round ${round + 1}, ${workers} worker(s): ${(r.events / r.seconds).toFixed(0)} events/s ` +
        `(steady ${(r.events / r.steadySeconds).toFixed(0)}), ${r.seconds.toFixed(1)} s, CPU fluentd ` +
        `${r.fluentdCpu.toFixed(1)} s, filters ${r.filterCpu.toFixed(1)} s, load ${r.load.toFixed(2)} → ${r.loadAfter.toFixed(2)}`,
    );
  }
}

console.log(
  "\n| workers | events/s | steady events/s | wall s | fluentd CPU-s | fluentd cores busy | filter CPU-s | " +
    "events per fluentd CPU-s | load avg (1 min) |",
);
console.log("|---|---|---|---|---|---|---|---|---|");
for (const workers of workerCounts) {
  const mine = results.filter((r) => r.workers === workers);
  const wall = median(mine.map((r) => r.seconds));
  const steady = median(mine.map((r) => r.steadySeconds));
  const fluentdCpu = median(mine.map((r) => r.fluentdCpu));
  const loads = mine.map((r) => r.load);
  console.log(
    `| ${workers} | ${(corpus.events / wall).toFixed(0)} | ${(corpus.events / steady).toFixed(0)} | ${wall.toFixed(1)} | ` +
      `${fluentdCpu.toFixed(1)} | ${(fluentdCpu / wall).toFixed(2)} | ${median(mine.map((r) => r.filterCpu)).toFixed(1)} | ` +
      `${(corpus.events / fluentdCpu).toFixed(0)} | ${Math.min(...loads).toFixed(1)}-${Math.max(...loads).toFixed(1)} |`,
  );
}
console.log("(medians over the rounds; load: 1-minute load average when each round's clock started)");
writeFileSync(
  join(CORPUS_ROOT, `fluentd-workers-${flags.output}-${flags.format}.json`),
  `${JSON.stringify({ date: new Date().toISOString(), output: flags.output, format: flags.format, results }, null, 2)}\n`,
);
