#!/usr/bin/env node
// Events per second through a real fluentd (FLUENTD_HOME, a fluentd on PATH, or 1.15.3 from ../shared/vendor), end to
// end, by the two ways the filter can feed it, on the same corpus and into the same output:
//
//   exec-json     in_tail of file:// lines -> out_exec_filter (the shipped settings: file buffer, 1 s flush,
//                 <format> single_value, <parse> json, <extract> _tag/_time) -> out_null (or out_file)
//   exec-msgpack  the same with --output-format msgpack and <parse> msgpack
//   forward       `cloudtrail-exec-filter import file://… --output forward://` -> in_forward (acks) -> out_null
//
// The clock starts once fluentd runs (its start-up is not counted) and stops when the output plugin has counted every
// event (in_monitor_agent's emit_records, polled every 100 ms). The machine's load average is printed with each
// figure: on a shared machine the other tenants' load moves these numbers.
//
//   node bench/forward.mjs [--rounds 3] [--objects 200] [--events 75000] [--paths exec-json,exec-msgpack,forward]
//                          [--sink null|file]
import { spawn } from "node:child_process";
import { appendFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { availableParallelism, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { ensureCorpus } from "./corpus.mjs";
import { emitRecords, fluentdUnavailable, startFluentd } from "./lib/fluentd.mjs";
import { killGroup, median, processes, procStat } from "./lib/measure.mjs";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const BIN = join(ROOT, "bin/cloudtrail-exec-filter");

const { values: args } = parseArgs({
  options: {
    rounds: { type: "string", default: "3" },
    objects: { type: "string", default: "200" },
    events: { type: "string", default: "75000" },
    paths: { type: "string", default: "exec-json,exec-msgpack,forward" },
    sink: { type: "string", default: "null" },
    seed: { type: "string", default: "forward-bench" },
    keep: { type: "boolean", default: false },
    help: { type: "boolean", default: false },
  },
});
if (args.help) {
  console.log(
    "node bench/forward.mjs [--rounds N] [--objects N] [--events N] [--paths exec-json,exec-msgpack,forward] [--sink null|file]",
  );
  process.exit(0);
}

async function freePort() {
  const server = createServer();
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}

const sinkSection = (dir) =>
  args.sink === "file"
    ? `@type file
  path ${dir}/out/events
  append true
  <format>
    @type json
  </format>
  <buffer>
    @type file
    path ${dir}/buffer/events
    flush_mode interval
    flush_interval 1s
    chunk_limit_size 8m
  </buffer>`
    : "@type null";

function config(path, dir, ports) {
  const monitor = `
<source>
  @type monitor_agent
  bind 127.0.0.1
  port ${ports.monitor}
</source>`;
  const output = `
<match cloudtrail.event>
  @id events_out
  ${sinkSection(dir)}
</match>
<match cloudtrail.**>
  @type null
</match>`;
  if (path === "forward") {
    return `${monitor}
<source>
  @type forward
  bind 127.0.0.1
  port ${ports.forward}
</source>
${output}`;
  }
  const msgpack = path === "exec-msgpack";
  return `${monitor}
<source>
  @type tail
  path ${dir}/urls.txt
  pos_file ${dir}/urls.pos
  tag sqs.cloudtrail
  read_from_head true
  <parse>
    @type none
  </parse>
</source>
<match sqs.cloudtrail>
  @type exec_filter
  command ${process.execPath} ${BIN} --log-file ${dir}/filter.log --time-field _time${msgpack ? " --output-format msgpack" : ""}
  tag cloudtrail.event
  child_respawn inf
  <format>
    @type single_value
  </format>
  <parse>
    @type ${msgpack ? "msgpack" : "json"}
  </parse>
  <extract>
    tag_key _tag
    time_key _time
    time_type float
  </extract>
  <buffer>
    @type file
    path ${dir}/buffer/exec-filter
    flush_mode interval
    flush_interval 1s
    chunk_limit_size 1m
  </buffer>
</match>
${output}`;
}

/** CPU seconds (user + system) a process has used so far, from /proc; 0 once it is gone. */
const cpuSeconds = (pid) => procStat(pid)?.cpuSeconds ?? 0;

/** The processes whose parent is `pid` (fluentd's exec_filter child). */
const childrenOf = (pid) =>
  processes()
    .filter((p) => p.ppid === pid)
    .map((p) => p.pid);

async function once(path, corpus) {
  const dir = mkdtempSync(join(tmpdir(), "ctef-forward-bench-"));
  mkdirSync(join(dir, "out"));
  const ports = { monitor: await freePort(), forward: await freePort() };
  writeFileSync(join(dir, "fluent.conf"), config(path, dir, ports));
  writeFileSync(join(dir, "urls.txt"), "");
  let fluentd;
  let importer;
  try {
    fluentd = (await startFluentd(join(dir, "fluent.conf"), { args: ["--no-supervisor"] })).child;
    const load = loadavg()[0];
    const started = performance.now();
    if (path === "forward") {
      importer = spawn(
        process.execPath,
        [
          BIN,
          "import",
          `file://${corpus.dir}`,
          "--output",
          `forward://127.0.0.1:${ports.forward}`,
          "--log-file",
          join(dir, "import.log"),
        ],
        { stdio: "ignore" },
      );
    } else {
      appendFileSync(join(dir, "urls.txt"), corpus.files.map((f) => `file://${join(corpus.dir, f.key)}\n`).join(""));
    }
    const deadline = Date.now() + 10 * 60_000;
    // The filter's CPU, read while it runs (the importer exits once fluentd has acknowledged everything).
    const filterCpu = new Map();
    const sampleFilterCpu = () => {
      for (const pid of importer === undefined ? childrenOf(fluentd.pid) : [importer.pid]) {
        filterCpu.set(pid, Math.max(filterCpu.get(pid) ?? 0, cpuSeconds(pid)));
      }
    };
    const cpuBefore = cpuSeconds(fluentd.pid);
    for (;;) {
      sampleFilterCpu();
      const n = (await emitRecords(ports.monitor, "events_out")) ?? 0;
      if (n >= corpus.events) break;
      if (Date.now() > deadline) throw new Error(`${path}: only ${n} of ${corpus.events} events after 10 minutes`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const seconds = (performance.now() - started) / 1000;
    sampleFilterCpu();
    const perThousand = (cpu) => Math.round((cpu / corpus.events) * 1e7) / 10;
    return {
      seconds,
      eventsPerSecond: Math.round(corpus.events / seconds),
      loadBefore: load,
      loadAfter: loadavg()[0],
      // CPU per 1000 events: less moved by other tenants than wall-clock rates.
      fluentdCpuMs: perThousand(cpuSeconds(fluentd.pid) - cpuBefore),
      filterCpuMs: perThousand([...filterCpu.values()].reduce((a, b) => a + b, 0)),
    };
  } finally {
    importer?.kill("SIGKILL");
    if (fluentd) killGroup(fluentd);
    if (args.keep) console.log(`  kept ${dir}`);
    else rmSync(dir, { recursive: true, force: true });
  }
}

if (fluentdUnavailable() !== undefined) {
  console.error(fluentdUnavailable());
  process.exit(1);
}
// ensureCorpus gives the manifest with the corpus's absolute dir (bench/.corpus/forward).
const corpus = ensureCorpus({
  name: "forward",
  objects: Number(args.objects),
  events: Number(args.events),
  seed: args.seed,
});
console.log(
  `corpus: ${corpus.files.length} objects, ${corpus.events} events, ${(corpus.jsonBytes / 2 ** 20).toFixed(1)} MB of JSON; ` +
    `output: out_${args.sink}; cores: ${availableParallelism()}`,
);
const results = {};
for (let round = 1; round <= Number(args.rounds); round++) {
  for (const path of args.paths.split(",")) {
    const r = await once(path, corpus);
    results[path] ??= [];
    results[path].push(r);
    console.log(
      `round ${round} ${path.padEnd(12)} ${String(r.eventsPerSecond).padStart(7)} events/s  ${r.seconds.toFixed(2)} s  ` +
        `CPU ms per 1000 events: fluentd ${r.fluentdCpuMs}, filter ${r.filterCpuMs}  ` +
        `load ${r.loadBefore.toFixed(2)} -> ${r.loadAfter.toFixed(2)}`,
    );
  }
}
console.log("median:");
for (const [path, runs] of Object.entries(results)) {
  const sorted = runs.map((r) => r.eventsPerSecond).sort((a, b) => a - b);
  const cpu = (key) => median(runs.map((r) => r[key]));
  console.log(
    `  ${path.padEnd(12)} ${median(sorted)} events/s (runs: ${sorted.join(", ")}); CPU ms per 1000 events: ` +
      `fluentd ${cpu("fluentdCpuMs")}, filter ${cpu("filterCpuMs")}`,
  );
}
