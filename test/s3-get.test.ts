// Our SigV4 GET signing, checked against the AWS SDK's own signer on the same requests, and the GET client against
// a loopback server: keys encoded as S3 expects, errors shaped like the SDK's, the bucket's region followed.
import { createHash, createHmac } from "node:crypto";
import { createServer, type IncomingMessage } from "node:http";
import type { AddressInfo } from "node:net";
import { SignatureV4 } from "@smithy/signature-v4";
import { describe, expect, it } from "vitest";
import { classifyS3Error } from "../src/fetch.js";
import { encodeKey, S3Getter, signGet } from "../src/s3-get.js";

function bytes(data: string | ArrayBuffer | ArrayBufferView): string | Buffer {
  if (typeof data === "string") return data;
  if (data instanceof ArrayBuffer) return Buffer.from(data);
  return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
}

class NodeSha256 {
  private readonly hash;
  constructor(secret?: string | ArrayBuffer | ArrayBufferView) {
    this.hash = secret === undefined ? createHash("sha256") : createHmac("sha256", bytes(secret));
  }
  update(data: string | ArrayBuffer | ArrayBufferView): void {
    this.hash.update(bytes(data));
  }
  async digest(): Promise<Uint8Array> {
    return new Uint8Array(this.hash.digest());
  }
}

const credentials = {
  accessKeyId: "AKIAIOSFODNN7EXAMPLE",
  secretAccessKey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
};

describe("signGet", () => {
  it.each([
    ["examplebucket.s3.amazonaws.com", "test.txt", "us-east-1", undefined],
    [
      "s3.eu-west-1.amazonaws.com",
      "my.bucket/AWSLogs/1/CloudTrail/eu-west-1/2023/07/10/a b+c=d 日本.json.gz",
      "eu-west-1",
      undefined,
    ],
    ["bucket.s3.ap-northeast-1.amazonaws.com", "k!'()*~_.-", "ap-northeast-1", "session-token/with+chars="],
  ])("signs %s %s like the AWS SDK does", async (host, key, region, sessionToken) => {
    const now = new Date("2013-05-24T00:00:00Z");
    const path = `/${encodeKey(key)}`;
    const creds = sessionToken === undefined ? credentials : { ...credentials, sessionToken };
    const ours = signGet(host, path, region, creds, now);
    const signer = new SignatureV4({
      credentials: creds,
      region,
      service: "s3",
      sha256: NodeSha256,
      uriEscapePath: false,
    });
    const theirs = await signer.sign(
      {
        method: "GET",
        protocol: "https:",
        hostname: host,
        path,
        query: {},
        headers: { host, "x-amz-content-sha256": ours["x-amz-content-sha256"] as string },
      } as never,
      { signingDate: now },
    );
    const theirAuth = (theirs as unknown as { headers: Record<string, string> }).headers.authorization;
    expect(ours.authorization).toBe(theirAuth);
  });

  it("encodes keys as S3 expects: RFC 3986, '/' kept", () => {
    expect(encodeKey("a b+c=d/日本/x!'()*~")).toBe("a%20b%2Bc%3Dd/%E6%97%A5%E6%9C%AC/x%21%27%28%29%2A~");
  });
});

describe("S3Getter", () => {
  async function server(handler: (req: IncomingMessage, res: import("node:http").ServerResponse) => void) {
    const srv = createServer(handler);
    await new Promise<void>((resolve) => srv.listen(0, "127.0.0.1", resolve));
    const { port } = srv.address() as AddressInfo;
    return { endpoint: `http://127.0.0.1:${port}`, close: () => new Promise((r) => srv.close(r)), srv };
  }
  const getter = (endpoint: string) =>
    new S3Getter({
      credentials: async () => credentials,
      region: "us-east-1",
      endpoint,
      timeoutMs: 1000,
      maxSockets: 4,
    });

  it("GETs path-style with a signed request and the key encoded once", async () => {
    const seen: string[] = [];
    const s = await server((req, res) => {
      seen.push(`${req.url} ${String(req.headers.authorization).slice(0, 16)}`);
      res.end("hello");
    });
    const response = await getter(s.endpoint).get("b", "a b+c/日本.json", undefined, new AbortController().signal);
    const chunks: Buffer[] = [];
    for await (const chunk of response) chunks.push(chunk as Buffer);
    expect(Buffer.concat(chunks).toString()).toBe("hello");
    expect(seen).toEqual(["/b/a%20b%2Bc/%E6%97%A5%E6%9C%AC.json AWS4-HMAC-SHA256"]);
    await s.close();
  });

  it.each([
    [404, "NoSuchKey", "NotFound", false],
    [403, "AccessDenied", "AccessDenied", false],
    [503, "SlowDown", "FetchFailed", true],
    [500, "InternalError", "FetchFailed", true],
  ])("turns %i %s into an error the classifier reads as %s", async (status, code, expected, transient) => {
    const s = await server((_req, res) => {
      res.writeHead(status, { "content-type": "application/xml" });
      res.end(`<?xml version="1.0"?><Error><Code>${code}</Code><Message>m</Message></Error>`);
    });
    const error = await getter(s.endpoint)
      .get("b", "k", undefined, new AbortController().signal)
      .catch((e: unknown) => e);
    const classified = classifyS3Error(error, "s3://b/k");
    expect(classified.code).toBe(expected);
    expect(classified.transient).toBe(transient);
    await s.close();
  });

  it("follows a bucket in another region: signs again for the region S3 names, and remembers it", async () => {
    const scopes: string[] = [];
    const s = await server((req, res) => {
      const scope = /Credential=[^/]+\/\d{8}\/([^/]+)\//.exec(String(req.headers.authorization))?.[1] ?? "";
      scopes.push(scope);
      if (scope !== "eu-west-1") {
        res.writeHead(301, { "x-amz-bucket-region": "eu-west-1", "content-type": "application/xml" });
        res.end("<Error><Code>PermanentRedirect</Code><Message>elsewhere</Message></Error>");
        return;
      }
      res.end("ok");
    });
    const client = getter(s.endpoint);
    for (const key of ["k1", "k2"]) {
      const response = await client.get("b", key, undefined, new AbortController().signal);
      for await (const _ of response);
    }
    expect(scopes).toEqual(["us-east-1", "eu-west-1", "eu-west-1"]);
    await s.close();
  });

  it("fails a request that gets no answer with a transient TimeoutError", async () => {
    const s = await server(() => {});
    const error = await getter(s.endpoint)
      .get("b", "k", undefined, new AbortController().signal)
      .catch((e: unknown) => e);
    expect((error as Error).name).toBe("TimeoutError");
    expect(classifyS3Error(error, "s3://b/k").transient).toBe(true);
    s.srv.closeAllConnections();
    await s.close();
  });
});
