// Folders of src/ import downward only (issue 22): each folder has a rank (RANKS) and may import its own files and
// folders of lower rank; two folders are held to a shorter list (ONLY); the folder graph has no cycle; every folder and
// every file at src/'s root is placed. Every relative import of every module counts: static, re-exports, type-only and
// dynamic `import("…")`, because a type-only import ties the folders' meaning together as much as any, though tsc
// erases it. The table is here and nowhere else; docs/development.md "Where things are" describes it.
import { readdirSync, readFileSync } from "node:fs";
import { posix } from "node:path";
import { fileURLToPath } from "node:url";
import ts from "typescript";
import { describe, expect, it } from "vitest";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));

/** The entries at src/'s root (ENTRIES), ranked as if they were one more folder, above all the others. */
const ROOT_ENTRIES = "(root entries)";

/**
 * A folder's rank, lowest first: a folder may import itself and folders of strictly lower rank, so the folder graph
 * has no cycle. Equal ranks are siblings that do not know each other.
 */
const RANKS: Readonly<Record<string, number>> = {
  shared: 0,
  model: 1,
  decode: 1,
  records: 2,
  fetch: 2,
  input: 3,
  format: 3,
  deliver: 4,
  listing: 4,
  integrity: 5,
  run: 6,
  observe: 7,
  cli: 8,
  [ROOT_ENTRIES]: 9,
};

/**
 * Folders held to fewer than the rank allows. `decode/` (inflate, scan) is the byte-faithful core and runs in the
 * scan worker: it needs small shared helpers and nothing that names a record, a client or an output. `fetch/` opens
 * objects' bytes and must not know how they are parsed: no `records/`, `decode/` or `format/`.
 */
const ONLY: Readonly<Record<string, readonly string[]>> = {
  decode: ["shared"],
  fetch: ["shared", "model"],
};

/** The program's entries: what `bin/` and the worker start. Nothing imports them. */
const ENTRIES = ["cli.ts", "scan-worker.ts"];

/**
 * Leaves that import nothing and that any module may import. They sit at src/'s root rather than in a folder only
 * because scripts/bundle.mjs and scripts/build-exe.mjs expect `version.js` and `scan-worker-script.js` at dist/'s root.
 */
const LEAVES = ["version.ts", "scan-worker-script.ts"];

/**
 * The relative module specifiers of a module's text: static, re-export, type-only, dynamic and `import("…")` types.
 * A dynamic import of a computed name comes back as its source text (not starting with "."), for `broken` to refuse.
 */
function relativeImports(fileName: string, text: string): string[] {
  const source = ts.createSourceFile(fileName, text, ts.ScriptTarget.Latest, false, ts.ScriptKind.TS);
  const found: string[] = [];
  const visit = (node: ts.Node): void => {
    let specifier: ts.Expression | undefined;
    if (ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) specifier = node.moduleSpecifier;
    else if (ts.isImportEqualsDeclaration(node) && ts.isExternalModuleReference(node.moduleReference)) {
      specifier = node.moduleReference.expression;
    } else if (ts.isCallExpression(node) && node.expression.kind === ts.SyntaxKind.ImportKeyword) {
      specifier = node.arguments[0];
      if (specifier !== undefined && !ts.isStringLiteralLike(specifier)) found.push(specifier.getText(source));
    } else if (ts.isImportTypeNode(node) && ts.isLiteralTypeNode(node.argument)) specifier = node.argument.literal;
    if (specifier !== undefined && ts.isStringLiteralLike(specifier) && specifier.text.startsWith(".")) {
      found.push(specifier.text);
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return found;
}

/** `decode/inflate.ts` → `decode`; `cli.ts` → the root entries; a leaf → undefined (it belongs to no layer). */
function layerOf(path: string): string | undefined {
  const slash = path.indexOf("/");
  if (slash >= 0) return path.slice(0, slash);
  return LEAVES.includes(path) ? undefined : ROOT_ENTRIES;
}

/** The module `from` (a path under src/) names by `specifier`, as a path under src/ (`../` when outside). */
function targetOf(from: string, specifier: string): string {
  return posix.normalize(posix.join(posix.dirname(from), specifier)).replace(/\.js$/, ".ts");
}

/** The rule broken by `from` (a path under src/) importing `specifier`, or undefined when it is allowed. */
function broken(from: string, specifier: string): string | undefined {
  if (!specifier.startsWith(".")) return "an import() of a computed name, which no table can check: name the module";
  const target = targetOf(from, specifier);
  if (target.startsWith("../") || target === "..") return "that module is outside src/";
  if (LEAVES.includes(from)) return `${from} is a leaf at src/'s root and imports nothing`;
  if (ENTRIES.includes(target)) return `${target} is an entry of the program; nothing imports it`;
  const source = layerOf(from) as string;
  const layer = layerOf(target);
  if (layer === undefined || layer === source) return undefined;
  const only = ONLY[source];
  if (only !== undefined && !only.includes(layer)) {
    return `${source}/ may import only ${only.map((name) => `${name}/`).join(", ")} (not ${layer}/)`;
  }
  const rank = RANKS[source] as number;
  const theirs = RANKS[layer];
  if (theirs === undefined) return `${layer}/ has no rank in test/contract/layers.test.ts`;
  if (theirs >= rank) {
    return `${source}/ (rank ${rank}) may import only folders of lower rank; ${layer}/ is rank ${theirs}`;
  }
  return undefined;
}

/** Path under src/ → the relative imports of that module. */
type Imports = ReadonlyMap<string, readonly string[]>;

/** The relative imports of modules given as path under src/ → text. */
function importsOf(texts: ReadonlyMap<string, string>): Imports {
  return new Map([...texts].map(([path, text]) => [path, relativeImports(path, text)]));
}

/** Every module of src/, read and parsed once for all the tests below. */
const SRC: Imports = importsOf(
  new Map(
    readdirSync(`${ROOT}src`, { recursive: true, encoding: "utf8" })
      .filter((name) => name.endsWith(".ts"))
      .sort()
      .map((name) => [name, readFileSync(`${ROOT}src/${name}`, "utf8")]),
  ),
);

/** One line per import that breaks the table: file, import, rule. */
function violations(files: Imports): string[] {
  const found: string[] = [];
  for (const [from, specifiers] of files) {
    for (const specifier of specifiers) {
      const rule = broken(from, specifier);
      if (rule !== undefined) found.push(`src/${from} imports "${specifier}": ${rule}`);
    }
  }
  return found;
}

/** The folders and root files that no rule places. */
function unplaced(files: Imports): string[] {
  const found = new Set<string>();
  for (const path of files.keys()) {
    const layer = layerOf(path);
    if (layer === ROOT_ENTRIES && !ENTRIES.includes(path)) {
      found.add(`src/${path} is at src/'s root but is neither an entry nor a leaf: put it in a folder`);
    } else if (layer !== undefined && layer !== ROOT_ENTRIES && RANKS[layer] === undefined) {
      found.add(`src/${layer}/ has no rank: give it one in RANKS (test/contract/layers.test.ts)`);
    }
  }
  return [...found];
}

/** A cycle in the folder graph the imports draw, as `a → b → a`, or undefined. */
function folderCycle(files: Imports): string | undefined {
  const edges = new Map<string, Set<string>>();
  for (const [from, specifiers] of files) {
    const source = layerOf(from);
    if (source === undefined) continue;
    for (const specifier of specifiers.filter((text) => text.startsWith("."))) {
      const layer = layerOf(targetOf(from, specifier));
      if (layer === undefined || layer === source) continue;
      edges.set(source, (edges.get(source) ?? new Set()).add(layer));
    }
  }
  const done = new Set<string>();
  const path: string[] = [];
  const walk = (folder: string): string | undefined => {
    if (path.includes(folder)) return [...path.slice(path.indexOf(folder)), folder].join(" → ");
    if (done.has(folder)) return undefined;
    path.push(folder);
    for (const next of edges.get(folder) ?? []) {
      const cycle = walk(next);
      if (cycle !== undefined) return cycle;
    }
    path.pop();
    done.add(folder);
    return undefined;
  };
  for (const folder of edges.keys()) {
    const cycle = walk(folder);
    if (cycle !== undefined) return cycle;
  }
  return undefined;
}

describe("layers", () => {
  it("sees every kind of relative import, type-only and dynamic included", () => {
    const text = [
      'import { a } from "./a.js";',
      'import type { B } from "../b/b.js";',
      'import { type C, d } from "../c/c.js";',
      'import "./side-effect.js";',
      'export { e } from "./e.js";',
      'export type { F } from "./f.js";',
      'export * from "./g.js";',
      'import { h } from "node:fs";',
      'const i = await import("./i.js");',
      "function j() { return import(`./j.js`).then((m) => m); }",
      'let k: typeof import("./k.js");',
      'let l: import("./l.js").L;',
      "const m = await import(name);",
    ].join("\n");
    expect(relativeImports("x.ts", text)).toEqual([
      "./a.js",
      "../b/b.js",
      "../c/c.js",
      "./side-effect.js",
      "./e.js",
      "./f.js",
      "./g.js",
      "./i.js",
      "./j.js",
      "./k.js",
      "./l.js",
      "name",
    ]);
  });

  it("fails on a planted violation, naming the file, the import and the rule", () => {
    const planted = importsOf(
      new Map([
        ["decode/inflate.ts", 'import { shared } from "../shared/buffers.js";\nimport "../format/format.js";'],
        ["fetch/fetch.ts", 'import type { ObjectRef } from "../records/records.js";'],
        ["model/names.ts", 'const run = await import("../run/filter.js");'],
        ["version.ts", 'import { log } from "./shared/log.js";'],
        ["run/filter.ts", 'import { main } from "../cli.js";'],
        ["shared/log.ts", 'import { Filter } from "../run/filter.js";'],
        ["run/x.ts", 'import { log } from "../shared/log.js";'],
        ["stray.ts", ""],
        ["newfolder/x.ts", 'import { version } from "../version.js";'],
        ["input/lines.ts", 'const mod = await import("../" + name);'],
        ["model/sink.ts", 'import pkg from "../../package.json";'],
      ]),
    );
    expect(violations(planted)).toEqual([
      'src/decode/inflate.ts imports "../format/format.js": decode/ may import only shared/ (not format/)',
      'src/fetch/fetch.ts imports "../records/records.js": fetch/ may import only shared/, model/ (not records/)',
      'src/model/names.ts imports "../run/filter.js": model/ (rank 1) may import only folders of lower rank; run/ is rank 6',
      `src/version.ts imports "./shared/log.js": version.ts is a leaf at src/'s root and imports nothing`,
      'src/run/filter.ts imports "../cli.js": cli.ts is an entry of the program; nothing imports it',
      'src/shared/log.ts imports "../run/filter.js": shared/ (rank 0) may import only folders of lower rank; run/ is rank 6',
      'src/input/lines.ts imports ""../" + name": an import() of a computed name, which no table can check: name the module',
      'src/model/sink.ts imports "../../package.json": that module is outside src/',
    ]);
    expect(unplaced(planted)).toEqual([
      "src/stray.ts is at src/'s root but is neither an entry nor a leaf: put it in a folder",
      "src/newfolder/ has no rank: give it one in RANKS (test/contract/layers.test.ts)",
    ]);
    expect(folderCycle(planted)).toBe("shared → run → shared");
  });

  it("every folder of src/ and every file at its root has a place in the table", () => {
    expect(unplaced(SRC)).toEqual([]);
  });

  it("every folder of src/ imports only folders below it", () => {
    expect(violations(SRC)).toEqual([]);
  });

  it("the folder graph has no cycle", () => {
    expect(folderCycle(SRC)).toBeUndefined();
  });
});
