// Where CloudTrail puts its log files, and which listings find the ones an import wants without listing the bucket.
//
// Layout (https://docs.aws.amazon.com/awscloudtrail/latest/userguide/get-and-view-cloudtrail-log-files.html):
//   [custom/prefix/]AWSLogs/[o-ORGID/]ACCOUNT/CloudTrail/REGION/YYYY/MM/DD/ACCOUNT_CloudTrail_REGION_YYYYMMDDTHHmmZ_X.json.gz
// with CloudTrail-Insight/ (logs too) and CloudTrail-Digest/ (integrity manifests, not logs) beside CloudTrail/.
// The walk goes down the layout one level at a time with Delimiter "/" listings (a few requests per account and
// region), and lists objects only under the day prefixes in the date range. The dates are the delivery dates in the
// keys (UTC); a file can hold events from earlier than its date.

/** An object found by a listing. `key` is relative to the lister's root (an S3 key, or a path below `/`). */
export interface ObjectEntry {
  key: string;
  size: number;
}

/** The two listings the walk needs; the S3 and the directory listers implement it, tests hand in their own. */
export interface Lister {
  /** The sub-prefixes one level under `prefix` (each ending in "/"), as ListObjectsV2 with Delimiter "/" gives. */
  children(prefix: string): Promise<string[]>;
  /** Every object under `prefix`, a page at a time, in key order. */
  objects(prefix: string): AsyncIterable<ObjectEntry[]>;
}

export interface Selection {
  /** First and last day included, `YYYY-MM-DD` (UTC, the date in the key). */
  since?: string;
  until?: string;
  accounts?: ReadonlySet<string>;
  regions?: ReadonlySet<string>;
}

type Level =
  | "search"
  | "awslogs"
  | "org"
  | "account"
  | "trail"
  | "region"
  | "year"
  | "month"
  | "day"
  | "below"
  | "none";

/** A prefix and where it sits in the layout. `date` holds the year, month and day segments seen so far. */
export interface Node {
  prefix: string;
  level: Level;
  account?: string;
  region?: string;
  date: string[];
}

/** How many levels under a custom prefix (or the bucket root) are searched for `AWSLogs/`. */
export const SEARCH_DEPTH = 3;
/** A date range covering at most this many days of a node is listed day by day, without discovering the dates. */
export const DIRECT_DAYS = 31;

const TRAIL_TYPES: ReadonlySet<string> = new Set(["CloudTrail", "CloudTrail-Insight"]);
const ORG = /^o-[a-z0-9]+$/;
const YEAR = /^\d{4}$/;
const TWO_DIGITS = /^\d{2}$/;
const LOG_NAME = /^(\d{12})_CloudTrail(?:-Insight)?_([a-z0-9-]+)_(\d{4})(\d{2})(\d{2})T\d{4}Z_[^/]*\.json(?:\.gz)?$/;

/**
 * What a walk looks for: the folders under an account it goes into (`CloudTrail/`…), the keys it keeps there, and
 * the account, region and day a kept key's name carries (for the listing of every key, when no `AWSLogs/` is found).
 * Import walks LOG_FILES; `verify` walks digests too (integrity/listing.ts).
 */
export interface Kinds {
  types: ReadonlySet<string>;
  keep(key: string): boolean;
  nameOf(key: string): { account: string; region: string; day: string } | undefined;
}

/** `YYYY-MM-DD` if `value` is a real calendar day in that form, else undefined. */
export function parseDay(value: string): string | undefined {
  const match = /^(\d{4})-(\d{2})-(\d{2})$/.exec(value.trim());
  if (match === null) return undefined;
  const [, y, m, d] = match.map(Number) as [number, number, number, number];
  const date = new Date(Date.UTC(y, m - 1, d));
  if (date.getUTCFullYear() !== y || date.getUTCMonth() !== m - 1 || date.getUTCDate() !== d) return undefined;
  return value.trim();
}

/** The days from `since` to `until` inclusive as `YYYY/MM/DD/` prefixes. */
export function dayPrefixes(since: string, until: string): string[] {
  const days: string[] = [];
  const end = Date.parse(`${until}T00:00:00Z`);
  for (let t = Date.parse(`${since}T00:00:00Z`); t <= end; t += 86_400_000) {
    days.push(`${new Date(t).toISOString().slice(0, 10).replaceAll("-", "/")}/`);
  }
  return days;
}

/** Where `prefix` (ending in "/", or empty for the root) sits in the layout. */
export function positionOf(prefix: string, kinds: Kinds = LOG_FILES): Node {
  const segments = prefix.split("/").filter((s) => s !== "");
  const at = segments.lastIndexOf("AWSLogs");
  if (at === -1) return { prefix, level: "search", date: [] };
  const rest = segments.slice(at + 1);
  if (rest[0] !== undefined && ORG.test(rest[0])) rest.shift();
  const [account, type, region, ...date] = rest;
  const node: Node = { prefix, level: "awslogs", date: [] };
  if (account === undefined) return segments[at + 1] === undefined ? node : { ...node, level: "org" };
  node.account = account;
  if (type === undefined) return { ...node, level: "account" };
  if (!kinds.types.has(type)) return { ...node, level: "none" };
  if (region === undefined) return { ...node, level: "trail" };
  node.region = region;
  const levels = ["region", "year", "month", "day"] as const;
  return { ...node, level: levels[date.length] ?? "below", date: date.slice(0, 3) };
}

/** A key the walk keeps: a log or Insight file, not a digest, not a folder marker, not some other file. */
export function isLogKey(key: string): boolean {
  if (key.endsWith("/") || key.split("/").includes("CloudTrail-Digest")) return false;
  const name = key.slice(key.lastIndexOf("/") + 1);
  return /\.json(\.gz)?$/.test(name) && !name.includes("_CloudTrail-Digest_");
}

/** The account, region and day a CloudTrail log file's name carries, when it has CloudTrail's naming. */
export function parseLogName(key: string): { account: string; region: string; day: string } | undefined {
  const match = LOG_NAME.exec(key.slice(key.lastIndexOf("/") + 1));
  if (match === null) return undefined;
  const [, account, region, y, m, d] = match as unknown as [string, string, string, string, string, string];
  return { account, region, day: `${y}-${m}-${d}` };
}

/** Log and Insight files: what import reads. */
export const LOG_FILES: Kinds = { types: TRAIL_TYPES, keep: isLogKey, nameOf: parseLogName };

/** The first and last day a node with these date segments covers (string comparison orders them). */
function span(date: readonly string[]): [string, string] {
  const [y, m, d] = date;
  if (y === undefined) return ["0000-00-00", "9999-99-99"];
  if (m === undefined) return [`${y}-01-01`, `${y}-12-31`];
  if (d === undefined) return [`${y}-${m}-01`, `${y}-${m}-31`];
  return [`${y}-${m}-${d}`, `${y}-${m}-${d}`];
}

function overlaps(date: readonly string[], selection: Selection): boolean {
  const [first, last] = span(date);
  return (
    (selection.since === undefined || last >= selection.since) &&
    (selection.until === undefined || first <= selection.until)
  );
}

/**
 * When the selection is a range of at most DIRECT_DAYS days, its days inside a date node, as prefixes relative to
 * the node: listing each costs one request, less than discovering years, months and days. Otherwise undefined
 * (discover the dates instead, and list only the days that exist).
 */
export function directDays(date: readonly string[], selection: Selection): string[] | undefined {
  if (selection.since === undefined || selection.until === undefined) return undefined;
  const rangeDays = (Date.parse(selection.until) - Date.parse(selection.since)) / 86_400_000 + 1;
  if (rangeDays > DIRECT_DAYS) return undefined;
  const [first, last] = span(date);
  // Days as YYYY-MM-DD strings order as they compare (Math.min/max would not take them).
  const from = [selection.since, first].sort()[1] as string;
  let to = [selection.until, last].sort()[0] as string;
  if (from > to) return [];
  // Clamp the end of a month node to a real day (span() says 31 for every month).
  while (parseDay(to) === undefined) to = `${to.slice(0, 8)}${String(Number(to.slice(8)) - 1).padStart(2, "0")}`;
  const days = dayPrefixes(from, to);
  const known = [0, 5, 8, 11][date.length] ?? 0; // the characters of "YYYY/MM/DD/" the node's prefix already has
  return days.map((day) => day.slice(known));
}

function child(node: Node, prefix: string, level: Level, extra: Partial<Node> = {}): Node {
  return { ...node, ...extra, prefix, level, date: extra.date ?? node.date };
}

const lastSegment = (prefix: string): string => prefix.slice(0, -1).slice(prefix.slice(0, -1).lastIndexOf("/") + 1);

/**
 * Finds the log files under `prefix` that the selection wants, listing as little as the layout allows. When no
 * `AWSLogs/` is found within SEARCH_DEPTH levels, every key under the prefix is listed and kept when its name is a
 * CloudTrail log file name that the selection wants (`onFallback` is told first).
 */
export async function* walk(
  lister: Lister,
  prefix: string,
  selection: Selection,
  onFallback: () => void = () => {},
  kinds: Kinds = LOG_FILES,
): AsyncGenerator<ObjectEntry[]> {
  const start = positionOf(prefix, kinds);
  if (start.level !== "search") {
    yield* walkNode(lister, start, selection, kinds);
    return;
  }
  const found: Node[] = [];
  let frontier = [start.prefix];
  for (let depth = 0; depth <= SEARCH_DEPTH && frontier.length > 0; depth++) {
    const next: string[] = [];
    for (const parent of frontier) {
      for (const sub of await lister.children(parent)) {
        if (lastSegment(sub) === "AWSLogs") found.push({ prefix: sub, level: "awslogs", date: [] });
        else next.push(sub);
      }
    }
    // A trail's custom prefix is one path; once AWSLogs/ shows up, the levels below the others are other data.
    if (found.length > 0) break;
    frontier = next;
  }
  if (found.length === 0) {
    onFallback();
    for await (const page of lister.objects(start.prefix)) {
      yield page.filter((entry) => kinds.keep(entry.key) && nameWanted(kinds.nameOf(entry.key), selection));
    }
    return;
  }
  for (const node of found) yield* walkNode(lister, node, selection, kinds);
}

function nameWanted(name: ReturnType<Kinds["nameOf"]>, selection: Selection): boolean {
  if (name === undefined) return false;
  if (selection.accounts !== undefined && !selection.accounts.has(name.account)) return false;
  if (selection.regions !== undefined && !selection.regions.has(name.region)) return false;
  if (selection.since !== undefined && name.day < selection.since) return false;
  return selection.until === undefined || name.day <= selection.until;
}

async function* walkNode(
  lister: Lister,
  node: Node,
  selection: Selection,
  kinds: Kinds,
): AsyncGenerator<ObjectEntry[]> {
  const { accounts, regions } = selection;
  switch (node.level) {
    case "search":
    case "none":
      return;
    case "awslogs":
    case "org":
      for (const sub of await lister.children(node.prefix)) {
        const name = lastSegment(sub);
        if (node.level === "awslogs" && ORG.test(name))
          yield* walkNode(lister, child(node, sub, "org"), selection, kinds);
        else if (accounts === undefined || accounts.has(name))
          yield* walkNode(lister, child(node, sub, "account", { account: name }), selection, kinds);
      }
      return;
    case "account":
      if (accounts !== undefined && node.account !== undefined && !accounts.has(node.account)) return;
      for (const sub of await lister.children(node.prefix)) {
        if (kinds.types.has(lastSegment(sub))) yield* walkNode(lister, child(node, sub, "trail"), selection, kinds);
      }
      return;
    case "trail":
      if (accounts !== undefined && node.account !== undefined && !accounts.has(node.account)) return;
      for (const sub of await lister.children(node.prefix)) {
        const region = lastSegment(sub);
        if (regions === undefined || regions.has(region))
          yield* walkNode(lister, child(node, sub, "region", { region }), selection, kinds);
      }
      return;
    default:
      yield* walkDates(lister, node, selection, kinds);
  }
}

/** Below a region: the year, month and day levels, pruned to the date range. */
async function* walkDates(
  lister: Lister,
  node: Node,
  selection: Selection,
  kinds: Kinds,
): AsyncGenerator<ObjectEntry[]> {
  const { accounts, regions } = selection;
  if (accounts !== undefined && node.account !== undefined && !accounts.has(node.account)) return;
  if (regions !== undefined && node.region !== undefined && !regions.has(node.region)) return;
  if (node.date.length > 0 && !overlaps(node.date, selection)) return;
  const bounded = selection.since !== undefined || selection.until !== undefined;
  if (!bounded || node.level === "day" || node.level === "below") {
    yield* keep(lister.objects(node.prefix), kinds);
    return;
  }
  const direct = directDays(node.date, selection);
  if (direct !== undefined) {
    for (const day of direct) yield* keep(lister.objects(node.prefix + day), kinds);
    return;
  }
  const next = node.level === "region" ? "year" : node.level === "year" ? "month" : "day";
  for (const sub of await lister.children(node.prefix)) {
    const segment = lastSegment(sub);
    if (!(next === "year" ? YEAR : TWO_DIGITS).test(segment)) continue;
    yield* walkDates(lister, child(node, sub, next, { date: [...node.date, segment] }), selection, kinds);
  }
}

async function* keep(pages: AsyncIterable<ObjectEntry[]>, kinds: Kinds): AsyncGenerator<ObjectEntry[]> {
  for await (const page of pages) yield page.filter((entry) => kinds.keep(entry.key));
}
