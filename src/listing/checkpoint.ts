// Remembers which objects an import has finished, so an interrupted import resumes without emitting them again:
// an append-only file of their URLs, one a line, each written only after the object's output reached stdout.
//
// A line is written with one write(2), so a kill leaves at most a torn last line (no newline yet): it is dropped on
// the next open. The file is fdatasync'd at most once a second and on close, so a power cut loses at most the last
// second's lines, and those objects are imported again: duplicates rather than loss.
//
// The file is read a chunk at a time, never as one string: an import of a large organisation trail finishes millions
// of objects, and a checkpoint past V8's 512 MiB string limit could not be resumed at all.
import { closeSync, fdatasyncSync, openSync, readSync, truncateSync, writeSync } from "node:fs";

const SYNC_EVERY_MS = 1000;
/** Bytes read per read(2) when opening. */
const CHUNK = 1024 * 1024;

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
    let fd: number;
    try {
      fd = openSync(path, "r");
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error;
      return new Checkpoint(readOnly ? undefined : openSync(path, "a"), new Set());
    }
    const done = new Set<string>();
    let whole: number;
    try {
      whole = readLines(fd, (line) => {
        if (line !== "") done.add(line);
      });
    } finally {
      closeSync(fd);
    }
    if (!readOnly) truncateSync(path, whole); // a torn last line (a no-op without one)
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

/**
 * Calls `each` with every newline-terminated line of the file, read a chunk at a time (a line may span chunks);
 * returns the bytes up to the last newline, so a torn last line can be cut off.
 */
function readLines(fd: number, each: (line: string) => void): number {
  const chunk = Buffer.allocUnsafe(CHUNK);
  let carry: Buffer[] = [];
  let position = 0;
  let whole = 0;
  for (;;) {
    const n = readSync(fd, chunk, 0, chunk.length, position);
    if (n === 0) return whole;
    let start = 0;
    for (let nl = chunk.indexOf(0x0a); nl !== -1 && nl < n; nl = chunk.indexOf(0x0a, start)) {
      const tail = chunk.subarray(start, nl);
      each((carry.length === 0 ? tail : Buffer.concat([...carry, tail])).toString("utf8"));
      carry = [];
      start = nl + 1;
      whole = position + start;
    }
    if (start < n) carry.push(Buffer.from(chunk.subarray(start, n)));
    position += n;
  }
}
