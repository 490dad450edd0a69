// Turns the stored bytes of an object into JSON bytes, as a stream.
//
// CloudTrail writes gzip, but the field also holds plain JSON despite a `.gz` name, gzip of gzip (some copy tools
// encode again) and multi-member gzip. So gzip is recognised by its magic bytes (1f 8b) at the start of each layer,
// never by name or Content-Encoding, and layers are peeled until the bytes are not gzip. A cap on the inflated size
// turns a gzip bomb into an error while memory stays at one chunk.
import { pipeline, Readable } from "node:stream";
import { promisify } from "node:util";
import { createGunzip, gunzip as gunzipCallback, gunzipSync, type ZlibOptions } from "node:zlib";
import { markDedicated, markExclusive, WHOLE_STORED_MAX } from "../shared/buffers.js";

export type InflateErrorCode = "CorruptGzip" | "Truncated" | "TooLarge";

export class InflateError extends Error {
  override readonly name = "InflateError";
  constructor(
    readonly code: InflateErrorCode,
    message: string,
  ) {
    super(message);
  }
}

export interface InflateOptions {
  /** Largest inflated size accepted, in bytes. */
  maxBytes: number;
  /** zlib output chunk size: larger chunks mean fewer hand-offs per megabyte. */
  chunkBytes?: number;
  /** Objects stored in at most this many bytes are inflated in one piece (default 4 MiB; 0: always stream). */
  wholeStoredMax?: number;
}

const MAX_LAYERS = 4;

/** The largest inflated size taken in one piece (read from the gzip trailer); beyond it the object is streamed. */
const WHOLE_INFLATED_MAX = 32 * 1024 * 1024;

/** Inflated sizes up to this are inflated on the calling thread (well under a millisecond). */
const INLINE_INFLATED_MAX = 128 * 1024;

const gunzipWhole: (data: Buffer, options: ZlibOptions) => Promise<Buffer> = promisify(gunzipCallback);

/** An object's stored bytes: whole when small, else a stream (its first bytes already read). */
export type Stored = { whole: Buffer } | { stream: AsyncIterable<Buffer> };

/** Reads a small object whole; a larger one comes back as a stream that starts with the bytes read so far. */
export async function readStored(source: AsyncIterable<Buffer>, wholeStoredMax = WHOLE_STORED_MAX): Promise<Stored> {
  const iterator = source[Symbol.asyncIterator]();
  const head: Buffer[] = [];
  let headBytes = 0;
  try {
    while (headBytes <= wholeStoredMax) {
      const next = await iterator.next();
      if (next.done === true)
        return { whole: head.length === 1 ? (head[0] as Buffer) : Buffer.concat(head, headBytes) };
      head.push(next.value);
      headBytes += next.value.length;
    }
  } catch (error) {
    await iterator.return?.();
    throw error;
  }
  return { stream: resumeAll(head, iterator) };
}

/** Yields the JSON bytes of an object whose stored bytes are `source`. */
export async function* inflate(source: AsyncIterable<Buffer>, options: InflateOptions): AsyncGenerator<Buffer> {
  yield* inflateStored(await readStored(source, options.wholeStoredMax), options);
}

/** Yields the JSON bytes of stored bytes read by `readStored`. */
export async function* inflateStored(stored: Stored, options: InflateOptions): AsyncGenerator<Buffer> {
  if ("whole" in stored) {
    const whole = await inflateWhole(stored.whole, options.maxBytes);
    if (whole !== undefined) {
      yield whole;
      return;
    }
    // Too large for one piece, or damaged: stream it, which also yields what comes before any damage.
  }
  let total = 0;
  const source = "whole" in stored ? resumeAll([stored.whole], undefined) : stored.stream;
  for await (const chunk of peel(source, options.chunkBytes ?? 256 * 1024, 0)) {
    total += chunk.length;
    if (total > options.maxBytes) {
      throw new InflateError("TooLarge", `the object inflates to more than ${options.maxBytes} bytes`);
    }
    yield chunk;
  }
}

/**
 * What to do with the next layer of a whole object: "plain" when the bytes are not gzip (done), "stream" when it
 * must be streamed instead (too many layers, too large, too short), else the zlib options to inflate it in one call.
 */
function nextLayer(
  data: Buffer,
  layer: number,
  maxBytes: number,
): "plain" | "stream" | (ZlibOptions & { hint: number }) {
  if (data.length < 2 || data[0] !== 0x1f || data[1] !== 0x8b) return "plain";
  if (layer === MAX_LAYERS || data.length < 18) return "stream";
  // ISIZE, the last member's inflated size mod 2^32: a hint to size the output, checked by maxOutputLength.
  const hint = data.readUInt32LE(data.length - 4);
  if (hint > WHOLE_INFLATED_MAX) return "stream";
  return {
    hint,
    chunkSize: Math.max(1024, Math.min(hint + 1, WHOLE_INFLATED_MAX)),
    maxOutputLength: Math.min(WHOLE_INFLATED_MAX, maxBytes + 1),
  };
}

/** A layer that failed in one piece: over the caller's limit is TooLarge; anything else is left to the stream path. */
function giveUp(error: unknown, maxBytes: number): undefined {
  const code = typeof error === "object" && error !== null && "code" in error ? error.code : undefined;
  if (code === "ERR_BUFFER_TOO_LARGE" && maxBytes + 1 <= WHOLE_INFLATED_MAX) {
    throw new InflateError("TooLarge", `the object inflates to more than ${maxBytes} bytes`);
  }
  return undefined; // damaged, or larger than the hint said: the stream path yields what it can and says why
}

function finished(data: Buffer, stored: Buffer, maxBytes: number): Buffer {
  if (data.length > maxBytes) throw new InflateError("TooLarge", `the object inflates to more than ${maxBytes} bytes`);
  // zlib's result is held by nothing else once the one-shot call returns (its memory may be a pooled slab: only this
  // view's own bytes are ours).
  return data === stored ? data : markExclusive(data);
}

/** Inflates every gzip layer of a small object in one call each; undefined when it must be streamed instead. */
async function inflateWhole(stored: Buffer, maxBytes: number): Promise<Buffer | undefined> {
  let data = stored;
  for (let layer = 0; ; layer++) {
    const next = nextLayer(data, layer, maxBytes);
    if (next === "plain") return finished(data, stored, maxBytes);
    if (next === "stream") return undefined;
    try {
      // A tiny object inflates faster here than the hand-off to the thread pool and back costs.
      if (next.hint <= INLINE_INFLATED_MAX) data = gunzipSync(data, next);
      else {
        data = await gunzipWhole(data, next);
        // zlib answers a one-shot call with a view of the output buffer it allocated at the size asked for: when the
        // view is all of it, nothing else has it (its engine is gone), and the caller may release it (buffers.ts).
        if (data.byteOffset === 0 && data.buffer.byteLength === next.chunkSize) markDedicated(data);
      }
    } catch (error) {
      return giveUp(error, maxBytes);
    }
  }
}

/** The synchronous twin of `inflateWhole`, for scan workers (a worker's own core does the inflating). */
export function inflateWholeSync(stored: Buffer, maxBytes: number): Buffer | undefined {
  let data = stored;
  for (let layer = 0; ; layer++) {
    const next = nextLayer(data, layer, maxBytes);
    if (next === "plain") return finished(data, stored, maxBytes);
    if (next === "stream") return undefined;
    try {
      data = gunzipSync(data, next);
    } catch (error) {
      return giveUp(error, maxBytes);
    }
  }
}

async function* resumeAll(head: Buffer[], iterator: AsyncIterator<Buffer> | undefined): AsyncGenerator<Buffer> {
  try {
    yield* head;
    if (iterator === undefined) return;
    for (;;) {
      const next = await iterator.next();
      if (next.done === true) return;
      yield next.value;
    }
  } finally {
    await iterator?.return?.();
  }
}

async function* peel(source: AsyncIterable<Buffer>, chunkBytes: number, layer: number): AsyncGenerator<Buffer> {
  const iterator = source[Symbol.asyncIterator]();
  let head: Buffer = Buffer.alloc(0);
  let done = false;
  try {
    while (head.length < 2) {
      const next = await iterator.next();
      if (next.done === true) {
        done = true;
        break;
      }
      head = head.length === 0 ? next.value : Buffer.concat([head, next.value]);
    }
  } catch (error) {
    await iterator.return?.();
    throw error;
  }
  const rest = resume(head, iterator, done);
  if (head[0] === 0x1f && head[1] === 0x8b) {
    if (layer === MAX_LAYERS) throw new InflateError("CorruptGzip", `more than ${MAX_LAYERS} layers of gzip`);
    yield* peel(gunzip(rest, chunkBytes), chunkBytes, layer + 1);
  } else {
    yield* rest;
  }
}

async function* resume(head: Buffer, iterator: AsyncIterator<Buffer>, done: boolean): AsyncGenerator<Buffer> {
  try {
    if (head.length > 0) yield head;
    if (done) return;
    for (;;) {
      const next = await iterator.next();
      if (next.done === true) return;
      yield next.value;
    }
  } finally {
    await iterator.return?.();
  }
}

async function* gunzip(source: AsyncIterable<Buffer>, chunkBytes: number): AsyncGenerator<Buffer> {
  const gz = createGunzip({ chunkSize: chunkBytes });
  // pipeline destroys every stage when one fails or when the consumer stops early, so the source (an S3
  // response, a file) is closed on every path.
  pipeline(Readable.from(source, { objectMode: false }), gz, () => {});
  try {
    for await (const chunk of gz) yield chunk as Buffer;
  } catch (error) {
    throw classifyZlibError(error);
  } finally {
    gz.destroy();
  }
}

function classifyZlibError(error: unknown): unknown {
  if (!(error instanceof Error) || !("code" in error) || typeof error.code !== "string") return error;
  if (!error.code.startsWith("Z_")) return error;
  if (error.code === "Z_BUF_ERROR") return new InflateError("Truncated", `the gzip data ends early (${error.message})`);
  return new InflateError("CorruptGzip", `the gzip data is corrupt (${error.message})`);
}
