// Builds the single executable, dist/exe/cloudtrail-exec-filter: a copy of Node.js with the program injected into it
// (Node's Single Executable Applications), for hosts without Node.js. That Node.js is the current LTS at a pinned
// release (scripts/node-runtime.mjs: installed from the npm registry into a cache outside the repository, its tarball
// checked against the pinned integrity, its binary's SHA-256 checked at every build), not whatever Node runs this
// script: every host that installs the executable runs the Node.js it embeds, so that one must be getting fixes.
// Run by `npm run build:exe` after `npm run build` (it bundles dist/*.js, as tsc wrote them);
// `node scripts/build-exe.mjs --out DIR` writes DIR/cloudtrail-exec-filter instead (the tests build one of their own,
// with `--offline`: the pinned Node.js must then be in the cache already).
// `--arch arm64` (or x64, or `all` for both) builds DIR/cloudtrail-exec-filter-linux-ARCH from that architecture's
// official build of the same release instead, e.g. the executable for a Graviton host built on x64.
//
// A SEA runs one CommonJS script whose `require` loads Node's built-in modules only, and it has no files beside it. So:
// - everything is bundled: every package in node_modules (whatever package.json lists, now and later) and every
//   `import()` inlined (`codeSplitting: false`); the build fails if anything but a built-in is left to load at run time;
// - `createRequire(import.meta.url)(id)` (a synchronous lazy load, msgpack.ts) is rewritten to `require(id)`, which
//   the bundler follows, so the package is bundled and still loaded only when first used;
// - modules that read files beside them are replaced: version.js (package.json) by the version as a constant, and
//   scan-worker-script.js (dist/scan-worker.js) by the scan worker bundled the same way, run with `eval: true`; the
//   build fails if another module still looks beside itself.
// - the licences of what is bundled go beside it, in THIRD-PARTY-LICENSES.txt: every package the bundles hold, with
//   its licence and NOTICE texts, and Node.js's own (the executable is a copy of it). Apache-2.0 (the AWS SDK) asks
//   that a redistribution carry them.
// Not minified: a bug's stack in the log keeps its names, and with V8's code cache minifying saved no start-up time.
// The executable is for Linux (x64 or arm64, glibc as Node.js needs), by default this machine's architecture.
//
// Another architecture's executable (a cross build) is the same blob injected into that architecture's Node.js. Node.js
// makes the blob itself, and its format depends on the release, not on the architecture; but a code cache (and a
// snapshot) is V8's for the machine that made it, and Node's documentation says a cross build must turn both off, or
// the executable may crash at start-up. So the cross blob is made by this machine's build of the same pinned release,
// without the code cache: that executable compiles its script when it starts (on x64, the same build without the
// cache took 0.44 instead of 0.30 CPU-s for one file:// line, median of 10; a fluentd child pays it once per start),
// and it needs no emulator to be built. test/contract/exe-arm64.test.ts runs it under qemu. (A blob made by the arm64 Node.js
// under qemu, with its code cache, also works there; not done, so that the build needs no emulator and gives the same
// file wherever it runs.)
import { execFileSync } from "node:child_process";
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { createRequire, isBuiltin } from "node:module";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { build } from "rolldown";
import { lazyBuiltins } from "./lazy-builtins.mjs";
import { EXE_RUNTIME, nodeRuntime, RUNTIMES } from "./node-runtime.mjs";

const NAME = "cloudtrail-exec-filter";
// The sentinel Node.js builds carry to mark a SEA blob as present (the same in every version that has SEAs).
const SEA_FUSE = "NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2";

const root = new URL("..", import.meta.url).pathname;
const dist = join(root, "dist");
/** The architectures the executable is built for: the keys of the pinned integrity (node-runtime.mjs). */
const ARCHES = Object.keys(RUNTIMES[EXE_RUNTIME].integrity);
const { values } = parseArgs({
  options: {
    out: { type: "string", default: join(dist, "exe") },
    offline: { type: "boolean", default: false },
    arch: { type: "string" },
  },
});
const out = resolve(values.out);
if (values.arch !== undefined && values.arch !== "all" && !ARCHES.includes(values.arch)) {
  fail(`--arch ${values.arch}: one of ${ARCHES.join(", ")} or all`);
}
/**
 * What is built: [architecture, file name]. Without --arch, this machine's executable under the plain name, as before;
 * with it, each one named by its platform, so that both can stand side by side.
 */
const targets =
  values.arch === undefined
    ? [[process.arch, NAME]]
    : (values.arch === "all" ? ARCHES : [values.arch]).map((arch) => [arch, `${NAME}-linux-${arch}`]);

if (process.platform !== "linux") {
  // macOS needs a Mach-O segment name and a new signature, Windows a PE resource and signtool: neither is built or tested.
  fail(`the executable is built on Linux only (this is ${process.platform})`);
}
/** The pinned Node.js of `arch`, checked (node-runtime.mjs) and able to be a SEA. */
function runtimeFor(arch) {
  let found;
  try {
    found = nodeRuntime(EXE_RUNTIME, { offline: values.offline, arch });
  } catch (error) {
    fail(`the pinned Node.js ${EXE_RUNTIME} for ${arch}: ${error.message}`);
  }
  if (!readFileSync(found.node).includes(SEA_FUSE)) {
    fail(`${found.node} has no single-executable support (its build lacks ${SEA_FUSE})`);
  }
  return found;
}
/** This machine's build of the release: it makes every blob (it is the only one that runs here). */
const runtime = runtimeFor(process.arch);
const { version } = JSON.parse(readFileSync(join(root, "package.json"), "utf8"));
const started = Date.now();

const work = mkdtempSync(join(tmpdir(), "ctef-exe-"));
// Removed however the build ends: fail() exits from inside the steps below.
process.on("exit", () => rmSync(work, { recursive: true, force: true }));
/** Every module the bundles hold (absolute paths). */
const bundled = new Set();
{
  const workerCode = await bundle(join(dist, "scan-worker.js"), {});
  const entry = join(work, "main.mjs");
  writeFileSync(entry, `import { main } from ${JSON.stringify(join(dist, "cli.js"))};\nmain();\n`);
  const mainCode = await bundle(entry, {
    [join(dist, "version.js")]: `export const VERSION = ${JSON.stringify(version)};\n`,
    [join(dist, "scan-worker-script.js")]:
      `export function scanWorkerScript() { return { script: ${JSON.stringify(workerCode)}, eval: true }; }\n`,
  });

  const main = join(work, `${NAME}.cjs`);
  writeFileSync(main, mainCode);
  mkdirSync(out, { recursive: true });
  for (const [arch, name] of targets) {
    const target = arch === process.arch ? runtime : runtimeFor(arch);
    const config = {
      main,
      output: join(work, `sea-prep-${arch}.blob`),
      disableExperimentalSEAWarning: true,
      // V8's compile cache for the script, made now: the executable starts without parsing 3 MB of JavaScript. Only
      // for the machine that makes it (see the top of this file).
      useCodeCache: arch === process.arch,
    };
    writeFileSync(join(work, `sea-config-${arch}.json`), JSON.stringify(config, null, 2));
    run(runtime.node, ["--experimental-sea-config", join(work, `sea-config-${arch}.json`)]);

    const exe = join(out, name);
    rmSync(exe, { force: true });
    copyFileSync(target.node, exe);
    chmodSync(exe, 0o755);
    // postject's command line, not its API: its ELF reader prints warnings about note sections that are harmless
    // here, shown only if the injection fails. It reads the ELF headers, whatever the machine they are for.
    const postject = createRequire(import.meta.url).resolve("postject/dist/cli.js");
    run(process.execPath, [postject, exe, "NODE_SEA_BLOB", config.output, "--sentinel-fuse", SEA_FUSE]);
    const mb = (statSync(exe).size / 2 ** 20).toFixed(1);
    process.stderr.write(
      `${exe}: ${mb} MiB, Node.js v${target.version} linux-${arch} (bin/node SHA-256 ${target.sha256}), ` +
        `in ${(Date.now() - started) / 1000} s\n`,
    );
  }
  // One file for every architecture: the same packages are bundled, and Node.js's LICENSE is the release's.
  writeFileSync(join(out, "THIRD-PARTY-LICENSES.txt"), licenses(bundled));
}

/**
 * One CommonJS script of `input` and everything it loads. `replaced` maps modules (absolute paths) to the source that
 * stands in for them.
 */
async function bundle(input, replaced) {
  const result = await build({
    input,
    platform: "node",
    logLevel: "warn",
    write: false,
    plugins: [
      {
        name: "exe",
        load: (id) => replaced[id],
        transform: (code) =>
          code.includes("createRequire(import.meta.url)(")
            ? code.replaceAll("createRequire(import.meta.url)(", "require(")
            : undefined,
      },
      lazyBuiltins(), // as in dist/cli.cjs: built-in modules only some paths use load on first use
    ],
    output: { format: "cjs", codeSplitting: false, minify: false },
  });
  const [chunk, ...more] = result.output;
  if (more.some((file) => file.type === "chunk")) fail(`${input} was split into more than one script`);
  for (const id of chunk.moduleIds) bundled.add(id);
  const external = [...chunk.imports, ...chunk.dynamicImports].filter(
    (id) => id !== chunk.fileName && !isBuiltin(id), // an inlined import() names its own chunk
  );
  if (external.length > 0) fail(`${input} still loads ${external.join(", ")} at run time`);
  // What `import.meta.url` becomes in CommonJS: a module that looks for a file beside itself, which is not there.
  if (chunk.code.includes("pathToFileURL(__filename)")) {
    fail(`${input}: a module still reads a file beside itself (new URL(..., import.meta.url)); replace it here`);
  }
  return chunk.code;
}

/** The directory of the package a module belongs to (the innermost node_modules/[@scope/]name), or undefined. */
function packageOf(id) {
  return /^(.*\/node_modules\/(?:@[^/]+\/)?[^/]+)\//.exec(id)?.[1];
}

/** The text of THIRD-PARTY-LICENSES.txt: Node.js, then each bundled package, sorted, with its licence files. */
function licenses(ids) {
  const packages = new Map();
  for (const id of ids) {
    const dir = packageOf(id);
    if (dir === undefined) continue;
    const { name, version: v, license } = JSON.parse(readFileSync(join(dir, "package.json"), "utf8"));
    packages.set(`${name}@${v}`, { dir, license });
  }
  const rule = `${"=".repeat(78)}\n`;
  const sections = [];
  // The official build's LICENSE, beside bin/ in the package.
  const nodeLicense = [join(runtime.dir, "LICENSE")].find(existsSync);
  if (nodeLicense === undefined)
    process.stderr.write("build-exe: warning: Node.js's LICENSE not found; only its URL is given\n");
  sections.push(
    `Node.js v${runtime.version} (the executable is a copy of it)\n` +
      `https://github.com/nodejs/node/blob/v${runtime.version}/LICENSE\n\n` +
      (nodeLicense === undefined ? "" : readFileSync(nodeLicense, "utf8")),
  );
  for (const key of [...packages.keys()].sort()) {
    const { dir, license } = packages.get(key);
    const files = readdirSync(dir)
      .filter((file) => /^(licen[cs]e|notice|copying)(\.|-|$)/i.test(file))
      .sort();
    const texts = files.map((file) => `--- ${file}\n\n${readFileSync(join(dir, file), "utf8").trim()}\n`);
    // Some packages ship no licence file: their package.json names the licence, whose text another section has.
    const stated = license ?? "not stated";
    const body =
      texts.length > 0 ? texts.join("\n") : `(no licence file in the package; its package.json says ${stated})\n`;
    sections.push(`${key} (${stated})\n\n${body}`);
  }
  return `Third-party software in ${NAME} ${version}\n\n${sections.map((s) => `${rule}${s}`).join("\n")}`;
}

/** Runs a step, showing its output only when it fails. */
function run(file, args) {
  try {
    execFileSync(file, args, { stdio: "pipe" });
  } catch (error) {
    process.stderr.write(`${error.stdout ?? ""}${error.stderr ?? ""}`);
    fail(`${file} ${args.join(" ")} failed`);
  }
}

function fail(message) {
  process.stderr.write(`build-exe: ${message}\n`);
  process.exit(1);
}
