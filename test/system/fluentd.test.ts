// The filter under a real fluentd: FLUENTD_HOME, a fluentd on PATH, or 1.15.3 from ../shared/vendor (support/
// fluentd-home.mjs; without one these tests are skipped with a note saying how to get one). The configuration is the shipped fluent.conf with its two plugins that are
// not in fluentd's core swapped out: in_sqs becomes in_tail of a file of fluent-plugin-sqs 3.x records written by the
// test, the Elasticsearch output becomes out_file; its paths move into a temporary directory. Everything else (the
// exec_filter section, the command, relabel, the dead-letter, catch-all and @ERROR outputs) runs as shipped, against
// loopback S3 and SQS stand-ins. test/system/exec-filter.test.ts plays fluentd's side faster with a stand-in; here fluentd
// itself judges the protocol: JSON and msgpack both ways, _tag/_time extraction, every event delivered while fluentd
// runs, SIGTERM, and the child respawned after kill -9.
import {
  appendFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type FaultS3, startFaultS3 } from "../support/fault-s3.js";
import { findAll, parseFluentConfig, pluginType } from "../support/fluent-config.js";
import {
  alive,
  type DirectiveTest,
  dryRun,
  editDirective,
  expectFaithful,
  Fluentd,
  fileOutput,
  fluentdUnavailable,
  readLines,
  replaceDirective,
  waitUntil,
} from "../support/fluentd.js";
import { inSqsRecord } from "../support/messages.js";
import { type SqsTest, startSqs } from "../support/sqs-server.js";
import { countOf, FIXTURE_NAMES, trail } from "../support/trail.js";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const BUCKET = "trail";
/** fluentd's start, a flush of each buffer and the filter's work, on a shared 2-core machine: generous, but bounded. */
const WAIT_MS = 40_000;

const unavailable = fluentdUnavailable();
if (unavailable !== undefined)
  console.warn(`test/system/fluentd.test.ts: the real fluentd tests are skipped: ${unavailable}`);

// ---------------------------------------------------------------------------------------------------------------
// The configuration under test, cut from the shipped one

interface Layout {
  dir: string;
  /** The file in_tail reads: one fluent-plugin-sqs record per line. */
  input: string;
  /** Where the out_file standing in for Elasticsearch writes. */
  events: string;
  deadLetters: string;
  unrouted: string;
  errors: string;
}

function layout(dir: string): Layout {
  return {
    dir,
    input: join(dir, "sqs-records.jsonl"),
    events: join(dir, "out/events"),
    deadLetters: join(dir, "log/cloudtrail-deadletter"),
    unrouted: join(dir, "log/cloudtrail-unrouted"),
    errors: join(dir, "log/cloudtrail-error"),
  };
}

/**
 * in_tail of a records file, tagged as in_sqs tags its records, in place of an in_sqs `<source>`; `worker`: the
 * worker that runs it (its own file, position and id), and `label`: the in_sqs's `@label`.
 */
const tailSource = (paths: Layout, worker?: number, label?: string) => {
  const suffix = worker === undefined ? "" : `-${worker}`;
  return `
<source>
  @type tail
  @id in_tail_sqs_records${suffix}
  path ${worker === undefined ? paths.input : workerInput(paths, worker)}
  pos_file ${paths.dir}/lib/sqs-records${suffix}.pos
  tag sqs.cloudtrail${label === undefined ? "" : `\n  @label ${label}`}
  read_from_head true
  <parse>
    @type json
  </parse>
</source>`;
};

/** out_file in place of Elasticsearch, with the tag and the event time fluentd gave each record written into it. */
const eventsFile = (paths: Layout) =>
  fileOutput({
    pattern: "cloudtrail.event",
    id: "cloudtrail_events_file",
    path: paths.events,
    bufferPath: `${paths.dir}/lib/buffer/cloudtrail-events-file`,
  });

const SHIPPED = readFileSync(join(ROOT, "fluent.conf"), "utf8");

/**
 * fluent.conf with in_sqs → in_tail and Elasticsearch → out_file, every path moved under `paths.dir` (the install
 * prefix to this checkout), and the file outputs' 10 s flush cut to 1 s so the test waits less. `msgpack`: the
 * exec_filter's `<format>` and `<parse>` become msgpack and the command gets the matching options; `args` are added
 * to the command.
 */
interface ConfigOptions {
  msgpack?: boolean;
  args?: string;
}

function testConfig(paths: Layout, options: ConfigOptions = {}): string {
  let text = SHIPPED.replaceAll("/opt/cloudtrail-exec-filter/", ROOT)
    .replaceAll("/var/log/fluent", join(paths.dir, "log"))
    .replaceAll("/var/lib/fluent", join(paths.dir, "lib"))
    .replaceAll("flush_interval 10s", "flush_interval 1s");
  text = replaceDirective(text, (line) => line === "<source>", tailSource(paths));
  text = replaceDirective(text, (line) => line === "<match cloudtrail.event>", eventsFile(paths));
  const execFilter: DirectiveTest = (opening, block) =>
    opening.startsWith("<match") && /^\s*@type exec_filter$/m.test(block);
  if (options.args !== undefined) {
    text = editDirective(text, execFilter, (block) => block.replace(/^(\s*command .*)$/m, `$1 ${options.args}`));
  }
  if (options.msgpack) {
    text = editDirective(text, execFilter, (block) => {
      const edited = block
        .replace(/^(\s*command .*)$/m, "$1 --input-format msgpack --output-format msgpack")
        .replace(/(<format>\n(?:\s*#.*\n)*\s*)@type json/, "$1@type msgpack")
        .replace(/(<parse>\n(?:\s*#.*\n)*\s*)@type json/, "$1@type msgpack");
      if ((edited.match(/@type msgpack/g) ?? []).length !== 2) throw new Error("msgpack: <format>/<parse> not found");
      return edited;
    });
  }
  return text;
}

const WORKERS_EXAMPLE = readFileSync(join(ROOT, "examples/fluent-workers.conf"), "utf8");

/**
 * examples/fluent-workers.conf cut the same way: each worker's in_sqs becomes in_tail of a records file of that
 * worker's own (`paths.input` with the worker id before its extension), into the same label.
 */
function workersTestConfig(paths: Layout): string {
  let text = WORKERS_EXAMPLE.replaceAll("/opt/cloudtrail-exec-filter/", ROOT)
    .replaceAll("/var/log/fluent", join(paths.dir, "log"))
    .replaceAll("/var/lib/fluent", join(paths.dir, "lib"))
    .replaceAll("flush_interval 10s", "flush_interval 1s");
  for (const worker of parseFluentConfig(text).children.filter((c) => c.name === "worker")) {
    for (const source of findAll(worker, "source").filter((d) => pluginType(d) === "sqs")) {
      const id = new RegExp(`^\\s*@id ${source.params["@id"]}$`, "m");
      const tail = tailSource(paths, Number(worker.arg), source.params["@label"]);
      text = replaceDirective(text, (opening, block) => opening === "<source>" && id.test(block), tail);
    }
  }
  return replaceDirective(text, (line) => line === "<match cloudtrail.event>", eventsFile(paths));
}

const workerInput = (paths: Layout, id: number) => paths.input.replace(/\.jsonl$/, `-${id}.jsonl`);

// ---------------------------------------------------------------------------------------------------------------
// Trails, messages and what comes out

const shippedRoot = parseFluentConfig(SHIPPED);

/** The messages of the filter's own log (--log-file, which fluent.conf puts next to fluentd's other logs). */
const filterLog = (paths: Layout): string[] =>
  readLines(join(paths.dir, "log"), "cloudtrail-exec-filter.log").map((line) => String(line.msg));

it("builds its configuration from fluent.conf: the shipped exec_filter, with in_tail and out_file swapped in", () => {
  const paths = layout("/tmp/x");
  const root = parseFluentConfig(testConfig(paths));
  expect(findAll(root, "source").map(pluginType)).toEqual(["tail"]);
  expect(findAll(root, "match").map(pluginType)).toEqual(
    findAll(shippedRoot, "match").map((m) => (pluginType(m) === "elasticsearch" ? "file" : pluginType(m))),
  );
  const shipped = findAll(shippedRoot, "match").find((m) => pluginType(m) === "exec_filter");
  const tested = findAll(root, "match").find((m) => pluginType(m) === "exec_filter");
  expect(tested?.params.command).toBe(
    shipped?.params.command
      ?.replaceAll("/opt/cloudtrail-exec-filter/", ROOT)
      .replaceAll("/var/log/fluent", "/tmp/x/log")
      .replaceAll("/var/lib/fluent", "/tmp/x/lib"),
  );
  const sections = (d: typeof tested) => d?.children.map((c) => [c.name, c.params]);
  const shippedSections = sections(shipped)?.map(([name, params]) => [
    name,
    JSON.parse(JSON.stringify(params).replaceAll("/var/lib/fluent", "/tmp/x/lib")),
  ]);
  expect(sections(tested)).toEqual(shippedSections);
  const msgpack = findAll(parseFluentConfig(testConfig(paths, { msgpack: true })), "match").find(
    (m) => pluginType(m) === "exec_filter",
  );
  expect(msgpack?.params.command).toBe(`${tested?.params.command} --input-format msgpack --output-format msgpack`);
  expect(msgpack?.children.map((c) => [c.name, pluginType(c)])).toEqual([
    ["format", "msgpack"],
    ["parse", "msgpack"],
    ["extract", undefined],
    ["buffer", "file"],
  ]);
});

it("builds the workers configuration from examples/fluent-workers.conf: each worker's in_sqs made an in_tail", () => {
  const root = parseFluentConfig(workersTestConfig(layout("/tmp/x")));
  const example = parseFluentConfig(WORKERS_EXAMPLE);
  const workers = root.children.filter((c) => c.name === "worker");
  expect(workers.map((w) => w.arg)).toEqual(example.children.filter((c) => c.name === "worker").map((w) => w.arg));
  for (const worker of workers) {
    const [source, ...others] = findAll(worker, "source");
    expect(others).toEqual([]);
    expect(source?.params).toMatchObject({
      "@type": "tail",
      path: `/tmp/x/sqs-records-${worker.arg}.jsonl`,
      "@label": `@CLOUDTRAIL_IN_${worker.arg}`,
    });
  }
  expect(findAll(root, "match").filter((m) => pluginType(m) === "elasticsearch")).toEqual([]);
});

// The four groups below each run a fluentd of their own and wait mostly on fluentd's flushes and the filter's shutdown,
// so they run side by side; within a group that tells one story, `it.sequential` keeps the tests in order.
describe.skipIf(unavailable !== undefined)(
  `fluent.conf's pipeline under fluentd 1.15.3${unavailable === undefined ? "" : ` (skipped: ${unavailable})`}`,
  { concurrent: true },
  () => {
    let s3: FaultS3;
    let sqs: SqsTest;
    const dirs: string[] = [];
    const running: Fluentd[] = [];
    /** What each message (by receipt handle) named: its events, by the phase of the test that sent it. */
    const sent = new Map<string, { phase: string; ids: string[] }>();

    beforeAll(async () => {
      [s3, sqs] = await Promise.all([startFaultS3(), startSqs()]);
      s3.createBucket(BUCKET);
    });

    afterAll(async () => {
      for (const fluentd of running) fluentd.kill();
      await Promise.all([s3?.close(), sqs?.close()]);
      // CTEF_KEEP_FLUENTD_DIRS=1 keeps each run's configuration, logs, buffers and output for a look afterwards.
      if (process.env.CTEF_KEEP_FLUENTD_DIRS !== "1")
        for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
    });

    /** fluentd's environment, which the filter inherits: AWS SDK pointed at the stand-ins, node on the PATH. */
    const env = (): NodeJS.ProcessEnv => ({
      ...process.env,
      PATH: `${dirname(process.execPath)}:${process.env.PATH ?? "/usr/bin:/bin"}`,
      AWS_ACCESS_KEY_ID: "x",
      AWS_SECRET_ACCESS_KEY: "x",
      AWS_REGION: "us-east-1",
      AWS_ENDPOINT_URL_S3: s3.endpoint,
      AWS_ENDPOINT_URL_SQS: sqs.endpoint, // the stand-in's queue URLs are on loopback, not an AWS SQS host
      AWS_EC2_METADATA_DISABLED: "true",
    });

    function newLayout(): Layout {
      const dir = mkdtempSync(join(tmpdir(), "ctef-fluentd-"));
      dirs.push(dir);
      const paths = layout(dir);
      // What fluent.conf says must exist and be writable (the filter will not start without its log file).
      for (const sub of ["out", "log", "lib"]) mkdirSync(join(dir, sub));
      writeFileSync(paths.input, "");
      return paths;
    }

    async function start(paths: Layout, options: ConfigOptions = {}): Promise<Fluentd> {
      const config = join(paths.dir, "fluent.conf");
      writeFileSync(config, testConfig(paths, options));
      const fluentd = await Fluentd.start(config, env());
      running.push(fluentd);
      return fluentd;
    }

    /**
     * Stores fixture objects (gzipped, as CloudTrail writes them) and returns the record of one SQS message naming
     * them: the body as CloudTrail's SNS topic delivers it (`envelope`) or raw, the fields as fluent-plugin-sqs 3.x
     * writes them.
     */
    function message(phase: string, handle: string, names: string[], envelope = false): string {
      const keys = names.map((name) => `AWSLogs/${phase}/${name}.gz`);
      const ids: string[] = [];
      names.forEach((name, i) => {
        const events = trail(name, phase);
        s3.putObject(BUCKET, keys[i] as string, gzipSync(JSON.stringify({ Records: events })));
        ids.push(...events.map((e) => e.eventID));
      });
      sent.set(handle, { phase, ids });
      const notification = JSON.stringify({ s3Bucket: BUCKET, s3ObjectKey: keys });
      const body = envelope
        ? JSON.stringify({ Type: "Notification", MessageId: `sns-${handle}`, Message: notification })
        : notification;
      return inSqsRecord(body, handle, sqs.queueUrl);
    }

    /** A message that cannot become events (a missing object, a body that is not JSON): a dead letter. */
    function badMessage(handle: string, body: string): string {
      sent.set(handle, { phase: "dead", ids: [] });
      return JSON.stringify({ body, receipt_handle: handle, message_id: `id-${handle}`, queue_url: sqs.queueUrl });
    }

    const expectedIds = (phase: string) => [...sent.values()].filter((m) => m.phase === phase).flatMap((m) => m.ids);
    const handlesOf = (phase: string) => [...sent].filter(([, m]) => m.phase === phase).map(([handle]) => handle);
    const outputIds = (paths: Layout) => readLines(join(paths.dir, "out"), "events").map((r) => String(r.eventID));
    const delivered = (paths: Layout, phase: string) => {
      const have = new Set(outputIds(paths));
      return expectedIds(phase).every((id) => have.has(id));
    };
    const countsOfPhase = (paths: Layout, phase: string) =>
      countOf(outputIds(paths).filter((id) => id.startsWith(`${phase}-`)));

    // One fluentd for the whole story, in order: delivery, routing, acknowledgements, kill -9 of the child, SIGTERM.
    describe("JSON both ways, as shipped", () => {
      let paths: Layout;
      let fluentd: Fluentd;

      beforeAll(async () => {
        paths = newLayout();
        fluentd = await start(paths);
      });

      it.sequential("delivers every event exactly once while fluentd runs: tag cloudtrail.event, eventTime as the time", async () => {
        const records = [
          message("a", "a-1", FIXTURE_NAMES.slice(0, 1)),
          message("a", "a-2", FIXTURE_NAMES.slice(1, 4), true),
          message("a", "a-3", FIXTURE_NAMES.slice(4, 5)),
          badMessage("dead-missing", JSON.stringify({ s3Bucket: BUCKET, s3ObjectKey: ["AWSLogs/missing.json.gz"] })),
          message("a", "a-4", FIXTURE_NAMES.slice(5, 12), true),
          badMessage("dead-not-json", "not json"),
          message("a", "a-5", FIXTURE_NAMES.slice(12, 16)),
        ];
        appendFileSync(paths.input, `${records.join("\n")}\n`);
        await waitUntil(
          "every event of phase a in the output",
          () => delivered(paths, "a"),
          WAIT_MS,
          () => fluentd.tail(),
        );
        // Exactly once each (no event of these fixtures repeats an eventID), and nothing else.
        await new Promise((resolve) => setTimeout(resolve, 1500)); // one more flush: a duplicate would show now
        expect(countsOfPhase(paths, "a")).toEqual(countOf(expectedIds("a")));

        const phase = FIXTURE_NAMES.flatMap((name) => trail(name, "a"));
        expectFaithful(readLines(join(paths.dir, "out"), "events"), phase);
        expect(fluentd.children()).toHaveLength(1);
        expect(fluentd.problems()).toEqual([]);
      });

      it.sequential("routes dead letters by their _tag to the dead-letter file, _tag removed, with the record that failed", async () => {
        await waitUntil(
          "two dead letters",
          () => readLines(paths.deadLetters).length >= 2,
          WAIT_MS,
          () => fluentd.tail(),
        );
        const deadLetters = readLines(paths.deadLetters);
        expect(deadLetters).toHaveLength(2);
        // A dead letter keeps a receipt handle's first 12 characters only (dead-letter.ts, redactReceiptHandles).
        const byHandle = new Map(
          deadLetters.map((d) => [(d.input as { receipt_handle?: string }).receipt_handle?.slice(0, 12), d] as const),
        );
        expect(byHandle.get("dead-not-jso")?.input).toMatchObject({ receipt_handle: "dead-not-jso…" });
        expect(byHandle.get("dead-missing")).toMatchObject({
          error: { code: "NotFound" },
          bucket: BUCKET,
          key: "AWSLogs/missing.json.gz",
        });
        expect(byHandle.get("dead-not-jso")).toMatchObject({ error: { code: "BodyNotJson" } });
        for (const deadLetter of deadLetters) {
          expect(deadLetter).not.toHaveProperty("_tag");
          expect(deadLetter.failed_at).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+0000$/);
        }
      });

      it.sequential("has the filter delete each SQS message once its events are out, and sends nothing to the catch-alls", async () => {
        const handles = [...handlesOf("a"), "dead-missing", "dead-not-json"];
        await waitUntil("every phase-a message deleted", () => handles.every((h) => sqs.deleted.includes(h)), WAIT_MS);
        expect(sqs.deleted.filter((h) => handles.includes(h)).sort()).toEqual([...handles].sort());
        expect(readLines(paths.unrouted)).toEqual([]);
        expect(readLines(paths.errors)).toEqual([]);
        expect(fluentd.problems()).toEqual([]);
      });

      it.sequential("respawns a child killed with SIGKILL (child_respawn inf): its spool replays, later input flows", async () => {
        const [first] = fluentd.children();
        expect(first).toBeDefined();
        // The object of b-1 answers 4 s late: the child is surely mid-work when it is killed.
        const records = [
          message("b", "b-1", FIXTURE_NAMES.slice(16, 18)),
          message("b", "b-2", FIXTURE_NAMES.slice(18, 19)),
        ];
        s3.failKey(BUCKET, `AWSLogs/b/${FIXTURE_NAMES[16]}.gz`, { delay: 4000 });
        const logFrom = fluentd.output.length;
        appendFileSync(paths.input, `${records.join("\n")}\n`);
        await waitUntil(
          "the child to ask S3 for b-1's object",
          () => s3.requestsFor(BUCKET, `AWSLogs/b/${FIXTURE_NAMES[16]}.gz`).length > 0,
          WAIT_MS,
        );
        process.kill(first as number, "SIGKILL");
        await fluentd.waitForLog(/respawning child process/, WAIT_MS, logFrom);
        await waitUntil("a new child", () => fluentd.children().some((pid) => pid !== first), WAIT_MS);
        expect(alive(first as number)).toBe(false);
        // fluentd logs the crash (the only warning of this run so far) …
        expect(fluentd.problems()).toEqual([expect.stringMatching(/child process exits with error code .*signal=9/)]);
        // … and the new child finds b-1 unfinished in the spool and fetches its object again.
        await waitUntil("the spool replayed", () => filterLog(paths).includes("replaying the spool"), WAIT_MS);

        appendFileSync(paths.input, `${message("c", "c-1", FIXTURE_NAMES.slice(19, 21))}\n`);
        await waitUntil(
          "phases b and c delivered",
          () => delivered(paths, "b") && delivered(paths, "c"),
          WAIT_MS,
          () => fluentd.tail(),
        );
        // At least once: what the killed child wrote before dying may come again from the replay, never altered.
        for (const [id, n] of countsOfPhase(paths, "b")) expect(n, id).toBeGreaterThanOrEqual(1);
        expect(s3.requestsFor(BUCKET, `AWSLogs/b/${FIXTURE_NAMES[16]}.gz`).length).toBeGreaterThanOrEqual(2);
        expect(countsOfPhase(paths, "c")).toEqual(countOf(expectedIds("c")));
        // b-1, replayed, and c-1 are deleted by the new child. b-2 may have been finished by the killed child just
        // before its batched delete went out: SQS would deliver it again (a duplicate), its events are all out.
        await waitUntil("b-1 and c-1 deleted", () => ["b-1", "c-1"].every((h) => sqs.deleted.includes(h)), WAIT_MS);
      });

      it.sequential("SIGTERM: fluentd stops its child and exits; after a restart nothing the filter acknowledged is missing", async () => {
        const child = fluentd.children()[0] as number;
        // d-1's object answers 7 s late, past the filter's --shutdown-timeout (5 s): it is in flight at SIGTERM.
        const slowKey = `AWSLogs/d/${FIXTURE_NAMES[21]}.gz`;
        const records = [
          message("d", "d-1", FIXTURE_NAMES.slice(21, 22)),
          message("d", "d-2", FIXTURE_NAMES.slice(22, 25)),
          message("d", "d-3", FIXTURE_NAMES.slice(25, 28)),
        ];
        s3.failKey(BUCKET, slowKey, { delay: 7000 });
        appendFileSync(paths.input, `${records.join("\n")}\n`);
        await waitUntil(
          "the child to ask S3 for d-1's object",
          () => s3.requestsFor(BUCKET, slowKey).length > 0,
          WAIT_MS,
        );
        const stopped = await fluentd.stop("SIGTERM");
        expect(stopped).toMatchObject({ code: 0, signal: null });
        // fluentd waits up to 10 s for its child; the filter gives work in flight its --shutdown-timeout (5 s).
        expect(stopped.ms).toBeLessThan(15_000);
        expect(alive(child)).toBe(false);
        expect(filterLog(paths)).toEqual(expect.arrayContaining(["stopping", "abandoned"]));
        expect(fluentd.output).toMatch(
          /shutting down output plugin type=:exec_filter plugin_id="cloudtrail_exec_filter"/,
        );
        const acknowledged = handlesOf("d").filter((h) => sqs.deleted.includes(h));
        expect(acknowledged).not.toContain("d-1");

        // The same configuration and directories: buffers on disk and the filter's spool carry over.
        const again = await start(paths);
        await waitUntil(
          "phase d delivered after the restart",
          () => delivered(paths, "d"),
          WAIT_MS,
          () => again.tail(),
        );
        for (const handle of handlesOf("d")) {
          const have = new Set(outputIds(paths));
          expect(
            (sent.get(handle)?.ids ?? []).every((id) => have.has(id)),
            handle,
          ).toBe(true);
        }
        await waitUntil("d-1 deleted after the restart", () => sqs.deleted.includes("d-1"), WAIT_MS);
        expect((await again.stop("SIGTERM")).code).toBe(0);
      });
    });

    describe("msgpack both ways", () => {
      let paths: Layout;
      let fluentd: Fluentd;

      beforeAll(async () => {
        paths = newLayout();
        fluentd = await start(paths, { msgpack: true });
      });

      it("delivers every event exactly once, tagged and timed from _tag/_time; dead letters routed", async () => {
        const records = [
          message("m", "m-1", FIXTURE_NAMES.slice(0, 6), true),
          badMessage("m-dead", "not json"),
          message("m", "m-2", FIXTURE_NAMES.slice(6, 9)),
        ];
        appendFileSync(paths.input, `${records.join("\n")}\n`);
        await waitUntil(
          "phase m delivered and its dead letter",
          () => delivered(paths, "m") && readLines(paths.deadLetters).length > 0,
          WAIT_MS,
          () => fluentd.tail(),
        );
        await new Promise((resolve) => setTimeout(resolve, 1500));
        expect(countsOfPhase(paths, "m")).toEqual(countOf(expectedIds("m")));
        const phase = FIXTURE_NAMES.flatMap((name) => trail(name, "m"));
        expectFaithful(readLines(join(paths.dir, "out"), "events"), phase);
        expect(readLines(paths.deadLetters)).toEqual([
          expect.objectContaining({ error: expect.objectContaining({ code: "BodyNotJson" }) }),
        ]);
        const stopped = await fluentd.stop("SIGTERM");
        expect(stopped.code).toBe(0);
        expect(fluentd.problems()).toEqual([]);
      });
    });

    describe("JSON without the padding (--pad-bytes 0): why the filter pads", () => {
      let paths: Layout;
      let fluentd: Fluentd;

      beforeAll(async () => {
        paths = newLayout();
        fluentd = await start(paths, { args: "--pad-bytes 0" });
      });

      it("fluentd's 8 KiB block reader holds the tail of a burst until more output comes", async () => {
        // Several blocks of output each, none a multiple of 8192 bytes.
        const medium = FIXTURE_NAMES.find((name) => name.includes("1145Z_7xgocspSowgK0Gto")) as string;
        const other = FIXTURE_NAMES.find((name) => name.includes("1215Z_P0WZuP2zvLW2RcUo")) as string;
        appendFileSync(paths.input, `${message("p", "p-1", [medium])}\n`);
        const first = expectedIds("p");
        const have = () => new Set(outputIds(paths));
        await waitUntil(
          "the first events of the burst",
          () => have().size > 0,
          WAIT_MS,
          () => fluentd.tail(),
        );
        await waitUntil("the filter to finish the burst", () => sqs.deleted.includes("p-1"), WAIT_MS);
        await new Promise((resolve) => setTimeout(resolve, 3000)); // three flushes of the events file
        expect(have().size).toBeLessThan(first.length);
        expect(have().has(first.at(-1) as string)).toBe(false);

        appendFileSync(paths.input, `${message("q", "q-1", [other])}\n`);
        await waitUntil(
          "the rest of the first burst, pushed by the second",
          () => first.every((id) => have().has(id)),
          WAIT_MS,
        );
        expect(have().has(expectedIds("q").at(-1) as string)).toBe(false);
        expect((await fluentd.stop("SIGTERM")).code).toBe(0);
      });
    });

    describe("examples/fluent-workers.conf: two workers, each with its own in_sqs (here in_tail) and exec_filter", () => {
      let paths: Layout;

      beforeAll(() => {
        paths = newLayout();
        for (const id of [0, 1]) writeFileSync(workerInput(paths, id), "");
      });

      it.sequential("is accepted by fluentd --dry-run", () => {
        const config = join(paths.dir, "fluent-workers.conf");
        writeFileSync(config, workersTestConfig(paths));
        const run = dryRun(config, env());
        expect(run.ok, run.output).toBe(true);
      });

      it.sequential("runs: each worker's filter delivers its own records to the shared outputs; SIGTERM stops both", async () => {
        const config = join(paths.dir, "fluent-workers.conf");
        writeFileSync(config, workersTestConfig(paths));
        const fluentd = await Fluentd.start(config, env(), { workers: 2 });
        running.push(fluentd);
        appendFileSync(workerInput(paths, 0), `${message("w", "w-0", FIXTURE_NAMES.slice(0, 3))}\n`);
        appendFileSync(workerInput(paths, 1), `${message("w", "w-1", FIXTURE_NAMES.slice(3, 6), true)}\n`);
        await waitUntil(
          "phase w delivered",
          () => delivered(paths, "w"),
          WAIT_MS,
          () => fluentd.tail(),
        );
        await new Promise((resolve) => setTimeout(resolve, 1500));
        expect(countsOfPhase(paths, "w")).toEqual(countOf(expectedIds("w")));
        await waitUntil("w-0 and w-1 deleted", () => ["w-0", "w-1"].every((h) => sqs.deleted.includes(h)), WAIT_MS);
        expect(readdirSync(join(paths.dir, "lib/buffer/cloudtrail-events-file")).sort()).toEqual([
          "worker0",
          "worker1",
        ]);
        const stopped = await fluentd.stop("SIGTERM");
        expect(stopped.code).toBe(0);
        // Each worker's child did its share and ended cleanly (the summary is its last line), with a spool of its own.
        for (const id of [0, 1]) {
          const log = readLines(join(paths.dir, "log"), `cloudtrail-exec-filter-${id}.log`);
          expect(
            log.filter((line) => line.msg === "summary"),
            `worker ${id}`,
          ).toEqual([expect.objectContaining({ records: 1, objects: 3, deadLetters: 0, sqsDeletes: 1 })]);
          expect(existsSync(join(paths.dir, `lib/cloudtrail-exec-filter/spool-${id}`))).toBe(true);
        }
        expect(fluentd.problems()).toEqual([]);
      });
    });
  },
);
