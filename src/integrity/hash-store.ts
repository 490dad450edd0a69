// The SHA-256 of the log files the filter has read (--verify-integrity), kept until their digest comes: in memory,
// and with --spool-dir also in an append-only file beside the journal, so a restart does not read them again.
//
// What is remembered comes from objects in the allowed buckets, named by whoever can write to the queue, so nothing
// about the file may depend on its contents being kind (as the spool journal, input/spool.ts):
// - one entry per line, the key percent-encoded (no byte of a key can start another entry), of bounded length; a
//   line that is too long, torn (kill -9 mid-write) or not an entry is skipped on load, never a reason not to start;
// - it is read in chunks, never as one string;
// - it holds at most twice HASHES_MAX entries: past that it is rewritten with the live ones (written whole, then
//   renamed), so it cannot grow without end.
// A forgotten hash costs one GET when its digest comes (the file is fetched and hashed then), never a wrong verdict.
//
// Format (file `integrity-hashes`): `HEX64 BUCKET ENCODED-KEY\n` per log file read.
import { closeSync, fsyncSync, openSync, readSync, renameSync, writeSync } from "node:fs";
import { join } from "node:path";
import { type BucketName, isInvalid, type ObjectKey, parseBucketName, parseObjectKey } from "../model/names.js";

/**
 * Log files remembered at most. A hash is needed until its digest comes, about an hour after the file (CloudTrail
 * writes a digest per hour per account and region, listing that hour's files). A busy account delivers a file per
 * region every few minutes (~200 an hour across regions); an organization trail of 100 such accounts ~20,000 an hour,
 * so 100,000 covers several hours of it. Memory: ~250 bytes an entry with a usual key (~25 MB full), and at most
 * ~1 KB with the longest key remembered (KEY_MAX); past the bound the oldest go first.
 */
export const HASHES_MAX = 100_000;

/**
 * Longest key remembered, in bytes. CloudTrail's key is a prefix of at most 200 characters (the trail's S3KeyPrefix)
 * and ~150 of its own; a longer key is not a CloudTrail log file and is not remembered (it is fetched if a digest
 * lists it).
 */
const KEY_MAX = 512;

/** Longest line of the file: the hash, a bucket (63), and a key of KEY_MAX bytes percent-encoded (3 each). */
const LINE_MAX = 64 + 1 + 63 + 1 + 3 * KEY_MAX + 1;

/** Bytes read per system call when loading. */
const CHUNK = 1024 * 1024;

const FILE = "integrity-hashes";
const ENTRY = /^([0-9a-f]{64}) ([^ ]+) ([^ ]+)$/;

export class HashStore {
  /** `bucket/key` → hex SHA-256, oldest first (a Map keeps insertion order). */
  private readonly hashes = new Map<string, string>();
  private fd = -1;
  /** Entries in the file, live or not. */
  private lines = 0;
  /** Lines skipped on load: torn, too long, or not an entry. */
  skippedOnLoad = 0;
  /**
   * Why the file stopped being written (a full disk, an I/O error): from then on the hashes are kept in memory only,
   * for a failed write must not fail the object whose events were written.
   */
  failure: string | undefined;

  private constructor(
    private readonly path: string | undefined,
    /** HASHES_MAX, smaller in tests. */
    readonly max: number,
  ) {}

  /** Memory only: forgotten at exit. */
  static memory(max = HASHES_MAX): HashStore {
    return new HashStore(undefined, max);
  }

  /** Backed by `integrity-hashes` in `dir` (the spool directory, whose lock the caller holds). */
  static open(dir: string, max = HASHES_MAX): HashStore {
    const store = new HashStore(join(dir, FILE), max);
    store.fd = openSync(store.path as string, "a+");
    try {
      store.load();
      if (store.lines > 2 * store.max) store.compact();
    } catch (error) {
      store.close();
      throw error;
    }
    return store;
  }

  get size(): number {
    return this.hashes.size;
  }

  get(bucket: BucketName, key: ObjectKey): string | undefined {
    return this.hashes.get(`${bucket}/${key}`);
  }

  /**
   * Remembers `sha256` (lowercase hex) as the hash of the file read at `bucket`/`key`. Returns true when this call's
   * write failed and turned the file off (`failure` says why), so the caller says so once.
   */
  add(bucket: BucketName, key: ObjectKey, sha256: string): boolean {
    if (Buffer.byteLength(key, "utf8") > KEY_MAX) return false;
    const id = `${bucket}/${key}`;
    if (this.hashes.get(id) === sha256) return false;
    this.remember(id, sha256);
    if (this.fd === -1) return false;
    try {
      writeSync(this.fd, `${sha256} ${bucket} ${encodeURIComponent(key)}\n`);
      if (++this.lines > 2 * this.max) this.compact();
      return false;
    } catch (error) {
      this.failure = (error as NodeJS.ErrnoException).code ?? String(error);
      this.close();
      return true;
    }
  }

  close(): void {
    if (this.fd !== -1) closeSync(this.fd);
    this.fd = -1;
  }

  private remember(id: string, sha256: string): void {
    this.hashes.delete(id); // a newer read goes to the end
    this.hashes.set(id, sha256);
    if (this.hashes.size > this.max) {
      const oldest = this.hashes.keys().next();
      if (oldest.done !== true) this.hashes.delete(oldest.value);
    }
  }

  private load(): void {
    const buffer = Buffer.allocUnsafe(CHUNK);
    let position = 0;
    let carry = "";
    /** The current line passed LINE_MAX: skipped up to its end. */
    let skipping = false;
    for (;;) {
      const read = readSync(this.fd, buffer, 0, CHUNK, position);
      if (read === 0) break;
      position += read;
      const text = carry + buffer.toString("latin1", 0, read); // the file is ASCII; latin1 never splits a character
      const parts = text.split("\n");
      carry = parts.pop() ?? "";
      for (const line of parts) {
        if (skipping) {
          skipping = false;
          this.skippedOnLoad++;
          continue;
        }
        this.lines++;
        this.take(line);
      }
      if (carry.length > LINE_MAX) {
        carry = "";
        skipping = true;
      }
    }
    // A last line without its newline was torn by a kill: ignored (its file is fetched again when needed), and ended,
    // so that the next entry starts a line of its own.
    if (carry !== "" || skipping) {
      this.skippedOnLoad++;
      writeSync(this.fd, "\n");
    }
  }

  private take(line: string): void {
    const match = line.length <= LINE_MAX ? ENTRY.exec(line) : null;
    if (match === null) {
      this.skippedOnLoad++;
      return;
    }
    const [, sha256, bucketText, encoded] = match as unknown as [string, string, string, string];
    let keyText: string;
    try {
      keyText = decodeURIComponent(encoded);
    } catch {
      this.skippedOnLoad++;
      return;
    }
    const bucket = parseBucketName(bucketText);
    const key = parseObjectKey(keyText);
    if (isInvalid(bucket) || isInvalid(key) || Buffer.byteLength(key, "utf8") > KEY_MAX) {
      this.skippedOnLoad++;
      return;
    }
    this.remember(`${bucket}/${key}`, sha256);
  }

  /** Rewrites the file with the live entries only. */
  private compact(): void {
    if (this.path === undefined) return;
    const temporary = `${this.path}.new`;
    const fd = openSync(temporary, "w");
    try {
      let batch = "";
      for (const [id, sha256] of this.hashes) {
        const slash = id.indexOf("/");
        batch += `${sha256} ${id.slice(0, slash)} ${encodeURIComponent(id.slice(slash + 1))}\n`;
        if (batch.length >= CHUNK) {
          writeSync(fd, batch);
          batch = "";
        }
      }
      if (batch !== "") writeSync(fd, batch);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(temporary, this.path);
    closeSync(this.fd);
    this.fd = openSync(this.path, "a+");
    this.lines = this.hashes.size;
  }
}
