// Plays fluentd's out_exec_filter against a child: spawns the `command` string the way fluentd (Ruby's spawn) does,
// writes whole buffer chunks in single writes, and reads stdout the way fluentd's parsers do: the JSON parser behind
// blocking reads of exactly 8192 bytes (stream_buffer_size), the msgpack parser with partial reads. Then applies
// `<extract>` (tag_key, time_key with time_type float) to each record. See shared/reference/fluentd-exec-filter.md.
import { type ChildProcessWithoutNullStreams, spawn } from "node:child_process";
import type { Readable } from "node:stream";
import { decodeMultiStream } from "@msgpack/msgpack";

/**
 * Ruby's `spawn(string)` runs a command string through `/bin/sh -c` when it holds one of these, else splits it on
 * spaces and executes it directly (it also goes to the shell for a leading `NAME=value` or a shell reserved word;
 * our commands have neither).
 */
const SHELL_META = /[*?{}[\]<>()~&|\\$;'`"\n#]/;

export function usesShell(command: string): boolean {
  return SHELL_META.test(command);
}

/** Spawns `command` as fluentd does, stdin and stdout as pipes; stderr is kept for diagnosis (fluentd discards it). */
export function spawnCommand(command: string, env: Record<string, string> = {}): ChildProcessWithoutNullStreams {
  const options = { stdio: ["pipe", "pipe", "pipe"] as ["pipe", "pipe", "pipe"], env: { ...process.env, ...env } };
  if (usesShell(command)) return spawn("/bin/sh", ["-c", command], options);
  const [file, ...args] = command.trim().split(/ +/);
  return spawn(file as string, args, options);
}

export interface Received {
  record: Record<string, unknown>;
  /** ms since the child was spawned when the parser saw the record. */
  at: number;
}

/** What fluentd's reader saw; `stopped` is set when it would have stopped reading this child for good. */
interface ReaderState {
  received: Received[];
  stopped: string | undefined;
  ended: boolean;
  /** Bytes that arrived on the pipe (whether or not the reader has delivered them yet). */
  bytesArrived: number;
}

type Waiter = { test: () => boolean; resolve: (ok: boolean) => void };

abstract class Reader implements ReaderState {
  received: Received[] = [];
  stopped: string | undefined;
  ended = false;
  bytesArrived = 0;
  /** EOF came in the middle of a value (the child died mid-write). */
  incompleteAtEof = false;
  private waiters: Waiter[] = [];

  constructor(protected readonly started: number) {}

  protected deliver(value: unknown): void {
    if (this.stopped !== undefined) return;
    if (typeof value !== "object" || value === null || Array.isArray(value)) {
      this.stopped = `a value that is not an object: ${JSON.stringify(value)?.slice(0, 200)}`;
      return;
    }
    this.received.push({ record: value as Record<string, unknown>, at: Date.now() - this.started });
    this.check();
  }

  protected check(): void {
    this.waiters = this.waiters.filter((w) => {
      if (!w.test()) return true;
      w.resolve(true);
      return false;
    });
  }

  /** Resolves true as soon as `test` holds, false after `timeoutMs` (or when the stream ended without it). */
  waitFor(test: () => boolean, timeoutMs: number): Promise<boolean> {
    if (test()) return Promise.resolve(true);
    return new Promise((resolve) => {
      const waiter: Waiter = { test, resolve };
      this.waiters.push(waiter);
      setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        resolve(test());
      }, timeoutMs).unref();
    });
  }

  protected finish(): void {
    this.ended = true;
    for (const w of this.waiters.splice(0)) w.resolve(w.test());
  }

  get records(): Record<string, unknown>[] {
    return this.received.map((r) => r.record);
  }
}

/**
 * fluentd's `<parse> @type json` over the pipe: `read(8192)` blocks until 8192 bytes have come (or EOF), and only
 * then does the streaming parser see them. A value that does not parse, or is not an object, stops the reader.
 */
export class BlockJsonReader extends Reader {
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  /** Bytes handed to the parser but not yet a whole value. */
  private value = Buffer.alloc(0);
  private scanAt = 0;
  private depth = 0;
  private inString = false;
  private escaped = false;

  constructor(
    stream: Readable,
    started: number,
    readonly blockSize = 8192,
  ) {
    super(started);
    stream.on("data", (chunk: Buffer) => {
      this.bytesArrived += chunk.length;
      this.pending.push(chunk);
      this.pendingBytes += chunk.length;
      if (this.pendingBytes < blockSize) return;
      let all = Buffer.concat(this.pending);
      while (all.length >= blockSize) {
        this.parse(all.subarray(0, blockSize));
        all = all.subarray(blockSize);
      }
      this.pending = all.length > 0 ? [all] : [];
      this.pendingBytes = all.length;
    });
    stream.on("end", () => {
      if (this.pendingBytes > 0) this.parse(Buffer.concat(this.pending)); // the short read at EOF
      this.incompleteAtEof = this.value.length > 0 && this.stopped === undefined;
      this.finish();
    });
  }

  private parse(block: Buffer): void {
    if (this.stopped !== undefined) return;
    this.value = this.value.length === 0 ? Buffer.from(block) : Buffer.concat([this.value, block]);
    let i = this.scanAt;
    let start = 0;
    const b = this.value;
    for (; i < b.length; i++) {
      const c = b[i] as number;
      if (this.depth === 0) {
        if (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) {
          start = i + 1;
          continue;
        }
        if (c !== 0x7b && c !== 0x5b) {
          this.stopped = `unexpected byte 0x${c.toString(16)} between values`;
          return;
        }
        start = i;
        this.depth = 1;
        continue;
      }
      if (this.inString) {
        if (this.escaped) this.escaped = false;
        else if (c === 0x5c) this.escaped = true;
        else if (c === 0x22) this.inString = false;
        continue;
      }
      if (c === 0x22) this.inString = true;
      else if (c === 0x7b || c === 0x5b) this.depth++;
      else if (c === 0x7d || c === 0x5d) {
        if (--this.depth === 0) {
          let parsed: unknown;
          try {
            parsed = JSON.parse(b.toString("utf8", start, i + 1));
          } catch (error) {
            this.stopped = `invalid JSON: ${(error as Error).message}`;
            return;
          }
          this.deliver(parsed);
          if (this.stopped !== undefined) return;
          start = i + 1;
        }
      }
    }
    this.value = this.depth === 0 ? Buffer.alloc(0) : b.subarray(start);
    this.scanAt = this.depth === 0 ? 0 : i - start;
  }
}

/** fluentd's `<parse> @type msgpack`: every partial read goes to the unpacker at once; each top-level map is a record. */
export class MsgpackReader extends Reader {
  constructor(stream: Readable, started: number) {
    super(started);
    const chunks: Buffer[] = [];
    let wake: (() => void) | undefined;
    let ended = false;
    stream.on("data", (chunk: Buffer) => {
      this.bytesArrived += chunk.length;
      chunks.push(chunk);
      wake?.();
    });
    stream.on("end", () => {
      ended = true;
      wake?.();
    });
    async function* reads(): AsyncGenerator<Buffer> {
      for (;;) {
        const chunk = chunks.shift();
        if (chunk !== undefined) {
          yield chunk;
          continue;
        }
        if (ended) return;
        await new Promise<void>((resolve) => {
          wake = resolve;
        });
      }
    }
    void (async () => {
      try {
        for await (const value of decodeMultiStream(reads())) this.deliver(value);
      } catch (error) {
        const message = (error as Error).message;
        if (ended && /Insufficient data/i.test(message)) this.incompleteAtEof = true;
        else this.stopped = `not msgpack: ${message}`;
      }
      this.finish();
    })();
  }
}

export interface Extract {
  tagKey: string;
  timeKey: string;
  /** `tag` of the exec_filter: records without tag_key get it. */
  defaultTag: string;
}

export interface Routed {
  tag: string;
  /** fluentd's event time, in epoch seconds. */
  time: number;
  /** time_key was present (else the time is "now"). */
  timeFromRecord: boolean;
  record: Record<string, unknown>;
}

/**
 * fluentd's `<extract>` for exec_filter output: tag_key's value becomes the tag and is removed from the record (else
 * the `tag` parameter); time_key (time_type float) becomes the event time and is removed (else the time is now).
 */
export function extract(received: Record<string, unknown>, options: Extract): Routed {
  const record = { ...received };
  let tag = options.defaultTag;
  if (options.tagKey in record) {
    tag = String(record[options.tagKey]);
    delete record[options.tagKey];
  }
  let time = Date.now() / 1000;
  let timeFromRecord = false;
  if (options.timeKey in record) {
    const value = record[options.timeKey];
    delete record[options.timeKey];
    const seconds = typeof value === "number" ? value : Number.parseFloat(String(value));
    if (!Number.isFinite(seconds)) throw new Error(`time_key ${options.timeKey} is not a float: ${String(value)}`);
    time = seconds;
    timeFromRecord = true;
  }
  return { tag, time, timeFromRecord, record };
}

export interface ExecFilterOptions {
  /** How fluentd parses the child's stdout (`<parse> @type`). */
  parse?: "json" | "msgpack";
  env?: Record<string, string>;
}

/** One child as fluentd runs it. */
export class ExecFilterChild {
  readonly child: ChildProcessWithoutNullStreams;
  readonly reader: BlockJsonReader | MsgpackReader;
  readonly started = Date.now();
  stderr = "";
  /** Resolves with the exit code and signal once the process has exited and its pipes are closed. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; ms: number }>;

  constructor(
    readonly command: string,
    options: ExecFilterOptions = {},
  ) {
    this.child = spawnCommand(command, options.env);
    this.child.stdin.on("error", () => {}); // EPIPE when the child is gone: fluentd resends the chunk
    this.child.stderr.on("data", (chunk: Buffer) => {
      this.stderr += chunk.toString();
    });
    this.reader =
      options.parse === "msgpack"
        ? new MsgpackReader(this.child.stdout, this.started)
        : new BlockJsonReader(this.child.stdout, this.started);
    this.exited = new Promise((resolve) => {
      this.child.on("close", (code, signal) => resolve({ code, signal, ms: Date.now() - this.started }));
    });
  }

  /** Writes one buffer chunk with a single write, as fluentd does; resolves once the pipe has taken it. */
  sendChunk(chunk: Buffer | string): Promise<void> {
    return new Promise((resolve) => {
      this.child.stdin.write(chunk, () => resolve());
    });
  }

  /**
   * fluentd v1's shutdown: close the child's stdin, send SIGTERM at once, wait up to 10 s (it sends no SIGKILL).
   * Resolves with how the child ended, or `timedOut` (the child is then killed, so the test does not hang).
   */
  async shutdown(
    graceMs = 10_000,
  ): Promise<{ code: number | null; signal: NodeJS.Signals | null; ms: number; timedOut: boolean }> {
    const asked = Date.now();
    this.child.stdin.end();
    this.child.kill("SIGTERM");
    const timeout = new Promise<"timeout">((resolve) => setTimeout(() => resolve("timeout"), graceMs).unref());
    const result = await Promise.race([this.exited, timeout]);
    if (result === "timeout") {
      this.child.kill("SIGKILL");
      const ended = await this.exited;
      return { ...ended, ms: Date.now() - asked, timedOut: true };
    }
    return { ...result, ms: Date.now() - asked, timedOut: false };
  }
}
