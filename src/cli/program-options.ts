// The options the commands share, defined once (the filter, import and sqs take them; verify has its own), and the
// types of what commander makes of them. Their values are parsed and checked in cli/usage.ts.
import { Command, Option } from "commander";
import { DEFAULT_STRINGIFY, type OutputFormat } from "../format/format.js";
import type { BucketName, Region } from "../model/names.js";
import type { ListenAddress } from "../observe/address.js";
import { MAX_OBJECTS_PER_MESSAGE } from "../run/filter.js";
import { LEVELS, type Level } from "../shared/log.js";
import {
  bucketList,
  endpoint,
  integer,
  listenAddress,
  nonEmpty,
  type Output,
  parseOutput,
  positiveSeconds,
  region,
  seconds,
} from "./usage.js";

export interface CliOptions {
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

/** `import`'s own options besides the shared ones. */
export interface ImportOptions extends CliOptions {
  since?: string;
  until?: string;
  accounts?: string[];
  regions?: string[];
  list?: boolean;
  checkpoint?: string;
  enqueue?: string;
  keysPerMessage: number;
}

/** `sqs`'s own options besides the shared ones. */
export interface SqsOptions extends CliOptions {
  queueUrl: string;
  receivers: number;
  maxInFlight?: number;
  waitTime: number;
  statsInterval: number;
}

/** fluentd's JSON reader takes the child's stdout in blocking reads of this many bytes (output.ts says why). */
export const DEFAULT_PAD_BYTES = 8192;

/** Where S3 is and who pays: every command that reads objects (the filter, import, sqs, verify). */
export function awsOptions(command: Command): Command {
  return command
    .option(
      "--region <region>",
      "default AWS region (else AWS_REGION, else us-east-1); buckets elsewhere are followed",
      region,
    )
    .option("--endpoint <url>", "S3-compatible endpoint, path-style (AWS_ENDPOINT_URL_S3 also works)", endpoint)
    .option("--request-payer", "read from Requester Pays buckets (this account pays for the requests)", false);
}

/** Options shared by the filter and the import command. */
export function commonOptions(command: Command): Command {
  return awsOptions(command)
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

/** Where messages arrive (the filter, `sqs`): a cap on what one message may name. */
export function maxObjectsOption(command: Command): Command {
  return command.option(
    "--max-objects-per-message <n>",
    "a message naming more objects than this (read, refused and skipped together) is one TooManyObjects dead " +
      "letter, and none of them is read",
    integer(1),
    MAX_OBJECTS_PER_MESSAGE,
  );
}

/** `--tag` and `--forward-ack-timeout` (seconds) when not given. */
export const DEFAULT_TAG = "cloudtrail.event";
export const DEFAULT_ACK_TIMEOUT = 190;

/** Where the `sqs` and `import` commands deliver: stdout, or fluentd's in_forward with acknowledgements. */
export function outputOptions(command: Command): Command {
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

/** What `import --enqueue` refuses: the output options and READING_OPTIONS, by attribute name (cli/usage.ts). */
export function readingOptionNames(): ReadonlySet<string> {
  return new Set([...outputOptions(new Command()).options.map((o) => o.attributeName()), ...READING_OPTIONS]);
}

/** The environment variables the program reads, for `--help`. */
export const ENVIRONMENT_HELP = `
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
