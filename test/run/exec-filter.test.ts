// The exec_filter runner (src/run/exec-filter.ts) run without a process: stdin a stream the test writes, the host a
// plain object, objects from memory. What the spawned tests (test/system/exec-filter.test.ts) prove through a real
// process, in miniature: every record's events out, the summary, and a stop on a signal that came before the run.
import { PassThrough } from "node:stream";
import { gzipSync } from "node:zlib";
import { describe, expect, it } from "vitest";
import { OutputSink } from "../../src/deliver/output.js";
import type { ObjectSource, OpenedObject } from "../../src/fetch/fetch.js";
import { readLines } from "../../src/input/lines.js";
import type { ObjectRef } from "../../src/model/refs.js";
import { ExecFilter } from "../../src/run/exec-filter.js";
import { ShutdownSignals } from "../../src/run/shutdown.js";
import { MemoryLog } from "../support/log.js";

/** Every key holds a CloudTrail file of `events` events, gzipped. */
function memorySource(events: number): ObjectSource {
  return {
    async open(ref: ObjectRef): Promise<OpenedObject> {
      const key = ref.scheme === "s3" ? ref.key : "file";
      const records = Array.from({ length: events }, (_, i) => ({
        eventVersion: "1.08",
        eventID: `${key}#${i}`,
        eventTime: "2024-05-01T00:00:00Z",
      }));
      const whole = gzipSync(JSON.stringify({ Records: records }));
      return { whole, size: whole.length };
    },
  };
}

function runner(stdin: PassThrough, signals: ShutdownSignals) {
  const out = new PassThrough();
  const text: string[] = [];
  out.on("data", (chunk: Buffer) => text.push(chunk.toString("utf8")));
  const sink = new OutputSink(out, { padBytes: 0 });
  const log = new MemoryLog({ debug: false });
  const exec = new ExecFilter({
    host: {
      stdin,
      exit: (code) => {
        throw new Error(`exit ${code}`);
      },
      rssBytes: () => 0,
      maxRssBytes: () => 0,
    },
    signals,
    log,
    source: memorySource(3),
    sink,
    stdout: sink,
    lines: readLines(stdin, 1 << 20),
    spool: undefined,
    acker: undefined,
    filter: {
      concurrency: 2,
      deadletterTag: "dl",
      maxObjectBytes: 1 << 20,
      maxEventBytes: 1 << 16,
      timestamp: false,
      retryFor: 0,
      leaveTransientToSqs: false,
    },
    concurrency: 2,
    visibilityTimeout: undefined,
    shutdownTimeout: 1,
    statsInterval: 0,
  });
  const events = () =>
    text
      .join("")
      .split("\n")
      .filter((line) => line.trim() !== "")
      .map((line) => JSON.parse(line) as { eventID: string });
  return { exec, log, events };
}

const noSignals = () => new ShutdownSignals({ onSignal: () => {} });

describe("ExecFilter without a process", () => {
  it("writes every record's events and logs the summary when stdin ends", async () => {
    const stdin = new PassThrough();
    const { exec, log, events } = runner(stdin, noSignals());
    stdin.end("s3://bucket/a.json.gz\ns3://bucket/b.json.gz\n");
    expect(await exec.run()).toBe(0);
    expect(events().map((e) => e.eventID)).toEqual([
      "a.json.gz#0",
      "a.json.gz#1",
      "a.json.gz#2",
      "b.json.gz#0",
      "b.json.gz#1",
      "b.json.gz#2",
    ]);
    const summary = log.lines.find((line) => line.msg === "summary");
    expect(summary).toMatchObject({ records: 2, events: 6 });
    expect(exec.counts().filter).toMatchObject({ records: 2, events: 6 });
  });

  it("stops on a signal that came before it ran, though stdin never ends", async () => {
    let send: (signal: NodeJS.Signals) => void = () => {};
    const signals = new ShutdownSignals({
      onSignal: (_signal, listener) => {
        send = listener;
      },
    });
    send("SIGTERM");
    const stdin = new PassThrough(); // never ended
    const { exec, log } = runner(stdin, signals);
    expect(await exec.run()).toBe(0);
    expect(log.lines.map((line) => line.msg)).toEqual(["stopping", "summary"]);
    expect(stdin.isPaused()).toBe(true);
  });
});
