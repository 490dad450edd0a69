// Table tests for the parsers of untrusted S3 coordinates: every normal value passes unchanged, every hostile one is
// refused with a reason.
import { describe, expect, it } from "vitest";
import {
  isInvalid,
  parseBucketName,
  parseObjectKey,
  parseQueueUrl,
  parseRegion,
  refusalMessage,
  sqsHostRegion,
} from "../../src/model/names.js";

import { QUEUE_URL_REGIONS } from "../support/names.js";

describe("parseRegion", () => {
  it.each([
    "us-east-1",
    "us-west-2",
    "eu-central-2",
    "ap-southeast-5",
    "ap-northeast-1",
    "il-central-1",
    "me-central-1",
    "mx-central-1",
    "ca-west-1",
    "sa-east-1",
    "af-south-1",
    "cn-north-1",
    "cn-northwest-1",
    "us-gov-west-1",
    "us-gov-east-1",
    "us-iso-east-1",
    "us-isob-east-1",
    "us-isof-south-1",
    "eu-isoe-west-1",
  ])("%j is a region", (value) => {
    expect(parseRegion(value)).toBe(value);
  });

  it.each([
    "x@127.0.0.1:8080/#",
    "",
    "us-east-1.evil.com",
    "us-east-1/",
    "us-east-1#",
    "us-east-1?",
    "us-east-1:443",
    "evil.com/us-east-1",
    "US-EAST-1",
    "us_east_1",
    "us-east",
    "useast1",
    "u-east-1",
    "us-east-123",
    "us--east-1",
    "-us-east-1",
    "us-east-1-",
    " us-east-1",
    "us-east-1\n",
    "us-east-1%2e",
    "us-éast-1",
    "aws-global",
    "127.0.0.1",
    `us-${"a".repeat(40)}-1`,
  ])("%j is refused", (value) => {
    expect(parseRegion(value)).toEqual({ reason: expect.any(String) });
  });
});

describe("parseBucketName", () => {
  it.each([
    "abc",
    "trail-bucket",
    "my.trail.bucket",
    "aws-cloudtrail-logs-111122223333-3c5a8e9b",
    "1bucket",
    "bucket1",
    "a-b",
    "a.b",
    "your-bucket-name",
    "amzn-s3-demo-bucket",
    "a".repeat(63),
    "192.168.5.bucket",
    "xn-bucket",
    "s3alias",
  ])("%j is a bucket name", (value) => {
    expect(parseBucketName(value)).toBe(value);
  });

  it.each([
    ["x@127.0.0.1:8080/#", "@"],
    ["127.0.0.1", "IP address"],
    ["10.0.0.255", "IP address"],
    ["a:b", '":"'],
    ["bucket#", '"#"'],
    ["bucket/..", '"/"'],
    ["bucket/key", '"/"'],
    ["bucket?x", '"?"'],
    ["user@bucket", '"@"'],
    ["BUCKET", '"B"'],
    ["Bucket", '"B"'],
    ["my_bucket", '"_"'],
    ["a", "3 to 63"],
    ["ab", "3 to 63"],
    ["", "3 to 63"],
    ["a".repeat(64), "3 to 63"],
    ["..", "3 to 63"],
    ["...", "start and end"],
    ["a..b", '".."'],
    [".bucket", "start and end"],
    ["bucket.", "start and end"],
    ["-bucket", "start and end"],
    ["bucket-", "start and end"],
    ["xn--bucket", "xn--"],
    ["sthree-bucket", "sthree-"],
    ["my-ap-abcdefgh-s3alias", "-s3alias"],
    ["my-ol-ap--ol-s3", "--ol-s3"],
    ["mfzwi23gnjvgw.mrap", ".mrap"],
    ["bucket--usw2-az1--x-s3", "--x-s3"],
    ["tables--table-s3", "--table-s3"],
    ["bücket", '"ü"'],
    ["bucket\n", '"\\n"'],
    ["%2e%2e%2f", '"%"'],
    ["buc ket", '" "'],
    ["bucket.evil.com:443", '":"'],
  ])("%j is refused (%s)", (value, why) => {
    const parsed = parseBucketName(value);
    expect(parsed).toEqual({ reason: expect.stringContaining(why) });
  });
});

describe("parseObjectKey", () => {
  it.each([
    "AWSLogs/111122223333/CloudTrail/us-east-1/2024/01/02/111122223333_CloudTrail_us-east-1_20240102T0000Z_a.json.gz",
    "my trails/AWSLogs/1/CloudTrail/a+b=cログ.json.gz",
    "a",
    "a%2Fb",
    "%2e%2e/x",
    "x/..a/b",
    "x/.../b",
    "x/.hidden",
    "folder/",
    "/leading",
    "double//slash",
    "emoji 😀.json",
    "k".repeat(1024),
    "é".repeat(512),
    "@:#?&=",
  ])("%j is a key", (value) => {
    expect(parseObjectKey(value)).toBe(value);
  });

  it.each([
    ["", "empty"],
    ["k".repeat(1025), "1025 bytes"],
    ["é".repeat(513), "1026 bytes"],
    ["a\u0000b", "control"],
    ["a\nb", "control"],
    ["a\rb", "control"],
    ["a\tb", "control"],
    ["a\u001bb", "control"],
    ["a\u007fb", "control"],
    ["a\u009bb", "control"],
    ["a\ud800b", "surrogate"],
    ["a\udc00", "surrogate"],
    ["\udc00\ud800", "surrogate"],
    ["..", "segment"],
    [".", "segment"],
    ["a/../b", "segment"],
    ["a/./b", "segment"],
    ["trail/../other-bucket/x", "segment"],
    ["a/..", "segment"],
  ])("%j is refused (%s)", (value, why) => {
    expect(parseObjectKey(value)).toEqual({ reason: expect.stringContaining(why) });
  });
});

describe("parseQueueUrl", () => {
  it.each([
    "https://sqs.us-east-1.amazonaws.com/111122223333/cloudtrail",
    "https://sqs.eu-west-1.amazonaws.com/111122223333/backfill.fifo",
    "https://sqs-fips.us-gov-west-1.amazonaws.com/111122223333/q",
    "https://sqs.cn-north-1.amazonaws.com.cn/111122223333/q_1-x",
    "https://eu-west-1.queue.amazonaws.com/111122223333/q",
    "https://queue.amazonaws.com/111122223333/q",
    "https://sqs.ap-south-1.api.aws/111122223333/q",
    "https://vpce-0a1b2c3d-abcd1234.sqs.us-east-1.vpce.amazonaws.com/111122223333/q",
  ])("accepts %s", (url) => {
    expect(parseQueueUrl(url)).toBe(url);
  });

  it.each([
    ["http://sqs.us-east-1.amazonaws.com/111122223333/q", "is not https"],
    ["https://sqs.us-east-1.amazonaws.com:8443/111122223333/q", "is not on an AWS SQS host"],
    ["https://sqs.us-east-1.amazonaws.com.evil.example/111122223333/q", "is not on an AWS SQS host"],
    ["https://evil.example/111122223333/q", "is not on an AWS SQS host"],
    ["https://user:pw@sqs.us-east-1.amazonaws.com/111122223333/q", "holds credentials"],
    ["https://sqs.us-east-1.amazonaws.com/111122223333/q?x=1", "holds credentials, a query"],
    ["https://sqs.us-east-1.amazonaws.com/111122223333/q#f", "a fragment"],
    ["https://sqs.us-east-1.amazonaws.com/11112222333/q", "is not /ACCOUNT/QUEUE-NAME"],
    ["https://sqs.us-east-1.amazonaws.com/111122223333/q/x", "is not /ACCOUNT/QUEUE-NAME"],
    ["https://sqs.us-east-1.amazonaws.com/111122223333/%71", "is not /ACCOUNT/QUEUE-NAME"],
    [`https://sqs.us-east-1.amazonaws.com/111122223333/${"q".repeat(81)}`, "is not /ACCOUNT/QUEUE-NAME"],
    ["https://sqs.us-east-1.amazonaws.com/111122223333/q\n", "white space or a control character"],
    ["https://sqs.us-east-1.amazonaws.com/111122223333/q\tx", "white space or a control character"],
    ["https://sqs.nowhere.amazonaws.com/111122223333/q", "names no AWS region"],
    ["sqs.us-east-1.amazonaws.com/111122223333/q", "is not a URL"],
  ])("refuses %s", (url, reason) => {
    const parsed = parseQueueUrl(url);
    expect(isInvalid(parsed) ? parsed.reason : parsed).toContain(reason);
  });

  it.each(QUEUE_URL_REGIONS)("accepts %s, whose host is in %s", (url, region) => {
    expect(parseQueueUrl(url)).toBe(url);
    expect(sqsHostRegion(new URL(url).hostname)).toBe(region);
  });

  it.each(["127.0.0.1", "sqs.us-east-1.amazonaws.com.evil.example", "sqs.nowhere.amazonaws.com", "example.com"])(
    "sqsHostRegion(%j) is undefined: not an AWS SQS host in a region",
    (host) => {
      expect(sqsHostRegion(host)).toBeUndefined();
    },
  );

  it("takes any plain path on a configured origin (an SQS-compatible service), and nothing odd even there", () => {
    const trusted = ["http://127.0.0.1:9324"];
    expect(parseQueueUrl("http://127.0.0.1:9324/queue/cloudtrail", trusted)).toBe(
      "http://127.0.0.1:9324/queue/cloudtrail",
    );
    expect(parseQueueUrl("http://127.0.0.1:9324/000000000000/q", trusted)).toBe("http://127.0.0.1:9324/000000000000/q");
    expect(isInvalid(parseQueueUrl("http://127.0.0.1:9324/queue/../x", trusted))).toBe(true);
    expect(isInvalid(parseQueueUrl("http://127.0.0.1:9324/queue/%2E%2e/x", trusted))).toBe(true);
    expect(isInvalid(parseQueueUrl("http://127.0.0.1:9324/queue\\..\\x", trusted))).toBe(true);
    expect(isInvalid(parseQueueUrl("http://127.0.0.1:9325/queue/x", trusted))).toBe(true);
    expect(isInvalid(parseQueueUrl("http://127.0.0.1:9324/queue/x", []))).toBe(true);
  });
});

describe("refusalMessage", () => {
  it("names the field, quotes the value JSON-escaped and says why", () => {
    const invalid = parseBucketName("x@127.0.0.1:8080/#");
    if (!isInvalid(invalid)) throw new Error("expected a refusal");
    expect(refusalMessage("s3.bucket.name", "x@127.0.0.1:8080/#", invalid)).toBe(
      's3.bucket.name "x@127.0.0.1:8080/#" holds "@" (only lowercase letters, digits, "." and "-")',
    );
  });

  it("quotes at most 100 characters of a long value and says how many more there were", () => {
    const value = `${"a".repeat(99)}😀${"b".repeat(5000)}`;
    const message = refusalMessage("key", value, { reason: "is bad" });
    expect(message).toBe(`key ${JSON.stringify("a".repeat(99))} (+5002 more characters) is bad`);
  });

  it("escapes control characters and lone surrogates", () => {
    expect(refusalMessage("key", "a\n\u0000\ud800", { reason: "is bad" })).toBe('key "a\\n\\u0000\\ud800" is bad');
  });
});
