// The filter, fluentd's exec_filter child (the program itself, with no command word): parse, check (exit 2), build
// the stdin reader, the spool, the SQS deleter and the runner (run/exec-filter.ts), run it, exit.
import { type Command, Option } from "commander";
import { readLines } from "../input/lines.js";
import { SPOOL_MAX_BYTES_DEFAULT } from "../input/spool.js";
import { ExecFilter } from "../run/exec-filter.js";
import type { ShutdownSignals } from "../run/shutdown.js";
import type { Host } from "../shared/host.js";
import { type CliOptions, commonOptions, maxObjectsOption } from "./program-options.js";
import { continuousIntegrity, filterOptions, openSpool, startRuntime, warnWithoutBuckets } from "./runtime.js";
import { checkFilter, integer, statsInterval } from "./usage.js";

/** Gives the program (the root command) the filter's options and action. */
export function filterCommand(program: Command, host: Host, signals: ShutdownSignals): void {
  maxObjectsOption(commonOptions(program))
    .option("--max-line-bytes <n>", "longest input line kept; longer lines are dead-lettered", integer(1024), 16 << 20)
    .addOption(
      new Option("--input-format <format>", "json: one record per line; msgpack: maps back to back (fluentd's msgpack)")
        .choices(["json", "msgpack"])
        .default("json"),
    )
    .option("--spool-dir <dir>", "journal accepted records here and replay unfinished ones on start (survives kill -9)")
    .option(
      "--spool-max-bytes <n>",
      "with --spool-dir: most bytes of records read and not yet finished; when full, stdin waits until records finish",
      integer(1024),
      SPOOL_MAX_BYTES_DEFAULT,
    )
    .option(
      "--delete-sqs-messages",
      "delete each SQS message (fluent-plugin-sqs 2.x/3.x records) once its events are written",
      false,
    )
    .option(
      "--visibility-timeout <seconds>",
      "with --delete-sqs-messages: keep messages invisible from when they are read until they are done, extending before this runs out",
      integer(1, 43_200),
    )
    .option(
      "--stats-interval <seconds>",
      "log a stats line this often: counts since the last one and in total, events/s, the lag behind the newest " +
        "eventTime, memory; 0 turns it off",
      statsInterval,
      60,
    )
    // The filter takes no arguments: a word after its options is a command, mistyped or unknown (checked below, so
    // that it gets a "did you mean" rather than commander's "too many arguments").
    .allowExcessArguments(true)
    .action(async () => {
      const options = program.opts<CliOptions>();
      checkFilter(options, program);
      const runtime = await startRuntime(options, program, host);
      const { log, sink, stdout, source, aws, metrics } = runtime;
      const spool = await openSpool(options, program, log, host);
      const integrity = await continuousIntegrity(options, runtime, log, options.spoolDir, options.buckets);
      warnWithoutBuckets(options, log);
      const acker = options.deleteSqsMessages
        ? new (await import("../deliver/sqs-acks.js")).SqsAcker({
            log,
            clientFor: (queueUrl) => aws.sqsClient(queueUrl),
            trustedOrigins: aws.sqsOrigins(),
            ...(options.visibilityTimeout === undefined ? {} : { visibilityTimeout: options.visibilityTimeout }),
          })
        : undefined;
      const lines =
        options.inputFormat === "msgpack"
          ? (await import("../input/msgpack-lines.js")).readMsgpackLines(host.stdin, options.maxLineBytes)
          : readLines(host.stdin, options.maxLineBytes);
      const runner = new ExecFilter({
        host,
        signals,
        log,
        source,
        sink,
        stdout,
        lines,
        spool,
        acker,
        filter: filterOptions(options, options.deleteSqsMessages),
        concurrency: options.concurrency,
        visibilityTimeout: options.visibilityTimeout,
        ...(metrics === undefined ? {} : { observe: metrics.observer }),
        shutdownTimeout: options.shutdownTimeout,
        statsInterval: options.statsInterval,
        ...(integrity === undefined ? {} : { integrity }),
      });
      metrics?.serve({
        filter: () => runner.filter,
        sink,
        ...(acker === undefined ? {} : { acker }),
        ...(spool === undefined ? {} : { spool }),
        ...(integrity === undefined ? {} : { continuous: () => integrity.integrity.counts }),
      });
      runtime.onStdoutClosed = (error) => runner.outputClosed(error);
      host.exit(await runner.run());
    });
}
