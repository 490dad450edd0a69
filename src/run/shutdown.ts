// How every runner stops: SIGTERM and SIGINT (fluentd's shutdown, Ctrl-C), listened to once for the whole process,
// and the bounded wait for the output at the end. One copy, so that the filter, import, sqs and verify stop alike.
import type { OutputSink } from "../deliver/output.js";
import type { Sink } from "../model/sink.js";
import { errorCode } from "../shared/aws-errors.js";
import type { Host } from "../shared/host.js";
import type { Logger } from "../shared/log.js";

/**
 * SIGTERM and SIGINT are listened to by one pair of listeners, installed first thing in `main` and never removed: a
 * signal at any moment of start-up is kept until a runner says how to stop (`on`), then handled.
 * Swapping listeners instead loses signals: when the last listener of a signal goes, Node closes its watcher, and a
 * signal caught but not yet delivered (it arrived during synchronous work) goes with it (issue 20: a SIGTERM 100-150
 * ms after start was lost in 3 runs of 6). Before `main` runs (the bundle loading) the default action applies: the
 * process dies of the signal, which stops it too.
 */
export class ShutdownSignals {
  private early: NodeJS.Signals | undefined;
  private readonly handlers: ((signal: NodeJS.Signals) => void)[] = [];

  constructor(host: Pick<Host, "onSignal">) {
    const listener = (signal: NodeJS.Signals): void => {
      if (this.handlers.length === 0) this.early ??= signal;
      for (const handler of this.handlers) handler(signal);
    };
    host.onSignal("SIGTERM", listener);
    host.onSignal("SIGINT", listener);
  }

  /**
   * The first signal stops taking work and gives what is in flight `shutdownTimeout` seconds (--shutdown-timeout;
   * undefined: no limit) before `abandon`; another one abandons at once. A signal that came during start-up is
   * handled now. Returns whether a signal has come.
   */
  on(shutdownTimeout: number | undefined, log: Logger, stop: () => void, abandon: () => void): () => boolean {
    let signals = 0;
    const onSignal = (signal: NodeJS.Signals): void => {
      signals++;
      if (signals > 1) {
        abandon();
        return;
      }
      log.info("stopping", { signal, ...(shutdownTimeout === undefined ? {} : { shutdownTimeout }) });
      stop();
      if (shutdownTimeout !== undefined) setTimeout(abandon, shutdownTimeout * 1000).unref();
    };
    this.handlers.push(onSignal);
    const early = this.early;
    this.early = undefined;
    if (early !== undefined) onSignal(early);
    return () => signals > 0;
  }
}

/**
 * Waits until stdout has taken everything. After a signal the wait is bounded: a reader that stopped reading must
 * not hold the process past fluentd's patience; what it did not take stays unfinished (in the spool, if any).
 */
export async function finishOutput(
  sink: Sink,
  stdout: OutputSink | undefined,
  stopping: boolean,
  log: Logger,
): Promise<void> {
  if (!stopping) return sink.end();
  const graceMs = 1000;
  const ended = await Promise.race([
    sink.end().then(() => true),
    new Promise<boolean>((resolve) => setTimeout(() => resolve(false), graceMs).unref()),
  ]);
  if (!ended && stdout === undefined) {
    sink.abandon();
    log.warn("fluentd did not acknowledge everything before exit; the unacknowledged records are not done");
  } else if (!ended && stdout !== undefined) {
    // Only the chunk being written can be partly in the pipe: finish the line it was cut in, drop the rest.
    const pending = stdout.pending;
    const whole = stdout.completeCutLine(1, 2000);
    log.warn("stdout is not being read; exiting with output unsent", { bytes: pending, endsWithWholeLine: whole });
  }
}

/** A stdout failure for the log: its code (EPIPE) when it has one, never more than the message. */
export function describeStdoutError(error: Error): Record<string, unknown> {
  const code = errorCode(error);
  return { ...(code === undefined ? {} : { code }), message: error.message };
}
