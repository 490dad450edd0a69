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
} from "../../src/model/names.js";

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

/** Every AWS SQS host shape parseQueueUrl accepts, with the region its requests are signed for (names.test.ts, clients.test.ts). */
export const QUEUE_URL_REGIONS: [string, string][] = [
  ["https://sqs.us-east-1.amazonaws.com/111122223333/cloudtrail", "us-east-1"],
  ["https://sqs.eu-west-1.amazonaws.com/111122223333/backfill.fifo", "eu-west-1"],
  ["https://sqs-fips.us-gov-west-1.amazonaws.com/111122223333/q", "us-gov-west-1"],
  ["https://sqs-fips.us-east-2.amazonaws.com/111122223333/q", "us-east-2"],
  ["https://sqs.cn-north-1.amazonaws.com.cn/111122223333/q_1-x", "cn-north-1"],
  ["https://eu-west-1.queue.amazonaws.com/111122223333/q", "eu-west-1"],
  ["https://queue.amazonaws.com/111122223333/q", "us-east-1"],
  ["https://sqs.ap-south-1.api.aws/111122223333/q", "ap-south-1"],
  ["https://vpce-0a1b2c3d-abcd1234.sqs.us-east-1.vpce.amazonaws.com/111122223333/q", "us-east-1"],
  ["https://vpce-0a1b2c3d-abcd1234.sqs.cn-northwest-1.vpce.amazonaws.com.cn/111122223333/q", "cn-northwest-1"],
];
