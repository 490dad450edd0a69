// `verify` held to AWS's algorithm: digest chains signed as the CloudTrail documentation describes (test/support/
// cloudtrail.ts, written from the documentation), served from s3rver with their x-amz-meta-signature, public keys
// from a ListPublicKeys stand-in reached through AWS_ENDPOINT_URL_CLOUDTRAIL, the built CLI spawned. Every case checks
// the file it touched and that no untouched file is reported.
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { gunzipSync, gzipSync } from "node:zlib";
import { DeleteObjectCommand } from "@aws-sdk/client-s3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseDigest } from "../../src/integrity/digest.js";
import { parseSignature, publicKeyFromDer, signingString, verifySignature } from "../../src/integrity/signature.js";
import { type CliRun, parseOutput, runCli, startCli } from "../support/cli.js";
import {
  buildTrail,
  type PublicKeyServer,
  signDigest,
  signingKey,
  startPublicKeyServer,
  type Trail,
  type TrailObject,
  type TrailOptions,
} from "../support/cloudtrail.js";
import { prometheusUnavailable } from "../support/prometheus.js";
import { type S3Test, s3Env, startS3 } from "../support/s3.js";

const START = new Date("2024-03-10T10:00:00Z");
const published = signingKey(new Date("2024-01-01T00:00:00Z"), new Date("2025-01-01T00:00:00Z"));
/** Published, but its validity ends half an hour into the first digest's window. */
const expired = signingKey(new Date("2024-01-01T00:00:00Z"), new Date("2024-03-10T10:30:00Z"));
/** Never published. */
const unpublished = signingKey(new Date("2024-01-01T00:00:00Z"), new Date("2025-01-01T00:00:00Z"));

let s3: S3Test;
let keys: PublicKeyServer;
let buckets = 0;

beforeAll(async () => {
  s3 = await startS3();
  keys = await startPublicKeyServer(() => [published, expired]);
});

afterAll(async () => {
  await s3?.close();
  await keys?.close();
});

function put(bucket: string, object: TrailObject): Promise<void> {
  return s3.putObject(bucket, object.key, object.body, undefined, object.metadata);
}

async function newBucket(): Promise<string> {
  const bucket = `verify-${++buckets}`;
  await s3.createBucket(bucket);
  return bucket;
}

function trailOptions(bucket: string, extra: Partial<TrailOptions> = {}): TrailOptions {
  return {
    bucket,
    account: "111122223333",
    region: "us-east-1",
    trail: "management_events",
    start: START,
    hours: 3,
    filesPerHour: 3,
    key: published,
    ...extra,
  };
}

async function store(bucket: string, trail: Trail): Promise<void> {
  for (const object of trail.objects) await put(bucket, object);
}

type Line = Record<string, unknown> & {
  kind: string;
  s3Object: string;
  status: string;
  reason?: string;
  file?: string;
};

async function verify(bucket: string, ...args: string[]): Promise<{ run: CliRun; lines: Line[] }> {
  const run = await runCli(["verify", `s3://${bucket}`, "--concurrency", "4", ...args], "", {
    ...s3Env(s3.endpoint),
    AWS_ENDPOINT_URL_CLOUDTRAIL: keys.endpoint,
  });
  return { run, lines: parseOutput(run.stdout) as Line[] };
}

const byKey = (lines: Line[]): Map<string, Line> => new Map(lines.map((line) => [line.s3Object, line]));

/** Every line is valid except those named; returns the named ones. */
function onlyProblems(lines: Line[], expected: readonly string[]): Map<string, Line> {
  const problems = new Map(lines.filter((line) => line.status !== "valid").map((line) => [line.s3Object, line]));
  expect([...problems.keys()].sort()).toEqual([...expected].sort());
  return problems;
}

const summaryOf = (run: CliRun) => run.log.find((line) => line.msg === "summary") as Record<string, unknown>;

describe("verify: an untouched trail", () => {
  it("every digest and every log file is valid, once; exit 0; every line carries its tag, account, region, window", async () => {
    const bucket = await newBucket();
    const trail = buildTrail(trailOptions(bucket));
    await store(bucket, trail);
    const { run, lines } = await verify(bucket);
    expect(run.stderr).toBe("");
    expect(run.code).toBe(0);
    expect(lines.map((line) => line.s3Object).sort()).toEqual([...trail.digestKeys, ...trail.logKeys].sort());
    for (const line of lines) {
      expect(line).toMatchObject({
        _tag: "cloudtrail.integrity",
        s3Bucket: bucket,
        status: "valid",
        account: "111122223333",
        region: "us-east-1",
      });
      expect(line.digestStartTime).toMatch(/^2024-03-10T1\dZ?/);
      expect(line.reason).toBeUndefined();
    }
    expect(summaryOf(run)).toMatchObject({
      digests: { valid: 3, invalid: 0, missing: 0, unlisted: 0 },
      logFiles: { valid: 9, invalid: 0, missing: 0, unlisted: 0 },
      problems: false,
    });
    expect(lines.filter((line) => line.kind === "digest")).toHaveLength(3);
  });

  it("--problems-only writes nothing for it", async () => {
    const bucket = await newBucket();
    await store(bucket, buildTrail(trailOptions(bucket)));
    const { run, lines } = await verify(bucket, "--problems-only");
    expect(run.code).toBe(0);
    expect(lines).toEqual([]);
  });
});

describe("verify --checkpoint", () => {
  it("a second run skips the log files found valid and checks the digests again", async () => {
    const bucket = await newBucket();
    const trail = buildTrail(trailOptions(bucket, { hours: 2, filesPerHour: 2 }));
    await store(bucket, trail);
    const dir = mkdtempSync(join(tmpdir(), "ctef-verify-"));
    const checkpoint = join(dir, "verify.checkpoint");
    try {
      const first = await verify(bucket, "--checkpoint", checkpoint);
      expect(first.run.code).toBe(0);
      expect(readFileSync(checkpoint, "utf8").trim().split("\n").sort()).toEqual(
        trail.logKeys.map((key) => `s3://${bucket}/${key}`).sort(),
      );
      const second = await verify(bucket, "--checkpoint", checkpoint);
      expect(second.run.code).toBe(0);
      expect(second.lines.map((line) => line.kind)).toEqual(["digest", "digest"]);
      expect(summaryOf(second.run)).toMatchObject({ alreadyDone: 4 });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("verify: tampering is found, and nothing else is reported", () => {
  it("one byte changed in a log file: hash mismatch", async () => {
    const bucket = await newBucket();
    const trail = buildTrail(trailOptions(bucket));
    const target = trail.objects.find((o) => o.key === trail.logKeys[4]) as TrailObject;
    await store(bucket, trail);
    const plain = gunzipSync(target.body);
    plain[plain.indexOf("GetObject")] = "P".charCodeAt(0); // GetObject → PetObject
    await put(bucket, { key: target.key, body: gzipSync(plain) });
    const { run, lines } = await verify(bucket);
    expect(run.code).toBe(3);
    const problems = onlyProblems(lines, [target.key]);
    expect(problems.get(target.key)).toMatchObject({ kind: "logFile", status: "invalid", reason: "hash mismatch" });
  });

  it("a log file deleted: missing", async () => {
    const bucket = await newBucket();
    const trail = buildTrail(trailOptions(bucket));
    await store(bucket, trail);
    const gone = trail.logKeys[2] as string;
    await s3.client.send(new DeleteObjectCommand({ Bucket: bucket, Key: gone }));
    const { run, lines } = await verify(bucket);
    expect(run.code).toBe(3);
    expect(onlyProblems(lines, [gone]).get(gone)).toMatchObject({ status: "missing", reason: "not found" });
  });

  it("a log file added that no digest lists: unlisted", async () => {
    const bucket = await newBucket();
    const trail = buildTrail(trailOptions(bucket));
    await store(bucket, trail);
    const planted =
      "AWSLogs/111122223333/CloudTrail/us-east-1/2024/03/10/111122223333_CloudTrail_us-east-1_20240310T1033Z_planted0000000000.json.gz";
    await put(bucket, { key: planted, body: gzipSync('{"Records":[]}') });
    const { run, lines } = await verify(bucket);
    expect(run.code).toBe(3);
    expect(onlyProblems(lines, [planted]).get(planted)).toMatchObject({
      kind: "logFile",
      status: "unlisted",
      reason: "not listed",
    });
  });

  it("a digest edited after signing: bad signature, and its log files are not vouched for", async () => {
    const bucket = await newBucket();
    const trail = buildTrail(trailOptions(bucket));
    await store(bucket, trail);
    const digest = trail.objects.find((o) => o.key === trail.digestKeys[1]) as TrailObject;
    const fields = JSON.parse(gunzipSync(digest.body).toString("utf8"));
    const dropped = fields.logFiles.map((f: { s3Object: string }) => f.s3Object) as string[];
    fields.newestEventTime = "2024-03-10T11:59:00Z"; // any edit: the signature covers the whole content
    await put(bucket, {
      key: digest.key,
      body: gzipSync(JSON.stringify(fields)),
      ...(digest.metadata ? { metadata: digest.metadata } : {}),
    });
    const { run, lines } = await verify(bucket);
    expect(run.code).toBe(3);
    const problems = onlyProblems(lines, [digest.key, ...dropped]);
    expect(problems.get(digest.key)).toMatchObject({ kind: "digest", status: "invalid", reason: "bad signature" });
    for (const key of dropped) {
      expect(problems.get(key)).toMatchObject({ kind: "logFile", status: "invalid", reason: "not vouched for" });
    }
  });

  it("a digest deleted from the middle of a chain: missing; its log files unlisted; its neighbours valid", async () => {
    const bucket = await newBucket();
    const trail = buildTrail(trailOptions(bucket));
    await store(bucket, trail);
    const middle = trail.objects.find((o) => o.key === trail.digestKeys[1]) as TrailObject;
    const orphans = JSON.parse(gunzipSync(middle.body).toString("utf8")).logFiles.map(
      (f: { s3Object: string }) => f.s3Object,
    ) as string[];
    await s3.client.send(new DeleteObjectCommand({ Bucket: bucket, Key: middle.key }));
    const { run, lines } = await verify(bucket);
    expect(run.code).toBe(3);
    const problems = onlyProblems(lines, [middle.key, ...orphans]);
    expect(problems.get(middle.key)).toMatchObject({ kind: "digest", status: "missing", reason: "not found" });
    for (const key of orphans) expect(problems.get(key)).toMatchObject({ status: "unlisted" });
    const all = byKey(lines);
    expect(all.get(trail.digestKeys[0] as string)?.status).toBe("valid");
    expect(all.get(trail.digestKeys[2] as string)?.status).toBe("valid");
  });

  it("a signature from a key CloudTrail did not publish: unknown key", async () => {
    const bucket = await newBucket();
    const trail = buildTrail(trailOptions(bucket, { key: unpublished, hours: 2, filesPerHour: 1 }));
    await store(bucket, trail);
    const { run, lines } = await verify(bucket);
    expect(run.code).toBe(3);
    const all = byKey(lines);
    for (const key of trail.digestKeys)
      expect(all.get(key)).toMatchObject({ status: "invalid", reason: "unknown key" });
    for (const key of trail.logKeys)
      expect(all.get(key)).toMatchObject({ status: "invalid", reason: "not vouched for" });
    expect(all.size).toBe(trail.digestKeys.length + trail.logKeys.length);
  });

  it("a key outside its validity window: unknown key (not valid at the digest's time)", async () => {
    const bucket = await newBucket();
    const trail = buildTrail(trailOptions(bucket, { key: expired, hours: 1, filesPerHour: 1 }));
    await store(bucket, trail);
    const { run, lines } = await verify(bucket);
    expect(run.code).toBe(3);
    expect(byKey(lines).get(trail.digestKeys[0] as string)).toMatchObject({
      status: "invalid",
      reason: "unknown key",
      detail: expect.stringMatching(/not valid/),
    });
  });
});

describe("verify: a run that cannot judge", () => {
  it("ListPublicKeys unreachable: exit 1 with the reason, no verdict on the digests", async () => {
    const bucket = await newBucket();
    await store(bucket, buildTrail(trailOptions(bucket, { hours: 1, filesPerHour: 1 })));
    const closed = await startPublicKeyServer(() => []);
    await closed.close(); // a port nobody listens on
    const run = await runCli(["verify", `s3://${bucket}`], "", {
      ...s3Env(s3.endpoint),
      AWS_ENDPOINT_URL_CLOUDTRAIL: closed.endpoint,
    });
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/^error: ListPublicKeys failed in us-east-1/);
    expect(parseOutput(run.stdout).filter((line) => line.kind === "digest")).toEqual([]);
  });
});

describe("verify: the shapes trails come in, all valid", () => {
  const allValid = async (bucket: string, trails: Trail[], ...args: string[]): Promise<Line[]> => {
    const { run, lines } = await verify(bucket, ...args);
    expect(run.stderr).toBe("");
    expect(lines.filter((line) => line.status !== "valid")).toEqual([]);
    const expected = trails.flatMap((t) => [...t.digestKeys, ...t.logKeys]);
    expect(lines.map((line) => line.s3Object).sort()).toEqual(expected.sort());
    expect(run.code).toBe(0);
    return lines;
  };

  it("backfill digests: the late log file is vouched for by the _backfill digest", async () => {
    const bucket = await newBucket();
    const trail = buildTrail(trailOptions(bucket, { backfillHour: 1 }));
    await store(bucket, trail);
    const lines = await allValid(bucket, [trail]);
    const backfill = lines.find((line) => line.kind === "digest" && line.backfill === true);
    expect(backfill?.s3Object).toMatch(/_backfill\.json\.gz$/);
    expect(lines.filter((line) => line.digestS3Object === backfill?.s3Object)).toHaveLength(1);
  });

  it("an organization trail (AWSLogs/o-ID/ACCOUNT/…) under a custom prefix", async () => {
    const bucket = await newBucket();
    const trail = buildTrail(trailOptions(bucket, { org: "o-a1b2c3d4e5", prefix: "org-trail/" }));
    await store(bucket, trail);
    await allValid(bucket, [trail]);
  });

  it("several regions and accounts in one bucket; --accounts and --regions narrow it", async () => {
    const bucket = await newBucket();
    const trails = [
      buildTrail(trailOptions(bucket, { account: "111111111111", region: "us-east-1", hours: 2, filesPerHour: 2 })),
      buildTrail(
        trailOptions(bucket, {
          account: "111111111111",
          region: "eu-west-1",
          homeRegion: "us-east-1",
          hours: 2,
          filesPerHour: 2,
        }),
      ),
      buildTrail(
        trailOptions(bucket, { account: "222222222222", region: "ap-southeast-2", hours: 2, filesPerHour: 2 }),
      ),
    ];
    for (const trail of trails) await store(bucket, trail);
    await allValid(bucket, trails);
    await allValid(bucket, [trails[1] as Trail], "--accounts", "111111111111", "--regions", "eu-west-1");
  });

  it("plain-JSON objects (not gzipped, as some copies store them)", async () => {
    const bucket = await newBucket();
    const trail = buildTrail(trailOptions(bucket, { plain: true }));
    await store(bucket, trail);
    await allValid(bucket, [trail]);
  });

  it("--since/--until: the range's files, and the digest filed the next day", async () => {
    const bucket = await newBucket();
    // 22:00 to 01:00: the last digest ends on the 11th.
    const trail = buildTrail(trailOptions(bucket, { start: new Date("2024-03-10T22:00:00Z") }));
    await store(bucket, trail);
    const lines = await allValid(bucket, [trail], "--since", "2024-03-10", "--until", "2024-03-10");
    expect(lines.filter((line) => line.kind === "digest")).toHaveLength(3);
  });
});

describe("verify file:///directory: a copy, with each digest's signature in KEY.signature", () => {
  /** Writes the trail below `dir` as `aws s3 sync s3://BUCKET/PREFIX dir` would, plus the signature files. */
  function copy(trail: Trail, dir: string, prefix: string, signatures = true): void {
    for (const object of trail.objects) {
      const path = join(dir, object.key.slice(prefix.length));
      mkdirSync(dirname(path), { recursive: true });
      writeFileSync(path, object.body);
      if (signatures && object.metadata?.signature !== undefined)
        writeFileSync(`${path}.signature`, `${object.metadata.signature}\n`);
    }
  }

  async function verifyDir(dir: string): Promise<{ run: CliRun; lines: Line[] }> {
    const run = await runCli(["verify", `file://${dir}`, "--concurrency", "4"], "", {
      ...s3Env(s3.endpoint),
      AWS_ENDPOINT_URL_CLOUDTRAIL: keys.endpoint,
    });
    return { run, lines: parseOutput(run.stdout) as Line[] };
  }

  it("a copy of a trail under a custom prefix: all valid, each line with its S3 name and its file", async () => {
    const dir = mkdtempSync(join(tmpdir(), "ctef-verify-copy-"));
    try {
      const trail = buildTrail(trailOptions("original-bucket", { prefix: "trail-prefix/" }));
      copy(trail, dir, "trail-prefix/");
      const { run, lines } = await verifyDir(dir);
      expect(run.stderr).toBe("");
      expect(run.code).toBe(0);
      expect(lines.map((line) => line.s3Object).sort()).toEqual([...trail.digestKeys, ...trail.logKeys].sort());
      for (const line of lines) {
        expect(line).toMatchObject({ status: "valid", s3Bucket: "original-bucket" });
        expect(line.file).toBe(join(dir, line.s3Object.slice("trail-prefix/".length)));
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("a changed log file and a digest without its signature file are found; nothing else", async () => {
    const dir = mkdtempSync(join(tmpdir(), "ctef-verify-copy-"));
    try {
      const trail = buildTrail(trailOptions("original-bucket"));
      copy(trail, dir, "");
      const changed = trail.logKeys[1] as string;
      const plain = gunzipSync(readFileSync(join(dir, changed)));
      plain[plain.indexOf("GetObject")] = "P".charCodeAt(0);
      writeFileSync(join(dir, changed), gzipSync(plain));
      const unsigned = trail.digestKeys[2] as string;
      rmSync(join(dir, `${unsigned}.signature`));
      const listedByUnsigned = JSON.parse(gunzipSync(readFileSync(join(dir, unsigned))).toString("utf8")).logFiles.map(
        (f: { s3Object: string }) => f.s3Object,
      ) as string[];
      const { run, lines } = await verifyDir(dir);
      expect(run.code).toBe(3);
      const problems = onlyProblems(lines, [changed, unsigned, ...listedByUnsigned]);
      expect(problems.get(changed)).toMatchObject({ reason: "hash mismatch" });
      expect(problems.get(unsigned)).toMatchObject({ reason: "bad signature" });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("--metrics-listen: the integrity counters equal the summary's counts, while /readyz says ready", async () => {
    const dir = mkdtempSync(join(tmpdir(), "ctef-verify-metrics-"));
    try {
      // Output (about 400 KB) more than a socket pair holds (about 200 KB here) and less than the sink's high-water
      // mark (1 MiB): with stdout unread, every verdict is reached, then the run waits in sink.end() and is scraped.
      const trail = buildTrail(trailOptions("original-bucket", { hours: 24, filesPerHour: 25 }));
      copy(trail, dir, "");
      const changed = trail.logKeys[7] as string;
      const plain = gunzipSync(readFileSync(join(dir, changed)));
      plain[plain.indexOf("GetObject")] = "P".charCodeAt(0);
      writeFileSync(join(dir, changed), gzipSync(plain));
      const total = trail.digestKeys.length + trail.logKeys.length;
      const spawned = startCli(["verify", `file://${dir}`, "--concurrency", "4", "--metrics-listen", "127.0.0.1:0"], {
        ...s3Env(s3.endpoint),
        AWS_ENDPOINT_URL_CLOUDTRAIL: keys.endpoint,
      });
      spawned.child.stdout.pause();
      let port: number | undefined;
      const deadline = Date.now() + 20_000;
      const P = "cloudtrail_exec_filter_integrity_files_total";
      const samples = (text: string): Map<string, number> =>
        new Map(
          text
            .split("\n")
            .filter((line) => line.startsWith(P))
            .map((line) => [
              line.slice(P.length, line.lastIndexOf(" ")),
              Number(line.slice(line.lastIndexOf(" ") + 1)),
            ]),
        );
      let text = "";
      for (;;) {
        if (Date.now() > deadline) throw new Error(`timed out; last exposition:\n${text}`);
        port ??= spawned.log().find((line) => line.msg === "metrics listening")?.port as number | undefined;
        if (port !== undefined) {
          text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
          if ([...samples(text).values()].reduce((sum, n) => sum + n, 0) === total) break;
        }
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      const ready = await fetch(`http://127.0.0.1:${port}/readyz`);
      expect([ready.status, await ready.json()]).toEqual([200, { ready: true, reasons: [] }]);
      spawned.child.stdout.resume();
      const run = await spawned.done;
      expect(run.code).toBe(3);
      expect(run.stdout.length).toBeGreaterThan(300_000); // the premise above
      const summary = summaryOf(run) as { digests: Record<string, number>; logFiles: Record<string, number> };
      expect(summary.logFiles).toEqual({ valid: trail.logKeys.length - 1, invalid: 1, missing: 0, unlisted: 0 });
      const scraped = samples(text);
      for (const [kind, counts] of [
        ["digest", summary.digests],
        ["logFile", summary.logFiles],
      ] as const) {
        for (const [status, n] of Object.entries(counts)) {
          expect([kind, status, scraped.get(`{kind="${kind}",status="${status}"}`)]).toEqual([kind, status, n]);
        }
      }
      expect(scraped.size).toBe(8);
      expect(text).toContain('cloudtrail_exec_filter_build_info{version="0.1.0",command="verify"} 1');
      expect(text).toContain("cloudtrail_exec_filter_process_cpu_seconds_total");
      // Nothing of the filter's parts, which verify does not have.
      expect(text).not.toMatch(/^cloudtrail_exec_filter_(events_total|dead_letters_total|objects_total|s3_get)/m);
      if (prometheusUnavailable() === undefined) {
        const check = spawnSync("promtool", ["check", "metrics"], { input: text, encoding: "utf8" });
        expect([check.status, check.stdout, check.stderr]).toEqual([0, "", ""]);
      } else console.warn(`promtool check metrics skipped: ${prometheusUnavailable()}`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("--metrics-listen with an address it cannot use is a usage error (exit 2), as for the other commands", async () => {
    for (const address of ["nowhere:99999", "203.0.113.9:0"]) {
      const run = await runCli(["verify", "file:///nonexistent", "--metrics-listen", address], "");
      expect([address, run.code]).toEqual([address, 2]);
      expect(run.stderr).toContain("--metrics-listen");
    }
  });
});

describe("the data-signing string and the signature (src/integrity against the documented algorithm)", () => {
  it("verifies what the documentation's signing produces, and nothing else", () => {
    const fields = {
      awsAccountId: "111122223333",
      digestStartTime: "2015-08-17T14:01:31Z",
      digestEndTime: "2015-08-17T15:01:31Z",
      digestS3Bucket: "amzn-s3-demo-bucket",
      digestS3Object:
        "AWSLogs/111122223333/CloudTrail-Digest/us-east-2/2015/08/17/111122223333_CloudTrail-Digest_us-east-2_your-trail-name_us-east-2_20150817T150131Z.json.gz",
      digestPublicKeyFingerprint: published.fingerprint,
      digestSignatureAlgorithm: "SHA256withRSA",
      previousDigestS3Bucket: null,
      previousDigestS3Object: null,
      previousDigestHashValue: null,
      previousDigestHashAlgorithm: null,
      previousDigestSignature: null,
      logFiles: [],
    };
    const json = Buffer.from(JSON.stringify(fields));
    const signature = signDigest(json, fields, published.privateKey);
    const digest = parseDigest(json.toString("utf8"));
    if ("reason" in digest) throw new Error(digest.reason);
    const hash = createHash("sha256").update(json).digest("hex");
    const key = publicKeyFromDer(published.der);
    expect(signingString(digest, hash)).toBe(
      `2015-08-17T15:01:31Z\namzn-s3-demo-bucket/${fields.digestS3Object}\n${hash}\nnull`,
    );
    expect(verifySignature(signingString(digest, hash), parseSignature(signature) as string, key)).toBe(true);
    // Another first digit (a hash that already starts with 0 made this pass one run in 16).
    const other = hash.replace(/^./, (c) => (c === "0" ? "1" : "0"));
    expect(verifySignature(signingString(digest, other), signature, key)).toBe(false);
    expect(verifySignature(signingString(digest, hash), signature, publicKeyFromDer(unpublished.der))).toBe(false);
    expect(verifySignature(signingString(digest, hash), "00", key)).toBe(false);
  });

  it.each([
    ["not JSON", "{", /not JSON/],
    ["an array", "[]", /not a JSON object/],
    ["no end time", JSON.stringify({ awsAccountId: "1" }), /digestStartTime/],
    [
      "a log file with another algorithm",
      JSON.stringify({
        awsAccountId: "1",
        digestStartTime: "2024-01-01T00:00:00Z",
        digestEndTime: "2024-01-01T01:00:00Z",
        digestS3Bucket: "b",
        digestS3Object: "k",
        digestPublicKeyFingerprint: "ab",
        digestSignatureAlgorithm: "SHA256withRSA",
        logFiles: [{ s3Bucket: "bucket", s3Object: "k", hashValue: "00", hashAlgorithm: "MD5" }],
      }),
      /hashAlgorithm/,
    ],
  ])("a malformed digest (%s) is refused with a reason", (_, text, reason) => {
    const parsed = parseDigest(text);
    expect("reason" in parsed && parsed.reason).toMatch(reason);
  });
});
