// The install paths of README "Install", run as a user runs them: a clone (the files git tracks, nothing built)
// installed with `npm ci --omit=dev`, which must build it; that build packed with `npm pack` (its run-time
// dependencies bundled in); the tarball installed globally into an empty prefix, and into a directory without the
// optional build tools, offline and with an empty npm cache (a host that reaches no registry). Each installed
// executable must say its version, have the lockfile's versions of its dependencies, and turn a file:// line into the
// same events as this checkout's.
// npm works offline first (--prefer-offline): after this checkout's `npm ci` the cache holds every package.
import { execFileSync } from "node:child_process";
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BIN } from "../support/cli.js";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const FIXTURES = join(ROOT, "test/fixtures/invictus-cloudtrail");
const fixture = join(FIXTURES, readdirSync(FIXTURES).find((name) => name.endsWith(".json")) as string);
const { name, version } = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as {
  name: string;
  version: string;
};
const NPM_FLAGS = ["--prefer-offline", "--no-audit", "--no-fund", "--loglevel", "error"];

/** The environment for npm and the installed programs: `npm test`'s own npm_* variables (its prefix, say) removed. */
const env = Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.toLowerCase().startsWith("npm_")));

/** The files a clone has: those git tracks (and new ones it would), as they are in this checkout. */
function trackedFiles(): string[] | undefined {
  try {
    const out = execFileSync("git", ["ls-files", "-z", "--cached", "--others", "--exclude-standard"], {
      cwd: ROOT,
      encoding: "utf8",
      stdio: ["ignore", "pipe", "ignore"],
    });
    return out.split("\0").filter((file) => file !== "" && existsSync(join(ROOT, file)));
  } catch {
    return undefined;
  }
}

const files = trackedFiles();
if (files === undefined) console.warn("test/contract/install.test.ts skipped: this checkout is not a git work tree");

function npm(cwd: string, args: string[]): string {
  return execFileSync("npm", [...args, ...NPM_FLAGS], {
    cwd,
    env,
    encoding: "utf8",
    stdio: ["ignore", "pipe", "pipe"],
  });
}

/** What an executable writes for one file:// line (without padding, so the bytes compare). */
function eventsFrom(bin: string): string {
  return execFileSync(bin, ["--log-file", "/dev/null", "--pad-bytes", "0"], {
    env,
    input: `file://${fixture}\n`,
    encoding: "utf8",
  });
}

/** The run-time packages the lockfile has (path under the package root → version). */
function lockedRuntime(): Map<string, string> {
  const lock = JSON.parse(readFileSync(join(ROOT, "package-lock.json"), "utf8")) as {
    packages: Record<string, { version?: string; dev?: boolean; optional?: boolean; devOptional?: boolean }>;
  };
  const locked = new Map<string, string>();
  for (const [path, entry] of Object.entries(lock.packages)) {
    if (path === "" || entry.dev || entry.optional || entry.devOptional || entry.version === undefined) continue;
    locked.set(path, entry.version);
  }
  return locked;
}

/**
 * Every locked run-time package is installed in the package's own node_modules, at its locked version: the tarball's
 * installs take the bundled packages, not whatever package.json's ranges resolve to on the day (after January 2027,
 * SDK releases that need Node 22).
 */
function expectLockedVersions(packageRoot: string): void {
  const locked = lockedRuntime();
  expect(locked.get("node_modules/@aws-sdk/client-s3")).toBeDefined();
  for (const [path, version] of locked) {
    const manifest = join(packageRoot, path, "package.json");
    expect(existsSync(manifest), `${path} installed`).toBe(true);
    expect((JSON.parse(readFileSync(manifest, "utf8")) as { version: string }).version, path).toBe(version);
  }
}

describe.skipIf(files === undefined)("installing", () => {
  let work: string;
  let clone: string;
  let tarball: string;
  let expected: string;

  beforeAll(() => {
    expected = eventsFrom(BIN);
    work = mkdtempSync(join(tmpdir(), "ctef-install-"));
    clone = join(work, "clone");
    for (const file of files ?? []) {
      mkdirSync(dirname(join(clone, file)), { recursive: true });
      cpSync(join(ROOT, file), join(clone, file));
    }
  });

  afterAll(() => {
    if (work !== undefined) rmSync(work, { recursive: true, force: true });
  });

  it("a clone: `npm ci --omit=dev` builds it, and its bin runs", () => {
    expect(existsSync(join(clone, "dist"))).toBe(false);
    npm(clone, ["ci", "--omit=dev"]);
    expect(existsSync(join(clone, "node_modules/vitest"))).toBe(false); // no dev dependency
    expect(existsSync(join(clone, "dist/cli.cjs"))).toBe(true); // the bundle too: rolldown is an optional dependency
    const bin = join(clone, "bin/cloudtrail-exec-filter");
    expect(execFileSync(bin, ["--version"], { env, encoding: "utf8" })).toBe(`${version}\n`);
    expect(eventsFrom(bin)).toBe(expected);
  }, 300_000);

  it("npm pack: bin/, dist/, README and LICENSE, the run-time dependencies; no sources, maps or executable", () => {
    expect(existsSync(join(clone, "dist/cli.cjs")), "needs the clone's build").toBe(true);
    // --ignore-scripts: the clone was built by its install (npm pack would run `prepare`, the build, again).
    const [packed] = JSON.parse(npm(clone, ["pack", "--json", "--ignore-scripts", "--pack-destination", work])) as {
      filename: string;
      files: { path: string }[];
      bundled: string[];
    }[];
    tarball = join(work, packed?.filename as string);
    const paths = (packed?.files ?? []).map((file) => file.path);
    expect(paths).toEqual(
      expect.arrayContaining([
        "package.json",
        "README.md",
        "LICENSE",
        "bin/cloudtrail-exec-filter",
        "bin/package.json",
        "dist/cli.cjs",
        "dist/cli.js",
        "dist/scan-worker.js",
      ]),
    );
    expect(
      paths.filter((path) => !/^(bin|dist|node_modules)\/|^(package\.json|README\.md|LICENSE)$/.test(path)),
    ).toEqual([]);
    // Bundled: the run-time dependencies and what they need, never a build or test tool.
    const bundled = new Set(packed?.bundled);
    // (Top-level ones: a nested one comes inside its parent.)
    for (const path of lockedRuntime().keys()) {
      const name = path.slice("node_modules/".length);
      if (!name.includes("/node_modules/")) expect(bundled, path).toContain(name);
    }
    for (const tool of ["typescript", "rolldown", "@types/node", "vitest", "s3rver"])
      expect(bundled).not.toContain(tool);
    // Our source maps and executable stay out (the bundled packages' own maps are theirs to ship).
    const ours = paths.filter((path) => !path.startsWith("node_modules/"));
    expect(ours.filter((path) => path.endsWith(".map") || path.startsWith("dist/exe/"))).toEqual([]);
  });

  it("the tarball installed globally into an empty prefix (README's command)", () => {
    expect(tarball, "needs the tarball").toBeDefined();
    const prefix = join(work, "global");
    npm(work, ["install", "-g", "--omit=dev", "--ignore-scripts", "--prefix", prefix, tarball]);
    const bin = join(prefix, "bin/cloudtrail-exec-filter");
    expect(execFileSync(bin, ["--version"], { env, encoding: "utf8" })).toBe(`${version}\n`);
    expect(eventsFrom(bin)).toBe(expected);
    expectLockedVersions(join(prefix, "lib/node_modules", name));
  }, 300_000);

  it("the tarball installed into a directory, without the optional build tools, offline with an empty cache", () => {
    expect(tarball, "needs the tarball").toBeDefined();
    const prefix = join(work, "local");
    const cache = join(work, "empty-cache");
    npm(work, [
      "install",
      "--omit=dev",
      "--omit=optional",
      "--ignore-scripts",
      "--offline",
      "--cache",
      cache,
      "--prefix",
      prefix,
      tarball,
    ]);
    expect(existsSync(join(prefix, "node_modules/typescript"))).toBe(false);
    expect(existsSync(join(prefix, "node_modules", name, "node_modules/typescript"))).toBe(false);
    const bin = join(prefix, "node_modules/.bin/cloudtrail-exec-filter");
    expect(execFileSync(bin, ["--version"], { env, encoding: "utf8" })).toBe(`${version}\n`);
    expect(eventsFrom(bin)).toBe(expected);
    expectLockedVersions(join(prefix, "node_modules", name));
  }, 300_000);
});
