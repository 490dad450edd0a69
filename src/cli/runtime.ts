// What every command that reads objects builds before it runs (the filter, import, sqs): the log, the AWS clients,
// the sink (stdout or fluentd's in_forward), the metrics listener and the spool, from the options and the Host; verify
// takes the parts it needs (the log, the AWS clients, the checkpoint, the metrics listener). A resource that cannot be
// opened here is a configuration error (usage.ts, exit 2), said before any input is read.
import { fstatSync, openSync, readFileSync } from "node:fs";
import { availableParallelism, hostname } from "node:os";
import type { Command } from "commander";
import { ForwardSink } from "../deliver/forward.js";
import { OutputSink } from "../deliver/output.js";
import { AwsClients } from "../fetch/clients.js";
import { S3Source } from "../fetch/fetch.js";
import { parseStringify } from "../format/format.js";
import type { Spool } from "../input/spool.js";
import type { Checkpoint } from "../listing/checkpoint.js";
import type { Selection } from "../listing/layout.js";
import type { BucketName } from "../model/names.js";
import type { Sink } from "../model/sink.js";
import type { ListenAddress } from "../observe/address.js";
import type { MetricsListener } from "../observe/listener.js";
import type { FilterOptions } from "../run/filter.js";
import type { ImportSource } from "../run/importer.js";
import { describeStdoutError } from "../run/shutdown.js";
import type { Host } from "../shared/host.js";
import { FdLogger, type Logger } from "../shared/log.js";
import { VERSION } from "../version.js";
import {
  type CliOptions,
  DEFAULT_ACK_TIMEOUT,
  DEFAULT_PAD_BYTES,
  DEFAULT_TAG,
  type ImportOptions,
} from "./program-options.js";
import { checkAwsSettings, checkCloudTrailEndpoint, checkProxy, type Output, usageError } from "./usage.js";

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

export function openLog(options: Pick<CliOptions, "logFile" | "logLevel">, program: Command): Logger {
  let fd = 2;
  if (options.logFile !== undefined) {
    try {
      fd = openSync(options.logFile, "a");
    } catch (error) {
      usageError(program, `cannot open --log-file ${options.logFile}: ${(error as Error).message}`);
    }
  }
  return new FdLogger(fd, options.logLevel);
}

/**
 * `--checkpoint` (import, verify): the file of finished log files, loaded only when given; one that cannot be opened is
 * a configuration error (exit 2). `readOnly`: `import --list` reads it and appends nothing.
 */
export async function openCheckpoint(
  path: string | undefined,
  command: Command,
  readOnly = false,
): Promise<Checkpoint | undefined> {
  if (path === undefined) return undefined;
  const { Checkpoint } = await import("../listing/checkpoint.js");
  try {
    return Checkpoint.open(path, readOnly);
  } catch (error) {
    return usageError(command, `cannot open --checkpoint ${path}: ${(error as Error).message}`);
  }
}

/** `--since`, `--until`, `--accounts`, `--regions` (import, verify): which log files a listing takes (layout.ts). */
export function selectionOf(options: Pick<ImportOptions, "since" | "until" | "accounts" | "regions">): Selection {
  return {
    ...(options.since === undefined ? {} : { since: options.since }),
    ...(options.until === undefined ? {} : { until: options.until }),
    ...(options.accounts === undefined ? {} : { accounts: new Set(options.accounts) }),
    ...(options.regions === undefined ? {} : { regions: new Set(options.regions) }),
  };
}

/**
 * Without --buckets, a queue writer can point the filter at any bucket its role (or the world) can read, and have
 * files there read as CloudTrail's (README, Security). Said at every start, not only in the docs: a warning in the
 * log is what an operator sees. (`import` is not warned: it reads only the bucket its source names.)
 */
export function warnWithoutBuckets(options: CliOptions, log: Logger): void {
  if (options.buckets !== undefined) return;
  log.warn(
    "--buckets is not set: objects are read from any bucket a message names; set it in production (README, Security)",
  );
}

/** The Filter's settings from the command line (the filter and the import command share them). */
export function filterOptions(options: CliOptions, leaveTransientToSqs: boolean): FilterOptions {
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
 * The AWS clients of this process (clients.ts): made on first use, from the options and the environment. A region,
 * endpoint or proxy variable that is not one is a configuration error (exit 2), named (settings.ts, proxy-env.ts).
 * `cloudTrail`: ListPublicKeys will be asked (verify, --verify-integrity), so AWS_ENDPOINT_URL_CLOUDTRAIL (else
 * AWS_ENDPOINT_URL) is read and checked too; a command that asks nothing of CloudTrail never refuses it.
 */
export function awsClients(
  options: Pick<CliOptions, "region" | "endpoint" | "concurrency" | "requestTimeout" | "requestPayer">,
  program: Command,
  env: Host["env"],
  cloudTrail: boolean,
): AwsClients {
  const settings = checkAwsSettings(options, env, program);
  const cloudTrailEndpoint = cloudTrail ? checkCloudTrailEndpoint(env, program) : undefined;
  const aws = new AwsClients({
    region: settings.region,
    ...(settings.s3Endpoint === undefined ? {} : { s3Endpoint: settings.s3Endpoint }),
    ...(settings.sqsEndpoint === undefined ? {} : { sqsEndpoint: settings.sqsEndpoint }),
    ...(cloudTrailEndpoint === undefined ? {} : { cloudTrailEndpoint }),
    connections: Math.max(16, options.concurrency * 2),
    timeoutMs: options.requestTimeout * 1000,
    requestPayer: options.requestPayer,
    env,
  });
  checkProxy(aws, program);
  return aws;
}

/** What every command needs: the log, stdout as a sink, and where objects come from. */
export async function startRuntime(
  options: CliOptions,
  program: Command,
  host: Host,
  command = "filter",
): Promise<Runtime> {
  const aws = awsClients(options, program, host.env, options.verifyIntegrity === true);
  const log = openLog(options, program);

  // Node's own warnings (the SDK's Node version notice among them) would print plain text to stderr.
  host.onWarning((warning) => log.debug("node warning", { warning: warning.message }));
  host.onUncaughtException((error) => {
    log.error("fatal", { error: error.stack ?? String(error) });
    host.exit(1);
  });

  const metrics =
    options.metricsListen === undefined ? undefined : await openMetrics(options.metricsListen, command, log, program);
  const source = new S3Source(() => aws.getter(), metrics?.observer);
  let sink: Sink;
  let stdout: OutputSink | undefined;
  if (options.output?.kind === "forward") {
    sink = await forwardSink(options, options.output, log, program, host.env);
  } else {
    const format = options.outputFormat === "msgpack" ? "msgpack" : "json";
    const sinkOptions = { padBytes: padBytesFor(options), format } as const;
    stdout = new OutputSink(host.stdout, sinkOptions, (error) => runtime.onStdoutClosed(error));
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
      host.exit(0);
    },
  };
  return runtime;
}

/** --metrics-listen: the listener, loaded only then; an address it cannot bind is a configuration error (exit 2). */
export async function openMetrics(
  address: ListenAddress,
  command: string,
  log: Logger,
  program: Command,
  objects = true,
): Promise<MetricsListener> {
  const { MetricsListener } = await import("../observe/listener.js");
  try {
    return await MetricsListener.open(address, command, VERSION, log, objects);
  } catch (error) {
    return usageError(
      program,
      `cannot listen on --metrics-listen ${address.host}:${address.port}: ${(error as Error).message}`,
    );
  }
}

/** What every command needs (startRuntime). */
export interface Runtime {
  log: Logger;
  sink: Sink;
  stdout: OutputSink | undefined;
  source: S3Source;
  aws: AwsClients;
  metrics: MetricsListener | undefined;
  /** Called once when stdout fails (EPIPE): by default logs and exits 0; the filter and `sqs` end their own way. */
  onStdoutClosed: (error: Error) => void;
}

async function forwardSink(
  options: CliOptions,
  output: Extract<Output, { kind: "forward" }>,
  log: Logger,
  program: Command,
  env: Host["env"],
): Promise<Sink> {
  let ca: Buffer | undefined;
  if (options.forwardCa !== undefined) {
    try {
      ca = readFileSync(options.forwardCa);
    } catch (error) {
      usageError(program, `cannot read --forward-ca ${options.forwardCa}: ${(error as Error).message}`);
    }
  }
  // Node's own NODE_EXTRA_CA_CERTS stays trusted besides --forward-ca (forward.ts, trustedCas). Unreadable, Node has
  // warned about it at start and trusts it nowhere; nor does this.
  let envCa: Buffer | undefined;
  const extraCerts = env.NODE_EXTRA_CA_CERTS;
  if (ca !== undefined && extraCerts !== undefined && extraCerts !== "") {
    try {
      envCa = readFileSync(extraCerts);
    } catch {
      envCa = undefined;
    }
  }
  const sharedKey = options.forwardSharedKey ?? env.CTEF_FORWARD_SHARED_KEY;
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
export async function openSpool(
  options: CliOptions,
  program: Command,
  log: Logger,
  host: Host,
): Promise<Spool | undefined> {
  if (options.spoolDir === undefined) return undefined;
  const { Spool } = await import("../input/spool.js");
  try {
    return Spool.open(options.spoolDir, options.spoolMaxBytes, host);
  } catch (error) {
    const message = `cannot use --spool-dir ${options.spoolDir}: ${(error as Error).message}`;
    // Without --log-file the log is stderr, where the message below goes anyway.
    if (options.logFile !== undefined) {
      log.error(message, { code: (error as NodeJS.ErrnoException).code ?? (error as Error).name });
    }
    return usageError(program, message);
  }
}

/** import: the source's bucket besides --buckets (a digest there lists log files there). */
export function allowedWith(source: ImportSource, buckets: ReadonlySet<BucketName> | undefined) {
  return source.scheme === "s3" ? new Set<string>([source.bucket, ...(buckets ?? [])]) : buckets;
}

/**
 * --verify-integrity: the continuous check, its hashes kept in `spoolDir` when given. `buckets`: where a digest's
 * log files may be read (--buckets; import adds its source's).
 */
export async function continuousIntegrity(
  options: CliOptions,
  runtime: { aws: AwsClients },
  log: Logger,
  spoolDir: string | undefined,
  buckets: ReadonlySet<string> | undefined,
) {
  if (options.verifyIntegrity !== true) return undefined;
  const { openContinuous } = await import("../integrity/continuous.js");
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
