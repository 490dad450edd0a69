// Shapes each event into its output record: the event's own bytes, plus `"@timestamp"` copied from `eventTime` so
// Elasticsearch's daily index and Kibana's time axis follow the event, not the moment it was shipped. Optional
// shaping (fluentd's event time, stringified fields, the source object) and msgpack output live here too.
//
// The default path (JSON, `@timestamp` only) copies the event's bytes once and must stay that cheap: it is most of
// the program's work. Everything optional takes the general path below it.

import { SCAN_DEPTH_MAX } from "../decode/scan.js";
import type { Sink } from "../model/sink.js";
import { msgpack } from "../shared/msgpack.js";
import { JsonToMsgpack, numberSize, stringHeaderSize, writeNumber, writeStringHeader } from "./msgpack-json.js";

/** Where formatted records go: the sink, or a worker's buffer. */
export type LineSink = Pick<Sink, "reserve">;

import type { ObjectRef } from "../model/refs.js";

/**
 * `json` and `msgpack` are what exec_filter reads back; `forward` is the entries of a Forward protocol PackedForward
 * message (forward.ts): each event one msgpack `[time, record]` with the record as msgpack writes it.
 */
export type OutputFormat = "json" | "msgpack" | "forward";

/**
 * Fields whose shape changes from one API call to the next: with dynamic mapping they get events rejected with
 * `mapper_parsing_exception` (fix at the mapping with `flattened`/`flat_object`, or stringify them).
 */
export const DEFAULT_STRINGIFY: readonly string[] = [
  "requestParameters",
  "responseElements",
  "additionalEventData",
  "serviceEventDetails",
];

export interface FormatOptions {
  /** Add `"@timestamp"` equal to `eventTime` (unless the event already has one). */
  timestamp: boolean;
  /** Add fluentd's event time (epoch seconds, a float) under this name, for `<extract> time_key`. */
  timeField?: string | undefined;
  /** Top-level fields whose value (unless a string or null) is replaced by its JSON text, as a string. */
  stringify?: readonly string[] | undefined;
  /** Add `{"bucket":…,"key":…}` (or `{"file":…}`) of the object the event came from under this name. */
  sourceField?: string | undefined;
  /**
   * `json`: one line per event (the default). `msgpack`: one map per event, nothing between them. `forward`: one
   * `[EventTime, map]` per event, the time from eventTime.
   */
  outputFormat?: OutputFormat | undefined;
}

const TIMESTAMP_OPEN = Buffer.from(',"@timestamp":"');
const LINE_CLOSE = Buffer.from('"}\n');

/**
 * Receives one scanned event (see `EventHandler` in scan.ts). `fields` holds, for each name in `scannedFields()`,
 * the start and end offsets of that top-level field's value in `event` (-1 when absent).
 */
export type EventWriter = (
  event: Buffer,
  eventTime: Buffer | undefined,
  hasTimestamp: boolean,
  fields?: Int32Array,
) => void;

/** The top-level fields whose value ranges the scanner must report for these options (undefined: none). */
export function scannedFields(options: FormatOptions): readonly string[] | undefined {
  return options.stringify !== undefined && options.stringify.length > 0 ? options.stringify : undefined;
}

/**
 * Parses the value of `--stringify`: no value or `default` means DEFAULT_STRINGIFY; otherwise a comma-separated
 * list of top-level field names, in which `default` stands for the default list.
 */
export function parseStringify(value: string | true): string[] {
  const names = value === true ? ["default"] : value.split(",").map((name) => name.trim());
  const out: string[] = [];
  for (const name of names) {
    if (name === "") continue;
    for (const field of name === "default" ? DEFAULT_STRINGIFY : [name]) if (!out.includes(field)) out.push(field);
  }
  return out;
}

const EVENT_TIME = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2})$/;

/**
 * fluentd's event time for an `eventTime` (`2023-07-10T11:47:39Z` → `1688989659.0`, `…39.250Z` → `…659.250`), as
 * the text of a JSON number: whole seconds from the clock, the fraction copied as written (no float rounding).
 * Undefined when the text is not an ISO 8601 time with a zone: Date.parse would read other shapes as local time.
 */
export function epochSeconds(eventTime: string): string | undefined {
  const m = EVENT_TIME.exec(eventTime);
  if (m === null) return undefined;
  const ms = Date.parse(`${m[1]}${m[3]}`);
  if (!Number.isFinite(ms) || ms < 0) return undefined; // before 1970 the fraction would count the wrong way
  return `${ms / 1000}.${m[2] ?? "0"}`;
}

/** The JSON text of the source object reference. */
function sourceJson(ref: ObjectRef): string {
  return JSON.stringify(ref.scheme === "s3" ? { bucket: ref.bucket, key: ref.key } : { file: ref.path });
}

/** Returns the function that writes one scanned event to the sink; `ref` is the object the events come from. */
export function eventWriter(sink: LineSink, options: FormatOptions, ref?: ObjectRef): EventWriter {
  const plain =
    options.timeField === undefined &&
    options.sourceField === undefined &&
    scannedFields(options) === undefined &&
    (options.outputFormat ?? "json") === "json";
  if (!plain) return shapingWriter(sink, options, ref);
  return (event, eventTime, hasTimestamp) => {
    if (!options.timestamp || eventTime === undefined || hasTimestamp) {
      const { buffer, at } = sink.reserve(event.length + 1);
      buffer.set(event, at);
      buffer[at + event.length] = 0x0a;
      return;
    }
    // `{…}` becomes `{…,"@timestamp":"<eventTime>"}`: the field is written over the closing brace, then closed
    // again. One native copy for the event; the short pieces byte by byte (cheaper than a call each).
    const body = event.length - 1;
    const length = body + TIMESTAMP_OPEN.length + eventTime.length + LINE_CLOSE.length;
    const { buffer, at } = sink.reserve(length);
    buffer.set(event, at);
    let p = at + body;
    for (let k = 0; k < TIMESTAMP_OPEN.length; k++) buffer[p++] = TIMESTAMP_OPEN[k] as number;
    for (let k = 0; k < eventTime.length; k++) buffer[p++] = eventTime[k] as number;
    for (let k = 0; k < LINE_CLOSE.length; k++) buffer[p++] = LINE_CLOSE[k] as number;
  };
}

/** Days from 1970-01-01 to a proleptic Gregorian date (H. Hinnant's `days_from_civil`). */
function daysFromCivil(y: number, m: number, d: number): number {
  y -= m <= 2 ? 1 : 0;
  const era = Math.floor(y / 400);
  const yoe = y - era * 400;
  const doy = Math.floor((153 * (m + (m > 2 ? -3 : 9)) + 2) / 5) + d - 1;
  const doe = yoe * 365 + Math.floor(yoe / 4) - Math.floor(yoe / 100) + doy;
  return era * 146097 + doe - 719468;
}

function digits(b: Buffer, from: number, to: number): number {
  let n = 0;
  for (let i = from; i < to; i++) {
    const c = (b[i] as number) - 0x30;
    if (c < 0 || c > 9) return -1;
    n = n * 10 + c;
  }
  return n;
}

const DAYS_IN_MONTH = [0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

/**
 * `epochSeconds` for the shape CloudTrail writes (`YYYY-MM-DDTHH:MM:SS[.fff]Z`) straight from the bytes, without
 * a regular expression or Date: it runs once per event. Other shapes go the general way.
 */
export function epochOf(t: Buffer): string | undefined {
  const n = t.length;
  if (n < 20 || t[4] !== 0x2d || t[7] !== 0x2d || t[10] !== 0x54 || t[13] !== 0x3a || t[16] !== 0x3a) {
    return epochSeconds(t.toString("latin1"));
  }
  if (t[n - 1] !== 0x5a || (n > 20 && (t[19] !== 0x2e || n > 30 || digits(t, 20, n - 1) < 0 || n === 21))) {
    return epochSeconds(t.toString("latin1"));
  }
  const year = digits(t, 0, 4);
  const month = digits(t, 5, 7);
  const day = digits(t, 8, 10);
  const hour = digits(t, 11, 13);
  const minute = digits(t, 14, 16);
  const second = digits(t, 17, 19);
  if (year < 1970 || month < 1 || month > 12 || day < 1 || day > (DAYS_IN_MONTH[month] as number)) {
    return epochSeconds(t.toString("latin1"));
  }
  if (hour < 0 || hour > 23 || minute < 0 || minute > 59 || second < 0 || second > 59) {
    return epochSeconds(t.toString("latin1"));
  }
  const seconds = daysFromCivil(year, month, day) * 86400 + hour * 3600 + minute * 60 + second;
  return `${seconds}.${n > 20 ? t.toString("latin1", 20, n - 1) : "0"}`;
}

/** Remembers the last eventTime converted: the events of one file often share a second. */
function epochCache(): (eventTime: Buffer) => string | undefined {
  const last = Buffer.alloc(64);
  let lastLength = -1;
  let lastOut: string | undefined;
  return (eventTime) => {
    const length = eventTime.length;
    if (length === lastLength && eventTime.compare(last, 0, length) === 0) return lastOut;
    lastOut = epochOf(eventTime);
    lastLength = length <= last.length ? eventTime.copy(last) : -1;
    return lastOut;
  };
}

/** `[` + EventTime of a Forward protocol entry: a fixarray of 2, then fixext 8 of type 0 (seconds, nanoseconds). */
export const ENTRY_HEADER_BYTES = 11;

/**
 * Writes the start of an entry, `[time,` with the time as fluentd's EventTime
 * (https://github.com/fluent/fluentd/wiki/Forward-Protocol-Specification-v1#eventtime-ext-format): nanoseconds kept,
 * as `<extract> time_key` with `time_type float` would only approximate. `epoch` is epochOf's text; undefined (no
 * eventTime, or one that is no time) is now, as fluentd stamps a record without one.
 */
export function writeEntryHeader(epoch: string | undefined, out: Buffer, at: number, now = Date.now()): void {
  let seconds: number;
  let nanos: number;
  if (epoch === undefined) {
    seconds = Math.floor(now / 1000);
    nanos = (now % 1000) * 1_000_000;
  } else {
    const dot = epoch.indexOf(".");
    seconds = Number(epoch.slice(0, dot));
    nanos = Number(epoch.slice(dot + 1, dot + 10).padEnd(9, "0"));
  }
  out[at] = 0x92;
  out[at + 1] = 0xd7;
  out[at + 2] = 0x00;
  out.writeUInt32BE(seconds >>> 0, at + 3);
  out.writeUInt32BE(nanos, at + 7);
}

/** True when a stringified field's value stays as it is: strings already are strings, and null is no shape. */
function keepsValue(first: number | undefined): boolean {
  return first === 0x22 || first === 0x6e;
}

function shapingWriter(sink: LineSink, options: FormatOptions, ref: ObjectRef | undefined): EventWriter {
  const toEpoch = epochCache();
  const stringified = scannedFields(options)?.length ?? 0;
  const source = options.sourceField !== undefined && ref !== undefined ? sourceJson(ref) : undefined;

  if ((options.outputFormat === "msgpack" || options.outputFormat === "forward") && stringified === 0 && !source) {
    return msgpackWriter(sink, options, toEpoch);
  }

  if (options.outputFormat === "msgpack" || options.outputFormat === "forward") {
    // With stringified fields or the source object: the record is built as an object, then encoded.
    const entry = options.outputFormat === "forward";
    // As deep as the scanner lets an event nest (SCAN_DEPTH_MAX, counted from the file): the encoder's own default of
    // 100 would fail an object whose event nests 101-512 levels, as an InternalError.
    const encoder = new (msgpack().Encoder)({ maxDepth: SCAN_DEPTH_MAX });
    const names = scannedFields(options) ?? [];
    const sourceValue = source === undefined ? undefined : (JSON.parse(source) as unknown);
    return (event, eventTime, hasTimestamp, fields) => {
      // The event is valid JSON (the scanner checked every byte); see docs/output.md for what msgpack cannot keep.
      const record = JSON.parse(event.toString("utf8")) as Record<string, unknown>;
      if (fields !== undefined) {
        for (let f = 0; f < stringified; f++) {
          const start = fields[2 * f] as number;
          if (start < 0 || keepsValue(event[start])) continue;
          record[names[f] as string] = event.toString("utf8", start, fields[2 * f + 1]);
        }
      }
      if (options.timestamp && eventTime !== undefined && !hasTimestamp) record["@timestamp"] = eventTime.toString();
      if (options.timeField !== undefined && eventTime !== undefined) {
        const epoch = toEpoch(eventTime);
        if (epoch !== undefined) record[options.timeField] = Number(epoch);
      }
      if (options.sourceField !== undefined && sourceValue !== undefined) record[options.sourceField] = sourceValue;
      const bytes = encoder.encodeSharedRef(record);
      if (!entry) {
        const { buffer, at } = sink.reserve(bytes.length);
        buffer.set(bytes, at);
        return;
      }
      const { buffer, at } = sink.reserve(ENTRY_HEADER_BYTES + bytes.length);
      writeEntryHeader(eventTime === undefined ? undefined : toEpoch(eventTime), buffer, at);
      buffer.set(bytes, at + ENTRY_HEADER_BYTES);
    };
  }

  const timeOpen = options.timeField === undefined ? undefined : Buffer.from(`${JSON.stringify(options.timeField)}:`);
  const sourceBytes =
    source === undefined ? undefined : Buffer.from(`${JSON.stringify(options.sourceField)}:${source}`);
  // Stringified ranges of one event, in the order they appear in it.
  const order: number[] = [];

  return (event, eventTime, hasTimestamp, fields) => {
    const epoch = options.timeField !== undefined && eventTime !== undefined ? toEpoch(eventTime) : undefined;
    const addTimestamp = options.timestamp && eventTime !== undefined && !hasTimestamp;

    // Measure: the event with its stringified values grown by their quotes and escapes, then the added fields.
    order.length = 0;
    let length = event.length + 1; // + newline
    if (fields !== undefined) {
      for (let f = 0; f < stringified; f++) {
        const start = fields[2 * f] as number;
        if (start < 0 || keepsValue(event[start])) continue;
        const end = fields[2 * f + 1] as number;
        length += 2 + escapes(event, start, end);
        let k = order.length;
        while (k > 0 && (fields[2 * (order[k - 1] as number)] as number) > start) k--;
        order.splice(k, 0, f);
      }
    }
    if (addTimestamp) length += TIMESTAMP_OPEN.length + (eventTime as Buffer).length + 1;
    if (epoch !== undefined) length += 1 + (timeOpen as Buffer).length + epoch.length;
    // An event with an eventTime has members, so those fields always follow a comma; `{}` takes the source bare.
    if (sourceBytes !== undefined) length += (event.length > 2 ? 1 : 0) + sourceBytes.length;

    const { buffer, at } = sink.reserve(length);
    let p = at;
    let from = 0;
    for (const f of order) {
      const start = fields?.[2 * f] as number;
      const end = fields?.[2 * f + 1] as number;
      p += event.copy(buffer, p, from, start);
      p = writeJsonString(event, start, end, buffer, p);
      from = end;
    }
    p += event.copy(buffer, p, from, event.length - 1); // all but the closing brace
    if (addTimestamp) {
      p += TIMESTAMP_OPEN.copy(buffer, p);
      p += (eventTime as Buffer).copy(buffer, p);
      buffer[p++] = 0x22;
    }
    if (epoch !== undefined) {
      buffer[p++] = 0x2c;
      p += (timeOpen as Buffer).copy(buffer, p);
      p += buffer.write(epoch, p, "latin1");
    }
    if (sourceBytes !== undefined) {
      if (event.length > 2) buffer[p++] = 0x2c;
      p += sourceBytes.copy(buffer, p);
    }
    buffer[p++] = 0x7d;
    buffer[p] = 0x0a;
  };
}

const TIMESTAMP_KEY = Buffer.from([0xaa, ...Buffer.from("@timestamp")]);

/**
 * msgpack (or Forward entries) straight from the event's bytes (msgpack-json.ts): the map JSON.parse and
 * @msgpack/msgpack would give, with `@timestamp` and the time field added last, as they would be.
 */
function msgpackWriter(
  sink: LineSink,
  options: FormatOptions,
  toEpoch: (eventTime: Buffer) => string | undefined,
): EventWriter {
  const entry = options.outputFormat === "forward";
  const header = entry ? ENTRY_HEADER_BYTES : 0;
  const transcoder = new JsonToMsgpack();
  const timeKey =
    options.timeField === undefined ? undefined : Buffer.from(new (msgpack().Encoder)().encode(options.timeField));
  return (event, eventTime, hasTimestamp) => {
    const addTimestamp = options.timestamp && eventTime !== undefined && !hasTimestamp;
    const epoch = eventTime === undefined ? undefined : toEpoch(eventTime);
    const time = timeKey === undefined || epoch === undefined ? undefined : Number(epoch);
    let size = transcoder.measure(event, 0, event.length, (addTimestamp ? 1 : 0) + (time === undefined ? 0 : 1));
    if (addTimestamp) {
      const length = (eventTime as Buffer).length;
      size += TIMESTAMP_KEY.length + stringHeaderSize(length) + length;
    }
    if (time !== undefined) size += (timeKey as Buffer).length + numberSize(time);
    const { buffer, at } = sink.reserve(header + size);
    if (entry) writeEntryHeader(epoch, buffer, at);
    let p = transcoder.write(event, buffer, at + header);
    if (addTimestamp) {
      p += TIMESTAMP_KEY.copy(buffer, p);
      p = writeStringHeader(buffer, p, (eventTime as Buffer).length);
      p += (eventTime as Buffer).copy(buffer, p);
    }
    if (time !== undefined) {
      p += (timeKey as Buffer).copy(buffer, p);
      writeNumber(buffer, p, time);
    }
  };
}

/** How many bytes in `b[start, end)` need a backslash inside a JSON string (the value is compact, valid JSON). */
function escapes(b: Buffer, start: number, end: number): number {
  let n = 0;
  for (let i = start; i < end; i++) {
    const c = b[i];
    if (c === 0x22 || c === 0x5c) n++;
  }
  return n;
}

/**
 * Writes `b[start, end)` as a JSON string at `out[p]`; returns the index after it. The value's bytes are compact
 * valid JSON, so they hold no raw control bytes: only `"` and `\` need escaping; UTF-8 passes through.
 */
function writeJsonString(b: Buffer, start: number, end: number, out: Buffer, p: number): number {
  out[p++] = 0x22;
  for (let i = start; i < end; i++) {
    const c = b[i] as number;
    if (c === 0x22 || c === 0x5c) out[p++] = 0x5c;
    out[p++] = c;
  }
  out[p++] = 0x22;
  return p;
}
