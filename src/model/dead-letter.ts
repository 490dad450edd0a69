// The dead-letter record: what one failure writes on stdout, for fluentd to route apart by `_tag` and for someone to
// inspect or replay from `input`.
import { jsonText, nestsDeeperThan } from "../shared/json-text.js";

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

/**
 * Characters of an SQS receipt handle kept in dead letters and logs: enough to tell handles apart when reading them,
 * too few to use one. A handle is what deletes a message or hides it again (with credentials for the queue), and
 * dead letters and logs travel further than the queue's own permissions (an index, a ticket, a support bundle).
 */
const HANDLE_SHOWN = 12;
/** fluent-plugin-sqs 2.x/3.x, 1.x and `aws sqs receive-message` spell it these ways. */
const HANDLE_FIELDS = ["receipt_handle", "handle", "ReceiptHandle"] as const;
/** The same fields in JSON text (a line that is not parsed, or a log's raw line): the value's first characters kept. */
const HANDLE_IN_TEXT = /("(?:receipt_handle|handle|ReceiptHandle)"\s*:\s*")((?:[^"\\]|\\.){12})(?:[^"\\]|\\.)+"/g;

function shortHandles(record: Record<string, unknown>): Record<string, unknown> {
  let copy: Record<string, unknown> | undefined;
  for (const field of HANDLE_FIELDS) {
    const value = record[field];
    if (typeof value !== "string" || value.length <= HANDLE_SHOWN || !Object.hasOwn(record, field)) continue;
    copy ??= { ...record };
    copy[field] = `${value.slice(0, HANDLE_SHOWN)}…`;
  }
  return copy ?? record;
}

const isRecord = (value: unknown): value is Record<string, unknown> =>
  typeof value === "object" && value !== null && !Array.isArray(value);

/**
 * A dead letter's or a log line's `input` with its receipt handles cut to their first HANDLE_SHOWN characters: a
 * record's own (top level) and those of a receive-message response's `Messages`, never deeper (no recursion on what
 * a message nests). Text is redacted where it spells one of the fields.
 */
export function redactReceiptHandles(input: unknown): unknown {
  if (typeof input === "string") return input.replace(HANDLE_IN_TEXT, '$1$2…"');
  if (!isRecord(input)) return input;
  const record = shortHandles(input);
  const messages = record.Messages;
  if (!Array.isArray(messages)) return record;
  return { ...record, Messages: messages.map((message) => (isRecord(message) ? shortHandles(message) : message)) };
}

/** `{"_tag", "error", "input", ["inputTruncated", "inputBytes",] …where}`: the object's coordinates come last. */
export function deadLetterRecord(
  tag: string,
  error: Record<string, unknown>,
  input: unknown,
  where: Record<string, string>,
): Record<string, unknown> {
  return { _tag: tag, error, ...deadLetterInput(redactReceiptHandles(input)), ...where };
}
