// The executable's entry: it loads the bundle (dist/cli.cjs) when the build made one, and the ES modules
// (dist/cli.js) when it could not; with neither it says so on stderr, writes nothing to stdout and exits 70.
// Each case runs a copy of bin/ and dist/ in a directory of its own, so the build the other tests use is untouched.
import { execFileSync, spawnSync } from "node:child_process";
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const FIXTURE = join(ROOT, "test/fixtures/invictus-cloudtrail");
const VERSION = (JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { version: string }).version;
const dirs: string[] = [];

afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

/** A copy of the installed program whose dist/ keeps only the files `keep` accepts. */
function install(keep: (name: string) => boolean): string {
  const dir = mkdtempSync(join(tmpdir(), "ctef-entry-"));
  dirs.push(dir);
  cpSync(join(ROOT, "bin"), join(dir, "bin"), { recursive: true });
  cpSync(join(ROOT, "package.json"), join(dir, "package.json"));
  cpSync(join(ROOT, "dist"), join(dir, "dist"), { recursive: true, filter: (src) => keep(src.split("/").pop() ?? "") });
  symlinkSync(join(ROOT, "node_modules"), join(dir, "node_modules"));
  return dir;
}

const isBundle = (name: string): boolean => /^cli(-.*)?\.cjs(\.map)?$/.test(name);

function runOneFile(dir: string): { status: number | null; stdout: string; stderr: string } {
  const file = readdirSync(FIXTURE).find((name) => name.endsWith(".json")) as string;
  const result = spawnSync(
    process.execPath,
    [join(dir, "bin/cloudtrail-exec-filter"), "--log-file", "/dev/null", "--pad-bytes", "0"],
    { input: `file://${join(FIXTURE, file)}\n`, encoding: "utf8" },
  );
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

describe("the executable's entry", () => {
  it("runs the bundle the build made", () => {
    expect(readdirSync(join(ROOT, "dist"))).toContain("cli.cjs");
    const dir = install(() => true);
    const { status, stdout } = runOneFile(dir);
    expect(status).toBe(0);
    const lines = stdout.trimEnd().split("\n");
    expect(lines.length).toBeGreaterThan(0);
    for (const line of lines) expect(JSON.parse(line)).toHaveProperty("eventTime");
  });

  it("runs the ES modules, with the same output, when there is no bundle", () => {
    const withBundle = runOneFile(install(() => true));
    const dir = install((name) => !isBundle(name));
    expect(readdirSync(join(dir, "dist")).some(isBundle)).toBe(false);
    expect(
      execFileSync(process.execPath, [join(dir, "bin/cloudtrail-exec-filter"), "--version"], { encoding: "utf8" }),
    ).toBe(`${VERSION}\n`);
    const withoutBundle = runOneFile(dir);
    expect(withoutBundle.status).toBe(0);
    expect(withoutBundle.stdout).toBe(withBundle.stdout);
  });

  it("says what is missing, on stderr only, when the program was never built", () => {
    const dir = install(() => false);
    const { status, stdout, stderr } = runOneFile(dir);
    expect(status).toBe(70);
    expect(stdout).toBe("");
    expect(stderr).toMatch(/cannot load the program .*run `npm install`/);
  });
});
