// `--output forward://` (issue 16) against a real fluentd (support/fluentd-home.mjs; skipped with a note where none
// can run): in_forward → out_file, plain, with `<security>` shared_key, and with `<transport tls>`. The `sqs`
// command reads the loopback SQS and S3 stand-ins; a message is deleted only once fluentd has acknowledged its
// events; fluentd restarted mid-run, or killed with SIGKILL, loses nothing (a duplicate carries the same eventID);
// `import` delivers too; examples/fluent-forward.conf runs as shipped.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Spawned, startCli } from "../support/cli.js";
import { type FaultS3, startFaultS3 } from "../support/fault-s3.js";
import {
  expectFaithful,
  Fluentd,
  fileOutput,
  fluentdUnavailable,
  readLines,
  replaceDirective,
  waitUntil,
} from "../support/fluentd.js";
import { type SqsTest, startSqs } from "../support/sqs-server.js";
import { TEST_CA, TLS_DIR } from "../support/tls.js";
import { countOf, FIXTURE_NAMES, FIXTURES, type TrailEvent, trail } from "../support/trail.js";

const EXAMPLE = fileURLToPath(new URL("../../examples/fluent-forward.conf", import.meta.url));
const NAMES = FIXTURE_NAMES;
const BUCKET = "trail";
const WAIT_MS = 40_000;
const SHARED_KEY = "a shared key for the tests";

const unavailable = fluentdUnavailable();
if (unavailable !== undefined)
  console.warn(`test/system/forward.test.ts: the real fluentd tests are skipped: ${unavailable}`);

/** A TCP port free now on 127.0.0.1 (in_forward cannot report the port it was given by the system). */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

interface Mode {
  tls?: boolean;
  sharedKey?: boolean;
}

/** out_file standing in for Elasticsearch (or the dead-letter file), with the tag and time fluentd gave each record. */
const outFile = (dir: string, name: string) =>
  fileOutput({ pattern: name, path: `${dir}/out/${name}`, bufferPath: `${dir}/buffer/${name}` });

function config(dir: string, port: number, mode: Mode): string {
  const file = (name: string) => outFile(dir, name);
  return `
<source>
  @type forward
  bind 127.0.0.1
  port ${port}
${
  mode.tls
    ? `  <transport tls>
    cert_path ${join(TLS_DIR, "cert.pem")}
    private_key_path ${join(TLS_DIR, "key.pem")}
  </transport>`
    : ""
}
${
  mode.sharedKey
    ? `  <security>
    self_hostname fluentd-under-test
    shared_key ${SHARED_KEY}
  </security>`
    : ""
}
</source>
${file("cloudtrail.event")}
${file("cloudtrail.deadletter")}
<match cloudtrail.**>
  @type file
  path ${dir}/out/unrouted
</match>
`;
}

describe.skipIf(unavailable !== undefined)(
  `--output forward:// to fluentd 1.15.3${unavailable === undefined ? "" : ` (skipped: ${unavailable})`}`,
  () => {
    let s3: FaultS3;
    let sqs: SqsTest;
    const dirs: string[] = [];
    const fluentds: Fluentd[] = [];
    const consumers: Spawned[] = [];

    beforeAll(async () => {
      [s3, sqs] = await Promise.all([startFaultS3(), startSqs()]);
      s3.createBucket(BUCKET);
    });

    afterAll(async () => {
      for (const consumer of consumers) consumer.child.kill("SIGKILL");
      for (const fluentd of fluentds) fluentd.kill();
      await Promise.all(consumers.map((c) => c.done));
      await Promise.all([s3?.close(), sqs?.close()]);
      if (process.env.CTEF_KEEP_FLUENTD_DIRS !== "1")
        for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
    });

    async function startFluentd(mode: Mode = {}, reuse?: { dir: string; port: number }) {
      const dir = reuse?.dir ?? mkdtempSync(join(tmpdir(), "ctef-forward-"));
      if (reuse === undefined) {
        dirs.push(dir);
        mkdirSync(join(dir, "out"));
      }
      const port = reuse?.port ?? (await freePort());
      const file = join(dir, "fluent.conf");
      writeFileSync(file, config(dir, port, mode));
      const fluentd = await Fluentd.start(file, { ...process.env });
      fluentds.push(fluentd);
      return { fluentd, dir, port };
    }

    const env = (extra: Record<string, string> = {}) => ({
      PATH: `${dirname(process.execPath)}:${process.env.PATH ?? "/usr/bin:/bin"}`,
      AWS_ACCESS_KEY_ID: "x",
      AWS_SECRET_ACCESS_KEY: "x",
      AWS_REGION: "us-east-1",
      AWS_ENDPOINT_URL_S3: s3.endpoint,
      AWS_EC2_METADATA_DISABLED: "true",
      ...extra,
    });

    function consumer(queueUrl: string, output: string, args: string[] = [], extraEnv = {}): Spawned {
      const spawned = startCli(
        [
          "sqs",
          "--queue-url",
          queueUrl,
          "--output",
          output,
          "--wait-time",
          "1",
          "--request-timeout",
          "5",
          "--visibility-timeout",
          "30",
          ...args,
        ],
        env(extraEnv),
      );
      consumers.push(spawned);
      return spawned;
    }

    /** Stores fixtures under `prefix` and sends one CloudTrail notification naming them; returns their events. */
    function send(queueUrl: string, prefix: string, names: string[]): TrailEvent[] {
      const keys: string[] = [];
      const all: TrailEvent[] = [];
      for (const name of names) {
        const key = `AWSLogs/${prefix}/${name}.gz`;
        const events = trail(name, prefix);
        s3.putObject(BUCKET, key, gzipSync(JSON.stringify({ Records: events })));
        keys.push(key);
        all.push(...events);
      }
      sqs.send(JSON.stringify({ s3Bucket: BUCKET, s3ObjectKey: keys }), queueUrl);
      return all;
    }

    const eventsOut = (dir: string) => readLines(join(dir, "out"), "cloudtrail.event");
    const delivered = (dir: string, expected: TrailEvent[]) => {
      const have = new Set(eventsOut(dir).map((r) => String(r.eventID)));
      return expected.every((e) => have.has(e.eventID));
    };

    /** Each record as exec_filter + fluentd would make it: the event plus @timestamp, tag and time from the event. */
    const expectFaithfulOut = (dir: string, expected: TrailEvent[]) => expectFaithful(eventsOut(dir), expected, true);

    async function stopConsumer(spawned: Spawned) {
      spawned.child.kill("SIGTERM");
      const run = await spawned.done;
      expect(run.code).toBe(0);
      return run;
    }

    it("plain: every event exactly once, tagged and timed from eventTime; dead letters by their tag; deletes after the acks", async () => {
      const { fluentd, dir, port } = await startFluentd();
      const queueUrl = sqs.addQueue("plain");
      const expected = [
        ...send(queueUrl, "p1", NAMES.slice(0, 3)),
        ...send(queueUrl, "p2", NAMES.slice(3, 8)),
        ...send(queueUrl, "p3", NAMES.slice(8, 9)),
      ];
      sqs.send("not json", queueUrl);
      const spawned = consumer(queueUrl, `forward://127.0.0.1:${port}`);
      await waitUntil(
        "every event in fluentd's output",
        () => delivered(dir, expected),
        WAIT_MS,
        () => fluentd.tail(),
      );
      await waitUntil("every message deleted", () => sqs.remaining(queueUrl).length === 0, WAIT_MS);
      await waitUntil(
        "the dead letter",
        () => readLines(join(dir, "out"), "cloudtrail.deadletter").length > 0,
        WAIT_MS,
      );
      await new Promise((resolve) => setTimeout(resolve, 1500)); // one more flush: a duplicate would show now
      expect(countOf(eventsOut(dir).map((r) => String(r.eventID)))).toEqual(countOf(expected.map((e) => e.eventID)));
      expectFaithfulOut(dir, expected);
      const [letter, ...more] = readLines(join(dir, "out"), "cloudtrail.deadletter");
      expect(more).toEqual([]);
      expect(letter).toMatchObject({ fluentd_tag: "cloudtrail.deadletter", error: { code: "BodyNotJson" } });
      expect(letter).not.toHaveProperty("_tag");
      expect(readLines(join(dir, "out"), "unrouted")).toEqual([]);
      const run = await stopConsumer(spawned);
      expect(run.log.find((l) => l.msg === "summary")).toMatchObject({
        deleted: 4,
        deadLetters: 1,
        forward: { resent: 0, unacknowledged: 0 },
      });
      expect(fluentd.problems()).toEqual([]);

      // import delivers the same way (a directory of the fixtures, digest files skipped).
      const imported = startCli(
        ["import", `file://${FIXTURES}`, "--output", `forward://127.0.0.1:${port}`, "--tag", "cloudtrail.event"],
        env(),
      );
      consumers.push(imported);
      const importRun = await imported.done;
      expect(importRun.code).toBe(0);
      const all = NAMES.flatMap((name) => trail(name, "x").map((e) => e.eventID.slice(2)));
      await waitUntil(
        "every imported event",
        () => {
          const have = new Set(eventsOut(dir).map((r) => String(r.eventID)));
          return all.every((id) => have.has(id));
        },
        WAIT_MS,
      );
      expect((await fluentd.stop()).code).toBe(0);
    });

    it("<security> shared_key: the handshake passes with the key, and a wrong key is retried and logged, never acked", async () => {
      const { fluentd, dir, port } = await startFluentd({ sharedKey: true });
      const queueUrl = sqs.addQueue("shared-key");
      const expected = send(queueUrl, "k1", NAMES.slice(9, 12));
      const deletedBefore = sqs.deleted.length;
      const wrong = consumer(queueUrl, `forward://127.0.0.1:${port}`, ["--forward-shared-key", "not the key"]);
      await waitUntil(
        "the refused handshake logged twice",
        () => wrong.log().filter((l) => l.msg === "fluentd connection lost; reconnecting").length >= 2,
        WAIT_MS,
      );
      expect(sqs.deleted.slice(deletedBefore)).toEqual([]);
      const asked = Date.now();
      const wrongRun = await stopConsumer(wrong);
      // fluentd unreachable for it: SIGTERM still ends it within --shutdown-timeout (5 s), the message handed back.
      expect(Date.now() - asked).toBeLessThan(6000);
      expect(wrongRun.log.find((l) => l.msg === "summary")).toMatchObject({ deleted: 0, handedBack: 1 });

      const right = consumer(queueUrl, `forward://127.0.0.1:${port}`, [], { CTEF_FORWARD_SHARED_KEY: SHARED_KEY });
      await waitUntil(
        "every event",
        () => delivered(dir, expected),
        WAIT_MS,
        () => fluentd.tail(),
      );
      await waitUntil("the message deleted", () => sqs.remaining(queueUrl).length === 0, WAIT_MS);
      expectFaithfulOut(dir, expected);
      await stopConsumer(right);
      expect((await fluentd.stop()).code).toBe(0);
    });

    it("<transport tls> with <security>: forwards:// trusting the test CA (--forward-ca, or NODE_EXTRA_CA_CERTS)", async () => {
      const { fluentd, dir, port } = await startFluentd({ tls: true, sharedKey: true });
      const queueUrl = sqs.addQueue("tls");
      const first = send(queueUrl, "t1", NAMES.slice(12, 14));
      const viaOption = consumer(queueUrl, `forwards://localhost:${port}`, [
        "--forward-ca",
        TEST_CA,
        "--forward-shared-key",
        SHARED_KEY,
      ]);
      await waitUntil(
        "every event over TLS",
        () => delivered(dir, first),
        WAIT_MS,
        () => fluentd.tail(),
      );
      await waitUntil("the message deleted", () => sqs.remaining(queueUrl).length === 0, WAIT_MS);
      await stopConsumer(viaOption);

      const second = send(queueUrl, "t2", NAMES.slice(14, 15));
      const viaEnv = consumer(
        queueUrl,
        `forward://127.0.0.1:${port}`,
        ["--forward-tls", "--forward-shared-key", SHARED_KEY],
        { NODE_EXTRA_CA_CERTS: TEST_CA },
      );
      await waitUntil(
        "every event over TLS",
        () => delivered(dir, second),
        WAIT_MS,
        () => fluentd.tail(),
      );
      await waitUntil("the message deleted", () => sqs.remaining(queueUrl).length === 0, WAIT_MS);
      expectFaithfulOut(dir, [...first, ...second]);
      await stopConsumer(viaEnv);
      expect((await fluentd.stop()).code).toBe(0);
    });

    it("fluentd restarted mid-run: nothing is lost, nothing is deleted while it is down, duplicates keep their eventID", async () => {
      const started = await startFluentd();
      const { dir, port } = started;
      const queueUrl = sqs.addQueue("restart");
      const before = [...send(queueUrl, "r1", NAMES.slice(15, 18)), ...send(queueUrl, "r2", NAMES.slice(18, 20))];
      const spawned = consumer(queueUrl, `forward://127.0.0.1:${port}`, ["--forward-ack-timeout", "5"]);
      await waitUntil(
        "the first events",
        () => delivered(dir, before),
        WAIT_MS,
        () => started.fluentd.tail(),
      );
      await waitUntil("the first messages deleted", () => sqs.remaining(queueUrl).length === 0, WAIT_MS);

      expect((await started.fluentd.stop()).code).toBe(0);
      const during = [...send(queueUrl, "r3", NAMES.slice(20, 24)), ...send(queueUrl, "r4", NAMES.slice(24, 28))];
      await waitUntil(
        "the consumer to notice fluentd is gone",
        () => spawned.log().some((l) => l.msg === "fluentd connection lost; reconnecting"),
        WAIT_MS,
      );
      await waitUntil(
        "the messages received meanwhile",
        () => sqs.remaining(queueUrl).every((m) => m.receives > 0),
        WAIT_MS,
      );
      await new Promise((resolve) => setTimeout(resolve, 2000));
      expect(sqs.remaining(queueUrl)).toHaveLength(2); // nothing acknowledged, nothing deleted

      const again = await startFluentd({}, { dir, port });
      await waitUntil(
        "every event after the restart",
        () => delivered(dir, during),
        WAIT_MS,
        () => again.fluentd.tail(),
      );
      await waitUntil("every message deleted", () => sqs.remaining(queueUrl).length === 0, WAIT_MS);
      const all = [...before, ...during];
      const counts = countOf(eventsOut(dir).map((r) => String(r.eventID)));
      for (const event of all) expect(counts.get(event.eventID), event.eventID).toBeGreaterThanOrEqual(1);
      expect([...counts.keys()].every((id) => all.some((e) => e.eventID === id))).toBe(true);
      expectFaithfulOut(dir, all);
      expect(spawned.log().some((l) => l.msg === "connected to fluentd")).toBe(true);
      await stopConsumer(spawned);
      expect((await again.fluentd.stop()).code).toBe(0);
    });

    it("fluentd killed with SIGKILL while messages are in flight: after its restart every event is there, no message lost", async () => {
      const started = await startFluentd();
      const { dir, port } = started;
      const queueUrl = sqs.addQueue("sigkill");
      const spawned = consumer(queueUrl, `forward://127.0.0.1:${port}`, ["--forward-ack-timeout", "5"]);
      // Objects that answer one after another, so that messages are still coming when fluentd dies.
      const all: TrailEvent[] = [];
      NAMES.slice(0, 12).forEach((name, i) => {
        all.push(...send(queueUrl, `sk${i}`, [name]));
        s3.failKey(BUCKET, `AWSLogs/sk${i}/${name}.gz`, { delay: 300 * i });
      });
      await waitUntil(
        "some messages deleted, not all",
        () => sqs.remaining(queueUrl).length < 12,
        WAIT_MS,
        () => started.fluentd.tail(),
      );
      started.fluentd.kill(); // SIGKILL to fluentd: acks it owed are never sent
      await started.fluentd.exited;
      const leftAtKill = sqs.remaining(queueUrl).length;
      expect(leftAtKill).toBeGreaterThan(0);

      const again = await startFluentd({}, { dir, port });
      await waitUntil(
        "every event after the restart",
        () => delivered(dir, all),
        WAIT_MS,
        () => again.fluentd.tail(),
      );
      await waitUntil("every message deleted", () => sqs.remaining(queueUrl).length === 0, WAIT_MS);
      const counts = countOf(eventsOut(dir).map((r) => String(r.eventID)));
      for (const event of all) expect(counts.get(event.eventID), event.eventID).toBeGreaterThanOrEqual(1);
      expectFaithfulOut(dir, all);
      await stopConsumer(spawned);
      expect((await again.fluentd.stop()).code).toBe(0);
    });

    it("examples/fluent-forward.conf as shipped (Elasticsearch swapped for out_file): events, dead letters, deletes", async () => {
      const dir = mkdtempSync(join(tmpdir(), "ctef-forward-example-"));
      dirs.push(dir);
      for (const sub of ["out", "log", "lib"]) mkdirSync(join(dir, sub));
      const port = await freePort();
      let text = readFileSync(EXAMPLE, "utf8")
        .replace(/^(\s*port) 24224$/m, `$1 ${port}`)
        .replaceAll("/var/log/fluent", join(dir, "log"))
        .replaceAll("/var/lib/fluent", join(dir, "lib"))
        .replaceAll("flush_interval 10s", "flush_interval 1s");
      text = replaceDirective(text, (line) => line === "<match cloudtrail.event>", outFile(dir, "cloudtrail.event"));
      const file = join(dir, "fluent.conf");
      writeFileSync(file, text);
      const fluentd = await Fluentd.start(file, { ...process.env });
      fluentds.push(fluentd);
      const queueUrl = sqs.addQueue("example");
      const expected = send(queueUrl, "e1", NAMES.slice(0, 4));
      sqs.send("not json", queueUrl);
      const spawned = consumer(queueUrl, `forward://127.0.0.1:${port}`);
      await waitUntil(
        "every event",
        () => delivered(dir, expected),
        WAIT_MS,
        () => fluentd.tail(),
      );
      await waitUntil("every message deleted", () => sqs.remaining(queueUrl).length === 0, WAIT_MS);
      await waitUntil(
        "the dead letter in the shipped dead-letter file",
        () => readLines(join(dir, "log/cloudtrail-deadletter"), "deadletter").length > 0,
        WAIT_MS,
      );
      expectFaithfulOut(dir, expected);
      const [letter] = readLines(join(dir, "log/cloudtrail-deadletter"), "deadletter");
      expect(letter).toMatchObject({ error: { code: "BodyNotJson" } });
      expect(letter).not.toHaveProperty("_tag");
      expect(readLines(join(dir, "log/cloudtrail-unrouted"), "unrouted")).toEqual([]);
      expect(readLines(join(dir, "log/cloudtrail-error"), "error")).toEqual([]);
      await stopConsumer(spawned);
      expect((await fluentd.stop()).code).toBe(0);
      expect(fluentd.problems()).toEqual([]);
    });
  },
);
