// Makes s3rver's ListObjects answer as S3 does, in two ways s3rver 3.7 differs:
//
// - Order. S3 lists keys in UTF-8 byte order of the whole key. s3rver stores keys as nested directories and walks
//   them directory by directory, so `AWSLogs/1/CloudTrail/...` comes before `AWSLogs/1/CloudTrail-Digest/...` (the
//   directory `CloudTrail` sorts before `CloudTrail-Digest`), where S3 lists `CloudTrail-Digest/` first ("-" is 0x2d,
//   "/" is 0x2f). import --verify-integrity holds a digest back until the log files it lists are handed over, which
//   only S3's order makes necessary: with s3rver's, the tests would never see it.
// - Delimiter. When listing with a delimiter s3rver does not walk into a directory whose path below the prefix already
//   holds the delimiter (lib/stores/filesystem.js, listObjects). So `AWSLogs/123/CloudTrail/us-east-1/2023/07/10/x`
//   gives no CommonPrefixes for Prefix "AWSLogs/", where S3 answers "AWSLogs/123/".
// This wraps the store: every key under the prefix (no delimiter, no start), sorted by bytes, then StartAfter (also
// the continuation token's key), the roll-up into common prefixes, and MaxKeys, as S3 applies them.
// https://docs.aws.amazon.com/AmazonS3/latest/API/API_ListObjectsV2.html#API_ListObjectsV2_RequestSyntax
import { createRequire } from "node:module";

interface Listed {
  objects: { key: string }[];
  commonPrefixes: string[];
  isTruncated: boolean;
}
interface ListOptions {
  delimiter?: string;
  prefix?: string;
  startAfter?: string;
  maxKeys?: number;
}
type ListObjects = (this: unknown, bucket: string, options: ListOptions) => Promise<Listed>;

let patched = false;

/** S3's order: the keys' UTF-8 bytes. */
function byBytes(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, "utf8"), Buffer.from(b, "utf8"));
}

/** Patches the in-process s3rver (tests run it in their own process); idempotent. `startS3` calls it. */
export function fixS3rverListing(): void {
  if (patched) return;
  patched = true;
  const store = createRequire(import.meta.url)("s3rver/lib/stores/filesystem.js") as {
    prototype: { listObjects: ListObjects };
  };
  const original = store.prototype.listObjects;
  store.prototype.listObjects = async function (bucket, options) {
    const { delimiter = "", prefix = "", startAfter = "", maxKeys = Number.POSITIVE_INFINITY } = options;
    const all = await original.call(this, bucket, { prefix, maxKeys: Number.POSITIVE_INFINITY });
    const keys = all.objects
      .filter((object) => startAfter === "" || byBytes(object.key, startAfter) > 0)
      .sort((a, b) => byBytes(a.key, b.key));
    const prefixes = new Set<string>();
    const objects: { key: string }[] = [];
    let isTruncated = false;
    for (const object of keys) {
      const at = delimiter === "" ? -1 : object.key.indexOf(delimiter, prefix.length);
      const rolledUp = at === -1 ? undefined : object.key.slice(0, at + delimiter.length);
      if (rolledUp !== undefined && prefixes.has(rolledUp)) continue;
      if (objects.length + prefixes.size >= maxKeys) {
        isTruncated = true;
        break;
      }
      if (rolledUp === undefined) objects.push(object);
      else prefixes.add(rolledUp);
    }
    return { objects, commonPrefixes: [...prefixes].sort(byBytes), isTruncated };
  };
}
