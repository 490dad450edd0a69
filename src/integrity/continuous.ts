// Log-file integrity checked as the logs flow (--verify-integrity): the runner hands in the SHA-256 of each log file
// it read (hashed from the inflated bytes on the way) and each digest file that reaches it; a digest is checked as
// `verify` checks one (verify.ts's readDigest and judgeDigest, chain.ts's linkChains, the same lines), against the
// remembered hashes, and whatever is not remembered is fetched and hashed then. So the verdict does not depend on the
// order things arrive in: a digest before its log files, after a restart, or whose previous digest never came through
// this process, is judged as `verify` would judge it, with more GETs.
//
// Policy: every digest gets a line; a log file gets one only when it is not valid (the events are its good news).
// A listed log file is fetched only when its digest is valid (its list is then CloudTrail's word) and its bucket is
// allowed (--buckets), so a planted digest cannot make the filter read anything.
import { createHash } from "node:crypto";
import { InflateError, inflate } from "../decode/inflate.js";
import { FetchError } from "../fetch/fetch.js";
import type { S3Getter } from "../fetch/s3-get.js";
import { parseLogName } from "../listing/layout.js";
import type { BucketName, ObjectKey, Region } from "../model/names.js";
import type { Logger } from "../shared/log.js";
import { RetryPolicy } from "../shared/retry.js";
import { type CheckedDigest, linkChains, objectId, type Reason, type Status } from "./chain.js";
import { DIGEST_MAX_BYTES, type Digest, type DigestName, parseDigestName } from "./digest.js";
import { HashStore } from "./hash-store.js";
import { PublicKeys, sdkListPublicKeys } from "./public-keys.js";
import { parseSignature } from "./signature.js";
import {
  digestLine,
  fetchVerdict,
  hashLogFile,
  type IntegrityLine,
  judgeDigest,
  KeysUnavailable,
  logFileLine,
  mismatchDetail,
  type ObjectStore,
  readDigest,
  S3_PLACES,
  S3Store,
} from "./verify.js";

/**
 * Valid digests remembered (their signature and hash), to check the next digest's link without a GET. Only the last
 * of each chain is needed: one per account, region and trail (an organization of 100 accounts in 17 regions: 1,700).
 * Past this the oldest go; a forgotten one is fetched when the next digest names it.
 */
const DIGESTS_MAX = 10_000;

export interface ContinuousDeps {
  store: ObjectStore;
  keys: PublicKeys;
  hashes: HashStore;
  /** --buckets: the only buckets a digest's log files (and previous digest) are read from; undefined: any. */
  allowedBuckets: ReadonlySet<string> | undefined;
  /** --max-object-bytes: the largest inflated log file hashed. */
  maxObjectBytes: number;
  /** Log files of one digest fetched at once. */
  concurrency: number;
  log: Logger;
  /** Stops the requests in flight (the store's signal): shutdown. */
  abort(): void;
}

/** What the continuous check has done, for the summary and stats lines. */
export interface ContinuousCounts {
  digests: number;
  /** Lines that are not valid (digests and log files). */
  problems: number;
  /** Log files a digest lists that were judged by a remembered hash. */
  remembered: number;
  /** Log files (and previous digests) fetched because they were not remembered. */
  fetched: number;
}

export class ContinuousIntegrity {
  readonly counts: ContinuousCounts = { digests: 0, problems: 0, remembered: 0, fetched: 0 };
  private readonly digests = new Map<string, { signature: string; sha256: string | undefined }>();

  constructor(private readonly deps: ContinuousDeps) {}

  /** Work in flight stops; no further line is written (the runner's emit refuses). */
  abort(): void {
    this.deps.abort();
  }

  /** The SHA-256 of a log file's inflated bytes, read whole by the runner. Other objects are not remembered. */
  noteLogFile(bucket: BucketName, key: ObjectKey, sha256: string): void {
    if (parseLogName(key) === undefined) return;
    const { hashes } = this.deps;
    if (hashes.add(bucket, key, sha256)) {
      this.deps.log.warn("integrity hashes: the file cannot be written; kept in memory from now on", {
        code: hashes.failure,
      });
    }
  }

  /**
   * Judges the digest at `bucket`/`key` and writes its lines through `emit`: its own, one for a previous digest that
   * breaks the chain, one per listed log file that is not valid. Returns false when `key` is not a digest's name.
   * Throws the FetchError when the digest itself cannot be read: a notification is not CloudTrail's word, so a digest
   * it names that is not there is the runner's failed object (a dead letter), never a `missing` line anyone who can
   * write to the queue could plant. A digest deleted from S3 is `missing` when the next one names it.
   */
  async checkDigest(
    bucket: BucketName,
    key: ObjectKey,
    emit: (line: IntegrityLine) => void | Promise<void>,
  ): Promise<boolean> {
    const name = parseDigestName(key);
    if (name === undefined) return false;
    const out = async (line: IntegrityLine): Promise<void> => {
      if (line.status !== "valid") this.counts.problems++;
      await emit(line);
    };
    const digest = await this.checkOwn(bucket, key, name);
    const previous = await this.checkLink(digest);
    const content = digest.digest;
    const valid = content !== undefined && digest.status === "valid";
    // A valid digest's files are judged before anything is written: one whose read fails for a reason that may pass
    // fails the whole digest (as checkOwn), with nothing written, so the digest comes back whole instead of leaving
    // a `not checked` line. Only problems are held meanwhile, and a valid digest is AWS-signed: its list is CloudTrail's.
    const problems = valid ? await this.checkLogFiles(digest, content) : [];
    this.counts.digests++;
    await out(digestLine(digest));
    if (previous !== undefined && previous.status !== "valid") await out(digestLine(previous));
    if (content === undefined) return true;
    if (valid && digest.signature !== undefined) {
      this.rememberDigest(objectId(bucket, key), digest.signature, digest.sha256);
    }
    for (const line of problems) await out(line);
    // An invalid digest vouches for nothing it lists (streamed: its list is not CloudTrail's word, nor its length).
    if (!valid) {
      const why = `its digest is ${digest.status} (${digest.reason ?? ""})`;
      for (const file of content.logFiles) {
        await out(logFileLine(file, file, digest, content, "invalid", { reason: "not vouched for", detail: why }));
      }
    }
    return true;
  }

  private async checkOwn(bucket: BucketName, key: ObjectKey, name: DigestName): Promise<CheckedDigest> {
    try {
      // The read's FetchError is thrown as it is (checkDigest): only what was read is judged.
      const read = await readDigest(this.deps.store, bucket, key);
      return await judgeDigest(read, this.deps.keys, S3_PLACES, bucket, key, name);
    } catch (error) {
      if (!(error instanceof KeysUnavailable)) throw error;
      // Nothing can be judged without the key, and a failed ListPublicKeys says nothing of the digest: no line (an
      // `invalid` one would be a false alarm), but the digest's object failed transiently, as a GET that failed: SQS
      // brings it back (--delete-sqs-messages), else it is a dead letter that says why. Nothing was written yet.
      this.deps.log.warn("digest not checked", { bucket, key, message: error.message });
      throw new FetchError("FetchFailed", `the digest could not be checked: ${error.message}`, true);
    }
  }

  /**
   * The link to the digest this one names as previous: from memory, else fetched. Returns the previous digest as
   * judged (`missing`, `invalid` with `chain broken`), or undefined when there is no link to check.
   */
  private async checkLink(digest: CheckedDigest): Promise<CheckedDigest | undefined> {
    const content = digest.digest;
    if (digest.status !== "valid" || content?.previous === undefined || content.previousDigestSignature === null) {
      return undefined;
    }
    const { bucket, key } = content.previous;
    const id = objectId(bucket, key);
    const previous: CheckedDigest = {
      bucket,
      key,
      name: parseDigestName(key) ?? digest.name,
      digest: undefined,
      signature: undefined,
      sha256: undefined,
      status: "valid",
    };
    const allowed = this.deps.allowedBuckets;
    if (allowed !== undefined && !allowed.has(bucket)) {
      return Object.assign(previous, {
        status: "invalid" as Status,
        reason: "not checked" as Reason,
        detail: `named as the previous digest by ${digest.key}, in a bucket not among --buckets`,
      });
    }
    const known = this.digests.get(id);
    if (known !== undefined) {
      previous.signature = known.signature;
      previous.sha256 = known.sha256;
    } else {
      this.counts.fetched++;
      try {
        const read = await this.deps.store.read(bucket, key, async (object) => {
          const hash = createHash("sha256");
          for await (const chunk of inflate(object.body, { maxBytes: DIGEST_MAX_BYTES })) hash.update(chunk);
          return { sha256: hash.digest("hex"), signature: parseSignature(object.metadata.signature) };
        });
        previous.signature = read.signature;
        previous.sha256 = read.sha256;
      } catch (error) {
        const by = `named as the previous digest by ${digest.key}`;
        if (error instanceof InflateError) {
          return Object.assign(previous, { status: "invalid" as Status, reason: "chain broken" as Reason, detail: by });
        }
        if (!(error instanceof FetchError)) throw error;
        // Still failing after --retry-for: the whole digest fails as its own read would (see checkOwn), rather than
        // blaming a chain that may be whole. A permanent failure (access denied) is said on the previous digest's line.
        if (error.transient) throw error;
        return Object.assign(previous, fetchVerdict(error, by));
      }
    }
    linkChains(
      new Map([
        [objectId(digest.bucket, digest.key), digest],
        [id, previous],
      ]),
    );
    return previous;
  }

  private rememberDigest(id: string, signature: string, sha256: string | undefined): void {
    this.digests.delete(id);
    this.digests.set(id, { signature, sha256 });
    if (this.digests.size > DIGESTS_MAX) {
      const oldest = this.digests.keys().next();
      if (oldest.done !== true) this.digests.delete(oldest.value);
    }
  }

  /** The problems among the log files a valid digest lists: remembered hashes compared, the others fetched. */
  private async checkLogFiles(digest: CheckedDigest, content: Digest): Promise<IntegrityLine[]> {
    const problems: IntegrityLine[] = [];
    const line = (file: { bucket: BucketName; key: ObjectKey }, status: Status, reason: Reason, detail: string) => {
      problems.push(logFileLine(file, file, digest, content, status, { reason, detail }));
    };
    const toFetch: { bucket: BucketName; key: ObjectKey; hashValue: string }[] = [];
    for (const file of content.logFiles) {
      const allowed = this.deps.allowedBuckets;
      if (allowed !== undefined && !allowed.has(file.bucket)) {
        line(file, "invalid", "not checked", "the digest lists it in a bucket not among --buckets");
        continue;
      }
      const known = this.deps.hashes.get(file.bucket, file.key);
      if (known === undefined) {
        toFetch.push(file);
        continue;
      }
      this.counts.remembered++;
      if (known !== file.hashValue) {
        line(
          file,
          "invalid",
          "hash mismatch",
          `the SHA-256 of the file as read is ${known}, the digest recorded ${file.hashValue}`,
        );
      }
    }
    let next = 0;
    let failed = false;
    const worker = async (): Promise<void> => {
      while (next < toFetch.length && !failed) {
        const file = toFetch[next++] as (typeof toFetch)[number];
        this.counts.fetched++;
        // Still failing after --retry-for, for a reason that may pass: no verdict on the file (checkDigest).
        const options = { maxBytes: this.deps.maxObjectBytes, throwTransient: true };
        const verdict = await hashLogFile(this.deps.store, file.bucket, file.key, options).catch((error: unknown) => {
          failed = true; // the others stop taking files: the digest fails as a whole
          throw error;
        });
        if (!("sha256" in verdict)) line(file, verdict.status, verdict.reason, verdict.detail);
        else if (verdict.sha256 !== file.hashValue) {
          line(file, "invalid", "hash mismatch", mismatchDetail(verdict.sha256, file.hashValue));
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.deps.concurrency, toFetch.length) }, worker));
    return problems;
  }
}

/** What a runner needs to start the check, from the command line and its AWS clients. */
export interface ContinuousSettings {
  getter: () => Promise<S3Getter>;
  cloudTrailClient: (region: Region) => Promise<import("@aws-sdk/client-cloudtrail").CloudTrailClient>;
  /** --spool-dir: the hashes are kept in a file there (surviving a restart); undefined: in memory only. */
  spoolDir: string | undefined;
  buckets: ReadonlySet<string> | undefined;
  maxObjectBytes: number;
  concurrency: number;
  /** --retry-for, in seconds: GETs of digests and log files are retried as the filter's are. */
  retryFor: number;
  log: Logger;
}

/** The check, with its store of hashes opened (`close` closes it). */
export function openContinuous(settings: ContinuousSettings): { integrity: ContinuousIntegrity; close(): void } {
  let hashes = HashStore.memory();
  if (settings.spoolDir !== undefined) {
    try {
      hashes = HashStore.open(settings.spoolDir);
    } catch (error) {
      // The spool itself opened: what fails here only costs GETs when digests come, so the filter runs on.
      settings.log.warn("integrity hashes: cannot open the file in --spool-dir; kept in memory only", {
        code: (error as NodeJS.ErrnoException).code ?? String(error),
      });
    }
  }
  if (hashes.skippedOnLoad > 0) {
    settings.log.warn("integrity hashes: lines skipped on load (torn or not entries)", {
      skipped: hashes.skippedOnLoad,
    });
  }
  const controller = new AbortController();
  const retry = new RetryPolicy({ retryForMs: settings.retryFor * 1000 });
  const integrity = new ContinuousIntegrity({
    store: new S3Store(settings.getter, retry, controller.signal),
    keys: new PublicKeys(sdkListPublicKeys(settings.cloudTrailClient), Date.now, true),
    hashes,
    allowedBuckets: settings.buckets,
    maxObjectBytes: settings.maxObjectBytes,
    concurrency: settings.concurrency,
    log: settings.log,
    abort: () => controller.abort(),
  });
  return { integrity, close: () => hashes.close() };
}
