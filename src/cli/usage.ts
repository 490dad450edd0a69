// Every usage check of the command line, in one place, and one way out of it: exit 2 before any input is read
// (README "Exit codes"). The values of options are parsed by the functions at the top (each takes the option's text
// and returns its value or throws commander's InvalidArgumentError); the checks below them refuse combinations that
// would do nothing or cannot work, and each command (cli/*.ts) calls its own before it builds anything. A resource
// that cannot be opened at start (--log-file, --checkpoint, --spool-dir, --metrics-listen, --forward-ca) is a
// configuration error that leaves through `usageError` too (cli/runtime.ts).
import { type Command, type CommanderError, InvalidArgumentError } from "commander";
import { type ForwardTarget, parseForwardUrl } from "../deliver/forward.js";
import { parseDay } from "../listing/layout.js";
import {
  type BucketName,
  isInvalid,
  parseBucketName,
  parseRegion,
  type Region,
  refusalMessage,
} from "../model/names.js";
import { type AwsSettings, awsSettings, cloudTrailEndpoint, parseEndpoint } from "../model/settings.js";
import { type ListenAddress, parseListenAddress } from "../observe/address.js";
import type { ImportSource } from "../run/importer.js";
import type { CliOptions, ImportOptions, SqsOptions } from "./program-options.js";

/** A whole number from `min` to `max`. */
export function integer(min: number, max = Number.MAX_SAFE_INTEGER) {
  return (value: string): number => {
    const n = Number(value);
    if (!/^\d+$/.test(value.trim()) || !Number.isSafeInteger(n) || n < min || n > max) {
      throw new InvalidArgumentError(`expected a whole number from ${min} to ${max}`);
    }
    return n;
  };
}

/** Seconds, 0 or more (fractions allowed). */
export function seconds(value: string): number {
  const n = Number(value);
  if (value.trim() === "" || !Number.isFinite(n) || n < 0) throw new InvalidArgumentError("expected seconds (>= 0)");
  return n;
}

/** Seconds above 0: a timeout of 0 would fail every request at once. */
export function positiveSeconds(value: string): number {
  const n = seconds(value);
  if (n === 0) throw new InvalidArgumentError("expected seconds (> 0)");
  return n;
}

/** `--stats-interval`: 0 (off), or at least a tenth of a second (shorter would flood the log). */
export function statsInterval(value: string): number {
  const n = seconds(value);
  if (n > 0 && n < 0.1) throw new InvalidArgumentError("expected 0 (off) or at least 0.1 seconds");
  return n;
}

/** A value that must not be empty: a field name or a tag. */
export function nonEmpty(value: string): string {
  if (value === "") throw new InvalidArgumentError("expected a non-empty value");
  return value;
}

/** `--region`: parsed as a region a message names is (names.ts); it becomes part of every AWS host name. */
export function region(value: string): Region {
  const parsed = parseRegion(value);
  if (isInvalid(parsed)) throw new InvalidArgumentError(`${JSON.stringify(value)} ${parsed.reason}`);
  return parsed;
}

/** `--endpoint`: an http(s) URL (settings.ts). */
export function endpoint(value: string): string {
  const parsed = parseEndpoint(value);
  if (isInvalid(parsed)) throw new InvalidArgumentError(`${JSON.stringify(value)} ${parsed.reason}`);
  return parsed;
}

/** `--since`/`--until`: a day as YYYY-MM-DD (layout.ts). */
export function day(value: string): string {
  const parsed = parseDay(value);
  if (parsed === undefined) throw new InvalidArgumentError("expected a day as YYYY-MM-DD");
  return parsed;
}

/** A comma-separated list of at least one item (`--accounts`, `--regions`). */
export function list(value: string): string[] {
  const items = value
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s !== "");
  if (items.length === 0) throw new InvalidArgumentError("expected a comma-separated list");
  return items;
}

/** `--metrics-listen [HOST:]PORT` (observe/address.ts). */
export function listenAddress(value: string): ListenAddress {
  const parsed = parseListenAddress(value);
  if (typeof parsed === "string") throw new InvalidArgumentError(parsed);
  return parsed;
}

/** The way out for every usage or configuration error: its message on stderr (by commander), exit 2. */
export function usageError(command: Command, message: string): never {
  return command.error(`error: ${message}`, { exitCode: 2 });
}

/**
 * Every exit through commander is a usage or configuration error, exit 2: its own (an unknown option, a bad value,
 * exit 1 by default) and ours (`usageError`); --help and --version exit 0. The exit codes: README "Exit codes".
 */
export function usageExit(exit: (code: number) => never): (error: CommanderError) => never {
  return (error) => exit(error.exitCode === 0 ? 0 : 2);
}

/**
 * `--buckets a,b`: each name parsed as a message's bucket is; a bad one is a usage error (exit 2). Given more than
 * once, the lists add up.
 */
export function bucketList(command: Command, value: string, previous: ReadonlySet<BucketName> | undefined) {
  const names = value
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s !== "");
  if (names.length === 0) usageError(command, "--buckets expects a comma-separated list of buckets");
  const buckets = new Set<BucketName>(previous);
  for (const name of names) {
    const parsed = parseBucketName(name);
    if (isInvalid(parsed)) {
      usageError(command, `--buckets: ${refusalMessage("bucket", name, parsed)}`);
    }
    buckets.add(parsed);
  }
  return buckets;
}

/** `verify --buckets a,b`: as `bucketList`, refused as commander refuses a bad value. */
export function buckets(value: string, previous: ReadonlySet<BucketName> | undefined): ReadonlySet<BucketName> {
  const result = new Set<BucketName>(previous);
  for (const name of list(value)) {
    const parsed = parseBucketName(name);
    if (isInvalid(parsed)) throw new InvalidArgumentError(refusalMessage("bucket", name, parsed));
    result.add(parsed);
  }
  return result;
}

/** `--output`: stdout, or a fluentd's in_forward. */
export type Output = { kind: "stdout" } | ({ kind: "forward" } & Pick<ForwardTarget, "host" | "port" | "tls">);

export function parseOutput(command: Command, value: string): Output {
  if (value === "stdout") return { kind: "stdout" };
  const parsed = parseForwardUrl(value);
  if (typeof parsed === "string") usageError(command, `--output ${value}: ${parsed}`);
  return { kind: "forward", ...parsed };
}

/** The region and endpoints from the options and the environment; a variable that is not one is named (settings.ts). */
export function checkAwsSettings(
  options: { region?: Region | undefined; endpoint?: string | undefined },
  env: Readonly<Record<string, string | undefined>>,
  command: Command,
): AwsSettings {
  const settings = awsSettings(options, env);
  if (typeof settings === "string") return usageError(command, settings);
  return settings;
}

/**
 * `AWS_ENDPOINT_URL_CLOUDTRAIL` (or `AWS_ENDPOINT_URL`), for ListPublicKeys (verify, --verify-integrity): a URL, or
 * unset.
 */
export function checkCloudTrailEndpoint(
  env: Readonly<Record<string, string | undefined>>,
  command: Command,
): string | undefined {
  const endpoint = cloudTrailEndpoint(env);
  if (typeof endpoint === "object") return usageError(command, endpoint.message);
  return endpoint;
}

/** The proxy variables, read as undici will read them (clients.ts), without loading the network stack. */
export function checkProxy(aws: { check(): void }, command: Command): void {
  try {
    aws.check();
  } catch (error) {
    usageError(command, (error as Error).message);
  }
}

/**
 * Options that would do nothing as given are usage errors rather than silently ignored: whoever wrote them expected
 * an effect. (`import --list` with output options is not one: a dry run of a whole command line is its point.)
 */
function checkCombinations(options: CliOptions, program: Command): void {
  if (options.outputFormat === "msgpack" && options.padBytes !== undefined && options.padBytes !== 0) {
    usageError(
      program,
      "--pad-bytes does nothing with --output-format msgpack (whitespace is not msgpack; fluentd reads it whole)",
    );
  }
  // Two options naming one field would write it twice in every event.
  const added = new Map<string, string>();
  const add = (name: string | undefined, what: string, adds = `${what} adds already`): void => {
    if (name === undefined) return;
    const before = added.get(name);
    if (before !== undefined) usageError(program, `${what} names the field ${JSON.stringify(name)}, which ${before}`);
    added.set(name, adds);
  };
  if (options.timestamp) add("@timestamp", "@timestamp", "the filter adds already (unless --no-timestamp)");
  add(options.timeField, "--time-field");
  add(options.sourceField, "--source-field");
}

/** The filter's checks: a word after its options is a command, mistyped or unknown; then its combinations. */
export function checkFilter(options: CliOptions, program: Command): void {
  if (program.args.length > 0) unknownCommand(program, String(program.args[0]));
  checkCombinations(options, program);
  if (options.visibilityTimeout !== undefined && !options.deleteSqsMessages) {
    // Only a message the filter will delete has its visibility kept up: the option alone would change nothing.
    usageError(program, "--visibility-timeout does nothing without --delete-sqs-messages");
  }
}

/** `import`'s checks, once its source is parsed (run/importer.ts, loaded only for import); returns the source. */
export function checkImport(
  options: ImportOptions,
  source: ImportSource | string,
  command: Command,
  program: Command,
  ignoredByEnqueue: ReadonlySet<string>,
): ImportSource {
  checkCombinations(options, command);
  if (typeof source === "string") usageError(command, source);
  if (source.scheme === "s3" && options.buckets !== undefined && !options.buckets.has(source.bucket)) {
    usageError(command, `the bucket ${JSON.stringify(source.bucket)} is not one of --buckets`);
  }
  if (options.since !== undefined && options.until !== undefined && options.since > options.until) {
    usageError(command, "--since is after --until");
  }
  if (options.enqueue !== undefined) checkEnqueue(options.enqueue, source.scheme, command, program, ignoredByEnqueue);
  else if (command.getOptionValueSource("keysPerMessage") === "cli") {
    usageError(command, "--keys-per-message does nothing without --enqueue");
  }
  return source;
}

/**
 * A queue URL given on the command line (`sqs --queue-url`, `import --enqueue`): an http(s) URL with a host, as an
 * endpoint is (settings.ts), and a path naming the queue. The operator's own, so any origin is taken (an SQS-compatible
 * service), but only a URL: `foo` or `''` would otherwise be polled for ever, each receive failing.
 */
function isQueueUrl(value: string): boolean {
  return !isInvalid(parseEndpoint(value)) && new URL(value).pathname.length > 1;
}

const QUEUE_URL_EXAMPLE = "a queue URL such as https://sqs.us-east-1.amazonaws.com/123456789012/queue";

/**
 * `--enqueue` needs an S3 source (the filters elsewhere cannot read this machine's files) and none of `ignored`: the
 * options about how files are read and events written (cli/program-options.ts, `readingOptionNames`).
 */
function checkEnqueue(
  queueUrl: string,
  scheme: "s3" | "file",
  command: Command,
  program: Command,
  ignored: ReadonlySet<string>,
): void {
  if (scheme !== "s3") {
    usageError(command, "--enqueue needs an s3:// source: the filters behind the queue read from S3, not from here");
  }
  if (!isQueueUrl(queueUrl)) {
    usageError(command, `--enqueue expects ${QUEUE_URL_EXAMPLE}, not ${JSON.stringify(queueUrl)}`);
  }
  // How files are read and events written: the filters behind the queue do that, with their own options.
  for (const option of [...command.options, ...program.options]) {
    const key = option.attributeName();
    if (!ignored.has(key)) continue;
    if (command.getOptionValueSource(key) === "cli" || program.getOptionValueSource(key) === "cli") {
      usageError(
        command,
        `${option.long} does nothing with --enqueue (the filters behind the queue read the files, with their own options)`,
      );
    }
  }
}

/** `sqs`'s checks. */
export function checkSqs(options: SqsOptions, command: Command): void {
  // A long poll must not be cut by the request timeout.
  if (options.requestTimeout <= options.waitTime) {
    usageError(command, `--request-timeout must be longer than --wait-time (${options.waitTime} s)`);
  }
  if (!isQueueUrl(options.queueUrl)) {
    usageError(command, `--queue-url expects ${QUEUE_URL_EXAMPLE}, not ${JSON.stringify(options.queueUrl)}`);
  }
}

/** `verify`'s checks, once its source is parsed; returns the source. */
export function checkVerify(
  options: { since?: string | undefined; until?: string | undefined },
  source: ImportSource | string,
  command: Command,
): ImportSource {
  if (typeof source === "string") return usageError(command, source);
  if (options.since !== undefined && options.until !== undefined && options.since > options.until) {
    usageError(command, "--since is after --until");
  }
  return source;
}

/** A subcommand's options, with those given before it (to the program) where it was not given them itself. */
export function subcommandOptions(program: Command, command: Command): Record<string, unknown> {
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
      usageError(command, `${option.long} is an option of the filter; ${command.name()} does not use it`);
    }
  }
  return merged;
}

/** `cloudtrail-exec-filter improt`: a usage error (exit 2) naming the command meant, when one is close. */
function unknownCommand(program: Command, word: string): never {
  const names = program.commands.map((command) => command.name());
  const near = names
    .map((name) => ({ name, distance: editDistance(word.toLowerCase(), name) }))
    .filter(({ name, distance }) => distance <= Math.max(1, Math.floor(name.length / 3)))
    .sort((a, b) => a.distance - b.distance)[0];
  const hint = near === undefined ? `(the commands: ${names.join(", ")})` : `(Did you mean ${near.name}?)`;
  return usageError(program, `unknown command ${JSON.stringify(word.slice(0, 100))}\n${hint}`);
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
