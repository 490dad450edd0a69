// HTTP proxies for the S3 GETs: which requests go through one (the conventional variables and no_proxy), and the
// spawned CLI through a loopback proxy: a CONNECT tunnel carrying TLS to an https:// endpoint, absolute-form requests
// to an http:// one, credentials from the proxy URL, refusals (a 407 is a dead letter at once, a 502 is retried), the
// AWS SDK's calls through the same tunnels (SQS acknowledgements, the import command's listing, STS credentials for a
// web identity), and a proxy URL it cannot use (an error at start-up, nothing on stdout).
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from "node:http";
import { createServer as createHttpsServer, get as httpsGet } from "node:https";
import type { AddressInfo, Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { bypassed, parseProxy, proxyFor } from "../src/proxy.js";
import { ProxyAgent } from "../src/proxy-agent.js";
import { deadLetters, events, parseOutput, runCli } from "./support/cli.js";
import { type LoopbackProxy, startProxy } from "./support/proxy.js";
import { s3Env, startS3 } from "./support/s3.js";
import { fixS3rverDelimiter } from "./support/s3rver-delimiter.js";
import { startSqs } from "./support/sqs-server.js";
import { FAKE_AWS_ENV, TEST_CA, TEST_CERTIFICATE, trailObjects } from "./support/tls.js";

describe("which proxy a request takes", () => {
  it("reads a proxy URL: host, port (80 by default), credentials (percent-decoded), no scheme meaning http", () => {
    expect(parseProxy("http://proxy.corp:3128", "HTTPS_PROXY")).toEqual({
      hostname: "proxy.corp",
      port: 3128,
      display: "http://proxy.corp:3128",
    });
    expect(parseProxy("proxy.corp", "HTTPS_PROXY")).toMatchObject({ hostname: "proxy.corp", port: 80 });
    expect(parseProxy("http://[::1]:8080/", "HTTPS_PROXY")).toMatchObject({ hostname: "::1", port: 8080 });
    expect(parseProxy("http://us%3Aer:p%40ss@proxy:3128", "HTTPS_PROXY")).toMatchObject({
      authorization: `Basic ${Buffer.from("us:er:p@ss").toString("base64")}`,
      display: "http://proxy:3128",
    });
  });

  it("refuses what it cannot speak, naming the variable", () => {
    expect(() => parseProxy("https://proxy:443", "HTTPS_PROXY")).toThrow(/HTTPS_PROXY: only http:\/\/ proxies/);
    expect(() => parseProxy("socks5://proxy:1080", "https_proxy")).toThrow(/https_proxy: only http:\/\//);
    expect(() => parseProxy("http://", "HTTP_PROXY")).toThrow(/HTTP_PROXY/);
    expect(() => parseProxy("http://u:bad%zzsecret@proxy:3128", "HTTPS_PROXY")).toThrow(/not valid percent-encoding/);
    // A password never appears in a message, even when the URL cannot be read.
    for (const value of ["http://u:s3cr et@pro xy:3128", "http://u:s3cr%zzet@proxy:3128"]) {
      let message = "";
      try {
        parseProxy(value, "HTTPS_PROXY");
      } catch (error) {
        message = (error as Error).message;
      }
      expect(message).not.toBe("");
      expect(message).not.toContain("s3cr");
    }
  });

  it.each([
    ["*", "s3.amazonaws.com", 443, true],
    ["amazonaws.com", "s3.us-east-1.amazonaws.com", 443, true],
    [".amazonaws.com", "s3.us-east-1.amazonaws.com", 443, true],
    ["*.amazonaws.com", "s3.us-east-1.amazonaws.com", 443, true],
    ["amazonaws.com", "amazonaws.com", 443, true],
    ["amazonaws.com", "notamazonaws.com", 443, false],
    ["s3.amazonaws.com:443", "s3.amazonaws.com", 443, true],
    ["s3.amazonaws.com:80", "s3.amazonaws.com", 443, false],
    ["localhost, 127.0.0.1", "127.0.0.1", 9000, true],
    ["localhost,127.0.0.1", "127.0.0.2", 9000, false],
    ["::1", "::1", 9000, true],
    ["[::1]:9000", "::1", 9000, true],
    ["minio.internal", "MINIO.internal", 9000, true],
    ["", "s3.amazonaws.com", 443, false],
  ])("no_proxy %j for %s:%i: bypassed %s", (noProxy, host, port, expected) => {
    expect(bypassed(noProxy, host, port)).toBe(expected);
  });

  it("takes https_proxy for https and http_proxy for http, lowercase first, unless no_proxy says otherwise", () => {
    const env = {
      HTTPS_PROXY: "http://upper:1",
      https_proxy: "http://lower:2",
      HTTP_PROXY: "http://plain:3",
      NO_PROXY: "minio.internal",
    };
    expect(proxyFor(true, "s3.amazonaws.com", 443, env)?.hostname).toBe("lower");
    expect(proxyFor(false, "s3.amazonaws.com", 80, env)?.hostname).toBe("plain");
    expect(proxyFor(false, "minio.internal", 9000, env)).toBeUndefined();
    expect(proxyFor(true, "s3.amazonaws.com", 443, { HTTP_PROXY: "http://plain:3" })).toBeUndefined();
    expect(proxyFor(true, "s3.amazonaws.com", 443, {})).toBeUndefined();
  });
});

const { names, objects, expectedIds } = trailObjects("/trail/px/", 4);
const ENV = FAKE_AWS_ENV;
/** What the S3 stand-ins were asked: request line and Host header, and whether the request was signed. */
const seen: { line: string; host: string; signed: boolean; credential: string }[] = [];
let httpsServer: Server;
let httpServer: Server;
let proxy: LoopbackProxy;
let httpsPort: number;
let httpPort: number;

function serve(req: IncomingMessage, res: ServerResponse): void {
  seen.push({
    line: `${req.method} ${req.url}`,
    host: String(req.headers.host),
    signed: String(req.headers.authorization).startsWith("AWS4-HMAC-SHA256 "),
    credential: /Credential=([^/]+)\//.exec(String(req.headers.authorization))?.[1] ?? "",
  });
  const body = objects.get(String(req.url));
  if (body === undefined) {
    res.writeHead(404, { "content-type": "application/xml" });
    res.end("<Error><Code>NoSuchKey</Code><Message>no</Message></Error>");
    return;
  }
  res.writeHead(200, { "content-length": body.length, "content-type": "application/octet-stream" });
  res.end(body);
}

beforeAll(async () => {
  httpsServer = createHttpsServer(TEST_CERTIFICATE, serve);
  httpServer = createHttpServer(serve);
  await new Promise<void>((resolve) => httpsServer.listen(0, "127.0.0.1", resolve));
  await new Promise<void>((resolve) => httpServer.listen(0, "127.0.0.1", resolve));
  httpsPort = (httpsServer.address() as AddressInfo).port;
  httpPort = (httpServer.address() as AddressInfo).port;
  proxy = await startProxy();
});

afterAll(async () => {
  await proxy.close();
  for (const server of [httpsServer, httpServer]) {
    (server as unknown as { closeAllConnections(): void }).closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
});

const input = () => names.map((name) => `s3://trail/px/${name}.gz`).join("\n");
const sortedIds = (stdout: Buffer) =>
  events(parseOutput(stdout))
    .map((e) => String(e.eventID))
    .sort();

describe("the CLI through an HTTP proxy", () => {
  it("https:// endpoint: TLS through CONNECT tunnels, with the proxy's credentials, tunnels kept alive", async () => {
    proxy.tunnels.length = 0;
    proxy.authorizations.length = 0;
    const run = await runCli(["--endpoint", `https://localhost:${httpsPort}`, "--concurrency", "2"], input(), {
      ...ENV,
      NODE_EXTRA_CA_CERTS: TEST_CA,
      HTTPS_PROXY: `http://ops:s%40cret@127.0.0.1:${proxy.port}`,
    });
    expect(run.code).toBe(0);
    expect(deadLetters(parseOutput(run.stdout))).toEqual([]);
    expect(sortedIds(run.stdout)).toEqual([...expectedIds].sort());
    expect(proxy.tunnels.length).toBeGreaterThan(0);
    expect(proxy.tunnels.length).toBeLessThanOrEqual(2); // four objects, two at a time: tunnels are reused
    for (const tunnel of proxy.tunnels) expect(tunnel).toBe(`localhost:${httpsPort}`);
    expect(new Set(proxy.authorizations)).toEqual(new Set([`Basic ${Buffer.from("ops:s@cret").toString("base64")}`]));
  });

  it("http:// endpoint: requests in absolute form, signed for the endpoint's own Host", async () => {
    proxy.forwarded.length = 0;
    seen.length = 0;
    const run = await runCli(["--endpoint", `http://127.0.0.1:${httpPort}`], input(), {
      ...ENV,
      HTTP_PROXY: `http://127.0.0.1:${proxy.port}`,
    });
    expect(run.code).toBe(0);
    expect(sortedIds(run.stdout)).toEqual([...expectedIds].sort());
    expect(proxy.forwarded.sort()).toEqual(
      names.map((name) => `GET http://127.0.0.1:${httpPort}/trail/px/${name}.gz HTTP/1.1`).sort(),
    );
    expect(seen).toHaveLength(names.length);
    for (const request of seen) expect(request).toMatchObject({ host: `127.0.0.1:${httpPort}`, signed: true });
  });

  it("no_proxy: the endpoint is reached directly", async () => {
    proxy.forwarded.length = 0;
    const run = await runCli(["--endpoint", `http://127.0.0.1:${httpPort}`], input(), {
      ...ENV,
      HTTP_PROXY: `http://127.0.0.1:${proxy.port}`,
      NO_PROXY: "localhost,127.0.0.1",
    });
    expect(sortedIds(run.stdout)).toEqual([...expectedIds].sort());
    expect(proxy.forwarded).toEqual([]);
  });

  it("a proxy that refuses the tunnel (407): one dead letter per object at once, naming the proxy's answer", async () => {
    proxy.refuse = "407 Proxy Authentication Required";
    try {
      const run = await runCli(["--endpoint", `https://localhost:${httpsPort}`], input(), {
        ...ENV,
        NODE_EXTRA_CA_CERTS: TEST_CA,
        HTTPS_PROXY: `http://127.0.0.1:${proxy.port}`,
      });
      expect(run.code).toBe(0);
      const letters = deadLetters(parseOutput(run.stdout));
      expect(letters).toHaveLength(names.length);
      for (const letter of letters) {
        expect(letter).toMatchObject({ error: { code: "FetchFailed" } });
        expect(JSON.stringify(letter)).toContain(`the proxy http://127.0.0.1:${proxy.port} refused a tunnel`);
        expect(JSON.stringify(letter)).toContain("407 Proxy Authentication Required");
      }
      expect(run.log.filter((l) => l.msg === "retrying")).toEqual([]);
    } finally {
      proxy.refuse = undefined;
    }
  });

  it("a proxy that cannot reach S3 (502): retried, then a dead letter once --retry-for is spent", async () => {
    proxy.refuse = "502 Bad Gateway";
    try {
      const run = await runCli(
        ["--endpoint", `https://localhost:${httpsPort}`, "--retry-for", "1"],
        `s3://trail/px/${names[0]}.gz\n`,
        { ...ENV, NODE_EXTRA_CA_CERTS: TEST_CA, HTTPS_PROXY: `http://127.0.0.1:${proxy.port}` },
      );
      expect(run.log.filter((l) => l.msg === "retrying").length).toBeGreaterThan(0);
      const letters = deadLetters(parseOutput(run.stdout));
      expect(letters).toHaveLength(1);
      expect(JSON.stringify(letters[0])).toContain("502 Bad Gateway");
    } finally {
      proxy.refuse = undefined;
    }
  });

  it("the SDK's calls go through the tunnel too: SQS acknowledgements to an https:// queue", async () => {
    const sqs = await startSqs(TEST_CERTIFICATE);
    try {
      proxy.tunnels.length = 0;
      const lines = names.map((name, i) =>
        JSON.stringify({
          body: JSON.stringify({ s3Bucket: "trail", s3ObjectKey: [`px/${name}.gz`] }),
          receipt_handle: `rh-${i}`,
          message_id: `id-${i}`,
          md5_of_body: "0",
          queue_url: sqs.queueUrl,
          sender_id: "",
        }),
      );
      const run = await runCli(
        ["--endpoint", `https://localhost:${httpsPort}`, "--delete-sqs-messages"],
        `${lines.join("\n")}\n`,
        { ...ENV, NODE_EXTRA_CA_CERTS: TEST_CA, HTTPS_PROXY: `http://127.0.0.1:${proxy.port}` },
      );
      expect(run.code).toBe(0);
      expect(sortedIds(run.stdout)).toEqual([...expectedIds].sort());
      expect([...sqs.deleted].sort()).toEqual(names.map((_, i) => `rh-${i}`).sort());
      const sqsPort = new URL(sqs.endpoint).port;
      expect(new Set(proxy.tunnels)).toEqual(new Set([`localhost:${httpsPort}`, `127.0.0.1:${sqsPort}`]));
    } finally {
      await sqs.close();
    }
  });

  it("the import command over https://: the SDK's listing and the GETs both through tunnels", async () => {
    fixS3rverDelimiter();
    const s3 = await startS3(TEST_CERTIFICATE);
    try {
      await s3.createBucket("trail");
      for (const [path, body] of objects) {
        const name = path.slice("/trail/px/".length);
        await s3.putObject("trail", `AWSLogs/218007301253/CloudTrail/us-east-1/2023/07/10/${name}`, body, "gzip");
      }
      proxy.tunnels.length = 0;
      const run = await runCli(["import", "s3://trail", "--concurrency", "1"], "", {
        ...s3Env(s3.endpoint),
        NODE_EXTRA_CA_CERTS: TEST_CA,
        HTTPS_PROXY: `http://127.0.0.1:${proxy.port}`,
      });
      expect(run.code).toBe(0);
      expect(sortedIds(run.stdout)).toEqual([...expectedIds].sort());
      // One tunnel carries the GETs one after another (kept alive); the SDK's listing opens its own.
      expect(proxy.tunnels.length).toBeGreaterThanOrEqual(2);
      for (const tunnel of proxy.tunnels) expect(tunnel).toBe(new URL(s3.endpoint).host);
    } finally {
      await s3.close();
    }
  });

  it("credentials from STS for a web identity (as on EKS) come through the tunnel too", async () => {
    const dir = mkdtempSync(join(tmpdir(), "ctef-sts-"));
    const tokenFile = join(dir, "token");
    writeFileSync(tokenFile, "a-web-identity-token");
    const stsCalls: string[] = [];
    const sts = createHttpsServer(TEST_CERTIFICATE, (req, res) => {
      let body = "";
      req.on("data", (chunk: Buffer) => {
        body += chunk.toString("utf8");
      });
      req.on("end", () => {
        stsCalls.push(new URLSearchParams(body).get("Action") ?? "");
        res.writeHead(200, { "content-type": "text/xml" });
        res.end(`<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
<AssumeRoleWithWebIdentityResult><Credentials><AccessKeyId>ASIAFROMSTS</AccessKeyId><SecretAccessKey>s</SecretAccessKey>
<SessionToken>t</SessionToken><Expiration>2099-01-01T00:00:00Z</Expiration></Credentials>
<AssumedRoleUser><Arn>arn:aws:sts::123456789012:assumed-role/r/s</Arn><AssumedRoleId>ID:s</AssumedRoleId></AssumedRoleUser>
</AssumeRoleWithWebIdentityResult><ResponseMetadata><RequestId>r</RequestId></ResponseMetadata>
</AssumeRoleWithWebIdentityResponse>`);
      });
    });
    await new Promise<void>((resolve) => sts.listen(0, "127.0.0.1", resolve));
    const stsPort = (sts.address() as AddressInfo).port;
    try {
      proxy.tunnels.length = 0;
      seen.length = 0;
      const run = await runCli(["--endpoint", `https://localhost:${httpsPort}`], `s3://trail/px/${names[0]}.gz\n`, {
        AWS_REGION: "us-east-1",
        AWS_EC2_METADATA_DISABLED: "true",
        AWS_ROLE_ARN: "arn:aws:iam::123456789012:role/r",
        AWS_WEB_IDENTITY_TOKEN_FILE: tokenFile,
        AWS_ENDPOINT_URL_STS: `https://localhost:${stsPort}`,
        NODE_EXTRA_CA_CERTS: TEST_CA,
        HTTPS_PROXY: `http://127.0.0.1:${proxy.port}`,
      });
      expect(run.code).toBe(0);
      expect(deadLetters(parseOutput(run.stdout))).toEqual([]);
      expect(stsCalls).toEqual(["AssumeRoleWithWebIdentity"]);
      expect(seen[0]?.credential).toBe("ASIAFROMSTS");
      expect(proxy.tunnels).toContain(`localhost:${stsPort}`);
    } finally {
      (sts as unknown as { closeAllConnections(): void }).closeAllConnections();
      await new Promise((resolve) => sts.close(resolve));
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("the SDK's agent: a tunnel for a proxied host, a direct connection for one no_proxy names", async () => {
    const fetchThrough = (agent: ProxyAgent) =>
      new Promise<number>((resolve, reject) => {
        const request = httpsGet(
          { host: "localhost", port: httpsPort, path: `/trail/px/${names[0]}.gz`, agent, ca: TEST_CERTIFICATE.cert },
          (res) => {
            res.resume();
            res.on("end", () => resolve(res.statusCode ?? 0));
          },
        );
        request.on("error", reject);
      });
    const env = { HTTPS_PROXY: `http://127.0.0.1:${proxy.port}` };
    proxy.tunnels.length = 0;
    const through = new ProxyAgent(env, 2000);
    expect(await fetchThrough(through)).toBe(200);
    expect(proxy.tunnels).toEqual([`localhost:${httpsPort}`]);
    through.destroy();
    const direct = new ProxyAgent({ ...env, NO_PROXY: "localhost" }, 2000);
    expect(await fetchThrough(direct)).toBe(200);
    expect(proxy.tunnels).toEqual([`localhost:${httpsPort}`]);
    direct.destroy();
    proxy.refuse = "407 Proxy Authentication Required";
    try {
      const refused = new ProxyAgent(env, 2000);
      await expect(fetchThrough(refused)).rejects.toMatchObject({ code: "EPROXYDENIED" });
      refused.destroy();
    } finally {
      proxy.refuse = undefined;
    }
  });

  it("a proxy URL it cannot use: an error at start-up, exit 2, nothing on stdout", async () => {
    const run = await runCli([], input(), { ...ENV, HTTPS_PROXY: "https://127.0.0.1:3129" });
    expect(run.code).toBe(2);
    expect(run.stdout.length).toBe(0);
    expect(run.stderr).toMatch(/HTTPS_PROXY: only http:\/\/ proxies are supported/);
  });
});
