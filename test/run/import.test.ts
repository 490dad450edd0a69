// The import command: the layout planner (which listings find the files wanted), the checkpoint, the progress line,
// and the built CLI against a loopback S3 (s3rver) holding a multi-account, multi-region, multi-day trail bucket.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { gzipSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Checkpoint } from "../../src/listing/checkpoint.js";
import {
  DIRECT_DAYS,
  dayPrefixes,
  isLogKey,
  type Lister,
  type ObjectEntry,
  parseDay,
  parseLogName,
  positionOf,
  type Selection,
  walk,
} from "../../src/listing/layout.js";
import { emptyCounts, Progress, renderProgress } from "../../src/listing/progress.js";
import { parseSource, urlOf } from "../../src/run/importer.js";
import { type CliRun, deadLetters, events, parseOutput, runCli, startCli, summaryOf } from "../support/cli.js";
import { startFaultS3 } from "../support/fault-s3.js";
import { bucket } from "../support/names.js";
import { type S3Test, s3Env, startS3 } from "../support/s3.js";

const A = "111111111111";
const B = "222222222222";
const C = "333333333333";

/** A key as CloudTrail writes it; `id` ends the name and names the object in assertions. */
function logKey(root: string, account: string, region: string, day: string, id: string, type = "CloudTrail"): string {
  const [y, m, d] = day.split("-");
  return `${root}${account}/${type}/${region}/${y}/${m}/${d}/${account}_${type}_${region}_${y}${m}${d}T1200Z_${id}.json.gz`;
}

const DIGEST = `AWSLogs/${A}/CloudTrail-Digest/us-east-1/2023/07/10/${A}_CloudTrail-Digest_us-east-1_t_us-east-1_20230710T120000Z.json.gz`;
const CONFIG = `AWSLogs/${A}/Config/us-east-1/2023/7/10/ConfigHistory/${A}_Config_us-east-1_ConfigHistory_x.json.gz`;

/** The trail bucket: id → key. */
const TRAIL: Record<string, string> = {
  a1: logKey("AWSLogs/", A, "us-east-1", "2023-07-09", "a1"),
  a2: logKey("AWSLogs/", A, "us-east-1", "2023-07-10", "a2"),
  a3: logKey("AWSLogs/", A, "us-east-1", "2023-07-10", "a3"),
  a4: logKey("AWSLogs/", A, "eu-west-1", "2023-07-10", "a4"),
  a5: logKey("AWSLogs/", A, "us-east-1", "2023-07-11", "a5"),
  a6: logKey("AWSLogs/", A, "us-east-1", "2023-08-01", "a6"),
  i1: logKey("AWSLogs/", A, "us-east-1", "2023-07-10", "i1", "CloudTrail-Insight"),
  b1: logKey("AWSLogs/o-aa11bb22cc/", B, "us-east-1", "2023-07-10", "b1"),
  b2: logKey("AWSLogs/o-aa11bb22cc/", B, "ap-south-1", "2023-07-09", "b2"),
};
/** A bucket with the trail under a custom prefix, beside other data. */
const CUSTOM: Record<string, string> = {
  c1: logKey("team/security/AWSLogs/", C, "us-west-2", "2023-07-10", "c1"),
  c2: logKey("team/security/AWSLogs/", C, "us-west-2", "2023-07-12", "c2"),
};
const OTHER_KEYS = ["other/notes.json", "team/readme.txt"];
const ALL_TRAIL_KEYS = [...Object.values(TRAIL), DIGEST, CONFIG];

const EVENTS_PER_OBJECT = 3;

/** A log file whose events name their object: eventID `ID-n`. */
function logFile(id: string): Buffer {
  const insight = id.startsWith("i");
  const records = Array.from({ length: EVENTS_PER_OBJECT }, (_, n) => ({
    eventVersion: "1.08",
    eventID: `${id}-${n}`,
    eventTime: "2023-07-10T12:00:00Z",
    eventName: insight ? "CreateUser" : "GetObject",
    ...(insight ? { eventCategory: "Insight", insightDetails: { state: "Start" } } : {}),
  }));
  return gzipSync(JSON.stringify({ Records: records }));
}

const DIGEST_BODY = gzipSync(JSON.stringify({ awsAccountId: A, digestStartTime: "2023-07-10T11:00:00Z" }));

/** Lists keys held in memory, as ListObjectsV2 would (one page each), recording every call. */
function memoryLister(keys: string[]): Lister & { calls: string[] } {
  const sorted = [...keys].sort();
  const calls: string[] = [];
  return {
    calls,
    async children(prefix) {
      calls.push(`children ${prefix}`);
      const subs = new Set<string>();
      for (const key of sorted) {
        if (!key.startsWith(prefix)) continue;
        const slash = key.indexOf("/", prefix.length);
        if (slash !== -1) subs.add(key.slice(0, slash + 1));
      }
      return [...subs];
    },
    async *objects(prefix) {
      calls.push(`objects ${prefix}`);
      yield sorted.filter((key) => key.startsWith(prefix)).map((key): ObjectEntry => ({ key, size: key.length }));
    },
  };
}

async function walked(keys: string[], prefix: string, selection: Selection = {}) {
  const lister = memoryLister(keys);
  let fellBack = false;
  const found: string[] = [];
  for await (const page of walk(lister, prefix, selection, () => {
    fellBack = true;
  })) {
    for (const entry of page) found.push(entry.key);
  }
  return { found, calls: lister.calls, fellBack };
}

const idOf = (key: string): string => /_([a-z0-9]+)\.json\.gz$/.exec(key)?.[1] ?? key;
const ids = (keys: string[]): string[] => keys.map(idOf).sort();

describe("parseDay", () => {
  it.each([
    ["2023-07-10", "2023-07-10"],
    ["2024-02-29", "2024-02-29"],
    [" 2023-07-10 ", "2023-07-10"],
    ["2023-02-29", undefined],
    ["2023-13-01", undefined],
    ["2023-7-10", undefined],
    ["20230710", undefined],
    ["yesterday", undefined],
  ])("%j → %j", (input, expected) => {
    expect(parseDay(input)).toBe(expected);
  });
});

describe("dayPrefixes", () => {
  it("lists every day inclusive, across months and leap days", () => {
    expect(dayPrefixes("2024-02-28", "2024-03-01")).toEqual(["2024/02/28/", "2024/02/29/", "2024/03/01/"]);
    expect(dayPrefixes("2023-12-31", "2024-01-01")).toEqual(["2023/12/31/", "2024/01/01/"]);
    expect(dayPrefixes("2023-07-10", "2023-07-10")).toEqual(["2023/07/10/"]);
    expect(dayPrefixes("2023-07-11", "2023-07-10")).toEqual([]);
  });
});

describe("positionOf", () => {
  it.each([
    ["", "search", undefined, undefined, []],
    ["team/security/", "search", undefined, undefined, []],
    ["AWSLogs/", "awslogs", undefined, undefined, []],
    ["team/AWSLogs/", "awslogs", undefined, undefined, []],
    ["AWSLogs/o-aa11bb22cc/", "org", undefined, undefined, []],
    [`AWSLogs/${A}/`, "account", A, undefined, []],
    [`AWSLogs/o-aa11bb22cc/${B}/`, "account", B, undefined, []],
    [`AWSLogs/${A}/CloudTrail/`, "trail", A, undefined, []],
    [`AWSLogs/${A}/CloudTrail-Insight/`, "trail", A, undefined, []],
    [`AWSLogs/${A}/CloudTrail-Digest/`, "none", A, undefined, []],
    [`AWSLogs/${A}/Config/`, "none", A, undefined, []],
    [`AWSLogs/${A}/CloudTrail/us-east-1/`, "region", A, "us-east-1", []],
    [`AWSLogs/${A}/CloudTrail/us-east-1/2023/`, "year", A, "us-east-1", ["2023"]],
    [`AWSLogs/${A}/CloudTrail/us-east-1/2023/07/`, "month", A, "us-east-1", ["2023", "07"]],
    [`x/AWSLogs/o-aa11bb22cc/${B}/CloudTrail/eu-west-1/2023/07/10/`, "day", B, "eu-west-1", ["2023", "07", "10"]],
  ])("%j is at the %s level", (prefix, level, account, region, date) => {
    const node = positionOf(prefix);
    expect(node.level).toBe(level);
    expect(node.account).toBe(account);
    expect(node.region).toBe(region);
    expect(node.date).toEqual(date);
  });
});

describe("isLogKey and parseLogName", () => {
  it.each([
    [TRAIL.a1 as string, true],
    [TRAIL.i1 as string, true],
    [(TRAIL.a1 as string).replace(/\.gz$/, ""), true],
    [DIGEST, false],
    [`x/${A}_CloudTrail-Digest_us-east-1_t_us-east-1_20230710T120000Z.json.gz`, false],
    [`AWSLogs/${A}/CloudTrail/us-east-1/2023/07/10/`, false],
    [`AWSLogs/${A}/CloudTrail/us-east-1/2023/07/10/.DS_Store`, false],
  ])("%s → %s", (key, expected) => {
    expect(isLogKey(key)).toBe(expected);
  });

  it("reads the account, region and day from a CloudTrail file name", () => {
    expect(parseLogName(TRAIL.b2 as string)).toEqual({ account: B, region: "ap-south-1", day: "2023-07-09" });
    expect(parseLogName(TRAIL.i1 as string)).toEqual({ account: A, region: "us-east-1", day: "2023-07-10" });
    expect(parseLogName("logs/notes.json")).toBeUndefined();
  });
});

describe("walk: the listing planner", () => {
  it("finds every log and Insight file, never digests or other services' files", async () => {
    const { found, calls } = await walked(ALL_TRAIL_KEYS, "");
    expect(ids(found)).toEqual(Object.keys(TRAIL).sort());
    expect(calls.filter((c) => /Digest|Config/.test(c))).toEqual([]);
  });

  it("with no dates, lists each region's folder in one go", async () => {
    const { calls } = await walked(ALL_TRAIL_KEYS, "AWSLogs/");
    expect(calls.filter((c) => c.startsWith("objects"))).toEqual([
      `objects AWSLogs/${A}/CloudTrail-Insight/us-east-1/`, // "-" sorts before "/", as S3 lists them
      `objects AWSLogs/${A}/CloudTrail/eu-west-1/`,
      `objects AWSLogs/${A}/CloudTrail/us-east-1/`,
      `objects AWSLogs/o-aa11bb22cc/${B}/CloudTrail/ap-south-1/`,
      `objects AWSLogs/o-aa11bb22cc/${B}/CloudTrail/us-east-1/`,
    ]);
  });

  it("with --since/--until, lists only the day prefixes in range", async () => {
    const { found, calls } = await walked(ALL_TRAIL_KEYS, "", { since: "2023-07-10", until: "2023-07-10" });
    expect(ids(found)).toEqual(["a2", "a3", "a4", "b1", "i1"]);
    const objects = calls.filter((c) => c.startsWith("objects"));
    expect(objects.every((c) => c.endsWith("/2023/07/10/"))).toBe(true);
    expect(objects).toHaveLength(5); // every account × trail type × region, that day
    // Days out of range are never listed, not even discovered.
    expect(calls.filter((c) => /2023\/07\/09|2023\/07\/11|2023\/08/.test(c))).toEqual([]);
    expect(calls.filter((c) => /\/\d{4}\/$|\/\d{4}\/\d{2}\/$/.test(c))).toEqual([]);
  });

  it("with an open range, discovers years, months and days and skips those out of range", async () => {
    const { found, calls } = await walked(ALL_TRAIL_KEYS, `AWSLogs/${A}/CloudTrail/`, { since: "2023-07-10" });
    expect(ids(found)).toEqual(["a2", "a3", "a4", "a5", "a6"]);
    expect(calls).toContain(`children AWSLogs/${A}/CloudTrail/us-east-1/2023/07/`);
    expect(calls).not.toContain(`objects AWSLogs/${A}/CloudTrail/us-east-1/2023/07/09/`);
    expect(calls).toContain(`objects AWSLogs/${A}/CloudTrail/us-east-1/2023/08/01/`);
  });

  it("discovers the days of a range too long to list day by day", async () => {
    const { found, calls } = await walked(ALL_TRAIL_KEYS, "AWSLogs/", { since: "2023-01-01", until: "2023-07-09" });
    expect(ids(found)).toEqual(["a1", "b2"]);
    // Only days that exist are listed; the 190 days of the range are not tried one by one.
    expect(calls.filter((c) => c.startsWith("objects"))).toEqual([
      `objects AWSLogs/${A}/CloudTrail/us-east-1/2023/07/09/`,
      `objects AWSLogs/o-aa11bb22cc/${B}/CloudTrail/ap-south-1/2023/07/09/`,
    ]);
    expect(calls.length).toBeLessThan(DIRECT_DAYS);
  });

  it("lists a short range inside a month day by day, clamped to the month's real days", async () => {
    const { calls } = await walked(ALL_TRAIL_KEYS, `AWSLogs/${A}/CloudTrail/us-east-1/2023/02/`, {
      since: "2023-02-27",
      until: "2023-03-05",
    });
    expect(calls).toEqual([
      `objects AWSLogs/${A}/CloudTrail/us-east-1/2023/02/27/`,
      `objects AWSLogs/${A}/CloudTrail/us-east-1/2023/02/28/`,
    ]);
  });

  it("narrows by account and region, in plain and organisation trails", async () => {
    const accounts = await walked(ALL_TRAIL_KEYS, "", { accounts: new Set([B]) });
    expect(ids(accounts.found)).toEqual(["b1", "b2"]);
    expect(accounts.calls.filter((c) => c.includes(A))).toEqual([]);
    const regions = await walked(ALL_TRAIL_KEYS, "", { regions: new Set(["eu-west-1", "ap-south-1"]) });
    expect(ids(regions.found)).toEqual(["a4", "b2"]);
    const outside = await walked(ALL_TRAIL_KEYS, `AWSLogs/${A}/`, { accounts: new Set([B]) });
    expect(outside.found).toEqual([]);
  });

  it("finds AWSLogs/ under a custom prefix and ignores the bucket's other data", async () => {
    const { found, calls, fellBack } = await walked([...Object.values(CUSTOM), ...OTHER_KEYS], "");
    expect(fellBack).toBe(false);
    expect(ids(found)).toEqual(["c1", "c2"]);
    expect(calls.filter((c) => c.startsWith("objects"))).toEqual([
      `objects team/security/AWSLogs/${C}/CloudTrail/us-west-2/`,
    ]);
  });

  it("starts wherever the prefix points: a day folder", async () => {
    const day = `AWSLogs/o-aa11bb22cc/${B}/CloudTrail/us-east-1/2023/07/10/`;
    expect(await walked(ALL_TRAIL_KEYS, day, { until: "2023-07-09" })).toMatchObject({ found: [] });
    const { found, calls } = await walked(ALL_TRAIL_KEYS, day);
    expect(ids(found)).toEqual(["b1"]);
    expect(calls).toEqual([`objects ${day}`]);
  });

  it("without AWSLogs/ in reach, lists everything and keeps CloudTrail file names in the selection", async () => {
    const flat = [
      `${A}_CloudTrail_us-east-1_20230709T1200Z_f1.json.gz`,
      `${A}_CloudTrail_us-east-1_20230710T1200Z_f2.json`,
      `${B}_CloudTrail_eu-west-1_20230710T1200Z_f3.json.gz`,
      `${A}_CloudTrail-Digest_us-east-1_t_us-east-1_20230710T120000Z.json.gz`,
      "notes.json",
    ].map((name) => `dump/${name}`);
    const { found, fellBack } = await walked(flat, "dump/", { since: "2023-07-10", accounts: new Set([A]) });
    expect(fellBack).toBe(true);
    expect(found).toEqual([flat[1]]);
  });
});

describe("parseSource", () => {
  it.each([
    ["s3://trail", { scheme: "s3", bucket: "trail", prefix: "" }],
    ["s3://trail/", { scheme: "s3", bucket: "trail", prefix: "" }],
    ["s3://trail/AWSLogs", { scheme: "s3", bucket: "trail", prefix: "AWSLogs/" }],
    ["s3://trail/a b/AWSLogs/", { scheme: "s3", bucket: "trail", prefix: "a b/AWSLogs/" }],
    ["file:///data/trail", { scheme: "file", prefix: "data/trail/" }],
    ["file:///data/with%20space/", { scheme: "file", prefix: "data/with space/" }],
    ["s3://", "expected s3://bucket/prefix"],
    [
      "s3://x@127.0.0.1:9/AWSLogs",
      'the bucket "x@127.0.0.1:9" holds "@" (only lowercase letters, digits, "." and "-")',
    ],
    ["s3://127.0.0.1/AWSLogs", 'the bucket "127.0.0.1" is an IP address'],
    ["/data/trail", "expected s3://bucket/prefix or file:///directory"],
  ])("%s", (input, expected) => {
    expect(parseSource(input)).toEqual(expected);
  });

  it("turns keys into lines the filter reads", () => {
    expect(urlOf({ scheme: "s3", bucket: bucket("bkt"), prefix: "" }, "a b/c.json.gz")).toBe("s3://bkt/a b/c.json.gz");
    expect(urlOf({ scheme: "file", prefix: "" }, "data/a b.json")).toBe("file:///data/a%20b.json");
  });
});

describe("Checkpoint", () => {
  it("drops a torn last line, appends whole lines, and reads them back", () => {
    const dir = mkdtempSync(join(tmpdir(), "ctef-checkpoint-"));
    try {
      const path = join(dir, "checkpoint");
      writeFileSync(path, "s3://b/one\ns3://b/two\ns3://b/thr");
      const first = Checkpoint.open(path);
      expect([first.has("s3://b/one"), first.has("s3://b/two"), first.has("s3://b/thr")]).toEqual([true, true, false]);
      first.add("s3://b/three");
      first.add("s3://b/three");
      first.close();
      expect(readFileSync(path, "utf8")).toBe("s3://b/one\ns3://b/two\ns3://b/three\n");
      const readOnly = Checkpoint.open(path, true);
      expect(readOnly.size).toBe(3);
      expect(() => readOnly.add("s3://b/four")).toThrow();
      readOnly.close();
      const missing = Checkpoint.open(join(dir, "new"), true);
      expect(missing.size).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("progress", () => {
  it("renders counts, size, rate and ETA once the listing is done", () => {
    const counts = { ...emptyCounts(), listed: 40, bytesListed: 10 * 2 ** 20, objects: 12, bytes: 2 ** 20 };
    expect(renderProgress({ ...counts, events: 5210 }, 2000)).toBe(
      "objects 12/40+ · events 5,210 · 1.0/10.0 MB · 0.5 MB/s · listing…",
    );
    expect(renderProgress({ ...counts, listingDone: true, deadLetters: 1 }, 2000)).toBe(
      "objects 12/40 (10%) · events 0 · 1.0/10.0 MB · 0.5 MB/s · 1 dead letter · ETA 18s",
    );
  });

  it("redraws in place on a terminal and ends the line when stopped", () => {
    let written = "";
    const counts = emptyCounts();
    const progress = new Progress(counts, { tty: true, write: (text) => (written += text) }, silentLog, () => 0);
    progress.start();
    counts.objects = 1;
    progress.stop();
    expect(written.startsWith("\robjects 1/0+ ")).toBe(true);
    expect(written.endsWith("\u001b[K\n")).toBe(true);
  });
});

const silentLog = { debug() {}, info() {}, warn() {}, error() {} };

describe("import command against s3rver", () => {
  let s3: S3Test;
  let env: Record<string, string>;
  const MANY = Array.from({ length: 120 }, (_, n) => logKey("AWSLogs/", A, "us-east-1", "2023-07-10", `m${n}`));

  beforeAll(async () => {
    s3 = await startS3();
    env = s3Env(s3.endpoint);
    await s3.createBucket("trail");
    for (const [id, key] of Object.entries(TRAIL)) await s3.putObject("trail", key, logFile(id), "gzip");
    await s3.putObject("trail", DIGEST, DIGEST_BODY, "gzip");
    await s3.putObject("trail", CONFIG, gzipSync("{}"), "gzip");
    await s3.createBucket("custom");
    for (const [id, key] of Object.entries(CUSTOM)) await s3.putObject("custom", key, logFile(id), "gzip");
    for (const key of OTHER_KEYS) await s3.putObject("custom", key, "{}");
    await s3.createBucket("many");
    for (const key of MANY) await s3.putObject("many", key, logFile(idOf(key)), "gzip");
  });
  afterAll(async () => {
    await s3?.close();
  });

  /** Object ids whose events a run wrote, with how many events each. */
  function eventsByObject(run: CliRun): Record<string, number> {
    const byObject: Record<string, number> = {};
    for (const event of events(parseOutput(run.stdout))) {
      const id = String(event.eventID).replace(/-\d+$/, "");
      byObject[id] = (byObject[id] ?? 0) + 1;
    }
    return byObject;
  }
  const whole = (wanted: string[]) => Object.fromEntries(wanted.map((id) => [id, EVENTS_PER_OBJECT]));

  it("imports every log and Insight file of a bucket, across accounts, an org trail and regions", async () => {
    const run = await runCli(["import", "s3://trail"], "", env);
    expect(run.code).toBe(0);
    expect(eventsByObject(run)).toEqual(whole(Object.keys(TRAIL)));
    expect(deadLetters(parseOutput(run.stdout))).toEqual([]);
    expect(summaryOf(run)).toMatchObject({ listed: 9, objects: 9, events: 27, deadLetters: 0 });
  });

  it("--since/--until lists only the days in range: as many ListObjectsV2 requests as the planner's listings", async () => {
    const selection = { since: "2023-07-10", until: "2023-07-10" };
    const planned = await walked(ALL_TRAIL_KEYS, "", selection);
    const run = await runCli(["import", "s3://trail", "--since", "2023-07-10", "--until", "2023-07-10"], "", env);
    expect(run.code).toBe(0);
    expect(eventsByObject(run)).toEqual(whole(["a2", "a3", "a4", "b1", "i1"]));
    expect(summaryOf(run)).toMatchObject({ listed: 5, listRequests: planned.calls.length });
    expect(planned.calls.length).toBeLessThan(15);
  });

  it("--accounts and --regions narrow, from an AWSLogs/ prefix", async () => {
    const args = ["import", "s3://trail/AWSLogs", "--accounts", A, "--regions", "us-east-1", "--since", "2023-07-10"];
    const run = await runCli(args, "", env);
    expect(run.code).toBe(0);
    expect(eventsByObject(run)).toEqual(whole(["a2", "a3", "a5", "a6", "i1"]));
  });

  it("finds a trail under a custom prefix, and starts from a deeper prefix", async () => {
    const root = await runCli(["import", "s3://custom"], "", env);
    expect(eventsByObject(root)).toEqual(whole(["c1", "c2"]));
    const deep = `s3://custom/team/security/AWSLogs/${C}/CloudTrail/us-west-2/2023/07`;
    const month = await runCli(["import", deep, "--until", "2023-07-11"], "", env);
    expect(eventsByObject(month)).toEqual(whole(["c1"]));
  });

  it("--list prints the files that would be imported, then their count and size, and imports nothing", async () => {
    const run = await runCli(
      ["import", "s3://trail", "--since", "2023-07-10", "--until", "2023-07-10", "--list"],
      "",
      env,
    );
    expect(run.code).toBe(0);
    const wanted = ["i1", "a4", "a2", "a3", "b1"].map((id) => `s3://trail/${TRAIL[id]}`);
    expect(run.stdout.toString()).toBe(`${wanted.join("\n")}\n`);
    const bytes = ["a2", "a3", "a4", "i1", "b1"].reduce((sum, id) => sum + logFile(id).length, 0);
    expect(run.log.at(-1)).toMatchObject({ msg: "listed", objects: 5, bytes });
  });

  it("--checkpoint: a resumed import skips finished files and tolerates a torn last line", async () => {
    const dir = mkdtempSync(join(tmpdir(), "ctef-import-"));
    try {
      const checkpoint = join(dir, "checkpoint");
      writeFileSync(checkpoint, `s3://trail/${TRAIL.a2}\ns3://trail/${TRAIL.b1}\ns3://trail/AWSLo`);
      const first = await runCli(["import", "s3://trail", "--checkpoint", checkpoint], "", env);
      expect(first.code).toBe(0);
      expect(eventsByObject(first)).toEqual(whole(["a1", "a3", "a4", "a5", "a6", "b2", "i1"]));
      expect(summaryOf(first)).toMatchObject({ alreadyDone: 2, listed: 7 });
      const lines = readFileSync(checkpoint, "utf8").split("\n");
      expect(lines.pop()).toBe("");
      expect(lines.sort()).toEqual(
        Object.values(TRAIL)
          .map((key) => `s3://trail/${key}`)
          .sort(),
      );
      const again = await runCli(["import", "s3://trail", "--checkpoint", checkpoint], "", env);
      expect(again.code).toBe(0);
      expect(parseOutput(again.stdout)).toEqual([]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("SIGINT leaves a checkpoint from which the import resumes without re-emitting a finished file", async () => {
    const dir = mkdtempSync(join(tmpdir(), "ctef-import-"));
    try {
      const checkpoint = join(dir, "checkpoint");
      const args = ["import", "s3://many", "--checkpoint", checkpoint, "--concurrency", "1"];
      const spawned = startCli(args, env);
      spawned.child.stdin.end();
      await new Promise<void>((resolve) => spawned.child.stdout.once("data", () => resolve()));
      spawned.child.kill("SIGINT");
      const first = await spawned.done;
      expect(first.code).toBe(0);
      const text = readFileSync(checkpoint, "utf8");
      expect(text === "" || text.endsWith("\n")).toBe(true);
      const finished = text.split("\n").filter((line) => line !== "");
      const all = MANY.map((key) => `s3://many/${key}`);
      for (const url of finished) expect(all).toContain(url);
      expect(finished.length).toBeLessThan(all.length); // interrupted before the end
      const firstEvents = eventsByObject(first);
      const finishedIds = finished.map(idOf);
      for (const id of finishedIds) expect(firstEvents[id]).toBe(EVENTS_PER_OBJECT);

      const second = await runCli(args, "", env);
      expect(second.code).toBe(0);
      const secondEvents = eventsByObject(second);
      for (const id of finishedIds) expect(secondEvents[id]).toBeUndefined();
      // Together the runs read every file whole (an object cut off by the signal is read again, whole).
      for (const key of MANY) expect(secondEvents[idOf(key)] ?? firstEvents[idOf(key)]).toBe(EVENTS_PER_OBJECT);
      expect(
        readFileSync(checkpoint, "utf8")
          .split("\n")
          .filter((l) => l !== "")
          .sort(),
      ).toEqual([...all].sort());
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("a missing bucket: a clear message on stderr and exit 1", async () => {
    const run = await runCli(["import", "s3://no-such-bucket/AWSLogs/"], "", env);
    expect(run.code).toBe(1);
    expect(run.stderr).toContain("Failed to list s3://no-such-bucket/AWSLogs/: NoSuchBucket");
    expect(run.stdout.toString()).toBe("");
  });

  it("a bucket that may not be listed: AccessDenied on stderr and exit 1", async () => {
    const fault = await startFaultS3();
    try {
      fault.createBucket("locked");
      fault.deny("locked", "");
      const run = await runCli(["import", "s3://locked", "--retry-for", "0"], "", s3Env(fault.endpoint));
      expect(run.code).toBe(1);
      expect(run.stderr).toContain("Failed to list s3://locked/: AccessDenied");
    } finally {
      await fault.close();
    }
  });

  it("--request-payer: the listing asks as requester too (S3 refuses a Requester Pays listing otherwise)", async () => {
    const fault = await startFaultS3();
    try {
      fault.createBucket("payer");
      fault.putObject("payer", TRAIL.a1 as string, logFile("a1"), { contentEncoding: "gzip" });
      const run = await runCli(["import", "s3://payer", "--request-payer"], "", s3Env(fault.endpoint));
      expect(run.stderr).toBe("");
      expect(run.code).toBe(0);
      expect(eventsByObject(run)).toEqual(whole(["a1"]));
      const lists = fault.requests.filter((r) => r.method === "GET" && r.key === "");
      expect(lists.length).toBeGreaterThan(0);
      for (const request of fault.requests) expect(request.headers["x-amz-request-payer"]).toBe("requester");
    } finally {
      await fault.close();
    }
  });

  it("usage errors exit non-zero before listing anything", async () => {
    const source = await runCli(["import", "https://trail/AWSLogs/"], "", env);
    expect(source.code).toBe(2);
    expect(source.stderr).toContain("expected s3://bucket/prefix or file:///directory");
    const day = await runCli(["import", "s3://trail", "--since", "2023-02-30"], "", env);
    expect(day.code).not.toBe(0);
    expect(day.stderr).toContain("expected a day as YYYY-MM-DD");
    const order = await runCli(["import", "s3://trail", "--since", "2023-07-11", "--until", "2023-07-10"], "", env);
    expect(order.code).toBe(2);
  });
});

describe("import command from a directory", () => {
  it("walks a copy of the bucket (aws s3 sync) with the same layout rules", async () => {
    const dir = mkdtempSync(join(tmpdir(), "ctef-import-dir-"));
    try {
      for (const [id, key] of Object.entries(TRAIL)) {
        mkdirSync(dirname(join(dir, key)), { recursive: true });
        writeFileSync(join(dir, key), logFile(id));
      }
      mkdirSync(dirname(join(dir, DIGEST)), { recursive: true });
      writeFileSync(join(dir, DIGEST), DIGEST_BODY);
      const run = await runCli(["import", `file://${dir}`, "--since", "2023-07-09", "--until", "2023-07-09"], "");
      expect(run.code).toBe(0);
      const ids = events(parseOutput(run.stdout)).map((e) => String(e.eventID).replace(/-\d+$/, ""));
      expect([...new Set(ids)].sort()).toEqual(["a1", "b2"]);
      const missing = await runCli(["import", `file://${dir}/nowhere`], "");
      expect(missing.code).toBe(1);
      expect(missing.stderr).toContain("ENOENT");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
