// Structured logs: one JSON object per line (time, level, msg, context) to a file descriptor that is never stdout.
// fluentd v1.8+ discards the child's stderr, so operators point --log-file at a file; writes are synchronous so
// the last lines before an exit are never lost.
import { writeSync } from "node:fs";
import { jsonText } from "./json-text.js";

/**
 * The most a context value takes of a log line when it cannot be written as it is (nested too deep for JSON.stringify,
 * or not JSON at all); then it is its JSON text, cut here. A log line is for a person and a log shipper, not a copy of
 * the input.
 */
export const LOG_VALUE_MAX = 16 * 1024;

export const LEVELS = ["debug", "info", "warn", "error"] as const;
export type Level = (typeof LEVELS)[number];

export type LogContext = Record<string, unknown>;

export interface Logger {
  debug(msg: string, context?: LogContext): void;
  info(msg: string, context?: LogContext): void;
  warn(msg: string, context?: LogContext): void;
  error(msg: string, context?: LogContext): void;
}

export function isLevel(value: string): value is Level {
  return (LEVELS as readonly string[]).includes(value);
}

export class FdLogger implements Logger {
  private readonly threshold: number;

  constructor(
    private readonly fd: number,
    level: Level,
    private readonly now: () => Date = () => new Date(),
  ) {
    this.threshold = LEVELS.indexOf(level);
  }

  debug(msg: string, context?: LogContext): void {
    this.write("debug", msg, context);
  }
  info(msg: string, context?: LogContext): void {
    this.write("info", msg, context);
  }
  warn(msg: string, context?: LogContext): void {
    this.write("warn", msg, context);
  }
  error(msg: string, context?: LogContext): void {
    this.write("error", msg, context);
  }

  private write(level: Level, msg: string, context: LogContext | undefined): void {
    if (LEVELS.indexOf(level) < this.threshold) return;
    const record = { time: this.now().toISOString(), level, msg, ...context };
    let line: string;
    try {
      line = `${JSON.stringify(record)}\n`;
    } catch {
      // RangeError (nesting deeper than the stack), TypeError (a BigInt, a cycle): the values that are not plain go
      // in as their text, so the line is still written.
      line = `${JSON.stringify(Object.fromEntries(Object.entries(record).map(([key, value]) => [key, plain(value)])))}\n`;
    }
    try {
      writeSync(this.fd, line);
    } catch {
      // A log that cannot be written (a full disk, a closed stderr) must never stop the data.
    }
  }
}

/** A value JSON.stringify writes safely: scalars as they are, anything else as its (cut) JSON text. */
function plain(value: unknown): unknown {
  if (typeof value === "bigint") return value.toString();
  if (typeof value !== "object" || value === null) return value;
  return jsonText(value, LOG_VALUE_MAX, false).text;
}
