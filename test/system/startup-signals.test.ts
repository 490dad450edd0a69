// A SIGTERM at any moment of start-up stops the process (issue 20): sent at a range of delays after the spawn, from
// before the program is loaded to after its runner is in place, to the filter (stdin left open, as fluentd leaves
// it) and to the `sqs` command (polling an empty queue). Either way it must end: exit 0 once the program has its
// listeners, death by the signal before that. A run that keeps going is the failure; the wait for it is generous
// (a loaded machine), and no time is asserted.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type CliRun, startCli } from "../support/cli.js";
import { type SqsTest, startSqs } from "../support/sqs-server.js";

// Start-up takes 100 ms to a second depending on the machine's load: the later delays land after the runner is in place.
const DELAYS_MS = [0, 50, 100, 125, 150, 200, 300, 400, 600, 800];
const PATIENCE_MS = 20_000;

async function endsAfterSigterm(args: string[], env: Record<string, string>, delayMs: number): Promise<CliRun> {
  const spawned = startCli(args, env);
  await new Promise((resolve) => setTimeout(resolve, delayMs));
  spawned.child.kill("SIGTERM");
  const timer = setTimeout(() => spawned.child.kill("SIGKILL"), PATIENCE_MS);
  const run = await spawned.done;
  clearTimeout(timer);
  return run;
}

function expectStopped(run: CliRun, delayMs: number): void {
  const stopped = run.code === 0 || (run.code === null && run.signal === "SIGTERM");
  expect(stopped, `SIGTERM ${delayMs} ms after start: code ${run.code}, signal ${run.signal}`).toBe(true);
}

describe("SIGTERM during start-up", () => {
  let sqs: SqsTest;
  beforeAll(async () => {
    sqs = await startSqs();
  });
  afterAll(async () => {
    await sqs?.close();
  });

  it.each(DELAYS_MS)("the filter stops when SIGTERM comes %i ms after the spawn", async (delayMs) => {
    expectStopped(await endsAfterSigterm([], {}, delayMs), delayMs);
  });

  it.each(DELAYS_MS)("the sqs command stops when SIGTERM comes %i ms after the spawn", async (delayMs) => {
    const env = { AWS_ACCESS_KEY_ID: "x", AWS_SECRET_ACCESS_KEY: "x", AWS_REGION: "us-east-1" };
    const args = ["sqs", "--queue-url", sqs.queueUrl, "--wait-time", "1", "--request-timeout", "5"];
    expectStopped(await endsAfterSigterm(args, env, delayMs), delayMs);
  });
});
