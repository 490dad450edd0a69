// The import command's work: finds the CloudTrail log files already stored (in S3, or in a directory) and runs each
// through the Filter as if a notification had named it, so events and dead-letter records are exactly the filter's.
//
// Listing runs ahead of the Filter (up to READ_AHEAD objects) so the progress line knows the total early. An object
// goes into the checkpoint once its output is written and only if it was read whole: one that was dead-lettered or
// abandoned at shutdown is read again by the next run (duplicates rather than loss).
import { fileURLToPath, pathToFileURL } from "node:url";
import type { Line } from "../input/lines.js";
import { parseDigestName } from "../integrity/digest.js";
import type { Checkpoint } from "../listing/checkpoint.js";
import { type Lister, type ObjectEntry, parseLogName, type Selection, walk } from "../listing/layout.js";
import { emptyCounts } from "../listing/progress.js";
import { emptyFilterCounts, type RunCounts } from "../model/counts.js";
import { type BucketName, isInvalid, parseBucketName, refusalMessage } from "../model/names.js";
import type { Logger } from "../shared/log.js";
import { Filter, type FilterDeps, type RecordOutcome } from "./filter.js";

export type ImportSource = { scheme: "s3"; bucket: BucketName; prefix: string } | { scheme: "file"; prefix: string };

/** Objects listed but not yet handed to the Filter, at most. */
export const READ_AHEAD = 100_000;

const folder = (prefix: string): string => (prefix === "" || prefix.endsWith("/") ? prefix : `${prefix}/`);

/**
 * Reads the command's argument: `s3://bucket[/prefix]` or `file:///directory`. The prefix is a folder: a missing
 * trailing "/" is added, so `AWSLogs` does not also match `AWSLogsOld/`. A directory becomes the prefix of keys that
 * are paths below `/`. Returns what is wrong as a string.
 */
export function parseSource(value: string): ImportSource | string {
  if (value.startsWith("s3://")) {
    const rest = value.slice(5);
    const slash = rest.indexOf("/");
    const bucket = slash === -1 ? rest : rest.slice(0, slash);
    if (bucket === "") return "expected s3://bucket/prefix";
    const parsed = parseBucketName(bucket);
    if (isInvalid(parsed)) return refusalMessage("the bucket", bucket, parsed);
    return { scheme: "s3", bucket: parsed, prefix: folder(slash === -1 ? "" : rest.slice(slash + 1)) };
  }
  if (value.startsWith("file:")) {
    let path: string;
    try {
      path = fileURLToPath(value);
    } catch (error) {
      return `expected file:///absolute/directory (${(error as Error).message})`;
    }
    return { scheme: "file", prefix: folder(path.replace(/^\/+/, "")) };
  }
  return "expected s3://bucket/prefix or file:///directory";
}

/** The input line the Filter reads for a listed key. */
export function urlOf(source: ImportSource, key: string): string {
  return source.scheme === "s3" ? `s3://${source.bucket}/${key}` : pathToFileURL(`/${key}`).href;
}

export interface ImportDeps {
  source: ImportSource;
  selection: Selection;
  /** Builds the lister; it should give up its requests when `signal` aborts (at shutdown). */
  lister: (signal: AbortSignal) => Lister & { readonly requests?: number };
  log: Logger;
  checkpoint?: Checkpoint;
  /**
   * --verify-integrity: digest files are listed too, and handed to the Filter after the log files they list
   * (HeldDigests), so that their hashes are remembered by then (a digest first would make the check fetch each of its
   * log files again).
   */
  digests?: boolean;
}

/** A file the listing found, with the input line (URL) the Filter reads for it. */
export interface ListedObject extends ObjectEntry {
  url: string;
}

export interface ListSummary {
  objects: number;
  bytes: number;
  /** Skipped because the checkpoint has them. */
  alreadyDone: number;
  listRequests: number | undefined;
  interrupted: boolean;
}

/** Wakes one waiter; a wake with nobody waiting is dropped (waiters re-check their condition). */
class Wakeup {
  private resolve: (() => void) | undefined;
  wait(): Promise<void> {
    return new Promise((resolve) => {
      this.resolve = resolve;
    });
  }
  wake(): void {
    const resolve = this.resolve;
    this.resolve = undefined;
    resolve?.();
  }
}

export class Importer {
  /** Live counts, for the progress report (listing/progress.ts) and, under `import --enqueue`, the Enqueuer's. */
  readonly progress = emptyCounts();
  private readonly listingAbort = new AbortController();
  private readonly lister: Lister & { readonly requests?: number };
  private stopping = false;
  private interrupted = false;
  private filter: Filter | undefined;
  private alreadyDone = 0;
  private readonly producerWake = new Wakeup();

  constructor(private readonly deps: ImportDeps) {
    this.lister = deps.lister(this.listingAbort.signal);
  }

  /** Stops listing and taking objects; objects in flight go on until they end or `abortInFlight` is called. */
  stop(): void {
    this.interrupted = true;
    this.halt();
  }

  private halt(): void {
    this.stopping = true;
    this.listingAbort.abort();
    this.producerWake.wake();
    this.filter?.stop();
  }

  /**
   * The counts so far, for the summary: the Filter's (zero before `run` has made it), the files listed, and how the
   * listing went.
   */
  counts(): RunCounts {
    const filter = this.filter?.counts();
    return {
      filter: filter?.filter ?? emptyFilterCounts(),
      counters: { listed: this.progress.listed },
      levels: {
        ...filter?.levels,
        alreadyDone: this.alreadyDone,
        listRequests: this.lister.requests,
        interrupted: this.interrupted,
      },
      newestEventTime: filter?.newestEventTime ?? null,
    };
  }

  /** The Filter once `run` has made it (--metrics-listen reads its counts). */
  get running(): Filter | undefined {
    return this.filter;
  }

  abortInFlight(): void {
    this.stop();
    this.filter?.abortInFlight();
  }

  /** The objects to import, in listing order, without those the checkpoint has. */
  private async *entries(): AsyncGenerator<ListedObject> {
    const { source, selection, log, checkpoint } = this.deps;
    const fallback = (): void =>
      log.warn("no AWSLogs/ folder found under the prefix: listing every key, keeping CloudTrail log file names", {
        prefix: source.prefix,
      });
    const kinds =
      this.deps.digests === true && source.scheme === "s3"
        ? (await import("../integrity/verify.js")).VERIFY_KINDS
        : undefined;
    const digests = new HeldDigests();
    for await (const page of walk(this.lister, source.prefix, selection, fallback, kinds)) {
      for (const entry of page) {
        if (/[\r\n]/.test(entry.key)) {
          log.warn("skipped", { reason: "the key has a line break", key: entry.key });
          continue;
        }
        const url = urlOf(source, entry.key);
        if (checkpoint?.has(url)) {
          this.alreadyDone++;
          continue;
        }
        if (kinds === undefined) {
          yield { ...entry, url };
          continue;
        }
        const digest = parseDigestName(entry.key);
        if (digest !== undefined) {
          digests.hold({ ...entry, url }, `${digest.account} ${digest.region}`, digest.day);
          continue;
        }
        const logName = parseLogName(entry.key);
        if (logName !== undefined) yield* digests.before(`${logName.account} ${logName.region}`, logName.day);
        yield { ...entry, url };
      }
      if (this.stopping) return;
    }
    yield* digests.all();
  }

  /**
   * Hands each listed object to `take` (`--list` writes its URL, `--enqueue` puts it in a message), waiting for
   * it, and counts them.
   */
  async list(take: (object: ListedObject) => void | Promise<void>): Promise<ListSummary> {
    let objects = 0;
    let bytes = 0;
    try {
      for await (const entry of this.entries()) {
        await take(entry);
        objects++;
        bytes += entry.size;
      }
    } catch (error) {
      if (!this.interrupted) throw error;
    }
    return {
      objects,
      bytes,
      alreadyDone: this.alreadyDone,
      listRequests: this.lister.requests,
      interrupted: this.interrupted,
    };
  }

  /**
   * Imports every listed object through a Filter built from `filterDeps`. The counts are `counts()`'s; what only the
   * end says is `listingError`: the listing failed, the import is incomplete (objects listed before it were imported).
   */
  async run(filterDeps: Omit<FilterDeps, "hooks">): Promise<{ listingError?: Error }> {
    const counts = this.progress;
    const queue: (ListedObject | undefined)[] = [];
    let head = 0;
    let listingDone = false;
    let listingError: Error | undefined;
    const consumerWake = new Wakeup();

    const producer = (async () => {
      try {
        for await (const entry of this.entries()) {
          queue.push(entry);
          counts.listed++;
          counts.bytesListed += entry.size;
          consumerWake.wake();
          while (queue.length - head >= READ_AHEAD && !this.stopping) await this.producerWake.wait();
          if (this.stopping) break;
        }
        counts.listingDone = !this.stopping;
      } catch (error) {
        if (!this.stopping) listingError = error instanceof Error ? error : new Error(String(error));
      } finally {
        listingDone = true;
        consumerWake.wake();
      }
    })();

    const inFlight = new Map<number, ListedObject>();
    const producerWake = this.producerWake;
    async function* lines(): AsyncGenerator<Line> {
      let number = 0;
      for (;;) {
        const entry = queue[head];
        if (entry !== undefined) {
          queue[head++] = undefined; // let it go
          if (head > 4096 && head * 2 > queue.length) {
            queue.splice(0, head);
            head = 0;
          }
          producerWake.wake();
          number++;
          inFlight.set(number, entry);
          yield { kind: "line", number, text: entry.url };
          continue;
        }
        if (listingDone) return;
        await consumerWake.wait();
      }
    }

    const { checkpoint } = this.deps;
    const recordDone = (outcome: RecordOutcome): void => {
      const entry = inFlight.get(outcome.line.number);
      inFlight.delete(outcome.line.number);
      if (entry === undefined || outcome.abandoned) return;
      counts.objects++;
      counts.bytes += entry.size;
      counts.events += outcome.events;
      counts.deadLetters += outcome.deadLetters;
      if (outcome.deadLetters === 0) checkpoint?.add(entry.url);
    };

    this.filter = new Filter({ ...filterDeps, hooks: { recordDone } });
    if (this.stopping) this.filter.stop();
    await this.filter.run(lines());
    this.halt(); // the Filter has ended (input done, or stopped): the listing has nothing left to feed
    await producer;
    return listingError === undefined ? {} : { listingError };
  }
}

/**
 * --verify-integrity: digest files held back until the log files they list are handed over (S3 lists an account's
 * `CloudTrail-Digest/` before its `CloudTrail/`), so that their hashes are remembered when the digests come. A digest
 * filed under day D lists log files of days D-1 and D (the last hour's digest is filed under the next day), so once
 * the log files of an account and region reach day D + 2 (or the next account and region), the digests of day D and
 * before go. (The tests' s3rver lists in S3's byte order too: test/support/s3rver-listing.ts.) Held at most: an
 * account's digests over the range (one an hour per region and trail; a year of 17 regions is about 150,000 entries
 * of a few hundred bytes).
 */
export class HeldDigests {
  /** Per `account region`: digests in listing order (by day). */
  private readonly held = new Map<string, { entry: ListedObject; day: string }[]>();
  private current: string | undefined;

  hold(entry: ListedObject, group: string, day: string): void {
    const list = this.held.get(group);
    if (list === undefined) this.held.set(group, [{ entry, day }]);
    else list.push({ entry, day });
  }

  /** The digests to hand over before a log file of `group` and `day`. */
  *before(group: string, day: string): Generator<ListedObject> {
    if (this.current !== undefined && this.current !== group) yield* this.take(this.current, () => true);
    this.current = group;
    yield* this.take(group, (digestDay) => nextDay(digestDay) < day);
  }

  *all(): Generator<ListedObject> {
    for (const group of [...this.held.keys()]) yield* this.take(group, () => true);
  }

  private *take(group: string, due: (day: string) => boolean): Generator<ListedObject> {
    const list = this.held.get(group);
    if (list === undefined) return;
    let n = 0;
    while (n < list.length && due((list[n] as { day: string }).day)) n++;
    const out = list.splice(0, n);
    if (list.length === 0) this.held.delete(group);
    for (const { entry } of out) yield entry;
  }
}

/** `YYYY-MM-DD` plus one day. */
function nextDay(day: string): string {
  return new Date(Date.parse(`${day}T00:00:00Z`) + 86_400_000).toISOString().slice(0, 10);
}
