// The `sqs` command's run around its SqsService (sqs-service.ts): the stop on SIGTERM/SIGINT within
// --shutdown-timeout, the end when stdout's reader is gone, the last wait for the output, and the summary.
import type { OutputSink } from "../deliver/output.js";
import type { Sink } from "../model/sink.js";
import type { Host } from "../shared/host.js";
import type { Logger } from "../shared/log.js";
import { describeStdoutError, finishOutput, type ShutdownSignals } from "./shutdown.js";
import type { SqsService } from "./sqs-service.js";
import { reportRun } from "./stats.js";

export interface SqsRunDeps {
  host: Pick<Host, "maxRssBytes" | "rssBytes">;
  signals: ShutdownSignals;
  log: Logger;
  sink: Sink;
  stdout: OutputSink | undefined;
  /** Seconds between stats lines; 0: none. */
  statsInterval: number;
  shutdownTimeout: number;
  /** Called with the handler for stdout's failure (EPIPE), which ends the run. */
  onStdoutClosed: (handler: (error: Error) => void) => void;
}

/** Runs the service until a signal stops it or its output is lost; returns the exit code. */
export async function runSqsService(service: SqsService, deps: SqsRunDeps): Promise<number> {
  const { log, sink, stdout } = deps;
  // The whole shutdown fits in --shutdown-timeout: work in flight gets it less a reserve for the last SQS calls
  // (deletes of what finished, hand-backs of what did not).
  const shutdownMs = deps.shutdownTimeout * 1000;
  const reserveMs = Math.min(1000, shutdownMs / 2);
  let deadline = Number.POSITIVE_INFINITY;
  const signalled = deps.signals.on(
    (shutdownMs - reserveMs) / 1000,
    log,
    () => {
      deadline = Date.now() + shutdownMs;
      service.stop();
    },
    () => service.abandon(),
  );
  // stdout's reader is gone: what it had not read is lost with it, so nothing more is deleted and every message not
  // finished is handed back; then the summary, and exit 1, for this consumer did not end by a signal.
  let outputLost = false;
  deps.onStdoutClosed((error) => {
    if (outputLost) return;
    outputLost = true;
    log.error("stdout closed: handing back the messages not finished, deleting nothing more", {
      ...describeStdoutError(error),
    });
    service.outputLost();
  });
  const report = reportRun({
    log,
    host: deps.host,
    statsIntervalSeconds: deps.statsInterval,
    counts: () => service.counts(),
  });
  await service.run(() => Math.max(100, Math.min(10_000, deadline - Date.now())));
  report.stop();
  await finishOutput(sink, stdout, signalled() || outputLost, log);
  log.info("summary", {
    ...report.summary(),
    ...(outputLost ? { stdoutClosed: true } : {}),
  });
  return outputLost ? 1 : 0;
}
