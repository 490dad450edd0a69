// The continuous integrity check's counts on /metrics (--verify-integrity): read from the same object its summary
// copies, shown only when the command has the check.
import { describe, expect, it } from "vitest";
import type { ContinuousCounts } from "../../src/integrity/continuous.js";
import type { Sink } from "../../src/model/sink.js";
import { Metrics } from "../../src/observe/metrics.js";
import { readingOf } from "../../src/observe/sources.js";

const sink = { bytesOut: 0 } as unknown as Sink;

describe("/metrics and --verify-integrity", () => {
  it("shows the continuous check's counts as they grow", async () => {
    const counts: ContinuousCounts = { digests: 0, problems: 0, remembered: 0, fetched: 0 };
    const metrics = await Metrics.create("filter", "0.0.0-test", false);
    metrics.attach(readingOf({ sink, continuous: () => counts }), false);
    Object.assign(counts, { digests: 3, problems: 2, remembered: 40, fetched: 5 });
    const { body } = await metrics.exposition();
    expect(body).toContain("cloudtrail_exec_filter_integrity_digests_checked_total 3");
    expect(body).toContain("cloudtrail_exec_filter_integrity_problems_total 2");
    expect(body).toContain("cloudtrail_exec_filter_integrity_files_remembered_total 40");
    expect(body).toContain("cloudtrail_exec_filter_integrity_files_fetched_total 5");
  });

  it("has none of them without the check", async () => {
    const metrics = await Metrics.create("filter", "0.0.0-test", false);
    metrics.attach(readingOf({ sink }), false);
    expect((await metrics.exposition()).body).not.toContain("integrity_");
  });
});
