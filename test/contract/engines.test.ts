// The Node.js support policy (docs/node-support.md), kept true: `engines` starts at the oldest release line that still
// gets security fixes and that CI tests (22; CI runs the suite on the pinned 22 and 24 of scripts/node-runtime.mjs);
// it admits only Node versions every run-time dependency in the lockfile admits; every package in the lockfile runs on
// the Node the tests run on, so an update that needs a newer Node fails here until `engines` is raised; and the code
// uses no API that Node 22 or 24 removed.
import { readdirSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const pkg = JSON.parse(readFileSync(`${ROOT}package.json`, "utf8")) as { engines: { node: string } };
const lock = JSON.parse(readFileSync(`${ROOT}package-lock.json`, "utf8")) as {
  packages: Record<
    string,
    { version?: string; engines?: { node?: string }; dev?: boolean; optional?: boolean; devOptional?: boolean }
  >;
};

type Version = [number, number, number];

/** `20`, `20.18`, `20.18.1`, `0.6.x`: missing or `x` parts are 0. */
function version(text: string): Version {
  const parts = text.replace(/^v/, "").split(".");
  const [major, minor, patch] = [0, 1, 2].map((i) => {
    const part = parts[i];
    return part === undefined || part === "x" || part === "*" ? 0 : Number(part);
  }) as Version;
  if (![major, minor, patch].every(Number.isInteger)) throw new Error(`not a version: ${text}`);
  return [major, minor, patch];
}

function compare(a: Version, b: Version): number {
  return a[0] - b[0] || a[1] - b[1] || a[2] - b[2];
}

/** Whether `v` satisfies one comparator of an npm range (the forms package.json `engines` fields use). */
function satisfiesComparator(v: Version, comparator: string): boolean {
  if (comparator === "" || comparator === "*" || comparator === "x") return true;
  const match = /^(>=|<=|>|<|=|\^|~)?(.+)$/.exec(comparator);
  if (match === null) throw new Error(`unknown comparator ${comparator}`);
  const [, op = "", text = ""] = match;
  const bound = version(text);
  const c = compare(v, bound);
  const parts = text.split(".").filter((p) => p !== "x" && p !== "*").length;
  switch (op) {
    case ">=":
      return c >= 0;
    case ">":
      return c > 0;
    case "<=":
      return c <= 0;
    case "<":
      return c < 0;
    case "^": {
      const upper: Version = bound[0] > 0 ? [bound[0] + 1, 0, 0] : [0, bound[1] + 1, 0];
      return c >= 0 && compare(v, upper) < 0;
    }
    case "~":
      return c >= 0 && compare(v, [bound[0], bound[1] + 1, 0]) < 0;
    default: {
      // `=1.2.3` or `1.2.3`: exact; `1.2` or `1.2.x`: that minor; `1`: that major.
      if (parts >= 3) return c === 0;
      if (parts === 2) return v[0] === bound[0] && v[1] === bound[1];
      return v[0] === bound[0];
    }
  }
}

function satisfies(v: Version, range: string): boolean {
  return range.split("||").some((alternative) =>
    alternative
      .trim()
      .replace(/(>=|<=|>|<|=|\^|~)\s+/g, "$1")
      .split(/\s+/)
      .every((comparator) => satisfiesComparator(v, comparator)),
  );
}

/** The lowest version `engines` admits (`>=X.Y.Z`). */
function lowest(range: string): Version {
  const match = /^>=\s*(\d+(?:\.\d+){0,2})$/.exec(range.trim());
  if (match === null) throw new Error(`engines.node is expected as >=X.Y.Z, not ${range}`);
  return version(match[1] as string);
}

describe("the range check itself", () => {
  it.each<[string, string, boolean]>([
    ["20.18.1", ">=20.18.1", true],
    ["20.18.0", ">=20.18.1", false],
    ["20.19.0", "^20.19.0 || >=22.12.0", true],
    ["21.0.0", "^20.19.0 || >=22.12.0", false],
    ["22.12.0", "^20.19.0 || >=22.12.0", true],
    ["20.0.0", ">= 18", true],
    ["6.5.0", ">=6 <7 || >=8", true],
    ["7.0.0", ">=6 <7 || >=8", false],
    ["0.6.3", ">=0.6.x", true],
    ["20.1.0", "*", true],
    ["20.1.0", "~20.0.5", false],
  ])("%s against %j: %s", (v, range, expected) => {
    expect(satisfies(version(v), range)).toBe(expected);
  });
});

describe("Node.js versions", () => {
  it("every run-time dependency in the lockfile runs on the lowest Node that engines admits", () => {
    const floor = lowest(pkg.engines.node);
    const refusing = Object.entries(lock.packages)
      .filter(([path, entry]) => path !== "" && !entry.dev && !entry.optional && !entry.devOptional)
      .filter(([, entry]) => entry.engines?.node !== undefined && !satisfies(floor, entry.engines.node))
      .map(([path, entry]) => `${path}@${entry.version} needs node ${entry.engines?.node}`);
    expect(refusing).toEqual([]);
  });

  it("every package in the lockfile runs on the Node the tests run on (SDK updates held below Node 22's)", () => {
    const running = version(process.versions.node);
    const refusing = Object.entries(lock.packages)
      .filter(([path, entry]) => path !== "" && entry.engines?.node !== undefined)
      .filter(([, entry]) => !satisfies(running, entry.engines?.node as string))
      // Platform binaries of the bundler that this platform never installs may say what they like.
      .filter(([path]) => !/@rolldown\/binding-|@napi-rs\/wasm-runtime/.test(path))
      .map(([path, entry]) => `${path}@${entry.version} needs node ${entry.engines?.node}`);
    expect(refusing).toEqual([]);
  });

  it("engines starts at Node 22: Node 20 gets no security fixes since 2026-04-30 (docs/node-support.md)", () => {
    expect(lowest(pkg.engines.node)[0]).toBe(22);
  });

  it("CI tests the release line engines starts at, and every pinned release satisfies engines", async () => {
    const { RUNTIMES } = (await import(`${ROOT}scripts/node-runtime.mjs`)) as {
      RUNTIMES: Record<string, { version: string }>;
    };
    const floor = lowest(pkg.engines.node);
    expect(Object.keys(RUNTIMES)).toContain(String(floor[0]));
    for (const { version: pinned } of Object.values(RUNTIMES)) {
      expect(satisfies(version(pinned), pkg.engines.node)).toBe(true);
    }
  });
});

/** APIs Node 22 or 24 removed, or deprecated at run time (https://nodejs.org/api/deprecations.html). */
const REMOVED: [RegExp, string][] = [
  [/\bpunycode\b/, "the punycode module (DEP0040)"],
  [/\burl\.parse\(|\{[^}]*\bparse\b[^}]*\}\s*from\s*"(node:)?url"/, "url.parse() (DEP0169)"],
  [/\bnew Buffer\(|\bSlowBuffer\b/, "new Buffer() / SlowBuffer (DEP0005, DEP0030)"],
  [/\brmdir(Sync)?\(/, "fs.rmdir (recursive removed, DEP0147): use fs.rm"],
  [/\bprocess\.binding\(/, "process.binding() (DEP0111)"],
  [/\butil\.(is[A-Z]\w*|_extend|log)\b/, "util.is*() / util._extend / util.log (removed in Node 23)"],
  [/\bassert\s*\{\s*type:/, "import assertions (removed in Node 22): use `with`"],
  [/\bassert\.(equal|notEqual|deepEqual|notDeepEqual)\(/, "legacy loose assert (DEP0094 family)"],
  [/\bcreateCipher\(|\bcreateDecipher\(/, "crypto.createCipher (removed in Node 22)"],
  [/\bcreateSecurePair\b/, "tls.createSecurePair (removed in Node 24)"],
  [/\bprocess\.assert\b/, "process.assert (removed in Node 23)"],
  [/\bdirent\.path\b|\.parentPath\b.*\.path\b/, "Dirent.path (DEP0178)"],
  [/\bfs\.exists\(/, "fs.exists (DEP0034)"],
  [/\bnew\s+fs\.Stats\(/, "the fs.Stats constructor (DEP0180)"],
  [/\bmodule\.parent\b/, "module.parent (DEP0144)"],
  [/\bos\.tmpDir\(/, "os.tmpDir() (removed)"],
];

function sources(): [string, string][] {
  const files: string[] = [];
  for (const dir of ["src", "bin", "scripts"]) {
    for (const name of readdirSync(`${ROOT}${dir}`)) {
      if (/\.(ts|mjs|js)$/.test(name) || dir === "bin") files.push(`${dir}/${name}`);
    }
  }
  return files
    .filter((file) => !file.endsWith("package.json"))
    .map((file) => [file, readFileSync(`${ROOT}${file}`, "utf8")]);
}

describe("no API that Node 22 or 24 removed", () => {
  it.each(REMOVED)("%s is not used", (pattern) => {
    const users = sources()
      .filter(([, text]) => pattern.test(text))
      .map(([file]) => file);
    expect(users).toEqual([]);
  });
});
