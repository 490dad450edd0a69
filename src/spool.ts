// The spool: a journal of accepted input records, so that nothing accepted is lost to a shutdown or a kill -9.
//
// fluentd counts a chunk as delivered once it is in the child's pipe, so whatever the child has read and not yet
// turned into output is the child's responsibility. Every record is appended to the journal before work on it
// starts, and marked done once its output (events or dead-letter records) has been handed to stdout. On start the
// records without a done mark are replayed first. Entries are written with write(2): they survive the process being
// killed at any moment (the kernel has them), not a power cut. A torn last entry (kill -9 mid-write) is ignored.
//
// Format: one JSON object per line, `{"a":ID,"t":"<input line>"}` when a record is accepted and `{"d":ID}` when it
// is done. The journal is compacted (rewritten with only what is pending) when it grows, so it stays bounded.
import {
  closeSync,
  existsSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  statSync,
  unlinkSync,
  writeSync,
} from "node:fs";
import { dirname, join, resolve } from "node:path";

export class SpoolLockedError extends Error {
  override readonly name = "SpoolLockedError";
}

export interface SpooledLine {
  id: number;
  text: string;
}

/** Rewrite the journal once it holds this many done entries. */
const COMPACT_AFTER = 10_000;

export class Spool {
  private fd: number;
  private nextId = 1;
  private readonly pending = new Map<number, string>();
  private doneSinceCompaction = 0;

  private constructor(
    private readonly dir: string,
    private readonly lockPath: string,
  ) {
    this.fd = -1;
  }

  /** Opens (creating) the spool in `dir`; throws SpoolLockedError if a live process holds it. */
  static open(dir: string): Spool {
    makeDirectory(dir);
    const lockPath = join(dir, "lock");
    takeLock(lockPath);
    const spool = new Spool(dir, lockPath);
    try {
      spool.load();
      spool.compact();
    } catch (error) {
      spool.close();
      throw error;
    }
    return spool;
  }

  private get journalPath(): string {
    return join(this.dir, "journal.jsonl");
  }

  private load(): void {
    if (!existsSync(this.journalPath)) return;
    const text = readFileSync(this.journalPath, "utf8");
    for (const line of text.split("\n")) {
      if (line === "") continue;
      let entry: unknown;
      try {
        entry = JSON.parse(line);
      } catch {
        continue; // a torn entry: kill -9 in the middle of a write
      }
      if (typeof entry !== "object" || entry === null) continue;
      const { a, t, d } = entry as { a?: unknown; t?: unknown; d?: unknown };
      if (typeof a === "number" && typeof t === "string") {
        this.pending.set(a, t);
        this.nextId = Math.max(this.nextId, a + 1);
      } else if (typeof d === "number") {
        this.pending.delete(d);
      }
    }
  }

  /** Records accepted earlier and never finished, oldest first: to be replayed before new input. */
  unfinished(): SpooledLine[] {
    return [...this.pending].map(([id, text]) => ({ id, text }));
  }

  /** Journals a newly read record; returns its id. */
  accept(text: string): number {
    const id = this.nextId++;
    this.pending.set(id, text);
    this.append(`${JSON.stringify({ a: id, t: text })}\n`);
    return id;
  }

  /** Marks a record done: its output is written. */
  done(id: number): void {
    if (!this.pending.delete(id)) return;
    this.append(`{"d":${id}}\n`);
    if (++this.doneSinceCompaction >= COMPACT_AFTER || (this.pending.size === 0 && this.doneSinceCompaction >= 1000)) {
      this.compact();
    }
  }

  get size(): number {
    return this.pending.size;
  }

  close(): void {
    if (this.fd >= 0) {
      try {
        fsyncSync(this.fd);
      } catch {
        // nothing more to do on a failing disk
      }
      closeSync(this.fd);
      this.fd = -1;
    }
    try {
      unlinkSync(this.lockPath);
    } catch {
      // already gone
    }
  }

  private append(text: string): void {
    const buffer = Buffer.from(text, "utf8");
    let at = 0;
    while (at < buffer.length) at += writeSync(this.fd, buffer, at);
  }

  /** Rewrites the journal with only the pending records (write, fsync, rename: never a half-written journal). */
  private compact(): void {
    const temporary = `${this.journalPath}.tmp`;
    const fd = openSync(temporary, "w");
    try {
      const body = [...this.pending].map(([id, text]) => `${JSON.stringify({ a: id, t: text })}\n`).join("");
      writeSync(fd, body);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(temporary, this.journalPath);
    if (this.fd >= 0) closeSync(this.fd);
    this.fd = openSync(this.journalPath, "a");
    this.doneSinceCompaction = 0;
  }
}

/** Creates the lock file with our pid; a lock left by a dead process is taken over. */
function takeLock(path: string): void {
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(path, "wx");
      writeSync(fd, `${process.pid}\n`);
      closeSync(fd);
      return;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
    }
    const owner = Number.parseInt(readFileSync(path, "utf8"), 10);
    if (Number.isInteger(owner) && owner > 0 && owner !== process.pid && isAlive(owner)) {
      throw new SpoolLockedError(`the spool is in use by process ${owner} (lock file ${path})`);
    }
    unlinkSync(path); // stale: its process is gone
  }
  throw new SpoolLockedError(`could not take the spool lock ${path}`);
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

/**
 * Creates `dir` and its missing parents one by one. Not `mkdirSync(dir, { recursive: true })`: on Node 20 it loops
 * forever at full CPU, deaf to SIGTERM, where mkdir fails with ENOENT although the parent exists (`/proc/spool`: procfs
 * refuses new entries that way). Here that mkdir throws, and the caller reports it as a configuration error.
 */
function makeDirectory(dir: string): void {
  const missing: string[] = [];
  for (let at = resolve(dir); statSync(at, { throwIfNoEntry: false }) === undefined; at = dirname(at)) {
    missing.push(at);
    if (dirname(at) === at) break; // the root itself is missing: mkdir says why
  }
  for (const path of missing.reverse()) {
    try {
      mkdirSync(path);
    } catch (error) {
      // Made meanwhile by another process: what matters is that it is there.
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
    }
  }
}
