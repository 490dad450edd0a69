// What /readyz says: whether the command can make progress now, and if not, why (one reason per failing check).
// Liveness (/healthz) needs no check: a process whose event loop answers the request is alive.
//
// The bounds are stated here, once:
// - output (stdout, or fluentd's in_forward): a sink that has not taken more for OUTPUT_BLOCKED_MS is blocked.
//   fluentd stops reading a child while its buffer is full or its output is retrying, for seconds at a time; a minute
//   is longer than those and short enough for an orchestrator to act within its usual probe windows.
// - forward: not ready while no connection to fluentd is established (records wait, unacknowledged).
// - sqs: not ready when no ReceiveMessage has succeeded (an empty long poll counts) for RECEIVE_SILENT_MS plus the
//   long-poll wait, unless every slot is taken (the receivers wait for room, by design). A queue that is missing or
//   closed to us, or an endpoint out of reach, shows here within that bound.
import type { Sink } from "../model/sink.js";

/** A check: why the command cannot make progress at `now` (ms), or undefined when it can. */
export type Check = (now: number) => string | undefined;

export const OUTPUT_BLOCKED_MS = 60_000;
export const RECEIVE_SILENT_MS = 60_000;

/**
 * Watches a sink's `ready()`: asked once a second, it is pending while the sink holds more than it lets producers
 * add. The probe costs one promise a second and never writes.
 */
export class OutputWatch {
  private pendingSince: number | undefined;
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly sink: Pick<Sink, "ready">,
    private readonly boundMs = OUTPUT_BLOCKED_MS,
    private readonly clock: () => number = Date.now,
    everyMs = 1000,
  ) {
    this.probe();
    this.timer = setInterval(() => this.probe(), everyMs);
    this.timer.unref();
  }

  private probe(): void {
    if (this.pendingSince !== undefined) return; // the last one is still waiting
    this.pendingSince = this.clock();
    void this.sink.ready().then(() => {
      this.pendingSince = undefined;
    });
  }

  readonly check: Check = (now) => {
    const since = this.pendingSince;
    if (since === undefined || now - since <= this.boundMs) return undefined;
    return `output blocked for ${Math.round((now - since) / 1000)} s (bound ${this.boundMs / 1000} s): its reader is not taking records`;
  };

  stop(): void {
    clearInterval(this.timer);
  }
}

/** --output forward://: a connection to fluentd is established. */
export function forwardCheck(sink: { readonly connected: boolean }, where: string): Check {
  return () => (sink.connected ? undefined : `not connected to fluentd at ${where}`);
}

/** The `sqs` command: a receive succeeded within the bound, or every slot is taken. */
export function receiveCheck(
  source: { readonly lastReceiveAt: number; inFlight(): number },
  maxInFlight: number,
  waitTimeSeconds: number,
): Check {
  const boundMs = RECEIVE_SILENT_MS + waitTimeSeconds * 1000;
  return (now) => {
    if (now - source.lastReceiveAt <= boundMs || source.inFlight() >= maxInFlight) return undefined;
    return source.lastReceiveAt === 0
      ? "no SQS receive has succeeded yet"
      : `no SQS receive has succeeded for ${Math.round((now - source.lastReceiveAt) / 1000)} s (bound ${boundMs / 1000} s)`;
  };
}

/** The reasons the command is not ready at `now`; none: ready. */
export function notReady(checks: readonly Check[], now: number): string[] {
  const reasons: string[] = [];
  for (const check of checks) {
    const reason = check(now);
    if (reason !== undefined) reasons.push(reason);
  }
  return reasons;
}
