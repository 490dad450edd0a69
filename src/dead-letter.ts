// The dead-letter record: what one failure writes on stdout, for fluentd to route apart by `_tag` and for someone to
// inspect or replay from `input`.
import { jsonText, nestsDeeperThan } from "./json-text.js";

/**
 * The largest `input` a dead letter carries whole, in bytes of its JSON text (or of the line, when the input is the
 * raw line). A dead letter becomes one document in whatever index or file it is routed to, and a 5 MB garbage line was
 * once copied whole into one Elasticsearch document. Beyond this, `input` holds the text's first bytes (cut at a UTF-8
 * character boundary) as a string, with `"inputTruncated": true` and `"inputBytes"`: the original length.
 */
export const DEAD_LETTER_INPUT_MAX = 64 * 1024;

/**
 * The deepest `input` a dead letter carries as a value; deeper, `input` is its JSON text (a string, cut like any other
 * at DEAD_LETTER_INPUT_MAX). The record is written by JSON.stringify or the msgpack encoder, and both recurse: a line
 * of 100,000 nested arrays threw RangeError and ended the process, and @msgpack/msgpack refuses more than 100 levels.
 * Real notifications nest less than 10 levels; 64 leaves room for any record that means something.
 */
export const DEAD_LETTER_INPUT_DEPTH = 64;

/** The record's fields besides `_tag`, `error` and the object's coordinates. */
export function deadLetterInput(input: unknown): { input: unknown; inputTruncated?: true; inputBytes?: number } {
  if (typeof input !== "string" && nestsDeeperThan(input, DEAD_LETTER_INPUT_DEPTH)) {
    const cut = jsonText(input, DEAD_LETTER_INPUT_MAX);
    return cut.truncated ? { input: cut.text, inputTruncated: true, inputBytes: cut.bytes } : { input: cut.text };
  }
  const text = typeof input === "string" ? input : JSON.stringify(input);
  if (text === undefined) return { input };
  const bytes = Buffer.byteLength(text, "utf8");
  if (bytes <= DEAD_LETTER_INPUT_MAX) return { input };
  const encoded = Buffer.from(text, "utf8");
  let cut = DEAD_LETTER_INPUT_MAX;
  // Back to the first byte of the character that straddles the limit (continuation bytes are 10xxxxxx).
  while (cut > 0 && ((encoded[cut] ?? 0) & 0xc0) === 0x80) cut--;
  return { input: encoded.subarray(0, cut).toString("utf8"), inputTruncated: true, inputBytes: bytes };
}

/** `{"_tag", "error", "input", ["inputTruncated", "inputBytes",] …where}`: the object's coordinates come last. */
export function deadLetterRecord(
  tag: string,
  error: Record<string, unknown>,
  input: unknown,
  where: Record<string, string>,
): Record<string, unknown> {
  return { _tag: tag, error, ...deadLetterInput(input), ...where };
}
