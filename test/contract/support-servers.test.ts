// The loopback servers the other tests lean on, checked against the real AWS SDK clients.
import { execFile } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { type IncomingMessage, request } from "node:http";
import { gzipSync } from "node:zlib";
import { GetObjectCommand, HeadObjectCommand, ListObjectsV2Command, S3Client } from "@aws-sdk/client-s3";
import {
  ChangeMessageVisibilityBatchCommand,
  ChangeMessageVisibilityCommand,
  DeleteMessageBatchCommand,
  DeleteMessageCommand,
  ReceiveMessageCommand,
  SendMessageBatchCommand,
  SQSClient,
} from "@aws-sdk/client-sqs";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { type FaultS3, startFaultS3 } from "../support/fault-s3.js";
import { type S3Test, s3Env, startS3 } from "../support/s3.js";
import { MAX_BODY_BYTES, type SqsTest, startSqs } from "../support/sqs-server.js";

const credentials = { accessKeyId: "TEST", secretAccessKey: "TEST" };

/** Keys that trip up URL encoding: space, plus, equals, percent, non-ASCII, reserved characters. */
const ODD_KEYS = [
  "AWSLogs/123456789012/CloudTrail/us-east-1/2023/07/10/plain.json.gz",
  "odd prefix/a+b=c/日本/file name.json.gz",
  "percent%2Bliteral/x%20y.json.gz",
  "ümlaut/é à/ñ.json.gz",
  "reserved/~!*'()&$@,;:[]#?.gz",
];

async function bytesOf(body: { transformToByteArray(): Promise<Uint8Array> } | undefined): Promise<Buffer> {
  if (body === undefined) throw new Error("no body");
  return Buffer.from(await body.transformToByteArray());
}

/** The SDK error's name, status and fault, the way the filter classifies errors. */
async function sdkError(promise: Promise<unknown>) {
  try {
    await promise;
  } catch (err) {
    const e = err as { name?: string; code?: string; $fault?: string; $metadata?: { httpStatusCode?: number } };
    return { name: e.name, code: e.code, fault: e.$fault, status: e.$metadata?.httpStatusCode };
  }
  throw new Error("expected the call to fail");
}

interface RawResponse {
  status: number;
  headers: IncomingMessage["headers"];
  body: Buffer;
  /** How the response ended: "end" (complete), or the error that cut it short. */
  ending: string;
}

/** A plain http.request that reports what arrived even when the connection is cut. */
function raw(url: string, options: { method?: string; headers?: Record<string, string>; timeoutMs?: number } = {}) {
  return new Promise<RawResponse | { error: string }>((resolve) => {
    const req = request(
      url,
      { method: options.method ?? "GET", headers: options.headers ?? {}, agent: false },
      (res) => {
        const chunks: Buffer[] = [];
        const done = (ending: string) =>
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks), ending });
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => done("end"));
        res.on("error", (err: NodeJS.ErrnoException) => done(err.code ?? err.message));
      },
    );
    if (options.timeoutMs !== undefined)
      req.setTimeout(options.timeoutMs, () => req.destroy(new Error("client timeout")));
    req.on("error", (err: NodeJS.ErrnoException) => resolve({ error: err.code ?? err.message }));
    req.end();
  });
}

describe("s3rver (startS3)", () => {
  let s3: S3Test;
  beforeAll(async () => {
    s3 = await startS3();
    await s3.createBucket("trail-bucket");
  });
  afterAll(async () => {
    const dir = s3.directory;
    await s3.close();
    expect(existsSync(dir)).toBe(false);
  });

  it("listens on 127.0.0.1 and a free port", () => {
    expect(s3.endpoint).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(s3.endpoint).not.toMatch(/:4568$/);
  });

  it("round-trips gzip and arbitrary binary bytes exactly, under keys that need encoding", async () => {
    const gz = gzipSync(Buffer.from(JSON.stringify({ Records: [{ eventName: "ListBuckets", n: 1.688560107857e9 }] })));
    const binary = Buffer.concat([Buffer.from(Array.from({ length: 256 }, (_, i) => i)), randomBytes(64 * 1024)]);
    const put: [string, Buffer][] = ODD_KEYS.map((key, i) => [key, i % 2 === 0 ? gz : binary]);
    for (const [key, bytes] of put) await s3.putObject("trail-bucket", key, bytes, "gzip");
    await s3.putObject("trail-bucket", "text.json", '{"Records":[]}\n');

    for (const [key, bytes] of put) {
      const got = await s3.client.send(new GetObjectCommand({ Bucket: "trail-bucket", Key: key }));
      expect(got.ContentEncoding).toBe("gzip");
      expect(got.ContentLength).toBe(bytes.length);
      expect((await bytesOf(got.Body)).equals(bytes), key).toBe(true);
    }
    const text = await s3.client.send(new GetObjectCommand({ Bucket: "trail-bucket", Key: "text.json" }));
    expect(text.ContentEncoding).toBeUndefined();
    expect((await bytesOf(text.Body)).toString("utf8")).toBe('{"Records":[]}\n');

    const listed = await s3.client.send(new ListObjectsV2Command({ Bucket: "trail-bucket" }));
    expect(new Set(listed.Contents?.map((o) => o.Key))).toEqual(new Set([...ODD_KEYS, "text.json"]));
  });

  it("answers missing keys and buckets the way S3 does", async () => {
    expect(await sdkError(s3.client.send(new GetObjectCommand({ Bucket: "trail-bucket", Key: "nope" })))).toMatchObject(
      {
        name: "NoSuchKey",
        status: 404,
        fault: "client",
      },
    );
    expect(await sdkError(s3.client.send(new GetObjectCommand({ Bucket: "no-such-bucket", Key: "k" })))).toMatchObject({
      name: "NoSuchBucket",
      status: 404,
    });
  });

  it("s3Env is all a child process's SDK needs to reach it (no explicit client config)", async () => {
    const key = ODD_KEYS[1] ?? "";
    const bytes = gzipSync(Buffer.from("child"));
    await s3.putObject("trail-bucket", key, bytes, "gzip");
    const script = `
      import { S3Client, GetObjectCommand } from "@aws-sdk/client-s3";
      import { createHash } from "node:crypto";
      const client = new S3Client({});
      const got = await client.send(new GetObjectCommand({ Bucket: "trail-bucket", Key: process.argv[1] }));
      const body = Buffer.from(await got.Body.transformToByteArray());
      process.stdout.write(createHash("sha256").update(body).digest("hex"));
    `;
    const env: NodeJS.ProcessEnv = { PATH: process.env.PATH ?? "", HOME: "/nonexistent", ...s3Env(s3.endpoint) };
    const stdout = await new Promise<string>((resolve, reject) => {
      execFile(
        process.execPath,
        ["--no-warnings", "--input-type=module", "-e", script, key],
        { cwd: process.cwd(), env, timeout: 30_000 },
        (err, out, errOut) => (err ? reject(new Error(`${err.message}\n${errOut}`)) : resolve(out)),
      );
    });
    expect(stdout).toBe(createHash("sha256").update(bytes).digest("hex"));
  });
});

describe("fault-injecting S3 (startFaultS3)", () => {
  let s3: FaultS3;
  let client: S3Client;
  const body = gzipSync(Buffer.from(JSON.stringify({ Records: Array.from({ length: 50 }, (_, i) => ({ i })) })));
  const KEY = "AWSLogs/1/CloudTrail/us-east-1/a b+c=d/日本.json.gz";

  beforeEach(async () => {
    s3 = await startFaultS3();
    s3.putObject("bkt", KEY, body, { contentEncoding: "gzip" });
    client = new S3Client({
      endpoint: s3.endpoint,
      region: "us-east-1",
      forcePathStyle: true,
      credentials,
      maxAttempts: 1,
    });
  });
  afterEach(async () => {
    client.destroy();
    await s3.close();
  });

  const get = (key = KEY, c: S3Client = client) => c.send(new GetObjectCommand({ Bucket: "bkt", Key: key }));

  it("serves objects byte-exact to the SDK, with the key decoded, and records the request", async () => {
    const got = await get();
    expect(got.ContentEncoding).toBe("gzip");
    expect((await bytesOf(got.Body)).equals(body)).toBe(true);
    const head = await client.send(new HeadObjectCommand({ Bucket: "bkt", Key: KEY }));
    expect(head.ContentLength).toBe(body.length);
    expect(s3.requests.map((r) => [r.method, r.bucket, r.key, r.outcome])).toEqual([
      ["GET", "bkt", KEY, "ok"],
      ["HEAD", "bkt", KEY, "ok"],
    ]);
    expect(s3.requests[0]?.url).toMatch(/^\/bkt\/AWSLogs\/1\/CloudTrail\/us-east-1\/a%20b%2Bc%3Dd\//);
    expect(s3.requests[0]?.time).toBeGreaterThan(0);
  });

  it("honours Range requests", async () => {
    const res = await raw(`${s3.endpoint}/bkt/${encodeURIComponent(KEY)}`, { headers: { range: "bytes=10-" } });
    expect(res).toMatchObject({ status: 206, ending: "end" });
    if ("error" in res) return;
    expect(res.headers["content-range"]).toBe(`bytes 10-${body.length - 1}/${body.length}`);
    expect(res.body.equals(body.subarray(10))).toBe(true);
  });

  it("answers 404 NoSuchKey, 404 NoSuchBucket and 403 AccessDenied with S3 XML errors", async () => {
    s3.deny("bkt", "secret.json.gz");
    expect(await sdkError(get("missing"))).toMatchObject({ name: "NoSuchKey", status: 404, fault: "client" });
    expect(await sdkError(get("secret.json.gz"))).toMatchObject({ name: "AccessDenied", status: 403, fault: "client" });
    expect(await sdkError(client.send(new GetObjectCommand({ Bucket: "other", Key: "k" })))).toMatchObject({
      name: "NoSuchBucket",
      status: 404,
    });
    const res = await raw(`${s3.endpoint}/bkt/missing`);
    if ("error" in res) throw new Error(res.error);
    expect(res.headers["content-type"]).toBe("application/xml");
    expect(res.body.toString()).toMatch(/<Error><Code>NoSuchKey<\/Code><Message>[^<]+<\/Message><Key>missing<\/Key>/);
    // HEAD errors have no body, so the SDK can only name them after the status.
    expect(await sdkError(client.send(new HeadObjectCommand({ Bucket: "bkt", Key: "missing" })))).toMatchObject({
      name: "NotFound",
      status: 404,
    });
  });

  it("fails with scripted statuses in order, then serves normally", async () => {
    s3.failKey("bkt", KEY, { status: 503, code: "SlowDown" }, { status: 500 });
    expect(await sdkError(get())).toMatchObject({ name: "SlowDown", status: 503, fault: "server" });
    expect(await sdkError(get())).toMatchObject({ name: "InternalError", status: 500, fault: "server" });
    expect((await bytesOf((await get()).Body)).equals(body)).toBe(true);
    expect(s3.requestsFor("bkt", KEY).map((r) => r.outcome)).toEqual(["SlowDown", "InternalError", "ok"]);
    expect(s3.pendingFaults()).toBe(0);
  });

  it("lets the SDK's own retries through: two 500s then success with maxAttempts 3", async () => {
    const retrying = new S3Client({
      endpoint: s3.endpoint,
      region: "us-east-1",
      forcePathStyle: true,
      credentials,
      maxAttempts: 3,
    });
    try {
      s3.failKey("bkt", KEY, { status: 500 }, { status: 500 });
      expect((await bytesOf((await get(KEY, retrying)).Body)).equals(body)).toBe(true);
      const times = s3.requestsFor("bkt", KEY).map((r) => r.monotonic);
      expect(times).toHaveLength(3);
    } finally {
      retrying.destroy();
    }
  });

  it("global faults hit any key before per-key faults", async () => {
    s3.putObject("bkt", "other", "x");
    s3.failAll({ status: 503, code: "SlowDown" });
    s3.failKey("bkt", KEY, { status: 500 });
    expect(await sdkError(get("other"))).toMatchObject({ name: "SlowDown" });
    expect(await sdkError(get())).toMatchObject({ name: "InternalError" });
    expect((await get("other")).ContentLength).toBe(1);
  });

  it("reset: the connection dies without a response", async () => {
    s3.failKey("bkt", KEY, "reset");
    expect(await raw(`${s3.endpoint}/bkt/${encodeURIComponent(KEY)}`)).toEqual({ error: "ECONNRESET" });
    s3.failKey("bkt", KEY, "reset");
    expect(await sdkError(get())).toMatchObject({ code: "ECONNRESET" });
  });

  it("truncate: full Content-Length, then n bytes, then the connection is cut", async () => {
    s3.failKey("bkt", KEY, { truncate: 100 });
    const res = await raw(`${s3.endpoint}/bkt/${encodeURIComponent(KEY)}`);
    if ("error" in res) throw new Error(res.error);
    expect(res.status).toBe(200);
    expect(Number(res.headers["content-length"])).toBe(body.length);
    expect(res.body.equals(body.subarray(0, 100))).toBe(true);
    expect(res.ending).not.toBe("end");

    // Through the SDK the headers arrive fine and reading the body fails.
    s3.failKey("bkt", KEY, { truncate: 100 });
    const got = await get();
    await expect(bytesOf(got.Body)).rejects.toThrow();
  });

  it("stall: never answers, and close() still ends promptly", async () => {
    s3.failKey("bkt", KEY, "stall");
    const started = performance.now();
    expect(await raw(`${s3.endpoint}/bkt/${encodeURIComponent(KEY)}`, { timeoutMs: 200 })).toEqual({
      error: "client timeout",
    });
    expect(performance.now() - started).toBeGreaterThanOrEqual(190);

    s3.failKey("bkt", KEY, "stall");
    const pending = raw(`${s3.endpoint}/bkt/${encodeURIComponent(KEY)}`);
    while (s3.requestsFor("bkt", KEY).length < 2) await new Promise((r) => setTimeout(r, 10));
    const closing = performance.now();
    await s3.close();
    expect(performance.now() - closing).toBeLessThan(1000);
    expect(await pending).toMatchObject({ error: expect.stringMatching(/ECONNRESET|socket hang up/) });
  });

  it("delay: the normal answer, late", async () => {
    s3.failKey("bkt", KEY, { delay: 150 });
    const started = performance.now();
    expect((await bytesOf((await get()).Body)).equals(body)).toBe(true);
    expect(performance.now() - started).toBeGreaterThanOrEqual(140);
  });
});

describe("SQS JSON-protocol server (startSqs)", () => {
  let sqs: SqsTest;
  let client: SQSClient;
  beforeEach(async () => {
    sqs = await startSqs();
    client = new SQSClient({ endpoint: sqs.endpoint, region: "us-east-1", credentials, maxAttempts: 1 });
  });
  afterEach(async () => {
    client.destroy();
    await sqs.close();
  });

  it("DeleteMessage", async () => {
    await client.send(new DeleteMessageCommand({ QueueUrl: sqs.queueUrl, ReceiptHandle: "h-1" }));
    expect(sqs.deleted).toEqual(["h-1"]);
    expect(sqs.calls).toMatchObject([
      { action: "DeleteMessage", input: { QueueUrl: sqs.queueUrl, ReceiptHandle: "h-1" }, status: 200 },
    ]);
  });

  it("DeleteMessageBatch reports Successful and Failed entries", async () => {
    sqs.rejectHandle("h-bad");
    const out = await client.send(
      new DeleteMessageBatchCommand({
        QueueUrl: sqs.queueUrl,
        Entries: [
          { Id: "0", ReceiptHandle: "h-1" },
          { Id: "1", ReceiptHandle: "h-bad" },
          { Id: "2", ReceiptHandle: "h-2" },
        ],
      }),
    );
    expect(out.Successful).toEqual([{ Id: "0" }, { Id: "2" }]);
    expect(out.Failed).toEqual([
      { Id: "1", SenderFault: true, Code: "ReceiptHandleIsInvalid", Message: expect.any(String) },
    ]);
    expect(sqs.deleted).toEqual(["h-1", "h-2"]);
    expect(sqs.succeeded("DeleteMessageBatch")).toHaveLength(1);
  });

  it("SendMessageBatch queues each body, fails entries on cue, and refuses a batch over 256 KiB", async () => {
    sqs.failEntries(1);
    const out = await client.send(
      new SendMessageBatchCommand({
        QueueUrl: sqs.queueUrl,
        Entries: [
          { Id: "0", MessageBody: "first" },
          { Id: "1", MessageBody: "second" },
          { Id: "2", MessageBody: "third" },
        ],
      }),
    );
    // The SDK checks each MD5OfMessageBody against what it sent: the call would fail if one were wrong.
    expect(out.Failed).toEqual([{ Id: "0", SenderFault: false, Code: "InternalError", Message: expect.any(String) }]);
    expect(out.Successful?.map((e) => e.Id)).toEqual(["1", "2"]);
    expect(sqs.remaining().map((m) => m.body)).toEqual(["second", "third"]);

    const half = "y".repeat(MAX_BODY_BYTES / 2 + 1);
    await expect(
      client.send(
        new SendMessageBatchCommand({
          QueueUrl: sqs.queueUrl,
          Entries: [
            { Id: "a", MessageBody: half },
            { Id: "b", MessageBody: half },
          ],
        }),
      ),
    ).rejects.toMatchObject({ name: "BatchRequestTooLong" });
    expect(sqs.remaining()).toHaveLength(2);
  });

  it("runs the before-delete hook, and the delete waits for it", async () => {
    sqs.send("body-1");
    const [message] = (await client.send(new ReceiveMessageCommand({ QueueUrl: sqs.queueUrl }))).Messages ?? [];
    const seen: string[] = [];
    sqs.beforeDelete(async (m) => {
      await new Promise((resolve) => setTimeout(resolve, 50));
      seen.push(m.body);
    });
    await client.send(new DeleteMessageCommand({ QueueUrl: sqs.queueUrl, ReceiptHandle: message?.ReceiptHandle }));
    expect(seen).toEqual(["body-1"]);
    expect(sqs.remaining()).toEqual([]);
  });

  it("ChangeMessageVisibility and ChangeMessageVisibilityBatch", async () => {
    await client.send(
      new ChangeMessageVisibilityCommand({ QueueUrl: sqs.queueUrl, ReceiptHandle: "h-1", VisibilityTimeout: 0 }),
    );
    sqs.rejectHandle("h-gone", "MessageNotInflight");
    const out = await client.send(
      new ChangeMessageVisibilityBatchCommand({
        QueueUrl: sqs.queueUrl,
        Entries: [
          { Id: "a", ReceiptHandle: "h-2", VisibilityTimeout: 30 },
          { Id: "b", ReceiptHandle: "h-gone", VisibilityTimeout: 30 },
        ],
      }),
    );
    expect(out.Successful).toEqual([{ Id: "a" }]);
    expect(out.Failed).toMatchObject([
      { Id: "b", Code: "AWS.SimpleQueueService.MessageNotInflight", SenderFault: true },
    ]);
    expect(sqs.visibilityChanges).toEqual([
      ["h-1", 0],
      ["h-2", 30],
    ]);
  });

  it("errors carry the names the SDK models", async () => {
    sqs.rejectHandle("h-bad");
    expect(
      await sdkError(client.send(new DeleteMessageCommand({ QueueUrl: sqs.queueUrl, ReceiptHandle: "h-bad" }))),
    ).toMatchObject({ name: "ReceiptHandleIsInvalid", fault: "client" });
    expect(
      await sdkError(
        client.send(new DeleteMessageCommand({ QueueUrl: `${sqs.endpoint}/123456789012/nope`, ReceiptHandle: "h" })),
      ),
    ).toMatchObject({ name: "QueueDoesNotExist", status: 400 });
    expect(
      await sdkError(client.send(new DeleteMessageBatchCommand({ QueueUrl: sqs.queueUrl, Entries: [] }))),
    ).toMatchObject({ name: "EmptyBatchRequest" });
    const eleven = Array.from({ length: 11 }, (_, i) => ({ Id: `${i}`, ReceiptHandle: `h-${i}` }));
    expect(
      await sdkError(client.send(new DeleteMessageBatchCommand({ QueueUrl: sqs.queueUrl, Entries: eleven }))),
    ).toMatchObject({ name: "TooManyEntriesInBatchRequest" });
    expect(
      await sdkError(
        client.send(
          new ChangeMessageVisibilityCommand({ QueueUrl: sqs.queueUrl, ReceiptHandle: "h", VisibilityTimeout: 43_201 }),
        ),
      ),
    ).toMatchObject({ name: "InvalidParameterValue", status: 400 });
    expect(sqs.deleted).toEqual([]);
  });

  it("fails the next N calls with a 500 or throttling, which the SDK classifies and retries", async () => {
    sqs.failNext(1, "500");
    expect(
      await sdkError(client.send(new DeleteMessageCommand({ QueueUrl: sqs.queueUrl, ReceiptHandle: "h-1" }))),
    ).toMatchObject({ name: "InternalFailure", status: 500, fault: "server" });
    sqs.failNext(1, "throttle");
    expect(
      await sdkError(client.send(new DeleteMessageCommand({ QueueUrl: sqs.queueUrl, ReceiptHandle: "h-1" }))),
    ).toMatchObject({ name: "ThrottlingException", status: 400 });

    const retrying = new SQSClient({ endpoint: sqs.endpoint, region: "us-east-1", credentials, maxAttempts: 3 });
    try {
      sqs.failNext(2, "500");
      await retrying.send(new DeleteMessageCommand({ QueueUrl: sqs.queueUrl, ReceiptHandle: "h-2" }));
    } finally {
      retrying.destroy();
    }
    expect(sqs.calls.map((c) => c.status)).toEqual([500, 400, 500, 500, 200]);
    expect(sqs.deleted).toEqual(["h-2"]);
  });

  it("is reached through the queue URL alone (the SDK uses the QueueUrl's host when no endpoint is set)", async () => {
    // The SDK warns (through its logger, console by default) that it is using the QueueUrl's host.
    const warnings: unknown[] = [];
    const logger = { debug() {}, info() {}, warn: (...args: unknown[]) => warnings.push(args), error() {} };
    const plain = new SQSClient({ region: "us-east-1", credentials, maxAttempts: 1, logger });
    try {
      await plain.send(new DeleteMessageCommand({ QueueUrl: sqs.queueUrl, ReceiptHandle: "h-9" }));
    } finally {
      plain.destroy();
    }
    expect(sqs.deleted).toEqual(["h-9"]);
    expect(warnings).toHaveLength(1);
  });
});
