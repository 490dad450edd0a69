// A fleet (issue 15, item 4): three filter processes, each fed the way fluentd's in_sqs → exec_filter feeds it,
// drain one SQS queue that holds a backfill of 40 CloudTrail objects (put there by `import --enqueue`); one of them is killed with SIGKILL while it
// holds messages whose events it has partly written. Shown: every event comes out at least once; no message is
// deleted before all its events were read from some filter's stdout; the killed filter kept its messages invisible
// past their timeout while it lived, and after the kill they come back and the others finish them; the copies this
// makes are byte-identical lines with the same eventID; at the end the queue is empty and each message was deleted
// once, with the receipt handle of its last receive.
//
// The copies become one document in Elasticsearch through fluent.conf's `id_key eventID` (with `write_operation
// create`): test/contract/configs.test.ts ("indexes idempotently into daily cloudtrail-* indices") asserts those settings in
// the elasticsearch <match>, so they are not asserted again here.
import { StringDecoder } from "node:string_decoder";
import { gzipSync } from "node:zlib";
import { type Message, ReceiveMessageCommand, SQSClient } from "@aws-sdk/client-sqs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCli, type Spawned, startCli } from "../support/cli.js";
import { type FaultS3, startFaultS3 } from "../support/fault-s3.js";
import { waitUntil } from "../support/fluentd.js";
import { type QueuedMessage, type SqsTest, startSqs } from "../support/sqs-server.js";
import { FAKE_AWS_ENV } from "../support/tls.js";
import { FIXTURE_NAMES, trail } from "../support/trail.js";

const NAMES = FIXTURE_NAMES;
const BUCKET = "fleet-trail";
const OBJECTS = 40;
const KEYS_PER_MESSAGE = 3;
/**
 * Seconds, in_sqs's `visibility_timeout` and the filter's `--visibility-timeout` alike (fluent.conf pairs them the
 * same way, with 600). Short so that the killed filter's messages come back within the test.
 */
const VISIBILITY = 4;
/** in_sqs's `receive_interval` (fluent.conf's 1s): its timer starts one receive at most this often. */
const RECEIVE_INTERVAL_MS = 1000;
const WAIT_MS = 25_000;
/** One filter per fluentd host; each host has credentials of its own, which is how the S3 stand-in tells them apart. */
const HOSTS = ["host-a", "host-b", "host-c"];
const DOOMED = "host-a";

interface Backfilled {
  messageId: string;
  keys: string[];
}

/**
 * The backfill put on the queue by the real command, `import s3://BUCKET --enqueue QUEUE_URL --keys-per-message 3`:
 * one message per three objects, in CloudTrail's own notification shape.
 */
async function enqueueBackfill(s3Endpoint: string, sqsEndpoint: string, queueUrl: string): Promise<void> {
  const run = await runCli(
    ["import", `s3://${BUCKET}`, "--enqueue", queueUrl, "--keys-per-message", String(KEYS_PER_MESSAGE)],
    "",
    { ...AWS_ENV("backfill"), AWS_ENDPOINT_URL_S3: s3Endpoint, AWS_ENDPOINT_URL_SQS: sqsEndpoint },
  );
  if (run.code !== 0) throw new Error(`import --enqueue exited ${run.code}: ${run.stderr}`);
}

/** A host's AWS environment: its own access key id, by which the S3 stand-in tells the hosts apart. */
const AWS_ENV = (name: string) => ({ ...FAKE_AWS_ENV, AWS_ACCESS_KEY_ID: name });

/** fluent-plugin-sqs 3.x's record of one message (its `parse_message`), one JSON line as exec_filter writes it. */
function inSqsLine(message: Message, queueUrl: string): string {
  return `${JSON.stringify({
    body: message.Body ?? "",
    receipt_handle: message.ReceiptHandle ?? "",
    message_id: message.MessageId ?? "",
    md5_of_body: message.MD5OfBody ?? "",
    queue_url: queueUrl,
    sender_id: message.Attributes?.SenderId ?? "",
  })}\n`;
}

interface Receipt {
  host: string;
  messageId: string;
  handle: string;
  /** ApproximateReceiveCount. */
  receives: number;
  at: number;
}

interface Host {
  name: string;
  filter: Spawned;
  client: SQSClient;
  /** eventID → count, from this host's stdout. */
  ids: Map<string, number>;
  feeder?: { stop(): Promise<void> };
}

describe("a fleet: three filters on one queue, one killed with SIGKILL mid-work", () => {
  let s3: FaultS3;
  let sqs: SqsTest;
  const hosts: Host[] = [];

  beforeAll(async () => {
    [s3, sqs] = await Promise.all([startFaultS3(), startSqs()]);
  });

  afterAll(async () => {
    for (const host of hosts) {
      await host.feeder?.stop().catch(() => undefined); // a failed feeder has failed the test already
      if (host.filter.child.exitCode === null && host.filter.child.signalCode === null)
        host.filter.child.kill("SIGKILL");
    }
    await Promise.all(hosts.map((host) => host.filter.done));
    for (const host of hosts) host.client.destroy();
    await Promise.all([s3?.close(), sqs?.close()]);
  });

  it("every event out at least once, no delete before its events, copies identical, the queue drained", async () => {
    const started = Date.now();
    const queueUrl = sqs.addQueue("fleet");

    // The backfill: 40 gzipped objects, every one with eventIDs of its own.
    const keys: string[] = [];
    const idsByKey = new Map<string, string[]>();
    const keyOfId = new Map<string, string>();
    for (let i = 0; i < OBJECTS; i++) {
      const name = NAMES[i % NAMES.length] as string;
      const key = `AWSLogs/218007301253/CloudTrail/us-east-1/2023/07/${10 + Math.floor(i / NAMES.length)}/${name}.gz`;
      const events = trail(name, `fleet${i}`);
      s3.putObject(BUCKET, key, gzipSync(JSON.stringify({ Records: events })));
      keys.push(key);
      idsByKey.set(
        key,
        events.map((e) => e.eventID),
      );
      for (const e of events) keyOfId.set(e.eventID, key);
    }
    const expected = [...idsByKey.values()].flat();
    expect(new Set(expected).size).toBe(expected.length);

    await enqueueBackfill(s3.endpoint, sqs.endpoint, queueUrl);
    const messages: Backfilled[] = sqs.remaining(queueUrl).map((m) => ({
      messageId: m.messageId,
      keys: (JSON.parse(m.body) as { s3ObjectKey: string[] }).s3ObjectKey,
    }));
    expect(messages).toHaveLength(Math.ceil(OBJECTS / KEYS_PER_MESSAGE));
    expect(messages.flatMap((m) => m.keys).sort()).toEqual([...keys].sort());
    const messageOfKey = new Map(messages.flatMap((m) => m.keys.map((key) => [key, m.messageId] as const)));
    const keysOf = (messageId: string) => messages.find((m) => m.messageId === messageId)?.keys ?? [];

    // The doomed host's requests for the last object of every other message are never answered: it writes the
    // events of the messages' first objects, finishes (and deletes) the messages in between, and holds the rest
    // when it is killed. The other hosts get every object at once.
    const stalled = new Set<string>();
    const stalledMessages = new Set<string>();
    s3.gate = (req) => {
      const credential = /Credential=([^/]+)\//.exec(String(req.headers.authorization))?.[1];
      if (credential !== DOOMED) return undefined;
      const key = decodeURIComponent((req.url ?? "").split("?")[0] ?? "").slice(`/${BUCKET}/`.length);
      const messageId = messageOfKey.get(key);
      const index = messages.findIndex((m) => m.messageId === messageId);
      if (index % 2 !== 0 || messages[index]?.keys.at(-1) !== key) return undefined;
      stalled.add(key);
      stalledMessages.add(messageId as string);
      return "stall";
    };

    // What every host's stdout has said so far: eventID → its lines (exactly as written), and dead-lettered keys.
    const copies = new Map<string, { host: string; line: string }[]>();
    const deadLettered = new Set<string>();

    // The check at each delete: all the events of the message's objects have already been read from some stdout.
    const violations: string[] = [];
    const deletions: { messageId: string; receives: number }[] = [];
    sqs.beforeDelete(async (message: QueuedMessage) => {
      // A filter sends the delete only once the record's lines are in its stdout pipe (Sink.written: the write
      // callbacks), so those bytes are in the kernel before the delete's request leaves. But both reach this one
      // process, and libuv may hand it the request in the same poll phase as the pipe's readiness, before the pipe's
      // callback (the request's body is usually read over more turns, but not always). One setImmediate runs after
      // that poll phase, in which every pipe readable along with the request was read and its 'data' emitted: a line
      // written before the delete was sent is in `copies` by then. Anything still missing was deleted too early.
      await new Promise((resolve) => setImmediate(resolve));
      deletions.push({ messageId: message.messageId, receives: message.receives });
      let objectKeys: string[];
      try {
        objectKeys = (JSON.parse(message.body) as { s3ObjectKey: string[] }).s3ObjectKey;
      } catch {
        violations.push(`message ${message.messageId}: body is not a notification: ${message.body.slice(0, 100)}`);
        return;
      }
      for (const key of objectKeys) {
        if (deadLettered.has(key)) continue;
        const missing = (idsByKey.get(key) ?? []).filter((id) => !copies.has(id));
        if (missing.length > 0) {
          violations.push(
            `message ${message.messageId} (receive ${message.receives}) deleted before ${missing.length} events of ${key} were read`,
          );
        }
      }
    });

    // The filters, started as exec_filter starts its child (pipes both ways), one per host.
    const receipts: Receipt[] = [];
    for (const name of HOSTS) {
      const filter = startCli(
        [
          "--endpoint",
          s3.endpoint,
          "--delete-sqs-messages",
          "--visibility-timeout",
          String(VISIBILITY),
          "--stats-interval",
          "0.5",
        ],
        // The queue's URL is on loopback, not an AWS SQS host: the filter sends there only with the endpoint set.
        { ...AWS_ENV(name), AWS_ENDPOINT_URL_SQS: sqs.endpoint },
      );
      const client = new SQSClient({
        endpoint: sqs.endpoint,
        region: "us-east-1",
        credentials: { accessKeyId: name, secretAccessKey: "x" },
      });
      const host: Host = { name, filter, client, ids: new Map() };
      hosts.push(host);
      const decoder = new StringDecoder("utf8");
      let rest = "";
      filter.child.stdout.on("data", (chunk: Buffer) => {
        rest += decoder.write(chunk);
        const end = rest.lastIndexOf("\n");
        if (end === -1) return;
        const complete = rest.slice(0, end);
        rest = rest.slice(end + 1);
        for (const line of complete.split("\n")) {
          if (line.trim() === "") continue; // the padding after a burst
          const record = JSON.parse(line) as { eventID?: unknown; _tag?: unknown; key?: unknown };
          if (record._tag !== undefined) {
            deadLettered.add(String(record.key));
            continue;
          }
          const id = String(record.eventID);
          host.ids.set(id, (host.ids.get(id) ?? 0) + 1);
          const list = copies.get(id) ?? [];
          list.push({ host: name, line });
          copies.set(id, list);
        }
      });
    }
    // The stats timer starts once a filter is set up: from then on it reads its stdin (fluentd does not wait, but its
    // visibility timeout is 600 s, not 4).
    await waitUntil(
      "every filter started",
      () => hosts.every((h) => h.filter.log().some((l) => l.msg === "stats")),
      WAIT_MS,
    );

    /**
     * in_sqs for one host: ReceiveMessage as fluent-plugin-sqs 3.x makes it (10 messages, long polling, its
     * visibility_timeout; `delete_message false`, deleting is the filter's job) every receive_interval, and each
     * message's record as one JSON line on the filter's stdin, a receive's records in one write as exec_filter writes
     * a chunk. It stops when its filter dies (fluentd would start another; not here).
     */
    function feed(host: Host): { stop(): Promise<void> } {
      const abort = new AbortController();
      let stopping = false;
      const stop = () => {
        stopping = true;
        abort.abort();
      };
      host.filter.child.once("exit", stop);
      const loop = (async () => {
        while (!stopping) {
          const next = Date.now() + RECEIVE_INTERVAL_MS;
          let received: Message[];
          try {
            const out = await host.client.send(
              new ReceiveMessageCommand({
                QueueUrl: queueUrl,
                MaxNumberOfMessages: 10,
                WaitTimeSeconds: 1,
                VisibilityTimeout: VISIBILITY,
                MessageSystemAttributeNames: ["ApproximateReceiveCount", "SenderId"],
              }),
              { abortSignal: abort.signal },
            );
            received = out.Messages ?? [];
          } catch (error) {
            if (stopping) break;
            throw error;
          }
          for (const message of received) {
            receipts.push({
              host: host.name,
              messageId: message.MessageId as string,
              handle: message.ReceiptHandle as string,
              receives: Number(message.Attributes?.ApproximateReceiveCount),
              at: Date.now(),
            });
          }
          if (stopping) break; // received by a dead host: they come back when their timeout runs out
          if (received.length > 0) {
            const text = received.map((message) => inSqsLine(message, queueUrl)).join("");
            await new Promise<void>((resolve) => host.filter.child.stdin.write(text, () => resolve()));
          }
          await new Promise((resolve) => setTimeout(resolve, Math.max(0, next - Date.now())));
        }
      })();
      const failed = loop.catch((error: unknown) => error);
      return {
        async stop() {
          stop();
          const error = await failed;
          if (error !== undefined) throw error;
        },
      };
    }

    // The doomed host's in_sqs starts first and takes the first batch; then the other two join.
    const doomed = hosts.find((h) => h.name === DOOMED) as Host;
    const survivors = hosts.filter((h) => h !== doomed);
    doomed.feeder = feed(doomed);
    await waitUntil("the doomed host's first messages", () => receipts.length > 0, WAIT_MS);
    for (const host of survivors) host.feeder = feed(host);

    const ownerOf = (handle: string | undefined) => receipts.find((r) => r.handle === handle);
    const extensions = (handle: string | undefined) =>
      sqs
        .succeeded("ChangeMessageVisibility")
        .filter((c) => c.input.ReceiptHandle === handle)
        .map((c) => c.time);
    const held = () => sqs.remaining(queueUrl).filter((m) => stalledMessages.has(m.messageId));
    const detail = () =>
      JSON.stringify({
        stalled: [...stalled],
        held: held().map((m) => ({ id: m.messageId, receives: m.receives, extensions: extensions(m.handle).length })),
        remaining: sqs.remaining(queueUrl).length,
        violations: violations.slice(0, 5),
        lines: hosts.map((h) => [h.name, h.ids.size]),
      });

    // Kill it once it holds a message whose first objects' events it has written, has finished and deleted another,
    // and has kept its held messages invisible (extended twice) past the timeout they were received with.
    await waitUntil(
      "the doomed host mid-work",
      () => {
        if (violations.length > 0) return true;
        const holding = held();
        if (holding.length === 0) return false;
        const partlyWritten = holding.some((m) =>
          keysOf(m.messageId).some(
            (key) => !stalled.has(key) && (idsByKey.get(key) ?? []).every((id) => doomed.ids.has(id)),
          ),
        );
        const deletedOne = sqs.deleted.some((handle) => ownerOf(handle)?.host === DOOMED);
        const keptInvisible = holding.every(
          (m) =>
            ownerOf(m.handle)?.host === DOOMED &&
            extensions(m.handle).length >= 2 &&
            Date.now() > (ownerOf(m.handle)?.at ?? Number.POSITIVE_INFINITY) + VISIBILITY * 1000 + 500,
        );
        return partlyWritten && deletedOne && keptInvisible;
      },
      WAIT_MS,
      detail,
    );
    expect(violations, "deletes before their events were read").toEqual([]);
    const heldAtKill = held().map((m) => ({ ...m }));
    doomed.filter.child.kill("SIGKILL");
    const killedAt = Date.now();
    const killed = await doomed.filter.done;
    expect(killed.signal).toBe("SIGKILL");
    // While it lived nobody else got them, though the others polled all along: receives is still 1.
    expect(heldAtKill.map((m) => m.receives)).toEqual(heldAtKill.map(() => 1));

    await waitUntil(
      "the queue drained",
      () => violations.length > 0 || sqs.remaining(queueUrl).length === 0,
      WAIT_MS,
      detail,
    );
    for (const host of hosts) await host.feeder?.stop();
    for (const host of survivors) host.filter.child.stdin.end();
    const runs = await Promise.all(survivors.map((h) => h.filter.done));

    // Every delete found all its message's events already read.
    expect(violations).toEqual([]);
    expect(sqs.remaining(queueUrl)).toEqual([]);

    // Every event at least once, and nothing else; no object failed.
    const missing = expected.filter((id) => !copies.has(id));
    expect(missing, "events never written").toEqual([]);
    expect(
      [...copies.keys()].filter((id) => !keyOfId.has(id)),
      "events not in the backfill",
    ).toEqual([]);
    expect([...deadLettered]).toEqual([]);

    // Each message deleted once, with the handle of its last receive.
    const deletedIds = sqs.deleted.map((handle) => ownerOf(handle)?.messageId);
    expect([...deletedIds].sort()).toEqual(messages.map((m) => m.messageId).sort());
    for (const handle of sqs.deleted) {
      const receipt = ownerOf(handle) as Receipt;
      const last = receipts.filter((r) => r.messageId === receipt.messageId).at(-1);
      expect(handle, `message ${receipt.messageId} deleted with an old handle`).toBe(last?.handle);
    }

    // The killed host's messages came back only after their (last extended) timeout ran out and after the kill, and
    // the others finished them.
    expect(heldAtKill.length).toBeGreaterThanOrEqual(1);
    for (const message of heldAtKill) {
      const again = receipts.filter((r) => r.messageId === message.messageId && r.receives > 1);
      expect(again.length, `message ${message.messageId} received again`).toBeGreaterThanOrEqual(1);
      const first = again[0] as Receipt;
      expect(first.at).toBeGreaterThanOrEqual(killedAt);
      expect(first.at).toBeGreaterThanOrEqual(Math.max(...extensions(message.handle)) + VISIBILITY * 1000);
      const deletedWith = sqs.deleted.find((handle) => ownerOf(handle)?.messageId === message.messageId);
      expect(ownerOf(deletedWith)?.host).not.toBe(DOOMED);
    }

    // The copies: the same eventID, byte-identical lines, and only for the objects of messages received again.
    const redelivered = new Set(deletions.filter((d) => d.receives > 1).map((d) => d.messageId));
    const duplicates = [...copies.entries()].filter(([, list]) => list.length > 1);
    expect(duplicates.length).toBeGreaterThanOrEqual(1);
    expect(redelivered.size).toBeGreaterThanOrEqual(heldAtKill.length);
    for (const [id, list] of duplicates) {
      expect(new Set(list.map((c) => c.line)).size, `copies of ${id} differ`).toBe(1);
      const key = keyOfId.get(id) as string;
      expect(redelivered.has(messageOfKey.get(key) as string), `${id} written twice, its message received once`).toBe(
        true,
      );
    }

    // The others exit 0 when their stdin closes, with no error logged and every delete they sent done.
    for (const run of runs) {
      expect(run.code).toBe(0);
      expect(run.log.filter((l) => l.level === "error")).toEqual([]);
      expect(run.log.find((l) => l.msg === "summary")).toMatchObject({ sqsDeleteFailures: 0 });
    }

    const linesOf = (h: Host) => [...h.ids.values()].reduce((a, b) => a + b, 0);
    console.log(
      JSON.stringify({
        messages: messages.length,
        objects: OBJECTS,
        events: expected.length,
        lines: Object.fromEntries(hosts.map((h) => [h.name, linesOf(h)])),
        deletedBy: Object.fromEntries(
          hosts.map((h) => [h.name, sqs.deleted.filter((handle) => ownerOf(handle)?.host === h.name).length]),
        ),
        heldAtKill: heldAtKill.length,
        redelivered: redelivered.size,
        duplicateEvents: duplicates.length,
        receives: receipts.length,
        seconds: (Date.now() - started) / 1000,
      }),
    );
  });
});
