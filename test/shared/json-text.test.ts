// json-text.ts: the JSON text of any parsed or decoded value, however deep, as JSON.stringify would write it.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { jsonText, nestsDeeperThan, textNestsDeeperThan } from "../../src/shared/json-text.js";

describe("jsonText", () => {
  it("writes what JSON.stringify writes, and counts its bytes", () => {
    fc.assert(
      fc.property(fc.jsonValue(), (value) => {
        const expected = JSON.stringify(value);
        expect(jsonText(value)).toEqual({ text: expected, bytes: Buffer.byteLength(expected), truncated: false });
      }),
      { numRuns: 1000 },
    );
  });

  it("keeps the first bytes at a character boundary and counts the rest", () => {
    expect(jsonText("é".repeat(10), 5)).toEqual({ text: '"éé', bytes: 22, truncated: true });
    fc.assert(
      fc.property(fc.jsonValue(), fc.nat(200), (value, max) => {
        const whole = Buffer.from(JSON.stringify(value));
        const cut = jsonText(value, max);
        expect(cut.bytes).toBe(whole.length);
        expect(cut.truncated).toBe(whole.length > max);
        const kept = Buffer.from(cut.text);
        expect(kept.length).toBeLessThanOrEqual(max);
        expect(whole.subarray(0, kept.length).equals(kept)).toBe(true);
      }),
      { numRuns: 500 },
    );
  });

  it.each([
    ["undefined members are left out", { a: undefined, b: 1, c: undefined, d: 2 }, '{"b":1,"d":2}'],
    ["undefined items are null", [undefined, 1], "[null,1]"],
    ["non-finite numbers are null", [Number.NaN, Number.POSITIVE_INFINITY], "[null,null]"],
    ["a __proto__ key is an ordinary key", JSON.parse('{"__proto__":{"x":1}}'), '{"__proto__":{"x":1}}'],
    ["bytes (msgpack bin) are their UTF-8 text", { b: new Uint8Array([0x68, 0xc3, 0xa9]) }, '{"b":"hé"}'],
    ["a lone surrogate is escaped", "\ud800", '"\\ud800"'],
  ])("%s", (_name, value, expected) => {
    expect(jsonText(value).text).toBe(expected);
  });

  it("writes 100,000 nested arrays, which JSON.stringify cannot", () => {
    const deep = JSON.parse(`${"[".repeat(1e5)}${"]".repeat(1e5)}`) as unknown;
    expect(() => JSON.stringify(deep)).toThrow(RangeError);
    expect(jsonText(deep).text).toBe(`${"[".repeat(1e5)}${"]".repeat(1e5)}`);
    expect(jsonText(deep, 100)).toEqual({ text: "[".repeat(100), bytes: 2e5, truncated: true });
  });
});

describe("nestsDeeperThan", () => {
  it.each([
    [1, 0, false],
    [{}, 0, true],
    [{}, 1, false],
    [[[1]], 2, false],
    [[[1]], 1, true],
    [{ a: [{ b: {} }] }, 3, true],
    [{ a: [{ b: {} }] }, 4, false],
  ])("%j deeper than %d: %s", (value, limit, deeper) => {
    expect(nestsDeeperThan(value, limit)).toBe(deeper);
  });

  it("answers for 1,000,000 levels without recursing", () => {
    const deep = JSON.parse(`${'{"a":'.repeat(1e6)}1${"}".repeat(1e6)}`) as unknown;
    expect(nestsDeeperThan(deep, 64)).toBe(true);
  });
});

describe("textNestsDeeperThan", () => {
  it("agrees with parsing, for any JSON value and any limit", () => {
    fc.assert(
      fc.property(fc.jsonValue(), fc.nat(6), (value, limit) => {
        const text = JSON.stringify(value, null, 1);
        expect(textNestsDeeperThan(text, limit)).toBe(nestsDeeperThan(JSON.parse(text), limit));
      }),
      { numRuns: 1000 },
    );
  });

  it.each([
    ['"[[[["', 0, false],
    ['["\\"]', 1, false],
    ['["\\"[[", []]', 1, true],
    ['{"a":[{"b":"}}}"}]}', 2, true],
    ['{"a":[{"b":"}}}"}]}', 3, false],
  ])("%s deeper than %d: %s", (text, limit, deeper) => {
    expect(textNestsDeeperThan(text, limit)).toBe(deeper);
  });
});
