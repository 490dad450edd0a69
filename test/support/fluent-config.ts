// A reader for the subset of fluentd's configuration syntax our shipped configs use, and a router that follows
// tags through <match> directives and labels the way fluentd does. Enough to check our files without a fluentd.
//
// Covered: `<name arg>` … `</name>` directives, `key value` lines, whole-line `#` comments, and (v1 syntax) a
// `#` comment after whitespace in an unquoted value. Not covered: values spanning lines (v1 JSON arrays/hashes,
// multi-line quoted strings), `@include`, embedded Ruby. A file using them fails loudly rather than passing.

export interface Directive {
  name: string;
  arg: string;
  params: Record<string, string>;
  children: Directive[];
  /** 1-based line of the opening tag (0 for the root). */
  line: number;
}

export class ConfigSyntaxError extends Error {
  override name = "ConfigSyntaxError";
}

const OPEN = /^<([A-Za-z_@][\w@.-]*)(?:\s+([^>]*?))?\s*>$/;
const CLOSE = /^<\/([A-Za-z_@][\w@.-]*)\s*>$/;
const PARAM = /^(@?[A-Za-z_][\w.-]*)(?:\s+(.*))?$/;

function unquote(value: string): string {
  const m = /^"((?:[^"\\]|\\.)*)"$/.exec(value) ?? /^'([^']*)'$/.exec(value);
  if (!m) return value;
  return (m[1] ?? "").replace(/\\(.)/g, "$1");
}

function stripTrailingComment(value: string): string {
  if (value.startsWith('"') || value.startsWith("'")) return value;
  return value.replace(/\s+#.*$/, "");
}

/** Parses fluentd configuration text; throws ConfigSyntaxError with a line number on anything unbalanced. */
export function parseFluentConfig(text: string): Directive {
  const root: Directive = { name: "ROOT", arg: "", params: {}, children: [], line: 0 };
  const stack: Directive[] = [root];
  const lines = text.split(/\r?\n/);
  lines.forEach((raw, index) => {
    const lineNo = index + 1;
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) return;
    const top = stack[stack.length - 1]!;
    const close = CLOSE.exec(line);
    if (close) {
      if (stack.length === 1) throw new ConfigSyntaxError(`line ${lineNo}: </${close[1]}> closes nothing`);
      if (close[1] !== top.name) {
        throw new ConfigSyntaxError(`line ${lineNo}: </${close[1]}> closes <${top.name}> opened on line ${top.line}`);
      }
      stack.pop();
      return;
    }
    const open = OPEN.exec(line);
    if (open) {
      const child: Directive = { name: open[1]!, arg: (open[2] ?? "").trim(), params: {}, children: [], line: lineNo };
      top.children.push(child);
      stack.push(child);
      return;
    }
    if (line.startsWith("<")) throw new ConfigSyntaxError(`line ${lineNo}: malformed directive ${line}`);
    const param = PARAM.exec(line);
    if (!param) throw new ConfigSyntaxError(`line ${lineNo}: not a key/value line: ${line}`);
    const key = param[1]!;
    if (key in top.params) throw new ConfigSyntaxError(`line ${lineNo}: ${key} set twice in <${top.name}>`);
    top.params[key] = unquote(stripTrailingComment((param[2] ?? "").trim()));
  });
  if (stack.length > 1) {
    const open = stack[stack.length - 1]!;
    throw new ConfigSyntaxError(`<${open.name}> opened on line ${open.line} is never closed`);
  }
  return root;
}

/** Every directive below `d` (depth first, document order) whose name is `name`. */
export function findAll(d: Directive, name: string): Directive[] {
  const found: Directive[] = [];
  for (const child of d.children) {
    if (child.name === name) found.push(child);
    found.push(...findAll(child, name));
  }
  return found;
}

/** The plugin type: `@type` (v1) or `type` (v0.12). */
export function pluginType(d: Directive): string | undefined {
  return d.params["@type"] ?? d.params.type;
}

/** The first child section called `name` (e.g. <buffer>, <parse>). */
export function section(d: Directive, name: string): Directive | undefined {
  return d.children.find((c) => c.name === name);
}

function matchParts(pattern: string[], tag: string[]): boolean {
  const [head, ...rest] = pattern;
  if (head === undefined) return tag.length === 0;
  if (head === "**") {
    for (let skip = 0; skip <= tag.length; skip++) if (matchParts(rest, tag.slice(skip))) return true;
    return false;
  }
  const [first, ...others] = tag;
  if (first === undefined) return false;
  const source = head
    .split(/(\*|\{[^}]*\})/)
    .map((piece) => {
      if (piece === "*") return "[^.]*";
      if (piece.startsWith("{")) return `(?:${piece.slice(1, -1).split(",").map(escapeRegExp).join("|")})`;
      return escapeRegExp(piece);
    })
    .join("");
  return new RegExp(`^${source}$`).test(first) && matchParts(rest, others);
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/** fluentd's <match> pattern semantics: space-separated alternatives, `*` one tag part, `**` zero or more
 * parts (so `a.**` matches `a`), `{x,y}` alternatives within a part. */
export function tagMatches(patterns: string, tag: string): boolean {
  return patterns
    .split(/\s+/)
    .filter((p) => p !== "")
    .some((p) => matchParts(p.split("."), tag.split(".")));
}

/** Where events of a context go: the top level (ROOT) or a <label>. */
export function context(root: Directive, label: string | undefined): Directive {
  if (label === undefined) return root;
  const found = root.children.find((c) => c.name === "label" && c.arg === label);
  if (!found) throw new Error(`no <label ${label}>`);
  return found;
}

/** The <match> that takes `tag` in `ctx`: fluentd uses the first one whose pattern matches. */
export function firstMatch(ctx: Directive, tag: string): Directive | undefined {
  return ctx.children.find((c) => c.name === "match" && tagMatches(c.arg, tag));
}

export interface Hop {
  label: string | undefined;
  tag: string;
  match: Directive;
}

/** The tags an exec_filter can emit: its `tag`, and `_tag` values its command may put in records. */
export type EmittedTags = (execFilter: Directive) => string[];

/**
 * Follows one event from (label, tag) through relabels and exec_filters until it reaches an ordinary output.
 * Returns every path taken; throws on a loop (a match reached twice on one path) or on a tag nothing matches.
 */
export function route(root: Directive, label: string | undefined, tag: string, emitted: EmittedTags): Hop[][] {
  const paths: Hop[][] = [];
  const walk = (lbl: string | undefined, t: string, path: Hop[]): void => {
    const match = firstMatch(context(root, lbl), t);
    if (!match) throw new Error(`no <match> for tag ${t} in ${lbl ?? "the top level"}`);
    if (path.some((hop) => hop.match === match)) {
      const trail = [...path.map((h) => `${h.tag}@${h.label ?? "top"}`), `${t}@${lbl ?? "top"}`].join(" -> ");
      throw new Error(`routing loop: ${trail} reaches <match ${match.arg}> (line ${match.line}) again`);
    }
    const here = [...path, { label: lbl, tag: t, match }];
    const type = pluginType(match);
    const next = match.params["@label"];
    if (type === "copy") throw new Error(`<match ${match.arg}>: copy is not followed by this router`);
    if (type === "relabel") {
      walk(next, t, here);
    } else if (type === "exec_filter") {
      for (const out of emitted(match)) walk(next ?? lbl, out, here);
    } else {
      paths.push(here);
    }
  };
  walk(label, tag, []);
  return paths;
}

/** The worker ids a `<worker>` directive names: `<worker 1>` or a range `<worker 0-3>`. */
export function workerIds(worker: Directive): number[] {
  const m = /^(\d+)(?:-(\d+))?$/.exec(worker.arg);
  if (!m) throw new Error(`<worker ${worker.arg}> (line ${worker.line}): not a worker id or range`);
  const first = Number(m[1]);
  const last = Number(m[2] ?? m[1]);
  return Array.from({ length: last - first + 1 }, (_, i) => first + i);
}

/**
 * The configuration worker `id` runs under `<system> workers N`: the directives outside every `<worker>` block, then
 * the contents of the blocks that name it, as fluentd merges them (root_agent.rb: `conf += e`, then the blocks go).
 */
export function workerView(root: Directive, id: number): Directive {
  const shared = root.children.filter((c) => c.name !== "worker");
  const own = root.children.filter((c) => c.name === "worker" && workerIds(c).includes(id)).flatMap((w) => w.children);
  return { ...root, children: [...shared, ...own] };
}
