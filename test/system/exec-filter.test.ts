// The built CLI under a stand-in for fluentd's out_exec_filter (test/support/exec-filter-harness.ts): the command
// string spawned as fluentd spawns it, whole chunks in single writes, stdout read by fluentd's 8 KiB block JSON reader
// or its msgpack reader, shutdown and respawn as fluentd does them, and `<extract>` applied to what comes back.
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { encode } from "@msgpack/msgpack";
import { afterAll, describe, expect, it } from "vitest";
import { BIN } from "../support/cli.js";
import { ExecFilterChild, extract, usesShell } from "../support/exec-filter-harness.js";
import { findAll, parseFluentConfig, pluginType, section } from "../support/fluent-config.js";
import { FIXTURE_NAMES, FIXTURES } from "../support/trail.js";

const files = FIXTURE_NAMES;

interface CloudTrailEvent {
  eventID: string;
  eventTime: string;
  [key: string]: unknown;
}

function eventsOf(name: string): CloudTrailEvent[] {
  return (JSON.parse(readFileSync(join(FIXTURES, name), "utf8")) as { Records: CloudTrailEvent[] }).Records;
}

const url = (name: string) => `file://${join(FIXTURES, name)}`;
const chunkOf = (names: string[]) => Buffer.from(names.map((name) => `${url(name)}\n`).join(""));

/** A small file (2 events, < 8 KiB of output) and a medium one (several blocks of output). */
const SMALL = files.find((name) => name.includes("1150Z_1vnLavRRp0ek1mP4")) as string;
const MEDIUM = files.find((name) => name.includes("1145Z_7xgocspSowgK0Gto")) as string;

const dir = mkdtempSync(join(tmpdir(), "ctef-exec-filter-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let logs = 0;
/** The command fluentd would be given, with a log file of its own. */
const command = (...args: string[]) => [BIN, "--log-file", join(dir, `filter-${++logs}.log`), ...args].join(" ");

const eventIds = (records: Record<string, unknown>[]) => records.map((r) => r.eventID).filter((id) => id !== undefined);

describe("spawning", () => {
  it.each([
    ["a plain command is split on spaces and gets SIGTERM itself", "", "", { code: 0, signal: null }],
    // dash forks for a command with a redirection: SIGTERM kills the shell, not the filter, which still ends
    // cleanly on stdin's end; fluentd, though, stops waiting as soon as the shell is gone. Hence `exec`.
    ["with shell metacharacters it runs under /bin/sh -c", "", " 2>/dev/null", { code: null, signal: "SIGTERM" }],
    ["under /bin/sh -c with exec the filter gets SIGTERM itself", "exec ", " 2>/dev/null", { code: 0, signal: null }],
  ])("%s", async (_name, prefix, suffix, exit) => {
    const cmd = `${prefix}${command("--time-field", "_time")}${suffix}`;
    expect(usesShell(cmd)).toBe(suffix !== "");
    const child = new ExecFilterChild(cmd);
    await child.sendChunk(chunkOf([SMALL]));
    expect(await child.reader.waitFor(() => child.reader.received.length === 2, 10_000)).toBe(true);
    const ended = await child.shutdown();
    expect(ended).toMatchObject({ ...exit, timedOut: false });
    expect(eventIds(child.reader.records)).toEqual(eventsOf(SMALL).map((e) => e.eventID));
  });
});

describe("fluentd's 8 KiB block JSON reader", () => {
  it("gets the last record of every burst without further output, thanks to the padding", async () => {
    const child = new ExecFilterChild(command());
    for (const name of [SMALL, MEDIUM, SMALL]) {
      const before = child.reader.received.length;
      const expected = eventsOf(name);
      await child.sendChunk(chunkOf([name]));
      const last = expected.at(-1)?.eventID;
      const arrived = await child.reader.waitFor(
        () => child.reader.received.length === before + expected.length,
        10_000,
      );
      expect(arrived, `the burst of ${name} arrived while the child runs`).toBe(true);
      expect(child.reader.received.at(-1)?.record.eventID).toBe(last);
      expect(child.child.exitCode).toBeNull();
    }
    expect(child.reader.stopped).toBeUndefined();
    expect((await child.shutdown()).code).toBe(0);
  });

  it("with --pad-bytes 0 the tail of a burst does not arrive until the child exits", async () => {
    const child = new ExecFilterChild(command("--pad-bytes", "0"));
    const expected = eventsOf(MEDIUM);
    await child.sendChunk(chunkOf([MEDIUM]));
    // Everything has been written to the pipe…
    const written = await child.reader.waitFor(() => child.reader.bytesArrived > 0, 10_000);
    expect(written).toBe(true);
    await new Promise((resolve) => setTimeout(resolve, 1000));
    // …but the reader has only the whole 8 KiB blocks: the last record is stuck in the pipe.
    const delivered = child.reader.received.length;
    expect(child.reader.bytesArrived % 8192).not.toBe(0);
    expect(delivered).toBeLessThan(expected.length);
    expect(eventIds(child.reader.records)).not.toContain(expected.at(-1)?.eventID);
    const ended = await child.shutdown();
    expect(ended.code).toBe(0);
    expect(eventIds(child.reader.records)).toEqual(expected.map((e) => e.eventID));
  });
});

describe("shutdown and respawn", () => {
  it("stdin closed then SIGTERM: exits within 10 s, everything written whole", async () => {
    const child = new ExecFilterChild(command());
    await child.sendChunk(chunkOf(files)); // a large chunk: most of it still in flight when the signal comes
    await child.reader.waitFor(() => child.reader.received.length > 0, 10_000);
    const ended = await child.shutdown();
    expect(ended.timedOut).toBe(false);
    expect(ended.ms).toBeLessThan(10_000);
    expect(ended.code).toBe(0);
    expect(child.reader.stopped).toBeUndefined();
    expect(child.reader.incompleteAtEof).toBe(false);
    for (const record of child.reader.records)
      expect(typeof record.eventID === "string" || "_tag" in record).toBe(true);
  });

  it("a child killed mid-chunk, the whole chunk resent to a new one: duplicates carry the same eventID", async () => {
    const chunk = chunkOf(files);
    const all = files.flatMap(eventsOf);
    const first = new ExecFilterChild(command("--concurrency", "1"));
    await first.sendChunk(chunk);
    await first.reader.waitFor(() => first.reader.received.length >= 50, 20_000);
    first.child.kill("SIGKILL");
    await first.exited;
    const before = first.reader.records.filter((r) => r._tag === undefined);
    expect(before.length).toBeGreaterThan(0);
    expect(before.length).toBeLessThan(all.length);

    const second = new ExecFilterChild(command("--concurrency", "1"));
    await second.sendChunk(chunk);
    second.child.stdin.end(); // (no SIGTERM: fluentd keeps the new child running; stdin's end flushes it)
    expect((await second.exited).code).toBe(0);
    const after = second.reader.records;
    expect(eventIds(after).sort()).toEqual(all.map((e) => e.eventID).sort());

    const byId = new Map(after.map((r) => [r.eventID, r]));
    for (const duplicate of before) expect(byId.get(duplicate.eventID)).toEqual(duplicate);
    const union = new Set([...eventIds(before), ...eventIds(after)]);
    expect(union.size).toBe(all.length);
  });
});

describe("<extract> as fluentd applies it", () => {
  // The shipped fluent.conf's exec_filter: its command (paths moved into a temporary directory), tag and <extract>.
  const root = parseFluentConfig(readFileSync(new URL("../../fluent.conf", import.meta.url), "utf8"));
  const execFilter = findAll(root, "match").find((d) => pluginType(d) === "exec_filter");
  const params = execFilter?.params ?? {};
  const extractParams = (execFilter && section(execFilter, "extract")?.params) ?? {};

  it("the shipped command's records: events get the default tag and eventTime as time; dead letters their _tag", async () => {
    expect(extractParams).toMatchObject({ tag_key: "_tag", time_key: "_time", time_type: "float" });
    const shipped = (params.command ?? "")
      .replace(/^\S+/, BIN)
      .replace(/--log-file \S+/, `--log-file ${join(dir, "shipped.log")}`)
      .replace(/--spool-dir \S+/, `--spool-dir ${join(dir, "spool")}`);
    expect(shipped).toContain("--time-field _time");
    const child = new ExecFilterChild(shipped);
    const bad = [`file://${join(FIXTURES, "missing.json")}`, "not json"];
    await child.sendChunk(`${url(SMALL)}\n${bad.join("\n")}\n`);
    await child.reader.waitFor(() => child.reader.received.length === 4, 10_000);
    expect((await child.shutdown()).code).toBe(0);

    const options = {
      tagKey: extractParams.tag_key as string,
      timeKey: extractParams.time_key as string,
      defaultTag: params.tag as string,
    };
    const routed = child.reader.records.map((record) => extract(record, options));
    const events = routed.filter((r) => r.tag === "cloudtrail.event");
    const deadLetters = routed.filter((r) => r.tag === "cloudtrail.deadletter");
    expect(events.map((r) => r.record.eventID)).toEqual(eventsOf(SMALL).map((e) => e.eventID));
    for (const event of events) {
      expect(event.timeFromRecord).toBe(true);
      expect(event.time).toBe(Date.parse(event.record.eventTime as string) / 1000);
      expect(event.record).not.toHaveProperty("_time");
      expect(event.record).not.toHaveProperty("_tag");
      expect(event.record["@timestamp"]).toBe(event.record.eventTime);
    }
    expect(deadLetters).toHaveLength(2);
    for (const deadLetter of deadLetters) {
      expect(deadLetter.timeFromRecord).toBe(false); // fluentd gives them "now"
      expect(deadLetter.record).not.toHaveProperty("_tag");
      expect(deadLetter.record).toHaveProperty("error.code");
    }
  });

  it("events and dead letters as msgpack, read with partial reads: no padding needed, no latency", async () => {
    const child = new ExecFilterChild(
      command("--input-format", "msgpack", "--output-format", "msgpack", "--time-field", "_time"),
      { parse: "msgpack" },
    );
    // fluentd's `<format> @type msgpack`: maps back to back. A record that is not a notification is dead-lettered;
    // a top-level string is taken as a line (file:// here, so no S3 is needed).
    const input = Buffer.concat([
      encode(url(SMALL)),
      encode({ body: "not json", receipt_handle: "r", queue_url: "https://sqs.example/q" }),
    ]);
    await child.sendChunk(input);
    expect(await child.reader.waitFor(() => child.reader.received.length === 3, 10_000)).toBe(true);
    expect(child.child.exitCode).toBeNull(); // arrived while the child runs
    expect((await child.shutdown()).code).toBe(0);
    expect(child.reader.stopped).toBeUndefined();

    const routed = child.reader.records.map((record) =>
      extract(record, { tagKey: "_tag", timeKey: "_time", defaultTag: "cloudtrail.event" }),
    );
    const expected = eventsOf(SMALL);
    const events = routed.filter((r) => r.tag === "cloudtrail.event");
    expect(events.map((r) => r.record)).toEqual(expected.map((e) => ({ ...e, "@timestamp": e.eventTime })));
    expect(events.map((r) => r.time)).toEqual(expected.map((e) => Date.parse(e.eventTime) / 1000));
    const [deadLetter] = routed.filter((r) => r.tag === "cloudtrail.deadletter");
    expect(deadLetter?.record).toMatchObject({ error: { code: "BodyNotJson" }, input: { body: "not json" } });
  });
});
