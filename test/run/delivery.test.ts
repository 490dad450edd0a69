// Delivery guarantees (issue 4): transient S3 faults are retried and never emit an event twice, permanent ones are
// dead-lettered at once; the spool survives SIGTERM, kill -9, a torn journal and a second process; SQS messages are
// deleted only once their output is written, kept invisible while worked on, and left to redelivery when an object
// keeps failing; and, in process, every input record is accounted for whatever the objects do.
import { appendFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { gzipSync } from "node:zlib";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { OutputSink } from "../../src/deliver/output.js";
import { FetchError, type ObjectSource, type OpenedObject } from "../../src/fetch/fetch.js";
import type { Line } from "../../src/input/lines.js";
import { isInvalid, parseBucketName } from "../../src/model/names.js";
import type { ObjectRef } from "../../src/model/refs.js";
import { interpretLine } from "../../src/records/records.js";
import { Filter, type RecordOutcome } from "../../src/run/filter.js";
import { RetryPolicy } from "../../src/shared/retry.js";
import { seededRandom } from "../support/bytes.js";
import {
  type CliRun,
  completeLines,
  deadLetters,
  events,
  parseOutput,
  runCli,
  type Spawned,
  startCli,
} from "../support/cli.js";
import { type Fault, type FaultS3, startFaultS3 } from "../support/fault-s3.js";
import {
  acceptEntry,
  acceptedIn,
  journalBytes,
  journalEntries,
  journalPath,
  oldAccept,
  oldDone,
  oldJournalPath,
} from "../support/journal.js";
import { MemoryLog } from "../support/log.js";
import { inSqsRecord } from "../support/messages.js";
import { type SqsTest, startSqs } from "../support/sqs-server.js";
import { countOf, FIXTURE_NAMES, FIXTURES } from "../support/trail.js";
import { waitUntil } from "../support/wait.js";

// ---------------------------------------------------------------------------------------------------------------
// Fixtures and helpers

const fixture = (i: number): Buffer => readFileSync(join(FIXTURES, FIXTURE_NAMES[i % FIXTURE_NAMES.length] as string));
const idsOfFixture = (i: number): string[] =>
  (JSON.parse(fixture(i).toString("utf8")) as { Records: { eventID: string }[] }).Records.map((r) => r.eventID);

const BUCKET = "trail";
const ENV = {
  AWS_ACCESS_KEY_ID: "x",
  AWS_SECRET_ACCESS_KEY: "x",
  AWS_REGION: "us-east-1",
  AWS_EC2_METADATA_DISABLED: "true",
};

const idsOf = (records: Record<string, unknown>[]): string[] => events(records).map((e) => String(e.eventID));
const logsNamed = (run: CliRun, msg: string) => run.log.filter((line) => line.msg === msg);
const summaryOf = (run: CliRun) => logsNamed(run, "summary")[0] as Record<string, unknown>;

/** Waits for `condition` (15 s unless told). */
const waitFor = (what: string, condition: () => boolean, timeoutMs = 15_000): Promise<void> =>
  waitUntil(what, condition, timeoutMs);

let s3: FaultS3;
const tempDirs: string[] = [];
const tempDir = (): string => {
  const dir = mkdtempSync(join(tmpdir(), "ctef-delivery-"));
  tempDirs.push(dir);
  return dir;
};

beforeAll(async () => {
  s3 = await startFaultS3();
});

afterAll(async () => {
  await s3?.close();
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
});

const cli = (args: string[], input: string | Buffer, env: Record<string, string> = {}): Promise<CliRun> =>
  runCli(["--endpoint", s3.endpoint, ...args], input, { ...ENV, ...env });
const spawnCli = (args: string[]): Spawned => startCli(["--endpoint", s3.endpoint, ...args], ENV);

/** Stores fixture `i` under `key` (gzipped if asked) and returns its eventIDs. */
function put(key: string, i: number, gzip = false): string[] {
  s3.putObject(BUCKET, key, gzip ? gzipSync(fixture(i)) : fixture(i));
  return idsOfFixture(i);
}

// ---------------------------------------------------------------------------------------------------------------
// 1. S3 faults

describe("S3 faults: transient ones are retried, permanent ones dead-lettered", () => {
  /** The fixtures by size, largest first: big enough that events come out before a cut in the middle. */
  const bySize = FIXTURE_NAMES.map((_, i) => i).sort((a, b) => fixture(b).length - fixture(a).length);
  const half = (i: number, gzip: boolean) => Math.floor((gzip ? gzipSync(fixture(i)) : fixture(i)).length / 2);
  const transient: [name: string, faults: Fault[], gzip: boolean][] = [
    [
      "503 SlowDown",
      [
        { status: 503, code: "SlowDown" },
        { status: 503, code: "SlowDown" },
      ],
      false,
    ],
    ["500", [{ status: 500 }, { status: 500 }], false],
    ["connection reset", ["reset", "reset"], false],
    ["truncated plain JSON body", [{ truncate: half(bySize[0] as number, false) }], false],
    ["truncated gzip body", [{ truncate: half(bySize[4] as number, true) }], true],
    ["stalled request (--request-timeout 1)", ["stall"], false],
    ["response slower than --request-timeout", [{ delay: 2500 }], false],
  ];
  const keyOf = (name: string, gzip: boolean) => `faults/${name.replace(/\W+/g, "-")}.json${gzip ? ".gz" : ""}`;
  const expectedOf = new Map<string, string[]>();
  let run: CliRun;
  let out: Record<string, unknown>[];

  // One run for every fault (each on an object of its own), as a batch from fluentd would bring them.
  beforeAll(async () => {
    const lines: string[] = [];
    transient.forEach(([name, faults, gzip], i) => {
      const key = keyOf(name, gzip);
      expectedOf.set(key, put(key, bySize[i] as number, gzip));
      s3.failKey(BUCKET, key, ...faults);
      lines.push(`s3://${BUCKET}/${key}`);
    });
    s3.createBucket(BUCKET);
    s3.deny(BUCKET, "faults/denied.json");
    lines.push(`s3://${BUCKET}/faults/missing.json`, `s3://${BUCKET}/faults/denied.json`);
    run = await cli(["--request-timeout", "1", "--concurrency", "10"], `${lines.join("\n")}\n`);
    out = parseOutput(run.stdout);
  });

  it.each(transient)("%s: retried until every event is out exactly once, no dead letter", (name, faults, gzip) => {
    const key = keyOf(name, gzip);
    const expected = expectedOf.get(key) as string[];
    expect(run.code).toBe(0);
    expect(deadLetters(out).filter((d) => d.key === key)).toEqual([]);
    // Exactly once: a retry after a partial read skips what the first attempt wrote.
    const seen = countOf(idsOf(out).filter((id) => expected.includes(id)));
    expect(seen.size).toBe(expected.length);
    for (const id of expected) expect(seen.get(id), id).toBe(1);
    expect(s3.requestsFor(BUCKET, key)).toHaveLength(faults.length + 1);
    const retrying = logsNamed(run, "retrying").filter((l) => l.key === key);
    if (faults.every((fault) => fault === "reset")) {
      // A reset before any byte of answer, met on a kept-alive connection, looks exactly like a connection the
      // server had closed while it sat idle: the client sends the request again at once, without the filter's retry
      // pause (and without its log line). Whether a request went out on a reused connection depends on timing.
      expect(retrying.length).toBeLessThanOrEqual(faults.length);
    } else {
      expect(retrying).toHaveLength(faults.length);
    }
    if (retrying.length > 0) {
      expect(retrying[0]).toMatchObject({ bucket: BUCKET, key, code: "FetchFailed", attempt: 1 });
    }
  });

  it.each([
    ["404", "faults/missing.json", "NotFound"],
    ["403", "faults/denied.json", "AccessDenied"],
  ])("%s is permanent: exactly one request and one dead letter", (_status, key, code) => {
    expect(deadLetters(out).filter((d) => d.key === key)).toEqual([
      expect.objectContaining({
        _tag: "cloudtrail.deadletter",
        bucket: BUCKET,
        key,
        error: expect.objectContaining({ code }),
        input: `s3://${BUCKET}/${key}`,
      }),
    ]);
    expect(s3.requestsFor(BUCKET, key)).toHaveLength(1);
    expect(logsNamed(run, "retrying").filter((l) => l.key === key)).toEqual([]);
  });

  it("the run as a whole: the two permanent failures are its only dead letters", () => {
    expect(deadLetters(out)).toHaveLength(2);
    const all = [...expectedOf.values()].flat();
    expect(summaryOf(run)).toMatchObject({ objects: transient.length + 2, events: all.length, deadLetters: 2 });
  });

  it("a truncated body emits the events before the cut, each once (partial dead letters with --retry-for 0)", async () => {
    // Small objects are read whole before they are inflated, so a cut body usually emits nothing; whatever does come
    // out must agree with the dead letter: the object's first events, each once, as many as it says.
    const cuts: [key: string, fixture: number, gzip: boolean, cut: number][] = [
      ["faults/cut-0.json", bySize[7] as number, false, half(bySize[7] as number, false)],
      ["faults/cut-1.json", bySize[8] as number, false, 5000],
      ["faults/cut-2.json.gz", bySize[9] as number, true, 3000],
      ["faults/cut-3.json.gz", bySize[10] as number, true, half(bySize[10] as number, true)],
    ];
    const expected = new Map<string, string[]>();
    for (const [key, i, gzip, cut] of cuts) {
      expected.set(key, put(key, i, gzip));
      s3.failKey(BUCKET, key, { truncate: cut });
    }
    const cutRun = await cli(["--retry-for", "0"], cuts.map(([key]) => `s3://${BUCKET}/${key}\n`).join(""));
    const cutOut = parseOutput(cutRun.stdout);
    const ids = idsOf(cutOut);
    let partial = 0;
    for (const [key] of cuts) {
      const dead = deadLetters(cutOut).filter((d) => d.key === key);
      expect(dead, key).toHaveLength(1);
      const error = (dead[0] as { error: { code: string; partial?: boolean; eventsEmitted?: number } }).error;
      expect(error.code).toBe("FetchFailed");
      const all = expected.get(key) as string[];
      const mine = ids.filter((id) => all.includes(id));
      // What came out is the object's first events, each once, as many as the dead letter says.
      expect(mine, key).toEqual(all.slice(0, mine.length));
      expect(mine.length, key).toBe(error.eventsEmitted ?? 0);
      expect(mine.length, key).toBeLessThan(all.length);
      if (error.partial === true) partial++;
    }
    expect(partial).toBeLessThanOrEqual(cuts.length);
  });

  it("a key failing 500 for longer than --retry-for ends as one FetchFailed dead letter after several attempts", async () => {
    const key = "faults/500-forever.json";
    put(key, 1);
    s3.failKey(BUCKET, key, ...Array.from({ length: 200 }, () => ({ status: 500 })));
    const run = await cli(["--retry-for", "2"], `s3://${BUCKET}/${key}\n`);
    expect(run.code).toBe(0);
    const out = parseOutput(run.stdout);
    expect(events(out)).toEqual([]);
    const dead = deadLetters(out);
    expect(dead).toHaveLength(1);
    expect(dead[0]).toMatchObject({ bucket: BUCKET, key, error: { code: "FetchFailed" } });
    expect(String((dead[0] as { error: { message: string } }).error.message)).toMatch(/gave up after \d+ attempts/);
    const attempts = s3.requestsFor(BUCKET, key).length;
    expect(attempts).toBeGreaterThanOrEqual(3);
    expect(attempts).toBeLessThan(40);
    expect(logsNamed(run, "retrying")).toHaveLength(attempts - 1);
  });

  it("no credentials anywhere: one dead letter per object saying so, no request sent, no retry", async () => {
    const key = "nocreds/0.json.gz";
    put(key, 0, true);
    const run = await cli(["--retry-for", "30"], `s3://${BUCKET}/${key}\n`, {
      AWS_ACCESS_KEY_ID: "",
      AWS_SECRET_ACCESS_KEY: "",
      AWS_PROFILE: "",
      AWS_SHARED_CREDENTIALS_FILE: "/nonexistent/credentials",
      AWS_CONFIG_FILE: "/nonexistent/config",
    });
    expect(run.code).toBe(0);
    const letters = deadLetters(parseOutput(run.stdout));
    expect(letters).toEqual([
      expect.objectContaining({ key, error: expect.objectContaining({ code: "FetchFailed" }) }),
    ]);
    expect(JSON.stringify(letters[0]?.error)).toMatch(/credentials/i);
    expect(s3.requestsFor(BUCKET, key)).toEqual([]);
    expect(logsNamed(run, "retrying")).toEqual([]);
  });

  it("--concurrency bounds the GETs in flight, and the filter keeps that many in flight", async () => {
    // Every GET is answered 300 ms late. With --concurrency 3 a 4th request can only start once one of 3 earlier ones
    // has been answered, so no window shorter than the delay holds more than 3 arrivals; and the filter does use its 3.
    const delay = 300;
    const keys = Array.from({ length: 12 }, (_, i) => `bounded/${i}.json.gz`);
    const expected = new Set<string>();
    keys.forEach((key, i) => {
      for (const id of put(key, i % 4, true)) expected.add(id);
      s3.failKey(BUCKET, key, { delay });
    });
    const run = await cli(["--concurrency", "3"], keys.map((key) => `s3://${BUCKET}/${key}\n`).join(""));
    expect(run.code).toBe(0);
    const out = parseOutput(run.stdout);
    expect(deadLetters(out)).toEqual([]);
    expect(new Set(idsOf(out))).toEqual(expected);
    const arrivals = keys.map((key) => (s3.requestsFor(BUCKET, key)[0] as { monotonic: number }).monotonic);
    arrivals.sort((a, b) => a - b);
    const within = (window: number) =>
      Math.max(...arrivals.map((start) => arrivals.filter((t) => t >= start && t < start + window).length));
    expect(within(delay * 0.8)).toBeLessThanOrEqual(3);
    expect(within(delay * 0.8)).toBe(3);
  });

  it("20 objects throttled at once: the shared pause keeps the number of requests bounded", async () => {
    // S3 answers 503 SlowDown to everything for 1 s from the first request. The first throttles raise one pause
    // that every worker waits out (and new objects wait for before their first request), so the storm stays small:
    // a few throttled requests per worker, not one per object per backoff step. A sane bound, not a timing: with the
    // default 8 workers, at most 4 throttled requests each (typically 1-3).
    const throttle = await startThrottlingS3(1000);
    try {
      const keys = Array.from({ length: 20 }, (_, i) => `storm/${i}.json`);
      const expected = new Set<string>();
      keys.forEach((key, i) => {
        throttle.objects.set(`/${BUCKET}/${key}`, fixture(i));
        for (const id of idsOfFixture(i)) expected.add(id);
      });
      const input = keys.map((key) => `s3://${BUCKET}/${key}\n`).join("");
      const concurrency = 8;
      const run = await runCli(["--endpoint", throttle.endpoint, "--retry-for", "60"], input, ENV);
      expect(run.code).toBe(0);
      const out = parseOutput(run.stdout);
      expect(deadLetters(out)).toEqual([]);
      expect(new Set(idsOf(out))).toEqual(expected);
      const seen = `${throttle.requests} requests, ${throttle.throttled} throttled`;
      expect(throttle.throttled, seen).toBeGreaterThanOrEqual(concurrency);
      expect(throttle.throttled, seen).toBeLessThanOrEqual(4 * concurrency);
      expect(throttle.requests, seen).toBe(keys.length + throttle.throttled);
      expect(logsNamed(run, "retrying")).toHaveLength(throttle.throttled);
    } finally {
      await throttle.close();
    }
  });

  // Found by this suite, fixed in 750933c: every throttled response used to raise the shared pause one level, so
  // one burst of `--concurrency` simultaneous 503s paused everything for 10-20 s at the default concurrency 8.
  it("--retry-for 0 never retries, even when the jittered delay is 0 within the same millisecond", () => {
    const now = 1_000_000;
    const none = new RetryPolicy({ retryForMs: 0, random: () => 0, now: () => now });
    expect(none.delayAfter(1, now)).toBeUndefined();
    const some = new RetryPolicy({ retryForMs: 1, random: () => 0, now: () => now });
    expect(some.delayAfter(1, now)).toBe(0);
  });

  it("one burst of 8 simultaneous throttles pauses everyone for at most 2 s, not 20 s", () => {
    let now = 1_000_000;
    const retry = new RetryPolicy({ retryForMs: 300_000, random: () => 1, now: () => now });
    for (let i = 0; i < 8; i++) retry.throttled();
    now += 1;
    expect(retry.pauseMs()).toBeLessThanOrEqual(2000);
  });
});

interface ThrottlingS3 {
  endpoint: string;
  objects: Map<string, Buffer>;
  requests: number;
  throttled: number;
  close(): Promise<void>;
}

/** A minimal path-style S3 that answers 503 SlowDown to every request for `windowMs` from the first one. */
async function startThrottlingS3(windowMs: number): Promise<ThrottlingS3> {
  let until = 0;
  const state: ThrottlingS3 = {
    endpoint: "",
    objects: new Map(),
    requests: 0,
    throttled: 0,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  const server: Server = createServer((req, res) => {
    req.resume();
    state.requests++;
    if (until === 0) until = Date.now() + windowMs;
    if (Date.now() < until) {
      state.throttled++;
      const body = `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>`;
      res.writeHead(503, { "content-type": "application/xml", "content-length": Buffer.byteLength(body) });
      res.end(body);
      return;
    }
    const body = state.objects.get(decodeURIComponent((req.url ?? "").split("?")[0] ?? ""));
    if (body === undefined) {
      const xml = "<Error><Code>NoSuchKey</Code><Message>The specified key does not exist.</Message></Error>";
      res.writeHead(404, { "content-type": "application/xml", "content-length": Buffer.byteLength(xml) });
      res.end(xml);
      return;
    }
    res.writeHead(200, { "content-type": "application/json", "content-length": body.length });
    res.end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  state.endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return state;
}

// ---------------------------------------------------------------------------------------------------------------
// 2. The spool

describe("--spool-dir: nothing accepted is lost to SIGTERM, kill -9, a torn journal", () => {
  /** Stores `n` objects under `prefix`; returns the input lines and every expected eventID. */
  function objects(prefix: string, n: number): { keys: string[]; input: string; expected: Set<string> } {
    const keys = Array.from({ length: n }, (_, i) => `${prefix}/${i}.json.gz`);
    const expected = new Set<string>();
    keys.forEach((key, i) => {
      for (const id of put(key, i, true)) expected.add(id);
    });
    // CloudTrail notifications naming two keys each, and single s3:// lines.
    const lines: string[] = [];
    for (let i = 0; i < keys.length; i += 3) {
      lines.push(JSON.stringify({ s3Bucket: BUCKET, s3ObjectKey: keys.slice(i, i + 2) }));
      if (keys[i + 2] !== undefined) lines.push(`s3://${BUCKET}/${keys[i + 2]}`);
    }
    return { keys, input: `${lines.join("\n")}\n`, expected };
  }

  const missing = (expected: Set<string>, runs: Record<string, unknown>[][]) => {
    const seen = new Set(runs.flatMap(idsOf));
    return [...expected].filter((id) => !seen.has(id));
  };

  it("SIGTERM after stdin is closed: exits 0 in time with whole lines; a restart replays the rest; then nothing", async () => {
    const spool = join(tempDir(), "spool");
    const { keys, input, expected } = objects("sigterm", 24);
    const stalled = keys[1] as string;
    const slow = keys[4] as string;
    s3.failKey(BUCKET, stalled, "stall");
    s3.failKey(BUCKET, slow, { delay: 10_000 });
    const first = spawnCli(["--spool-dir", spool, "--concurrency", "2", "--shutdown-timeout", "1"]);
    first.child.stdin.end(input);
    await waitFor("the stalled and the slow request", () => {
      return s3.requestsFor(BUCKET, stalled).length > 0 && s3.requestsFor(BUCKET, slow).length > 0;
    });
    const signalledAt = Date.now();
    first.child.kill("SIGTERM");
    const run1 = await first.done;
    const took = Date.now() - signalledAt;
    expect(run1.code).toBe(0);
    expect(took).toBeLessThan(1000 + 3000);
    const out1 = parseOutput(run1.stdout); // throws on a partial line
    expect(logsNamed(run1, "stopping")).toHaveLength(1);
    const summary1 = summaryOf(run1);
    expect(Number(summary1.spooled)).toBeGreaterThan(0);
    expect(missing(expected, [out1]).length).toBeGreaterThan(0);

    // The restart replays the unfinished records (the stall and delay are used up now).
    const run2 = await runCli(["--endpoint", s3.endpoint, "--spool-dir", spool], "", ENV);
    expect(run2.code).toBe(0);
    const out2 = parseOutput(run2.stdout);
    expect(deadLetters(out2)).toEqual([]);
    expect(logsNamed(run2, "replaying the spool")).toEqual([expect.objectContaining({ records: summary1.spooled })]);
    expect(missing(expected, [out1, out2])).toEqual([]);
    expect(summaryOf(run2)).toMatchObject({ spooled: 0, abandoned: 0 });

    // Drained: nothing replayed, nothing out, and the journal is compacted away.
    const run3 = await runCli(["--endpoint", s3.endpoint, "--spool-dir", spool], "", ENV);
    expect(run3.code).toBe(0);
    expect(parseOutput(run3.stdout)).toEqual([]);
    expect(summaryOf(run3)).toMatchObject({ records: 0, spooled: 0 });
    expect(logsNamed(run3, "replaying the spool")).toEqual([]);
    expect(journalBytes(spool)).toBe(0);
  });

  it("SIGTERM with stdin left open (fluentd v0.12): exits 0 at the deadline; what was read, even after, is replayed", async () => {
    const spool = join(tempDir(), "spool");
    const { keys, expected } = objects("open-stdin", 3);
    s3.failKey(BUCKET, keys[0] as string, "stall");
    const run = spawnCli(["--spool-dir", spool, "--shutdown-timeout", "1"]);
    run.child.stdin.write(`s3://${BUCKET}/${keys[0]}\ns3://${BUCKET}/${keys[1]}\n`);
    await waitFor("the stalled request", () => s3.requestsFor(BUCKET, keys[0] as string).length > 0);
    await waitFor("the second object", () => s3.requestsFor(BUCKET, keys[1] as string).length > 0);
    const signalledAt = Date.now();
    run.child.kill("SIGTERM");
    // Still in the pipe after the signal: fluentd counts it delivered, so it must be journaled.
    await new Promise((resolve) => setTimeout(resolve, 200));
    run.child.stdin.write(`s3://${BUCKET}/${keys[2]}\n`);
    const first = await run.done;
    expect(first.code).toBe(0);
    expect(Date.now() - signalledAt).toBeLessThan(1000 + 3000);
    const out1 = parseOutput(first.stdout);
    const second = await runCli(["--endpoint", s3.endpoint, "--spool-dir", spool], "", ENV);
    expect(second.code).toBe(0);
    const out2 = parseOutput(second.stdout);
    expect(missing(expected, [out1, out2])).toEqual([]);
    expect(idsOf(out2)).toEqual(expect.arrayContaining(idsOfFixture(0)));
    expect(idsOf(out2)).toEqual(expect.arrayContaining(idsOfFixture(2)));
  });

  /** SIGTERM while the reader does not read stdout; the reader reads again only after the exit. */
  async function shutdownUnread(
    prefix: string,
    resumeAfterMs?: number,
  ): Promise<{ run: CliRun; took: number; replay: CliRun; expected: Set<string> }> {
    const spool = join(tempDir(), "spool");
    const { input, expected } = objects(prefix, 28);
    const started = spawnCli(["--spool-dir", spool, "--shutdown-timeout", "1"]);
    started.child.stdout.pause();
    started.child.stdin.end(input);
    let exited = false;
    started.child.on("exit", () => {
      exited = true;
    });
    let took = Number.POSITIVE_INFINITY;
    try {
      await waitFor(
        "the objects requested",
        () => s3.requests.filter((r) => r.key.startsWith(`${prefix}/`)).length >= 8,
      );
      await new Promise((resolve) => setTimeout(resolve, 1000));
      const signalledAt = Date.now();
      started.child.kill("SIGTERM");
      if (resumeAfterMs !== undefined) setTimeout(() => started.child.stdout.resume(), resumeAfterMs);
      // The shutdown timeout (1 s), then at most 1 s for stdout, plus room for a loaded machine.
      await waitFor("the exit", () => exited, 5000).catch(() => {});
      if (exited) took = Date.now() - signalledAt;
    } finally {
      started.child.stdout.resume();
    }
    const run = await started.done;
    const replay = await runCli(["--endpoint", s3.endpoint, "--spool-dir", spool], "", ENV);
    return { run, took, replay, expected };
  }

  // Found by this suite, fixed in 750933c: objects waiting for the pipe to drain never saw the shutdown deadline,
  // so with a reader that stopped reading (fluentd's reader thread blocked on a full downstream buffer) the process
  // stayed until the reader read again.
  it("SIGTERM while stdout is not being read: exits within the shutdown timeout; what was not taken is replayed", async () => {
    const { run, took, replay, expected } = await shutdownUnread("unread");
    expect(run.code).toBe(0);
    expect(took).toBeLessThan(5000);
    expect(logsNamed(run, "stdout is not being read; exiting with output unsent")).toHaveLength(1);
    expect(replay.code).toBe(0);
    expect(missing(expected, [completeLines(run.stdout), parseOutput(replay.stdout)])).toEqual([]);
  });

  // When the shutdown gives up on an unread stdout, only the chunk being written can be partly in the pipe; the
  // filter finishes the line it was cut in as soon as the reader takes bytes again (for up to 2 s), then exits.
  // (A reader that takes nothing at all for that long gets a cut last line: it is not reading this pipe any more.)
  it("SIGTERM while stdout is not being read: a reader that reads again gets whole lines only", async () => {
    const { run, replay, expected } = await shutdownUnread("unread-lines", 2600);
    expect(run.code).toBe(0);
    expect(() => parseOutput(run.stdout)).not.toThrow();
    expect(missing(expected, [parseOutput(run.stdout), parseOutput(replay.stdout)])).toEqual([]);
  });

  it("kill -9 once every record is journaled: a restart with empty stdin replays what was not finished", async () => {
    const spool = join(tempDir(), "spool");
    const { keys, input, expected } = objects("kill-journaled", 12);
    const slow = keys.slice(0, 3);
    for (const key of slow) s3.failKey(BUCKET, key, { delay: 1500 });
    const lines = input.trim().split("\n").length;
    const first = spawnCli(["--spool-dir", spool, "--concurrency", "4"]);
    first.child.stdin.end(input);
    await waitFor("every record journaled", () => acceptedIn(spool) >= lines);
    await waitFor("the slow objects requested", () => slow.every((key) => s3.requestsFor(BUCKET, key).length > 0));
    first.child.kill("SIGKILL");
    const run1 = await first.done;
    expect(run1.signal).toBe("SIGKILL");
    const out1 = completeLines(run1.stdout);

    const run2 = await runCli(["--endpoint", s3.endpoint, "--spool-dir", spool], "", ENV);
    expect(run2.code).toBe(0);
    const out2 = parseOutput(run2.stdout);
    expect(logsNamed(run2, "replaying the spool")).toHaveLength(1);
    expect(missing(expected, [out1, out2])).toEqual([]);

    const run3 = await runCli(["--endpoint", s3.endpoint, "--spool-dir", spool], "", ENV);
    expect(parseOutput(run3.stdout)).toEqual([]);
    expect(summaryOf(run3)).toMatchObject({ records: 0 });
  });

  it("kill -9 at random points (seeded), each restart re-sending the whole input: every event out at least once", async () => {
    const seed = 20_240_604;
    const random = seededRandom(seed);
    const spool = join(tempDir(), "spool");
    const { keys, input, expected } = objects("kill-random", 15);
    const outputs: Record<string, unknown>[][] = [];
    const schedule: number[] = [];
    for (let iteration = 0; iteration < 4; iteration++) {
      // Slow a few objects down each time so that there is work in flight to interrupt.
      for (const key of keys) if (random() < 0.3) s3.failKey(BUCKET, key, { delay: Math.round(200 + random() * 800) });
      const killAfter = Math.round(random() * 1500);
      schedule.push(killAfter);
      const run = spawnCli(["--spool-dir", spool, "--concurrency", "3"]);
      run.child.stdin.end(input);
      await new Promise((resolve) => setTimeout(resolve, killAfter));
      run.child.kill("SIGKILL");
      const result = await run.done;
      // Killed mid-write, a run may leave a partial last line; every complete one is a JSON object.
      outputs.push(completeLines(result.stdout));
    }
    // The last restart gets the input once more and is left to finish.
    const last = await runCli(["--endpoint", s3.endpoint, "--spool-dir", spool], input, ENV);
    expect(last.code, `seed ${seed}, kills after ${schedule.join(",")} ms`).toBe(0);
    outputs.push(parseOutput(last.stdout));
    expect(deadLetters(outputs.flat())).toEqual([]);
    expect(missing(expected, outputs), `seed ${seed}, kills after ${schedule.join(",")} ms`).toEqual([]);

    const drained = await runCli(["--endpoint", s3.endpoint, "--spool-dir", spool], "", ENV);
    expect(drained.code).toBe(0);
    expect(parseOutput(drained.stdout)).toEqual([]);
    expect(summaryOf(drained)).toMatchObject({ records: 0, spooled: 0 });
  });

  it("a torn last journal entry is tolerated; an entry whose done mark is torn is replayed", async () => {
    const spool = join(tempDir(), "spool");
    const key = "torn/0.json";
    const expected = put(key, 3);
    const first = await runCli(["--endpoint", s3.endpoint, "--spool-dir", spool], `s3://${BUCKET}/${key}\n`, ENV);
    expect(first.code).toBe(0);
    // A record accepted, its done mark cut by kill -9 (`d 77` of `d 7777`), then an accept cut in half.
    const accepted = acceptEntry(7777, `s3://${BUCKET}/${key}`);
    const half = acceptEntry(7778, `s3://${BUCKET}/torn/never.json`);
    appendFileSync(
      journalPath(spool),
      Buffer.concat([accepted, Buffer.from("d 77"), half.subarray(0, half.length >> 1)]),
    );
    const second = await runCli(["--endpoint", s3.endpoint, "--spool-dir", spool], "", ENV);
    expect(second.code).toBe(0);
    expect(second.stderr).toBe("");
    const out = parseOutput(second.stdout);
    expect(deadLetters(out)).toEqual([]);
    expect(idsOf(out).sort()).toEqual([...expected].sort());
    expect(s3.requestsFor(BUCKET, "torn/never.json")).toEqual([]);
    const third = await runCli(["--endpoint", s3.endpoint, "--spool-dir", spool], "", ENV);
    expect(parseOutput(third.stdout)).toEqual([]);
    expect(summaryOf(third)).toMatchObject({ records: 0 });
  });

  it("an upgrade keeps the records the first journal format (journal.jsonl) left pending, once", async () => {
    const spool = join(tempDir(), "spool");
    mkdirSync(spool);
    const pending = "upgrade/0.json";
    const finished = "upgrade/1.json";
    const expected = put(pending, 5);
    put(finished, 6);
    // Pending, done, pending with escapes the old format doubled, and a torn last entry.
    const odd = JSON.stringify({ Event: "s3:TestEvent", note: '"quoted" \\ back\nslash' });
    const torn = oldAccept(9, `s3://${BUCKET}/upgrade/never.json`);
    writeFileSync(
      oldJournalPath(spool),
      oldAccept(3, `s3://${BUCKET}/${pending}`) +
        oldAccept(4, `s3://${BUCKET}/${finished}`) +
        oldDone(4) +
        oldAccept(5, odd) +
        torn.slice(0, 20),
    );
    const run = await runCli(["--endpoint", s3.endpoint, "--spool-dir", spool], "", ENV);
    expect(run.code).toBe(0);
    expect(logsNamed(run, "replaying the spool")).toEqual([expect.objectContaining({ records: 2 })]);
    const out = parseOutput(run.stdout);
    expect(deadLetters(out)).toEqual([]);
    expect(idsOf(out).sort()).toEqual([...expected].sort());
    expect(summaryOf(run)).toMatchObject({ records: 2, skipped: 1, spooled: 0 });
    expect(s3.requestsFor(BUCKET, finished)).toEqual([]);
    expect(s3.requestsFor(BUCKET, "upgrade/never.json")).toEqual([]);
    expect(existsSync(oldJournalPath(spool))).toBe(false);
    const again = await runCli(["--endpoint", s3.endpoint, "--spool-dir", spool], "", ENV);
    expect(summaryOf(again)).toMatchObject({ records: 0 });
  });

  it("each record is stored once, as its own bytes: a record of quotes takes its length, not twice", async () => {
    const spool = join(tempDir(), "spool");
    const body = '"'.repeat(256 * 1024);
    const line = JSON.stringify({ body, receipt_handle: "h", queue_url: "https://sqs.us-east-1.amazonaws.com/1/q" });
    const run = spawnCli(["--spool-dir", spool]);
    run.child.stdin.write(`${line}\n`);
    await waitFor("the record journaled", () => acceptedIn(spool) >= 1);
    run.child.kill("SIGKILL");
    await run.done;
    const entries = journalEntries(spool);
    expect(entries[0]).toEqual({ kind: "a", id: 1, text: line });
    expect(journalBytes(spool)).toBeLessThan(Buffer.byteLength(line) + 64);
  });

  it("a second process on the same spool exits non-zero with a clear error", async () => {
    const spool = join(tempDir(), "spool");
    const first = spawnCli(["--spool-dir", spool]);
    await waitFor("the lock", () => existsSync(join(spool, "lock")));
    const second = await runCli(["--endpoint", s3.endpoint, "--spool-dir", spool], "", ENV);
    expect(second.code).not.toBe(0);
    expect(second.stdout.toString()).toBe("");
    expect(second.stderr).toMatch(/spool/);
    expect(second.stderr).toContain(`in use by process ${first.child.pid}`);
    first.child.stdin.end();
    const run = await first.done;
    expect(run.code).toBe(0);
    expect(existsSync(join(spool, "lock"))).toBe(false);
  });

  it("the journal is compacted: after a drained run of 1200 records it is small", async () => {
    const spool = join(tempDir(), "spool");
    // S3 test events: skipped records that need no S3, so the run is quick.
    const input = `${JSON.stringify({ Event: "s3:TestEvent" })}\n`.repeat(1200);
    const run = await runCli(["--spool-dir", spool], input, ENV);
    expect(run.code).toBe(0);
    expect(summaryOf(run)).toMatchObject({ records: 1200, skipped: 1200, spooled: 0 });
    // Uncompacted, 1200 accepts and 1200 done marks take ~70 KB.
    expect(journalBytes(spool)).toBeLessThan(20_000);
    const again = await runCli(["--spool-dir", spool], "", ENV);
    expect(summaryOf(again)).toMatchObject({ records: 0 });
    expect(journalBytes(spool)).toBe(0);
  });
});

// ---------------------------------------------------------------------------------------------------------------
// 3. SQS acknowledgements

describe("--delete-sqs-messages: messages are deleted once their output is written", () => {
  let sqs: SqsTest;
  beforeAll(async () => {
    sqs = await startSqs();
  });
  afterAll(async () => {
    await sqs?.close();
  });

  // The stand-in's queue URLs are on loopback: the filter sends to them only with the endpoint configured.
  const sqsEnv = () => ({ AWS_ENDPOINT_URL_SQS: sqs.endpoint });
  const message = (handle: string, keys: string[]): string =>
    inSqsRecord(JSON.stringify({ s3Bucket: BUCKET, s3ObjectKey: keys }), handle, sqs.queueUrl);
  const deleteCalls = () => sqs.calls.filter((c) => c.action === "DeleteMessageBatch" || c.action === "DeleteMessage");
  const handlesOf = (call: { input: Record<string, unknown> }) =>
    ((call.input.Entries as { ReceiptHandle: string }[] | undefined) ?? []).map((e) => e.ReceiptHandle);
  const deletedAt = (handle: string) =>
    sqs.succeeded("DeleteMessageBatch").find((call) => handlesOf(call).includes(handle))?.time;

  it("deletes in batches of at most 10, after the events are out; 404 → dead letter and deleted; a handle twice → once", async () => {
    const lines: string[] = [];
    const expected = new Set<string>();
    for (let i = 0; i < 25; i++) {
      const key = `sqs/batch/${i}.json`;
      for (const id of put(key, i)) expected.add(id);
      lines.push(message(`rh-batch-${i}`, [key]));
    }
    const slowKey = "sqs/batch/slow.json";
    const slowIds = put(slowKey, 2);
    s3.failKey(BUCKET, slowKey, { delay: 1500 });
    lines.push(message("rh-slow", [slowKey]));
    lines.push(message("rh-missing", ["sqs/batch/missing.json"]));
    lines.push(message("rh-dup", ["sqs/batch/0.json"]), message("rh-dup", ["sqs/batch/0.json"]));
    // SQS refuses this handle (it expired): logged, counted, never fatal.
    sqs.rejectHandle("rh-rejected");
    lines.push(message("rh-rejected", ["sqs/batch/1.json"]));

    const started = startCli(["--endpoint", s3.endpoint, "--delete-sqs-messages"], { ...ENV, ...sqsEnv() });
    const firstSeen = new Map<string, number>();
    let text = "";
    started.child.stdout.on("data", (chunk: Buffer) => {
      text += chunk.toString("utf8");
      const end = text.lastIndexOf("\n");
      for (const line of text.slice(0, end + 1).split("\n")) {
        if (line.trim() === "") continue;
        const id = String((JSON.parse(line) as { eventID?: unknown }).eventID);
        if (!firstSeen.has(id)) firstSeen.set(id, Date.now());
      }
      text = text.slice(end + 1);
    });
    started.child.stdin.end(`${lines.join("\n")}\n`);
    const run = await started.done;
    expect(run.code).toBe(0);
    const out = parseOutput(run.stdout);
    for (const id of [...expected, ...slowIds]) expect(firstSeen.has(id), id).toBe(true);
    expect(deadLetters(out)).toEqual([
      expect.objectContaining({ key: "sqs/batch/missing.json", error: expect.objectContaining({ code: "NotFound" }) }),
    ]);

    const calls = deleteCalls();
    expect(calls.every((c) => c.action === "DeleteMessageBatch")).toBe(true);
    for (const call of calls) expect(handlesOf(call).length).toBeLessThanOrEqual(10);
    const wanted = [...Array.from({ length: 25 }, (_, i) => `rh-batch-${i}`), "rh-slow", "rh-missing", "rh-dup"];
    expect([...sqs.deleted].filter((h) => wanted.includes(h)).sort()).toEqual([...wanted].sort()); // each once
    expect(calls.filter((c) => handlesOf(c).includes("rh-dup"))).toHaveLength(1);
    // The slow message is deleted only after its last event reached stdout.
    const lastSlowEvent = Math.max(...slowIds.map((id) => firstSeen.get(id) ?? Number.POSITIVE_INFINITY));
    expect(deletedAt("rh-slow")).toBeGreaterThanOrEqual(lastSlowEvent);
    expect(sqs.deleted).not.toContain("rh-rejected");
    expect(logsNamed(run, "SQS delete failed; the message will be delivered again")).toEqual([
      expect.objectContaining({ messageId: "id-rh-rejected" }),
    ]);
    expect(summaryOf(run)).toMatchObject({ sqsDeletes: wanted.length, sqsDeleteFailures: 1 });
  });

  it("an object failing transiently past --retry-for: no dead letter, message not deleted (left to SQS)", async () => {
    const failing = "sqs/transient/failing.json";
    put(failing, 1);
    s3.failKey(BUCKET, failing, ...Array.from({ length: 200 }, () => ({ status: 500 })));
    const good = "sqs/transient/good.json";
    const goodIds = put(good, 5);
    const input = `${message("rh-left", [failing])}\n${message("rh-good", [good])}\n`;
    const run = await cli(["--delete-sqs-messages", "--retry-for", "1"], input, sqsEnv());
    expect(run.code).toBe(0);
    const out = parseOutput(run.stdout);
    expect(deadLetters(out)).toEqual([]);
    expect(idsOf(out).sort()).toEqual([...goodIds].sort());
    expect(sqs.deleted).toContain("rh-good");
    expect(sqs.deleted).not.toContain("rh-left");
    expect(logsNamed(run, "left to SQS redelivery")).toEqual([expect.objectContaining({ key: failing })]);
    expect(s3.requestsFor(BUCKET, failing).length).toBeGreaterThanOrEqual(2);
    expect(summaryOf(run)).toMatchObject({ leftToSqs: 1, deadLetters: 0 });
  });

  it("SIGTERM with a stalled object: finished messages are deleted, the stalled one is not", async () => {
    const stalled = "sqs/sigterm/stalled.json";
    put(stalled, 8);
    s3.failKey(BUCKET, stalled, "stall");
    const lines = [message("rh-term-stalled", [stalled])];
    for (let i = 0; i < 5; i++) {
      put(`sqs/sigterm/${i}.json`, 9 + i);
      lines.push(message(`rh-term-${i}`, [`sqs/sigterm/${i}.json`]));
    }
    const run = startCli(["--endpoint", s3.endpoint, "--delete-sqs-messages", "--shutdown-timeout", "1"], {
      ...ENV,
      ...sqsEnv(),
    });
    run.child.stdin.end(`${lines.join("\n")}\n`);
    await waitFor("the other objects fetched", () =>
      [0, 1, 2, 3, 4].every((i) => s3.requestsFor(BUCKET, `sqs/sigterm/${i}.json`).length > 0),
    );
    await new Promise((resolve) => setTimeout(resolve, 300));
    run.child.kill("SIGTERM");
    const result = await run.done;
    expect(result.code).toBe(0);
    expect(logsNamed(result, "abandoned")).toEqual([expect.objectContaining({ key: stalled })]);
    for (let i = 0; i < 5; i++) expect(sqs.deleted).toContain(`rh-term-${i}`);
    expect(sqs.deleted).not.toContain("rh-term-stalled");
  });

  it("SQS failing the first calls: the deletes still happen", async () => {
    const key = "sqs/flaky/0.json";
    put(key, 6);
    const before = sqs.calls.length;
    sqs.failNext(2, "500");
    const run = await cli(["--delete-sqs-messages"], `${message("rh-flaky", [key])}\n`, sqsEnv());
    expect(run.code).toBe(0);
    const calls = sqs.calls.slice(before);
    expect(calls.filter((c) => c.status === 500)).toHaveLength(2);
    expect(sqs.deleted.filter((h) => h === "rh-flaky")).toEqual(["rh-flaky"]);
  });

  it("--visibility-timeout: a message still waiting in the intake queue is kept invisible too", async () => {
    // --concurrency 1: the slow object holds the only GET, the second record waits for it in the filter, and the
    // third waits in the intake queue for the whole delay, longer than the 2 s visibility timeout.
    const keys = ["sqs/queued/slow.json", "sqs/queued/second.json", "sqs/queued/third.json"];
    for (const [i, key] of keys.entries()) put(key, 3 + i);
    s3.failKey(BUCKET, keys[0] as string, { delay: 2500 });
    const handles = ["rh-queued-slow", "rh-queued-second", "rh-queued-third"];
    const input = `${handles.map((handle, i) => message(handle, [keys[i] as string])).join("\n")}\n`;
    const run = await cli(
      ["--delete-sqs-messages", "--visibility-timeout", "2", "--concurrency", "1"],
      input,
      sqsEnv(),
    );
    expect(run.code).toBe(0);
    const third = handles[2] as string;
    const fetched = s3.requestsFor(BUCKET, keys[2] as string)[0]?.time;
    expect(fetched).toBeDefined();
    const changes = sqs.calls.filter((c) => c.action === "ChangeMessageVisibility" && c.input.ReceiptHandle === third);
    // Extended every second from the moment it was read, so before its object was even asked for.
    expect(changes.filter((c) => c.time < (fetched as number)).length).toBeGreaterThanOrEqual(1);
    const deleted = deletedAt(third);
    expect(deleted).toBeDefined();
    for (const change of changes) expect(change.time).toBeLessThanOrEqual(deleted as number);
  });

  it("--visibility-timeout: extended while the object is worked on, never after it is done", async () => {
    const slowKey = "sqs/visibility/slow.json";
    put(slowKey, 7);
    s3.failKey(BUCKET, slowKey, { delay: 2500 });
    const input = `${message("rh-vis-slow", [slowKey])}\n`;
    const run = await cli(["--delete-sqs-messages", "--visibility-timeout", "2"], input, sqsEnv());
    expect(run.code).toBe(0);
    const changes = sqs.calls.filter(
      (c) => c.action === "ChangeMessageVisibility" && c.input.ReceiptHandle === "rh-vis-slow",
    );
    expect(changes.length).toBeGreaterThanOrEqual(1);
    for (const change of changes) expect(change.input.VisibilityTimeout).toBe(2);
    const deleted = deletedAt("rh-vis-slow");
    expect(deleted).toBeDefined();
    for (const change of changes) expect(change.time).toBeLessThanOrEqual(deleted as number);
    expect(sqs.visibilityChanges.filter(([h]) => h === "rh-vis-slow").length).toBe(changes.length);
  });
});

// ---------------------------------------------------------------------------------------------------------------
// 4. In process: every input record is accounted for

type MemoryFault = "open" | "throttle" | { mid: number };
interface ObjectSpec {
  kind: "good" | "transient" | "forever" | "permanent" | "denied" | "corrupt" | "missing";
  events: number;
  gzip: boolean;
  faults: MemoryFault[];
  chunk: number;
  cut: number;
  detail: string;
}
type LineSpec =
  | { type: "notification"; objects: ObjectSpec[]; sqs: boolean; digest: boolean }
  | { type: "url"; object: ObjectSpec }
  | { type: "garbage"; text: string }
  | { type: "partial"; cut: number }
  | { type: "test" }
  | { type: "hostile"; bucket: string; keys: number };

const objectArb: fc.Arbitrary<ObjectSpec> = fc.record({
  kind: fc.constantFrom(
    "good",
    "good",
    "good",
    "transient",
    "transient",
    "forever",
    "permanent",
    "denied",
    "corrupt",
    "missing",
  ),
  events: fc.integer({ min: 0, max: 10 }),
  gzip: fc.boolean(),
  faults: fc.array(
    fc.oneof(
      fc.constant<MemoryFault>("open"),
      fc.constant<MemoryFault>("throttle"),
      fc.nat({ max: 5000 }).map((mid): MemoryFault => ({ mid })),
    ),
    { minLength: 1, maxLength: 3 },
  ),
  chunk: fc.integer({ min: 1, max: 700 }),
  cut: fc.nat(),
  detail: fc.string({ maxLength: 12, unit: "grapheme" }),
});

const lineArb: fc.Arbitrary<LineSpec> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.record({
      type: fc.constant("notification" as const),
      objects: fc.array(objectArb, { minLength: 1, maxLength: 3 }),
      sqs: fc.boolean(),
      digest: fc.boolean(),
    }),
  },
  { weight: 2, arbitrary: fc.record({ type: fc.constant("url" as const), object: objectArb }) },
  {
    weight: 1,
    arbitrary: fc.record({
      type: fc.constant("garbage" as const),
      text: fc
        .string({ maxLength: 40 })
        .filter(
          (t) => t.trim() !== "" && !/[\r\n]/.test(t) && !t.trim().startsWith("s3://") && !t.trim().startsWith("file:"),
        ),
    }),
  },
  { weight: 1, arbitrary: fc.record({ type: fc.constant("partial" as const), cut: fc.nat() }) },
  { weight: 1, arbitrary: fc.constant({ type: "test" as const }) },
  {
    // A message naming a bucket that does not parse: one InvalidReference for its keys, and no request.
    weight: 1,
    arbitrary: fc.record({
      type: fc.constant("hostile" as const),
      bucket: fc
        .oneof(fc.string({ maxLength: 70 }), fc.constantFrom("x@127.0.0.1:1/#", "127.0.0.1", "a:b", "BUCKET", "a"))
        .filter((b) => isInvalid(parseBucketName(b))),
      keys: fc.integer({ min: 1, max: 3 }),
    }),
  },
);

interface Stored {
  spec: ObjectSpec;
  bytes: Buffer;
  ids: string[];
}

/** Objects in memory that fail as their spec says; a key is opened once per attempt. */
class MemorySource implements ObjectSource {
  readonly opens = new Map<string, number>();
  constructor(private readonly objects: Map<string, Stored>) {}

  async open(ref: ObjectRef, _signal: AbortSignal): Promise<OpenedObject> {
    await Promise.resolve();
    if (ref.scheme !== "s3") throw new FetchError("NotFound", "no files here", false);
    const where = `s3://${ref.bucket}/${ref.key}`;
    const attempt = this.opens.get(ref.key) ?? 0;
    this.opens.set(ref.key, attempt + 1);
    const stored = this.objects.get(ref.key);
    if (stored === undefined || stored.spec.kind === "missing") {
      throw new FetchError("NotFound", `Failed to fetch ${where}: NoSuchKey`, false);
    }
    const { spec, bytes } = stored;
    if (spec.kind === "denied") throw new FetchError("AccessDenied", `Failed to fetch ${where}: AccessDenied`, false);
    if (spec.kind === "permanent") throw new FetchError("FetchFailed", `Failed to fetch ${where}: 400`, false);
    const fault =
      spec.kind === "transient"
        ? spec.faults[attempt]
        : spec.kind === "forever"
          ? spec.faults[attempt % spec.faults.length]
          : undefined;
    if (fault === "open") throw new FetchError("FetchFailed", `Failed to fetch ${where}: InternalError`, true);
    if (fault === "throttle") throw new FetchError("FetchFailed", `Failed to fetch ${where}: SlowDown`, true, true);
    const upTo = fault === undefined ? bytes.length : bytes.length === 0 ? 0 : fault.mid % bytes.length;
    return { body: chunked(bytes.subarray(0, upTo), spec.chunk, fault !== undefined, where), size: bytes.length };
  }
}

async function* chunked(bytes: Buffer, size: number, fail: boolean, where: string): AsyncGenerator<Buffer> {
  for (let at = 0; at < bytes.length; at += size) {
    await new Promise((resolve) => setImmediate(resolve));
    yield bytes.subarray(at, at + size);
  }
  if (fail) throw new FetchError("FetchFailed", `Failed to read ${where}: aborted after ${bytes.length} bytes`, true);
}

function storedObject(key: string, spec: ObjectSpec): Stored {
  const ids = Array.from({ length: spec.events }, (_, i) => `${key}#${i}`);
  const records = ids.map((eventID, i) => ({
    eventVersion: "1.08",
    eventID,
    eventTime: `2023-07-10T12:${String(i % 60).padStart(2, "0")}:00Z`,
    eventName: spec.detail,
    requestParameters: i % 2 === 0 ? { bucketName: spec.detail, n: i } : null,
  }));
  let bytes = Buffer.from(JSON.stringify({ Records: records }), "utf8");
  if (spec.gzip) bytes = gzipSync(bytes);
  if (spec.kind === "corrupt") bytes = bytes.subarray(0, 1 + (spec.cut % (bytes.length - 1)));
  return { spec, bytes, ids };
}

describe("in process: every input record is accounted for (fast-check)", () => {
  it("never throws, writes only JSON objects, and accounts for every record, object and event", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(lineArb, { minLength: 1, maxLength: 12 }),
        fc.integer({ min: 1, max: 4 }),
        fc.boolean(),
        async (specs, concurrency, leaveTransientToSqs) => {
          const objects = new Map<string, Stored>();
          const keysOfLine = new Map<number, { key: string; spec: ObjectSpec }[]>();
          const texts: string[] = [];
          const sqsLines = new Set<number>();
          let n = 0;
          const add = (line: number, spec: ObjectSpec): string => {
            const key = `o/${n++}.json`; // every key named once: its events and dead letters belong to one record
            objects.set(key, storedObject(key, spec));
            keysOfLine.set(line, [...(keysOfLine.get(line) ?? []), { key, spec }]);
            return key;
          };
          specs.forEach((spec, i) => {
            const line = i + 1;
            if (spec.type === "notification") {
              const keys = spec.objects.map((o) => add(line, o));
              if (spec.digest) keys.push(`AWSLogs/1/CloudTrail-Digest/us-east-1/d${line}.json.gz`);
              const body = JSON.stringify({ s3Bucket: "bkt", s3ObjectKey: keys });
              if (spec.sqs) sqsLines.add(line);
              texts.push(spec.sqs ? inSqsRecord(body, `rh-${line}`, "https://sqs.us-east-1.amazonaws.com/1/q") : body);
            } else if (spec.type === "url") {
              texts.push(`s3://bkt/${add(line, spec.object)}`);
            } else if (spec.type === "garbage") {
              texts.push(spec.text);
            } else if (spec.type === "hostile") {
              const keys = Array.from({ length: spec.keys }, () => `h/${n++}.json`);
              texts.push(JSON.stringify({ s3Bucket: spec.bucket, s3ObjectKey: keys }));
            } else if (spec.type === "partial") {
              const whole = JSON.stringify({ s3Bucket: "bkt", s3ObjectKey: ["o/unused.json"] });
              texts.push(whole.slice(0, 1 + (spec.cut % (whole.length - 1))));
            } else {
              texts.push(JSON.stringify({ Event: "s3:TestEvent" }));
            }
          });

          const out = new PassThrough();
          const chunks: Buffer[] = [];
          out.on("data", (chunk: Buffer) => chunks.push(chunk));
          const sink = new OutputSink(out, { padBytes: 0 });
          const log = new MemoryLog();
          const outcomes: RecordOutcome[] = [];
          const source = new MemorySource(objects);
          const filter = new Filter({
            source,
            sink,
            log,
            options: {
              concurrency,
              deadletterTag: "dl",
              maxObjectBytes: 1 << 20,
              maxEventBytes: 1 << 16,
              timestamp: true,
              retryFor: 0.03,
              leaveTransientToSqs,
            },
            retry: new RetryPolicy({ retryForMs: 30, baseMs: 1, maxMs: 4 }),
            hooks: { recordDone: (outcome) => outcomes.push(outcome) },
          });
          async function* lines(): AsyncGenerator<Line> {
            for (const [i, text] of texts.entries()) {
              if (i % 3 === 0) await new Promise((resolve) => setImmediate(resolve));
              yield { kind: "line", number: i + 1, text };
            }
          }
          const summary = await filter.run(lines());
          await sink.end();

          // Every line on stdout is one JSON object.
          const text = Buffer.concat(chunks).toString("utf8");
          expect(text === "" || text.endsWith("\n")).toBe(true);
          const records = text
            .split("\n")
            .filter((l) => l !== "")
            .map((l) => {
              const value: unknown = JSON.parse(l);
              expect(value !== null && typeof value === "object" && !Array.isArray(value)).toBe(true);
              return value as Record<string, unknown>;
            });
          const eventLines = records.filter((r) => r._tag === undefined);
          const deadLines = records.filter((r) => r._tag === "dl");
          expect(eventLines.length + deadLines.length).toBe(records.length);
          expect(log.lines.filter((l) => l.level === "error")).toEqual([]);

          // Every record is reported done once, none abandoned; the totals match stdout.
          expect(outcomes.map((o) => o.line.number).sort((a, b) => a - b)).toEqual(texts.map((_, i) => i + 1));
          expect(outcomes.filter((o) => o.abandoned)).toEqual([]);
          expect(outcomes.reduce((sum, o) => sum + o.events, 0)).toBe(eventLines.length);
          expect(outcomes.reduce((sum, o) => sum + o.deadLetters, 0)).toBe(deadLines.length);
          expect(summary).toMatchObject({
            records: texts.length,
            events: eventLines.length,
            deadLetters: deadLines.length,
          });

          const eventCount = countOf(eventLines.map((e) => String(e.eventID)));
          const leftToSqs = new Set(log.lines.filter((l) => l.msg === "left to SQS redelivery").map((l) => l.key));
          for (const outcome of outcomes) {
            const line = outcome.line.number;
            const spec = specs[line - 1] as LineSpec;
            const context = `line ${line}: ${texts[line - 1]}`;
            if (spec.type === "garbage" || spec.type === "partial") {
              if (interpretLine(texts[line - 1] as string).kind !== "error") continue; // a garbage that means something
              expect(outcome, context).toMatchObject({ events: 0, deadLetters: 1, retryLater: false });
              continue;
            }
            if (spec.type === "hostile") {
              const mine = deadLines.filter((d) => JSON.stringify(d.input) === texts[line - 1]);
              // One dead letter for the message, listing its keys when there are several (issue 20).
              expect(
                mine.map((d) => (d.error as { code: string }).code),
                context,
              ).toEqual(["InvalidReference"]);
              expect(outcome, context).toMatchObject({ events: 0, deadLetters: 1, retryLater: false });
              const [letter] = mine as { key?: string; refused?: { key: string }[]; refusedCount?: number }[];
              const keys = letter?.refused?.map((r) => r.key) ?? [String(letter?.key)];
              expect(keys, context).toHaveLength(spec.keys);
              if (spec.keys > 1) expect(letter?.refusedCount, context).toBe(spec.keys);
              for (const key of keys) expect(source.opens.has(key), context).toBe(false);
              continue;
            }
            if (spec.type === "test" || (spec.type === "notification" && spec.digest)) {
              const skips = log.lines.filter((l) => l.msg === "skipped" && l.line === line);
              expect(skips, context).toHaveLength(1);
            }
            let events = 0;
            let dead = 0;
            let later = false;
            for (const { key, spec: object } of keysOfLine.get(line) ?? []) {
              const ids = (objects.get(key) as Stored).ids;
              const mine = deadLines.filter((d) => d.key === key);
              const out = ids.filter((id) => eventCount.has(id));
              // No event twice, and what came out is always the object's first events.
              for (const id of out) expect(eventCount.get(id), `${context} ${id}`).toBe(1);
              expect(out, `${context} ${key}`).toEqual(ids.slice(0, out.length));
              expect(mine.length, `${context} ${key}`).toBeLessThanOrEqual(1);
              events += out.length;
              dead += mine.length;
              const deadLetter = mine[0] as { error: { code: string; eventsEmitted?: number } } | undefined;
              if (deadLetter !== undefined) {
                expect(out.length, `${context} ${key}`).toBe(deadLetter.error.eventsEmitted ?? 0);
                expect(leftToSqs.has(key)).toBe(false);
              }
              const left = leftToSqs.has(key);
              if (left) later = true;
              switch (object.kind) {
                case "good":
                  expect({ out: out.length, dead: mine.length, left }, `${context} ${key}`).toEqual({
                    out: ids.length,
                    dead: 0,
                    left: false,
                  });
                  break;
                case "missing":
                case "permanent":
                case "denied":
                  expect(deadLetter?.error.code, `${context} ${key}`).toBe(
                    { missing: "NotFound", permanent: "FetchFailed", denied: "AccessDenied" }[object.kind],
                  );
                  expect(out, `${context} ${key}`).toEqual([]);
                  break;
                case "corrupt":
                  expect(deadLetter, `${context} ${key}`).toBeDefined();
                  break;
                case "transient":
                case "forever": {
                  // Done, dead-lettered as FetchFailed, or (SQS record, leaveTransientToSqs) left to redelivery.
                  const done = deadLetter === undefined && !left;
                  if (done) expect(out.length, `${context} ${key}`).toBe(ids.length);
                  if (deadLetter !== undefined) expect(deadLetter.error.code).toBe("FetchFailed");
                  if (left) expect(leaveTransientToSqs && sqsLines.has(line), context).toBe(true);
                  if (object.kind === "forever") expect(done, `${context} ${key}`).toBe(false);
                  if (object.kind === "forever" && leaveTransientToSqs && sqsLines.has(line)) {
                    expect(left, `${context} ${key}`).toBe(true);
                  }
                  break;
                }
              }
            }
            expect(
              { events: outcome.events, deadLetters: outcome.deadLetters, retryLater: outcome.retryLater },
              context,
            ).toEqual({ events, deadLetters: dead, retryLater: later });
          }
          // Nothing on stdout that no record claims.
          const claimed = new Set([...keysOfLine.values()].flat().map((k) => k.key));
          for (const id of eventCount.keys()) expect(claimed.has(id.split("#")[0] as string), id).toBe(true);
        },
      ),
      { numRuns: Number(process.env.DELIVERY_RUNS ?? 30) },
    );
  });
});

describe("in process: the journal after any sequence of accepts, done marks, kills and torn writes", () => {
  type Op =
    | { op: "accept"; text: string }
    | { op: "done"; pick: number }
    | { op: "kill" }
    | { op: "tear"; cut: number };
  const opArb: fc.Arbitrary<Op> = fc.oneof(
    { weight: 4, arbitrary: fc.record({ op: fc.constant("accept" as const), text: fc.string({ unit: "binary" }) }) },
    { weight: 3, arbitrary: fc.record({ op: fc.constant("done" as const), pick: fc.nat() }) },
    { weight: 1, arbitrary: fc.constant({ op: "kill" as const }) },
    { weight: 1, arbitrary: fc.record({ op: fc.constant("tear" as const), cut: fc.nat() }) },
  );

  it("replays exactly the records accepted and not done, oldest first", async () => {
    const { SPOOL_MAX_BYTES_DEFAULT, Spool } = await import("../../src/input/spool.js");
    const { processHost } = await import("../../src/cli/host.js");
    fc.assert(
      fc.property(fc.array(opArb, { maxLength: 40 }), (ops) => {
        const dir = join(tempDir(), "spool");
        let spool = Spool.open(dir, SPOOL_MAX_BYTES_DEFAULT, processHost());
        const model = new Map<number, string>();
        const check = () => {
          expect([...spool.unfinished()]).toEqual(
            [...model].sort(([a], [b]) => a - b).map(([id, text]) => ({ id, text })),
          );
          expect(spool.size).toBe(model.size);
        };
        for (const op of ops) {
          if (op.op === "accept") {
            const id = spool.accept(op.text);
            expect(model.has(id)).toBe(false);
            model.set(id, op.text);
          } else if (op.op === "done") {
            const ids = [...model.keys()];
            if (ids.length === 0) continue;
            const id = ids[op.pick % ids.length] as number;
            spool.done(id);
            model.delete(id);
          } else {
            if (op.op === "tear") {
              // kill -9 in the middle of an entry: a prefix of one more accept (or done mark) is on disk.
              const entry =
                op.cut % 2 === 0 ? acceptEntry(1e9, "torn") : Buffer.from(`d ${[...model.keys()][0] ?? 1}\n`);
              appendFileSync(journalPath(dir), entry.subarray(0, op.cut % entry.length));
            }
            // No close(): the process is gone, its lock (our own pid here) is taken over.
            spool = Spool.open(dir, SPOOL_MAX_BYTES_DEFAULT, processHost());
            check();
          }
        }
        spool.close();
        spool = Spool.open(dir, SPOOL_MAX_BYTES_DEFAULT, processHost());
        check();
        spool.close();
      }),
      { numRuns: 100 },
    );
  });
});
