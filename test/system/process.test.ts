// The CLI as a process: usage errors, signals, a closed stdout, and a large object under a small heap.
import { spawn } from "node:child_process";
import { createWriteStream, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createGzip } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BIN, parseOutput, runCli, startCli } from "../support/cli.js";
import { FIXTURES } from "../support/trail.js";

/** The events of every fixture file, as their original bytes. */
function fixtureEvents(): Buffer[] {
  const out: Buffer[] = [];
  for (const name of readdirSync(FIXTURES).filter((n) => n.endsWith(".json"))) {
    for (const record of (JSON.parse(readFileSync(join(FIXTURES, name), "utf8")) as { Records: unknown[] }).Records) {
      out.push(Buffer.from(JSON.stringify(record)));
    }
  }
  return out;
}

/** Writes a gzipped CloudTrail file of about `bytes` of JSON, streaming; returns its event count. */
async function writeBigObject(path: string, bytes: number): Promise<number> {
  const pool = fixtureEvents();
  const gzip = createGzip({ level: 1 });
  const done = new Promise<void>((resolve, reject) => {
    const file = createWriteStream(path);
    gzip.pipe(file);
    file.on("finish", resolve);
    file.on("error", reject);
  });
  const write = async (chunk: Buffer | string) => {
    if (!gzip.write(chunk)) await new Promise((resolve) => gzip.once("drain", resolve));
  };
  await write('{"Records":[');
  let written = 0;
  let count = 0;
  let batch: Buffer[] = [];
  while (written < bytes) {
    const event = pool[count % pool.length] as Buffer;
    batch.push(count === 0 ? event : Buffer.concat([Buffer.from(","), event]));
    written += event.length + 1;
    count++;
    if (batch.length === 256) {
      await write(Buffer.concat(batch));
      batch = [];
    }
  }
  await write(Buffer.concat(batch));
  gzip.end("]}");
  await done;
  return count;
}

let dir: string;
let bigPath: string;
let bigCount: number;
const BIG_BYTES = 320 * 1024 * 1024;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "ctef-process-"));
  bigPath = join(dir, "big.json.gz");
  bigCount = await writeBigObject(bigPath, BIG_BYTES);
}, 120_000);

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe("the CLI as a process", () => {
  it.each([
    [["--concurrency", "0"]],
    [["--concurrency", "many"]],
    [["--pad-bytes", "-1"]],
    [["--log-level", "loud"]],
    [["--no-such-option"]],
  ])("exits non-zero on bad usage %j, before reading input, with nothing on stdout", async (args) => {
    const run = await runCli(args, "s3://bucket/key\n");
    expect(run.code).not.toBe(0);
    expect(run.stdout.length).toBe(0);
    expect(run.stderr).toMatch(/error/i);
  });

  it("prints --help and --version", async () => {
    const help = await runCli(["--help"], "");
    expect(help.code).toBe(0);
    for (const option of ["--region", "--endpoint", "--concurrency", "--deadletter-tag", "--log-file", "--pad-bytes"]) {
      expect(help.stdout.toString()).toContain(option);
    }
    expect(help.stdout.toString()).toMatch(/fluentd v1\.8\+ discards/);
    const version = await runCli(["--version"], "");
    expect(version.stdout.toString().trim()).toMatch(/^\d+\.\d+\.\d+/);
  });

  it("exits 0 at the end of empty input", async () => {
    const run = await runCli([], "");
    expect(run.code).toBe(0);
    expect(run.stdout.length).toBe(0);
  });

  it("streams a 320 MB object under a 64 MB heap with bounded RSS", async () => {
    const child = spawn(BIN, ["--pad-bytes", "0", "--log-file", join(dir, "big.log")], {
      stdio: ["pipe", "pipe", "pipe"],
      env: { ...process.env, NODE_OPTIONS: "--max-old-space-size=64" },
    });
    let lines = 0;
    let tail = "";
    child.stdout.on("data", (chunk: Buffer) => {
      for (let i = chunk.indexOf(10); i !== -1; i = chunk.indexOf(10, i + 1)) lines++;
      tail = chunk.subarray(Math.max(0, chunk.length - 200)).toString();
    });
    child.stdin.end(`file://${bigPath}\n`);
    const code = await new Promise((resolve) => child.on("close", resolve));
    expect(code).toBe(0);
    expect(lines).toBe(bigCount);
    expect(tail.endsWith("}\n")).toBe(true);
    const log = readFileSync(join(dir, "big.log"), "utf8")
      .split("\n")
      .filter(Boolean)
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    const summary = log.find((l) => l.msg === "summary");
    expect(summary).toMatchObject({ events: bigCount, deadLetters: 0 });
    expect(summary?.maxRssMB as number).toBeLessThan(256);
  }, 120_000);

  it("on SIGTERM mid-object exits 0 within the shutdown timeout and writes no partial line", async () => {
    const spawned = startCli(["--shutdown-timeout", "0.2"]);
    spawned.child.stdin.write(`file://${bigPath}\n`); // stdin stays open, as with fluentd v0.12
    await new Promise<void>((resolve) => {
      const check = () => (spawned.stdout.length > 2 ? resolve() : setTimeout(check, 20));
      check();
    });
    const sent = Date.now();
    spawned.child.kill("SIGTERM");
    const run = await spawned.done;
    expect(run.code).toBe(0);
    expect(Date.now() - sent).toBeLessThan(8000);
    const records = parseOutput(run.stdout);
    expect(records.length).toBeGreaterThan(0);
    expect(records.length).toBeLessThan(bigCount);
    expect(run.log.some((l) => l.msg === "abandoned")).toBe(true);
    expect(run.log.some((l) => l.msg === "summary")).toBe(true);
  }, 60_000);

  it("on SIGINT after stdin is closed behaves the same", async () => {
    const spawned = startCli(["--shutdown-timeout", "0.5"]);
    spawned.child.stdin.end(`file://${bigPath}\n`);
    await new Promise<void>((resolve) => {
      const check = () => (spawned.stdout.length > 2 ? resolve() : setTimeout(check, 20));
      check();
    });
    spawned.child.kill("SIGINT");
    const run = await spawned.done;
    expect(run.code).toBe(0);
    parseOutput(run.stdout);
  }, 60_000);

  it("exits quietly when stdout is closed (EPIPE)", async () => {
    const spawned = startCli([]);
    spawned.child.stdin.end(`file://${bigPath}\n`);
    await new Promise<void>((resolve) => spawned.child.stdout.once("data", () => resolve()));
    spawned.child.stdout.destroy();
    const run = await spawned.done;
    expect(run.code).toBe(0);
    expect(run.stderr).toBe("");
    // fluentd is gone: exit 0 as for a stop, with the counts so far as the summary.
    expect(run.log.find((l) => l.msg === "summary")).toMatchObject({ stdoutClosed: true, records: 1 });
  }, 60_000);
});
