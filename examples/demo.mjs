// `npm run demo`: the whole filter against a local S3-compatible server, no AWS account needed.
// Starts s3rver on loopback, uploads the example CloudTrail files (gzipped, under CloudTrail's key layout), pipes
// examples/input.jsonl (every notification shape, plus a digest, a missing object and a bad line) through the built
// filter, and prints what comes out: events, dead-letter records, and the filter's own log lines.
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { CreateBucketCommand, PutObjectCommand, S3Client } from "@aws-sdk/client-s3";
import ndjson from "ndjson";
import S3rver from "s3rver";

const here = new URL(".", import.meta.url).pathname;
const full = process.argv.includes("--full");
const width = process.stdout.columns ?? 160;
process.removeAllListeners("warning"); // the SDK's Node version notice is not part of the demo

const dir = mkdtempSync(join(tmpdir(), "cloudtrail-demo-"));
const server = new S3rver({ port: 0, address: "127.0.0.1", silent: true, directory: dir });
const { port } = await server.run();
const endpoint = `http://127.0.0.1:${port}`;
const credentials = { accessKeyId: "S3RVER", secretAccessKey: "S3RVER" };

try {
  const manifest = JSON.parse(readFileSync(join(here, "cloudtrail/objects.json"), "utf8"));
  const s3 = new S3Client({
    region: "us-east-1",
    endpoint,
    forcePathStyle: true,
    credentials,
    requestChecksumCalculation: "WHEN_REQUIRED",
  });
  await s3.send(new CreateBucketCommand({ Bucket: manifest.bucket }));
  for (const [key, file] of Object.entries(manifest.objects)) {
    const body = gzipSync(readFileSync(join(here, "cloudtrail", file)));
    await s3.send(new PutObjectCommand({ Bucket: manifest.bucket, Key: key, Body: body, ContentEncoding: "gzip" }));
  }
  s3.destroy();
  console.log(
    `# s3rver on ${endpoint} holds ${Object.keys(manifest.objects).length} CloudTrail files in ${manifest.bucket}`,
  );
  console.log("# feeding examples/input.jsonl to bin/cloudtrail-exec-filter (npm run demo -- --full for raw lines)\n");

  const child = spawn(join(here, "../bin/cloudtrail-exec-filter"), ["--pad-bytes", "0"], {
    stdio: ["pipe", "pipe", "pipe"],
    env: {
      ...process.env,
      AWS_ACCESS_KEY_ID: credentials.accessKeyId,
      AWS_SECRET_ACCESS_KEY: credentials.secretAccessKey,
      AWS_REGION: "us-east-1",
      AWS_ENDPOINT_URL_S3: endpoint,
      AWS_EC2_METADATA_DISABLED: "true",
    },
  });
  // Events as a table (eventTime, source, name, caller); --full prints the raw lines instead.
  let log = "";
  child.stderr.on("data", (chunk) => {
    log += chunk;
  });
  let events = 0;
  let deadLetters = 0;
  if (full) child.stdout.pipe(process.stdout);
  const parsed = child.stdout.pipe(ndjson.parse({ strict: true }));
  parsed.on("data", (record) => {
    if (record._tag === undefined) {
      events++;
      if (!full) {
        const who = record.userIdentity?.arn ?? record.userIdentity?.type ?? "";
        console.log(`${record.eventTime}  ${record.eventSource.padEnd(28)} ${record.eventName.padEnd(34)} ${who}`);
      }
    } else {
      deadLetters++;
      if (!full) console.log(`dead letter ${record.error.code}: ${record.error.message}`.slice(0, width));
    }
  });
  const parsedAll = new Promise((resolve) => parsed.on("end", resolve));
  const exited = new Promise((resolve) => child.on("close", resolve));
  child.stdin.end(readFileSync(join(here, "input.jsonl")));
  const [code] = await Promise.all([exited, parsedAll]);
  console.log(`\n# ${events} events and ${deadLetters} dead-letter records on stdout; exit code ${code}`);
  console.log("# the filter's log (stderr here; --log-file under fluentd):");
  for (const line of log.split("\n")) if (line.trim() !== "") console.log(line);
} finally {
  await server.close();
  rmSync(dir, { recursive: true, force: true });
}
