// GetObject without the SDK's request pipeline: one SigV4-signed GET over a keep-alive connection.
//
// Why: with small CloudTrail files the SDK's per-request machinery (middleware stack, endpoint rules, serde) cost
// several ms of CPU per object, which capped throughput far below `concurrency / latency`; node:http still cost
// 0.5 ms per GET (see http1.ts). Credentials still come from the SDK's default provider chain; only the GET is ours.
// Signature Version 4: https://docs.aws.amazon.com/AmazonS3/latest/API/sig-v4-header-based-auth.html
// A bucket in another region answers with its region in `x-amz-bucket-region`; the GET is sent again there.
import * as crypto from "node:crypto";
import { abortError, Http1Pool, type Http1Response, type Origin } from "./http1.js";
import { type ProxyEnv, proxyFor } from "./proxy.js";

export interface Credentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string | undefined;
}

export interface S3GetterOptions {
  /** Resolves current credentials (the SDK's provider: cached, refreshed when they expire). */
  credentials(): Promise<Credentials>;
  /** The region to sign for when a bucket's region is not known yet. */
  region: string;
  /** An S3-compatible endpoint (path-style); undefined: AWS's regional endpoints. */
  endpoint?: string;
  /** A request with no response, or a body with no data, for this long fails with TimeoutError. */
  timeoutMs: number;
  maxSockets: number;
  /** Where the proxy variables are read (see proxy.ts): the environment; undefined: no proxy. */
  proxyEnv?: ProxyEnv;
}

/** An S3 error with the shape the SDK's errors have, so one classifier serves both. */
export class S3ResponseError extends Error {
  readonly $metadata: { httpStatusCode: number };
  readonly $fault: "client" | "server";

  constructor(code: string, status: number, message: string) {
    super(message);
    this.name = code;
    this.$metadata = { httpStatusCode: status };
    this.$fault = status >= 500 ? "server" : "client";
  }
}

const EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

const UNRESERVED_PATH = /^[A-Za-z0-9\-._~/]*$/;

/** RFC 3986 encoding of a key, '/' kept: the path S3 expects, signed as sent (S3 does not encode it twice). */
export function encodeKey(key: string): string {
  if (UNRESERVED_PATH.test(key)) return key; // the usual CloudTrail key: nothing to encode
  return encodeURIComponent(key)
    .replace(/%2F/g, "/")
    .replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

function hmac(key: Buffer | string, data: string): Buffer {
  return crypto.createHmac("sha256", key).update(data, "utf8").digest();
}

/** SHA-256 in hex: one native call where Node has `crypto.hash` (20.12 and later), a Hash object before. */
const sha256Hex: (data: string) => string =
  typeof crypto.hash === "function"
    ? (data) => crypto.hash("sha256", data, "hex")
    : (data) => crypto.createHash("sha256").update(data, "utf8").digest("hex");

/** The last second formatted as SigV4's ISO 8601 basic time (a GET signs many times a second). */
let lastSecond = Number.NaN;
let lastAmzDate = "";
function amzDateOf(now: Date): string {
  const second = Math.floor(now.getTime() / 1000);
  if (second !== lastSecond) {
    lastSecond = second;
    lastAmzDate = now
      .toISOString()
      .replace(/[-:]/g, "")
      .replace(/\.\d{3}/, "");
  }
  return lastAmzDate;
}

/**
 * The SigV4 headers (all but `host`) for a GET of `path` on `host`, in the order they are signed. Exported for the
 * test against the AWS SDK's signer.
 */
export function signGet(
  host: string,
  path: string,
  region: string,
  credentials: Credentials,
  now: Date,
  signingKeys: Map<string, Buffer> = new Map(),
): Record<string, string> {
  const amzDate = amzDateOf(now);
  const day = amzDate.slice(0, 8);
  // Signed headers, sorted by name: host < x-amz-content-sha256 < x-amz-date < x-amz-security-token.
  const token = credentials.sessionToken?.trim();
  const signedHeaders = `host;x-amz-content-sha256;x-amz-date${token === undefined ? "" : ";x-amz-security-token"}`;
  const canonicalHeaders = `host:${host}\nx-amz-content-sha256:${EMPTY_SHA256}\nx-amz-date:${amzDate}\n${token === undefined ? "" : `x-amz-security-token:${token}\n`}`;
  const canonicalRequest = `GET\n${path}\n\n${canonicalHeaders}\n${signedHeaders}\n${EMPTY_SHA256}`;
  const scope = `${day}/${region}/s3/aws4_request`;
  const stringToSign = `AWS4-HMAC-SHA256\n${amzDate}\n${scope}\n${sha256Hex(canonicalRequest)}`;
  const keyId = `${day} ${region} ${credentials.secretAccessKey}`;
  let signingKey = signingKeys.get(keyId);
  if (signingKey === undefined) {
    signingKey = hmac(hmac(hmac(hmac(`AWS4${credentials.secretAccessKey}`, day), region), "s3"), "aws4_request");
    if (signingKeys.size > 16) signingKeys.clear();
    signingKeys.set(keyId, signingKey);
  }
  const signature = crypto.createHmac("sha256", signingKey).update(stringToSign, "utf8").digest("hex");
  const headers: Record<string, string> = { "x-amz-content-sha256": EMPTY_SHA256, "x-amz-date": amzDate };
  if (token !== undefined) headers["x-amz-security-token"] = token;
  headers.authorization = `AWS4-HMAC-SHA256 Credential=${credentials.accessKeyId}/${scope}, SignedHeaders=${signedHeaders}, Signature=${signature}`;
  return headers;
}

/** Virtual-hosted style needs a DNS-safe bucket name without dots (TLS certificates cover one label). */
function virtualHostable(bucket: string): boolean {
  return /^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$/.test(bucket);
}

export class S3Getter {
  private readonly pool: Http1Pool;
  private readonly signingKeys = new Map<string, Buffer>();
  /** Regions learnt from redirects, per bucket. */
  private readonly regions = new Map<string, string>();
  /** Where requests go, per bucket and region (parsed once, not per request). */
  private readonly targets = new Map<string, Target>();

  constructor(private readonly options: S3GetterOptions) {
    this.pool = new Http1Pool(options.maxSockets);
  }

  /**
   * GETs an object; resolves with the 200 response (its body unread: read it whole or iterate it) or throws an
   * S3ResponseError / network error.
   */
  async get(bucket: string, key: string, regionHint: string | undefined, signal: AbortSignal): Promise<Http1Response> {
    let region = this.regions.get(bucket) ?? regionHint ?? this.options.region;
    for (let hop = 0; ; hop++) {
      const response = await this.send(bucket, key, region, signal);
      if (response.statusCode === 200) return response;
      const bucketRegion = response.headers["x-amz-bucket-region"];
      const body = await readSmall(response);
      if (bucketRegion !== undefined && bucketRegion !== region && hop === 0) {
        this.regions.set(bucket, bucketRegion); // the bucket lives elsewhere: ask there
        region = bucketRegion;
        continue;
      }
      const status = response.statusCode;
      const code = /<Code>([^<]+)<\/Code>/.exec(body)?.[1] ?? (status === 404 ? "NotFound" : `Http${status}`);
      const message = /<Message>([^<]*)<\/Message>/.exec(body)?.[1] ?? `HTTP ${status}`;
      throw new S3ResponseError(code, status, message);
    }
  }

  private target(bucket: string, region: string): Target {
    const id = `${region}/${bucket}`;
    let target = this.targets.get(id);
    if (target === undefined) {
      let url: URL;
      let prefix: string;
      if (this.options.endpoint !== undefined) {
        url = new URL(this.options.endpoint);
        prefix = `${url.pathname.replace(/\/$/, "")}/${bucket}/`;
      } else {
        const domain = region.startsWith("cn-") ? "amazonaws.com.cn" : "amazonaws.com";
        const hosted = virtualHostable(bucket);
        url = new URL(`https://${hosted ? `${bucket}.` : ""}s3.${region}.${domain}`);
        prefix = hosted ? "/" : `/${bucket}/`;
      }
      const secure = url.protocol === "https:";
      if (!secure && url.protocol !== "http:") throw new TypeError(`not an http(s) endpoint: ${url.href}`);
      const hostname = url.hostname.replace(/^\[(.*)\]$/, "$1"); // an IPv6 literal without its brackets
      const port = url.port === "" ? (secure ? 443 : 80) : Number(url.port);
      const env = this.options.proxyEnv;
      const proxy = env === undefined ? undefined : proxyFor(secure, hostname, port, env);
      const key = `${secure ? "https" : "http"}://${url.host}${proxy === undefined ? "" : ` via ${proxy.display}`}`;
      target = {
        origin: { secure, hostname, port, key, proxy },
        host: url.host,
        prefix,
      };
      if (this.targets.size > 1024) this.targets.clear();
      this.targets.set(id, target);
    }
    return target;
  }

  private async send(bucket: string, key: string, region: string, signal: AbortSignal): Promise<Http1Response> {
    const credentials = await this.options.credentials();
    if (signal.aborted) throw abortError();
    const target = this.target(bucket, region);
    const path = target.prefix + encodeKey(key);
    const headers = signGet(target.host, path, region, credentials, new Date(), this.signingKeys);
    let head = `GET ${path} HTTP/1.1\r\nHost: ${target.host}\r\n`;
    for (const name in headers) {
      const value = headers[name] as string;
      if (/[\r\n\0]/.test(value)) throw new TypeError(`the ${name} header would hold a line break`);
      head += `${name}: ${value}\r\n`;
    }
    return this.pool.request(target.origin, `${head}\r\n`, this.options.timeoutMs, signal);
  }
}

interface Target {
  origin: Origin;
  /** The Host header: hostname, and port when not the default. */
  host: string;
  /** The path before the encoded key: "/" (virtual-hosted) or "/bucket/" (path-style), after any endpoint path. */
  prefix: string;
}

/** Reads an error response's body (S3's XML error document), at most 64 KiB. */
async function readSmall(response: Http1Response): Promise<string> {
  const parts: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of response) {
      size += chunk.length;
      if (size > 65_536) break;
      parts.push(chunk);
    }
  } catch {
    // the status code says enough
  }
  response.destroy();
  return Buffer.concat(parts).toString("utf8");
}
