// Parsed S3 coordinates for tests that build object references by hand: the parsers run, so a fixture cannot hold
// a value the program itself would refuse.
import {
  type BucketName,
  type Invalid,
  isInvalid,
  type ObjectKey,
  parseBucketName,
  parseObjectKey,
  parseRegion,
  type Region,
} from "../../src/names.js";

function must<T extends string>(parsed: T | Invalid, value: string): T {
  if (isInvalid(parsed)) throw new Error(`test fixture ${JSON.stringify(value)} ${parsed.reason}`);
  return parsed;
}

export const bucket = (value: string): BucketName => must(parseBucketName(value), value);
export const key = (value: string): ObjectKey => must(parseObjectKey(value), value);
export const region = (value: string): Region => must(parseRegion(value), value);

/** An `s3` ObjectRef. */
export const s3Ref = (bucketName: string, objectKey: string) =>
  ({ scheme: "s3", bucket: bucket(bucketName), key: key(objectKey) }) as const;
