// --verify-integrity held to the same algorithm as `verify`: digest chains signed as the CloudTrail documentation
// describes (test/support/cloudtrail.ts), served from s3rver with their metadata and the public keys from the
// ListPublicKeys stand-in; the built filter spawned, log files and digest notifications on its stdin in the orders
// that can happen. GETs are counted on s3rver to show what was read again and what was not.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { DeleteObjectCommand } from "@aws-sdk/client-s3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type CliRun, events, parseOutput, type Spawned, startCli, summaryOf } from "../support/cli.js";
import {
  buildTrail,
  type PublicKeyServer,
  signingKey,
  startPublicKeyServer,
  type Trail,
  type TrailObject,
} from "../support/cloudtrail.js";
import { type S3Test, s3Env, startS3 } from "../support/s3.js";
import { startSqs } from "../support/sqs-server.js";
import { waitUntil } from "../support/wait.js";

const START = new Date("2024-03-10T10:00:00Z");
const published = signingKey(new Date("2024-01-01T00:00:00Z"), new Date("2025-01-01T00:00:00Z"));

let s3: S3Test;
let keys: PublicKeyServer;
let buckets = 0;

beforeAll(async () => {
  s3 = await startS3();
  keys = await startPublicKeyServer(() => [published]);
});

afterAll(async () => {
  await s3?.close();
  await keys?.close();
});

function put(bucket: string, object: TrailObject): Promise<void> {
  return s3.putObject(bucket, object.key, object.body, undefined, object.metadata);
}

/** A bucket holding a trail of `hours` hourly digests, 3 log files each. */
async function storedTrail(hours = 2, start = START): Promise<{ bucket: string; trail: Trail }> {
  const bucket = `continuous-${++buckets}`;
  await s3.createBucket(bucket);
  const trail = buildTrail({
    bucket,
    account: "111122223333",
    region: "us-east-1",
    trail: "management_events",
    start,
    hours,
    filesPerHour: 3,
    key: published,
  });
  for (const object of trail.objects) await put(bucket, object);
  return { bucket, trail };
}

/** The S3 event notification S3 sends for a new object (keys form-encoded; ours need no escaping). */
const s3Event = (bucket: string, key: string): string =>
  JSON.stringify({
    Records: [
      {
        eventVersion: "2.1",
        eventSource: "aws:s3",
        eventName: "ObjectCreated:Put",
        awsRegion: "us-east-1",
        s3: { bucket: { name: bucket }, object: { key, size: 1 } },
      },
    ],
  });

/** The log files a digest lists: the trail's, hour by hour (3 an hour). */
const logsOfHour = (trail: Trail, hour: number): string[] => trail.logKeys.slice(hour * 3, hour * 3 + 3);

/** What a spawned CLI needs to reach the S3 stand-in and the ListPublicKeys stand-in. */
const env = (): Record<string, string> => ({ ...s3Env(s3.endpoint), AWS_ENDPOINT_URL_CLOUDTRAIL: keys.endpoint });

function start(bucket: string, extra: string[] = []): Spawned {
  return startCli(["--buckets", bucket, "--verify-integrity", "--concurrency", "4", ...extra], env());
}

/** Writes `lines`, then waits until the output holds `events` events in all. */
async function feed(spawned: Spawned, lines: string[], eventsExpected: number): Promise<void> {
  spawned.child.stdin.write(lines.map((line) => `${line}\n`).join(""));
  await waitUntil(`${eventsExpected} events`, () => events(spawned.output()).length >= eventsExpected, 20_000);
}

/** Waits until the output holds an integrity line. */
const integrityLineWritten = (spawned: Spawned): Promise<void> =>
  waitUntil(
    "an integrity line",
    () => spawned.output().some((record) => record._tag === "cloudtrail.integrity"),
    20_000,
  );

type Line = Record<string, unknown> & { kind: string; s3Object: string; status: string; reason?: string };

const integrityLines = (run: CliRun): Line[] =>
  parseOutput(run.stdout).filter((record) => record._tag === "cloudtrail.integrity") as Line[];

/** `import --verify-integrity` of a whole bucket, which must exit 0. */
async function importRun(bucket: string): Promise<CliRun> {
  const run = await startCli(["import", `s3://${bucket}`, "--verify-integrity", "--concurrency", "4"], env()).done;
  expect(run.code).toBe(0);
  return run;
}

/** GETs s3rver answered for `key` of `bucket` since `from` (an index into s3.requests). */
function gets(bucket: string, key: string, from = 0): number {
  return s3.requests
    .slice(from)
    .filter((request) => request.method === "GET" && request.url.split("?")[0] === `/${bucket}/${key}`).length;
}

describe("--verify-integrity", () => {
  it.each([
    ["on the main thread", []],
    ["in a scan worker", ["--scan-workers", "1"]],
  ])(
    "log files hashed %s, then their digest: the digest line is valid, no problem line, no log file read twice",
    async (_, args) => {
      const { bucket, trail } = await storedTrail(1);
      const from = s3.requests.length;
      const filter = start(bucket, args);
      await feed(
        filter,
        trail.logKeys.map((key) => `s3://${bucket}/${key}`),
        9,
      );
      filter.child.stdin.end(`${s3Event(bucket, trail.digestKeys[0] as string)}\n`);
      const run = await filter.done;
      expect(run.code).toBe(0);
      const lines = integrityLines(run);
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatchObject({
        _tag: "cloudtrail.integrity",
        kind: "digest",
        s3Bucket: bucket,
        s3Object: trail.digestKeys[0],
        status: "valid",
        account: "111122223333",
        region: "us-east-1",
        trail: "management_events",
        digestStartTime: "2024-03-10T10:00:00Z",
        digestEndTime: "2024-03-10T11:00:00Z",
      });
      expect(events(parseOutput(run.stdout)).filter((record) => record.eventVersion !== undefined)).toHaveLength(9);
      for (const key of trail.logKeys) expect(gets(bucket, key, from)).toBe(1);
      expect(summaryOf(run)).toMatchObject({ integrity: { digests: 1, problems: 0, remembered: 3, fetched: 0 } });
      expect(summaryOf(run)?.skipped).toBe(0);
    },
  );

  it("a digest before its log files: they are fetched and hashed then, and it is valid", async () => {
    const { bucket, trail } = await storedTrail(1);
    const from = s3.requests.length;
    const filter = start(bucket);
    await feed(filter, [s3Event(bucket, trail.digestKeys[0] as string)], 0);
    await integrityLineWritten(filter);
    filter.child.stdin.end(trail.logKeys.map((key) => `s3://${bucket}/${key}\n`).join(""));
    const run = await filter.done;
    const lines = integrityLines(run);
    expect(lines.map((line) => [line.kind, line.s3Object, line.status])).toEqual([
      ["digest", trail.digestKeys[0], "valid"],
    ]);
    expect(events(parseOutput(run.stdout)).filter((record) => record.eventVersion !== undefined)).toHaveLength(9);
    // Once to check the digest, once for the events.
    for (const key of trail.logKeys) expect(gets(bucket, key, from)).toBe(2);
    expect(summaryOf(run)).toMatchObject({ integrity: { digests: 1, problems: 0, remembered: 0, fetched: 3 } });
  });

  it("a log file altered in S3 before it was read: one problem line for it, the digest and the others valid", async () => {
    const { bucket, trail } = await storedTrail(1);
    const altered = trail.logKeys[1] as string;
    const json = Buffer.from(
      JSON.stringify({ Records: [{ eventVersion: "1.08", eventTime: "2024-03-10T10:20:00Z", eventName: "Forged" }] }),
    );
    await put(bucket, { key: altered, body: gzipSync(json) });
    const filter = start(bucket);
    await feed(
      filter,
      trail.logKeys.map((key) => `s3://${bucket}/${key}`),
      7,
    );
    filter.child.stdin.end(`${s3Event(bucket, trail.digestKeys[0] as string)}\n`);
    const run = await filter.done;
    const lines = integrityLines(run);
    expect(lines.map((line) => [line.kind, line.s3Object, line.status, line.reason])).toEqual([
      ["digest", trail.digestKeys[0], "valid", undefined],
      ["logFile", altered, "invalid", "hash mismatch"],
    ]);
    expect(lines[1]).toMatchObject({
      s3Bucket: bucket,
      digestS3Object: trail.digestKeys[0],
      trail: "management_events",
    });
    expect(summaryOf(run)).toMatchObject({ integrity: { problems: 1, remembered: 3, fetched: 0 } });
  });

  it("a digest whose previous digest was not seen: the previous one is fetched and the link checked", async () => {
    const { bucket, trail } = await storedTrail(2);
    const [first, second] = trail.digestKeys as [string, string];
    const from = s3.requests.length;
    const filter = start(bucket);
    await feed(
      filter,
      logsOfHour(trail, 1).map((key) => `s3://${bucket}/${key}`),
      9,
    );
    filter.child.stdin.end(`${s3Event(bucket, second)}\n`);
    const run = await filter.done;
    expect(integrityLines(run).map((line) => [line.kind, line.s3Object, line.status])).toEqual([
      ["digest", second, "valid"],
    ]);
    expect(gets(bucket, first, from)).toBe(1);
    expect(summaryOf(run)).toMatchObject({ integrity: { problems: 0, fetched: 1 } });
  });

  it("a digest whose previous digest is gone: the previous one is reported missing, the digest stays valid", async () => {
    const { bucket, trail } = await storedTrail(2);
    const [first, second] = trail.digestKeys as [string, string];
    await s3.client.send(new DeleteObjectCommand({ Bucket: bucket, Key: first }));
    const filter = start(bucket);
    filter.child.stdin.end(`${s3Event(bucket, second)}\n`);
    const run = await filter.done;
    expect(integrityLines(run).map((line) => [line.kind, line.s3Object, line.status, line.reason])).toEqual([
      ["digest", second, "valid", undefined],
      ["digest", first, "missing", "not found"],
    ]);
  });

  it("the previous digest seen first: its link is checked from memory, with no GET", async () => {
    const { bucket, trail } = await storedTrail(2);
    const [first, second] = trail.digestKeys as [string, string];
    const filter = start(bucket);
    await feed(
      filter,
      trail.logKeys.map((key) => `s3://${bucket}/${key}`),
      18,
    );
    await feed(filter, [s3Event(bucket, first)], 18);
    await integrityLineWritten(filter);
    const from = s3.requests.length;
    filter.child.stdin.end(`${s3Event(bucket, second)}\n`);
    const run = await filter.done;
    expect(integrityLines(run).map((line) => [line.s3Object, line.status])).toEqual([
      [first, "valid"],
      [second, "valid"],
    ]);
    expect(gets(bucket, first, from)).toBe(0);
    expect(summaryOf(run)).toMatchObject({ integrity: { digests: 2, problems: 0, remembered: 6, fetched: 0 } });
  });

  it("restart with --spool-dir: the hashes remembered before are used, no log file is read again", async () => {
    const { bucket, trail } = await storedTrail(1);
    const spool = mkdtempSync(join(tmpdir(), "ctef-integrity-spool-"));
    try {
      const before = start(bucket, ["--spool-dir", spool]);
      await feed(
        before,
        trail.logKeys.map((key) => `s3://${bucket}/${key}`),
        9,
      );
      before.child.stdin.end();
      expect((await before.done).code).toBe(0);

      const from = s3.requests.length;
      const after = start(bucket, ["--spool-dir", spool]);
      after.child.stdin.end(`${s3Event(bucket, trail.digestKeys[0] as string)}\n`);
      const run = await after.done;
      expect(run.code).toBe(0);
      expect(integrityLines(run).map((line) => [line.s3Object, line.status])).toEqual([[trail.digestKeys[0], "valid"]]);
      for (const key of trail.logKeys) expect(gets(bucket, key, from)).toBe(0);
      expect(summaryOf(run)).toMatchObject({ integrity: { remembered: 3, fetched: 0 } });

      // Without the spool directory nothing is remembered: the same digest reads its log files.
      const memoryOnly = start(bucket);
      memoryOnly.child.stdin.end(`${s3Event(bucket, trail.digestKeys[0] as string)}\n`);
      expect(summaryOf(await memoryOnly.done)).toMatchObject({ integrity: { remembered: 0, fetched: 3 } });
    } finally {
      rmSync(spool, { recursive: true, force: true });
    }
  });

  it("import lists the digests and hands them over after the log files: each file read once, every digest valid", async () => {
    const { bucket, trail } = await storedTrail(2);
    const from = s3.requests.length;
    const run = await importRun(bucket);
    expect(events(parseOutput(run.stdout)).filter((record) => record.eventVersion !== undefined)).toHaveLength(18);
    const lines = integrityLines(run);
    expect(lines.map((line) => [line.s3Object, line.status]).sort()).toEqual(
      trail.digestKeys.map((key) => [key, "valid"]).sort(),
    );
    for (const key of trail.logKeys) expect(gets(bucket, key, from)).toBe(1);
    expect(summaryOf(run)).toMatchObject({ integrity: { digests: 2, problems: 0, remembered: 6, fetched: 0 } });
  });

  it("import over days: every digest valid, each log file read once", async () => {
    // 50 hours from 22:00: log files of 2024-03-10 to 03-12, digests filed under 03-10 to 03-13.
    const { bucket, trail } = await storedTrail(50, new Date("2024-03-10T22:00:00Z"));
    const from = s3.requests.length;
    const run = await importRun(bucket);
    const lines = integrityLines(run);
    expect(lines).toHaveLength(50);
    expect(lines.every((line) => line.status === "valid")).toBe(true);
    for (const key of trail.logKeys) expect(gets(bucket, key, from)).toBe(1);
  });

  it("sqs: S3 event notifications of a trail's log files and its digest, from the queue: the digest valid, all deleted", async () => {
    const { bucket, trail } = await storedTrail(1);
    const sqs = await startSqs();
    try {
      for (const key of trail.logKeys) sqs.send(s3Event(bucket, key));
      sqs.send(s3Event(bucket, trail.digestKeys[0] as string));
      const consumer = startCli(
        ["sqs", "--queue-url", sqs.queueUrl, "--wait-time", "1", "--buckets", bucket, "--verify-integrity"],
        env(),
      );
      await waitUntil(
        "the consumer to finish the queue",
        () => consumer.output().some((r) => r._tag === "cloudtrail.integrity") && sqs.remaining().length === 0,
        30_000,
      );
      consumer.child.kill("SIGTERM");
      const run = await consumer.done;
      expect(run.code).toBe(0);
      expect(integrityLines(run).map((line) => [line.s3Object, line.status])).toEqual([[trail.digestKeys[0], "valid"]]);
      expect(sqs.deleted).toHaveLength(4);
      expect(summaryOf(run)).toMatchObject({ integrity: { digests: 1, problems: 0 } });
    } finally {
      await sqs.close();
    }
  });

  it("a notified digest that is not in S3 is a NotFound dead letter, not a `missing` line a queue writer could plant", async () => {
    const { bucket, trail } = await storedTrail(1);
    const absent = (trail.digestKeys[0] as string).replace("T110000Z", "T120000Z");
    const filter = start(bucket);
    filter.child.stdin.end(`${s3Event(bucket, absent)}\n`);
    const run = await filter.done;
    const records = parseOutput(run.stdout);
    expect(records).toHaveLength(1);
    expect(records[0]).toMatchObject({ _tag: "cloudtrail.deadletter", error: { code: "NotFound" }, key: absent });
  });

  it("a digest outside --buckets is a BucketNotAllowed dead letter; without the option a digest is skipped", async () => {
    const { bucket, trail } = await storedTrail(1);
    const digest = trail.digestKeys[0] as string;
    const filter = startCli(["--buckets", "elsewhere", "--verify-integrity"], env());
    filter.child.stdin.end(`${s3Event(bucket, digest)}\n`);
    const refused = await filter.done;
    const records = parseOutput(refused.stdout);
    expect(records).toHaveLength(1);
    expect(records[0]).toMatchObject({ error: { code: "BucketNotAllowed" } });

    const plain = startCli(["--buckets", bucket], { ...s3Env(s3.endpoint) });
    plain.child.stdin.end(`${s3Event(bucket, digest)}\n`);
    const skipped = await plain.done;
    expect(parseOutput(skipped.stdout)).toEqual([]);
    expect(skipped.log.some((line) => line.msg === "skipped" && line.reason === "digest file")).toBe(true);
  });

  it("an s3:// line naming a digest is a digest as a notified one is: checked with the option, else skipped", async () => {
    const { bucket, trail } = await storedTrail(1);
    const digest = trail.digestKeys[0] as string;
    const lines = [...trail.logKeys, digest].map((key) => `s3://${bucket}/${key}\n`).join("");
    const checked = startCli(["--verify-integrity"], env());
    checked.child.stdin.end(lines);
    const run = await checked.done;
    const records = parseOutput(run.stdout);
    expect(records.filter((record) => record._tag === "cloudtrail.integrity")).toMatchObject([
      { s3Object: digest, status: "valid" },
    ]);
    expect(records.filter((record) => record._tag === "cloudtrail.deadletter")).toEqual([]);

    const from = s3.requests.length;
    const plain = startCli([], { ...s3Env(s3.endpoint) });
    plain.child.stdin.end(`s3://${bucket}/${digest}\n`);
    const skipped = await plain.done;
    expect(parseOutput(skipped.stdout)).toEqual([]); // no dead letter: before, it was read as a log file and had none
    expect(skipped.log.some((line) => line.msg === "skipped" && line.reason === "digest file")).toBe(true);
    expect(gets(bucket, digest, from)).toBe(0);
  });
});
