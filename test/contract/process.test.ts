// Only one module names Node's `process`: src/cli/host.ts, which builds the Host (src/shared/host.ts) that the command
// line hands down, so that every other module can run in a test without a process of its own (issue 22, item 2).
// Each module of src/ is parsed with TypeScript's own parser, so comments and string literals never count, and a
// property called `process` (`x.process`, `{ process: … }`) is not the global; `globalThis.process` is.
import { readdirSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import ts from "typescript";
import { describe, expect, it } from "vitest";

const SRC = fileURLToPath(new URL("../../src/", import.meta.url));
const THE_ONE = "cli/host.ts";

/** The lines (1-based) where `text` names the global `process`. */
function namesProcess(text: string, fileName = "module.ts"): number[] {
  const file = ts.createSourceFile(fileName, text, ts.ScriptTarget.Latest, true, ts.ScriptKind.TS);
  const lines: number[] = [];
  const at = (node: ts.Node): void => {
    lines.push(file.getLineAndCharacterOfPosition(node.getStart(file)).line + 1);
  };
  const visit = (node: ts.Node): void => {
    if (ts.isIdentifier(node) && node.text === "process" && !isPropertyName(node)) at(node);
    if (ts.isPropertyAccessExpression(node) && node.name.text === "process" && isGlobalThis(node.expression)) at(node);
    if (
      ts.isElementAccessExpression(node) &&
      ts.isStringLiteralLike(node.argumentExpression) &&
      node.argumentExpression.text === "process" &&
      isGlobalThis(node.expression)
    ) {
      at(node);
    }
    ts.forEachChild(node, visit);
  };
  visit(file);
  return lines;
}

/** `x.process`, `{ process: 1 }`, `class { process() {} }`: a name of a property, not the global. */
function isPropertyName(node: ts.Identifier): boolean {
  const parent = node.parent;
  if (ts.isPropertyAccessExpression(parent)) return parent.name === node;
  if (ts.isQualifiedName(parent)) return parent.right === node;
  if (
    ts.isPropertyAssignment(parent) ||
    ts.isPropertyDeclaration(parent) ||
    ts.isPropertySignature(parent) ||
    ts.isMethodDeclaration(parent) ||
    ts.isMethodSignature(parent) ||
    ts.isGetAccessorDeclaration(parent) ||
    ts.isSetAccessorDeclaration(parent)
  ) {
    return parent.name === node;
  }
  // `const { process: p } = …`: the property's name (a `{ process }` shorthand does bind the name, and counts).
  if (ts.isBindingElement(parent)) return parent.propertyName === node;
  return false;
}

function isGlobalThis(node: ts.Expression): boolean {
  return ts.isIdentifier(node) && node.text === "globalThis";
}

describe("only one module names process", () => {
  it.each([
    ["process.exit(1);", [1]],
    // biome-ignore lint/suspicious/noTemplateCurlyInString: the text of a template literal, parsed as a module
    ["const pid = `${process.pid}`;", [1]],
    ["const env: typeof process.env = {};", [1]],
    ["const { process } = globalThis;", [1]],
    ["globalThis.process.exit(0);", [1]],
    ['globalThis["process"].exit(0);', [1]],
    ["// process.exit(1)\n/* process */ const a = 1;", []],
    ["const a = 'process'; const b = \"process.exit\"; const c = `process`;", []],
    ["const a = /process/;", []],
    ["const o = { process: 1 }; o.process; class C { process() {} }", []],
    ["const { process: p } = { process: 1 };", []],
    ["type S = NodeJS.Signals; let e: NodeJS.ErrnoException; let p: NodeJS.Process;", []],
  ])("%s", (text, lines) => {
    expect(namesProcess(text)).toEqual(lines);
  });

  it(`no module of src/ but ${THE_ONE} names it`, () => {
    const modules = readdirSync(SRC, { recursive: true, encoding: "utf8" })
      .filter((name) => name.endsWith(".ts"))
      .map((name) => name.split("\\").join("/"));
    expect(modules).toContain(THE_ONE);
    const offenders = modules
      .filter((name) => name !== THE_ONE)
      .flatMap((name) =>
        namesProcess(readFileSync(`${SRC}${name}`, "utf8"), name).map((line) => `src/${name}:${line}`),
      );
    expect(offenders).toEqual([]);
    expect(namesProcess(readFileSync(`${SRC}${THE_ONE}`, "utf8"))).not.toEqual([]);
  });
});
