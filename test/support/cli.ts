// Spawns the built CLI the way fluentd's exec_filter does: a child process with stdin and stdout as pipes.
import { type ChildProcessWithoutNullStreams, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

export const BIN = fileURLToPath(new URL("../../bin/cloudtrail-exec-filter", import.meta.url));

export interface CliRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: Buffer;
  stderr: string;
  /** The JSON log lines (from --log-file), parsed. */
  log: Record<string, unknown>[];
}

export interface Spawned {
  child: ChildProcessWithoutNullStreams;
  stdout: Buffer[];
  /** Resolves when the process has exited and its pipes are closed. */
  done: Promise<CliRun>;
  /** The JSON log lines written so far (while it runs; `done` has them all). */
  log(): Record<string, unknown>[];
  /** The complete stdout lines written so far, as parseOutput reads them (a line being written is left out). */
  output(): Record<string, unknown>[];
}

/** The complete JSON lines of a text that may be mid-write: a last line without its newline is left out. */
export function jsonLines(text: string): Record<string, unknown>[] {
  return text
    .slice(0, text.lastIndexOf("\n") + 1)
    .split("\n")
    .filter((line) => line !== "")
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}

function readLog(logFile: string): Record<string, unknown>[] {
  let text: string;
  try {
    text = readFileSync(logFile, "utf8");
  } catch {
    return []; // no log file: the run failed before opening it
  }
  return jsonLines(text);
}

/** Starts the CLI with a log file of its own; `env` is added to the test's environment. */
export function startCli(args: string[], env: Record<string, string> = {}): Spawned {
  const dir = mkdtempSync(join(tmpdir(), "ctef-cli-"));
  const logFile = join(dir, "filter.log");
  const child = spawn(BIN, ["--log-file", logFile, ...args], {
    stdio: ["pipe", "pipe", "pipe"],
    env: { ...process.env, AWS_EC2_METADATA_DISABLED: "true", ...env },
  });
  const stdout: Buffer[] = [];
  let stderr = "";
  child.stdout.on("data", (chunk: Buffer) => stdout.push(chunk));
  child.stderr.on("data", (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  child.stdin.on("error", () => {}); // EPIPE when the child exits before reading everything
  const done = new Promise<CliRun>((resolve) => {
    child.on("close", (code, signal) => {
      const log = readLog(logFile);
      rmSync(dir, { recursive: true, force: true });
      resolve({ code, signal, stdout: Buffer.concat(stdout), stderr, log });
    });
  });
  return { child, stdout, done, log: () => readLog(logFile), output: () => completeLines(Buffer.concat(stdout)) };
}

/** Runs the CLI on `input` (written in one piece, then stdin is closed) and waits for it to exit. */
export async function runCli(
  args: string[],
  input: string | Buffer,
  env: Record<string, string> = {},
): Promise<CliRun> {
  const spawned = startCli(args, env);
  spawned.child.stdin.end(input);
  return spawned.done;
}

/**
 * Splits stdout into records, asserting the protocol: every non-blank line is one complete JSON object, and the
 * output ends with a newline (or whitespace padding).
 */
export function parseOutput(stdout: Buffer): Record<string, unknown>[] {
  const text = stdout.toString("utf8");
  if (text.trim() !== "" && !/\n\s*$/.test(text)) throw new Error("stdout does not end with a newline");
  const records: Record<string, unknown>[] = [];
  for (const line of text.split("\n")) {
    if (line.trim() === "") continue;
    const value: unknown = JSON.parse(line);
    if (typeof value !== "object" || value === null || Array.isArray(value)) {
      throw new Error(`stdout line is not a JSON object: ${line.slice(0, 200)}`);
    }
    records.push(value as Record<string, unknown>);
  }
  return records;
}

/** The run's `summary` log line. */
export const summaryOf = (run: CliRun): Record<string, unknown> | undefined =>
  run.log.find((line) => line.msg === "summary");

/** parseOutput of the complete lines of an output that may have been cut mid-line (a killed process). */
export function completeLines(stdout: Buffer): Record<string, unknown>[] {
  const text = stdout.toString("utf8");
  return parseOutput(Buffer.from(text.slice(0, text.lastIndexOf("\n") + 1)));
}

export const events = (records: Record<string, unknown>[]) => records.filter((r) => r._tag === undefined);
export const deadLetters = (records: Record<string, unknown>[]) => records.filter((r) => r._tag !== undefined);
