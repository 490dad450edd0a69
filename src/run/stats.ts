// The periodic stats line and the end-of-run summary line, built here for every mode from its runner's `counts()`
// (model/counts.ts). Under fluentd the filter runs for weeks, and so does `sqs` under systemd: between the per-record
// lines and the final summary their log would otherwise say nothing about how they are doing. Every --stats-interval
// one `info` line "stats" gives the counts since the previous line (under the final summary's names), events per second
// over the interval, the lag behind the trail (now minus the newest eventTime written), the resident memory, and the
// values read as they stand (in flight, fluentd's acknowledgements); `total` holds the counts since the start. The
// clock, the counts and the memory are handed in: this module reads no process state.
import type { Counters, RunCounts } from "../model/counts.js";
import type { Host } from "../shared/host.js";
import type { LogContext, Logger } from "../shared/log.js";

export interface StatsReading {
  /** The counters now. */
  counts: Counters;
  /** The newest eventTime written so far (as written), if any. */
  newestEventTime: string | undefined;
  /** Resident set size now, in bytes. */
  rssBytes: number;
  /** Values given as they stand (not differenced), after the memory. */
  levels?: Readonly<Record<string, unknown>>;
}

const round1 = (n: number): number => Math.round(n * 10) / 10;

/** Every counter of a run, the Filter's first, under the summary's names: what the stats line differences. */
export function countersOf(counts: RunCounts): Counters {
  return { ...counts.filter, ...counts.counters };
}

export class Stats {
  private last: Counters;
  private lastAt: number;

  constructor(
    first: Counters,
    private readonly startedAt: number,
  ) {
    this.last = first;
    this.lastAt = startedAt;
  }

  /** The context of the stats line at `now` (ms), and the start of the next interval. */
  line(now: number, reading: StatsReading): LogContext {
    const seconds = (now - this.lastAt) / 1000;
    const interval: Record<string, number> = {};
    for (const [name, value] of Object.entries(reading.counts)) interval[name] = value - (this.last[name] ?? 0);
    const events = interval.events ?? 0;
    const at = reading.newestEventTime === undefined ? Number.NaN : Date.parse(reading.newestEventTime);
    const line: LogContext = {
      seconds: round1(seconds),
      ...interval,
      eventsPerSecond: seconds > 0 ? round1(events / seconds) : 0,
      // null until an event with an eventTime has been written.
      lagSeconds: Number.isFinite(at) ? Math.round((now - at) / 1000) : null,
      newestEventTime: reading.newestEventTime ?? null,
      rssMB: Math.round(reading.rssBytes / 2 ** 20),
      ...reading.levels,
      total: { seconds: round1((now - this.startedAt) / 1000), ...reading.counts },
    };
    this.last = reading.counts;
    this.lastAt = now;
    return line;
  }
}

export interface StatsLoopOptions {
  log: Logger;
  /** A stats line this often (ms); 0: none (only the summary at exit). */
  intervalMs: number;
  /** The runner's counts now (its `counts()`, with the parts wired around it). */
  counts(): RunCounts;
  /** Resident set size now, in bytes (the caller reads the process). */
  rssBytes(): number;
  now?: () => number;
}

/** Logs a stats line every `intervalMs` until the returned function is called; the timer never keeps a process up. */
export function startStats(options: StatsLoopOptions): () => void {
  if (options.intervalMs <= 0) return () => {};
  const now = options.now ?? Date.now;
  const stats = new Stats(countersOf(options.counts()), now());
  const timer = setInterval(() => {
    const counts = options.counts();
    const reading: StatsReading = {
      counts: countersOf(counts),
      newestEventTime: counts.newestEventTime ?? undefined,
      rssBytes: options.rssBytes(),
      levels: counts.levels,
    };
    options.log.info("stats", stats.line(now(), reading));
  }, options.intervalMs);
  timer.unref();
  return () => clearInterval(timer);
}

/**
 * The context of the summary line a run logs at its end: its counts under the same names as the stats line's
 * `total`, the values read as they stand, the newest eventTime written (for a runner that writes events), how long
 * the run took (from `startedMs` to `nowMs`, epoch milliseconds), and its peak memory when the runner has a reading
 * of it (`maxRssBytes`).
 */
export function summaryFields(
  counts: RunCounts,
  run: { startedMs: number; nowMs?: number; maxRssBytes?: () => number },
): LogContext {
  return {
    ...countersOf(counts),
    ...counts.levels,
    ...(counts.newestEventTime === undefined ? {} : { newestEventTime: counts.newestEventTime }),
    seconds: ((run.nowMs ?? Date.now()) - run.startedMs) / 1000,
    ...(run.maxRssBytes === undefined ? {} : { maxRssMB: Math.round(run.maxRssBytes() / 2 ** 20) }),
  };
}

/** A run's stats lines and its summary line's context, as `reportRun` wires them. */
export interface RunReport {
  /** No more stats lines. */
  stop(): void;
  /** The summary line's context now (summaryFields of the runner's counts, from the report's start). */
  summary(): LogContext;
}

/**
 * What every runner that reads objects does around its run: notes the start, logs a stats line every
 * `statsIntervalSeconds` (0: none) from its `counts()`, and gives the summary's fields with the run's peak memory.
 */
export function reportRun(options: {
  log: Logger;
  host: Pick<Host, "rssBytes" | "maxRssBytes">;
  statsIntervalSeconds: number;
  counts(): RunCounts;
}): RunReport {
  const { log, host, counts } = options;
  const startedMs = Date.now();
  const stop = startStats({
    log,
    intervalMs: options.statsIntervalSeconds * 1000,
    counts,
    rssBytes: () => host.rssBytes(),
  });
  return { stop, summary: () => summaryFields(counts(), { startedMs, maxRssBytes: host.maxRssBytes }) };
}
