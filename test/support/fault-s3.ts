// A loopback S3 look-alike (path-style GET/HEAD of objects held in memory, and a one-page ListObjectsV2) that fails on cue: error statuses,
// connection resets, truncated bodies, stalls and delays, each consumed in order by the requests it targets.
import { createHash, randomBytes } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import { performance } from "node:perf_hooks";
import { listenLoopback } from "./loopback.js";

/**
 * One scripted outcome for one request.
 * - `{ status, code?, message? }`: an S3 error response (XML body `<Error><Code>…`; no body for HEAD, as S3 does).
 * - `"reset"`: the connection is reset (TCP RST) without a response.
 * - `{ truncate: n }`: headers with the full Content-Length, then `n` body bytes, then the connection is destroyed.
 * - `"stall"`: the request is read and never answered (until close()).
 * - `{ delay: ms }`: the normal response, `ms` later.
 */
export type Fault =
  | { status: number; code?: string; message?: string; headers?: Record<string, string> }
  | "reset"
  | { truncate: number }
  | "stall"
  | { delay: number };

export interface StoredObject {
  body: Buffer;
  contentEncoding?: string;
  contentType?: string;
}

export interface RecordedRequest {
  method: string;
  /** The raw request target, e.g. `/bucket/a%20b.json.gz?x-id=GetObject`. */
  url: string;
  /** Decoded bucket and key (key "" for a bucket-level request). */
  bucket: string;
  key: string;
  /** Date.now() when the request arrived, and a monotonic clock (performance.now()) for measuring gaps. */
  time: number;
  monotonic: number;
  headers: IncomingMessage["headers"];
  /** What the server did: "ok", "partial" (206), "NoSuchKey", "AccessDenied", "reset", "truncate", "stall", … */
  outcome: string;
}

export interface FaultS3 {
  /** `http://127.0.0.1:PORT` */
  endpoint: string;
  port: number;
  /** Every request, in arrival order. */
  requests: RecordedRequest[];
  requestsFor(bucket: string, key: string): RecordedRequest[];
  /** Stores an object (creating the bucket); a later put replaces it. */
  putObject(bucket: string, key: string, body: Buffer | string, options?: Omit<StoredObject, "body">): void;
  createBucket(bucket: string): void;
  /** Requests for this key answer 403 AccessDenied (after any scripted faults for it are used up). */
  deny(bucket: string, key: string): void;
  /** Appends faults to the script of one key. */
  failKey(bucket: string, key: string, ...faults: Fault[]): void;
  /** Appends faults to the global script, which every request consumes before its key's script. */
  failAll(...faults: Fault[]): void;
  /** Faults not yet consumed (global and per key), to assert that a script was used up. */
  pendingFaults(): number;
  /**
   * Asked first for every request: a fault to answer with instead (e.g. credentials it no longer accepts), or
   * undefined to go on as usual.
   */
  gate: ((req: IncomingMessage) => Fault | undefined) | undefined;
  /**
   * The server's clock runs this far ahead of the machine's: its Date header says so, and a request signed more than
   * 15 minutes away from it is refused with 403 RequestTimeTooSkewed, as S3 does.
   */
  clockOffsetMs: number;
  /** Stops listening, destroys every open socket (stalled requests included) and cancels delays. */
  close(): Promise<void>;
}

const ERROR_MESSAGES: Record<string, string> = {
  NoSuchKey: "The specified key does not exist.",
  NoSuchBucket: "The specified bucket does not exist",
  AccessDenied: "Access Denied",
  SlowDown: "Please reduce your request rate.",
  InternalError: "We encountered an internal error. Please try again.",
  ServiceUnavailable: "Service is unable to handle request.",
  MethodNotAllowed: "The specified method is not allowed against this resource.",
  InvalidRange: "The requested range is not satisfiable",
};

const DEFAULT_CODES: Record<number, string> = {
  400: "InvalidRequest",
  403: "AccessDenied",
  404: "NoSuchKey",
  405: "MethodNotAllowed",
  416: "InvalidRange",
  500: "InternalError",
  503: "SlowDown",
};

const xmlEscape = (s: string) =>
  s.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&apos;" })[c] ?? c);

const objectId = (bucket: string, key: string) => `${bucket}\u0000${key}`;

/** Path-style `/bucket/key…`; the SDK percent-encodes each key segment (`+` arrives as %2B, space as %20). */
function parseTarget(url: string): { bucket: string; key: string } {
  const path = url.split("?", 1)[0] ?? "";
  const slash = path.indexOf("/", 1);
  const rawBucket = slash === -1 ? path.slice(1) : path.slice(1, slash);
  const rawKey = slash === -1 ? "" : path.slice(slash + 1);
  const decode = (s: string) => {
    try {
      return decodeURIComponent(s);
    } catch {
      return s;
    }
  };
  return { bucket: decode(rawBucket), key: decode(rawKey) };
}

/** `bytes=a-b`, `bytes=a-`, `bytes=-n` against `size`; undefined when absent or unsatisfiable. */
function parseRange(header: string | undefined, size: number): { start: number; end: number } | "invalid" | undefined {
  if (header === undefined) return undefined;
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m || (m[1] === "" && m[2] === "")) return undefined; // S3 ignores a range it cannot parse
  let start: number;
  let end: number;
  if (m[1] === "") {
    const suffix = Number(m[2]);
    start = Math.max(0, size - suffix);
    end = size - 1;
  } else {
    start = Number(m[1]);
    end = m[2] === "" ? size - 1 : Math.min(Number(m[2]), size - 1);
  }
  if (start >= size || start > end) return "invalid";
  return { start, end };
}

export async function startFaultS3(): Promise<FaultS3> {
  const objects = new Map<string, StoredObject>();
  const buckets = new Set<string>();
  const denied = new Set<string>();
  const keyScripts = new Map<string, Fault[]>();
  const globalScript: Fault[] = [];
  const requests: RecordedRequest[] = [];
  const timers = new Set<NodeJS.Timeout>();

  function sendError(
    req: IncomingMessage,
    res: ServerResponse,
    status: number,
    code: string,
    extra: Record<string, string> = {},
    message?: string,
  ) {
    const requestId = randomBytes(8).toString("hex").toUpperCase();
    const { bucket, key } = parseTarget(req.url ?? "/");
    const resource = key === "" ? `<BucketName>${xmlEscape(bucket)}</BucketName>` : `<Key>${xmlEscape(key)}</Key>`;
    const body =
      req.method === "HEAD"
        ? ""
        : `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${xmlEscape(code)}</Code><Message>${xmlEscape(
            message ?? ERROR_MESSAGES[code] ?? code,
          )}</Message>${resource}<RequestId>${requestId}</RequestId><HostId>fault-s3</HostId></Error>`;
    res.writeHead(status, {
      date: new Date(Date.now() + state.clockOffsetMs).toUTCString(),
      "content-type": "application/xml",
      "content-length": Buffer.byteLength(body),
      "x-amz-request-id": requestId,
      ...extra,
    });
    res.end(body);
  }

  /** ListObjectsV2, enough for the import's walk: prefix and delimiter, one page (no continuation). */
  function list(res: ServerResponse, bucket: string, params: URLSearchParams) {
    const prefix = params.get("prefix") ?? "";
    const delimiter = params.get("delimiter") ?? "";
    const keys: string[] = [];
    const common = new Set<string>();
    for (const id of [...objects.keys()].sort()) {
      const [owner, key] = [id.slice(0, id.indexOf("\u0000")), id.slice(id.indexOf("\u0000") + 1)];
      if (owner !== bucket || !key.startsWith(prefix)) continue;
      const cut = delimiter === "" ? -1 : key.indexOf(delimiter, prefix.length);
      if (cut === -1) keys.push(key);
      else common.add(key.slice(0, cut + delimiter.length));
    }
    const contents = keys
      .map(
        (key) =>
          `<Contents><Key>${xmlEscape(key)}</Key><Size>${objects.get(objectId(bucket, key))?.body.length ?? 0}</Size></Contents>`,
      )
      .join("");
    const prefixes = [...common]
      .map((p) => `<CommonPrefixes><Prefix>${xmlEscape(p)}</Prefix></CommonPrefixes>`)
      .join("");
    const body =
      `<?xml version="1.0" encoding="UTF-8"?>\n<ListBucketResult><Name>${xmlEscape(bucket)}</Name>` +
      `<Prefix>${xmlEscape(prefix)}</Prefix><KeyCount>${keys.length + common.size}</KeyCount><MaxKeys>1000</MaxKeys>` +
      `<IsTruncated>false</IsTruncated>${contents}${prefixes}</ListBucketResult>`;
    res.writeHead(200, { "content-type": "application/xml", "content-length": Buffer.byteLength(body) });
    res.end(body);
  }

  function serve(req: IncomingMessage, res: ServerResponse, record: RecordedRequest, truncateAt?: number) {
    const { bucket, key } = record;
    if (req.method !== "GET" && req.method !== "HEAD") {
      record.outcome = "MethodNotAllowed";
      sendError(req, res, 405, "MethodNotAllowed");
      return;
    }
    if (!buckets.has(bucket)) {
      record.outcome = "NoSuchBucket";
      sendError(req, res, 404, "NoSuchBucket");
      return;
    }
    const id = objectId(bucket, key);
    if (denied.has(id)) {
      record.outcome = "AccessDenied";
      sendError(req, res, 403, "AccessDenied");
      return;
    }
    const params = new URL(req.url ?? "/", "http://x").searchParams;
    if (key === "" && req.method === "GET" && params.get("list-type") === "2") {
      record.outcome = "ok";
      list(res, bucket, params);
      return;
    }
    const object = objects.get(id);
    if (object === undefined) {
      record.outcome = "NoSuchKey";
      sendError(req, res, 404, "NoSuchKey");
      return;
    }
    const range = parseRange(req.headers.range, object.body.length);
    if (range === "invalid") {
      record.outcome = "InvalidRange";
      sendError(req, res, 416, "InvalidRange", { "content-range": `bytes */${object.body.length}` });
      return;
    }
    const body = range === undefined ? object.body : object.body.subarray(range.start, range.end + 1);
    const headers: Record<string, string | number> = {
      date: new Date(Date.now() + state.clockOffsetMs).toUTCString(),
      "content-type": object.contentType ?? "application/octet-stream",
      "content-length": body.length,
      etag: `"${createHash("md5").update(object.body).digest("hex")}"`,
      "last-modified": new Date(0).toUTCString(),
      "accept-ranges": "bytes",
      "x-amz-request-id": randomBytes(8).toString("hex").toUpperCase(),
    };
    if (object.contentEncoding !== undefined) headers["content-encoding"] = object.contentEncoding;
    if (range !== undefined) headers["content-range"] = `bytes ${range.start}-${range.end}/${object.body.length}`;
    res.writeHead(range === undefined ? 200 : 206, headers);
    if (req.method === "HEAD") {
      record.outcome = "ok";
      res.end();
      return;
    }
    if (truncateAt !== undefined) {
      record.outcome = "truncate";
      res.flushHeaders();
      const part = body.subarray(0, Math.min(truncateAt, body.length));
      // Let the bytes reach the socket before cutting it, so the client really sees a short body.
      res.write(part, () => res.socket?.destroy());
      return;
    }
    record.outcome = range === undefined ? "ok" : "partial";
    res.end(body);
  }

  function handle(req: IncomingMessage, res: ServerResponse) {
    const url = req.url ?? "/";
    const { bucket, key } = parseTarget(url);
    const record: RecordedRequest = {
      method: req.method ?? "",
      url,
      bucket,
      key,
      time: Date.now(),
      monotonic: performance.now(),
      headers: req.headers,
      outcome: "pending",
    };
    requests.push(record);
    // Read (and discard) any request body so the socket state is clean for keep-alive.
    req.resume();
    const script = keyScripts.get(objectId(bucket, key));
    const fault = state.gate?.(req) ?? skewed(req) ?? globalScript.shift() ?? script?.shift();
    if (fault === undefined) return serve(req, res, record);
    if (fault === "reset") {
      record.outcome = "reset";
      req.socket.resetAndDestroy();
      return;
    }
    if (fault === "stall") {
      record.outcome = "stall";
      return;
    }
    if ("truncate" in fault) return serve(req, res, record, fault.truncate);
    if ("delay" in fault) {
      record.outcome = "delay";
      const timer = setTimeout(() => {
        timers.delete(timer);
        serve(req, res, record);
      }, fault.delay);
      timers.add(timer);
      return;
    }
    const code = fault.code ?? DEFAULT_CODES[fault.status] ?? "InternalError";
    record.outcome = code;
    sendError(req, res, fault.status, code, fault.headers ?? {}, fault.message);
  }

  /** S3 allows 15 minutes between the request's signing time and its own clock. */
  function skewed(req: IncomingMessage): Fault | undefined {
    const stamp = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(String(req.headers["x-amz-date"]));
    if (stamp === null || state.clockOffsetMs === 0) return undefined;
    const [, y, mo, d, h, mi, se] = stamp.map(Number) as number[];
    const signed = Date.UTC(y as number, (mo as number) - 1, d, h, mi, se);
    const server = Date.now() + state.clockOffsetMs;
    return Math.abs(server - signed) > 15 * 60_000 ? { status: 403, code: "RequestTimeTooSkewed" } : undefined;
  }

  const loopback = await listenLoopback(handle);

  const state: FaultS3 = {
    gate: undefined,
    clockOffsetMs: 0,
    endpoint: loopback.endpoint,
    port: loopback.port,
    requests,
    requestsFor: (bucket, key) => requests.filter((r) => r.bucket === bucket && r.key === key),
    putObject(bucket, key, body, options = {}) {
      buckets.add(bucket);
      objects.set(objectId(bucket, key), {
        ...options,
        body: typeof body === "string" ? Buffer.from(body, "utf8") : body,
      });
    },
    createBucket(bucket) {
      buckets.add(bucket);
    },
    deny(bucket, key) {
      buckets.add(bucket);
      denied.add(objectId(bucket, key));
    },
    failKey(bucket, key, ...faults) {
      const id = objectId(bucket, key);
      const script = keyScripts.get(id) ?? [];
      script.push(...faults);
      keyScripts.set(id, script);
    },
    failAll(...faults) {
      globalScript.push(...faults);
    },
    pendingFaults: () => globalScript.length + [...keyScripts.values()].reduce((n, s) => n + s.length, 0),
    async close() {
      for (const timer of timers) clearTimeout(timer);
      timers.clear();
      await loopback.close();
    },
  };
  return state;
}
