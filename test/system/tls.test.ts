// S3 over HTTPS, as on AWS: the built CLI against a loopback HTTPS server whose certificate (test/fixtures/tls, for
// localhost and 127.0.0.1) the child trusts through NODE_EXTRA_CA_CERTS, the way an operator adds a private CA.
// Checks the TLS handshake with SNI and name verification (a name the certificate does not cover is refused),
// keep-alive and session resumption over TLS, Content-Length and chunked bodies, and that an untrusted certificate is
// a clear dead letter, not a crash or endless retries.
import { createServer, type Server } from "node:https";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { deadLetters, events, parseOutput, runCli } from "../support/cli.js";
import { FAKE_AWS_ENV, TEST_CA, TEST_CERTIFICATE, trailObjects } from "../support/tls.js";

const { names, objects, expectedIds } = trailObjects("/trail/tls/", 6);
const ENV = FAKE_AWS_ENV;
let server: Server;
let port: number;
let handshakes = 0;
let resumed = 0;
/** Answer every request with `Connection: close`, so that each GET needs a new connection. */
let closeEach = false;
const unsigned: string[] = [];

beforeAll(async () => {
  server = createServer(TEST_CERTIFICATE);
  server.on("secureConnection", (socket) => {
    handshakes++;
    if (socket.isSessionReused()) resumed++;
  });
  server.on("tlsClientError", () => {}); // the untrusting client hangs up mid-handshake
  let served = 0; // every other object is sent chunked (no Content-Length)
  server.on("request", (req, res) => {
    if (!String(req.headers.authorization).startsWith("AWS4-HMAC-SHA256 ")) unsigned.push(String(req.url));
    const body = objects.get(String(req.url).split("?")[0] as string); // the SDK adds ?x-id=GetObject
    if (body === undefined) {
      res.writeHead(404, { "content-type": "application/xml" });
      res.end("<Error><Code>NoSuchKey</Code><Message>no</Message></Error>");
      return;
    }
    if (closeEach) res.setHeader("connection", "close");
    if (served++ % 2 === 0) {
      res.writeHead(200, { "content-length": body.length, "content-type": "application/octet-stream" });
      res.end(body);
    } else {
      res.writeHead(200, { "content-type": "application/octet-stream" }); // chunked
      const half = Math.floor(body.length / 2);
      res.write(body.subarray(0, half));
      setImmediate(() => res.end(body.subarray(half)));
    }
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  port = (server.address() as AddressInfo).port;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});

const input = () => names.map((name) => `s3://trail/tls/${name}.gz`).join("\n");

describe("S3 over HTTPS", () => {
  it("every event arrives through a trusted certificate, over a few kept-alive TLS connections", async () => {
    handshakes = 0;
    const run = await runCli(["--endpoint", `https://localhost:${port}`, "--concurrency", "2"], input(), {
      ...ENV,
      NODE_EXTRA_CA_CERTS: TEST_CA,
    });
    expect(run.code).toBe(0);
    const out = parseOutput(run.stdout);
    expect(deadLetters(out)).toEqual([]);
    expect(
      events(out)
        .map((e) => String(e.eventID))
        .sort(),
    ).toEqual([...expectedIds].sort());
    expect(unsigned).toEqual([]);
    expect(handshakes).toBeGreaterThan(0);
    expect(handshakes).toBeLessThanOrEqual(names.length); // reuse is undici's business: at most one per object
  });

  it("a new connection may resume an earlier TLS session (undici's session cache)", async () => {
    handshakes = 0;
    resumed = 0;
    closeEach = true;
    try {
      const run = await runCli(["--endpoint", `https://localhost:${port}`, "--concurrency", "1"], input(), {
        ...ENV,
        NODE_EXTRA_CA_CERTS: TEST_CA,
      });
      expect(events(parseOutput(run.stdout))).toHaveLength(expectedIds.length);
    } finally {
      closeEach = false;
    }
    expect(handshakes).toBe(names.length);
    // undici caches one session per server name; with a connection closed after each response, the ticket often
    // arrives after the next connection has started, so fewer are resumed than with the former client of our own.
    expect(resumed).toBeGreaterThanOrEqual(1);
  });

  it("a certificate for another name: a dead letter naming the mismatch, even with the certificate trusted", async () => {
    // The same certificate (localhost, 127.0.0.1) served on 127.0.0.2, which Linux routes to loopback unconfigured.
    const other = createServer(TEST_CERTIFICATE);
    other.on("tlsClientError", () => {});
    other.on("request", (_req, res) => res.end("never"));
    await new Promise<void>((resolve) => other.listen(0, "127.0.0.2", resolve));
    try {
      const otherPort = (other.address() as AddressInfo).port;
      const run = await runCli(["--endpoint", `https://127.0.0.2:${otherPort}`], input(), {
        ...ENV,
        NODE_EXTRA_CA_CERTS: TEST_CA,
      });
      expect(run.code).toBe(0);
      const letters = deadLetters(parseOutput(run.stdout));
      expect(letters).toHaveLength(names.length);
      for (const letter of letters) expect(JSON.stringify(letter)).toMatch(/does not match certificate/);
    } finally {
      other.closeAllConnections();
      await new Promise((resolve) => other.close(resolve));
    }
  });

  it("an untrusted certificate: each object is a dead letter naming the certificate, quickly, and the run ends", async () => {
    const started = Date.now();
    const run = await runCli(["--endpoint", `https://localhost:${port}`, "--retry-for", "60"], input(), ENV);
    expect(run.code).toBe(0);
    const letters = deadLetters(parseOutput(run.stdout));
    expect(letters).toHaveLength(names.length);
    for (const letter of letters) expect(JSON.stringify(letter)).toMatch(/certificate/i);
    expect(Date.now() - started).toBeLessThan(30_000); // not retried for --retry-for's 60 s
  });
});
