// What the benches that run a real fluentd (bench/forward.mjs, bench/fluentd-workers.mjs) share: where fluentd is,
// starting it, and reading its output's count from in_monitor_agent.

import { spawn } from "node:child_process";
import { dirname } from "node:path";
import { findFluentd, probeFluentd } from "../../test/support/fluentd-home.mjs";
import { killGroup } from "./measure.mjs";

/**
 * The fluentd the benches run: FLUENTD_HOME, else a `fluentd` on PATH, else ../shared/vendor's 1.15.3 source
 * (test/support/fluentd-home.mjs chooses, for the tests too).
 */
const found = findFluentd();
let unavailable;
/** Why no fluentd can run here (with how to get one), or undefined when one can; asked once. */
export function fluentdUnavailable() {
  unavailable ??= probeFluentd(found) ?? false;
  return unavailable === false ? undefined : unavailable;
}
/** Which fluentd runs, for the report. */
export const FLUENTD_WHERE = "unavailable" in found ? found.unavailable : found.where;

/**
 * Starts fluentd on `conf` (a path) in its own process group, node's directory first on PATH, and waits until its log
 * says `worker is now running worker=K` for every K below `workers`. `args`: extra fluentd arguments. Resolves to
 * { child, log() (all it has printed so far), exited (resolves to { code, signal }) }; rejects (and kills fluentd)
 * when it exits first or `timeoutMs` passes.
 */
export async function startFluentd(conf, { workers = 1, timeoutMs = 60_000, args = [] } = {}) {
  const why = fluentdUnavailable();
  if (why !== undefined || "unavailable" in found) throw new Error(`no fluentd: ${why}`);
  const child = spawn(found.command, [...found.prefix, "-c", conf, ...args], {
    detached: true,
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, PATH: `${dirname(process.execPath)}:${process.env.PATH}` },
  });
  let log = "";
  const exited = new Promise((resolve) => child.on("close", (code, signal) => resolve({ code, signal })));
  const running = Array.from({ length: workers }, (_, k) => `worker is now running worker=${k}`);
  try {
    await new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`fluentd did not start within ${timeoutMs / 1000} s:\n${log.slice(-3000)}`)),
        timeoutMs,
      );
      const keep = (chunk) => {
        log += chunk;
        if (running.every((line) => log.includes(line))) {
          clearTimeout(timer);
          resolve();
        }
      };
      child.stdout.on("data", keep);
      child.stderr.on("data", keep);
      child.on("error", (error) => {
        clearTimeout(timer);
        reject(error);
      });
      child.on("exit", () => {
        clearTimeout(timer);
        reject(new Error(`fluentd exited:\n${log.slice(-3000)}`));
      });
    });
  } catch (error) {
    killGroup(child);
    throw error;
  }
  return { child, log: () => log, exited };
}

/** emit_records of the plugin `@id` from in_monitor_agent on 127.0.0.1:`port`; undefined while it does not answer. */
export async function emitRecords(port, id) {
  try {
    const res = await fetch(`http://127.0.0.1:${port}/api/plugins.json?@id=${encodeURIComponent(id)}`, {
      signal: AbortSignal.timeout(5000),
    });
    const body = await res.json();
    return body.plugins?.[0]?.emit_records ?? 0;
  } catch {
    return undefined;
  }
}
