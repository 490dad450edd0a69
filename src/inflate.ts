// Turns the stored bytes of an object into JSON bytes, as a stream.
//
// CloudTrail writes gzip, but the field also holds plain JSON despite a `.gz` name, gzip of gzip (some copy tools
// encode again) and multi-member gzip. So gzip is recognised by its magic bytes (1f 8b) at the start of each layer,
// never by name or Content-Encoding, and layers are peeled until the bytes are not gzip. A cap on the inflated size
// turns a gzip bomb into an error while memory stays at one chunk.
import { pipeline, Readable } from "node:stream";
import { createGunzip } from "node:zlib";

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
}

const MAX_LAYERS = 4;

/** Yields the JSON bytes of an object whose stored bytes are `source`. */
export async function* inflate(source: AsyncIterable<Buffer>, options: InflateOptions): AsyncGenerator<Buffer> {
  let total = 0;
  for await (const chunk of peel(source, options.chunkBytes ?? 256 * 1024, 0)) {
    total += chunk.length;
    if (total > options.maxBytes) {
      throw new InflateError("TooLarge", `the object inflates to more than ${options.maxBytes} bytes`);
    }
    yield chunk;
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
