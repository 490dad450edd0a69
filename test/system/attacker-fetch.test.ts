// Poison messages against fetching and dead letters (issue 20), as a queue writer would send them: each interleaved
// with good lines through the built CLI, asserting that the good events come out while the poison is still being
// worked on, that output stays proportional to input and that the child's peak RSS stays under a stated bound.
//
// Name lookups never leave this machine: the made-up-regions run is a child in a network namespace of its own
// (`unshare -n`: no interface but a loopback that is down, so every lookup fails at once with EAI_AGAIN), skipped with
// a note where that is not allowed; the other runs read file:// lines or refuse before any request.
import { type ChildProcessWithoutNullStreams, spawn, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { classifyS3Error } from "../../src/fetch/fetch.js";
import { partitionRegion } from "../../src/fetch/s3-get.js";
import type { Region } from "../../src/model/names.js";
import { REFUSALS_LISTED_MAX } from "../../src/run/filter.js";
import { BIN, completeLines, deadLetters, events, jsonLines, parseOutput, runCli } from "../support/cli.js";
import { waitUntil } from "../support/fluentd.js";
import { s3Env, startS3 } from "../support/s3.js";
import { FIXTURE_NAMES, FIXTURES } from "../support/trail.js";

const WAIT_MS = 30_000;
/**
 * The child's peak RSS bound in these runs: a filter at rest with its input and output buffers measured 60-75 MiB
 * here (Node 20, 2 cores); before the fixes these poison runs reached 480 and 621 MiB.
 */
const PEAK_RSS_MIB = 150;
const AWS_ENV = { AWS_ACCESS_KEY_ID: "AKIDEXAMPLE", AWS_SECRET_ACCESS_KEY: "secret", AWS_REGION: "us-east-1" };
const BUCKET = "trail-bucket";

/** Good lines: file:// URLs of the real CloudTrail fixtures, and how many events they hold. */
function goodLines(count: number): { lines: string[]; events: number } {
  const names = FIXTURE_NAMES.slice(0, count);
  let total = 0;
  for (const name of names) {
    total += (JSON.parse(readFileSync(join(FIXTURES, name), "utf8")) as { Records: unknown[] }).Records.length;
  }
  return { lines: names.map((name) => `file://${join(FIXTURES, name)}`), events: total };
}

/** An S3 event notification naming `bucket` once per region, each with its own key. */
function s3EventInRegions(bucket: string, regions: string[]): string {
  return JSON.stringify({
    Records: regions.map((awsRegion, i) => ({
      eventVersion: "2.1",
      eventSource: "aws:s3",
      awsRegion,
      eventName: "ObjectCreated:Put",
      s3: { bucket: { name: bucket }, object: { key: `AWSLogs/111122223333/CloudTrail/poison/${i}.json.gz` } },
    })),
  });
}

interface Child {
  child: ChildProcessWithoutNullStreams;
  stdout: Buffer[];
  log(): Record<string, unknown>[];
  /** Peak resident set of the child so far, in MiB (/proc/PID/status VmHWM). */
  peakRssMiB(): number;
  done: Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: Buffer }>;
}

/** The built CLI, as startCli starts it, optionally in a network namespace of its own (`unshare -n`). */
function spawnFilter(args: string[], options: { netns?: boolean; readStdout?: boolean } = {}): Child {
  const dir = mkdtempSync(join(tmpdir(), "ctef-attacker-"));
  const logFile = join(dir, "filter.log");
  const argv = [BIN, "--log-file", logFile, "--pad-bytes", "0", ...args];
  const [command, ...rest] = options.netns === true ? ["unshare", "-n", ...argv] : argv;
  const child = spawn(command as string, rest, {
    stdio: ["pipe", "pipe", "pipe"],
    env: { ...process.env, AWS_EC2_METADATA_DISABLED: "true", ...AWS_ENV },
  });
  const stdout: Buffer[] = [];
  if (options.readStdout !== false) child.stdout.on("data", (chunk: Buffer) => stdout.push(chunk));
  child.stderr.resume();
  child.stdin.on("error", () => {});
  const log = (): Record<string, unknown>[] => {
    try {
      return jsonLines(readFileSync(logFile, "utf8"));
    } catch {
      return [];
    }
  };
  const peakRssMiB = (): number => {
    const status = readFileSync(`/proc/${child.pid}/status`, "utf8");
    const kb = /^VmHWM:\s+(\d+) kB$/m.exec(status)?.[1];
    return Number(kb) / 1024;
  };
  const done = new Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: Buffer }>((resolve) => {
    child.on("close", (code, signal) => {
      rmSync(dir, { recursive: true, force: true });
      resolve({ code, signal, stdout: Buffer.concat(stdout) });
    });
  });
  return { child, stdout, log, peakRssMiB, done };
}

/** Whether this machine lets us make a network namespace (root, or unprivileged user namespaces). */
const NETNS = spawnSync("unshare", ["-n", "true"]).status === 0;
if (!NETNS) console.warn("attacker-fetch: `unshare -n` is not allowed here; the made-up-regions test is skipped");

describe("a region hint is used only when it is a region of the partition (the SDK's partition data)", () => {
  const region = (name: string) => name as Region;
  it.each<[string, string, string | undefined]>([
    ["us-east-1", "us-east-1", "us-east-1"],
    ["eu-west-1", "us-east-1", "eu-west-1"],
    ["zz-fake-0", "us-east-1", undefined],
    // Matches the aws partition's regex, but no such region exists.
    ["us-fake-1", "us-east-1", undefined],
    // Another partition's region: credentials of one partition never sign for another.
    ["cn-north-1", "us-east-1", undefined],
    ["cn-northwest-1", "cn-north-1", "cn-northwest-1"],
    ["us-gov-west-1", "us-gov-east-1", "us-gov-west-1"],
  ])("%s with --region %s: %s", (hint, home, expected) => {
    expect(partitionRegion(region(hint), home)).toBe(expected);
  });
});

describe("a host name that does not exist is permanent; a resolver that does not answer is not", () => {
  it.each<[string, boolean]>([
    ["ENOTFOUND", false],
    ["EAI_AGAIN", true],
    ["ECONNRESET", true],
  ])("%s: transient %s", (code, transient) => {
    const error = Object.assign(new Error(`getaddrinfo ${code} example`), { code });
    expect(classifyS3Error(error, "s3://b/k").transient).toBe(transient);
  });
});

describe("made-up regions: the poison object retries without holding a fetch slot", () => {
  it.skipIf(!NETNS)(
    "good file:// lines behind the message come out while its objects are still retrying; no made-up host is asked",
    async () => {
      // Ten made-up regions and one real one, in the allowed bucket; --concurrency 2 and a long --retry-for: before,
      // the good lines waited behind every retry (8.9 s with --retry-for 3). In this namespace every lookup fails
      // with EAI_AGAIN (the resolver does not answer): transient, retried until --retry-for or shutdown.
      const regions = [...Array.from({ length: 10 }, (_, i) => `zz-fake-${i}`), "eu-west-1"];
      const good = goodLines(4);
      const spawned = spawnFilter(["--retry-for", "600", "--concurrency", "2", "--buckets", BUCKET], { netns: true });
      const input = [s3EventInRegions(BUCKET, regions), ...good.lines];
      spawned.child.stdin.write(`${input.join("\n")}\n`);
      const out = (): Record<string, unknown>[] => completeLines(Buffer.concat(spawned.stdout));
      await waitUntil(
        "the good events",
        () => events(out()).length === good.events,
        WAIT_MS,
        () => JSON.stringify(spawned.log().slice(-5)),
      );
      // The poison objects are still being retried (nothing has given them up): the good events did not wait.
      const retrying = spawned.log().filter((line) => line.msg === "retrying");
      expect(retrying.length).toBeGreaterThanOrEqual(regions.length);
      expect(deadLetters(out())).toEqual([]);
      // A made-up region is ignored for addressing (the object is asked of --region's endpoint); a real one is used.
      const messages = retrying.map((line) => String(line.message));
      for (const message of messages) expect(message).not.toContain("zz-fake");
      expect(messages.some((m) => m.includes(`${BUCKET}.s3.us-east-1.amazonaws.com`))).toBe(true);
      expect(messages.some((m) => m.includes(`${BUCKET}.s3.eu-west-1.amazonaws.com`))).toBe(true);
      // Shutdown still ends the retries: the message is abandoned (not dead-lettered), and the process exits.
      spawned.child.stdin.end();
      spawned.child.kill("SIGTERM");
      const run = await spawned.done;
      expect(run.code).toBe(0);
      expect(events(parseOutput(run.stdout))).toHaveLength(good.events);
    },
    60_000,
  );
});

describe("made-up regions: --retry-for still ends the retries", () => {
  it.skipIf(!NETNS)(
    "with --retry-for 2 each poison object is one FetchFailed dead letter once given up; the good events all out",
    async () => {
      const good = goodLines(2);
      const poison = s3EventInRegions(BUCKET, ["zz-fake-a-1", "zz-fake-b-2", "zz-fake-c-3"]);
      const spawned = spawnFilter(["--retry-for", "2", "--concurrency", "1", "--buckets", BUCKET], { netns: true });
      spawned.child.stdin.end(`${poison}\n${good.lines.join("\n")}\n`);
      const run = await spawned.done;
      expect(run.code).toBe(0);
      const records = parseOutput(run.stdout);
      expect(events(records)).toHaveLength(good.events);
      const dead = deadLetters(records) as { error: { code: string; message: string }; key: string }[];
      expect(dead.map((d) => d.error.code)).toEqual(["FetchFailed", "FetchFailed", "FetchFailed"]);
      for (const letter of dead) expect(letter.error.message).toMatch(/EAI_AGAIN .*\(gave up after \d+ attempts\)$/);
    },
    60_000,
  );
});

describe("many keys in one message", () => {
  const keys = (n: number) => Array.from({ length: n }, (_, i) => `AWSLogs/111122223333/CloudTrail/k/${i}.json.gz`);
  const notification = (bucket: string, n: number) => JSON.stringify({ s3Bucket: bucket, s3ObjectKey: keys(n) });

  it("4,000 keys outside --buckets (under the cap): one dead letter listing 100 and counting all; output < input", async () => {
    const good = goodLines(2);
    const poison = notification("other-bucket", 4000);
    const input = `${good.lines[0]}\n${poison}\n${good.lines[1]}\n`;
    const spawned = spawnFilter(["--buckets", BUCKET, "--max-objects-per-message", "5000"]);
    spawned.child.stdin.write(input);
    await waitUntil(
      "the output",
      () => completeLines(Buffer.concat(spawned.stdout)).length === good.events + 1,
      WAIT_MS,
    );
    // Before: 4,000 dead letters of the whole record each (359 MB out of a 114 KB line) and 480 MB RSS.
    const peak = spawned.peakRssMiB();
    spawned.child.stdin.end();
    const run = await spawned.done;
    expect(run.code).toBe(0);
    const records = parseOutput(run.stdout);
    expect(events(records)).toHaveLength(good.events);
    const [letter, ...more] = deadLetters(records);
    expect(more).toEqual([]);
    expect(letter).toMatchObject({
      error: { code: "BucketNotAllowed", message: expect.stringMatching(/^4000 objects of the message were refused/) },
      refusedCount: 4000,
    });
    expect(letter?.refused).toHaveLength(REFUSALS_LISTED_MAX);
    const deadBytes = Buffer.byteLength(JSON.stringify(letter));
    expect(deadBytes).toBeLessThan(Buffer.byteLength(poison));
    expect(peak, `peak RSS ${peak.toFixed(0)} MiB`).toBeLessThan(PEAK_RSS_MIB);
  });

  it("keys that do not parse: one InvalidReference dead letter for the message, not one per key", async () => {
    const hostile = JSON.stringify({
      s3Bucket: BUCKET,
      s3ObjectKey: Array.from({ length: 300 }, (_, i) => `a/../${i}`),
    });
    const run = await runCli(["--pad-bytes", "0"], `${hostile}\n`, AWS_ENV);
    expect(run.code).toBe(0);
    const dead = deadLetters(parseOutput(run.stdout));
    expect(dead).toHaveLength(1);
    expect(dead[0]).toMatchObject({
      error: { code: "InvalidReference" },
      refusedCount: 300,
      refused: expect.arrayContaining([{ bucket: BUCKET, message: expect.stringMatching(/path segment/) }]),
    });
  });

  it("more objects than --max-objects-per-message: one TooManyObjects dead letter, nothing read, the next line is", async () => {
    const good = goodLines(1);
    const poison = notification(BUCKET, 1001);
    const run = await runCli(["--pad-bytes", "0"], `${poison}\n${good.lines[0]}\n`, AWS_ENV);
    expect(run.code).toBe(0);
    const records = parseOutput(run.stdout);
    expect(events(records)).toHaveLength(good.events);
    expect(deadLetters(records)).toMatchObject([
      {
        error: {
          code: "TooManyObjects",
          message: "the message names 1001 objects, more than --max-objects-per-message (1000); none was read",
        },
      },
    ]);
    expect(run.log.find((line) => line.msg === "summary")).toMatchObject({ objects: 1, deadLetters: 1 });
  });
});

describe("many missing keys in an allowed bucket (a dead letter per object, after its request)", () => {
  it("the first 10 dead letters carry the message (up to 64 KiB), the others its first 1 KiB: output stays near the input", async () => {
    const s3 = await startS3();
    try {
      await s3.createBucket(BUCKET);
      const keys = Array.from(
        { length: 1000 },
        (_, i) => `AWSLogs/111122223333/CloudTrail/us-east-1/2023/07/10/${i}.json.gz`,
      );
      const line = `${JSON.stringify({ s3Bucket: BUCKET, s3ObjectKey: keys })}\n`;
      const run = await runCli(["--pad-bytes", "0", "--buckets", BUCKET], line, s3Env(s3.endpoint));
      expect(run.code).toBe(0);
      const dead = deadLetters(parseOutput(run.stdout));
      expect(dead).toHaveLength(keys.length);
      expect(new Set(dead.map((d) => d.key))).toEqual(new Set(keys));
      for (const letter of dead) expect((letter.error as { code: string }).code).toBe("NotFound");
      // The line (67 KB) is beyond the 64 KiB a dead letter's input holds: every input is its start, cut short.
      for (const letter of dead) {
        expect(letter).toMatchObject({ inputTruncated: true, inputBytes: Buffer.byteLength(line) - 1 });
        expect(line.startsWith(String(letter.input))).toBe(true);
      }
      const long = dead.filter((d) => String(d.input).length > 1024);
      expect(long).toHaveLength(10);
      for (const letter of long) expect(Buffer.byteLength(String(letter.input))).toBeGreaterThan(60_000);
      // Before: 1,000 copies of the message (64 KiB each once cut), about 65 MB (a ratio near 1,000); now about 2 MB.
      const ratio = run.stdout.length / Buffer.byteLength(line);
      expect(ratio, `${run.stdout.length} bytes out`).toBeLessThan(40);
    } finally {
      await s3.close();
    }
  }, 60_000);
});

describe("a receive-message response: each message's dead letters carry that message", () => {
  it("the second message's refusal has the second message as input, not the whole response", async () => {
    const first = { MessageId: "m1", ReceiptHandle: "r1", Body: JSON.stringify({ s3Bucket: BUCKET, s3ObjectKey: [] }) };
    const second = {
      MessageId: "m2",
      ReceiptHandle: "r2",
      Body: JSON.stringify({ s3Bucket: "x@127.0.0.1:1", s3ObjectKey: ["k.json.gz"] }),
    };
    const run = await runCli(["--pad-bytes", "0"], `${JSON.stringify({ Messages: [first, second] })}\n`, AWS_ENV);
    expect(run.code).toBe(0);
    expect(deadLetters(parseOutput(run.stdout))).toMatchObject([
      { error: { code: "InvalidReference" }, input: second },
    ]);
  });

  it("so does the second message's object that is not found (a dead letter after the request)", async () => {
    const s3 = await startS3();
    try {
      await s3.createBucket(BUCKET);
      const message = (n: number, key: string) => ({
        MessageId: `m${n}`,
        ReceiptHandle: `r${n}`,
        Body: JSON.stringify({ s3Bucket: BUCKET, s3ObjectKey: [key] }),
      });
      await s3.putObject(BUCKET, "AWSLogs/found.json", JSON.stringify({ Records: [{ eventID: "found" }] }));
      const first = message(1, "AWSLogs/found.json");
      const second = message(2, "AWSLogs/missing.json");
      const run = await runCli(
        ["--pad-bytes", "0"],
        `${JSON.stringify({ Messages: [first, second] })}\n`,
        s3Env(s3.endpoint),
      );
      expect(run.code).toBe(0);
      const records = parseOutput(run.stdout);
      expect(events(records).map((e) => e.eventID)).toEqual(["found"]);
      expect(deadLetters(records)).toMatchObject([
        { error: { code: "NotFound" }, input: second, key: "AWSLogs/missing.json" },
      ]);
    } finally {
      await s3.close();
    }
  });
});

describe("garbage with stdout not read", () => {
  it("stdin is not drained without bound: the writer blocks, RSS stays bounded, and nothing is lost after", async () => {
    // 600 lines of 100 KB garbage (60 MB), each a NotJson dead letter of 64 KiB; stdout is not read (fluentd blocked
    // on a down Elasticsearch). Before, every line was read and RSS grew by hundreds of MB.
    const line = `${"x".repeat(100_000)}\n`;
    const total = 600;
    const spawned = spawnFilter([], { readStdout: false });
    let accepted = 0;
    let stalled = false;
    for (let i = 0; i < total; i++) {
      if (!spawned.child.stdin.write(line)) {
        const drained = await Promise.race([
          new Promise<boolean>((resolve) => spawned.child.stdin.once("drain", () => resolve(true))),
          new Promise<boolean>((resolve) => setTimeout(() => resolve(false), 3000)),
        ]);
        if (!drained) {
          stalled = true;
          break;
        }
      }
      accepted++;
    }
    expect(stalled, `all ${accepted} lines were taken`).toBe(true);
    // What the child holds: the pipes' buffers, the intake's few lines, the sink's high-water mark (56 lines taken
    // when measured), not 60 MB.
    expect(accepted).toBeLessThan(120);
    const peak = spawned.peakRssMiB();
    expect(peak, `peak RSS ${peak.toFixed(0)} MiB`).toBeLessThan(PEAK_RSS_MIB);
    // Once stdout is read again, every line comes out as its dead letter.
    let count = 0;
    let tail = "";
    spawned.child.stdout.on("data", (chunk: Buffer) => {
      const text = tail + chunk.toString("utf8");
      const lines = text.split("\n");
      tail = lines.pop() ?? "";
      count += lines.filter((l) => l.trim() !== "").length;
    });
    spawned.child.stdin.end();
    const run = await spawned.done;
    expect(run.code).toBe(0);
    expect(count).toBe(accepted + 1); // the line being written when it stalled was taken too
  }, 120_000);
});
