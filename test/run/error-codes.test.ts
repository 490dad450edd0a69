// README "Error codes" is the dead-letter contract: its table lists exactly the codes the program can emit. The list
// below is typed by DeadLetterCode (src/filter.ts), so `npm run typecheck` fails when a code is added to or removed
// from the source without this list, and this test fails when the README does not match the list.
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import type { DeadLetterCode } from "../../src/run/filter.js";

const EMITTED: Record<DeadLetterCode, true> = {
  NotJson: true,
  NotAnObject: true,
  LineTooLong: true,
  BodyNotJson: true,
  MessageNotJson: true,
  TooDeep: true,
  UnknownShape: true,
  BadUrl: true,
  InvalidReference: true,
  BucketNotAllowed: true,
  TooManyObjects: true,
  NotFound: true,
  AccessDenied: true,
  NotAFile: true,
  FetchFailed: true,
  CorruptGzip: true,
  Truncated: true,
  TooLarge: true,
  InvalidJson: true,
  NoRecords: true,
  InvalidEvent: true,
  EventTooLarge: true,
  InternalError: true,
};

/** The first column of the table under `## Error codes`. */
function readmeCodes(): string[] {
  const readme = readFileSync(fileURLToPath(new URL("../../README.md", import.meta.url)), "utf8");
  const section = readme.slice(readme.indexOf("\n## Error codes\n"));
  const body = section.slice(0, section.indexOf("\n## ", 1));
  return [...body.matchAll(/^\| `([A-Za-z]+)` \|/gm)].map((match) => match[1] as string);
}

describe("README error codes", () => {
  it("lists every code a dead letter can carry, once, and no other", () => {
    const listed = readmeCodes();
    expect(new Set(listed).size).toBe(listed.length);
    expect([...listed].sort()).toEqual(Object.keys(EMITTED).sort());
  });
});
