// How digests vouch for each other and for log files, once each digest is checked on its own: the chain links (each
// digest records the signature of the one before it), the previous digests a chain names that the listing did not
// find, and the log files present that no digest lists (`unlisted`).
//
// Policy, so that an untouched file is never reported: a link that does not hold counts against the previous digest
// (the later digest is signed, so what it records is CloudTrail's word), and a digest that is absent is reported
// `missing` without making the digest that names it invalid; its log files then show up as `unlisted`.
import type { BucketName, ObjectKey } from "../model/names.js";
import type { Digest, DigestName } from "./digest.js";

export type Status = "valid" | "invalid" | "missing" | "unlisted";

/**
 * Why a file is not valid, one of a few words an alert can match, with the details in `detail`:
 * hash mismatch, bad signature, unknown key, not found, chain broken, malformed, moved (a digest read from a key other
 * than the one it names), not vouched for (listed by a digest that is not valid), not listed, not checked (S3 or
 * the file refused the read).
 */
export type Reason =
  | "hash mismatch"
  | "bad signature"
  | "unknown key"
  | "not found"
  | "chain broken"
  | "malformed"
  | "moved"
  | "not vouched for"
  | "not listed"
  | "not checked";

/** A digest after its own checks (location, signature, key), before the chain's. */
export interface CheckedDigest {
  bucket: BucketName;
  key: ObjectKey;
  name: DigestName;
  /** The parsed content, when it was readable. */
  digest: Digest | undefined;
  /** The signature in its metadata (lowercase hex), when it had one. */
  signature: string | undefined;
  /** Hex SHA-256 of its uncompressed bytes. */
  sha256: string | undefined;
  status: Status;
  reason?: Reason;
  detail?: string;
}

export const objectId = (bucket: string, key: string): string => `${bucket}/${key}`;

/** A previous digest named by a checked one but not among them: its signature must be read to check the link. */
export interface OutsideLink {
  bucket: BucketName;
  key: ObjectKey;
  /** The digests that name it, and what each recorded. */
  namedBy: { digest: CheckedDigest; signature: string }[];
}

function fail(target: CheckedDigest, reason: Reason, detail: string): void {
  if (target.status !== "valid") return; // the first reason found stands
  target.status = "invalid";
  target.reason = reason;
  target.detail = detail;
}

/**
 * Checks every link between digests that are both here, marking a previous digest that does not match what the
 * next one recorded; returns the previous digests that are not here, for the caller to read.
 */
export function linkChains(
  digests: ReadonlyMap<string, CheckedDigest>,
  /** Where an object a digest names is read (a local copy maps S3 keys to its paths); as named by default. */
  locate: (bucket: BucketName, key: ObjectKey, near: CheckedDigest) => { bucket: BucketName; key: ObjectKey } = (
    bucket,
    key,
  ) => ({ bucket, key }),
): OutsideLink[] {
  const outside = new Map<string, OutsideLink>();
  for (const next of digests.values()) {
    const content = next.digest;
    if (content?.previous === undefined || content.previousDigestSignature === null) continue;
    const { hashValue } = content.previous;
    const { bucket, key } = locate(content.previous.bucket, content.previous.key, next);
    const recorded = content.previousDigestSignature.toLowerCase();
    const previous = digests.get(objectId(bucket, key));
    if (previous === undefined) {
      const id = objectId(bucket, key);
      const link = outside.get(id) ?? { bucket, key, namedBy: [] };
      link.namedBy.push({ digest: next, signature: recorded });
      outside.set(id, link);
      continue;
    }
    if (previous.status === "missing") continue;
    if (previous.signature !== recorded) {
      fail(previous, "chain broken", `its signature is not the one the next digest ${next.key} recorded`);
    } else if (hashValue !== undefined && previous.sha256 !== undefined && previous.sha256 !== hashValue) {
      fail(previous, "chain broken", `its content is not the one the next digest ${next.key} recorded`);
    }
  }
  return [...outside.values()];
}

/** `YYYYMMDDTHHmmZ` in a log file's name, as epoch ms: when CloudTrail delivered it, to the minute. */
export function logFileTime(key: string): number | undefined {
  const match = /_CloudTrail_[a-z0-9-]+_(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})Z_[^/]*$/.exec(key);
  if (match === null) return undefined;
  const [, y, mo, d, h, mi] = match.map(Number) as [number, number, number, number, number, number];
  return Date.UTC(y, mo - 1, d, h, mi);
}

/** The span of time the digests of one account and region cover. */
export interface Coverage {
  fromMs: number;
  untilMs: number;
}

/** Per `account region`: from the earliest digest's start to the latest digest's end, of those read whole. */
export function coverage(digests: Iterable<CheckedDigest>): Map<string, Coverage> {
  const spans = new Map<string, Coverage>();
  for (const checked of digests) {
    const content = checked.digest;
    if (content === undefined) continue;
    const id = `${checked.name.account} ${checked.name.region}`;
    const span = spans.get(id);
    if (span === undefined) spans.set(id, { fromMs: content.startMs, untilMs: content.endMs });
    else {
      span.fromMs = Math.min(span.fromMs, content.startMs);
      span.untilMs = Math.max(span.untilMs, content.endMs);
    }
  }
  return spans;
}

/**
 * Whether a log file that no digest lists is a problem: it is when digests of its account and region cover the
 * minute it was delivered in. One delivered after the latest digest's end awaits the next digest; one before the
 * earliest digest's start may predate validation being turned on (or the range): neither is judged. A log file is
 * listed in the digest whose window its delivery falls in, give or take a late delivery that a later (backfill)
 * digest lists, which the digests listed one day past the range catch.
 */
export function judgedUnlisted(
  account: string,
  region: string,
  deliveredMs: number,
  spans: ReadonlyMap<string, Coverage>,
): boolean {
  const span = spans.get(`${account} ${region}`);
  if (span === undefined) return false;
  return deliveredMs >= span.fromMs && deliveredMs < span.untilMs - LATE_DELIVERY_MS;
}

/**
 * A log file's name carries the minute it was written, and it is listed by the digest whose hour its delivery falls
 * in, which can be the next one: in the last hour the digests cover, an unlisted file may still be on its way into
 * a digest that is not written yet.
 */
export const LATE_DELIVERY_MS = 60 * 60_000;
