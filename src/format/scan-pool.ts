// The pool of scan workers. Whole small objects (the usual CloudTrail file) are inflated and scanned in worker
// threads, so the machine's cores share the work while the main thread only reads objects and writes lines.
// Objects too large to take whole are streamed on the main thread instead (bounded memory).
import { Worker } from "node:worker_threads";
import { InflateError, type InflateErrorCode } from "../decode/inflate.js";
import { ScanError, type ScanErrorCode } from "../decode/scan.js";
import { scanWorkerScript } from "../scan-worker-script.js";
import type { FormatOptions } from "./format.js";

export interface ScanRequest {
  id: number;
  stored: Uint8Array;
  skip: number;
  maxObjectBytes: number;
  /** The object reference, for --source-field. */
  ref?: unknown;
  /** Also answer the SHA-256 of the inflated bytes (--verify-integrity). */
  hash?: true;
}

export interface ScanReply {
  id: number;
  output?: Uint8Array;
  seen: number;
  emitted: number;
  inflated: number;
  /** The newest eventTime among the events written. */
  newest?: string;
  /** Hex SHA-256 of the inflated bytes, when asked and they were all inflated. */
  sha256?: string;
  /** The object must be streamed on the main thread (too large inflated, or damaged gzip). */
  fallback?: true;
  error?: { name: string; code: string; message: string };
}

export interface ScanResult {
  /** Formatted output lines for the events after the first `skip`. */
  output: Buffer;
  seen: number;
  emitted: number;
  inflated: number;
  /** The newest eventTime among the events in `output`. */
  newest?: string;
  /** Hex SHA-256 of the inflated bytes, when asked. */
  sha256?: string;
  /** The failure after the events in `output`, as the same error types the main thread throws. */
  error?: Error;
}

interface Slot {
  worker: Worker;
  busy: number;
}

export class ScanPool {
  private readonly slots: Slot[] = [];
  private readonly waiting = new Map<number, { resolve: (reply: ScanReply) => void; reject: (error: Error) => void }>();
  private nextId = 1;

  constructor(size: number, options: FormatOptions & { maxEventBytes: number }) {
    const { script, eval: isCode } = scanWorkerScript();
    for (let i = 0; i < size; i++) {
      const worker = new Worker(script, { eval: isCode, workerData: options });
      worker.unref();
      worker.on("message", (reply: ScanReply) => this.settle(reply));
      worker.on("error", (error) => this.failAll(error));
      this.slots.push({ worker, busy: 0 });
    }
  }

  /** True when a worker has nothing to do (or less than `perWorker` objects queued). */
  hasRoom(perWorker = 1): boolean {
    return this.slots.some((slot) => slot.busy < perWorker);
  }

  /** Inflates and scans one whole object; undefined when it must be streamed on the main thread instead. */
  async run(
    stored: Buffer,
    skip: number,
    maxObjectBytes: number,
    ref?: unknown,
    hash = false,
  ): Promise<ScanResult | undefined> {
    const slot = this.slots.reduce((best, slot) => (slot.busy < best.busy ? slot : best));
    const id = this.nextId++;
    slot.busy++;
    try {
      const request: ScanRequest = {
        id,
        stored,
        skip,
        maxObjectBytes,
        ...(ref === undefined ? {} : { ref }),
        ...(hash ? { hash: true } : {}),
      };
      const reply = await new Promise<ScanReply>((resolve, reject) => {
        this.waiting.set(id, { resolve, reject });
        slot.worker.postMessage(request);
      });
      if (reply.fallback === true) return undefined;
      const output =
        reply.output === undefined
          ? Buffer.alloc(0)
          : Buffer.from(reply.output.buffer, reply.output.byteOffset, reply.output.length);
      const result: ScanResult = { output, seen: reply.seen, emitted: reply.emitted, inflated: reply.inflated };
      if (reply.newest !== undefined) result.newest = reply.newest;
      if (reply.sha256 !== undefined) result.sha256 = reply.sha256;
      if (reply.error !== undefined) result.error = rebuild(reply.error);
      return result;
    } finally {
      slot.busy--;
    }
  }

  async close(): Promise<void> {
    await Promise.all(this.slots.map((slot) => slot.worker.terminate()));
  }

  private settle(reply: ScanReply): void {
    const waiter = this.waiting.get(reply.id);
    this.waiting.delete(reply.id);
    waiter?.resolve(reply);
  }

  private failAll(error: Error): void {
    for (const waiter of this.waiting.values()) waiter.reject(error);
    this.waiting.clear();
  }
}

function rebuild(error: { name: string; code: string; message: string }): Error {
  if (error.name === "ScanError") return new ScanError(error.code as ScanErrorCode, error.message);
  if (error.name === "InflateError") return new InflateError(error.code as InflateErrorCode, error.message);
  return new Error(error.message);
}
