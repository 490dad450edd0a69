// The exit codes are a contract (README "Exit codes"): one table here, row for row, run against the built executable.
import { spawnSync } from "node:child_process";
import { cpSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { BIN } from "./support/cli.js";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const FIXTURES = join(ROOT, "test/fixtures/invictus-cloudtrail");
const fixture = join(FIXTURES, readdirSync(FIXTURES).find((name) => name.endsWith(".json")) as string);
const dirs: string[] = [];

afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

function run(args: string[], input = "", bin = BIN): { status: number | null; stdout: string; stderr: string } {
  const result = spawnSync(bin, args, { input, encoding: "utf8", env: { ...process.env, COLUMNS: "80" } });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

describe("exit code 0: done", () => {
  it.each([
    ["input read to its end", ["--log-file", "/dev/null"], `file://${fixture}\nnot json\n`],
    ["--help", ["--help"], ""],
    ["--version", ["--version"], ""],
    ["import --help", ["import", "--help"], ""],
    ["import of a directory", ["import", `file://${FIXTURES}`, "--log-file", "/dev/null"], ""],
  ])("%s", (_, args, input) => {
    const { status, stderr } = run(args, input);
    expect(stderr).toBe("");
    expect(status).toBe(0);
  });
});

describe("exit code 1: a runtime failure stopped the program", () => {
  it("the import's listing failed (message on stderr)", () => {
    const { status, stderr } = run(["import", "file:///nonexistent/directory", "--log-file", "/dev/null"]);
    expect(status).toBe(1);
    expect(stderr).toMatch(/^error: .*nonexistent/);
  });
});

describe("exit code 2: usage or configuration error, before any input is read", () => {
  it.each([
    // commander's own (its default exit code is 1)
    ["an unknown option", ["--bogus"], /unknown option '--bogus'/],
    ["an option without its value", ["--concurrency"], /argument missing/],
    ["a value out of range", ["--concurrency", "0"], /expected a whole number/],
    ["a value not among the choices", ["--log-level", "loud"], /Allowed choices/],
    ["an argument the filter does not take", ["extra"], /too many arguments/],
    ["import without its source", ["import"], /missing required argument 'source'/],
    ["an unknown option of import", ["import", "file:///tmp", "--bogus"], /unknown option '--bogus'/],
    // the program's own
    ["a log file that cannot be opened", ["--log-file", "/nonexistent/filter.log"], /cannot open --log-file/],
    ["an unusable source for import", ["import", "ftp://bucket"], /^error: /],
    [
      "--since after --until",
      ["import", "s3://trail-bucket", "--since", "2023-02-02", "--until", "2023-01-01"],
      /--since/,
    ],
    ["sqs without --queue-url", ["sqs"], /required option '--queue-url <url>' not specified/],
    [
      "an --output that is neither stdout nor forward",
      ["sqs", "--queue-url", "q", "--output", "http://x:1"],
      /--output/,
    ],
    ["a forward URL with a path", ["import", "file:///tmp", "--output", "forward://x:1/p"], /--output/],
    [
      "a long poll longer than the request timeout",
      ["sqs", "--queue-url", "q", "--request-timeout", "10"],
      /--wait-time/,
    ],
    [
      "an unreadable --forward-ca",
      ["sqs", "--queue-url", "q", "--output", "forwards://x:1", "--forward-ca", "/nonexistent"],
      /--forward-ca/,
    ],
  ])("%s", (_, args, message) => {
    const { status, stdout, stderr } = run(args, `file://${fixture}\n`);
    expect(stderr).toMatch(message);
    expect(stdout).toBe("");
    expect(status).toBe(2);
  });
});

describe("exit code 70: the program is missing its build", () => {
  it("bin/ without dist/ says so on stderr", () => {
    const dir = mkdtempSync(join(tmpdir(), "ctef-exit-"));
    dirs.push(dir);
    cpSync(join(ROOT, "bin"), join(dir, "bin"), { recursive: true });
    cpSync(join(ROOT, "package.json"), join(dir, "package.json"));
    const { status, stdout, stderr } = run(["--version"], "", join(dir, "bin/cloudtrail-exec-filter"));
    expect(stdout).toBe("");
    expect(stderr).toMatch(/cannot load the program .*run `npm install`/);
    expect(status).toBe(70);
  });
});
