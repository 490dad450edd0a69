// Reads stdin in fluentd's msgpack format (`<format> @type msgpack`: maps back to back, no separator) into the same
// `Line`s the JSON reader makes, so the spool, the filter and the dead-letter contract need not know the format.
//
// Each map becomes the JSON text of its record (input records are small notifications: the round trip costs
// nothing next to fetching an object). A top-level string is taken as a line itself (`s3://…`, `file:///…`), as in
// JSON mode. msgpack has no resynchronisation point: after bytes that are not msgpack the rest of the input is read
// and dropped (so fluentd's writes do not block), and the reader then fails with what was dropped.
//
// Records are cut here before @msgpack/msgpack decodes them, one at a time. Its stream decoder reads a record of any
// size and depth (about 100 bytes of state per level: 16 MiB of one-element arrays would take 1.6 GB), and a record it
// refuses (a `__proto__` key) would end the stream, and with it every record after. Cutting needs only the type byte
// and the length fields the msgpack spec defines (https://github.com/msgpack/msgpack/blob/master/spec.md); values are
// still decoded by the library. So a record longer than the limit, nested too deep or refused by the decoder is one
// record that fails (a dead letter), and the next one is read as usual.
import { DecodeError, decode } from "@msgpack/msgpack";
import { jsonText } from "../shared/json-text.js";
import type { Line } from "./lines.js";

export class MsgpackInputError extends Error {
  override readonly name = "MsgpackInputError";
}

/**
 * The deepest msgpack record decoded, as the JSON scanner's limit for events (scan.ts): real records nest less than 10
 * levels, and the decoder's state for this many is a few tens of KB. A deeper record becomes a dead letter.
 */
export const MSGPACK_DEPTH_MAX = 512;

/** Bytes of a record kept for the report when it is too long. */
const PREFIX_BYTES = 1024;

export async function* readMsgpackLines(source: AsyncIterable<Buffer>, maxRecordBytes: number): AsyncGenerator<Line> {
  const iterator = source[Symbol.asyncIterator]();
  const cutter = new RecordCutter(maxRecordBytes);
  let bytes = 0;
  let number = 0;
  try {
    for (let next = await iterator.next(); next.done !== true; next = await iterator.next()) {
      bytes += next.value.length;
      for (const record of cutter.push(next.value)) yield toLine(record, ++number);
    }
  } catch (error) {
    if (!(error instanceof MsgpackInputError)) throw error;
    let dropped = 0;
    for (let next = await iterator.next(); next.done !== true; next = await iterator.next()) {
      dropped += next.value.length;
    }
    throw new MsgpackInputError(
      `stdin is not msgpack after record ${number} (${error.message}); ` +
        `the rest of the input was dropped (${bytes + dropped} bytes read in all)`,
    );
  }
  if (!cutter.idle) {
    throw new MsgpackInputError(`stdin ended in the middle of record ${number + 1} (${bytes} bytes read in all)`);
  }
}

function toLine(record: CutRecord, number: number): Line {
  if (record.kind === "tooLong") {
    return { kind: "tooLong", number, prefix: record.prefix.toString("utf8"), bytes: record.bytes };
  }
  if (record.depth > MSGPACK_DEPTH_MAX) return refused(number, `nested deeper than ${MSGPACK_DEPTH_MAX}`, record);
  let value: unknown;
  try {
    value = decode(record.bytes, { maxStrLength: record.bytes.length, maxBinLength: record.bytes.length });
  } catch (error) {
    if (!(error instanceof DecodeError || error instanceof RangeError)) throw error;
    return refused(number, `not decodable: ${error.message}`, record);
  }
  // Binary (bin) values become UTF-8 strings: msgpack-ruby packs strings with the ASCII-8BIT encoding as bin.
  return { kind: "line", number, text: typeof value === "string" ? value : jsonText(value).text };
}

/**
 * A record that was cut but not decoded goes on as a record that says so: no notification has this shape, so it
 * becomes a dead letter with this as its `input`, and the count of its bytes.
 */
function refused(number: number, why: string, record: { bytes: Buffer }): Line {
  const text = JSON.stringify({ msgpackRecord: why, bytes: record.bytes.length });
  return { kind: "line", number, text };
}

type CutRecord = { kind: "record"; bytes: Buffer; depth: number } | { kind: "tooLong"; prefix: Buffer; bytes: number };

/**
 * Finds where each msgpack value ends, across chunks, without decoding it. The stack holds, per open container, the
 * items still to come and how many levels it stands for: a container's last item that is itself a container replaces
 * it (its parent is finished when the child is), so nesting costs memory only where items remain at several levels.
 */
class RecordCutter {
  /** Items still to come, per open container. */
  private remaining: number[] = [];
  /** Nesting levels each open container stands for. */
  private levels: number[] = [];
  private depth = 0;
  private maxDepth = 0;
  /** Bytes of a string, bin or ext payload still to pass over. */
  private skip = 0;
  /** The start of a header cut off at the end of the last chunk. */
  private carry: Buffer | undefined;
  private parts: Buffer[] = [];
  private recordBytes = 0;

  constructor(private readonly maxBytes: number) {}

  get idle(): boolean {
    return this.recordBytes === 0 && this.carry === undefined;
  }

  *push(input: Buffer): Generator<CutRecord> {
    const chunk = this.carry === undefined ? input : Buffer.concat([this.carry, input]);
    if (this.carry !== undefined) this.recordBytes -= this.carry.length; // counted again below
    this.carry = undefined;
    let start = 0; // where the current record's bytes in this chunk begin
    let at = 0;
    while (at < chunk.length) {
      if (this.skip > 0) {
        const n = Math.min(this.skip, chunk.length - at);
        this.skip -= n;
        at += n;
        if (this.skip > 0) break;
        if (this.itemDone()) {
          yield this.finish(chunk.subarray(start, at));
          start = at;
        }
        continue;
      }
      const header = headerAt(chunk, at);
      if (header === undefined) {
        // Cut off: keep it for the next chunk.
        this.keep(chunk.subarray(start, at));
        this.carry = Buffer.from(chunk.subarray(at));
        this.recordBytes += this.carry.length;
        return;
      }
      if (header === INVALID) throw new MsgpackInputError(`the byte 0xc1 at ${at} is not msgpack`);
      at += header.size;
      if (header.items > 0) {
        this.open(header.items);
        continue;
      }
      if (header.payload > 0) {
        this.skip = header.payload;
        continue;
      }
      if (header.container) this.maxDepth = Math.max(this.maxDepth, this.depth + 1); // an empty one
      if (this.itemDone()) {
        yield this.finish(chunk.subarray(start, at));
        start = at;
      }
    }
    this.keep(chunk.subarray(start, at));
  }

  /** A container with `items` items starts (as an item of the one on top, if any). */
  private open(items: number): void {
    const top = this.remaining.length - 1;
    this.depth++;
    this.maxDepth = Math.max(this.maxDepth, this.depth);
    if (top >= 0 && --(this.remaining[top] as number) === 0) {
      // The parent's last item: the child takes its place.
      this.remaining[top] = items;
      this.levels[top] = (this.levels[top] as number) + 1;
      return;
    }
    this.remaining.push(items);
    this.levels.push(1);
  }

  /** A scalar (or its payload) ended; returns whether that ended the record. */
  private itemDone(): boolean {
    const top = this.remaining.length - 1;
    if (top < 0) return true;
    if (--(this.remaining[top] as number) > 0) return false;
    this.depth -= this.levels[top] as number;
    this.remaining.pop();
    this.levels.pop();
    return this.remaining.length === 0;
  }

  /** Keeps a record's bytes while it is within the limit; past it, only its first bytes and its length. */
  private keep(bytes: Buffer): void {
    if (bytes.length === 0) return;
    if (this.recordBytes + bytes.length <= this.maxBytes) {
      this.parts.push(Buffer.from(bytes)); // the chunk's memory is the reader's, not ours
    } else if (this.recordBytes < PREFIX_BYTES) {
      this.parts.push(Buffer.from(bytes.subarray(0, PREFIX_BYTES - this.recordBytes)));
    }
    this.recordBytes += bytes.length;
  }

  private finish(tail: Buffer): CutRecord {
    const total = this.recordBytes + tail.length;
    const depth = this.maxDepth;
    let record: CutRecord;
    if (total > this.maxBytes) {
      if (this.recordBytes < PREFIX_BYTES) this.parts.push(tail.subarray(0, PREFIX_BYTES - this.recordBytes));
      record = { kind: "tooLong", prefix: Buffer.concat(this.parts).subarray(0, PREFIX_BYTES), bytes: total };
    } else {
      record = { kind: "record", bytes: Buffer.concat([...this.parts, tail]), depth };
    }
    this.parts = [];
    this.recordBytes = 0;
    this.maxDepth = 0;
    return record;
  }
}

const INVALID = Symbol("invalid");

interface Header {
  /** Bytes of the type byte and its length field. */
  size: number;
  /** Items of a map (two per entry) or array that follow. */
  items: number;
  /** Bytes of a string, bin or ext payload that follow. */
  payload: number;
  container: boolean;
}

const scalar = (size: number, payload = 0): Header => ({ size, items: 0, payload, container: false });
const container = (size: number, items: number): Header => ({ size, items, payload: 0, container: true });

/** The header at `at` (msgpack spec, "Formats"), undefined if the chunk ends inside it. */
function headerAt(b: Buffer, at: number): Header | typeof INVALID | undefined {
  const t = b[at] as number;
  const has = (n: number) => at + n <= b.length;
  if (t <= 0x7f || t >= 0xe0) return scalar(1); // fixints
  if (t <= 0x8f) return container(1, 2 * (t & 0x0f)); // fixmap
  if (t <= 0x9f) return container(1, t & 0x0f); // fixarray
  if (t <= 0xbf) return scalar(1, t & 0x1f); // fixstr
  switch (t) {
    case 0xc0: // nil
    case 0xc2: // false
    case 0xc3: // true
      return scalar(1);
    case 0xc1:
      return INVALID;
    case 0xc4: // bin 8
    case 0xd9: // str 8
      return has(2) ? scalar(2, b.readUInt8(at + 1)) : undefined;
    case 0xc5: // bin 16
    case 0xda: // str 16
      return has(3) ? scalar(3, b.readUInt16BE(at + 1)) : undefined;
    case 0xc6: // bin 32
    case 0xdb: // str 32
      return has(5) ? scalar(5, b.readUInt32BE(at + 1)) : undefined;
    case 0xc7: // ext 8: length, type, data
      return has(2) ? scalar(2, b.readUInt8(at + 1) + 1) : undefined;
    case 0xc8: // ext 16
      return has(3) ? scalar(3, b.readUInt16BE(at + 1) + 1) : undefined;
    case 0xc9: // ext 32
      return has(5) ? scalar(5, b.readUInt32BE(at + 1) + 1) : undefined;
    case 0xca: // float 32
      return scalar(1, 4);
    case 0xcb: // float 64
      return scalar(1, 8);
    case 0xcc: // uint 8
    case 0xd0: // int 8
      return scalar(1, 1);
    case 0xcd: // uint 16
    case 0xd1: // int 16
      return scalar(1, 2);
    case 0xce: // uint 32
    case 0xd2: // int 32
      return scalar(1, 4);
    case 0xcf: // uint 64
    case 0xd3: // int 64
      return scalar(1, 8);
    case 0xd4: // fixext 1, 2, 4, 8, 16: type, data
      return scalar(1, 2);
    case 0xd5:
      return scalar(1, 3);
    case 0xd6:
      return scalar(1, 5);
    case 0xd7:
      return scalar(1, 9);
    case 0xd8:
      return scalar(1, 17);
    case 0xdc: // array 16
      return has(3) ? container(3, b.readUInt16BE(at + 1)) : undefined;
    case 0xdd: // array 32
      return has(5) ? container(5, b.readUInt32BE(at + 1)) : undefined;
    case 0xde: // map 16
      return has(3) ? container(3, 2 * b.readUInt16BE(at + 1)) : undefined;
    default: // 0xdf: map 32
      return has(5) ? container(5, 2 * b.readUInt32BE(at + 1)) : undefined;
  }
}
