// The `sqs` command (issue 16) as a process against the loopback SQS and S3 stand-ins: long polling, every
// notification shape, deletes only after the output is written, dead letters, transient give-ups left to SQS,
// SIGTERM handing messages back, a consumer killed with SIGKILL whose messages come back to a second one, a queue
// that does not exist yet, and throttling.
import { gzipSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { deadLetters, events, parseOutput, type Spawned, startCli } from "../support/cli.js";
import { type FaultS3, startFaultS3 } from "../support/fault-s3.js";
import { waitUntil } from "../support/fluentd.js";
import { type SqsTest, startSqs } from "../support/sqs-server.js";
import { countOf, FIXTURE_NAMES, trail } from "../support/trail.js";

const NAMES = FIXTURE_NAMES;
const BUCKET = "trail";
const WAIT_MS = 20_000;

describe("cloudtrail-exec-filter sqs", () => {
  let s3: FaultS3;
  let sqs: SqsTest;
  const running: Spawned[] = [];

  beforeAll(async () => {
    [s3, sqs] = await Promise.all([startFaultS3(), startSqs()]);
    s3.createBucket(BUCKET);
    s3.createBucket("elsewhere");
  });

  afterAll(async () => {
    for (const spawned of running) spawned.child.kill("SIGKILL");
    await Promise.all(running.map((s) => s.done));
    await Promise.all([s3?.close(), sqs?.close()]);
  });

  const env = () => ({
    AWS_ACCESS_KEY_ID: "x",
    AWS_SECRET_ACCESS_KEY: "x",
    AWS_REGION: "us-east-1",
    AWS_ENDPOINT_URL_S3: s3.endpoint,
    AWS_EC2_METADATA_DISABLED: "true",
  });

  function consumer(queueUrl: string, ...args: string[]): Spawned {
    const spawned = startCli(
      [
        "sqs",
        "--queue-url",
        queueUrl,
        "--wait-time",
        "1",
        "--request-timeout",
        "5",
        "--retry-for",
        "1",
        "--log-level",
        "debug",
        ...args,
      ],
      env(),
    );
    running.push(spawned);
    return spawned;
  }

  /** Stores the fixtures as gzipped objects under `prefix` and returns their keys and events. */
  function store(prefix: string, names: string[]): { keys: string[]; ids: string[] } {
    const keys: string[] = [];
    const ids: string[] = [];
    for (const name of names) {
      const key = `AWSLogs/${prefix}/${name}.gz`;
      const events = trail(name, prefix);
      s3.putObject(BUCKET, key, gzipSync(JSON.stringify({ Records: events })));
      keys.push(key);
      ids.push(...events.map((e) => e.eventID));
    }
    return { keys, ids };
  }

  const cloudTrailBody = (keys: string[], bucket = BUCKET) => JSON.stringify({ s3Bucket: bucket, s3ObjectKey: keys });
  const snsBody = (keys: string[]) =>
    JSON.stringify({ Type: "Notification", MessageId: "sns-1", Message: cloudTrailBody(keys) });
  const s3EventBody = (keys: string[]) =>
    JSON.stringify({
      Records: keys.map((key) => ({
        eventSource: "aws:s3",
        eventName: "ObjectCreated:Put",
        awsRegion: "us-east-1",
        s3: { bucket: { name: BUCKET }, object: { key } },
      })),
    });

  it("delivers every shape's events once, deletes each message after its output, dead-letters, exits 0 on SIGTERM", async () => {
    const queueUrl = sqs.addQueue("shapes");
    const a = store("a", NAMES.slice(0, 2));
    const b = store("b", NAMES.slice(2, 5));
    const c = store("c", NAMES.slice(5, 6));
    const transient = store("t", NAMES.slice(6, 7));
    s3.failKey(BUCKET, transient.keys[0] as string, ...Array.from({ length: 50 }, () => ({ status: 503 }) as const));
    const ids = {
      a: sqs.send(cloudTrailBody(a.keys), queueUrl),
      b: sqs.send(snsBody(b.keys), queueUrl),
      c: sqs.send(s3EventBody(c.keys), queueUrl),
      missing: sqs.send(cloudTrailBody(["AWSLogs/none.json.gz"]), queueUrl),
      notJson: sqs.send("not json", queueUrl),
      other: sqs.send(cloudTrailBody(["AWSLogs/x.json.gz"], "elsewhere"), queueUrl),
      transient: sqs.send(cloudTrailBody(transient.keys), queueUrl),
    };
    const spawned = consumer(queueUrl, "--buckets", BUCKET, "--visibility-timeout", "30", "--stats-interval", "0.5");
    const expected = [...a.ids, ...b.ids, ...c.ids];
    await waitUntil(
      "the events and the dead letters",
      () => {
        const out = spawned.output();
        const have = new Set(events(out).map((e) => String(e.eventID)));
        return expected.every((id) => have.has(id)) && deadLetters(out).length >= 3;
      },
      WAIT_MS,
    );
    // Every message but the transient one gets deleted; the transient one stays on the queue, for SQS to redeliver.
    await waitUntil("six deletes", () => sqs.remaining(queueUrl).length === 1, WAIT_MS);
    expect(sqs.remaining(queueUrl).map((m) => m.messageId)).toEqual([ids.transient]);
    await waitUntil(
      "the transient give-up",
      () => spawned.log().some((l) => l.msg === "left to SQS redelivery"),
      WAIT_MS,
    );

    // A long-running consumer logs its counts as it goes (every 0.5 s here): waited for, not assumed to fit a time.
    // The filter's stats line (run/stats.ts): counts since the last line, and in `total` since the start.
    const totalOf = (line: Record<string, unknown> | undefined) => (line?.total ?? {}) as Record<string, number>;
    await waitUntil(
      "two stats lines, the last one with every message",
      () => {
        const stats = spawned.log().filter((l) => l.msg === "stats");
        return stats.length >= 2 && totalOf(stats.at(-1)).received === 7 && totalOf(stats.at(-1)).deadLetters === 3;
      },
      WAIT_MS,
    );

    const asked = Date.now();
    spawned.child.kill("SIGTERM");
    const run = await spawned.done;
    expect(run.code).toBe(0);
    expect(Date.now() - asked).toBeLessThan(5000);
    const out = parseOutput(run.stdout);
    expect(countOf(events(out).map((e) => String(e.eventID)))).toEqual(countOf(expected));
    for (const event of events(out)) expect(event["@timestamp"]).toBe(event.eventTime);
    const letters = deadLetters(out);
    expect(letters.map((d) => (d.error as { code: string }).code).sort()).toEqual([
      "BodyNotJson",
      "BucketNotAllowed",
      "NotFound",
    ]);
    // A dead letter's input is the record in_sqs 3.x would have made of the message.
    for (const letter of letters) {
      expect(letter._tag).toBe("cloudtrail.deadletter");
      expect(letter.input).toMatchObject({ queue_url: queueUrl, receipt_handle: expect.any(String) });
    }
    // No padding: this stdout is no exec_filter pipe.
    expect(run.stdout.toString("utf8")).not.toMatch(/ {100}/);
    const summary = run.log.find((l) => l.msg === "summary");
    expect(summary).toMatchObject({ received: 7, deleted: 6, leftToSqs: 1, deadLetters: 3 });
    const stats = run.log.filter((l) => l.msg === "stats");
    expect(stats.length).toBeGreaterThanOrEqual(2);
    expect(totalOf(stats.at(-1))).toMatchObject({ received: 7, events: expected.length, deadLetters: 3 });
    // The same line as the exec filter's: the intervals add up to the totals, with events/s, the lag behind the
    // newest eventTime written (these fixtures are from 2023), the memory, and the queue's own counts.
    for (const name of ["events", "received", "deleted", "deadLetters"]) {
      expect(
        stats.reduce((sum, line) => sum + (line[name] as number), 0),
        name,
      ).toBe(totalOf(stats.at(-1))[name]);
    }
    for (const line of stats) {
      expect(line).toMatchObject({
        level: "info",
        seconds: expect.any(Number),
        eventsPerSecond: expect.any(Number),
        rssMB: expect.any(Number),
        receiveFailures: expect.any(Number),
        handedBack: expect.any(Number),
      });
    }
    expect(stats.at(-1)?.newestEventTime).toMatch(/^2023-/);
    expect(stats.at(-1)?.lagSeconds).toBeGreaterThan(86_400);
    expect(summary).toMatchObject({ newestEventTime: stats.at(-1)?.newestEventTime });
    for (const name of Object.keys(totalOf(stats.at(-1)))) expect(summary, name).toHaveProperty(name);
    expect(run.log.filter((l) => l.level === "error")).toEqual([]);
  });

  it("on SIGTERM hands back the messages in flight (visibility 0) and exits 0 within --shutdown-timeout", async () => {
    const queueUrl = sqs.addQueue("sigterm");
    const slow = store("s", NAMES.slice(7, 8));
    s3.failKey(BUCKET, slow.keys[0] as string, { delay: 10_000 });
    const id = sqs.send(cloudTrailBody(slow.keys), queueUrl);
    const spawned = consumer(queueUrl, "--shutdown-timeout", "2", "--visibility-timeout", "60");
    await waitUntil("the slow GET", () => s3.requestsFor(BUCKET, slow.keys[0] as string).length > 0, WAIT_MS);
    const asked = Date.now();
    spawned.child.kill("SIGTERM");
    const run = await spawned.done;
    expect(run.code).toBe(0);
    expect(Date.now() - asked).toBeLessThan(3000);
    expect(events(parseOutput(run.stdout))).toEqual([]);
    // Handed back: visible again at once, not after its 60 s.
    const [message] = sqs.remaining(queueUrl);
    expect(message?.messageId).toBe(id);
    expect(message?.invisibleUntil ?? Infinity).toBeLessThanOrEqual(Date.now());
    expect(sqs.visibilityChanges.some(([handle, seconds]) => handle === message?.handle && seconds === 0)).toBe(true);
  });

  it("stdout's reader quits: unfinished messages are handed back, nothing more deleted, a summary, exit 1", async () => {
    const queueUrl = sqs.addQueue("reader-quits");
    const first = store("rq1", NAMES.slice(0, 1));
    const slow = store("rq2", NAMES.slice(1, 2));
    // Still being read from S3 when the reader leaves: its events meet the closed pipe (or are never written).
    s3.failKey(BUCKET, slow.keys[0] as string, { delay: 3000 });
    const slowId = sqs.send(cloudTrailBody(slow.keys), queueUrl);
    sqs.send(cloudTrailBody(first.keys), queueUrl);
    const spawned = consumer(queueUrl, "--visibility-timeout", "60");
    // The reader takes a few hundred bytes, then closes its end of the pipe.
    await waitUntil("300 bytes on stdout", () => spawned.stdout.reduce((n, c) => n + c.length, 0) >= 300, WAIT_MS);
    spawned.child.stdout.destroy();
    const run = await spawned.done;
    expect(run.code).toBe(1);
    expect(run.log.some((l) => l.level === "error" && String(l.msg).startsWith("stdout closed"))).toBe(true);
    const summary = run.log.find((l) => l.msg === "summary");
    expect(summary).toMatchObject({ stdoutClosed: true, received: 2 });
    // What is left on the queue (the slow message at least) is visible at once, handed back, never deleted.
    const left = sqs.remaining(queueUrl);
    expect(left.map((m) => m.messageId)).toContain(slowId);
    for (const message of left) {
      expect(message.invisibleUntil).toBeLessThanOrEqual(Date.now());
      expect(sqs.visibilityChanges).toContainEqual([message.handle, 0]);
      expect(sqs.deleted).not.toContain(message.handle);
    }
    expect(summary?.handedBack).toBe(left.length);
    // The first message is deleted only if all its events went to the pipe before the reader left (the at-most-once
    // window of stdout, docs/output.md); else it is handed back too.
    expect(summary?.deleted).toBe(2 - left.length);
  });

  it("a consumer killed with SIGKILL: its messages come back after the visibility timeout and a second one delivers them", async () => {
    const queueUrl = sqs.addQueue("killed");
    const slow = store("k", NAMES.slice(8, 9));
    const quick = store("q", NAMES.slice(9, 11));
    s3.failKey(BUCKET, slow.keys[0] as string, { delay: 6000 });
    sqs.send(cloudTrailBody(slow.keys), queueUrl);
    sqs.send(cloudTrailBody(quick.keys), queueUrl);
    const first = consumer(queueUrl, "--visibility-timeout", "2");
    await waitUntil("the slow GET", () => s3.requestsFor(BUCKET, slow.keys[0] as string).length > 0, WAIT_MS);
    // While its object is being read, the message's visibility is extended (every second, for 2 s each time).
    const slowHandle = () => sqs.remaining(queueUrl).find((m) => m.receives === 1 && m.body.includes("/k/"))?.handle;
    await waitUntil(
      "the visibility extended twice",
      () => sqs.visibilityChanges.filter(([handle, seconds]) => handle === slowHandle() && seconds === 2).length >= 2,
      WAIT_MS,
    );
    first.child.kill("SIGKILL");
    await first.done;
    const killedAt = Date.now();
    // Nothing of the slow message was delivered or deleted.
    expect(sqs.remaining(queueUrl).length).toBeGreaterThanOrEqual(1);

    const second = consumer(queueUrl, "--visibility-timeout", "2");
    const expected = [...slow.ids, ...quick.ids];
    await waitUntil(
      "everything delivered by the second consumer",
      () => {
        const have = new Set(events(second.output()).map((e) => String(e.eventID)));
        return slow.ids.every((id) => have.has(id));
      },
      WAIT_MS,
    );
    await waitUntil("the queue empty", () => sqs.remaining(queueUrl).length === 0, WAIT_MS);
    second.child.kill("SIGTERM");
    const run = await second.done;
    expect(run.code).toBe(0);
    const delivered = [...events(first.output()), ...events(parseOutput(run.stdout))].map((e) => String(e.eventID));
    for (const id of expected) expect(delivered, id).toContain(id);
    // The slow message came back only once its visibility timeout (2 s, last extended just before the kill) ran out.
    const received = run.log.filter((l) => l.msg === "message received again");
    expect(received.length).toBeGreaterThanOrEqual(1);
    expect(Date.parse(String(received[0]?.time)) - killedAt).toBeGreaterThanOrEqual(0);
  });

  it("a queue that does not exist yet: keeps receiving, logs each failure as an error, works once it exists", async () => {
    const queueUrl = `${sqs.endpoint}/123456789012/later`;
    const spawned = consumer(queueUrl);
    await waitUntil(
      "two failed receives logged",
      () => spawned.log().filter((l) => l.msg === "SQS receive failed").length >= 2,
      WAIT_MS,
    );
    const failures = spawned.log().filter((l) => l.msg === "SQS receive failed");
    expect(failures[0]).toMatchObject({ level: "error", queueUrl, retryInMs: expect.any(Number) });
    expect(String(failures[0]?.error)).toMatch(/QueueDoesNotExist|NonExistentQueue/);

    sqs.addQueue("later");
    const later = store("l", NAMES.slice(11, 12));
    sqs.send(cloudTrailBody(later.keys), queueUrl);
    await waitUntil(
      "the events once the queue exists",
      () => {
        const have = new Set(events(spawned.output()).map((e) => String(e.eventID)));
        return later.ids.every((id) => have.has(id));
      },
      30_000,
    );
    await waitUntil("the message deleted", () => sqs.remaining(queueUrl).length === 0, WAIT_MS);
    expect(spawned.log().some((l) => l.msg === "SQS receive works again")).toBe(true);
    spawned.child.kill("SIGTERM");
    expect((await spawned.done).code).toBe(0);
  });

  it("access denied: logged as an error every time, retried, and received once allowed", async () => {
    const queueUrl = sqs.addQueue("denied");
    const allowed = store("ad", NAMES.slice(13, 14));
    sqs.send(cloudTrailBody(allowed.keys), queueUrl);
    // The consumer's first two calls, its first two receives (one receive loop), are refused.
    sqs.failNext(2, {
      status: 403,
      type: "com.amazon.coral.service#AccessDeniedException",
      queryCode: "AccessDenied",
      message: "User is not authorized to perform: sqs:receivemessage",
    });
    const spawned = consumer(queueUrl, "--receivers", "1");
    await waitUntil(
      "the events once allowed",
      () => {
        const have = new Set(events(spawned.output()).map((e) => String(e.eventID)));
        return allowed.ids.every((id) => have.has(id));
      },
      30_000,
    );
    const failures = spawned.log().filter((l) => l.msg === "SQS receive failed");
    expect(failures).toHaveLength(2);
    for (const failure of failures)
      expect(failure).toMatchObject({ level: "error", error: "AccessDenied", status: 403 });
    expect(spawned.log().some((l) => l.msg === "SQS receive works again")).toBe(true);
    spawned.child.kill("SIGTERM");
    expect((await spawned.done).code).toBe(0);
  });

  it("throttled receives: backs off, logs, and goes on", async () => {
    const queueUrl = sqs.addQueue("throttled");
    const throttled = store("th", NAMES.slice(12, 13));
    sqs.send(cloudTrailBody(throttled.keys), queueUrl);
    // The consumer's first calls are its receives (one receive loop). The SDK retries a throttled call itself (3
    // attempts): 9 throttles are three failed receives.
    sqs.failNext(9, "throttle");
    const spawned = consumer(queueUrl, "--receivers", "1");
    await waitUntil(
      "the events after the throttling",
      () => {
        const have = new Set(events(spawned.output()).map((e) => String(e.eventID)));
        return throttled.ids.every((id) => have.has(id));
      },
      30_000,
    );
    const failures = spawned.log().filter((l) => l.msg === "SQS receive failed");
    expect(failures).toHaveLength(3);
    for (const failure of failures) expect(failure).toMatchObject({ level: "warn", error: "ThrottlingException" });
    const delays = failures.map((l) => Number(l.retryInMs));
    for (let i = 1; i < delays.length; i++) expect(delays[i]).toBeGreaterThan((delays[i - 1] as number) * 0.4);
    spawned.child.kill("SIGTERM");
    expect((await spawned.done).code).toBe(0);
  });
});
