// The built CLI, spawned with real pipes as fluentd spawns it, against an S3-compatible server on loopback.
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { deadLetters, events, parseOutput, runCli, startCli } from "../support/cli.js";
import { waitUntil } from "../support/fluentd.js";
import { inSqsRecord, snsNotification } from "../support/messages.js";
import { type S3Test, s3Env, startS3 } from "../support/s3.js";
import { FIXTURE_NAMES, FIXTURES } from "../support/trail.js";

const fixtureNames = FIXTURE_NAMES;
const fixture = (name: string): Buffer => readFileSync(join(FIXTURES, name));
const recordsOf = (name: string): unknown[] => (JSON.parse(fixture(name).toString()) as { Records: unknown[] }).Records;

const BUCKET = "trail-bucket";
const PREFIX = "AWSLogs/218007301253/CloudTrail/us-east-1/2023/07/10/";
const [nameA, nameB, nameC, nameD] = fixtureNames as [string, string, string, string];

/** Pretty-printed, as SNS delivers it to SQS. */
const sns = (message: string, subject?: string): string =>
  snsNotification(message, { account: "218007301253", pretty: true, ...(subject === undefined ? {} : { subject }) });

const sqs3 = (body: string, n: number) =>
  inSqsRecord(body, `rh-${n}`, "https://sqs.us-east-1.amazonaws.com/218007301253/q");
const sqs1 = (body: string, n: number) =>
  JSON.stringify({ body, handle: `h-${n}`, id: `i-${n}`, md5: "0", url: "https://sqs.example/q", sender_id: "" });

function s3Event(keys: string[], eventName = "ObjectCreated:Put"): string {
  return JSON.stringify({
    Records: keys.map((key) => ({
      eventVersion: "2.1",
      eventSource: "aws:s3",
      awsRegion: "us-east-1",
      eventName,
      s3: { bucket: { name: BUCKET }, object: { key: formEncode(key), size: 1 } },
    })),
  });
}

/** The encoding S3 event notifications use for keys: form rules, '/' kept. */
function formEncode(key: string): string {
  return encodeURIComponent(key).replace(/%2F/g, "/").replace(/%20/g, "+");
}

let s3: S3Test;
let env: Record<string, string>;

beforeAll(async () => {
  s3 = await startS3();
  env = s3Env(s3.endpoint);
  await s3.createBucket(BUCKET);
  await s3.putObject(BUCKET, `${PREFIX + nameA}.gz`, gzipSync(fixture(nameA)), "gzip");
  await s3.putObject(BUCKET, `${PREFIX + nameB}.gz`, gzipSync(fixture(nameB)), "gzip");
  // Keys that need decoding: a space, a plus sign, non-ASCII.
  await s3.putObject(BUCKET, `odd prefix/a+b=c/日本/${nameC}.gz`, gzipSync(fixture(nameC)), "gzip");
  // Plain JSON despite the name; gzip of gzip; two gzip members.
  await s3.putObject(BUCKET, `${PREFIX}plain-${nameD}.gz`, fixture(nameD));
  await s3.putObject(BUCKET, `${PREFIX}double-${nameD}.gz`, gzipSync(gzipSync(fixture(nameD))), "gzip");
  const half = fixture(nameD).length >> 1;
  const multi = Buffer.concat([gzipSync(fixture(nameD).subarray(0, half)), gzipSync(fixture(nameD).subarray(half))]);
  await s3.putObject(BUCKET, `${PREFIX}multi-${nameD}.gz`, multi, "gzip");
  // Broken objects.
  const gz = gzipSync(fixture(nameB));
  await s3.putObject(BUCKET, `${PREFIX}truncated.json.gz`, gz.subarray(0, gz.length >> 1), "gzip");
  await s3.putObject(BUCKET, `${PREFIX}corrupt.json.gz`, Buffer.concat([gz.subarray(0, 20), Buffer.alloc(200, 7)]));
  await s3.putObject(BUCKET, `${PREFIX}not-cloudtrail.json.gz`, gzipSync('{"hello":"world"}'));
  await s3.putObject(BUCKET, `${PREFIX}bomb.json.gz`, gzipSync(Buffer.alloc(8 << 20, 0x20)));
});

afterAll(async () => {
  await s3?.close();
});

describe("the CLI against S3 on loopback", () => {
  it("turns good and bad input mixed in one run into events, skips and one dead letter per failure", async () => {
    const input = [
      sqs3(sns(JSON.stringify({ s3Bucket: BUCKET, s3ObjectKey: [`${PREFIX + nameA}.gz`, `${PREFIX + nameB}.gz`] })), 1),
      sqs1(sns(s3Event([`odd prefix/a+b=c/日本/${nameC}.gz`]), "Amazon S3 Notification"), 2),
      s3Event([`${PREFIX}plain-${nameD}.gz`, `${PREFIX}double-${nameD}.gz`]),
      JSON.stringify({
        version: "0",
        "detail-type": "Object Created",
        source: "aws.s3",
        region: "us-east-1",
        detail: { bucket: { name: BUCKET }, object: { key: `${PREFIX}multi-${nameD}.gz` } },
      }),
      "",
      JSON.stringify({ Service: "Amazon S3", Event: "s3:TestEvent", Bucket: BUCKET }),
      sqs3(sns("CloudTrail validation message."), 3),
      JSON.stringify({ s3Bucket: BUCKET, s3ObjectKey: ["AWSLogs/1/CloudTrail-Digest/us-east-1/2023/07/10/d.json.gz"] }),
      s3Event([`${PREFIX}deleted.json.gz`], "ObjectRemoved:Delete"),
      JSON.stringify({ s3Bucket: BUCKET, s3ObjectKey: [`${PREFIX}missing.json.gz`] }),
      JSON.stringify({ s3Bucket: BUCKET, s3ObjectKey: [`${PREFIX}truncated.json.gz`] }),
      JSON.stringify({ s3Bucket: BUCKET, s3ObjectKey: [`${PREFIX}corrupt.json.gz`] }),
      JSON.stringify({ s3Bucket: BUCKET, s3ObjectKey: [`${PREFIX}not-cloudtrail.json.gz`] }),
      `s3://${BUCKET}/${PREFIX}bomb.json.gz`,
      "this is not json\r",
      "[1,2,3]",
      JSON.stringify({ something: "else" }),
      sqs3("not json either", 4),
    ].join("\n");
    const run = await runCli(["--concurrency", "3", "--max-object-bytes", String(4 << 20)], `${input}\n`, env);
    expect(run.code).toBe(0);
    const records = parseOutput(run.stdout);
    const expected =
      recordsOf(nameA).length + recordsOf(nameB).length + recordsOf(nameC).length + 3 * recordsOf(nameD).length;
    const got = events(records);
    // The truncated object may emit the events before the cut; all of them are from nameB.
    const cutIds = new Set(recordsOf(nameB).map((r) => (r as { eventID: string }).eventID));
    const extra = got.length - expected;
    expect(extra).toBeGreaterThanOrEqual(0);
    expect(got.filter((e) => cutIds.has(e.eventID as string)).length).toBe(recordsOf(nameB).length + extra);
    for (const event of got) expect(event["@timestamp"]).toBe(event.eventTime);

    const codes = deadLetters(records)
      .map((r) => (r.error as { code: string }).code)
      .sort();
    expect(codes).toEqual(
      [
        "NotFound",
        "Truncated",
        "CorruptGzip",
        "NoRecords",
        "TooLarge",
        "NotJson",
        "NotAnObject",
        "UnknownShape",
        "BodyNotJson",
      ].sort(),
    );
    for (const letter of deadLetters(records)) {
      expect(letter._tag).toBe("cloudtrail.deadletter");
      expect(letter.input).toBeDefined();
    }
    const missing = deadLetters(records).find((r) => (r.error as { code: string }).code === "NotFound");
    expect(missing).toMatchObject({ bucket: BUCKET, key: `${PREFIX}missing.json.gz` });
    const notJson = deadLetters(records).find((r) => (r.error as { code: string }).code === "NotJson");
    expect(notJson?.input).toBe("this is not json");

    const skips = run.log.filter((l) => l.msg === "skipped").map((l) => l.reason);
    expect(skips).toEqual(
      expect.arrayContaining([
        "S3 test event",
        "CloudTrail validation message",
        "digest file",
        "S3 event ObjectRemoved:Delete",
      ]),
    );
    const summary = run.log.find((l) => l.msg === "summary");
    expect(summary).toMatchObject({ records: 17, skipped: 4, deadLetters: 9, events: got.length });
  });

  it("keeps every event byte-for-byte as AWS wrote it, plus @timestamp", async () => {
    const lines = fixtureNames.map((name) => `file://${join(FIXTURES, name)}`).join("\n");
    const run = await runCli([], lines, env);
    expect(run.code).toBe(0);
    const text = run.stdout.toString("utf8");
    const outLines = text.split("\n").filter((l) => l.trim() !== "");
    const originals = new Set<string>();
    for (const name of fixtureNames) {
      const source = fixture(name).toString("utf8");
      for (const record of recordsOf(name)) {
        // Find each element's exact source bytes by its eventID's position.
        const id = (record as { eventID: string }).eventID;
        originals.add(`${id}`);
        expect(source).toContain(id);
      }
    }
    expect(outLines.length).toBe(originals.size);
    const sources = fixtureNames.map((name) => fixture(name).toString("utf8")).join("\n");
    for (const line of outLines) {
      const match = /^(.*),"@timestamp":"([^"]*)"\}$/.exec(line);
      expect(match).not.toBeNull();
      const [, body, stamp] = match as unknown as [string, string, string];
      expect(sources.includes(`${body}}`)).toBe(true);
      expect(stamp).toBe((JSON.parse(line) as { eventTime: string }).eventTime);
    }
  });

  it("writes the same lines with scan workers as without (options applied in the workers too)", async () => {
    const lines = fixtureNames.map((name) => `file://${join(FIXTURES, name)}`).join("\n");
    const args = ["--pad-bytes", "0", "--time-field", "_time", "--source-field", "source"];
    const [plain, workers] = await Promise.all([
      runCli([...args, "--scan-workers", "0"], lines, env),
      runCli([...args, "--scan-workers", "2"], lines, env),
    ]);
    expect(workers.code).toBe(0);
    const sorted = (run: { stdout: Buffer }) => run.stdout.toString("utf8").split("\n").filter(Boolean).sort();
    expect(sorted(workers)).toEqual(sorted(plain));
    expect(sorted(plain).length).toBeGreaterThan(1000);
  });

  it("reads lines cut at odd places across writes", async () => {
    const lines = `${[nameA, nameB].map((name) => `file://${join(FIXTURES, name)}\r\n`).join("")}\n\n`;
    const spawned = startCli(["--pad-bytes", "0"], env);
    const cuts = [3, 9, 10, 31, lines.length - 2];
    let from = 0;
    for (const cut of cuts) {
      spawned.child.stdin.write(lines.slice(from, cut));
      from = cut;
      await new Promise((resolve) => setTimeout(resolve, 30));
    }
    spawned.child.stdin.end(lines.slice(from));
    const run = await spawned.done;
    expect(run.code).toBe(0);
    expect(events(parseOutput(run.stdout)).length).toBe(recordsOf(nameA).length + recordsOf(nameB).length);
  });
});

describe("piped from `aws sqs receive-message`", () => {
  /** A message as the AWS CLI prints it. */
  const message = (body: string, n: number) => ({
    MessageId: `0f6e2c1a-1111-2222-3333-44445555666${n}`,
    ReceiptHandle: `AQEBzbVv${n}`,
    MD5OfBody: "0",
    Body: body,
  });

  it("reads every message of the response it prints indented over many lines, and the lines after it", async () => {
    const notification = JSON.stringify({ s3Bucket: BUCKET, s3ObjectKey: [`${PREFIX + nameA}.gz`] });
    // As `aws sqs receive-message --max-number-of-messages 10` prints it: four spaces, one key per line.
    const response = JSON.stringify(
      { Messages: [message(sns(notification), 1), message(s3Event([`${PREFIX + nameB}.gz`]), 2)] },
      null,
      4,
    );
    expect(response.split("\n").length).toBeGreaterThan(10);
    const input = `${response}\n${s3Event([`${PREFIX}plain-${nameD}.gz`])}\n`;
    const spawned = startCli(["--pad-bytes", "0"], env);
    // Cut inside the document and inside its lines, as a pipe may.
    for (const [from, to] of [
      [0, 7],
      [7, 200],
      [200, response.length - 1],
      [response.length - 1, input.length],
    ] as const) {
      spawned.child.stdin.write(input.slice(from, to));
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    spawned.child.stdin.end();
    const run = await spawned.done;
    expect(run.code).toBe(0);
    const records = parseOutput(run.stdout);
    expect(deadLetters(records)).toEqual([]);
    expect(events(records).length).toBe(recordsOf(nameA).length + recordsOf(nameB).length + recordsOf(nameD).length);
    expect(run.log.find((l) => l.msg === "summary")).toMatchObject({ records: 2, objects: 3, deadLetters: 0 });
  });

  it("a message that names nothing is a dead letter holding that message; the other message is read", async () => {
    const bad = message("not json", 2);
    const response = JSON.stringify(
      { Messages: [message(JSON.stringify({ s3Bucket: BUCKET, s3ObjectKey: [`${PREFIX + nameA}.gz`] }), 1), bad] },
      null,
      4,
    );
    const run = await runCli(["--pad-bytes", "0"], `${response}\n`, env);
    expect(run.code).toBe(0);
    const records = parseOutput(run.stdout);
    expect(deadLetters(records)).toEqual([
      expect.objectContaining({ error: expect.objectContaining({ code: "BodyNotJson" }), input: bad }),
    ]);
    expect(events(records).length).toBe(recordsOf(nameA).length);
  });

  it("no messages: the CLI prints nothing, and nothing comes out", async () => {
    const run = await runCli([], "", env);
    expect(run.code).toBe(0);
    expect(run.stdout.length).toBe(0);
  });
});

describe("file:// lines", () => {
  it("a directory, a named pipe and a missing file each have their own code; a relative URL says how to write it", async () => {
    const dir = mkdtempSync(join(tmpdir(), "ctef-files-"));
    try {
      const fifo = join(dir, "pipe");
      execFileSync("mkfifo", [fifo]);
      const input = [
        `file://${dir}`,
        `file://${fifo}`, // opened without waiting for a writer
        `file://${dir}/missing.json`,
        "file://relative/path.json",
        `file://${join(FIXTURES, nameA)}`,
      ].join("\n");
      const run = await runCli(["--pad-bytes", "0"], `${input}\n`, env);
      expect(run.code).toBe(0);
      const letters = deadLetters(parseOutput(run.stdout));
      const byInput = Object.fromEntries(letters.map((r) => [r.input, r.error as { code: string; message: string }]));
      expect(letters.length).toBe(4);
      expect(byInput[`file://${dir}`]).toMatchObject({
        code: "NotAFile",
        message: expect.stringMatching(/directory$/),
      });
      expect(byInput[`file://${fifo}`]).toMatchObject({ code: "NotAFile" });
      expect(byInput[`file://${dir}/missing.json`]).toMatchObject({ code: "NotFound" });
      expect(byInput["file://relative/path.json"]).toMatchObject({
        code: "BadUrl",
        message: expect.stringContaining("file:///absolute/path"),
      });
      expect(events(parseOutput(run.stdout)).length).toBe(recordsOf(nameA).length);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("--stats-interval", () => {
  const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

  it("logs stats lines while it runs, under the final summary's names", async () => {
    const spawned = startCli(["--stats-interval", "0.2", "--pad-bytes", "0"], env);
    // Fed slowly, as under fluentd: the process is alive across several intervals.
    for (const name of [nameA, nameB]) {
      spawned.child.stdin.write(`file://${join(FIXTURES, name)}\n`);
      await sleep(700);
    }
    spawned.child.stdin.end();
    const run = await spawned.done;
    expect(run.code).toBe(0);
    const stats = run.log.filter((l) => l.msg === "stats");
    expect(stats.length).toBeGreaterThanOrEqual(1);
    const summary = run.log.find((l) => l.msg === "summary") as Record<string, unknown>;
    const counters = ["records", "objects", "events", "deadLetters", "retries", "bytesIn", "bytesOut"];
    for (const line of stats) {
      expect(line).toMatchObject({ level: "info", seconds: expect.any(Number), eventsPerSecond: expect.any(Number) });
      expect(line.rssMB).toEqual(expect.any(Number));
      for (const name of counters) {
        expect(line[name], name).toEqual(expect.any(Number));
        expect((line.total as Record<string, unknown>)[name], `total.${name}`).toEqual(expect.any(Number));
        expect(summary).toHaveProperty(name);
      }
    }
    // The intervals add up to the totals; the last totals are at most the summary's.
    const last = stats[stats.length - 1] as Record<string, unknown> & { total: Record<string, number> };
    expect(stats.reduce((sum, line) => sum + (line.events as number), 0)).toBe(last.total.events);
    expect(last.total.events).toBeLessThanOrEqual(summary.events as number);
    // Once an event is written, the lag is counted from its eventTime (these fixtures are from 2023).
    const withEvents = stats.find((line) => ((line.total as Record<string, number>).events ?? 0) > 0);
    if (withEvents !== undefined) {
      expect(withEvents.newestEventTime).toMatch(/^2023-07-10T/);
      expect(withEvents.lagSeconds).toBeGreaterThan(86_400);
    }
    expect(summary.newestEventTime).toMatch(/^2023-07-10T/);
  });

  it("0 turns it off", async () => {
    const run = await runCli(["--stats-interval", "0"], `file://${join(FIXTURES, nameA)}\n`, env);
    expect(run.code).toBe(0);
    expect(run.log.filter((l) => l.msg === "stats")).toEqual([]);
  });
});

describe("a warning at start without --buckets", () => {
  const warned = (log: Record<string, unknown>[]) =>
    log.filter((l) => l.level === "warn" && String(l.msg).startsWith("--buckets is not set"));

  it("the filter warns once without --buckets, and not with it", async () => {
    const without = await runCli([], "");
    expect(without.code).toBe(0);
    expect(warned(without.log)).toHaveLength(1);
    expect(String(warned(without.log)[0]?.msg)).toContain("Security");
    const withBuckets = await runCli(["--buckets", "trail-bucket"], "");
    expect(withBuckets.code).toBe(0);
    expect(warned(withBuckets.log)).toEqual([]);
  });

  it("the sqs command warns too", async () => {
    const env = { AWS_ACCESS_KEY_ID: "x", AWS_SECRET_ACCESS_KEY: "x", AWS_REGION: "us-east-1" };
    // A queue nobody answers for: the warning comes before the first receive.
    const spawned = startCli(["sqs", "--queue-url", "http://127.0.0.1:9/123456789012/q", "--wait-time", "1"], env);
    await waitUntil("the warning", () => warned(spawned.log()).length > 0, 20_000);
    spawned.child.kill("SIGTERM");
    expect((await spawned.done).code).toBe(0);
  });
});
