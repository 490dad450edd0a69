// The Prometheus metrics of --metrics-listen: the counts the stats line and the summary already keep, read at scrape
// time (one source, no second tally), plus two histograms (S3 GET latency, time per object) and prom-client's
// process metrics. Names follow Prometheus conventions: the `cloudtrail_exec_filter_` prefix, base units, `_total`
// counters, `_seconds` histograms. https://prometheus.io/docs/practices/naming/
//
// Loaded only with --metrics-listen (with prom-client), so a run without it pays nothing. Between scrapes the only
// work is the histograms' `observe`, once per object and once per GET; a scrape reads each count once (`Reading`).
import type { Counter, Gauge, Registry } from "prom-client";
import type { Status } from "../integrity/chain.js";
import type { ContinuousCounts } from "../integrity/continuous.js";
import type { FilterCounts } from "../model/counts.js";
import type { DeadLetterCode, ObjectOutcomes } from "../run/filter.js";

const PREFIX = "cloudtrail_exec_filter_";

/**
 * What one scrape reads: the Filter's counts and what the command has around it, or `verify`'s verdicts (it has no
 * Filter). Absent parts have no metrics.
 */
export interface Reading {
  /** The Filter's (undefined while `import` lists before its Filter starts: its counters are 0 then). */
  filter?: {
    counts: FilterCounts;
    deadLetters: ReadonlyMap<DeadLetterCode, number>;
    objects: Readonly<ObjectOutcomes>;
    /** The newest eventTime written, as written. */
    newestEventTime: string | undefined;
  };
  /** The SQS messages: the `sqs` command's queue, or the filter's --delete-sqs-messages. */
  sqs?: {
    received?: number;
    receiveFailures?: number;
    deleted: number;
    deleteFailures: number;
    handedBack?: number;
    refused?: number;
    inFlight?: number;
  };
  /** Records in the spool not yet done (--spool-dir). */
  spool?: number;
  /** --output forward://: the ForwardSink's counts. */
  forward?: {
    messages: number;
    entries: number;
    resent: number;
    connections: number;
    unacknowledged: number;
    connected: boolean;
  };
  /** `import`: files listed so far. */
  listed?: number;
  /** `verify`: its verdicts so far, by kind of file and status (the summary's `digests` and `logFiles`). */
  integrity?: Readonly<Record<IntegrityKind, Readonly<Record<Status, number>>>>;
  /** --verify-integrity (the filter, `sqs`, `import`): the continuous check's counts (the summary's `integrity`). */
  continuous?: Readonly<ContinuousCounts>;
}

/** The `kind` of a `cloudtrail.integrity` line, as the integrity counter's label says it. */
export type IntegrityKind = "digest" | "logFile";
const INTEGRITY_KINDS: readonly IntegrityKind[] = ["digest", "logFile"];
const STATUSES: readonly Status[] = ["valid", "invalid", "missing", "unlisted"];

type Read = (reading: Reading) => number | undefined;

/** The Filter's counters, by name (after the prefix), with their help and where their value is. */
const FILTER_COUNTERS: readonly (readonly [string, string, Read])[] = [
  [
    "records_total",
    "Input records read: lines on stdin, SQS messages, listed files",
    (r) => r.filter?.counts.records ?? 0,
  ],
  ["events_total", "CloudTrail events written", (r) => r.filter?.counts.events ?? 0],
  [
    "skipped_total",
    "Objects deliberately skipped (digest files, S3 test events), each logged",
    (r) => r.filter?.counts.skipped ?? 0,
  ],
  ["retries_total", "Object reads attempted again after a transient failure", (r) => r.filter?.counts.retries ?? 0],
  ["input_bytes_total", "Bytes of objects read as stored (compressed)", (r) => r.filter?.counts.bytesIn ?? 0],
  ["inflated_bytes_total", "Bytes of objects after decompression", (r) => r.filter?.counts.bytesInflated ?? 0],
  ["output_bytes_total", "Bytes of records written (events and dead letters)", (r) => r.filter?.counts.bytesOut ?? 0],
];

/** The counters of the other parts; a part absent from the first reading has none. */
const COUNTERS: readonly (readonly [string, string, Read])[] = [
  ["sqs_messages_received_total", "SQS messages received", (r) => r.sqs?.received],
  ["sqs_receive_failures_total", "SQS ReceiveMessage calls that failed (retried)", (r) => r.sqs?.receiveFailures],
  ["sqs_messages_deleted_total", "SQS messages deleted once delivered or dead-lettered", (r) => r.sqs?.deleted],
  ["sqs_delete_failures_total", "SQS message deletes given up", (r) => r.sqs?.deleteFailures],
  ["sqs_messages_handed_back_total", "SQS messages made visible again unfinished (shutdown)", (r) => r.sqs?.handedBack],
  ["sqs_queue_urls_refused_total", "Records whose queue_url was refused: not acknowledged", (r) => r.sqs?.refused],
  ["forward_messages_acknowledged_total", "Forward messages fluentd acknowledged", (r) => r.forward?.messages],
  ["forward_entries_acknowledged_total", "Records in forward messages fluentd acknowledged", (r) => r.forward?.entries],
  [
    "forward_messages_resent_total",
    "Forward messages sent again (no ack in time, or a lost connection)",
    (r) => r.forward?.resent,
  ],
  ["forward_connections_total", "Connections to fluentd established", (r) => r.forward?.connections],
  ["import_objects_listed_total", "Files the import listed", (r) => r.listed],
  [
    "integrity_digests_checked_total",
    "--verify-integrity: digest files checked as they came",
    (r) => r.continuous?.digests,
  ],
  [
    "integrity_problems_total",
    "--verify-integrity: cloudtrail.integrity lines written whose status is not valid (digests and log files)",
    (r) => r.continuous?.problems,
  ],
  [
    "integrity_files_remembered_total",
    "--verify-integrity: listed log files judged by the hash taken when they were read",
    (r) => r.continuous?.remembered,
  ],
  [
    "integrity_files_fetched_total",
    "--verify-integrity: log files and previous digests fetched because no hash of them was remembered",
    (r) => r.continuous?.fetched,
  ],
];

const FILTER_GAUGES: readonly (readonly [string, string, Read])[] = [
  ["objects_in_flight", "Objects started and not finished", (r) => (r.filter === undefined ? 0 : inFlight(r.filter))],
  // NaN until an event with an eventTime is written: no alert compares true on it.
  ["newest_event_timestamp_seconds", "The newest eventTime written, as Unix time", (r) => newestSeconds(r)],
  ["lag_seconds", "Now less the newest eventTime written", (r) => Date.now() / 1000 - newestSeconds(r)],
];

const GAUGES: readonly (readonly [string, string, Read])[] = [
  ["sqs_messages_in_flight", "SQS messages received and not finished", (r) => r.sqs?.inFlight],
  ["spool_records", "Records in the spool not done yet", (r) => r.spool],
  [
    "forward_chunks_unacknowledged",
    "Forward messages not acknowledged by fluentd yet",
    (r) => r.forward?.unacknowledged,
  ],
  [
    "forward_connected",
    "1 while a connection to fluentd is established",
    (r) => (r.forward === undefined ? undefined : Number(r.forward.connected)),
  ],
];

function inFlight(filter: NonNullable<Reading["filter"]>): number {
  const { read, deadLetter, leftToSqs, abandoned } = filter.objects;
  return filter.counts.objects - read - deadLetter - leftToSqs - abandoned;
}

function newestSeconds(reading: Reading): number {
  const text = reading.filter?.newestEventTime;
  return text === undefined ? Number.NaN : Date.parse(text) / 1000;
}

/** The objects' outcome labels, as `objects_total{outcome}` says them. */
const OUTCOMES: readonly (readonly [keyof ObjectOutcomes, string])[] = [
  ["read", "read"],
  ["deadLetter", "dead_letter"],
  ["leftToSqs", "left_to_sqs"],
  ["abandoned", "abandoned"],
];

/** prom-client's default metrics left out (see `create`). */
const MISNAMED_DEFAULTS = [
  "nodejs_active_handles_total",
  "nodejs_active_requests_total",
  "nodejs_active_resources_total",
];

/** Told of each GET and each object as they end; `observe` is all a run pays between scrapes. */
export interface Observer {
  getSeconds(seconds: number): void;
  objectSeconds(seconds: number): void;
}

export class Metrics {
  private current: Reading = {};
  private read: (() => Reading) | undefined;

  private constructor(
    private readonly prom: typeof import("prom-client"),
    private readonly registry: Registry,
    readonly observer: Observer,
  ) {}

  /**
   * The registry with the process metrics, `build_info` and, for a command that reads objects through S3Source (not
   * `verify`), the histograms; the counts come with `attach`.
   */
  static async create(command: string, version: string, objects = true): Promise<Metrics> {
    const prom = await import("prom-client");
    const registry = new prom.Registry();
    prom.collectDefaultMetrics({ register: registry, prefix: PREFIX });
    // Gauges named like counters, which `promtool check metrics` rejects: the totals of nodejs_active_handles,
    // _requests and _resources, which stay (by type).
    for (const name of MISNAMED_DEFAULTS) registry.removeSingleMetric(PREFIX + name);
    new prom.Gauge({
      name: `${PREFIX}build_info`,
      help: "1, labelled with the program's version and the command running",
      labelNames: ["version", "command"],
      registers: [registry],
    }).set({ version, command }, 1);
    if (!objects) return new Metrics(prom, registry, { getSeconds: () => {}, objectSeconds: () => {} });
    const get = new prom.Histogram({
      name: `${PREFIX}s3_get_duration_seconds`,
      help: "S3 GetObject requests, to their response headers (failed ones too)",
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers: [registry],
    });
    const object = new prom.Histogram({
      name: `${PREFIX}object_duration_seconds`,
      help: "Objects from start to end (fetch, inflate, scan, write), retries included",
      buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300],
      registers: [registry],
    });
    return new Metrics(prom, registry, {
      getSeconds: (seconds) => get.observe(seconds),
      objectSeconds: (seconds) => object.observe(seconds),
    });
  }

  /**
   * Serves the counts `read` returns; a part absent from its first reading has no metrics. `filter`: the command has
   * a Filter (`import`'s comes later: its counters are 0 until then).
   */
  attach(read: () => Reading, filter: boolean): void {
    const { prom, registry } = this;
    this.read = read;
    const first = read();
    const current = (): Reading => this.current;
    for (const [name, help, value] of filter ? [...FILTER_COUNTERS, ...COUNTERS] : COUNTERS) {
      if (value(first) === undefined) continue;
      const counter: Counter = new prom.Counter({
        name: PREFIX + name,
        help,
        registers: [registry],
        collect() {
          // The count is the source; the counter only shows it.
          counter.reset();
          counter.inc(value(current()) ?? 0);
        },
      });
    }
    for (const [name, help, value] of filter ? [...FILTER_GAUGES, ...GAUGES] : GAUGES) {
      if (value(first) === undefined) continue;
      const gauge: Gauge = new prom.Gauge({
        name: PREFIX + name,
        help,
        registers: [registry],
        collect() {
          gauge.set(value(current()) ?? Number.NaN);
        },
      });
    }
    if (first.integrity !== undefined) {
      const files: Counter<"kind" | "status"> = new prom.Counter({
        name: `${PREFIX}integrity_files_total`,
        help: "verify: digest and log files judged, by kind (digest, logFile) and status (valid, invalid, missing, unlisted)",
        labelNames: ["kind", "status"],
        registers: [registry],
        collect() {
          const verdicts = current().integrity;
          files.reset();
          for (const kind of INTEGRITY_KINDS)
            for (const status of STATUSES) files.inc({ kind, status }, verdicts?.[kind][status] ?? 0);
        },
      });
    }
    if (filter) this.attachFilter(current);
  }

  /** The Filter's labelled counters: dead letters by code, objects by outcome. */
  private attachFilter(current: () => Reading): void {
    const { prom, registry } = this;
    const deadLetters: Counter<"code"> = new prom.Counter({
      name: `${PREFIX}dead_letters_total`,
      help: "Dead-letter records written, by error.code (docs/usage.md, Error codes)",
      labelNames: ["code"],
      registers: [registry],
      collect() {
        deadLetters.reset();
        for (const [code, n] of current().filter?.deadLetters ?? []) deadLetters.inc({ code }, n);
      },
    });
    const objects: Counter<"outcome"> = new prom.Counter({
      name: `${PREFIX}objects_total`,
      help: "Objects finished, by outcome: read, dead_letter, left_to_sqs (transient failures), abandoned (shutdown)",
      labelNames: ["outcome"],
      registers: [registry],
      collect() {
        const outcomes = current().filter?.objects;
        objects.reset();
        for (const [key, outcome] of OUTCOMES) objects.inc({ outcome }, outcomes?.[key] ?? 0);
      },
    });
  }

  /** The exposition in the Prometheus text format, every count read once, now. */
  async exposition(): Promise<{ contentType: string; body: string }> {
    if (this.read !== undefined) this.current = this.read();
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}
