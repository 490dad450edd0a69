// Types of lazy-builtins.mjs (plain JavaScript, loaded by the bundling scripts and by test/system/startup.test.ts).

/** The built-in modules the bundles load on first use, without `node:`. */
export const LAZY_BUILTINS: readonly string[];
/** The rolldown plugin. */
export function lazyBuiltins(): { name: string; renderChunk(code: string): { code: string; map: null } | null };
