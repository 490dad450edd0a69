// Regenerates the usage blocks of docs/usage.md (the README links it) from `--help`, so the documentation never drifts
// from the CLI definition. `node scripts/readme-usage.mjs` rewrites them; `--check` exits 1 when it is stale (the test suite runs the check).
import { execFileSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";

const root = new URL("..", import.meta.url).pathname;
const bin = `${root}bin/cloudtrail-exec-filter`;
const blocks = [
  ["usage", []],
  ["usage-import", ["import", "--help"]],
  ["usage-sqs", ["sqs", "--help"]],
];
const file = `${root}docs/usage.md`;
let readme = readFileSync(file, "utf8");
const original = readme;
for (const [name, args] of blocks) {
  const start = `<!-- ${name}:start -->`;
  const end = `<!-- ${name}:end -->`;
  const from = readme.indexOf(start);
  const to = readme.indexOf(end);
  if (from === -1 || to === -1) {
    console.error(`${file} has no ${start} … ${end} block`);
    process.exit(1);
  }
  const help = execFileSync(bin, args.length > 0 ? args : ["--help"], {
    encoding: "utf8",
    env: { ...process.env, COLUMNS: "110" },
  });
  readme = `${readme.slice(0, from + start.length)}\n\`\`\`text\n${help.trimEnd()}\n\`\`\`\n${readme.slice(to)}`;
}
if (process.argv.includes("--check")) {
  if (readme !== original) {
    console.error("docs/usage.md is stale: run node scripts/readme-usage.mjs");
    process.exit(1);
  }
} else {
  writeFileSync(file, readme);
}
