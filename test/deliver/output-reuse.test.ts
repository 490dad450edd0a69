// The output sink fills a written batch again instead of allocating a fresh one (output.ts, `free`): only once the
// pipe is done with it. A reader here takes each chunk by reference and copies it only when it completes the write,
// as a pipe holds libuv's reference until the kernel has the bytes: a batch refilled too early would show up as
// changed lines.
import { Writable } from "node:stream";
import { describe, expect, it } from "vitest";
import { OutputSink } from "../../src/deliver/output.js";

class LateCopier extends Writable {
  readonly copies: Buffer[] = [];
  readonly memories = new Set<ArrayBufferLike>();
  private held: { chunk: Buffer; done: () => void }[] = [];

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: () => void): void {
    this.memories.add(chunk.buffer);
    this.held.push({ chunk, done: callback });
  }

  /** Completes the oldest `n` writes, copying each chunk now. */
  complete(n: number): void {
    for (const { chunk, done } of this.held.splice(0, n)) {
      this.copies.push(Buffer.from(chunk));
      done();
    }
  }

  get waiting(): number {
    return this.held.length;
  }
}

const line = (i: number): Buffer => Buffer.from(`{"n":${i},"pad":"${"x".repeat(i % 97)}"}\n`);
const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe("batch reuse", () => {
  it("refills a batch only after the pipe is done with it, and does refill", async () => {
    const reader = new LateCopier({ highWaterMark: 1 });
    const sink = new OutputSink(reader, { padBytes: 0, batchBytes: 1024 });
    const expected: Buffer[] = [];
    for (let round = 0; round < 40; round++) {
      // A burst of lines (several batches) without a turn of the event loop, as one object's events are written.
      for (let k = 0; k < 60; k++) {
        const bytes = line(round * 60 + k);
        expected.push(bytes);
        sink.writeBytes(bytes);
      }
      await tick();
      // The reader takes some of what is waiting, not all: later bursts are formatted while earlier ones are pending.
      reader.complete(Math.ceil(reader.waiting / 2));
      await tick();
    }
    const ended = sink.end();
    while (reader.waiting > 0 || reader.copies.length === 0) {
      reader.complete(reader.waiting);
      await tick();
    }
    await ended;
    expect(Buffer.concat(reader.copies).toString()).toBe(Buffer.concat(expected).toString());
    const batches = Math.ceil(Buffer.concat(expected).length / 1024);
    expect(reader.memories.size).toBeLessThan(batches / 2);
  });
});
