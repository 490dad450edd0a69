// Tests for the output sink and the event formatter: whole lines, batching, padding after a burst, back-pressure.

import { PassThrough, Writable } from "node:stream";
import { setTimeout as sleep } from "node:timers/promises";
import { describe, expect, it, vi } from "vitest";
import { OutputSink } from "../../src/deliver/output.js";
import { eventWriter } from "../../src/format/format.js";

/** A Writable that records every chunk written to it; callbacks can be held back to simulate a slow reader. */
class Recorder extends Writable {
  readonly chunks: Buffer[] = [];
  /** Writes whose callback has been called. */
  completed = 0;
  private held: (() => void)[] = [];
  hold = false;
  delayMs = 0;

  constructor(highWaterMark = 16 * 1024) {
    super({ highWaterMark });
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.chunks.push(Buffer.from(chunk));
    const done = (): void => {
      this.completed++;
      callback();
    };
    if (this.hold) this.held.push(done);
    else if (this.delayMs > 0) setTimeout(done, this.delayMs);
    else done();
  }

  /** Completes the oldest held write only. */
  releaseOne(): void {
    this.held.shift()?.();
  }

  release(): void {
    this.hold = false;
    const held = this.held;
    this.held = [];
    for (const callback of held) callback();
  }

  get text(): string {
    return Buffer.concat(this.chunks).toString("utf8");
  }
}

const isPad = (chunk: Buffer): boolean => chunk.length > 0 && /^ *\n$/.test(chunk.toString("latin1"));
const linesOf = (chunks: Buffer[]): Buffer[] => chunks.filter((c) => !isPad(c));
/** How long to wait for a pad that is due after a few milliseconds of idleness, on a busy machine. */
const PATIENCE = { timeout: 3000, interval: 5 };
const nextTick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe("eventWriter", () => {
  const event = Buffer.from('{"eventTime":"2023-07-10T11:42:36Z","a":1}');
  const time = Buffer.from("2023-07-10T11:42:36Z");

  it.each<[string, boolean, Buffer | undefined, boolean, string]>([
    [
      "adds @timestamp from eventTime",
      true,
      time,
      false,
      '{"eventTime":"2023-07-10T11:42:36Z","a":1,"@timestamp":"2023-07-10T11:42:36Z"}\n',
    ],
    ["keeps an event that has @timestamp", true, time, true, `${event}\n`],
    ["keeps an event without eventTime", true, undefined, false, `${event}\n`],
    ["does nothing with timestamp off", false, time, false, `${event}\n`],
  ])("%s", async (_name, timestamp, eventTime, hasTimestamp, expected) => {
    const out = new Recorder();
    const sink = new OutputSink(out, { padBytes: 0 });
    eventWriter(sink, { timestamp })(event, eventTime, hasTimestamp);
    await sink.end();
    expect(out.text).toBe(expected);
    expect(JSON.parse(out.text)).toBeTypeOf("object");
  });
});

describe("OutputSink", () => {
  it("writes whole lines only, in batches no larger than batchBytes, in order", async () => {
    const out = new Recorder();
    const sink = new OutputSink(out, { padBytes: 0, batchBytes: 100 });
    const write = eventWriter(sink, { timestamp: true });
    const expected: string[] = [];
    for (let i = 0; i < 200; i++) {
      const event = Buffer.from(`{"i":${i},"eventTime":"t${i}","pad":"${"x".repeat(i % 37)}"}`);
      write(event, Buffer.from(`t${i}`), false);
      expected.push(`{"i":${i},"eventTime":"t${i}","pad":"${"x".repeat(i % 37)}","@timestamp":"t${i}"}\n`);
      if (i % 50 === 0) await nextTick();
    }
    await sink.end();
    expect(out.text).toBe(expected.join(""));
    for (const chunk of out.chunks) {
      expect(chunk.length).toBeLessThanOrEqual(100);
      expect(chunk[chunk.length - 1]).toBe(0x0a);
    }
    expect(out.chunks.length).toBeGreaterThan(1);
    expect(sink.bytesOut).toBe(Buffer.byteLength(expected.join("")));
  });

  it("a flushed part of a batch is never written over while the pipe still holds it (the rest is reused)", async () => {
    // Keeps the chunks themselves, not copies, and completes each write late, as a pipe that is slow to take bytes
    // does: any later line written into memory already handed over would show in the bytes read at the end.
    const handed: Buffer[] = [];
    const out = new Writable({
      highWaterMark: 1,
      write(chunk: Buffer, _encoding, callback) {
        handed.push(chunk);
        setTimeout(callback, 1);
      },
    });
    const sink = new OutputSink(out, { padBytes: 0, batchBytes: 4096 });
    const expected: string[] = [];
    for (let i = 0; i < 400; i++) {
      const line = `{"i":${i},"pad":"${"y".repeat(i % 53)}"}\n`;
      sink.writeBytes(Buffer.from(line));
      expected.push(line);
      if (i % 3 === 0) await nextTick(); // a flush every few lines, each handing over a slice of the same batch
    }
    await sink.end();
    expect(Buffer.concat(handed).toString("utf8")).toBe(expected.join(""));
    expect(handed.length).toBeGreaterThan(20);
    // Slices of one batch: consecutive chunks share memory until a batch is full.
    expect(handed.filter((chunk, k) => k > 0 && chunk.buffer === handed[k - 1]?.buffer).length).toBeGreaterThan(0);
  });

  it("batches the lines of one burst into few writes", async () => {
    const out = new Recorder();
    const sink = new OutputSink(out, { padBytes: 0 });
    for (let i = 0; i < 1000; i++) sink.writeBytes(Buffer.from(`{"i":${i}}\n`));
    await sink.end();
    expect(out.chunks).toHaveLength(1);
    expect(out.text.split("\n")).toHaveLength(1001);
  });

  it("writes a line larger than batchBytes in one piece, in its place", async () => {
    const out = new Recorder();
    const sink = new OutputSink(out, { padBytes: 0, batchBytes: 32 });
    const big = `{"big":"${"y".repeat(200)}"}\n`;
    sink.writeBytes(Buffer.from('{"before":1}\n'));
    sink.writeBytes(Buffer.from(big));
    sink.writeBytes(Buffer.from('{"after":1}\n'));
    sink.writeBytes(Buffer.from(big));
    sink.writeBytes(Buffer.from(big));
    await sink.end();
    expect(out.text).toBe(`{"before":1}\n${big}{"after":1}\n${big}${big}`);
    expect(out.chunks.map((c) => c.toString())).toContain(big);
    for (const chunk of out.chunks) expect(chunk[chunk.length - 1]).toBe(0x0a);
  });

  it("writeJson writes one line", async () => {
    const out = new Recorder();
    const sink = new OutputSink(out, { padBytes: 0 });
    sink.writeJson({ _tag: "deadletter", error: { code: "NotJson", message: "line 1\nline 2" }, input: "é" });
    await sink.end();
    expect(out.text.endsWith("\n")).toBe(true);
    expect(out.text.slice(0, -1)).not.toContain("\n");
    expect(JSON.parse(out.text)).toEqual({
      _tag: "deadletter",
      error: { code: "NotJson", message: "line 1\nline 2" },
      input: "é",
    });
  });

  describe("padding", () => {
    it("writes padBytes of whitespace ending in a newline after an idle burst", async () => {
      const out = new Recorder();
      const sink = new OutputSink(out, { padBytes: 64, idleMs: 1 });
      sink.writeBytes(Buffer.from('{"a":1}\n'));
      sink.writeBytes(Buffer.from('{"b":2}\n'));
      await vi.waitFor(() => expect(out.chunks).toHaveLength(2), PATIENCE);
      expect(out.chunks.map((c) => c.toString())).toEqual(['{"a":1}\n{"b":2}\n', `${" ".repeat(63)}\n`]);
      expect(sink.bytesOut).toBe(16);
      // Idle again without new output: no second pad.
      await sleep(30);
      expect(out.chunks).toHaveLength(2);
      // A second burst gets its own pad.
      sink.writeBytes(Buffer.from('{"c":3}\n'));
      await vi.waitFor(() => expect(out.chunks).toHaveLength(4), PATIENCE);
      expect(out.chunks.map((c) => c.toString())).toEqual([
        '{"a":1}\n{"b":2}\n',
        `${" ".repeat(63)}\n`,
        '{"c":3}\n',
        `${" ".repeat(63)}\n`,
      ]);
      await sink.end();
      expect(out.chunks).toHaveLength(4);
    });

    it("never pads when padBytes is 0", async () => {
      const out = new Recorder();
      const sink = new OutputSink(out, { padBytes: 0, idleMs: 1 });
      sink.writeBytes(Buffer.from('{"a":1}\n'));
      await sleep(40);
      await sink.end();
      expect(out.text).toBe('{"a":1}\n');
    });

    it("does not pad when nothing was written", async () => {
      const out = new Recorder();
      const sink = new OutputSink(out, { padBytes: 32, idleMs: 1 });
      await sleep(20);
      await sink.end();
      expect(out.chunks).toHaveLength(0);
    });

    it("pads at end() when the burst has not been padded yet", async () => {
      const out = new Recorder();
      const sink = new OutputSink(out, { padBytes: 16, idleMs: 10_000 });
      sink.writeBytes(Buffer.from('{"a":1}\n'));
      await sink.end();
      expect(out.chunks.map((c) => c.toString())).toEqual(['{"a":1}\n', `${" ".repeat(15)}\n`]);
    });

    it("waits until the last write is done before padding, and never pads inside a line", async () => {
      const out = new Recorder();
      out.delayMs = 5;
      const sink = new OutputSink(out, { padBytes: 8, batchBytes: 64, idleMs: 1 });
      const write = eventWriter(sink, { timestamp: false });
      for (let round = 0; round < 5; round++) {
        for (let i = 0; i < 20; i++) write(Buffer.from(`{"r":${round},"i":${i}}`), undefined, false);
        await sleep(round % 2 === 0 ? 1 : 30);
      }
      await sink.end();
      // Every chunk is whole lines or a pad, and the lines come out in order.
      for (const chunk of out.chunks) expect(chunk[chunk.length - 1]).toBe(0x0a);
      const lines = linesOf(out.chunks)
        .map((c) => c.toString())
        .join("")
        .split("\n")
        .filter((l) => l !== "");
      expect(lines).toHaveLength(100);
      expect(lines.map((l) => JSON.parse(l))).toEqual(
        Array.from({ length: 100 }, (_, k) => ({ r: Math.floor(k / 20), i: k % 20 })),
      );
      // The whole output is valid NDJSON once blank lines are ignored.
      for (const line of out.text.split("\n")) if (line.trim() !== "") JSON.parse(line);
      expect(out.chunks.some(isPad)).toBe(true);
    });

    it("works on a PassThrough read by a consumer", async () => {
      const out = new PassThrough();
      const received: Buffer[] = [];
      out.on("data", (chunk: Buffer) => received.push(chunk));
      const sink = new OutputSink(out, { padBytes: 10, idleMs: 1 });
      sink.writeBytes(Buffer.from('{"a":1}\n'));
      await vi.waitFor(() => expect(Buffer.concat(received).toString()).toBe(`{"a":1}\n${" ".repeat(9)}\n`), PATIENCE);
      await sink.end();
    });
  });

  describe("back-pressure", () => {
    it("ready() resolves at once while the pipe has room", async () => {
      const out = new Recorder();
      const sink = new OutputSink(out, { padBytes: 0 });
      await expect(sink.ready()).resolves.toBeUndefined();
    });

    it("ready() waits while more than highWaterBytes wait behind the chunk the pipe is writing", async () => {
      const out = new Recorder(16);
      out.hold = true;
      const sink = new OutputSink(out, { padBytes: 0, batchBytes: 128, highWaterBytes: 16 });
      sink.writeBytes(Buffer.from(`${"x".repeat(100)}\n`));
      sink.writeBytes(Buffer.from(`${"y".repeat(100)}\n`)); // the first batch goes to the pipe, this one queues
      await nextTick();
      expect(sink.pending).toBeGreaterThan(16);
      let ready = false;
      const waiting = sink.ready().then(() => {
        ready = true;
      });
      const again = sink.ready();
      await sleep(10);
      expect(ready).toBe(false);
      out.release();
      await waiting;
      await again;
      expect(ready).toBe(true);
      await sink.end();
      expect(out.text).toBe(`${"x".repeat(100)}\n${"y".repeat(100)}\n`);
    });

    it("end() waits for every write to finish", async () => {
      const out = new Recorder(16);
      out.delayMs = 3;
      const sink = new OutputSink(out, { padBytes: 4, batchBytes: 64 });
      for (let i = 0; i < 20; i++) sink.writeBytes(Buffer.from(`{"i":${i},"p":"${"z".repeat(20)}"}\n`));
      await sink.end();
      expect(out.completed).toBe(out.chunks.length);
      expect(out.writableLength).toBe(0);
      expect(
        linesOf(out.chunks)
          .map((c) => c.toString())
          .join("")
          .split("\n"),
      ).toHaveLength(21);
      expect(isPad(out.chunks[out.chunks.length - 1] as Buffer)).toBe(true);
    });

    it("end() resolves at once when nothing was written", async () => {
      const out = new Recorder();
      const sink = new OutputSink(out, { padBytes: 8 });
      await sink.end();
      expect(out.chunks).toHaveLength(0);
    });
  });

  describe("written()", () => {
    it("resolves at once when nothing is pending", async () => {
      const out = new Recorder();
      const sink = new OutputSink(out, { padBytes: 0 });
      await expect(sink.written()).resolves.toBe(true);
    });

    it("sends the batch now and resolves once the lines appended so far are in the pipe", async () => {
      const out = new Recorder();
      out.hold = true;
      const sink = new OutputSink(out, { padBytes: 0 });
      sink.writeBytes(Buffer.from('{"a":1}\n'));
      let done = false;
      const first = sink.written().then(() => {
        done = true;
      });
      expect(out.chunks.map((c) => c.toString())).toEqual(['{"a":1}\n']); // flushed without waiting a turn
      // Lines appended later do not hold back the earlier promise.
      sink.writeBytes(Buffer.from('{"b":2}\n'));
      const second = sink.written();
      await sleep(5);
      expect(done).toBe(false);
      out.releaseOne();
      await first;
      let secondDone = false;
      void second.then(() => {
        secondDone = true;
      });
      await sleep(5);
      expect(secondDone).toBe(false);
      out.releaseOne();
      await second;
      await sink.end();
      expect(out.text).toBe('{"a":1}\n{"b":2}\n');
    });

    it("resolves when the pipe breaks instead of waiting for ever", async () => {
      const epipe = Object.assign(new Error("write EPIPE"), { code: "EPIPE" });
      const out = new Writable({
        highWaterMark: 16,
        write(_chunk, _encoding, callback) {
          setTimeout(() => callback(epipe), 2);
        },
      });
      const errors: Error[] = [];
      const sink = new OutputSink(out, { padBytes: 8, batchBytes: 24 }, (error) => errors.push(error));
      for (let i = 0; i < 5; i++) sink.writeBytes(Buffer.from(`{"i":${i},"xxxxxxxxx":1}\n`));
      await sink.written();
      await sink.end();
      expect(errors).toEqual([epipe]);
      expect(sink.broken).toBe(true);
    });
  });

  describe("a broken pipe", () => {
    it("a write that fails was not written: written() answers false, for lines before the failure too", async () => {
      const epipe = Object.assign(new Error("write EPIPE"), { code: "EPIPE" });
      const out = new Writable({
        write(_chunk, _encoding, callback) {
          setTimeout(() => callback(epipe), 2);
        },
      });
      out.on("error", () => {});
      const sink = new OutputSink(out, { padBytes: 0 }, () => {});
      sink.writeBytes(Buffer.from('{"a":1}\n'));
      const first = sink.written();
      sink.writeBytes(Buffer.from('{"b":2}\n'));
      await expect(first).resolves.toBe(false);
      await expect(sink.written()).resolves.toBe(false);
    });

    it("reports the first error once, stops writing, and end() still resolves", async () => {
      const out = new Recorder(16);
      out.hold = true;
      const errors: Error[] = [];
      const sink = new OutputSink(out, { padBytes: 8 }, (error) => errors.push(error));
      sink.writeBytes(Buffer.from(`${"x".repeat(100)}\n`));
      await nextTick();
      const epipe = Object.assign(new Error("write EPIPE"), { code: "EPIPE" });
      out.destroy(epipe);
      await vi.waitFor(() => expect(errors).toEqual([epipe]), PATIENCE);
      expect(sink.broken).toBe(true);
      await expect(sink.ready()).resolves.toBeUndefined();
      sink.writeBytes(Buffer.from('{"later":1}\n'));
      await sink.end();
      expect(out.text).not.toContain("later");
      expect(errors).toHaveLength(1);
    });
  });
});
