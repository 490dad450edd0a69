// What a run loads before its first request: nothing of the network stack. undici (130 files) and the AWS SDK cost a
// file:// run about 0.1 s of start-up for no request at all (issue 21), and fluentd pays the start-up at every start of
// the child. The built CLI is spawned with a preload that lists, at exit, every CommonJS module the process loaded; a
// package counts as loaded when one of them is a file of it in node_modules, or a chunk of the bundle that holds it
// (rolldown heads each bundled module with a comment naming its path). The same preload lists Node's built-in modules
// the run compiled (process.moduleLoadList): the large ones no file:// run uses are loaded on first use in the bundle
// (scripts/bundle.mjs, LAZY_BUILTINS), 20-30 ms of every start.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { LAZY_BUILTINS } from "../../scripts/lazy-builtins.mjs";
import { events, parseOutput, runCli } from "../support/cli.js";
import { FIXTURE_NAMES, FIXTURES, trail } from "../support/trail.js";

const dir = mkdtempSync(join(tmpdir(), "ctef-startup-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const PRELOAD = join(dir, "loaded.cjs");
writeFileSync(
  PRELOAD,
  `process.on("exit", () => {
    const { writeFileSync } = require("node:fs");
    writeFileSync(process.env.LOADED_LIST, Object.keys(require.cache).join("\\n"));
    writeFileSync(process.env.LOADED_LIST + ".builtin", process.moduleLoadList.join("\\n"));
  });\n`,
);

/**
 * The package directories under node_modules that a run loaded (`undici`, `@smithy/core`), and how many events it
 * wrote.
 */
async function packagesLoaded(
  input: string,
  env: Record<string, string> = {},
): Promise<{ packages: string[]; builtins: string[]; events: number }> {
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
  const builtins = readFileSync(`${list}.builtin`, "utf8")
    .split("\n")
    .flatMap((entry) => /^NativeModule ([\w/]+)$/.exec(entry)?.[1] ?? []);
  return { packages: [...packages], builtins, events: events(parseOutput(run.stdout)).length };
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

  it("nor the large built-in modules only other paths use (crypto, TLS, child processes): they load on first use", async () => {
    const { builtins, events } = await packagesLoaded(line);
    expect(events).toBe(trail(name, "").length);
    // node:net is left out: Node loads it itself for a stdin or stdout that is a pipe.
    const lazy = LAZY_BUILTINS.filter((id) => id !== "net");
    expect(builtins.filter((id) => lazy.includes(id))).toEqual([]);
    expect(builtins).toContain("zlib"); // the list is the real one: the run inflated its object
  });

  it("nor with a proxy variable set: it is checked at start without them", async () => {
    const { packages } = await packagesLoaded(line, { HTTPS_PROXY: "http://u:p@127.0.0.1:9", NO_PROXY: "localhost" });
    expect(packages.filter((p) => NETWORK.test(p))).toEqual([]);
  });
});
