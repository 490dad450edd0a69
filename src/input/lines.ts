// Splits stdin into lines. fluentd writes a whole buffer chunk (megabytes, many lines) in one write and pipes cut it
// anywhere, so lines are reassembled across chunks. CRLF endings and blank lines are accepted; a line longer than
// the limit is not kept in memory: its first bytes are kept for the report and the rest is dropped.
//
// One record per line, with one exception: a pretty-printed JSON document is one record over many lines. The AWS CLI
// prints its JSON indented (`aws sqs receive-message ... | cloudtrail-exec-filter`, the first thing a person tries),
// and so do JSON.stringify(v, null, n), Python's json.dumps(indent=n) and jq. All of them open a top-level object with
// a line that is only `{`, indent every line inside it, and close it with `}` at the start of a line. So a line that
// is only `{` starts a document; indented lines join it; a line that is `}` ends it and the lines become one record
// (numbered as its first line), within --max-line-bytes like any line. A line that is neither (a record line starts
// with `{"`, unindented) means there was no document: the lines held back go on one by one as they were, so a stray
// `{` never swallows the records after it. No fluentd record line is a bare `{`, so that path pays one length test.
/** One input record. `id` is its journal id when a spool is in use; `number` is its line on stdin (0: replayed). */
export type Line =
  | { kind: "line"; number: number; text: string; id?: number }
  | { kind: "tooLong"; number: number; prefix: string; bytes: number; id?: number };

const PREFIX_BYTES = 1024;

export async function* readLines(source: AsyncIterable<Buffer>, maxLineBytes: number): AsyncGenerator<Line> {
  let parts: Buffer[] = [];
  let partsBytes = 0;
  let overflow = false;
  let dropped = 0;
  let number = 0;
  const documents = new Documents(maxLineBytes);

  function complete(tail: Buffer): Line | undefined {
    number++;
    if (overflow) {
      const prefix = (parts[0] ?? tail).subarray(0, PREFIX_BYTES).toString("utf8");
      const bytes = partsBytes + dropped + tail.length;
      parts = [];
      partsBytes = 0;
      overflow = false;
      dropped = 0;
      return { kind: "tooLong", number, prefix, bytes };
    }
    let line = parts.length === 0 ? tail : Buffer.concat([...parts, tail]);
    parts = [];
    partsBytes = 0;
    if (line.length > maxLineBytes) {
      return { kind: "tooLong", number, prefix: line.subarray(0, PREFIX_BYTES).toString("utf8"), bytes: line.length };
    }
    if (line.length > 0 && line[line.length - 1] === 0x0d) line = line.subarray(0, line.length - 1);
    const text = line.toString("utf8");
    if (text.trim() === "") return undefined;
    return { kind: "line", number, text };
  }

  for await (const chunk of source) {
    let start = 0;
    for (;;) {
      const nl = chunk.indexOf(0x0a, start);
      if (nl === -1) break;
      const line = complete(chunk.subarray(start, nl));
      if (line !== undefined) {
        if (documents.idle && !opensDocument(line)) yield line;
        else yield* documents.take(line);
      }
      start = nl + 1;
    }
    if (start < chunk.length) {
      const rest = chunk.subarray(start);
      if (overflow) {
        const prefix = parts[0] as Buffer;
        const keep = Math.min(rest.length, PREFIX_BYTES - prefix.length);
        if (keep > 0) parts[0] = Buffer.concat([prefix, rest.subarray(0, keep)]);
        partsBytes += keep;
        dropped += rest.length - keep;
      } else {
        parts.push(rest);
        partsBytes += rest.length;
        if (partsBytes > maxLineBytes) {
          // Keep only the first bytes (for the report); count the rest.
          overflow = true;
          const prefix = Buffer.concat(parts).subarray(0, PREFIX_BYTES);
          dropped = partsBytes - prefix.length;
          parts = [prefix];
          partsBytes = prefix.length;
        }
      }
    }
  }
  if (partsBytes > 0 || overflow) {
    const line = complete(Buffer.alloc(0));
    if (line !== undefined) yield* documents.take(line);
  }
  yield* documents.finish();
}

/** A line that is only `{` (a pretty-printed document's first line). Record lines are longer: one test for them. */
function opensDocument(line: Line): boolean {
  return line.kind === "line" && line.text.length <= 16 && line.text.trim() === "{";
}

/** A line inside a pretty-printed document: indented. */
function indented(text: string): boolean {
  const first = text.charCodeAt(0);
  return first === 0x20 || first === 0x09;
}

/** Holds back the lines of a pretty-printed document and hands them on as one record (see the top of the file). */
class Documents {
  /** The document's lines so far (none: no document is open). */
  private lines: { number: number; text: string }[] = [];
  private bytes = 0;
  /** Over --max-line-bytes: only the first bytes are kept (for the report) and the rest counted. */
  private tooLong: { number: number; prefix: string } | undefined;

  constructor(private readonly maxBytes: number) {}

  get idle(): boolean {
    return this.lines.length === 0 && this.tooLong === undefined;
  }

  *take(line: Line): Generator<Line> {
    if (this.idle) {
      if (opensDocument(line)) this.add(line);
      else yield line;
      return;
    }
    if (line.kind === "line" && line.text.trimEnd() === "}") {
      this.add(line);
      yield* this.close();
      return;
    }
    if (indented(line.kind === "line" ? line.text : line.prefix)) {
      this.add(line);
      return;
    }
    // Not a document after all: what was held back goes on as the lines it was, then this line.
    yield* this.release();
    yield* this.take(line);
  }

  /** At the end of input: a document cut short is still one record (a NotJson dead letter with all its text). */
  *finish(): Generator<Line> {
    if (!this.idle) yield* this.close();
  }

  /** The lines held back turned out to be no document. */
  private *release(): Generator<Line> {
    if (this.tooLong !== undefined) {
      yield* this.close();
      return;
    }
    const held = this.lines;
    this.lines = [];
    this.bytes = 0;
    for (const { number, text } of held) yield { kind: "line", number, text };
  }

  private add(line: Line): void {
    const bytes = line.kind === "line" ? Buffer.byteLength(line.text, "utf8") : line.bytes;
    this.bytes += bytes + (this.idle ? 0 : 1);
    if (this.tooLong === undefined && line.kind === "line" && this.bytes <= this.maxBytes) {
      this.lines.push({ number: line.number, text: line.text });
      return;
    }
    if (this.tooLong === undefined) {
      const first = this.lines[0]?.number ?? line.number;
      const text = [...this.lines.map((held) => held.text), line.kind === "line" ? line.text : line.prefix].join("\n");
      this.tooLong = { number: first, prefix: Buffer.from(text, "utf8").subarray(0, PREFIX_BYTES).toString("utf8") };
      this.lines = [];
    }
  }

  private *close(): Generator<Line> {
    const { tooLong, lines, bytes } = this;
    this.lines = [];
    this.bytes = 0;
    this.tooLong = undefined;
    if (tooLong !== undefined) {
      yield { kind: "tooLong", number: tooLong.number, prefix: tooLong.prefix, bytes };
      return;
    }
    yield { kind: "line", number: (lines[0] as { number: number }).number, text: lines.map((l) => l.text).join("\n") };
  }
}
