// What the program takes from the process it runs in: argv, the environment, stdio, signals, exit, its pid and its
// resource use. Only cli/host.ts builds one (from Node's process object, the one module that names it); everything
// else is handed what it needs, so that any part can run in a test without a process of its own.
import type { Readable, Writable } from "node:stream";

export interface Host {
  readonly argv: readonly string[];
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly stdin: Readable;
  readonly stdout: Writable;
  /** Progress lines and the last word of a failed run (logs have their own file descriptor: shared/log.ts). */
  readonly stderr: { readonly isTTY: boolean; write(text: string): void };
  readonly pid: number;
  exit(code: number): never;
  /** Adds a listener for this signal (never removed: see run/shutdown.ts on why). */
  onSignal(signal: NodeJS.Signals, listener: (signal: NodeJS.Signals) => void): void;
  /** Node's own warnings go here instead of plain text on stderr. */
  onWarning(listener: (warning: Error) => void): void;
  /** A throw nobody caught: a bug. */
  onUncaughtException(listener: (error: Error) => void): void;
  /** CPU time used so far, microseconds. */
  cpuMicros(): number;
  /** Resident memory now, bytes. */
  rssBytes(): number;
  /** The most resident memory so far, bytes. */
  maxRssBytes(): number;
  /** Whether a process of this pid is alive (for a lock left behind: input/spool.ts). */
  isAlive(pid: number): boolean;
}
