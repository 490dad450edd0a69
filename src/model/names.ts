// S3 object coordinates read from untrusted input (SQS messages, input lines, the command line): a region, a bucket
// and a key can only be made by parsing them here, so an unchecked string never reaches a request (issue 13: an
// `awsRegion` of `x@127.0.0.1:9/#` or a bucket holding `@`, `:`, `#` or `/` sent signed requests to a host the
// message's sender chose). The types are branded strings: free at run time, and the compiler refuses a plain string
// where one is expected.

declare const brand: unique symbol;
type Branded<T extends string> = string & { readonly [brand]: T };

/**
 * An AWS region name (`us-east-1`, `us-gov-west-1`, `us-isob-east-1`, `cn-north-1`). It becomes a host label
 * (`s3.REGION.amazonaws.com`) and part of the signing scope, so it is letters, digits and `-` only, in the shape every
 * partition's regions share: two letters, one or more words, a number. At most 32 characters: today's longest
 * (`us-isof-south-1`) has 15, and anything twice that is not a region.
 * https://docs.aws.amazon.com/global-infrastructure/latest/regions/aws-regions.html
 */
export type Region = Branded<"Region">;

/**
 * An S3 general purpose bucket name by today's rules
 * (https://docs.aws.amazon.com/AmazonS3/latest/userguide/bucketnamingrules.html): 3 to 63 characters, lowercase
 * letters, digits, `.` and `-`, starting and ending with a letter or digit, no `..`, not an IPv4 address, none of the
 * prefixes and suffixes S3 reserves (`xn--`, `sthree-`; `-s3alias` and `--ol-s3` are access point aliases, `.mrap`
 * multi-region access points, `--x-s3` and `--table-s3` directory and table buckets: none is where CloudTrail writes).
 *
 * Legacy us-east-1 names (uppercase, `_`, up to 255 characters; not creatable since March 2018) are refused too: they
 * cannot be addressed virtual-hosted, and admitting them would let `_` and uppercase through for every bucket. A trail
 * that writes to one needs a bucket with a current name to be read by this filter.
 */
export type BucketName = Branded<"BucketName">;

/**
 * An S3 object key: 1 to 1024 bytes of UTF-8 (S3's own limit,
 * https://docs.aws.amazon.com/AmazonS3/latest/userguide/object-keys.html). S3 accepts any UTF-8, but keys go into
 * URLs, log lines and dead-letter records, so these are refused: control characters (C0, DEL, C1: a NUL, a line break
 * or a terminal escape is trouble for whoever greps or views them), lone UTF-16 surrogates (they have no UTF-8 form; a
 * JSON `\ud800` would otherwise reach the request as U+FFFD, another key, or fail to encode), and `.` or `..` path
 * segments (an HTTP layer that normalises paths would turn `trail/../other-bucket/x`, path-style, into another
 * bucket). CloudTrail writes none of them.
 */
export type ObjectKey = Branded<"ObjectKey">;

/**
 * An SQS queue URL taken from an input record (fluent-plugin-sqs's `queue_url`), to which deletes and visibility
 * changes are sent, signed. The record is input like any other, so its URL must be an SQS queue's on an AWS SQS host
 * (`sqs.REGION.amazonaws.com[.cn]`, `sqs-fips.REGION…`, the legacy `REGION.queue.amazonaws.com`, dual-stack
 * `sqs.REGION.api.aws`, an interface endpoint `vpce-….sqs.REGION.vpce.amazonaws.com`) over https, or on an origin the
 * operator configured (AWS_ENDPOINT_URL_SQS, the `sqs` command's --queue-url): never a host the record names alone.
 * The path is `/ACCOUNT/NAME`: twelve digits, then 1 to 80 letters, digits, `-` and `_` (a FIFO queue's ends in
 * `.fifo`). https://docs.aws.amazon.com/general/latest/gr/sqs-service.html
 */
export type QueueUrl = Branded<"QueueUrl">;

/** Why a value was refused; never holds the value itself (see `refusalMessage`). */
export interface Invalid {
  readonly reason: string;
}

const REGION_MAX = 32;
const REGION = /^[a-z]{2}(?:-[a-z]+)+-\d{1,2}$/;

export function parseRegion(value: string): Region | Invalid {
  if (value.length > REGION_MAX) return { reason: `is longer than ${REGION_MAX} characters` };
  if (!REGION.test(value)) return { reason: "is not an AWS region name (like us-east-1)" };
  return value as Region;
}

const BUCKET_MIN = 3;
const BUCKET_MAX = 63;
const BUCKET_CHARS = /^[a-z0-9.-]*$/;
const IPV4 = /^\d+\.\d+\.\d+\.\d+$/;
const RESERVED_PREFIXES = ["xn--", "sthree-"];
const RESERVED_SUFFIXES = ["-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3"];

export function parseBucketName(value: string): BucketName | Invalid {
  if (value.length < BUCKET_MIN || value.length > BUCKET_MAX) {
    return { reason: `is not ${BUCKET_MIN} to ${BUCKET_MAX} characters long` };
  }
  if (!BUCKET_CHARS.test(value)) {
    const bad = [...value].find((c) => !BUCKET_CHARS.test(c)) ?? "";
    return { reason: `holds ${JSON.stringify(bad)} (only lowercase letters, digits, "." and "-")` };
  }
  if (!/^[a-z0-9]/.test(value) || !/[a-z0-9]$/.test(value)) {
    return { reason: "does not start and end with a lowercase letter or digit" };
  }
  if (value.includes("..")) return { reason: 'holds ".."' };
  if (IPV4.test(value)) return { reason: "is an IP address" };
  const prefix = RESERVED_PREFIXES.find((p) => value.startsWith(p));
  if (prefix !== undefined) return { reason: `starts with the reserved prefix ${JSON.stringify(prefix)}` };
  const suffix = RESERVED_SUFFIXES.find((s) => value.endsWith(s));
  if (suffix !== undefined) return { reason: `ends with the reserved suffix ${JSON.stringify(suffix)}` };
  return value as BucketName;
}

const KEY_MAX_BYTES = 1024;
// Unicode's control characters (Cc) are exactly C0, DEL and C1. A lone surrogate: a high one not followed by a low
// one, or a low one without a high one before it.
const KEY_CONTROL = /\p{Cc}/u;
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

export function parseObjectKey(value: string): ObjectKey | Invalid {
  if (value === "") return { reason: "is empty" };
  // Checked first: Buffer.byteLength would count a lone surrogate as the 3 bytes of U+FFFD.
  if (LONE_SURROGATE.test(value)) return { reason: "holds a lone UTF-16 surrogate (not UTF-8)" };
  const bytes = Buffer.byteLength(value, "utf8");
  if (bytes > KEY_MAX_BYTES) return { reason: `is ${bytes} bytes long, more than ${KEY_MAX_BYTES}` };
  const control = KEY_CONTROL.exec(value);
  if (control !== null) return { reason: `holds the control character ${JSON.stringify(control[0])}` };
  if (value.split("/").some((segment) => segment === "." || segment === "..")) {
    return { reason: 'holds a "." or ".." path segment' };
  }
  return value as ObjectKey;
}

const SQS_HOST =
  /^(?:(?:sqs|sqs-fips)\.([a-z0-9-]+)\.amazonaws\.com(?:\.cn)?|([a-z0-9-]+)\.queue\.amazonaws\.com|queue\.amazonaws\.com|sqs\.([a-z0-9-]+)\.api\.aws|vpce-[a-z0-9-]+\.sqs\.([a-z0-9-]+)\.vpce\.amazonaws\.com(?:\.cn)?)$/;
/**
 * The region an AWS SQS host name is in, from every host shape parseQueueUrl accepts: `sqs.REGION.amazonaws.com[.cn]`,
 * `sqs-fips.REGION…`, `REGION.queue.amazonaws.com`, the legacy `queue.amazonaws.com` (us-east-1, SQS's first region),
 * dual-stack `sqs.REGION.api.aws` and interface endpoints `vpce-….sqs.REGION.vpce.amazonaws.com[.cn]`. Requests to the
 * queue are signed for this region, whatever --region says. Undefined for a host of another shape, or one whose
 * region is not a region name.
 */
export function sqsHostRegion(hostname: string): Region | undefined {
  const host = SQS_HOST.exec(hostname);
  if (host === null) return undefined;
  const region = parseRegion(host[1] ?? host[2] ?? host[3] ?? host[4] ?? LEGACY_QUEUE_REGION);
  return isInvalid(region) ? undefined : region;
}

/** `queue.amazonaws.com`, with no region in it, is us-east-1's legacy endpoint. */
const LEGACY_QUEUE_REGION = "us-east-1";

const QUEUE_PATH = /^\/\d{12}\/(?:[A-Za-z0-9_-]{1,80}|[A-Za-z0-9_-]{1,75}\.fifo)$/;

/** `trustedOrigins`: origins (`http://host:port`) the operator configured, where any queue may be. */
export function parseQueueUrl(value: string, trustedOrigins: readonly string[] = []): QueueUrl | Invalid {
  // The URL parser drops tabs and line breaks and trims spaces: refused first, so that what is checked is what is sent.
  if (/[\s\p{Cc}]/u.test(value)) return { reason: "holds white space or a control character" };
  // Likewise "." and ".." segments (also as %2e, or after a backslash, which the parser reads as "/") are resolved away.
  if (value.includes("\\") || /\/(?:\.|%2e){1,2}(?:\/|$)/i.test(value))
    return { reason: 'holds a "." or ".." path segment' };
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return { reason: "is not a URL" };
  }
  if (url.username !== "" || url.password !== "" || url.search !== "" || url.hash !== "" || /[?#@]/.test(value)) {
    return { reason: "holds credentials, a query or a fragment" };
  }
  if (trustedOrigins.includes(url.origin)) {
    // SQS-compatible services lay their paths out their own way (ElasticMQ's `/queue/NAME`): plain segments only.
    const plain = url.pathname.split("/").slice(1);
    const ok =
      plain.length > 0 && plain.every((segment) => /^[A-Za-z0-9_.-]+$/.test(segment) && !/^\.\.?$/.test(segment));
    return ok ? (value as QueueUrl) : { reason: "has a path that is not plain /SEGMENT/SEGMENT" };
  }
  if (!QUEUE_PATH.test(url.pathname)) return { reason: "is not /ACCOUNT/QUEUE-NAME" };
  if (url.protocol !== "https:") return { reason: "is not https (and not the configured SQS endpoint)" };
  if (!SQS_HOST.test(url.hostname) || url.port !== "") {
    return { reason: "is not on an AWS SQS host (set AWS_ENDPOINT_URL_SQS for another SQS-compatible service)" };
  }
  // The region its requests are signed for (clients.ts): a queue URL with none is refused, so none is ever guessed.
  if (sqsHostRegion(url.hostname) === undefined) return { reason: "names no AWS region in its host" };
  return value as QueueUrl;
}

/** Characters of a refused value quoted in a message: enough to recognise it, never a whole hostile payload. */
const QUOTED_MAX = 100;

/**
 * `FIELD "VALUE" REASON`, the value JSON-escaped and cut to QUOTED_MAX characters (with how much more there was), for
 * dead-letter records and logs.
 */
export function refusalMessage(field: string, value: string, invalid: Invalid): string {
  let shown = value;
  if (value.length > QUOTED_MAX) {
    // Not between the two halves of a surrogate pair.
    const end = /[\ud800-\udbff]/.test(value.charAt(QUOTED_MAX - 1)) ? QUOTED_MAX - 1 : QUOTED_MAX;
    shown = value.slice(0, end);
  }
  const more = value.length > shown.length ? ` (+${value.length - shown.length} more characters)` : "";
  return `${field} ${JSON.stringify(shown)}${more} ${invalid.reason}`;
}

/** True for the values the parsers return, false for their refusals. */
export function isInvalid<T extends string>(value: T | Invalid): value is Invalid {
  return typeof value !== "string";
}
