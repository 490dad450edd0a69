// Property-based tests: never crashes, never writes an invalid line, never loses a record.
import { isUtf8 } from "node:buffer";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { RecordsScanner, ScanError } from "../../src/decode/scan.js";
import type { OutputSink } from "../../src/deliver/output.js";
import { eventWriter } from "../../src/format/format.js";
import { type Line, readLines } from "../../src/input/lines.js";
import { interpretLine } from "../../src/records/records.js";
import { cut } from "../support/bytes.js";

const RUNS = { numRuns: 300 };

// ---------------------------------------------------------------------------------------------------------------
// Helpers

/** Serialises like JSON.stringify, with whitespace from `spaces` (cycled) between every pair of tokens. */
function serialize(value: unknown, spaces: string[]): string {
  let k = 0;
  const ws = (): string => spaces[k++ % spaces.length] as string;
  const walk = (v: unknown): string => {
    if (Array.isArray(v)) return `[${ws()}${v.map(walk).join(`${ws()},${ws()}`)}${ws()}]`;
    if (v !== null && typeof v === "object") {
      const members = Object.entries(v).map(([key, item]) => `${JSON.stringify(key)}${ws()}:${ws()}${walk(item)}`);
      return `{${ws()}${members.join(`${ws()},${ws()}`)}${ws()}}`;
    }
    return JSON.stringify(v);
  };
  return walk(value);
}

/** Cuts `buffer` at offsets taken modulo its length (the arbitraries draw any integers). */
function cutAnywhere(buffer: Buffer, at: number[]): Buffer[] {
  return cut(
    buffer,
    at.map((p) => (buffer.length === 0 ? 0 : p % buffer.length)),
  );
}

interface Scanned {
  event: Buffer;
  eventTime: Buffer | undefined;
  hasTimestamp: boolean;
}

/** Scans the chunks; returns the events and the error. Any error other than a ScanError escapes (fails the test). */
function scan(chunks: Buffer[]): { events: Scanned[]; error: ScanError | undefined } {
  const events: Scanned[] = [];
  const scanner = new RecordsScanner((event, eventTime, hasTimestamp) => {
    // Copies: the scanner may hand on views of buffers it reuses.
    events.push({ event: Buffer.from(event), eventTime: eventTime && Buffer.from(eventTime), hasTimestamp });
  });
  try {
    for (const chunk of chunks) scanner.push(chunk);
    scanner.end();
  } catch (error) {
    if (error instanceof ScanError) return { events, error };
    throw error;
  }
  return { events, error: undefined };
}

/** Formats one scanned event the way the filter does, into a line of its own. */
function formatLine(scanned: Scanned): string {
  const parts: Buffer[] = [];
  const sink = {
    reserve(length: number) {
      const buffer = Buffer.alloc(length);
      parts.push(buffer);
      return { buffer, at: 0 };
    },
  } as unknown as OutputSink;
  eventWriter(sink, { timestamp: true })(scanned.event, scanned.eventTime, scanned.hasTimestamp);
  return Buffer.concat(parts).toString("utf8");
}

/** A line the filter writes must be exactly one JSON object followed by a newline. */
function expectValidLine(line: string): void {
  expect(line.endsWith("\n")).toBe(true);
  expect(line.indexOf("\n")).toBe(line.length - 1);
  const parsed: unknown = JSON.parse(line);
  expect(parsed !== null && typeof parsed === "object" && !Array.isArray(parsed)).toBe(true);
}

// ---------------------------------------------------------------------------------------------------------------
// Arbitraries

const whitespace = fc.array(fc.constantFrom("", "", "", " ", "\n", "\t", "\r\n", "  \n\t"), {
  minLength: 1,
  maxLength: 8,
});

/** One CloudTrail-like event: random members, sometimes an eventTime and an @timestamp. */
const eventArb = fc
  .tuple(
    fc.dictionary(
      fc.string().filter((key) => key !== "eventTime" && key !== "@timestamp"),
      fc.jsonValue({ maxDepth: 3 }),
      { maxKeys: 6 },
    ),
    fc.option(fc.date({ noInvalidDate: true }).map((d) => d.toISOString())),
    fc.option(fc.jsonValue({ maxDepth: 1 })),
  )
  .map(([members, eventTime, timestamp]) => {
    const event: Record<string, unknown> = { ...members };
    if (eventTime !== null) event.eventTime = eventTime;
    if (timestamp !== null) event["@timestamp"] = timestamp;
    return event;
  });

const fileArb = fc.record({
  before: fc.option(fc.jsonValue({ maxDepth: 2 })),
  records: fc.array(eventArb, { maxLength: 8 }),
  after: fc.option(fc.jsonValue({ maxDepth: 2 })),
});

function fileObject(file: { before: unknown; records: unknown[]; after: unknown }): Record<string, unknown> {
  const object: Record<string, unknown> = {};
  if (file.before !== null) object.before = file.before;
  object.Records = file.records;
  if (file.after !== null) object.after = file.after;
  return object;
}

const cuts = fc.array(fc.nat(), { maxLength: 24 });

// ---------------------------------------------------------------------------------------------------------------

describe("RecordsScanner properties", () => {
  it("hands on every event of a valid file, compact and exactly as JSON.stringify writes it, however it is cut", () => {
    fc.assert(
      fc.property(fileArb, whitespace, cuts, (file, spaces, at) => {
        const text = serialize(fileObject(file), spaces);
        const { events, error } = scan(cutAnywhere(Buffer.from(text, "utf8"), at));
        expect(error).toBeUndefined();
        expect(events).toHaveLength(file.records.length);
        events.forEach((scanned, i) => {
          const element = file.records[i] as Record<string, unknown>;
          expect(scanned.event.toString("utf8")).toBe(JSON.stringify(element));
          expect(JSON.parse(scanned.event.toString("utf8"))).toEqual(JSON.parse(JSON.stringify(element)));
          const eventTime = Object.hasOwn(element, "eventTime") ? element.eventTime : undefined;
          expect(scanned.eventTime?.toString("utf8")).toBe(eventTime);
          expect(scanned.hasTimestamp).toBe(Object.hasOwn(element, "@timestamp"));
          expectValidLine(formatLine(scanned));
        });
      }),
      RUNS,
    );
  });

  it("never throws anything but ScanError and never hands on an invalid event, on random bytes", () => {
    const bytes = fc.oneof(
      fc.uint8Array({ maxLength: 300 }),
      fc.uint8Array({ maxLength: 300 }).map((b) => Buffer.concat([Buffer.from('{"Records":[{"a":"'), b])),
      fc.uint8Array({ maxLength: 300 }).map((b) => Buffer.concat([Buffer.from('{"Records":['), b])),
      fc
        .array(fc.constantFrom(...'{}[]",:\\ \n01-.eE+tfrunlasRecordsventTim@\u0001\u00e9'.split("")), {
          maxLength: 200,
        })
        .map((tokens) => Buffer.from(`{"Records":[${tokens.join("")}`, "utf8")),
    );
    fc.assert(
      fc.property(bytes, cuts, (data, at) => {
        const { events } = scan(cutAnywhere(Buffer.from(data), at));
        for (const scanned of events) {
          expect(isUtf8(scanned.event)).toBe(true);
          expectValidLine(formatLine(scanned));
        }
      }),
      { numRuns: 500 },
    );
  });

  it("never throws anything but ScanError and never hands on an invalid event, on damaged files", () => {
    const mutation = fc.record({ at: fc.nat(), byte: fc.integer({ min: 0, max: 255 }), kind: fc.nat(2) });
    fc.assert(
      fc.property(
        fileArb,
        whitespace,
        fc.array(mutation, { minLength: 1, maxLength: 4 }),
        cuts,
        (file, spaces, mutations, at) => {
          let data = Buffer.from(serialize(fileObject(file), spaces), "utf8");
          for (const m of mutations) {
            const p = m.at % (data.length + 1);
            const byte = Buffer.from([m.byte]);
            if (m.kind === 0) data = Buffer.concat([data.subarray(0, p), byte, data.subarray(p + 1)]);
            else if (m.kind === 1) data = Buffer.concat([data.subarray(0, p), byte, data.subarray(p)]);
            else data = Buffer.concat([data.subarray(0, p), data.subarray(p + 1)]);
          }
          const whole = scan([data]);
          for (const scanned of whole.events) {
            expect(isUtf8(scanned.event)).toBe(true);
            expectValidLine(formatLine(scanned));
          }
          // However the damaged file is cut, the same events come out and the same error (if any) is raised.
          const pieces = scan(cutAnywhere(data, at));
          expect(pieces.events).toEqual(whole.events);
          expect(pieces.error?.code).toBe(whole.error?.code);
        },
      ),
      RUNS,
    );
  });
});

describe("interpretLine properties", () => {
  const KNOWN_ERRORS = ["NotJson", "NotAnObject", "BodyNotJson", "BadUrl", "UnknownShape", "MessageNotJson"];

  function expectInterpreted(line: string): void {
    const result = interpretLine(line);
    expect(["objects", "error"]).toContain(result.kind);
    if (result.kind === "error") {
      expect(KNOWN_ERRORS).toContain(result.code);
      expect(typeof result.message).toBe("string");
    } else {
      for (const ref of result.refs) {
        if (ref.scheme === "s3") {
          expect(typeof ref.bucket).toBe("string");
          expect(typeof ref.key).toBe("string");
        } else {
          expect(ref.scheme).toBe("file");
          expect(ref.path.startsWith("/")).toBe(true);
        }
      }
      for (const skip of result.skips) expect(typeof skip.reason).toBe("string");
      for (const failure of result.failed ?? []) {
        expect(KNOWN_ERRORS).toContain(failure.code);
        expect(typeof failure.message).toBe("string");
      }
    }
    // The input goes into dead-letter records: it must serialise.
    expect(() => JSON.stringify(result)).not.toThrow();
  }

  const str = fc.oneof(
    fc.string(),
    fc.constantFrom("", "CloudTrail validation message.", "ObjectCreated:Put", "Object Created", "aws:s3", "aws.s3"),
    fc.constantFrom("AWSLogs/1/CloudTrail/x.json.gz", "a+b%2B%3D%E3%83%AD", "x/CloudTrail-Digest/y", "folder/", "%"),
  );
  const anyValue = fc.oneof(str, fc.jsonValue({ maxDepth: 2 }));

  const s3Record = fc.record(
    {
      eventSource: fc.oneof(fc.constant("aws:s3"), anyValue),
      eventName: fc.oneof(fc.constantFrom("ObjectCreated:Put", "ObjectRemoved:Delete"), anyValue),
      awsRegion: anyValue,
      s3: fc.oneof(
        fc.record(
          {
            bucket: fc.oneof(fc.record({ name: anyValue }), anyValue),
            object: fc.oneof(fc.record({ key: anyValue }), anyValue),
          },
          { requiredKeys: [] },
        ),
        anyValue,
      ),
    },
    { requiredKeys: [] },
  );

  const notification: fc.Arbitrary<Record<string, unknown>> = fc.letrec<{ body: Record<string, unknown> }>((tie) => ({
    body: fc.record(
      {
        Type: fc.oneof(fc.constantFrom("Notification", "SubscriptionConfirmation"), anyValue),
        Message: fc.oneof(
          str,
          tie("body").map((b) => JSON.stringify(b)),
          fc.jsonValue().map((v) => JSON.stringify(v)),
        ),
        s3Bucket: anyValue,
        s3ObjectKey: fc.oneof(fc.array(str, { maxLength: 3 }), anyValue),
        Records: fc.oneof(fc.array(s3Record, { maxLength: 3 }), anyValue),
        Event: fc.oneof(fc.constant("s3:TestEvent"), anyValue),
        source: fc.oneof(fc.constant("aws.s3"), anyValue),
        "detail-type": fc.oneof(fc.constantFrom("Object Created", "Object Deleted"), anyValue),
        detail: fc.oneof(
          fc.record(
            { bucket: fc.record({ name: anyValue }), object: fc.record({ key: anyValue }) },
            { requiredKeys: [] },
          ),
          anyValue,
        ),
      },
      { requiredKeys: [] },
    ),
  })).body;

  const sqsRecord = fc
    .tuple(
      fc.oneof(
        notification.map((n) => JSON.stringify(n)),
        str,
      ),
      fc.record(
        {
          handle: str,
          id: str,
          md5: str,
          url: str,
          sender_id: str,
          receipt_handle: anyValue,
          message_id: anyValue,
          md5_of_body: str,
          queue_url: anyValue,
        },
        { requiredKeys: [] },
      ),
    )
    .map(([body, fields]) => ({ body, ...fields }));

  it("always returns objects or error, on random strings", () => {
    fc.assert(fc.property(fc.string({ unit: "binary", maxLength: 200 }), expectInterpreted), { numRuns: 500 });
    fc.assert(
      fc.property(fc.constantFrom("s3://", "file:", "file://", "file:///", " s3://b/"), fc.string(), (a, b) =>
        expectInterpreted(a + b),
      ),
      RUNS,
    );
  });

  it("always returns objects or error, on random JSON", () => {
    fc.assert(fc.property(fc.json(), expectInterpreted), { numRuns: 500 });
  });

  /** What `aws sqs receive-message` prints: a response of messages, or one message, with any body. */
  const cliMessage = fc.record(
    {
      MessageId: str,
      ReceiptHandle: str,
      MD5OfBody: str,
      Body: fc.oneof(
        notification.map((n) => JSON.stringify(n)),
        anyValue,
      ),
      Attributes: anyValue,
    },
    { requiredKeys: [] },
  );
  const receiveResponse = fc.record({ Messages: fc.array(fc.oneof(cliMessage, anyValue), { maxLength: 4 }) });

  it("always returns objects or error, on notification-like bodies, bare or in SQS records", () => {
    fc.assert(
      fc.property(fc.oneof(notification, sqsRecord, cliMessage, receiveResponse), fc.boolean(), (value, pretty) => {
        expectInterpreted(JSON.stringify(value, null, pretty ? 2 : undefined));
      }),
      { numRuns: 500 },
    );
  });
});

describe("readLines properties", () => {
  async function collect(chunks: Buffer[], maxLineBytes: number): Promise<Line[]> {
    async function* source(): AsyncGenerator<Buffer> {
      yield* chunks;
    }
    const out: Line[] = [];
    for await (const line of readLines(source(), maxLineBytes)) out.push(line);
    return out;
  }

  /**
   * What readLines must produce: one entry per non-blank line, numbered by position, except that the lines of a
   * pretty-printed document (a line that is only `{`, indented lines, a line `}`) are one entry numbered as its first
   * line, and lines held back as such that turn out to be none (an unindented line before the `}`) go on one by one.
   */
  function model(text: string, maxLineBytes: number): Partial<Line>[] {
    const segments = text.split("\n");
    if (segments[segments.length - 1] === "") segments.pop();
    type Item = { line: Partial<Line>; bytes: number; first: string; text?: string };
    const items: Item[] = [];
    segments.forEach((segment, index) => {
      const bytes = Buffer.byteLength(segment, "utf8");
      if (bytes > maxLineBytes) {
        items.push({ line: { kind: "tooLong", number: index + 1, bytes }, bytes, first: segment.charAt(0) });
        return;
      }
      const content = segment.endsWith("\r") ? segment.slice(0, -1) : segment;
      if (content.trim() === "") return;
      const line = { kind: "line" as const, number: index + 1, text: content };
      items.push({ line, bytes: Buffer.byteLength(content, "utf8"), first: content.charAt(0), text: content });
    });
    const out: Partial<Line>[] = [];
    let doc: Item[] | undefined;
    const docBytes = (held: Item[]) => held.reduce((sum, item) => sum + item.bytes, held.length - 1);
    const overflows = (held: Item[]) => held.some((item) => item.text === undefined) || docBytes(held) > maxLineBytes;
    const close = (held: Item[]) =>
      overflows(held)
        ? { kind: "tooLong" as const, number: held[0]?.line.number as number, bytes: docBytes(held) }
        : { kind: "line" as const, number: held[0]?.line.number as number, text: held.map((i) => i.text).join("\n") };
    const opens = (item: Item) => item.text !== undefined && item.text.length <= 16 && item.text.trim() === "{";
    const take = (item: Item): void => {
      if (doc === undefined) {
        if (opens(item)) doc = [item];
        else out.push(item.line);
        return;
      }
      if (item.text !== undefined && item.text.trimEnd() === "}") {
        out.push(close([...doc, item]));
        doc = undefined;
        return;
      }
      if (item.first === " " || item.first === "\t") {
        doc.push(item);
        return;
      }
      const held = doc;
      doc = undefined;
      if (overflows(held)) out.push(close(held));
      else out.push(...held.map((i) => i.line));
      take(item);
    };
    for (const item of items) take(item);
    if (doc !== undefined) out.push(close(doc));
    return out;
  }

  const lineText = fc.oneof(
    fc.string({ unit: "binary", maxLength: 40 }),
    fc.string({ unit: "grapheme", maxLength: 20 }),
    fc.constantFrom("", " ", "\t", '{"body":"x"}'),
    // The lines of pretty-printed documents, often enough to meet in every order.
    fc.constantFrom("{", "{ ", "}", "    }", '    "a": 1,', '\t"b": [', "  ]", '  "Body": "{\\"s3Bucket\\":1}"'),
  );

  it("reproduces the lines however the input is cut", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(
          lineText.map((s) => s.replace(/\n/g, "")),
          { maxLength: 12 },
        ),
        fc.constantFrom("\n", "\r\n"),
        fc.boolean(),
        cuts,
        fc.oneof(fc.constant(1024 * 1024), fc.integer({ min: 1, max: 60 })),
        async (lines, eol, trailing, at, maxLineBytes) => {
          const text = lines.join(eol) + (trailing && lines.length > 0 ? eol : "");
          const result = await collect(cutAnywhere(Buffer.from(text, "utf8"), at), maxLineBytes);
          const expected = model(text, maxLineBytes);
          expect(result).toHaveLength(expected.length);
          result.forEach((line, i) => {
            expect(line).toMatchObject(expected[i] as object);
          });
        },
      ),
      RUNS,
    );
  });
});
