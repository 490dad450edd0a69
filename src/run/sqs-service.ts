// The `sqs` command's work: a long-running consumer of one SQS queue. Receive loops (input/sqs-receiver.ts) feed the
// Filter; each message stays invisible while its objects are worked on (deliver/sqs-acks.ts) and is deleted only once
// everything it produced is delivered (written to stdout, or acknowledged by fluentd) or its permanent failure is
// dead-lettered. Its counts (`counts()`) are the stats line's and the summary's (run/stats.ts).
// A message whose object kept failing transiently is left to SQS: it comes back after its visibility timeout, and
// the queue's redrive policy bounds how often. At shutdown, messages not finished are handed back at once.
//
// Why no spool here (unlike the exec_filter mode): SQS itself keeps every message until it is deleted, and it is
// deleted only after delivery, so a crash at any point leaves the message to be received again.
import type { SQSClient } from "@aws-sdk/client-sqs";
import { SqsAcker } from "../deliver/sqs-acks.js";
import type { ObjectSource } from "../fetch/fetch.js";
import { SqsSource } from "../input/sqs-receiver.js";
import { type RunCounts, withParts } from "../model/counts.js";
import type { Sink } from "../model/sink.js";
import type { Logger } from "../shared/log.js";
import { Filter, type FilterDeps, type FilterOptions } from "./filter.js";

export interface SqsServiceOptions {
  queueUrl: string;
  receivers: number;
  /** Seconds each received message stays invisible, extended while it is worked on; undefined: the queue's. */
  visibilityTimeout?: number;
  waitTimeSeconds: number;
  /** Messages received and not finished, at most. */
  maxInFlight: number;
  filter: FilterOptions;
}

export interface SqsServiceDeps {
  options: SqsServiceOptions;
  sqsClient(queueUrl: string): Promise<SQSClient>;
  source: ObjectSource;
  sink: Sink;
  log: Logger;
  /** The sink's own counts for the stats line and the summary (forward: acknowledged, resent, unacknowledged). */
  sinkStats?(): Record<string, unknown>;
  /** --metrics-listen's histogram of time per object. */
  observe?: FilterDeps["observe"];
  /** --verify-integrity. */
  integrity?: FilterDeps["integrity"];
}

export class SqsService {
  readonly acker: SqsAcker;
  /** The receive loops and the Filter, public for --metrics-listen, which reads their counts. */
  readonly input: SqsSource;
  readonly filter: Filter;

  constructor(private readonly deps: SqsServiceDeps) {
    const { options, log } = deps;
    this.acker = new SqsAcker({
      log,
      clientFor: (queueUrl) => deps.sqsClient(queueUrl),
      trustedUrls: [options.queueUrl], // the only queue its messages come from
      ...(options.visibilityTimeout === undefined ? {} : { visibilityTimeout: options.visibilityTimeout }),
    });
    this.input = new SqsSource({
      queueUrl: options.queueUrl,
      client: () => deps.sqsClient(options.queueUrl),
      log,
      receivers: options.receivers,
      maxInFlight: options.maxInFlight,
      waitTimeSeconds: options.waitTimeSeconds,
      ...(options.visibilityTimeout === undefined ? {} : { visibilityTimeout: options.visibilityTimeout }),
      onReceived: (message) => this.acker.track(message),
      handBack: (message) => this.acker.handBack(message),
    });
    this.filter = new Filter({
      source: deps.source,
      sink: deps.sink,
      log,
      options: { ...options.filter, leaveTransientToSqs: true },
      ...(deps.observe === undefined ? {} : { observe: deps.observe }),
      ...(deps.integrity === undefined ? {} : { integrity: deps.integrity }),
      hooks: {
        recordDone: (outcome) => {
          const sqs = outcome.record.sqs;
          this.input.done();
          if (sqs === undefined) return; // every record here comes from the queue
          if (outcome.abandoned) this.acker.handBack(sqs);
          else this.acker.settle(sqs, !outcome.retryLater);
        },
      },
    });
  }

  /** Counts since the start, for the stats line and the summary: the Filter's, the queue's and the sink's. */
  counts(): RunCounts {
    return withParts(this.filter.counts(), {
      counters: {
        received: this.input.counts.received,
        receiveFailures: this.input.counts.receiveFailures,
        deleted: this.acker.deletes,
        deleteFailures: this.acker.failures,
        handedBack: this.acker.handedBack,
      },
      levels: { ...this.deps.sinkStats?.() },
    });
  }

  /** Stops receiving and taking messages; work in flight goes on until it ends or `abandon` is called. */
  stop(): void {
    this.filter.stop();
    this.input.stop();
  }

  /** Gives up work in flight: its messages are handed back (no event of it is delivered after this). */
  abandon(): void {
    this.stop();
    this.filter.abortInFlight();
    this.deps.sink.abandon();
  }

  /**
   * The output is lost (stdout's reader is gone): stop, hand back every message not finished, and delete nothing
   * more (sqs-acks.ts, `handBackInsteadOfDeleting`). `run` then ends as after `abandon`.
   */
  outputLost(): void {
    this.acker.handBackInsteadOfDeleting();
    this.abandon();
  }

  /**
   * Runs until stopped; then sends the last deletes and hand-backs, for at most `closeWithinMs`. The caller logs the
   * stats line as it goes and the summary at the end, both from `counts()`.
   */
  async run(closeWithinMs: () => number): Promise<void> {
    this.deps.log.info("receiving", {
      queueUrl: this.deps.options.queueUrl,
      receivers: this.deps.options.receivers,
      visibilityTimeout: this.deps.options.visibilityTimeout,
    });
    this.input.start();
    await this.filter.run(this.input);
    await this.input.ended();
    await this.acker.close(closeWithinMs());
  }
}
