#!/usr/bin/env node
// Deterministic generator of realistic CloudTrail log files for the benchmark.
//
// Files are gzipped compact JSON `{"Records":[...]}` on one line, laid out as CloudTrail writes them:
//   AWSLogs/ACCOUNT/CloudTrail/REGION/YYYY/MM/DD/ACCOUNT_CloudTrail_REGION_YYYYMMDDTHHmmZ_UNIQUE.json.gz
// under bench/.corpus/SET/. Every set has a manifest.json; a set is regenerated only when its parameters
// (or GENERATOR_VERSION) change. The sets cpu-spaced and cpu-pretty hold the same events as cpu, written with
// `json.dumps`'s separators (`", "`, `": "`) or indented as `JSON.stringify(x, null, 2)` does (see STYLES).
//
// Usage as a script:
//   node bench/corpus.mjs [--set cpu|cpu-spaced|cpu-pretty|small|large|all] [--objects N] [--events N]
//                         [--large-mb N] [--seed S]
// Environment overrides: BENCH_OBJECTS, BENCH_EVENTS, BENCH_LARGE_MB, BENCH_SEED.

import { createHash } from "node:crypto";
import { once } from "node:events";
import {
  createWriteStream,
  existsSync,
  mkdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { createGzip, gzipSync } from "node:zlib";

export const GENERATOR_VERSION = 3;
export const CORPUS_ROOT = join(dirname(fileURLToPath(import.meta.url)), ".corpus");

export const DEFAULTS = Object.freeze({
  cpu: { objects: 200, events: 75_000, seed: "cloudtrail-bench" },
  small: { objects: 300, events: 300 * 20, seed: "cloudtrail-bench-small" },
  large: { mb: 600, seed: "cloudtrail-bench-large" },
});

// ---------------------------------------------------------------------------------------------------------------
// PRNG: sfc32 seeded from a string through a small 128-bit hash. Fast, deterministic, good enough for data.

function seedFrom(text) {
  const digest = createHash("sha256").update(String(text)).digest();
  return [digest.readUInt32LE(0), digest.readUInt32LE(4), digest.readUInt32LE(8), digest.readUInt32LE(12)];
}

export class Rng {
  constructor(seed) {
    [this.a, this.b, this.c, this.d] = seedFrom(seed);
    for (let i = 0; i < 12; i++) this.u32();
  }
  u32() {
    let { a, b, c, d } = this;
    const t = (((a + b) | 0) + d) | 0;
    d = (d + 1) | 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) | 0;
    c = (c << 21) | (c >>> 11);
    c = (c + t) | 0;
    this.a = a;
    this.b = b;
    this.c = c;
    this.d = d;
    return t >>> 0;
  }
  float() {
    return this.u32() / 4294967296;
  }
  int(lo, hi) {
    // inclusive
    return lo + Math.floor(this.float() * (hi - lo + 1));
  }
  chance(p) {
    return this.float() < p;
  }
  pick(list) {
    return list[Math.floor(this.float() * list.length)];
  }
  normal() {
    const u = 1 - this.float();
    const v = this.float();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  }
  chars(alphabet, n) {
    let out = "";
    for (let i = 0; i < n; i++) out += alphabet[Math.floor(this.float() * alphabet.length)];
    return out;
  }
  hex(n) {
    return this.chars("0123456789abcdef", n);
  }
  uuid() {
    return `${this.hex(8)}-${this.hex(4)}-4${this.hex(3)}-${this.pick("89ab")}${this.hex(3)}-${this.hex(12)}`;
  }
}

const UPPER_NUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
const ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
const B64 = `${ALNUM}+/`;

// ---------------------------------------------------------------------------------------------------------------
// Raw JSON fragments: numbers JSON.stringify would normalise (1.688560107857E9, 2^53+1, 1024.0) and strings with
// escapes (\u00e9, \/). They are stored as marker strings and spliced in after JSON.stringify.

const RAW_RE = /"\u00a7raw\u00a7([^"\u00a7]*)\u00a7"/g;
const RAW_RE_STR = /"\u00a7rawstr\u00a7((?:[^"\\\u00a7]|\\.)*)\u00a7"/g;
function raw(text) {
  return `\u00a7raw\u00a7${text}\u00a7`;
}
// `text` is already-escaped JSON string content (without quotes).
function rawString(text) {
  return `\u00a7rawstr\u00a7${text}\u00a7`;
}
function serialize(event, hasRaw) {
  const json = JSON.stringify(event);
  if (!hasRaw) return json;
  return json.replace(RAW_RE, "$1").replace(RAW_RE_STR, (_, body) => `"${body.replace(/\\\\/g, "\\")}"`);
}

// ---------------------------------------------------------------------------------------------------------------
// Layout: the same JSON text written as other tools write it. Both rewrite the compact text token by token, so
// every literal (numbers such as 1.688560107857E9, escapes such as \u00e9) stays as it was and the values are
// the same as in the compact set; only whitespace outside strings differs.

// A string (escapes included), a structural character, or a run of anything else (numbers, true, false, null).
const TOKEN = /"[^"\\]*(?:\\.[^"\\]*)*"|[{}[\],:]|[^"{}[\],:]+/g;

/** `json.dumps`'s default separators: `", "` and `": "` (python, and many tools after it). */
function spaced(text) {
  return text.replace(TOKEN, (t) => (t === "," ? ", " : t === ":" ? ": " : t));
}

/**
 * `JSON.stringify(value, null, 2)`'s layout for text starting at nesting `depth`: a line per member, indented
 * two spaces a level, `": "` after keys, empty objects and arrays as `{}` and `[]`.
 */
function pretty(text, depth) {
  const pads = [];
  const pad = (d) => {
    pads[d] ??= `\n${"  ".repeat(d)}`;
    return pads[d];
  };
  let d = depth;
  return text.replace(TOKEN, (t, at) => {
    if (t === "{" || t === "[") {
      const next = text[at + 1];
      if (next === "}" || next === "]") return t;
      d++;
      return t + pad(d);
    }
    if (t === "}" || t === "]") {
      const previous = text[at - 1];
      if (previous === "{" || previous === "[") return t;
      d--;
      return pad(d) + t;
    }
    if (t === ",") return `,${pad(d)}`;
    if (t === ":") return ": ";
    return t;
  });
}

/** How a set lays out its JSON: the file's text from the compact events. */
export const STYLES = Object.freeze({
  compact: (events) => `{"Records":[${events.join(",")}]}`,
  spaced: (events) => `{"Records": [${events.map(spaced).join(", ")}]}`,
  pretty: (events) => `{\n  "Records": [\n    ${events.map((e) => pretty(e, 2)).join(",\n    ")}\n  ]\n}`,
});

// ---------------------------------------------------------------------------------------------------------------
// Vocabulary

const ACCOUNTS = ["218007301253", "123837392027", "904315270611"];
const REGIONS = ["us-east-1", "us-east-1", "eu-west-1", "ap-northeast-1"];
const JA_WORDS = [
  "本番サーバー",
  "開発環境",
  "請求書",
  "バックアップ",
  "東京リージョン",
  "ログ収集",
  "顧客データ",
  "月次レポート",
  "テスト用バケット",
  "監査ログ",
];
const EMOJI = ["🚀", "🔥", "✅", "📦", "🛡️", "🐳", "🌏", "⚠️", "👩‍💻", "🇯🇵"];

function userAgents(rng) {
  const sdkGo = () =>
    `APN/1.0 HashiCorp/1.0 Terraform/1.${rng.int(1, 5)}.${rng.int(0, 9)} (+https://www.terraform.io) terraform-provider-aws/${rng.int(3, 5)}.${rng.int(0, 80)}.${rng.int(0, 9)} (+https://registry.terraform.io/providers/hashicorp/aws) aws-sdk-go/1.44.${rng.int(100, 300)} (go1.19.3; linux; amd64) stratus-red-team_${rng.uuid()} HashiCorp-terraform-exec/0.17.3`;
  const cli = () =>
    `aws-cli/2.13.${rng.int(0, 30)} Python/3.11.${rng.int(0, 6)} Linux/5.15.0-10${rng.int(10, 90)}-aws exe/x86_64.ubuntu.22 prompt/off command/${rng.pick(["s3.cp", "s3api.get-object", "ec2.describe-instances", "sts.get-caller-identity", "ssm.get-parameter"])}`;
  const boto = () =>
    `Boto3/1.28.${rng.int(0, 80)} md/Botocore#1.31.${rng.int(0, 80)} ua/2.0 os/linux#5.10.184-175.731.amzn2.x86_64 md/arch#x86_64 lang/python#3.9.16 md/pyimpl#CPython exec-env/AWS_Lambda_python3.9 cfg/retry-mode#legacy Botocore/1.31.${rng.int(0, 80)}`;
  const browser = () =>
    rng.pick([
      "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/114.0.0.0 Safari/537.36",
      "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:109.0) Gecko/20100101 Firefox/115.0",
      "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/115.0.0.0 Safari/537.36 Edg/115.0.1901.183",
    ]);
  const javaLong = () => {
    // Long cascaded SDK user agents (Glue/EMR/Athena jobs) run to a kilobyte and more.
    const parts = [];
    const n = rng.int(2, 4);
    for (let i = 0; i < n; i++) {
      parts.push(
        `aws-sdk-java/1.12.${rng.int(100, 600)} Linux/5.10.${rng.int(100, 200)}-${rng.int(100, 200)}.${rng.int(600, 800)}.amzn2.x86_64 OpenJDK_64-Bit_Server_VM/25.${rng.int(300, 400)}-b${rng.int(1, 20)} java/1.8.0_${rng.int(300, 400)} scala/2.12.15 vendor/Amazon.com_Inc. cfg/retry-mode/legacy exec-env/AWS_ECS_EC2 app/${rng.pick(["glue", "emr", "athena", "spark"])}-job-${rng.hex(8)}`,
      );
    }
    return parts.join(", ");
  };
  return { sdkGo, cli, boto, browser, javaLong };
}

// ---------------------------------------------------------------------------------------------------------------
// Event generator

function pad2(n) {
  return n < 10 ? `0${n}` : String(n);
}
function isoSeconds(ms) {
  const d = new Date(ms);
  return `${d.getUTCFullYear()}-${pad2(d.getUTCMonth() + 1)}-${pad2(d.getUTCDate())}T${pad2(d.getUTCHours())}:${pad2(d.getUTCMinutes())}:${pad2(d.getUTCSeconds())}Z`;
}

export class EventFactory {
  constructor(rng) {
    this.rng = rng;
    this.ua = userAgents(rng);
    // A small population of principals per account, reused across events like in real trails.
    this.principals = new Map();
    for (const account of ACCOUNTS) {
      const list = [];
      for (let i = 0; i < 8; i++) list.push(this.makePrincipal(account, i));
      this.principals.set(account, list);
    }
    this.templates = [
      [24, (c) => this.ec2Describe(c)],
      [10, (c) => this.s3Bucket(c)],
      [8, (c) => this.s3Data(c)],
      [12, (c) => this.kms(c)],
      [4, (c) => this.sts(c)],
      [8, (c) => this.ssm(c)],
      [6, (c) => this.iam(c)],
      [2, (c) => this.consoleLogin(c)],
      [5, (c) => this.ec2Mutating(c)],
      [5, (c) => this.numeric(c)],
      [2, (c) => this.serviceEvent(c)],
      [0.08, (c) => this.bigTemplate(c)],
    ];
    this.totalWeight = this.templates.reduce((s, [w]) => s + w, 0);
  }

  makePrincipal(account, i) {
    const rng = this.rng;
    const kind = i === 7 ? "Root" : rng.pick(["IAMUser", "IAMUser", "AssumedRole", "AWSService", "AWSService"]);
    const id = rng.chars(UPPER_NUM, 17);
    if (kind === "IAMUser") {
      const userName = rng.pick(["bert-jan", "deploy-bot", "ci-runner", "alice", "yamada.taro", "ops-admin"]) + i;
      return {
        ident: () => ({
          type: "IAMUser",
          principalId: `AIDA${id}`,
          arn: `arn:aws:iam::${account}:user/${userName}`,
          accountId: account,
          accessKeyId: `${rng.chance(0.5) ? "AKIA" : "ASIA"}${rng.chars(UPPER_NUM, 16)}`,
          userName,
        }),
        agent: rng.pick(["sdkGo", "cli", "browser", "boto"]),
      };
    }
    if (kind === "AssumedRole") {
      const role =
        rng.pick([
          "stratus-red-team-ec2-role",
          "lambda-exec",
          "OrganizationAccountAccessRole",
          "glue-etl",
          "AWSReservedSSO_Admin_0f1e2d3c",
        ]) + i;
      return {
        ident: (ms) => {
          const session = rng.chance(0.5)
            ? `aws-go-sdk-${1688990000000000000 + rng.int(0, 999999999)}`
            : `i-0${rng.hex(16)}`;
          return {
            type: "AssumedRole",
            principalId: `AROA${id}:${session}`,
            arn: `arn:aws:sts::${account}:assumed-role/${role}/${session}`,
            accountId: account,
            accessKeyId: `ASIA${rng.chars(UPPER_NUM, 16)}`,
            sessionContext: {
              sessionIssuer: {
                type: "Role",
                principalId: `AROA${id}`,
                arn: `arn:aws:iam::${account}:role/${role}`,
                accountId: account,
                userName: role,
              },
              webIdFederationData: {},
              attributes: { creationDate: isoSeconds(ms - rng.int(0, 3600_000)), mfaAuthenticated: "false" },
            },
            ...(rng.chance(0.2) ? { invokedBy: rng.pick(["glue.amazonaws.com", "lambda.amazonaws.com"]) } : {}),
          };
        },
        agent: rng.pick(["boto", "javaLong", "cli", "cli"]),
      };
    }
    if (kind === "AWSService") {
      const svc = rng.pick([
        "ec2.amazonaws.com",
        "cloudtrail.amazonaws.com",
        "config.amazonaws.com",
        "secretsmanager.amazonaws.com",
      ]);
      return { ident: () => ({ type: "AWSService", invokedBy: svc }), agent: svc };
    }
    return {
      ident: () => ({
        type: "Root",
        principalId: account,
        arn: `arn:aws:iam::${account}:root`,
        accountId: account,
        accessKeyId: `ASIA${rng.chars(UPPER_NUM, 16)}`,
        sessionContext: {
          sessionIssuer: {},
          webIdFederationData: {},
          attributes: { creationDate: "2023-07-10T08:00:00Z", mfaAuthenticated: "true" },
        },
      }),
      agent: "browser",
    };
  }

  agentFor(p) {
    const make = this.ua[p.agent];
    return make ? make() : p.agent;
  }

  ip() {
    const rng = this.rng;
    if (rng.chance(0.1)) return `2001:db8:${rng.hex(4)}::${rng.hex(4)}`;
    return `${rng.pick(["192.168.10", "10.0.3", "203.0.113", "198.51.100"])}.${rng.int(1, 254)}`;
  }

  tls(host) {
    const v13 = this.rng.chance(0.4);
    return {
      tlsVersion: v13 ? "TLSv1.3" : "TLSv1.2",
      cipherSuite: v13 ? "TLS_AES_128_GCM_SHA256" : "ECDHE-RSA-AES128-GCM-SHA256",
      clientProvidedHostHeader: host,
    };
  }

  jaText() {
    const rng = this.rng;
    let s = rng.pick(JA_WORDS);
    if (rng.chance(0.5)) s += ` ${rng.pick(EMOJI)}`;
    if (rng.chance(0.3)) s += ` ${rng.pick(JA_WORDS)}`;
    return s;
  }

  /** One event at time `ms` in `account`/`region`. Returns the serialized JSON text. */
  event(ms, account, region) {
    const rng = this.rng;
    let r = rng.float() * this.totalWeight;
    let make = this.templates[this.templates.length - 1][1];
    for (const [w, fn] of this.templates) {
      r -= w;
      if (r < 0) {
        make = fn;
        break;
      }
    }
    const principal = rng.pick(this.principals.get(account));
    const ctx = { ms, account, region, principal, hasRaw: false };
    const body = make(ctx);
    const ev = {
      eventVersion: rng.chance(0.9) ? "1.08" : rng.pick(["1.09", "1.10", "1.11", "1.05"]),
      userIdentity: body.userIdentity ?? principal.ident(ms),
      eventTime: isoSeconds(ms),
      eventSource: body.source,
      eventName: body.name,
      awsRegion: body.region ?? region,
      sourceIPAddress: body.ip ?? (principal.agent.endsWith(".amazonaws.com") ? principal.agent : this.ip()),
      userAgent: body.agent ?? this.agentFor(principal),
    };
    if (body.errorCode) {
      ev.errorCode = body.errorCode;
      ev.errorMessage = body.errorMessage;
    } else if (body.errorMessage) {
      ev.errorMessage = body.errorMessage;
    } else if (rng.chance(0.04)) {
      ev.errorCode = "AccessDenied";
      ev.errorMessage = `User: ${ev.userIdentity.arn ?? "unknown"} is not authorized to perform: ${body.source.split(".")[0]}:${body.name} on resource: arn:aws:${body.source.split(".")[0]}:${region}:${account}:* because no identity-based policy allows the ${body.source.split(".")[0]}:${body.name} action`;
    }
    ev.requestParameters = body.req ?? null;
    ev.responseElements = ev.errorCode ? null : (body.resp ?? null);
    if (body.additional) ev.additionalEventData = body.additional;
    if (body.requestID !== false) ev.requestID = rng.chance(0.5) ? rng.uuid() : rng.chars(UPPER_NUM, 16);
    ev.eventID = rng.uuid();
    ev.readOnly = body.readOnly ?? false;
    if (body.resources) ev.resources = body.resources;
    ev.eventType = body.eventType ?? "AwsApiCall";
    ev.managementEvent = body.category !== "Data";
    ev.recipientAccountId = account;
    if (body.shared) ev.sharedEventID = rng.uuid();
    if (body.vpce) ev.vpcEndpointId = `vpce-0${rng.hex(16)}`;
    ev.eventCategory = body.category ?? "Management";
    if (body.host && rng.chance(0.7)) ev.tlsDetails = this.tls(body.host);
    if (body.serviceEventDetails) ev.serviceEventDetails = body.serviceEventDetails;
    if (rng.chance(0.03)) ev.sessionCredentialFromConsole = "true";
    return serialize(ev, ctx.hasRaw);
  }

  ec2Describe({ region }) {
    const rng = this.rng;
    const name = rng.pick([
      "DescribeInstances",
      "DescribeRouteTables",
      "DescribeVpcs",
      "DescribeSubnets",
      "DescribeSecurityGroups",
      "DescribeInstanceAttribute",
      "DescribeNatGateways",
      "DescribeImages",
    ]);
    let req;
    switch (name) {
      case "DescribeInstances":
        req = {
          instancesSet: rng.chance(0.5) ? { items: [{ instanceId: `i-0${rng.hex(16)}` }] } : {},
          filterSet: {
            items: [
              { name: "instance-state-name", valueSet: { items: [{ value: "running" }, { value: "pending" }] } },
              {
                name: "tag:Name",
                valueSet: { items: [{ value: rng.chance(0.3) ? this.jaText() : `web-${rng.int(1, 99)}` }] },
              },
            ],
          },
          ...(rng.chance(0.5) ? { maxResults: rng.pick([5, 100, 1000]) } : {}),
        };
        break;
      case "DescribeInstanceAttribute":
        req = {
          instanceId: `i-0${rng.hex(16)}`,
          attribute: rng.pick([
            "instanceInitiatedShutdownBehavior",
            "disableApiTermination",
            "userData",
            "sourceDestCheck",
          ]),
        };
        break;
      case "DescribeImages":
        req = {
          executableBySet: {},
          imagesSet: { items: [{ imageId: `ami-0${rng.hex(16)}` }] },
          ownersSet: {},
          includeDeprecated: rng.chance(0.5),
          includeDisabled: false,
        };
        break;
      default: {
        const key = `${name.slice(8, 9).toLowerCase()}${name.slice(9, -1)}IdSet`;
        req = { [key]: { items: [{ id: `${name.slice(8, 11).toLowerCase()}-0${rng.hex(16)}` }] }, filterSet: {} };
      }
    }
    return { source: "ec2.amazonaws.com", name, req, readOnly: true, host: `ec2.${region}.amazonaws.com` };
  }

  s3Bucket({ account, region }) {
    const rng = this.rng;
    const bucket = `${rng.pick(["stratus-red-team-ctlr-bucket", "aws-cloudtrail-logs", "backups", "terraform-state"])}-${rng.chars("abcdefghijklmnopqrstuvwxyz", 10)}`;
    const name = rng.pick([
      "GetBucketAcl",
      "GetBucketTagging",
      "GetBucketPolicyStatus",
      "GetBucketPublicAccessBlock",
      "ListObjects",
      "GetBucketVersioning",
      "PutBucketTagging",
    ]);
    const host = `${bucket}.s3.amazonaws.com`;
    const req = { bucketName: bucket, Host: host };
    if (name === "GetBucketAcl") req.acl = "";
    if (name === "GetBucketTagging") req.tagging = "";
    if (name === "ListObjects") {
      req["list-type"] = 2;
      req.prefix = rng.chance(0.3) ? `${this.jaText()}/` : "AWSLogs/";
      req["max-keys"] = 1000;
    }
    if (name === "PutBucketTagging") {
      req.Tagging = {
        xmlns: "http://s3.amazonaws.com/doc/2006-03-01/",
        TagSet: {
          Tag: rng.chance(0.5)
            ? { Key: "Owner", Value: this.jaText() }
            : [
                { Key: "Env", Value: "prod" },
                { Key: "名前", Value: this.jaText() },
              ],
        },
      };
    }
    const body = {
      source: "s3.amazonaws.com",
      name,
      req,
      readOnly: name.startsWith("Get") || name.startsWith("List"),
      region,
      host,
      additional: {
        SignatureVersion: "SigV4",
        CipherSuite: "ECDHE-RSA-AES128-GCM-SHA256",
        bytesTransferredIn: 0,
        AuthenticationMethod: "AuthHeader",
        "x-amz-id-2": `${rng.chars(B64, 76)}=`,
        bytesTransferredOut: rng.int(0, 5000),
      },
      resources: [{ accountId: account, type: "AWS::S3::Bucket", ARN: `arn:aws:s3:::${bucket}` }],
    };
    if (name === "GetBucketTagging" && rng.chance(0.6)) {
      body.errorCode = "NoSuchTagSet";
      body.errorMessage = "The TagSet does not exist";
    }
    return body;
  }

  s3Data(ctx) {
    const rng = this.rng;
    const bucket = `data-lake-${ctx.account}-${rng.pick(["raw", "curated", "exports"])}`;
    let key = `year=2023/month=07/part-${rng.int(0, 99999)}.snappy.parquet`;
    if (rng.chance(0.25)) key = `${this.jaText()}/${rng.pick(JA_WORDS)}_${rng.int(1, 31)}日.pdf`;
    const name = rng.pick(["GetObject", "GetObject", "PutObject", "HeadObject"]);
    const size = rng.int(100, 50_000_000);
    const additional = {
      SignatureVersion: "SigV4",
      CipherSuite: "ECDHE-RSA-AES128-GCM-SHA256",
      // Polymorphic numbers: integer in most events, a float with a fraction or exponent in others.
      bytesTransferredIn: name === "PutObject" ? size : 0,
      AuthenticationMethod: "AuthHeader",
      "x-amz-id-2": `${rng.chars(B64, 76)}=`,
      bytesTransferredOut: name === "GetObject" ? size : 0,
    };
    if (rng.chance(0.15)) {
      additional.bytesTransferredIn = raw(rng.pick(["0.0", "1024.0", "1.5E3", `${size}.0`]));
      ctx.hasRaw = true;
    }
    const resp =
      name === "PutObject"
        ? { "x-amz-server-side-encryption": "AES256", "x-amz-version-id": rng.chars(ALNUM, 32) }
        : null;
    return {
      source: "s3.amazonaws.com",
      name,
      req: { bucketName: bucket, Host: `${bucket}.s3.${ctx.region}.amazonaws.com`, key },
      resp,
      readOnly: name !== "PutObject",
      category: "Data",
      host: `${bucket}.s3.${ctx.region}.amazonaws.com`,
      additional,
      resources: [
        { type: "AWS::S3::Object", ARN: `arn:aws:s3:::${bucket}/${key}` },
        { accountId: ctx.account, type: "AWS::S3::Bucket", ARN: `arn:aws:s3:::${bucket}` },
      ],
    };
  }

  kms({ account, region }) {
    const rng = this.rng;
    const name = rng.pick(["Decrypt", "Decrypt", "Encrypt", "GenerateDataKey"]);
    const key = `arn:aws:kms:${region}:${account}:key/${rng.uuid()}`;
    const ctxKind = rng.int(0, 2);
    const encryptionContext =
      ctxKind === 0
        ? {
            SecretARN: `arn:aws:secretsmanager:${region}:${account}:secret:app-secret-${rng.int(1, 40)}-${rng.chars(ALNUM, 6)}`,
            SecretVersionId: rng.uuid().toUpperCase(),
          }
        : ctxKind === 1
          ? { "aws:s3:arn": `arn:aws:s3:::data-lake-${account}-raw/${rng.chance(0.2) ? this.jaText() : "part-0001"}` }
          : { "aws:lambda:FunctionArn": `arn:aws:lambda:${region}:${account}:function:handler-${rng.int(1, 20)}` };
    const req = { encryptionAlgorithm: "SYMMETRIC_DEFAULT", encryptionContext };
    if (name !== "Decrypt") {
      req.keyId = key;
      if (name === "GenerateDataKey") req.keySpec = "AES_256";
    }
    return {
      source: "kms.amazonaws.com",
      name,
      req,
      readOnly: name === "Decrypt",
      vpce: rng.chance(0.3),
      resources: [{ accountId: account, type: "AWS::KMS::Key", ARN: key }],
      host: rng.chance(0.5) ? `kms.${region}.amazonaws.com` : undefined,
    };
  }

  sts({ account, ms }) {
    const rng = this.rng;
    if (rng.chance(0.3)) {
      return { source: "sts.amazonaws.com", name: "GetCallerIdentity", readOnly: true, host: "sts.amazonaws.com" };
    }
    const role = `arn:aws:iam::${account}:role/${rng.pick(["ci-deploy", "glue-etl", "stratus-red-team-ec2-steal-credentials-role"])}`;
    const session = `i-0${rng.hex(16)}`;
    const exp = new Date(ms + 6 * 3600_000);
    return {
      source: "sts.amazonaws.com",
      name: "AssumeRole",
      userIdentity: rng.chance(0.5) ? { type: "AWSService", invokedBy: "ec2.amazonaws.com" } : undefined,
      agent: "ec2.amazonaws.com",
      ip: "ec2.amazonaws.com",
      req: { roleArn: role, roleSessionName: session, ...(rng.chance(0.3) ? { durationSeconds: 3600 } : {}) },
      resp: {
        credentials: {
          accessKeyId: `ASIA${rng.chars(UPPER_NUM, 16)}`,
          sessionToken: `IQoJb3JpZ2luX2Vj${rng.chars(B64, rng.int(400, 700))}`,
          expiration: `${exp.toLocaleString("en-US", { month: "short", timeZone: "UTC" })} ${exp.getUTCDate()}, ${exp.getUTCFullYear()}, ${exp.getUTCHours() % 12 || 12}:${pad2(exp.getUTCMinutes())}:${pad2(exp.getUTCSeconds())} ${exp.getUTCHours() < 12 ? "AM" : "PM"}`,
        },
        assumedRoleUser: {
          assumedRoleId: `AROA${rng.chars(UPPER_NUM, 17)}:${session}`,
          arn: `arn:aws:sts::${account}:assumed-role/x/${session}`,
        },
      },
      readOnly: true,
      shared: true,
      resources: [{ accountId: account, type: "AWS::IAM::Role", ARN: role }],
    };
  }

  ssm({ account, region }) {
    const rng = this.rng;
    const name = rng.pick(["GetParameter", "PutParameter", "DescribeParameters", "GetParameters"]);
    const pname = `/credentials/${rng.pick(["app", "db", "stratus-red-team"])}/credentials-${rng.int(1, 40)}`;
    let req;
    let resp = null;
    if (name === "PutParameter") {
      req = {
        name: pname,
        value: "HIDDEN_DUE_TO_SECURITY_REASONS",
        type: "SecureString",
        overwrite: rng.chance(0.5),
        allowedPattern: "",
        tags: [
          { key: "StratusRedTeam", value: "true" },
          ...(rng.chance(0.4) ? [{ key: "説明", value: this.jaText() }] : []),
        ],
        tier: "Standard",
        ...(rng.chance(0.3) ? { description: `${this.jaText()}の接続情報 (${rng.pick(EMOJI)})` } : {}),
      };
      resp = { version: rng.int(1, 30), tier: "Standard" };
    } else if (name === "DescribeParameters") {
      req = { parameterFilters: [{ key: "Name", option: "BeginsWith", values: ["/credentials/"] }], maxResults: 50 };
    } else if (name === "GetParameters") {
      req = { names: [pname, `${pname}-b`], withDecryption: rng.chance(0.5) };
    } else {
      req = { name: pname, withDecryption: rng.chance(0.7) };
    }
    return {
      source: "ssm.amazonaws.com",
      name,
      req,
      resp,
      readOnly: name !== "PutParameter",
      host: `ssm.${region}.amazonaws.com`,
      resources:
        name === "PutParameter"
          ? [{ accountId: account, ARN: `arn:aws:ssm:${region}:${account}:parameter${pname}` }]
          : undefined,
    };
  }

  iam(ctx) {
    const rng = this.rng;
    const name = rng.pick(["GetUser", "ListAttachedRolePolicies", "GetRole", "CreatePolicy"]);
    let req = rng.chance(0.5) ? { userName: `user-${rng.int(1, 50)}` } : null;
    let resp = null;
    if (name === "ListAttachedRolePolicies") req = { roleName: `role-${rng.int(1, 50)}` };
    if (name === "GetRole") req = { roleName: `role-${rng.int(1, 50)}` };
    if (name === "CreatePolicy") {
      const doc = {
        Version: "2012-10-17",
        Statement: [
          {
            Sid: "Allow",
            Effect: "Allow",
            Action: ["s3:GetObject", "s3:ListBucket"],
            Resource: [`arn:aws:s3:::data-lake-${ctx.account}-raw`, `arn:aws:s3:::data-lake-${ctx.account}-raw/*`],
          },
          { Effect: "Deny", Action: "*", Resource: "*", Condition: { Bool: { "aws:SecureTransport": "false" } } },
        ],
      };
      // Policies arrive as a JSON string inside the event: pretty-printed, with escaped quotes and newlines.
      req = {
        policyName: `policy-${rng.hex(6)}`,
        policyDocument: JSON.stringify(doc, null, rng.chance(0.5) ? 4 : undefined),
        description: rng.chance(0.4) ? this.jaText() : "managed by terraform",
      };
      if (rng.chance(0.3)) {
        // Escaped forms AWS sometimes uses: \u00e9, \/ and \u2028 inside strings.
        req.description = rawString("Acc\\u00e8s en lecture \\/ data-lake \\u2028 caf\\u00e9");
        ctx.hasRaw = true;
      }
      resp = {
        policy: {
          policyName: req.policyName,
          policyId: `ANPA${rng.chars(UPPER_NUM, 17)}`,
          arn: `arn:aws:iam::${ctx.account}:policy/${req.policyName}`,
          path: "/",
          defaultVersionId: "v1",
          attachmentCount: 0,
          permissionsBoundaryUsageCount: 0,
          isAttachable: true,
          createDate: "Jul 10, 2023 11:54:47 AM",
          updateDate: "Jul 10, 2023 11:54:47 AM",
        },
      };
    }
    return {
      source: "iam.amazonaws.com",
      name,
      req,
      resp,
      region: "us-east-1",
      readOnly: name !== "CreatePolicy",
      host: "iam.amazonaws.com",
    };
  }

  consoleLogin() {
    const rng = this.rng;
    const ok = rng.chance(0.8);
    return {
      source: "signin.amazonaws.com",
      name: "ConsoleLogin",
      region: "us-east-1",
      agent: this.ua.browser(),
      req: null,
      resp: { ConsoleLogin: ok ? "Success" : "Failure" },
      errorCode: undefined,
      errorMessage: ok ? undefined : "Failed authentication",
      additional: {
        LoginTo: "https://console.aws.amazon.com/console/home?state=hashArgs%23&isauthcode=true",
        MobileVersion: "No",
        MFAUsed: rng.pick(["Yes", "No"]),
      },
      requestID: false,
      eventType: "AwsConsoleSignIn",
      host: "signin.aws.amazon.com",
    };
  }

  ec2Mutating({ region }) {
    const rng = this.rng;
    const instanceId = `i-0${rng.hex(16)}`;
    const kind = rng.int(0, 2);
    if (kind === 0) {
      // Polymorphic: the same field is a boolean in one event and an object in the next.
      const attr = rng.pick(["disableApiTermination", "sourceDestCheck", "ebsOptimized"]);
      const value = rng.chance(0.5) ? rng.chance(0.5) : { value: rng.chance(0.5) };
      return {
        source: "ec2.amazonaws.com",
        name: "ModifyInstanceAttribute",
        req: { instanceId, [attr]: value },
        resp: rng.chance(0.5) ? { requestId: rng.uuid(), _return: true } : { _return: true },
        host: `ec2.${region}.amazonaws.com`,
      };
    }
    if (kind === 1) {
      return {
        source: "ec2.amazonaws.com",
        name: "CreateTags",
        req: {
          resourcesSet: { items: [{ resourceId: instanceId }] },
          tagSet: {
            items: [
              { key: "Name", value: this.jaText() },
              { key: "Owner", value: `${rng.pick(["山田", "佐藤", "鈴木"])} ${rng.pick(EMOJI)}` },
            ],
          },
        },
        resp: { requestId: rng.uuid(), _return: true },
        host: `ec2.${region}.amazonaws.com`,
      };
    }
    const fail = rng.chance(0.3);
    return {
      source: "ec2.amazonaws.com",
      name: "RunInstances",
      errorCode: fail ? "Client.InvalidParameterValue" : undefined,
      errorMessage: fail
        ? "Value (stratus-red-team-ec2-steal-credentials-instance) for parameter iamInstanceProfile.name is invalid. Invalid IAM Instance Profile name"
        : undefined,
      req: {
        instancesSet: { items: [{ imageId: `ami-0${rng.hex(16)}`, minCount: 1, maxCount: rng.int(1, 3) }] },
        instanceType: rng.pick(["t3.micro", "m6i.large", "c7g.xlarge"]),
        blockDeviceMapping: rng.chance(0.5)
          ? {}
          : {
              items: [
                { deviceName: "/dev/xvda", ebs: { volumeSize: 30, deleteOnTermination: true, volumeType: "gp3" } },
              ],
            },
        monitoring: rng.chance(0.5) ? { enabled: false } : false,
        disableApiTermination: false,
        clientToken: rng.uuid().toUpperCase(),
        networkInterfaceSet: {
          items: [{ networkInterfaceId: `eni-0${rng.hex(16)}`, deviceIndex: 0, deleteOnTermination: false }],
        },
        iamInstanceProfile: { name: "stratus-red-team-ec2-steal-credentials-instance" },
        tagSpecificationSet: { items: [{ resourceType: "instance", tags: [{ key: "Name", value: this.jaText() }] }] },
        creditSpecification: { cpuCredits: "unlimited" },
        hibernationOptions: { configured: false },
      },
      resp: fail
        ? null
        : {
            requestId: rng.uuid(),
            reservationId: `r-0${rng.hex(16)}`,
            ownerId: "123837392027",
            groupSet: {},
            instancesSet: {
              items: [
                {
                  instanceId,
                  imageId: `ami-0${rng.hex(16)}`,
                  instanceState: { code: 0, name: "pending" },
                  privateDnsName: `ip-10-0-3-${rng.int(1, 254)}.ec2.internal`,
                  amiLaunchIndex: 0,
                  productCodes: {},
                  instanceType: "t3.micro",
                  launchTime: 1688990116000,
                  placement: { availabilityZone: `${region}a`, tenancy: "default" },
                  monitoring: { state: "disabled" },
                  subnetId: `subnet-0${rng.hex(16)}`,
                  vpcId: `vpc-0${rng.hex(16)}`,
                  privateIpAddress: "10.0.3.17",
                  stateReason: { code: "pending", message: "pending" },
                  architecture: "x86_64",
                  rootDeviceType: "ebs",
                  rootDeviceName: "/dev/xvda",
                  blockDeviceMapping: {},
                  virtualizationType: "hvm",
                  hypervisor: "xen",
                  ebsOptimized: false,
                  enaSupport: true,
                  cpuOptions: { coreCount: 1, threadsPerCore: 2 },
                  capacityReservationSpecification: { capacityReservationPreference: "open" },
                  enclaveOptions: { enabled: false },
                  metadataOptions: {
                    state: "pending",
                    httpTokens: "optional",
                    httpPutResponseHopLimit: 1,
                    httpEndpoint: "enabled",
                  },
                },
              ],
            },
          },
      host: `ec2.${region}.amazonaws.com`,
    };
  }

  numeric(ctx) {
    // Services whose events carry numbers JSON.parse cannot round-trip: exponent notation and integers above 2^53.
    const rng = this.rng;
    ctx.hasRaw = true;
    const epoch = Math.floor(ctx.ms / 1000);
    const frac = String(rng.int(100, 999));
    if (rng.chance(0.5)) {
      return {
        source: "ecr.amazonaws.com",
        name: "DescribeImages",
        readOnly: true,
        req: { repositoryName: `app-${rng.int(1, 9)}`, imageIds: [{ imageTag: "latest" }] },
        resp: {
          imageDetails: [
            {
              registryId: ctx.account,
              repositoryName: `app-${rng.int(1, 9)}`,
              imageDigest: `sha256:${rng.hex(64)}`,
              imageTags: ["latest"],
              imageSizeInBytes: rng.int(10_000_000, 900_000_000),
              imagePushedAt: raw(`${String(epoch).slice(0, 1)}.${String(epoch).slice(1)}${frac}E9`),
              lastRecordedPullTime: raw(`${String(epoch - 60).slice(0, 1)}.${String(epoch - 60).slice(1)}${frac}E9`),
            },
          ],
        },
        host: `api.ecr.${ctx.region}.amazonaws.com`,
      };
    }
    const big = (9007199254740993n + BigInt(rng.int(0, 1e9)) * 1000003n).toString();
    return {
      source: "dynamodb.amazonaws.com",
      name: rng.pick(["DescribeTable", "UpdateTimeToLive"]),
      req: { tableName: `orders-${rng.int(1, 9)}` },
      resp: {
        table: {
          tableName: `orders-${rng.int(1, 9)}`,
          tableSizeBytes: raw(big),
          itemCount: raw((18446744073709551615n - BigInt(rng.int(0, 1e9))).toString()),
          creationDateTime: raw(`1.${String(epoch).slice(1)}${frac}E9`),
          provisionedThroughput: { numberOfDecreasesToday: 0, readCapacityUnits: raw("5.0"), writeCapacityUnits: 5 },
        },
      },
      readOnly: rng.chance(0.5),
      host: `dynamodb.${ctx.region}.amazonaws.com`,
    };
  }

  serviceEvent(ctx) {
    const rng = this.rng;
    return {
      source: rng.pick(["kms.amazonaws.com", "ssm.amazonaws.com", "health.amazonaws.com"]),
      name: rng.pick(["RotateKey", "DescribeEventAggregates", "RecordHealthStatus"]),
      userIdentity: { accountId: ctx.account, invokedBy: "AWS Internal" },
      agent: "AWS Internal",
      ip: "AWS Internal",
      eventType: "AwsServiceEvent",
      requestID: false,
      serviceEventDetails: {
        keyId: rng.uuid(),
        rotationStatus: rng.chance(0.5),
        details: rng.chance(0.5) ? { note: this.jaText() } : "rotated",
      },
    };
  }

  bigTemplate(ctx) {
    // Rare large events (tens of KB): a CloudFormation template body.
    const rng = this.rng;
    const lines = [];
    const n = rng.int(100, 400);
    lines.push("AWSTemplateFormatVersion: '2010-09-09'", `Description: "${this.jaText()} stack"`, "Resources:");
    for (let i = 0; i < n; i++) {
      lines.push(
        `  Bucket${i}:`,
        "    Type: AWS::S3::Bucket",
        "    Properties:",
        `      BucketName: !Sub "\${AWS::StackName}-b${i}-${rng.hex(6)}"`,
      );
    }
    return {
      source: "cloudformation.amazonaws.com",
      name: "CreateStack",
      req: {
        stackName: `stack-${rng.hex(8)}`,
        templateBody: lines.join("\n"),
        capabilities: ["CAPABILITY_IAM"],
        tags: [{ key: "名前", value: this.jaText() }],
      },
      resp: { stackId: `arn:aws:cloudformation:${ctx.region}:${ctx.account}:stack/s/${rng.uuid()}` },
      host: `cloudformation.${ctx.region}.amazonaws.com`,
    };
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Files

function fileTimeMs(rng, index, count) {
  // Files spread over 2023-07-10, in 5-minute slots, in order of index.
  const start = Date.UTC(2023, 6, 10, 0, 0, 0);
  const slot = Math.floor((index / Math.max(1, count)) * 288);
  return start + slot * 300_000 + rng.int(0, 4) * 60_000;
}

function keyFor(account, region, ms, unique) {
  const d = new Date(ms);
  const y = d.getUTCFullYear();
  const mo = pad2(d.getUTCMonth() + 1);
  const da = pad2(d.getUTCDate());
  const stamp = `${y}${mo}${da}T${pad2(d.getUTCHours())}${pad2(d.getUTCMinutes())}Z`;
  return `AWSLogs/${account}/CloudTrail/${region}/${y}/${mo}/${da}/${account}_CloudTrail_${region}_${stamp}_${unique}.json.gz`;
}

function eventTimes(rng, fileMs, n) {
  // Mostly within the 15 minutes before the file, some hours older; NOT sorted (CloudTrail does not sort).
  const times = new Array(n);
  for (let i = 0; i < n; i++) {
    const back = rng.chance(0.03) ? rng.int(3600, 6 * 3600) : rng.int(0, 900);
    times[i] = fileMs - back * 1000 - rng.int(0, 999);
  }
  return times;
}

function splitEvents(rng, total, objects) {
  // Real files hold from a handful to thousands of events: log-normal weights normalised to the total.
  const w = [];
  for (let i = 0; i < objects; i++) w.push(Math.exp(rng.normal() * 0.9));
  const sum = w.reduce((a, b) => a + b, 0);
  const counts = w.map((x) => Math.max(1, Math.floor((x / sum) * total)));
  let diff = total - counts.reduce((a, b) => a + b, 0);
  for (let i = 0; diff !== 0; i = (i + 1) % objects) {
    if (diff > 0) {
      counts[i]++;
      diff--;
    } else if (counts[i] > 1) {
      counts[i]--;
      diff++;
    }
  }
  return counts;
}

function readManifest(dir, params) {
  const path = join(dir, "manifest.json");
  if (!existsSync(path)) return undefined;
  try {
    const m = JSON.parse(readFileSync(path, "utf8"));
    if (m.version !== GENERATOR_VERSION || JSON.stringify(m.params) !== JSON.stringify(params)) return undefined;
    for (const f of m.files)
      if (statSync(join(dir, f.key), { throwIfNoEntry: false })?.size !== f.gzBytes) return undefined;
    return { ...m, dir };
  } catch {
    return undefined;
  }
}

function finish(dir, tmp, manifest, log) {
  writeFileSync(join(tmp, "manifest.json"), `${JSON.stringify(manifest, null, 1)}\n`);
  rmSync(dir, { recursive: true, force: true });
  renameSync(tmp, dir);
  log(
    `corpus ${manifest.name}: ${manifest.files.length} objects, ${manifest.events} events, ${(manifest.jsonBytes / 1e6).toFixed(1)} MB JSON, ${(manifest.gzBytes / 1e6).toFixed(1)} MB gzip`,
  );
  return { ...manifest, dir };
}

/**
 * Makes (or reuses) a set of many log files. Returns the manifest with absolute `dir`. `style` (a key of STYLES)
 * lays the same events out differently: the same seed gives the same events in every style.
 */
export function ensureCorpus({
  name,
  objects,
  events,
  seed,
  style = "compact",
  root = CORPUS_ROOT,
  log = console.error,
}) {
  const layout = STYLES[style];
  if (layout === undefined) throw new Error(`corpus ${name}: unknown style ${style}`);
  // The compact set's parameters stay as they were before styles existed, so its manifest still matches.
  const params = style === "compact" ? { objects, events, seed } : { objects, events, seed, style };
  const dir = join(root, name);
  const cached = readManifest(dir, params);
  if (cached) return cached;
  if (!(objects >= 1) || !(events >= objects))
    throw new Error(`corpus ${name}: need objects >= 1 and events >= objects`);
  log(`generating corpus ${name} (${objects} objects, ${events} events, ${style})...`);
  const t0 = performance.now();
  const tmp = `${dir}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  const rng = new Rng(seed);
  const factory = new EventFactory(rng);
  const counts = splitEvents(rng, events, objects);
  const files = [];
  let jsonBytes = 0;
  let gzBytes = 0;
  for (let i = 0; i < objects; i++) {
    const account = ACCOUNTS[i % ACCOUNTS.length];
    const region = rng.pick(REGIONS);
    const ms = fileTimeMs(rng, i, objects);
    const key = keyFor(account, region, ms, rng.chars(ALNUM, 16));
    const parts = [];
    for (const t of eventTimes(rng, ms, counts[i])) parts.push(factory.event(t, account, region));
    const text = layout(parts);
    const json = Buffer.from(text, "utf8");
    const gz = gzipSync(json);
    mkdirSync(dirname(join(tmp, key)), { recursive: true });
    writeFileSync(join(tmp, key), gz);
    files.push({ key, events: counts[i], jsonBytes: json.length, gzBytes: gz.length });
    jsonBytes += json.length;
    gzBytes += gz.length;
  }
  log(`  generated in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  return finish(dir, tmp, { version: GENERATOR_VERSION, name, params, events, jsonBytes, gzBytes, files }, log);
}

/** Makes (or reuses) one large log file of about `mb` MB of JSON, generated streaming (small memory). */
export async function ensureLargeObject({ mb, seed, root = CORPUS_ROOT, log = console.error }) {
  const name = "large";
  const params = { mb, seed };
  const dir = join(root, name);
  const cached = readManifest(dir, params);
  if (cached) return cached;
  log(`generating large object (~${mb} MB of JSON, streaming)...`);
  const t0 = performance.now();
  const tmp = `${dir}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  const rng = new Rng(seed);
  const factory = new EventFactory(rng);
  const account = ACCOUNTS[0];
  const region = "us-east-1";
  const ms = Date.UTC(2023, 6, 10, 12, 0, 0);
  const key = keyFor(account, region, ms, rng.chars(ALNUM, 16));
  const path = join(tmp, key);
  mkdirSync(dirname(path), { recursive: true });
  const out = createWriteStream(path);
  const gzip = createGzip();
  gzip.pipe(out);
  let gzBytes = 0;
  gzip.on("data", (chunk) => {
    gzBytes += chunk.length;
  });
  const target = mb * 1e6;
  let jsonBytes = 0;
  let events = 0;
  const write = async (text) => {
    const buf = Buffer.from(text, "utf8");
    jsonBytes += buf.length;
    if (!gzip.write(buf)) await once(gzip, "drain");
  };
  await write('{"Records":[');
  let first = true;
  while (jsonBytes < target) {
    const parts = [];
    let size = 0;
    // ~1 MB batches; the tail of the day's events spread over 12 hours, unsorted.
    while (size < 1 << 20 && jsonBytes + size < target) {
      const t = ms - rng.int(0, 12 * 3600) * 1000 - rng.int(0, 999);
      const e = factory.event(t, account, region);
      parts.push(e);
      size += e.length + 1;
      events++;
    }
    await write((first ? "" : ",") + parts.join(","));
    first = false;
  }
  await write("]}");
  gzip.end();
  await once(out, "close");
  log(`  generated in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  return finish(
    dir,
    tmp,
    {
      version: GENERATOR_VERSION,
      name,
      params,
      events,
      jsonBytes,
      gzBytes,
      files: [{ key, events, jsonBytes, gzBytes }],
    },
    log,
  );
}

// ---------------------------------------------------------------------------------------------------------------
// CLI

export function envInt(name, fallback) {
  const v = process.env[name];
  if (v === undefined || v === "") return fallback;
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`${name} must be a positive number`);
  return n;
}

async function cli() {
  const { parseArgs } = await import("node:util");
  const { values } = parseArgs({
    options: {
      set: { type: "string", default: "all" },
      objects: { type: "string" },
      events: { type: "string" },
      "large-mb": { type: "string" },
      seed: { type: "string" },
    },
  });
  const seed = values.seed ?? process.env.BENCH_SEED;
  const sets = values.set === "all" ? ["cpu", "cpu-spaced", "cpu-pretty", "small", "large"] : values.set.split(",");
  for (const set of sets) {
    if (set === "cpu" || set === "cpu-spaced" || set === "cpu-pretty") {
      ensureCorpus({
        name: set,
        objects: Number(values.objects ?? envInt("BENCH_OBJECTS", DEFAULTS.cpu.objects)),
        events: Number(values.events ?? envInt("BENCH_EVENTS", DEFAULTS.cpu.events)),
        seed: seed ?? DEFAULTS.cpu.seed,
        style: set === "cpu" ? "compact" : set.slice(4),
      });
    } else if (set === "small") {
      ensureCorpus({ name: "small", ...DEFAULTS.small, ...(seed ? { seed: `${seed}-small` } : {}) });
    } else if (set === "large") {
      await ensureLargeObject({
        mb: Number(values["large-mb"] ?? envInt("BENCH_LARGE_MB", DEFAULTS.large.mb)),
        seed: seed ? `${seed}-large` : DEFAULTS.large.seed,
      });
    } else {
      throw new Error(`unknown set ${set}`);
    }
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  await cli();
}
