// Which fluentd the fluentd tests and benches run (test/support/fluentd-home.mjs), against made-up trees and
// executables: FLUENTD_HOME first (a source tree or an install), then PATH, and a reason with the hint when none.
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { findFluentd, HINT, probeFluentd, VENDORED } from "../support/fluentd-home.mjs";

const dir = mkdtempSync(join(tmpdir(), "fluentd-home-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A shell script standing in for a fluentd executable: `--version` exits `status`. */
function fakeFluentd(path: string, status = 0): string {
  mkdirSync(join(path, ".."), { recursive: true });
  writeFileSync(path, `#!/bin/sh\necho fluentd 1.15.3\nexit ${status}\n`);
  chmodSync(path, 0o755);
  return path;
}

const source = join(dir, "source");
mkdirSync(join(source, "lib", "fluent"), { recursive: true });
writeFileSync(join(source, "lib", "fluent", "version.rb"), "module Fluent; VERSION = '1.15.3'; end\n");
mkdirSync(join(source, "bin"));
writeFileSync(join(source, "bin", "fluentd"), "#!/usr/bin/env ruby\n");
const install = join(dir, "install");
fakeFluentd(join(install, "bin", "fluentd"));
const onPath = join(dir, "path");
fakeFluentd(join(onPath, "fluentd"));
const broken = join(dir, "broken");
fakeFluentd(join(broken, "bin", "fluentd"), 3);

describe("findFluentd", () => {
  it("FLUENTD_HOME as a source tree runs bin/fluentd on ruby with its lib/, before anything on PATH", () => {
    const found = findFluentd({ FLUENTD_HOME: source, PATH: onPath });
    expect(found).toMatchObject({
      command: "ruby",
      prefix: ["-I", join(source, "lib"), join(source, "bin", "fluentd")],
    });
  });

  it("FLUENTD_HOME as an install runs its bin/fluentd as it is", () => {
    expect(findFluentd({ FLUENTD_HOME: install, PATH: onPath })).toMatchObject({
      command: join(install, "bin", "fluentd"),
      prefix: [],
    });
  });

  it("FLUENTD_HOME without bin/fluentd is a reason, not a silent fall-through to PATH", () => {
    expect(findFluentd({ FLUENTD_HOME: dir, PATH: onPath })).toEqual({
      unavailable: `FLUENTD_HOME=${dir} holds no bin/fluentd`,
    });
  });

  it("without FLUENTD_HOME, a fluentd on PATH", () => {
    expect(findFluentd({ PATH: `${join(dir, "none")}:${onPath}` })).toMatchObject({
      command: join(onPath, "fluentd"),
      prefix: [],
    });
  });

  it("with neither, the vendored source tree, or a reason that says how to get one", () => {
    const found = findFluentd({ PATH: join(dir, "none") });
    if ("unavailable" in found) expect(found.unavailable).toContain(HINT);
    else expect(found.prefix).toEqual(["-I", join(VENDORED, "lib"), join(VENDORED, "bin", "fluentd")]);
  });
});

describe("probeFluentd", () => {
  it("an install that answers --version can run", () => {
    expect(probeFluentd(findFluentd({ FLUENTD_HOME: install }))).toBeUndefined();
  });

  it("an install whose --version fails cannot, and the reason carries the hint", () => {
    const why = probeFluentd(findFluentd({ FLUENTD_HOME: broken }));
    expect(why).toContain("--version failed");
    expect(why).toContain(HINT);
  });

  it("nothing found: the reason is passed on", () => {
    expect(probeFluentd({ unavailable: "none here" })).toBe("none here");
  });
});
