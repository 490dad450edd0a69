#!/usr/bin/env node
// A change against the last landed build, in one run: `npm run bench:compare [-- REF] [-- run.mjs flags]`.
//
//   node bench/compare.mjs                  this checkout against `main` (or HEAD where there is no main)
//   node bench/compare.mjs 1bf5ce0          against any commit, tag or branch
//   node bench/compare.mjs main --rounds 9  flags after the ref go to bench/run.mjs (default: --rounds 5)
//
// It builds this checkout (`npm run build`), checks REF out into a git worktree of its own under bench/.baselines/
// (kept, one per commit, so the next comparison with the same REF starts at once), builds it there, and runs the CPU
// scenario with REF's filter as contender `baseline` beside this one and the inflate-only floor, alternating rounds
// under the same load (bench/run.mjs --baseline). REF shares this checkout's node_modules when both lockfiles are the
// same, else gets `npm ci --prefer-offline`. A slower change shows as `filter/this speed` below 1 on the baseline row.
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, readFileSync, rmSync, symlinkSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const BENCH = dirname(fileURLToPath(import.meta.url));
const ROOT = dirname(BENCH);

const args = process.argv.slice(2);
const ref = args[0] !== undefined && !args[0].startsWith("-") ? args.shift() : undefined;
const runFlags = args.length > 0 ? args : ["--rounds", "5"];

function git(...argv) {
  return execFileSync("git", argv, { cwd: ROOT, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] }).trim();
}

function step(label, file, argv, cwd) {
  console.log(`compare: ${label}`);
  const result = spawnSync(file, argv, { cwd, stdio: "inherit" });
  if (result.status !== 0) {
    console.error(`compare: ${label} failed (exit ${result.status ?? result.signal})`);
    process.exit(1);
  }
}

let wanted = ref;
if (wanted === undefined) {
  try {
    git("rev-parse", "--verify", "--quiet", "main^{commit}");
    wanted = "main";
  } catch {
    wanted = "HEAD";
  }
}
let sha;
try {
  sha = git("rev-parse", "--verify", `${wanted}^{commit}`);
} catch {
  console.error(`compare: ${wanted} is not a commit here`);
  process.exit(2);
}
const dir = join(BENCH, ".baselines", sha.slice(0, 12));
console.log(`compare: this checkout against ${wanted} (${sha.slice(0, 12)}), built in ${dir}`);

step("building this checkout", "npm", ["run", "build", "--silent"], ROOT);

if (!existsSync(join(dir, "dist", "cli.js"))) {
  if (existsSync(dir)) {
    // A worktree left half-made by an interrupted run: made again.
    spawnSync("git", ["worktree", "remove", "--force", dir], { cwd: ROOT, stdio: "ignore" });
    rmSync(dir, { recursive: true, force: true });
    spawnSync("git", ["worktree", "prune"], { cwd: ROOT, stdio: "ignore" });
  }
  step(`checking out ${sha.slice(0, 12)}`, "git", ["worktree", "add", "--detach", dir, sha], ROOT);
  const lock = (root) => readFileSync(join(root, "package-lock.json"), "utf8");
  if (lock(dir) === lock(ROOT) && existsSync(join(ROOT, "node_modules"))) {
    symlinkSync(join(ROOT, "node_modules"), join(dir, "node_modules"), "dir");
  } else {
    step("installing its dependencies", "npm", ["ci", "--prefer-offline", "--no-audit", "--no-fund"], dir);
  }
  step("building it", "npm", ["run", "build", "--silent"], dir);
}

step(
  "the CPU scenario, alternating rounds",
  process.execPath,
  [join(BENCH, "run.mjs"), "--scenario", "cpu", "--contenders", "filter,inflate", "--baseline", dir, ...runFlags],
  ROOT,
);
console.log(`compare: baseline = ${wanted} (${sha.slice(0, 12)}); remove old ones with \`git worktree remove\``);
