// The usage blocks of docs/usage.md (the README links them) are generated from --help; this keeps them from drifting.
import { execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const script = fileURLToPath(new URL("../../scripts/readme-usage.mjs", import.meta.url));

describe("docs/usage.md", () => {
  it("shows the usage that --help prints (regenerate with node scripts/readme-usage.mjs)", () => {
    expect(() => execFileSync(process.execPath, [script, "--check"], { stdio: "pipe" })).not.toThrow();
  });
});
