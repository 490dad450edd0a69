#!/usr/bin/env node
// A slow, loopback-only, path-style S3 look-alike for the latency scenario: GET/HEAD /BUCKET/KEY serves
// ROOT/KEY after a fixed delay, with S3's headers and S3's XML errors. Nothing is ever written.
// For bench/verify.mjs it also lists (ListObjectsV2, with Prefix and Delimiter, one page) and serves user metadata:
// ROOT/KEY.metadata.json, a JSON object, becomes KEY's x-amz-meta-* headers (the sidecars are never listed).
//
// As a module: const s3 = await startSlowS3({ root, bucket: "bench", delayMs: 50 }); ... s3.stats; await s3.close();
// As a script: node bench/slow-s3.mjs --root DIR [--bucket bench] [--delay-ms 50] [--for 300]
//   prints the endpoint URL, serves for --for seconds (default 300), then exits by itself.

import { randomBytes } from "node:crypto";
import { createReadStream } from "node:fs";
import { readdir, readFile, stat } from "node:fs/promises";
import { createServer } from "node:http";
import { resolve, sep } from "node:path";
import { fileURLToPath } from "node:url";

function xmlEscape(s) {
  return String(s).replace(
    /[<>&'"]/g,
    (c) => ({ "<": "&lt;", ">": "&gt;", "&": "&amp;", "'": "&apos;", '"': "&quot;" })[c],
  );
}

let requestCounter = 0;
const requestIdPrefix = randomBytes(4).toString("hex").toUpperCase();

/** Unique like S3's request ids, without a random draw per request. */
function requestId() {
  requestCounter = (requestCounter + 1) % 0xffffffff;
  return requestIdPrefix + requestCounter.toString(16).toUpperCase().padStart(8, "0");
}

function sendError(res, status, code, message, resource, method) {
  const id = requestId();
  const body = `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${code}</Code><Message>${xmlEscape(message)}</Message><Resource>${xmlEscape(resource)}</Resource><RequestId>${id}</RequestId><HostId>${randomBytes(24).toString("base64")}</HostId></Error>`;
  res.writeHead(status, {
    "Content-Type": "application/xml",
    "Content-Length": Buffer.byteLength(body),
    "x-amz-request-id": id,
    Server: "AmazonS3",
  });
  res.end(method === "HEAD" ? undefined : body);
}

/** Parses `Range: bytes=a-b` for a file of `size` bytes: [start, end] inclusive, null if absent, false if unsatisfiable. */
function parseRange(header, size) {
  if (!header) return null;
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m || (m[1] === "" && m[2] === "")) return null;
  let start;
  let end;
  if (m[1] === "") {
    const n = Number(m[2]);
    if (n === 0) return false;
    start = Math.max(0, size - n);
    end = size - 1;
  } else {
    start = Number(m[1]);
    end = m[2] === "" ? size - 1 : Math.min(Number(m[2]), size - 1);
  }
  if (start >= size || start > end) return false;
  return [start, end];
}

const CACHE_MAX = 1024 * 1024;

export async function startSlowS3({ root, bucket = "bench", delayMs = 50, port = 0 } = {}) {
  const base = resolve(root);
  const fresh = () => ({
    requests: 0,
    ok: 0,
    notFound: 0,
    bytes: 0,
    inFlight: 0,
    maxInFlight: 0,
    firstAt: undefined,
    lastEndAt: undefined,
  });
  const stats = fresh();
  const reset = () => Object.assign(stats, fresh());
  const timers = new Set();
  /** Objects up to CACHE_MAX bytes, by path: size, mtime and bytes. */
  const cache = new Map();
  /** Whole-object GETs served before, by request URL: the raw header list and the bytes. */
  const ready = new Map();

  const server = createServer((req, res) => {
    const started = performance.now();
    stats.requests++;
    stats.firstAt ??= started;
    stats.inFlight++;
    stats.maxInFlight = Math.max(stats.maxInFlight, stats.inFlight);
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      stats.inFlight--;
      stats.lastEndAt = performance.now();
    };
    res.on("finish", finish);
    res.on("close", finish);
    const timer = setTimeout(() => {
      timers.delete(timer);
      handle(req, res).catch((error) => {
        if (!res.headersSent) sendError(res, 500, "InternalError", error.message, req.url, req.method);
        else res.destroy();
      });
    }, delayMs);
    timers.add(timer);
  });
  server.keepAliveTimeout = 10_000;

  async function handle(req, res) {
    // The common case first, at the least CPU: a whole GET of an object already in memory, headers prepared.
    const hot = req.method === "GET" && req.headers.range === undefined ? ready.get(req.url) : undefined;
    if (hot !== undefined) {
      hot.headers[hot.requestIdAt] = requestId();
      res.writeHead(200, hot.headers);
      stats.bytes += hot.body.length;
      stats.ok++;
      res.end(hot.body);
      return;
    }
    const url = new URL(req.url, "http://localhost");
    const resource = url.pathname;
    if (req.method === "GET" && url.searchParams.get("list-type") === "2") return list(url, res);
    if (req.method !== "GET" && req.method !== "HEAD") {
      return sendError(
        res,
        405,
        "MethodNotAllowed",
        "The specified method is not allowed against this resource.",
        resource,
        req.method,
      );
    }
    const slash = url.pathname.indexOf("/", 1);
    const reqBucket = decodeURIComponent(slash === -1 ? url.pathname.slice(1) : url.pathname.slice(1, slash));
    if (reqBucket !== bucket) {
      return sendError(res, 404, "NoSuchBucket", "The specified bucket does not exist", resource, req.method);
    }
    const key =
      slash === -1
        ? ""
        : url.pathname
            .slice(slash + 1)
            .split("/")
            .map(decodeURIComponent)
            .join("/");
    const path = resolve(base, key);
    // Small objects are served from memory, read on first request (the corpus does not change while it is served):
    // the stand-in shares the cores with the filter it measures, and real S3 costs the client's machine nothing.
    // Large ones are streamed from disk.
    let info = cache.get(path);
    if (info === undefined) {
      const found = key && path.startsWith(base + sep) ? await stat(path).catch(() => undefined) : undefined;
      if (!found?.isFile()) {
        stats.notFound++;
        return sendError(res, 404, "NoSuchKey", "The specified key does not exist.", resource, req.method);
      }
      const metadata = await readFile(`${path}.metadata.json`, "utf8").then(JSON.parse, () => ({}));
      info = { size: found.size, mtime: found.mtime, mtimeMs: found.mtimeMs, body: undefined, metadata };
      if (found.size <= CACHE_MAX) {
        info.body = await readFile(path);
        if (info.body.length === info.size) cache.set(path, info);
        else info.body = undefined;
      }
    }
    const headers = {
      "Content-Type": "application/json",
      "Content-Encoding": "gzip", // as CloudTrail writes its objects
      "Last-Modified": info.mtime.toUTCString(),
      ETag: `"${Math.floor(info.mtimeMs).toString(16)}-${info.size.toString(16)}"`,
      "Accept-Ranges": "bytes",
      "x-amz-request-id": requestId(),
      "x-amz-server-side-encryption": "AES256",
      Server: "AmazonS3",
    };
    for (const [name, value] of Object.entries(info.metadata)) headers[`x-amz-meta-${name}`] = String(value);
    const range = parseRange(req.headers.range, info.size);
    if (range === false) {
      return sendError(res, 416, "InvalidRange", "The requested range is not satisfiable", resource, req.method);
    }
    if (info.body !== undefined && range === null && req.method === "GET") {
      const flat = Object.entries({ ...headers, "Content-Length": String(info.size) }).flat();
      ready.set(req.url, { headers: flat, requestIdAt: flat.indexOf("x-amz-request-id") + 1, body: info.body });
    }
    const [start, end] = range ?? [0, info.size - 1];
    headers["Content-Length"] = end - start + 1;
    if (range) headers["Content-Range"] = `bytes ${start}-${end}/${info.size}`;
    res.writeHead(range ? 206 : 200, headers);
    if (req.method === "HEAD" || info.size === 0) {
      stats.ok++;
      res.end();
      return;
    }
    if (info.body !== undefined) {
      const body = info.body.subarray(start, end + 1);
      stats.bytes += body.length;
      stats.ok++;
      res.end(body);
      return;
    }
    const stream = createReadStream(path, { start, end });
    stream.on("data", (chunk) => {
      stats.bytes += chunk.length;
    });
    stream.on("error", () => res.destroy());
    stream.on("end", () => {
      stats.ok++;
    });
    stream.pipe(res);
  }

  /** Every file under ROOT as a key, sorted (S3 lists in key order); sidecars left out. */
  async function keys(dir = base, prefix = "") {
    const found = [];
    for (const entry of await readdir(dir, { withFileTypes: true })) {
      const key = `${prefix}${entry.name}`;
      if (entry.isDirectory()) found.push(...(await keys(`${dir}/${entry.name}`, `${key}/`)));
      else if (entry.isFile() && !entry.name.endsWith(".metadata.json")) found.push(key);
    }
    return found;
  }

  /** ListObjectsV2, one page whatever MaxKeys says (the corpus is small enough). */
  async function list(url, res) {
    const prefix = url.searchParams.get("prefix") ?? "";
    const delimiter = url.searchParams.get("delimiter") ?? "";
    const contents = [];
    const common = new Set();
    for (const key of (await keys()).sort()) {
      if (!key.startsWith(prefix)) continue;
      const cut = delimiter === "" ? -1 : key.indexOf(delimiter, prefix.length);
      if (cut !== -1) common.add(key.slice(0, cut + delimiter.length));
      else contents.push(key);
    }
    const items = await Promise.all(
      contents.map(async (key) => {
        const { size } = await stat(resolve(base, key));
        return `<Contents><Key>${xmlEscape(key)}</Key><Size>${size}</Size><StorageClass>STANDARD</StorageClass></Contents>`;
      }),
    );
    const prefixes = [...common].map((p) => `<CommonPrefixes><Prefix>${xmlEscape(p)}</Prefix></CommonPrefixes>`);
    const body = `<?xml version="1.0" encoding="UTF-8"?>\n<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>${xmlEscape(bucket)}</Name><Prefix>${xmlEscape(prefix)}</Prefix><KeyCount>${items.length + prefixes.length}</KeyCount><MaxKeys>1000</MaxKeys>${delimiter === "" ? "" : `<Delimiter>${xmlEscape(delimiter)}</Delimiter>`}<IsTruncated>false</IsTruncated>${items.join("")}${prefixes.join("")}</ListBucketResult>`;
    stats.ok++;
    res.writeHead(200, {
      "Content-Type": "application/xml",
      "Content-Length": Buffer.byteLength(body),
      "x-amz-request-id": requestId(),
      Server: "AmazonS3",
    });
    res.end(body);
  }

  await new Promise((ok, fail) => {
    server.once("error", fail);
    server.listen(port, "127.0.0.1", ok);
  });
  const { port: actualPort } = server.address();
  return {
    url: `http://127.0.0.1:${actualPort}`,
    port: actualPort,
    stats,
    reset,
    close: () =>
      new Promise((ok) => {
        for (const t of timers) clearTimeout(t);
        server.close(() => ok());
        server.closeAllConnections();
      }),
  };
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const { parseArgs } = await import("node:util");
  const { values } = parseArgs({
    options: {
      root: { type: "string" },
      bucket: { type: "string", default: "bench" },
      "delay-ms": { type: "string", default: "50" },
      for: { type: "string", default: "300" },
    },
  });
  if (!values.root) {
    console.error("usage: node bench/slow-s3.mjs --root DIR [--bucket bench] [--delay-ms 50] [--for 300]");
    process.exit(2);
  }
  const s3 = await startSlowS3({ root: values.root, bucket: values.bucket, delayMs: Number(values["delay-ms"]) });
  console.log(`${s3.url} (bucket ${values.bucket}, ${values["delay-ms"]} ms, stopping in ${values.for} s)`);
  const stop = async () => {
    await s3.close();
    console.error(`served ${s3.stats.requests} requests`);
    process.exit(0);
  };
  setTimeout(stop, Number(values.for) * 1000);
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);
}
