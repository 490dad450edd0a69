// Between stdin and the filter: journals each record in the spool (when there is one) before the filter sees it,
// replays what an earlier run left unfinished, and at shutdown keeps reading stdin into the journal.
//
// At shutdown fluentd v1 closes the child's stdin and sends SIGTERM at once. Records still in the pipe were counted
// as delivered by fluentd, so with a spool they are read and journaled (to be replayed by the next run) rather than
// left in a pipe that is about to disappear.
//
// Back-pressure: at most `highWater` records wait for the filter, and with a spool the pending records stay within its
// byte bound (spool.ts): when the next record does not fit, stdin is not read until records finish, so fluentd's
// writes block and its buffer holds the rest. At shutdown the bound is set aside: what is still in the pipe (at most
// the chunk fluentd is writing) is journaled rather than lost.

import { redactReceiptHandles } from "../model/dead-letter.js";
import type { Logger } from "../shared/log.js";
import type { Line } from "./lines.js";
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
    if (spool !== undefined) {
      if (spool.size > 0) log.info("replaying the spool", { records: spool.size });
      spool.onDone = () => this.wakePump?.();
    }
    void this.pump();
  }

  private async pump(): Promise<void> {
    try {
      // Read from the journal one at a time, as the filter takes them: the spool may hold more than memory should.
      let toReplay = this.spool?.size ?? 0;
      for (const { id, text } of this.spool?.unfinished() ?? []) {
        if (this.stopped) {
          this.leftOver += toReplay; // still in the journal (not read back just to be counted)
          break;
        }
        toReplay--;
        await this.enqueue({ kind: "line", number: 0, text, id });
      }
      for await (const read of this.source) {
        let line = read;
        if (line.kind === "line" && this.spool !== undefined) line = await this.journal(line, this.spool);
        if (this.stopped) {
          this.leaveOver(line);
          continue;
        }
        await this.enqueue(line);
      }
    } catch (error) {
      this.log.error("reading stdin failed", { error: error instanceof Error ? error.message : String(error) });
    } finally {
      this.ended = true;
      this.wakeConsumer?.();
      this.endedResolve();
    }
  }

  private async enqueue(line: Line): Promise<void> {
    this.queue.push(line);
    this.onQueued(line);
    this.wakeConsumer?.();
    while (this.queue.length >= this.highWater && !this.stopped) await this.pumpWakes();
  }

  /** Journals a record once the spool has room for it (see the top of the file); it gets its journal id. */
  private async journal(line: Line & { kind: "line" }, spool: Spool): Promise<Line> {
    const bytes = Buffer.byteLength(line.text, "utf8");
    if (!spool.hasRoomFor(bytes) && !this.stopped) {
      const since = Date.now();
      this.log.warn("the spool is full; stdin waits until records finish", {
        pendingBytes: spool.pendingBytes,
        spoolMaxBytes: spool.maxBytes,
        records: spool.size,
      });
      while (!spool.hasRoomFor(bytes) && !this.stopped) await this.pumpWakes();
      this.log.info("the spool has room again; reading stdin", { waitedSeconds: (Date.now() - since) / 1000 });
    }
    try {
      return { ...line, id: spool.accept(line.text) };
    } catch (error) {
      // A journal that cannot be written (a full disk) must not stop the data: the record goes on unjournaled.
      this.log.error("the spool could not journal a record; it is processed without a journal entry", {
        error: error instanceof Error ? error.message : String(error),
        code: (error as NodeJS.ErrnoException).code,
        line: line.number,
      });
      return line;
    }
  }

  private pumpWakes(): Promise<void> {
    return new Promise<void>((resolve) => {
      this.wakePump = resolve;
    });
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
