// Decodes an SQS message body into the log objects it points at. Decided by shape, never by configuration:
// - CloudTrail's notification, raw or in an SNS envelope: {"s3Bucket", "s3ObjectKey": [keys]}
//   https://docs.aws.amazon.com/awscloudtrail/latest/userguide/configure-sns-notifications-for-cloudtrail.html
// - S3 event notifications, direct or through SNS: {"Records": [{"eventSource": "aws:s3", "s3": {…}}]}
//   https://docs.aws.amazon.com/AmazonS3/latest/userguide/notification-content-structure.html
// - EventBridge "Object Created" delivered to SQS
//   https://docs.aws.amazon.com/AmazonS3/latest/userguide/ev-events.html
// - the S3 test event and CloudTrail's validation message, which are skipped.
//
// A message is untrusted input (anyone allowed to send to the queue wrote it): every bucket, key and region it names is
// parsed (names.ts) before anything else is decided about that object, and one that does not parse is refused.
import {
  type BucketName,
  isInvalid,
  type ObjectKey,
  parseBucketName,
  parseObjectKey,
  parseRegion,
  refusalMessage,
} from "../model/names.js";
import type { S3ObjectRef } from "../model/refs.js";

/** A notified object that is deliberately not read, with why. */
export interface Skip {
  reason: string;
  bucket?: BucketName;
  key?: ObjectKey;
}

/**
 * A notified object that is not read because its coordinates do not parse: an `InvalidReference` dead letter. The
 * message says which field failed and why; `bucket` and `key` are there when they parsed, to find the object by.
 */
export interface Refusal {
  code: "InvalidReference";
  message: string;
  bucket?: BucketName;
  key?: ObjectKey;
}

export type Decoded =
  | { kind: "objects"; refs: S3ObjectRef[]; skips: Skip[]; refused: Refusal[] }
  | { kind: "error"; code: "UnknownShape" | "MessageNotJson"; message: string };

/** What each shape calls the fields of a reference, for refusal messages. */
export interface RefFields {
  bucket: string;
  key: string;
  region?: string;
}

/**
 * Parses the coordinates of one notified object. A region that is present must parse too: it becomes part of the
 * request's host name.
 */
export function parseRef(
  fields: RefFields,
  bucket: string,
  key: string,
  region: string | undefined,
): S3ObjectRef | Refusal {
  const parsedBucket = parseBucketName(bucket);
  const parsedKey = parseObjectKey(key);
  const parsedRegion = region === undefined ? undefined : parseRegion(region);
  if (!isInvalid(parsedBucket) && !isInvalid(parsedKey) && (parsedRegion === undefined || !isInvalid(parsedRegion))) {
    return parsedRegion === undefined
      ? { bucket: parsedBucket, key: parsedKey }
      : { bucket: parsedBucket, key: parsedKey, region: parsedRegion };
  }
  // Every field that failed, in one message.
  const problems: string[] = [];
  if (isInvalid(parsedBucket)) problems.push(refusalMessage(fields.bucket, bucket, parsedBucket));
  if (isInvalid(parsedKey)) problems.push(refusalMessage(fields.key, key, parsedKey));
  if (region !== undefined && parsedRegion !== undefined && isInvalid(parsedRegion)) {
    problems.push(refusalMessage(fields.region ?? "region", region, parsedRegion));
  }
  return {
    code: "InvalidReference",
    message: problems.join("; "),
    ...(isInvalid(parsedBucket) ? {} : { bucket: parsedBucket }),
    ...(isInvalid(parsedKey) ? {} : { key: parsedKey }),
  };
}

export function isRefusal(ref: S3ObjectRef | Refusal): ref is Refusal {
  return "code" in ref;
}

export type Json = Record<string, unknown>;

/** A JSON object (not an array, not null). */
export function isObject(value: unknown): value is Json {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/**
 * S3 event notifications encode keys like an HTML form: '+' is a space and the rest is percent-encoding.
 * `+` must become a space before `%2B` becomes `+`.
 */
export function decodeFormKey(key: string): string {
  const spaced = key.replace(/\+/g, " ");
  try {
    return decodeURIComponent(spaced);
  } catch {
    // A stray '%' that is not an escape: keep the text as it is rather than lose the object.
    return spaced;
  }
}

/** The reason a digest file is skipped (the filter hands it to the integrity check instead with --verify-integrity). */
export const DIGEST_SKIP = "digest file";

/** Digest files are integrity manifests, not logs. Match the path segment: trails can sit under any prefix. */
function isDigest(key: string): boolean {
  return key.includes("/CloudTrail-Digest/") || key.startsWith("CloudTrail-Digest/");
}

/**
 * Sorts parsed references into refs and refusals, setting aside what must not be read: digest files and folder
 * markers. The one place that decides it, for notified keys and for `s3://` lines alike.
 */
export function sortRefs(candidates: (S3ObjectRef | Refusal)[], skips: Skip[], refused: Refusal[]): Decoded {
  const refs: S3ObjectRef[] = [];
  for (const ref of candidates) {
    if (isRefusal(ref)) refused.push(ref);
    else if (isDigest(ref.key)) skips.push({ reason: DIGEST_SKIP, bucket: ref.bucket, key: ref.key });
    else if (ref.key.endsWith("/")) skips.push({ reason: "folder marker", bucket: ref.bucket, key: ref.key });
    else refs.push(ref);
  }
  return { kind: "objects", refs, skips, refused };
}

const nothing = (reason: string): Decoded => ({ kind: "objects", refs: [], skips: [{ reason }], refused: [] });

function unknownShape(what: string): Decoded {
  return { kind: "error", code: "UnknownShape", message: what };
}

/** Decodes a parsed SQS message body. `depth` guards against an envelope inside an envelope inside … */
export function decodeBody(body: unknown, depth = 0): Decoded {
  if (!isObject(body)) return unknownShape("the message body is not a JSON object");

  // SNS envelope: Message is a string, JSON for CloudTrail and S3, plain text for the validation message.
  if (typeof body.Type === "string" && typeof body.Message === "string" && depth === 0) {
    if (body.Type === "SubscriptionConfirmation" || body.Type === "UnsubscribeConfirmation") {
      return nothing(`SNS ${body.Type} (confirm it from the SNS console or SubscribeURL)`);
    }
    const message = body.Message;
    if (message.trim().startsWith("CloudTrail validation message")) return nothing("CloudTrail validation message");
    let inner: unknown;
    try {
      inner = JSON.parse(message);
    } catch {
      return { kind: "error", code: "MessageNotJson", message: "the SNS Message is not JSON" };
    }
    return decodeBody(inner, depth + 1);
  }

  // CloudTrail's own notification. Keys are plain here, not URL-encoded.
  if (typeof body.s3Bucket === "string" && "s3ObjectKey" in body) {
    const bucket = body.s3Bucket;
    const keys = Array.isArray(body.s3ObjectKey) ? body.s3ObjectKey : [body.s3ObjectKey];
    if (keys.length === 0) return nothing("CloudTrail notification with an empty s3ObjectKey list");
    if (!keys.every((key): key is string => typeof key === "string")) {
      return unknownShape("s3ObjectKey holds something that is not a key");
    }
    const fields = { bucket: "s3Bucket", key: "s3ObjectKey" };
    return sortRefs(
      keys.map((key) => parseRef(fields, bucket, key, undefined)),
      [],
      [],
    );
  }

  // S3 test event, sent once when the notification is configured.
  if (body.Event === "s3:TestEvent") return nothing("S3 test event");

  // S3 event notification: every record counts, not only the first.
  if (Array.isArray(body.Records)) return decodeS3Event(body.Records);

  // EventBridge event delivered to SQS.
  if (body.source === "aws.s3" && typeof body["detail-type"] === "string") return decodeEventBridge(body);

  return unknownShape(`not a notification this filter knows (keys: ${Object.keys(body).slice(0, 8).join(", ")})`);
}

const S3_EVENT_FIELDS: RefFields = { bucket: "s3.bucket.name", key: "s3.object.key", region: "awsRegion" };

function decodeS3Event(records: unknown[]): Decoded {
  const candidates: (S3ObjectRef | Refusal)[] = [];
  const skips: Skip[] = [];
  const refused: Refusal[] = [];
  if (records.length === 0) return nothing("S3 event notification without records");
  for (const record of records) {
    if (!isObject(record) || record.eventSource !== "aws:s3" || !isObject(record.s3)) {
      return unknownShape(
        "a Records entry is not an S3 event record (is this a CloudTrail log file rather than a notification?)",
      );
    }
    const bucket = isObject(record.s3.bucket) ? record.s3.bucket.name : undefined;
    const rawKey = isObject(record.s3.object) ? record.s3.object.key : undefined;
    if (typeof bucket !== "string" || typeof rawKey !== "string") {
      return unknownShape("an S3 event record without s3.bucket.name or s3.object.key");
    }
    const region = typeof record.awsRegion === "string" && record.awsRegion !== "" ? record.awsRegion : undefined;
    const ref = parseRef(S3_EVENT_FIELDS, bucket, decodeFormKey(rawKey), region);
    const eventName = typeof record.eventName === "string" ? record.eventName : "";
    if (isRefusal(ref)) refused.push(ref);
    else if (!eventName.startsWith("ObjectCreated:")) {
      skips.push({ reason: `S3 event ${eventName || "without eventName"}`, bucket: ref.bucket, key: ref.key });
    } else candidates.push(ref);
  }
  return sortRefs(candidates, skips, refused);
}

const EVENTBRIDGE_FIELDS: RefFields = { bucket: "detail.bucket.name", key: "detail.object.key", region: "region" };

function decodeEventBridge(body: Json): Decoded {
  const detail = body.detail;
  const bucket = isObject(detail) && isObject(detail.bucket) ? detail.bucket.name : undefined;
  const key = isObject(detail) && isObject(detail.object) ? detail.object.key : undefined;
  if (typeof bucket !== "string" || typeof key !== "string") {
    return unknownShape("an EventBridge S3 event without detail.bucket.name or detail.object.key");
  }
  const region = typeof body.region === "string" && body.region !== "" ? body.region : undefined;
  const ref = parseRef(EVENTBRIDGE_FIELDS, bucket, key, region);
  if (isRefusal(ref)) return { kind: "objects", refs: [], skips: [], refused: [ref] };
  if (body["detail-type"] !== "Object Created") {
    return {
      kind: "objects",
      refs: [],
      skips: [{ reason: `EventBridge ${String(body["detail-type"])}`, bucket: ref.bucket, key: ref.key }],
      refused: [],
    };
  }
  const decoded = decodeFormKey(key);
  // A decoded form that is no valid key (`%00` decodes to NUL) cannot be the object's key: only the key as given is
  // tried.
  const fallbackKey = decoded === key ? undefined : parseObjectKey(decoded);
  if (fallbackKey !== undefined && !isInvalid(fallbackKey)) ref.fallbackKey = fallbackKey;
  return sortRefs([ref], [], []);
}
