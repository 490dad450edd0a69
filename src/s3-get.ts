// GetObject without the SDK's request pipeline: one SigV4-signed GET over a keep-alive connection.
//
// Why: with small CloudTrail files the SDK's per-request machinery (middleware stack, endpoint rules, serde) cost
// several ms of CPU per object, which capped throughput far below `concurrency / latency`. Credentials still come
// from the SDK's default provider chain; only the GET itself is ours.
// Signature Version 4: https://docs.aws.amazon.com/AmazonS3/latest/API/sig-v4-header-based-auth.html
// A bucket in another region answers with its region in `x-amz-bucket-region`; the GET is sent again there.
import { createHash, createHmac } from "node:crypto";
import http, { type IncomingMessage } from "node:http";
import https from "node:https";

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
  /** A request with no response (or no data) for this long fails with TimeoutError. */
  timeoutMs: number;
  maxSockets: number;
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
  return createHmac("sha256", key).update(data, "utf8").digest();
}

/** The SigV4 headers for a GET of `path` on `host`. Exported for the test against known signatures. */
export function signGet(
  host: string,
  path: string,
  region: string,
  credentials: Credentials,
  now: Date,
  signingKeys: Map<string, Buffer> = new Map(),
  extraHeaders: Record<string, string> = {},
): Record<string, string> {
  const amzDate = now
    .toISOString()
    .replace(/[-:]/g, "")
    .replace(/\.\d{3}/, "");
  const day = amzDate.slice(0, 8);
  const headers: Record<string, string> = {
    host,
    "x-amz-content-sha256": EMPTY_SHA256,
    "x-amz-date": amzDate,
    ...extraHeaders,
  };
  if (credentials.sessionToken !== undefined) headers["x-amz-security-token"] = credentials.sessionToken;
  const names = Object.keys(headers)
    .map((name) => name.toLowerCase())
    .sort();
  const lower = Object.fromEntries(Object.entries(headers).map(([k, v]) => [k.toLowerCase(), v.trim()]));
  const canonicalHeaders = names.map((name) => `${name}:${lower[name]}\n`).join("");
  const signedHeaders = names.join(";");
  const canonicalRequest = `GET\n${path}\n\n${canonicalHeaders}\n${signedHeaders}\n${EMPTY_SHA256}`;
  const scope = `${day}/${region}/s3/aws4_request`;
  const stringToSign = `AWS4-HMAC-SHA256\n${amzDate}\n${scope}\n${createHash("sha256").update(canonicalRequest, "utf8").digest("hex")}`;
  const keyId = `${day} ${region} ${credentials.secretAccessKey}`;
  let signingKey = signingKeys.get(keyId);
  if (signingKey === undefined) {
    signingKey = hmac(hmac(hmac(hmac(`AWS4${credentials.secretAccessKey}`, day), region), "s3"), "aws4_request");
    if (signingKeys.size > 16) signingKeys.clear();
    signingKeys.set(keyId, signingKey);
  }
  const signature = createHmac("sha256", signingKey).update(stringToSign, "utf8").digest("hex");
  delete headers.host;
  headers.authorization = `AWS4-HMAC-SHA256 Credential=${credentials.accessKeyId}/${scope}, SignedHeaders=${signedHeaders}, Signature=${signature}`;
  return headers;
}

/** Virtual-hosted style needs a DNS-safe bucket name without dots (TLS certificates cover one label). */
function virtualHostable(bucket: string): boolean {
  return /^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$/.test(bucket);
}

export class S3Getter {
  private readonly httpAgent: http.Agent;
  private readonly httpsAgent: https.Agent;
  private readonly signingKeys = new Map<string, Buffer>();
  /** Regions learnt from redirects, per bucket. */
  private readonly regions = new Map<string, string>();
  /** Where requests go, per bucket and region (parsed once, not per request). */
  private readonly targets = new Map<string, Target>();
  /** Requests in flight, destroyed when their signal aborts (one listener per signal, not one per request). */
  private readonly inFlight = new Map<AbortSignal, Set<http.ClientRequest>>();

  constructor(private readonly options: S3GetterOptions) {
    const agentOptions = { keepAlive: true, maxSockets: options.maxSockets, scheduling: "lifo" as const };
    this.httpAgent = new http.Agent(agentOptions);
    this.httpsAgent = new https.Agent(agentOptions);
  }

  /** GETs an object; resolves with the 200 response (its body unread) or throws an S3ResponseError / network error. */
  async get(
    bucket: string,
    key: string,
    regionHint: string | undefined,
    signal: AbortSignal,
  ): Promise<IncomingMessage> {
    let region = this.regions.get(bucket) ?? regionHint ?? this.options.region;
    for (let hop = 0; ; hop++) {
      const response = await this.send(bucket, key, region, signal);
      if (response.statusCode === 200) return response;
      const bucketRegion = response.headers["x-amz-bucket-region"];
      const body = await readSmall(response);
      if (typeof bucketRegion === "string" && bucketRegion !== region && hop === 0) {
        this.regions.set(bucket, bucketRegion); // the bucket lives elsewhere: ask there
        region = bucketRegion;
        continue;
      }
      const status = response.statusCode ?? 0;
      const code = /<Code>([^<]+)<\/Code>/.exec(body)?.[1] ?? (status === 404 ? "NotFound" : `Http${status}`);
      const message = /<Message>([^<]*)<\/Message>/.exec(body)?.[1] ?? `HTTP ${status}`;
      throw new S3ResponseError(code, status, message);
    }
  }

  destroy(): void {
    this.httpAgent.destroy();
    this.httpsAgent.destroy();
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
      target = {
        secure,
        host: url.host,
        hostname: url.hostname,
        port: url.port === "" ? undefined : url.port,
        prefix,
        agent: secure ? this.httpsAgent : this.httpAgent,
      };
      if (this.targets.size > 1024) this.targets.clear();
      this.targets.set(id, target);
    }
    return target;
  }

  /** The requests in flight under `signal`; the first request under a signal registers its one listener. */
  private tracked(signal: AbortSignal): Set<http.ClientRequest> {
    let requests = this.inFlight.get(signal);
    if (requests === undefined) {
      const set = new Set<http.ClientRequest>();
      requests = set;
      this.inFlight.set(signal, set);
      signal.addEventListener(
        "abort",
        () => {
          this.inFlight.delete(signal);
          const error = abortError();
          for (const request of set) request.destroy(error);
        },
        { once: true },
      );
    }
    return requests;
  }

  private async send(bucket: string, key: string, region: string, signal: AbortSignal): Promise<IncomingMessage> {
    const credentials = await this.options.credentials();
    if (signal.aborted) throw abortError();
    const target = this.target(bucket, region);
    const path = target.prefix + encodeKey(key);
    const headers = signGet(target.host, path, region, credentials, new Date(), this.signingKeys);
    headers.host = target.host;
    const requests = this.tracked(signal);
    return new Promise<IncomingMessage>((resolve, reject) => {
      const request = (target.secure ? https : http).request(
        {
          method: "GET",
          hostname: target.hostname,
          port: target.port,
          servername: target.secure ? target.hostname : "",
          path,
          headers,
          agent: target.agent,
        },
        resolve,
      );
      requests.add(request);
      request.once("close", () => requests.delete(request));
      request.setTimeout(this.options.timeoutMs, () => {
        const error = new Error(`no response within ${this.options.timeoutMs} ms`);
        error.name = "TimeoutError";
        request.destroy(error);
      });
      request.on("error", reject);
      request.end();
    });
  }
}

interface Target {
  secure: boolean;
  /** The Host header: hostname, and port when not the default. */
  host: string;
  hostname: string;
  port: string | undefined;
  /** The path before the encoded key: "/" (virtual-hosted) or "/bucket/" (path-style), after any endpoint path. */
  prefix: string;
  agent: http.Agent;
}

/** The error a request ends with when the filter gives up work in flight (shutdown). */
function abortError(): Error {
  const error = new Error("The operation was aborted");
  error.name = "AbortError";
  return error;
}

/** Reads an error response's body (S3's XML error document), at most 64 KiB. */
async function readSmall(response: IncomingMessage): Promise<string> {
  const parts: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of response) {
      size += (chunk as Buffer).length;
      if (size > 65_536) break;
      parts.push(chunk as Buffer);
    }
  } catch {
    // the status code says enough
  }
  response.destroy();
  return Buffer.concat(parts).toString("utf8");
}
