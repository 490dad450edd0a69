// Splits stdin into lines. fluentd writes a whole buffer chunk (megabytes, many lines) in one write and pipes cut it
// anywhere, so lines are reassembled across chunks. CRLF endings and blank lines are accepted; a line longer than
// the limit is not kept in memory: its first bytes are kept for the report and the rest is dropped.

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

  function* complete(tail: Buffer): Generator<Line> {
    number++;
    if (overflow) {
      const prefix = (parts[0] ?? tail).subarray(0, PREFIX_BYTES).toString("utf8");
      const bytes = partsBytes + dropped + tail.length;
      parts = [];
      partsBytes = 0;
      overflow = false;
      dropped = 0;
      yield { kind: "tooLong", number, prefix, bytes };
      return;
    }
    let line = parts.length === 0 ? tail : Buffer.concat([...parts, tail]);
    parts = [];
    partsBytes = 0;
    if (line.length > maxLineBytes) {
      yield { kind: "tooLong", number, prefix: line.subarray(0, PREFIX_BYTES).toString("utf8"), bytes: line.length };
      return;
    }
    if (line.length > 0 && line[line.length - 1] === 0x0d) line = line.subarray(0, line.length - 1);
    const text = line.toString("utf8");
    if (text.trim() === "") return;
    yield { kind: "line", number, text };
  }

  for await (const chunk of source) {
    let start = 0;
    for (;;) {
      const nl = chunk.indexOf(0x0a, start);
      if (nl === -1) break;
      yield* complete(chunk.subarray(start, nl));
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
  if (partsBytes > 0 || overflow) yield* complete(Buffer.alloc(0));
}
