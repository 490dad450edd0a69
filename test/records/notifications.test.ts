// Table tests for the notification decoder: every shape an SQS message body can take, and S3's key encoding.
import { describe, expect, it } from "vitest";
import { type Decoded, decodeBody, decodeFormKey } from "../../src/records/notifications.js";
import { NATIVE_BUCKET, NATIVE_KEYS, notificationText } from "../support/fixtures.js";

/** AWS documentation examples, copied into the project with the other fixtures. */
function fixture(name: string): Record<string, unknown> {
  return JSON.parse(notificationText(name));
}

const cloudTrailNative = fixture("cloudtrail-native.multi-key.json");
const eventBridgeCreated = fixture("eventbridge-object-created.json");
const s3TestEvent = fixture("s3-test-event.json");

const nativeRefs = NATIVE_KEYS.map((key) => ({ bucket: NATIVE_BUCKET, key }));

const LOG_KEY =
  "AWSLogs/111122223333/CloudTrail/eu-west-1/2024/03/05/111122223333_CloudTrail_eu-west-1_20240305T1200Z_abc.json.gz";
const ORG_LOG_KEY =
  "AWSLogs/o-exampleorgid/111122223333/CloudTrail/eu-west-1/2024/03/05/111122223333_CloudTrail_eu-west-1_20240305T1200Z_def.json.gz";
const DIGEST_KEY =
  "AWSLogs/111122223333/CloudTrail-Digest/eu-west-1/2024/03/05/111122223333_CloudTrail-Digest_eu-west-1_trail_eu-west-1_20240305T120000Z.json.gz";
const CUSTOM_PREFIX_DIGEST_KEY = `security/trails/${DIGEST_KEY}`;
const ORG_DIGEST_KEY =
  "AWSLogs/o-exampleorgid/111122223333/CloudTrail-Digest/eu-west-1/2024/03/05/111122223333_CloudTrail-Digest_eu-west-1_org_eu-west-1_20240305T120000Z.json.gz";
const INSIGHT_KEY =
  "AWSLogs/111122223333/CloudTrail-Insight/eu-west-1/2024/03/05/111122223333_CloudTrail-Insight_eu-west-1_20240305T1200Z_ghi.json.gz";

/** An SNS envelope as SNS delivers it to SQS without raw message delivery. */
function sns(message: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    Type: "Notification",
    MessageId: "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324",
    TopicArn: "arn:aws:sns:us-east-2:123456789012:MyTopic",
    Message: message,
    Timestamp: "2016-08-11T22:17:03.373Z",
    SignatureVersion: "1",
    Signature: "EXAMPLE",
    SigningCertURL: "https://sns.us-east-2.amazonaws.com/SimpleNotificationService-0000000000000000000000.pem",
    UnsubscribeURL:
      "https://sns.us-east-2.amazonaws.com/?Action=Unsubscribe&SubscriptionArn=arn:aws:sns:us-east-2:1:MyTopic:2",
    ...extra,
  };
}

/** One S3 event notification record, shaped like the AWS documentation's example. */
function s3Record(key: string, eventName = "ObjectCreated:Put", bucket = "trail-bucket", region = "eu-west-1") {
  return {
    eventVersion: "2.1",
    eventSource: "aws:s3",
    awsRegion: region,
    eventTime: "2024-03-05T12:00:41.123Z",
    eventName,
    userIdentity: { principalId: "AWS:AIDAEXAMPLE" },
    requestParameters: { sourceIPAddress: "203.0.113.5" },
    responseElements: {
      "x-amz-request-id": "C3D13FE58DE4C810",
      "x-amz-id-2": "FMyUVURIY8/IgAtTv8xRjskZQpcIZ9KG4V5Wp6S7S",
    },
    s3: {
      s3SchemaVersion: "1.0",
      configurationId: "cloudtrail-logs",
      bucket: { name: bucket, ownerIdentity: { principalId: "A3NL1KOZZKExample" }, arn: `arn:aws:s3:::${bucket}` },
      object: { key, size: 1024, eTag: "d41d8cd98f00b204e9800998ecf8427e", sequencer: "0055AED6DCD90281E5" },
    },
  };
}

function eventBridge(key: string, detailType = "Object Created"): Record<string, unknown> {
  const detail = eventBridgeCreated.detail as Record<string, unknown>;
  return {
    ...eventBridgeCreated,
    "detail-type": detailType,
    detail: { ...detail, object: { ...(detail.object as object), key } },
  };
}

const objects = (refs: unknown[], skips: unknown[] = [], refused: unknown[] = []): Decoded =>
  ({ kind: "objects", refs, skips, refused }) as Decoded;

describe("decodeBody: every notification shape", () => {
  it.each<[string, unknown, Decoded]>([
    [
      "CloudTrail notification through SNS (AWS example, three keys)",
      sns(JSON.stringify(cloudTrailNative)),
      objects(nativeRefs),
    ],
    ["CloudTrail notification, raw message delivery (AWS example, three keys)", cloudTrailNative, objects(nativeRefs)],
    [
      "CloudTrail notification with fields this filter does not know",
      { s3Bucket: "bkt", s3ObjectKey: [LOG_KEY], extra: { a: 1 }, version: 2 },
      objects([{ bucket: "bkt", key: LOG_KEY }]),
    ],
    [
      "CloudTrail notification: org trail and Insight keys are logs",
      { s3Bucket: "bkt", s3ObjectKey: [ORG_LOG_KEY, INSIGHT_KEY] },
      objects([
        { bucket: "bkt", key: ORG_LOG_KEY },
        { bucket: "bkt", key: INSIGHT_KEY },
      ]),
    ],
    [
      "CloudTrail notification: keys are plain, a '+' stays a '+'",
      { s3Bucket: "bkt", s3ObjectKey: ["my+prefix/AWSLogs/1/CloudTrail/x%2B.json.gz"] },
      objects([{ bucket: "bkt", key: "my+prefix/AWSLogs/1/CloudTrail/x%2B.json.gz" }]),
    ],
    [
      "CloudTrail notification with a single key that is not in a list",
      { s3Bucket: "bkt", s3ObjectKey: LOG_KEY },
      objects([{ bucket: "bkt", key: LOG_KEY }]),
    ],
    [
      "CloudTrail notification with an empty key list (skipped)",
      { s3Bucket: "bkt", s3ObjectKey: [] },
      objects([], [{ reason: expect.stringContaining("empty s3ObjectKey") }]),
    ],
    [
      "CloudTrail notification: digests under a custom prefix and of an org trail are skipped, logs kept",
      { s3Bucket: "bkt", s3ObjectKey: [LOG_KEY, CUSTOM_PREFIX_DIGEST_KEY, ORG_DIGEST_KEY, DIGEST_KEY] },
      objects(
        [{ bucket: "bkt", key: LOG_KEY }],
        [
          { reason: "digest file", bucket: "bkt", key: CUSTOM_PREFIX_DIGEST_KEY },
          { reason: "digest file", bucket: "bkt", key: ORG_DIGEST_KEY },
          { reason: "digest file", bucket: "bkt", key: DIGEST_KEY },
        ],
      ),
    ],
    [
      "CloudTrail notification: a digest folder at the bucket's root is skipped",
      { s3Bucket: "bkt", s3ObjectKey: ["CloudTrail-Digest/x.json.gz"] },
      objects([], [{ reason: "digest file", bucket: "bkt", key: "CloudTrail-Digest/x.json.gz" }]),
    ],
    [
      "CloudTrail validation message through SNS (skipped quietly)",
      sns("CloudTrail validation message."),
      objects([], [{ reason: "CloudTrail validation message" }]),
    ],
    [
      "CloudTrail validation message with surrounding whitespace",
      sns("\n  CloudTrail validation message.\n"),
      objects([], [{ reason: "CloudTrail validation message" }]),
    ],
    [
      "SNS SubscriptionConfirmation (skipped, says how to confirm)",
      {
        ...sns("You have chosen to subscribe to the topic arn:aws:sns:us-east-2:123456789012:MyTopic."),
        Type: "SubscriptionConfirmation",
        Token:
          "2336412f37fb687f5d51e6e241d09c805a5a57b30d712f794cc5f6a988666d92768dd60a747ba6f3beb71854e285d6ad02428b09ceece29417f1f02d609c582afbacc99c583a916b9981dd2728f4ae6fdb82efd087cc3b7849e05798d2d2785c03b0879594eeac82c01f235d0e717736",
        SubscribeURL: "https://sns.us-east-2.amazonaws.com/?Action=ConfirmSubscription&TopicArn=x&Token=y",
      },
      objects([], [{ reason: expect.stringContaining("SubscriptionConfirmation") }]),
    ],
    [
      "SNS UnsubscribeConfirmation (skipped)",
      { ...sns("You have chosen to deactivate subscription"), Type: "UnsubscribeConfirmation" },
      objects([], [{ reason: expect.stringContaining("UnsubscribeConfirmation") }]),
    ],
    [
      "S3 event notification, direct, several records, one not ObjectCreated (skipped)",
      {
        Records: [
          s3Record(LOG_KEY),
          s3Record(DIGEST_KEY),
          s3Record(ORG_LOG_KEY, "ObjectCreated:CompleteMultipartUpload", "org-bucket", "us-east-1"),
          s3Record(INSIGHT_KEY, "ObjectRemoved:Delete"),
          s3Record(LOG_KEY, "ObjectCreated:Copy"),
        ],
      },
      objects(
        [
          { bucket: "trail-bucket", key: LOG_KEY, region: "eu-west-1" },
          { bucket: "org-bucket", key: ORG_LOG_KEY, region: "us-east-1" },
          { bucket: "trail-bucket", key: LOG_KEY, region: "eu-west-1" },
        ],
        [
          { reason: "S3 event ObjectRemoved:Delete", bucket: "trail-bucket", key: INSIGHT_KEY },
          { reason: "digest file", bucket: "trail-bucket", key: DIGEST_KEY },
        ],
      ),
    ],
    [
      "S3 event notification through SNS (Subject: Amazon S3 Notification)",
      sns(JSON.stringify({ Records: [s3Record(LOG_KEY), s3Record(ORG_LOG_KEY, "ObjectRestore:Completed")] }), {
        Subject: "Amazon S3 Notification",
      }),
      objects(
        [{ bucket: "trail-bucket", key: LOG_KEY, region: "eu-west-1" }],
        [{ reason: "S3 event ObjectRestore:Completed", bucket: "trail-bucket", key: ORG_LOG_KEY }],
      ),
    ],
    [
      "S3 event notification with a newer eventVersion (not pinned)",
      { Records: [{ ...s3Record(LOG_KEY), eventVersion: "2.5" }] },
      objects([{ bucket: "trail-bucket", key: LOG_KEY, region: "eu-west-1" }]),
    ],
    [
      "S3 event notification: the key is form-decoded",
      { Records: [s3Record("my+trails/AWSLogs/1/CloudTrail/a%2Bb%3Dc%E3%83%AD%E3%82%B0.json.gz")] },
      objects([
        { bucket: "trail-bucket", key: "my trails/AWSLogs/1/CloudTrail/a+b=cログ.json.gz", region: "eu-west-1" },
      ]),
    ],
    [
      "S3 event notification: a digest under a custom prefix (encoded) is skipped after decoding",
      { Records: [s3Record("my+trails/AWSLogs/1/CloudTrail-Digest/eu-west-1/x.json.gz")] },
      objects(
        [],
        [
          {
            reason: "digest file",
            bucket: "trail-bucket",
            key: "my trails/AWSLogs/1/CloudTrail-Digest/eu-west-1/x.json.gz",
          },
        ],
      ),
    ],
    [
      "S3 event notification: a folder marker is skipped",
      { Records: [s3Record("AWSLogs/111122223333/CloudTrail/"), s3Record(LOG_KEY)] },
      objects(
        [{ bucket: "trail-bucket", key: LOG_KEY, region: "eu-west-1" }],
        [{ reason: "folder marker", bucket: "trail-bucket", key: "AWSLogs/111122223333/CloudTrail/" }],
      ),
    ],
    [
      "S3 event notification without an awsRegion",
      { Records: [{ ...s3Record(LOG_KEY), awsRegion: "" }] },
      objects([{ bucket: "trail-bucket", key: LOG_KEY }]),
    ],
    [
      "S3 event notification with an empty Records list (skipped)",
      { Records: [] },
      objects([], [{ reason: expect.stringContaining("without records") }]),
    ],
    ["S3 test event (AWS example, skipped)", s3TestEvent, objects([], [{ reason: "S3 test event" }])],
    [
      "S3 test event through SNS (skipped)",
      sns(JSON.stringify(s3TestEvent), { Subject: "Amazon S3 Notification" }),
      objects([], [{ reason: "S3 test event" }]),
    ],
    [
      "EventBridge Object Created (AWS example)",
      eventBridgeCreated,
      objects([{ bucket: "username-sfn-tutorial", key: "test.png", region: "us-east-1" }]),
    ],
    [
      "EventBridge Object Created with a '+' in the key: the decoded form is the fallback",
      eventBridge("AWSLogs/1/CloudTrail/a+b%2Bc.json.gz"),
      objects([
        {
          bucket: "username-sfn-tutorial",
          key: "AWSLogs/1/CloudTrail/a+b%2Bc.json.gz",
          fallbackKey: "AWSLogs/1/CloudTrail/a b+c.json.gz",
          region: "us-east-1",
        },
      ]),
    ],
    [
      "EventBridge Object Created for a digest (skipped)",
      eventBridge(ORG_DIGEST_KEY),
      objects([], [{ reason: "digest file", bucket: "username-sfn-tutorial", key: ORG_DIGEST_KEY }]),
    ],
    [
      "EventBridge Object Deleted (skipped)",
      eventBridge(LOG_KEY, "Object Deleted"),
      objects([], [{ reason: "EventBridge Object Deleted", bucket: "username-sfn-tutorial", key: LOG_KEY }]),
    ],
  ])("%s", (_name, body, expected) => {
    expect(decodeBody(body)).toEqual(expected);
  });
});

describe("decodeBody: what is not a notification", () => {
  it.each<[string, unknown, "UnknownShape" | "MessageNotJson"]>([
    ["null", null, "UnknownShape"],
    ["a number", 42, "UnknownShape"],
    ["a string", "CloudTrail validation message.", "UnknownShape"],
    ["an array", [cloudTrailNative], "UnknownShape"],
    ["an object of unknown shape", { hello: "world" }, "UnknownShape"],
    ["an empty object", {}, "UnknownShape"],
    ["an SNS Message that is neither JSON nor the validation message", sns("hello"), "MessageNotJson"],
    ["an SNS Message that is JSON of unknown shape", sns('{"a":1}'), "UnknownShape"],
    ["an SNS Message that is a JSON array", sns("[1,2]"), "UnknownShape"],
    [
      "an SNS envelope inside an SNS envelope",
      sns(JSON.stringify(sns(JSON.stringify(cloudTrailNative)))),
      "UnknownShape",
    ],
    ["s3ObjectKey holding a number", { s3Bucket: "bkt", s3ObjectKey: [LOG_KEY, 7] }, "UnknownShape"],
    [
      "a CloudTrail log file rather than a notification",
      { Records: [{ eventVersion: "1.08", eventSource: "s3.amazonaws.com", eventName: "GetObject" }] },
      "UnknownShape",
    ],
    ["S3 Records with one entry that is not a record", { Records: [s3Record(LOG_KEY), 5] }, "UnknownShape"],
    [
      "an S3 record without a bucket name",
      { Records: [{ ...s3Record(LOG_KEY), s3: { object: { key: LOG_KEY } } }] },
      "UnknownShape",
    ],
    ["an S3 record whose key is not a string", { Records: [s3Record(42 as unknown as string)] }, "UnknownShape"],
    [
      "an EventBridge event without detail.object",
      { ...eventBridgeCreated, detail: { bucket: { name: "b" } } },
      "UnknownShape",
    ],
    ["an EventBridge event from another service", { ...eventBridgeCreated, source: "aws.ec2" }, "UnknownShape"],
  ])("%s is an error (%s)", (_name, body, code) => {
    const decoded = decodeBody(body);
    expect(decoded).toEqual({ kind: "error", code, message: expect.any(String) });
  });

  it("names the keys of an unknown object in its message", () => {
    expect(decodeBody({ foo: 1, bar: 2 })).toMatchObject({
      kind: "error",
      message: expect.stringContaining("foo, bar"),
    });
  });
});

const HOSTILE = "x@127.0.0.1:9/#";

/** An EventBridge event with another bucket and region. */
function eventBridgeAt(bucketName: string, region: string, key = LOG_KEY): Record<string, unknown> {
  const event = eventBridge(key);
  const detail = event.detail as Record<string, unknown>;
  return { ...event, region, detail: { ...detail, bucket: { name: bucketName } } };
}

const refusal = (message: string, at: { bucket?: string; key?: string } = {}) => ({
  code: "InvalidReference",
  message: expect.stringContaining(message),
  ...at,
});

describe("decodeBody: references that do not parse are refused, the others kept", () => {
  it.each<[string, unknown, Decoded]>([
    [
      "CloudTrail notification with a hostile s3Bucket: every key refused, keys kept to find them by",
      { s3Bucket: HOSTILE, s3ObjectKey: [LOG_KEY, INSIGHT_KEY] },
      objects(
        [],
        [],
        [
          refusal(`s3Bucket "${HOSTILE}" holds "@"`, { key: LOG_KEY }),
          refusal(`s3Bucket "${HOSTILE}" holds "@"`, { key: INSIGHT_KEY }),
        ],
      ),
    ],
    [
      "CloudTrail notification through SNS with a bucket that is an IP address",
      sns(JSON.stringify({ s3Bucket: "127.0.0.1", s3ObjectKey: [LOG_KEY] })),
      objects([], [], [refusal('s3Bucket "127.0.0.1" is an IP address', { key: LOG_KEY })]),
    ],
    [
      "CloudTrail notification: a bad key is refused, the good one read",
      { s3Bucket: "bkt", s3ObjectKey: ["AWSLogs/../other/x.json.gz", LOG_KEY, ""] },
      objects(
        [{ bucket: "bkt", key: LOG_KEY }],
        [],
        [
          refusal('s3ObjectKey "AWSLogs/../other/x.json.gz" holds a "." or ".." path segment', { bucket: "bkt" }),
          refusal('s3ObjectKey "" is empty', { bucket: "bkt" }),
        ],
      ),
    ],
    [
      "S3 event notification with a hostile awsRegion: refused, bucket and key kept",
      { Records: [s3Record(LOG_KEY, "ObjectCreated:Put", "trail-bucket", HOSTILE)] },
      objects(
        [],
        [],
        [refusal(`awsRegion "${HOSTILE}" is not an AWS region name`, { bucket: "trail-bucket", key: LOG_KEY })],
      ),
    ],
    [
      "S3 event notification with a region that is a host name",
      { Records: [s3Record(LOG_KEY, "ObjectCreated:Put", "trail-bucket", "us-east-1.evil.com")] },
      objects([], [], [refusal('awsRegion "us-east-1.evil.com"', { bucket: "trail-bucket", key: LOG_KEY })]),
    ],
    [
      "S3 event notification through SNS: one record with a hostile bucket refused, the other read",
      sns(JSON.stringify({ Records: [s3Record(LOG_KEY, "ObjectCreated:Put", "a:b"), s3Record(ORG_LOG_KEY)] })),
      objects(
        [{ bucket: "trail-bucket", key: ORG_LOG_KEY, region: "eu-west-1" }],
        [],
        [refusal('s3.bucket.name "a:b" holds ":"', { key: LOG_KEY })],
      ),
    ],
    [
      "S3 event notification: bucket and region both hostile, both named",
      { Records: [s3Record(LOG_KEY, "ObjectCreated:Put", "bucket#", "us-east-1/")] },
      objects(
        [],
        [],
        [
          refusal(
            's3.bucket.name "bucket#" holds "#" (only lowercase letters, digits, "." and "-"); awsRegion "us-east-1/"',
            { key: LOG_KEY },
          ),
        ],
      ),
    ],
    [
      "S3 event notification: a key that decodes to a NUL is refused (quoted escaped)",
      { Records: [s3Record("AWSLogs/a%00b.json.gz")] },
      objects(
        [],
        [],
        [refusal('s3.object.key "AWSLogs/a\\u0000b.json.gz" holds the control character', { bucket: "trail-bucket" })],
      ),
    ],
    [
      "S3 event notification: a key that decodes to a dot segment is refused",
      { Records: [s3Record("AWSLogs/%2e%2e/x.json.gz")] },
      objects([], [], [refusal('s3.object.key "AWSLogs/../x.json.gz"', { bucket: "trail-bucket" })]),
    ],
    [
      "S3 event notification: an event that would be skipped is refused all the same",
      { Records: [s3Record(LOG_KEY, "ObjectRemoved:Delete", "BUCKET")] },
      objects([], [], [refusal('s3.bucket.name "BUCKET" holds "B"', { key: LOG_KEY })]),
    ],
    [
      "EventBridge Object Created with a hostile region",
      eventBridgeAt("trail-bucket", HOSTILE),
      objects([], [], [refusal(`region "${HOSTILE}"`, { bucket: "trail-bucket", key: LOG_KEY })]),
    ],
    [
      "EventBridge Object Created with a hostile bucket",
      eventBridgeAt(HOSTILE, "us-east-1"),
      objects([], [], [refusal(`detail.bucket.name "${HOSTILE}"`, { key: LOG_KEY })]),
    ],
    [
      "EventBridge Object Created whose decoded key is no key: only the key as given is tried",
      eventBridge("AWSLogs/a%00b.json.gz"),
      objects([{ bucket: "username-sfn-tutorial", key: "AWSLogs/a%00b.json.gz", region: "us-east-1" }]),
    ],
  ])("%s", (_name, body, expected) => {
    expect(decodeBody(body)).toEqual(expected);
  });

  it("quotes at most 100 characters of a long hostile value", () => {
    const bucketName = `x@127.0.0.1:9/${"#".repeat(10_000)}`;
    const decoded = decodeBody({ s3Bucket: bucketName, s3ObjectKey: [LOG_KEY] });
    if (decoded.kind !== "objects") throw new Error("expected objects");
    const message = decoded.refused[0]?.message ?? "";
    expect(message).toContain(`(+${bucketName.length - 100} more characters)`);
    expect(message.length).toBeLessThan(250);
  });
});

describe("decodeFormKey", () => {
  it.each([
    ["noog+nork", "noog nork"],
    ["noog%2Bnork", "noog+nork"],
    ["noog%2bnork", "noog+nork"],
    ["a%3Db", "a=b"],
    ["%E3%83%AD%E3%82%B0/%E6%97%A5%E6%9C%AC%E8%AA%9E.json.gz", "ログ/日本語.json.gz"],
    [
      "AWSLogs/123456789012/CloudTrail/us-east-1/2024/01/02/x.json.gz",
      "AWSLogs/123456789012/CloudTrail/us-east-1/2024/01/02/x.json.gz",
    ],
    ["a%2Fb", "a/b"],
    ["a+%2B+b", "a + b"],
    ["%25", "%"],
    ["%2525", "%25"],
    ["", ""],
    ["100%", "100%"],
    ["a%zzb", "a%zzb"],
    ["a%E3%83b", "a%E3%83b"],
    ["stray%+plus", "stray% plus"],
  ])("%j decodes to %j", (raw, decoded) => {
    expect(decodeFormKey(raw)).toBe(decoded);
  });
});
