// Objects large enough to be inflated on the thread pool in one piece, whose memory the filter frees as soon as their
// events are written (shared/buffers.ts, release): every event still comes out whole and byte for byte, with several
// objects in flight, whatever the runtime (Node 22 and 24 free it; Node 20 has no ArrayBuffer transfer and leaves it
// to the collector).
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { gzipSync } from "node:zlib";
import { afterAll, describe, expect, it } from "vitest";
import { runCli } from "../support/cli.js";

const dir = mkdtempSync(join(tmpdir(), "ctef-large-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** An event of its own for object `o`, number `i`: sizes and characters vary, so every byte of every one is checked. */
function event(o: number, i: number): Record<string, unknown> {
  return {
    eventVersion: "1.08",
    eventTime: new Date(Date.UTC(2024, 0, 1) + (o * 100_000 + i) * 1000).toISOString().replace(/\.\d+Z$/, "Z"),
    eventName: `Event${o}-${i}`,
    requestParameters: { text: 'é中\u2028"\\'.repeat(i % 97), n: i * 1.5e-7 },
  };
}

describe("objects inflated in one piece on the pool", () => {
  it("write every event of every object byte for byte, six objects of 0.2 to 6 MB, four at a time", async () => {
    const counts = [800, 2_500, 6_000, 12_000, 20_000, 3_000];
    const expected = new Map<string, string>();
    const lines: string[] = [];
    counts.forEach((count, o) => {
      const records = Array.from({ length: count }, (_, i) => event(o, i));
      for (const record of records) expected.set(record.eventName as string, JSON.stringify(record));
      // A CloudTrail log file name, so that import (which keeps only those) reads them too.
      const file = join(dir, `123456789012_CloudTrail_us-east-1_20240101T000${o}Z_object${o}.json.gz`);
      writeFileSync(file, gzipSync(JSON.stringify({ Records: records })));
      lines.push(pathToFileURL(file).href);
    });
    const run = await runCli(["--concurrency", "4"], `${lines.join("\n")}\n`);
    expect(run.code).toBe(0);
    // Whitespace lines are the padding that pushes the last events through fluentd's reader (docs/output.md).
    const out = run.stdout
      .toString("utf8")
      .split("\n")
      .filter((line) => line.trim() !== "");
    expect(out.length).toBe(expected.size);
    for (const line of out) {
      const name = /"eventName":"([^"]+)"/.exec(line)?.[1] ?? "";
      const original = expected.get(name);
      expect(original, line.slice(0, 120)).toBeDefined();
      // The event's own bytes, then the added @timestamp.
      expect(line.startsWith(`${(original as string).slice(0, -1)},"@timestamp":"`), name).toBe(true);
      expected.delete(name);
    }
    expect(expected.size).toBe(0);
  });

  it("import reads the same objects and logs the stats line every long-running mode logs (run/stats.ts)", async () => {
    const run = await runCli(["import", pathToFileURL(dir).href, "--stats-interval", "0.1"], "");
    expect(run.code).toBe(0);
    const stats = run.log.filter((line) => line.msg === "stats");
    expect(stats.length).toBeGreaterThan(0);
    for (const line of stats) {
      expect(line).toHaveProperty("eventsPerSecond");
      expect(line).toHaveProperty("rssMB");
      expect(line).toHaveProperty("total");
    }
    const summary = run.log.find((line) => line.msg === "summary");
    expect(summary).toMatchObject({ objects: 6, events: 44_300 });
    // Every count of the stats line's running total is in the summary too, under the same name.
    for (const key of Object.keys(stats.at(-1)?.total as object)) expect(summary).toHaveProperty(key);
  });
});
