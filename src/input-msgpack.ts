// Reads stdin in fluentd's msgpack format (`<format> @type msgpack`: maps back to back, no separator) into the same
// `Line`s the JSON reader makes, so the spool, the filter and the dead-letter contract need not know the format.
//
// Each map becomes the JSON text of its record (input records are small notifications: the round trip costs
// nothing next to fetching an object). A top-level string is taken as a line itself (`s3://…`, `file:///…`), as in
// JSON mode. msgpack has no resynchronisation point: after bytes that are not msgpack the rest of the input is read
// and dropped (so fluentd's writes do not block), and the reader then fails with what was dropped.
import { decodeMultiStream } from "@msgpack/msgpack";
import type { Line } from "./input.js";
import { jsonText } from "./json-text.js";

export class MsgpackInputError extends Error {
  override readonly name = "MsgpackInputError";
}

export async function* readMsgpackLines(source: AsyncIterable<Buffer>, maxRecordBytes: number): AsyncGenerator<Line> {
  const iterator = source[Symbol.asyncIterator]();
  let bytes = 0;
  // The decoder closes what it reads from when it fails; this view leaves `iterator` open for draining.
  const view: AsyncIterable<Buffer> = {
    [Symbol.asyncIterator]: () => ({
      next: async () => {
        const next = await iterator.next();
        if (next.done !== true) bytes += next.value.length;
        return next;
      },
    }),
  };
  let number = 0;
  try {
    for await (const value of decodeMultiStream<undefined>(view, {
      maxStrLength: maxRecordBytes,
      maxBinLength: maxRecordBytes,
      maxMapLength: maxRecordBytes,
      maxArrayLength: maxRecordBytes,
    })) {
      number++;
      // Binary (bin) values become UTF-8 strings: msgpack-ruby packs strings with the ASCII-8BIT encoding as bin.
      // jsonText, not JSON.stringify: a map nested 100,000 deep (the decoder does not recurse) must not end the reader.
      const text = typeof value === "string" ? value : jsonText(value).text;
      yield { kind: "line", number, text };
    }
  } catch (error) {
    let dropped = 0;
    for (let next = await iterator.next(); next.done !== true; next = await iterator.next()) {
      dropped += next.value.length;
    }
    throw new MsgpackInputError(
      `stdin is not msgpack after record ${number} (${error instanceof Error ? error.message : String(error)}); ` +
        `the rest of the input was dropped (${bytes + dropped} bytes read in all)`,
    );
  }
}
