// Splits the inflated bytes of a CloudTrail log file into its events without building JavaScript objects.
//
// A log file is `{"Records":[event, event, …]}` (several such documents back to back are accepted too). The
// scanner is a resumable JSON validator: bytes arrive in chunks of any size, every byte is checked against the
// JSON grammar, and each element of the top-level `Records` array is handed on as soon as its closing brace is
// seen. An event leaves exactly as AWS wrote it (number literals such as `1.688560107857E9` and integers above
// 2^53 keep every digit) with only insignificant whitespace removed. Two repairs keep every output line valid:
// a raw control byte inside a string becomes a `\u00XX` escape, and bytes that are not UTF-8 become U+FFFD.
import { isUtf8 } from "node:buffer";

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

/** Receives one event: its compact bytes, the raw contents of its `eventTime` string, whether it has `@timestamp`. */
export type EventHandler = (event: Buffer, eventTime: Buffer | undefined, hasTimestamp: boolean) => void;

// Parser states.
const VALUE = 0; // a value must come (after ':' or ',' in an array)
const ARRAY_FIRST = 1; // after '[': a value or ']'
const OBJECT_FIRST = 2; // after '{': a key or '}'
const KEY = 3; // after ',' in an object: a key
const COLON = 4;
const AFTER = 5; // after a value: ',' or the closing bracket
const STRING = 6;
const ESCAPE = 7; // after a backslash in a string
const UNICODE = 8; // inside the four hex digits of \uXXXX
const NUMBER = 9;
const LITERAL = 10; // inside true / false / null
const DOCUMENT_END = 11; // after a top-level value: whitespace or another document
const START = 12; // nothing seen yet: an optional byte order mark, then a document

// Number sub-states (RFC 8259 grammar). The ones marked "complete" may end the number.
const N_MINUS = 0;
const N_ZERO = 1; // complete
const N_INT = 2; // complete
const N_DOT = 3;
const N_FRAC = 4; // complete
const N_EXP = 5;
const N_EXP_SIGN = 6;
const N_EXP_DIGITS = 7; // complete

// Top-level keys the scanner cares about.
const K_OTHER = 0;
const K_RECORDS = 1;
const K_EVENT_TIME = 2;
const K_TIMESTAMP = 3;

const RECORDS = Buffer.from("Records");
const EVENT_TIME = Buffer.from("eventTime");
const TIMESTAMP = Buffer.from("@timestamp");
const TRUE = Buffer.from("true");
const FALSE = Buffer.from("false");
const NULL = Buffer.from("null");

const MAX_DEPTH = 512;
const OBJ = 0;
const ARR = 1;

const HEX = "0123456789abcdef";
/** `\u00XX` for each control byte, the repair for a raw control character inside a string. */
const CONTROL_ESCAPES: Buffer[] = Array.from({ length: 32 }, (_, b) =>
  Buffer.from(`\\u00${HEX[b >> 4]}${HEX[b & 15]}`),
);

function isHex(b: number): boolean {
  return (b >= 0x30 && b <= 0x39) || (b >= 0x61 && b <= 0x66) || (b >= 0x41 && b <= 0x46);
}

function matchKey(key: Buffer, depth: number): number {
  if (depth === 1) return key.equals(RECORDS) ? K_RECORDS : K_OTHER;
  if (key.length === 9 && key.equals(EVENT_TIME)) return K_EVENT_TIME;
  if (key.length === 10 && key.equals(TIMESTAMP)) return K_TIMESTAMP;
  return K_OTHER;
}

function describe(b: number): string {
  return b >= 0x21 && b <= 0x7e ? `'${String.fromCharCode(b)}'` : `byte 0x${b.toString(16).padStart(2, "0")}`;
}

export interface ScanLimits {
  /** Largest single event accepted, in bytes (AWS documents 256 KB). */
  maxEventBytes: number;
}

export class RecordsScanner {
  private state = START;
  private numState = N_MINUS;
  private literal: Buffer = TRUE;
  private literalPos = 0;
  private hexLeft = 0;
  private stringIsKey = false;
  private depth = 0;
  private readonly stack = new Uint8Array(MAX_DEPTH + 1);
  private offset = 0; // bytes consumed before the current chunk, for error messages

  // Where Records is: true while the container at depth 2 is the top-level Records array.
  private inRecords = false;
  private sawRecords = false;
  private topKey = K_OTHER;
  private eventKey = K_OTHER;
  private nonObjects = 0;

  // The event being captured (depth >= 3 under Records).
  private capturing = false;
  private parts: Buffer[] = [];
  private partsBytes = 0;
  private segStart = 0;
  private eventTime: Buffer | undefined;
  private hasTimestamp = false;

  // A string whose bytes we need (a key at depth 1 or 3, or eventTime's value): where it started.
  private tracking = false;
  private trackValue = false;
  private trackStart = 0;
  private trackParts: Buffer[] = [];
  private trackSpoiled = false; // held a raw control byte: never copied into @timestamp or matched as a key
  private documents = 0;

  /** Events handed on so far. */
  events = 0;

  constructor(
    private readonly onEvent: EventHandler,
    private readonly limits: ScanLimits = { maxEventBytes: 32 * 1024 * 1024 },
  ) {}

  private fail(code: ScanErrorCode, message: string, at: number): never {
    throw new ScanError(code, `${message} at byte ${this.offset + at}`);
  }

  /** Scans one chunk; events complete in it are handed on before this returns. */
  push(chunk: Buffer): void {
    const n = chunk.length;
    let i = 0;
    let state = this.state;
    let depth = this.depth;
    const stack = this.stack;
    if (this.capturing) this.segStart = 0;
    if (this.tracking) this.trackStart = 0;

    while (i < n) {
      const b = chunk[i] as number;
      switch (state) {
        case STRING: {
          // The hot loop: most bytes of a log file are inside strings.
          let j = i;
          while (j < n) {
            const c = chunk[j] as number;
            if (c === 0x22 || c === 0x5c || c < 0x20) break;
            j++;
          }
          i = j;
          if (j === n) continue;
          const c = chunk[j] as number;
          if (c === 0x22) {
            if (this.tracking) this.endTracking(chunk, j, depth);
            i = j + 1;
            if (this.stringIsKey) state = COLON;
            else state = depth === 0 ? DOCUMENT_END : AFTER;
          } else if (c === 0x5c) {
            state = ESCAPE;
            i = j + 1;
          } else {
            // A raw control byte is not valid JSON; escape it rather than lose the event.
            if (this.capturing) {
              this.cut(chunk, j);
              this.parts.push(CONTROL_ESCAPES[c] as Buffer);
              this.partsBytes += 6;
            }
            if (this.tracking) this.trackSpoiled = true;
            i = j + 1;
          }
          continue;
        }
        case ESCAPE:
          if (b === 0x75) {
            state = UNICODE;
            this.hexLeft = 4;
          } else if (
            b === 0x22 ||
            b === 0x5c ||
            b === 0x2f ||
            b === 0x62 ||
            b === 0x66 ||
            b === 0x6e ||
            b === 0x72 ||
            b === 0x74
          ) {
            state = STRING;
          } else {
            this.fail("InvalidJson", `invalid escape \\${String.fromCharCode(b)}`, i);
          }
          i++;
          continue;
        case UNICODE:
          if (!isHex(b)) this.fail("InvalidJson", `invalid \\u escape (${describe(b)})`, i);
          if (--this.hexLeft === 0) state = STRING;
          i++;
          continue;
        case NUMBER: {
          const ns = this.numState;
          const digit = b >= 0x30 && b <= 0x39;
          if (digit) {
            if (ns === N_MINUS) this.numState = b === 0x30 ? N_ZERO : N_INT;
            else if (ns === N_ZERO) this.fail("InvalidJson", "leading zero in a number", i);
            else if (ns === N_DOT) this.numState = N_FRAC;
            else if (ns === N_EXP || ns === N_EXP_SIGN) this.numState = N_EXP_DIGITS;
            i++;
            continue;
          }
          if (b === 0x2e && (ns === N_ZERO || ns === N_INT)) {
            this.numState = N_DOT;
            i++;
            continue;
          }
          if ((b === 0x65 || b === 0x45) && (ns === N_ZERO || ns === N_INT || ns === N_FRAC)) {
            this.numState = N_EXP;
            i++;
            continue;
          }
          if ((b === 0x2b || b === 0x2d) && ns === N_EXP) {
            this.numState = N_EXP_SIGN;
            i++;
            continue;
          }
          if (ns === N_ZERO || ns === N_INT || ns === N_FRAC || ns === N_EXP_DIGITS) {
            state = AFTER; // the number ended; this byte is read again as what follows it
            continue;
          }
          this.fail("InvalidJson", `malformed number (${describe(b)})`, i);
          break;
        }
        case LITERAL:
          if (b !== this.literal[this.literalPos]) this.fail("InvalidJson", `unexpected ${describe(b)}`, i);
          if (++this.literalPos === this.literal.length) state = AFTER;
          i++;
          continue;
        default:
          break;
      }

      // Structural states: whitespace first.
      if (b === 0x20 || b === 0x0a || b === 0x0d || b === 0x09) {
        if (this.capturing) this.cut(chunk, i);
        i++;
        continue;
      }

      switch (state) {
        case START:
          // Tolerate a UTF-8 byte order mark before the document.
          if (b === 0xef && chunk[i + 1] === 0xbb && chunk[i + 2] === 0xbf) {
            i += 3;
            continue;
          }
          state = DOCUMENT_END;
        // falls through
        case DOCUMENT_END:
          if (b !== 0x7b) {
            if (this.documents > 0) this.fail("InvalidJson", `unexpected ${describe(b)} after the document`, i);
            this.fail("NoRecords", "the file is JSON but not an object", i);
          }
          this.documents++;
          depth = 1;
          stack[1] = OBJ;
          state = OBJECT_FIRST;
          i++;
          continue;
        case COLON:
          if (b !== 0x3a) this.fail("InvalidJson", `expected ':' but found ${describe(b)}`, i);
          state = VALUE;
          i++;
          continue;
        case OBJECT_FIRST:
        case KEY:
          if (b === 0x22) {
            this.stringIsKey = true;
            if (depth === 1 || (depth === 3 && this.capturing)) this.startTracking(i + 1, false);
            state = STRING;
            i++;
            continue;
          }
          if (b === 0x7d && state === OBJECT_FIRST) break; // empty object: close below
          this.fail("InvalidJson", `expected a key but found ${describe(b)}`, i);
          break;
        case AFTER:
          if (b === 0x2c) {
            state = stack[depth] === OBJ ? KEY : VALUE;
            i++;
            continue;
          }
          if (b === 0x7d || b === 0x5d) break; // close below
          this.fail("InvalidJson", `expected ',' or a closing bracket but found ${describe(b)}`, i);
          break;
        case ARRAY_FIRST:
          if (b === 0x5d) break; // empty array: close below
        // falls through
        case VALUE: {
          // A value starts here. Note what it means for the Records structure before reading it.
          if (depth === 1) {
            if (this.topKey === K_RECORDS) {
              if (b !== 0x5b) this.fail("NoRecords", "Records is not an array", i);
              this.sawRecords = true;
              this.inRecords = true;
            }
            this.topKey = K_OTHER;
          } else if (depth === 2 && this.inRecords) {
            if (b === 0x7b) {
              this.capturing = true;
              this.segStart = i;
              this.eventTime = undefined;
              this.hasTimestamp = false;
            } else {
              this.nonObjects++;
            }
          } else if (depth === 3 && this.capturing) {
            if (this.eventKey === K_EVENT_TIME && b === 0x22) this.startTracking(i + 1, true);
            else if (this.eventKey === K_TIMESTAMP) this.hasTimestamp = true;
            this.eventKey = K_OTHER;
          }
          if (b === 0x22) {
            this.stringIsKey = false;
            state = STRING;
          } else if (b === 0x7b || b === 0x5b) {
            if (depth === MAX_DEPTH) this.fail("InvalidJson", "nesting deeper than 512", i);
            stack[++depth] = b === 0x7b ? OBJ : ARR;
            state = b === 0x7b ? OBJECT_FIRST : ARRAY_FIRST;
          } else if (b === 0x2d || (b >= 0x30 && b <= 0x39)) {
            state = NUMBER;
            this.numState = b === 0x2d ? N_MINUS : b === 0x30 ? N_ZERO : N_INT;
          } else if (b === 0x74 || b === 0x66 || b === 0x6e) {
            state = LITERAL;
            this.literal = b === 0x74 ? TRUE : b === 0x66 ? FALSE : NULL;
            this.literalPos = 1;
          } else {
            this.fail("InvalidJson", `expected a value but found ${describe(b)}`, i);
          }
          i++;
          continue;
        }
        default:
          this.fail("InvalidJson", `unexpected ${describe(b)}`, i);
      }

      // A closing bracket (only reached with b being '}' or ']').
      if ((b === 0x7d) !== (stack[depth] === OBJ)) this.fail("InvalidJson", `mismatched ${describe(b)}`, i);
      depth--;
      i++;
      if (depth === 2 && this.capturing) {
        this.depth = depth;
        this.finishEvent(chunk, i);
      } else if (depth === 1 && this.inRecords) {
        this.inRecords = false;
      }
      state = depth === 0 ? DOCUMENT_END : AFTER;
    }

    this.state = state;
    this.depth = depth;
    this.offset += n;
    if (this.capturing) {
      if (n > this.segStart) {
        this.parts.push(chunk.subarray(this.segStart, n));
        this.partsBytes += n - this.segStart;
      }
      if (this.partsBytes > this.limits.maxEventBytes) {
        this.fail("EventTooLarge", `an event is larger than ${this.limits.maxEventBytes} bytes`, 0);
      }
    }
    if (this.tracking) {
      this.trackParts.push(chunk.subarray(this.trackStart, n));
      if (this.trackParts.length > 64) this.tracking = false; // no key we look for is this long
    }
  }

  /** Declares the end of the bytes; throws if the file ended early or had no Records array. */
  end(): void {
    if (this.state === START) throw new ScanError("Truncated", "the file is empty");
    if (this.state !== DOCUMENT_END || this.depth !== 0) {
      throw new ScanError("Truncated", `the file ends in the middle of the JSON after ${this.offset} bytes`);
    }
    if (!this.sawRecords) throw new ScanError("NoRecords", "the file has no Records array");
    if (this.nonObjects > 0) {
      throw new ScanError("InvalidEvent", `${this.nonObjects} element(s) of Records are not objects and were left out`);
    }
  }

  /** Drops the byte at `at` from the event being captured (whitespace, or a byte being replaced). */
  private cut(chunk: Buffer, at: number): void {
    if (at > this.segStart) {
      this.parts.push(chunk.subarray(this.segStart, at));
      this.partsBytes += at - this.segStart;
    }
    this.segStart = at + 1;
  }

  private startTracking(at: number, value: boolean): void {
    this.tracking = true;
    this.trackValue = value;
    this.trackStart = at;
    this.trackSpoiled = false;
    this.trackParts.length = 0;
  }

  private endTracking(chunk: Buffer, at: number, depth: number): void {
    this.tracking = false;
    let bytes = chunk.subarray(this.trackStart, at);
    if (this.trackParts.length > 0) bytes = Buffer.concat([...this.trackParts, bytes]);
    this.trackParts.length = 0;
    if (this.trackSpoiled) {
      if (!this.trackValue) this.topKey = this.eventKey = K_OTHER;
    } else if (this.trackValue) {
      this.eventTime = bytes;
    } else if (depth === 1) {
      this.topKey = matchKey(bytes, 1);
    } else {
      this.eventKey = matchKey(bytes, 3);
    }
  }

  private finishEvent(chunk: Buffer, end: number): void {
    let event: Buffer;
    if (this.parts.length === 0) {
      event = chunk.subarray(this.segStart, end);
    } else {
      if (end > this.segStart) this.parts.push(chunk.subarray(this.segStart, end));
      event = Buffer.concat(this.parts);
      this.parts = [];
    }
    this.partsBytes = 0;
    this.capturing = false;
    this.eventKey = K_OTHER;
    if (event.length > this.limits.maxEventBytes) {
      throw new ScanError("EventTooLarge", `an event is larger than ${this.limits.maxEventBytes} bytes`);
    }
    let time = this.eventTime;
    if (!isUtf8(event)) {
      // Only string contents can hold bytes >= 0x80 (anything else failed the grammar), so decoding with
      // U+FFFD replacement cannot change the JSON structure.
      event = Buffer.from(event.toString("utf8"), "utf8");
      if (time !== undefined) time = Buffer.from(time.toString("utf8"), "utf8");
    }
    this.events++;
    this.onEvent(event, time, this.hasTimestamp);
  }
}
