// Compact JSON text laid out again as other tools write it, for tests of the scanner's whitespace handling. Token by
// token, so every literal (numbers, escapes) stays exactly as written and only whitespace outside strings changes.

// A string (escapes included), a structural character, or a run of anything else (numbers, true, false, null).
const TOKEN = /"[^"\\]*(?:\\.[^"\\]*)*"|[{}[\],:]|[^"{}[\],:]+/g;

/**
 * - `spaced`: python's `json.dumps` separators, `", "` and `": "`.
 * - `pretty`: `JSON.stringify(value, null, 2)`'s layout.
 * - `pretty-crlf`: python's `indent=4` with CRLF line ends and a tab after each.
 * - `loose`: whitespace of every kind on both sides of every structural character.
 */
export type Layout = "spaced" | "pretty" | "pretty-crlf" | "loose";
export const LAYOUTS: readonly Layout[] = ["spaced", "pretty", "pretty-crlf", "loose"];

export function layOut(text: string, layout: Layout): string {
  if (layout === "spaced") return text.replace(TOKEN, (t) => (t === "," ? ", " : t === ":" ? ": " : t));
  if (layout === "loose")
    return text.replace(TOKEN, (t) => (t.length === 1 && "{}[],:".includes(t) ? ` \t${t}\r\n ` : t));
  const [unit, newline] = layout === "pretty" ? ["  ", "\n"] : ["    ", "\r\n\t"];
  let depth = 0;
  const pad = (): string => newline + unit.repeat(depth);
  return text.replace(TOKEN, (t, at: number) => {
    if (t === "{" || t === "[") {
      const next = text[at + 1];
      if (next === "}" || next === "]") return t;
      depth++;
      return t + pad();
    }
    if (t === "}" || t === "]") {
      const previous = text[at - 1];
      if (previous === "{" || previous === "[") return t;
      depth--;
      return pad() + t;
    }
    if (t === ",") return `,${pad()}`;
    if (t === ":") return ": ";
    return t;
  });
}
