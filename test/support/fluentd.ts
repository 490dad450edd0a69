// A real fluentd (FLUENTD_HOME, a gem on PATH, or the 1.15.3 source in ../shared/vendor: fluentd-home.mjs chooses)
// for tests: whether it can run here, configurations cut from the shipped ones, and a running fluentd with its log,
// its child processes and bounded waits.
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { expect } from "vitest";
import { jsonLines } from "./cli.js";
import { type FoundFluentd, findFluentd, probeFluentd } from "./fluentd-home.mjs";
import type { TrailEvent } from "./trail.js";
import { waitUntil } from "./wait.js";

export { waitUntil };

let found: FoundFluentd | undefined;
let unavailable: string | false | undefined;
/** Why no fluentd can run here (with the hint saying how to get one), or undefined when one can. */
export function fluentdUnavailable(): string | undefined {
  if (unavailable === undefined) {
    if (process.platform !== "linux") {
      unavailable = "the tests find fluentd's children in /proc (Linux only)";
    } else {
      const candidate = findFluentd();
      unavailable = probeFluentd(candidate) ?? false;
      if (unavailable === false && !("unavailable" in candidate)) found = candidate;
    }
  }
  return unavailable === false ? undefined : unavailable;
}

/** The command and arguments that run fluentd with `args`; only once `fluentdUnavailable()` said it can run. */
function fluentdCommand(...args: string[]): [string, string[]] {
  if (fluentdUnavailable() !== undefined || found === undefined)
    throw new Error("no fluentd: see fluentdUnavailable()");
  return [found.command, [...found.prefix, ...args]];
}

/** `fluentd --dry-run -c <config>`: whether fluentd accepts a configuration (plugins and parameters included). */
export function dryRun(config: string, env: NodeJS.ProcessEnv = process.env): { ok: boolean; output: string } {
  const [command, args] = fluentdCommand("--dry-run", "-c", config);
  const run = spawnSync(command, args, {
    encoding: "utf8",
    timeout: 60_000,
    env,
  });
  return { ok: run.status === 0, output: `${run.stdout}${run.stderr}` };
}

/** Which directive to cut: its opening line (trimmed) and its whole text, opening and closing lines included. */
export type DirectiveTest = (opening: string, block: string) => boolean;

/**
 * Line indexes of the first directive `test` accepts and of its matching close. Throws when none is accepted, so that a
 * renamed section fails the test instead of leaving the shipped one in place.
 */
function directiveRange(lines: string[], test: DirectiveTest): [number, number] {
  for (let start = 0; start < lines.length; start++) {
    const opening = (lines[start] as string).trim();
    const name = /^<([a-z_]+)[\s>]/.exec(opening)?.[1];
    if (name === undefined) continue;
    let depth = 0;
    let end = start;
    for (; end < lines.length; end++) {
      const line = (lines[end] as string).trim();
      if (new RegExp(`^<${name}[\\s>]`).test(line)) depth++;
      else if (line === `</${name}>` && --depth === 0) break;
    }
    if (end === lines.length) throw new Error(`<${name}> on line ${start + 1} is never closed`);
    if (test(opening, lines.slice(start, end + 1).join("\n"))) return [start, end];
  }
  throw new Error("no directive matched");
}

/** Replaces a directive (see directiveRange) by `replacement`, indented as the directive was. */
export function replaceDirective(text: string, test: DirectiveTest, replacement: string): string {
  const lines = text.split("\n");
  const [start, end] = directiveRange(lines, test);
  const indent = /^\s*/.exec(lines[start] as string)?.[0] ?? "";
  const body = replacement
    .trim()
    .split("\n")
    .map((line) => (line === "" ? line : indent + line));
  return [...lines.slice(0, start), ...body, ...lines.slice(end + 1)].join("\n");
}

/** Applies `edit` to the text of a directive (see directiveRange), its opening and closing lines included. */
export function editDirective(text: string, test: DirectiveTest, edit: (block: string) => string): string {
  const lines = text.split("\n");
  const [start, end] = directiveRange(lines, test);
  return [...lines.slice(0, start), edit(lines.slice(start, end + 1).join("\n")), ...lines.slice(end + 1)].join("\n");
}

/**
 * The complete JSON lines of the files in `dir` whose name starts with `prefix` (out_file's outputs; a line being
 * appended is left out). Files only: out_file keeps its buffer in a folder beside them.
 */
export function readLines(dir: string, prefix = ""): Record<string, unknown>[] {
  let names: string[];
  try {
    names = readdirSync(dir).filter((name) => name.startsWith(prefix) && statSync(join(dir, name)).isFile());
  } catch {
    return [];
  }
  return names.flatMap((name) => jsonLines(readFileSync(join(dir, name), "utf8")));
}

/**
 * Each event fluentd wrote (`fileOutput`'s records) is its original, byte for byte once parsed, plus `@timestamp`,
 * tagged cloudtrail.event and timed at its eventTime. An event not in `expected` fails, unless `skipOthers` (a run
 * that also carries events of earlier phases).
 */
export function expectFaithful(records: Record<string, unknown>[], expected: TrailEvent[], skipOthers = false): void {
  const byId = new Map(expected.map((e) => [e.eventID, e]));
  for (const { fluentd_tag, fluentd_time, ...event } of records) {
    const original = byId.get(String(event.eventID));
    if (original === undefined && skipOthers) continue;
    expect(original, String(event.eventID)).toBeDefined();
    if (original === undefined) continue;
    expect(fluentd_tag).toBe("cloudtrail.event");
    // <extract> time_key _time: fluentd's event time is eventTime, and _time is gone from the record.
    expect(fluentd_time).toBe(Date.parse(original.eventTime) / 1000);
    expect(event).toEqual({ ...original, "@timestamp": original.eventTime });
  }
}

/**
 * An out_file `<match>` standing in for Elasticsearch (or the dead-letter file): each record written as JSON with the
 * tag and the time fluentd gave it (`fluentd_tag`, `fluentd_time`), flushed every second.
 */
export function fileOutput(options: { pattern: string; path: string; bufferPath: string; id?: string }): string {
  return `
<match ${options.pattern}>
  @type file${options.id === undefined ? "" : `\n  @id ${options.id}`}
  path ${options.path}
  append true
  <format>
    @type json
  </format>
  <inject>
    tag_key fluentd_tag
    time_key fluentd_time
    time_type float
  </inject>
  <buffer>
    @type file
    path ${options.bufferPath}
    flush_mode interval
    flush_interval 1s
  </buffer>
</match>`;
}

/** The pids whose parent is `pid` (from /proc: fluentd starts its exec_filter children itself, no shell between). */
export function childPids(pid: number): number[] {
  const found: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${entry}/stat`, "utf8");
    } catch {
      continue; // exited meanwhile
    }
    // pid (comm) state ppid …; comm may hold spaces and parentheses, so read after the last ")".
    const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
    if (ppid === pid) found.push(Number(entry));
  }
  return found;
}

/** Whether a process exists (a zombie counts as gone). */
export function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return false;
  }
}

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/**
 * One fluentd in a process group of its own, so that `kill()` ends it and every process it started. Without workers it
 * runs with `--no-supervisor`: a single process, whose children are the exec_filter commands.
 */
export class Fluentd {
  readonly process: ChildProcess;
  readonly pid: number;
  /** Everything fluentd logged (its log goes to stdout), and its stderr. */
  output = "";
  exit: Exit | undefined;
  readonly exited: Promise<Exit>;

  private constructor(config: string, env: NodeJS.ProcessEnv, supervised: boolean) {
    const args = supervised ? ["-c", config] : ["-c", config, "--no-supervisor"];
    const [command, commandArgs] = fluentdCommand(...args);
    this.process = spawn(command, commandArgs, {
      detached: true,
      stdio: ["ignore", "pipe", "pipe"],
      env,
    });
    this.pid = this.process.pid as number;
    const append = (chunk: Buffer) => {
      this.output += chunk.toString("utf8");
    };
    this.process.stdout?.on("data", append);
    this.process.stderr?.on("data", append);
    this.exited = new Promise((resolve) => {
      this.process.on("close", (code, signal) => {
        this.exit = { code, signal };
        resolve(this.exit);
      });
    });
  }

  /**
   * Starts fluentd and resolves once its worker runs (every plugin started, exec_filter children spawned). `workers`:
   * a configuration with `<system> workers N`, run under fluentd's supervisor (which multi-process workers need, and
   * which then is the process this object stands for); resolves once every worker runs.
   */
  static async start(
    config: string,
    env: NodeJS.ProcessEnv,
    options: { workers?: number; timeoutMs?: number } = {},
  ): Promise<Fluentd> {
    const fluentd = new Fluentd(config, env, options.workers !== undefined);
    const timeoutMs = options.timeoutMs ?? 30_000;
    try {
      for (let id = 0; id < (options.workers ?? 1); id++) {
        await fluentd.waitForLog(new RegExp(`fluentd worker is now running worker=${id}\\b`), timeoutMs);
      }
    } catch (error) {
      fluentd.kill();
      throw error;
    }
    return fluentd;
  }

  waitForLog(pattern: RegExp, timeoutMs: number, from = 0): Promise<void> {
    return waitUntil(
      `fluentd to log ${pattern}`,
      () => {
        if (this.exit !== undefined) throw new Error(`fluentd exited (${JSON.stringify(this.exit)}):\n${this.tail()}`);
        return pattern.test(this.output.slice(from));
      },
      timeoutMs,
      () => this.tail(),
    );
  }

  /** The last lines of fluentd's log, for failure messages. */
  tail(lines = 40): string {
    return this.output.split("\n").slice(-lines).join("\n");
  }

  /** fluentd's log lines at warn level or worse. */
  problems(): string[] {
    return this.output.split("\n").filter((line) => /\[(warn|error|fatal)\]/.test(line));
  }

  /** The exec_filter children running now. */
  children(): number[] {
    return childPids(this.pid).filter(alive);
  }

  /** Sends `signal` to fluentd alone (as `kill PID` or a service manager's stop would), and waits for it to exit. */
  async stop(signal: NodeJS.Signals = "SIGTERM", timeoutMs = 30_000): Promise<Exit & { ms: number }> {
    const asked = Date.now();
    this.process.kill(signal);
    const timeout = new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), timeoutMs).unref());
    const exit = await Promise.race([this.exited, timeout]);
    if (exit === undefined) {
      this.kill();
      throw new Error(`fluentd did not exit within ${timeoutMs} ms of ${signal}:\n${this.tail()}`);
    }
    return { ...exit, ms: Date.now() - asked };
  }

  /** SIGKILL to the whole process group: fluentd and whatever it started. For cleanup; harmless when all are gone. */
  kill(): void {
    try {
      process.kill(-this.pid, "SIGKILL");
    } catch {
      // already gone
    }
  }
}
