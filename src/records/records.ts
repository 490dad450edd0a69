// Reads one input line: a fluent-plugin-sqs record, what `aws sqs receive-message` prints, an SQS message body, or a
// debugging URL (`s3://bucket/key`, `file:///absolute/path`), and says which objects it names.

import { fileURLToPath } from "node:url";
import type { FromMessage, ObjectRef, SqsMessage } from "../model/refs.js";
import { textNestsDeeperThan } from "../shared/json-text.js";
import {
  type Decoded,
  decodeBody,
  isObject,
  type Json,
  parseRef,
  type Refusal,
  type Skip,
  sortRefs,
} from "./notifications.js";

/** A refused reference (notifications.ts), with the message it came from when that is not the whole record. */
export type RefusedRef = Refusal & FromMessage;

export type RecordErrorCode =
  | "LineTooLong"
  | "NotJson"
  | "NotAnObject"
  | "BodyNotJson"
  | "BadUrl"
  | "UnknownShape"
  | "MessageNotJson"
  | "TooDeep";

/** One message of an `aws sqs receive-message` response that names no object: its own dead letter, with itself as input. */
export interface MessageFailure {
  code: RecordErrorCode;
  message: string;
  input: unknown;
}

export type Interpreted =
  | {
      kind: "objects";
      input: unknown;
      refs: ObjectRef[];
      skips: Skip[];
      refused: RefusedRef[];
      /** Messages of a receive-message response that failed while the others named objects (absent when none). */
      failed?: MessageFailure[];
      sqs?: SqsMessage;
    }
  | { kind: "error"; input: unknown; code: RecordErrorCode; message: string; sqs?: SqsMessage };

/**
 * How an input object is recognised as a fluent-plugin-sqs record (1.x or 2.x/3.x field names), or as a bare
 * `{"body": "…"}` (a record whose other fields were dropped on the way).
 */
function sqsRecordBody(record: Json): string | undefined {
  if (typeof record.body !== "string") return undefined;
  const v1 = "handle" in record || "md5" in record || "url" in record || "id" in record;
  const v2 = "receipt_handle" in record || "message_id" in record || "md5_of_body" in record || "queue_url" in record;
  return v1 || v2 || "sender_id" in record || Object.keys(record).length === 1 ? record.body : undefined;
}

/**
 * One message as `aws sqs receive-message` prints it (`MessageId, ReceiptHandle, MD5OfBody, Body`, and `Attributes`,
 * `MessageAttributes` when asked for), or a bare `{"Body": "…"}`.
 * https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_Message.html
 *
 * Such messages are never deleted: the CLI's output does not name the queue, and a receipt handle without its queue
 * URL cannot be acknowledged, so they come back after the queue's visibility timeout as for any reader that does
 * not delete (--delete-sqs-messages applies to fluent-plugin-sqs 2.x/3.x records, which carry queue_url).
 */
function cliMessageBody(record: Json): string | undefined {
  if (typeof record.Body !== "string") return undefined;
  const message = "ReceiptHandle" in record || "MessageId" in record || "MD5OfBody" in record;
  return message || Object.keys(record).length === 1 ? record.Body : undefined;
}

type BodyDecoded = Decoded | { kind: "error"; code: "BodyNotJson" | "TooDeep"; message: string };

/**
 * The deepest nesting a record's text may have before it is parsed. Real notifications nest a few levels (an S3 event
 * in an SNS envelope: 6); JSON.parse would build any depth (a 16 MiB line of `[` takes about 870 MB to hold), and what
 * walks the result afterwards needs a frame per level. The msgpack reader's bound (input-msgpack.ts) is the same.
 */
const RECORD_DEPTH_MAX = 512;

const TOO_DEEP = `nests deeper than ${RECORD_DEPTH_MAX} levels`;

/** An SQS message body (text): JSON, then one of the notifications notifications.ts knows. */
function decodeBodyText(body: string): BodyDecoded {
  if (textNestsDeeperThan(body, RECORD_DEPTH_MAX)) {
    return { kind: "error", code: "TooDeep", message: `the SQS body ${TOO_DEEP}` };
  }
  let inner: unknown;
  try {
    inner = JSON.parse(body);
  } catch {
    return { kind: "error", code: "BodyNotJson", message: "the SQS body is not JSON" };
  }
  return decodeBody(inner);
}

/**
 * The whole response of `aws sqs receive-message`: `{"Messages": [message, …]}` (printed over many lines; input.ts
 * joins them). Every message is decoded as a body on its own; one that fails is its own dead letter, and the others'
 * objects are still read. An empty list is skipped (with no messages the CLI prints nothing at all).
 * https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_ReceiveMessage.html
 */
function fromReceiveResponse(input: Json, messages: unknown[]): Interpreted {
  const result: Interpreted & { kind: "objects" } = { kind: "objects", input, refs: [], skips: [], refused: [] };
  if (messages.length === 0) {
    result.skips.push({ reason: "a receive-message response without messages" });
    return result;
  }
  const failed: MessageFailure[] = [];
  messages.forEach((message, i) => {
    const body = isObject(message) && typeof message.Body === "string" ? message.Body : undefined;
    const decoded: BodyDecoded =
      body === undefined
        ? { kind: "error", code: "UnknownShape", message: "not an SQS message (no Body)" }
        : decodeBodyText(body);
    if (decoded.kind === "error") {
      failed.push({ code: decoded.code, message: `Messages[${i}]: ${decoded.message}`, input: message });
      return;
    }
    for (const ref of decoded.refs) result.refs.push({ scheme: "s3", ...ref, input: message });
    result.skips.push(...decoded.skips);
    for (const refusal of decoded.refused) result.refused.push({ ...refusal, input: message });
  });
  if (failed.length > 0) result.failed = failed;
  return result;
}

function sqsMessage(record: Json): SqsMessage | undefined {
  if (typeof record.queue_url !== "string" || typeof record.receipt_handle !== "string") return undefined;
  const message: SqsMessage = { queueUrl: record.queue_url, receiptHandle: record.receipt_handle };
  if (typeof record.message_id === "string") message.messageId = record.message_id;
  return message;
}

const URL_FIELDS = { bucket: "the s3:// URL's bucket", key: "the s3:// URL's key" };

function fromUrl(line: string): Interpreted {
  if (line.startsWith("s3://")) {
    const rest = line.slice(5);
    const slash = rest.indexOf("/");
    if (slash <= 0 || slash === rest.length - 1) {
      return { kind: "error", input: line, code: "BadUrl", message: "expected s3://bucket/key" };
    }
    // Typed by hand, or made by import from a listing: no more trusted than a message, so the same parsers.
    // A digest file or a folder marker is set aside as a notified one is (notifications.ts, sortRefs).
    const sorted = sortRefs([parseRef(URL_FIELDS, rest.slice(0, slash), rest.slice(slash + 1), undefined)], [], []);
    if (sorted.kind === "error") return { ...sorted, input: line };
    return { ...sorted, input: line, refs: sorted.refs.map((ref) => ({ scheme: "s3", ...ref })) };
  }
  return fromFileUrl(line);
}

const ABSOLUTE_HINT = "write an absolute path as file:///absolute/path (three slashes)";

/**
 * A `file:` line names a local file by its absolute path. WHATWG URL parsing (Node's) reads `file:relative` as
 * `/relative` and `file://relative/path` as the host `relative`: neither is what was meant, so both are refused with
 * how to write the URL instead, and Node's own error text (by code) never reaches a dead letter.
 */
function fromFileUrl(line: string): Interpreted {
  const badUrl = (message: string): Interpreted => ({ kind: "error", input: line, code: "BadUrl", message });
  // `file:/path` and `file:///path` are absolute; `file:relative` and `file:./x` are not.
  if (!line.startsWith("file:/")) return badUrl(`a relative file: URL: ${ABSOLUTE_HINT}`);
  let url: URL;
  try {
    url = new URL(line);
  } catch {
    return badUrl(`not a URL: ${ABSOLUTE_HINT}`);
  }
  if (url.host !== "" && url.host !== "localhost") {
    return badUrl(`names the host ${JSON.stringify(url.host)} (file://HOST/path), not a local path: ${ABSOLUTE_HINT}`);
  }
  let path: string;
  try {
    path = fileURLToPath(url);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    return badUrl(
      code === "ERR_INVALID_FILE_URL_PATH"
        ? 'the path holds an encoded "/" (%2F), which names no file'
        : `not a file URL: ${ABSOLUTE_HINT}`,
    );
  }
  // A NUL (from %00) would make the open fail with Node's own error rather than name a file.
  if (path.includes("\0")) return badUrl("the path holds a NUL character (%00)");
  return { kind: "objects", input: line, refs: [{ scheme: "file", path }], skips: [], refused: [] };
}

function withDecoded(input: unknown, decoded: BodyDecoded, sqs: SqsMessage | undefined): Interpreted {
  const base = sqs === undefined ? {} : { sqs };
  if (decoded.kind === "error") return { kind: "error", input, code: decoded.code, message: decoded.message, ...base };
  return {
    kind: "objects",
    input,
    refs: decoded.refs.map((ref) => ({ scheme: "s3", ...ref })),
    skips: decoded.skips,
    refused: decoded.refused,
    ...base,
  };
}

/**
 * What a parsed input object is, decided once: the one classification both `sqsMessageOfLine` (which message to keep
 * invisible while the record waits) and `interpretRecord` (what the record means) read, so that a record is tracked
 * exactly when it will be settled (issue 20: a fluent-plugin-sqs record that also held `"Messages": []` was tracked
 * by one test and read as a receive-message response by another, and its visibility was extended for ever).
 */
type RecordShape =
  /** The whole response of `aws sqs receive-message`. */
  | { kind: "receive-response"; messages: unknown[] }
  /** A record holding an SQS body: fluent-plugin-sqs's (with its message when it names one), or the CLI's message. */
  | { kind: "body"; body: string; sqs: SqsMessage | undefined }
  /** Anything else: read as a notification itself (an SQS body's JSON, fluentd in_s3's records…). */
  | { kind: "notification" };

function classifyRecord(record: Json): RecordShape {
  if (Array.isArray(record.Messages)) return { kind: "receive-response", messages: record.Messages };
  const pluginBody = sqsRecordBody(record);
  if (pluginBody !== undefined) return { kind: "body", body: pluginBody, sqs: sqsMessage(record) };
  const cliBody = cliMessageBody(record);
  if (cliBody !== undefined) return { kind: "body", body: cliBody, sqs: sqsMessage(record) };
  return { kind: "notification" };
}

/** Interprets one input line (already without its line ending, not blank). */
export function interpretLine(line: string): Interpreted {
  const text = line.trim();
  if (text.startsWith("s3://") || text.startsWith("file:")) return fromUrl(text);
  // Refused before it is parsed (and by sqsMessageOfLine too: one classification decides tracking and meaning).
  if (textNestsDeeperThan(text, RECORD_DEPTH_MAX)) {
    return { kind: "error", input: line, code: "TooDeep", message: `the line ${TOO_DEEP}` };
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return { kind: "error", input: line, code: "NotJson", message: "the line is not JSON" };
  }
  return interpretRecord(parsed);
}

/**
 * The SQS message a line came from, read as soon as the line arrives (before its turn to be worked on), so that its
 * visibility can be kept up while it waits. Undefined for anything but a fluent-plugin-sqs 2.x/3.x record.
 */
export function sqsMessageOfLine(line: string): SqsMessage | undefined {
  if (!line.includes("receipt_handle")) return undefined; // URLs, bare bodies, 1.x records: nothing to parse
  if (textNestsDeeperThan(line, RECORD_DEPTH_MAX)) return undefined; // interpretLine refuses it whole
  try {
    const parsed: unknown = JSON.parse(line);
    if (!isObject(parsed)) return undefined;
    // interpretRecord's own classification: a message tracked here is settled when the filter finishes the record.
    const shape = classifyRecord(parsed);
    return shape.kind === "body" ? shape.sqs : undefined;
  } catch {
    return undefined;
  }
}

/** Interprets one parsed input record (from a JSON line or a msgpack map). */
export function interpretRecord(parsed: unknown): Interpreted {
  if (!isObject(parsed)) {
    return { kind: "error", input: parsed, code: "NotAnObject", message: "the record is not a JSON object" };
  }
  const shape = classifyRecord(parsed);
  if (shape.kind === "receive-response") return fromReceiveResponse(parsed, shape.messages);
  if (shape.kind === "notification") return withDecoded(parsed, decodeBody(parsed), undefined);
  return withDecoded(parsed, decodeBodyText(shape.body), shape.sqs);
}

/** `s3://bucket/key` or `file:///path`, for logs and dead-letter records. */
export function describeRef(ref: ObjectRef): string {
  return ref.scheme === "s3" ? `s3://${ref.bucket}/${ref.key}` : `file://${ref.path}`;
}
