// When to try a transiently failed object again: exponential backoff with full jitter, for up to a time budget,
// and one pause shared by every object when S3 asks us to slow down (503 SlowDown, throttling), so that many objects
// failing at once wait together instead of turning into a retry storm.
// https://aws.amazon.com/builders-library/timeouts-retries-and-backoff-with-jitter/

export interface RetryOptions {
  /** How long an object may keep failing transiently before it is given up, in ms. */
  retryForMs: number;
  baseMs?: number;
  maxMs?: number;
  random?: () => number;
  now?: () => number;
}

export class RetryPolicy {
  private sharedUntil = 0;
  private throttleLevel = 0;
  private readonly baseMs: number;
  private readonly maxMs: number;
  private readonly random: () => number;
  readonly now: () => number;

  constructor(readonly options: RetryOptions) {
    this.baseMs = options.baseMs ?? 200;
    this.maxMs = options.maxMs ?? 20_000;
    this.random = options.random ?? Math.random;
    this.now = options.now ?? Date.now;
  }

  /** The wait before attempt `attempt + 1` (attempt counts from 1), or undefined once the budget is spent. */
  delayAfter(attempt: number, firstFailureAt: number): number | undefined {
    // No budget, no retry: a jittered delay of 0 within the same millisecond would otherwise fit in a budget of 0.
    if (this.options.retryForMs <= 0) return undefined;
    const cap = Math.min(this.maxMs, this.baseMs * 2 ** Math.min(attempt - 1, 20));
    const delay = Math.round(this.random() * cap);
    const spent = this.now() - firstFailureAt;
    return spent + delay > this.options.retryForMs ? undefined : delay;
  }

  /** S3 throttled a request: everyone pauses, longer each time it happens again before a success. */
  throttled(): void {
    // Throttles that arrive while a pause is already running are the same episode: one step up, not one per object.
    if (this.now() < this.sharedUntil) return;
    this.throttleLevel = Math.min(this.throttleLevel + 1, 16);
    const pause = Math.min(this.maxMs, this.baseMs * 2 ** this.throttleLevel) * (0.5 + this.random() / 2);
    this.sharedUntil = Math.max(this.sharedUntil, this.now() + pause);
  }

  succeeded(): void {
    if (this.throttleLevel > 0) this.throttleLevel--;
  }

  /** How long to wait before starting a request now (the shared pause), in ms. */
  pauseMs(): number {
    return Math.max(0, this.sharedUntil - this.now());
  }
}

/** Waits `ms`, or less if `signal` aborts. */
export function sleep(ms: number, signal: AbortSignal): Promise<void> {
  if (ms <= 0 || signal.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
  });
}
