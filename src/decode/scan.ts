// Splits the inflated bytes of a CloudTrail log file into its events without building JavaScript objects.
//
// A log file is `{"Records":[event, event, …]}` (several such documents back to back are accepted too). Every byte
// is checked against the JSON grammar, and each element of the top-level `Records` array is handed on as soon as
// its closing brace arrives. An event leaves exactly as AWS wrote it (number literals such as `1.688560107857E9`
// and integers above 2^53 keep every digit) with only insignificant whitespace removed. Two repairs keep every
// output line valid: a raw control byte inside a string becomes a `\u00XX` escape, and bytes that are not UTF-8
// become U+FFFD.
//
// How: the file's outer structure (`{`, keys, `[`, commas) is a small resumable state machine; each value inside it
// (an event, or the value of another top-level key) is read by a recursive-descent validator over the bytes at
// hand. When a chunk ends inside a value, its bytes are carried over and the value is read again from its start
// once more bytes have come (doubling, so a huge value costs linear time). Real events are small, so the re-read
// is cheap, and the validator keeps everything in local variables: this is the hot path of the whole program.
// Whitespace (`json.dumps`'s `", "`, pretty-printing) is noted where the validator meets it, and an event that has
// some leaves as one copy of the bytes between the runs (`squeeze`).
import { isUtf8 } from "node:buffer";
import { hasSpareTail, isExclusive } from "../shared/buffers.js";

export type ScanErrorCode = "InvalidJson" | "Truncated" | "NoRecords" | "InvalidEvent" | "EventTooLarge";

export class ScanError extends Error {
  override readonly name = "ScanError";
  constructor(
    readonly code: ScanErrorCode,
    message: string,
  ) {
    super(message);
  }
}

/**
 * Receives one event: its compact bytes, the raw contents of its `eventTime` string, whether it has `@timestamp`.
 * With `fields` in the scanner's options, `fields` holds for each of them the start and end offset of that top-level
 * key's value in `event` (-1, -1 when the event lacks it). All of them are valid only during the call: an event that
 * had whitespace is written in memory the scanner reuses for the next one, and the array is reused. Copy what you keep.
 */
export type EventHandler = (
  event: Buffer,
  eventTime: Buffer | undefined,
  hasTimestamp: boolean,
  fields?: Int32Array,
) => void;

export interface ScanLimits {
  /** Largest single value (event) accepted, in bytes (AWS documents 256 KB per event). */
  maxEventBytes: number;
  /** Top-level keys of each event whose value ranges are handed on (see EventHandler); none by default. */
  fields?: readonly string[] | undefined;
}

/** Returned by the readers below when the bytes at hand end inside the value. */
const MORE = -1;
/** The deepest nesting accepted, counted from the file's root (format.ts's msgpack encoder follows it). */
export const SCAN_DEPTH_MAX = 512;

// Bytes that end the fast run inside a string: '"', '\', and control bytes (not allowed raw in JSON strings).
const STRING_STOP = new Uint8Array(256);
STRING_STOP[0x22] = 1;
STRING_STOP[0x5c] = 1;
for (let b = 0; b < 0x20; b++) STRING_STOP[b] = 1;

const HEX = new Uint8Array(256);
for (const c of "0123456789abcdefABCDEF") HEX[c.charCodeAt(0)] = 1;

// Set by the readers for the value being read; module-level so the hot functions take no context object.
/** A raw control byte inside a string: the value needs escaping before output (see `compact`). */
let control = false;
/**
 * The runs of whitespace outside strings in the value being read, as pairs of offsets [start, end) in the buffer
 * read, in order, and how many bytes they hold: the event leaves without them (see `squeeze`). Noted as the reader
 * meets them, so that dropping them is one copy of what is left and needs no second look at the bytes.
 */
let gaps = new Int32Array(256);
let gapEnd = 0;
let gapBytes = 0;
/** More runs than MAX_GAPS in one value: the list stopped growing and `compact` does the work instead. */
let gapsLost = false;
/** Bounds the list's memory (8 bytes a run) for a huge value; a pretty-printed event of 256 KB has about 25,000. */
const MAX_GAPS = 1 << 16;
let timeStart = -1;
let timeEnd = -1;
let hasTimestamp = false;
/** The `fields` of the scanner reading now, and where their values are (pairs of offsets in the buffer read). */
let fieldKeys: readonly Buffer[] = [];
let fieldRanges: Int32Array = new Int32Array(0);
/** Where reading stopped with an error, and why. */
let errorAt = 0;
let errorWhy = "";

function invalid(at: number, why: string): number {
  errorAt = at;
  errorWhy = why;
  throw INVALID;
}
const INVALID = new Error("invalid JSON");

function isSpace(c: number): boolean {
  return c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;
}

function describe(b: number | undefined): string {
  if (b === undefined) return "the end";
  return b >= 0x21 && b <= 0x7e ? `'${String.fromCharCode(b)}'` : `byte 0x${b.toString(16).padStart(2, "0")}`;
}

/**
 * The index of the first byte from i that ends a plain run inside a string: '"', '\\' or a control byte. The buffer
 * ends with a sentinel quote, so the run needs no bounds test. Four bytes per turn, tested in order (so it never
 * reads past the sentinel): 10-12% faster on real events than one per turn.
 */
function stringRun(b: Buffer, i: number): number {
  for (;;) {
    if (STRING_STOP[b[i] as number] !== 0) return i;
    if (STRING_STOP[b[i + 1] as number] !== 0) return i + 1;
    if (STRING_STOP[b[i + 2] as number] !== 0) return i + 2;
    if (STRING_STOP[b[i + 3] as number] !== 0) return i + 3;
    i += 4;
  }
}

/** Reads a string whose opening quote is at i - 1; returns the index after the closing quote. Kept small (inlined). */
function readString(b: Buffer, i: number, n: number): number {
  i = stringRun(b, i);
  if (b[i] === 0x22) return i >= n ? MORE : i + 1;
  return readStringRest(b, i, n);
}

/** The rest of a string from an escape or a control byte at i. */
function readStringRest(b: Buffer, i: number, n: number): number {
  for (;;) {
    i = stringRun(b, i);
    if (i >= n) return MORE;
    const c = b[i] as number;
    if (c === 0x22) return i + 1;
    if (c === 0x5c) {
      if (i + 1 >= n) return MORE;
      const e = b[i + 1] as number;
      if (e === 0x75) {
        if (i + 5 >= n) return MORE;
        if (HEX[b[i + 2] as number] === 0 || HEX[b[i + 3] as number] === 0) return invalid(i, "invalid \\u escape");
        if (HEX[b[i + 4] as number] === 0 || HEX[b[i + 5] as number] === 0) return invalid(i, "invalid \\u escape");
        i += 6;
      } else if (
        e === 0x22 ||
        e === 0x5c ||
        e === 0x2f ||
        e === 0x62 ||
        e === 0x66 ||
        e === 0x6e ||
        e === 0x72 ||
        e === 0x74
      ) {
        i += 2;
      } else {
        return invalid(i, `invalid escape \\${String.fromCharCode(e)}`);
      }
    } else {
      control = true; // a raw control byte: escaped on output
      i++;
    }
  }
}

/** Reads a number starting at i; returns the index after it (MORE when it runs into the end of the bytes at hand). */
function readNumber(b: Buffer, i: number, n: number): number {
  if (b[i] === 0x2d) i++;
  if (i >= n) return MORE;
  let c = b[i] as number;
  if (c === 0x30) {
    i++;
  } else if (c >= 0x31 && c <= 0x39) {
    i++;
    while ((b[i] as number) >= 0x30 && (b[i] as number) <= 0x39) i++; // the sentinel at n is not a digit
  } else {
    return invalid(i, `malformed number (${describe(c)})`);
  }
  if (i >= n) return MORE;
  c = b[i] as number;
  if (c === 0x2e) {
    i++;
    const start = i;
    while ((b[i] as number) >= 0x30 && (b[i] as number) <= 0x39) i++; // the sentinel at n is not a digit
    if (i >= n) return MORE;
    if (i === start) return invalid(i, "malformed number (no digits after '.')");
    c = b[i] as number;
  }
  if (c === 0x65 || c === 0x45) {
    i++;
    if (i >= n) return MORE;
    if (b[i] === 0x2b || b[i] === 0x2d) i++;
    const start = i;
    while ((b[i] as number) >= 0x30 && (b[i] as number) <= 0x39) i++; // the sentinel at n is not a digit
    if (i >= n) return MORE;
    if (i === start) return invalid(i, "malformed number (no digits in the exponent)");
  }
  return i;
}

function readLiteral(b: Buffer, i: number, n: number, word: string): number {
  // The whole word at hand (the usual case): compare it in one go.
  if (i + word.length <= n) {
    const w = word === "true" ? TRUE : word === "false" ? FALSE : NULL;
    if (matches(b, i, w)) return i + w.length;
  }
  for (let k = 0; k < word.length; k++, i++) {
    if (i >= n) return MORE;
    if (b[i] !== word.charCodeAt(k)) return invalid(i, `unexpected ${describe(b[i])}`);
  }
  return i;
}

function matches(b: Buffer, i: number, w: Uint8Array): boolean {
  for (let k = 0; k < w.length; k++) if (b[i + k] !== w[k]) return false;
  return true;
}

const TRUE = Buffer.from("true");
const FALSE = Buffer.from("false");
const NULL = Buffer.from("null");

/**
 * Skips whitespace from i and notes the run in `gaps`; returns the index of the next other byte (may be n). Callers
 * test `b[i] <= 0x20` first (one comparison in compact JSON). The sentinel quote at n ends the run, so the loop needs
 * no bounds test; space first, the usual byte in a run (indentation, `": "`).
 */
function skipSpace(b: Buffer, i: number): number {
  const start = i;
  let c = b[i] as number;
  while (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) c = b[++i] as number;
  if (i === start) return i;
  if (gapEnd === gaps.length) return moreGaps(start, i);
  gaps[gapEnd] = start;
  gaps[gapEnd + 1] = i;
  gapEnd += 2;
  gapBytes += i - start;
  return i;
}

/** Notes the run [start, i) when `gaps` is full: grows it, up to MAX_GAPS runs. Returns i. */
function moreGaps(start: number, i: number): number {
  if (gapEnd >= 2 * MAX_GAPS) {
    gapsLost = true;
    return i;
  }
  const grown = new Int32Array(gaps.length * 2);
  grown.set(gaps);
  gaps = grown;
  gaps[gapEnd] = start;
  gaps[gapEnd + 1] = i;
  gapEnd += 2;
  gapBytes += i - start;
  return i;
}

/** Reads any JSON value starting at i (no leading whitespace); returns the index after it. */
function readValue(b: Buffer, i: number, n: number, depth: number): number {
  const c = b[i] as number;
  if (c === 0x22) return readString(b, i + 1, n);
  if (c === 0x7b) return readObject(b, i + 1, n, depth + 1, false);
  if (c === 0x5b) return readArray(b, i + 1, n, depth + 1);
  if (c === 0x2d || (c >= 0x30 && c <= 0x39)) return readNumber(b, i, n);
  if (c === 0x74) return readLiteral(b, i, n, "true");
  if (c === 0x66) return readLiteral(b, i, n, "false");
  if (c === 0x6e) return readLiteral(b, i, n, "null");
  return invalid(i, `expected a value but found ${describe(c)}`);
}

/** Which of `fieldKeys` the key in b[start, end) is, or -1. */
function fieldIndex(b: Buffer, start: number, end: number): number {
  for (let f = 0; f < fieldKeys.length; f++) {
    const key = fieldKeys[f] as Buffer;
    if (key.length === end - start && b.compare(key, 0, key.length, start, end) === 0) return f;
  }
  return -1;
}

/**
 * Finds the `fields` again in an event whose bytes were rewritten (offsets moved). Rare: AWS writes compact UTF-8.
 * Leaves the other per-value state (eventTime, @timestamp) as it finds it.
 */
function locateFields(event: Buffer): void {
  const b = Buffer.allocUnsafe(event.length + 1);
  event.copy(b);
  b[event.length] = 0x22; // the sentinel readString relies on
  const saved = [control, timeStart, timeEnd, hasTimestamp] as const;
  fieldRanges.fill(-1);
  readObject(b, 1, event.length, 3, true);
  [control, timeStart, timeEnd, hasTimestamp] = saved;
}

/**
 * Moves the `fields` offsets of an event (taken in the buffer read, `start` being the event's first byte) to where
 * they are once `squeeze` has dropped the whitespace runs. An offset is never inside a run (a value starts on a
 * non-space byte and ends before the run that may follow), so it moves by the bytes of the runs before it.
 */
function shiftFields(start: number): void {
  for (let k = 0; k < fieldRanges.length; k++) {
    const at = fieldRanges[k] as number;
    if (at < 0) continue;
    let removed = 0;
    for (let g = 0; g < gapEnd && (gaps[g + 1] as number) <= at; g += 2) {
      removed += (gaps[g + 1] as number) - (gaps[g] as number);
    }
    fieldRanges[k] = at - start - removed;
  }
}

function isKey(b: Buffer, start: number, end: number, word: Uint8Array): boolean {
  return end - start === word.length && matches(b, start, word);
}

const EVENT_TIME = Buffer.from("eventTime");
const AT_TIMESTAMP = Buffer.from("@timestamp");
const RECORDS = Buffer.from("Records");

/**
 * Reads an object whose '{' is at i - 1. For an event (`event` true) it notes where the `eventTime` string is and
 * whether `@timestamp` exists.
 */
function readObject(b: Buffer, i: number, n: number, depth: number, event: boolean): number {
  if (depth > SCAN_DEPTH_MAX) return invalid(i, `nesting deeper than ${SCAN_DEPTH_MAX}`);
  if ((b[i] as number) <= 0x20) i = skipSpace(b, i);
  if (i >= n) return MORE;
  if (b[i] === 0x7d) return i + 1;
  for (;;) {
    if (b[i] !== 0x22) return invalid(i, `expected a key but found ${describe(b[i])}`);
    const keyStart = i + 1;
    i = readString(b, keyStart, n);
    if (i === MORE) return MORE;
    let timeKey = false;
    let field = -1;
    if (event) {
      const first = b[keyStart];
      if (first === 0x65) timeKey = isKey(b, keyStart, i - 1, EVENT_TIME);
      else if (first === 0x40 && isKey(b, keyStart, i - 1, AT_TIMESTAMP)) hasTimestamp = true;
      if (fieldKeys.length !== 0) field = fieldIndex(b, keyStart, i - 1);
    }
    if ((b[i] as number) <= 0x20) i = skipSpace(b, i);
    if (i >= n) return MORE;
    if (b[i] !== 0x3a) return invalid(i, `expected ':' but found ${describe(b[i])}`);
    i = i + 1;
    if ((b[i] as number) <= 0x20) i = skipSpace(b, i);
    if (i >= n) return MORE;
    const valueStart = i;
    i = readValue(b, i, n, depth);
    if (i === MORE) return MORE;
    if (timeKey && b[valueStart] === 0x22) {
      timeStart = valueStart + 1;
      timeEnd = i - 1;
    }
    if (field >= 0) {
      fieldRanges[2 * field] = valueStart;
      fieldRanges[2 * field + 1] = i;
    }
    if ((b[i] as number) <= 0x20) i = skipSpace(b, i);
    if (i >= n) return MORE;
    const c = b[i];
    if (c === 0x7d) return i + 1;
    if (c !== 0x2c) return invalid(i, `expected ',' or '}' but found ${describe(c)}`);
    i = i + 1;
    if ((b[i] as number) <= 0x20) i = skipSpace(b, i);
    if (i >= n) return MORE;
  }
}

/** Reads an array whose '[' is at i - 1. */
function readArray(b: Buffer, i: number, n: number, depth: number): number {
  if (depth > SCAN_DEPTH_MAX) return invalid(i, `nesting deeper than ${SCAN_DEPTH_MAX}`);
  if ((b[i] as number) <= 0x20) i = skipSpace(b, i);
  if (i >= n) return MORE;
  if (b[i] === 0x5d) return i + 1;
  for (;;) {
    i = readValue(b, i, n, depth);
    if (i === MORE) return MORE;
    if ((b[i] as number) <= 0x20) i = skipSpace(b, i);
    if (i >= n) return MORE;
    const c = b[i];
    if (c === 0x5d) return i + 1;
    if (c !== 0x2c) return invalid(i, `expected ',' or ']' but found ${describe(c)}`);
    i = i + 1;
    if ((b[i] as number) <= 0x20) i = skipSpace(b, i);
    if (i >= n) return MORE;
  }
}

const CONTROL_ESCAPES: Buffer[] = Array.from({ length: 32 }, (_, c) =>
  Buffer.from(`\\u00${c.toString(16).padStart(2, "0")}`),
);

/**
 * Copies a valid JSON value without whitespace outside strings and with raw control bytes escaped (`escapes`: it has
 * some). Reads every byte again: for what `squeeze` cannot do (raw control bytes, rare; more than MAX_GAPS runs).
 */
function compact(value: Buffer, escapes: boolean): Buffer {
  const out = Buffer.allocUnsafe(escapes ? value.length * 6 : value.length);
  let o = 0;
  let inString = false;
  for (let i = 0; i < value.length; i++) {
    const c = value[i] as number;
    if (inString) {
      if (c === 0x5c) {
        out[o++] = c;
        out[o++] = value[++i] as number;
      } else if (c < 0x20) {
        o += (CONTROL_ESCAPES[c] as Buffer).copy(out, o);
      } else {
        if (c === 0x22) inString = false;
        out[o++] = c;
      }
    } else if (!isSpace(c)) {
      if (c === 0x22) inString = true;
      out[o++] = c;
    }
  }
  return Buffer.from(out.subarray(0, o));
}

/**
 * A view of an event's bytes that is a Buffer in every way (Buffer.prototype's methods, `Buffer.isBuffer`), made
 * without `subarray`: Node 20's Buffer#subarray reads `this.buffer`, a call into C++ for each view, and the scanner
 * makes two views per event (the event, its eventTime). 2-3% of the CPU corpus's wall time in alternating runs.
 */
class EventViewBase extends Uint8Array {
  constructor(memory: ArrayBufferLike, offset: number, length: number) {
    super(memory as ArrayBuffer, offset, length);
  }
}
Object.setPrototypeOf(EventViewBase.prototype, Buffer.prototype);
const EventView = EventViewBase as unknown as new (memory: ArrayBufferLike, offset: number, length: number) => Buffer;

/** The largest scratch buffer `squeeze` keeps between events; a larger event gets one of its own. */
const SCRATCH_KEEP = 1024 * 1024;
/** Runs at least this long are copied natively; shorter ones four bytes at a time (a view and a call cost more). */
const NATIVE_COPY = 64;

// Outer states: where in `{"Records":[…], …}` the scanner stands between values.
const START = 0; // before the first document (a byte order mark may come)
const DOCUMENT = 1; // before a document's '{', or between documents
const FIRST_KEY = 2; // after the document's '{'
const KEY = 3; // after ',' in the document
const COLON = 4;
const VALUE = 5; // a top-level value must come
const AFTER_VALUE = 6; // ',' or '}'
const RECORD_FIRST = 7; // after Records' '['
const RECORD = 8; // after ',' in Records
const AFTER_RECORD = 9; // ',' or ']'

export class RecordsScanner {
  private state = START;
  private carry: Buffer[] = [];
  private carryBytes = 0;
  /** Bytes to wait for before reading a carried value again (doubling keeps huge values linear). */
  private carryNeed = 0;
  private offset = 0; // bytes before the buffer being read, for error messages
  private recordsKey = false;
  private sawRecords = false;
  private documents = 0;
  private readonly fieldKeys: readonly Buffer[];
  private readonly fieldRanges: Int32Array;
  private nonObjects = 0;
  /** The buffer being read is valid UTF-8 throughout. */
  private utf8 = false;
  /** The memory of the buffer being read, and where the buffer starts in it (see EventView). */
  private memory: ArrayBufferLike = new ArrayBuffer(0);
  private base = 0;
  /** The buffer being read, also as a DataView of its memory (for `squeeze`'s four-byte copies). */
  private bytes: Buffer = Buffer.alloc(0);
  private view: DataView = new DataView(new ArrayBuffer(0));
  /** Where `squeeze` writes each event, reused (see EventHandler), and its DataView. */
  private scratch: Buffer = Buffer.alloc(0);
  private scratchView: DataView = new DataView(new ArrayBuffer(0));

  /** Events handed on so far. */
  events = 0;

  constructor(
    private readonly onEvent: EventHandler,
    private readonly limits: ScanLimits = { maxEventBytes: 32 * 1024 * 1024 },
  ) {
    this.fieldKeys = (limits.fields ?? []).map((key) => Buffer.from(key, "utf8"));
    this.fieldRanges = new Int32Array(this.fieldKeys.length * 2);
  }

  /**
   * Scans one chunk; events complete in it are handed on before this returns, except that a value cut by a chunk
   * boundary waits until the bytes after it are at least as many as its own (so a huge value is re-read rarely).
   */
  push(chunk: Buffer): void {
    if (this.carryBytes === 0 && hasSpareTail(chunk)) {
      // The byte after the chunk is ours: put the sentinel there instead of copying the chunk.
      const b = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.length + 1);
      b[chunk.length] = 0x22;
      this.read(b, false);
      return;
    }
    if (this.carryBytes === 0 && chunk.length > 1 && isExclusive(chunk)) {
      // Only this view holds the chunk: its last byte lends its place to the sentinel while the rest is read, then
      // is put back and read after them (a document's last byte is `}` or a newline, so nothing is read twice).
      const n = chunk.length - 1;
      const last = chunk[n] as number;
      chunk[n] = 0x22;
      try {
        this.read(chunk, false);
      } finally {
        chunk[n] = last;
      }
      this.push(chunk.subarray(n));
      return;
    }
    this.carry.push(chunk);
    this.carryBytes += chunk.length;
    if (this.carryBytes < this.carryNeed) return;
    this.read(this.join(), false);
  }

  /** The carried bytes and the new chunk in one buffer, followed by the sentinel quote `readString` relies on. */
  private join(): Buffer {
    const joined = Buffer.allocUnsafe(this.carryBytes + 1);
    let at = 0;
    for (const part of this.carry) at += part.copy(joined, at);
    joined[at] = 0x22;
    this.carry = [];
    this.carryBytes = 0;
    return joined;
  }

  /** Declares the end of the bytes; throws if the file ended early or had no Records array. */
  end(): void {
    if (this.carryBytes > 0) this.read(this.join(), true);
    if (this.state === START) throw new ScanError("Truncated", "the file is empty");
    if (this.state !== DOCUMENT) {
      throw new ScanError("Truncated", `the file ends in the middle of the JSON after ${this.offset} bytes`);
    }
    if (!this.sawRecords) throw new ScanError("NoRecords", "the file has no Records array");
    if (this.nonObjects > 0) {
      throw new ScanError("InvalidEvent", `${this.nonObjects} element(s) of Records are not objects and were left out`);
    }
  }

  /** Reads `b`, whose last byte is the sentinel quote (not part of the data). */
  private read(b: Buffer, last: boolean): void {
    const n = b.length - 1;
    fieldKeys = this.fieldKeys;
    fieldRanges = this.fieldRanges;
    // Usually the whole buffer is UTF-8 and one native check covers every event in it; else each event is checked.
    this.utf8 = isUtf8(b.subarray(0, n));
    this.bytes = b;
    this.memory = b.buffer;
    this.base = b.byteOffset;
    this.view = new DataView(this.memory);
    let i = 0;
    try {
      while (i < n) {
        const state = this.state;
        const c = b[i] as number;
        if (isSpace(c)) {
          i++;
          continue;
        }
        if (state === RECORD || state === RECORD_FIRST) {
          if (c === 0x7b) {
            // The hot path: one event.
            control = false;
            gapEnd = 0;
            gapBytes = 0;
            gapsLost = false;
            hasTimestamp = false;
            timeStart = -1;
            if (fieldKeys.length !== 0) fieldRanges.fill(-1);
            const end = readObject(b, i + 1, n, 3, true);
            if (end === MORE) break;
            this.emit(i, end);
            i = end;
            this.state = AFTER_RECORD;
            continue;
          }
          if (c === 0x5d && state === RECORD_FIRST) {
            i++;
            this.state = AFTER_VALUE;
            continue;
          }
          const end = readValue(b, i, n, 2);
          if (end === MORE) break;
          this.nonObjects++;
          i = end;
          this.state = AFTER_RECORD;
          continue;
        }
        if (state === AFTER_RECORD) {
          if (c === 0x2c) this.state = RECORD;
          else if (c === 0x5d) this.state = AFTER_VALUE;
          else invalid(i, `expected ',' or ']' in Records but found ${describe(c)}`);
          i++;
          continue;
        }
        if (state === AFTER_VALUE) {
          if (c === 0x2c) this.state = KEY;
          else if (c === 0x7d) this.state = DOCUMENT;
          else invalid(i, `expected ',' or '}' but found ${describe(c)}`);
          i++;
          continue;
        }
        if (state === KEY || state === FIRST_KEY) {
          if (c === 0x7d && state === FIRST_KEY) {
            this.state = DOCUMENT;
            i++;
            continue;
          }
          if (c !== 0x22) invalid(i, `expected a key but found ${describe(c)}`);
          const end = readString(b, i + 1, n);
          if (end === MORE) break;
          this.recordsKey = isKey(b, i + 1, end - 1, RECORDS);
          i = end;
          this.state = COLON;
          continue;
        }
        if (state === COLON) {
          if (c !== 0x3a) invalid(i, `expected ':' but found ${describe(c)}`);
          i++;
          this.state = VALUE;
          continue;
        }
        if (state === VALUE) {
          if (this.recordsKey) {
            if (c !== 0x5b) throw new ScanError("NoRecords", "Records is not an array");
            this.sawRecords = true;
            this.state = RECORD_FIRST;
            i++;
            continue;
          }
          const end = readValue(b, i, n, 1);
          if (end === MORE) break;
          if (end - i > this.limits.maxEventBytes) {
            throw new ScanError("EventTooLarge", `a value is larger than ${this.limits.maxEventBytes} bytes`);
          }
          i = end;
          this.state = AFTER_VALUE;
          continue;
        }
        // START or DOCUMENT
        if (state === START && c === 0xef) {
          if (i + 2 >= n) break;
          if (b[i + 1] === 0xbb && b[i + 2] === 0xbf) {
            i += 3; // a UTF-8 byte order mark before the document
            this.state = DOCUMENT;
            continue;
          }
        }
        if (c !== 0x7b) {
          if (this.documents > 0) invalid(i, `unexpected ${describe(c)} after the document`);
          const json =
            c === 0x5b ||
            c === 0x22 ||
            c === 0x2d ||
            (c >= 0x30 && c <= 0x39) ||
            c === 0x74 ||
            c === 0x66 ||
            c === 0x6e;
          if (!json) invalid(i, `the file does not start like JSON (${describe(c)})`);
          throw new ScanError("NoRecords", "the file is JSON but not an object");
        }
        this.documents++;
        this.state = FIRST_KEY;
        i++;
      }
    } catch (error) {
      if (error !== INVALID) throw error;
      throw new ScanError("InvalidJson", `${errorWhy} at byte ${this.offset + errorAt}`);
    }
    if (i < n) {
      // The bytes end inside a value: keep them and read the value again when more have come.
      const rest = b.subarray(i, n);
      if (last)
        throw new ScanError("Truncated", `the file ends in the middle of the JSON after ${this.offset + n} bytes`);
      if (rest.length > this.limits.maxEventBytes) {
        throw new ScanError("EventTooLarge", `a value is larger than ${this.limits.maxEventBytes} bytes`);
      }
      this.carry = [rest];
      this.carryBytes = rest.length;
      this.carryNeed = rest.length * 2;
    } else {
      this.carryNeed = 0;
    }
    this.offset += i;
  }

  /**
   * The event at [start, end) of the buffer being read without the whitespace runs noted in `gaps`: what lies
   * between them copied to the scratch buffer, once, four bytes at a time (a DataView reads and writes them at any
   * offset), runs of NATIVE_COPY bytes and more natively. Reusing the scratch buffer matters as much as the copy: a
   * fresh buffer per event (as `compact` makes) spends as long again in allocation, page faults and GC. Figures in
   * bench/README.md.
   */
  private squeeze(start: number, end: number): Buffer {
    const size = end - start - gapBytes;
    let out = this.scratch;
    let outView = this.scratchView;
    if (size > out.length) {
      out = Buffer.allocUnsafeSlow(Math.max(size, Math.min(2 * out.length, SCRATCH_KEEP), 64 * 1024));
      outView = new DataView(out.buffer, out.byteOffset, out.length);
      if (out.length <= SCRATCH_KEEP) {
        this.scratch = out;
        this.scratchView = outView;
      }
    }
    const b = this.bytes;
    const inView = this.view;
    const base = this.base;
    let o = 0;
    let from = start;
    for (let g = 0; g <= gapEnd; g += 2) {
      const to = g < gapEnd ? (gaps[g] as number) : end;
      if (to - from >= NATIVE_COPY) {
        out.set(new EventView(this.memory, base + from, to - from), o);
        o += to - from;
      } else {
        let k = from;
        for (; k + 8 <= to; k += 8, o += 8) {
          outView.setUint32(o, inView.getUint32(base + k, true), true);
          outView.setUint32(o + 4, inView.getUint32(base + k + 4, true), true);
        }
        if (k + 4 <= to) {
          outView.setUint32(o, inView.getUint32(base + k, true), true);
          k += 4;
          o += 4;
        }
        for (; k < to; k++) out[o++] = b[k] as number;
      }
      from = gaps[g + 1] as number;
    }
    return new EventView(out.buffer, out.byteOffset, size);
  }

  /** Hands on the event at [start, end) of the buffer being read. */
  private emit(start: number, end: number): void {
    if (end - start > this.limits.maxEventBytes) {
      throw new ScanError("EventTooLarge", `an event is larger than ${this.limits.maxEventBytes} bytes`);
    }
    let event: Buffer = new EventView(this.memory, this.base + start, end - start);
    let time: Buffer | undefined =
      timeStart >= 0 ? new EventView(this.memory, this.base + timeStart, timeEnd - timeStart) : undefined;
    // The bytes read are never changed, so the eventTime view stays valid whatever happens to the event; with
    // whitespace alone (the usual rewrite) the field ranges only shift.
    let squeezed = false;
    let moved = false;
    if (control || gapsLost) {
      event = compact(event, control);
      moved = true;
      // eventTime is then handed on only when plain: a raw control byte would break the line it is copied into.
      if (control && time !== undefined && (time.includes(0x5c) || time.some((c) => c < 0x20))) time = undefined;
    } else if (gapEnd !== 0) {
      event = this.squeeze(start, end);
      squeezed = true;
    }
    if (!this.utf8 && !isUtf8(event)) {
      // Only string contents can hold bytes >= 0x80 (anything else failed the grammar), so decoding with
      // U+FFFD replacement cannot change the JSON structure.
      event = Buffer.from(event.toString("utf8"), "utf8");
      if (time !== undefined) time = Buffer.from(time.toString("utf8"), "utf8");
      moved = true;
      squeezed = false;
    }
    this.events++;
    if (fieldKeys.length === 0) {
      this.onEvent(event, time, hasTimestamp);
      return;
    }
    if (moved) {
      locateFields(event);
    } else if (squeezed) {
      shiftFields(start);
    } else {
      for (let k = 0; k < fieldRanges.length; k++) {
        const at = fieldRanges[k] as number;
        if (at >= 0) fieldRanges[k] = at - start;
      }
    }
    this.onEvent(event, time, hasTimestamp, fieldRanges);
  }
}
