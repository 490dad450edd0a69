// Reads and writes the spool's journal (src/input/spool.ts) from outside, as a test that kills the filter needs to: which
// records are accepted and which done, and how to write a torn entry or a first-format journal.
import { existsSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";

export const journalPath = (spool: string): string => join(spool, "journal");
export const oldJournalPath = (spool: string): string => join(spool, "journal.jsonl");

export const journalBytes = (spool: string): number =>
  existsSync(journalPath(spool)) ? statSync(journalPath(spool)).size : 0;

export type JournalEntry = { kind: "a" | "j"; id: number; text: string } | { kind: "d"; id: number };

/** The whole entries of a journal file (a torn last one left out). */
export function journalEntries(spool: string): JournalEntry[] {
  if (!existsSync(journalPath(spool))) return [];
  const bytes = readFileSync(journalPath(spool));
  const entries: JournalEntry[] = [];
  let at = 0;
  for (;;) {
    const nl = bytes.indexOf(0x0a, at);
    if (nl === -1) return entries;
    const [kind, id, length] = bytes.toString("latin1", at, nl).split(" ");
    if (kind === "d") {
      entries.push({ kind, id: Number(id) });
      at = nl + 1;
      continue;
    }
    const end = nl + 1 + Number(length);
    if (end >= bytes.length || (kind !== "a" && kind !== "j")) return entries;
    const payload = bytes.toString("utf8", nl + 1, end);
    entries.push({ kind, id: Number(id), text: kind === "j" ? (JSON.parse(payload) as string) : payload });
    at = end + 1;
  }
}

/** Records accepted so far (done or not). */
export const acceptedIn = (spool: string): number => journalEntries(spool).filter((e) => e.kind !== "d").length;

/** An accept entry as the spool writes it. */
export function acceptEntry(id: number, text: string): Buffer {
  const payload = Buffer.from(text, "utf8");
  return Buffer.concat([Buffer.from(`a ${id} ${payload.length}\n`), payload, Buffer.from("\n")]);
}

/** A first-format journal line (`{"a":ID,"t":TEXT}` / `{"d":ID}`), as versions before the framed journal wrote. */
export const oldAccept = (id: number, text: string): string => `${JSON.stringify({ a: id, t: text })}\n`;
export const oldDone = (id: number): string => `{"d":${id}}\n`;
