// The S3 request path as AWS answers it: the AWS SDK's GetObject over undici (clients.ts, s3-get.ts, fetch.ts).
// In process, every connection goes to one loopback HTTPS server whatever the host name (a connector handed to
// undici), so the tests see the host names the SDK chose: virtual-hosted and path-style addressing, FIPS and
// dual-stack endpoints, the bucket's region followed after a 301 or a 400 AuthorizationHeaderMalformed and
// remembered, Requester Pays, response checksums. The spawned CLI against the S3 stand-in: credentials rejected
// before they say they expire (a container-credentials endpoint on loopback hands out new ones), and a clock S3 finds
// too far off.
import { createServer as createHttpServer } from "node:http";
import { createServer, type Server } from "node:https";
import type { AddressInfo } from "node:net";
import { connect as tlsConnect } from "node:tls";
import { crc32, gzipSync } from "node:zlib";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { AwsClients } from "../../src/fetch/clients.js";
import { FetchError, S3Source } from "../../src/fetch/fetch.js";
import type { ObjectRef } from "../../src/model/refs.js";
import { deadLetters, events, parseOutput, runCli } from "../support/cli.js";
import { startFaultS3 } from "../support/fault-s3.js";
import { region, s3Ref } from "../support/names.js";
import { TEST_CERTIFICATE } from "../support/tls.js";

process.env.AWS_ACCESS_KEY_ID = "AKIDEXAMPLE";
process.env.AWS_SECRET_ACCESS_KEY = "secret";
process.env.AWS_EC2_METADATA_DISABLED = "true";
delete process.env.AWS_PROFILE;

const TRAIL = Buffer.from(JSON.stringify({ Records: [{ eventID: "e1", eventTime: "2023-07-10T11:45:00Z" }] }));
const OBJECT = gzipSync(TRAIL);
const KEY = "AWSLogs/111122223333/CloudTrail/eu-west-1/2023/07/10/x.json.gz";

interface Seen {
  host: string;
  path: string;
  payer: string | undefined;
}

/** What the server answers for a host and path; undefined: the object. */
type Answer = { status: number; headers?: Record<string, string>; body?: string } | undefined;

let server: Server;
let port: number;
const seen: Seen[] = [];
let answer: (host: string, path: string) => Answer = () => undefined;
let objectHeaders: Record<string, string> = {};

beforeAll(async () => {
  server = createServer(TEST_CERTIFICATE, (req, res) => {
    const host = String(req.headers.host);
    const path = String(req.url).split("?")[0] as string;
    seen.push({ host, path, payer: req.headers["x-amz-request-payer"] as string | undefined });
    const reply = answer(host, path);
    if (reply !== undefined) {
      res.writeHead(reply.status, { "content-type": "application/xml", ...reply.headers });
      res.end(reply.body ?? "");
      return;
    }
    res.writeHead(200, { "content-length": OBJECT.length, ...objectHeaders });
    res.end(OBJECT);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  port = (server.address() as AddressInfo).port;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});

afterEach(() => {
  seen.length = 0;
  answer = () => undefined;
  objectHeaders = {};
});

/** Clients whose every connection reaches the loopback server, keeping the SNI and Host of the name asked for. */
function clients(region = "us-east-1", requestPayer = false): AwsClients {
  return new AwsClients({
    region,
    connections: 4,
    timeoutMs: 5000,
    requestPayer,
    env: {},
    connect: (options, callback) => {
      const socket = tlsConnect({
        host: "127.0.0.1",
        port,
        servername: options.servername || options.hostname,
        rejectUnauthorized: false,
        ALPNProtocols: ["http/1.1"],
      });
      socket.once("secureConnect", () => callback(null, socket));
      socket.once("error", (error) => callback(error, null));
      return socket;
    },
  });
}

async function read(aws: AwsClients, ref: ObjectRef): Promise<Buffer> {
  const opened = await new S3Source(() => aws.getter()).open(ref, new AbortController().signal);
  if ("whole" in opened) return opened.whole;
  const parts: Buffer[] = [];
  for await (const part of opened.body) parts.push(part);
  return Buffer.concat(parts);
}

const s3 = (bucketName: string, regionName?: string): ObjectRef => ({
  ...s3Ref(bucketName, KEY),
  ...(regionName === undefined ? {} : { region: region(regionName) }),
});

describe("addressing, by host name", () => {
  it.each([
    ["my-trail", "us-east-1", undefined, "my-trail.s3.us-east-1.amazonaws.com", `/${KEY}`],
    ["my-trail", "us-east-1", "eu-west-1", "my-trail.s3.eu-west-1.amazonaws.com", `/${KEY}`],
    ["my.dotted.trail", "eu-west-1", undefined, "s3.eu-west-1.amazonaws.com", `/my.dotted.trail/${KEY}`],
    ["cn-trail", "cn-north-1", undefined, "cn-trail.s3.cn-north-1.amazonaws.com.cn", `/${KEY}`],
    // Hints that are no region of the partition (the SDK's data) are ignored: --region is asked (issue 20).
    ["my-trail", "us-east-1", "zz-fake-0", "my-trail.s3.us-east-1.amazonaws.com", `/${KEY}`],
    ["my-trail", "us-east-1", "us-fake-1", "my-trail.s3.us-east-1.amazonaws.com", `/${KEY}`],
    ["my-trail", "us-east-1", "cn-north-1", "my-trail.s3.us-east-1.amazonaws.com", `/${KEY}`],
  ])("bucket %s (default region %s, notified %s): %s", async (bucket, region, hint, host, path) => {
    const body = await read(clients(region), s3(bucket, hint));
    expect(body.equals(OBJECT)).toBe(true);
    expect(seen).toEqual([{ host, path, payer: undefined }]);
  });

  it.each([
    ["AWS_USE_FIPS_ENDPOINT", "my-trail.s3-fips.us-east-1.amazonaws.com"],
    ["AWS_USE_DUALSTACK_ENDPOINT", "my-trail.s3.dualstack.us-east-1.amazonaws.com"],
  ])("%s=true: %s", async (variable, host) => {
    process.env[variable] = "true";
    try {
      await read(clients(), s3("my-trail"));
    } finally {
      delete process.env[variable];
    }
    expect(seen.map((s) => s.host)).toEqual([host]);
  });

  it("--request-payer sends x-amz-request-payer: requester", async () => {
    await read(clients("us-east-1", true), s3("my-trail"));
    expect(seen.map((s) => s.payer)).toEqual(["requester"]);
  });
});

describe("the bucket's region", () => {
  it("a 301 names it: asked again there, and the next object goes there at once", async () => {
    answer = (host) =>
      host.includes(".us-east-1.")
        ? {
            status: 301,
            headers: { "x-amz-bucket-region": "eu-west-1" },
            body: "<Error><Code>PermanentRedirect</Code><Message>elsewhere</Message></Error>",
          }
        : undefined;
    const aws = clients();
    await read(aws, s3("moved-trail"));
    await read(aws, s3("moved-trail"));
    expect(seen.map((s) => s.host)).toEqual([
      "moved-trail.s3.us-east-1.amazonaws.com",
      "moved-trail.s3.eu-west-1.amazonaws.com",
      "moved-trail.s3.eu-west-1.amazonaws.com",
    ]);
  });

  it("a 400 AuthorizationHeaderMalformed names it in <Region>", async () => {
    answer = (host) =>
      host.includes(".us-east-1.")
        ? {
            status: 400,
            body: "<Error><Code>AuthorizationHeaderMalformed</Code><Message>wrong region</Message><Region>eu-west-2</Region></Error>",
          }
        : undefined;
    await read(clients(), s3("signed-elsewhere"));
    expect(seen.map((s) => s.host)).toEqual([
      "signed-elsewhere.s3.us-east-1.amazonaws.com",
      "signed-elsewhere.s3.eu-west-2.amazonaws.com",
    ]);
  });

  it("a region that is not a region name is not followed: the error stands, and no other host is asked", async () => {
    answer = () => ({
      status: 301,
      headers: { "x-amz-bucket-region": "x@127.0.0.1:9" },
      body: "<Error><Code>PermanentRedirect</Code><Message>elsewhere</Message></Error>",
    });
    await expect(read(clients(), s3("my-trail"))).rejects.toBeInstanceOf(FetchError);
    expect(seen.map((s) => s.host)).toEqual(["my-trail.s3.us-east-1.amazonaws.com"]);
  });

  it("a region that is no region of the partition is not followed either (no lookup of a made-up host)", async () => {
    answer = () => ({
      status: 301,
      headers: { "x-amz-bucket-region": "zz-fake-0" },
      body: "<Error><Code>PermanentRedirect</Code><Message>elsewhere</Message></Error>",
    });
    await expect(read(clients(), s3("my-trail"))).rejects.toBeInstanceOf(FetchError);
    expect(seen.map((s) => s.host)).toEqual(["my-trail.s3.us-east-1.amazonaws.com"]);
  });

  it("hints of 300 made-up regions make no S3 client beyond --region's (clients per region are bounded)", async () => {
    const aws = clients();
    const letters = (n: number) => String.fromCharCode(97 + (n % 26)) + String.fromCharCode(97 + Math.floor(n / 26));
    for (let i = 0; i < 300; i++) await read(aws, s3("my-trail", `zz-fake${letters(i)}-1`));
    expect(new Set(seen.map((s) => s.host))).toEqual(new Set(["my-trail.s3.us-east-1.amazonaws.com"]));
    // Before, each made-up region got a client that was never freed (1,500 regions: +66 MB RSS).
    expect((aws as unknown as { s3: Map<string, unknown> }).s3.size).toBe(1);
  });

  it("a redirect is followed once, never in a loop", async () => {
    answer = (host) => ({
      status: 301,
      headers: { "x-amz-bucket-region": host.includes(".us-east-1.") ? "eu-west-1" : "us-east-1" },
      body: "<Error><Code>PermanentRedirect</Code><Message>elsewhere</Message></Error>",
    });
    await expect(read(clients(), s3("ping-pong"))).rejects.toBeInstanceOf(FetchError);
    expect(seen).toHaveLength(2);
  });
});

describe("response checksums", () => {
  const crc = (data: Buffer) => {
    const out = Buffer.alloc(4);
    out.writeUInt32BE(crc32(data));
    return out.toString("base64");
  };

  it("a body that matches the checksum S3 sends is read", async () => {
    objectHeaders = { "x-amz-checksum-crc32": crc(OBJECT) };
    expect((await read(clients(), s3("my-trail"))).equals(OBJECT)).toBe(true);
  });

  it("a body that does not match is a transient failure (fetched again by the filter), never events", async () => {
    objectHeaders = { "x-amz-checksum-crc32": crc(Buffer.from("something else")) };
    const failure = await read(clients(), s3("my-trail")).catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(FetchError);
    expect(failure).toMatchObject({ code: "FetchFailed", transient: true });
  });
});

describe("the spawned CLI and stale credentials", () => {
  it("credentials S3 rejects before they expire: fetched again from the container endpoint, the GET sent again", async () => {
    const s3server = await startFaultS3();
    let handedOut = 0;
    const credentialsServer = createHttpServer((_req, res) => {
      handedOut++;
      res.writeHead(200, { "content-type": "application/json" });
      res.end(
        JSON.stringify({
          AccessKeyId: `AKID${handedOut}`,
          SecretAccessKey: "secret",
          Token: `token-${handedOut}`,
          // An hour ahead: the provider has no reason of its own to ask again.
          Expiration: new Date(Date.now() + 3_600_000).toISOString(),
        }),
      );
    });
    await new Promise<void>((resolve) => credentialsServer.listen(0, "127.0.0.1", resolve));
    const credentialsPort = (credentialsServer.address() as AddressInfo).port;
    try {
      const keys = ["a.json.gz", "b.json.gz", "c.json.gz", "d.json.gz"];
      for (const key of keys) s3server.putObject("trail", key, OBJECT);
      // The first token is revoked after the first object: S3 says ExpiredToken from then on.
      let served = 0;
      s3server.gate = (req) => {
        const token = String(req.headers["x-amz-security-token"]);
        if (token === "token-1" && served++ >= 1) return { status: 400, code: "ExpiredToken" };
        return undefined;
      };
      const run = await runCli(
        ["--endpoint", s3server.endpoint, "--concurrency", "1"],
        keys.map((key) => `s3://trail/${key}`).join("\n"),
        {
          AWS_ACCESS_KEY_ID: "",
          AWS_SECRET_ACCESS_KEY: "",
          AWS_REGION: "us-east-1",
          AWS_CONTAINER_CREDENTIALS_FULL_URI: `http://127.0.0.1:${credentialsPort}/creds`,
        },
      );
      const out = parseOutput(run.stdout);
      expect(deadLetters(out)).toEqual([]);
      expect(events(out)).toHaveLength(keys.length);
      expect(handedOut).toBe(2);
      const tokens = s3server.requests.map((r) => String(r.headers["x-amz-security-token"]));
      expect(tokens).toEqual(["token-1", "token-1", "token-2", "token-2", "token-2"]);
      expect(run.log.filter((l) => l.msg === "retrying")).toEqual([]);
    } finally {
      credentialsServer.closeAllConnections();
      await new Promise((resolve) => credentialsServer.close(resolve));
      await s3server.close();
    }
  });

  it("a clock two hours off: the first GET is refused as RequestTimeTooSkewed, then every GET is signed in S3's time", async () => {
    const s3server = await startFaultS3();
    s3server.clockOffsetMs = 2 * 3_600_000;
    try {
      const keys = ["a.json.gz", "b.json.gz", "c.json.gz"];
      for (const key of keys) s3server.putObject("trail", key, OBJECT);
      const run = await runCli(
        ["--endpoint", s3server.endpoint, "--concurrency", "1"],
        keys.map((key) => `s3://trail/${key}`).join("\n"),
        { AWS_ACCESS_KEY_ID: "x", AWS_SECRET_ACCESS_KEY: "x", AWS_REGION: "us-east-1" },
      );
      const out = parseOutput(run.stdout);
      expect(deadLetters(out)).toEqual([]);
      expect(events(out)).toHaveLength(keys.length);
      expect(s3server.requests.map((r) => r.outcome)).toEqual(["RequestTimeTooSkewed", "ok", "ok", "ok"]);
    } finally {
      await s3server.close();
    }
  });
});
