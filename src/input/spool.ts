// The spool: a journal of accepted input records, so that nothing accepted is lost to a shutdown or a kill -9.
//
// fluentd counts a chunk as delivered once it is in the child's pipe, so whatever the child has read and not yet
// turned into output is the child's responsibility. Every record is appended to the journal before work on it
// starts, and marked done once its output (events or dead-letter records) has been handed to stdout. On start the
// records without a done mark are replayed first. Entries are written with write(2): they survive the process being
// killed at any moment (the kernel has them), not a power cut. A torn last entry (kill -9 mid-write) is ignored.
//
// Whoever can write to the queue decides what goes in here, so nothing about the journal may depend on its contents
// being kind (docs/spool.md):
// - It is read in chunks and never held as one string: V8 cannot make a string past 512 MiB, and a journal that
//   could not be read made every start fail, forever.
// - A record is stored once, as its own bytes after a short header, never escaped again (the first format, one JSON
//   object per entry, doubled every `"` and `\` of a record: 40 records of 256 KiB of `"` made a 42 MB journal).
//   Payloads are length-framed, so a record may hold any byte, newlines included (a pretty-printed document).
// - It is compacted (rewritten with only the pending records) on size as well as on count, so its size stays within
//   a small multiple of what is pending; and what is pending is bounded (`maxBytes`): when that is reached, reading
//   stdin waits until records finish (intake.ts), so the journal can neither fill the disk nor outgrow a restart.
// - Only offsets of pending records are kept in memory; their text is read back from the file when replayed.
//
// Format (file `journal`), entries back to back:
//   `a ID LENGTH\n` then LENGTH bytes (the record, UTF-8) then `\n`: a record accepted
//   `j ID LENGTH\n` then LENGTH bytes (the record as a JSON string literal) then `\n`: a record accepted whose text is
//                   not well-formed UTF-16 (a lone surrogate, which UTF-8 cannot carry; never from stdin, kept exact)
//   `d ID\n`: the record is done
// The first format (`journal.jsonl`: `{"a":ID,"t":"<record>"}` and `{"d":ID}` lines) is still read, once: its pending
// records are moved into `journal` and the old file removed, so an upgrade loses nothing.
import {
  closeSync,
  existsSync,
  fstatSync,
  fsyncSync,
  ftruncateSync,
  mkdirSync,
  openSync,
  readFileSync,
  readSync,
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

/**
 * The default bound on the bytes of pending records (`--spool-max-bytes`). Pending records are those read and not yet
 * finished; with stdout read they are a few dozen at a time, so the bound only matters when output is stuck (fluentd
 * blocked on its own output) or someone floods the queue with large records. 256 MiB holds 16 records at the longest
 * --max-line-bytes (16 MiB), or tens of thousands of real notifications (1–10 KB), and replaying it at start reads
 * 256 MiB from disk: seconds, not minutes. The same records are in memory while they wait (intake.ts), so the bound
 * also caps what the filter holds of its input.
 */
export const SPOOL_MAX_BYTES_DEFAULT = 256 * 1024 * 1024;

/** Rewrite the journal once it holds this many done entries… */
const COMPACT_AFTER = 10_000;
/**
 * …or once it is larger than twice what is pending plus this: compacting copies the pending bytes, so it is worth it
 * only when at least as much is garbage, and the floor keeps a small journal from being rewritten at every done mark.
 */
const COMPACT_FLOOR_BYTES = 16 * 1024 * 1024;

/** The longest entry header: `a ` + 16 digits + ` ` + 16 digits + `\n`, with room to spare. */
const HEADER_MAX = 64;
/** Bytes read or copied per system call when loading or compacting. */
const CHUNK = 1024 * 1024;

const JOURNAL = "journal";
const OLD_JOURNAL = "journal.jsonl";

/** Where a pending record's payload is in the current journal file. */
interface Pending {
  offset: number;
  length: number;
  /** The payload is a JSON string literal (`j` entry), not the text's UTF-8. */
  json: boolean;
}

export class Spool {
  private fd = -1;
  /** Bytes in the journal file: where the next entry goes. */
  private end = 0;
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private bytesPending = 0;
  private doneSinceCompaction = 0;
  /** Called after a done mark (room may have been freed); intake.ts waits on it when the spool is full. */
  onDone: (() => void) | undefined;

  private constructor(
    private readonly dir: string,
    private readonly lockPath: string,
    /** The bound on pending bytes (see SPOOL_MAX_BYTES_DEFAULT). */
    readonly maxBytes: number,
  ) {}

  /** Opens (creating) the spool in `dir`; throws SpoolLockedError if a live process holds it. */
  static open(dir: string, maxBytes: number, owner: LockOwner): Spool {
    makeDirectory(dir);
    const lockPath = join(dir, "lock");
    takeLock(lockPath, owner);
    const spool = new Spool(dir, lockPath, maxBytes);
    try {
      spool.migrate();
      // Appends go to the end whatever the position; reads (load, replay, compaction) name their offset.
      spool.fd = openSync(spool.journalPath, "a+");
      spool.load();
      spool.compact();
    } catch (error) {
      spool.close();
      throw error;
    }
    return spool;
  }

  private get journalPath(): string {
    return join(this.dir, JOURNAL);
  }

  /**
   * Moves the pending records of a first-format journal into a new-format one (written whole, then renamed), then
   * removes the old file. A crash before the removal leaves both, and the next open does the same again: the old
   * file is the truth as long as it exists.
   */
  private migrate(): void {
    const oldPath = join(this.dir, OLD_JOURNAL);
    if (!existsSync(oldPath)) return;
    const records = new Map<number, string>();
    const fd = openSync(oldPath, "r");
    try {
      for (const line of readLinesOf(fd)) {
        let entry: unknown;
        try {
          entry = JSON.parse(line.toString("utf8"));
        } catch {
          continue; // a torn entry: kill -9 in the middle of a write
        }
        if (typeof entry !== "object" || entry === null) continue;
        const { a, t, d } = entry as { a?: unknown; t?: unknown; d?: unknown };
        if (typeof a === "number" && typeof t === "string") records.set(a, t);
        else if (typeof d === "number") records.delete(d);
      }
    } finally {
      closeSync(fd);
    }
    const temporary = `${this.journalPath}.tmp`;
    const out = openSync(temporary, "w");
    try {
      for (const [id, text] of [...records].sort(([x], [y]) => x - y)) writeAll(out, acceptEntry(id, text).bytes);
      fsyncSync(out);
    } finally {
      closeSync(out);
    }
    renameSync(temporary, this.journalPath);
    unlinkSync(oldPath);
  }

  /** Reads the journal entry by entry; stops at the first entry that is torn or not an entry. */
  private load(): void {
    const reader = new ChunkReader(this.fd);
    let at = 0;
    for (;;) {
      const header = reader.line(at, HEADER_MAX);
      if (header === undefined) break; // the end, or a torn or foreign header
      const parsed = parseHeader(header.toString("latin1"));
      if (parsed === undefined) break;
      const payloadAt = at + header.length + 1;
      if (parsed.kind === "d") {
        const entry = this.pending.get(parsed.id);
        if (entry !== undefined) {
          this.pending.delete(parsed.id);
          this.bytesPending -= entry.length;
        }
        at = payloadAt;
        continue;
      }
      // The payload and its newline must be whole: otherwise kill -9 cut this entry.
      if (reader.byteAt(payloadAt + parsed.length) !== 0x0a) break;
      this.pending.set(parsed.id, { offset: payloadAt, length: parsed.length, json: parsed.kind === "j" });
      this.bytesPending += parsed.length;
      this.nextId = Math.max(this.nextId, parsed.id + 1);
      at = payloadAt + parsed.length + 1;
    }
  }

  /** Records accepted earlier and never finished, oldest first: read from the journal one at a time, when asked. */
  *unfinished(): Generator<SpooledLine> {
    for (const id of [...this.pending.keys()]) {
      const entry = this.pending.get(id);
      if (entry === undefined) continue; // finished meanwhile
      yield { id, text: this.textOf(entry) };
    }
  }

  /** Whether a record of `bytes` fits under the bound; one record always does when nothing is pending. */
  hasRoomFor(bytes: number): boolean {
    return this.bytesPending === 0 || this.bytesPending + bytes <= this.maxBytes;
  }

  /** Journals a newly read record; returns its id. Throws the fs error if it could not be written whole. */
  accept(text: string): number {
    const id = this.nextId;
    const entry = acceptEntry(id, text);
    const at = this.end;
    try {
      writeAll(this.fd, entry.bytes);
    } catch (error) {
      // Never leave half an entry in the middle of the journal (a full disk): the entries after it would be lost.
      try {
        ftruncateSync(this.fd, at);
      } catch {
        // nothing more to do on a failing disk; the next open stops at the torn entry
      }
      throw error;
    }
    this.nextId++;
    this.end += entry.bytes.length;
    this.pending.set(id, { offset: at + entry.headerBytes, length: entry.payloadBytes, json: entry.json });
    this.bytesPending += entry.payloadBytes;
    return id;
  }

  /** Marks a record done: its output is written. */
  done(id: number): void {
    const entry = this.pending.get(id);
    if (entry === undefined) return;
    this.pending.delete(id);
    this.bytesPending -= entry.length;
    const mark = Buffer.from(`d ${id}\n`, "latin1");
    writeAll(this.fd, mark);
    this.end += mark.length;
    this.doneSinceCompaction++;
    if (
      this.doneSinceCompaction >= COMPACT_AFTER ||
      this.end > 2 * this.bytesPending + COMPACT_FLOOR_BYTES ||
      (this.pending.size === 0 && this.doneSinceCompaction >= 1000)
    ) {
      this.compact();
    }
    this.onDone?.();
  }

  /** Records pending. */
  get size(): number {
    return this.pending.size;
  }

  /** Bytes of the pending records (what `maxBytes` bounds). */
  get pendingBytes(): number {
    return this.bytesPending;
  }

  close(): void {
    if (this.fd >= 0) {
      try {
        if (this.pending.size === 0 && this.end > 0) ftruncateSync(this.fd, 0); // nothing to replay: an empty journal
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

  private textOf(entry: Pending): string {
    const bytes = Buffer.allocUnsafe(entry.length);
    readAll(this.fd, bytes, entry.offset);
    const text = bytes.toString("utf8");
    return entry.json ? (JSON.parse(text) as string) : text;
  }

  /**
   * Rewrites the journal with only the pending records, copied from the current file a chunk at a time (write, fsync,
   * rename: never a half-written journal).
   */
  private compact(): void {
    const temporary = `${this.journalPath}.tmp`;
    const out = openSync(temporary, "w");
    const moved = new Map<number, Pending>();
    let end = 0;
    try {
      const chunk = Buffer.allocUnsafe(CHUNK);
      for (const [id, entry] of this.pending) {
        const header = Buffer.from(`${entry.json ? "j" : "a"} ${id} ${entry.length}\n`, "latin1");
        writeAll(out, header);
        end += header.length;
        moved.set(id, { ...entry, offset: end });
        for (let copied = 0; copied < entry.length; ) {
          const n = Math.min(CHUNK, entry.length - copied);
          readAll(this.fd, chunk.subarray(0, n), entry.offset + copied);
          writeAll(out, chunk.subarray(0, n));
          copied += n;
        }
        writeAll(out, NEWLINE);
        end += entry.length + 1;
      }
      fsyncSync(out);
    } finally {
      closeSync(out);
    }
    renameSync(temporary, this.journalPath);
    closeSync(this.fd);
    this.fd = openSync(this.journalPath, "a+");
    this.end = end;
    this.pending.clear();
    for (const [id, entry] of moved) this.pending.set(id, entry);
    this.doneSinceCompaction = 0;
  }
}

const NEWLINE = Buffer.from("\n");

/** One accept entry, ready to append. */
function acceptEntry(
  id: number,
  text: string,
): { bytes: Buffer; headerBytes: number; payloadBytes: number; json: boolean } {
  const json = !isWellFormed(text);
  const payload = json ? JSON.stringify(text) : text;
  const payloadBytes = Buffer.byteLength(payload, "utf8");
  const header = `${json ? "j" : "a"} ${id} ${payloadBytes}\n`;
  const bytes = Buffer.allocUnsafe(header.length + payloadBytes + 1);
  bytes.write(header, 0, "latin1");
  bytes.write(payload, header.length, "utf8");
  bytes[bytes.length - 1] = 0x0a;
  return { bytes, headerBytes: header.length, payloadBytes, json };
}

/** String.prototype.isWellFormed (ES2024, in Node 20; the project's lib is ES2023): no lone surrogate. */
function isWellFormed(text: string): boolean {
  return (text as string & { isWellFormed(): boolean }).isWellFormed();
}

/** `a ID LENGTH`, `j ID LENGTH` or `d ID`, with ids and lengths that are safe integers; anything else: undefined. */
function parseHeader(
  header: string,
): { kind: "a" | "j"; id: number; length: number } | { kind: "d"; id: number } | undefined {
  const match = /^(?:([aj]) (\d{1,15}) (\d{1,15})|d (\d{1,15}))$/.exec(header);
  if (match === null) return undefined;
  if (match[4] !== undefined) return { kind: "d", id: Number(match[4]) };
  return { kind: match[1] as "a" | "j", id: Number(match[2]), length: Number(match[3]) };
}

function writeAll(fd: number, bytes: Buffer): void {
  let at = 0;
  while (at < bytes.length) at += writeSync(fd, bytes, at);
}

function readAll(fd: number, into: Buffer, position: number): void {
  let at = 0;
  while (at < into.length) {
    const n = readSync(fd, into, at, into.length - at, position + at);
    if (n === 0) throw new Error(`the spool journal ends before byte ${position + into.length}`);
    at += n;
  }
}

/** Reads a file through one reused buffer: entry headers near each other cost one read(2) per chunk. */
class ChunkReader {
  private readonly buffer = Buffer.allocUnsafe(CHUNK);
  private start = 0;
  private length = 0;
  private readonly size: number;

  constructor(private readonly fd: number) {
    this.size = fstatSync(fd).size;
  }

  /** The bytes from `at` to the next newline (within `max` bytes), or undefined at the end or without one. */
  line(at: number, max: number): Buffer | undefined {
    this.cover(at, max + 1);
    const from = at - this.start;
    const window = this.buffer.subarray(from, Math.min(this.length, from + max + 1));
    const nl = window.indexOf(0x0a);
    return nl === -1 ? undefined : window.subarray(0, nl);
  }

  byteAt(at: number): number | undefined {
    if (at >= this.size) return undefined;
    this.cover(at, 1);
    return this.buffer[at - this.start];
  }

  /** Makes the buffer hold `[at, at + n)` (or up to the end of the file). */
  private cover(at: number, n: number): void {
    const want = Math.min(at + n, this.size);
    if (at >= this.start && want <= this.start + this.length) return;
    this.start = at;
    this.length = 0;
    while (this.length < this.buffer.length && this.start + this.length < this.size) {
      const read = readSync(this.fd, this.buffer, this.length, this.buffer.length - this.length, at + this.length);
      if (read === 0) break;
      this.length += read;
    }
  }
}

/**
 * The lines of a file (without their newline), read a chunk at a time; a line may be longer than a chunk. A last line
 * without a newline is torn (kill -9 mid-write) and not returned.
 */
function* readLinesOf(fd: number): Generator<Buffer> {
  const chunk = Buffer.allocUnsafe(CHUNK);
  let parts: Buffer[] = [];
  let position = 0;
  for (;;) {
    const n = readSync(fd, chunk, 0, chunk.length, position);
    if (n === 0) return;
    position += n;
    let start = 0;
    for (;;) {
      const nl = chunk.indexOf(0x0a, start);
      if (nl === -1 || nl >= n) break;
      const tail = chunk.subarray(start, nl);
      yield parts.length === 0 ? tail : Buffer.concat([...parts, tail]);
      parts = [];
      start = nl + 1;
    }
    if (start < n) parts.push(Buffer.from(chunk.subarray(start, n)));
  }
}

/** Who takes the spool's lock: our pid, and how to tell whether the pid in a lock found there is alive (the Host). */
export interface LockOwner {
  readonly pid: number;
  isAlive(pid: number): boolean;
}

/** Creates the lock file with our pid; a lock left by a dead process is taken over. */
function takeLock(path: string, self: LockOwner): void {
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(path, "wx");
      writeSync(fd, `${self.pid}\n`);
      closeSync(fd);
      return;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
    }
    const owner = Number.parseInt(readFileSync(path, "utf8"), 10);
    if (Number.isInteger(owner) && owner > 0 && owner !== self.pid && self.isAlive(owner)) {
      throw new SpoolLockedError(`the spool is in use by process ${owner} (lock file ${path})`);
    }
    unlinkSync(path); // stale: its process is gone
  }
  throw new SpoolLockedError(`could not take the spool lock ${path}`);
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
