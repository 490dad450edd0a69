// The `import` command: parse, check (exit 2), build the Importer (run/importer.ts), run one of its three runs
// (--list and the import: run/import-run.ts; --enqueue: run/enqueue-run.ts), exit.
import { Command } from "commander";
import type { ShutdownSignals } from "../run/shutdown.js";
import type { Host } from "../shared/host.js";
import { RetryPolicy } from "../shared/retry.js";
import { commonOptions, type ImportOptions, outputOptions, readingOptionNames } from "./program-options.js";
import {
  allowedWith,
  continuousIntegrity,
  filterOptions,
  openCheckpoint,
  selectionOf,
  startRuntime,
} from "./runtime.js";
import { checkImport, day, integer, list, statsInterval, subcommandOptions } from "./usage.js";

/**
 * `import <source>`: the CloudTrail log files already stored under an S3 prefix or in a directory, read through the
 * same Filter (same output, same dead letters). Options given before `import` count too, unless given again after it.
 */
export function importCommand(program: Command, host: Host, signals: ShutdownSignals): Command {
  const command: Command = outputOptions(commonOptions(new Command("import")))
    .summary("import the CloudTrail log files already in S3 (or in a directory)")
    .description(
      "import the CloudTrail log files already stored under an S3 prefix or in a directory (digest files are skipped): " +
        "one JSON line per event on stdout, as the filter writes them; progress on stderr",
    )
    .argument(
      "<source>",
      "s3://bucket[/prefix] (the bucket root, a custom prefix, AWSLogs/, an account or deeper) or file:///directory",
    )
    .option("--since <date>", "first day imported, YYYY-MM-DD (UTC, the date in the log file's key)", day)
    .option("--until <date>", "last day imported, YYYY-MM-DD (inclusive)", day)
    .option("--accounts <ids>", "only these accounts, comma-separated", list)
    .option("--regions <regions>", "only these regions, comma-separated", list)
    .option(
      "--list",
      "print the URLs of the files that would be imported on stdout (their count and size go to the log); import nothing",
    )
    .option("--checkpoint <file>", "append each finished file here, and skip the files already in it (resume)")
    .option(
      "--enqueue <queue-url>",
      "read nothing here: send the listed files to this SQS queue as CloudTrail notifications, for every filter " +
        "behind it to read (a file is finished, for --checkpoint, once SQS has its message)",
    )
    .option(
      "--keys-per-message <n>",
      "with --enqueue: files named by one message, at most (a message that comes back brings all of them back)",
      integer(1, 1000),
      10,
    )
    .option(
      "--stats-interval <seconds>",
      "log a stats line this often (the filter's: counts since the last one and in total, events/s, the lag behind " +
        "the newest eventTime, memory); 0 turns it off",
      statsInterval,
      60,
    )
    .action(async (argument: string) => {
      const options = subcommandOptions(program, command) as unknown as ImportOptions;
      // The import command's own modules load only when it runs.
      const [{ Importer, parseSource }, { checkDirectory, FileLister, ListError, S3Lister }, runs] = await Promise.all([
        import("../run/importer.js"),
        import("../listing/listers.js"),
        import("../run/import-run.js"),
      ]);
      const source = checkImport(options, parseSource(argument), command, program, readingOptionNames());
      const checkpoint = await openCheckpoint(options.checkpoint, command, options.list === true);
      const listOnly = options.list === true || options.enqueue !== undefined;
      const runtime = await startRuntime(
        listOnly ? { ...options, padBytes: 0, outputFormat: "json", output: { kind: "stdout" } } : options,
        program,
        host,
        "import",
      );
      const { log, sink } = runtime;
      const retry = new RetryPolicy({ retryForMs: options.retryFor * 1000 });
      const importer = new Importer({
        source,
        selection: selectionOf(options),
        lister: (signal) =>
          source.scheme === "s3"
            ? new S3Lister(() => runtime.aws.s3Client(undefined), source.bucket, retry, signal, options.requestPayer)
            : new FileLister(),
        log,
        ...(checkpoint === undefined ? {} : { checkpoint }),
        ...(options.verifyIntegrity === true ? { digests: true } : {}),
      });
      // A listing that fails ends the import: what was listed before is done; exit 1 with the reason on stderr.
      const listingFailed = (error: unknown): never => {
        const message = error instanceof Error ? error.message : String(error);
        log.error("listing failed", { message, ...(error instanceof ListError ? { code: error.code } : {}) });
        checkpoint?.close();
        host.stderr.write(`error: ${message}\n`);
        return host.exit(1);
      };
      const onSignals = (stop: () => void, abandon: () => void) =>
        signals.on(options.shutdownTimeout, log, stop, abandon);
      const deps = { importer, sink, log, host, listingFailed };
      await runs.beginImport(deps, {
        onSignals,
        forwarding: runtime.stdout === undefined,
        ...(source.scheme === "file" ? { checkDirectory: () => checkDirectory(`/${source.prefix}`) } : {}),
      });
      // With --list, --enqueue is a dry run like any other command line: the files are listed, nothing is sent.
      if (options.enqueue !== undefined && options.list !== true && source.scheme === "s3") {
        const { enqueue } = await import("../run/enqueue-run.js");
        const queueUrl = options.enqueue;
        const code = await enqueue({
          importer,
          queueUrl,
          bucket: source.bucket,
          keysPerMessage: options.keysPerMessage,
          client: () => runtime.aws.sqsClient(queueUrl),
          retry,
          log,
          stderr: host.stderr,
          ...(checkpoint === undefined ? {} : { checkpoint }),
          onSignals,
          listingFailed,
        });
        await sink.end();
        host.exit(code);
      }
      if (options.list === true) host.exit(await runs.listFiles(deps, options.logFile !== undefined));

      const integrity = await continuousIntegrity(
        options,
        runtime,
        log,
        undefined,
        allowedWith(source, options.buckets),
      );
      runtime.metrics?.serve({
        filter: () => importer.running,
        sink,
        listed: () => importer.progress.listed,
        ...(integrity === undefined ? {} : { continuous: () => integrity.integrity.counts }),
      });
      const filterDeps = {
        source: runtime.source,
        sink,
        log,
        options: filterOptions(options, false),
        ...(runtime.metrics === undefined ? {} : { observe: runtime.metrics.observer }),
        ...(integrity === undefined ? {} : { integrity: integrity.integrity }),
      };
      host.exit(await runs.importFiles(deps, filterDeps, checkpoint, options.statsInterval));
    });
  return command;
}
