// The command line: the only module that touches `process` (argv, signals, exit codes, stdin, stdout).
import { fstatSync, openSync, readFileSync } from "node:fs";
import { availableParallelism, hostname } from "node:os";
import { Command, type CommanderError, Option } from "commander";
import {
  day,
  endpoint,
  integer,
  list,
  listenAddress,
  nonEmpty,
  positiveSeconds,
  region,
  seconds,
  statsInterval,
} from "./cli/options.js";
import { verifyCommand } from "./cli/verify.js";
import { ForwardSink, type ForwardTarget, parseForwardUrl } from "./deliver/forward.js";
import { OutputSink } from "./deliver/output.js";
import type { SqsAcker } from "./deliver/sqs-acks.js";
import { AwsClients } from "./fetch/clients.js";
import { S3Source } from "./fetch/fetch.js";
import { DEFAULT_STRINGIFY, type OutputFormat, parseStringify } from "./format/format.js";
import { Intake } from "./input/intake.js";
import { type Line, readLines } from "./input/lines.js";
import { SPOOL_MAX_BYTES_DEFAULT, type Spool } from "./input/spool.js";
import type { Checkpoint } from "./listing/checkpoint.js";
import { withParts } from "./model/counts.js";
import {
  type BucketName,
  isInvalid,
  parseBucketName,
  parseRegion,
  type Region,
  refusalMessage,
} from "./model/names.js";
import { awsSettings, parseEndpoint } from "./model/settings.js";
import type { Sink } from "./model/sink.js";
import type { ListenAddress } from "./observe/address.js";
import type { MetricsListener } from "./observe/listener.js";
import { sqsMessageOfLine } from "./records/records.js";
import { Filter, type FilterOptions, MAX_OBJECTS_PER_MESSAGE } from "./run/filter.js";
import { startStats, summaryFields } from "./run/stats.js";
import { FdLogger, LEVELS, type Level, type Logger } from "./shared/log.js";
import { RetryPolicy } from "./shared/retry.js";
import { VERSION } from "./version.js";

interface CliOptions {
  region?: Region;
  endpoint?: string;
  requestPayer: boolean;
  concurrency: number;
  deadletterTag: string;
  logFile?: string;
  logLevel: Level;
  timestamp: boolean;
  timeField?: string;
  stringify?: string | true;
  sourceField?: string;
  outputFormat: OutputFormat;
  inputFormat: "json" | "msgpack";
  /** Undefined: decided by what stdout is (`padBytesFor`). */
  padBytes?: number;
  maxLineBytes: number;
  maxObjectBytes: number;
  maxEventBytes: number;
  shutdownTimeout: number;
  retryFor: number;
  requestTimeout: number;
  scanWorkers?: number;
  spoolDir?: string;
  spoolMaxBytes: number;
  deleteSqsMessages: boolean;
  visibilityTimeout?: number;
  statsInterval: number;
  buckets?: ReadonlySet<BucketName>;
  /** The filter and `sqs` (where messages arrive); `import` lists its own objects. */
  maxObjectsPerMessage?: number;
  /** `sqs` and `import`: where records go. */
  output?: Output;
  tag?: string;
  forwardTls?: boolean;
  forwardCa?: string;
  forwardSharedKey?: string;
  forwardHostname?: string;
  forwardAckTimeout?: number;
  metricsListen?: ListenAddress;
  /** The filter, `sqs` and `import`: check digest files as they come (integrity/continuous.ts). */
  verifyIntegrity?: boolean;
}

/** `--output`: stdout, or a fluentd's in_forward. */
type Output = { kind: "stdout" } | ({ kind: "forward" } & Pick<ForwardTarget, "host" | "port" | "tls">);

/**
 * `--buckets a,b`: each name parsed as a message's bucket is; a bad one is a usage error (exit 2). Given more than
 * once, the lists add up.
 */
function bucketList(command: Command, value: string, previous: ReadonlySet<BucketName> | undefined) {
  const names = value
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s !== "");
  if (names.length === 0) command.error("error: --buckets expects a comma-separated list of buckets", { exitCode: 2 });
  const buckets = new Set<BucketName>(previous);
  for (const name of names) {
    const parsed = parseBucketName(name);
    if (isInvalid(parsed)) {
      command.error(`error: --buckets: ${refusalMessage("bucket", name, parsed)}`, { exitCode: 2 });
    }
    buckets.add(parsed);
  }
  return buckets;
}

/** fluentd's JSON reader takes the child's stdout in blocking reads of this many bytes (output.ts says why). */
const DEFAULT_PAD_BYTES = 8192;

/**
 * The padding to write: `--pad-bytes` when given, else DEFAULT_PAD_BYTES when stdout is a pipe or a socket (fluentd
 * reads the child through a pipe; Node's `spawn` makes socket pairs) and none when it is a terminal or a file, where
 * nobody waits for the tail and the spaces would only be noise in `> events.ndjson`. msgpack is never padded: a space
 * is not msgpack, and fluentd reads msgpack with partial reads.
 */
function padBytesFor(options: CliOptions): number {
  if (options.outputFormat === "msgpack") return 0;
  if (options.padBytes !== undefined) return options.padBytes;
  try {
    const stdout = fstatSync(1);
    return stdout.isFIFO() || stdout.isSocket() ? DEFAULT_PAD_BYTES : 0;
  } catch {
    return 0; // no stdout at all: nothing to push through
  }
}

/** Options shared by the filter and the import command. */
function commonOptions(command: Command): Command {
  return command
    .option(
      "--region <region>",
      "default AWS region (else AWS_REGION, else us-east-1); buckets elsewhere are followed",
      region,
    )
    .option("--endpoint <url>", "S3-compatible endpoint, path-style (AWS_ENDPOINT_URL_S3 also works)", endpoint)
    .option("--request-payer", "read from Requester Pays buckets (this account pays for the requests)", false)
    .option(
      "--buckets <names>",
      "read objects only from these buckets, comma-separated; an object elsewhere is a BucketNotAllowed dead letter " +
        "(set it in production: see the README's Security section)",
      (value: string, previous: ReadonlySet<BucketName> | undefined) => bucketList(command, value, previous),
    )
    .option(
      "--concurrency <n>",
      "objects fetched at once (objects already read are scanned meanwhile)",
      integer(1, 1024),
      8,
    )
    .option("--deadletter-tag <tag>", "_tag of dead-letter records", nonEmpty, "cloudtrail.deadletter")
    .option(
      "--log-file <path>",
      "append JSON log lines here (default: stderr, which fluentd v1.8+ discards: set this under fluentd)",
    )
    .addOption(new Option("--log-level <level>", "least severe level logged").choices(LEVELS).default("info"))
    .option("--no-timestamp", 'do not add "@timestamp" (a copy of eventTime) to events')
    .option(
      "--time-field <name>",
      "add eventTime as epoch seconds (a float) under this name, for fluentd's <extract> time_key (e.g. _time)",
      nonEmpty,
    )
    .option(
      "--stringify [fields]",
      "replace these top-level fields' values (unless strings or null) by their JSON text, comma-separated; " +
        `no value or "default" means ${DEFAULT_STRINGIFY.join(",")}`,
    )
    .option(
      "--source-field <name>",
      'add {"bucket":…,"key":…} of the object each event came from under this name',
      nonEmpty,
    )
    .addOption(
      new Option("--output-format <format>", "json: one line per event; msgpack: one map per event (no padding)")
        .choices(["json", "msgpack"])
        .default("json"),
    )
    .option(
      "--pad-bytes <n>",
      "whitespace written after each burst so fluentd's 8 KiB JSON reader delivers the tail now; 0 turns it off " +
        `(default: ${DEFAULT_PAD_BYTES} when stdout is a pipe or a socket, as under fluentd; else 0)`,
      integer(0, 1 << 20),
    )
    .option(
      "--max-object-bytes <n>",
      "largest inflated object; larger ones are dead-lettered (gzip bomb guard)",
      integer(1),
      4 * 2 ** 30,
    )
    .option("--max-event-bytes <n>", "largest single event; a larger one fails its object", integer(1024), 32 << 20)
    .option(
      "--scan-workers <n>",
      "worker threads that inflate and scan small objects (default: 0 on 2 cores, else one per core beyond the second, up to 4)",
      integer(0, 64),
    )
    .option(
      "--retry-for <seconds>",
      "keep retrying an object that fails transiently (5xx, throttling, resets, timeouts) this long",
      seconds,
      300,
    )
    .option(
      "--request-timeout <seconds>",
      "an S3 request, or a response body, silent this long is failed (and retried)",
      positiveSeconds,
      30,
    )
    .option(
      "--shutdown-timeout <seconds>",
      "on SIGTERM/SIGINT, time given to work in flight before it is abandoned",
      seconds,
      5,
    )
    .option(
      "--metrics-listen <[host:]port>",
      "serve Prometheus /metrics, /healthz and /readyz over HTTP here (host: 127.0.0.1 unless given; port 0: any, " +
        "logged); docs/operations.md",
      listenAddress,
    )
    .option(
      "--verify-integrity",
      "hash each log file read and check the CloudTrail digest files that come (S3 event notifications; import " +
        "lists them): cloudtrail.integrity lines among the events; docs/integrity.md",
    );
}

/** import: the source's bucket besides --buckets (a digest there lists log files there). */
function allowedWith(source: import("./run/importer.js").ImportSource, buckets: ReadonlySet<BucketName> | undefined) {
  return source.scheme === "s3" ? new Set<string>([source.bucket, ...(buckets ?? [])]) : buckets;
}

/**
 * --verify-integrity: the continuous check, its hashes kept in `spoolDir` when given. `buckets`: where a digest's
 * log files may be read (--buckets; import adds its source's).
 */
async function continuousIntegrity(
  options: CliOptions,
  runtime: { aws: AwsClients },
  log: Logger,
  spoolDir: string | undefined,
  buckets: ReadonlySet<string> | undefined,
) {
  if (options.verifyIntegrity !== true) return undefined;
  const { openContinuous } = await import("./integrity/continuous.js");
  return openContinuous({
    getter: () => runtime.aws.getter(),
    cloudTrailClient: (where) => runtime.aws.cloudTrailClient(where),
    spoolDir,
    buckets,
    maxObjectBytes: options.maxObjectBytes,
    concurrency: options.concurrency,
    retryFor: options.retryFor,
    log,
  });
}

/** Where messages arrive (the filter, `sqs`): a cap on what one message may name. */
function maxObjectsOption(command: Command): Command {
  return command.option(
    "--max-objects-per-message <n>",
    "a message naming more objects than this (read, refused and skipped together) is one TooManyObjects dead " +
      "letter, and none of them is read",
    integer(1),
    MAX_OBJECTS_PER_MESSAGE,
  );
}

/** `--tag` and `--forward-ack-timeout` (seconds) when not given. */
const DEFAULT_TAG = "cloudtrail.event";
const DEFAULT_ACK_TIMEOUT = 190;

/** Where the `sqs` and `import` commands deliver: stdout, or fluentd's in_forward with acknowledgements. */
function outputOptions(command: Command): Command {
  return command
    .option(
      "--output <destination>",
      "stdout (JSON lines, or --output-format msgpack), or forward://HOST:PORT (forwards:// for TLS): fluentd's " +
        "in_forward, each message counted delivered once fluentd acknowledges it",
      (value: string) => parseOutput(command, value),
    )
    .option("--tag <tag>", "with forward: the tag of events (dead letters have --deadletter-tag)", DEFAULT_TAG)
    .option("--forward-tls", "with forward: TLS (as forwards://), for in_forward's <transport tls>")
    .option(
      "--forward-ca <file>",
      "with forward over TLS: a PEM file of certificate authorities to trust besides the usual ones",
    )
    .option(
      "--forward-shared-key <key>",
      "with forward: in_forward's <security> shared_key (else CTEF_FORWARD_SHARED_KEY)",
    )
    .option("--forward-hostname <name>", "with forward: our name in the <security> handshake (default: the host name)")
    .option(
      "--forward-ack-timeout <seconds>",
      "with forward: a message unacknowledged this long is sent again on a new connection (fluentd's out_forward " +
        "waits as long)",
      seconds,
      DEFAULT_ACK_TIMEOUT,
    );
}

function parseOutput(command: Command, value: string): Output {
  if (value === "stdout") return { kind: "stdout" };
  const parsed = parseForwardUrl(value);
  if (typeof parsed === "string") command.error(`error: --output ${value}: ${parsed}`, { exitCode: 2 });
  return { kind: "forward", ...parsed };
}

export function buildProgram(): Command {
  const program = new Command()
    .name("cloudtrail-exec-filter")
    .description(
      "fluentd out_exec_filter child: reads SQS notification records (or s3:// and file:// lines) on stdin, " +
        "fetches the CloudTrail log files they name, and writes one JSON line per CloudTrail event on stdout. " +
        "Failures become dead-letter records; logs never go to stdout.",
    )
    .version(VERSION, "-V, --version")
    .enablePositionalOptions()
    .exitOverride(usageExit);
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
      if (program.args.length > 0) unknownCommand(program, String(program.args[0]));
      await runFilter(program.opts<CliOptions>(), program);
    });
  program.addCommand(importCommand(program).exitOverride(usageExit));
  program.addCommand(sqsCommand(program).exitOverride(usageExit));
  program.addCommand(verifyCommand(program).exitOverride(usageExit));
  program.addHelpText("after", ENVIRONMENT_HELP);
  return program;
}

/** `cloudtrail-exec-filter improt`: a usage error (exit 2) naming the command meant, when one is close. */
function unknownCommand(program: Command, word: string): never {
  const names = program.commands.map((command) => command.name());
  const near = names
    .map((name) => ({ name, distance: editDistance(word.toLowerCase(), name) }))
    .filter(({ name, distance }) => distance <= Math.max(1, Math.floor(name.length / 3)))
    .sort((a, b) => a.distance - b.distance)[0];
  const hint = near === undefined ? `(the commands: ${names.join(", ")})` : `(Did you mean ${near.name}?)`;
  return program.error(`error: unknown command ${JSON.stringify(word.slice(0, 100))}\n${hint}`, { exitCode: 2 });
}

/**
 * Edits (insert, delete, replace, swap two neighbours) from `a` to `b`: a swap counts as one, so `improt` is one
 * edit from `import`. Only ever run on a word of the command line against the command names.
 */
function editDistance(a: string, b: string): number {
  if (a.length > 64) return Number.POSITIVE_INFINITY; // no command name is anywhere near that long
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) =>
    Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)),
  );
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const row = d[i] as number[];
      const up = d[i - 1] as number[];
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      row[j] = Math.min((up[j] as number) + 1, (row[j - 1] as number) + 1, (up[j - 1] as number) + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        row[j] = Math.min(row[j] as number, ((d[i - 2] as number[])[j - 2] as number) + 1);
      }
    }
  }
  return (d[a.length] as number[])[b.length] as number;
}

/**
 * Every exit through commander is a usage or configuration error, exit 2: its own (an unknown option, a bad value,
 * exit 1 by default) and ours (`program.error`); --help and --version exit 0. The exit codes: README "Exit codes".
 */
function usageExit(error: CommanderError): never {
  process.exit(error.exitCode === 0 ? 0 : 2);
}

/** The environment variables the program reads, for `--help`. */
const ENVIRONMENT_HELP = `
Environment:
  AWS_REGION, AWS_PROFILE, AWS_ACCESS_KEY_ID, ...
                                  region and credentials, as the AWS SDK reads
                                  them (environment, shared files, SSO, web
                                  identity, container and instance metadata)
  AWS_ENDPOINT_URL_S3             an S3-compatible endpoint (--endpoint wins)
  AWS_ENDPOINT_URL_SQS            an SQS-compatible endpoint
  CTEF_FORWARD_SHARED_KEY         sqs and import: in_forward's shared_key
  AWS_USE_FIPS_ENDPOINT, AWS_USE_DUALSTACK_ENDPOINT
                                  FIPS and dual-stack (IPv6) AWS endpoints
  HTTPS_PROXY, HTTP_PROXY, NO_PROXY
                                  a proxy for S3, SQS and STS (lowercase names
                                  first; see the README)
  NODE_EXTRA_CA_CERTS             a PEM file of extra certificate authorities`;

function openLog(options: CliOptions, program: Command): Logger {
  let fd = 2;
  if (options.logFile !== undefined) {
    try {
      fd = openSync(options.logFile, "a");
    } catch (error) {
      program.error(`error: cannot open --log-file ${options.logFile}: ${(error as Error).message}`, { exitCode: 2 });
    }
  }
  return new FdLogger(fd, options.logLevel);
}

/**
 * Without --buckets, a queue writer can point the filter at any bucket its role (or the world) can read, and have
 * files there read as CloudTrail's (README, Security). Said at every start, not only in the docs: a warning in the
 * log is what an operator sees. (`import` is not warned: it reads only the bucket its source names.)
 */
function warnWithoutBuckets(options: CliOptions, log: Logger): void {
  if (options.buckets !== undefined) return;
  log.warn(
    "--buckets is not set: objects are read from any bucket a message names; set it in production (README, Security)",
  );
}

/** The Filter's settings from the command line (the filter and the import command share them). */
function filterOptions(options: CliOptions, leaveTransientToSqs: boolean): FilterOptions {
  return {
    concurrency: options.concurrency,
    deadletterTag: options.deadletterTag,
    maxObjectBytes: options.maxObjectBytes,
    maxEventBytes: options.maxEventBytes,
    timestamp: options.timestamp,
    timeField: options.timeField,
    stringify: options.stringify === undefined ? undefined : parseStringify(options.stringify),
    sourceField: options.sourceField,
    // To fluentd over Forward, each event is a [time, map] entry of a PackedForward message.
    outputFormat: options.output?.kind === "forward" ? "forward" : options.outputFormat,
    retryFor: options.retryFor,
    leaveTransientToSqs,
    scanWorkers: options.scanWorkers ?? defaultScanWorkers(),
    ...(options.buckets === undefined ? {} : { buckets: options.buckets }),
    ...(options.maxObjectsPerMessage === undefined ? {} : { maxObjectsPerMessage: options.maxObjectsPerMessage }),
  };
}

/**
 * Scan workers pay off only with cores to spare: on 2 cores the main thread and zlib's thread pool already keep both
 * busy, and workers measured slower (bench/README.md). One per core beyond the second, up to 4.
 */
function defaultScanWorkers(): number {
  const cores = availableParallelism();
  return cores <= 2 ? 0 : Math.min(cores - 1, 4);
}

/**
 * The AWS clients of this process (clients.ts): made on first use, from the options and the environment. A region or
 * endpoint variable that is not one is a configuration error (exit 2), named (settings.ts).
 */
function awsClients(options: CliOptions, program: Command): AwsClients {
  const settings = awsSettings(options, process.env);
  if (typeof settings === "string") return program.error(`error: ${settings}`, { exitCode: 2 });
  return new AwsClients({
    region: settings.region,
    ...(settings.s3Endpoint === undefined ? {} : { s3Endpoint: settings.s3Endpoint }),
    ...(settings.sqsEndpoint === undefined ? {} : { sqsEndpoint: settings.sqsEndpoint }),
    connections: Math.max(16, options.concurrency * 2),
    timeoutMs: options.requestTimeout * 1000,
    requestPayer: options.requestPayer,
    env: process.env,
  });
}

/**
 * Options that would do nothing as given are usage errors rather than silently ignored: whoever wrote them expected
 * an effect. (`import --list` with output options is not one: a dry run of a whole command line is its point.)
 */
function checkCombinations(options: CliOptions, program: Command): void {
  const fail = (message: string): never => program.error(`error: ${message}`, { exitCode: 2 });
  if (options.outputFormat === "msgpack" && options.padBytes !== undefined && options.padBytes !== 0) {
    fail("--pad-bytes does nothing with --output-format msgpack (whitespace is not msgpack; fluentd reads it whole)");
  }
  // Two options naming one field would write it twice in every event.
  const added = new Map<string, string>();
  const add = (name: string | undefined, what: string, adds = `${what} adds already`): void => {
    if (name === undefined) return;
    const before = added.get(name);
    if (before !== undefined) fail(`${what} names the field ${JSON.stringify(name)}, which ${before}`);
    added.set(name, adds);
  };
  if (options.timestamp) add("@timestamp", "@timestamp", "the filter adds already (unless --no-timestamp)");
  add(options.timeField, "--time-field");
  add(options.sourceField, "--source-field");
}

export async function main(argv: string[] = process.argv): Promise<void> {
  listenForShutdownSignals();
  await buildProgram().parseAsync(argv);
}

/** What every command needs: the log, stdout as a sink, and where objects come from. */
async function startRuntime(options: CliOptions, program: Command, command = "filter"): Promise<Runtime> {
  const aws = awsClients(options, program);
  try {
    aws.check(); // the proxy variables, read without loading the network stack (it loads on the first request)
  } catch (error) {
    program.error(`error: ${(error as Error).message}`, { exitCode: 2 });
  }
  const log = openLog(options, program);

  // Node's own warnings (the SDK's Node version notice among them) would print plain text to stderr.
  process.removeAllListeners("warning");
  process.on("warning", (warning) => log.debug("node warning", { warning: warning.message }));
  process.on("uncaughtException", (error) => {
    log.error("fatal", { error: error.stack ?? String(error) });
    process.exit(1);
  });

  const metrics =
    options.metricsListen === undefined ? undefined : await openMetrics(options.metricsListen, command, log, program);
  const source = new S3Source(() => aws.getter(), metrics?.observer);
  let sink: Sink;
  let stdout: OutputSink | undefined;
  if (options.output?.kind === "forward") {
    sink = await forwardSink(options, options.output, log, program);
  } else {
    const format = options.outputFormat === "msgpack" ? "msgpack" : "json";
    const sinkOptions = { padBytes: padBytesFor(options), format } as const;
    stdout = new OutputSink(process.stdout, sinkOptions, (error) => runtime.onStdoutClosed(error));
    sink = stdout;
  }
  const runtime: Runtime = {
    log,
    sink,
    stdout,
    source,
    aws,
    metrics,
    // EPIPE: the reader is gone; nothing more can be delivered. The filter and `sqs` replace this with their ending.
    onStdoutClosed: (error) => {
      log.info("stdout closed; exiting", describeStdoutError(error));
      process.exit(0);
    },
  };
  return runtime;
}

/** --metrics-listen: the listener, loaded only then; an address it cannot bind is a configuration error (exit 2). */
async function openMetrics(
  address: ListenAddress,
  command: string,
  log: Logger,
  program: Command,
): Promise<MetricsListener> {
  const { MetricsListener } = await import("./observe/listener.js");
  try {
    return await MetricsListener.open(address, command, VERSION, log);
  } catch (error) {
    return program.error(
      `error: cannot listen on --metrics-listen ${address.host}:${address.port}: ${(error as Error).message}`,
      { exitCode: 2 },
    );
  }
}

/** What every command needs (startRuntime). */
interface Runtime {
  log: Logger;
  sink: Sink;
  stdout: OutputSink | undefined;
  source: S3Source;
  aws: AwsClients;
  metrics: MetricsListener | undefined;
  /** Called once when stdout fails (EPIPE): by default logs and exits 0; the filter and `sqs` end their own way. */
  onStdoutClosed: (error: Error) => void;
}

/** A stdout failure for the log: its code (EPIPE) when it has one, never more than the message. */
function describeStdoutError(error: Error): Record<string, unknown> {
  const code = (error as NodeJS.ErrnoException).code;
  return { ...(typeof code === "string" ? { code } : {}), message: error.message };
}

async function forwardSink(
  options: CliOptions,
  output: Extract<Output, { kind: "forward" }>,
  log: Logger,
  program: Command,
): Promise<Sink> {
  let ca: Buffer | undefined;
  if (options.forwardCa !== undefined) {
    try {
      ca = readFileSync(options.forwardCa);
    } catch (error) {
      program.error(`error: cannot read --forward-ca ${options.forwardCa}: ${(error as Error).message}`, {
        exitCode: 2,
      });
    }
  }
  // Node's own NODE_EXTRA_CA_CERTS stays trusted besides --forward-ca (forward.ts, trustedCas). Unreadable, Node has
  // warned about it at start and trusts it nowhere; nor does this.
  let envCa: Buffer | undefined;
  const extraCerts = process.env.NODE_EXTRA_CA_CERTS;
  if (ca !== undefined && extraCerts !== undefined && extraCerts !== "") {
    try {
      envCa = readFileSync(extraCerts);
    } catch {
      envCa = undefined;
    }
  }
  const sharedKey = options.forwardSharedKey ?? process.env.CTEF_FORWARD_SHARED_KEY;
  return new ForwardSink({
    target: {
      host: output.host,
      port: output.port,
      tls: output.tls || options.forwardTls === true,
      ...(ca === undefined ? {} : { ca }),
      ...(envCa === undefined ? {} : { envCa }),
      ...(sharedKey === undefined || sharedKey === "" ? {} : { sharedKey }),
      hostname: options.forwardHostname ?? hostname(),
    },
    tag: options.tag ?? DEFAULT_TAG,
    log,
    ackTimeoutMs: (options.forwardAckTimeout ?? DEFAULT_ACK_TIMEOUT) * 1000,
  });
}

/** Opened after the log, so that a start that fails here (unreadable, locked) says why in --log-file too. */
async function openSpool(options: CliOptions, program: Command, log: Logger): Promise<Spool | undefined> {
  if (options.spoolDir === undefined) return undefined;
  const { Spool } = await import("./input/spool.js");
  try {
    return Spool.open(options.spoolDir, options.spoolMaxBytes);
  } catch (error) {
    const message = `cannot use --spool-dir ${options.spoolDir}: ${(error as Error).message}`;
    // Without --log-file the log is stderr, where the message below goes anyway.
    if (options.logFile !== undefined) {
      log.error(message, { code: (error as NodeJS.ErrnoException).code ?? (error as Error).name });
    }
    return program.error(`error: ${message}`, { exitCode: 2 });
  }
}

/**
 * SIGTERM and SIGINT are listened to by one pair of listeners, installed first thing in `main` and never removed: a
 * signal at any moment of start-up is kept until a runner says how to stop (`onShutdownSignals`), then handled.
 * Swapping listeners instead loses signals: when the last listener of a signal goes, Node closes its watcher, and a
 * signal caught but not yet delivered (it arrived during synchronous work) goes with it (issue 20: a SIGTERM 100-150
 * ms after start was lost in 3 runs of 6). Before `main` runs (the bundle loading) the default action applies: the
 * process dies of the signal, which stops it too.
 */
const shutdownSignals: { early: NodeJS.Signals | undefined; handlers: ((signal: NodeJS.Signals) => void)[] } = {
  early: undefined,
  handlers: [],
};

function listenForShutdownSignals(): void {
  const listener = (signal: NodeJS.Signals): void => {
    if (shutdownSignals.handlers.length === 0) shutdownSignals.early ??= signal;
    for (const handler of shutdownSignals.handlers) handler(signal);
  };
  process.on("SIGTERM", listener);
  process.on("SIGINT", listener);
}

/**
 * SIGTERM and SIGINT (fluentd's shutdown, Ctrl-C): the first stops taking work and gives what is in flight
 * --shutdown-timeout before `abandon`; another one abandons at once. A signal that came during start-up is handled
 * now. Returns whether a signal has come.
 */
function onShutdownSignals(options: CliOptions, log: Logger, stop: () => void, abandon: () => void): () => boolean {
  let signals = 0;
  const onSignal = (signal: NodeJS.Signals): void => {
    signals++;
    if (signals > 1) {
      abandon();
      return;
    }
    log.info("stopping", { signal, shutdownTimeout: options.shutdownTimeout });
    stop();
    setTimeout(abandon, options.shutdownTimeout * 1000).unref();
  };
  shutdownSignals.handlers.push(onSignal);
  const early = shutdownSignals.early;
  shutdownSignals.early = undefined;
  if (early !== undefined) onSignal(early);
  return () => signals > 0;
}

/**
 * Waits until stdout has taken everything. After a signal the wait is bounded: a reader that stopped reading must
 * not hold the process past fluentd's patience; what it did not take stays unfinished (in the spool, if any).
 */
async function finishOutput(sink: Sink, stdout: OutputSink | undefined, stopping: boolean, log: Logger): Promise<void> {
  if (!stopping) return sink.end();
  const graceMs = 1000;
  const ended = await Promise.race([
    sink.end().then(() => true),
    new Promise<boolean>((resolve) => setTimeout(() => resolve(false), graceMs).unref()),
  ]);
  if (!ended && stdout === undefined) {
    sink.abandon();
    log.warn("fluentd did not acknowledge everything before exit; the unacknowledged records are not done");
  } else if (!ended && stdout !== undefined) {
    // Only the chunk being written can be partly in the pipe: finish the line it was cut in, drop the rest.
    const pending = stdout.pending;
    const whole = stdout.completeCutLine(1, 2000);
    log.warn("stdout is not being read; exiting with output unsent", { bytes: pending, endsWithWholeLine: whole });
  }
}

async function runFilter(options: CliOptions, program: Command): Promise<void> {
  checkCombinations(options, program);
  if (options.visibilityTimeout !== undefined && !options.deleteSqsMessages) {
    // Only a message the filter will delete has its visibility kept up: the option alone would change nothing.
    program.error("error: --visibility-timeout does nothing without --delete-sqs-messages", { exitCode: 2 });
  }
  const runtime = await startRuntime(options, program);
  const { log, sink, stdout, source, aws, metrics } = runtime;
  const spool = await openSpool(options, program, log);
  const integrity = await continuousIntegrity(options, runtime, log, options.spoolDir, options.buckets);
  warnWithoutBuckets(options, log);
  const acker: SqsAcker | undefined = options.deleteSqsMessages
    ? new (await import("./deliver/sqs-acks.js")).SqsAcker({
        log,
        clientFor: (queueUrl) => aws.sqsClient(queueUrl),
        trustedOrigins: aws.sqsOrigins(),
        ...(options.visibilityTimeout === undefined ? {} : { visibilityTimeout: options.visibilityTimeout }),
      })
    : undefined;
  const lines =
    options.inputFormat === "msgpack"
      ? (await import("./input/msgpack-lines.js")).readMsgpackLines(process.stdin, options.maxLineBytes)
      : readLines(process.stdin, options.maxLineBytes);
  // A message is kept invisible from when its record is queued, not only once the filter starts it: under a backlog a
  // record may wait longer than the visibility timeout, and a message SQS hands out again is a duplicate. The line is
  // parsed for its receipt handle here and again when the filter interprets it: a few µs per record, against the
  // milliseconds its objects take.
  const trackQueued =
    acker !== undefined && options.visibilityTimeout !== undefined
      ? (line: Line): void => {
          const message = line.kind === "line" ? sqsMessageOfLine(line.text) : undefined;
          if (message !== undefined) acker.track(message);
        }
      : undefined;
  const intake = new Intake(lines, spool, log, options.concurrency * 4, trackQueued);
  const filter = new Filter({
    source,
    sink,
    log,
    options: filterOptions(options, options.deleteSqsMessages),
    ...(metrics === undefined ? {} : { observe: metrics.observer }),
    ...(integrity === undefined ? {} : { integrity: integrity.integrity }),
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

  metrics?.serve({
    filter: () => filter,
    sink,
    ...(acker === undefined ? {} : { acker }),
    ...(spool === undefined ? {} : { spool }),
  });
  const signalled = onShutdownSignals(
    options,
    log,
    () => {
      filter.stop();
      if (spool === undefined) {
        process.stdin.pause();
        intake.abandon();
      } else {
        intake.stop(); // stdin is still read into the journal until it ends or the deadline
      }
    },
    () => {
      filter.abortInFlight();
      intake.abandon();
      sink.abandon();
    },
  );

  const started = Date.now();
  const counts = () =>
    withParts(filter.counts(), {
      counters: {
        leftOver: intake.leftOver,
        ...(acker === undefined
          ? {}
          : { sqsDeletes: acker.deletes, sqsDeleteFailures: acker.failures, sqsQueueUrlsRefused: acker.refused }),
      },
      levels: spool === undefined ? {} : { spooled: spool.size },
    });
  const stopStats = startStats({
    log,
    intervalMs: options.statsInterval * 1000,
    counts,
    rssBytes: () => process.memoryUsage.rss(),
  });
  const summaryLine = () => ({
    ...summaryFields(counts(), {
      seconds: (Date.now() - started) / 1000,
      maxRssMB: Math.round(process.resourceUsage().maxRSS / 1024),
    }),
    ...(integrity === undefined ? {} : { integrity: { ...integrity.integrity.counts } }),
  });
  // stdout closed under fluentd: fluentd is gone (stopping, or restarting its child), so the counts so far are the
  // summary and the exit is 0, as for a stop. Nothing more is deleted (the acker's pending deletes die with the
  // process); records not finished stay in the spool, and their SQS messages come back after their visibility timeout.
  runtime.onStdoutClosed = (error) => {
    log.info("stdout closed; exiting", describeStdoutError(error));
    log.info("summary", { ...summaryLine(), stdoutClosed: true });
    process.exit(0);
  };
  await filter.run(intake);
  await intake.finished;
  await finishOutput(sink, stdout, signalled(), log);
  await acker?.close(signalled() ? 1000 : 10_000);
  integrity?.close();
  spool?.close();
  stopStats();
  log.info("summary", summaryLine());
  process.exit(0);
}

/** A subcommand's options, with those given before it (to the program) where it was not given them itself. */
function subcommandOptions(program: Command, command: Command): Record<string, unknown> {
  const merged: Record<string, unknown> = { ...command.opts() };
  for (const [key, value] of Object.entries(program.opts())) {
    const here = command.getOptionValueSource(key);
    const there = program.getOptionValueSource(key);
    if ((here === undefined || here === "default") && there !== undefined && there !== "default") {
      merged[key] = value;
    }
  }
  // The filter's own options, given before the subcommand, would be ignored: say so instead.
  for (const option of program.options) {
    const key = option.attributeName();
    if (command.options.some((own) => own.attributeName() === key)) continue;
    if (program.getOptionValueSource(key) === "cli") {
      command.error(`error: ${option.long} is an option of the filter; ${command.name()} does not use it`, {
        exitCode: 2,
      });
    }
  }
  return merged;
}

/**
 * `import <source>`: the CloudTrail log files already stored under an S3 prefix or in a directory, read through the
 * same Filter (same output, same dead letters). Options given before `import` count too, unless given again after it.
 */
function importCommand(program: Command): Command {
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
    .action(async (argument: string) => {
      const merged = subcommandOptions(program, command);
      const options = merged as unknown as CliOptions & {
        since?: string;
        until?: string;
        accounts?: string[];
        regions?: string[];
        list?: boolean;
        checkpoint?: string;
        enqueue?: string;
        keysPerMessage: number;
      };
      // The import command's own modules load only when it runs.
      const [
        { Importer, parseSource },
        { Checkpoint },
        { checkDirectory, FileLister, ListError, S3Lister },
        { Progress },
      ] = await Promise.all([
        import("./run/importer.js"),
        import("./listing/checkpoint.js"),
        import("./listing/listers.js"),
        import("./listing/progress.js"),
      ]);
      checkCombinations(options, command);
      const source = parseSource(argument);
      if (typeof source === "string") command.error(`error: ${source}`, { exitCode: 2 });
      if (source.scheme === "s3" && options.buckets !== undefined && !options.buckets.has(source.bucket)) {
        command.error(`error: the bucket ${JSON.stringify(source.bucket)} is not one of --buckets`, { exitCode: 2 });
      }
      if (options.since !== undefined && options.until !== undefined && options.since > options.until) {
        command.error("error: --since is after --until", { exitCode: 2 });
      }
      if (options.enqueue !== undefined) checkEnqueue(options.enqueue, source.scheme, command, program);
      else if (command.getOptionValueSource("keysPerMessage") === "cli") {
        command.error("error: --keys-per-message does nothing without --enqueue", { exitCode: 2 });
      }
      let checkpoint: Checkpoint | undefined;
      if (options.checkpoint !== undefined) {
        try {
          checkpoint = Checkpoint.open(options.checkpoint, options.list === true);
        } catch (error) {
          command.error(`error: cannot open --checkpoint ${options.checkpoint}: ${(error as Error).message}`, {
            exitCode: 2,
          });
        }
      }
      const listOnly = options.list === true || options.enqueue !== undefined;
      const runtime = await startRuntime(
        listOnly ? { ...options, padBytes: 0, outputFormat: "json", output: { kind: "stdout" } } : options,
        program,
        "import",
      );
      const { log, sink } = runtime;
      const integrity = listOnly
        ? undefined
        : await continuousIntegrity(options, runtime, log, undefined, allowedWith(source, options.buckets));
      const retry = new RetryPolicy({ retryForMs: options.retryFor * 1000 });
      const importer = new Importer({
        source,
        selection: {
          ...(options.since === undefined ? {} : { since: options.since }),
          ...(options.until === undefined ? {} : { until: options.until }),
          ...(options.accounts === undefined ? {} : { accounts: new Set(options.accounts) }),
          ...(options.regions === undefined ? {} : { regions: new Set(options.regions) }),
        },
        lister: (signal) =>
          source.scheme === "s3"
            ? new S3Lister(() => runtime.aws.s3Client(undefined), source.bucket, retry, signal, options.requestPayer)
            : new FileLister(),
        log,
        ...(options.verifyIntegrity === true ? { digests: true } : {}),
        ...(checkpoint === undefined ? {} : { checkpoint }),
      });
      // A listing that fails ends the import: what was listed before is done; exit 1 with the reason on stderr.
      const listingFailed = (error: unknown): never => {
        const message = error instanceof Error ? error.message : String(error);
        log.error("listing failed", { message, ...(error instanceof ListError ? { code: error.code } : {}) });
        checkpoint?.close();
        process.stderr.write(`error: ${message}\n`);
        process.exit(1);
      };

      onShutdownSignals(
        options,
        log,
        () => importer.stop(),
        () => {
          importer.abortInFlight();
          if (runtime.stdout === undefined) sink.abandon(); // acknowledgements no longer awaited
        },
      );

      const started = Date.now();
      if (source.scheme === "file") await checkDirectory(`/${source.prefix}`).catch(listingFailed);
      // With --list, --enqueue is a dry run like any other command line: the files are listed, nothing is sent.
      if (options.enqueue !== undefined && options.list !== true && source.scheme === "s3") {
        const { enqueue } = await import("./cli/enqueue.js");
        const code = await enqueue({
          importer,
          queueUrl: options.enqueue,
          bucket: source.bucket,
          keysPerMessage: options.keysPerMessage,
          client: () => runtime.aws.sqsClient(options.enqueue as string),
          retry,
          log,
          ...(checkpoint === undefined ? {} : { checkpoint }),
          onSignals: (stop, abandon) => onShutdownSignals(options, log, stop, abandon),
          listingFailed,
        });
        await sink.end();
        process.exit(code);
      }
      if (options.list === true) {
        const listed = await importer
          .list((object) => {
            sink.writeBytes(Buffer.from(`${object.url}\n`, "utf8"));
            return sink.ready();
          })
          .catch(listingFailed);
        await sink.end();
        const mb = Math.round((listed.bytes / 2 ** 20) * 10) / 10;
        log.info("listed", { ...listed, mb, seconds: (Date.now() - started) / 1000 });
        if (process.stderr.isTTY === true && options.logFile !== undefined) {
          process.stderr.write(`${listed.objects} objects, ${mb} MB\n`);
        }
        process.exit(0);
      }

      const progress = new Progress(
        importer.progress,
        { tty: process.stderr.isTTY === true, write: (text) => process.stderr.write(text) },
        log,
      );
      progress.start();
      runtime.metrics?.serve({ filter: () => importer.running, sink, listed: () => importer.progress.listed });
      const { listingError } = await importer.run({
        source: runtime.source,
        sink,
        log,
        options: filterOptions(options, false),
        ...(runtime.metrics === undefined ? {} : { observe: runtime.metrics.observer }),
        ...(integrity === undefined ? {} : { integrity: integrity.integrity }),
      });
      progress.stop();
      await sink.end();
      checkpoint?.close();
      log.info("summary", {
        ...summaryFields(importer.counts(), {
          seconds: (Date.now() - started) / 1000,
          maxRssMB: Math.round(process.resourceUsage().maxRSS / 1024),
        }),
        ...(integrity === undefined ? {} : { integrity: { ...integrity.integrity.counts } }),
      });
      if (listingError !== undefined) listingFailed(listingError);
      process.exit(0);
    });
  return command;
}

/** The shared options about reading objects and writing events (not about listing, logging or AWS). */
const READING_OPTIONS = [
  "concurrency",
  "deadletterTag",
  "timestamp",
  "timeField",
  "stringify",
  "sourceField",
  "outputFormat",
  "padBytes",
  "maxObjectBytes",
  "maxEventBytes",
  "scanWorkers",
];

/**
 * A queue URL given on the command line (`sqs --queue-url`, `import --enqueue`): an http(s) URL with a host, as an
 * endpoint is (settings.ts), and a path naming the queue. The operator's own, so any origin is taken (an SQS-compatible
 * service), but only a URL: `foo` or `''` would otherwise be polled for ever, each receive failing.
 */
function isQueueUrl(value: string): boolean {
  return !isInvalid(parseEndpoint(value)) && new URL(value).pathname.length > 1;
}

const QUEUE_URL_EXAMPLE = "a queue URL such as https://sqs.us-east-1.amazonaws.com/123456789012/queue";

/** `--enqueue` needs an S3 source (the filters elsewhere cannot read this machine's files) and no output options. */
function checkEnqueue(queueUrl: string, scheme: "s3" | "file", command: Command, program: Command): void {
  const fail = (message: string): never => command.error(`error: ${message}`, { exitCode: 2 });
  if (scheme !== "s3")
    fail("--enqueue needs an s3:// source: the filters behind the queue read from S3, not from here");
  if (!isQueueUrl(queueUrl)) fail(`--enqueue expects ${QUEUE_URL_EXAMPLE}, not ${JSON.stringify(queueUrl)}`);
  // How files are read and events written: the filters behind the queue do that, with their own options.
  const readers = new Set([...outputOptions(new Command()).options.map((o) => o.attributeName()), ...READING_OPTIONS]);
  for (const option of [...command.options, ...program.options]) {
    const key = option.attributeName();
    if (!readers.has(key)) continue;
    if (command.getOptionValueSource(key) === "cli" || program.getOptionValueSource(key) === "cli") {
      fail(
        `${option.long} does nothing with --enqueue (the filters behind the queue read the files, with their own options)`,
      );
    }
  }
}

/**
 * `sqs --queue-url URL`: a long-running consumer of the queue (sqs-command.ts), delivering to stdout or to fluentd's
 * in_forward. Options given before `sqs` count too, unless given again after it.
 */
function sqsCommand(program: Command): Command {
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
      const merged = subcommandOptions(program, command);
      const options = merged as unknown as CliOptions & {
        queueUrl: string;
        receivers: number;
        maxInFlight?: number;
        waitTime: number;
        statsInterval: number;
      };
      // No exec_filter reads this stdout: whitespace padding only if asked for.
      const padded =
        command.getOptionValueSource("padBytes") === "cli" || program.getOptionValueSource("padBytes") === "cli";
      if (!padded) options.padBytes = 0;
      // A long poll must not be cut by the request timeout.
      if (options.requestTimeout <= options.waitTime) {
        command.error(`error: --request-timeout must be longer than --wait-time (${options.waitTime} s)`, {
          exitCode: 2,
        });
      }
      if (!isQueueUrl(options.queueUrl)) {
        command.error(`error: --queue-url expects ${QUEUE_URL_EXAMPLE}, not ${JSON.stringify(options.queueUrl)}`, {
          exitCode: 2,
        });
      }
      await runSqs(options, program);
    });
  return command;
}

async function runSqs(
  options: CliOptions & {
    queueUrl: string;
    receivers: number;
    maxInFlight?: number;
    waitTime: number;
    statsInterval: number;
  },
  program: Command,
): Promise<void> {
  const runtime = await startRuntime(options, program, "sqs");
  const { log, sink, stdout, source, aws, metrics } = runtime;
  const integrity = await continuousIntegrity(options, runtime, log, undefined, options.buckets);
  warnWithoutBuckets(options, log);
  const forwardCounts = () =>
    sink instanceof ForwardSink ? { forward: { ...sink.counts, unacknowledged: sink.pending } } : {};
  const { SqsService } = await import("./run/sqs-service.js");
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
  });
  // The whole shutdown fits in --shutdown-timeout: work in flight gets it less a reserve for the last SQS calls
  // (deletes of what finished, hand-backs of what did not).
  const shutdownMs = options.shutdownTimeout * 1000;
  const reserveMs = Math.min(1000, shutdownMs / 2);
  let deadline = Number.POSITIVE_INFINITY;
  const signalled = onShutdownSignals(
    { ...options, shutdownTimeout: (shutdownMs - reserveMs) / 1000 },
    log,
    () => {
      deadline = Date.now() + shutdownMs;
      service.stop();
    },
    () => service.abandon(),
  );
  // stdout's reader is gone: what it had not read is lost with it, so nothing more is deleted and every message not
  // finished is handed back; then the summary, and exit 1, for this consumer did not end by a signal.
  let outputLost = false;
  runtime.onStdoutClosed = (error) => {
    if (outputLost) return;
    outputLost = true;
    log.error("stdout closed: handing back the messages not finished, deleting nothing more", {
      ...describeStdoutError(error),
    });
    service.outputLost();
  };
  const started = Date.now();
  const stopStats = startStats({
    log,
    intervalMs: options.statsInterval * 1000,
    counts: () => service.counts(),
    rssBytes: () => process.memoryUsage.rss(),
  });
  await service.run(() => Math.max(100, Math.min(10_000, deadline - Date.now())));
  stopStats();
  await finishOutput(sink, stdout, signalled() || outputLost, log);
  log.info("summary", {
    ...summaryFields(service.counts(), {
      seconds: (Date.now() - started) / 1000,
      maxRssMB: Math.round(process.resourceUsage().maxRSS / 1024),
    }),
    ...(integrity === undefined ? {} : { integrity: { ...integrity.integrity.counts } }),
    ...(outputLost ? { stdoutClosed: true } : {}),
  });
  process.exit(outputLost ? 1 : 0);
}
