// Proxies for every request the program makes, through undici's EnvHttpProxyAgent (http-handler.ts): the settings it
// accepts, and the spawned CLI through a loopback proxy: CONNECT tunnels carrying TLS to an https:// endpoint (by name,
// and by IP with a certificate valid for that IP alone), an http:// one, credentials from the proxy URL, refusals
// (407 and 502 retried until --retry-for, then a dead letter naming the status), no_proxy, the AWS SDK's calls through
// the same tunnels (SQS acknowledgements, the import command's listing, STS credentials for a web identity), and a
// proxy URL it cannot use (an error at start-up, nothing on stdout).
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import type { AddressInfo, Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createDispatcher, proxyVariable } from "../../src/fetch/http-handler.js";
import { deadLetters, events, parseOutput, runCli } from "../support/cli.js";
import { inSqsRecord } from "../support/messages.js";
import { type LoopbackProxy, startProxy } from "../support/proxy.js";
import { s3Env, startS3 } from "../support/s3.js";
import { startSqs } from "../support/sqs-server.js";
import { FAKE_AWS_ENV, TEST_CA, TEST_CERTIFICATE, TLS_DIR, trailObjects } from "../support/tls.js";

describe("the proxy settings undici is given", () => {
  it("refuses a proxy URL it cannot use at once, naming the variable and never the password", () => {
    const settings = { connections: 1, timeoutMs: 1000 };
    expect(() => createDispatcher({ ...settings, env: { HTTPS_PROXY: "ftp://proxy:21" } })).toThrow(
      /https_proxy .*unsupported proxy scheme ftp:/,
    );
    expect(() => createDispatcher({ ...settings, env: { http_proxy: "http://u:bad%zzsecret@proxy:3128" } })).toThrow(
      /http_proxy .*not valid percent-encoding/,
    );
    for (const value of ["http://u:s3cr%zzet@proxy:3128", "ftp://u:s3cret@proxy:3128"]) {
      let message = "";
      try {
        createDispatcher({ ...settings, env: { HTTPS_PROXY: value } });
      } catch (error) {
        message = (error as Error).message;
      }
      expect(message).not.toBe("");
      expect(message).not.toContain("s3cr");
    }
  });

  it("accepts http://, https:// and socks5:// proxies and host:port without a scheme", async () => {
    for (const value of ["http://proxy:3128", "https://proxy:443", "socks5://proxy:1080", "proxy.corp:3128"]) {
      const dispatcher = createDispatcher({ connections: 1, timeoutMs: 1000, env: { HTTPS_PROXY: value } });
      await dispatcher.close();
    }
    expect(proxyVariable({ HTTPS_PROXY: "http://upper:1", https_proxy: "http://lower:2" })).toEqual([
      "https_proxy",
      "http://lower:2",
    ]);
    expect(proxyVariable({ NO_PROXY: "*" })).toBeUndefined();
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
  const body = objects.get(String(req.url).split("?")[0] as string); // the SDK adds ?x-id=GetObject
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
    // Reuse is undici's business (on a loaded machine a third connection may open before one is free): at most one each.
    expect(proxy.tunnels.length).toBeLessThanOrEqual(names.length);
    for (const tunnel of proxy.tunnels) expect(tunnel).toBe(`localhost:${httpsPort}`);
    expect(new Set(proxy.authorizations)).toEqual(new Set([`Basic ${Buffer.from("ops:s@cret").toString("base64")}`]));
  });

  it("http:// endpoint: through the proxy too (undici tunnels it), signed for the endpoint's own Host", async () => {
    proxy.forwarded.length = 0;
    proxy.tunnels.length = 0;
    seen.length = 0;
    const run = await runCli(["--endpoint", `http://127.0.0.1:${httpPort}`], input(), {
      ...ENV,
      HTTP_PROXY: `http://127.0.0.1:${proxy.port}`,
    });
    expect(run.code).toBe(0);
    expect(deadLetters(parseOutput(run.stdout))).toEqual([]);
    expect(sortedIds(run.stdout)).toEqual([...expectedIds].sort());
    expect(proxy.tunnels.length).toBeGreaterThan(0);
    for (const tunnel of proxy.tunnels) expect(tunnel).toBe(`127.0.0.1:${httpPort}`);
    expect(seen).toHaveLength(names.length);
    for (const request of seen) expect(request).toMatchObject({ host: `127.0.0.1:${httpPort}`, signed: true });
  });

  it("an https:// endpoint by IP through the tunnel: the certificate is checked against that IP", async () => {
    const ipOnly = {
      key: readFileSync(join(TLS_DIR, "ip-only-key.pem")),
      cert: readFileSync(join(TLS_DIR, "ip-only-cert.pem")),
    };
    const server = createHttpsServer(ipOnly, serve);
    server.on("tlsClientError", () => {});
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const ipPort = (server.address() as AddressInfo).port;
    try {
      proxy.tunnels.length = 0;
      const env = { ...ENV, NODE_EXTRA_CA_CERTS: join(TLS_DIR, "ip-only-cert.pem"), HTTPS_PROXY: proxy.url };
      const run = await runCli(["--endpoint", `https://127.0.0.1:${ipPort}`], input(), env);
      expect(deadLetters(parseOutput(run.stdout))).toEqual([]);
      expect(sortedIds(run.stdout)).toEqual([...expectedIds].sort());
      expect(new Set(proxy.tunnels)).toEqual(new Set([`127.0.0.1:${ipPort}`]));
      // The same server by a name its certificate does not hold: refused, through the tunnel as well.
      const named = await runCli(["--endpoint", `https://localhost:${ipPort}`, "--retry-for", "0"], input(), env);
      const letters = deadLetters(parseOutput(named.stdout));
      expect(letters).toHaveLength(names.length);
      for (const letter of letters) expect(JSON.stringify(letter)).toMatch(/does not match certificate.*localhost/);
    } finally {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
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

  it("a proxy that refuses the tunnel (407): retried like a network failure, then one dead letter per object", async () => {
    proxy.refuse = "407 Proxy Authentication Required";
    try {
      const run = await runCli(["--endpoint", `https://localhost:${httpsPort}`, "--retry-for", "1"], input(), {
        ...ENV,
        NODE_EXTRA_CA_CERTS: TEST_CA,
        HTTPS_PROXY: `http://127.0.0.1:${proxy.port}`,
      });
      expect(run.code).toBe(0);
      const letters = deadLetters(parseOutput(run.stdout));
      expect(letters).toHaveLength(names.length);
      for (const letter of letters) {
        expect(letter).toMatchObject({ error: { code: "FetchFailed" } });
        expect(JSON.stringify(letter)).toContain("407");
      }
      expect(events(parseOutput(run.stdout))).toEqual([]);
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
      expect(JSON.stringify(letters[0])).toContain("Proxy response (502)");
    } finally {
      proxy.refuse = undefined;
    }
  });

  it("the SDK's calls go through the tunnel too: SQS acknowledgements to an https:// queue", async () => {
    const sqs = await startSqs(TEST_CERTIFICATE);
    try {
      proxy.tunnels.length = 0;
      const lines = names.map((name, i) =>
        inSqsRecord(JSON.stringify({ s3Bucket: "trail", s3ObjectKey: [`px/${name}.gz`] }), `rh-${i}`, sqs.queueUrl),
      );
      const run = await runCli(
        ["--endpoint", `https://localhost:${httpsPort}`, "--delete-sqs-messages"],
        `${lines.join("\n")}\n`,
        {
          ...ENV,
          NODE_EXTRA_CA_CERTS: TEST_CA,
          HTTPS_PROXY: `http://127.0.0.1:${proxy.port}`,
          AWS_ENDPOINT_URL_SQS: sqs.endpoint,
        },
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

  it("a proxy URL it cannot use: an error at start-up, exit 2, nothing on stdout", async () => {
    const run = await runCli([], input(), { ...ENV, HTTPS_PROXY: "ftp://127.0.0.1:3129" });
    expect(run.code).toBe(2);
    expect(run.stdout.length).toBe(0);
    expect(run.stderr).toMatch(/https_proxy ftp:\/\/127.0.0.1:3129\/: unsupported proxy scheme ftp:/);
  });
});
