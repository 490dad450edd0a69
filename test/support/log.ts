// Loggers for tests that run the program's parts in process: one that keeps every line, one that keeps none.
import type { LogContext, Logger } from "../../src/shared/log.js";

/** Keeps every line as `{ level, msg, ...context }`; debug lines too unless `{ debug: false }`. */
export class MemoryLog implements Logger {
  readonly lines: ({ level: string; msg: string } & LogContext)[] = [];

  constructor(private readonly options: { debug?: boolean } = {}) {}

  debug(msg: string, context?: LogContext): void {
    if (this.options.debug !== false) this.lines.push({ level: "debug", msg, ...context });
  }
  info(msg: string, context?: LogContext): void {
    this.lines.push({ level: "info", msg, ...context });
  }
  warn(msg: string, context?: LogContext): void {
    this.lines.push({ level: "warn", msg, ...context });
  }
  error(msg: string, context?: LogContext): void {
    this.lines.push({ level: "error", msg, ...context });
  }
}

/** Drops every line. */
export const QUIET_LOG: Logger = { debug() {}, info() {}, warn() {}, error() {} };
