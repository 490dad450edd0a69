// Checks the shipped fluentd configurations and index templates without running fluentd or Elasticsearch:
// syntax, the exec_filter command line against the filter's own --help, routing (no loop, no unmatched tag),
// the settings the pipeline depends on, and the mappings of the fields whose shape changes per API call.
// The integrity template is checked against real `verify` lines: the built CLI run on signed trails (some tampered
// with) served by s3rver and a ListPublicKeys stand-in on loopback, as test/system/verify.test.ts does.
//
// Install assumption: the configs refer to this repository as installed at /opt/cloudtrail-exec-filter
// (README/docs say so); paths under that prefix are checked against this checkout.
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { gunzipSync, gzipSync } from "node:zlib";
import { DeleteObjectCommand, PutObjectCommand } from "@aws-sdk/client-s3";
import { beforeAll, describe, expect, it } from "vitest";
import { parseOutput, runCli } from "../support/cli.js";
import { buildTrail, signingKey, startPublicKeyServer, type Trail, type TrailObject } from "../support/cloudtrail.js";
import {
  ConfigSyntaxError,
  type Directive,
  findAll,
  parseFluentConfig,
  pluginType,
  route,
  section,
  tagMatches,
  workerIds,
  workerView,
} from "../support/fluent-config.js";
import { s3Env, startS3 } from "../support/s3.js";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const INSTALL_PREFIX = "/opt/cloudtrail-exec-filter/";
const COMMAND = `${INSTALL_PREFIX}bin/cloudtrail-exec-filter`;
const DEFAULT_DEADLETTER_TAG = "cloudtrail.deadletter";
const POLYMORPHIC = ["requestParameters", "responseElements", "additionalEventData", "serviceEventDetails"];

function readRepoFile(path: string): string {
  return readFileSync(join(ROOT, path), "utf8");
}

/** A path under the install prefix, as a path in this checkout. */
function checkoutPath(installed: string): string {
  expect(installed.startsWith(INSTALL_PREFIX), `${installed} is not under ${INSTALL_PREFIX}`).toBe(true);
  return join(ROOT, installed.slice(INSTALL_PREFIX.length));
}

let helpCache: string | undefined;
/** `--help` of the built CLI, spawned the way a user would run it (needs `npm run build`). */
function helpText(): string {
  helpCache ??= execFileSync(process.execPath, [join(ROOT, "bin/cloudtrail-exec-filter"), "--help"], {
    encoding: "utf8",
    timeout: 30_000,
  });
  return helpCache;
}

function helpOptions(): Set<string> {
  return new Set(helpText().match(/--[a-z][a-z0-9-]*/g) ?? []);
}

function commandTokens(execFilter: Directive): string[] {
  const command = execFilter.params.command;
  expect(command, `<match ${execFilter.arg}> has no command`).toBeDefined();
  return (command ?? "").split(/\s+/).filter((t) => t !== "");
}

function commandOptions(tokens: string[]): string[] {
  return tokens.filter((t) => t.startsWith("--")).map((t) => t.replace(/=.*$/, ""));
}

function optionValue(tokens: string[], name: string): string | undefined {
  const inline = tokens.find((t) => t.startsWith(`${name}=`));
  if (inline) return inline.slice(name.length + 1);
  const at = tokens.indexOf(name);
  const next = at >= 0 ? tokens[at + 1] : undefined;
  return next !== undefined && !next.startsWith("--") ? next : undefined;
}

/** The record key exec_filter takes the tag from: <extract> tag_key (v1) or out_tag_key (v0.12). */
function outputTagKey(execFilter: Directive): string | undefined {
  return section(execFilter, "extract")?.params.tag_key ?? execFilter.params.out_tag_key;
}

/** Tags an exec_filter running our filter can emit: its `tag`, plus the dead-letter tag if `_tag` is honoured. */
function emittedTags(execFilter: Directive): string[] {
  const tags = [execFilter.params.tag ?? ""];
  if (outputTagKey(execFilter) === "_tag") {
    tags.push(optionValue(commandTokens(execFilter), "--deadletter-tag") ?? DEFAULT_DEADLETTER_TAG);
  }
  return tags;
}

function seconds(value: string | undefined): number {
  const m = /^(\d+(?:\.\d+)?)(s|m|h|d)?$/.exec(value ?? "");
  if (!m) throw new Error(`not a time: ${value}`);
  const unit = { s: 1, m: 60, h: 3600, d: 86400 }[(m[2] ?? "s") as "s" | "m" | "h" | "d"];
  return Number(m[1]) * unit;
}

/** Elasticsearch index pattern: `*` matches any run of characters. */
function indexPatternMatches(pattern: string, index: string): boolean {
  const source = pattern
    .split("*")
    .map((s) => s.replace(/[.+?^${}()|[\]\\]/g, "\\$&"))
    .join(".*");
  return new RegExp(`^${source}$`).test(index);
}

function only(ds: Directive[], what: string): Directive {
  expect(ds, what).toHaveLength(1);
  return ds[0]!;
}

function matchesOfType(root: Directive, type: string): Directive[] {
  return findAll(root, "match").filter((m) => pluginType(m) === type);
}

describe("fluentd config reader", () => {
  it("reads directives, arguments, parameters and comments", () => {
    const root = parseFluentConfig(
      [
        "# comment",
        "<source>",
        "  @type sqs",
        "  tag sqs.cloudtrail # trailing comment",
        '  quoted "a # b"',
        "</source>",
        "<label @X>",
        "  <match a.** b>",
        "    <buffer tag,time>",
        "    </buffer>",
        "  </match>",
        "</label>",
      ].join("\n"),
    );
    const source = only(findAll(root, "source"), "source");
    expect(source.params).toEqual({ "@type": "sqs", tag: "sqs.cloudtrail", quoted: "a # b" });
    const match = only(findAll(root, "match"), "match");
    expect(match.arg).toBe("a.** b");
    expect(section(match, "buffer")?.arg).toBe("tag,time");
  });

  it.each([
    ["an unclosed directive", "<source>\n  @type sqs\n", /never closed/],
    ["a mismatched close", "<match a>\n</source>\n", /closes <match>/],
    ["a stray close", "</match>\n", /closes nothing/],
    ["a malformed tag", "<match a\n", /malformed directive/],
    ["a key set twice", "<source>\n tag a\n tag b\n</source>\n", /set twice/],
  ])("rejects %s", (_what, text, message) => {
    expect(() => parseFluentConfig(text)).toThrow(ConfigSyntaxError);
    expect(() => parseFluentConfig(text)).toThrow(message);
  });

  it.each([
    ["cloudtrail", "cloudtrail", true],
    ["cloudtrail", "cloudtrail.event", false],
    ["cloudtrail.*", "cloudtrail.event", true],
    ["cloudtrail.*", "cloudtrail.parsed.last", false],
    ["cloudtrail.**", "cloudtrail", true],
    ["cloudtrail.**", "cloudtrail.parsed.last", true],
    ["**", "sqs.cloudtrail", true],
    ["sqs.cloudtrail", "cloudtrail.event", false],
    ["a.{b,c}", "a.c", true],
    ["x y", "y", true],
  ])("pattern %s on tag %s: %s", (pattern, tag, expected) => {
    expect(tagMatches(pattern, tag)).toBe(expected);
  });
});

describe("fluent.conf (fluentd v1)", () => {
  const text = readRepoFile("fluent.conf");
  const root = parseFluentConfig(text);
  const source = only(findAll(root, "source"), "one <source>");
  const execFilter = only(matchesOfType(root, "exec_filter"), "one exec_filter");
  const elasticsearch = only(matchesOfType(root, "elasticsearch"), "one elasticsearch output");

  it("says why on every line: each setting and each opening directive has a comment right above it", () => {
    const lines = text.split("\n");
    const bare = lines.flatMap((line, i) => {
      const t = line.trim();
      if (t === "" || t.startsWith("#") || t.startsWith("</")) return [];
      const above = (lines[i - 1] ?? "").trim();
      return above.startsWith("#") ? [] : [`line ${i + 1}: ${t}`];
    });
    expect(bare).toEqual([]);
  });

  it("reads SQS without deleting on receipt, leaving the ack to --delete-sqs-messages", () => {
    expect(pluginType(source)).toBe("sqs");
    expect(source.params.sqs_url).toMatch(/^https:\/\/sqs\.[a-z0-9-]+\.amazonaws\.com\/\d+\/.+/);
    expect(source.params.sqs_url).toContain(`sqs.${source.params.region}.`);
    expect(source.params.delete_message).toBe("false");
    const tokens = commandTokens(execFilter);
    expect(commandOptions(tokens)).toContain("--delete-sqs-messages");
    // The filter extends what in_sqs asked for; a different figure would let messages reappear mid-work.
    expect(optionValue(tokens, "--visibility-timeout")).toBe(source.params.visibility_timeout);
    expect(seconds(source.params.receive_interval)).toBeLessThan(60);
  });

  it("runs the filter by absolute path, with options its --help lists", () => {
    const tokens = commandTokens(execFilter);
    expect(tokens[0]).toBe(COMMAND);
    expect(existsSync(checkoutPath(COMMAND))).toBe(true);
    const known = helpOptions();
    const unknown = commandOptions(tokens).filter((o) => !known.has(o));
    expect(unknown, `options missing from --help:\n${helpText()}`).toEqual([]);
    expect(optionValue(tokens, "--log-file")).toMatch(/^\//);
  });

  it("talks JSON both ways, takes tag and time from _tag/_time, and respawns the child", () => {
    expect(pluginType(section(execFilter, "format")!)).toBe("json");
    expect(pluginType(section(execFilter, "parse")!)).toBe("json");
    const extract = section(execFilter, "extract");
    expect(extract?.params).toMatchObject({ tag_key: "_tag", time_key: "_time", time_type: "float" });
    expect(optionValue(commandTokens(execFilter), "--time-field")).toBe(extract?.params.time_key);
    expect(execFilter.params.child_respawn).toBe("inf");
    expect(execFilter.params.tag).toBe("cloudtrail.event");
  });

  it("buffers every output on disk and blocks instead of dropping when a buffer is full", () => {
    const buffer = section(execFilter, "buffer");
    expect(buffer?.params).toMatchObject({ "@type": "file", overflow_action: "block" });
    expect(section(elasticsearch, "buffer")?.params).toMatchObject({ "@type": "file", overflow_action: "block" });
    const paths = findAll(root, "buffer").map((b) => b.params.path);
    expect(paths.every((p) => p?.startsWith("/"))).toBe(true);
    expect(new Set(paths).size).toBe(paths.length);
  });

  it("indexes idempotently into daily cloudtrail-* indices", () => {
    expect(elasticsearch.params).toMatchObject({
      logstash_format: "true",
      logstash_prefix: "cloudtrail",
      id_key: "eventID",
      write_operation: "create",
      use_legacy_template: "false",
    });
    expect(elasticsearch.params.index_name).toBeUndefined();
    expect(section(elasticsearch, "buffer")?.arg.split(",")).toContain("tag");
  });

  it("installs the composable template shipped in examples/", () => {
    const file = elasticsearch.params.template_file ?? "";
    expect(elasticsearch.params.template_name).toBeTruthy();
    expect(existsSync(checkoutPath(file))).toBe(true);
    const template = JSON.parse(readFileSync(checkoutPath(file), "utf8"));
    // use_legacy_template false means PUT _index_template: mappings live under `template`.
    expect(template.template?.mappings?.properties).toBeDefined();
    expect(template.mappings).toBeUndefined();
    const index = `${elasticsearch.params.logstash_prefix}-2024.01.31`;
    expect(template.index_patterns.some((p: string) => indexPatternMatches(p, index))).toBe(true);
  });

  it("routes SQS records through the filter once and every record it prints to an output, with no loop", () => {
    const paths = route(root, source.params["@label"], source.params.tag ?? "", emittedTags);
    const ends = new Map(paths.map((p) => [p[p.length - 1]!.tag, p[p.length - 1]!.match]));
    for (const path of paths) {
      expect(path.filter((hop) => hop.match === execFilter)).toHaveLength(1);
    }
    expect(pluginType(ends.get("cloudtrail.event")!)).toBe("elasticsearch");
    expect(pluginType(ends.get(DEFAULT_DEADLETTER_TAG)!)).toBe("file");
    expect([...ends.keys()].sort()).toEqual(emittedTags(execFilter).sort());
  });

  it("does not let the match that feeds the filter take what the filter prints", () => {
    for (const tag of emittedTags(execFilter)) expect(tagMatches(execFilter.arg, tag), tag).toBe(false);
  });

  it("keeps what plugins give up on in an @ERROR label", () => {
    const error = root.children.find((c) => c.name === "label" && c.arg === "@ERROR");
    expect(error && findAll(error, "match").some((m) => tagMatches(m.arg, "any.tag.at.all"))).toBe(true);
  });
});

describe("examples/fluent-v0.12.conf (the original post's setup, corrected)", () => {
  const root = parseFluentConfig(readRepoFile("examples/fluent-v0.12.conf"));
  const source = only(findAll(root, "source"), "one <source>");
  const execFilter = only(matchesOfType(root, "exec_filter"), "one exec_filter");
  const elasticsearch = only(matchesOfType(root, "elasticsearch"), "one elasticsearch output");

  it("uses only v0.12 syntax: no labels, no v1 sections", () => {
    expect(findAll(root, "label")).toEqual([]);
    for (const name of ["buffer", "format", "parse", "extract", "inject"]) expect(findAll(root, name)).toEqual([]);
  });

  it("polls SQS far more often than once a minute", () => {
    expect(pluginType(source)).toBe("sqs");
    expect(seconds(source.params.receive_interval)).toBeLessThan(60);
  });

  it("runs the filter by absolute path, with options its --help lists", () => {
    const tokens = commandTokens(execFilter);
    expect(tokens[0]).toBe(COMMAND);
    const known = helpOptions();
    expect(commandOptions(tokens).filter((o) => !known.has(o))).toEqual([]);
  });

  it("sets JSON in and out, _tag routing and respawning", () => {
    expect(execFilter.params).toMatchObject({
      in_format: "json",
      out_format: "json",
      out_tag_key: "_tag",
      child_respawn: "inf",
      buffer_queue_full_action: "block",
    });
    expect(optionValue(commandTokens(execFilter), "--time-field")).toBe(execFilter.params.out_time_key);
  });

  it("names indices with logstash_prefix (index_name is ignored under logstash_format)", () => {
    expect(elasticsearch.params).toMatchObject({
      logstash_format: "true",
      logstash_prefix: "cloudtrail",
      id_key: "eventID",
      write_operation: "create",
    });
    expect(elasticsearch.params.index_name).toBeUndefined();
  });

  it("routes every record the filter prints to an output, with no loop", () => {
    const paths = route(root, undefined, source.params.tag ?? "", emittedTags);
    const ends = new Map(paths.map((p) => [p[p.length - 1]!.tag, pluginType(p[p.length - 1]!.match)]));
    expect(ends.get(execFilter.params.tag ?? "")).toBe("elasticsearch");
    expect(ends.get(DEFAULT_DEADLETTER_TAG)).toBe("file");
    for (const tag of emittedTags(execFilter)) expect(tagMatches(execFilter.arg, tag), tag).toBe(false);
  });
});

describe("examples/fluent-workers.conf (fluent.conf on several fluentd workers)", () => {
  const shipped = parseFluentConfig(readRepoFile("fluent.conf"));
  const root = parseFluentConfig(readRepoFile("examples/fluent-workers.conf"));
  const workers = root.children.filter((c) => c.name === "worker");
  const ids = workers.flatMap(workerIds);
  const count = Number(section(root, "system")?.params.workers);
  const views = ids.map((id) => workerView(root, id));
  const shippedSource = only(findAll(shipped, "source"), "fluent.conf's <source>");
  const shippedFilter = only(matchesOfType(shipped, "exec_filter"), "fluent.conf's exec_filter");
  /** A directive without its line numbers, to compare two files' sections. */
  const content = (d: Directive): unknown => ({
    name: d.name,
    arg: d.arg,
    params: d.params,
    children: d.children.map(content),
  });
  const without = (params: Record<string, string>, ...keys: string[]) =>
    Object.fromEntries(Object.entries(params).filter(([key]) => !keys.includes(key)));
  /** The command's tokens with the values of the per-worker options blanked. */
  const commandShape = (d: Directive) => {
    const tokens = commandTokens(d);
    return tokens.map((t, i) => (["--log-file", "--spool-dir"].includes(tokens[i - 1] ?? "") ? "<per worker>" : t));
  };
  const perWorker = ids.map((_, i) => {
    const view = views[i]!;
    const source = only(findAll(view, "source"), `worker ${ids[i]}: one <source>`);
    const execFilter = only(matchesOfType(view, "exec_filter"), `worker ${ids[i]}: one exec_filter`);
    return { view, source, execFilter, tokens: commandTokens(execFilter) };
  });

  it("declares as many workers as it has <worker K> blocks, one block per worker id", () => {
    expect(count).toBeGreaterThan(1);
    expect([...ids].sort((a, b) => a - b)).toEqual(Array.from({ length: count }, (_, k) => k));
    // Nothing but the shared outputs outside the blocks: in_sqs is not multi-worker ready.
    expect(findAll({ ...root, children: root.children.filter((c) => c.name !== "worker") }, "source")).toEqual([]);
  });

  it("gives each worker fluent.conf's in_sqs and exec_filter, with ids, labels, log, spool and buffer of its own", () => {
    for (const { source, execFilter } of perWorker) {
      expect(without(source.params, "@id", "@label")).toEqual(without(shippedSource.params, "@id"));
      expect(without(execFilter.params, "@id", "@label", "command")).toEqual(
        without(shippedFilter.params, "@id", "command"),
      );
      expect(commandShape(execFilter)).toEqual(commandShape(shippedFilter));
      const sections = (d: Directive) =>
        d.children.map((c) => content(c.name === "buffer" ? { ...c, params: without(c.params, "path") } : c));
      expect(sections(execFilter)).toEqual(sections(shippedFilter));
    }
    const distinct = (values: (string | undefined)[]) => expect(new Set(values).size).toBe(ids.length);
    distinct(perWorker.map((w) => w.source.params["@id"]));
    distinct(perWorker.map((w) => w.execFilter.params["@id"]));
    distinct(perWorker.map((w) => optionValue(w.tokens, "--log-file")));
    distinct(perWorker.map((w) => optionValue(w.tokens, "--spool-dir")));
    distinct(perWorker.map((w) => section(w.execFilter, "buffer")?.params.path));
    const known = helpOptions();
    for (const { tokens } of perWorker) {
      expect(tokens[0]).toBe(COMMAND);
      expect(commandOptions(tokens).filter((o) => !known.has(o))).toEqual([]);
    }
  });

  it("shares fluent.conf's outputs: the same @CLOUDTRAIL matches (bar the exec_filter) and @ERROR", () => {
    const label = (r: Directive, name: string) => r.children.find((c) => c.name === "label" && c.arg === name);
    const outputs = (r: Directive) =>
      label(r, "@CLOUDTRAIL")
        ?.children.filter((c) => pluginType(c) !== "exec_filter")
        .map(content);
    expect(outputs(root)).toEqual(outputs(shipped));
    expect(content(label(root, "@ERROR")!)).toEqual(content(label(shipped, "@ERROR")!));
  });

  it("routes each worker's SQS records through its own exec_filter to the shared outputs, with no loop", () => {
    for (const { view, source, execFilter } of perWorker) {
      const paths = route(view, source.params["@label"], source.params.tag ?? "", emittedTags);
      for (const path of paths) expect(path.filter((hop) => hop.match === execFilter)).toHaveLength(1);
      const ends = new Map(paths.map((p) => [p[p.length - 1]!.tag, pluginType(p[p.length - 1]!.match)]));
      expect(ends.get("cloudtrail.event")).toBe("elasticsearch");
      expect(ends.get(DEFAULT_DEADLETTER_TAG)).toBe("file");
    }
  });
});

type Mapping = { type?: string; properties?: Record<string, Mapping>; [key: string]: unknown };

function readTemplate(path: string): { index_patterns: string[]; template: { mappings: Mapping } } {
  return JSON.parse(readRepoFile(path));
}

/** Every mapped field as dotted path -> mapping, below `properties`. */
function fields(properties: Record<string, Mapping>, prefix = ""): Map<string, Mapping> {
  const out = new Map<string, Mapping>();
  for (const [name, mapping] of Object.entries(properties)) {
    out.set(prefix + name, mapping);
    if (mapping.properties) for (const [k, v] of fields(mapping.properties, `${prefix}${name}.`)) out.set(k, v);
  }
  return out;
}

describe.each([
  ["examples/elasticsearch/cloudtrail-template.json", "flattened"],
  ["examples/elasticsearch/cloudtrail-template.opensearch.json", "flat_object"],
])("%s", (path, flatType) => {
  const template = readTemplate(path);
  const properties = template.template.mappings.properties ?? {};
  const all = fields(properties);

  it("is a composable template for cloudtrail-* indices", () => {
    expect(template.index_patterns).toEqual(["cloudtrail-*"]);
    expect(template.template.mappings.properties).toBeDefined();
  });

  it(`maps the four fields whose shape changes per API call as ${flatType}`, () => {
    for (const name of POLYMORPHIC) expect(properties[name]?.type, name).toBe(flatType);
  });

  it("maps time as date and ids and names as keyword", () => {
    expect(properties["@timestamp"]?.type).toBe("date");
    expect(properties.eventTime?.type).toBe("date");
    for (const name of ["eventID", "eventName", "eventSource", "awsRegion", "userAgent", "sourceIPAddress"]) {
      expect(properties[name]?.type, name).toBe("keyword");
    }
    expect(all.get("userIdentity.arn")?.type).toBe("keyword");
    expect(all.get("userIdentity.sessionContext.sessionIssuer.arn")?.type).toBe("keyword");
  });

  it("does not map sourceIPAddress itself as ip (it also holds service names such as ec2.amazonaws.com)", () => {
    const ip = properties.sourceIPAddress?.fields as Record<string, Mapping> | undefined;
    expect(ip?.ip).toMatchObject({ type: "ip", ignore_malformed: true });
  });

  if (flatType === "flat_object") {
    it("uses flat_object only on root fields and without parameters (OpenSearch 2.7 rejects both)", () => {
      for (const [name, mapping] of all) {
        if (mapping.type !== "flat_object") continue;
        expect(name.includes("."), name).toBe(false);
        expect(Object.keys(mapping), name).toEqual(["type"]);
      }
    });
  }
});

describe("the two templates", () => {
  it("map the same root fields, so the Elasticsearch and OpenSearch variants do not drift apart", () => {
    const es = readTemplate("examples/elasticsearch/cloudtrail-template.json").template.mappings.properties ?? {};
    const os =
      readTemplate("examples/elasticsearch/cloudtrail-template.opensearch.json").template.mappings.properties ?? {};
    expect(Object.keys(os).sort()).toEqual(Object.keys(es).sort());
  });
});

// ---------------------------------------------------------------------------------------------------------------
// The integrity lines (`verify`): their template, their fluentd route, and the Kibana queries on them

const INTEGRITY_TEMPLATE = "examples/elasticsearch/cloudtrail-integrity-template.json";
const EVENT_TEMPLATES = [
  "examples/elasticsearch/cloudtrail-template.json",
  "examples/elasticsearch/cloudtrail-template.opensearch.json",
];
/** Field types that mean the same in Elasticsearch and OpenSearch: one integrity template serves both. */
const COMMON_TYPES = new Set(["keyword", "text", "date", "boolean", "long", "double"]);
/** What Elasticsearch's default date format (strict_date_optional_time) reads, as CloudTrail writes times. */
const ISO_TIME = /^\d{4}-\d\d-\d\dT\d\d:\d\d(?::\d\d(?:\.\d+)?)?(?:Z|[+-]\d\d:?\d\d)$/;

/** Whether a JSON value indexes into a field of this mapping type without being refused or dropped. */
function compatible(type: string | undefined, value: unknown): boolean {
  switch (type) {
    case "keyword":
    case "text":
      return typeof value === "string";
    case "date":
      return typeof value === "string" && ISO_TIME.test(value) && !Number.isNaN(Date.parse(value));
    case "boolean":
      return typeof value === "boolean";
    case "long":
      return Number.isInteger(value);
    case "double":
      return typeof value === "number";
    default:
      return false;
  }
}

/** The JSON blocks of a Markdown text, without a leading `GET index/_search`-style request line. */
function jsonBlocks(markdown: string): unknown[] {
  return [...markdown.matchAll(/```json\n([\s\S]*?)```/g)].map((m) =>
    JSON.parse((m[1] ?? "").replace(/^(?:GET|POST|PUT) \S+\n/, "")),
  );
}

/**
 * The fields a query or aggregation names: every `field` value (aggregations, `exists`) and the keys of a
 * `range`/`term`/`terms`/`match` clause (a `terms` aggregation has a `field` of its own instead).
 */
function fieldsNamed(query: unknown): string[] {
  if (Array.isArray(query)) return query.flatMap(fieldsNamed);
  if (query === null || typeof query !== "object") return [];
  return Object.entries(query).flatMap(([key, value]) => {
    const clause =
      ["range", "term", "terms", "match", "match_phrase"].includes(key) &&
      value !== null &&
      typeof value === "object" &&
      !("field" in value);
    const named = key === "field" && typeof value === "string" ? [value] : clause ? Object.keys(value) : [];
    return [...named, ...fieldsNamed(value)];
  });
}

describe(`${INTEGRITY_TEMPLATE} against the lines verify writes`, () => {
  const template = readTemplate(INTEGRITY_TEMPLATE);
  const properties = template.template.mappings.properties ?? {};
  const lines: Record<string, unknown>[] = [];

  beforeAll(async () => {
    const s3 = await startS3();
    const published = signingKey(new Date("2024-01-01T00:00:00Z"), new Date("2025-01-01T00:00:00Z"));
    const keys = await startPublicKeyServer(() => [published]);
    const dir = mkdtempSync(join(tmpdir(), "ctef-integrity-template-"));
    try {
      const env = { ...s3Env(s3.endpoint), AWS_ENDPOINT_URL_CLOUDTRAIL: keys.endpoint };
      const options = {
        account: "111122223333",
        region: "us-east-1",
        trail: "management_events",
        start: new Date("2024-03-10T10:00:00Z"),
        hours: 4,
        filesPerHour: 2,
        key: published,
      };
      const store = async (bucket: string, trail: Trail) => {
        await s3.createBucket(bucket);
        for (const o of trail.objects) await put(bucket, o);
      };
      const put = (bucket: string, o: TrailObject) =>
        s3.client.send(
          new PutObjectCommand({
            Bucket: bucket,
            Key: o.key,
            Body: o.body,
            ContentLength: o.body.length,
            ...(o.metadata === undefined ? {} : { Metadata: o.metadata }),
          }),
        );
      const verify = async (source: string) => {
        const run = await runCli(["verify", source, "--concurrency", "4"], "", env);
        expect(run.code, run.stderr).toBe(3);
        lines.push(...parseOutput(run.stdout));
      };

      // Log files: one changed (hash mismatch), one deleted (missing), one planted (unlisted); a backfill digest.
      const logs = buildTrail({ ...options, bucket: "integrity-logs", backfillHour: 1 });
      await store("integrity-logs", logs);
      const changed = logs.objects.find((o) => o.key === logs.logKeys[0]) as TrailObject;
      await put("integrity-logs", {
        key: changed.key,
        body: gzipSync(Buffer.concat([gunzipSync(changed.body), Buffer.from(" ")])),
      });
      await s3.client.send(new DeleteObjectCommand({ Bucket: "integrity-logs", Key: logs.logKeys[3] }));
      const planted =
        "AWSLogs/111122223333/CloudTrail/us-east-1/2024/03/10/111122223333_CloudTrail_us-east-1_20240310T1133Z_planted0000000000.json.gz";
      await put("integrity-logs", { key: planted, body: gzipSync('{"Records":[]}') });
      await verify("s3://integrity-logs");

      // Digests: one edited after signing (bad signature, its log files not vouched for), one deleted (missing).
      const digests = buildTrail({ ...options, bucket: "integrity-digests" });
      await store("integrity-digests", digests);
      const edited = digests.objects.find((o) => o.key === digests.digestKeys[0]) as TrailObject;
      const fields = JSON.parse(gunzipSync(edited.body).toString("utf8"));
      fields.newestEventTime = "2024-03-10T10:59:00Z";
      await put("integrity-digests", { ...edited, body: gzipSync(JSON.stringify(fields)) });
      await s3.client.send(new DeleteObjectCommand({ Bucket: "integrity-digests", Key: digests.digestKeys[2] }));
      await verify("s3://integrity-digests");

      // A local copy (file://): the lines name where the copy holds each file; one log file changed again.
      for (const o of logs.objects) {
        const path = join(dir, o.key);
        mkdirSync(dirname(path), { recursive: true });
        writeFileSync(path, o.key === changed.key ? gzipSync("{}") : o.body);
        if (o.metadata?.signature !== undefined) writeFileSync(`${path}.signature`, o.metadata.signature);
      }
      await verify(`file://${dir}`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
      await s3.close();
      await keys.close();
    }
  }, 120_000);

  it("covers what the template is for: both kinds, every status, digest and log-file reasons", () => {
    expect(new Set(lines.map((l) => l.kind))).toEqual(new Set(["digest", "logFile"]));
    expect(new Set(lines.map((l) => l.status))).toEqual(new Set(["valid", "invalid", "missing", "unlisted"]));
    const reasons = new Set(lines.map((l) => l.reason));
    for (const reason of ["hash mismatch", "bad signature", "not found", "not listed", "not vouched for"]) {
      expect(reasons, reason).toContain(reason);
    }
    expect(lines.some((l) => l.backfill === true)).toBe(true);
    expect(lines.some((l) => typeof l.file === "string")).toBe(true);
  });

  it("maps every field of every line with a type its value fits: none is left to dynamic mapping", () => {
    const misfits = lines.flatMap((line) =>
      Object.entries(line)
        .filter(([name, value]) => !compatible(properties[name]?.type, value))
        .map(([name, value]) => `${name}: ${JSON.stringify(value)} (mapped ${properties[name]?.type ?? "not at all"})`),
    );
    expect([...new Set(misfits)]).toEqual([]);
  });

  it("maps no field the lines never have, bar the @timestamp the Elasticsearch output adds", () => {
    const seen = new Set(lines.flatMap((line) => Object.keys(line)));
    expect(Object.keys(properties).filter((name) => !seen.has(name))).toEqual(["@timestamp"]);
    expect(properties["@timestamp"]?.type).toBe("date");
  });

  it("maps statuses, reasons, kinds, names and places as keyword, the window as date", () => {
    for (const name of ["status", "reason", "kind", "account", "region", "trail", "s3Bucket", "s3Object", "file"]) {
      expect(properties[name]?.type, name).toBe("keyword");
    }
    expect(properties.digestS3Object?.type).toBe("keyword");
    expect(properties.digestStartTime?.type).toBe("date");
    expect(properties.digestEndTime?.type).toBe("date");
    expect(properties.backfill?.type).toBe("boolean");
  });

  it("serves Elasticsearch and OpenSearch alike, on indices the events' templates never match", () => {
    for (const [name, mapping] of fields(properties)) {
      expect(COMMON_TYPES.has(mapping.type ?? ""), `${name}: ${mapping.type}`).toBe(true);
    }
    expect(template.template.mappings.date_detection).toBe(false);
    const index = "cloudtrail_integrity-2024.01.31";
    expect(template.index_patterns.some((p) => indexPatternMatches(p, index))).toBe(true);
    for (const path of EVENT_TEMPLATES) {
      const events = readTemplate(path);
      expect(
        events.index_patterns.some((p) => indexPatternMatches(p, index)),
        path,
      ).toBe(false);
      expect(
        template.index_patterns.some((p) => indexPatternMatches(p, "cloudtrail-2024.01.31")),
        path,
      ).toBe(false);
    }
  });
});

describe("examples/fluent-integrity.conf (verify's lines into Elasticsearch), included from fluent.conf", () => {
  const text = readRepoFile("examples/fluent-integrity.conf");
  const own = parseFluentConfig(text);
  const root = parseFluentConfig(`${readRepoFile("fluent.conf")}\n${text}`);
  const source = only(findAll(own, "source"), "one <source>");
  const output = only(matchesOfType(own, "elasticsearch"), "one elasticsearch output");

  it("says why on every line", () => {
    const lines = text.split("\n");
    const bare = lines.flatMap((line, i) => {
      const t = line.trim();
      if (t === "" || t.startsWith("#") || t.startsWith("</")) return [];
      return (lines[i - 1] ?? "").trim().startsWith("#") ? [] : [`line ${i + 1}: ${t}`];
    });
    expect(bare).toEqual([]);
  });

  it("tails verify's JSON lines under the cloudtrail.integrity tag, to its own Elasticsearch output", () => {
    expect(pluginType(source)).toBe("tail");
    expect(source.params.tag).toBe("cloudtrail.integrity");
    expect(pluginType(section(source, "parse")!)).toBe("json");
    expect(source.params.pos_file).toMatch(/^\//);
    const paths = route(root, source.params["@label"], source.params.tag ?? "", () => []);
    expect(paths.map((p) => p[p.length - 1]!.match.params["@id"])).toEqual([output.params["@id"]]);
    expect(output.arg).toBe("cloudtrail.integrity");
  });

  it("installs the integrity template and writes daily indices it matches, apart from the events'", () => {
    expect(output.params).toMatchObject({
      logstash_format: "true",
      use_legacy_template: "false",
      template_overwrite: "true",
    });
    expect(output.params.id_key).toBeUndefined();
    expect(checkoutPath(output.params.template_file ?? "")).toBe(join(ROOT, INTEGRITY_TEMPLATE));
    const index = `${output.params.logstash_prefix}-2024.01.31`;
    expect(readTemplate(INTEGRITY_TEMPLATE).index_patterns.some((p) => indexPatternMatches(p, index))).toBe(true);
    expect(indexPatternMatches("cloudtrail-*", index)).toBe(false);
  });

  it("buffers on disk, blocks when full, and shares no id or buffer path with fluent.conf", () => {
    expect(section(output, "buffer")?.params).toMatchObject({ "@type": "file", overflow_action: "block" });
    const ids = [...findAll(root, "source"), ...findAll(root, "match")].map((d) => d.params["@id"]).filter(Boolean);
    expect(new Set(ids).size).toBe(ids.length);
    const paths = findAll(root, "buffer").map((b) => b.params.path);
    expect(new Set(paths).size).toBe(paths.length);
  });
});

describe("docs/kibana.md: the integrity search and alert", () => {
  const markdown = readRepoFile("docs/kibana.md");
  const start = markdown.indexOf("## Integrity");
  const end = markdown.indexOf("\n## ", start + 1);
  const integrity = markdown.slice(start, end < 0 ? undefined : end);
  const template = readTemplate(INTEGRITY_TEMPLATE);
  const mapped = fields(template.template.mappings.properties ?? {});
  type Rule = { rule_type_id: string; params: Record<string, unknown> };

  it("has its JSON as valid JSON: a search and a rule for any status not valid in the last day, on mapped fields", () => {
    expect(start).toBeGreaterThan(0);
    const blocks = jsonBlocks(integrity);
    const rules = blocks.filter((b): b is Rule => typeof (b as Rule).rule_type_id === "string");
    const searches = blocks.filter((b) => !rules.includes(b as Rule));
    expect(rules.length).toBeGreaterThan(0);
    expect(searches.length).toBeGreaterThan(0);
    const queries: unknown[] = [...searches];
    for (const { rule_type_id, params } of rules) {
      // Kibana's Elasticsearch query rule: the window is its own (timeField, timeWindow*), the query a JSON string.
      expect(rule_type_id).toBe(".es-query");
      expect(params).toMatchObject({
        timeWindowSize: 1,
        timeWindowUnit: "d",
        threshold: [0],
        thresholdComparator: ">",
      });
      expect(mapped.get(String(params.timeField))?.type).toBe("date");
      const index = (params.index as string[]).map((p) => p.replace("*", "2024.01.31"));
      expect(index.every((i) => template.index_patterns.some((p) => indexPatternMatches(p, i)))).toBe(true);
      queries.push(JSON.parse(String(params.esQuery)));
    }
    for (const search of searches) {
      expect(JSON.stringify(search)).toContain('{"range":{"@timestamp":{"gte":"now-1d"}}}');
    }
    for (const query of queries) {
      const named = fieldsNamed(query);
      expect(named.length).toBeGreaterThan(0);
      expect(named.filter((name) => !mapped.has(name))).toEqual([]);
      expect(JSON.stringify(query)).toContain('"must_not":[{"term":{"status":"valid"}}]');
    }
  });

  it("uses KQL on mapped fields", () => {
    const kql = [...integrity.matchAll(/`((?:not )?[a-zA-Z@]+: [^`]+)`/g)].map((m) => m[1] ?? "");
    expect(kql).toContain("not status: valid");
    for (const query of kql) {
      for (const [, name] of query.matchAll(/([a-zA-Z@]+):/g)) expect(mapped.has(name ?? ""), query).toBe(true);
    }
  });
});
