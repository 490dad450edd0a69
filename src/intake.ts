// Between stdin and the filter: journals each record in the spool (when there is one) before the filter sees it,
// replays what an earlier run left unfinished, and at shutdown keeps reading stdin into the journal.
//
// At shutdown fluentd v1 closes the child's stdin and sends SIGTERM at once. Records still in the pipe were counted
// as delivered by fluentd, so with a spool they are read and journaled (to be replayed by the next run) rather than
// left in a pipe that is about to disappear.

import { redactReceiptHandles } from "./dead-letter.js";
import type { Line } from "./input.js";
import type { Logger } from "./log.js";
import type { Spool } from "./spool.js";

export class Intake implements AsyncIterable<Line> {
  private readonly queue: Line[] = [];
  private wakeConsumer: (() => void) | undefined;
  private wakePump: (() => void) | undefined;
  private stopped = false;
  private ended = false;
  private endedResolve!: () => void;
  /** Resolves when the source has ended (or was given up at shutdown). */
  readonly finished = new Promise<void>((resolve) => {
    this.endedResolve = resolve;
  });
  /** Records read but never handed to the filter because of a shutdown (kept in the spool, if any). */
  leftOver = 0;

  constructor(
    private readonly source: AsyncIterable<Line>,
    private readonly spool: Spool | undefined,
    private readonly log: Logger,
    private readonly highWater: number,
    /** Called for each record as it is queued (replayed from the spool or read), before the filter gets to it. */
    private readonly onQueued: (line: Line) => void = () => {},
  ) {
    for (const { id, text } of spool?.unfinished() ?? []) {
      const line: Line = { kind: "line", number: 0, text, id };
      this.queue.push(line);
      onQueued(line);
    }
    if (this.queue.length > 0) log.info("replaying the spool", { records: this.queue.length });
    void this.pump();
  }

  private async pump(): Promise<void> {
    try {
      for await (const read of this.source) {
        let line = read;
        if (line.kind === "line" && this.spool !== undefined) line = { ...line, id: this.spool.accept(line.text) };
        if (this.stopped) {
          this.leaveOver(line);
          continue;
        }
        this.queue.push(line);
        this.onQueued(line);
        this.wakeConsumer?.();
        while (this.queue.length >= this.highWater && !this.stopped) {
          await new Promise<void>((resolve) => {
            this.wakePump = resolve;
          });
        }
      }
    } catch (error) {
      this.log.error("reading stdin failed", { error: error instanceof Error ? error.message : String(error) });
    } finally {
      this.ended = true;
      this.wakeConsumer?.();
      this.endedResolve();
    }
  }

  /** Stops handing records to the filter; with a spool, stdin is still read into the journal until it ends. */
  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    for (const line of this.queue.splice(0)) this.leaveOver(line);
    this.wakePump?.();
    this.wakeConsumer?.();
  }

  /** Gives up waiting for stdin to end (the shutdown deadline). */
  abandon(): void {
    this.stop();
    this.endedResolve();
  }

  private leaveOver(line: Line): void {
    this.leftOver++;
    if (this.spool !== undefined && line.id !== undefined) return; // journaled: the next run replays it
    this.log.warn("abandoned", {
      why: "shutdown before the record was started",
      input: redactReceiptHandles(line.kind === "line" ? line.text : line.prefix),
    });
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<Line> {
    for (;;) {
      const line = this.queue.shift();
      if (line !== undefined) {
        if (this.queue.length < this.highWater) this.wakePump?.();
        yield line;
        continue;
      }
      if (this.ended || this.stopped) return;
      await new Promise<void>((resolve) => {
        this.wakeConsumer = resolve;
      });
    }
  }
}
