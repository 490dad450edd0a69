// Runs one contender (a pipeline of processes) into a counting consumer and measures it.
//
// With python3: bench/lib/rusage.py spawns the stages connected by kernel pipes, reaps each with os.wait4
// (ru_maxrss per process) and feeds the last stage into bench/lib/count.py, a separate consumer process that
// reads everything. Without python3: `sh -c "A | B"` under /usr/bin/time -f %M when available (peak RSS is then
// the largest of the pipeline's processes, as reported by wait4 on the shell), consumed by this process.

import { execFileSync, spawn } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const LIB = dirname(fileURLToPath(import.meta.url));

/** Absolute path of an executable on PATH, or undefined. */
export function which(name) {
  for (const dir of (process.env.PATH ?? "").split(":")) {
    if (!dir) continue;
    const p = join(dir, name);
    if (existsSync(p)) return p;
  }
  return undefined;
}

let pythonCache;
/** The real python3 executable (bypassing pyenv-style shims, whose start-up is slow), or undefined. */
export function python() {
  if (pythonCache !== undefined) return pythonCache || undefined;
  pythonCache = "";
  const shim = process.env.BENCH_NO_PYTHON ? undefined : which("python3");
  if (shim) {
    try {
      const exe = execFileSync(shim, ["-c", "import os,sys; print(sys.executable); os.wait4"], {
        encoding: "utf8",
      }).trim();
      if (exe) pythonCache = exe;
    } catch {
      // no usable python3
    }
  }
  return pythonCache || undefined;
}

export function measurementMethod() {
  if (python()) return "python3 os.wait4 (ru_maxrss of each process)";
  if (existsSync("/usr/bin/time")) return "/usr/bin/time -f %M (largest process of the pipeline)";
  return "none (peak RSS not measured)";
}

function shellQuote(s) {
  return `'${String(s).replace(/'/g, "'\\''")}'`;
}

/**
 * Runs `stages` (argv lists) as a pipeline. Options: stdin (path), cwd, env (extra variables), consume (count the
 * output; else it goes to /dev/null), timeoutMs (kills the whole process group).
 * Resolves to { elapsed (s), peakRssKb (max over stages), cpu (s, user+sys over stages), events, bytes, rcs }.
 */
export async function runPipeline(stages, { stdin, cwd, env = {}, consume = true, timeoutMs = 15 * 60_000 } = {}) {
  const work = mkdtempSync(join(tmpdir(), "ct-bench-"));
  try {
    const py = python();
    if (py) {
      const spec = {
        stdin: stdin ?? null,
        cwd: cwd ?? null,
        env,
        stages,
        consumer: consume ? [py, join(LIB, "count.py"), join(work, "count.json")] : null,
      };
      writeFileSync(join(work, "spec.json"), JSON.stringify(spec));
      await spawnWait(
        py,
        [join(LIB, "rusage.py"), join(work, "report.json"), join(work, "spec.json")],
        { stdio: ["ignore", "ignore", "inherit"] },
        timeoutMs,
      );
      const report = JSON.parse(readFileSync(join(work, "report.json"), "utf8"));
      const count = consume
        ? JSON.parse(readFileSync(join(work, "count.json"), "utf8"))
        : { events: undefined, bytes: undefined };
      return {
        elapsed: report.elapsed,
        peakRssKb: Math.max(...report.stages.map((s) => s.maxrss_kb)),
        cpu: report.stages.reduce((a, s) => a + s.utime + s.stime, 0),
        events: count.events,
        bytes: count.bytes,
        rcs: report.stages.map((s) => s.rc),
      };
    }
    // Fallback: a shell pipeline, consumed here.
    const line = stages.map((argv) => argv.map(shellQuote).join(" ")).join(" | ");
    const timeBin = existsSync("/usr/bin/time") ? "/usr/bin/time" : undefined;
    const argv = timeBin
      ? [timeBin, "-f", "%M %U %S", "-o", join(work, "time.txt"), "sh", "-c", line]
      : ["sh", "-c", line];
    const t0 = performance.now();
    const { events, bytes, rc } = await spawnCount(
      argv,
      { cwd, env: { ...process.env, ...env }, stdin, consume },
      timeoutMs,
    );
    const elapsed = (performance.now() - t0) / 1000;
    let peakRssKb;
    let cpu;
    if (timeBin) {
      const [rss, user, sys] = readFileSync(join(work, "time.txt"), "utf8")
        .trim()
        .split("\n")
        .pop()
        .split(" ")
        .map(Number);
      if (Number.isFinite(rss)) peakRssKb = rss;
      if (Number.isFinite(user) && Number.isFinite(sys)) cpu = user + sys;
    }
    return { elapsed, peakRssKb, cpu, events, bytes, rcs: [rc] };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/**
 * Counts events in a stream of output chunks, the same count as count.py's: lines ending in "}\n" (the filter's
 * whitespace padding lines end in " \n"), also when a chunk ends between the two bytes. (count.py gets it as newlines
 * less padding lines, which is cheaper in Python.) Returns a function giving each chunk's count.
 */
export function eventCounter() {
  let last = 0;
  return (chunk) => {
    let events = last === 0x7d && chunk[0] === 0x0a ? 1 : 0;
    for (let i = chunk.indexOf("}\n"); i !== -1; i = chunk.indexOf("}\n", i + 2)) events++;
    last = chunk[chunk.length - 1];
    return events;
  };
}

/** The median of `xs`, undefined values left out (undefined if none is left); the mean of the two middle values when
 * their count is even. */
export function median(xs) {
  const s = xs.filter((x) => x !== undefined).sort((a, b) => a - b);
  if (s.length === 0) return undefined;
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/**
 * One process's /proc/PID/stat: { ppid, pgid, comm, cpuTicks (utime + stime, in clock ticks), cpuSeconds (the same
 * over USER_HZ, 100 on Linux) }; undefined once the process is gone.
 */
export function procStat(pid) {
  let stat;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch {
    return undefined;
  }
  // comm is in parentheses and may itself hold ") ": the fields start after the last ")".
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const cpuTicks = Number(fields[11]) + Number(fields[12]);
  return {
    ppid: Number(fields[1]),
    pgid: Number(fields[2]),
    comm: stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")")),
    cpuTicks,
    cpuSeconds: cpuTicks / 100,
  };
}

/** Every process in /proc, as { pid, ...procStat(pid) }. */
export function processes() {
  const found = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = procStat(entry);
    if (stat) found.push({ pid: Number(entry), ...stat });
  }
  return found;
}

/** Kills a child started with `detached: true` and everything it started (its process group). */
export function killGroup(child) {
  try {
    process.kill(-child.pid, "SIGKILL");
  } catch {
    // already gone
  }
}

function spawnWait(cmd, args, opts, timeoutMs) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { ...opts, detached: true });
    const timer = setTimeout(() => {
      killGroup(child);
      reject(new Error(`timed out after ${timeoutMs / 1000} s: ${args.join(" ")}`));
    }, timeoutMs);
    child.on("error", reject);
    child.on("exit", (code) => {
      clearTimeout(timer);
      if (code === 0) resolve();
      else reject(new Error(`${cmd} exited with ${code}`));
    });
  });
}

function spawnCount(argv, { cwd, env, stdin, consume }, timeoutMs) {
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0], argv.slice(1), {
      cwd,
      env,
      stdio: ["pipe", consume ? "pipe" : "ignore", "inherit"],
      detached: true,
    });
    if (stdin) child.stdin.end(readFileSync(stdin));
    else child.stdin.end();
    let events = 0;
    let bytes = 0;
    if (consume) {
      const count = eventCounter();
      child.stdout.on("data", (chunk) => {
        bytes += chunk.length;
        events += count(chunk);
      });
    }
    const timer = setTimeout(() => {
      killGroup(child);
      reject(new Error(`timed out after ${timeoutMs / 1000} s`));
    }, timeoutMs);
    child.on("error", reject);
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ events: consume ? events : undefined, bytes: consume ? bytes : undefined, rc: code });
    });
  });
}

/** `--help` of a bench script: the comment block at the top of the file at `url`, up to its first blank line; exits. */
export function printHeaderHelp(url) {
  const lines = readFileSync(fileURLToPath(url), "utf8").split("\n");
  console.log(
    lines
      .slice(1, lines.indexOf("", 1))
      .map((l) => l.replace(/^\/\/ ?/, ""))
      .join("\n"),
  );
  process.exit(0);
}
