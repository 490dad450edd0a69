// Turns the bytes of one compact JSON value (an event, as the scanner has checked and copied it) into msgpack directly,
// without building JavaScript objects: the same bytes @msgpack/msgpack writes for JSON.parse of the text (integers in
// their smallest form when safe, other numbers as float64, strings as UTF-8), at a fraction of the cost. For the
// forward output and the msgpack output this was most of the filter's work: JSON.parse and encode took about as long
// as inflating and scanning the event together (bench/README.md, "Forward").
//
// Two passes over the bytes: the first cuts them into tokens and counts each container's members (a msgpack header
// holds the count, which JSON only tells at the closing bracket) and the total size; the second writes. Duplicate keys
// are kept as written, where JSON.parse keeps the last value in the first one's place: fluentd (Ruby) decodes such a
// map to that same Hash, so the record it gets is the one exec_filter's JSON would give. A string with escapes is the
// rare slow path (JSON.parse of that string alone).

const MAP = 1;
const ARRAY = 2;
const RAW_STRING = 3;
const DECODED_STRING = 4;
const NUMBER = 5;
const TRUE = 6;
const FALSE = 7;
const NULL = 8;

/** Bytes of a msgpack map or array header for `count` members. */
function containerHeaderSize(count: number): number {
  return count < 16 ? 1 : count < 0x10000 ? 3 : 5;
}

/** Bytes of a msgpack str header for `length` bytes (str8 from 32, as @msgpack/msgpack writes). */
export function stringHeaderSize(length: number): number {
  return length < 32 ? 1 : length < 0x100 ? 2 : length < 0x10000 ? 3 : 5;
}

/** Bytes of a number as @msgpack/msgpack encodes it. */
export function numberSize(n: number): number {
  if (!Number.isSafeInteger(n)) return 9;
  if (n >= 0) return n < 0x80 ? 1 : n < 0x100 ? 2 : n < 0x10000 ? 3 : n < 0x100000000 ? 5 : 9;
  return n >= -0x20 ? 1 : n >= -0x80 ? 2 : n >= -0x8000 ? 3 : n >= -0x80000000 ? 5 : 9;
}

/** Writes a str header for `length` bytes at `at`; returns the index after it. */
export function writeStringHeader(out: Buffer, at: number, length: number): number {
  if (length < 32) {
    out[at] = 0xa0 | length;
    return at + 1;
  }
  if (length < 0x100) {
    out[at] = 0xd9;
    out[at + 1] = length;
    return at + 2;
  }
  if (length < 0x10000) {
    out[at] = 0xda;
    out.writeUInt16BE(length, at + 1);
    return at + 3;
  }
  out[at] = 0xdb;
  out.writeUInt32BE(length, at + 1);
  return at + 5;
}

function writeContainerHeader(out: Buffer, at: number, count: number, map: boolean): number {
  if (count < 16) {
    out[at] = (map ? 0x80 : 0x90) | count;
    return at + 1;
  }
  if (count < 0x10000) {
    out[at] = map ? 0xde : 0xdc;
    out.writeUInt16BE(count, at + 1);
    return at + 3;
  }
  out[at] = map ? 0xdf : 0xdd;
  out.writeUInt32BE(count, at + 1);
  return at + 5;
}

/** Writes a number as @msgpack/msgpack does; returns the index after it. */
export function writeNumber(out: Buffer, at: number, n: number): number {
  if (!Number.isSafeInteger(n)) {
    out[at] = 0xcb;
    out.writeDoubleBE(n, at + 1);
    return at + 9;
  }
  if (n >= 0) {
    if (n < 0x80) {
      out[at] = n;
      return at + 1;
    }
    if (n < 0x100) {
      out[at] = 0xcc;
      out[at + 1] = n;
      return at + 2;
    }
    if (n < 0x10000) {
      out[at] = 0xcd;
      out.writeUInt16BE(n, at + 1);
      return at + 3;
    }
    if (n < 0x100000000) {
      out[at] = 0xce;
      out.writeUInt32BE(n, at + 1);
      return at + 5;
    }
    out[at] = 0xcf;
    out.writeBigUInt64BE(BigInt(n), at + 1);
    return at + 9;
  }
  if (n >= -0x20) {
    out[at] = n & 0xff;
    return at + 1;
  }
  if (n >= -0x80) {
    out[at] = 0xd0;
    out.writeInt8(n, at + 1);
    return at + 2;
  }
  if (n >= -0x8000) {
    out[at] = 0xd1;
    out.writeInt16BE(n, at + 1);
    return at + 3;
  }
  if (n >= -0x80000000) {
    out[at] = 0xd2;
    out.writeInt32BE(n, at + 1);
    return at + 5;
  }
  out[at] = 0xd3;
  out.writeBigInt64BE(BigInt(n), at + 1);
  return at + 9;
}

/** The value of a JSON number literal: digits alone are summed here (most of CloudTrail's), the rest by Number(). */
function numberAt(json: Buffer, start: number, end: number): number {
  if (end - start <= 15) {
    let i = start;
    const negative = json[i] === 0x2d;
    if (negative) i++;
    let n = 0;
    for (; i < end; i++) {
      const d = (json[i] as number) - 0x30;
      if (d < 0 || d > 9) return Number(json.toString("latin1", start, end));
      n = n * 10 + d;
    }
    return negative ? -n : n;
  }
  return Number(json.toString("latin1", start, end));
}

/**
 * Reusable: one per writer. `measure` cuts a value into tokens and returns its msgpack size; `write` then writes it.
 * `extraMembers` members are counted into the top-level map's header, for the caller to write right after it.
 */
export class JsonToMsgpack {
  private kinds = new Uint8Array(256);
  /** Per token: start and end of a raw string, member count of a container, index of a decoded string. */
  private a = new Int32Array(256);
  private b = new Int32Array(256);
  private numbers = new Float64Array(256);
  private decoded: Buffer[] = [];
  private tokens = 0;
  private stack = new Int32Array(64);

  private grow(): void {
    const size = this.kinds.length * 2;
    const kinds = new Uint8Array(size);
    kinds.set(this.kinds);
    this.kinds = kinds;
    const a = new Int32Array(size);
    a.set(this.a);
    this.a = a;
    const b = new Int32Array(size);
    b.set(this.b);
    this.b = b;
    const numbers = new Float64Array(size);
    numbers.set(this.numbers);
    this.numbers = numbers;
  }

  private push(kind: number, a: number, b: number): number {
    if (this.tokens === this.kinds.length) this.grow();
    const t = this.tokens++;
    this.kinds[t] = kind;
    this.a[t] = a;
    this.b[t] = b;
    return t;
  }

  /** Tokens of the compact JSON value in `json[start, end)`; returns the bytes its msgpack takes. */
  measure(json: Buffer, start = 0, end = json.length, extraMembers = 0): number {
    this.tokens = 0;
    this.decoded.length = 0;
    let depth = 0;
    let size = 0;
    let i = start;
    let nextBackslash = json.indexOf(0x5c, start);
    while (i < end) {
      const c = json[i] as number;
      switch (c) {
        case 0x7b: // {
        case 0x5b: {
          // [
          if (depth > 0) this.member(depth);
          if (depth === this.stack.length) {
            const stack = new Int32Array(depth * 2);
            stack.set(this.stack);
            this.stack = stack;
          }
          this.stack[depth++] = this.push(c === 0x7b ? MAP : ARRAY, 0, 0);
          i++;
          break;
        }
        case 0x7d: // }
        case 0x5d: {
          // ]
          const t = this.stack[--depth] as number;
          if (depth === 0) this.a[t] = (this.a[t] as number) + extraMembers;
          size += containerHeaderSize(this.a[t] as number);
          i++;
          break;
        }
        case 0x22: {
          // "
          const isKey =
            depth > 0 &&
            this.kinds[this.stack[depth - 1] as number] === MAP &&
            this.b[this.stack[depth - 1] as number] === 0;
          if (depth > 0 && !isKey) this.member(depth);
          if (isKey) {
            const map = this.stack[depth - 1] as number;
            this.a[map] = (this.a[map] as number) + 1;
            this.b[map] = 1; // a value comes next
          }
          // The closing quote by memchr (indexOf); a backslash before it (found the same way, and remembered
          // until passed) means escapes, and then the quote may be escaped too: walk that string byte by byte.
          let j = json.indexOf(0x22, i + 1);
          if (nextBackslash !== -1 && nextBackslash < i) nextBackslash = json.indexOf(0x5c, i + 1);
          const escaped = nextBackslash !== -1 && nextBackslash < j;
          if (escaped) {
            j = i + 1;
            for (;;) {
              const d = json[j] as number;
              if (d === 0x22) break;
              j += d === 0x5c ? 2 : 1;
            }
            nextBackslash = json.indexOf(0x5c, j + 1);
          }
          if (escaped) {
            const text = JSON.parse(json.toString("utf8", i, j + 1)) as string;
            const bytes = Buffer.from(text, "utf8");
            this.push(DECODED_STRING, this.decoded.length, 0);
            this.decoded.push(bytes);
            size += stringHeaderSize(bytes.length) + bytes.length;
          } else {
            this.push(RAW_STRING, i + 1, j);
            size += stringHeaderSize(j - i - 1) + (j - i - 1);
          }
          i = j + 1;
          break;
        }
        case 0x3a: // :
          i++;
          break;
        case 0x2c: // ,
          // In a map, a key comes next.
          if (this.kinds[this.stack[depth - 1] as number] === MAP) this.b[this.stack[depth - 1] as number] = 0;
          i++;
          break;
        case 0x74: // true
          this.member(depth);
          this.push(TRUE, 0, 0);
          size++;
          i += 4;
          break;
        case 0x66: // false
          this.member(depth);
          this.push(FALSE, 0, 0);
          size++;
          i += 5;
          break;
        case 0x6e: // null
          this.member(depth);
          this.push(NULL, 0, 0);
          size++;
          i += 4;
          break;
        case 0x20:
        case 0x09:
        case 0x0a:
        case 0x0d:
          i++; // insignificant whitespace (the scanner removes it; harmless either way)
          break;
        default: {
          // a number
          this.member(depth);
          let j = i + 1;
          for (; j < end; j++) {
            const d = json[j] as number;
            if (!((d >= 0x30 && d <= 0x39) || d === 0x2e || d === 0x65 || d === 0x45 || d === 0x2b || d === 0x2d))
              break;
          }
          const n = numberAt(json, i, j);
          const t = this.push(NUMBER, 0, 0);
          this.numbers[t] = n;
          size += numberSize(n);
          i = j;
        }
      }
    }
    return size;
  }

  /** A value starts inside the container at `depth`: an array counts it (a map counted its key). */
  private member(depth: number): void {
    if (depth === 0) return;
    const t = this.stack[depth - 1] as number;
    if (this.kinds[t] === ARRAY) this.a[t] = (this.a[t] as number) + 1;
  }

  /** Writes the value measured last at `out[at]`; returns the index after it. */
  write(json: Buffer, out: Buffer, at: number): number {
    let p = at;
    const { kinds, a, b } = this;
    for (let t = 0; t < this.tokens; t++) {
      switch (kinds[t]) {
        case MAP:
          p = writeContainerHeader(out, p, a[t] as number, true);
          break;
        case ARRAY:
          p = writeContainerHeader(out, p, a[t] as number, false);
          break;
        case RAW_STRING: {
          const s = a[t] as number;
          const e = b[t] as number;
          p = writeStringHeader(out, p, e - s);
          if (e - s > 24) p += json.copy(out, p, s, e);
          else for (let k = s; k < e; k++) out[p++] = json[k] as number; // short ones: cheaper than a native call
          break;
        }
        case DECODED_STRING: {
          const bytes = this.decoded[a[t] as number] as Buffer;
          p = writeStringHeader(out, p, bytes.length);
          p += bytes.copy(out, p);
          break;
        }
        case NUMBER:
          p = writeNumber(out, p, this.numbers[t] as number);
          break;
        case TRUE:
          out[p++] = 0xc3;
          break;
        case FALSE:
          out[p++] = 0xc2;
          break;
        default:
          out[p++] = 0xc0;
      }
    }
    return p;
  }
}
