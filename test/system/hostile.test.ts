// Nothing in a record can crash the filter (issue 20, item 4). Whoever can write to the queue decides what a record
// holds: nesting 100,000 deep, 1,000,000 keys, a number of a million digits, bytes that are not UTF-8, NUL, lone
// surrogates, `__proto__` keys, a line at and past --max-line-bytes. Each of them goes in through every way records
// come in (stdin JSON lines, msgpack, an SQS body, an SNS envelope in an SQS body, a spool replayed after kill -9),
// between good lines, through the built CLI. For each: the process survives and keeps working (the good line after it
// comes out), stdout holds only whole JSON objects, and the record ends as a dead letter plus a log line.
import { closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { encode } from "@msgpack/msgpack";
import fc from "fast-check";
import { afterAll, describe, expect, it } from "vitest";
import type { Line } from "../../src/input/lines.js";
import { MSGPACK_DEPTH_MAX, readMsgpackLines } from "../../src/input/msgpack-lines.js";
import { DEAD_LETTER_INPUT_MAX, deadLetterRecord } from "../../src/model/dead-letter.js";
import { FdLogger } from "../../src/shared/log.js";
import { msgpack } from "../../src/shared/msgpack.js";
import { type CliRun, deadLetters, events, parseOutput, runCli } from "../support/cli.js";
import { acceptEntry, journalPath, oldAccept, oldJournalPath } from "../support/journal.js";
import { inSqsRecord, snsNotification } from "../support/messages.js";
import { FIXTURE_NAMES, FIXTURES } from "../support/trail.js";

const tempDirs: string[] = [];
const tempDir = (): string => {
  const dir = mkdtempSync(join(tmpdir(), "ctef-hostile-"));
  tempDirs.push(dir);
  return dir;
};
afterAll(() => {
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
});

// ---------------------------------------------------------------------------------------------------------------
// The corpus

const DEPTH = 100_000;
const MAX_LINE_BYTES = 16 << 20; // the default
const deepArrays = `${"[".repeat(DEPTH)}${"]".repeat(DEPTH)}`;
const deepObjects = `${'{"a":'.repeat(DEPTH)}1${"}".repeat(DEPTH)}`;
const manyKeys = (n: number): string => `{${Array.from({ length: n }, (_, i) => `"k${i}":0`).join(",")}}`;
const bytes = (...parts: (string | number[])[]): Buffer =>
  Buffer.concat(parts.map((part) => (typeof part === "string" ? Buffer.from(part) : Buffer.from(part))));
/** A JSON string literal of `n` bytes in all. */
const stringOfBytes = (n: number): string => `"${"a".repeat(n - 2)}"`;

/** Hostile JSON records (the bytes of one line). None names an object that could be fetched. */
const JSON_CORPUS: [string, Buffer][] = [
  ["100,000 nested arrays", Buffer.from(deepArrays)],
  ["100,000 nested objects", Buffer.from(deepObjects)],
  ["a notification whose Records nest 100,000 deep", Buffer.from(`{"Records":[${deepObjects}]}`)],
  ["a notification whose key list nests 100,000 deep", Buffer.from(`{"s3Bucket":"trail","s3ObjectKey":${deepArrays}}`)],
  ["1,000,000 keys", Buffer.from(manyKeys(1_000_000))],
  ["a number of 10^6 digits", Buffer.from(`{"s3Bucket":${"9".repeat(1_000_000)},"s3ObjectKey":["k"]}`)],
  ["an exponent of 10^6 digits", Buffer.from(`[1e-${"9".repeat(1_000_000)}]`)],
  ["bytes that are not UTF-8", bytes('{"s3Bucket":"tr', [0xff, 0xfe, 0xc0, 0x80], 'ail","s3ObjectKey":["k"]}')],
  ["a raw NUL", bytes('{"s3Bucket":"trail","s3ObjectKey":["k', [0], '"]}')],
  ["an escaped NUL", Buffer.from('{"s3Bucket":"trail","s3ObjectKey":["k\\u0000.json.gz"]}')],
  ["lone surrogates, escaped", Buffer.from('{"s3Bucket":"\\ud800","s3ObjectKey":["\\udfff","a\\ud800b"]}')],
  ["a lone surrogate, raw (its UTF-8 form)", bytes('{"s3Bucket":"trail","s3ObjectKey":["', [0xed, 0xa0, 0x80], '"]}')],
  [
    "__proto__ and constructor keys",
    Buffer.from('{"__proto__":{"s3Bucket":"trail","s3ObjectKey":["k"]},"constructor":{"prototype":{"x":1}}}'),
  ],
  ["__proto__ inside a record of Records", Buffer.from('{"Records":[{"__proto__":{"s3":{"bucket":{"name":"x"}}}}]}')],
  ["a line of exactly --max-line-bytes", Buffer.from(stringOfBytes(MAX_LINE_BYTES))],
  ["a line one byte over --max-line-bytes", Buffer.from(stringOfBytes(MAX_LINE_BYTES + 1))],
];

/** The same shapes as SQS bodies (a body is text: bytes that are not UTF-8 arrive as U+FFFD, sizes at SQS's limit). */
const BODY_CORPUS: [string, string][] = [
  ["100,000 nested arrays", deepArrays],
  ["100,000 nested objects", deepObjects],
  ["Records nesting 100,000 deep", `{"Records":[${deepObjects}]}`],
  ["1,000,000 keys", manyKeys(1_000_000)],
  ["a number of 10^6 digits", `{"s3Bucket":${"9".repeat(1_000_000)},"s3ObjectKey":["k"]}`],
  ["U+FFFD, NUL and lone surrogates", '{"s3Bucket":"tr\ufffd\u0000ail","s3ObjectKey":["\ud800","\udfff"]}'],
  ["__proto__ keys", '{"__proto__":{"s3Bucket":"trail","s3ObjectKey":["k"]}}'],
  ["1 MiB of quotes (SQS's largest message)", '"'.repeat(1 << 20)],
];

const FIXTURE = FIXTURE_NAMES[1] as string;
const GOOD = `file://${join(FIXTURES, FIXTURE)}`;
const GOOD_EVENTS = (JSON.parse(readFileSync(join(FIXTURES, FIXTURE), "utf8")) as { Records: unknown[] }).Records
  .length;
const QUEUE = "https://sqs.us-east-1.amazonaws.com/123456789012/trail";
/** Each run below moves tens of MB through the CLI: about 20 s on 2 loaded cores. */
const CLI_TIMEOUT = 180_000;

// Every bucket is refused (--buckets names one no record names) and S3 is a closed loopback port: no hostile record
// can make a request, whatever it names.
const ARGS = ["--buckets", "never-named-here", "--endpoint", "http://127.0.0.1:9", "--retry-for", "1"];
const ENV = { AWS_ACCESS_KEY_ID: "x", AWS_SECRET_ACCESS_KEY: "x", AWS_REGION: "us-east-1" };

/** hostile, good, hostile, good, … (one line each): the good lines are the even line numbers. */
function interleaved(records: Buffer[], separator = Buffer.from("\n")): Buffer {
  return Buffer.concat(records.flatMap((record) => [record, separator, Buffer.from(GOOD), separator]));
}

/**
 * What every path must show: exit 0, only whole JSON objects on stdout (parseOutput throws otherwise), every good
 * line's events, at least one dead letter and one "dead letter" log line per hostile record, and no fatal error.
 * `numbered`: the hostile records are lines 1, 3, 5, … (not so for a replay, whose lines are all 0).
 */
function expectSurvived(run: CliRun, hostile: number, numbered: boolean): void {
  expect(run.log.filter((line) => line.level === "error")).toEqual([]);
  expect(run.code, run.stderr).toBe(0);
  const out = parseOutput(run.stdout);
  expect(events(out)).toHaveLength(hostile * GOOD_EVENTS);
  expect(deadLetters(out).length).toBeGreaterThanOrEqual(hostile);
  // `input` is cut at DEAD_LETTER_INPUT_MAX bytes of its text, which JSON escapes again (at most 6 bytes a byte).
  for (const letter of deadLetters(out)) {
    expect(Buffer.byteLength(JSON.stringify(letter))).toBeLessThan(6 * DEAD_LETTER_INPUT_MAX + 16 * 1024);
  }
  const logged = run.log.filter((line) => line.msg === "dead letter");
  expect(logged.length).toBeGreaterThanOrEqual(hostile);
  if (numbered) {
    const lines = new Set(logged.map((line) => line.line));
    expect([...lines].sort((a, b) => Number(a) - Number(b))).toEqual(
      Array.from({ length: hostile }, (_, i) => 2 * i + 1),
    );
  }
  expect(run.log.find((line) => line.msg === "summary")).toMatchObject({ records: 2 * hostile });
}

// ---------------------------------------------------------------------------------------------------------------
// Through the built CLI, every way in

describe("every hostile shape, every way in, through the built CLI", () => {
  it(
    "stdin JSON lines",
    async () => {
      const run = await runCli(ARGS, interleaved(JSON_CORPUS.map(([, line]) => line)), ENV);
      expectSurvived(run, JSON_CORPUS.length, true);
      const tooLong = deadLetters(parseOutput(run.stdout)).filter(
        (letter) => (letter.error as { code: string }).code === "LineTooLong",
      );
      expect(tooLong).toHaveLength(1); // the line at the limit is kept (and refused as what it is)
    },
    CLI_TIMEOUT,
  );

  it(
    "SQS bodies (fluent-plugin-sqs records)",
    async () => {
      const lines = BODY_CORPUS.map(([, body], i) => Buffer.from(inSqsRecord(body, `handle-${i}`, QUEUE)));
      expectSurvived(await runCli(ARGS, interleaved(lines), ENV), lines.length, true);
    },
    CLI_TIMEOUT,
  );

  it(
    "SNS envelopes whose Message is the hostile text, in SQS bodies",
    async () => {
      const lines = BODY_CORPUS.map(([, body], i) => Buffer.from(inSqsRecord(snsNotification(body), `h${i}`, QUEUE)));
      expectSurvived(await runCli(ARGS, interleaved(lines), ENV), lines.length, true);
    },
    CLI_TIMEOUT,
  );

  it(
    "msgpack input",
    async () => {
      const records = MSGPACK_CORPUS.map(([, record]) => record);
      const input = Buffer.concat(records.flatMap((record) => [record, Buffer.from(encode(GOOD))]));
      const run = await runCli([...ARGS, "--input-format", "msgpack"], input, ENV);
      expectSurvived(run, records.length, true);
    },
    CLI_TIMEOUT,
  );

  it(
    "a spool replayed after kill -9 (the records journaled, none done)",
    async () => {
      const spool = join(tempDir(), "spool");
      mkdirSync(spool);
      const texts = [...JSON_CORPUS.map(([, line]) => line.toString("utf8")), ...BODY_CORPUS.map(([, body]) => body)];
      // What the spool would hold: only lines within --max-line-bytes are journaled.
      const journaled = texts.filter((text) => Buffer.byteLength(text) <= MAX_LINE_BYTES);
      writeFileSync(
        journalPath(spool),
        Buffer.concat(journaled.flatMap((text, i) => [acceptEntry(2 * i + 1, text), acceptEntry(2 * i + 2, GOOD)])),
      );
      const run = await runCli([...ARGS, "--spool-dir", spool], "", ENV);
      expectSurvived(run, journaled.length, false);
      const again = await runCli([...ARGS, "--spool-dir", spool], "", ENV);
      expect(again.code).toBe(0);
      expect(again.log.find((line) => line.msg === "summary")).toMatchObject({ records: 0, spooled: 0 });
    },
    CLI_TIMEOUT,
  );

  it(
    "a first-format journal (journal.jsonl) full of them, migrated and replayed",
    async () => {
      const spool = join(tempDir(), "spool");
      mkdirSync(spool);
      const texts = BODY_CORPUS.map(([, body]) => body);
      writeFileSync(
        oldJournalPath(spool),
        texts.flatMap((text, i) => [oldAccept(2 * i + 1, text), oldAccept(2 * i + 2, GOOD)]).join(""),
      );
      const run = await runCli([...ARGS, "--spool-dir", spool], "", ENV);
      expectSurvived(run, texts.length, false);
    },
    CLI_TIMEOUT,
  );
});

// ---------------------------------------------------------------------------------------------------------------
// msgpack records: cut before they are decoded

const map1 = (key: string, value: Buffer): Buffer => Buffer.concat([Buffer.from([0x81]), strBytes(key), value]);
function strBytes(text: string | Buffer): Buffer {
  const body = typeof text === "string" ? Buffer.from(text) : text;
  if (body.length < 32) return Buffer.concat([Buffer.from([0xa0 | body.length]), body]);
  const header = Buffer.alloc(5);
  header[0] = 0xdb;
  header.writeUInt32BE(body.length, 1);
  return Buffer.concat([header, body]);
}

const MSGPACK_CORPUS: [string, Buffer][] = [
  ["100,000 nested arrays", Buffer.concat([Buffer.alloc(DEPTH, 0x91), Buffer.from([0x01])])],
  ["100,000 nested maps", deepMaps(DEPTH)],
  ["a body nesting 100,000 deep (as JSON text)", Buffer.from(encode({ body: deepObjects }))],
  [
    "1,000,000 keys",
    Buffer.from(encode(Object.fromEntries(Array.from({ length: 1_000_000 }, (_, i) => [`k${i}`, 0])))),
  ],
  ["a string that is not UTF-8", map1("body", strBytes(Buffer.from([0xff, 0xfe, 0xc0, 0x80])))],
  ["NUL and a lone surrogate's UTF-8", map1("s3Bucket", strBytes(Buffer.from([0x74, 0x00, 0xed, 0xa0, 0x80])))],
  ["a __proto__ key", map1("__proto__", map1("s3Bucket", strBytes("trail")))],
  ["NaN and Infinity", Buffer.from(encode({ s3Bucket: Number.NaN, s3ObjectKey: [Number.POSITIVE_INFINITY] }))],
  ["an ext value", Buffer.from([0x81, 0xa1, 0x61, 0xd4, 0x05, 0x00])],
  ["a string of exactly --max-line-bytes", strBytes(Buffer.alloc(MAX_LINE_BYTES - 5, 0x61))],
  ["a string past --max-line-bytes", strBytes(Buffer.alloc(MAX_LINE_BYTES, 0x61))],
];

function deepMaps(depth: number): Buffer {
  const out = Buffer.alloc(depth * 3 + 1);
  for (let i = 0; i < depth; i++) out.set([0x81, 0xa1, 0x61], i * 3);
  out[depth * 3] = 0x01;
  return out;
}

async function linesOf(chunks: Buffer[], maxBytes = MAX_LINE_BYTES): Promise<Line[]> {
  async function* source(): AsyncGenerator<Buffer> {
    yield* chunks;
  }
  const lines: Line[] = [];
  for await (const line of readMsgpackLines(source(), maxBytes)) lines.push(line);
  return lines;
}

describe("msgpack input: records are cut before they are decoded", () => {
  it("any values, cut anywhere: one line each, the JSON of the value", async () => {
    const value = fc.oneof(fc.jsonValue({ maxDepth: 4 }), fc.string());
    await fc.assert(
      fc.asyncProperty(
        fc.array(value, { maxLength: 6 }),
        fc.array(fc.nat(), { maxLength: 8 }),
        async (values, cuts) => {
          const all = Buffer.concat(values.map((v) => encode(v)));
          const points = [...new Set(cuts.map((c) => (all.length === 0 ? 0 : c % all.length)))].sort((a, b) => a - b);
          const chunks = [0, ...points].map((from, i) => all.subarray(from, points[i] ?? all.length));
          const lines = await linesOf(chunks.filter((chunk) => chunk.length > 0));
          expect(lines.map((line) => (line.kind === "line" ? line.text : line))).toEqual(
            values.map((v) => (typeof v === "string" ? v : JSON.stringify(JSON.parse(JSON.stringify(v))))),
          );
        },
      ),
      { numRuns: 300 },
    );
  });

  // (1,000,000 keys only through the CLI: decoding them here takes most of this file's time.)
  it.each(MSGPACK_CORPUS.filter(([name]) => name !== "1,000,000 keys"))(
    "%s: one record, and the next one is read",
    async (_name, record) => {
      const next = Buffer.from(encode(GOOD));
      // Cut in odd places, as pipes do.
      const all = Buffer.concat([record, next]);
      const lines = await linesOf([all.subarray(0, 7), all.subarray(7, all.length - 3), all.subarray(all.length - 3)]);
      expect(lines).toHaveLength(2);
      expect(lines[1]).toEqual({ kind: "line", number: 2, text: GOOD });
      expect(lines[0]).toMatchObject({ number: 1 });
    },
  );

  it(`a record deeper than ${MSGPACK_DEPTH_MAX} is refused without decoding; one at the limit is decoded`, async () => {
    const nest = (depth: number) => Buffer.concat([Buffer.alloc(depth, 0x91), Buffer.from([0x01])]);
    const [deeper, at] = await linesOf([nest(MSGPACK_DEPTH_MAX + 1), nest(MSGPACK_DEPTH_MAX)]);
    expect(deeper).toMatchObject({ kind: "line", number: 1 });
    expect(JSON.parse((deeper as { text: string }).text)).toEqual({
      msgpackRecord: `nested deeper than ${MSGPACK_DEPTH_MAX}`,
      bytes: MSGPACK_DEPTH_MAX + 2,
    });
    expect(at).toEqual({
      kind: "line",
      number: 2,
      text: `${"[".repeat(MSGPACK_DEPTH_MAX)}1${"]".repeat(MSGPACK_DEPTH_MAX)}`,
    });
  });

  it("a record past the limit is a too-long record with its length", async () => {
    const [line] = await linesOf([strBytes(Buffer.alloc(5000, 0x61))], 4096);
    expect(line).toMatchObject({ kind: "tooLong", number: 1, bytes: 5005 });
  });
});

// ---------------------------------------------------------------------------------------------------------------
// In process: what writes an input back out never throws

describe("dead letters and logs of any value", () => {
  /** A JSON value wrapped in `depth` arrays and objects, alternately. */
  const wrapped = fc.tuple(fc.jsonValue({ maxDepth: 3 }), fc.integer({ min: 0, max: 20_000 })).map(([value, depth]) => {
    let out: unknown = value;
    for (let i = 0; i < depth; i++) out = i % 2 === 0 ? [out] : { a: out };
    return out;
  });

  it("a dead letter of any input is written as one JSON line and as msgpack; a log line of it is valid JSON", () => {
    fc.assert(
      fc.property(wrapped, (input) => {
        const record = deadLetterRecord("ctef.deadletter", { code: "X", message: "m" }, input, { line: "1" });
        const line = JSON.stringify(record);
        expect(JSON.parse(line)).toMatchObject({ _tag: "ctef.deadletter" });
        expect(() => msgpack().encode(record)).not.toThrow();
        const dir = tempDir();
        const logPath = join(dir, "log");
        writeFileSync(logPath, "");
        const fd = openSync(logPath, "a");
        new FdLogger(fd, "debug").warn("abandoned", { input });
        closeSync(fd);
        const logged = readFileSync(logPath, "utf8");
        expect(logged.endsWith("\n")).toBe(true);
        expect(JSON.parse(logged)).toMatchObject({ msg: "abandoned" });
      }),
      { numRuns: 60 },
    );
  });
});
