// Runs the filter: input lines in, events and dead-letter records out. Owns concurrency, per-record accounting,
// the dead-letter contract and shutdown; every stage below it is handed in.
//
// Policy: every input record ends as events, as a logged deliberate skip, or as one dead-letter record per failed
// object plus a log line. Work abandoned at shutdown is logged with its input so nothing disappears silently.
import { deadLetterRecord, redactReceiptHandles } from "./dead-letter.js";
import { FetchError, type FetchErrorCode, type ObjectSource, type OpenedObject } from "./fetch.js";
import { eventWriter, type FormatOptions, scannedFields } from "./format.js";
import { InflateError, type InflateErrorCode, inflateStored, readStored, type Stored } from "./inflate.js";
import type { Line } from "./input.js";
import type { Logger } from "./log.js";
import type { BucketName } from "./names.js";
import { NewestTime } from "./newest-time.js";
import type { Refusal } from "./notifications.js";
import { describeRef, type Interpreted, interpretLine, type ObjectRef, type RecordErrorCode } from "./records.js";
import { RetryPolicy, sleep } from "./retry.js";
import { RecordsScanner, ScanError, type ScanErrorCode } from "./scan.js";
import type { ScanPool } from "./scan-pool.js";
import type { Sink } from "./sink.js";

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
}

export interface Summary {
  records: number;
  objects: number;
  events: number;
  skipped: number;
  deadLetters: number;
  /** Attempts made again after a transient failure (each one counts). */
  retries: number;
  abandoned: number;
  leftToSqs: number;
  bytesIn: number;
  bytesInflated: number;
  bytesOut: number;
}

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
}

/** An input record whose objects are still being worked on. */
interface Tracker {
  pending: number;
  outcome: RecordOutcome;
}

/**
 * Every `error.code` a dead-letter record can carry: what a record, a reference, a fetch, the gzip layers and the scan
 * can fail with, `BucketNotAllowed` (--buckets) and `InternalError` (a bug). README "Error codes" lists exactly these
 * (test/error-codes.test.ts holds the two together).
 */
export type DeadLetterCode =
  | RecordErrorCode
  | Refusal["code"]
  | "BucketNotAllowed"
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

function refContext(ref: ObjectRef): Record<string, string> {
  return ref.scheme === "s3" ? { bucket: ref.bucket, key: ref.key } : { file: ref.path };
}

/** Where a dead letter's object is: a whole ref, the parts of a refused reference that parsed, or nothing. */
function whereContext(where: ObjectRef | Refusal | undefined): Record<string, string> {
  if (where === undefined) return {};
  if ("scheme" in where) return refContext(where);
  return {
    ...(where.bucket === undefined ? {} : { bucket: where.bucket }),
    ...(where.key === undefined ? {} : { key: where.key }),
  };
}

export class Filter {
  private readonly abort = new AbortController();
  private stopping = false;
  /** Ends the wait for the next record when the filter stops (set only while `run` waits for one). */
  private wake: (() => void) | undefined;
  private readonly summary: Summary = {
    records: 0,
    objects: 0,
    events: 0,
    skipped: 0,
    deadLetters: 0,
    retries: 0,
    abandoned: 0,
    leftToSqs: 0,
    bytesIn: 0,
    bytesInflated: 0,
    bytesOut: 0,
  };
  /** The newest eventTime written, for the stats line's lag. */
  readonly newest = new NewestTime();

  private readonly retry: RetryPolicy;
  private readonly fetchSlots: FetchSlots;
  /** Stored bytes of objects read whole and not yet finished (they no longer hold a fetch slot). */
  private heldBytes = 0;

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
          ? import("./scan-pool.js").then(
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
  }

  /** The counts so far (the summary `run` returns at the end), for the periodic stats line. */
  counts(): Summary {
    return { ...this.summary, bytesOut: this.deps.sink.bytesOut };
  }

  async run(lines: AsyncIterable<Line>): Promise<Summary> {
    const { options, log } = this.deps;
    const running = new Set<Promise<void>>();
    const iterator = lines[Symbol.asyncIterator]();
    for (;;) {
      const next = this.stopping ? STOP : await this.nextOrStop(iterator);
      if (next === STOP || next.done === true) break;
      const line = next.value;
      this.summary.records++;
      const record = this.interpret(line);
      const tracker: Tracker = {
        pending: 1, // held until every object is started, so the record cannot finish early
        outcome: { line, record, events: 0, deadLetters: 0, abandoned: false, retryLater: false },
      };
      if (record.kind === "error") {
        this.deadLetter(tracker, { code: record.code, message: record.message }, undefined);
      } else {
        for (const skip of record.skips) {
          this.summary.skipped++;
          log.info("skipped", { reason: skip.reason, bucket: skip.bucket, key: skip.key, line: line.number });
        }
        // A message of a receive-message response that names no object: its dead letter holds that message.
        for (const failure of record.failed ?? []) this.deadLetter(tracker, failure, undefined, 0, failure.input);
        // No request is made for a reference that did not parse, nor for an object outside --buckets.
        for (const refusal of record.refused) this.deadLetter(tracker, refusal, refusal);
        for (const ref of record.refs) {
          if (ref.scheme === "s3" && options.buckets !== undefined && !options.buckets.has(ref.bucket)) {
            const message = `the bucket ${JSON.stringify(ref.bucket)} is not one of --buckets`;
            this.deadLetter(tracker, { code: "BucketNotAllowed", message }, ref);
            continue;
          }
          // Objects whose bytes are all in memory no longer count against --concurrency, but at most as many
          // again (and HELD_BYTES_MAX of them) may wait for this thread, and none starts while stdout is backed up.
          while (running.size >= 2 * options.concurrency || this.heldBytes > HELD_BYTES_MAX) {
            await Promise.race(running);
          }
          await this.deps.sink.ready();
          const slot = await this.fetchSlots.take();
          if (this.stopping) {
            slot.free();
            this.abandon(ref, tracker, "shutdown before the object was started");
            continue;
          }
          tracker.pending++;
          const task = this.processObject(ref, tracker, slot).finally(() => {
            slot.free();
            running.delete(task);
            this.release(tracker);
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
        log.debug("object done", { ...refContext(ref), events: seen, attempts: attempt });
        return;
      } catch (error) {
        written = Math.max(written, seen);
        if (signal.aborted) {
          this.abandon(ref, tracker, `shutdown after ${written} of its events were written`);
          return;
        }
        const failure = failureOf(error);
        if (failure === undefined) {
          // Not a classified failure: a bug. Still one dead-letter record, never a crash.
          log.error("unexpected error", {
            ...refContext(ref),
            error: error instanceof Error ? error.stack : String(error),
          });
          this.deadLetter(tracker, { code: "InternalError", message: String(error) }, ref, written);
          return;
        }
        if (!failure.transient) {
          this.deadLetter(tracker, failure, ref, written);
          return;
        }
        if (failure.throttled) retry.throttled();
        if (attempt === 1) firstFailureAt = retry.now();
        const delay = this.stopping ? undefined : retry.delayAfter(attempt, firstFailureAt);
        if (delay === undefined) {
          if (this.stopping) {
            this.abandon(ref, tracker, `shutdown while retrying: ${failure.message}`);
          } else if (options.leaveTransientToSqs && tracker.outcome.record.sqs !== undefined) {
            // The SQS message is not deleted, so SQS delivers it again (its redrive policy bounds how often).
            tracker.outcome.retryLater = true;
            this.summary.leftToSqs++;
            log.warn("left to SQS redelivery", {
              ...refContext(ref),
              code: failure.code,
              message: failure.message,
              attempts: attempt,
            });
          } else {
            this.deadLetter(
              tracker,
              { ...failure, message: `${failure.message} (gave up after ${attempt} attempts)` },
              ref,
              written,
            );
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
        await sleep(delay, signal);
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
        const result = await pool.run(stored.whole, skip, options.maxObjectBytes, ref);
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
          await sink.ready();
          return seen;
        }
      }
      for await (const chunk of inflateStored(stored, { maxBytes: options.maxObjectBytes })) {
        summary.bytesInflated += chunk.length;
        scanner.push(chunk);
        progress(seen);
        await sink.ready();
        if (this.abort.signal.aborted) throw new Error("aborted");
      }
      scanner.end();
      return seen;
    } finally {
      this.heldBytes -= held;
      progress(seen);
    }
  }

  private abandon(ref: ObjectRef, tracker: Tracker, why: string): void {
    this.summary.abandoned++;
    tracker.outcome.abandoned = true;
    const input = redactReceiptHandles(tracker.outcome.record.input);
    this.deps.log.warn("abandoned", { ...refContext(ref), why, input });
  }

  private deadLetter(
    tracker: Tracker,
    failure: Pick<Failure, "code" | "message">,
    where: ObjectRef | Refusal | undefined,
    emitted = 0,
    input: unknown = tracker.outcome.record.input,
  ): void {
    const { sink, log, options } = this.deps;
    const lineNumber = tracker.outcome.line.number;
    this.summary.deadLetters++;
    tracker.outcome.deadLetters++;
    const error: Record<string, unknown> = { code: failure.code, message: failure.message };
    if (emitted > 0) {
      error.partial = true;
      error.eventsEmitted = emitted;
      error.message = `${failure.message}; the ${emitted} event(s) before the failure were emitted`;
    }
    const context = whereContext(where);
    sink.writeJson(deadLetterRecord(options.deadletterTag, error, input, context));
    log.warn("dead letter", {
      code: failure.code,
      message: error.message,
      line: lineNumber,
      ...(where !== undefined && "scheme" in where ? { object: describeRef(where) } : {}),
      ...context,
    });
  }
}

async function* countBytes(source: AsyncIterable<Buffer>, add: (n: number) => void): AsyncGenerator<Buffer> {
  for await (const chunk of source) {
    add(chunk.length);
    yield chunk;
  }
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
