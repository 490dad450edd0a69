// Tests for the Records scanner: byte-faithful on real CloudTrail files, indifferent to chunking, strict on errors.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { RecordsScanner, ScanError, type ScanErrorCode, type ScanLimits } from "../../src/decode/scan.js";
import { cut, seededRandom } from "../support/bytes.js";
import { LAYOUTS, layOut } from "../support/layout.js";
import { FIXTURE_NAMES, FIXTURES } from "../support/trail.js";

interface Scanned {
  event: string;
  eventTime: string | undefined;
  hasTimestamp: boolean;
}

interface Result {
  events: Scanned[];
  error: ScanError | undefined;
}

/** Scans `chunks` to the end; a ScanError is returned with the events emitted before it, anything else is thrown. */
function scan(chunks: Buffer[], limits?: ScanLimits): Result {
  const events: Scanned[] = [];
  const scanner = new RecordsScanner((event, eventTime, hasTimestamp) => {
    events.push({ event: event.toString("utf8"), eventTime: eventTime?.toString("utf8"), hasTimestamp });
  }, limits);
  try {
    for (const chunk of chunks) scanner.push(chunk);
    scanner.end();
  } catch (error) {
    if (!(error instanceof ScanError)) throw error;
    return { events, error };
  }
  expect(scanner.events).toBe(events.length);
  return { events, error: undefined };
}

const bytes = (text: string | Buffer): Buffer => (typeof text === "string" ? Buffer.from(text, "utf8") : text);
const scanText = (text: string | Buffer, limits?: ScanLimits): Result => scan([bytes(text)], limits);
const eventsOf = (text: string | Buffer): string[] => {
  const result = scanText(text);
  expect(result.error).toBeUndefined();
  return result.events.map((e) => e.event);
};

const files = FIXTURE_NAMES.map((name) => ({ name, data: readFileSync(join(FIXTURES, name)) }));
const bySize = [...files].sort((a, b) => a.data.length - b.data.length);

describe("real CloudTrail files (invictus-ir)", () => {
  it("has fixtures to test with", () => {
    expect(files.length).toBeGreaterThan(0);
  });

  it.each(files.map((f) => [f.name, f.data] as const))("%s: every event is its original bytes", (_name, data) => {
    const parsed = JSON.parse(data.toString("utf8")) as { Records: Record<string, unknown>[] };
    const { events, error } = scan([data]);
    expect(error).toBeUndefined();
    expect(events).toHaveLength(parsed.Records.length);
    // The files are compact `{"Records":[e,e,…]}`: putting the events back together must give the file again.
    expect(`{"Records":[${events.map((e) => e.event).join(",")}]}`).toBe(data.toString("utf8").trimEnd());
    events.forEach((e, i) => {
      const original = parsed.Records[i] as Record<string, unknown>;
      expect(JSON.parse(e.event)).toEqual(original);
      expect(e.eventTime).toBe(original.eventTime);
      expect(e.hasTimestamp).toBe(false);
    });
  });

  it("gives the same events when the smallest file is cut at every position (and one byte at a time)", () => {
    const { data } = bySize[0] as (typeof files)[number];
    const whole = scan([data]);
    for (let at = 1; at < data.length; at++) {
      expect(scan(cut(data, [at])), `cut at ${at}`).toEqual(whole);
    }
    const oneByOne = Array.from({ length: data.length }, (_, i) => data.subarray(i, i + 1));
    expect(scan(oneByOne)).toEqual(whole);
  });

  it("gives the same events when every file is cut at random positions", () => {
    const next = seededRandom(20230710);
    for (const { name, data } of files) {
      const whole = scan([data]);
      for (let round = 0; round < 4; round++) {
        const count = 1 + Math.floor(next() * 200);
        const points = Array.from({ length: count }, () => Math.floor(next() * data.length));
        expect(scan(cut(data, points)), `${name} round ${round}`).toEqual(whole);
      }
    }
  });

  it("turns a pretty-printed file into the same compact events", () => {
    const { data } = bySize[Math.floor(bySize.length / 2)] as (typeof files)[number];
    const parsed = JSON.parse(data.toString("utf8"));
    const pretty = Buffer.from(JSON.stringify(parsed, null, 2).replace(/\n/g, "\r\n\t"));
    expect(scan([pretty])).toEqual(scan([data]));
  });
});

// An event with whitespace leaves as one copy of the bytes between the runs (scan.ts's `squeeze`): the same bytes as
// the compact event, however the file is laid out and cut.
describe("whitespace outside strings (json.dumps, pretty-printed)", () => {
  const laidOut = (data: Buffer, layout: (typeof LAYOUTS)[number]): Buffer =>
    Buffer.from(layOut(data.toString("utf8"), layout), "utf8");

  it.each(LAYOUTS)("%s: every real file gives its compact events, whole and cut at random positions", (layout) => {
    const next = seededRandom(20231127);
    for (const { name, data } of files) {
      const whole = scan([data]);
      const spaced = laidOut(data, layout);
      expect(scan([spaced]), name).toEqual(whole);
      for (let round = 0; round < 3; round++) {
        const count = 1 + Math.floor(next() * 200);
        const points = Array.from({ length: count }, () => Math.floor(next() * spaced.length));
        expect(scan(cut(spaced, points)), `${name} round ${round}`).toEqual(whole);
      }
    }
  });

  it.each(LAYOUTS)("%s: the smallest file cut at every position, and one byte at a time", (layout) => {
    const { data } = bySize[0] as (typeof files)[number];
    const whole = scan([data]);
    const spaced = laidOut(data, layout);
    for (let at = 1; at < spaced.length; at++) expect(scan(cut(spaced, [at])), `cut at ${at}`).toEqual(whole);
    const oneByOne = Array.from({ length: spaced.length }, (_, i) => spaced.subarray(i, i + 1));
    expect(scan(oneByOne)).toEqual(whole);
  });

  // Runs between whitespace are copied four bytes at a time, the rest byte by byte, long ones natively (64 bytes):
  // lengths on each side of every step.
  it.each([0, 1, 2, 3, 4, 5, 7, 8, 9, 12, 13, 62, 63, 64, 65, 200])(
    "a run of %i bytes between whitespace",
    (length) => {
      const text = "x".repeat(length);
      const event = `{"eventTime":"2023-07-10T11:47:39Z","k":"${text}","n":[1,-2.5E3,"${text}",{}],"${text}":null}`;
      const compact = scanText(`{"Records":[${event},{"b":true}]}`);
      expect(compact.events.map((e) => e.event)).toEqual([event, '{"b":true}']);
      for (const layout of LAYOUTS) {
        const spaced = Buffer.from(layOut(`{"Records":[${event},{"b":true}]}`, layout));
        expect(scan([spaced]), layout).toEqual(compact);
        for (let at = 1; at < spaced.length; at += 5)
          expect(scan(cut(spaced, [at])), `${layout} ${at}`).toEqual(compact);
      }
    },
  );

  it("hands on an eventTime with escapes as written, as in a compact event", () => {
    const event = String.raw`{"eventTime":"2023-07-10\u0054 11:47:39Z","a":1}`;
    for (const layout of LAYOUTS) {
      const { events } = scanText(layOut(`{"Records":[${event}]}`, layout));
      expect(events).toEqual([{ event, eventTime: String.raw`2023-07-10\u0054 11:47:39Z`, hasTimestamp: false }]);
    }
  });

  it("escapes a raw control byte in an event that also has whitespace; its eventTime then goes only when plain", () => {
    const text =
      '{ "Records": [ { "eventTime": "t\\"1", "s": "a\\tb\\u0001", "raw": "x\ty" }, { "eventTime": "t\x01" } ] }';
    expect(scanText(text).events).toEqual([
      {
        event: '{"eventTime":"t\\"1","s":"a\\tb\\u0001","raw":"x\\u0009y"}',
        eventTime: undefined,
        hasTimestamp: false,
      },
      { event: '{"eventTime":"t\\u0001"}', eventTime: undefined, hasTimestamp: false },
    ]);
  });

  it("compacts an event with more whitespace runs than the scanner notes (65,536), and the next one as usual", () => {
    const many = `{"n": [${Array.from({ length: 70_000 }, (_, i) => i % 10).join(", ")}]}`;
    const { events, error } = scanText(`{"Records": [${many}, {"b": [1, 2]}]}`);
    expect(error).toBeUndefined();
    expect(events.map((e) => e.event)).toEqual([many.replace(/ /g, ""), '{"b":[1,2]}']);
  });

  it("hands on events larger than the kept scratch buffer (1 MiB) between smaller ones", () => {
    const big = `{"a": "${"y".repeat(1536 * 1024)}", "b": [1, 2]}`;
    const small = '{"c": {"d": "e"}}';
    const text = `{"Records": [${small}, ${big}, ${small}, ${big.replace("y", "z")}, ${small}]}`;
    const compact = (e: string): string => e.replace(/", "|": |, /g, (m) => m.replace(/ /g, ""));
    const expected = [small, big, small, big.replace("y", "z"), small].map(compact);
    expect(scanText(text).events.map((e) => e.event)).toEqual(expected);
    const data = Buffer.from(text);
    const chunks = Array.from({ length: Math.ceil(data.length / 65536) }, (_, i) =>
      data.subarray(i * 65536, (i + 1) * 65536),
    );
    expect(scan(chunks).events.map((e) => e.event)).toEqual(expected);
  });
});

describe("streaming", () => {
  it("hands on an event complete in the first chunk before push returns, the rest by end()", () => {
    const seen: string[] = [];
    const scanner = new RecordsScanner((event) => seen.push(event.toString()));
    scanner.push(Buffer.from('{"Records":[{"a":1},{"b":'));
    expect(seen).toEqual(['{"a":1}']);
    scanner.push(Buffer.from("2}]}"));
    scanner.end();
    expect(seen).toEqual(['{"a":1}', '{"b":2}']);
  });

  it("hands on events and eventTimes as Buffers", () => {
    const data = Buffer.from('{"Records":[{"eventTime":"2023-07-10T11:47:39Z","a":[1,true]},{"b":"é"}]}');
    const got: { event: Buffer; time: Buffer | undefined }[] = [];
    const scanner = new RecordsScanner((event, time) => got.push({ event, time }));
    scanner.push(data);
    scanner.end();
    const [first, second] = got as [(typeof got)[0], (typeof got)[0]];
    for (const view of [first.event, first.time as Buffer, second.event]) {
      expect(Buffer.isBuffer(view)).toBe(true);
      expect(view).toBeInstanceOf(Buffer);
    }
    expect(first.event.toString()).toBe('{"eventTime":"2023-07-10T11:47:39Z","a":[1,true]}');
    expect(first.time?.toString("latin1")).toBe("2023-07-10T11:47:39Z");
    expect(second.event.subarray(5, -1).toString()).toBe('"é"');
    expect(second.event.equals(Buffer.from('{"b":"é"}'))).toBe(true);
    expect(second.time).toBeUndefined();
  });

  it("reads a large event arriving in many small chunks", () => {
    const big = `{"eventTime":"t","requestParameters":{"policy":"${"p".repeat(2 * 1024 * 1024)}"},"n":1.5E3}`;
    const data = Buffer.from(`{"Records":[{"a":1},${big},{"b":2}]}`);
    const chunks = Array.from({ length: Math.ceil(data.length / 2048) }, (_, i) =>
      data.subarray(i * 2048, i * 2048 + 2048),
    );
    const { events, error } = scan(chunks);
    expect(error).toBeUndefined();
    expect(events.map((e) => e.event)).toEqual(['{"a":1}', big, '{"b":2}']);
    expect(events[1]?.eventTime).toBe("t");
  });

  it("hands on every event by end() whatever the chunking", () => {
    const seen: string[] = [];
    const scanner = new RecordsScanner((event) => seen.push(event.toString()));
    for (const part of ['{"Records":[{"a":"xxxxxxxxxx', `${"x".repeat(34)}"},`, '{"b":1},', '{"c":1}]}']) {
      scanner.push(Buffer.from(part));
    }
    scanner.end();
    expect(seen).toEqual([`{"a":"${"x".repeat(44)}"}`, '{"b":1}', '{"c":1}']);
  });

  // BUG: after a value carried across chunks has been read in full, `carryNeed` is not reset, so later chunks
  // (with nothing carried) are only read once that many bytes have piled up: an event wholly inside such a chunk is
  // not handed on before push returns (push's documented contract), only later or at end(). Input, pushed one by
  // one: '{"Records":[{"a":"xxxxxxxxxx', 'x'*34 + '"},', '{"b":1},', '{"c":1}]}' — after the third push
  // {"b":1} has not been handed on (and after the fourth neither has {"c":1}).
  it("hands on events complete in a chunk before push returns, after an event spanned chunks", () => {
    const seen: string[] = [];
    const scanner = new RecordsScanner((event) => seen.push(event.toString()));
    scanner.push(Buffer.from('{"Records":[{"a":"xxxxxxxxxx'));
    scanner.push(Buffer.from(`${"x".repeat(34)}"},`));
    expect(seen).toHaveLength(1);
    scanner.push(Buffer.from('{"b":1},'));
    expect(seen).toHaveLength(2);
    scanner.push(Buffer.from('{"c":1}]}'));
    expect(seen).toHaveLength(3);
  });
});

describe("byte faithfulness", () => {
  it("keeps number literals verbatim", () => {
    const event = '{"a":1.688560107857E9,"b":12345678901234567890123,"c":-0.0e-0,"d":[1E+2,0,-1,2.50],"e":1e400}';
    expect(eventsOf(`{"Records":[${event}]}`)).toEqual([event]);
  });

  it("keeps escapes verbatim", () => {
    const event = String.raw`{"s":"\"\\\/\b\f\n\r\t\u00e9\uD83D\uDE00\ud800","k\u0041":"x"}`;
    expect(eventsOf(`{"Records":[${event}]}`)).toEqual([event]);
  });

  it("keeps UTF-8 as it is", () => {
    const event = '{"userAgent":"ログ 日本語 😀 é"}';
    expect(eventsOf(`{"Records":[${event}]}`)).toEqual([event]);
  });

  it("removes whitespace outside strings only", () => {
    const pretty =
      '\r\n{ "Records" :\t[\n  { "a b" : " x  y ",\n "c" : [ 1 , 2 , { } , [ ] ] ,"d":"\\n \\t" } ,\n {} ] }\n';
    expect(eventsOf(pretty)).toEqual(['{"a b":" x  y ","c":[1,2,{},[]],"d":"\\n \\t"}', "{}"]);
  });

  it("hands on every element of Records, including empty objects and nested Records", () => {
    const text = '{"Records":[{},{"Records":[{"inner":1}]},{"x":{"Records":[]}}]}';
    expect(eventsOf(text)).toEqual(["{}", '{"Records":[{"inner":1}]}', '{"x":{"Records":[]}}']);
  });

  it("only reads the top-level Records, wherever it is among other keys", () => {
    const text = '{"a":{"Records":[{"no":1}]},"Records":[{"yes":1}],"b":[{"no":2}]}';
    expect(eventsOf(text)).toEqual(['{"yes":1}']);
  });

  it("accepts an empty Records array", () => {
    expect(scanText('{"Records":[]}')).toEqual({ events: [], error: undefined });
  });
});

describe("eventTime and @timestamp", () => {
  it.each<[string, string, string | undefined, boolean]>([
    ["eventTime string", '{"eventTime":"2023-07-10T11:42:36Z","a":1}', "2023-07-10T11:42:36Z", false],
    [
      "eventTime last",
      '{"a":{"eventTime":"nested"},"eventTime":"2023-07-10T11:42:36Z"}',
      "2023-07-10T11:42:36Z",
      false,
    ],
    ["eventTime only nested", '{"a":{"eventTime":"2023-07-10T11:42:36Z"}}', undefined, false],
    ["eventTime not a string", '{"eventTime":1688989356}', undefined, false],
    ["eventTime as a value, not a key", '{"a":"eventTime","b":"x"}', undefined, false],
    ["eventTime with an escape kept raw", '{"eventTime":"2023\\u002d07"}', "2023\\u002d07", false],
    ["@timestamp present", '{"@timestamp":"2023-07-10T11:42:36Z"}', undefined, true],
    ["@timestamp and eventTime", '{"eventTime":"t1","@timestamp":"t2"}', "t1", true],
    ["@timestamp that is not a string still counts", '{"@timestamp":null,"eventTime":"t"}', "t", true],
    ["@timestamp only nested", '{"a":{"@timestamp":"x"},"eventTime":"t"}', "t", false],
    ["@timestamp as a value", '{"a":"@timestamp"}', undefined, false],
    ["a key that starts like eventTime", '{"eventTimeX":"t","eventTim":"u"}', undefined, false],
  ])("%s", (_name, event, eventTime, hasTimestamp) => {
    const padded = `{"eventTime":"outside","@timestamp":"outside","Records":[${event},{"z":0}]}`;
    const { events, error } = scanText(padded);
    expect(error).toBeUndefined();
    expect(events[0]).toEqual({ event, eventTime, hasTimestamp });
    expect(events[1]).toEqual({ event: '{"z":0}', eventTime: undefined, hasTimestamp: false });
  });

  it("finds eventTime and @timestamp when cut at every position", () => {
    const data = Buffer.from('{"Records":[{"@timestamp":"x","eventTime":"2023-07-10T11:42:36Z"},{"eventTime":"y"}]}');
    for (let a = 1; a < data.length; a++) {
      for (let b = a + 1; b < data.length; b += 3) {
        expect(scan(cut(data, [a, b])).events, `cut at ${a}, ${b}`).toEqual([
          {
            event: '{"@timestamp":"x","eventTime":"2023-07-10T11:42:36Z"}',
            eventTime: "2023-07-10T11:42:36Z",
            hasTimestamp: true,
          },
          { event: '{"eventTime":"y"}', eventTime: "y", hasTimestamp: false },
        ]);
      }
    }
  });

  it("finds a long eventTime fed one byte at a time", () => {
    const data = Buffer.from(`{"Records":[{"eventTime":"${"x".repeat(100)}"}]}`);
    const oneByOne = Array.from({ length: data.length }, (_, i) => data.subarray(i, i + 1));
    expect(scan(oneByOne)).toEqual(scan([data]));
    expect(scan([data]).events[0]?.eventTime).toBe("x".repeat(100));
  });
});

describe("repairs that keep every line valid JSON", () => {
  it("replaces bytes that are not UTF-8 with U+FFFD", () => {
    const data = Buffer.concat([
      Buffer.from('{"Records":[{"a":"x'),
      Buffer.from([0xff, 0xc3]),
      Buffer.from('","b'),
      Buffer.from([0xed, 0xa0, 0x80]), // a UTF-8-encoded lone surrogate
      Buffer.from('":"ok"},{"c":"clean é"}]}'),
    ]);
    const { events, error } = scan([data]);
    expect(error).toBeUndefined();
    expect(events.map((e) => JSON.parse(e.event))).toEqual([
      { a: "x\ufffd\ufffd", "b\ufffd\ufffd\ufffd": "ok" },
      { c: "clean é" },
    ]);
    for (const e of events) expect(Buffer.from(e.event).equals(Buffer.from(e.event, "utf8"))).toBe(true);
  });

  it("repairs invalid UTF-8 in eventTime too", () => {
    const data = Buffer.concat([
      Buffer.from('{"Records":[{"eventTime":"2023'),
      Buffer.from([0xfe]),
      Buffer.from('"}]}'),
    ]);
    const { events } = scan([data]);
    expect(events[0]?.eventTime).toBe("2023\ufffd");
    expect(JSON.parse(events[0]?.event ?? "")).toEqual({ eventTime: "2023\ufffd" });
  });

  it("repairs a multibyte character cut short at a chunk boundary the same as in one chunk", () => {
    const data = Buffer.concat([Buffer.from('{"Records":[{"a":"'), Buffer.from([0xe3, 0x83]), Buffer.from('"}]}')]);
    const whole = scan([data]);
    expect(JSON.parse(whole.events[0]?.event ?? "")).toEqual({ a: "\ufffd" });
    for (let at = 1; at < data.length; at++) expect(scan(cut(data, [at]))).toEqual(whole);
  });

  it.each([0x00, 0x01, 0x09, 0x0a, 0x0d, 0x1f])("escapes a raw control byte 0x%s inside a string", (byte) => {
    const data = Buffer.concat([Buffer.from('{"Records":[{"a":"x'), Buffer.from([byte]), Buffer.from('y"}]}')]);
    const hex = byte.toString(16).padStart(2, "0");
    const { events, error } = scan([data]);
    expect(error).toBeUndefined();
    expect(events[0]?.event).toBe(`{"a":"x\\u00${hex}y"}`);
    expect(JSON.parse(events[0]?.event ?? "")).toEqual({ a: `x${String.fromCharCode(byte)}y` });
  });

  it("escapes a raw control byte in a key, and at a chunk boundary", () => {
    const data = Buffer.from('{"Records":[{"k\ney":"a\tb"}]}');
    const whole = scan([data]);
    expect(whole.events[0]?.event).toBe('{"k\\u000aey":"a\\u0009b"}');
    for (let at = 1; at < data.length; at++) expect(scan(cut(data, [at]))).toEqual(whole);
  });

  it("does not use an eventTime holding a raw control byte", () => {
    const { events } = scanText('{"Records":[{"eventTime":"2023\n"}]}');
    expect(events[0]).toEqual({ event: '{"eventTime":"2023\\u000a"}', eventTime: undefined, hasTimestamp: false });
  });
});

describe("documents", () => {
  it.each([
    ["back to back", '{"Records":[{"a":1}]}{"Records":[{"b":2}]}'],
    ["separated by newlines", '{"Records":[{"a":1}]}\n{"Records":[{"b":2}]}\n'],
    ["the first without Records", '{"x":1} {"Records":[{"a":1},{"b":2}]}'],
  ])("accepts several documents %s", (_name, text) => {
    expect(eventsOf(text)).toEqual(['{"a":1}', '{"b":2}']);
  });

  it("accepts a byte order mark", () => {
    const data = Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from('{"Records":[{"a":1}]}')]);
    expect(scan([data])).toEqual({
      events: [{ event: '{"a":1}', eventTime: undefined, hasTimestamp: false }],
      error: undefined,
    });
  });

  it.each([1, 2])("accepts a byte order mark cut after byte %i", (at) => {
    const data = Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from('{"Records":[{"a":1}]}')]);
    expect(scan(cut(data, [at]))).toEqual(scan([data]));
    expect(scan(cut(data, [at])).events).toHaveLength(1);
  });

  it("rejects a byte order mark alone or cut short", () => {
    expect(scanText(Buffer.from([0xef, 0xbb, 0xbf])).error?.code).toMatch(/^(Truncated|NoRecords)$/);
    expect(scanText(Buffer.from([0xef, 0xbb])).error).toBeDefined();
  });
});

describe("errors", () => {
  it.each<[string, string | Buffer, ScanErrorCode, number]>([
    ["empty file", "", "Truncated", 0],
    ["whitespace only", " \n\t", "Truncated", 0],
    ["cut in the middle of an event", '{"Records":[{"a":1},{"b":', "Truncated", 1],
    ["cut inside a string", '{"Records":[{"a":"xx', "Truncated", 0],
    ["cut inside a number", '{"Records":[{"a":12', "Truncated", 0],
    ["cut after the last event", '{"Records":[{"a":1}', "Truncated", 1],
    ["cut before the closing brace", '{"Records":[{"a":1}]', "Truncated", 1],
    ["not JSON: braces around a word", "{hello}", "InvalidJson", 0],
    ["single quotes", "{'Records':[]}", "InvalidJson", 0],
    ["a leading zero", '{"Records":[{"a":01}]}', "InvalidJson", 0],
    ["a bare minus", '{"Records":[{"a":-}]}', "InvalidJson", 0],
    ["a dot without digits", '{"Records":[{"a":1.}]}', "InvalidJson", 0],
    ["an exponent without digits", '{"Records":[{"a":1e}]}', "InvalidJson", 0],
    ["a plus sign", '{"Records":[{"a":+1}]}', "InvalidJson", 0],
    ["a misspelt literal", '{"Records":[{"a":tru}]}', "InvalidJson", 0],
    ["NaN", '{"Records":[{"a":NaN}]}', "InvalidJson", 0],
    ["an invalid escape", '{"Records":[{"a":"\\x"}]}', "InvalidJson", 0],
    ["an invalid unicode escape", '{"Records":[{"a":"\\u12G4"}]}', "InvalidJson", 0],
    ["a trailing comma in an object", '{"Records":[{"a":1,}]}', "InvalidJson", 0],
    ["a trailing comma in Records", '{"Records":[{"a":1},]}', "InvalidJson", 1],
    ["a missing colon", '{"Records":[{"a" 1}]}', "InvalidJson", 0],
    ["a missing comma", '{"Records":[{"a":1 "b":2}]}', "InvalidJson", 0],
    ["a mismatched bracket", '{"Records":[{"a":[1}]}', "InvalidJson", 0],
    ["a key that is not a string", '{"Records":[{a:1}]}', "InvalidJson", 0],
    ["trailing garbage after the document", '{"Records":[{"a":1}]} x', "InvalidJson", 1],
    ["a second document that is an array", '{"Records":[{"a":1}]}[]', "InvalidJson", 1],
    ["a top-level array", '[{"a":1}]', "NoRecords", 0],
    ["a top-level string", '"Records"', "NoRecords", 0],
    ["no Records key", '{"records":[{"a":1}]}', "NoRecords", 0],
    [
      "a digest file",
      '{"awsAccountId":"111122223333","digestStartTime":"2024-03-05T11:00:00Z","logFiles":[{"s3Object":"x"}]}',
      "NoRecords",
      0,
    ],
    ["Records not an array", '{"Records":{"a":1}}', "NoRecords", 0],
    ["Records null", '{"Records":null}', "NoRecords", 0],
    ["non-object elements after good ones", '{"Records":[{"a":1},2,"x",null,[{"no":1}],{"b":2}]}', "InvalidEvent", 2],
  ])("%s: %s after %i event(s)", (_name, text, code, emitted) => {
    const { events, error } = scanText(text);
    expect(error?.code).toBe(code);
    expect(error?.name).toBe("ScanError");
    expect(events).toHaveLength(emitted);
    for (const e of events) expect(() => JSON.parse(e.event)).not.toThrow();
  });

  // BUG: a file whose first byte cannot start any JSON value is reported as NoRecords with the message "the file
  // is JSON but not an object", which is false. Inputs: `hello`, `<?xml version="1.0"?><Error/>`, `PK\x03\x04`
  // (a zip file) → ScanError code NoRecords; expected InvalidJson.
  it.each(["hello", '<?xml version="1.0"?><Error/>', "PK\u0003\u0004"])(
    "not JSON at all (%j) is InvalidJson",
    (text) => {
      expect(scanText(text).error?.code).toBe("InvalidJson");
    },
  );

  it("says where the error is", () => {
    expect(scanText('{"Records":[{"a":1}]} x').error?.message).toMatch(/at byte 22/);
    expect(scan(cut(Buffer.from('{"Records":[{"a":1}]} x'), [5, 21])).error?.message).toMatch(/at byte 22/);
  });

  it("stops at the first error: later events are not emitted", () => {
    const { events, error } = scanText('{"Records":[{"a":1},{"b":!},{"c":3}]}');
    expect(error?.code).toBe("InvalidJson");
    expect(events.map((e) => e.event)).toEqual(['{"a":1}']);
  });

  describe("EventTooLarge", () => {
    const big = `{"a":"${"x".repeat(100)}"}`; // 108 bytes
    const text = `{"Records":[{"small":1},${big}]}`;

    it("rejects an event over maxEventBytes in one chunk", () => {
      const { events, error } = scanText(text, { maxEventBytes: 100 });
      expect(error?.code).toBe("EventTooLarge");
      expect(events.map((e) => e.event)).toEqual(['{"small":1}']);
    });

    it("rejects an event over maxEventBytes arriving in small chunks", () => {
      const data = Buffer.from(text);
      const chunks = Array.from({ length: Math.ceil(data.length / 7) }, (_, i) => data.subarray(i * 7, i * 7 + 7));
      expect(scan(chunks, { maxEventBytes: 100 }).error?.code).toBe("EventTooLarge");
    });

    it("accepts an event of exactly maxEventBytes", () => {
      expect(scanText(`{"Records":[${big}]}`, { maxEventBytes: big.length }).events.map((e) => e.event)).toEqual([big]);
      expect(scanText(`{"Records":[${big}]}`, { maxEventBytes: big.length - 1 }).error?.code).toBe("EventTooLarge");
    });

    // BUG: a top-level value other than Records that is larger than maxEventBytes is accepted when it arrives in
    // one chunk but fails the whole file with EventTooLarge ("a value is larger than 50 bytes") when it is cut
    // across chunks (the carried bytes are checked, the in-chunk value is not). Input, maxEventBytes 50:
    // `{"other":"` + "y".repeat(100) + `","Records":[{"a":1}]}` — one chunk → event {"a":1}; 1-byte chunks → error.
    it("treats a large value outside Records the same however the file is cut", () => {
      const data = Buffer.from(`{"other":"${"y".repeat(100)}","Records":[{"a":1}]}`);
      const oneByOne = Array.from({ length: data.length }, (_, i) => data.subarray(i, i + 1));
      expect(scan(oneByOne, { maxEventBytes: 50 })).toEqual(scan([data], { maxEventBytes: 50 }));
    });
  });

  describe("nesting", () => {
    const nested = (levels: number): string => `{"Records":[{"a":${"[".repeat(levels)}${"]".repeat(levels)}}]}`;

    it("accepts nesting up to the limit", () => {
      // depth: document 1, Records 2, event 3, then the arrays.
      const { events, error } = scanText(nested(509));
      expect(error).toBeUndefined();
      expect(events).toHaveLength(1);
    });

    it("rejects nesting deeper than 512 without a stack overflow", () => {
      expect(scanText(nested(510)).error?.code).toBe("InvalidJson");
      expect(scanText(nested(100_000)).error?.message).toMatch(/nesting deeper than 512/);
    });
  });
});

describe("spare tail (the sentinel written after a buffer instead of copying it)", () => {
  it("marks only dedicated allocations with room after the data, never pooled small buffers", async () => {
    const { allocWithSpareTail, hasSpareTail } = await import("../../src/shared/buffers.js");
    // From Node's shared pool: 8 KiB on Node 20, 64 KiB on Node 24, where a size test would take it for dedicated.
    const pooled = Buffer.from('{"Records":[]}');
    expect(hasSpareTail(pooled)).toBe(false);
    expect(hasSpareTail(Buffer.allocUnsafe(100))).toBe(false);
    // Dedicated, with a byte after the view, but not this program's allocation: not trusted either.
    expect(hasSpareTail(Buffer.allocUnsafeSlow(70_001).subarray(0, 70_000))).toBe(false);
    const own = allocWithSpareTail(70_000);
    expect(own.length).toBe(70_000);
    expect(hasSpareTail(own)).toBe(true);
    expect(hasSpareTail(own.subarray(0, 10))).toBe(true);
    expect(hasSpareTail(Buffer.from(own.buffer, own.byteOffset, own.length + 1))).toBe(false); // no byte after it
    expect(hasSpareTail(allocWithSpareTail(14))).toBe(true); // small ones are dedicated too
  });

  const json = Buffer.from(
    `{"Records":[${Array.from({ length: 2000 }, (_, i) => `{"eventTime":"t${i}","n":${i}}`).join(",")}]}`,
  );
  const collect = async (buffer: Buffer): Promise<string[]> => {
    const { RecordsScanner } = await import("../../src/decode/scan.js");
    const out: string[] = [];
    const scanner = new RecordsScanner((event, time) => out.push(`${event.toString()} ${time?.toString()}`));
    scanner.push(buffer);
    scanner.end();
    return out;
  };

  it("scans a buffer with a spare tail exactly as a copied one", async () => {
    const { allocWithSpareTail } = await import("../../src/shared/buffers.js");
    const own = allocWithSpareTail(json.length + 5).subarray(0, json.length);
    json.copy(own);
    expect(await collect(own)).toEqual(await collect(Buffer.from(json)));
    expect(own.equals(json)).toBe(true);
  });

  it("borrows the last byte of a buffer it holds alone, puts it back, and never writes past its end", async () => {
    const { markExclusive } = await import("../../src/shared/buffers.js");
    for (const text of [json, Buffer.from(`${json.toString()}\n`), Buffer.from('{"Records":[{"a":1}]}')]) {
      // Two views side by side in one allocation, as in a pool: scanning the first must not touch the second.
      const memory = Buffer.alloc(text.length * 2);
      const first = markExclusive(memory.subarray(0, text.length));
      const second = memory.subarray(text.length);
      text.copy(first);
      text.copy(second);
      expect(await collect(first)).toEqual(await collect(Buffer.from(text)));
      expect(first.equals(text)).toBe(true);
      expect(second.equals(text)).toBe(true);
    }
  });

  it("reports a document cut short the same way when its last byte was borrowed", async () => {
    const { markExclusive } = await import("../../src/shared/buffers.js");
    const { RecordsScanner } = await import("../../src/decode/scan.js");
    const cut = json.subarray(0, json.length - 7);
    const errorOf = (buffer: Buffer): unknown => {
      const scanner = new RecordsScanner(() => {});
      try {
        scanner.push(buffer);
        scanner.end();
      } catch (error) {
        return error;
      }
      return undefined;
    };
    const copy = Buffer.from(cut);
    const borrowed = markExclusive(Buffer.from(cut));
    const expected = errorOf(copy) as Error;
    expect(expected).toMatchObject({ code: "Truncated" });
    expect(errorOf(borrowed)).toEqual(expected);
    expect(borrowed.equals(cut)).toBe(true);
  });
});
