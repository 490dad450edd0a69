// `import … --enqueue QUEUE_URL` (issue 15): the import's listing sent to an SQS queue as CloudTrail notifications,
// against s3rver and the SQS stand-in, with the built CLI. Every file enqueued exactly once across an interrupted run
// resumed from its checkpoint; the messages fed back through the filter (as in_sqs hands them over) give every event
// once and leave the queue empty; SQS failures retried, partial batches resent, a failure for good exits 1.
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { ReceiveMessageCommand, SQSClient } from "@aws-sdk/client-sqs";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { emptyCounts, renderProgress } from "../../src/listing/progress.js";
import { Enqueuer } from "../../src/run/enqueuer.js";
import type { Logger } from "../../src/shared/log.js";
import { RetryPolicy } from "../../src/shared/retry.js";
import { deadLetters, events, parseOutput, runCli, startCli, summaryOf } from "../support/cli.js";
import { waitUntil } from "../support/fluentd.js";
import { inSqsRecord } from "../support/messages.js";
import { bucket } from "../support/names.js";
import { type S3Test, s3Env, startS3 } from "../support/s3.js";
import { MAX_BODY_BYTES, type SqsTest, startSqs } from "../support/sqs-server.js";

const A = "111111111111";
const B = "222222222222";
const EVENTS_PER_OBJECT = 3;

function logKey(account: string, region: string, day: string, id: string, type = "CloudTrail"): string {
  const [y, m, d] = day.split("-");
  return `AWSLogs/${account}/${type}/${region}/${y}/${m}/${d}/${account}_${type}_${region}_${y}${m}${d}T1200Z_${id}.json.gz`;
}

/** A log file whose events name their object: eventID `ID-n`. */
function logFile(id: string): Buffer {
  const records = Array.from({ length: EVENTS_PER_OBJECT }, (_, n) => ({
    eventVersion: "1.08",
    eventID: `${id}-${n}`,
    eventTime: "2023-07-10T12:00:00Z",
    eventName: "GetObject",
  }));
  return gzipSync(JSON.stringify({ Records: records }));
}

/** 60 files over two accounts, two regions and three days; a digest file and another service's file beside them. */
const FILES: Record<string, string> = {};
for (let n = 0; n < 60; n++) {
  const account = n % 2 === 0 ? A : B;
  const region = n % 3 === 0 ? "eu-west-1" : "us-east-1";
  const day = `2023-07-${String(9 + (n % 3)).padStart(2, "0")}`;
  FILES[`f${n}`] = logKey(account, region, day, `f${n}`);
}
const DIGEST = logKey(A, "us-east-1", "2023-07-10", "digest", "CloudTrail-Digest");
const CONFIG = `AWSLogs/${A}/Config/us-east-1/2023/7/10/ConfigHistory/${A}_Config_us-east-1_ConfigHistory_x.json.gz`;
const ALL_KEYS = Object.values(FILES).sort();

interface Notification {
  s3Bucket: string;
  s3ObjectKey: string[];
}

const bodies = (sqs: SqsTest, queueUrl?: string) =>
  sqs.remaining(queueUrl).map((m) => JSON.parse(m.body) as Notification);
const keysOn = (sqs: SqsTest, queueUrl?: string) => bodies(sqs, queueUrl).flatMap((b) => b.s3ObjectKey);
const credentials = { accessKeyId: "x", secretAccessKey: "x" };

describe("import --enqueue", () => {
  let s3: S3Test;
  let sqs: SqsTest;
  let env: Record<string, string>;
  let dir: string;

  beforeAll(async () => {
    s3 = await startS3();
    await s3.createBucket("trail");
    for (const [id, key] of Object.entries(FILES)) await s3.putObject("trail", key, logFile(id), "gzip");
    await s3.putObject("trail", DIGEST, gzipSync("{}"), "gzip");
    await s3.putObject("trail", CONFIG, gzipSync("{}"), "gzip");
    dir = mkdtempSync(join(tmpdir(), "ctef-enqueue-"));
  });
  afterAll(async () => {
    await s3?.close();
    rmSync(dir, { recursive: true, force: true });
  });
  beforeEach(async () => {
    sqs = await startSqs();
    env = { ...s3Env(s3.endpoint), AWS_ENDPOINT_URL_SQS: sqs.endpoint };
  });
  afterEach(async () => {
    await sqs.close();
  });

  it("sends every log file once, in CloudTrail's notification shape, several keys a message, ten messages a call", async () => {
    const run = await runCli(["import", "s3://trail", "--enqueue", sqs.queueUrl], "", env);
    expect(run.code).toBe(0);
    expect(run.stdout.toString()).toBe("");
    const sent = bodies(sqs);
    expect(keysOn(sqs).sort()).toEqual(ALL_KEYS); // no digest, no Config file, nothing twice
    for (const body of sent) {
      expect(Object.keys(body)).toEqual(["s3Bucket", "s3ObjectKey"]);
      expect(body.s3Bucket).toBe("trail");
      expect(body.s3ObjectKey.length).toBeLessThanOrEqual(10);
    }
    expect(sent).toHaveLength(6);
    const batches = sqs.succeeded("SendMessageBatch");
    expect(batches).toHaveLength(1);
    const bytes = Object.keys(FILES).reduce((sum, id) => sum + logFile(id).length, 0);
    expect(summaryOf(run)).toMatchObject({
      messages: 6,
      objects: 60,
      bytes,
      listed: 60,
      sendRequests: 1,
      failedObjects: 0,
      interrupted: false,
    });
  });

  it("--list with --enqueue is the dry run: the files listed, nothing sent", async () => {
    const run = await runCli(["import", "s3://trail", "--enqueue", sqs.queueUrl, "--list"], "", env);
    expect(run.code).toBe(0);
    expect(run.stdout.toString().trim().split("\n").sort()).toEqual(ALL_KEYS.map((key) => `s3://trail/${key}`));
    expect(sqs.calls).toEqual([]);
  });

  it("enqueues exactly what --list lists, with the same selection options", async () => {
    const selection = ["--since", "2023-07-10", "--accounts", A, "--regions", "us-east-1"];
    const listed = await runCli(["import", "s3://trail/AWSLogs", ...selection, "--list"], "", env);
    const urls = listed.stdout.toString().trim().split("\n");
    expect(urls.length).toBeGreaterThan(5);
    const run = await runCli(
      ["import", "s3://trail/AWSLogs", ...selection, "--enqueue", sqs.queueUrl, "--keys-per-message", "3"],
      "",
      env,
    );
    expect(run.code).toBe(0);
    expect(
      keysOn(sqs)
        .map((key) => `s3://trail/${key}`)
        .sort(),
    ).toEqual(urls.sort());
    for (const body of bodies(sqs)) expect(body.s3ObjectKey.length).toBeLessThanOrEqual(3);
  });

  it("an interrupted run resumed from its checkpoint enqueues every file exactly once", async () => {
    const checkpoint = join(dir, "interrupted.checkpoint");
    const args = ["import", "s3://trail", "--enqueue", sqs.queueUrl, "--keys-per-message", "1"];
    args.push("--checkpoint", checkpoint);
    // One call goes through; the next ones (four at most in flight) wait in SQS while the signal arrives: they were
    // sent, so they count; messages assembled but not sent by then are not.
    const hold = sqs.holdAfter("SendMessageBatch", 1);
    const first = startCli(args, env);
    first.child.stdin.end();
    await waitUntil("a held SendMessageBatch", () => hold.held() >= 1, 20_000);
    first.child.kill("SIGTERM");
    await waitUntil("the stopping log line", () => first.log().some((line) => line.msg === "stopping"), 20_000);
    hold.release();
    const stopped = await first.done;
    expect(stopped.code).toBe(0);
    const once = keysOn(sqs);
    expect(once.length).toBeGreaterThanOrEqual(20); // the call let through, and the held one(s)
    expect(once.length).toBeLessThan(60);
    expect(summaryOf(stopped)).toMatchObject({ interrupted: true, objects: once.length });
    const counts = summaryOf(stopped) as { objects: number; unsentObjects: number; listed: number };
    expect(counts.objects + counts.unsentObjects).toBe(counts.listed);
    const recorded = readFileSync(checkpoint, "utf8").trim().split("\n");
    expect(recorded.sort()).toEqual(once.map((key) => `s3://trail/${key}`).sort());

    const second = await runCli(args, "", env);
    expect(second.code).toBe(0);
    expect(summaryOf(second)).toMatchObject({ alreadyDone: once.length, objects: 60 - once.length });
    const keys = keysOn(sqs);
    expect(keys).toHaveLength(60);
    expect([...keys].sort()).toEqual(ALL_KEYS);
  });

  it("the enqueued messages fed back through the filter, as in_sqs hands them over, give every event once", async () => {
    const run = await runCli(["import", "s3://trail", "--enqueue", sqs.queueUrl, "--keys-per-message", "7"], "", env);
    expect(run.code).toBe(0);
    const client = new SQSClient({ endpoint: sqs.endpoint, region: "us-east-1", credentials });
    const records: string[] = [];
    try {
      for (;;) {
        const out = await client.send(
          new ReceiveMessageCommand({ QueueUrl: sqs.queueUrl, MaxNumberOfMessages: 10, VisibilityTimeout: 120 }),
        );
        if (out.Messages === undefined) break;
        for (const m of out.Messages) records.push(inSqsRecord(m.Body ?? "", m.ReceiptHandle ?? "", sqs.queueUrl));
      }
    } finally {
      client.destroy();
    }
    expect(records).toHaveLength(9); // 60 files, 7 a message
    const filtered = await runCli(["--delete-sqs-messages"], `${records.join("\n")}\n`, env);
    expect(filtered.code).toBe(0);
    const out = parseOutput(filtered.stdout);
    expect(deadLetters(out)).toEqual([]);
    const ids = events(out).map((e) => String(e.eventID));
    expect(ids).toHaveLength(60 * EVENTS_PER_OBJECT);
    expect(new Set(ids).size).toBe(ids.length);
    expect(sqs.remaining()).toEqual([]); // every message deleted once its events were written
  });

  it("retries SQS failures, resends the entries SQS failed on its side, and sends nothing twice", async () => {
    sqs.failEntries(4); // InternalError, SenderFault false
    const run = await runCli(["import", "s3://trail", "--enqueue", sqs.queueUrl, "--keys-per-message", "2"], "", env);
    expect(run.code).toBe(0);
    expect(keysOn(sqs).sort()).toEqual(ALL_KEYS);
    expect(summaryOf(run)).toMatchObject({ messages: 30, resent: 4, failedObjects: 0 });

    const again = await startSqs();
    try {
      // GetQueueAttributes takes the first failure (logged, the size limit assumed); the SDK and then the
      // enqueuer's own retries take the rest.
      again.failNext(6, "500");
      again.failNext(2, "throttle");
      const env2 = { ...env, AWS_ENDPOINT_URL_SQS: again.endpoint };
      const retried = await runCli(["import", "s3://trail", "--enqueue", again.queueUrl], "", env2);
      expect(retried.code).toBe(0);
      expect(keysOn(again).sort()).toEqual(ALL_KEYS);
      expect(retried.log.some((line) => line.msg === "SendMessageBatch failed, retrying")).toBe(true);
    } finally {
      await again.close();
    }
  });

  it("a failure for good (an entry SQS refuses) exits 1 naming it; the checkpoint lets a rerun finish the job", async () => {
    const checkpoint = join(dir, "refused.checkpoint");
    sqs.failEntries(1, { code: "InvalidMessageContents", senderFault: true });
    const args = ["import", "s3://trail", "--enqueue", sqs.queueUrl, "--keys-per-message", "1"];
    args.push("--checkpoint", checkpoint);
    const run = await runCli(args, "", env);
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/error: sending to .* failed: InvalidMessageContents; \d+ files not enqueued/);
    // Every listed file is accounted for: sent, refused, or listed and not sent once the run stopped.
    const summary = summaryOf(run) as { objects: number; failedObjects: number; unsentObjects: number; listed: number };
    expect(summary.failedObjects).toBe(1);
    expect(summary.objects + summary.failedObjects + summary.unsentObjects).toBe(summary.listed);
    expect(run.log.find((line) => line.msg === "enqueue failed")).toMatchObject({
      error: "InvalidMessageContents",
      objects: 1,
    });
    const sent = keysOn(sqs);
    expect(sent.length).toBeLessThan(60);
    const rerun = await runCli(args, "", env);
    expect(rerun.code).toBe(0);
    expect(keysOn(sqs).sort()).toEqual(ALL_KEYS);
  });

  it("a queue that does not exist exits 1 before listing; a call failing past --retry-for exits 1", async () => {
    const missing = await runCli(["import", "s3://trail", "--enqueue", `${sqs.endpoint}/${A}/nope`], "", env);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain("does not exist");
    expect(sqs.calls.map((c) => c.action)).toEqual(["GetQueueAttributes"]);

    sqs.failNext(1000, "500");
    const down = await runCli(["import", "s3://trail", "--enqueue", sqs.queueUrl, "--retry-for", "1"], "", env);
    expect(down.code).toBe(1);
    expect(down.stderr).toContain("failed: InternalFailure");
    expect(summaryOf(down)).toMatchObject({ objects: 0, failedObjects: 60 });
  });

  it("no AWS credentials at all: exit 1 at once, saying so, before anything is listed", async () => {
    const home = mkdtempSync(join(tmpdir(), "ctef-no-aws-"));
    try {
      const bare = {
        AWS_ACCESS_KEY_ID: "",
        AWS_SECRET_ACCESS_KEY: "",
        AWS_PROFILE: "",
        AWS_EC2_METADATA_DISABLED: "true",
        HOME: home,
        AWS_CONFIG_FILE: join(home, "config"),
        AWS_SHARED_CREDENTIALS_FILE: join(home, "credentials"),
        AWS_ENDPOINT_URL_S3: s3.endpoint,
        AWS_ENDPOINT_URL_SQS: sqs.endpoint,
      };
      const run = await runCli(["import", "s3://trail", "--enqueue", sqs.queueUrl], "", bare);
      expect(run.code).toBe(1);
      expect(run.stderr).toContain("no AWS credentials");
      expect(sqs.calls).toEqual([]);
    } finally {
      rmSync(home, { recursive: true, force: true });
    }
  });

  it("keeps each message and each batch within the queue's MaximumMessageSize", async () => {
    const small = sqs.addQueue("small", { maximumMessageSize: 1024 });
    const run = await runCli(["import", "s3://trail", "--enqueue", small, "--keys-per-message", "100"], "", env);
    expect(run.code).toBe(0);
    expect(keysOn(sqs, small).sort()).toEqual(ALL_KEYS);
    for (const message of sqs.remaining(small)) expect(Buffer.byteLength(message.body)).toBeLessThanOrEqual(1024);
    expect(bodies(sqs, small).some((b) => b.s3ObjectKey.length > 1)).toBe(true);
    for (const call of sqs.succeeded("SendMessageBatch")) {
      const entries = call.input.Entries as { MessageBody: string }[];
      expect(entries.reduce((sum, e) => sum + Buffer.byteLength(e.MessageBody), 0)).toBeLessThanOrEqual(1024);
    }
    expect(summaryOf(run)).toMatchObject({ maxMessageBytes: 1024 });
  });

  it("a FIFO queue gets a deduplication id (the body's hash) and a group per message", async () => {
    const fifo = sqs.addQueue("backfill.fifo");
    const run = await runCli(["import", "s3://trail", "--enqueue", fifo, "--since", "2023-07-11"], "", env);
    expect(run.code).toBe(0);
    const entries = sqs.succeeded("SendMessageBatch").flatMap((c) => c.input.Entries as Record<string, string>[]);
    expect(entries.length).toBeGreaterThan(0);
    for (const entry of entries) {
      expect(entry.MessageDeduplicationId).toMatch(/^[0-9a-f]{64}$/);
      expect(entry.MessageGroupId).toBe(entry.MessageDeduplicationId);
    }
  });

  it("usage errors exit 2 and send nothing", async () => {
    const cases: [string[], string][] = [
      [["import", "file:///tmp", "--enqueue", sqs.queueUrl], "--enqueue needs an s3:// source"],
      [["import", "s3://trail", "--enqueue", "queue"], "--enqueue expects a queue URL"],
      [["import", "s3://trail", "--enqueue", "ftp://x/1/q"], "--enqueue expects a queue URL"],
      [
        ["import", "s3://trail", "--enqueue", sqs.queueUrl, "--output", "forward://127.0.0.1:24224"],
        "--output does nothing with --enqueue",
      ],
      [["--pad-bytes", "0", "import", "s3://trail", "--enqueue", sqs.queueUrl], "--pad-bytes does nothing"],
      [["import", "s3://trail", "--keys-per-message", "5"], "--keys-per-message does nothing without --enqueue"],
      [["import", "s3://trail", "--enqueue", sqs.queueUrl, "--keys-per-message", "0"], "--keys-per-message"],
    ];
    for (const [args, message] of cases) {
      const run = await runCli(args, "", env);
      expect(run.code, args.join(" ")).toBe(2);
      expect(run.stderr).toContain(message);
    }
    expect(sqs.calls).toEqual([]);
  });
});

describe("Enqueuer", () => {
  let sqs: SqsTest;
  beforeEach(async () => {
    sqs = await startSqs();
  });
  afterEach(async () => {
    await sqs.close();
  });

  it("skips keys no filter would accept (logged), and escapes the characters SQS refuses in a body", async () => {
    const logged: [string, Record<string, unknown>][] = [];
    const log: Logger = {
      debug() {},
      info() {},
      warn: (msg, context = {}) => logged.push([msg, context]),
      error: (msg, context = {}) => logged.push([msg, context]),
    };
    const client = new SQSClient({ endpoint: sqs.endpoint, region: "us-east-1", credentials });
    const counts = emptyCounts();
    const enqueuer = new Enqueuer({
      queueUrl: sqs.queueUrl,
      bucket: bucket("trail"),
      client: async () => client,
      retry: new RetryPolicy({ retryForMs: 1000 }),
      log,
      counts,
      keysPerMessage: 10,
      senders: 2,
      signal: new AbortController().signal,
      onFailure() {},
    });
    try {
      await enqueuer.start();
      const odd = "AWSLogs/odd\uffff\ufffe\u00e9.json.gz";
      for (const key of ["AWSLogs/a/../b.json.gz", odd, `AWSLogs/${"k".repeat(1100)}`, "AWSLogs/ok.json.gz"]) {
        await enqueuer.add({ key, size: 1, url: `s3://trail/${key}` });
      }
      const summary = await enqueuer.finish();
      expect(summary).toMatchObject({ messages: 1, objects: 2, invalidKeys: 2, failedObjects: 0 });
      const [message] = sqs.remaining();
      expect(message?.body).not.toMatch(/[\ufffe\uffff]/);
      expect(message?.body).toContain("\\uffff\\ufffe");
      expect(JSON.parse(message?.body ?? "")).toEqual({ s3Bucket: "trail", s3ObjectKey: [odd, "AWSLogs/ok.json.gz"] });
      expect(logged.map(([msg]) => msg)).toEqual(["skipped", "skipped"]);
      expect(logged[0]?.[1].reason).toBe('the key "AWSLogs/a/../b.json.gz" holds a "." or ".." path segment');
      // A hostile key is quoted cut short in the log, with how much more there was.
      expect(logged[1]?.[1].reason).toMatch(/^the key "AWSLogs\/k+" \(\+1008 more characters\) is 1108 bytes long/);
      expect(counts).toMatchObject({ listed: 4, objects: 2, messages: 1 });
      expect(MAX_BODY_BYTES).toBe(262_144);
    } finally {
      client.destroy();
    }
  });
});

describe("the progress line of an enqueue", () => {
  it("counts messages where an import counts events", () => {
    const counts = { ...emptyCounts(), listed: 40, bytesListed: 4 << 20, objects: 20, bytes: 2 << 20, messages: 2 };
    const line = renderProgress(counts, 1000);
    expect(line).toBe("objects 20/40+ · messages 2 · 2.0/4.0 MB · 2.0 MB/s · listing…");
    const { messages: _, ...importCounts } = counts;
    expect(renderProgress(importCounts, 1000)).toContain("events 0");
  });
});
