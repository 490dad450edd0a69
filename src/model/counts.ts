// What a runner has counted so far, in one shape for every mode (the exec filter, `sqs`, `import`, `import --enqueue`):
// each runner's `counts()` returns it, and the periodic stats line, the end-of-run summary line (run/stats.ts) and
// the metrics (observe/sources.ts) are all read from it, so none of them can count differently from the others.

/** Counters that only grow, by the names the summary line gives them. */
export type Counters = Readonly<Record<string, number>>;

/** The Filter's counts: every mode that reads objects keeps them, and its summary line opens with them. */
export interface FilterCounts {
  records: number;
  objects: number;
  events: number;
  skipped: number;
  deadLetters: number;
  /** Attempts made again after a transient failure (each one counts). */
  retries: number;
  abandoned: number;
  leftToSqs: number;
  bytesIn: number;
  bytesInflated: number;
  bytesOut: number;
}

export function emptyFilterCounts(): FilterCounts {
  return {
    records: 0,
    objects: 0,
    events: 0,
    skipped: 0,
    deadLetters: 0,
    retries: 0,
    abandoned: 0,
    leftToSqs: 0,
    bytesIn: 0,
    bytesInflated: 0,
    bytesOut: 0,
  };
}

export interface RunCounts {
  /** The Filter's, for a runner that reads objects (all but `import --enqueue`). */
  filter?: FilterCounts;
  /** The mode's own counters since the start (`sqs`: received, deleted…), under its summary's names. */
  counters: Counters;
  /**
   * Values read as they stand rather than summed over an interval (a spool's size, fluentd's acknowledgements, whether
   * the run was interrupted), under the summary's names.
   */
  levels: Readonly<Record<string, unknown>>;
  /**
   * The newest eventTime written so far, for the lag: null until one is written; absent for a runner that writes no
   * events.
   */
  newestEventTime?: string | null;
}

/** A runner's counts with those of the parts wired around it (an acker, a spool) added under their own names. */
export function withParts(
  counts: RunCounts,
  parts: { counters?: Counters; levels?: Readonly<Record<string, unknown>> },
): RunCounts {
  return {
    ...counts,
    counters: { ...counts.counters, ...parts.counters },
    levels: { ...counts.levels, ...parts.levels },
  };
}
