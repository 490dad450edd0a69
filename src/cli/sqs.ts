// The `sqs` command: parse, check (exit 2), build the SqsService (run/sqs-service.ts), run it (run/sqs-run.ts), exit.
import { Command } from "commander";
import { ForwardSink } from "../deliver/forward.js";
import type { ShutdownSignals } from "../run/shutdown.js";
import { runSqsService } from "../run/sqs-run.js";
import type { Host } from "../shared/host.js";
import { commonOptions, maxObjectsOption, outputOptions, type SqsOptions } from "./program-options.js";
import { continuousIntegrity, filterOptions, startRuntime, warnWithoutBuckets } from "./runtime.js";
import { checkSqs, integer, seconds, subcommandOptions } from "./usage.js";

/**
 * `sqs --queue-url URL`: a long-running consumer of the queue (run/sqs-service.ts), delivering to stdout or to fluentd's
 * in_forward. Options given before `sqs` count too, unless given again after it.
 */
export function sqsCommand(program: Command, host: Host, signals: ShutdownSignals): Command {
  const command: Command = maxObjectsOption(outputOptions(commonOptions(new Command("sqs"))))
    .summary("consume an SQS queue of notifications itself (no fluentd in_sqs): events to stdout or to fluentd")
    .description(
      "receive the notifications from an SQS queue (long polling), read the CloudTrail log files they name, and " +
        "deliver one record per event to stdout or to fluentd's in_forward; each message is deleted once its " +
        "records are delivered (written, or acknowledged by fluentd) or dead-lettered, and is handed back at shutdown",
    )
    .requiredOption("--queue-url <url>", "the queue's URL")
    .option("--receivers <n>", "receive loops polling the queue at once (10 messages each)", integer(1, 64), 2)
    .option(
      "--visibility-timeout <seconds>",
      "keep each message invisible this long from when it is received, extended while it is worked on; a " +
        "consumer that dies leaves its messages to come back after it",
      integer(1, 43_200),
      120,
    )
    .option(
      "--max-in-flight <n>",
      "messages received and not finished, at most (default: 4 × --concurrency, at least 10 × --receivers)",
      integer(1, 100_000),
    )
    .option("--wait-time <seconds>", "long polling: how long one receive waits for messages", integer(0, 20), 20)
    .option(
      "--stats-interval <seconds>",
      "log a stats line this often (the filter's: counts since the last one and in total, events/s, the lag " +
        "behind the newest eventTime, memory; plus the queue's counts); 0 turns it off",
      seconds,
      60,
    )
    .action(async () => {
      const options = subcommandOptions(program, command) as unknown as SqsOptions;
      // No exec_filter reads this stdout: whitespace padding only if asked for (before `sqs` or after it).
      options.padBytes ??= 0;
      checkSqs(options, command);
      const runtime = await startRuntime(options, program, host, "sqs");
      const { log, sink, stdout, source, aws, metrics } = runtime;
      const integrity = await continuousIntegrity(options, runtime, log, undefined, options.buckets);
      warnWithoutBuckets(options, log);
      const forwardCounts = () =>
        sink instanceof ForwardSink ? { forward: { ...sink.counts, unacknowledged: sink.pending } } : {};
      const { SqsService } = await import("../run/sqs-service.js");
      const maxInFlight = options.maxInFlight ?? Math.max(4 * options.concurrency, 10 * options.receivers);
      const service = new SqsService({
        options: {
          queueUrl: options.queueUrl,
          receivers: options.receivers,
          ...(options.visibilityTimeout === undefined ? {} : { visibilityTimeout: options.visibilityTimeout }),
          waitTimeSeconds: options.waitTime,
          maxInFlight,
          filter: filterOptions(options, true),
        },
        sqsClient: (queueUrl) => aws.sqsClient(queueUrl),
        source,
        sink,
        log,
        sinkStats: forwardCounts,
        ...(metrics === undefined ? {} : { observe: metrics.observer }),
        ...(integrity === undefined ? {} : { integrity: integrity.integrity }),
      });
      metrics?.serve({
        filter: () => service.filter,
        sink,
        acker: service.acker,
        receiver: { source: service.input, maxInFlight, waitTimeSeconds: options.waitTime },
        ...(integrity === undefined ? {} : { continuous: () => integrity.integrity.counts }),
      });
      const code = await runSqsService(service, {
        host,
        signals,
        log,
        sink,
        stdout,
        statsInterval: options.statsInterval,
        shutdownTimeout: options.shutdownTimeout,
        onStdoutClosed: (handler) => {
          runtime.onStdoutClosed = handler;
        },
      });
      host.exit(code);
    });
  return command;
}
