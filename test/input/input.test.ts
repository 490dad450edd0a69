// Tests for the stdin line reader, written the way split2 tests its splitter: chunks that cut lines anywhere.
import { describe, expect, it } from "vitest";
import { type Line, readLines } from "../../src/input/lines.js";

async function* chunksOf(chunks: (string | Buffer)[]): AsyncGenerator<Buffer> {
  for (const chunk of chunks) yield typeof chunk === "string" ? Buffer.from(chunk, "utf8") : chunk;
}

async function lines(chunks: (string | Buffer)[], maxLineBytes = 1024 * 1024): Promise<Line[]> {
  const out: Line[] = [];
  for await (const line of readLines(chunksOf(chunks), maxLineBytes)) out.push(line);
  return out;
}

const line = (number: number, text: string): Line => ({ kind: "line", number, text });

describe("readLines", () => {
  it.each<[string, (string | Buffer)[], Line[]]>([
    [
      "split2's odd splits",
      ["hello\nwor", "ld\nbye\nwo"],
      [line(1, "hello"), line(2, "world"), line(3, "bye"), line(4, "wo")],
    ],
    ["one chunk, trailing newline", ["a\nb\n"], [line(1, "a"), line(2, "b")]],
    ["last line without a newline", ["a\nb"], [line(1, "a"), line(2, "b")]],
    ["CRLF endings", ["a\r\nb\r\n"], [line(1, "a"), line(2, "b")]],
    ["CRLF split between CR and LF", ["a\r", "\nb\r", "\n"], [line(1, "a"), line(2, "b")]],
    ["a CR inside a line is kept", ["a\rb\n"], [line(1, "a\rb")]],
    ["blank and whitespace-only lines are skipped but counted", ["\na\n\n  \t\n\r\nb\n"], [line(2, "a"), line(6, "b")]],
    ["only blank lines", ["\n\n\r\n"], []],
    ["no input", [], []],
    ["empty chunks", ["", "a", "", "\n", ""], [line(1, "a")]],
    ["one byte at a time", [..."ab\ncd\n"], [line(1, "ab"), line(2, "cd")]],
    ["newline at the start of a chunk", ["ab", "\ncd"], [line(1, "ab"), line(2, "cd")]],
    [
      "a multibyte character split across chunks",
      [Buffer.from("ok\nロ").subarray(0, 4), Buffer.from("ロ").subarray(1, 2), Buffer.from("ロ\n").subarray(2)],
      [line(1, "ok"), line(2, "ロ")],
    ],
    [
      "a four-byte character split into single bytes",
      [...Buffer.from("😀x\n")].map((b) => Buffer.from([b])),
      [line(1, "😀x")],
    ],
    ["leading and trailing spaces are kept", ['  {"a":1}  \n'], [line(1, '  {"a":1}  ')]],
  ])("%s", async (_name, chunks, expected) => {
    expect(await lines(chunks)).toEqual(expected);
  });

  describe("lines over maxLineBytes", () => {
    const long = "x".repeat(40);

    it("a line over the limit in one chunk is reported with its prefix and exact size, then reading goes on", async () => {
      expect(await lines([`${long}\nok\n`], 10)).toEqual([
        { kind: "tooLong", number: 1, prefix: long, bytes: 40 },
        line(2, "ok"),
      ]);
    });

    it("a line over the limit across chunks is counted exactly, then the next line is read", async () => {
      const result = await lines(["xxxxx", "x".repeat(20), "xxxxxxxxxxxxxxx\nok", "\n"], 10);
      expect(result).toEqual([{ kind: "tooLong", number: 1, prefix: expect.any(String), bytes: 40 }, line(2, "ok")]);
      expect(result[0]?.kind === "tooLong" && long.startsWith(result[0].prefix)).toBe(true);
    });

    it("the prefix is at most 1024 bytes and the count counts multibyte characters in bytes", async () => {
      const big = "é".repeat(3000); // 6000 bytes
      const [first, second] = await lines([`${big}\n`, "next\n"], 2000);
      expect(first).toEqual({ kind: "tooLong", number: 1, prefix: "é".repeat(512), bytes: 6000 });
      expect(second).toEqual(line(2, "next"));
    });

    it("a too long last line without a newline is still reported", async () => {
      expect(await lines(["ok\n", long], 10)).toEqual([
        line(1, "ok"),
        { kind: "tooLong", number: 2, prefix: long, bytes: 40 },
      ]);
    });

    it("a line of exactly maxLineBytes is kept", async () => {
      expect(await lines(["x".repeat(10), "\n"], 10)).toEqual([line(1, "x".repeat(10))]);
    });

    it("the byte count is the same however the line is cut", async () => {
      const input = Buffer.from(`${long}\nok\n`);
      for (let size = 1; size <= input.length; size++) {
        const chunks: Buffer[] = [];
        for (let at = 0; at < input.length; at += size) chunks.push(input.subarray(at, at + size));
        const result = await lines(chunks, 10);
        expect(result, `chunks of ${size}`).toEqual([
          { kind: "tooLong", number: 1, prefix: expect.any(String), bytes: 40 },
          line(2, "ok"),
        ]);
      }
    });

    // The prefix once depended on how the line was cut: with 1-byte chunks it was the first chunk alone ("x").
    it("the prefix is the line's first bytes however the line is cut", async () => {
      const result = await lines([...`${long}\nok\n`], 10);
      expect(result[0]).toEqual({ kind: "tooLong", number: 1, prefix: long, bytes: 40 });
    });
  });
});

describe("readLines: pretty-printed JSON documents (aws sqs receive-message prints them)", () => {
  const response = {
    Messages: [
      { MessageId: "m-1", ReceiptHandle: "r-1", MD5OfBody: "0", Body: '{"s3Bucket":"b","s3ObjectKey":["k"]}' },
      { MessageId: "m-2", ReceiptHandle: "r-2", MD5OfBody: "0", Body: "{}", Attributes: { SenderId: "x" } },
    ],
  };
  const pretty = JSON.stringify(response, null, 4);
  const prettyLines = pretty.split("\n").length;
  const record = '{"body":"x","receipt_handle":"r"}';

  it.each<[string, (string | Buffer)[], Line[]]>([
    ["a document alone", [`${pretty}\n`], [line(1, pretty)]],
    ["a document without a final newline", [pretty], [line(1, pretty)]],
    [
      "records, a document, records",
      [`${record}\n${pretty}\n${record}\n`],
      [line(1, record), line(2, pretty), line(prettyLines + 2, record)],
    ],
    ["two documents back to back", [`${pretty}\n${pretty}\n`], [line(1, pretty), line(prettyLines + 1, pretty)]],
    ["CRLF endings", [`${pretty.replace(/\n/g, "\r\n")}\r\n`], [line(1, pretty)]],
    ["indented by tabs, opened with trailing spaces", ['{  \n\t"a": 1\n}\n'], [line(1, '{  \n\t"a": 1\n}')]],
    ["a blank line inside is dropped", ['{\n  "a": 1,\n\n  "b": 2\n}\n'], [line(1, '{\n  "a": 1,\n  "b": 2\n}')]],
    ["a compact object is one line as always", ['{"a":1}\n{}\n'], [line(1, '{"a":1}'), line(2, "{}")]],
    ["a stray { does not swallow the record after it", [`{\n${record}\n`], [line(1, "{"), line(2, record)]],
    [
      "held lines that turn out to be no document go on one by one",
      [`{\n  "a": 1\n${record}\n`],
      [line(1, "{"), line(2, '  "a": 1'), line(3, record)],
    ],
    ["a document cut short at the end of input is one record", ['{\n  "a": 1,\n'], [line(1, '{\n  "a": 1,')]],
    ["an indented } does not close it", ['{\n  "a": {\n  }\n}\n'], [line(1, '{\n  "a": {\n  }\n}')]],
  ])("%s", async (_name, chunks, expected) => {
    expect(await lines(chunks)).toEqual(expected);
  });

  it("is the same record however the input is cut (split2's way)", async () => {
    const input = Buffer.from(`${record}\n${pretty}\n${record}\n`);
    for (let size = 1; size <= 64; size++) {
      const chunks: Buffer[] = [];
      for (let at = 0; at < input.length; at += size) chunks.push(input.subarray(at, at + size));
      expect(await lines(chunks), `chunks of ${size}`).toEqual([
        line(1, record),
        line(2, pretty),
        line(prettyLines + 2, record),
      ]);
    }
  });

  it("a document longer than maxLineBytes is one tooLong record, then reading goes on", async () => {
    const big = JSON.stringify({ a: "x".repeat(600), b: "y".repeat(600) }, null, 2);
    const result = await lines([`${big}\n${record}\n`], 1024);
    expect(result).toEqual([
      { kind: "tooLong", number: 1, prefix: big.slice(0, 1024), bytes: Buffer.byteLength(big) },
      line(5, record),
    ]);
  });

  it("a document with one line longer than maxLineBytes is one tooLong record", async () => {
    const big = `{\n  "a": "${"x".repeat(3000)}"\n}`;
    const result = await lines([`${big}\n${record}\n`], 1024);
    expect(result).toEqual([
      { kind: "tooLong", number: 1, prefix: expect.stringMatching(/^\{\n {2}"a": "x+$/), bytes: big.length },
      line(4, record),
    ]);
  });
});
