// package.json's dependencies tell the truth: exactly the packages the program loads at run time, which
// docs/dependencies.md "Dependencies" lists with why. What the program loads is read from tsc's output for each module
// of src/ (type-only imports are gone there), so the test runs after the build, as `npm test` does.
import { readdirSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const pkg = JSON.parse(readFileSync(`${ROOT}package.json`, "utf8")) as {
  dependencies: Record<string, string>;
  bundleDependencies: string[];
  optionalDependencies: Record<string, string>;
  devDependencies: Record<string, string>;
};

/** `@scope/name/sub` → `@scope/name`; `name/sub` → `name`. */
function packageOf(specifier: string): string {
  const parts = specifier.split("/");
  return (specifier.startsWith("@") ? parts.slice(0, 2) : parts.slice(0, 1)).join("/");
}

/** The packages a compiled module loads: static and dynamic imports, require and createRequire(…)(…) calls. */
function loadedBy(code: string): string[] {
  const specifiers = [...code.matchAll(/(?:\bfrom\s*|\bimport\s*\(\s*|\brequire\s*\(\s*|\)\s*\(\s*)"([^"]+)"/g)].map(
    (match) => match[1] as string,
  );
  return specifiers.filter((s) => !s.startsWith(".") && !s.startsWith("node:") && !s.startsWith("/")).map(packageOf);
}

function runtimePackages(): string[] {
  // Every folder of src/ (integrity/, cli/, observe/, and the stages of issue 22).
  const modules = readdirSync(`${ROOT}src`, { recursive: true, encoding: "utf8" }).filter((name) =>
    name.endsWith(".ts"),
  );
  const found = new Set<string>();
  for (const name of modules) {
    const compiled = readFileSync(`${ROOT}dist/${name.replace(/\.ts$/, ".js")}`, "utf8");
    for (const dependency of loadedBy(compiled)) found.add(dependency);
  }
  return [...found].sort();
}

/** The first column of the table under `## Dependencies` in docs/dependencies.md. */
function readmePackages(): string[] {
  const readme = readFileSync(`${ROOT}docs/dependencies.md`, "utf8");
  const section = readme.slice(readme.indexOf("\n## Dependencies\n"));
  const table = section.slice(0, section.indexOf("\n\n", section.indexOf("| package |")));
  return [...table.matchAll(/^\| `([^`]+)` \|/gm)].map((match) => match[1] as string).sort();
}

describe("dependencies", () => {
  it("the loader patterns see what tsc writes", () => {
    expect(
      loadedBy(
        'import { a } from "undici";\nconst m = await import("@aws-sdk/client-sqs");\n' +
          'createRequire(import.meta.url)("@msgpack/msgpack");\nimport { b } from "@smithy/core/protocols";\n' +
          'import { c } from "../local.js";\nimport { d } from "node:fs";',
      ),
    ).toEqual(["undici", "@aws-sdk/client-sqs", "@msgpack/msgpack", "@smithy/core"]);
  });

  it("package.json's dependencies are exactly the packages src/ loads at run time", () => {
    expect(runtimePackages()).toEqual(Object.keys(pkg.dependencies).sort());
  });

  it("the tarball bundles every one of them (its installs take the lockfile's versions, with no registry)", () => {
    expect([...pkg.bundleDependencies].sort()).toEqual(Object.keys(pkg.dependencies).sort());
  });

  it("docs/dependencies.md lists exactly those, and names the optional build tools", () => {
    expect(readmePackages()).toEqual(Object.keys(pkg.dependencies).sort());
    const readme = readFileSync(`${ROOT}docs/dependencies.md`, "utf8");
    for (const tool of Object.keys(pkg.optionalDependencies)) expect(readme).toContain(`\`${tool}\``);
  });

  it("the optional build tools and the dev tools are never loaded at run time", () => {
    const loaded = new Set(runtimePackages());
    for (const name of [...Object.keys(pkg.optionalDependencies), ...Object.keys(pkg.devDependencies)]) {
      expect(loaded.has(name), name).toBe(false);
    }
  });
});
