#!/usr/bin/env node
// Where the filter's CPU time goes, per MB of JSON: `node bench/profile.mjs [--objects-times N] [-- filter flags]`.
//
// Runs the built filter on the CPU corpus (bench/corpus.mjs, `cpu` set; N times the 200 objects in one process, default
// 1) under `perf record -e cpu-clock -g` with V8's perf map (--perf-basic-prof), output into a reader, and sorts every
// sample into one of a few categories by the innermost frame that says what the work is: zlib's inflate, the scanner
// (scan.ts), the event writer (format.ts, output.ts; V8 inlines most of it into the scanner's `emit`, so the scan row
// holds part of it), the pipe write (the write/writev system calls), reading files, page faults and memory mapping,
// garbage collection, V8's compilers, and the rest. Samples are split by thread: the main thread (the critical path
// on 2 cores) and the others (libuv's pool inflates and reads files; V8's threads compile and mark). Needs `perf`
// (linux-perf / linux-tools) and permission to use it (root, or kernel.perf_event_paranoid <= 1); it says so if not.
// Nothing leaves the machine.
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath, pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import { DEFAULTS, ensureCorpus } from "./corpus.mjs";
import { which } from "./lib/measure.mjs";

const BENCH = dirname(fileURLToPath(import.meta.url));
const ROOT = dirname(BENCH);

const { values, positionals } = parseArgs({
  options: { "objects-times": { type: "string", default: "1" }, frequency: { type: "string", default: "1999" } },
  allowPositionals: true,
});
const times = Number(values["objects-times"]);
const perf = which("perf");
if (perf === undefined) {
  console.error("profile: perf is not on PATH (apt-get install linux-perf, or linux-tools-$(uname -r))");
  process.exit(2);
}

/** Categories, tried in order against each frame from the innermost out; the first rule that matches wins. */
const RULES = [
  [/^(?!JS:)\S*(inflate|Cr_z_|crc32|adler32)|ZlibContext|CompressionStream/, "inflate (zlib)"],
  [
    /Scavenge|MarkCompact|Heap::|ConcurrentMarking|Sweeper|MinorMC|GCTracer|IncrementalMarking|MemoryAllocator|Evacuat|MarkingVisitor/,
    "garbage collection",
  ],
  [
    /Compiler|Turbofan|compiler::|maglev|Maglev|Parser|Scanner::|Deserializer|Bytecode|CodeGenerator|Assembler/,
    "V8 compile, start-up snapshot",
  ],
  [/validate_utf8|IsUtf8|isUtf8/, "UTF-8 check (scan)"],
  [/sys_writev|sys_write\b|pipe_write/, "write to the pipe"],
  [/sys_read|sys_openat|sys_close|newfstat|sys_pread|sys_statx/, "read files"],
  [/exc_page_fault|sys_mmap|sys_munmap|sys_madvise|sys_mprotect|sys_brk/, "page faults, mmap"],
  [/sys_futex|sys_epoll|schedule\b|sys_sched/, "wait, wake"],
  [/JS:\S*\s.*\/(scan|cli-scan)[-.]/, "scan (and inlined writer)"],
  [/JS:\S*\s.*\/(format|output|cli-layout|newest-time)[-.]/, "format, output"],
  [/JS:\S*\s.*\/(filter|fetch|inflate|cli-filter|cli-fetch|cli-inflate)[-.]/, "filter, fetch (JS)"],
  [/JS:/, "other JS (Node internals, start-up)"],
];
function classify(frames) {
  for (const frame of frames) for (const [pattern, category] of RULES) if (pattern.test(frame)) return category;
  if (frames.some((f) => /malloc|_int_free|cfree/.test(f))) return "malloc, free";
  return "other native";
}

const corpus = ensureCorpus({ name: "cpu", ...DEFAULTS.cpu, log: (m) => console.log(m) });
const work = mkdtempSync(join(tmpdir(), "ct-bench-profile-"));
/** The processes perf saw: --perf-basic-prof leaves a /tmp/perf-PID.map for each. */
let perfPids = new Set();
try {
  const urls = corpus.files.map((f) => pathToFileURL(join(corpus.dir, f.key)).href);
  const input = join(work, "urls.txt");
  writeFileSync(input, `${Array.from({ length: times }, () => urls.join("\n")).join("\n")}\n`);
  const data = join(work, "perf.data");
  const env = { ...process.env };
  delete env.NODE_EXTRA_CA_CERTS; // as bench/run.mjs does (README there)
  const record = spawnSync(
    "sh",
    [
      "-c",
      `"$0" record -q -g -e cpu-clock -F ${Number(values.frequency)} -o "$1" -- "$2" --perf-basic-prof "$3" --log-file /dev/null ${positionals.map((a) => `'${a.replace(/'/g, "'\\''")}'`).join(" ")} < "$4" | cat > /dev/null`,
      perf,
      data,
      process.execPath,
      join(ROOT, "bin", "cloudtrail-exec-filter"),
      input,
    ],
    { stdio: ["ignore", "inherit", "inherit"], env, cwd: work },
  );
  if (record.status !== 0) {
    console.error("profile: perf record failed (permissions? kernel.perf_event_paranoid)");
    process.exit(1);
  }
  const script = spawn(perf, ["script", "-F", "pid,tid,period,event,ip,sym,dso", "-i", data], {
    stdio: ["ignore", "pipe", "ignore"],
  });
  const totals = { main: new Map(), others: new Map() };
  let pid = 0;
  let tid = 0;
  let period = 0;
  let stack = [];
  const pids = new Set();
  const flush = () => {
    if (stack.length === 0) return;
    const table = pid === tid ? totals.main : totals.others;
    const category = classify(stack);
    table.set(category, (table.get(category) ?? 0) + period);
    stack = [];
  };
  perfPids = pids;
  for await (const line of createInterface({ input: script.stdout })) {
    const head = /^\s*(\d+)\/(\d+)\s+(\d+)\s+cpu-clock/.exec(line);
    if (head !== null) {
      flush();
      [pid, tid, period] = [Number(head[1]), Number(head[2]), Number(head[3])];
      pids.add(pid);
    } else if (line.trim() === "") flush();
    else stack.push(line.trim().replace(/^[0-9a-f]+\s+/, ""));
  }
  flush();

  const mb = (corpus.jsonBytes * times) / 1e6;
  const categories = [...new Set([...totals.main.keys(), ...totals.others.keys()])];
  const ms = (table, category) => (table.get(category) ?? 0) / 1e6;
  categories.sort((a, b) => ms(totals.main, b) + ms(totals.others, b) - ms(totals.main, a) - ms(totals.others, a));
  const sum = (table) => [...table.values()].reduce((a, b) => a + b, 0) / 1e6;
  const row = (label, main, others) =>
    `  ${label.padEnd(38)} ${main.toFixed(0).padStart(7)} ${(main / mb).toFixed(2).padStart(9)} ${others.toFixed(0).padStart(8)} ${(others / mb).toFixed(2).padStart(10)}`;
  console.log(
    `\n${corpus.files.length * times} objects, ${mb.toFixed(1)} MB of JSON, ${corpus.events * times} events; CPU time by category (perf, cpu-clock)`,
  );
  console.log(
    `  ${"category".padEnd(38)} ${"main ms".padStart(7)} ${"ms/MB".padStart(9)} ${"pool+V8".padStart(8)} ${"ms/MB".padStart(10)}`,
  );
  for (const category of categories) console.log(row(category, ms(totals.main, category), ms(totals.others, category)));
  console.log(row("total", sum(totals.main), sum(totals.others)));
} finally {
  rmSync(work, { recursive: true, force: true });
  for (const pid of perfPids) rmSync(`/tmp/perf-${pid}.map`, { force: true });
}
