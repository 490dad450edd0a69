// What a run loads before its first request: nothing of the network stack. undici (130 files) and the AWS SDK cost a
// file:// run about 0.1 s of start-up for no request at all (issue 21), and fluentd pays the start-up at every start of
// the child. The built CLI is spawned with a preload that lists, at exit, every CommonJS module the process loaded; a
// package counts as loaded when one of them is a file of it in node_modules, or a chunk of the bundle that holds it
// (rolldown heads each bundled module with a comment naming its path).
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { events, parseOutput, runCli } from "../support/cli.js";
import { FIXTURE_NAMES, FIXTURES, trail } from "../support/trail.js";

const dir = mkdtempSync(join(tmpdir(), "ctef-startup-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const PRELOAD = join(dir, "loaded.cjs");
writeFileSync(
  PRELOAD,
  `process.on("exit", () => require("node:fs").writeFileSync(process.env.LOADED_LIST, Object.keys(require.cache).join("\\n")));\n`,
);

/**
 * The package directories under node_modules that a run loaded (`undici`, `@smithy/core`), and how many events it
 * wrote.
 */
async function packagesLoaded(
  input: string,
  env: Record<string, string> = {},
): Promise<{ packages: string[]; events: number }> {
  const list = join(dir, `loaded-${Math.random().toString(36).slice(2)}.txt`);
  const run = await runCli([], input, { NODE_OPTIONS: `--require ${PRELOAD}`, LOADED_LIST: list, ...env });
  expect(run.code).toBe(0);
  const packages = new Set<string>();
  const noted = (text: string): void => {
    for (const match of text.matchAll(/node_modules\/((?:@[^/\s]+\/)?[^/\s]+)\//g)) packages.add(match[1] as string);
  };
  for (const path of readFileSync(list, "utf8").split("\n")) {
    noted(path);
    if (path.includes("/dist/")) noted(readFileSync(path, "utf8"));
  }
  return { packages: [...packages], events: events(parseOutput(run.stdout)).length };
}

const NETWORK = /^(undici|@smithy\/|@aws-sdk\/|@aws-crypto\/)/;
const name = FIXTURE_NAMES[0] as string;
const line = `file://${join(FIXTURES, name)}\n`;

describe("start-up", () => {
  it("a file:// run loads neither undici nor the AWS SDK", async () => {
    const { packages, events } = await packagesLoaded(line);
    expect(events).toBe(trail(name, "").length); // the run did its work
    expect(packages.filter((p) => NETWORK.test(p))).toEqual([]);
  });

  it("nor with a proxy variable set: it is checked at start without them", async () => {
    const { packages } = await packagesLoaded(line, { HTTPS_PROXY: "http://u:p@127.0.0.1:9", NO_PROXY: "localhost" });
    expect(packages.filter((p) => NETWORK.test(p))).toEqual([]);
  });
});
