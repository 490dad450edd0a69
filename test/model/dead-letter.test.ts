// The dead-letter record's `input` stays small enough to index: cut to DEAD_LETTER_INPUT_MAX bytes at a character
// boundary, saying so, in process and through the built CLI.
import { describe, expect, it } from "vitest";
import {
  DEAD_LETTER_INPUT_MAX,
  deadLetterInput,
  deadLetterRecord,
  redactReceiptHandles,
} from "../../src/model/dead-letter.js";
import { deadLetters, parseOutput, runCli } from "../support/cli.js";

const MAX = DEAD_LETTER_INPUT_MAX;

describe("deadLetterInput", () => {
  it.each<[string, unknown]>([
    ["a short line", "not json"],
    ["a short object", { body: "x", receipt_handle: "r" }],
    ["a line of exactly the limit", "x".repeat(MAX)],
    ["an object whose JSON text is exactly the limit", { a: "x".repeat(MAX - 8) }],
    ["null", null],
    ["undefined (nothing to show)", undefined],
  ])("keeps %s whole", (_name, input) => {
    expect(deadLetterInput(input)).toEqual({ input });
  });

  it("cuts a line one byte over the limit", () => {
    const line = "x".repeat(MAX + 1);
    expect(deadLetterInput(line)).toEqual({ input: "x".repeat(MAX), inputTruncated: true, inputBytes: MAX + 1 });
  });

  it.each([1, 2, 3])("never cuts inside a character (limit %i bytes into a 4-byte one)", (into) => {
    const line = `${"x".repeat(MAX - into)}😀${"y".repeat(10)}`;
    const { input, inputTruncated, inputBytes } = deadLetterInput(line);
    expect(input).toBe("x".repeat(MAX - into));
    expect(inputTruncated).toBe(true);
    expect(inputBytes).toBe(MAX - into + 4 + 10);
  });

  it("keeps a character that ends exactly at the limit", () => {
    const line = `${"x".repeat(MAX - 2)}é${"y".repeat(10)}`;
    expect(deadLetterInput(line).input).toBe(`${"x".repeat(MAX - 2)}é`);
  });

  it("counts bytes, not characters", () => {
    const line = "é".repeat(MAX / 2 + 1); // MAX / 2 + 1 characters, MAX + 2 bytes
    expect(deadLetterInput(line)).toEqual({ input: "é".repeat(MAX / 2), inputTruncated: true, inputBytes: MAX + 2 });
  });

  it("cuts an object's JSON text, which then is a string", () => {
    const record = { body: "b".repeat(MAX * 2), receipt_handle: "r" };
    const text = JSON.stringify(record);
    expect(deadLetterInput(record)).toEqual({
      input: text.slice(0, MAX),
      inputTruncated: true,
      inputBytes: text.length,
    });
  });

  it("puts the fields in the record after error, before the object's coordinates", () => {
    const record = deadLetterRecord("dl", { code: "NotJson", message: "m" }, "z".repeat(MAX + 5), { bucket: "bkt" });
    expect(Object.keys(record)).toEqual(["_tag", "error", "input", "inputTruncated", "inputBytes", "bucket"]);
  });
});

describe("redactReceiptHandles: a receipt handle keeps its first 12 characters in dead letters and logs", () => {
  const handle = "AQEBwJnKyrHigUMZj6rYigCgxlaS3SLy0a";
  const short = "AQEBwJnKyrHi…";
  it.each<[string, unknown, unknown]>([
    [
      "a fluent-plugin-sqs 2.x/3.x record",
      { body: "{}", receipt_handle: handle, queue_url: "q" },
      { body: "{}", receipt_handle: short, queue_url: "q" },
    ],
    ["a 1.x record", { body: "{}", handle, url: "q" }, { body: "{}", handle: short, url: "q" }],
    ["a receive-message message", { Body: "{}", ReceiptHandle: handle }, { Body: "{}", ReceiptHandle: short }],
    [
      "a receive-message response",
      { Messages: [{ Body: "{}", ReceiptHandle: handle }, "odd", { Body: "x" }] },
      { Messages: [{ Body: "{}", ReceiptHandle: short }, "odd", { Body: "x" }] },
    ],
    ["a handle of 12 characters or fewer", { receipt_handle: "AQEBwJnKyrHi" }, { receipt_handle: "AQEBwJnKyrHi" }],
    ["a handle that is not a string", { receipt_handle: 42 }, { receipt_handle: 42 }],
    ["deeper nesting (never walked)", { a: { receipt_handle: handle } }, { a: { receipt_handle: handle } }],
    ["an array", [{ receipt_handle: handle }], [{ receipt_handle: handle }]],
    [
      "a line's JSON text",
      `{"body":"x","receipt_handle" : "${handle}","queue_url":"q"}`,
      `{"body":"x","receipt_handle" : "${short}","queue_url":"q"}`,
    ],
    ["text with an escaped quote in the handle", `{"handle":"${handle}\\"x"}`, `{"handle":"${short}"}`],
    ["text cut inside the handle (truncated input)", `{"ReceiptHandle":"${handle}`, `{"ReceiptHandle":"${handle}`],
    ["plain text", "not json", "not json"],
  ])("%s", (_what, input, expected) => {
    const before = JSON.stringify(input);
    expect(redactReceiptHandles(input)).toEqual(expected);
    expect(JSON.stringify(input)).toBe(before); // the record itself is not changed: the SQS acker still needs it
  });

  it("deadLetterRecord redacts its input", () => {
    const record = deadLetterRecord("dl", { code: "X" }, { body: "x", receipt_handle: handle }, {});
    expect(record.input).toEqual({ body: "x", receipt_handle: short });
  });
});

describe("through the CLI", () => {
  it("a long line below --max-line-bytes is one dead letter with its first 64 KiB", async () => {
    const garbage = `${"garbage ".repeat(40_000)}ü`; // 320,002 bytes, not JSON
    const unknown = JSON.stringify({ hello: "w".repeat(100_000) }); // JSON of no known shape
    const run = await runCli(["--max-line-bytes", String(1 << 20)], `${garbage}\n${unknown}\nshort\n`);
    expect(run.code).toBe(0);
    const [first, second, third] = deadLetters(parseOutput(run.stdout));
    expect(first).toMatchObject({
      error: { code: "NotJson" },
      input: garbage.slice(0, MAX),
      inputTruncated: true,
      inputBytes: Buffer.byteLength(garbage),
    });
    expect(second).toMatchObject({
      error: { code: "UnknownShape" },
      input: unknown.slice(0, MAX),
      inputTruncated: true,
      inputBytes: unknown.length,
    });
    expect(third).toEqual({
      _tag: "cloudtrail.deadletter",
      error: { code: "NotJson", message: expect.any(String) },
      input: "short",
    });
    const longest = Math.max(
      ...run.stdout
        .toString("utf8")
        .split("\n")
        .map((line) => Buffer.byteLength(line)),
    );
    expect(longest).toBeLessThan(MAX + 1024);
  });
});
