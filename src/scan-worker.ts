// A scan worker: inflates and scans whole small objects off the main thread, so both cores turn bytes into lines.
// It receives an object's stored bytes and answers with the formatted output lines, ready to be written.
import { createHash } from "node:crypto";
import { parentPort, workerData } from "node:worker_threads";
import { inflateWholeSync } from "./decode/inflate.js";
import { RecordsScanner, ScanError } from "./decode/scan.js";
import { eventWriter, type FormatOptions, type LineSink, scannedFields } from "./format/format.js";
import { NewestTime } from "./format/newest-time.js";
import type { ScanReply, ScanRequest } from "./format/scan-pool.js";
import type { ObjectRef } from "./model/refs.js";

const options = workerData as FormatOptions & { maxEventBytes: number };

/** A growing buffer of output lines. */
class LineBuffer implements LineSink {
  buffer = Buffer.allocUnsafe(1 << 20);
  length = 0;

  reserve(bytes: number): { buffer: Buffer; at: number } {
    if (this.length + bytes > this.buffer.length) {
      const grown = Buffer.allocUnsafe(Math.max(this.buffer.length * 2, this.length + bytes));
      this.buffer.copy(grown, 0, 0, this.length);
      this.buffer = grown;
    }
    const at = this.length;
    this.length += bytes;
    return { buffer: this.buffer, at };
  }
}

function handle(request: ScanRequest): ScanReply {
  const out = new LineBuffer();
  let seen = 0;
  let emitted = 0;
  let inflated = 0;
  let sha256: string | undefined;
  const newest = new NewestTime();
  let error: ScanReply["error"];
  try {
    const json = inflateWholeSync(
      Buffer.from(request.stored.buffer, request.stored.byteOffset, request.stored.length),
      request.maxObjectBytes,
    );
    if (json === undefined) return { id: request.id, fallback: true, seen: 0, emitted: 0, inflated: 0 };
    inflated = json.length;
    if (request.hash === true) sha256 = createHash("sha256").update(json).digest("hex");
    const write = eventWriter(out, options, request.ref as ObjectRef | undefined);
    const scanner = new RecordsScanner(
      (event, time, hasTimestamp, fields) => {
        seen++;
        if (seen <= request.skip) return;
        write(event, time, hasTimestamp, fields);
        emitted++;
        if (time !== undefined) newest.note(time);
      },
      { maxEventBytes: options.maxEventBytes, fields: scannedFields(options) },
    );
    scanner.push(json);
    scanner.end();
  } catch (caught) {
    if (caught instanceof ScanError || (caught instanceof Error && caught.name === "InflateError")) {
      error = { name: caught.name, code: (caught as ScanError).code, message: caught.message };
    } else {
      error = {
        name: "Error",
        code: "InternalError",
        message: caught instanceof Error ? (caught.stack ?? caught.message) : String(caught),
      };
    }
  }
  const output = new Uint8Array(out.buffer.buffer, out.buffer.byteOffset, out.length);
  const time = newest.text;
  return {
    id: request.id,
    output,
    seen,
    emitted,
    inflated,
    ...(time === undefined ? {} : { newest: time }),
    ...(sha256 === undefined ? {} : { sha256 }),
    ...(error === undefined ? {} : { error }),
  };
}

parentPort?.on("message", (request: ScanRequest) => {
  const reply = handle(request);
  const transfer =
    reply.output !== undefined && reply.output.byteOffset === 0 ? [reply.output.buffer as ArrayBuffer] : [];
  parentPort?.postMessage(reply, transfer);
});
