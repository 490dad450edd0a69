// --metrics-listen (issue 24): /metrics in the Prometheus text format, /healthz and /readyz, served by the built CLI
// while it works. The counters must equal the run's summary line (they read the same counts), scraped directly and
// through a real Prometheus (Debian's 2.42; skipped with a note where it is not installed), and `promtool check
// metrics` must accept the exposition.
import { spawnSync } from "node:child_process";
import { readdirSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseListenAddress } from "../../src/observe/address.js";
import { notReady, OutputWatch, receiveCheck } from "../../src/observe/readiness.js";
import { runCli, type Spawned, startCli } from "../support/cli.js";
import { waitUntil } from "../support/fluentd.js";
import { type Prometheus, prometheusUnavailable, startPrometheus } from "../support/prometheus.js";
import { type SqsTest, startSqs } from "../support/sqs-server.js";
import { FIXTURES } from "../support/trail.js";

const unavailable = prometheusUnavailable();
if (unavailable !== undefined)
  console.warn(`test/system/metrics.test.ts: the real Prometheus tests are skipped: ${unavailable}`);

const NAMES = readdirSync(FIXTURES)
  .filter((name) => name.endsWith(".json"))
  .slice(0, 5);
/** Five files of events, a file that does not exist (NotFound) and a line that is not JSON (NotJson). */
const INPUT = [...NAMES.map((name) => `file://${FIXTURES}${name}`), "file:///nonexistent/x.json", "not json{"]
  .map((line) => `${line}\n`)
  .join("");
const WAIT_MS = 20_000;
const P = "cloudtrail_exec_filter_";

/** The samples of an exposition: `name{labels}` → value. */
function samples(text: string): Map<string, number> {
  const result = new Map<string, number>();
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const at = line.lastIndexOf(" ");
    result.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return result;
}

async function poll(what: string, condition: () => Promise<boolean>, timeoutMs = WAIT_MS): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition().catch(() => false))) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** The port the CLI logged it listens on. */
async function listeningPort(spawned: Spawned): Promise<number> {
  let port: number | undefined;
  await waitUntil(
    "the metrics listener",
    () => {
      port = spawned.log().find((l) => l.msg === "metrics listening")?.port as number | undefined;
      return port !== undefined;
    },
    WAIT_MS,
  );
  return port as number;
}

async function scrape(port: number): Promise<string> {
  const response = await fetch(`http://127.0.0.1:${port}/metrics`);
  expect(response.status).toBe(200);
  expect(response.headers.get("content-type")).toMatch(/^text\/plain; version=0\.0\.4/);
  return response.text();
}

/** Starts the filter on INPUT with stdin kept open; resolves once the input is all done (as /metrics says). */
async function startWorkload(): Promise<{ spawned: Spawned; port: number }> {
  const spawned = startCli(["--metrics-listen", "127.0.0.1:0", "--stats-interval", "0"]);
  spawned.child.stdin.write(INPUT);
  const port = await listeningPort(spawned);
  await poll("every record done", async () => {
    const now = samples(await scrape(port));
    return now.get(`${P}records_total`) === 7 && now.get(`${P}objects_in_flight`) === 0;
  });
  return { spawned, port };
}

async function finish(spawned: Spawned): Promise<Record<string, unknown>> {
  spawned.child.stdin.end();
  const run = await spawned.done;
  expect(run.code).toBe(0);
  const summary = run.log.find((l) => l.msg === "summary");
  expect(summary).toBeDefined();
  return summary as Record<string, unknown>;
}

/** What the counters must say, from the summary line. */
function expected(summary: Record<string, unknown>): [string, number][] {
  return [
    [`${P}records_total`, summary.records as number],
    [`${P}events_total`, summary.events as number],
    [`${P}input_bytes_total`, summary.bytesIn as number],
    [`${P}inflated_bytes_total`, summary.bytesInflated as number],
    [`${P}output_bytes_total`, summary.bytesOut as number],
    [`${P}retries_total`, summary.retries as number],
    [`${P}skipped_total`, summary.skipped as number],
  ];
}

describe("--metrics-listen", () => {
  it.each([
    ["9464", { host: "127.0.0.1", port: 9464 }],
    ["0", { host: "127.0.0.1", port: 0 }],
    ["0.0.0.0:9464", { host: "0.0.0.0", port: 9464 }],
    ["[::1]:9464", { host: "::1", port: 9464 }],
    ["metrics.internal:80", { host: "metrics.internal", port: 80 }],
  ])("parses %s", (value, address) => {
    expect(parseListenAddress(value)).toEqual(address);
  });

  it.each([["65536"], [":9464"], ["[1.2.3.4]:1"], ["a b:1"], ["host:"], ["http://x:1"], ["::1:9464"]])(
    "refuses %s",
    (value) => {
      expect(typeof parseListenAddress(value)).toBe("string");
    },
  );

  it("a bad address, or one already taken, is a usage error (exit 2) before any input is read", async () => {
    const bad = await runCli(["--metrics-listen", "nowhere:99999"], "");
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain("--metrics-listen");
    const first = startCli(["--metrics-listen", "127.0.0.1:0"]);
    const port = await listeningPort(first);
    const taken = await runCli(["--metrics-listen", `127.0.0.1:${port}`], "");
    expect(taken.code).toBe(2);
    expect(taken.stderr).toContain("cannot listen on --metrics-listen");
    first.child.stdin.end();
    expect((await first.done).code).toBe(0);
  });

  it("serves the summary's counts, dead letters by code, objects by outcome, /healthz and /readyz", async () => {
    const { spawned, port } = await startWorkload();
    const text = await scrape(port);
    const health = await fetch(`http://127.0.0.1:${port}/healthz`);
    expect(health.status).toBe(200);
    const ready = await fetch(`http://127.0.0.1:${port}/readyz`);
    expect([ready.status, await ready.json()]).toEqual([200, { ready: true, reasons: [] }]);
    expect((await fetch(`http://127.0.0.1:${port}/other`)).status).toBe(404);
    const summary = await finish(spawned);

    const now = samples(text);
    for (const [name, value] of expected(summary)) expect([name, now.get(name)]).toEqual([name, value]);
    expect(now.get(`${P}dead_letters_total{code="NotFound"}`)).toBe(1);
    expect(now.get(`${P}dead_letters_total{code="NotJson"}`)).toBe(1);
    expect(summary.deadLetters).toBe(2);
    expect(now.get(`${P}objects_total{outcome="read"}`)).toBe(5);
    expect(now.get(`${P}objects_total{outcome="dead_letter"}`)).toBe(1);
    expect(summary.objects).toBe(6);
    expect(now.get(`${P}newest_event_timestamp_seconds`)).toBe(Date.parse(summary.newestEventTime as string) / 1000);
    expect(now.get(`${P}object_duration_seconds_count`)).toBe(6);
    expect(now.get(`${P}build_info{version="0.1.0",command="filter"}`)).toBe(1);
    expect(now.get(`${P}process_start_time_seconds`)).toBeGreaterThan(0);
    // Nothing of the SQS, spool or forward parts this run does not have.
    expect([...now.keys()].filter((name) => /sqs_|spool_|forward_/.test(name))).toEqual([]);
  });

  it("answers while the output is blocked (nobody reads stdout)", async () => {
    const spawned = startCli(["--metrics-listen", "127.0.0.1:0", "--stats-interval", "0"]);
    spawned.child.stdout.pause();
    const port = await listeningPort(spawned);
    // More output than the pipe holds: it waits in the filter for stdout, and the listener answers meanwhile.
    spawned.child.stdin.write(INPUT.repeat(3));
    await poll("every record read", async () => samples(await scrape(port)).get(`${P}records_total`) === 21);
    expect(spawned.stdout.length).toBe(0);
    expect((await fetch(`http://127.0.0.1:${port}/healthz`)).status).toBe(200);
    expect((await fetch(`http://127.0.0.1:${port}/readyz`)).status).toBe(200); // blocked for less than the bound
    spawned.child.stdout.resume();
    expect((await finish(spawned)).records).toBe(21);
  });

  it("without the option nothing listens", async () => {
    const run = await runCli([], INPUT);
    expect(run.code).toBe(0);
    expect(run.log.some((l) => l.msg === "metrics listening")).toBe(false);
  });

  it("import serves them too while it runs", async () => {
    const run = await runCli(["import", `file://${FIXTURES}`, "--metrics-listen", "127.0.0.1:0"], "");
    expect(run.code).toBe(0);
    expect(run.log.find((l) => l.msg === "metrics listening")?.port).toBeGreaterThan(0);
  });
});

describe("/readyz", () => {
  it("says the output is blocked once sink.ready() has been pending longer than the bound", () => {
    let now = 1_000_000;
    const watch = new OutputWatch({ ready: () => new Promise<void>(() => {}) }, 60_000, () => now);
    try {
      expect(notReady([watch.check], now)).toEqual([]);
      now += 60_000;
      expect(notReady([watch.check], now)).toEqual([]);
      now += 1000;
      expect(notReady([watch.check], now)).toEqual([
        "output blocked for 61 s (bound 60 s): its reader is not taking records",
      ]);
    } finally {
      watch.stop();
    }
  });

  it("sqs: not ready before a receive succeeds, nor when none has for the bound, unless every slot is taken", () => {
    const source = { lastReceiveAt: 0, n: 0, inFlight: () => source.n };
    const check = receiveCheck(source, 10, 20);
    expect(check(1_000_000)).toBe("no SQS receive has succeeded yet");
    source.lastReceiveAt = 1_000_000;
    expect(check(1_000_000 + 80_000)).toBeUndefined();
    expect(check(1_000_000 + 81_000)).toBe("no SQS receive has succeeded for 81 s (bound 80 s)");
    source.n = 10;
    expect(check(1_000_000 + 81_000)).toBeUndefined();
  });
});

describe("the sqs command's metrics", () => {
  let sqs: SqsTest;
  beforeAll(async () => {
    sqs = await startSqs();
  });
  afterAll(async () => {
    await sqs?.close();
  });
  const env = () => ({
    AWS_ACCESS_KEY_ID: "x",
    AWS_SECRET_ACCESS_KEY: "x",
    AWS_REGION: "us-east-1",
    AWS_EC2_METADATA_DISABLED: "true",
  });

  it("ready once a receive succeeds; received and deleted equal the summary's", async () => {
    const queueUrl = sqs.addQueue("metrics");
    sqs.send("not json", queueUrl);
    sqs.send("not json either", queueUrl);
    const spawned = startCli(
      ["sqs", "--queue-url", queueUrl, "--wait-time", "1", "--request-timeout", "5", "--metrics-listen", "0"],
      env(),
    );
    const port = await listeningPort(spawned);
    await poll("both messages deleted", async () => sqs.remaining(queueUrl).length === 0);
    await poll("readiness", async () => (await fetch(`http://127.0.0.1:${port}/readyz`)).status === 200);
    await poll(
      "the deletes counted",
      async () => samples(await scrape(port)).get(`${P}sqs_messages_deleted_total`) === 2,
    );
    const now = samples(await scrape(port));
    spawned.child.kill("SIGTERM");
    const run = await spawned.done;
    expect(run.code).toBe(0);
    const summary = run.log.find((l) => l.msg === "summary") as Record<string, unknown>;
    expect(now.get(`${P}sqs_messages_received_total`)).toBe(summary.received);
    expect(now.get(`${P}sqs_messages_deleted_total`)).toBe(summary.deleted);
    const deadLetters = [...now].filter(([name]) => name.startsWith(`${P}dead_letters_total{`));
    expect(deadLetters.reduce((sum, [, n]) => sum + n, 0)).toBe(summary.deadLetters);
    expect(now.get(`${P}sqs_messages_in_flight`)).toBe(0);
    expect(now.get(`${P}build_info{version="0.1.0",command="sqs"}`)).toBe(1);
  });

  it("not ready, saying why, while the queue does not exist", async () => {
    const spawned = startCli(
      [
        "sqs",
        "--queue-url",
        `${sqs.endpoint}/000000000000/missing`,
        "--wait-time",
        "1",
        "--request-timeout",
        "5",
      ].concat(["--metrics-listen", "0"]),
      env(),
    );
    const port = await listeningPort(spawned);
    const response = await fetch(`http://127.0.0.1:${port}/readyz`);
    expect([response.status, await response.json()]).toEqual([
      503,
      { ready: false, reasons: ["no SQS receive has succeeded yet"] },
    ]);
    spawned.child.kill("SIGTERM");
    expect((await spawned.done).code).toBe(0);
  });
});

describe.skipIf(unavailable !== undefined)(
  `a real Prometheus scrapes it${unavailable === undefined ? "" : ` (skipped: ${unavailable})`}`,
  () => {
    let prometheus: Prometheus | undefined;
    afterAll(async () => {
      await prometheus?.close();
    });

    it("promtool check metrics accepts the exposition", async () => {
      const { spawned, port } = await startWorkload();
      const text = await scrape(port);
      await finish(spawned);
      const check = spawnSync("promtool", ["check", "metrics"], { input: text, encoding: "utf8" });
      expect([check.status, check.stdout, check.stderr]).toEqual([0, "", ""]);
    });

    it("Prometheus's counters equal the run's summary line", async () => {
      const { spawned, port } = await startWorkload();
      prometheus = await startPrometheus([`127.0.0.1:${port}`]);
      const p = prometheus;
      // Every record was done before Prometheus started: its first sample already has the final counts. Queried
      // before the run ends: once its target is gone, Prometheus marks the series stale.
      await poll("a sample in Prometheus", async () => (await p.query(`${P}records_total`)).get("") === 7);
      const seen = new Map<string, number | undefined>();
      for (const [name] of expected({})) seen.set(name, (await p.query(name)).get(""));
      const deadLetters = await p.query(`${P}dead_letters_total`);
      const objects = (await p.query(`sum(${P}objects_total)`)).get("");
      expect((await p.query("up")).get("")).toBe(1);
      const summary = await finish(spawned);
      for (const [name, value] of expected(summary)) expect([name, seen.get(name)]).toEqual([name, value]);
      expect(deadLetters).toEqual(
        new Map([
          ['code="NotFound"', 1],
          ['code="NotJson"', 1],
        ]),
      );
      expect(summary.deadLetters).toBe(2);
      expect(objects).toBe(summary.objects);
    });
  },
);
