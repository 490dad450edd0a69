// msgpack-json.ts: the msgpack it writes from JSON bytes is byte for byte what @msgpack/msgpack writes for JSON.parse of
// the same text (table and property tests), and the msgpack and forward writers of format.ts give the records the
// object path gave.
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { decode, decodeMulti, Encoder } from "@msgpack/msgpack";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { JsonToMsgpack } from "../../src/format/msgpack-json.js";

const encoder = new Encoder();

function transcode(text: string): Buffer {
  const json = Buffer.from(text, "utf8");
  const t = new JsonToMsgpack();
  const size = t.measure(json);
  const out = Buffer.alloc(size);
  expect(t.write(json, out, 0)).toBe(size);
  return out;
}

const reference = (text: string) => Buffer.from(encoder.encode(JSON.parse(text)));

describe("JsonToMsgpack", () => {
  it.each([
    ["{}"],
    ["[]"],
    ['{"a":1}'],
    [
      "[1,-1,0,-0,127,128,255,256,65535,65536,4294967295,4294967296,-32,-33,-128,-129,-32768,-32769,-2147483648,-2147483649]",
    ],
    ["[9007199254740991,9007199254740992,-9007199254740991,123456789012345678901234567890]"],
    ["[1.5,1.0,1e3,1E-3,-2.5e+10,1.688560107857E9,0.1,100000000000000000000]"],
    ['["","a","\\"","\\\\","\\/","\\b\\f\\n\\r\\t","\\u00e9","\\ud83d\\ude00","é日本語😀"]'],
    [`["${"x".repeat(31)}","${"x".repeat(32)}","${"x".repeat(255)}","${"x".repeat(256)}","${"x".repeat(70000)}"]`],
    ['[true,false,null,[[]],{},{"a":{"b":[1,{"c":null}]}}]'],
    [`{${Array.from({ length: 16 }, (_, i) => `"k${i}":${i}`).join(",")}}`],
    [`[${Array.from({ length: 70000 }, (_, i) => i % 7).join(",")}]`],
    [' { "spaced" : [ 1 , 2 ] , "b" : true } '],
  ])("%# is what JSON.parse and @msgpack/msgpack give", (text) => {
    expect(transcode(text).equals(reference(text))).toBe(true);
  });

  it("every event of the real CloudTrail fixtures", () => {
    const dir = fileURLToPath(new URL("../fixtures/invictus-cloudtrail/", import.meta.url));
    for (const name of readdirSync(dir).filter((n) => n.endsWith(".json"))) {
      const { Records } = JSON.parse(readFileSync(join(dir, name), "utf8")) as { Records: unknown[] };
      for (const event of Records) {
        const text = JSON.stringify(event);
        expect(transcode(text).equals(reference(text)), name).toBe(true);
      }
    }
  });

  it("any JSON value without duplicate keys: the same bytes (property)", () => {
    fc.assert(
      fc.property(fc.jsonValue({ maxDepth: 4 }), (value) => {
        const text = JSON.stringify(value);
        expect(transcode(text).equals(reference(text))).toBe(true);
      }),
      { numRuns: 500 },
    );
  });

  it("a duplicate key is kept as written: decoded, the last value wins, as in JSON.parse and in Ruby", () => {
    const decoded = decode(transcode('{"a":1,"b":2,"a":3}')) as Record<string, number>;
    expect(decoded).toEqual(JSON.parse('{"a":1,"b":2,"a":3}'));
  });

  it("is reusable: one instance, many values", () => {
    const t = new JsonToMsgpack();
    const out: Buffer[] = [];
    for (const text of ['{"a":[1,2,3]}', '"s"', "[]", '{"b":{"c":"\\n"}}']) {
      const json = Buffer.from(text);
      const buffer = Buffer.alloc(t.measure(json));
      t.write(json, buffer, 0);
      out.push(buffer);
    }
    expect([...decodeMulti(Buffer.concat(out))]).toEqual([{ a: [1, 2, 3] }, "s", [], { b: { c: "\n" } }]);
  });
});
