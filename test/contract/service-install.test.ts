// The shipped systemd unit and the README's steps that install it work when pasted (issue 22, item 8): the steps run
// verbatim in a fresh root (scripts/check-service-install.mjs: a mount namespace, a chroot, `systemd-analyze verify`),
// and the unit and its env file say what a service under ProtectHome needs. Skipped with a note where the check
// cannot run (not root, not Linux, no unshare or systemd-analyze).
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { cannotRun, checkServiceInstall, installSteps } from "../../scripts/check-service-install.mjs";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const unit = readFileSync(`${ROOT}examples/cloudtrail-exec-filter-sqs.service`, "utf8");
const envFile = readFileSync(`${ROOT}examples/cloudtrail-exec-filter-sqs.env`, "utf8");

/** `Key=value` lines of a unit or env file that are not comments. */
function settings(text: string): string[] {
  return text.split("\n").filter((line) => /^[A-Za-z_]+=/.test(line));
}

const why = cannotRun();
if (why !== undefined) console.warn(`test/contract/service-install.test.ts: the fresh-root check is skipped: ${why}`);

describe("the systemd unit's install steps", () => {
  it.skipIf(why !== undefined)(
    "run verbatim from the README in a fresh root: user, files, modes, enabled, verified",
    () => {
      const result = checkServiceInstall();
      expect(result.failures, result.output).toEqual([]);
      expect(result.ok).toBe(true);
    },
  );

  it.skipIf(why !== undefined)(
    "the check fails the steps as they were (sqs.env installed before its directory)",
    () => {
      const old = installSteps().replace(/^sudo install -d .*\n/m, "");
      expect(old).not.toBe(installSteps());
      const result = checkServiceInstall({ steps: old });
      expect(result.ok).toBe(false);
    },
  );
});

describe("the unit and its env file", () => {
  it("restart everything but a usage error (exit 2), which would fail again every 5 s", () => {
    expect(settings(unit)).toEqual(expect.arrayContaining(["Restart=always", "RestartPreventExitStatus=2"]));
  });

  it("hide home directories, so the env file names credentials under /etc, never ~/.aws", () => {
    expect(settings(unit)).toContain("ProtectHome=yes");
    expect(settings(unit)).toContain("EnvironmentFile=/etc/cloudtrail-exec-filter/sqs.env");
    const credentials = envFile.split("\n").filter((line) => /AWS_(SHARED_CREDENTIALS|CONFIG)_FILE=/.test(line));
    expect(credentials.length).toBe(2);
    for (const line of credentials) expect(line).toMatch(/=\/etc\/cloudtrail-exec-filter\//);
    // A bare AWS_PROFILE would send the SDK to ~/.aws, which the unit hides: never set uncommented.
    expect(settings(envFile).filter((line) => line.startsWith("AWS_PROFILE="))).toEqual([]);
  });

  it("the env file sets every variable the unit's ExecStart uses", () => {
    const used = [...unit.matchAll(/\$\{([A-Z_]+)\}/g)].map((match) => match[1]);
    const set = settings(envFile).map((line) => line.slice(0, line.indexOf("=")));
    expect(used.length).toBeGreaterThan(0);
    for (const name of used) expect(set).toContain(name);
  });
});
