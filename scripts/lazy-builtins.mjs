// A rolldown plugin for the bundles this project makes: built-in modules that only some paths use load on first use.
/**
 * Built-in modules that no file:// run uses, loaded on first use instead of when their chunk loads. Node compiles a
 * built-in module the first time it is required, and these are large: node:crypto, node:tls and node:child_process
 * (commander requires it for subcommand executables, which this program has none of; it brings node:dgram) cost a
 * file:// run 20-30 ms of start-up on 2 cores, about 3% of the CPU scenario (issue 21), and fluentd pays the start-up
 * at every start of the child. Only the bundle changes: a chunk's `require("node:crypto")` becomes a stand-in that
 * requires the module at its first property access (`node_crypto.createHash` in rolldown's output), and anything that
 * looks at the whole module (its keys, `in`) loads it too, so every use behaves as the module itself.
 * test/system/startup.test.ts checks that a file:// run loads none of them. Used by scripts/bundle.mjs (dist/cli.cjs
 * and its chunks) and scripts/build-exe.mjs (the single executable's script).
 */
export const LAZY_BUILTINS = [
  "child_process",
  "crypto",
  "dgram",
  "dns",
  "http",
  "http2",
  "https",
  "net",
  "readline",
  "tls",
  "worker_threads",
];

/** The stand-in: a function declaration, so it can go at the chunk's end, where the source map's lines stay right. */
const LAZY_HELPER =
  "function __lazyBuiltin(id) { let m; const load = () => (m ??= require(id)); return new Proxy({}, { " +
  "get: (_, key) => load()[key], set: (_, key, value) => { load()[key] = value; return true; }, " +
  "has: (_, key) => key in load(), ownKeys: () => Reflect.ownKeys(load()), " +
  "getOwnPropertyDescriptor: (_, key) => { const d = Reflect.getOwnPropertyDescriptor(load(), key); " +
  "if (d !== undefined) d.configurable = true; return d; } }); } ";

/** A rolldown plugin that makes the chunks' `require(...)` of LAZY_BUILTINS lazy, with or without `node:` (see there). */
export function lazyBuiltins() {
  const pattern = new RegExp(`require\\("((?:node:)?(?:${LAZY_BUILTINS.join("|")}))"\\)`, "g");
  return {
    name: "lazy-builtins",
    renderChunk(code) {
      const lazy = code.replace(pattern, (_, id) => `__lazyBuiltin("${id}")`);
      return lazy === code ? null : { code: `${lazy}\n${LAZY_HELPER}\n`, map: null };
    },
  };
}
