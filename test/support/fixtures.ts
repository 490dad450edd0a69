// The fixtures copied into test/fixtures (see its LICENSE).
import { readFileSync } from "node:fs";

/** An AWS documentation example of a notification body, as text. */
export function notificationText(name: string): string {
  return readFileSync(new URL(`../fixtures/notifications/${name}`, import.meta.url), "utf8");
}
