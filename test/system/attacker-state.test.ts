// What a queue writer can do to the state the filter keeps on disk (issue 20, items 3 and 8): the spool's journal and
// the import checkpoint. Through the built CLI, spawned as fluentd spawns it: messages made to bloat the journal
// (bodies of quotes, which the first journal format stored with every quote escaped again) between good ones, with peak
// memory read from /proc; a spool that fills while stdout is not read (stdin waits, nothing is lost); a start that
// fails on its spool says why in --log-file; a restart on the same spool replays only what was unfinished. In process:
// the journal's size bound under any sequence of operations, and a checkpoint read in chunks.
import { appendFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { processHost } from "../../src/cli/host.js";
import { SPOOL_MAX_BYTES_DEFAULT, Spool } from "../../src/input/spool.js";
import { Checkpoint } from "../../src/listing/checkpoint.js";
import { type CliRun, completeLines, deadLetters, events, parseOutput, runCli, startCli } from "../support/cli.js";
import { type FaultS3, startFaultS3 } from "../support/fault-s3.js";
import { acceptedIn, journalBytes, journalEntries, journalPath } from "../support/journal.js";
import { inSqsRecord } from "../support/messages.js";
import { FIXTURE_NAMES, FIXTURES } from "../support/trail.js";
import { waitUntil } from "../support/wait.js";

const BUCKET = "trail";
const QUEUE = "https://sqs.us-east-1.amazonaws.com/123456789012/trail";
const ENV = { AWS_ACCESS_KEY_ID: "x", AWS_SECRET_ACCESS_KEY: "x", AWS_REGION: "us-east-1" };
const MiB = 1024 * 1024;

let s3: FaultS3;
const tempDirs: string[] = [];
const tempDir = (): string => {
  const dir = mkdtempSync(join(tmpdir(), "ctef-attacker-state-"));
  tempDirs.push(dir);
  return dir;
};
beforeAll(async () => {
  s3 = await startFaultS3();
});
afterAll(async () => {
  await s3?.close();
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
});

/** Waits for `condition` (60 s unless told). */
const waitFor = (what: string, condition: () => boolean, timeoutMs = 60_000): Promise<void> =>
  waitUntil(what, condition, timeoutMs);

/** Peak resident memory of a live process, from the kernel (VmHWM), in bytes. */
function peakRss(pid: number): number {
  const line = readFileSync(`/proc/${pid}/status`, "utf8")
    .split("\n")
    .find((l) => l.startsWith("VmHWM:"));
  return Number(/(\d+)/.exec(line ?? "")?.[1]) * 1024;
}

const fixture = (i: number): Buffer => readFileSync(join(FIXTURES, FIXTURE_NAMES[i % FIXTURE_NAMES.length] as string));
const eventsIn = (i: number): number =>
  (JSON.parse(fixture(i).toString("utf8")) as { Records: unknown[] }).Records.length;
const logsNamed = (run: CliRun, msg: string) => run.log.filter((line) => line.msg === msg);

/** The message the issue found: a body of 256 KiB of `"` (a 512 KiB line; the first journal format stored 1 MiB). */
const bloating = (i: number): string => inSqsRecord('"'.repeat(256 * 1024), `bloat-${i}`, QUEUE);

/**
 * The bound on the child's peak RSS in these runs. Measured: 165 MiB (load average 12 on 2 cores); the records
 * are 0.5 MB each and at most --concurrency × 4 wait, so anything near this bound means records pile up in memory.
 */
const PEAK_RSS_MAX = 400 * MiB;

describe("the spool under messages made to bloat it (the built CLI)", () => {
  it("survives 120 of them between good ones: bounded memory, output and journal; a restart replays only the unfinished", async () => {
    const spool = join(tempDir(), "spool");
    const keys = Array.from({ length: 12 }, (_, i) => `bloat/${i}.json`);
    keys.forEach((key, i) => {
      s3.putObject(BUCKET, key, fixture(i));
    });
    // The first request for one object is never answered: its record is the one left unfinished by the kill.
    const stalled = keys[3] as string;
    s3.failKey(BUCKET, stalled, "stall");
    const poison = 120;
    const lines: string[] = [];
    let expectedEvents = 0;
    for (let i = 0; i < poison; i++) {
      lines.push(bloating(i));
      const k = i % keys.length;
      lines.push(`s3://${BUCKET}/${keys[k]}`);
      if (i !== 3) expectedEvents += eventsIn(k);
    }
    const input = `${lines.join("\n")}\n`;

    const run = startCli(["--endpoint", s3.endpoint, "--spool-dir", spool, "--request-timeout", "120"], ENV);
    run.child.stdin.write(input); // stdin stays open, as under fluentd
    // Records counted as they arrive (parsing 30 MB of output at every poll would take the test's time): a record
    // ends with `}` and a newline; the whitespace padding a pipe gets (output.ts) has newlines of its own.
    let ended = 0;
    let last = 0;
    run.child.stdout.on("data", (chunk: Buffer) => {
      for (let at = chunk.indexOf(0x0a); at !== -1; at = chunk.indexOf(0x0a, at + 1)) {
        if ((at > 0 ? chunk[at - 1] : last) === 0x7d) ended++;
      }
      last = chunk[chunk.length - 1] ?? last;
    });
    await waitFor(
      "every good event and every dead letter but the stalled object's",
      () => {
        return ended >= expectedEvents + poison;
      },
      180_000,
    );
    // Done marks follow the output; give the last ones a moment.
    await waitFor("all but the stalled record done", () => countPending(spool) === 1);
    const peak = peakRss(run.child.pid as number);
    const journal = journalBytes(spool);
    if (process.env.CTEF_REPORT !== undefined) console.log({ peakMiB: peak / MiB, journal });
    run.child.kill("SIGKILL");
    const first = await run.done;
    expect(first.signal).toBe("SIGKILL");

    const records = parseOutput(first.stdout);
    expect(events(records)).toHaveLength(expectedEvents);
    expect(deadLetters(records)).toHaveLength(poison);
    expect(deadLetters(records).every((r) => (r.error as { code: string }).code === "BodyNotJson")).toBe(true);
    // Output proportional to input: each dead letter carries at most DEAD_LETTER_INPUT_MAX of its record's text.
    const deadLetterBytes = deadLetters(records).reduce((sum, r) => sum + JSON.stringify(r).length + 1, 0);
    expect(deadLetterBytes / poison).toBeLessThan(6 * 64 * 1024 + 16 * 1024);
    expect(peak, `peak RSS ${Math.round(peak / MiB)} MiB`).toBeLessThan(PEAK_RSS_MAX);
    // 60 MB went through the journal; it holds the unfinished record and garbage short of a compaction (twice the
    // pending bytes plus 16 MiB).
    expect(journal, `journal ${journal} bytes`).toBeLessThan(16 * MiB + 2 * 1024 * 1024);
    expect(first.log.filter((line) => line.level === "error")).toEqual([]);

    // The restart on the same spool replays the stalled record (the stall is used up), nothing else.
    const second = await runCli(["--endpoint", s3.endpoint, "--spool-dir", spool], "", ENV);
    expect(second.code).toBe(0);
    expect(logsNamed(second, "replaying the spool")).toEqual([expect.objectContaining({ records: 1 })]);
    const replayed = parseOutput(second.stdout);
    expect(deadLetters(replayed)).toEqual([]);
    expect(events(replayed)).toHaveLength(eventsIn(3));
    expect(logsNamed(second, "summary")[0]).toMatchObject({ records: 1, spooled: 0 });
    expect(journalBytes(spool)).toBe(0);
  }, 300_000);

  it("a full spool stops stdin while stdout is not read; nothing is lost once it is", async () => {
    const spool = join(tempDir(), "spool");
    const max = 1 * MiB;
    const run = startCli(["--endpoint", s3.endpoint, "--spool-dir", spool, "--spool-max-bytes", String(max)], ENV);
    run.child.stdout.pause();
    // 100 KB lines that are not JSON: each becomes a dead letter carrying 64 KiB of it.
    const total = 100;
    const line = (i: number) => `${String(i).padStart(6, "0")}${"x".repeat(100_000)}\n`;
    for (let i = 0; i < total; i++) run.child.stdin.write(line(i));
    await waitFor("the spool full", () =>
      run.log().some((l) => l.msg === "the spool is full; stdin waits until records finish"),
    );
    // Reading has stopped: the journal holds at most the bound plus one record, and our side still holds input.
    await new Promise((resolve) => setTimeout(resolve, 500));
    const accepted = acceptedIn(spool);
    expect(countPendingBytes(spool)).toBeLessThanOrEqual(max + 100_007);
    expect(accepted).toBeLessThan(total);
    expect(run.child.stdin.writableLength).toBeGreaterThan(0);
    const peak = peakRss(run.child.pid as number);
    expect(peak, `peak RSS ${Math.round(peak / MiB)} MiB`).toBeLessThan(PEAK_RSS_MAX);

    run.child.stdout.resume();
    run.child.stdin.end();
    const done = await run.done;
    expect(done.code).toBe(0);
    const out = parseOutput(done.stdout);
    expect(deadLetters(out)).toHaveLength(total);
    expect(new Set(done.log.filter((l) => l.msg === "dead letter").map((l) => l.line)).size).toBe(total);
    expect(logsNamed(done, "summary")[0]).toMatchObject({ records: total, spooled: 0 });
    expect(logsNamed(done, "the spool has room again; reading stdin").length).toBeGreaterThan(0);
  }, 120_000);

  it("SIGTERM with the spool full: what is still in the pipe is journaled anyway, and the restart writes it", async () => {
    const spool = join(tempDir(), "spool");
    const args = ["--endpoint", s3.endpoint, "--spool-dir", spool, "--spool-max-bytes", String(1 * MiB)];
    const run = startCli([...args, "--shutdown-timeout", "1"], ENV);
    run.child.stdout.pause();
    const total = 40;
    const line = (i: number) => `${String(i).padStart(6, "0")}${"x".repeat(100_000)}\n`;
    for (let i = 0; i < total; i++) run.child.stdin.write(line(i));
    run.child.stdin.end();
    await waitFor("the spool full", () =>
      run.log().some((l) => l.msg === "the spool is full; stdin waits until records finish"),
    );
    run.child.kill("SIGTERM");
    setTimeout(() => run.child.stdout.resume(), 3000);
    const first = await run.done;
    expect(first.code).toBe(0);
    const second = await runCli(args, "", ENV);
    expect(second.code).toBe(0);
    // Every record is written by one run or the other (a record written but not yet marked done when the first run
    // stopped is written again: at least once).
    const written = new Set(
      [...completeLines(first.stdout), ...parseOutput(second.stdout)].map((r) => String(r.input).slice(0, 6)),
    );
    expect(written.size).toBe(total);
    expect(logsNamed(second, "summary")[0]).toMatchObject({ spooled: 0 });
  }, 120_000);
});

/** Records accepted and not done in a journal (as a kill would leave them). */
function countPending(spool: string): number {
  const pending = new Set<number>();
  for (const entry of journalEntries(spool)) {
    if (entry.kind === "d") pending.delete(entry.id);
    else pending.add(entry.id);
  }
  return pending.size;
}

function countPendingBytes(spool: string): number {
  const pending = new Map<number, number>();
  for (const entry of journalEntries(spool)) {
    if (entry.kind === "d") pending.delete(entry.id);
    else pending.set(entry.id, Buffer.byteLength(entry.text));
  }
  return [...pending.values()].reduce((a, b) => a + b, 0);
}

describe("a start that fails on its spool says why in --log-file", () => {
  it.each([
    [
      "locked by a live process",
      (spool: string) => {
        mkdirSync(spool);
        writeFileSync(join(spool, "lock"), `${process.pid}\n`); // this test process: alive
      },
      /in use by process/,
    ],
    [
      "a journal that cannot be read (a directory)",
      (spool: string) => {
        mkdirSync(join(spool, "journal"), { recursive: true });
      },
      /cannot use --spool-dir/,
    ],
  ])("%s: exit 2, the reason in the log file", async (_name, prepare, reason) => {
    const spool = join(tempDir(), "spool");
    prepare(spool);
    const run = await runCli(["--spool-dir", spool], "", ENV);
    expect(run.code).toBe(2);
    expect(run.stdout.toString()).toBe("");
    const logged = run.log.filter((line) => line.level === "error");
    expect(logged).toHaveLength(1);
    expect(String(logged[0]?.msg)).toMatch(reason);
  });
});

// ---------------------------------------------------------------------------------------------------------------
// In process

describe("the journal's size stays bounded by what is pending (property)", () => {
  type Op = { op: "accept"; bytes: number } | { op: "done"; pick: number } | { op: "reopen" };
  const opArb: fc.Arbitrary<Op> = fc.oneof(
    {
      weight: 4,
      arbitrary: fc.record({ op: fc.constant("accept" as const), bytes: fc.integer({ min: 0, max: 3 * MiB }) }),
    },
    { weight: 4, arbitrary: fc.record({ op: fc.constant("done" as const), pick: fc.nat() }) },
    { weight: 1, arbitrary: fc.constant({ op: "reopen" as const }) },
  );

  it("never more than twice the pending bytes plus 16 MiB and one record; replays exactly what is pending", () => {
    fc.assert(
      fc.property(fc.array(opArb, { maxLength: 40 }), (ops) => {
        const dir = join(tempDir(), "spool");
        let spool = Spool.open(dir, 8 * MiB, processHost());
        const model = new Map<number, string>();
        for (const op of ops) {
          if (op.op === "accept") {
            const text = '"'.repeat(op.bytes);
            if (!spool.hasRoomFor(op.bytes)) {
              expect(spool.pendingBytes + op.bytes).toBeGreaterThan(8 * MiB);
              continue;
            }
            model.set(spool.accept(text), text);
          } else if (op.op === "done") {
            const ids = [...model.keys()];
            if (ids.length === 0) continue;
            const id = ids[op.pick % ids.length] as number;
            spool.done(id);
            model.delete(id);
          } else {
            spool = Spool.open(dir, 8 * MiB, processHost()); // as after kill -9: no close, the lock is our own pid
            expect([...spool.unfinished()]).toEqual([...model].map(([id, text]) => ({ id, text })));
          }
          const pending = [...model.values()].reduce((sum, text) => sum + text.length, 0);
          expect(spool.pendingBytes).toBe(pending);
          expect(spool.pendingBytes).toBeLessThanOrEqual(8 * MiB + 3 * MiB);
          expect(journalBytes(dir)).toBeLessThanOrEqual(2 * pending + 16 * MiB + 3 * MiB + 64 * model.size + 64);
        }
        spool.close();
      }),
      { numRuns: 25 },
    );
  });

  it("a migration cut short (both journals on disk) is done again from the first-format one", () => {
    const dir = join(tempDir(), "spool");
    mkdirSync(dir);
    writeFileSync(join(dir, "journal.jsonl"), `${JSON.stringify({ a: 4, t: "four" })}\n`);
    // What the interrupted migration had already renamed into place.
    writeFileSync(journalPath(dir), "a 4 4\nfour\n");
    const spool = Spool.open(dir, SPOOL_MAX_BYTES_DEFAULT, processHost());
    expect([...spool.unfinished()]).toEqual([{ id: 4, text: "four" }]);
    spool.close();
  });
});

describe("the import checkpoint is read in chunks", () => {
  it("lines across chunk boundaries, a line longer than a chunk, a torn last line", () => {
    const path = join(tempDir(), "checkpoint");
    const urls = Array.from(
      { length: 60_000 },
      (_, i) => `s3://${BUCKET}/AWSLogs/123456789012/CloudTrail/${i}.json.gz`,
    );
    const long = `s3://${BUCKET}/${"k".repeat(3 * MiB)}`;
    writeFileSync(path, `${urls.join("\n")}\n${long}\n`);
    appendFileSync(path, "s3://trail/torn-without-newl");
    const checkpoint = Checkpoint.open(path);
    expect(checkpoint.size).toBe(urls.length + 1);
    expect(urls.every((url) => checkpoint.has(url))).toBe(true);
    expect(checkpoint.has(long)).toBe(true);
    expect(checkpoint.has("s3://trail/torn-without-newl")).toBe(false);
    checkpoint.add("s3://trail/after");
    checkpoint.close();
    expect(readFileSync(path, "utf8").endsWith(`${long}\ns3://trail/after\n`)).toBe(true);
  });
});
