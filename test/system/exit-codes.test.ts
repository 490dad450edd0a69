// The exit codes are a contract (README "Exit codes"): one table here, row for row, run against the built executable.
import { spawn, spawnSync } from "node:child_process";
import { cpSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { BIN } from "../support/cli.js";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const FIXTURES = join(ROOT, "test/fixtures/invictus-cloudtrail");
const fixture = join(FIXTURES, readdirSync(FIXTURES).find((name) => name.endsWith(".json")) as string);
const dirs: string[] = [];

afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

/** The AWS variables the program reads for its settings: each test sets its own. */
const AWS_SETTINGS = /^AWS_(REGION|DEFAULT_REGION|ENDPOINT_URL.*)$/;
const baseEnv = Object.fromEntries(Object.entries(process.env).filter(([name]) => !AWS_SETTINGS.test(name)));

function run(
  args: string[],
  input = "",
  bin = BIN,
  env: Record<string, string> = {},
): { status: number | null; stdout: string; stderr: string } {
  const result = spawnSync(bin, args, {
    input,
    encoding: "utf8",
    env: { ...baseEnv, COLUMNS: "80", ...env },
    timeout: 30_000,
  });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

describe("exit code 0: done", () => {
  it.each([
    ["input read to its end", ["--log-file", "/dev/null"], `file://${fixture}\nnot json\n`],
    ["--help", ["--help"], ""],
    ["--version", ["--version"], ""],
    ["import --help", ["import", "--help"], ""],
    ["verify --help", ["verify", "--help"], ""],
    ["import of a directory", ["import", `file://${FIXTURES}`, "--log-file", "/dev/null"], ""],
    [
      "--no-timestamp with --time-field @timestamp",
      ["--no-timestamp", "--time-field", "@timestamp", "--log-file", "/dev/null"],
      "",
    ],
    [
      "--pad-bytes 0 with msgpack output",
      ["--pad-bytes", "0", "--output-format", "msgpack", "--log-file", "/dev/null"],
      "",
    ],
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
    // The filter takes no argument: a word is a command, unknown, with the close one named (issue 22).
    [
      "an argument the filter does not take",
      ["extra"],
      /unknown command "extra"\n\(the commands: import, sqs, verify\)/,
    ],
    ["a mistyped command", ["improt"], /unknown command "improt"\n\(Did you mean import\?\)/],
    ["a mistyped command after options", ["--log-level", "warn", "sqz"], /Did you mean sqs\?/],
    ["import without its source", ["import"], /missing required argument 'source'/],
    ["verify without its source", ["verify"], /missing required argument 'source'/],
    ["verify of a source that is not s3:// or file://", ["verify", "ftp://bucket"], /^error: expected s3:/],
    ["an unknown option of import", ["import", "file:///tmp", "--bogus"], /unknown option '--bogus'/],
    // the program's own
    ["a log file that cannot be opened", ["--log-file", "/nonexistent/filter.log"], /cannot open --log-file/],
    ["an unusable source for import", ["import", "ftp://bucket"], /^error: /],
    ["--endpoint that is not a URL", ["--endpoint", "notaurl"], /option '--endpoint <url>' .*"notaurl" is not a URL/],
    [
      "--endpoint that is not http(s)",
      ["--endpoint", "ftp://host"],
      /'--endpoint <url>' .*not an http:\/\/ or https:\/\//,
    ],
    ["an empty --region", ["--region", ""], /option '--region <region>' .* is not an AWS region name/],
    [
      "a --region that is no region",
      ["--region", "us_east_1"],
      /'--region <region>' .*"us_east_1" is not an AWS region/,
    ],
    ["--request-timeout 0", ["--request-timeout", "0"], /'--request-timeout <seconds>' .*> 0/],
    ["an empty --deadletter-tag", ["--deadletter-tag", ""], /'--deadletter-tag <tag>' .*non-empty/],
    [
      "--visibility-timeout without --delete-sqs-messages",
      ["--visibility-timeout", "60"],
      /--visibility-timeout does nothing without --delete-sqs-messages/,
    ],
    [
      "--pad-bytes with msgpack output",
      ["--pad-bytes", "8192", "--output-format", "msgpack"],
      /--pad-bytes does nothing/,
    ],
    ["--time-field @timestamp", ["--time-field", "@timestamp"], /--time-field names the field "@timestamp"/],
    [
      "two options naming one field",
      ["--time-field", "t", "--source-field", "t"],
      /--source-field names the field "t"/,
    ],
    [
      "a filter option given to import",
      ["--spool-dir", "/tmp/s", "import", "file:///tmp"],
      /--spool-dir is an option of the filter/,
    ],
    ["a --spool-dir under a file", ["--spool-dir", `${fixture}/spool`], /cannot use --spool-dir/],
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
      [
        "sqs",
        "--queue-url",
        "https://sqs.us-east-1.amazonaws.com/123456789012/q",
        "--output",
        "forwards://x:1",
        "--forward-ca",
        "/nonexistent",
      ],
      /--forward-ca/,
    ],
    // Polled for ever, each receive failing, before issue 22.
    ["sqs --queue-url that is not a URL", ["sqs", "--queue-url", "foo"], /--queue-url expects a queue URL/],
    ["sqs --queue-url ''", ["sqs", "--queue-url", ""], /--queue-url expects a queue URL/],
    [
      "sqs --queue-url without a queue",
      ["sqs", "--queue-url", "https://sqs.us-east-1.amazonaws.com/"],
      /--queue-url expects a queue URL/,
    ],
  ])("%s", (_, args, message) => {
    const { status, stdout, stderr } = run(args, `file://${fixture}\n`);
    expect(stderr).toMatch(message);
    expect(stdout).toBe("");
    expect(status).toBe(2);
  });
});

describe("exit code 2: AWS settings from the environment that are not ones, named", () => {
  it.each([
    [
      "AWS_REGION",
      { AWS_REGION: "x@127.0.0.1" },
      /the environment variable AWS_REGION "x@127.0.0.1" is not an AWS region/,
    ],
    ["AWS_DEFAULT_REGION", { AWS_DEFAULT_REGION: "bogus" }, /the environment variable AWS_DEFAULT_REGION "bogus"/],
    ["AWS_ENDPOINT_URL_S3", { AWS_ENDPOINT_URL_S3: "notaurl" }, /AWS_ENDPOINT_URL_S3 "notaurl" is not a URL/],
    ["AWS_ENDPOINT_URL", { AWS_ENDPOINT_URL: "ftp://host" }, /AWS_ENDPOINT_URL "ftp:\/\/host" is not an http/],
    ["AWS_ENDPOINT_URL_SQS", { AWS_ENDPOINT_URL_SQS: "host:9324" }, /AWS_ENDPOINT_URL_SQS "host:9324"/],
  ])("%s", (_, env, message) => {
    const { status, stdout, stderr } = run([], `file://${fixture}\n`, BIN, env);
    expect(stderr).toMatch(message);
    expect(stdout).toBe("");
    expect(status).toBe(2);
  });

  it("an empty variable counts as unset; with --region, AWS_REGION is not read", () => {
    const input = `file://${fixture}\n`;
    expect(run(["--log-file", "/dev/null"], input, BIN, { AWS_REGION: "" }).status).toBe(0);
    expect(run(["--log-file", "/dev/null", "--region", "eu-west-1"], input, BIN, { AWS_REGION: "bogus" }).status).toBe(
      0,
    );
  });
});

describe("exit code 2 at once: a --spool-dir that cannot be created", () => {
  // Node's recursive mkdir spins forever on /proc (mkdir answers ENOENT under an existing parent), deaf to SIGTERM.
  it("under /proc: answered within seconds, not a spin", () => {
    const started = Date.now();
    const { status, stderr } = run(["--spool-dir", "/proc/cloudtrail-exec-filter/spool"], "");
    expect(stderr).toMatch(/cannot use --spool-dir \/proc\/cloudtrail-exec-filter\/spool/);
    expect(status).toBe(2);
    expect(Date.now() - started).toBeLessThan(10_000);
  });
});

describe("exit code 3: verify found a problem", () => {
  // The verdicts themselves: test/system/verify.test.ts (a trail signed as CloudTrail signs it, tampered with case by case).
  it("a log file that no digest vouches for: exit 3, its line on stdout", async () => {
    const { startS3, s3Env } = await import("../support/s3.js");
    const { buildTrail, signingKey, startPublicKeyServer } = await import("../support/cloudtrail.js");
    const s3 = await startS3();
    const unpublished = signingKey(new Date("2024-01-01T00:00:00Z"), new Date("2025-01-01T00:00:00Z"));
    const keys = await startPublicKeyServer(() => []);
    try {
      await s3.createBucket("exit-three");
      const trail = buildTrail({
        bucket: "exit-three",
        account: "111122223333",
        region: "us-east-1",
        trail: "t",
        start: new Date("2024-03-10T10:00:00Z"),
        hours: 1,
        filesPerHour: 1,
        key: unpublished,
      });
      for (const object of trail.objects) {
        await s3.putObject("exit-three", object.key, object.body);
      }
      const env = { ...s3Env(s3.endpoint), AWS_ENDPOINT_URL_CLOUDTRAIL: keys.endpoint };
      const result = await new Promise<{ status: number | null; stdout: string }>((resolve) => {
        const child = spawn(BIN, ["verify", "s3://exit-three", "--log-file", "/dev/null"], {
          env: { ...baseEnv, ...env },
        });
        let stdout = "";
        child.stdout.on("data", (chunk: Buffer) => {
          stdout += chunk.toString();
        });
        child.on("close", (status) => resolve({ status, stdout }));
      });
      expect(result.stdout).toMatch(/"status":"invalid"/);
      expect(result.status).toBe(3);
    } finally {
      await s3.close();
      await keys.close();
    }
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
