#!/usr/bin/env node
// How fast `import --enqueue` puts a listing on SQS: the built Enqueuer (dist/enqueue.js) sends N listed files to a
// loopback SQS look-alike that answers SendMessageBatch after a fixed delay (SQS's own latency: about 10-30 ms in a
// region), for several --keys-per-message values. Prints objects/s, messages, calls, and the CPU per object of this
// process (the Enqueuer, the SDK and the look-alike together; the look-alike's share is small: it hashes and answers).
//
//   node bench/enqueue.mjs [--objects 20000] [--latency-ms 20] [--keys 1,10,100]
//
// The listing is not measured here (ListObjectsV2 returns 1,000 keys a call, about 50-150 ms each, so one listing
// stream gives 7,000-20,000 keys a second): what this shows is whether sending keeps up with it.
import { createHash } from "node:crypto";
import { createServer } from "node:http";
import { cpus, loadavg } from "node:os";
import { parseArgs } from "node:util";

// The SDK's notice about Node versions after January 2027 (README, "Node.js") would interleave with the figures.
process.removeAllListeners("warning");

const { values } = parseArgs({
  options: {
    objects: { type: "string", default: "20000" },
    "latency-ms": { type: "string", default: "20" },
    keys: { type: "string", default: "1,10,100" },
  },
});
const objects = Number(values.objects);
const latencyMs = Number(values["latency-ms"]);
const keysPerMessage = values.keys.split(",").map(Number);

const dist = new URL("../dist/", import.meta.url);
const { Enqueuer } = await import(new URL("enqueue.js", dist).href);
const { parseBucketName } = await import(new URL("names.js", dist).href);
const { emptyCounts } = await import(new URL("progress.js", dist).href);
const { RetryPolicy } = await import(new URL("retry.js", dist).href);
const { SQSClient } = await import("@aws-sdk/client-sqs");

/** SendMessageBatch and GetQueueAttributes over the JSON protocol, each answered `latencyMs` later. */
function startSqs() {
  const stats = { calls: 0, messages: 0 };
  const server = createServer((req, res) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => {
      const action = String(req.headers["x-amz-target"]).replace("AmazonSQS.", "");
      const input = JSON.parse(Buffer.concat(chunks).toString("utf8") || "{}");
      let output = {};
      if (action === "SendMessageBatch") {
        stats.calls++;
        stats.messages += input.Entries.length;
        output = {
          Successful: input.Entries.map((e, i) => ({
            Id: e.Id,
            MessageId: `m-${stats.calls}-${i}`,
            MD5OfMessageBody: createHash("md5").update(e.MessageBody).digest("hex"),
          })),
          Failed: [],
        };
      } else if (action === "GetQueueAttributes") {
        output = { Attributes: { MaximumMessageSize: "262144" } };
      }
      const text = JSON.stringify(output);
      setTimeout(() => {
        res.writeHead(200, { "content-type": "application/x-amz-json-1.0", "content-length": Buffer.byteLength(text) });
        res.end(text);
      }, latencyMs);
    });
  });
  return new Promise((resolve) =>
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      resolve({ endpoint: `http://127.0.0.1:${port}`, stats, close: () => new Promise((r) => server.close(r)) });
    }),
  );
}

const quiet = { debug() {}, info() {}, warn() {}, error() {} };
console.log(
  `enqueue: ${objects.toLocaleString("en-US")} objects, SQS answering after ${latencyMs} ms; ` +
    `${cpus().length} cores, load ${loadavg()[0].toFixed(1)}`,
);
for (const keys of keysPerMessage) {
  const sqs = await startSqs();
  const client = new SQSClient({
    endpoint: sqs.endpoint,
    region: "us-east-1",
    credentials: { accessKeyId: "x", secretAccessKey: "x" },
  });
  const enqueuer = new Enqueuer({
    queueUrl: `${sqs.endpoint}/111122223333/backfill`,
    bucket: parseBucketName("trail-bucket"),
    client: async () => client,
    retry: new RetryPolicy({ retryForMs: 60_000 }),
    log: quiet,
    counts: emptyCounts(),
    keysPerMessage: keys,
    senders: 4,
    signal: new AbortController().signal,
    onFailure() {},
  });
  await enqueuer.start();
  const cpu = process.cpuUsage();
  const started = performance.now();
  for (let i = 0; i < objects; i++) {
    const key =
      "AWSLogs/111122223333/CloudTrail/us-east-1/2024/01/01/" +
      `111122223333_CloudTrail_us-east-1_20240101T0000Z_${i.toString(36).padStart(16, "0")}.json.gz`;
    await enqueuer.add({ key, size: 2000, url: `s3://trail-bucket/${key}` });
  }
  const summary = await enqueuer.finish();
  const seconds = (performance.now() - started) / 1000;
  const used = process.cpuUsage(cpu);
  console.log(
    `  --keys-per-message ${String(keys).padStart(3)}: ${Math.round(objects / seconds).toLocaleString("en-US")} objects/s, ` +
      `${summary.messages.toLocaleString("en-US")} messages in ${summary.sendRequests.toLocaleString("en-US")} calls, ` +
      `${(((used.user + used.system) / objects) | 0).toLocaleString("en-US")} µs CPU per object`,
  );
  client.destroy();
  await sqs.close();
}
