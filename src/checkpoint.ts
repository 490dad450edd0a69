// Remembers which objects an import has finished, so an interrupted import resumes without emitting them again:
// an append-only file of their URLs, one a line, each written only after the object's output reached stdout.
//
// A line is written with one write(2), so a kill leaves at most a torn last line (no newline yet): it is dropped on
// the next open. The file is fdatasync'd at most once a second and on close, so a power cut loses at most the last
// second's lines, and those objects are imported again: duplicates rather than loss.
import { closeSync, fdatasyncSync, openSync, readFileSync, truncateSync, writeSync } from "node:fs";

const SYNC_EVERY_MS = 1000;

export class Checkpoint {
  private unsynced = false;
  private closed = false;
  private timer: NodeJS.Timeout | undefined;

  private constructor(
    /** undefined: read only (`--list`). */
    private readonly fd: number | undefined,
    private readonly done: Set<string>,
  ) {}

  /**
   * Reads the file (missing: empty) and, unless `readOnly`, opens it for appending. Throws the fs error when it
   * cannot.
   */
  static open(path: string, readOnly = false): Checkpoint {
    let bytes: Buffer;
    try {
      bytes = readFileSync(path);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error;
      bytes = Buffer.alloc(0);
    }
    const whole = bytes.lastIndexOf(0x0a) + 1;
    if (whole < bytes.length && !readOnly) truncateSync(path, whole); // a torn last line
    const done = new Set(
      bytes
        .subarray(0, whole)
        .toString("utf8")
        .split("\n")
        .filter((line) => line !== ""),
    );
    return new Checkpoint(readOnly ? undefined : openSync(path, "a"), done);
  }

  /** Objects finished by earlier runs and this one. */
  get size(): number {
    return this.done.size;
  }

  has(url: string): boolean {
    return this.done.has(url);
  }

  add(url: string): void {
    if (this.fd === undefined) throw new Error("the checkpoint was opened read-only");
    if (this.done.has(url)) return;
    this.done.add(url);
    writeSync(this.fd, `${url}\n`);
    this.unsynced = true;
    this.timer ??= setTimeout(() => this.sync(), SYNC_EVERY_MS);
  }

  private sync(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (!this.unsynced || this.fd === undefined) return;
    this.unsynced = false;
    fdatasyncSync(this.fd);
  }

  /** Syncs and closes the file; later calls do nothing. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.sync();
    if (this.fd !== undefined) closeSync(this.fd);
  }
}
