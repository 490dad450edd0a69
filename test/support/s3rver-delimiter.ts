// Makes s3rver's ListObjects with a Delimiter behave as S3 does for keys more than one level below the prefix.
//
// s3rver 3.7 stores keys as nested directories and, when listing with a delimiter, does not walk into a directory
// whose path below the prefix already holds the delimiter (lib/stores/filesystem.js, listObjects). So
// `AWSLogs/123/CloudTrail/us-east-1/2023/07/10/x.json.gz` gives no CommonPrefixes for Prefix "AWSLogs/", where S3
// answers "AWSLogs/123/". This wraps the store: list without the delimiter, then roll keys up into common prefixes.
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

/** Patches the in-process s3rver (tests run it in their own process); idempotent. */
export function fixS3rverDelimiter(): void {
  if (patched) return;
  patched = true;
  const store = createRequire(import.meta.url)("s3rver/lib/stores/filesystem.js") as {
    prototype: { listObjects: ListObjects };
  };
  const original = store.prototype.listObjects;
  store.prototype.listObjects = async function (bucket, options) {
    const { delimiter, prefix = "", maxKeys = Number.POSITIVE_INFINITY } = options;
    if (!delimiter) return original.call(this, bucket, options);
    const all = await original.call(this, bucket, { ...options, delimiter: "", maxKeys: Number.POSITIVE_INFINITY });
    const prefixes = new Set<string>();
    const objects: { key: string }[] = [];
    let isTruncated = false;
    for (const object of all.objects) {
      const at = object.key.indexOf(delimiter, prefix.length);
      const rolledUp = at === -1 ? undefined : object.key.slice(0, at + delimiter.length);
      if (rolledUp !== undefined && prefixes.has(rolledUp)) continue;
      if (objects.length + prefixes.size >= maxKeys) {
        isTruncated = true;
        break;
      }
      if (rolledUp === undefined) objects.push(object);
      else prefixes.add(rolledUp);
    }
    return { objects, commonPrefixes: [...prefixes].sort(), isTruncated };
  };
}
