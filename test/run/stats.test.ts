// The periodic stats line (stats.ts) and the newest eventTime it reports the lag from (newest-time.ts).
import { describe, expect, it } from "vitest";
import { NewestTime } from "../../src/format/newest-time.js";
import { Stats } from "../../src/run/stats.js";

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
