// The single executable (scripts/build-exe.mjs): built once here, into a directory of its own, then run as fluentd runs
// it on a host without Node.js: an empty environment (no PATH, no HOME, no node_modules near it) plus what a test
// names. Its output must be the bin's, byte for byte; S3 through the SDK's credential chain, the S3 client the import
// command lists with, the SQS client, the scan workers (embedded), msgpack and the Forward client (bundled) all have to
// work from inside.
import { execFileSync, spawn } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BIN, deadLetters, events, parseOutput } from "../support/cli.js";
import { waitUntil } from "../support/fluentd.js";
import { forwardServer } from "../support/forward-server.js";
import { inSqsRecord } from "../support/messages.js";
import { type S3Test, s3Env, startS3 } from "../support/s3.js";
import { type SqsTest, startSqs } from "../support/sqs-server.js";
import { FIXTURE_NAMES, FIXTURES } from "../support/trail.js";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const [nameA, nameB] = FIXTURE_NAMES as [string, string];
const recordsIn = (name: string): number =>
  (JSON.parse(readFileSync(join(FIXTURES, name), "utf8")) as { Records: unknown[] }).Records.length;
const VERSION = (JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { version: string }).version;
const BUCKET = "exe-bucket";
const PREFIX = "AWSLogs/218007301253/CloudTrail/us-east-1/2023/07/10/";

/** The pinned Node.js the executable embeds (scripts/node-runtime.mjs). */
const { EXE_RUNTIME, RUNTIMES, nodeRuntime } = (await import(join(ROOT, "scripts/node-runtime.mjs"))) as {
  EXE_RUNTIME: number;
  RUNTIMES: Record<number, { version: string }>;
  nodeRuntime(major: number, options: { offline: boolean }): { node: string };
};
const EXE_NODE_VERSION = (RUNTIMES[EXE_RUNTIME] as { version: string }).version;

/** Why the executable cannot be built here, if it cannot: the test is then skipped, and says so. */
function cannotBuild(): string | undefined {
  if (process.platform !== "linux") return `the executable is built on Linux only (this is ${process.platform})`;
  try {
    createRequire(import.meta.url).resolve("postject");
  } catch {
    return "postject is not installed (npm ci installs it)";
  }
  try {
    // Tests make no request off this machine: the pinned Node.js must be installed already (.ci/run and
    // `npm run build:exe` install it).
    nodeRuntime(EXE_RUNTIME, { offline: true });
  } catch (error) {
    return `${(error as Error).message}: run \`node scripts/node-runtime.mjs ${EXE_RUNTIME}\` once`;
  }
  return undefined;
}

const skipReason = cannotBuild();
if (skipReason !== undefined) console.warn(`test/contract/exe.test.ts skipped: ${skipReason}`);

interface ExeRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: Buffer;
  stderr: string;
}

describe.skipIf(skipReason !== undefined)("the single executable", () => {
  let dir: string;
  let exe: string;
  let s3: S3Test;
  let sqs: SqsTest;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "ctef-exe-test-"));
    exe = join(dir, "cloudtrail-exec-filter");
    execFileSync(process.execPath, [join(ROOT, "scripts/build-exe.mjs"), "--out", dir, "--offline"], {
      stdio: "pipe",
    });
    [s3, sqs] = await Promise.all([startS3(), startSqs()]);
    await s3.createBucket(BUCKET);
    await s3.putObject(BUCKET, `${PREFIX}${nameA}.gz`, gzipSync(readFileSync(join(FIXTURES, nameA))), "gzip");
    await s3.putObject(BUCKET, `${PREFIX}${nameB}`, readFileSync(join(FIXTURES, nameB)));
  }, 180_000);

  afterAll(async () => {
    await Promise.all([s3?.close(), sqs?.close()]);
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  /** Starts the executable with exactly `env` as its environment, from its own directory. */
  function start(args: string[], env: Record<string, string> = {}) {
    const child = spawn(exe, ["--log-file", "/dev/null", ...args], { cwd: dir, env, stdio: "pipe" });
    const stdout: Buffer[] = [];
    let stderr = "";
    child.stdout.on("data", (chunk: Buffer) => stdout.push(chunk));
    child.stderr.on("data", (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    const done = new Promise<ExeRun>((resolve) => {
      child.on("close", (code, signal) => resolve({ code, signal, stdout: Buffer.concat(stdout), stderr }));
    });
    return { child, stdout, done };
  }

  function run(args: string[], input: string, env: Record<string, string> = {}): Promise<ExeRun> {
    const started = start(args, env);
    started.child.stdin.end(input);
    return started.done;
  }

  it("is one file of its own, and says its version with no environment at all", () => {
    expect(readdirSync(dir).sort()).toEqual(["THIRD-PARTY-LICENSES.txt", "cloudtrail-exec-filter"]);
    expect(statSync(exe).size).toBeGreaterThan(20 * 2 ** 20); // Node.js itself is in it
    expect(execFileSync(exe, ["--version"], { env: {}, encoding: "utf8" })).toBe(`${VERSION}\n`);
  });

  it("embeds the pinned Node.js LTS, whatever Node.js built it", () => {
    const bytes = readFileSync(exe);
    expect(bytes.includes(`v${EXE_NODE_VERSION}`)).toBe(true);
    if (process.version !== `v${EXE_NODE_VERSION}`) expect(bytes.includes(process.version)).toBe(false);
  });

  it("ships the licences of what it bundles beside it: every package, Node.js's own", () => {
    const text = readFileSync(join(dir, "THIRD-PARTY-LICENSES.txt"), "utf8");
    const packages = [...text.matchAll(/^(@?[a-z0-9-]+(?:\/[a-z0-9.-]+)?)@\d[^ ]* \(/gm)].map((m) => m[1]);
    for (const name of ["@aws-sdk/client-s3", "@aws-sdk/client-sqs", "@msgpack/msgpack", "commander", "undici"]) {
      expect(packages).toContain(name);
    }
    expect(text).toContain(`Node.js v${EXE_NODE_VERSION} (the executable is a copy of it)`);
    expect(text).toContain("Apache License");
    expect(text).toContain("Permission is hereby granted"); // MIT
  });

  it.each([
    ["json", []],
    ["msgpack", ["--output-format", "msgpack"]],
    ["json, scan workers", ["--scan-workers", "2"]],
  ])("writes what the bin writes for a file:// line (%s)", async (_, args) => {
    const input = `file://${join(FIXTURES, nameA)}\nfile://${join(FIXTURES, "no-such-file.json")}\n`;
    // Without padding, whose place depends on when bursts end.
    const fromExe = await run(["--pad-bytes", "0", ...args], input);
    const fromBin = execFileSync(BIN, ["--log-file", "/dev/null", "--pad-bytes", "0", ...args], { input });
    expect(fromExe.stderr).toBe("");
    expect(fromExe.code).toBe(0);
    expect(fromExe.stdout.equals(fromBin)).toBe(true);
    if (args[0] !== "--output-format") {
      expect(events(parseOutput(fromExe.stdout))).toHaveLength(recordsIn(nameA));
      expect(deadLetters(parseOutput(fromExe.stdout))).toHaveLength(1);
    }
  });

  it("reads S3 with credentials from the environment, dead-letters a missing object, deletes the SQS messages", async () => {
    const message = (handle: string, keys: string[]): string =>
      inSqsRecord(JSON.stringify({ s3Bucket: BUCKET, s3ObjectKey: keys }), handle, sqs.queueUrl);
    const input = [
      message("rh-both", [`${PREFIX}${nameA}.gz`, `${PREFIX}${nameB}`]),
      message("rh-missing", [`${PREFIX}missing.json.gz`]),
    ].join("\n");
    const env = { ...s3Env(s3.endpoint), AWS_ENDPOINT_URL_SQS: sqs.endpoint };
    const result = await run(["--delete-sqs-messages", "--scan-workers", "1"], `${input}\n`, env);
    expect(result.stderr).toBe("");
    expect(result.code).toBe(0);
    const out = parseOutput(result.stdout);
    expect(events(out)).toHaveLength(recordsIn(nameA) + recordsIn(nameB));
    expect(deadLetters(out)).toEqual([
      expect.objectContaining({ _tag: "cloudtrail.deadletter", error: expect.objectContaining({ code: "NotFound" }) }),
    ]);
    expect([...sqs.deleted].sort()).toEqual(["rh-both", "rh-missing"]);
  });

  it("imports from S3 (the SDK's S3 client lists)", async () => {
    const result = await run(["import", `s3://${BUCKET}`], "", s3Env(s3.endpoint));
    expect(result.code).toBe(0);
    expect(events(parseOutput(result.stdout))).toHaveLength(recordsIn(nameA) + recordsIn(nameB));
  });

  it("enqueues an import's listing on SQS (the bundled SQS client's SendMessageBatch)", async () => {
    const queue = sqs.addQueue("exe-backfill");
    const env = { ...s3Env(s3.endpoint), AWS_ENDPOINT_URL_SQS: sqs.endpoint };
    const result = await run(["import", `s3://${BUCKET}`, "--enqueue", queue], "", env);
    expect(result.code).toBe(0);
    const keys = sqs.remaining(queue).flatMap((m) => (JSON.parse(m.body) as { s3ObjectKey: string[] }).s3ObjectKey);
    expect(keys.sort()).toEqual([`${PREFIX}${nameA}.gz`, `${PREFIX}${nameB}`].sort());
  });

  it("exits 0 on SIGTERM while it waits for input", async () => {
    const started = start([], s3Env(s3.endpoint));
    started.child.stdin.write(`s3://${BUCKET}/${PREFIX}${nameB}\n`);
    await new Promise<void>((resolve) => started.child.stdout.once("data", () => resolve()));
    started.child.kill("SIGTERM");
    const result = await started.done;
    expect({ code: result.code, signal: result.signal }).toEqual({ code: 0, signal: null });
    expect(events(parseOutput(result.stdout))).toHaveLength(recordsIn(nameB));
  });

  it("runs the sqs command, delivering to a Forward server (the bundled Forward client and msgpack) and deleting after the ack", async () => {
    const server = await forwardServer();
    try {
      sqs.send(JSON.stringify({ s3Bucket: BUCKET, s3ObjectKey: [`${PREFIX}${nameA}.gz`] }));
      const started = start(
        [
          "sqs",
          "--queue-url",
          sqs.queueUrl,
          "--output",
          `forward://127.0.0.1:${server.port}`,
          "--wait-time",
          "1",
          "--request-timeout",
          "5",
        ],
        s3Env(s3.endpoint),
      );
      const entries = () => server.received.flatMap((m) => (m.tag === "cloudtrail.event" ? m.entries : []));
      await waitUntil("the events at the Forward server", () => entries().length >= recordsIn(nameA), 30_000);
      await waitUntil("the message deleted", () => sqs.remaining().length === 0, 30_000);
      started.child.kill("SIGTERM");
      const result = await started.done;
      expect({ code: result.code, stderr: result.stderr }).toEqual({ code: 0, stderr: "" });
      expect(entries()).toHaveLength(recordsIn(nameA));
      expect(entries()[0]?.[1]).toMatchObject({ eventID: expect.any(String), "@timestamp": expect.any(String) });
    } finally {
      await server.close();
    }
  });

  it("exits 2 on a usage error", async () => {
    const result = await run(["--concurrency", "0"], "");
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/--concurrency/);
  });
});
