// A CloudTrail digest file read into a typed value: its key name (account, region, trail, end time, backfill) and its
// JSON content. Both are untrusted input until the signature is checked, and even then the names in them reach a
// request only through names.ts's parsers.
// https://docs.aws.amazon.com/awscloudtrail/latest/userguide/cloudtrail-log-file-validation-digest-file-structure.html
import {
  type BucketName,
  type Invalid,
  isInvalid,
  type ObjectKey,
  parseBucketName,
  parseObjectKey,
  parseRegion,
  type Region,
} from "../model/names.js";

/**
 * `ACCOUNT_CloudTrail-Digest_REGION_TRAIL_HOMEREGION_YYYYMMDDTHHmmssZ[_backfill].json.gz`. A trail name holds letters,
 * digits, `.`, `_` and `-` (so it may hold `_`); a region never holds `_`, which is what splits them.
 */
const DIGEST_NAME =
  /^(\d{12})_CloudTrail-Digest_([a-z0-9-]+)_([A-Za-z0-9._-]{1,128})_([a-z0-9-]+)_(\d{4})(\d{2})(\d{2})T(\d{6})Z(_backfill)?\.json(?:\.gz)?$/;

export interface DigestName {
  account: string;
  region: Region;
  trail: string;
  /** The trail's home region: the one whose key may have signed the digest when the digest's region is not. */
  homeRegion: Region;
  /** `YYYY-MM-DD` of the digest's end (the folder it is filed in). */
  day: string;
  backfill: boolean;
}

/** The parts of a digest key's file name, when it is one (anywhere under a `CloudTrail-Digest/` folder or not). */
export function parseDigestName(key: string): DigestName | undefined {
  const match = DIGEST_NAME.exec(key.slice(key.lastIndexOf("/") + 1));
  if (match === null) return undefined;
  const [, account, region, trail, home, y, m, d, , backfill] = match as unknown as string[];
  const parsedRegion = parseRegion(region as string);
  const parsedHome = parseRegion(home as string);
  if (isInvalid(parsedRegion) || isInvalid(parsedHome)) return undefined;
  return {
    account: account as string,
    region: parsedRegion,
    trail: trail as string,
    homeRegion: parsedHome,
    day: `${y}-${m}-${d}`,
    backfill: backfill !== undefined,
  };
}

/**
 * The largest inflated digest read: a digest lists one hour of one region's log files (a few hundred entries of about
 * 300 bytes for a busy account); 64 MiB is two orders of magnitude beyond any seen, and bounds what a planted file
 * can make us hold.
 */
export const DIGEST_MAX_BYTES = 64 * 2 ** 20;

/** A log file a digest lists. `hashValue` is lowercase hex SHA-256 of its uncompressed bytes. */
export interface ListedLogFile {
  bucket: BucketName;
  key: ObjectKey;
  hashValue: string;
}

export interface PreviousDigest {
  bucket: BucketName;
  key: ObjectKey;
  /** Hex SHA-256 of the previous digest's uncompressed bytes, when given. */
  hashValue: string | undefined;
}

export interface Digest {
  account: string;
  /** As written: they go into the data-signing string byte for byte. */
  digestStartTime: string;
  digestEndTime: string;
  digestS3Bucket: string;
  digestS3Object: string;
  /** Parsed: epoch ms. */
  startMs: number;
  endMs: number;
  /** Lowercase hex. */
  publicKeyFingerprint: string;
  signatureAlgorithm: string;
  /** `null` for the first digest of a chain; the data-signing string then holds the text `null`. */
  previousDigestSignature: string | null;
  previous: PreviousDigest | undefined;
  logFiles: ListedLogFile[];
}

const SHA256_HEX = /^[0-9a-f]{64}$/;
const HEX = /^[0-9a-f]+$/;
/** CloudTrail writes `2015-08-17T15:01:31Z`; milliseconds are allowed, anything else is not a time of its. */
const UTC_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,3})?Z$/;

type Fields = Record<string, unknown>;

/** True for a refusal, false for a parsed value (names.ts's `isInvalid` is for strings). */
export function refused<T>(value: T | Invalid): value is Invalid {
  return typeof value === "object" && value !== null && !Array.isArray(value) && "reason" in value;
}

function text(fields: Fields, name: string): string | Invalid {
  const value = fields[name];
  return typeof value === "string" && value !== "" ? value : { reason: `${name} is not a non-empty string` };
}

function time(fields: Fields, name: string): [string, number] | Invalid {
  const value = text(fields, name);
  if (isInvalid(value)) return value;
  const ms = Date.parse(value);
  return UTC_TIME.test(value) && Number.isFinite(ms) ? [value, ms] : { reason: `${name} is not a UTC time` };
}

function hexHash(value: unknown, name: string): string | Invalid {
  if (typeof value !== "string") return { reason: `${name} is not a string` };
  const lower = value.toLowerCase();
  return SHA256_HEX.test(lower) ? lower : { reason: `${name} is not a hex SHA-256` };
}

function location(bucket: unknown, key: unknown, what: string): { bucket: BucketName; key: ObjectKey } | Invalid {
  if (typeof bucket !== "string" || typeof key !== "string") return { reason: `${what} has no S3 bucket and object` };
  const b = parseBucketName(bucket);
  if (isInvalid(b)) return { reason: `${what}'s bucket ${b.reason}` };
  const k = parseObjectKey(key);
  if (isInvalid(k)) return { reason: `${what}'s object key ${k.reason}` };
  return { bucket: b, key: k };
}

/** The digest in `json` (its uncompressed bytes as text), or why it is not one ("malformed"). */
export function parseDigest(json: string): Digest | Invalid {
  let parsed: unknown;
  try {
    parsed = JSON.parse(json);
  } catch {
    return { reason: "is not JSON" };
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) return { reason: "is not a JSON object" };
  const fields = parsed as Fields;
  const account = text(fields, "awsAccountId");
  if (isInvalid(account)) return account;
  const start = time(fields, "digestStartTime");
  if (refused(start)) return start;
  const end = time(fields, "digestEndTime");
  if (refused(end)) return end;
  const bucket = text(fields, "digestS3Bucket");
  if (isInvalid(bucket)) return bucket;
  const object = text(fields, "digestS3Object");
  if (isInvalid(object)) return object;
  const fingerprint = text(fields, "digestPublicKeyFingerprint");
  if (isInvalid(fingerprint)) return fingerprint;
  if (!HEX.test(fingerprint.toLowerCase()) || fingerprint.length > 128) {
    return { reason: "digestPublicKeyFingerprint is not hex" };
  }
  const algorithm = text(fields, "digestSignatureAlgorithm");
  if (isInvalid(algorithm)) return algorithm;

  let previousDigestSignature: string | null = null;
  let previous: PreviousDigest | undefined;
  if (fields.previousDigestSignature !== null && fields.previousDigestSignature !== undefined) {
    const signature = text(fields, "previousDigestSignature");
    if (isInvalid(signature)) return signature;
    previousDigestSignature = signature;
    const where = location(fields.previousDigestS3Bucket, fields.previousDigestS3Object, "previousDigestS3Object");
    if (refused(where)) return where;
    const hash = fields.previousDigestHashValue;
    const hashValue = hash === null || hash === undefined ? undefined : hexHash(hash, "previousDigestHashValue");
    if (hashValue !== undefined && isInvalid(hashValue)) return hashValue;
    previous = { ...where, hashValue };
  }

  if (!Array.isArray(fields.logFiles)) return { reason: "logFiles is not an array" };
  const logFiles: ListedLogFile[] = [];
  for (const [index, entry] of fields.logFiles.entries()) {
    if (typeof entry !== "object" || entry === null) return { reason: `logFiles[${index}] is not an object` };
    const file = entry as Fields;
    if (file.hashAlgorithm !== "SHA-256") return { reason: `logFiles[${index}].hashAlgorithm is not SHA-256` };
    const where = location(file.s3Bucket, file.s3Object, `logFiles[${index}]`);
    if (refused(where)) return where;
    const hashValue = hexHash(file.hashValue, `logFiles[${index}].hashValue`);
    if (isInvalid(hashValue)) return hashValue;
    logFiles.push({ ...where, hashValue });
  }

  return {
    account,
    digestStartTime: start[0],
    digestEndTime: end[0],
    startMs: start[1],
    endMs: end[1],
    digestS3Bucket: bucket,
    digestS3Object: object,
    publicKeyFingerprint: fingerprint.toLowerCase(),
    signatureAlgorithm: algorithm,
    previousDigestSignature,
    previous,
    logFiles,
  };
}
