// Writes output lines to stdout: whole lines only, in large batches, with back-pressure, and with whitespace
// padding after each burst.
//
// Why the padding: fluentd's JSON reader pulls the child's stdout in blocking reads of 8192 bytes, so the last
// < 8 KiB of a burst sits unread until more output comes (and is lost at shutdown). Once everything written has
// reached the pipe and nothing new is ready, `padBytes` of whitespace push the tail through. Whitespace between
// JSON values is ignored by every JSON reader; the pad is spaces ending in a newline, never inside a line.
//
// Why its own queue: the sink hands the pipe one writev at a time (what is queued, up to 1 MiB), the next when that
// one is written. At a forced exit (a reader that stopped reading), only that hand-off can be partly in the pipe,
// and `completeCutLine` finishes the line it was cut in, so fluentd never sees half a JSON value.
import { writeSync } from "node:fs";
import type { Writable } from "node:stream";
import type { Sink } from "../model/sink.js";
import { msgpack } from "../shared/msgpack.js";

export interface SinkOptions {
  /** Whitespace written after a burst; 0 turns padding off (it must be 0 for msgpack, where a space is a value). */
  padBytes: number;
  /** How `writeJson` encodes records built in code: a JSON line (the default) or a msgpack map. */
  format?: "json" | "msgpack";
  /** Bytes collected before one write to the pipe. */
  batchBytes?: number;
  /** Bytes queued for the pipe above which producers wait (`ready()`). */
  highWaterBytes?: number;
  /** How long the output must stay idle before the pad is written, in ms. */
  idleMs?: number;
}

const NEWLINE = 0x0a;
/**
 * Written batches kept for reuse (see `free`): 8 MiB at the default 256 KiB. Output waits for the pipe between objects
 * only, so with several objects in flight the queue peaks near 12 MiB on the CPU corpus (files up to 3 MB of JSON);
 * 32 batches let 84% of batches be reused there (16: 40-65%), and the memory is what the queue held at its peak.
 */
const MAX_FREE = 32;

export class OutputSink implements Sink {
  private batch: Buffer;
  /** Where the lines not yet handed to the pipe start in `batch`; the bytes before are sent and never touched again. */
  private start = 0;
  private pos = 0;
  private flushScheduled = false;
  private pendingWrites = 0;
  private dirty = false;
  private idleTimer: NodeJS.Timeout | undefined;
  private readonly queue: Buffer[] = [];
  private queuedBytes = 0;
  /** The chunks the pipe is writing now (one writev). */
  private inFlight: Buffer[] | undefined;
  private drainWaiters: (() => void)[] = [];
  private settled: (() => void) | undefined;
  private failed = false;
  private oversized: Buffer[] = [];
  /** Writes issued and writes completed, counted; completions arrive in order. */
  private sent = 0;
  private completed = 0;
  private waiters: { target: number; resolve: (written: boolean) => void }[] = [];
  private abandoned = false;
  /**
   * Full batches whose lines were handed to the pipe, each with the write (`sent`) that carried its last slice, and the
   * batches whose last write has completed: the pipe holds a copy of those, and they are filled again instead of fresh
   * ones. Fresh memory costs a page fault per 4 KiB on first write (glibc hands freed batches back to the kernel):
   * about an eighth of the main thread's time on the CPU corpus (bench/README.md, "Where the filter's time goes").
   * Writes complete only between objects (an object's lines are formatted without a turn of the event loop), so the
   * free list must cover the largest object's output: MAX_FREE batches.
   */
  private retired: { batch: Buffer; until: number }[] = [];
  private readonly free: Buffer[] = [];
  private readonly batchBytes: number;
  private readonly highWaterBytes: number;
  private readonly pad: Buffer;

  /** Bytes of lines written (padding not counted). */
  bytesOut = 0;

  constructor(
    private readonly out: Writable,
    private readonly options: SinkOptions,
    private readonly onError: (error: Error) => void = () => {},
  ) {
    this.batchBytes = options.batchBytes ?? 256 * 1024;
    this.highWaterBytes = options.highWaterBytes ?? 4 * this.batchBytes;
    this.batch = Buffer.allocUnsafe(this.batchBytes);
    this.pad = options.padBytes > 0 ? Buffer.alloc(options.padBytes, 0x20) : Buffer.alloc(0);
    if (this.pad.length > 0) this.pad[this.pad.length - 1] = NEWLINE;
    out.on("error", (error: Error) => this.fail(error));
  }

  /**
   * stdout failed (EPIPE: the reader is gone): nothing more is written, and everyone waiting for their lines hears
   * "not written", including for the hand-off that was in the pipe's hands when it failed. Their records are
   * unfinished: their SQS messages are handed back, their spool entries stay.
   */
  private fail(error: Error): void {
    if (this.failed) return;
    this.failed = true;
    this.inFlight = undefined;
    this.releaseDrain();
    for (const waiter of this.waiters.splice(0)) waiter.resolve(false);
    const settled = this.settled;
    this.settled = undefined;
    settled?.();
    this.onError(error);
  }

  /** True once stdout failed (EPIPE: the reader is gone). */
  get broken(): boolean {
    return this.failed;
  }

  /**
   * Reserves `length` bytes in the batch and returns the buffer and offset to write them at. The caller must fill
   * exactly that many bytes before yielding to the event loop. Lines longer than a batch get a buffer of their own.
   */
  reserve(length: number): { buffer: Buffer; at: number } {
    if (this.pos + length > this.batch.length) {
      this.flush(); // earlier lines, and any oversized line, go before this one
      if (length > this.batchBytes) {
        // Sent at the next flush, once the caller has filled it.
        const own = Buffer.allocUnsafe(length);
        this.oversized.push(own);
        this.scheduleFlush();
        return { buffer: own, at: 0 };
      }
      // A new batch only when this one is full: a flush hands the pipe a slice and the rest of the batch is reused,
      // so small objects flushed one by one do not cost an allocation each (nor the GC work that follows).
      this.batch = this.nextBatch();
      this.start = 0;
      this.pos = 0;
    }
    const at = this.pos;
    this.pos += length;
    this.scheduleFlush();
    return { buffer: this.batch, at };
  }

  /** A batch to fill: one the pipe is done with, else a new one. The full one is retired. */
  private nextBatch(): Buffer {
    this.retired.push({ batch: this.batch, until: this.sent });
    return this.free.pop() ?? Buffer.allocUnsafe(this.batchBytes);
  }

  /** Moves the retired batches whose last write has completed to the free list (beyond MAX_FREE, to the GC). */
  private reclaim(): void {
    let done = 0;
    while (done < this.retired.length && (this.retired[done] as { until: number }).until <= this.completed) {
      if (this.free.length < MAX_FREE) this.free.push((this.retired[done] as { batch: Buffer }).batch);
      done++;
    }
    if (done > 0) this.retired = this.retired.slice(done);
  }

  private scheduleFlush(): void {
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(() => {
        this.flushScheduled = false;
        this.flush();
      });
    }
  }

  /** Appends bytes that already end with a newline. */
  writeBytes(line: Buffer): void {
    const { buffer, at } = this.reserve(line.length);
    line.copy(buffer, at);
  }

  /**
   * Appends a record built in code (dead-letter records) in the output format: one JSON line, or (format
   * `msgpack`) one msgpack map.
   */
  writeJson(value: Record<string, unknown>): void {
    if (this.options.format === "msgpack") {
      const bytes = msgpack().encode(value);
      const { buffer, at } = this.reserve(bytes.length);
      buffer.set(bytes, at);
      return;
    }
    this.writeBytes(Buffer.from(`${JSON.stringify(value)}\n`, "utf8"));
  }

  /** Resolves when the pipe can take more; producers await this between chunks. */
  ready(): Promise<void> {
    if (this.failed || this.abandoned || this.queuedBytes <= this.highWaterBytes) return Promise.resolve();
    return new Promise<void>((resolve) => {
      this.drainWaiters.push(resolve);
    });
  }

  private releaseDrain(): void {
    for (const resolve of this.drainWaiters.splice(0)) resolve();
  }

  /**
   * Resolves once every line appended so far has been handed to the pipe (the batch is sent now). This is the
   * moment an input record's output is "written": the journal and SQS acknowledgements wait for it.
   */
  written(): Promise<boolean> {
    if (this.abandoned) return Promise.resolve(false);
    this.flush();
    if (this.pendingWrites === 0 || this.failed) return Promise.resolve(!this.failed);
    const target = this.sent;
    return new Promise<boolean>((resolve) => {
      this.waiters.push({ target, resolve });
    });
  }

  /**
   * Shutdown deadline with a reader that does not read: stop taking lines, wake producers waiting for the pipe, and
   * answer "not written" to everyone waiting for their lines (their records stay unfinished, in the spool).
   */
  abandon(): void {
    this.abandoned = true;
    this.queue.length = 0; // not handed to the pipe: their records stay unfinished
    this.queuedBytes = 0;
    this.pendingWrites = this.inFlight?.length ?? 0;
    this.releaseDrain();
    for (const waiter of this.waiters.splice(0)) waiter.resolve(false);
  }

  /** Bytes not yet taken by the reader (queued, or in the chunk being written). */
  get pending(): number {
    return this.queuedBytes + (this.inFlight?.reduce((n, part) => n + part.length, 0) ?? 0);
  }

  /**
   * Before a forced exit: if the chunk being written is cut inside a line (the pipe took only part of it), writes
   * the rest of that line synchronously to `fd`, waiting for the reader up to `withinMs`. Returns whether the pipe
   * now ends at a line boundary. Reads how far the pipe got from the stream handle's write queue size. The stream
   * is destroyed afterwards, so the rest of the chunk is never written after the line was finished by hand.
   */
  completeCutLine(fd: number, withinMs: number): boolean {
    const finished = this.finishCutLine(fd, withinMs);
    this.failed = true;
    this.out.destroy();
    return finished;
  }

  private finishCutLine(fd: number, withinMs: number): boolean {
    const chunk = this.inFlight === undefined ? undefined : Buffer.concat(this.inFlight);
    const handle = (this.out as unknown as { _handle?: { writeQueueSize?: unknown } })._handle;
    if (chunk === undefined) return true;
    const left = typeof handle?.writeQueueSize === "number" ? handle.writeQueueSize : chunk.length;
    const taken = chunk.length - left;
    if (taken <= 0 || chunk[taken - 1] === NEWLINE) return true;
    const end = chunk.indexOf(NEWLINE, taken);
    let rest = chunk.subarray(taken, end === -1 ? chunk.length : end + 1);
    const deadline = Date.now() + withinMs;
    const pause = new Int32Array(new SharedArrayBuffer(4));
    while (rest.length > 0) {
      try {
        rest = rest.subarray(writeSync(fd, rest));
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code;
        if (code !== "EAGAIN" || Date.now() > deadline) return false;
        Atomics.wait(pause, 0, 0, 5); // the pipe is full: give the reader a moment
      }
    }
    return true;
  }

  /** Writes what is batched, pads if anything was written since the last pad, and waits until all is in the pipe. */
  async end(): Promise<void> {
    clearTimeout(this.idleTimer);
    if (this.abandoned) {
      this.pos = this.start; // lines not handed to the pipe yet are dropped: their records are not done
      this.oversized = [];
      this.queue.length = 0;
      this.queuedBytes = 0;
      this.pendingWrites = this.inFlight?.length ?? 0;
    }
    this.flush();
    if (this.dirty && this.pad.length > 0 && !this.failed) {
      this.dirty = false;
      this.send(this.pad, false);
    }
    if (this.pendingWrites === 0 || this.failed) return;
    await new Promise<void>((resolve) => {
      this.settled = resolve;
    });
  }

  private flush(): void {
    if (this.oversized.length > 0) {
      for (const own of this.oversized) this.send(own);
      this.oversized = [];
    }
    if (this.pos === this.start) return;
    const chunk = this.batch.subarray(this.start, this.pos);
    this.start = this.pos;
    this.send(chunk);
  }

  private send(chunk: Buffer, counts = true): void {
    if (this.failed || (this.abandoned && counts && chunk !== this.pad)) return;
    if (counts) {
      this.bytesOut += chunk.length;
      this.dirty = true;
    }
    this.pendingWrites++;
    this.sent++;
    this.queue.push(chunk);
    this.queuedBytes += chunk.length;
    this.pump();
  }

  /** Hands the pipe what is queued (one writev, up to 1 MiB) once the previous hand-off is written. */
  private pump(): void {
    if (this.inFlight !== undefined || this.failed || this.queue.length === 0) return;
    const parts: Buffer[] = [];
    let bytes = 0;
    while (this.queue.length > 0 && (parts.length === 0 || bytes + (this.queue[0] as Buffer).length <= 1 << 20)) {
      const chunk = this.queue.shift() as Buffer;
      parts.push(chunk);
      bytes += chunk.length;
    }
    this.queuedBytes -= bytes;
    this.inFlight = parts;
    const done = (error?: Error | null): void => {
      // A write that failed was not written: Node calls back with its error (then emits it), never "done".
      if (error !== undefined && error !== null) {
        this.fail(error);
        return;
      }
      if (this.failed) return;
      this.inFlight = undefined;
      this.pendingWrites -= parts.length;
      this.completed += parts.length;
      this.reclaim();
      while (this.waiters.length > 0 && (this.waiters[0] as { target: number }).target <= this.completed) {
        this.waiters.shift()?.resolve(true);
      }
      if (this.queuedBytes <= this.highWaterBytes) this.releaseDrain();
      this.pump();
      if (this.pendingWrites === 0 && this.settled !== undefined) {
        const settled = this.settled;
        this.settled = undefined;
        settled();
      }
      this.armIdle();
    };
    this.out.cork();
    for (let i = 0; i < parts.length; i++)
      this.out.write(parts[i] as Buffer, i === parts.length - 1 ? done : undefined);
    this.out.uncork();
  }

  private armIdle(): void {
    if (this.pad.length === 0 || !this.dirty || this.pos !== this.start || this.pendingWrites !== 0) return;
    clearTimeout(this.idleTimer);
    this.idleTimer = setTimeout(() => {
      if (!this.dirty || this.pos !== this.start || this.pendingWrites !== 0) return;
      this.dirty = false;
      this.send(this.pad, false);
    }, this.options.idleMs ?? 5);
    this.idleTimer.unref();
  }
}
