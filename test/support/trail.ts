// Real CloudTrail fixture files as the end-to-end tests use them: events renamed per test phase, and counting.
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

export const FIXTURES = fileURLToPath(new URL("../fixtures/invictus-cloudtrail/", import.meta.url));

/** The fixture files' names (`ACCOUNT_CloudTrail_REGION_….json`), sorted. */
export const FIXTURE_NAMES = readdirSync(FIXTURES)
  .filter((name) => name.endsWith(".json"))
  .sort();

export interface TrailEvent {
  eventID: string;
  eventTime: string;
  [key: string]: unknown;
}

/** A fixture's events with `prefix-` before each eventID, so that every phase of a test has events of its own. */
export function trail(name: string, prefix: string): TrailEvent[] {
  const records = (JSON.parse(readFileSync(join(FIXTURES, name), "utf8")) as { Records: TrailEvent[] }).Records;
  return records.map((event) => ({ ...event, eventID: `${prefix}-${event.eventID}` }));
}

/** How often each id occurs. */
export function countOf(ids: string[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const id of ids) counts.set(id, (counts.get(id) ?? 0) + 1);
  return counts;
}
