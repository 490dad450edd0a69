// Regenerates the usage block of README.md from `--help`, so the README never drifts from the CLI definition.
// `node scripts/readme-usage.mjs` rewrites it; `--check` exits 1 when it is stale (the test suite runs the check).
import { execFileSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";

const root = new URL("..", import.meta.url).pathname;
const bin = `${root}bin/cloudtrail-exec-filter`;
const blocks = [
  ["usage", []],
  ["usage-import", ["import", "--help"]],
  ["usage-sqs", ["sqs", "--help"]],
];
let readme = readFileSync(`${root}README.md`, "utf8");
const original = readme;
for (const [name, args] of blocks) {
  const start = `<!-- ${name}:start -->`;
  const end = `<!-- ${name}:end -->`;
  const from = readme.indexOf(start);
  const to = readme.indexOf(end);
  if (from === -1 || to === -1) continue;
  const help = execFileSync(bin, args.length > 0 ? args : ["--help"], {
    encoding: "utf8",
    env: { ...process.env, COLUMNS: "110" },
  });
  readme = `${readme.slice(0, from + start.length)}\n\`\`\`text\n${help.trimEnd()}\n\`\`\`\n${readme.slice(to)}`;
}
if (process.argv.includes("--check")) {
  if (readme !== original) {
    console.error("README.md usage is stale: run node scripts/readme-usage.mjs");
    process.exit(1);
  }
} else {
  writeFileSync(`${root}README.md`, readme);
}
