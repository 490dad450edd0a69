// Tests an attacker would write (issue 13): whoever can send to the queue writes the messages, so every bucket,
// region and key in them is hostile until parsed. The built CLI is fed every hostile value in every notification shape
// while a plain TCP listener on loopback counts connections: a refused reference must reach no host at all, and end
// as one InvalidReference dead letter. Then --buckets: an object outside the list is refused before any request.
import { createServer, type Server } from "node:net";
import { gzipSync } from "node:zlib";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { deadLetters, events, parseOutput, runCli } from "../support/cli.js";
import { inSqsRecord, snsNotification } from "../support/messages.js";
import { S3_REGION, S3RVER_CREDENTIALS, type S3Test, s3Env, startS3 } from "../support/s3.js";

const KEY =
  "AWSLogs/111122223333/CloudTrail/us-east-1/2023/07/10/111122223333_CloudTrail_us-east-1_20230710T1200Z_a.json.gz";

/** Counts every TCP connection made to it and drops each at once. */
interface Listener {
  port: number;
  connections: number;
  close(): Promise<void>;
}

async function listen(): Promise<Listener> {
  const state = { connections: 0 };
  const server: Server = createServer((socket) => {
    state.connections++;
    socket.destroy();
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  if (address === null || typeof address === "string") throw new Error("no port");
  return {
    port: address.port,
    get connections() {
      return state.connections;
    },
    set connections(n: number) {
      state.connections = n;
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

let listener: Listener;
let s3: S3Test;

beforeAll(async () => {
  listener = await listen();
  s3 = await startS3();
  await s3.createBucket("trail-bucket");
  await s3.createBucket("other-bucket");
  const log = (id: string) =>
    gzipSync(JSON.stringify({ Records: [{ eventVersion: "1.08", eventID: id, eventTime: "2023-07-10T12:00:00Z" }] }));
  await s3.putObject("trail-bucket", KEY, log("from-trail"), "gzip");
  await s3.putObject("other-bucket", KEY, log("forged"), "gzip");
});

afterAll(async () => {
  await listener?.close();
  await s3?.close();
});

beforeEach(() => {
  listener.connections = 0;
});

/** Credentials and region for a run against AWS's own endpoints (no endpoint override). */
const AWS_ENV = {
  AWS_ACCESS_KEY_ID: S3RVER_CREDENTIALS.accessKeyId,
  AWS_SECRET_ACCESS_KEY: S3RVER_CREDENTIALS.secretAccessKey,
  AWS_REGION: S3_REGION,
  AWS_EC2_METADATA_DISABLED: "true",
};

// ---------------------------------------------------------------------------------------------------------------
// The notification shapes, each with the field its refusal names.

const sns = (message: string) => snsNotification(message);
/** fluent-plugin-sqs 2.x/3.x record, as in_sqs emits it. */
const sqsRecord = (body: string) => inSqsRecord(body, "rh", "https://sqs.us-east-1.amazonaws.com/111122223333/q");

const cloudTrail = (bucket: string, key = KEY) => JSON.stringify({ s3Bucket: bucket, s3ObjectKey: [key] });

/** S3 event notifications' key encoding; a key that has none (a lone surrogate) goes raw, as a sender could send it. */
function formEncode(key: string): string {
  try {
    return encodeURIComponent(key).replace(/%2F/g, "/");
  } catch {
    return key;
  }
}

function s3Event(bucket: string, region: string, key = KEY): string {
  return JSON.stringify({
    Records: [
      {
        eventVersion: "2.1",
        eventSource: "aws:s3",
        awsRegion: region,
        eventName: "ObjectCreated:Put",
        s3: { bucket: { name: bucket }, object: { key: formEncode(key), size: 1 } },
      },
    ],
  });
}

function eventBridge(bucket: string, region: string, key = KEY): string {
  return JSON.stringify({
    version: "0",
    id: "6c540ad4-0671-9974-6511-756fbd7771c3",
    "detail-type": "Object Created",
    source: "aws.s3",
    account: "111122223333",
    time: "2023-07-10T12:00:00Z",
    region,
    resources: [`arn:aws:s3:::${bucket}`],
    detail: { version: "0", bucket: { name: bucket }, object: { key, size: 1 }, reason: "PutObject" },
  });
}

interface Case {
  name: string;
  line: string;
  /** The field the refusal must name. */
  field: string;
}

/** Every shape naming a hostile bucket. */
function bucketCases(bucket: string): Case[] {
  const cases: Case[] = [
    { name: "CloudTrail notification", line: cloudTrail(bucket), field: "s3Bucket" },
    { name: "CloudTrail notification through SNS", line: sns(cloudTrail(bucket)), field: "s3Bucket" },
    { name: "CloudTrail notification, SNS, in_sqs", line: sqsRecord(sns(cloudTrail(bucket))), field: "s3Bucket" },
    { name: "S3 event", line: s3Event(bucket, "us-east-1"), field: "s3.bucket.name" },
    { name: "S3 event through SNS", line: sns(s3Event(bucket, "us-east-1")), field: "s3.bucket.name" },
    { name: "S3 event, in_sqs", line: sqsRecord(s3Event(bucket, "us-east-1")), field: "s3.bucket.name" },
    { name: "EventBridge", line: eventBridge(bucket, "us-east-1"), field: "detail.bucket.name" },
    { name: "EventBridge, in_sqs", line: sqsRecord(eventBridge(bucket, "us-east-1")), field: "detail.bucket.name" },
  ];
  // An s3:// line ends its bucket at the first "/", and a line break would end the line.
  if (!/[/\r\n]/.test(bucket) && bucket !== "") {
    cases.push({ name: "s3:// line", line: `s3://${bucket}/${KEY}`, field: "the s3:// URL's bucket" });
  }
  return cases.map((c) => ({ ...c, name: `${c.name}, bucket ${JSON.stringify(bucket.slice(0, 40))}` }));
}

/** Every shape that carries a region, naming a hostile one. */
function regionCases(region: string): Case[] {
  return [
    { name: "S3 event", line: s3Event("trail-bucket", region), field: "awsRegion" },
    { name: "S3 event through SNS", line: sns(s3Event("trail-bucket", region)), field: "awsRegion" },
    { name: "S3 event, SNS, in_sqs", line: sqsRecord(sns(s3Event("trail-bucket", region))), field: "awsRegion" },
    { name: "EventBridge", line: eventBridge("trail-bucket", region), field: "region" },
    { name: "EventBridge, in_sqs", line: sqsRecord(eventBridge("trail-bucket", region)), field: "region" },
  ].map((c) => ({ ...c, name: `${c.name}, region ${JSON.stringify(region)}` }));
}

/** Every shape naming a hostile key. */
function keyCases(key: string): Case[] {
  return [
    { name: "CloudTrail notification", line: cloudTrail("trail-bucket", key), field: "s3ObjectKey" },
    { name: "S3 event through SNS", line: sns(s3Event("trail-bucket", "us-east-1", key)), field: "s3.object.key" },
    { name: "EventBridge", line: eventBridge("trail-bucket", "us-east-1", key), field: "detail.object.key" },
  ].map((c) => ({ ...c, name: `${c.name}, key ${JSON.stringify(key)}` }));
}

function hostileCases(port: number): Case[] {
  const buckets = [
    `x@127.0.0.1:${port}/#`,
    `x@127.0.0.1:${port}`,
    "127.0.0.1",
    `127.0.0.1:${port}`,
    `localhost:${port}`,
    "a:b",
    "bucket#",
    "bucket?x=1",
    "bucket/..",
    "..",
    "BUCKET",
    "my_bucket",
    "a",
    "",
    "b".repeat(64),
    "bücket",
    "%2e%2e",
    "bucket\n",
    "xn--bucket",
    "ap-abcdefgh-s3alias",
    `x@127.0.0.1:${port}/${"#".repeat(5000)}`,
  ];
  const regions = [
    `x@127.0.0.1:${port}/#`,
    `us-east-1@127.0.0.1:${port}`,
    `127.0.0.1:${port}`,
    "us-east-1.evil.com",
    "us-east-1/",
    "us-east-1#",
    `us-east-1:${port}`,
    "%2e",
    "us-east-1\n",
    "US-EAST-1",
  ];
  const keys = ["AWSLogs/../../other-bucket/x.json.gz", "a\u0000b", "a\nb", "a\ud800b", "k".repeat(1025)];
  const cases = [...buckets.flatMap(bucketCases), ...regions.flatMap(regionCases), ...keys.flatMap(keyCases)];
  cases.push({
    name: "s3:// line whose bucket carries a user and port",
    line: `s3://x@127.0.0.1:${port}/#/${KEY}`,
    field: "the s3:// URL's bucket",
  });
  return cases;
}

/** Runs the CLI over every case (one line each) and checks one InvalidReference dead letter per line, in order. */
async function expectAllRefused(cases: Case[], args: string[], env: Record<string, string>): Promise<void> {
  const input = `${cases.map((c) => c.line).join("\n")}\n`;
  const run = await runCli(["--retry-for", "0", ...args], input, env);
  expect(run.code, run.stderr).toBe(0);
  const records = parseOutput(run.stdout);
  expect(events(records)).toEqual([]);
  const dead = deadLetters(records);
  expect(dead).toHaveLength(cases.length);
  cases.forEach((c, i) => {
    const record = dead[i] as { error: { code: string; message: string } };
    expect(record.error.code, c.name).toBe("InvalidReference");
    expect(record.error.message.startsWith(`${c.field} "`), `${c.name}: ${record.error.message}`).toBe(true);
    // The value is quoted, not echoed whole.
    expect(record.error.message.length, c.name).toBeLessThan(400);
  });
  const summary = run.log.find((l) => l.msg === "summary");
  expect(summary).toMatchObject({ records: cases.length, objects: 0, deadLetters: cases.length });
}

describe("hostile references reach no host", () => {
  it("the listener does count: a valid reference with --endpoint at it connects (the other tests are not vacuous)", async () => {
    const run = await runCli(
      ["--endpoint", `http://127.0.0.1:${listener.port}`, "--retry-for", "0"],
      `s3://trail-bucket/${KEY}\n`,
      AWS_ENV,
    );
    expect(run.code).toBe(0);
    expect(listener.connections).toBeGreaterThan(0);
    expect(deadLetters(parseOutput(run.stdout))).toMatchObject([{ error: { code: "FetchFailed" } }]);
  });

  it("every hostile bucket, region and key, in every shape, with --endpoint at the listener: no connection", async () => {
    const cases = hostileCases(listener.port);
    await expectAllRefused(cases, ["--endpoint", `http://127.0.0.1:${listener.port}`], AWS_ENV);
    expect(listener.connections).toBe(0);
  });

  it("the same with AWS's own endpoints, where the region becomes part of the host: no connection", async () => {
    // No --endpoint: a region would be pasted into https://s3.REGION.amazonaws.com. The values are refused before
    // any request, so no host name is even looked up.
    const cases = hostileCases(listener.port);
    await expectAllRefused(cases, [], AWS_ENV);
    expect(listener.connections).toBe(0);
  });

  it("a message with hostile and valid objects: the valid one is read, the hostile ones listed in one dead letter", async () => {
    const body = JSON.stringify({
      Records: [
        ...(JSON.parse(s3Event(`x@127.0.0.1:${listener.port}/#`, "us-east-1")) as { Records: unknown[] }).Records,
        ...(JSON.parse(s3Event("trail-bucket", `x@127.0.0.1:${listener.port}/#`)) as { Records: unknown[] }).Records,
        ...(JSON.parse(s3Event("trail-bucket", "us-east-1")) as { Records: unknown[] }).Records,
      ],
    });
    const run = await runCli([], `${sqsRecord(sns(body))}\n`, s3Env(s3.endpoint));
    expect(run.code).toBe(0);
    const records = parseOutput(run.stdout);
    expect(events(records).map((e) => e.eventID)).toEqual(["from-trail"]);
    // One dead letter per message for its refused objects, listing them (issue 20: never a copy per object).
    const bucketRefusal = `s3.bucket.name "x@127.0.0.1:${listener.port}/#" holds "@" (only lowercase letters, digits, "." and "-")`;
    expect(deadLetters(records)).toEqual([
      {
        _tag: "cloudtrail.deadletter",
        error: {
          code: "InvalidReference",
          message: `2 objects of the message were refused; the first: ${bucketRefusal}`,
        },
        input: JSON.parse(sqsRecord(sns(body))),
        refusedCount: 2,
        refused: [
          { message: bucketRefusal, key: KEY },
          {
            message: `awsRegion "x@127.0.0.1:${listener.port}/#" is not an AWS region name (like us-east-1)`,
            bucket: "trail-bucket",
            key: KEY,
          },
        ],
      },
    ]);
    expect(listener.connections).toBe(0);
  });
});

describe("a record's queue_url reaches no host but SQS's (or the configured endpoint)", () => {
  const body = JSON.stringify({ s3Bucket: "trail-bucket", s3ObjectKey: [KEY] });
  const hostile = (port: number) => [
    `http://127.0.0.1:${port}/111122223333/q`,
    `https://127.0.0.1:${port}/111122223333/q`,
    `https://sqs.us-east-1.amazonaws.com@127.0.0.1:${port}/111122223333/q`,
    `https://sqs.us-east-1.amazonaws.com.127.0.0.1.nip.io:${port}/111122223333/q`,
    `https://sqs.us-east-1.amazonaws.com:${port}/111122223333/q`,
    `https://sqs.us-east-1.amazonaws.com/111122223333/q?Action=Delete&x=http://127.0.0.1:${port}`,
    `https://sqs.us-east-1.amazonaws.com/111122223333/../../q`,
    `https://sqs.x@127.0.0.1:${port}.amazonaws.com/111122223333/q`,
  ];

  it("refused queue URLs: no connection, the events still out, the refusal logged (quoted, cut short) and counted", async () => {
    const urls = hostile(listener.port);
    const input = urls.map((url, i) => inSqsRecord(body, `rh-${i}`, url)).join("\n");
    const run = await runCli(
      ["--endpoint", s3.endpoint, "--delete-sqs-messages", "--visibility-timeout", "30"],
      `${input}\n`,
      { ...AWS_ENV, AWS_ENDPOINT_URL_S3: s3.endpoint },
    );
    expect(run.code).toBe(0);
    expect(events(parseOutput(run.stdout))).toHaveLength(urls.length);
    expect(deadLetters(parseOutput(run.stdout))).toEqual([]);
    expect(listener.connections).toBe(0);
    const refusals = run.log.filter((line) => line.msg === "SQS message not acknowledged: its queue_url is refused");
    // Each message once, though it is asked about when tracked and again when settled.
    expect(refusals.length).toBe(urls.length);
    for (const line of refusals) expect(String(line.reason)).toMatch(/^queue_url "/);
    expect(run.log.find((line) => line.msg === "summary")).toMatchObject({
      sqsDeletes: 0,
      sqsQueueUrlsRefused: urls.length,
    });
  });

  it("the listener does count: the same records with AWS_ENDPOINT_URL_SQS at it connect", async () => {
    const url = `http://127.0.0.1:${listener.port}/111122223333/q`;
    const run = await runCli(
      ["--endpoint", s3.endpoint, "--delete-sqs-messages"],
      `${inSqsRecord(body, "rh-0", url)}\n`,
      { ...AWS_ENV, AWS_ENDPOINT_URL_S3: s3.endpoint, AWS_ENDPOINT_URL_SQS: `http://127.0.0.1:${listener.port}` },
    );
    expect(run.code).toBe(0);
    expect(listener.connections).toBeGreaterThan(0);
  });
});

describe("--buckets", () => {
  const shapes = (bucket: string) => [
    cloudTrail(bucket),
    sqsRecord(sns(cloudTrail(bucket))),
    s3Event(bucket, "us-east-1"),
    sns(s3Event(bucket, "us-east-1")),
    eventBridge(bucket, "us-east-1"),
    `s3://${bucket}/${KEY}`,
  ];

  it("an object in another bucket is a BucketNotAllowed dead letter, and no request is made", async () => {
    const lines = shapes("other-bucket");
    const run = await runCli(
      ["--endpoint", `http://127.0.0.1:${listener.port}`, "--buckets", "trail-bucket,audit-bucket"],
      `${lines.join("\n")}\n`,
      AWS_ENV,
    );
    expect(run.code).toBe(0);
    const records = parseOutput(run.stdout);
    expect(events(records)).toEqual([]);
    const dead = deadLetters(records);
    expect(dead).toHaveLength(lines.length);
    for (const record of dead) {
      expect(record).toMatchObject({
        error: { code: "BucketNotAllowed", message: 'the bucket "other-bucket" is not one of --buckets' },
        bucket: "other-bucket",
        key: KEY,
      });
    }
    expect(listener.connections).toBe(0);
  });

  it("an object in a listed bucket is read as usual; the other bucket's forged events never come out", async () => {
    const lines = [...shapes("trail-bucket"), ...shapes("other-bucket")];
    const run = await runCli(["--buckets", "trail-bucket"], `${lines.join("\n")}\n`, s3Env(s3.endpoint));
    expect(run.code).toBe(0);
    const records = parseOutput(run.stdout);
    expect(events(records).map((e) => e.eventID)).toEqual(Array(6).fill("from-trail"));
    expect(deadLetters(records).map((r) => (r.error as { code: string }).code)).toEqual(
      Array(6).fill("BucketNotAllowed"),
    );
  });

  it("without --buckets, the other bucket is read: this is what the option is for", async () => {
    const run = await runCli([], `s3://other-bucket/${KEY}\n`, s3Env(s3.endpoint));
    expect(events(parseOutput(run.stdout)).map((e) => e.eventID)).toEqual(["forged"]);
  });

  it.each([
    ["a bucket name that does not parse", ["--buckets", "trail-bucket,x@127.0.0.1:1/#"], 'holds "@"'],
    ["an empty list", ["--buckets", " , "], "comma-separated list"],
    ["import of another bucket", ["--buckets", "trail-bucket", "import", "s3://other-bucket"], "not one of --buckets"],
    ["import, --buckets after it", ["import", "s3://other-bucket/AWSLogs/", "--buckets", "trail-bucket"], "not one"],
    ["import of a bucket that does not parse", ["import", "s3://x@127.0.0.1:1/AWSLogs/"], 'holds "@"'],
  ])("%s is a usage error (exit 2) before any request", async (_name, args, message) => {
    const run = await runCli(["--endpoint", `http://127.0.0.1:${listener.port}`, ...args], "", AWS_ENV);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain(message);
    expect(run.stdout.length).toBe(0);
    expect(listener.connections).toBe(0);
  });

  it("import of a listed bucket lists and reads it", async () => {
    const run = await runCli(["import", "s3://trail-bucket", "--buckets", "trail-bucket"], "", s3Env(s3.endpoint));
    expect(run.code).toBe(0);
    expect(events(parseOutput(run.stdout)).map((e) => e.eventID)).toEqual(["from-trail"]);
  });
});
