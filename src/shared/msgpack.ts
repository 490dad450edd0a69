// @msgpack/msgpack, loaded on first use: only msgpack runs need it, and every run would otherwise pay its load time.
import { createRequire } from "node:module";

type Msgpack = typeof import("@msgpack/msgpack");

let loaded: Msgpack | undefined;

export function msgpack(): Msgpack {
  loaded ??= createRequire(import.meta.url)("@msgpack/msgpack") as Msgpack;
  return loaded;
}
