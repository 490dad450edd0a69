// The periodic stats line: under fluentd the filter runs for weeks, and between the per-record lines and the final
// summary its log would otherwise say nothing about how it is doing. Every --stats-interval one `info` line "stats"
// gives the counts since the previous line (under the final summary's names), events per second over the interval,
// the lag behind the trail (now minus the newest eventTime written) and the resident memory; `total` holds the counts
// since the start. The clock, the counts and the memory are handed in: this module reads no process state.
import type { LogContext } from "../shared/log.js";

/** Counters that only grow (the final summary's), by name. */
export type Counters = Readonly<Record<string, number>>;

export interface StatsReading {
  /** The counters now. */
  counts: Counters;
  /** The newest eventTime written so far (as written), if any. */
  newestEventTime: string | undefined;
  /** Resident set size now, in bytes. */
  rssBytes: number;
}

const round1 = (n: number): number => Math.round(n * 10) / 10;

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
      total: { seconds: round1((now - this.startedAt) / 1000), ...reading.counts },
    };
    this.last = reading.counts;
    this.lastAt = now;
    return line;
  }
}
