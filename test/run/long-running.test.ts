// Under fluentd the filter is one process for days: nothing may stay reachable per record once the record is done.
// The records are watched with WeakRefs and collected with V8's gc(), so the check does not depend on heap figures.
import { PassThrough } from "node:stream";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { describe, expect, it } from "vitest";
import { OutputSink } from "../../src/deliver/output.js";
import type { ObjectSource, OpenedObject } from "../../src/fetch/fetch.js";
import type { Line } from "../../src/input/lines.js";
import { Filter } from "../../src/run/filter.js";
import { RetryPolicy } from "../../src/shared/retry.js";
import { QUIET_LOG } from "../support/log.js";

setFlagsFromString("--expose-gc");
const gc = runInNewContext("gc") as () => void;

const OBJECT = Buffer.from('{"Records":[{"eventTime":"2023-07-10T11:47:39Z","eventName":"GetObject"}]}');

const source: ObjectSource = {
  async open(): Promise<OpenedObject> {
    return { whole: Buffer.from(OBJECT), size: OBJECT.length };
  },
};

describe("a long-lived filter", () => {
  it("keeps nothing of a record once it is done (a filter that ran 2,000 records holds none of them)", async () => {
    const out = new PassThrough();
    let lines = 0;
    out.on("data", (chunk: Buffer) => {
      for (const byte of chunk) if (byte === 0x0a) lines++;
    });
    const filter = new Filter({
      source,
      sink: new OutputSink(out, { padBytes: 0 }),
      log: QUIET_LOG,
      options: {
        concurrency: 8,
        deadletterTag: "dl",
        maxObjectBytes: 1 << 20,
        maxEventBytes: 1 << 16,
        timestamp: true,
        retryFor: 0,
        leaveTransientToSqs: false,
      },
      retry: new RetryPolicy({ retryForMs: 0, baseMs: 1, maxMs: 1 }),
      hooks: { recordDone() {} },
    });
    const watched: WeakRef<Line>[] = [];
    async function* input(): AsyncGenerator<Line> {
      for (let i = 1; i <= 2000; i++) {
        const line: Line = { kind: "line", number: i, text: `s3://bucket/AWSLogs/1/CloudTrail/us-east-1/k${i}.json` };
        watched.push(new WeakRef(line));
        if (i % 50 === 0) await new Promise((resolve) => setImmediate(resolve));
        yield line;
      }
    }
    const summary = await filter.run(input());
    expect(summary.events).toBe(2000);
    await new Promise((resolve) => setImmediate(resolve));
    gc();
    await new Promise((resolve) => setTimeout(resolve, 10));
    gc();
    const alive = watched.filter((ref) => ref.deref() !== undefined).length;
    expect(alive).toBeLessThan(10); // before the fix: all 2,000, held by the filter's "stopped" promise
    expect(lines).toBe(2000);
    filter.stop(); // the filter itself stays reachable until here, as in a running process
  });
});
