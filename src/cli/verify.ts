// The `verify` command: parse, check (exit 2), build, run, exit. CloudTrail's log-file integrity validation for
// every digest chain under an S3 prefix (src/integrity/verify.ts does the work); one `cloudtrail.integrity` line per
// digest and per log file on stdout; exit 0 when everything checked is valid, VERIFY_PROBLEMS_EXIT when not.
import { Command, Option } from "commander";
import { OutputSink } from "../deliver/output.js";
import { type BucketName, parseBucketName, type Region } from "../model/names.js";
import type { ListenAddress } from "../observe/address.js";
import { describeStdoutError, type ShutdownSignals } from "../run/shutdown.js";
import type { Host } from "../shared/host.js";
import { LEVELS, type Level } from "../shared/log.js";
import { RetryPolicy } from "../shared/retry.js";
import { awsOptions } from "./program-options.js";
import { awsClients, openCheckpoint, openLog, openMetrics, selectionOf } from "./runtime.js";
import {
  buckets,
  checkVerify,
  day,
  integer,
  list,
  listenAddress,
  positiveSeconds,
  seconds,
  subcommandOptions,
} from "./usage.js";

/** A problem was found: a file is invalid, missing or unlisted (README "Exit codes"). */
export const VERIFY_PROBLEMS_EXIT = 3;

interface VerifyOptions {
  region?: Region;
  endpoint?: string;
  requestPayer: boolean;
  buckets?: ReadonlySet<BucketName>;
  concurrency: number;
  since?: string;
  until?: string;
  accounts?: string[];
  regions?: string[];
  checkpoint?: string;
  problemsOnly: boolean;
  logFile?: string;
  logLevel: Level;
  retryFor: number;
  requestTimeout: number;
  metricsListen?: ListenAddress;
}

/** The name a local copy's objects are read under (the store ignores it; lines report the names digests give). */
const LOCAL_COPY = parseBucketName("local-copy") as BucketName;

/** Builds `verify`; `program` is the root command, whose own options are refused before `verify`. */
export function verifyCommand(program: Command, host: Host, signals: ShutdownSignals): Command {
  const command: Command = new Command("verify")
    .summary("check CloudTrail's digest files and the log files they list (log-file integrity validation)")
    .description(
      "check the CloudTrail log files under an S3 prefix against CloudTrail's signed digest files: each digest's " +
        "signature (with the public key ListPublicKeys gives), its place and its link to the previous digest, and " +
        "each listed log file's SHA-256; one cloudtrail.integrity JSON line per digest and per log file on stdout, " +
        `a summary in the log; exit 0 when everything checked is valid, ${VERIFY_PROBLEMS_EXIT} when a problem was found`,
    )
    .argument(
      "<source>",
      "s3://bucket[/prefix] (the bucket root, a custom prefix, AWSLogs/, an account or deeper), or file:///directory " +
        "(a copy, with each digest's signature in a KEY.signature file beside it)",
    )
    .option("--since <date>", "first day checked, YYYY-MM-DD (UTC, the date in the keys)", day)
    .option("--until <date>", "last day checked, YYYY-MM-DD (inclusive; digests are read one day further)", day)
    .option("--accounts <ids>", "only these accounts, comma-separated", list)
    .option("--regions <regions>", "only these regions, comma-separated", list)
    .option(
      "--buckets <names>",
      "log files a digest lists may be read from these buckets too (besides the source's), comma-separated",
      buckets,
    )
    .option("--concurrency <n>", "objects fetched at once", integer(1, 1024), 16)
    .option("--checkpoint <file>", "append each log file found valid here, and skip those already in it (resume)")
    .option("--problems-only", "write only the lines whose status is not valid", false);
  awsOptions(command)
    .option("--log-file <path>", "append JSON log lines here (default: stderr)")
    .addOption(new Option("--log-level <level>", "least severe level logged").choices(LEVELS).default("info"))
    .option("--retry-for <seconds>", "keep retrying a request that fails transiently this long", seconds, 300)
    .option(
      "--request-timeout <seconds>",
      "a request, or a response body, silent this long is failed",
      positiveSeconds,
      30,
    )
    .option(
      "--metrics-listen <[host:]port>",
      "serve Prometheus /metrics (the verdicts by kind and status), /healthz and /readyz over HTTP here while it " +
        "runs (host: 127.0.0.1 unless given; port 0: any, logged); docs/operations.md",
      listenAddress,
    )
    .action(async (argument: string) => {
      const options = subcommandOptions(program, command) as unknown as VerifyOptions;
      await runVerify(argument, options, command, host, signals);
    });
  return command;
}

async function runVerify(
  argument: string,
  options: VerifyOptions,
  command: Command,
  host: Host,
  signals: ShutdownSignals,
): Promise<void> {
  const { parseSource } = await import("../run/importer.js");
  const source = checkVerify(options, parseSource(argument), command);
  const aws = awsClients(options, command, host.env, true);
  const [{ checkDirectory, FileLister, S3Lister }, integrity, { PublicKeys, sdkListPublicKeys }] = await Promise.all([
    import("../listing/listers.js"),
    import("../integrity/verify.js"),
    import("../integrity/public-keys.js"),
  ]);
  const checkpoint = await openCheckpoint(options.checkpoint, command);
  const log = openLog(options, command);
  host.onWarning((warning) => log.debug("node warning", { warning: warning.message }));
  const metrics =
    options.metricsListen === undefined
      ? undefined
      : await openMetrics(options.metricsListen, "verify", log, command, false);

  const sink = new OutputSink(host.stdout, { padBytes: 0, format: "json" }, (error) => {
    log.info("stdout closed; exiting", describeStdoutError(error));
    host.exit(0);
  });
  const abort = new AbortController();
  const retry = new RetryPolicy({ retryForMs: options.retryFor * 1000 });
  const s3 = source.scheme === "s3" ? source : undefined;
  const verifier = new integrity.Verifier({
    bucket: s3?.bucket ?? LOCAL_COPY,
    prefix: source.prefix,
    ...(s3 === undefined ? { places: integrity.localPlaces(LOCAL_COPY) } : {}),
    selection: selectionOf(options),
    lister:
      s3 === undefined
        ? new FileLister()
        : new S3Lister(() => aws.s3Client(undefined), s3.bucket, retry, abort.signal, options.requestPayer),
    store:
      s3 === undefined ? new integrity.FileStore() : new integrity.S3Store(() => aws.getter(), retry, abort.signal),
    keys: new PublicKeys(sdkListPublicKeys((where) => aws.cloudTrailClient(where))),
    concurrency: options.concurrency,
    allowedBuckets: s3 === undefined ? undefined : new Set<string>([s3.bucket, ...(options.buckets ?? [])]),
    emit: (line) => {
      if (options.problemsOnly && line.status === "valid") return;
      sink.writeJson(line as unknown as Record<string, unknown>);
      return sink.ready();
    },
    written: () => sink.written(),
    log,
    ...(checkpoint === undefined ? {} : { checkpoint }),
    signal: abort.signal,
  });

  metrics?.serve({ sink, integrity: () => verifier.verdicts });

  signals.on(
    undefined,
    log,
    () => abort.abort(),
    () => host.exit(1),
  );

  const { runVerifier } = await import("../run/verify-run.js");
  const end = await runVerifier({
    verifier,
    sink,
    log,
    host,
    ...(checkpoint === undefined ? {} : { checkpoint }),
    ...(s3 === undefined ? { checkDirectory: () => checkDirectory(`/${source.prefix}`) } : {}),
  });
  host.exit(end === "valid" ? 0 : end === "problems" ? VERIFY_PROBLEMS_EXIT : 1);
}
