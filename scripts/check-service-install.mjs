// Runs the README's systemd install steps (the block between `<!-- service-install:start -->` and `:end -->`)
// verbatim, as root, in a fresh root: a temporary directory with the host's /usr bound read-only, a new /etc holding
// only root and nobody, and this checkout bound at /opt/cloudtrail-exec-filter as "the program installed as above".
// It runs in a mount namespace of its own (unshare), so nothing it mounts or writes touches the host. Then it checks
// what the steps should have left (the user, /etc/cloudtrail-exec-filter and sqs.env readable by that user only, the
// unit installed and enabled) and runs `systemd-analyze verify` on the unit there. So the documented steps and the
// shipped unit cannot drift from something that works when pasted.
//
// No systemd runs in that root, so two shims stand in: `sudo` (we are root already) and `systemctl`, which has no
// manager for `daemon-reload` to reload and does the rest offline on the root's files (`systemctl --root=/`).
//
//   node scripts/check-service-install.mjs [--keep]   (root, Linux, unshare and chroot; exit 0 when every check holds)
//
// test/contract/service-install.test.ts runs it where it can; `--keep` leaves the temporary root for a look.
import { spawnSync } from "node:child_process";
import { chmodSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const CHECKOUT = fileURLToPath(new URL("..", import.meta.url));
const UNIT = "cloudtrail-exec-filter-sqs.service";
const USER = "cloudtrail-exec-filter";

/** The install steps as the README shows them: the sh block between the two markers. */
export function installSteps(readme = readFileSync(join(CHECKOUT, "README.md"), "utf8")) {
  const start = readme.indexOf("<!-- service-install:start -->");
  const end = readme.indexOf("<!-- service-install:end -->");
  if (start === -1 || end === -1) throw new Error("README.md has no <!-- service-install:start/end --> block");
  const block = /```sh\n([\s\S]*?)```/.exec(readme.slice(start, end));
  if (block === null) throw new Error("the service-install block holds no ```sh fence");
  return block[1];
}

/** Why this machine cannot run the check, or undefined. */
export function cannotRun() {
  if (process.platform !== "linux") return "Linux only (mount namespaces, chroot)";
  if (process.getuid?.() !== 0) return "needs root (useradd, chown, mounts in a namespace of its own)";
  for (const tool of ["unshare", "chroot", "systemd-analyze", "systemctl", "useradd", "setpriv"]) {
    if (spawnSync("sh", ["-c", `command -v ${tool}`]).status !== 0) return `${tool} is not installed`;
  }
  const probe = spawnSync("unshare", ["--mount", "--fork", "true"]);
  if (probe.status !== 0) return `unshare --mount does not work here (${String(probe.stderr).trim()})`;
  return undefined;
}

function write(path, text, mode = 0o644) {
  mkdirSync(join(path, ".."), { recursive: true });
  writeFileSync(path, text);
  chmodSync(path, mode);
}

/** A fresh root's skeleton: /usr from the host (read-only, bound later), an /etc with nothing but root and nobody. */
function skeleton(root) {
  chmodSync(root, 0o755); // mkdtemp's 0700 would shut every user but root out of "/"
  for (const dir of ["usr", "dev", "proc", "tmp", "run", "var/log", "var/lib", "home", "root", `opt/${USER}`, "shim"]) {
    mkdirSync(join(root, dir), { recursive: true });
  }
  chmodSync(join(root, "tmp"), 0o1777);
  write(
    join(root, "etc/passwd"),
    "root:x:0:0:root:/root:/bin/bash\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
  );
  write(join(root, "etc/group"), "root:x:0:\nnogroup:x:65534:\n");
  write(join(root, "etc/shadow"), "root:*:19000:0:99999:7:::\nnobody:*:19000:0:99999:7:::\n", 0o640);
  write(join(root, "etc/gshadow"), "root:*::\nnogroup:*::\n", 0o640);
  for (const file of ["login.defs", "default/useradd", "nsswitch.conf"]) {
    write(join(root, "etc", file), readFileSync(join("/etc", file), "utf8"));
  }
  // What the systemd package leaves in a fresh /etc: the directory units are installed into.
  mkdirSync(join(root, "etc/systemd/system"), { recursive: true });
  write(join(root, "shim/sudo"), '#!/bin/sh\n# root already: run the command as given\nexec "$@"\n', 0o755);
  write(
    join(root, "shim/systemctl"),
    "#!/bin/sh\n# no systemd runs in this root: nothing for daemon-reload to reload; the rest acts on the files\n" +
      'if [ "$1" = daemon-reload ]; then exit 0; fi\nexec /usr/bin/systemctl --root=/ "$@"\n',
    0o755,
  );
}

/** The shell run in the new mount namespace: the mounts, then the steps in the root, then checks there. */
function session(root, steps) {
  const inRoot = (script) =>
    `chroot ${root} /usr/bin/env -i PATH=/shim:/usr/sbin:/usr/bin HOME=/root /bin/bash -c '${script}'`;
  // setpriv rather than runuser: no PAM in this root. As the service user: sqs.env readable, the program runs.
  const as = (user) => `setpriv --reuid=${user} --regid=${user === "nobody" ? "nogroup" : user} --init-groups --`;
  const checks = [
    // verify only warns about an unknown key (a misspelt Restart… setting would be ignored): any word from it fails.
    `out=$(systemd-analyze verify /etc/systemd/system/${UNIT} 2>&1) && [ -z "$out" ] || { echo "$out"; exit 1; }`,
    `${as(USER)} test -r /etc/${USER}/sqs.env`,
    `! ${as("nobody")} test -r /etc/${USER}/sqs.env`,
    `${as(USER)} /opt/${USER}/bin/cloudtrail-exec-filter --version`,
  ];
  return [
    "set -eu",
    "mount --make-rprivate /",
    ...["bin", "sbin", "lib", "lib64"].map((link) => `ln -s usr/${link} ${root}/${link}`),
    `mount --rbind /usr ${root}/usr && mount -o remount,bind,ro ${root}/usr`,
    `mount --rbind /dev ${root}/dev`,
    `mount -t proc proc ${root}/proc`,
    `mount --bind ${CHECKOUT} ${root}/opt/${USER} && mount -o remount,bind,ro ${root}/opt/${USER}`,
    "echo '== the steps'",
    inRoot(`set -euxo pipefail; cd /opt/${USER}; ${steps.replaceAll("'", "'\\''")}`),
    ...checks.flatMap((check) => [`echo '== ${check}'`, inRoot(`set -euo pipefail; ${check}`)]),
  ].join("\n");
}

/** Reads a name's entry from the root's passwd or group file. */
function entry(root, file, name) {
  const line = readFileSync(join(root, "etc", file), "utf8")
    .split("\n")
    .find((l) => l.startsWith(`${name}:`));
  return line?.split(":");
}

/**
 * Runs the check: `{ ok, failures, output }`. `steps`: other install steps than the README's (a test shows that the
 * steps as they were fail here).
 */
export function checkServiceInstall({ keep = false, steps = installSteps() } = {}) {
  const root = mkdtempSync(join(tmpdir(), "service-root-"));
  const failures = [];
  let output = "";
  try {
    skeleton(root);
    const run = spawnSync("unshare", ["--mount", "--fork", "/bin/sh", "-c", session(root, steps)], {
      encoding: "utf8",
      timeout: 120_000,
    });
    output = `${run.stdout}${run.stderr}`;
    if (run.status !== 0) failures.push(`the steps or a check in the root failed (exit ${run.status})`);
    const user = entry(root, "passwd", USER);
    const group = entry(root, "group", USER);
    if (user === undefined || group === undefined) failures.push(`no user or group ${USER}`);
    else {
      if (Number(user[2]) >= 1000) failures.push(`${USER} is not a system user (uid ${user[2]})`);
      if (user[6] !== "/usr/sbin/nologin") failures.push(`${USER}'s shell is ${user[6]}`);
      const expect = (path, mode, gid) => {
        let st;
        try {
          st = statSync(join(root, path));
        } catch (error) {
          failures.push(`${path}: ${error.code}`);
          return;
        }
        if ((st.mode & 0o7777) !== mode || st.uid !== 0 || st.gid !== gid) {
          failures.push(`${path}: mode ${(st.mode & 0o7777).toString(8)} owner ${st.uid}:${st.gid}`);
        }
      };
      expect(`etc/${USER}`, 0o750, Number(group[2]));
      expect(`etc/${USER}/sqs.env`, 0o640, Number(group[2]));
      expect(`etc/systemd/system/${UNIT}`, 0o644, 0);
      try {
        lstatSync(join(root, `etc/systemd/system/multi-user.target.wants/${UNIT}`));
      } catch {
        failures.push("the unit is not enabled (no multi-user.target.wants link)");
      }
    }
  } finally {
    if (keep) output += `\nkept ${root}`;
    else rmSync(root, { recursive: true, force: true });
  }
  return { ok: failures.length === 0, failures, output };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const why = cannotRun();
  if (why !== undefined) {
    console.error(`check-service-install: cannot run here: ${why}`);
    process.exit(2);
  }
  const result = checkServiceInstall({ keep: process.argv.includes("--keep") });
  console.log(result.output.trimEnd());
  for (const failure of result.failures) console.error(`FAILED: ${failure}`);
  console.log(result.ok ? "the README's service install steps work in a fresh root" : "");
  process.exit(result.ok ? 0 : 1);
}
