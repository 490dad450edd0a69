// The exec_filter mode as a runner: records from stdin (through the spool, when there is one) through the Filter to
// the sink, each SQS message deleted once done (--delete-sqs-messages), a stats line as it goes, a summary at the
// end, and the stop on SIGTERM/SIGINT that fluentd's shutdown sends. cli/filter.ts builds its parts and runs it.

import type { OutputSink } from "../deliver/output.js";
import type { SqsAcker } from "../deliver/sqs-acks.js";
import type { ObjectSource } from "../fetch/fetch.js";
import { Intake } from "../input/intake.js";
import type { Line } from "../input/lines.js";
import type { Spool } from "../input/spool.js";
import type { ContinuousIntegrity } from "../integrity/continuous.js";
import { type RunCounts, withParts } from "../model/counts.js";
import type { Sink } from "../model/sink.js";
import { sqsMessageOfLine } from "../records/records.js";
import type { Host } from "../shared/host.js";
import type { Logger } from "../shared/log.js";
import { Filter, type FilterDeps, type FilterOptions } from "./filter.js";
import { describeStdoutError, finishOutput, type ShutdownSignals } from "./shutdown.js";
import { type RunReport, reportRun } from "./stats.js";

export interface ExecFilterDeps {
  host: Pick<Host, "stdin" | "exit" | "rssBytes" | "maxRssBytes">;
  signals: ShutdownSignals;
  log: Logger;
  source: ObjectSource;
  sink: Sink;
  /** The sink when it is stdout (not fluentd's in_forward): what is cut at exit is a line of it. */
  stdout: OutputSink | undefined;
  lines: AsyncIterable<Line>;
  spool: Spool | undefined;
  acker: SqsAcker | undefined;
  filter: FilterOptions;
  concurrency: number;
  /** --visibility-timeout, with --delete-sqs-messages. */
  visibilityTimeout: number | undefined;
  observe?: FilterDeps["observe"];
  shutdownTimeout: number;
  /** Seconds between stats lines; 0: none. */
  statsInterval: number;
  /** --verify-integrity: the continuous check (integrity/continuous.ts), closed when the run ends. */
  integrity?: { integrity: ContinuousIntegrity; close(): void };
}

export class ExecFilter {
  readonly filter: Filter;
  private readonly intake: Intake;
  /** Started with the runner: its stats lines, and the summary's fields (from the runner's start). */
  private readonly report: RunReport;

  constructor(private readonly deps: ExecFilterDeps) {
    const { acker, spool, log } = deps;
    // A message is kept invisible from when its record is queued, not only once the filter starts it: under a backlog a
    // record may wait longer than the visibility timeout, and a message SQS hands out again is a duplicate. The line is
    // parsed for its receipt handle here and again when the filter interprets it: a few µs per record, against the
    // milliseconds its objects take.
    const trackQueued =
      acker !== undefined && deps.visibilityTimeout !== undefined
        ? (line: Line): void => {
            const message = line.kind === "line" ? sqsMessageOfLine(line.text) : undefined;
            if (message !== undefined) acker.track(message);
          }
        : undefined;
    this.intake = new Intake(deps.lines, spool, log, deps.concurrency * 4, trackQueued);
    this.filter = new Filter({
      source: deps.source,
      sink: deps.sink,
      log,
      options: deps.filter,
      ...(deps.observe === undefined ? {} : { observe: deps.observe }),
      ...(deps.integrity === undefined ? {} : { integrity: deps.integrity.integrity }),
      hooks: {
        recordDone(outcome) {
          const sqs = outcome.record.sqs;
          if (outcome.abandoned) {
            if (sqs !== undefined) acker?.settle(sqs, false); // unfinished: the spool or SQS brings it back
            return;
          }
          if (outcome.line.id !== undefined) spool?.done(outcome.line.id);
          if (sqs !== undefined) acker?.settle(sqs, !outcome.retryLater);
        },
      },
    });
    this.report = reportRun({
      log,
      host: deps.host,
      statsIntervalSeconds: deps.statsInterval,
      counts: () => this.counts(),
    });
  }

  /** Counts since the start: the Filter's, the records left unread, the SQS deletes' and the spool's level. */
  counts(): RunCounts {
    const { acker, spool } = this.deps;
    return withParts(this.filter.counts(), {
      counters: {
        leftOver: this.intake.leftOver,
        ...(acker === undefined
          ? {}
          : { sqsDeletes: acker.deletes, sqsDeleteFailures: acker.failures, sqsQueueUrlsRefused: acker.refused }),
      },
      levels: spool === undefined ? {} : { spooled: spool.size },
    });
  }

  /** Stops taking records; work in flight goes on until it ends or `abandon` is called. */
  stop(): void {
    this.filter.stop();
    if (this.deps.spool === undefined) {
      this.deps.host.stdin.pause();
      this.intake.abandon();
    } else {
      this.intake.stop(); // stdin is still read into the journal until it ends or the deadline
    }
  }

  abandon(): void {
    this.filter.abortInFlight();
    this.intake.abandon();
    this.deps.sink.abandon();
  }

  /**
   * stdout closed under fluentd: fluentd is gone (stopping, or restarting its child), so the counts so far are the
   * summary and the exit is 0, as for a stop. Nothing more is deleted (the acker's pending deletes die with the
   * process); records not finished stay in the spool, and their SQS messages come back after their visibility timeout.
   */
  outputClosed(error: Error): never {
    this.deps.log.info("stdout closed; exiting", describeStdoutError(error));
    this.deps.log.info("summary", { ...this.report.summary(), stdoutClosed: true });
    return this.deps.host.exit(0);
  }

  /** Runs until stdin ends or a signal stops it; returns the exit code. */
  async run(): Promise<number> {
    const { log, sink, stdout, spool, acker } = this.deps;
    const signalled = this.deps.signals.on(
      this.deps.shutdownTimeout,
      log,
      () => this.stop(),
      () => this.abandon(),
    );
    await this.filter.run(this.intake);
    await this.intake.finished;
    await finishOutput(sink, stdout, signalled(), log);
    await acker?.close(signalled() ? 1000 : 10_000);
    this.deps.integrity?.close();
    spool?.close();
    this.report.stop();
    log.info("summary", this.report.summary());
    return 0;
  }
}
