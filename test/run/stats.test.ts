// The periodic stats line and the summary line (stats.ts), built from a runner's counts (model/counts.ts), and the
// newest eventTime the lag is reported from (newest-time.ts).
import { afterEach, describe, expect, it, vi } from "vitest";
import { NewestTime } from "../../src/format/newest-time.js";
import { emptyFilterCounts, type RunCounts, withParts } from "../../src/model/counts.js";
import { countersOf, Stats, startStats, summaryFields } from "../../src/run/stats.js";
import { MemoryLog } from "../support/log.js";

describe("NewestTime", () => {
  it.each<[string, string[], string | undefined]>([
    ["nothing noted", [], undefined],
    ["one time", ["2023-07-10T12:00:05Z"], "2023-07-10T12:00:05Z"],
    ["the later of two, in order", ["2023-07-10T12:00:05Z", "2023-07-10T12:00:06Z"], "2023-07-10T12:00:06Z"],
    ["the later of two, out of order", ["2023-07-10T12:00:06Z", "2023-07-10T12:00:05Z"], "2023-07-10T12:00:06Z"],
    [
      "across days and years",
      ["2023-12-31T23:59:59Z", "2024-01-01T00:00:00Z", "2023-12-31T23:59:58Z"],
      "2024-01-01T00:00:00Z",
    ],
    ["the same time twice", ["2023-07-10T12:00:05Z", "2023-07-10T12:00:05Z"], "2023-07-10T12:00:05Z"],
    [
      "milliseconds after the same second",
      ["2023-07-10T12:00:05Z", "2023-07-10T12:00:06.250Z"],
      "2023-07-10T12:00:06.250Z",
    ],
    [
      "a value too long to be a time is ignored",
      ["2023-07-10T12:00:05Z", `2099${"9".repeat(60)}`],
      "2023-07-10T12:00:05Z",
    ],
  ])("%s", (_name, times, expected) => {
    const newest = new NewestTime();
    for (const time of times) newest.note(Buffer.from(time));
    expect(newest.text).toBe(expected);
  });

  it("takes a worker's text too, and a view into a larger buffer as its own bytes", () => {
    const newest = new NewestTime();
    newest.noteText("2023-07-10T12:00:05Z");
    newest.noteText(undefined);
    const memory = Buffer.from('{"eventTime":"2023-07-10T12:00:07Z"}');
    newest.note(memory.subarray(14, 34));
    memory.fill(0x30); // the scanner's buffer is reused: the newest time must be a copy
    expect(newest.text).toBe("2023-07-10T12:00:07Z");
  });
});

describe("Stats", () => {
  const start = Date.parse("2024-01-01T00:00:00Z");
  const counts = (records: number, events: number, retries = 0) => ({
    records,
    events,
    retries,
    bytesOut: events * 10,
  });

  it("gives the counts since the last line, events per second, the lag and memory, and the totals", () => {
    const stats = new Stats(counts(0, 0), start);
    const first = stats.line(start + 10_000, {
      counts: counts(5, 1000, 1),
      newestEventTime: "2023-12-31T23:55:00Z",
      rssBytes: 80 * 2 ** 20,
    });
    expect(first).toEqual({
      seconds: 10,
      records: 5,
      events: 1000,
      retries: 1,
      bytesOut: 10_000,
      eventsPerSecond: 100,
      lagSeconds: 310,
      newestEventTime: "2023-12-31T23:55:00Z",
      rssMB: 80,
      total: { seconds: 10, records: 5, events: 1000, retries: 1, bytesOut: 10_000 },
    });
    const second = stats.line(start + 15_000, {
      counts: counts(6, 1500, 1),
      newestEventTime: "2023-12-31T23:59:00Z",
      rssBytes: 81 * 2 ** 20,
    });
    expect(second).toMatchObject({
      seconds: 5,
      records: 1,
      events: 500,
      retries: 0,
      eventsPerSecond: 100,
      lagSeconds: 75,
    });
    expect(second.total).toEqual({ seconds: 15, records: 6, events: 1500, retries: 1, bytesOut: 15_000 });
  });

  it("says null for the lag until an event has been written", () => {
    const stats = new Stats(counts(0, 0), start);
    const line = stats.line(start + 1000, { counts: counts(1, 0), newestEventTime: undefined, rssBytes: 0 });
    expect(line).toMatchObject({ lagSeconds: null, newestEventTime: null, eventsPerSecond: 0 });
  });
});

describe("one shape of counts for every runner", () => {
  const sqsRun = (events: number, received: number, unacknowledged: number): RunCounts =>
    withParts(
      {
        filter: { ...emptyFilterCounts(), records: received, events },
        counters: {},
        levels: {},
        newestEventTime: events > 0 ? "2023-12-31T23:59:00Z" : null,
      },
      { counters: { received, deleted: received }, levels: { forward: { unacknowledged } } },
    );

  it("countersOf: the Filter's counters first, then the mode's own", () => {
    expect(countersOf(sqsRun(10, 2, 0))).toEqual({
      ...emptyFilterCounts(),
      records: 2,
      events: 10,
      received: 2,
      deleted: 2,
    });
    expect(countersOf({ counters: { messages: 3 }, levels: {} })).toEqual({ messages: 3 });
  });

  it("the stats line differences the counters and gives the levels as they stand", () => {
    const start = Date.parse("2024-01-01T00:00:00Z");
    const stats = new Stats(countersOf(sqsRun(0, 0, 0)), start);
    const run = sqsRun(500, 4, 7);
    const line = stats.line(start + 5000, {
      counts: countersOf(run),
      newestEventTime: "2023-12-31T23:59:00Z",
      rssBytes: 0,
      levels: run.levels,
    });
    expect(line).toMatchObject({ events: 500, received: 4, eventsPerSecond: 100, lagSeconds: 65 });
    expect(line.forward).toEqual({ unacknowledged: 7 });
    expect(line.total).toMatchObject({ received: 4, events: 500 });
    expect((line.total as Record<string, unknown>).forward).toBeUndefined();
  });

  it("summaryFields: the counters under the stats line's names, the levels, the newest eventTime, time and memory", () => {
    const run = { startedMs: 1_000, nowMs: 4_500, maxRssBytes: () => 90 * 2 ** 20 + 1000 };
    expect(summaryFields(sqsRun(10, 2, 1), run)).toEqual({
      ...emptyFilterCounts(),
      records: 2,
      events: 10,
      received: 2,
      deleted: 2,
      forward: { unacknowledged: 1 },
      newestEventTime: "2023-12-31T23:59:00Z",
      seconds: 3.5,
      maxRssMB: 90,
    });
    // null until an event is written; absent for a runner that writes none (import --enqueue), as is the memory
    // where the caller did not measure it.
    expect(summaryFields(sqsRun(0, 1, 0), { startedMs: 0, nowMs: 1_000 }).newestEventTime).toBeNull();
    const enqueue = { counters: { messages: 1 }, levels: { maxMessageBytes: 1024 } };
    expect(summaryFields(enqueue, { startedMs: 0, nowMs: 2_000 })).toEqual({
      messages: 1,
      maxMessageBytes: 1024,
      seconds: 2,
    });
  });
});

describe("startStats", () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it("logs one stats line per interval from the runner's counts, until stopped", () => {
    vi.useFakeTimers({ now: Date.parse("2024-01-01T00:00:00Z") });
    const log = new MemoryLog();
    let received = 0;
    const counts = (): RunCounts => ({
      counters: { received },
      levels: { inFlight: 1 },
      newestEventTime: "2023-12-31T23:00:00Z",
    });
    const stop = startStats({ log, intervalMs: 1000, counts, rssBytes: () => 2 ** 20 });
    received = 3;
    vi.advanceTimersByTime(1000);
    received = 5;
    vi.advanceTimersByTime(1000);
    stop();
    vi.advanceTimersByTime(5000);
    expect(log.lines).toHaveLength(2);
    expect(log.lines[0]).toMatchObject({ msg: "stats", received: 3, inFlight: 1, rssMB: 1, lagSeconds: 3601 });
    expect(log.lines[1]).toMatchObject({ msg: "stats", received: 2, total: { seconds: 2, received: 5 } });
  });

  it("an interval of 0 logs nothing", () => {
    vi.useFakeTimers();
    const log = new MemoryLog();
    const stop = startStats({ log, intervalMs: 0, counts: () => ({ counters: {}, levels: {} }), rssBytes: () => 0 });
    vi.advanceTimersByTime(60_000);
    stop();
    expect(log.lines).toEqual([]);
  });
});
