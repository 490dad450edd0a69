// Runs the filter: input lines in, events and dead-letter records out. Owns concurrency, per-record accounting,
// the dead-letter contract and shutdown; every stage below it is handed in.
//
// Policy: every input record ends as events, as a logged deliberate skip, or as dead-letter records plus a log line:
// one per object that failed once requested, one per record for the objects refused before any request (listing
// them), one for a record naming more objects than --max-objects-per-message. Work abandoned at shutdown is logged
// with its input so nothing disappears silently.
//
// A queue writer must not be able to take capacity from good messages (docs/security.md): no object waiting out a
// backoff holds a fetch slot, every record waits for stdout's back-pressure before it is started, and the dead letters
// of one record are bounded whatever it names.

import { createHash, type Hash } from "node:crypto";
import { InflateError, type InflateErrorCode, inflateStored, readStored, type Stored } from "../decode/inflate.js";
import { RecordsScanner, ScanError, type ScanErrorCode } from "../decode/scan.js";
import { FetchError, type FetchErrorCode, type ObjectSource, type OpenedObject } from "../fetch/fetch.js";
import { eventWriter, type FormatOptions, scannedFields } from "../format/format.js";
import { NewestTime } from "../format/newest-time.js";
import type { ScanPool } from "../format/scan-pool.js";
import type { Line } from "../input/lines.js";
import type { ContinuousIntegrity } from "../integrity/continuous.js";
import { parseLogName } from "../listing/layout.js";
import { emptyFilterCounts, type FilterCounts, type RunCounts } from "../model/counts.js";
import { deadLetterRecord, redactReceiptHandles } from "../model/dead-letter.js";
import type { BucketName, ObjectKey } from "../model/names.js";
import type { ObjectRef } from "../model/refs.js";
import type { Sink } from "../model/sink.js";
import { DIGEST_SKIP, type Refusal } from "../records/notifications.js";
import {
  describeRef,
  type Interpreted,
  interpretLine,
  type RecordErrorCode,
  type RefusedRef,
} from "../records/records.js";
import { release } from "../shared/buffers.js";
import type { Logger } from "../shared/log.js";
import { RetryPolicy, sleep } from "../shared/retry.js";

export interface FilterOptions extends FormatOptions {
  /** Objects fetched and scanned at once. */
  concurrency: number;
  /** `_tag` of dead-letter records, so fluentd's `<extract> tag_key _tag` routes them apart. */
  deadletterTag: string;
  /** Largest inflated object accepted (gzip bomb guard). */
  maxObjectBytes: number;
  /** Largest single event accepted. */
  maxEventBytes: number;
  /** How long an object may keep failing transiently before it is given up, in seconds. */
  retryFor: number;
  /**
   * When the record came from SQS and the filter owns its deletion: an object that kept failing transiently gets no
   * dead-letter record; its message is left for SQS to deliver again.
   */
  leaveTransientToSqs: boolean;
  /** Worker threads for whole small objects (0 or absent: scan on this thread), unless `pool` is handed in. */
  scanWorkers?: number;
  /**
   * `--buckets`: the only buckets objects are read from. An object elsewhere is a `BucketNotAllowed` dead letter and
   * no request is made: a queue writer cannot point the filter at another bucket the role can read, or at one they
   * own, to put forged events into the trail. Absent: every bucket.
   */
  buckets?: ReadonlySet<BucketName>;
  /**
   * `--max-objects-per-message`: a record naming more objects than this (read, refused and skipped together) is one
   * `TooManyObjects` dead letter and nothing of it is read. Absent: no cap (`import`, which lists its own objects).
   * Default MAX_OBJECTS_PER_MESSAGE.
   */
  maxObjectsPerMessage?: number;
}

/**
 * The default of --max-objects-per-message. CloudTrail's notification lists the log files it delivered together
 * (test/fixtures/notifications: 3; in practice a few, tens for an organization trail's busy minute), an S3 event
 * notification carries one record, EventBridge one object. A thousand is far above what AWS sends, and far below the
 * ~10,000 shortest keys a 1 MiB SQS message can list.
 */
export const MAX_OBJECTS_PER_MESSAGE = 1000;

/**
 * Refused objects listed by name in their record's one dead letter (`refused`, with `refusedCount` for all of them):
 * enough to find what went wrong, while the dead letter stays a bounded document (each entry is at most a 1 KiB key
 * and a message that quotes at most 100 characters) whatever the message lists.
 */
export const REFUSALS_LISTED_MAX = 100;

/**
 * Dead letters of one record that carry its input whole (up to DEAD_LETTER_INPUT_MAX, dead-letter.ts); each later one
 * carries the first LATER_INPUT_CHARS characters of the line, with `inputTruncated` and `inputBytes`, as an input
 * beyond the maximum does. Objects that fail once requested are one dead letter each, and a message of 1,000 missing
 * keys in an allowed bucket would otherwise write 1,000 copies of itself (~64 MB for a 110 KB message); this way
 * ~2 MB. The object's own coordinates are in every one of them.
 */
const WHOLE_INPUT_DEAD_LETTERS = 10;
const LATER_INPUT_CHARS = 1024;

/**
 * Objects that may wait out a backoff at once (they hold no fetch slot and do not count against --concurrency). Past
 * this, input waits: only an outage of S3 or of the resolver makes so many objects fail transiently at once, and then
 * every message fails alike.
 */
const BACKING_OFF_MAX = 1024;

/** How one input record ended, reported once its output has been handed to stdout. */
export interface RecordOutcome {
  line: Line;
  record: Interpreted;
  events: number;
  deadLetters: number;
  /** Work was abandoned at shutdown: the record is not done. */
  abandoned: boolean;
  /** An object kept failing transiently and was left to SQS redelivery: do not delete the message. */
  retryLater: boolean;
}

export interface FilterHooks {
  /** Called once per input record, after everything it produced has been delivered (`Sink.written`). */
  recordDone?(outcome: RecordOutcome): void;
}

export interface FilterDeps {
  source: ObjectSource;
  sink: Sink;
  log: Logger;
  options: FilterOptions;
  hooks?: FilterHooks;
  retry?: RetryPolicy;
  /** Scan workers for whole small objects; without it everything is scanned on this thread. */
  pool?: ScanPool;
  /** Told how long each object took, start to end with its retries (--metrics-listen's histogram). */
  observe?: { objectSeconds(seconds: number): void };
  /**
   * --verify-integrity: told the SHA-256 of each S3 object read whole, and handed the digest files notified (instead
   * of skipping them); their `cloudtrail.integrity` lines go out among the events.
   */
  integrity?: ContinuousIntegrity;
}

/** How an object the Filter started ended (the metrics' `objects_total{outcome}`). */
export interface ObjectOutcomes {
  /** Every event written. */
  read: number;
  /** A dead-letter record written for it. */
  deadLetter: number;
  /** Kept failing transiently; its SQS message is left to come back. */
  leftToSqs: number;
  /** Given up at shutdown. */
  abandoned: number;
}

/** An input record whose objects are still being worked on. */
interface Tracker {
  pending: number;
  outcome: RecordOutcome;
}

/**
 * Every `error.code` a dead-letter record can carry: what a record, a reference, a fetch, the gzip layers and the scan
 * can fail with, `BucketNotAllowed` (--buckets) and `InternalError` (a bug). README "Error codes" lists exactly these
 * (test/run/error-codes.test.ts holds the two together).
 */
export type DeadLetterCode =
  | RecordErrorCode
  | Refusal["code"]
  | "BucketNotAllowed"
  | "TooManyObjects"
  | FetchErrorCode
  | InflateErrorCode
  | ScanErrorCode
  | "InternalError";

interface Failure {
  code: DeadLetterCode;
  message: string;
  /** The same request may succeed later. */
  transient: boolean;
  throttled: boolean;
}

const STOP = Symbol("stop");

function failureOf(error: unknown): Failure | undefined {
  if (error instanceof FetchError) {
    return { code: error.code, message: error.message, transient: error.transient, throttled: error.throttled };
  }
  if (error instanceof ScanError || error instanceof InflateError) {
    return { code: error.code, message: error.message, transient: false, throttled: false };
  }
  return undefined;
}

/** How a failed object or digest ends (Filter.endFailed). */
type FailedEnding =
  | { kind: "abandon"; why: string }
  | { kind: "leave"; failure: Pick<Failure, "code" | "message">; attempts?: number }
  | { kind: "deadLetter"; failure: Pick<Failure, "code" | "message"> }
  /** Not a classified failure: a bug, logged with its stack, and an InternalError dead letter. */
  | { kind: "bug"; error: unknown };

function refContext(ref: ObjectRef): Record<string, string> {
  return ref.scheme === "s3" ? { bucket: ref.bucket, key: ref.key } : { file: ref.path };
}

/** What a dead letter is about: an object, a refused reference, or the coordinates of a refused one. */
type Where = ObjectRef | RefusedRef | { bucket?: string; key?: string };

/** Where a dead letter's object is: a whole ref, the parts of a refused reference that parsed, or nothing. */
function whereContext(where: Where | undefined): Record<string, string> {
  if (where === undefined) return {};
  if ("scheme" in where) return refContext(where);
  return {
    ...(where.bucket === undefined ? {} : { bucket: where.bucket }),
    ...(where.key === undefined ? {} : { key: where.key }),
  };
}

/** One refused object, as listed in its record's dead letter. */
interface RefusedEntry {
  message: string;
  bucket?: string;
  key?: string;
}

/** The refused objects of one record that share a code and an input (a receive-message response has one per message). */
interface RefusedGroup {
  code: "InvalidReference" | "BucketNotAllowed";
  /** The input its dead letter carries. */
  input: unknown;
  /** The first REFUSALS_LISTED_MAX. */
  entries: RefusedEntry[];
  count: number;
}

/** Collects a record's refusals into groups, in the order their first member came. */
class Refusals {
  private readonly groups: RefusedGroup[] = [];

  add(code: RefusedGroup["code"], input: unknown, entry: RefusedEntry): void {
    let group = this.groups.find((g) => g.code === code && g.input === input);
    if (group === undefined) {
      group = { code, input, entries: [], count: 0 };
      this.groups.push(group);
    }
    group.count++;
    if (group.entries.length < REFUSALS_LISTED_MAX) group.entries.push(entry);
  }

  [Symbol.iterator](): Iterator<RefusedGroup> {
    return this.groups[Symbol.iterator]();
  }
}

/** What a record names, counted against --max-objects-per-message: its objects, refused or skipped ones included. */
function objectsNamed(record: Interpreted & { kind: "objects" }): number {
  return record.refs.length + record.refused.length + record.skips.length;
}

/** The message of a receive-message response that named `where`, else undefined (the whole record is the input). */
function messageOf(where: Where | undefined): unknown {
  if (where === undefined || !("input" in where)) return undefined;
  return where.input;
}

export class Filter {
  private readonly abort = new AbortController();
  private stopping = false;
  /** Ends the wait for the next record when the filter stops (set only while `run` waits for one). */
  private wake: (() => void) | undefined;
  private readonly summary: FilterCounts = emptyFilterCounts();
  /** The newest eventTime written, for the stats line's lag. */
  readonly newest = new NewestTime();
  /** `summary.deadLetters` by code; the codes are DeadLetterCode's few, so the map stays small. */
  private readonly deadLetterCodes = new Map<DeadLetterCode, number>();
  /** How started objects ended. Objects only: a digest left to SQS counts in the summary's `leftToSqs`, not here (it is no object). */
  private readonly outcomes: ObjectOutcomes = { read: 0, deadLetter: 0, leftToSqs: 0, abandoned: 0 };

  private readonly retry: RetryPolicy;
  private readonly fetchSlots: FetchSlots;
  /** Stored bytes of objects read whole and not yet finished (they no longer hold a fetch slot). */
  private heldBytes = 0;
  /** Objects waiting out a backoff between attempts: they hold no fetch slot and leave room for others. */
  private backingOff = 0;
  /**
   * Wakes `run` while it waits for room in the window: an object ended or started a backoff. One waiter at a time,
   * not `Promise.race` over the objects in flight, which left a reaction on each of them per wait: with objects
   * backing off for minutes, reactions by the million.
   */
  private roomMade: (() => void) | undefined;

  private pool: Promise<ScanPool | undefined> | undefined;

  constructor(private readonly deps: FilterDeps) {
    this.retry = deps.retry ?? new RetryPolicy({ retryForMs: deps.options.retryFor * 1000 });
    this.fetchSlots = new FetchSlots(deps.options.concurrency);
  }

  /** The scan workers, started on first use (worker threads cost start-up time a run without them never pays). */
  private scanPool(): Promise<ScanPool | undefined> {
    const { options } = this.deps;
    this.pool ??=
      this.deps.pool !== undefined
        ? Promise.resolve(this.deps.pool)
        : options.scanWorkers !== undefined && options.scanWorkers > 0
          ? import("../format/scan-pool.js").then(
              ({ ScanPool }) =>
                new ScanPool(options.scanWorkers as number, {
                  timestamp: options.timestamp,
                  maxEventBytes: options.maxEventBytes,
                  ...(options.timeField === undefined ? {} : { timeField: options.timeField }),
                  ...(options.stringify === undefined ? {} : { stringify: options.stringify }),
                  ...(options.sourceField === undefined ? {} : { sourceField: options.sourceField }),
                  ...(options.outputFormat === undefined ? {} : { outputFormat: options.outputFormat }),
                }),
            )
          : Promise.resolve(undefined);
    return this.pool;
  }

  /** Stops taking input; work in flight goes on until it ends or `abortInFlight` is called. */
  stop(): void {
    this.stopping = true;
    this.wake?.();
  }

  /** Abandons work in flight: no further line is written for it (lines are only ever written whole). */
  abortInFlight(): void {
    this.stop();
    this.abort.abort();
    this.deps.integrity?.abort();
  }

  /** The counts so far (`filter`: the summary `run` returns at the end), for the stats line, summary and metrics. */
  counts(): RunCounts & { filter: FilterCounts } {
    return {
      filter: { ...this.summary, bytesOut: this.deps.sink.bytesOut },
      counters: {},
      // --verify-integrity's counts, as they stand (the summary's and the stats line's `integrity`).
      levels: this.deps.integrity === undefined ? {} : { integrity: { ...this.deps.integrity.counts } },
      newestEventTime: this.newest.text ?? null,
    };
  }

  /** What the counts do not say: dead letters by code, and how the objects started so far ended. */
  breakdown(): { deadLetters: ReadonlyMap<DeadLetterCode, number>; objects: Readonly<ObjectOutcomes> } {
    return { deadLetters: this.deadLetterCodes, objects: { ...this.outcomes } };
  }

  /** Returns the Filter's counts (model/counts.ts) at the end: the summary line's leading fields. */
  async run(lines: AsyncIterable<Line>): Promise<FilterCounts> {
    const { options, log } = this.deps;
    const running = new Set<Promise<void>>();
    const iterator = lines[Symbol.asyncIterator]();
    for (;;) {
      // Every record waits for stdout's back-pressure, those that end only in dead letters too: with stdout not being
      // read, input is not taken (and held in memory) without end.
      if (!this.stopping) await this.deps.sink.ready();
      const next = this.stopping ? STOP : await this.nextOrStop(iterator);
      if (next === STOP || next.done === true) break;
      const line = next.value;
      this.summary.records++;
      const record = this.interpret(line);
      const tracker: Tracker = {
        pending: 1, // held until every object is started, so the record cannot finish early
        outcome: { line, record, events: 0, deadLetters: 0, abandoned: false, retryLater: false },
      };
      const named = record.kind === "objects" ? objectsNamed(record) : 0;
      const cap = options.maxObjectsPerMessage;
      if (record.kind === "error") {
        this.deadLetter(tracker, { code: record.code, message: record.message }, undefined);
      } else if (cap !== undefined && named > cap) {
        const message = `the message names ${named} objects, more than --max-objects-per-message (${cap}); none was read`;
        this.deadLetter(tracker, { code: "TooManyObjects", message }, undefined);
      } else {
        const digests: { bucket: BucketName; key: ObjectKey }[] = [];
        for (const skip of record.skips) {
          const { bucket, key } = skip;
          if (
            this.deps.integrity !== undefined &&
            skip.reason === DIGEST_SKIP &&
            bucket !== undefined &&
            key !== undefined
          ) {
            digests.push({ bucket, key });
            continue;
          }
          this.summary.skipped++;
          log.info("skipped", { reason: skip.reason, bucket: skip.bucket, key: skip.key, line: line.number });
        }
        // A message of a receive-message response that names no object: its dead letter holds that message.
        for (const failure of record.failed ?? []) this.deadLetter(tracker, failure, undefined, 0, failure.input);
        // No request is made for a reference that did not parse, nor for an object outside --buckets. They end in one
        // dead letter per record and code (per message of a receive-message response), listing them: never a copy
        // of the record per object, which let one message of N keys write N copies of itself.
        const refusals = new Refusals();
        for (const refusal of record.refused) {
          refusals.add("InvalidReference", messageOf(refusal) ?? record.input, {
            message: refusal.message,
            ...whereContext(refusal),
          });
        }
        const allowed: ObjectRef[] = [];
        for (const ref of record.refs) {
          if (ref.scheme === "s3" && options.buckets !== undefined && !options.buckets.has(ref.bucket)) {
            const message = `the bucket ${JSON.stringify(ref.bucket)} is not one of --buckets`;
            refusals.add("BucketNotAllowed", messageOf(ref) ?? record.input, { message, ...refContext(ref) });
          } else allowed.push(ref);
        }
        // Digest files are read from --buckets only, as every object.
        const allowedDigests = digests.filter((digest) => {
          if (options.buckets === undefined || options.buckets.has(digest.bucket)) return true;
          const message = `the bucket ${JSON.stringify(digest.bucket)} is not one of --buckets`;
          refusals.add("BucketNotAllowed", record.input, { message, ...digest });
          return false;
        });
        for (const group of refusals) this.deadLetterGroup(tracker, group);
        for (const digest of allowedDigests) {
          await this.roomForObject(running);
          if (this.stopping) {
            this.abandon({ scheme: "s3", ...digest }, tracker, "shutdown before the digest was checked");
            continue;
          }
          tracker.pending++;
          const earlier = [...running];
          const task = this.processDigest(digest.bucket, digest.key, tracker, earlier).finally(() => {
            running.delete(task);
            this.release(tracker);
            this.makeRoom();
          });
          running.add(task);
        }
        for (const ref of allowed) {
          await this.roomForObject(running);
          const slot = await this.fetchSlots.take();
          if (this.stopping) {
            slot.free();
            this.abandon(ref, tracker, "shutdown before the object was started");
            continue;
          }
          tracker.pending++;
          const observe = this.deps.observe;
          const startedAt = observe === undefined ? 0 : performance.now();
          const task = this.processObject(ref, tracker, slot).finally(() => {
            slot.free();
            running.delete(task);
            this.release(tracker);
            observe?.objectSeconds((performance.now() - startedAt) / 1000);
            this.makeRoom();
          });
          running.add(task);
        }
      }
      this.release(tracker);
    }
    await Promise.all(running);
    await Promise.all(this.finishing);
    this.summary.bytesOut = this.deps.sink.bytesOut;
    return { ...this.summary };
  }

  /**
   * Waits until another object may start. Objects whose bytes are all in memory no longer count against
   * --concurrency, but at most as many again (and HELD_BYTES_MAX of them) may wait for this thread, and none starts
   * while stdout is backed up. Objects waiting out a backoff hold no place (up to BACKING_OFF_MAX of them).
   */
  private async roomForObject(running: ReadonlySet<Promise<void>>): Promise<void> {
    const { options } = this.deps;
    while (
      running.size - this.backingOff >= 2 * options.concurrency ||
      this.backingOff >= BACKING_OFF_MAX ||
      this.heldBytes > HELD_BYTES_MAX
    ) {
      await new Promise<void>((resolve) => {
        this.roomMade = resolve;
      });
    }
    await this.deps.sink.ready();
  }

  /**
   * A digest file (--verify-integrity): its integrity lines are written as they are judged. It is not a log file: it
   * counts in no object outcome; a bug in its check is one dead letter, as for an object.
   */
  private async processDigest(
    bucket: BucketName,
    key: ObjectKey,
    tracker: Tracker,
    earlier: readonly Promise<void>[],
  ): Promise<void> {
    const { sink, log } = this.deps;
    const integrity = this.deps.integrity as ContinuousIntegrity;
    const signal = this.abort.signal;
    // The objects started before it are likely its log files (import hands a digest over after them; a queue brings
    // a digest an hour after its files): their hashes are waited for, a while, rather than fetched again.
    await settledWithin(earlier, DIGEST_WAIT_MS);
    try {
      const judged = await integrity.checkDigest(bucket, key, (line) => {
        if (signal.aborted) throw new Error("aborted");
        sink.writeJson(line as unknown as Record<string, unknown>);
        tracker.outcome.events++;
        return sink.ready();
      });
      if (!judged) {
        this.summary.skipped++;
        log.info("skipped", {
          reason: "not a CloudTrail digest file name",
          bucket,
          key,
          line: tracker.outcome.line.number,
        });
      }
    } catch (error) {
      const ref: ObjectRef = { scheme: "s3", bucket, key };
      const end = (ending: FailedEnding): void => this.endFailed(ref, tracker, ending, undefined);
      if (signal.aborted) return end({ kind: "abandon", why: "shutdown while its digest was checked" });
      if (!(error instanceof FetchError)) return end({ kind: "bug", error });
      // The digest could not be read (retried for --retry-for when transient): as an object that failed.
      const failure = { code: error.code, message: error.message };
      if (error.transient && this.deps.options.leaveTransientToSqs && tracker.outcome.record.sqs !== undefined) {
        end({ kind: "leave", failure });
      } else end({ kind: "deadLetter", failure });
    }
  }

  /** Wakes `run` if it waits for room in the window (it checks again what it waits for). */
  private makeRoom(): void {
    const wake = this.roomMade;
    this.roomMade = undefined;
    wake?.();
  }

  /**
   * The next record, or STOP when the filter stops first. Not `Promise.race` with one long-lived "stopped" promise:
   * every race leaves a reaction on it that holds the race's result (the record) until the promise settles, which for
   * a long-lived filter under fluentd was never: about 500 bytes of heap per record.
   */
  private nextOrStop(iterator: AsyncIterator<Line>): Promise<IteratorResult<Line> | typeof STOP> {
    return new Promise<IteratorResult<Line> | typeof STOP>((resolve, reject) => {
      this.wake = () => resolve(STOP);
      iterator.next().then(resolve, reject);
    }).finally(() => {
      this.wake = undefined;
    });
  }

  private readonly finishing = new Set<Promise<void>>();

  /** One object of the record ended; when none is left, report the record once its output is written. */
  private release(tracker: Tracker): void {
    if (--tracker.pending > 0) return;
    const hook = this.deps.hooks?.recordDone;
    if (hook === undefined) return;
    const done = this.deps.sink.written().then((written) => {
      // Not written (shutdown with a reader that stopped reading): the record is unfinished, as if abandoned.
      if (!written) tracker.outcome.abandoned = true;
      hook(tracker.outcome);
    });
    this.finishing.add(done);
    void done.finally(() => this.finishing.delete(done));
  }

  private interpret(line: Line): Interpreted {
    if (line.kind === "line") return interpretLine(line.text);
    return {
      kind: "error",
      input: line.prefix,
      code: "LineTooLong",
      message: `the line has ${line.bytes} bytes, more than --max-line-bytes; input holds its first bytes`,
    };
  }

  private async open(ref: ObjectRef): Promise<OpenedObject> {
    const { source } = this.deps;
    try {
      return await source.open(ref, this.abort.signal);
    } catch (error) {
      // EventBridge keys may or may not be URL-encoded: try the decoded form before giving up.
      if (ref.scheme === "s3" && ref.fallbackKey !== undefined && (error as FetchError).code === "NotFound") {
        return await source.open({ scheme: "s3", bucket: ref.bucket, key: ref.fallbackKey }, this.abort.signal);
      }
      throw error;
    }
  }

  /**
   * Reads one object into events, retrying transient failures (5xx, throttling, resets, timeouts, a body cut off)
   * with backoff until --retry-for is spent. Objects are immutable, so a retry skips the events an earlier attempt
   * already wrote: no event is emitted twice.
   */
  private async processObject(ref: ObjectRef, tracker: Tracker, slot: FetchSlot): Promise<void> {
    const { log, options } = this.deps;
    const retry = this.retry;
    const signal = this.abort.signal;
    this.summary.objects++;
    let written = 0;
    let firstFailureAt = 0;
    for (let attempt = 1; ; attempt++) {
      await sleep(retry.pauseMs(), signal);
      await slot.retake(); // an earlier attempt may have given it back
      let seen = 0;
      try {
        seen = await this.readObject(ref, tracker, written, slot, (n) => {
          seen = n;
        });
        retry.succeeded();
        this.outcomes.read++;
        log.debug("object done", { ...refContext(ref), events: seen, attempts: attempt });
        return;
      } catch (error) {
        written = Math.max(written, seen);
        const end = (ending: FailedEnding): void => this.endFailed(ref, tracker, ending, this.outcomes, written);
        if (signal.aborted)
          return end({ kind: "abandon", why: `shutdown after ${written} of its events were written` });
        const failure = failureOf(error);
        // Not a classified failure: a bug. Still one dead-letter record, never a crash.
        if (failure === undefined) return end({ kind: "bug", error });
        if (!failure.transient) return end({ kind: "deadLetter", failure });
        if (failure.throttled) retry.throttled();
        if (attempt === 1) firstFailureAt = retry.now();
        const delay = this.stopping ? undefined : retry.delayAfter(attempt, firstFailureAt);
        if (delay === undefined) {
          if (this.stopping) {
            end({ kind: "abandon", why: `shutdown while retrying: ${failure.message}` });
          } else if (options.leaveTransientToSqs && tracker.outcome.record.sqs !== undefined) {
            // The SQS message is not deleted, so SQS delivers it again (its redrive policy bounds how often).
            end({ kind: "leave", failure, attempts: attempt });
          } else {
            const message = `${failure.message} (gave up after ${attempt} attempts)`;
            end({ kind: "deadLetter", failure: { ...failure, message } });
          }
          return;
        }
        this.summary.retries++;
        log.info("retrying", {
          ...refContext(ref),
          code: failure.code,
          message: failure.message,
          attempt,
          delayMs: delay,
        });
        if (failure.throttled) {
          // S3 asked everyone to slow down (the shared pause): the slot is kept, or the objects behind would go out
          // into the same throttling and the storm would grow by one request per object.
          await sleep(delay, signal);
          continue;
        }
        // The slot goes back for the wait (the next attempt takes one again, in turn with new objects): an object
        // that keeps failing must not hold capacity that good messages need for up to --retry-for.
        slot.free();
        this.backingOff++;
        this.makeRoom();
        try {
          await sleep(delay, signal);
        } finally {
          this.backingOff--;
        }
      }
    }
  }

  /** One attempt: writes the object's events after the first `skip`; returns how many events it saw in all. */
  private async readObject(
    ref: ObjectRef,
    tracker: Tracker,
    skip: number,
    slot: FetchSlot,
    progress: (seen: number) => void,
  ): Promise<number> {
    const { sink, options } = this.deps;
    const summary = this.summary;
    const write = eventWriter(sink, options, ref);
    const newest = this.newest;
    let seen = 0;
    const scanner = new RecordsScanner(
      (event, time, hasTimestamp, fields) => {
        seen++;
        if (seen <= skip) return;
        write(event, time, hasTimestamp, fields);
        summary.events++;
        tracker.outcome.events++;
        if (time !== undefined) newest.note(time);
      },
      { maxEventBytes: options.maxEventBytes, fields: scannedFields(options) },
    );
    let held = 0;
    // --verify-integrity: only a log file's hash is remembered (noteLogFile), so only a log file is hashed.
    const integrity = ref.scheme === "s3" && parseLogName(ref.key) !== undefined ? this.deps.integrity : undefined;
    const noteHash = (sha256: string): void => {
      if (integrity !== undefined && ref.scheme === "s3") integrity.noteLogFile(ref.bucket, ref.key, sha256);
    };
    try {
      const opened = await this.open(ref);
      let stored: Stored;
      if ("whole" in opened) {
        // Every byte is here: the next fetch may start while this thread inflates and scans these. The work waits
        // for the check phase, so that requests started now (and responses already read) go out first.
        slot.free();
        held = opened.whole.length;
        this.heldBytes += held;
        summary.bytesIn += opened.whole.length;
        stored = opened;
        await afterIo();
      } else {
        stored = await readStored(
          countBytes(opened.body, (n) => {
            summary.bytesIn += n;
          }),
        );
      }
      const pool = "whole" in stored ? await this.scanPool() : undefined;
      // Workers take objects while they have room; the rest is done here, so this thread works too.
      if (pool?.hasRoom() === true && "whole" in stored) {
        // A small object: inflated and scanned by a worker; its lines come back ready to write.
        const result = await pool.run(
          stored.whole,
          skip,
          options.maxObjectBytes,
          coordinates(ref),
          integrity !== undefined,
        );
        if (result !== undefined) {
          if (this.abort.signal.aborted) throw new Error("aborted");
          seen = result.seen;
          if (result.output.length > 0) sink.writeBytes(result.output, result.emitted);
          summary.events += result.emitted;
          summary.bytesInflated += result.inflated;
          tracker.outcome.events += result.emitted;
          newest.noteText(result.newest);
          progress(seen);
          if (result.error !== undefined) throw result.error;
          if (result.sha256 !== undefined) noteHash(result.sha256);
          await sink.ready();
          return seen;
        }
      }
      // --verify-integrity: the inflated bytes are hashed as they pass, for the digest that will list them.
      const hash: Hash | undefined = integrity === undefined ? undefined : createHash("sha256");
      let last: Buffer | undefined;
      for await (const chunk of inflateStored(stored, { maxBytes: options.maxObjectBytes })) {
        summary.bytesInflated += chunk.length;
        last = chunk;
        hash?.update(chunk);
        scanner.push(chunk);
        progress(seen);
        await sink.ready();
        if (this.abort.signal.aborted) throw new Error("aborted");
      }
      scanner.end();
      if (hash !== undefined) noteHash(hash.digest("hex"));
      // Every event is copied into the output by now: an inflated object's memory can go (buffers.ts, release, which
      // leaves alone what it did not mark: a streamed object's chunks).
      if (last !== undefined) release(last);
      return seen;
    } finally {
      this.heldBytes -= held;
      progress(seen);
    }
  }

  /**
   * How a failed object or digest ends, logged and counted the same for both; `outcomes` undefined for a digest, which
   * counts in no object outcome (as in no `objects`).
   */
  private endFailed(
    ref: ObjectRef,
    tracker: Tracker,
    ending: FailedEnding,
    outcomes: ObjectOutcomes | undefined,
    written = 0,
  ): void {
    switch (ending.kind) {
      case "abandon":
        if (outcomes !== undefined) outcomes.abandoned++;
        this.abandon(ref, tracker, ending.why);
        return;
      case "leave": {
        tracker.outcome.retryLater = true;
        this.summary.leftToSqs++;
        if (outcomes !== undefined) outcomes.leftToSqs++;
        const { code, message } = ending.failure;
        const attempts = ending.attempts === undefined ? {} : { attempts: ending.attempts };
        this.deps.log.warn("left to SQS redelivery", { ...refContext(ref), code, message, ...attempts });
        return;
      }
      case "bug": {
        const { error } = ending;
        this.deps.log.error("unexpected error", {
          ...refContext(ref),
          error: error instanceof Error ? error.stack : String(error),
        });
        if (outcomes !== undefined) outcomes.deadLetter++;
        this.deadLetter(tracker, { code: "InternalError", message: String(error) }, ref, written);
        return;
      }
      case "deadLetter":
        if (outcomes !== undefined) outcomes.deadLetter++;
        this.deadLetter(tracker, ending.failure, ref, written);
    }
  }

  private abandon(ref: ObjectRef, tracker: Tracker, why: string): void {
    this.summary.abandoned++;
    tracker.outcome.abandoned = true;
    const input = redactReceiptHandles(tracker.outcome.record.input);
    this.deps.log.warn("abandoned", { ...refContext(ref), why, input });
  }

  /**
   * The refused objects of one group: one refused alone is its dead letter as any object's (its coordinates at the
   * top); several are one dead letter that lists the first REFUSALS_LISTED_MAX (`refused`) and counts them all
   * (`refusedCount`).
   */
  private deadLetterGroup(tracker: Tracker, group: RefusedGroup): void {
    const [first] = group.entries;
    if (first === undefined) return;
    if (group.count === 1) {
      const { message, ...where } = first;
      this.deadLetter(tracker, { code: group.code, message }, where, 0, group.input);
      return;
    }
    const message = `${group.count} objects of the message were refused; the first: ${first.message}`;
    this.deadLetter(tracker, { code: group.code, message }, undefined, 0, group.input, {
      refusedCount: group.count,
      refused: group.entries,
    });
  }

  private deadLetter(
    tracker: Tracker,
    failure: Pick<Failure, "code" | "message">,
    where: Where | undefined,
    emitted = 0,
    input: unknown = messageOf(where) ?? tracker.outcome.record.input,
    extra: Record<string, unknown> = {},
  ): void {
    const { sink, log, options } = this.deps;
    const { line } = tracker.outcome;
    const lineNumber = line.number;
    if (
      tracker.outcome.deadLetters >= WHOLE_INPUT_DEAD_LETTERS &&
      input === tracker.outcome.record.input &&
      line.kind === "line" &&
      line.text.length > LATER_INPUT_CHARS
    ) {
      // The record's earlier dead letters carry it whole: this one carries its start, as an input cut short does.
      const cut = /[\ud800-\udbff]/.test(line.text.charAt(LATER_INPUT_CHARS - 1))
        ? LATER_INPUT_CHARS - 1
        : LATER_INPUT_CHARS;
      input = line.text.slice(0, cut);
      extra = { inputTruncated: true, inputBytes: Buffer.byteLength(line.text, "utf8"), ...extra };
    }
    this.summary.deadLetters++;
    this.deadLetterCodes.set(failure.code, (this.deadLetterCodes.get(failure.code) ?? 0) + 1);
    tracker.outcome.deadLetters++;
    const error: Record<string, unknown> = { code: failure.code, message: failure.message };
    if (emitted > 0) {
      error.partial = true;
      error.eventsEmitted = emitted;
      error.message = `${failure.message}; the ${emitted} event(s) before the failure were emitted`;
    }
    const context = whereContext(where);
    sink.writeJson({ ...deadLetterRecord(options.deadletterTag, error, input, context), ...extra });
    log.warn("dead letter", {
      code: failure.code,
      message: error.message,
      line: lineNumber,
      ...(typeof extra.refusedCount === "number" ? { refusedCount: extra.refusedCount } : {}),
      ...(where !== undefined && "scheme" in where ? { object: describeRef(where) } : {}),
      ...context,
    });
  }
}

/** An object's coordinates without the message it came from (what a scan worker is handed, for --source-field). */
function coordinates(ref: ObjectRef): ObjectRef {
  return ref.scheme === "s3" ? { scheme: "s3", bucket: ref.bucket, key: ref.key } : ref;
}

async function* countBytes(source: AsyncIterable<Buffer>, add: (n: number) => void): AsyncGenerator<Buffer> {
  for await (const chunk of source) {
    add(chunk.length);
    yield chunk;
  }
}

/**
 * How long a digest waits for the objects started before it: long enough for a burst of log files to be read, short
 * enough that objects backing off (up to --retry-for) do not hold its message; its check fetches what is not there.
 */
const DIGEST_WAIT_MS = 30_000;

/** Resolves once every task has settled, or after `ms`. */
async function settledWithin(tasks: readonly Promise<void>[], ms: number): Promise<void> {
  if (tasks.length === 0) return;
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    Promise.allSettled(tasks),
    new Promise<void>((resolve) => {
      timer = setTimeout(resolve, ms);
      timer.unref();
    }),
  ]);
  clearTimeout(timer);
}

/** Stored bytes that objects read whole may hold while they wait for this thread, before new objects wait. */
const HELD_BYTES_MAX = 64 * 1024 * 1024;

/**
 * `--concurrency` counts objects being fetched. An object read whole gives its slot back as soon as its bytes are in
 * memory, so the next GET is on the wire while this thread inflates and scans: with many small objects behind S3's
 * latency, requests stay in flight instead of waiting for a burst of responses to be scanned one by one.
 */
class FetchSlots {
  private readonly waiting: (() => void)[] = [];

  constructor(private available: number) {}

  /** A held slot for one object. */
  async take(): Promise<FetchSlot> {
    await this.acquire();
    return new FetchSlot(this);
  }

  acquire(): Promise<void> {
    if (this.available > 0) {
      this.available--;
      return Promise.resolve();
    }
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  release(): void {
    const next = this.waiting.shift();
    if (next === undefined) this.available++;
    else next();
  }
}

/** One object's fetch slot: held while its bytes are being fetched, freed once (again after a retake). */
class FetchSlot {
  private held = true;

  constructor(private readonly slots: FetchSlots) {}

  /** Gives the slot back; does nothing when it is not held. */
  free(): void {
    if (!this.held) return;
    this.held = false;
    this.slots.release();
  }

  /** Holds a slot again (another attempt at the object), waiting for one if none is free. */
  async retake(): Promise<void> {
    if (this.held) return;
    await this.slots.acquire();
    this.held = true;
  }
}

/** Resolves in the event loop's check phase, after pending I/O callbacks and process.nextTick work. */
function afterIo(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
