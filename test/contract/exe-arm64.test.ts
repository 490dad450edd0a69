// The arm64 single executable (scripts/build-exe.mjs --arch arm64), for Graviton hosts: built here from the pinned
// release's official arm64 Node.js whatever this machine is, then run on this machine under qemu's user-mode emulator
// with Debian's arm64 C libraries (on an arm64 machine, directly). A cross build makes its blob without V8's code cache
// (code caches are per machine), so this proves the blob made here runs there: a file:// line gives the bin's output,
// byte for byte, and `--version` works with no environment at all. test/contract/exe.test.ts covers the rest of the program,
// which is the same script.
import { execFileSync, spawnSync } from "node:child_process";
import {
  accessSync,
  closeSync,
  constants,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  readSync,
  rmSync,
} from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BIN, deadLetters, events, parseOutput } from "../support/cli.js";
import { FIXTURE_NAMES, FIXTURES } from "../support/trail.js";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const BUILD = join(ROOT, "scripts/build-exe.mjs");
const [nameA] = FIXTURE_NAMES as [string];
const recordsIn = (name: string): number =>
  (JSON.parse(readFileSync(join(FIXTURES, name), "utf8")) as { Records: unknown[] }).Records.length;
const VERSION = (JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { version: string }).version;
/** Where Debian's libc6-arm64-cross and libstdc++6-arm64-cross put the arm64 libraries, the loader among them. */
const CROSS_ROOT = "/usr/aarch64-linux-gnu";
/** ELF's e_machine for AArch64. */
const EM_AARCH64 = 183;

const { EXE_RUNTIME, RUNTIMES, nodeRuntime } = (await import(join(ROOT, "scripts/node-runtime.mjs"))) as {
  EXE_RUNTIME: number;
  RUNTIMES: Record<number, { version: string }>;
  nodeRuntime(major: number, options: { offline: boolean; arch?: string }): { node: string };
};
const EXE_NODE_VERSION = (RUNTIMES[EXE_RUNTIME] as { version: string }).version;

/** The emulator on PATH, if there is one. */
function qemu(): string | undefined {
  for (const dir of (process.env.PATH ?? "").split(delimiter)) {
    const file = join(dir, "qemu-aarch64-static");
    try {
      accessSync(file, constants.X_OK);
      return file;
    } catch {}
  }
  return undefined;
}

/** The command that runs an arm64 program here: [file, ...arguments before the program]. */
const runner: [string, ...string[]] | undefined =
  process.arch === "arm64" ? undefined : [qemu() ?? "", "-L", CROSS_ROOT];

/** Why the arm64 executable cannot be built or run here, if it cannot: the tests are then skipped, and say so. */
function cannotRun(): string | undefined {
  if (process.platform !== "linux") return `the executable is built on Linux only (this is ${process.platform})`;
  try {
    createRequire(import.meta.url).resolve("postject");
  } catch {
    return "postject is not installed (npm ci installs it)";
  }
  // Both releases: this machine's makes the blob, the arm64 one is the executable. Offline, as in test/contract/exe.test.ts.
  for (const arch of new Set([process.arch, "arm64"])) {
    try {
      nodeRuntime(EXE_RUNTIME, { offline: true, arch });
    } catch (error) {
      return `${(error as Error).message}: run \`node scripts/node-runtime.mjs ${EXE_RUNTIME} --arch ${arch}\` once`;
    }
  }
  if (runner !== undefined) {
    if (runner[0] === "") return "qemu-aarch64-static is not on PATH (Debian: apt-get install qemu-user-static)";
    try {
      accessSync(join(CROSS_ROOT, "lib", "ld-linux-aarch64.so.1"));
      accessSync(join(CROSS_ROOT, "lib", "libstdc++.so.6"));
    } catch {
      return `the arm64 C libraries are not in ${CROSS_ROOT} (Debian: apt-get install libc6-arm64-cross libstdc++6-arm64-cross)`;
    }
  }
  return undefined;
}

const skipReason = cannotRun();
if (skipReason !== undefined) console.warn(`test/contract/exe-arm64.test.ts skipped: ${skipReason}`);

describe.skipIf(skipReason !== undefined)("the arm64 single executable", () => {
  let dir: string;
  let exe: string;

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "ctef-exe-arm64-test-"));
    exe = join(dir, "cloudtrail-exec-filter-linux-arm64");
    execFileSync(process.execPath, [BUILD, "--out", dir, "--arch", "arm64", "--offline"], { stdio: "pipe" });
  }, 300_000);

  afterAll(() => {
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  /** Runs the executable with exactly `env` as its environment, from its own directory. */
  function run(args: string[], input: string, env: Record<string, string> = {}) {
    const [file, ...before] = runner ?? [exe];
    const result = spawnSync(file, runner === undefined ? args : [...before, exe, ...args], {
      cwd: dir,
      env,
      input,
      maxBuffer: 64 * 2 ** 20,
    });
    return { code: result.status, stdout: result.stdout, stderr: result.stderr.toString() };
  }

  it("is an AArch64 ELF file named for its platform, with the licences beside it, on the pinned release", () => {
    expect(readdirSync(dir).sort()).toEqual(["THIRD-PARTY-LICENSES.txt", "cloudtrail-exec-filter-linux-arm64"]);
    const header = Buffer.alloc(20);
    const fd = openSync(exe, "r");
    readSync(fd, header, 0, 20, 0);
    closeSync(fd);
    expect(header.subarray(0, 4).toString("latin1")).toBe("\x7fELF");
    expect(header.readUInt16LE(18)).toBe(EM_AARCH64);
    expect(readFileSync(exe).includes(`v${EXE_NODE_VERSION}`)).toBe(true);
    expect(readFileSync(join(dir, "THIRD-PARTY-LICENSES.txt"), "utf8")).toContain(
      `Node.js v${EXE_NODE_VERSION} (the executable is a copy of it)`,
    );
  });

  it("says its version with no environment at all", () => {
    const result = run(["--version"], "");
    expect({ code: result.code, stderr: result.stderr }).toEqual({ code: 0, stderr: "" });
    expect(result.stdout.toString()).toBe(`${VERSION}\n`);
  }, 120_000);

  it("writes what the bin writes for a file:// line: the events, and a dead letter for a missing file", () => {
    const input = `file://${join(FIXTURES, nameA)}\nfile://${join(FIXTURES, "no-such-file.json")}\n`;
    const args = ["--log-file", "/dev/null", "--pad-bytes", "0"];
    const result = run(args, input);
    expect({ code: result.code, stderr: result.stderr }).toEqual({ code: 0, stderr: "" });
    expect(events(parseOutput(result.stdout))).toHaveLength(recordsIn(nameA));
    expect(deadLetters(parseOutput(result.stdout))).toHaveLength(1);
    expect(result.stdout.equals(execFileSync(BIN, args, { input }))).toBe(true);
  }, 120_000);
});

describe("build-exe.mjs --arch", () => {
  it("refuses an architecture without a pinned build, before building anything", () => {
    const result = spawnSync(process.execPath, [BUILD, "--arch", "sparc", "--out", tmpdir()], { encoding: "utf8" });
    expect(result.status).toBe(1);
    expect(result.stderr).toBe("build-exe: --arch sparc: one of x64, arm64 or all\n");
  });
});
