// Types of fluentd-home.mjs (plain JavaScript, shared with bench/lib/fluentd.mjs).

/** A fluentd to run: spawn `command` with `prefix`, then fluentd's own arguments. */
export interface FoundFluentd {
  command: string;
  prefix: string[];
  /** Where it was found, for notes. */
  where: string;
}

export const VENDORED: string;
export const HINT: string;
export function findFluentd(env?: NodeJS.ProcessEnv): FoundFluentd | { unavailable: string };
export function probeFluentd(
  found: FoundFluentd | { unavailable: string },
  env?: NodeJS.ProcessEnv,
): string | undefined;
