// Tests for the output shaping options (fluentd time, stringified fields, source object, msgpack output), the
// scanner's field ranges they rely on, and the msgpack input reader.
import { readdirSync, readFileSync } from "node:fs";
import { Writable } from "node:stream";
import { decodeMulti, encode } from "@msgpack/msgpack";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { RecordsScanner } from "../../src/decode/scan.js";
import { OutputSink } from "../../src/deliver/output.js";
import {
  DEFAULT_STRINGIFY,
  epochOf,
  epochSeconds,
  eventWriter,
  type FormatOptions,
  parseStringify,
  scannedFields,
} from "../../src/format/format.js";
import type { Line } from "../../src/input/lines.js";
import { MsgpackInputError, readMsgpackLines } from "../../src/input/msgpack-lines.js";
import type { ObjectRef } from "../../src/model/refs.js";
import { LAYOUTS, layOut } from "../support/layout.js";
import { s3Ref } from "../support/names.js";

const FIXTURES = new URL("../fixtures/invictus-cloudtrail/", import.meta.url);
const fixtureFiles = readdirSync(FIXTURES).filter((name) => name.endsWith(".json"));

class Collect extends Writable {
  readonly chunks: Buffer[] = [];
  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: () => void): void {
    this.chunks.push(Buffer.from(chunk));
    callback();
  }
  get bytes(): Buffer {
    return Buffer.concat(this.chunks);
  }
}

const S3_REF: ObjectRef = s3Ref("trail-bucket", "AWSLogs/1/CloudTrail/x.json.gz");

/** Runs `file` (JSON text of a log file, in `chunkSize` pieces) through the scanner and the writer. */
async function shape(
  file: string | Buffer,
  options: Partial<FormatOptions>,
  ref: ObjectRef | undefined = S3_REF,
  chunkSize = 1 << 20,
): Promise<Buffer> {
  const out = new Collect();
  const full: FormatOptions = { timestamp: true, ...options };
  const sink = new OutputSink(out, { padBytes: 0, format: full.outputFormat === "msgpack" ? "msgpack" : "json" });
  const write = eventWriter(sink, full, ref);
  const scanner = new RecordsScanner(write, { maxEventBytes: 1 << 20, fields: scannedFields(full) });
  const bytes = Buffer.from(file);
  for (let i = 0; i < bytes.length; i += chunkSize) scanner.push(bytes.subarray(i, i + chunkSize));
  scanner.end();
  await sink.end();
  return out.bytes;
}

function jsonLines(bytes: Buffer): Record<string, unknown>[] {
  const text = bytes.toString("utf8");
  if (text !== "") expect(text.endsWith("\n")).toBe(true);
  return text
    .split("\n")
    .filter((line) => line !== "")
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}

const logFile = (...events: string[]) => `{"Records":[${events.join(",")}]}`;

describe("epochSeconds / epochOf", () => {
  it.each([
    ["2023-07-10T11:47:39Z", "1688989659.0"],
    ["2023-07-10T11:47:39.250Z", "1688989659.250"],
    ["2023-07-10T11:47:39.5Z", "1688989659.5"],
    ["2023-07-10T11:47:39.123456789Z", "1688989659.123456789"],
    ["1970-01-01T00:00:00Z", "0.0"],
    ["2024-02-29T23:59:59Z", "1709251199.0"],
    ["2000-03-01T00:00:00Z", "951868800.0"],
    ["2023-07-10T13:47:39+02:00", "1688989659.0"],
    ["2023-07-10", undefined], // Date.parse would say midnight UTC; not an event time
    ["Jul 10, 2023 11:47:39 AM", undefined], // Date.parse would read it as local time
    ["2023-07-10T11:47:39", undefined], // no zone: local time for Date.parse
    ["2023-13-10T11:47:39Z", undefined],
    ["2023-07-10T11:47:39.Z", undefined],
    ["1969-12-31T23:59:59.5Z", undefined],
    ["", undefined],
  ])("%s → %s", (text, expected) => {
    expect(epochSeconds(text)).toBe(expected);
    expect(epochOf(Buffer.from(text, "latin1"))).toBe(expected);
    // Date keeps milliseconds only
    if (expected !== undefined) expect(Number(expected)).toBeCloseTo(Date.parse(text) / 1000, 3);
  });

  it("the byte path agrees with Date.parse for every second of a leap year's days", () => {
    for (let t = Date.UTC(2024, 0, 1); t < Date.UTC(2025, 0, 2); t += 86_400_000 + 3_723_000) {
      const text = new Date(t).toISOString().replace(".000Z", "Z");
      expect(epochOf(Buffer.from(text))).toBe(`${Date.parse(text) / 1000}.0`);
    }
  });
});

describe("parseStringify", () => {
  it.each<[string | true, string[]]>([
    [true, [...DEFAULT_STRINGIFY]],
    ["default", [...DEFAULT_STRINGIFY]],
    ["requestParameters", ["requestParameters"]],
    ["a, b,,a", ["a", "b"]],
    ["default,tlsDetails", [...DEFAULT_STRINGIFY, "tlsDetails"]],
  ])("%s", (value, expected) => {
    expect(parseStringify(value)).toEqual(expected);
  });
});

describe("scanner field ranges", () => {
  function ranges(chunks: Buffer[], fields: string[]): Record<string, string | undefined>[] {
    const seen: Record<string, string | undefined>[] = [];
    const scanner = new RecordsScanner(
      (event, _time, _ts, found) => {
        const one: Record<string, string | undefined> = {};
        fields.forEach((name, f) => {
          const start = found?.[2 * f] as number;
          one[name] = start < 0 ? undefined : event.toString("utf8", start, found?.[2 * f + 1]);
        });
        seen.push(one);
      },
      { maxEventBytes: 1 << 20, fields },
    );
    for (const chunk of chunks) scanner.push(chunk);
    scanner.end();
    return seen;
  }

  const compact = logFile(
    '{"a":{"x":[1,2]},"b":"s","n":{"a":"inner, not top-level"}}',
    '{"b":null}',
    '{"requestParameters":{"q":"\\"\\\\"},"a":-1.5E3}',
  );
  const expected = [
    { a: '{"x":[1,2]}', b: '"s"', requestParameters: undefined },
    { a: undefined, b: "null", requestParameters: undefined },
    { a: "-1.5E3", b: undefined, requestParameters: '{"q":"\\"\\\\"}' },
  ];

  it("reports each wanted top-level value, not nested ones", () => {
    expect(ranges([Buffer.from(compact)], ["a", "b", "requestParameters"])).toEqual(expected);
  });

  it("whatever the chunking", () => {
    const bytes = Buffer.from(compact);
    for (let cut = 1; cut < bytes.length; cut += 7) {
      expect(ranges([bytes.subarray(0, cut), bytes.subarray(cut)], ["a", "b", "requestParameters"])).toEqual(expected);
    }
  });

  it("in events rewritten for whitespace or bad UTF-8 (offsets into the rewritten bytes)", () => {
    const spaced = Buffer.from(compact.replace(/,/g, " ,\n ").replace(/:/g, " : "));
    expect(ranges([spaced], ["a", "b"])).toEqual([
      { a: '{"x":[1,2]}', b: '"s"' },
      { a: undefined, b: "null" },
      { a: "-1.5E3", b: undefined },
    ]);
    const bad = Buffer.concat([
      Buffer.from('{"Records":[{"k":"\xff'),
      Buffer.from([0xff]),
      Buffer.from('","a":[1]}]}'),
    ]);
    expect(ranges([bad], ["a"])).toEqual([{ a: "[1]" }]);
  });

  it.each(LAYOUTS)("in %s events, whatever the chunking (offsets into the compact bytes)", (layout) => {
    const bytes = Buffer.from(layOut(compact, layout));
    for (let cut = 1; cut < bytes.length; cut += 3) {
      const chunks = [bytes.subarray(0, cut), bytes.subarray(cut)];
      expect(ranges(chunks, ["a", "b", "requestParameters"]), `cut at ${cut}`).toEqual(expected);
    }
  });

  it("hands no ranges when none are wanted", () => {
    let got: unknown = "unset";
    const scanner = new RecordsScanner((_e, _t, _ts, found) => {
      got = found;
    });
    scanner.push(Buffer.from(logFile('{"a":1}')));
    scanner.end();
    expect(got).toBeUndefined();
  });
});

describe("eventWriter shaping (JSON)", () => {
  const event = '{"eventTime":"2023-07-10T11:47:39Z","eventID":"e1","requestParameters":{"s":"a\\"b\\\\c","u":"é"}}';

  it("--time-field adds epoch seconds, keeping the event's bytes before it", async () => {
    const out = await shape(logFile(event), { timeField: "_time" });
    expect(out.toString()).toBe(`${event.slice(0, -1)},"@timestamp":"2023-07-10T11:47:39Z","_time":1688989659.0}\n`);
    const [millis] = jsonLines(await shape(logFile('{"eventTime":"2023-07-10T11:47:39.25Z"}'), { timeField: "_t" }));
    expect(millis?._t).toBe(1688989659.25);
  });

  it("--time-field is left out when eventTime is missing, not a string, or not a time", async () => {
    const file = logFile('{"a":1}', '{"eventTime":5}', '{"eventTime":"yesterday"}', "{}");
    const records = jsonLines(await shape(file, { timeField: "_time", timestamp: false }));
    expect(records).toEqual([{ a: 1 }, { eventTime: 5 }, { eventTime: "yesterday" }, {}]);
  });

  it("--stringify turns values into their exact JSON text; strings and null stay", async () => {
    const file = logFile(
      event,
      '{"requestParameters":"already","responseElements":null,"additionalEventData":[1,1.0E2,12345678901234567890]}',
      '{"serviceEventDetails":true,"x":{"requestParameters":{"nested":"untouched"}}}',
    );
    const records = jsonLines(await shape(file, { stringify: DEFAULT_STRINGIFY, timestamp: false }));
    expect(records[0]?.requestParameters).toBe('{"s":"a\\"b\\\\c","u":"é"}');
    expect(records[1]).toEqual({
      requestParameters: "already",
      responseElements: null,
      additionalEventData: "[1,1.0E2,12345678901234567890]",
    });
    expect(records[2]).toEqual({ serviceEventDetails: "true", x: { requestParameters: { nested: "untouched" } } });
  });

  it("--stringify keeps the field's position and the rest byte for byte", async () => {
    const e = '{"z":1,"responseElements":{"b":2},"m":"x","requestParameters":[{}],"a":0}';
    const out = await shape(logFile(e), { stringify: ["requestParameters", "responseElements"] });
    expect(out.toString()).toBe('{"z":1,"responseElements":"{\\"b\\":2}","m":"x","requestParameters":"[{}]","a":0}\n');
  });

  it("--source-field names the object (s3 or file), even on an empty event", async () => {
    const s3 = jsonLines(await shape(logFile(event, "{}"), { sourceField: "source" }));
    expect(s3[0]?.source).toEqual({ bucket: "trail-bucket", key: "AWSLogs/1/CloudTrail/x.json.gz" });
    expect(s3[1]).toEqual({ source: { bucket: "trail-bucket", key: "AWSLogs/1/CloudTrail/x.json.gz" } });
    const file = jsonLines(await shape(logFile(event), { sourceField: "from" }, { scheme: "file", path: "/t/a.json" }));
    expect(file[0]?.from).toEqual({ file: "/t/a.json" });
  });

  it("every option together, on every real event, keeps every other field and byte", async () => {
    for (const name of fixtureFiles) {
      const bytes = readFileSync(new URL(name, FIXTURES));
      const plain = jsonLines(await shape(bytes, {}));
      const shaped = jsonLines(
        await shape(
          bytes,
          { timeField: "_time", sourceField: "_source_object", stringify: DEFAULT_STRINGIFY },
          S3_REF,
          4093,
        ),
      );
      expect(shaped.length).toBe(plain.length);
      shaped.forEach((record, i) => {
        const original = plain[i] as Record<string, unknown>;
        const { _time, _source_object, ...rest } = record;
        expect(_time).toBe(Date.parse(original.eventTime as string) / 1000);
        expect(_source_object).toEqual({ bucket: "trail-bucket", key: "AWSLogs/1/CloudTrail/x.json.gz" });
        for (const field of DEFAULT_STRINGIFY) {
          const value = original[field];
          if (value === undefined || value === null || typeof value === "string") expect(rest[field]).toEqual(value);
          else expect(JSON.parse(rest[field] as string)).toEqual(value);
        }
        for (const [key, value] of Object.entries(original)) {
          if (!DEFAULT_STRINGIFY.includes(key)) expect(rest[key]).toEqual(value);
        }
      });
    }
  });

  it("with no shaping the line is the event's bytes plus @timestamp, as before", async () => {
    expect((await shape(logFile(event), {})).toString()).toBe(
      `${event.slice(0, -1)},"@timestamp":"2023-07-10T11:47:39Z"}\n`,
    );
  });
});

describe("eventWriter msgpack output", () => {
  it("writes one map per event with nothing between them, and the shaping fields", async () => {
    const file = logFile(
      '{"eventTime":"2023-07-10T11:47:39.5Z","b":1,"a":{"y":[true,null,"é"]},"requestParameters":{"k":"v"}}',
      '{"eventTime":"2023-07-10T11:47:40Z","n":9007199254740993,"f":1.0E2}',
    );
    const out = await shape(file, {
      outputFormat: "msgpack",
      timeField: "_time",
      sourceField: "src",
      stringify: ["requestParameters"],
    });
    const records = [...decodeMulti(out)] as Record<string, unknown>[];
    expect(records).toHaveLength(2);
    expect(records[0]).toEqual({
      eventTime: "2023-07-10T11:47:39.5Z",
      b: 1,
      a: { y: [true, null, "é"] },
      requestParameters: '{"k":"v"}',
      "@timestamp": "2023-07-10T11:47:39.5Z",
      _time: 1688989659.5,
      src: { bucket: "trail-bucket", key: "AWSLogs/1/CloudTrail/x.json.gz" },
    });
    expect(Object.keys(records[0] as object)).toEqual([
      "eventTime",
      "b",
      "a",
      "requestParameters",
      "@timestamp",
      "_time",
      "src",
    ]);
    // The documented losses: an integer above 2^53 is rounded, 1.0E2 becomes the integer 100.
    expect(records[1]?.n).toBe(9007199254740992);
    expect(records[1]?.f).toBe(100);
    expect(records[1]?._time).toBe(1688989660);
  });

  it("dead-letter records built in code are msgpack maps too", async () => {
    const out = new Collect();
    const sink = new OutputSink(out, { padBytes: 0, format: "msgpack" });
    sink.writeJson({ _tag: "cloudtrail.deadletter", error: { code: "NotJson" }, input: "x" });
    await sink.end();
    expect([...decodeMulti(out.bytes)]).toEqual([
      { _tag: "cloudtrail.deadletter", error: { code: "NotJson" }, input: "x" },
    ]);
  });
});

describe("readMsgpackLines", () => {
  async function collect(chunks: Buffer[]): Promise<{ lines: Line[]; error: unknown }> {
    async function* source(): AsyncGenerator<Buffer> {
      for (const chunk of chunks) yield chunk;
    }
    const lines: Line[] = [];
    try {
      for await (const line of readMsgpackLines(source(), 1 << 20)) lines.push(line);
    } catch (error) {
      return { lines, error };
    }
    return { lines, error: undefined };
  }

  const records = [
    { body: '{"Records":[]}', queue_url: "https://sqs/q", receipt_handle: "r1" },
    { message: "ünïcode" },
    "file:///tmp/a.json",
    [1, 2],
  ];
  const bytes = Buffer.concat(records.map((record) => encode(record)));

  it("turns each value into a line, whatever the chunking", async () => {
    const expected = [JSON.stringify(records[0]), JSON.stringify(records[1]), "file:///tmp/a.json", "[1,2]"];
    for (let cut = 1; cut < bytes.length; cut += 5) {
      const { lines, error } = await collect([
        bytes.subarray(0, cut),
        bytes.subarray(cut, cut + 3),
        bytes.subarray(cut + 3),
      ]);
      expect(error).toBeUndefined();
      expect(lines.map((line) => (line.kind === "line" ? line.text : ""))).toEqual(expected);
      expect(lines.map((line) => line.number)).toEqual([1, 2, 3, 4]);
    }
  });

  it("reads bin values as UTF-8 strings (msgpack-ruby packs binary-encoded strings as bin)", async () => {
    const { lines } = await collect([Buffer.from(encode({ body: Buffer.from("héllo") }))]);
    expect(lines[0]).toMatchObject({ kind: "line", text: '{"body":"héllo"}' });
  });

  it("after bytes that are not msgpack: drains the rest of the input, then fails saying so", async () => {
    let drained = 0;
    async function* source(): AsyncGenerator<Buffer> {
      yield Buffer.from(encode({ a: 1 }));
      yield Buffer.from([0xc1]); // never used in msgpack
      for (let i = 0; i < 3; i++) {
        drained++;
        yield Buffer.from("more");
      }
    }
    const lines: Line[] = [];
    let error: unknown;
    try {
      for await (const line of readMsgpackLines(source(), 1 << 20)) lines.push(line);
    } catch (caught) {
      error = caught;
    }
    expect(lines).toHaveLength(1);
    expect(error).toBeInstanceOf(MsgpackInputError);
    expect(String(error)).toMatch(/not msgpack after record 1/);
    expect(drained).toBe(3);
  });
});

describe("shaping never breaks a line (property)", () => {
  const key = fc.constantFrom("requestParameters", "responseElements", "eventTime", "a", "é", 'q"uote', "0");
  const event = fc.dictionary(key, fc.jsonValue({ maxDepth: 3 }), { maxKeys: 6 });
  const spacing = fc.constantFrom("", " ", "\n\t");

  it("every event leaves as one valid line: the same fields, stringified ones as their JSON, the added ones last", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(event, { maxLength: 5 }),
        spacing,
        fc.integer({ min: 1, max: 64 }),
        async (events, space, chunk) => {
          // Whitespace makes the scanner rewrite events, which moves the field ranges.
          const file = `{"Records":[${events.map((e) => JSON.stringify(e, null, space === "" ? undefined : space)).join(",")}]}`;
          const options = {
            timeField: "_time",
            sourceField: "_src",
            stringify: ["requestParameters", "responseElements"],
          };
          const records = jsonLines(await shape(file, options, S3_REF, chunk));
          expect(records).toHaveLength(events.length);
          records.forEach((record, i) => {
            const original = JSON.parse(JSON.stringify(events[i])) as Record<string, unknown>;
            const { _src, _time, "@timestamp": timestamp, ...rest } = record;
            expect(_src).toEqual({ bucket: "trail-bucket", key: "AWSLogs/1/CloudTrail/x.json.gz" });
            const time = typeof original.eventTime === "string" ? epochSeconds(original.eventTime) : undefined;
            expect(_time).toEqual(time === undefined ? undefined : Number(time));
            // Every string eventTime is copied, escapes and all, whatever the whitespace (JSON.stringify writes no raw
            // control byte, the one thing that keeps eventTime back: scan.ts's rule).
            if (typeof original.eventTime === "string") expect(timestamp).toBe(original.eventTime);
            else expect(timestamp).toBeUndefined();
            for (const [k, v] of Object.entries(original)) {
              if (options.stringify.includes(k) && v !== null && typeof v !== "string") {
                expect(JSON.parse(rest[k] as string)).toEqual(v);
              } else {
                expect(rest[k]).toEqual(v);
              }
            }
            expect(Object.keys(rest).sort()).toEqual(Object.keys(original).sort());
          });
        },
      ),
      { numRuns: 200 },
    );
  });
});

describe("msgpack output of a deeply nested event, built as an object (--source-field, --stringify)", () => {
  it("an event nesting 300 levels (the scanner takes up to 512) is encoded, not failed", async () => {
    const deep = `${"[".repeat(300)}1${"]".repeat(300)}`;
    const file = logFile(`{"eventTime":"2023-07-10T11:47:39Z","deep":${deep}}`);
    const out = await shape(file, { outputFormat: "msgpack", sourceField: "src" });
    const [record] = [...decodeMulti(out)] as Record<string, unknown>[];
    let value: unknown = record?.deep;
    let depth = 0;
    while (Array.isArray(value)) {
      value = value[0];
      depth++;
    }
    expect(depth).toBe(300);
    expect(record?.src).toEqual({ bucket: "trail-bucket", key: "AWSLogs/1/CloudTrail/x.json.gz" });
  });
});
