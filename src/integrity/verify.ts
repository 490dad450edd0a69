// The verify command's work: lists the digest files and log files under a prefix, checks each digest (location,
// signature, key), links the chains, then hashes each log file a valid digest lists, and reports one line per digest
// and per log file (`cloudtrail.integrity`), and the log files no digest lists.
//
// Phases, each with --concurrency GETs in flight: list; digests; the links to previous digests outside the listing;
// log files. Digests come first because a log file's verdict depends on its digest's, and whether a digest is valid
// depends on the next one in its chain; digests are few (one an hour per account, region and trail) next to log files.
import { createHash } from "node:crypto";
import { type FileHandle, open, readFile } from "node:fs/promises";
import { InflateError, inflate } from "../decode/inflate.js";
import { classifyS3Error, FetchError, readBody } from "../fetch/fetch.js";
import type { S3Getter } from "../fetch/s3-get.js";
import type { Checkpoint } from "../listing/checkpoint.js";
import { type Kinds, type Lister, type ObjectEntry, parseLogName, type Selection, walk } from "../listing/layout.js";
import { emptyCounts } from "../listing/progress.js";
import { type BucketName, isInvalid, type ObjectKey, parseObjectKey } from "../model/names.js";
import type { Logger } from "../shared/log.js";
import { type RetryPolicy, sleep } from "../shared/retry.js";
import {
  type CheckedDigest,
  coverage,
  judgedUnlisted,
  linkChains,
  logFileTime,
  objectId,
  type Reason,
  type Status,
} from "./chain.js";
import { DIGEST_MAX_BYTES, type Digest, type DigestName, parseDigest, parseDigestName, refused } from "./digest.js";
import type { PublicKeys } from "./public-keys.js";
import { parseSignature, SIGNATURE_ALGORITHM, signingString, verifySignature } from "./signature.js";

export const INTEGRITY_TAG = "cloudtrail.integrity";

/** The largest inflated log file hashed (import's --max-object-bytes default): a gzip bomb stops here. */
export const LOG_FILE_MAX_BYTES = 4 * 2 ** 30;

/** Characters of a value from a file quoted in a `detail`, at most. */
const QUOTED_MAX = 200;
const quoted = (value: string): string =>
  JSON.stringify(value.length > QUOTED_MAX ? `${value.slice(0, QUOTED_MAX)}…` : value);

/** What `verify` walks: log files (as import does) and digest files. */
export const VERIFY_KINDS: Kinds = {
  types: new Set(["CloudTrail", "CloudTrail-Insight", "CloudTrail-Digest"]),
  keep: (key) => !key.endsWith("/") && (parseLogName(key) !== undefined || parseDigestName(key) !== undefined),
  nameOf: (key) => parseLogName(key) ?? parseDigestName(key),
};

/** One verdict, one line. */
export interface IntegrityLine {
  _tag: typeof INTEGRITY_TAG;
  kind: "digest" | "logFile";
  /** Where CloudTrail wrote the file (absent for a file of a local copy that no digest names). */
  s3Bucket?: string;
  s3Object: string;
  /** file://: where the copy holds it. */
  file?: string;
  status: Status;
  reason?: Reason;
  detail?: string;
  account?: string;
  region?: string;
  trail?: string;
  backfill?: boolean;
  digestStartTime?: string;
  digestEndTime?: string;
  /** For a log file: the digest that lists it. */
  digestS3Object?: string;
}

/** A digest's line. */
export function digestLine(digest: CheckedDigest, places: Places = S3_PLACES): IntegrityLine {
  const content = digest.digest;
  const file = places.file(digest.key);
  return {
    _tag: INTEGRITY_TAG,
    kind: "digest",
    ...(file === undefined
      ? { s3Bucket: digest.bucket, s3Object: digest.key }
      : content === undefined
        ? { s3Object: digest.key, file }
        : { s3Bucket: content.digestS3Bucket, s3Object: content.digestS3Object, file }),
    status: digest.status,
    ...(digest.reason === undefined ? {} : { reason: digest.reason }),
    ...(digest.detail === undefined ? {} : { detail: digest.detail }),
    account: digest.name.account,
    region: digest.name.region,
    trail: digest.name.trail,
    backfill: digest.name.backfill,
    ...(content === undefined
      ? {}
      : { digestStartTime: content.digestStartTime, digestEndTime: content.digestEndTime }),
  };
}

/** A line for a log file that `digest` lists (`named` as the digest names it, read `at`). */
export function logFileLine(
  named: { bucket: BucketName; key: ObjectKey },
  at: { bucket: BucketName; key: ObjectKey },
  digest: CheckedDigest,
  content: Digest,
  status: Status,
  why: { reason?: Reason; detail?: string },
  places: Places = S3_PLACES,
): IntegrityLine {
  const file = places.file(at.key);
  return {
    _tag: INTEGRITY_TAG,
    kind: "logFile",
    s3Bucket: named.bucket,
    s3Object: named.key,
    ...(file === undefined ? {} : { file }),
    status,
    ...why,
    account: digest.name.account,
    region: digest.name.region,
    trail: digest.name.trail,
    digestStartTime: content.digestStartTime,
    digestEndTime: content.digestEndTime,
    digestS3Object: digest.key,
  };
}

/** An object's bytes and its user metadata (`x-amz-meta-*` without the prefix, lowercase). */
export interface StoredObject {
  body: AsyncIterable<Buffer>;
  metadata: Record<string, string>;
}

/** Where objects are read from. `read` throws FetchError (NotFound, AccessDenied, FetchFailed) or `use`'s error. */
export interface ObjectStore {
  read<T>(bucket: BucketName, key: ObjectKey, use: (object: StoredObject) => Promise<T>): Promise<T>;
}

/** GETs through S3Getter (regions, redirects, fresh credentials), retrying transient failures as import does. */
export class S3Store implements ObjectStore {
  /** GET requests sent (retries included). */
  requests = 0;

  constructor(
    private readonly getter: () => Promise<S3Getter>,
    private readonly retry: RetryPolicy,
    private readonly signal: AbortSignal,
  ) {}

  async read<T>(bucket: BucketName, key: ObjectKey, use: (object: StoredObject) => Promise<T>): Promise<T> {
    const where = `s3://${bucket}/${key}`;
    let firstFailureAt = 0;
    for (let attempt = 1; ; attempt++) {
      await sleep(this.retry.pauseMs(), this.signal);
      this.requests++;
      let failure: FetchError;
      try {
        const object = await (await this.getter()).get(bucket, key, undefined, this.signal);
        const result = await use({ body: readBody(object.body, where, undefined), metadata: object.metadata ?? {} });
        this.retry.succeeded();
        return result;
      } catch (error) {
        if (error instanceof InflateError) throw error; // the content's fault: the same bytes come again
        failure = classifyS3Error(error, where);
      }
      if (this.signal.aborted || !failure.transient) throw failure;
      if (failure.throttled) this.retry.throttled();
      if (attempt === 1) firstFailureAt = this.retry.now();
      const delay = this.retry.delayAfter(attempt, firstFailureAt);
      if (delay === undefined) throw failure;
      await sleep(delay, this.signal);
    }
  }
}

/**
 * Where the objects digests name are read. In S3, where they are named. In a local copy (file://), the keys are
 * paths below `/`, and an object CloudTrail named `PREFIX/AWSLogs/REST` is read at the copy's `…/AWSLogs/REST` next
 * to the digest that names it (whatever of the trail's prefix the copy kept).
 */
export interface Places {
  locate(bucket: BucketName, key: ObjectKey, near: ObjectKey): { bucket: BucketName; key: ObjectKey };
  /** Whether the digest read at `bucket`/`key` is where it says it was written. */
  isAt(digest: Digest, bucket: BucketName, key: ObjectKey): boolean;
  /** The local path of an object read at `key` (file:// only), for the lines' `file`. */
  file(key: ObjectKey): string | undefined;
}

export const S3_PLACES: Places = {
  locate: (bucket, key) => ({ bucket, key }),
  isAt: (digest, bucket, key) => digest.digestS3Bucket === bucket && digest.digestS3Object === key,
  file: () => undefined,
};

/** The key from its last `AWSLogs/` segment on, and what comes before it; undefined when it has none. */
function split(key: string): { root: string; tail: string } | undefined {
  const segments = key.split("/");
  const at = segments.lastIndexOf("AWSLogs");
  if (at === -1) return undefined;
  return { root: segments.slice(0, at).join("/"), tail: segments.slice(at).join("/") };
}

/** `copy`: the name the copy's objects are read under (VerifyDeps.bucket). */
export const localPlaces = (copy: BucketName): Places => ({
  locate: (bucket, key, near) => {
    const named = split(key);
    const here = split(near);
    if (named === undefined || here === undefined) return { bucket, key };
    const local = parseObjectKey(here.root === "" ? named.tail : `${here.root}/${named.tail}`);
    return isInvalid(local) ? { bucket, key } : { bucket: copy, key: local };
  },
  isAt: (digest, _bucket, key) => {
    const named = split(digest.digestS3Object);
    return named !== undefined && named.tail === split(key)?.tail;
  },
  file: (key) => `/${key}`,
});

/**
 * A local copy: the keys are paths below `/`. A digest's signature is in `KEY.signature` beside it (hex, as
 * `aws s3api head-object … --query Metadata.signature --output text` prints it): copies made with `aws s3 sync` or
 * `aws s3 cp` keep no metadata.
 */
export class FileStore implements ObjectStore {
  async read<T>(_bucket: BucketName, key: ObjectKey, use: (object: StoredObject) => Promise<T>): Promise<T> {
    const path = `/${key}`;
    let handle: FileHandle;
    try {
      handle = await open(path, "r");
      if (!(await handle.stat()).isFile()) {
        await handle.close();
        throw new FetchError("NotAFile", `Failed to read file://${path}: not a file`, false);
      }
    } catch (error) {
      if (error instanceof FetchError) throw error;
      const code = (error as NodeJS.ErrnoException).code;
      if (code === "ENOENT" || code === "ENOTDIR")
        throw new FetchError("NotFound", `Failed to read file://${path}: ${code}`, false);
      const kind = code === "EACCES" || code === "EPERM" ? "AccessDenied" : "FetchFailed";
      throw new FetchError(kind, `Failed to read file://${path}: ${code ?? String(error)}`, false);
    }
    const metadata: Record<string, string> = {};
    try {
      metadata.signature = (await readFile(`${path}.signature`, "utf8")).trim();
    } catch {
      // no sidecar: the digest is reported with no signature
    }
    try {
      return await use({ body: handle.createReadStream({ autoClose: false }), metadata });
    } finally {
      await handle.close();
    }
  }
}

/** ListPublicKeys failed: nothing can be judged without the keys, so the run stops (exit 1) instead of guessing. */
export class KeysUnavailable extends Error {
  override readonly name = "KeysUnavailable";
}

export interface VerifyDeps {
  /** The source's bucket (file://: a name of the copy's, reported nowhere). */
  bucket: BucketName;
  /** S3_PLACES, or localPlaces(bucket) for a copy. */
  places?: Places;
  prefix: string;
  selection: Selection;
  lister: Lister & { readonly requests?: number };
  store: ObjectStore;
  keys: PublicKeys;
  concurrency: number;
  /** Buckets log files may be read from (the source's, and --buckets); undefined: any (a local copy reads none). */
  allowedBuckets: ReadonlySet<string> | undefined;
  /** Writes a line (and waits while the output is full). */
  emit(line: IntegrityLine): void | Promise<void>;
  /** Resolves once the lines emitted so far are delivered (true), or never will be (false). */
  written(): Promise<boolean>;
  log: Logger;
  /** Log files found valid by an earlier, interrupted run are not read again. */
  checkpoint?: Checkpoint;
  signal: AbortSignal;
}

type StatusCounts = Record<Status, number>;
const noCounts = (): StatusCounts => ({ valid: 0, invalid: 0, missing: 0, unlisted: 0 });

export interface VerifySummary {
  digests: StatusCounts;
  logFiles: StatusCounts;
  /** Log files no digest lists, outside the span the digests of their account and region cover: not judged. */
  unjudged: number;
  /** Log files the checkpoint has (valid in an earlier run): not read again. */
  alreadyDone: number;
  listRequests: number | undefined;
  publicKeyCalls: number;
  /** True when any line is not `valid`. */
  problems: boolean;
  interrupted: boolean;
}

/** `YYYY-MM-DD` plus one day. */
function nextDay(day: string): string {
  return new Date(Date.parse(`${day}T00:00:00Z`) + 86_400_000).toISOString().slice(0, 10);
}

/** Runs `work` on each item, `concurrency` at a time, until done or `signal` aborts. */
async function pool<T>(
  items: readonly T[],
  concurrency: number,
  signal: AbortSignal,
  work: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length && !signal.aborted) await work(items[next++] as T);
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, worker));
}

interface ListedDigest extends ObjectEntry {
  name: DigestName;
}

interface ListedLog {
  bucket: BucketName;
  key: ObjectKey;
  account: string;
  region: string;
  deliveredMs: number;
}

interface LogCheck {
  /** As the digest names it, and where it is read. */
  named: { bucket: BucketName; key: ObjectKey };
  at: { bucket: BucketName; key: ObjectKey };
  hashValue: string;
  digest: CheckedDigest;
  content: Digest;
}

export class Verifier {
  /** Live counts, for the progress report (objects: files read; deadLetters: problems found). */
  readonly counts = emptyCounts();
  private readonly summary: VerifySummary = {
    digests: noCounts(),
    logFiles: noCounts(),
    unjudged: 0,
    alreadyDone: 0,
    listRequests: undefined,
    publicKeyCalls: 0,
    problems: false,
    interrupted: false,
  };

  private readonly places: Places;

  /** The verdicts so far, by kind and status: the very counts `run` returns (--metrics-listen reads them live). */
  get verdicts(): { readonly digest: Readonly<StatusCounts>; readonly logFile: Readonly<StatusCounts> } {
    return { digest: this.summary.digests, logFile: this.summary.logFiles };
  }

  constructor(private readonly deps: VerifyDeps) {
    this.places = deps.places ?? S3_PLACES;
  }

  async run(): Promise<VerifySummary> {
    const { deps, summary } = this;
    const { digests, logs } = await this.list();
    summary.listRequests = deps.lister.requests;

    const checked = new Map<string, CheckedDigest>();
    await pool(digests, deps.concurrency, deps.signal, async (entry) => {
      const result = await this.checkDigest(entry);
      checked.set(objectId(result.bucket, result.key), result);
      this.counts.objects++;
      this.counts.bytes += entry.size;
    });
    const extra = await this.checkOutsideLinks(checked);
    const ordered = [...checked.values(), ...extra].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    for (const digest of ordered) await this.emitDigest(digest);

    const listed = new Set<string>();
    const toRead: LogCheck[] = [];
    for (const digest of ordered) {
      const content = digest.digest;
      if (content === undefined) continue;
      for (const file of content.logFiles) {
        const named = { bucket: file.bucket, key: file.key };
        const at = this.places.locate(file.bucket, file.key, digest.key);
        const id = objectId(at.bucket, at.key);
        const once = `${id} ${file.hashValue}`;
        if (listed.has(once)) continue;
        listed.add(once);
        listed.add(id);
        if (digest.status !== "valid") {
          await this.emitLog(named, at, digest, content, "invalid", {
            reason: "not vouched for",
            detail: `its digest is ${digest.status} (${digest.reason ?? ""})`,
          });
        } else if (deps.allowedBuckets !== undefined && !deps.allowedBuckets.has(file.bucket)) {
          await this.emitLog(named, at, digest, content, "invalid", {
            reason: "not checked",
            detail: "the digest lists it in a bucket not among the source's and --buckets",
          });
        } else if (deps.checkpoint?.has(this.checkpointUrl(at))) {
          summary.alreadyDone++;
        } else {
          toRead.push({ named, at, hashValue: file.hashValue, digest, content });
        }
      }
    }
    await pool(toRead, deps.concurrency, deps.signal, (check) => this.checkLog(check));

    const spans = coverage(checked.values());
    for (const log of logs) {
      if (deps.signal.aborted) break;
      if (listed.has(objectId(log.bucket, log.key))) continue;
      if (!judgedUnlisted(log.account, log.region, log.deliveredMs, spans)) {
        summary.unjudged++;
        continue;
      }
      const file = this.places.file(log.key);
      await this.emitLine({
        _tag: INTEGRITY_TAG,
        kind: "logFile",
        ...(file === undefined ? { s3Bucket: log.bucket, s3Object: log.key } : { s3Object: log.key, file }),
        status: "unlisted",
        reason: "not listed",
        detail: "no digest lists it, though digests of its account and region cover its delivery time",
        account: log.account,
        region: log.region,
      });
    }
    summary.publicKeyCalls = deps.keys.calls;
    summary.interrupted = deps.signal.aborted;
    return summary;
  }

  /**
   * The digests and log files under the prefix. Digests are listed one day past --until: the digest of a day's last
   * hour is filed under the next day.
   */
  private async list(): Promise<{ digests: ListedDigest[]; logs: ListedLog[] }> {
    const { deps } = this;
    const { until } = deps.selection;
    const selection: Selection = { ...deps.selection, ...(until === undefined ? {} : { until: nextDay(until) }) };
    const digests: ListedDigest[] = [];
    const logs: ListedLog[] = [];
    const fallback = (): void =>
      deps.log.warn("no AWSLogs/ folder found under the prefix: listing every key, keeping CloudTrail file names", {
        prefix: deps.prefix,
      });
    for await (const page of walk(deps.lister, deps.prefix, selection, fallback, VERIFY_KINDS)) {
      for (const entry of page) {
        const key = parseObjectKey(entry.key);
        if (isInvalid(key)) {
          deps.log.warn("skipped", { reason: `the key ${key.reason}` });
          continue;
        }
        const name = parseDigestName(entry.key);
        if (name !== undefined) {
          digests.push({ ...entry, name });
        } else {
          const log = parseLogName(entry.key);
          const deliveredMs = logFileTime(entry.key);
          // Insight files (no delivery minute in this form) are checked when a digest lists them, never as unlisted.
          if (log === undefined || deliveredMs === undefined) continue;
          if (until !== undefined && log.day > until) continue;
          logs.push({ bucket: deps.bucket, key, account: log.account, region: log.region, deliveredMs });
        }
        this.counts.listed++;
        this.counts.bytesListed += entry.size;
      }
      if (deps.signal.aborted) break;
    }
    this.counts.listingDone = !deps.signal.aborted;
    return { digests, logs };
  }

  private checkDigest(entry: ListedDigest): Promise<CheckedDigest> {
    const { bucket, store, keys } = this.deps;
    return checkDigestObject(store, keys, this.places, bucket, entry.key as ObjectKey, entry.name); // parsed in list()
  }

  /** Reads the signature of each previous digest the listing did not find; returns lines for those that fail. */
  private async checkOutsideLinks(checked: ReadonlyMap<string, CheckedDigest>): Promise<CheckedDigest[]> {
    const { store, concurrency, signal } = this.deps;
    const lines: CheckedDigest[] = [];
    const locate = (bucket: BucketName, key: ObjectKey, near: CheckedDigest) =>
      this.places.locate(bucket, key, near.key);
    await pool(linkChains(checked, locate), concurrency, signal, async (link) => {
      const named = link.namedBy[0] as (typeof link.namedBy)[number];
      const name = parseDigestName(link.key) ?? named.digest.name;
      const line: CheckedDigest = {
        bucket: link.bucket,
        key: link.key,
        name,
        digest: undefined,
        signature: undefined,
        sha256: undefined,
        status: "valid",
      };
      try {
        line.signature = await store.read(link.bucket, link.key, async (object) => {
          for await (const _ of object.body); // digests are small; the connection is reused
          return parseSignature(object.metadata.signature);
        });
      } catch (error) {
        if (!(error instanceof FetchError)) throw error;
        lines.push(Object.assign(line, fetchVerdict(error, `named as the previous digest by ${named.digest.key}`)));
        return;
      }
      const other = link.namedBy.find((n) => n.signature !== line.signature);
      if (other !== undefined) {
        lines.push(
          Object.assign(line, {
            status: "invalid",
            reason: "chain broken",
            detail: `its signature is not the one the next digest ${other.digest.key} recorded`,
          }),
        );
      }
    });
    return lines;
  }

  private checkpointUrl(at: { bucket: BucketName; key: ObjectKey }): string {
    const file = this.places.file(at.key);
    return file === undefined ? `s3://${objectId(at.bucket, at.key)}` : `file://${file}`;
  }

  private async checkLog(check: LogCheck): Promise<void> {
    const { named, at, hashValue, digest, content } = check;
    let read: Awaited<ReturnType<typeof hashLogFile>>;
    try {
      read = await hashLogFile(this.deps.store, at.bucket, at.key, {
        maxBytes: LOG_FILE_MAX_BYTES,
        counted: (bytes) => {
          this.counts.bytes += bytes;
        },
      });
    } finally {
      this.counts.objects++;
    }
    if (!("sha256" in read)) {
      return this.emitLog(named, at, digest, content, read.status, { reason: read.reason, detail: read.detail });
    }
    if (read.sha256 !== hashValue) {
      return this.emitLog(named, at, digest, content, "invalid", {
        reason: "hash mismatch",
        detail: mismatchDetail(read.sha256, hashValue),
      });
    }
    await this.emitLog(named, at, digest, content, "valid", {});
    const { checkpoint } = this.deps;
    // Into the checkpoint once its line is out, as import does: a kill before that reads it again next time.
    if (checkpoint !== undefined) {
      void this.deps.written().then((written) => {
        if (written) checkpoint.add(this.checkpointUrl(at));
      });
    }
  }

  private emitDigest(digest: CheckedDigest): Promise<void> {
    return this.emitLine(digestLine(digest, this.places));
  }

  private emitLog(
    named: { bucket: BucketName; key: ObjectKey },
    at: { bucket: BucketName; key: ObjectKey },
    digest: CheckedDigest,
    content: Digest,
    status: Status,
    why: { reason?: Reason; detail?: string },
  ): Promise<void> {
    return this.emitLine(logFileLine(named, at, digest, content, status, why, this.places));
  }

  private async emitLine(line: IntegrityLine): Promise<void> {
    const counts = line.kind === "digest" ? this.summary.digests : this.summary.logFiles;
    counts[line.status]++;
    if (line.status !== "valid") {
      this.summary.problems = true;
      this.counts.deadLetters++;
    }
    this.counts.events++;
    await this.deps.emit(line);
  }
}

/** What a file is judged, when it is not a hash to compare. */
export interface Verdict {
  status: Status;
  reason: Reason;
  detail: string;
}

/**
 * A read that S3 (or the copy) refused, as the file's verdict: not there is `missing`, anything else (access denied,
 * still failing after --retry-for) is `not checked`. `by`, when the file was named by another (a previous digest):
 * said instead of the error for a missing one, before it otherwise.
 */
export function fetchVerdict(error: FetchError, by?: string): Verdict {
  if (error.code === "NotFound") return { status: "missing", reason: "not found", detail: by ?? error.message };
  return {
    status: "invalid",
    reason: "not checked",
    detail: by === undefined ? error.message : `${by}: ${error.message}`,
  };
}

/** The detail of a log file whose hash is not the one its digest recorded. */
export const mismatchDetail = (actual: string, recorded: string): string =>
  `its SHA-256 is ${actual}, the digest recorded ${recorded}`;

/**
 * A log file read and hashed (the SHA-256 of its inflated bytes, at most `maxBytes` of them), or its verdict when it
 * cannot be: bytes that do not inflate are a `hash mismatch`, a refused read is judged by fetchVerdict. With
 * `throwTransient`, a read still failing for a reason that may pass is thrown instead (the continuous check gives no
 * verdict then). `counted` sees the length of each inflated chunk.
 */
export async function hashLogFile(
  store: ObjectStore,
  bucket: BucketName,
  key: ObjectKey,
  options: { maxBytes: number; throwTransient?: boolean; counted?: (bytes: number) => void },
): Promise<{ sha256: string } | Verdict> {
  try {
    const sha256 = await store.read(bucket, key, async (object) => {
      const hash = createHash("sha256");
      for await (const chunk of inflate(object.body, { maxBytes: options.maxBytes })) {
        hash.update(chunk);
        options.counted?.(chunk.length);
      }
      return hash.digest("hex");
    });
    return { sha256 };
  } catch (error) {
    if (error instanceof InflateError) return { status: "invalid", reason: "hash mismatch", detail: error.message };
    if (!(error instanceof FetchError)) throw error;
    if (options.throwTransient === true && error.transient) throw error;
    return fetchVerdict(error);
  }
}

/**
 * One digest on its own: read, where it says it is, signed with the key CloudTrail published for its time. The chain
 * and its log files are the caller's. A read S3 refused is judged by fetchVerdict. Throws KeysUnavailable when
 * ListPublicKeys failed.
 */
async function checkDigestObject(
  store: ObjectStore,
  keys: PublicKeys,
  places: Places,
  bucket: BucketName,
  key: ObjectKey,
  name: DigestName,
): Promise<CheckedDigest> {
  let read: DigestRead | Verdict;
  try {
    read = await readDigest(store, bucket, key);
  } catch (error) {
    if (!(error instanceof FetchError)) throw error;
    read = fetchVerdict(error);
  }
  return judgeDigest(read, keys, places, bucket, key, name);
}

/** A digest's bytes as read, inflated, and their SHA-256. */
export interface DigestRead {
  text: string;
  sha256: string;
  metadata: Record<string, string>;
}

/**
 * A digest read whole (at most DIGEST_MAX_BYTES inflated), or `malformed` when its bytes do not inflate. Throws the
 * store's FetchError: whether a refused read is a verdict is the caller's (the continuous check's notified digest is
 * a dead letter instead, see ContinuousIntegrity.checkDigest).
 */
export async function readDigest(
  store: ObjectStore,
  bucket: BucketName,
  key: ObjectKey,
): Promise<DigestRead | Verdict> {
  try {
    return await store.read(bucket, key, async (object) => {
      const hash = createHash("sha256");
      const chunks: Buffer[] = [];
      for await (const chunk of inflate(object.body, { maxBytes: DIGEST_MAX_BYTES })) {
        hash.update(chunk);
        chunks.push(chunk);
      }
      return { text: Buffer.concat(chunks).toString("utf8"), sha256: hash.digest("hex"), metadata: object.metadata };
    });
  } catch (error) {
    if (error instanceof InflateError) return { status: "invalid", reason: "malformed", detail: error.message };
    throw error;
  }
}

/**
 * The digest read at `bucket`/`key` judged on its own (`read` a verdict already when it could not be read). `verify`
 * and the continuous check share this. Throws KeysUnavailable when ListPublicKeys failed.
 */
export async function judgeDigest(
  read: DigestRead | Verdict,
  keys: PublicKeys,
  places: Places,
  bucket: BucketName,
  key: ObjectKey,
  name: DigestName,
): Promise<CheckedDigest> {
  const result: CheckedDigest = {
    bucket,
    key,
    name,
    digest: undefined,
    signature: undefined,
    sha256: undefined,
    status: "valid",
  };
  const verdict = (status: Status, reason: Reason, detail: string): CheckedDigest =>
    Object.assign(result, { status, reason, detail });
  if ("status" in read) return verdict(read.status, read.reason, read.detail);
  result.sha256 = read.sha256;
  result.signature = parseSignature(read.metadata.signature);
  const digest = parseDigest(read.text);
  if (refused(digest)) return verdict("invalid", "malformed", `the digest ${digest.reason}`);
  result.digest = digest;

  if (!places.isAt(digest, bucket, key)) {
    return verdict("invalid", "moved", `it names ${quoted(`s3://${digest.digestS3Bucket}/${digest.digestS3Object}`)}`);
  }
  const metadataAlgorithm = read.metadata["signature-algorithm"];
  if (
    digest.signatureAlgorithm !== SIGNATURE_ALGORITHM ||
    (metadataAlgorithm !== undefined && metadataAlgorithm !== SIGNATURE_ALGORITHM)
  ) {
    const named = quoted(metadataAlgorithm ?? digest.signatureAlgorithm);
    return verdict("invalid", "bad signature", `the algorithm ${named} is not ${SIGNATURE_ALGORITHM}`);
  }
  if (result.signature === undefined) {
    return verdict(
      "invalid",
      "bad signature",
      "no hex signature (x-amz-meta-signature; KEY.signature beside a local copy)",
    );
  }
  let lookup: Awaited<ReturnType<PublicKeys["find"]>>;
  try {
    lookup = await keys.find(name.region, name.homeRegion, digest.publicKeyFingerprint, digest.endMs);
  } catch (error) {
    const why = error instanceof Error ? error.name : String(error);
    throw new KeysUnavailable(`ListPublicKeys failed in ${name.region}: ${why}`);
  }
  if ("detail" in lookup) return verdict("invalid", "unknown key", lookup.detail);
  if (!verifySignature(signingString(digest, read.sha256), result.signature, lookup.key)) {
    return verdict("invalid", "bad signature", "the signature does not match the digest's content and place");
  }
  return result;
}
