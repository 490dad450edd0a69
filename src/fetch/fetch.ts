// Opens the stored bytes of an object: from S3 (or an S3-compatible endpoint) or from a local file.
// SDK errors are classified by name, HTTP status and code (shared/aws-errors.ts), never by message text.
import { close, constants, createReadStream, fstat, open, read, type Stats } from "node:fs";
import type { ObjectRef } from "../model/refs.js";
import { classifyError, errorCode, sdkName } from "../shared/aws-errors.js";
import { allocWithSpareTail, WHOLE_STORED_MAX } from "../shared/buffers.js";
import type { S3Getter, S3Object } from "./s3-get.js";

/**
 * `NotAFile`: a `file://` line names a directory, a device or a pipe: as permanent as a missing file, and not the
 * transient S3 failure `FetchFailed` stands for.
 */
export type FetchErrorCode = "NotFound" | "AccessDenied" | "NotAFile" | "FetchFailed";

export class FetchError extends Error {
  override readonly name = "FetchError";
  constructor(
    readonly code: FetchErrorCode,
    message: string,
    /** True when the same request may succeed later (5xx, throttling, network). */
    readonly transient: boolean,
    /** True when S3 asked to slow down (503 SlowDown, throttling). */
    readonly throttled = false,
  ) {
    super(message);
  }
}

/**
 * An object's stored bytes: read whole when small (the usual CloudTrail file, and no stream machinery per object), else
 * as a stream of chunks.
 */
export type OpenedObject =
  | { whole: Buffer; size: number }
  | {
      body: AsyncIterable<Buffer>;
      /** Stored size in bytes, when known. */
      size: number | undefined;
    };

/** Where object bytes come from; tests and the import command hand in their own. */
export interface ObjectSource {
  open(ref: ObjectRef, signal: AbortSignal): Promise<OpenedObject>;
}

/** Classifies an error thrown by the S3 client or by reading its response body. */
export function classifyS3Error(error: unknown, where: string): FetchError {
  if (error instanceof FetchError) return error;
  const name = sdkName(error);
  const { kind, transient, throttled } = classifyError(error);
  if (kind !== "Failed") return new FetchError(kind, `Failed to fetch ${where}: ${name}`, false);
  const detail = error instanceof Error ? error.message || name : String(error);
  return new FetchError("FetchFailed", `Failed to fetch ${where}: ${name}: ${detail}`, transient, throttled);
}

export class S3Source implements ObjectSource {
  /**
   * `getter()` gives the GET client, created on first use (it loads the SDK). `observe` is told how long each GET took
   * to its response headers, failed ones too (--metrics-listen's histogram).
   */
  constructor(
    private readonly getter: () => Promise<S3Getter>,
    private readonly observe?: { getSeconds(seconds: number): void },
  ) {}

  async open(ref: ObjectRef, signal: AbortSignal): Promise<OpenedObject> {
    if (ref.scheme === "file") return openFile(ref.path);
    const where = `s3://${ref.bucket}/${ref.key}`;
    let object: S3Object;
    let startedAt: number | undefined;
    try {
      const getter = await this.getter();
      if (this.observe !== undefined) startedAt = performance.now();
      object = await getter.get(ref.bucket, ref.key, ref.region, signal);
    } catch (error) {
      throw classifyS3Error(error, where);
    } finally {
      if (startedAt !== undefined) this.observe?.getSeconds((performance.now() - startedAt) / 1000);
    }
    const { size } = object;
    if (size !== undefined && size <= WHOLE_STORED_MAX)
      return { whole: await readWhole(object.body, size, where), size };
    return { body: readBody(object.body, where, size), size };
  }
}

/**
 * A body cut short, lost, stalled or failing its checksum is a transient error (retried), never a "truncated file"
 * verdict on an object that is whole.
 */
function bodyError(error: unknown, where: string, received: number): FetchError {
  const why = error instanceof Error ? error.message : String(error);
  return new FetchError("FetchFailed", `Failed to read ${where}: ${why} after ${received} bytes`, true);
}

/** A body that ended before its Content-Length: transient, like any body cut short. */
function shortBody(where: string, received: number, expected: number): FetchError {
  return new FetchError(
    "FetchFailed",
    `Failed to read ${where}: the body ended after ${received} of ${expected} bytes`,
    true,
  );
}

/** A body read whole into one buffer with a spare byte after it (the scanner's sentinel goes there, no copy). */
async function readWhole(body: AsyncIterable<Uint8Array>, size: number, where: string): Promise<Buffer> {
  const buffer = allocWithSpareTail(size);
  let at = 0;
  try {
    for await (const chunk of body) {
      if (at + chunk.length > size) throw new Error(`the body is longer than its Content-Length ${size}`);
      buffer.set(chunk, at);
      at += chunk.length;
    }
  } catch (error) {
    throw bodyError(error, where, at);
  }
  if (at < size) throw shortBody(where, at, size);
  return at === size ? buffer : buffer.subarray(0, at);
}

/**
 * Yields the response body; failures as `bodyError` says (transient: retried, never a verdict on the object), and a
 * body shorter than its Content-Length too. `verify` reads its bodies through it as well.
 */
export async function* readBody(
  body: AsyncIterable<Uint8Array>,
  where: string,
  expected: number | undefined,
): AsyncGenerator<Buffer> {
  let received = 0;
  try {
    for await (const chunk of body) {
      received += chunk.length;
      yield Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.length);
    }
  } catch (error) {
    throw bodyError(error, where, received);
  }
  if (expected !== undefined && received < expected) throw shortBody(where, received, expected);
}

export async function openFile(path: string): Promise<OpenedObject> {
  try {
    // The callback API: fs/promises' FileHandle costs several times more main-thread time per file.
    // O_NONBLOCK: opening a named pipe must not wait for a writer (holding one of libuv's four threads); the check
    // below refuses it. For a regular file the flag changes nothing.
    const fd = await fsCall<number>((done) => open(path, constants.O_RDONLY | constants.O_NONBLOCK, done));
    let streamed = false;
    try {
      const stat = await fsCall<Stats>((done) => fstat(fd, done));
      if (!stat.isFile()) {
        const what = stat.isDirectory() ? "a directory" : "not a regular file";
        throw new FetchError("NotAFile", `Failed to read file://${path}: ${what}`, false);
      }
      if (stat.size > WHOLE_STORED_MAX) {
        streamed = true; // the stream owns the descriptor now and closes it
        return { body: createReadStream(path, { fd, highWaterMark: 256 * 1024 }), size: stat.size };
      }
      // A small file in one read, into a buffer one byte larger (the scanner's sentinel goes there, no copy).
      const buffer = allocWithSpareTail(stat.size);
      let got = 0;
      while (got < stat.size) {
        const bytesRead = await fsCall<number>((done) => read(fd, buffer, got, stat.size - got, got, done));
        if (bytesRead === 0) break;
        got += bytesRead;
      }
      return { whole: got === stat.size ? buffer : buffer.subarray(0, got), size: got };
    } finally {
      if (!streamed) close(fd, () => {});
    }
  } catch (error) {
    if (error instanceof FetchError) throw error;
    const code = errorCode(error);
    if (code === "ENOENT" || code === "ENOTDIR") {
      throw new FetchError("NotFound", `Failed to read file://${path}: no such file`, false);
    }
    if (code === "EACCES" || code === "EPERM") {
      throw new FetchError("AccessDenied", `Failed to read file://${path}: permission denied`, false);
    }
    throw new FetchError("FetchFailed", `Failed to read file://${path}: ${String(error)}`, false);
  }
}

/** Runs one callback-style fs call as a promise. */
function fsCall<T>(call: (done: (error: NodeJS.ErrnoException | null, value: T) => void) => void): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    call((error, value) => (error === null ? resolve(value) : reject(error)));
  });
}
