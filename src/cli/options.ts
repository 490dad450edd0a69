// The values of command-line options, parsed: each function takes the option's text and returns its value or throws
// commander's InvalidArgumentError (a usage error, exit 2). One home for them, so that every command reads a number,
// a duration, a region or a list the same way (the filter, import and sqs in cli.ts; verify in cli/verify.ts).
import { InvalidArgumentError } from "commander";
import { parseDay } from "../listing/layout.js";
import { isInvalid, parseRegion, type Region } from "../model/names.js";
import { parseEndpoint } from "../model/settings.js";
import { type ListenAddress, parseListenAddress } from "../observe/address.js";

/** A whole number from `min` to `max`. */
export function integer(min: number, max = Number.MAX_SAFE_INTEGER) {
  return (value: string): number => {
    const n = Number(value);
    if (!/^\d+$/.test(value.trim()) || !Number.isSafeInteger(n) || n < min || n > max) {
      throw new InvalidArgumentError(`expected a whole number from ${min} to ${max}`);
    }
    return n;
  };
}

/** Seconds, 0 or more (fractions allowed). */
export function seconds(value: string): number {
  const n = Number(value);
  if (value.trim() === "" || !Number.isFinite(n) || n < 0) throw new InvalidArgumentError("expected seconds (>= 0)");
  return n;
}

/** Seconds above 0: a timeout of 0 would fail every request at once. */
export function positiveSeconds(value: string): number {
  const n = seconds(value);
  if (n === 0) throw new InvalidArgumentError("expected seconds (> 0)");
  return n;
}

/** `--stats-interval`: 0 (off), or at least a tenth of a second (shorter would flood the log). */
export function statsInterval(value: string): number {
  const n = seconds(value);
  if (n > 0 && n < 0.1) throw new InvalidArgumentError("expected 0 (off) or at least 0.1 seconds");
  return n;
}

/** A value that must not be empty: a field name or a tag. */
export function nonEmpty(value: string): string {
  if (value === "") throw new InvalidArgumentError("expected a non-empty value");
  return value;
}

/** `--region`: parsed as a region a message names is (names.ts); it becomes part of every AWS host name. */
export function region(value: string): Region {
  const parsed = parseRegion(value);
  if (isInvalid(parsed)) throw new InvalidArgumentError(`${JSON.stringify(value)} ${parsed.reason}`);
  return parsed;
}

/** `--endpoint`: an http(s) URL (settings.ts). */
export function endpoint(value: string): string {
  const parsed = parseEndpoint(value);
  if (isInvalid(parsed)) throw new InvalidArgumentError(`${JSON.stringify(value)} ${parsed.reason}`);
  return parsed;
}

/** `--since`/`--until`: a day as YYYY-MM-DD (layout.ts). */
export function day(value: string): string {
  const parsed = parseDay(value);
  if (parsed === undefined) throw new InvalidArgumentError("expected a day as YYYY-MM-DD");
  return parsed;
}

/** A comma-separated list of at least one item (`--accounts`, `--regions`). */
export function list(value: string): string[] {
  const items = value
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s !== "");
  if (items.length === 0) throw new InvalidArgumentError("expected a comma-separated list");
  return items;
}

/** `--metrics-listen [HOST:]PORT` (observe/address.ts). */
export function listenAddress(value: string): ListenAddress {
  const parsed = parseListenAddress(value);
  if (typeof parsed === "string") throw new InvalidArgumentError(parsed);
  return parsed;
}
