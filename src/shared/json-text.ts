// The JSON text of a value whatever its shape, without recursion: for dead letters, logs and msgpack input, where the
// value came from a queue writer.
//
// JSON.parse nests as deep as memory allows (V8 parses without recursing), but JSON.stringify and the msgpack encoder
// recurse: a line of 100,000 `[` parsed fine and then threw `RangeError: Maximum call stack size exceeded` when its
// dead letter was written, which ended the process (and, with a spool, every restart). Here an explicit stack holds the
// path instead, and the text goes into one growing buffer (not millions of small strings).

/**
 * Whether `value` (parsed JSON, or decoded msgpack) nests deeper than `limit` arrays and objects. Walks without
 * recursion and stops as soon as it knows.
 */
export function nestsDeeperThan(value: unknown, limit: number): boolean {
  if (typeof value !== "object" || value === null) return false;
  const stack: { value: object; depth: number }[] = [{ value, depth: 1 }];
  for (let top = stack.pop(); top !== undefined; top = stack.pop()) {
    if (top.depth > limit) return true;
    const members = Array.isArray(top.value) ? top.value : Object.values(top.value);
    for (const member of members) {
      if (typeof member === "object" && member !== null && !(member instanceof Uint8Array)) {
        stack.push({ value: member, depth: top.depth + 1 });
      }
    }
  }
  return false;
}

/** What `jsonText` made: the text (its first `maxBytes` at most) and how many bytes the whole text has. */
export interface JsonText {
  text: string;
  /** Bytes of the whole text (UTF-8), also when only the first `maxBytes` were kept. */
  bytes: number;
  truncated: boolean;
}

type Frame =
  | { kind: "array"; items: readonly unknown[]; next: number }
  | { kind: "object"; value: Record<string, unknown>; keys: string[]; next: number; written: number }
  /** Closing brackets owed by containers whose last member is being written: one entry for a run of them. */
  | { kind: "close"; code: number; count: number };

/**
 * The JSON text of `value`, as JSON.stringify writes it (without `toJSON`: the values here are parsed or decoded, not
 * built), except that byte arrays (msgpack bin) become their UTF-8 text. At most `maxBytes` are kept, cut at a UTF-8
 * character boundary; the rest is only counted, unless `countRest` is false (then `bytes` is a lower bound, and a value
 * that refers to itself is safe).
 */
export function jsonText(value: unknown, maxBytes = Number.POSITIVE_INFINITY, countRest = true): JsonText {
  const out = new ByteWriter(maxBytes);
  // A container that hands out its last member leaves the stack and owes only its closing bracket, counted in a run
  // with those of its ancestors: 8 million nested arrays take one entry, not 8 million frames.
  const stack: Frame[] = [];
  const owe = (code: number): void => {
    const top = stack[stack.length - 1];
    if (top?.kind === "close" && top.code === code) top.count++;
    else stack.push({ kind: "close", code, count: 1 });
  };
  let current: unknown = value;
  for (;;) {
    // Write `current` (a scalar whole, a container's opening), then find the next value to write.
    if (Array.isArray(current)) {
      out.ascii("[");
      stack.push({ kind: "array", items: current, next: 0 });
    } else if (typeof current === "object" && current !== null && !(current instanceof Uint8Array)) {
      out.ascii("{");
      const object = current as Record<string, unknown>;
      stack.push({ kind: "object", value: object, keys: Object.keys(object), next: 0, written: 0 });
    } else {
      out.scalar(current);
    }
    current = undefined;
    let found = false;
    while (!found) {
      const frame = stack[stack.length - 1];
      if (frame === undefined || (out.full && !countRest)) return out.result();
      if (frame.kind === "close") {
        out.run(frame.code, frame.count);
        stack.pop();
        continue;
      }
      if (frame.kind === "array") {
        if (frame.next === frame.items.length) {
          out.ascii("]");
          stack.pop();
          continue;
        }
        if (frame.next > 0) out.ascii(",");
        current = frame.items[frame.next++];
        if (frame.next === frame.items.length) {
          stack.pop();
          owe(0x5d);
        }
        // As JSON.stringify: what has no JSON form is null in an array.
        if (current === undefined || typeof current === "function" || typeof current === "symbol") current = null;
        found = true;
      } else {
        while (frame.next < frame.keys.length) {
          const key = frame.keys[frame.next++] as string;
          const member = frame.value[key];
          // …and left out of an object.
          if (member === undefined || typeof member === "function" || typeof member === "symbol") continue;
          if (frame.written++ > 0) out.ascii(",");
          out.string(key);
          out.ascii(":");
          current = member;
          found = true;
          if (frame.next === frame.keys.length) {
            stack.pop();
            owe(0x7d);
          }
          break;
        }
        if (!found) {
          out.ascii("}");
          stack.pop();
        }
      }
    }
  }
}

/** Bytes into one buffer grown by doubling; past `maxBytes` only counted. */
class ByteWriter {
  private buffer = Buffer.allocUnsafe(256);
  private length = 0;
  private total = 0;
  full = false;

  constructor(private readonly maxBytes: number) {}

  ascii(text: string): void {
    this.put(text, text.length);
  }

  /** `count` times the ASCII character `code`. */
  run(code: number, count: number): void {
    this.total += count;
    if (this.full) return;
    const n = Math.min(count, this.maxBytes - this.length);
    this.reserve(n);
    this.buffer.fill(code, this.length, this.length + n);
    this.length += n;
    if (n < count) this.full = true;
  }

  string(text: string): void {
    const quoted = JSON.stringify(text);
    this.put(quoted, Buffer.byteLength(quoted, "utf8"));
  }

  scalar(value: unknown): void {
    if (value instanceof Uint8Array) {
      this.string(Buffer.from(value.buffer, value.byteOffset, value.length).toString("utf8"));
      return;
    }
    if (typeof value === "string") {
      this.string(value);
      return;
    }
    if (typeof value === "bigint") {
      this.ascii(value.toString()); // msgpack's 64-bit integers, when decoded as such
      return;
    }
    // Numbers (non-finite ones are null, as JSON.stringify writes them), booleans and null.
    const text = typeof value === "number" || typeof value === "boolean" ? JSON.stringify(value) : "null";
    this.ascii(text);
  }

  result(): JsonText {
    return { text: this.buffer.toString("utf8", 0, this.length), bytes: this.total, truncated: this.full };
  }

  private put(text: string, bytes: number): void {
    this.total += bytes;
    if (this.full) return;
    if (this.length + bytes > this.maxBytes) {
      // Keep what fits, cut back to the first byte of the character that straddles the limit.
      const piece = Buffer.from(text, "utf8");
      let cut = this.maxBytes - this.length;
      while (cut > 0 && ((piece[cut] ?? 0) & 0xc0) === 0x80) cut--;
      this.reserve(cut);
      this.length += piece.copy(this.buffer, this.length, 0, cut);
      this.full = true;
      return;
    }
    this.reserve(bytes);
    this.length += this.buffer.write(text, this.length, "utf8");
  }

  private reserve(bytes: number): void {
    if (this.length + bytes <= this.buffer.length) return;
    let size = this.buffer.length * 2;
    while (size < this.length + bytes) size *= 2;
    const grown = Buffer.allocUnsafe(size);
    this.buffer.copy(grown, 0, 0, this.length);
    this.buffer = grown;
  }
}

/**
 * Whether the JSON text `text` nests arrays and objects deeper than `limit`, by counting brackets outside strings
 * (escapes skipped), without parsing. For refusing a record before JSON.parse builds it: V8 parses any depth, but a
 * 16 MiB line of 8 million `[` takes about 870 MB to hold, and everything that walks it afterwards needs a frame per
 * level. Text that is not JSON may answer either way; JSON.parse still judges it.
 */
export function textNestsDeeperThan(text: string, limit: number): boolean {
  let depth = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22) {
      // A string: to its closing quote, passing over escaped characters.
      for (i++; i < text.length; i++) {
        const d = text.charCodeAt(i);
        if (d === 0x5c) i++;
        else if (d === 0x22) break;
      }
    } else if (c === 0x5b || c === 0x7b) {
      if (++depth > limit) return true;
    } else if (c === 0x5d || c === 0x7d) {
      depth--;
    }
  }
  return false;
}
