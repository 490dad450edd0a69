// The shipped alert rules (examples/prometheus/) work: `promtool check rules` accepts them and `promtool test rules`
// runs their tests, with series that make each alert fire and series that must not. Every alert has its runbook
// section in docs/operations.md. Skipped with a note where promtool is not installed (Debian: `prometheus`).
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { prometheusUnavailable } from "../support/prometheus.js";

const DIR = fileURLToPath(new URL("../../examples/prometheus/", import.meta.url));
const RULES = "cloudtrail-exec-filter.rules.yml";
const unavailable = prometheusUnavailable();
if (unavailable !== undefined)
  console.warn(`test/contract/alert-rules.test.ts: promtool's checks are skipped: ${unavailable}`);

function promtool(...args: string[]): { status: number | null; output: string } {
  const run = spawnSync("promtool", args, { cwd: DIR, encoding: "utf8" });
  return { status: run.status, output: `${run.stdout}${run.stderr}` };
}

const alerts = [...readFileSync(`${DIR}${RULES}`, "utf8").matchAll(/^\s+- alert: (\S+)$/gm)].map((m) => m[1] as string);

describe("examples/prometheus alert rules", () => {
  it("every alert has a test and a runbook section in docs/operations.md", () => {
    expect(alerts.length).toBeGreaterThanOrEqual(6);
    const tests = readFileSync(`${DIR}cloudtrail-exec-filter.test.yml`, "utf8");
    const runbook = readFileSync(fileURLToPath(new URL("../../docs/operations.md", import.meta.url)), "utf8");
    for (const alert of alerts) {
      expect(tests, alert).toContain(`alertname: ${alert}\n`);
      expect(runbook, alert).toContain(`### ${alert}\n`);
    }
  });

  it.skipIf(unavailable !== undefined)("promtool check rules accepts them", () => {
    const run = promtool("check", "rules", RULES);
    expect(run.status, run.output).toBe(0);
    expect(run.output).toContain(`SUCCESS: ${alerts.length} rules found`);
  });

  it.skipIf(unavailable !== undefined)("promtool test rules: each fires on its series and not on the others", () => {
    const run = promtool("test", "rules", "cloudtrail-exec-filter.test.yml");
    expect(run.status, run.output).toBe(0);
    expect(run.output).toContain("SUCCESS");
  });
});
