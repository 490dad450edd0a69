// The padding after each burst is for a reader that takes stdout in fixed-size blocking reads (fluentd, through a
// pipe): by default it is written when stdout is a pipe or a socket, and not into a file or a terminal. An explicit
// --pad-bytes is obeyed wherever stdout goes.
import { spawnSync } from "node:child_process";
import { closeSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { BIN } from "../support/cli.js";
import { FIXTURES } from "../support/trail.js";

const fixture = join(FIXTURES, readdirSync(FIXTURES).find((name) => name.endsWith(".json")) as string);
const INPUT = `file://${fixture}\n`;
const dir = mkdtempSync(join(tmpdir(), "ctef-pad-"));

afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Where the output ends: the whitespace after its last line (the padding), in bytes. */
function padding(output: Buffer): number {
  const text = output.toString("utf8");
  expect(text.trimEnd().endsWith("}")).toBe(true);
  return text.length - text.trimEnd().length - 1; // the last line's own newline is not padding
}

/** Runs the CLI with stdout into a regular file; returns what the file holds. */
function toFile(args: string[]): Buffer {
  const file = join(dir, `out-${args.join("_") || "default"}.ndjson`);
  const fd = openSync(file, "w");
  try {
    const run = spawnSync(BIN, ["--log-file", "/dev/null", ...args], { input: INPUT, stdio: ["pipe", fd, "pipe"] });
    expect(run.status).toBe(0);
  } finally {
    closeSync(fd);
  }
  return readFileSync(file);
}

/** Stdout a socket pair: what Node's spawn makes for "pipe". */
function toSocket(args: string[]): Buffer {
  const run = spawnSync(BIN, ["--log-file", "/dev/null", ...args], { input: INPUT });
  expect(run.status).toBe(0);
  return run.stdout;
}

/** Stdout a pipe (FIFO), as fluentd's and the shell's `|` are. */
function toFifo(args: string[]): Buffer {
  const command = `"$0" --log-file /dev/null "$@" | cat`;
  const run = spawnSync("/bin/sh", ["-c", command, BIN, ...args], { input: INPUT });
  expect(run.status).toBe(0);
  return run.stdout;
}

describe("padding", () => {
  it("is written by default when stdout is a pipe (fluentd, `| wc -l`)", () => {
    expect(padding(toFifo([]))).toBe(8192);
  });

  it("is written by default when stdout is a socket", () => {
    expect(padding(toSocket([]))).toBe(8192);
  });

  it("is not written by default into a file (> events.ndjson)", () => {
    expect(padding(toFile([]))).toBe(0);
  });

  it("an explicit --pad-bytes pads a file too", () => {
    expect(padding(toFile(["--pad-bytes", "100"]))).toBe(100);
  });

  it("--pad-bytes 0 turns it off on a pipe", () => {
    expect(padding(toFifo(["--pad-bytes", "0"]))).toBe(0);
  });

  it("the lines are the same either way", () => {
    expect(toFile([]).toString().trimEnd()).toBe(toFifo([]).toString().trimEnd());
  });
});
