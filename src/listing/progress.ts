// Reports how far an import has come: one line redrawn in place on a terminal, or a log line now and then when
// stderr is a file or a pipe (where carriage returns would only pile up).
import type { Logger } from "../shared/log.js";

export interface ProgressCounts {
  /** Objects listed for import so far, and their stored bytes. */
  listed: number;
  bytesListed: number;
  /** True once the listing has ended: `listed` is the total. */
  listingDone: boolean;
  /** Objects finished (events written, or dead-lettered), and their stored bytes. */
  objects: number;
  bytes: number;
  events: number;
  deadLetters: number;
  /** `import --enqueue`: messages sent so far (objects then counts the files they name; no events). */
  messages?: number;
}

export function emptyCounts(): ProgressCounts {
  return { listed: 0, bytesListed: 0, listingDone: false, objects: 0, bytes: 0, events: 0, deadLetters: 0 };
}

const MB = 1024 * 1024;

/** Seconds left at the rate so far, once the total is known and there is a rate to go by. */
export function etaSeconds(counts: ProgressCounts, elapsedMs: number): number | undefined {
  if (!counts.listingDone || counts.bytes === 0 || elapsedMs <= 0) return undefined;
  return Math.max(0, ((counts.bytesListed - counts.bytes) * elapsedMs) / counts.bytes / 1000);
}

export function formatDuration(seconds: number): string {
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
}

/** The terminal line: `objects 12/40 (30%) · events 5,210 · 3.2/10.0 MB · 1.1 MB/s · 3 dead letters · ETA 6s`. */
export function renderProgress(counts: ProgressCounts, elapsedMs: number): string {
  const total = counts.listingDone ? `${counts.listed}` : `${counts.listed}+`;
  const percent =
    counts.listingDone && counts.bytesListed > 0 ? ` (${Math.floor((100 * counts.bytes) / counts.bytesListed)}%)` : "";
  const rate = elapsedMs > 0 ? (counts.bytes / MB / (elapsedMs / 1000)).toFixed(1) : "0.0";
  const parts = [
    `objects ${counts.objects}/${total}${percent}`,
    counts.messages === undefined
      ? `events ${counts.events.toLocaleString("en-US")}`
      : `messages ${counts.messages.toLocaleString("en-US")}`,
    `${(counts.bytes / MB).toFixed(1)}/${(counts.bytesListed / MB).toFixed(1)} MB`,
    `${rate} MB/s`,
  ];
  if (counts.deadLetters > 0) parts.push(`${counts.deadLetters} dead letter${counts.deadLetters === 1 ? "" : "s"}`);
  const eta = etaSeconds(counts, elapsedMs);
  parts.push(eta === undefined ? (counts.listingDone ? "ETA ?" : "listing…") : `ETA ${formatDuration(eta)}`);
  return parts.join(" · ");
}

export interface ProgressOutput {
  /** True when the line can be redrawn in place (stderr is a terminal). */
  tty: boolean;
  write(text: string): void;
}

export class Progress {
  private timer: NodeJS.Timeout | undefined;
  private readonly started: number;

  constructor(
    private readonly counts: ProgressCounts,
    private readonly output: ProgressOutput,
    private readonly log: Logger,
    private readonly now: () => number = Date.now,
    /** How often a log line is written when not on a terminal. */
    private readonly logEveryMs = 10_000,
  ) {
    this.started = now();
  }

  start(): void {
    const every = this.output.tty ? 250 : this.logEveryMs;
    this.timer = setInterval(() => this.report(), every);
    this.timer.unref();
  }

  private report(): void {
    const elapsed = this.now() - this.started;
    if (this.output.tty) {
      this.output.write(`\r${renderProgress(this.counts, elapsed)}\x1b[K`);
      return;
    }
    const eta = etaSeconds(this.counts, elapsed);
    this.log.info("progress", {
      ...this.counts,
      mb: Math.round((this.counts.bytes / MB) * 10) / 10,
      mbPerSecond: elapsed > 0 ? Math.round((this.counts.bytes / MB / (elapsed / 1000)) * 100) / 100 : 0,
      ...(eta === undefined ? {} : { etaSeconds: Math.round(eta) }),
    });
  }

  /** Draws the final state (on a terminal) and stops. */
  stop(): void {
    clearInterval(this.timer);
    if (this.output.tty) this.output.write(`\r${renderProgress(this.counts, this.now() - this.started)}\x1b[K\n`);
  }
}
