// Which real fluentd the fluentd tests and benches run, so that anyone with a clone can run them: FLUENTD_HOME (a
// fluentd source tree, run on the Ruby on PATH, or an install with bin/fluentd), else a `fluentd` on PATH (a gem
// install), else the source tree this project's machines keep in ../shared/vendor. Plain JavaScript so that bench/
// (lib/fluentd.mjs) and test/ (support/fluentd.ts) share the one answer; docs/development.md says how to get one.
import { spawnSync } from "node:child_process";
import { accessSync, constants, existsSync } from "node:fs";
import { delimiter, join } from "node:path";
import { fileURLToPath } from "node:url";

/** The source tree beside the checkout on this project's machines (../shared/vendor/README.md there). */
export const VENDORED = fileURLToPath(new URL("../../../shared/vendor/fluentd-1.15.3/", import.meta.url));

/** Said wherever no fluentd is found or it cannot run. */
export const HINT =
  "set FLUENTD_HOME to a fluentd source tree or install, or put fluentd on PATH (gem install fluentd -v 1.15.3): " +
  'docs/development.md, "Running the fluentd tests"';

/**
 * The libraries a fluentd source tree loads at start that a gem install would have brought (a missing one fails every
 * run; .ci/run installs them as Debian packages).
 */
const RUNTIME = ["msgpack", "yajl", "cool.io", "serverengine", "sigdump", "tzinfo", "strptime", "http_parser", "oj"];

function executable(path) {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** A source tree runs as `ruby -I<lib> bin/fluentd`; an install's bin/fluentd (a gem's, td-agent's) runs as it is. */
function fromDirectory(home, origin) {
  const bin = join(home, "bin", "fluentd");
  if (existsSync(join(home, "lib", "fluent", "version.rb")) && existsSync(bin)) {
    return { command: "ruby", prefix: ["-I", join(home, "lib"), bin], where: `${origin} ${home} (source, on ruby)` };
  }
  if (executable(bin)) return { command: bin, prefix: [], where: `${origin} ${bin}` };
  return undefined;
}

function onPath(env) {
  for (const dir of (env.PATH ?? "").split(delimiter)) {
    if (dir !== "" && executable(join(dir, "fluentd"))) return join(dir, "fluentd");
  }
  return undefined;
}

/**
 * The fluentd to run: `{ command, prefix, where }` (spawn `command` with `prefix` then fluentd's own arguments;
 * `where` names it for notes), or `{ unavailable }` saying why there is none. Not whether it can run: see
 * `probeFluentd`.
 */
export function findFluentd(env = process.env) {
  const home = env.FLUENTD_HOME;
  if (home !== undefined && home !== "") {
    return fromDirectory(home, "FLUENTD_HOME") ?? { unavailable: `FLUENTD_HOME=${home} holds no bin/fluentd` };
  }
  const installed = onPath(env);
  if (installed !== undefined) return { command: installed, prefix: [], where: `PATH ${installed}` };
  const vendored = fromDirectory(VENDORED, "vendored");
  if (vendored !== undefined) return vendored;
  return { unavailable: `no fluentd found (no FLUENTD_HOME, none on PATH, no ${VENDORED}): ${HINT}` };
}

/**
 * Why the fluentd `findFluentd` gives cannot run here, or undefined when it can: a source tree needs ruby and the
 * libraries above; an install must answer `--version`.
 */
export function probeFluentd(found, env = process.env) {
  if ("unavailable" in found) return found.unavailable;
  const probe =
    found.command === "ruby"
      ? spawnSync("ruby", ["-e", RUNTIME.map((lib) => `require "${lib}"`).join(";")], {
          encoding: "utf8",
          timeout: 30_000,
          env,
        })
      : spawnSync(found.command, ["--version"], { encoding: "utf8", timeout: 30_000, env });
  if (probe.error !== undefined) return `${found.where} cannot run (${probe.error.message}): ${HINT}`;
  if (probe.status !== 0) {
    const said = `${probe.stdout}${probe.stderr}`.trim().slice(-300);
    return found.command === "ruby"
      ? `${found.where}: fluentd's Ruby libraries are missing (${said}); .ci/run installs them`
      : `${found.where} --version failed (${said}): ${HINT}`;
  }
  return undefined;
}
