// ForwardSink (forward.ts) in process, against a loopback server that speaks the Forward protocol's server side and
// acknowledges as the test says: the PackedForward message (tag, entries, size, chunk), EventTime from eventTime,
// written() only after the ack, every unacknowledged message sent again on a new connection after a close or an
// ack timeout, a late ack harmless, abandon() answering false. And the entry header, table-tested.
import { createHash, randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { rootCertificates } from "node:tls";
import { decodeMultiStream, Encoder } from "@msgpack/msgpack";
import { afterEach, describe, expect, it } from "vitest";
import { RecordsScanner } from "../../src/decode/scan.js";
import { ForwardSink, parseForwardUrl, trustedCas } from "../../src/deliver/forward.js";
import { epochOf, eventWriter, writeEntryHeader } from "../../src/format/format.js";
import type { LogContext, Logger } from "../../src/shared/log.js";
import { startCli } from "../support/cli.js";
import { waitUntil } from "../support/fluentd.js";
import { forwardServer, type Received } from "../support/forward-server.js";
import { TEST_CA, TEST_CERTIFICATE } from "../support/tls.js";
import { FIXTURE_NAMES, FIXTURES, trail } from "../support/trail.js";

class ListLogger implements Logger {
  lines: { level: string; msg: string; context?: LogContext }[] = [];
  debug(msg: string, context?: LogContext) {
    this.lines.push({ level: "debug", msg, ...(context ? { context } : {}) });
  }
  info(msg: string, context?: LogContext) {
    this.lines.push({ level: "info", msg, ...(context ? { context } : {}) });
  }
  warn(msg: string, context?: LogContext) {
    this.lines.push({ level: "warn", msg, ...(context ? { context } : {}) });
  }
  error(msg: string, context?: LogContext) {
    this.lines.push({ level: "error", msg, ...(context ? { context } : {}) });
  }
}

const EVENTS = [
  { eventVersion: "1.08", eventTime: "2023-07-10T11:47:39Z", eventID: "a", n: 1.688560107857e9, big: 12 },
  { eventVersion: "1.08", eventTime: "2023-07-10T11:47:40.250Z", eventID: "b", nested: { x: [1, "y", null] } },
  { eventVersion: "1.08", eventID: "c-no-time" },
];

function writeEvents(sink: ForwardSink, events: Record<string, unknown>[]): void {
  const write = eventWriter(sink, { timestamp: true, outputFormat: "forward" });
  const scanner = new RecordsScanner(write, { maxEventBytes: 1 << 20 });
  scanner.push(Buffer.from(JSON.stringify({ Records: events })));
  scanner.end();
}

const cleanup: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const fn of cleanup.splice(0)) await fn();
});

function sink(port: number, log: Logger, extra: Partial<ConstructorParameters<typeof ForwardSink>[0]> = {}) {
  const s = new ForwardSink({
    target: { host: "127.0.0.1", port, tls: false, hostname: "test" },
    tag: "cloudtrail.event",
    log,
    ackTimeoutMs: 2000,
    reconnectBaseMs: 20,
    reconnectMaxMs: 200,
    ...extra,
  });
  cleanup.push(() => s.abandon());
  return s;
}

describe("ForwardSink", () => {
  it("sends PackedForward messages: the tag, [EventTime, record] entries, size and chunk; written() after the ack", async () => {
    const server = await forwardServer();
    cleanup.push(() => server.close());
    const s = sink(server.port, new ListLogger());
    writeEvents(s, EVENTS);
    s.writeJson({ _tag: "cloudtrail.deadletter", error: { code: "NotFound" }, input: "x" });
    const before = Date.now();
    expect(await s.written()).toBe(true);
    const byTag = new Map(server.received.map((m) => [m.tag, m]));
    const events = byTag.get("cloudtrail.event") as Received;
    expect(events.option).toEqual({ size: 3, chunk: expect.any(String) });
    expect(events.entries.map(([, record]) => record)).toEqual([
      { ...EVENTS[0], "@timestamp": "2023-07-10T11:47:39Z" },
      { ...EVENTS[1], "@timestamp": "2023-07-10T11:47:40.250Z" },
      EVENTS[2],
    ]);
    expect(events.entries.map(([time]) => time)).toEqual([
      { seconds: 1688989659, nanos: 0 },
      { seconds: 1688989660, nanos: 250_000_000 },
      expect.objectContaining({ seconds: expect.any(Number) }),
    ]);
    // No eventTime: the time is now, as fluentd stamps a record without one.
    expect(Math.abs((events.entries[2]?.[0].seconds ?? 0) - Math.floor(before / 1000))).toBeLessThanOrEqual(2);
    const letter = byTag.get("cloudtrail.deadletter") as Received;
    expect(letter.entries.map(([, record]) => record)).toEqual([{ error: { code: "NotFound" }, input: "x" }]);
    expect(s.counts).toMatchObject({ messages: 2, entries: 4, resent: 0 });
    await s.end();
  });

  it("resends every unacknowledged message on a new connection when the connection drops; a late ack is harmless", async () => {
    let acking = false;
    const server = await forwardServer(() => acking);
    cleanup.push(() => server.close());
    const log = new ListLogger();
    const s = sink(server.port, log);
    writeEvents(s, EVENTS.slice(0, 2));
    let done = false;
    const written = s.written().then((w) => {
      done = w;
    });
    await waitUntil("one message at the server", () => server.received.length === 1, 10_000);
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(done).toBe(false); // sent, not acknowledged: not delivered
    acking = true;
    server.dropConnections();
    await written;
    expect(done).toBe(true);
    expect(server.received.length).toBe(2);
    expect(server.received[1]?.connection).toBe(2);
    expect(server.received[1]?.option.chunk).toBe(server.received[0]?.option.chunk); // the same message again
    expect(s.counts.resent).toBe(1);
    expect(log.lines.map((l) => l.msg)).toContain("fluentd connection lost; reconnecting");
  });

  it("a message not acknowledged within the ack timeout is sent again on a new connection", async () => {
    let first = true;
    const server = await forwardServer(() => {
      const ack = !first;
      first = false;
      return ack;
    });
    cleanup.push(() => server.close());
    const log = new ListLogger();
    const s = sink(server.port, log, { ackTimeoutMs: 300 });
    writeEvents(s, EVENTS.slice(0, 1));
    expect(await s.written()).toBe(true);
    expect(server.received.map((m) => m.connection)).toEqual([1, 2]);
    expect(log.lines.find((l) => l.msg === "fluentd connection lost; reconnecting")?.context?.why).toMatch(/no ack/);
  });

  it("a server that is not there yet: retried with backoff, logged, delivered once it listens", async () => {
    const probe = await forwardServer();
    const port = probe.port;
    await probe.close();
    const log = new ListLogger();
    const s = sink(port, log);
    writeEvents(s, EVENTS.slice(0, 1));
    const written = s.written();
    await waitUntil(
      "two failed connections logged",
      () => log.lines.filter((l) => l.msg === "fluentd connection failed").length >= 2,
      10_000,
    );
    expect(log.lines.find((l) => l.msg === "fluentd connection failed")?.context).toMatchObject({
      code: "ECONNREFUSED",
    });
    const server = await forwardServerOn(port);
    cleanup.push(() => server.close());
    expect(await written).toBe(true);
  });

  it("abandon(): whoever waits on written() hears false, and ready() never blocks again", async () => {
    const server = await forwardServer(() => false);
    cleanup.push(() => server.close());
    const s = sink(server.port, new ListLogger(), { highWaterBytes: 1 });
    writeEvents(s, EVENTS);
    const written = s.written();
    await waitUntil("one message at the server", () => server.received.length === 1, 10_000);
    let ready = false;
    void s.ready().then(() => {
      ready = true;
    });
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(ready).toBe(false); // more unacknowledged bytes than the high-water mark
    s.abandon();
    expect(await written).toBe(false);
    await new Promise((resolve) => setTimeout(resolve, 0));
    expect(ready).toBe(true);
  });
});

async function forwardServerOn(port: number) {
  // The same server on a given port (the port a client was already told).
  const server = createServer((socket) => {
    socket.on("error", () => {});
    void (async () => {
      try {
        for await (const value of decodeMultiStream(socket)) {
          const [, , option] = value as [string, Uint8Array, { chunk?: string }];
          socket.write(new Encoder().encode({ ack: option.chunk }));
        }
      } catch {}
    })();
  });
  await new Promise<void>((resolve) => server.listen(port, "127.0.0.1", resolve));
  return { close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}

describe("the entry header: [ + EventTime", () => {
  it.each([
    ["2023-07-10T11:47:39Z", 1688989659, 0],
    ["2023-07-10T11:47:39.5Z", 1688989659, 500_000_000],
    ["2023-07-10T11:47:39.123456789Z", 1688989659, 123_456_789],
    ["2023-07-10T20:47:39+09:00", 1688989659, 0],
    ["1970-01-01T00:00:00Z", 0, 0],
  ])("%s → %i s %i ns", (eventTime, seconds, nanos) => {
    const out = Buffer.alloc(11);
    writeEntryHeader(epochOf(Buffer.from(eventTime)), out, 0);
    expect(out[0]).toBe(0x92);
    expect(out[1]).toBe(0xd7);
    expect(out[2]).toBe(0x00);
    expect(out.readUInt32BE(3)).toBe(seconds);
    expect(out.readUInt32BE(7)).toBe(nanos);
  });

  it("no eventTime, or one that is no time: now", () => {
    const out = Buffer.alloc(11);
    writeEntryHeader(epochOf(Buffer.from("yesterday")), out, 0, 1_700_000_000_250);
    expect(out.readUInt32BE(3)).toBe(1_700_000_000);
    expect(out.readUInt32BE(7)).toBe(250_000_000);
  });
});

describe("--output forward:// URLs", () => {
  it.each([
    ["forward://127.0.0.1:24224", { host: "127.0.0.1", port: 24224, tls: false }],
    ["forward://fluentd.internal", { host: "fluentd.internal", port: 24224, tls: false }],
    ["forwards://fluentd.internal:24225", { host: "fluentd.internal", port: 24225, tls: true }],
    ["forward://[::1]:24224", { host: "::1", port: 24224, tls: false }],
  ])("%s", (url, target) => {
    expect(parseForwardUrl(url)).toEqual(target);
  });

  it.each(["http://x:1", "forward://", "forward://x:1/path", "forward://user@x:1", "not a url"])(
    "%s is refused",
    (url) => {
      expect(typeof parseForwardUrl(url)).toBe("string");
    },
  );
});

describe("--forward-ca adds to the certificate authorities trusted, never replaces them", () => {
  it("trustedCas: Node's own, NODE_EXTRA_CA_CERTS's, then the extra ones; Node's defaults without extra ones", () => {
    const extra = Buffer.from("-----BEGIN CERTIFICATE-----\nextra\n-----END CERTIFICATE-----\n");
    const env = Buffer.from("-----BEGIN CERTIFICATE-----\nenv\n-----END CERTIFICATE-----\n");
    expect(trustedCas({})).toBeUndefined();
    expect(trustedCas({ envCa: env })).toBeUndefined();
    expect(trustedCas({ ca: extra })).toEqual([...rootCertificates, extra]);
    expect(trustedCas({ ca: extra, envCa: env })).toEqual([...rootCertificates, env, extra]);
  });

  it("import to forwards:// with --forward-ca naming another CA still trusts NODE_EXTRA_CA_CERTS's", async () => {
    const server = await forwardServer(() => true, TEST_CERTIFICATE);
    cleanup.push(() => server.close());
    // Some other authority (one of Node's own): were it to replace the defaults, the test CA would not be trusted
    // and the import would reconnect for ever.
    const dir = mkdtempSync(join(tmpdir(), "ctef-forward-ca-"));
    cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
    const other = join(dir, "other-ca.pem");
    writeFileSync(other, rootCertificates[0] as string);
    const imported = startCli(
      ["import", `file://${FIXTURES}`, "--output", `forwards://127.0.0.1:${server.port}`, "--forward-ca", other],
      { NODE_EXTRA_CA_CERTS: TEST_CA },
    );
    cleanup.push(() => {
      imported.child.kill("SIGKILL");
    });
    const expected = FIXTURE_NAMES.reduce((n, name) => n + trail(name, "x").length, 0);
    await waitUntil(
      "every event acknowledged over TLS",
      () => server.received.reduce((n, m) => n + m.entries.length, 0) >= expected,
      30_000,
    );
    const run = await imported.done;
    expect(run.code).toBe(0);
    expect(run.log.some((l) => l.msg === "connected to fluentd" && l.tls === true)).toBe(true);
  });
});

describe("back-pressure: memory bounded by the connection, not by a high-water mark on a socket that takes anything", () => {
  it("a fluentd that stops reading: producers wait once the socket pushes back, far below the 16 MiB mark", async () => {
    // A server that accepts the connection and never reads it: the kernel's buffers fill, then the socket's write
    // says "no more".
    const sockets = new Set<import("node:net").Socket>();
    const server = createServer((socket) => {
      sockets.add(socket);
      socket.pause();
      socket.on("error", () => {});
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    cleanup.push(async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => server.close(resolve));
    });
    const { port } = server.address() as { port: number };
    const log = new ListLogger();
    const s = sink(port, log, { ackTimeoutMs: 60_000 });
    await waitUntil("connected", () => log.lines.some((l) => l.msg === "connected to fluentd"), 10_000);
    const entry = Buffer.alloc(64 * 1024, 0x61);
    let written = 0;
    for (;;) {
      s.writeBytes(entry, 1);
      written += entry.length;
      await new Promise((resolve) => setImmediate(resolve)); // a producer yields between chunks (the flush runs)
      const waited = await Promise.race([
        s.ready().then(() => false),
        new Promise<boolean>((resolve) => setTimeout(() => resolve(true), 500)),
      ]);
      if (waited) break;
      if (written > 64 * 2 ** 20) break; // never stopped: fails below
    }
    // What is held: the kernel's socket buffers (a few MiB on loopback) plus one message waiting for the socket.
    expect(written).toBeLessThan(16 * 2 ** 20);
  });
});

describe("the <security> handshake (forward-connection.ts), against a stand-in of in_forward's side", () => {
  const KEY = "s3cret";
  const sha512 = (...parts: (string | Uint8Array)[]) => {
    const hash = createHash("sha512");
    for (const part of parts) hash.update(part);
    return hash.digest("hex");
  };

  /** HELO with a binary nonce, checks the PING's digest, answers PONG as `pong` says, then acks every message. */
  async function securedServer(pong: "prove" | "wrong digest" | "refuse") {
    const pings: unknown[][] = [];
    const acked: string[] = [];
    const sockets = new Set<import("node:net").Socket>();
    const server = createServer((socket) => {
      sockets.add(socket);
      socket.on("error", () => {});
      const nonce = randomBytes(16);
      socket.write(new Encoder().encode(["HELO", { nonce, auth: "", keepalive: true }]));
      void (async () => {
        let authenticated = false;
        try {
          for await (const value of decodeMultiStream(socket)) {
            const message = value as unknown[];
            if (!authenticated) {
              pings.push(message);
              const [, hostname, salt, digest] = message as string[];
              const ok = digest === sha512(salt as string, hostname as string, nonce, KEY) && pong !== "refuse";
              const proof = sha512(salt as string, "fluentd-host", nonce, pong === "wrong digest" ? "other" : KEY);
              socket.write(
                new Encoder().encode(ok ? ["PONG", true, "", "fluentd-host", proof] : ["PONG", false, "nope", "", ""]),
              );
              authenticated = ok;
              continue;
            }
            const option = message[2] as { chunk: string };
            acked.push(option.chunk);
            socket.write(new Encoder().encode({ ack: option.chunk }));
          }
        } catch {
          // the client went away
        }
      })();
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    cleanup.push(async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => server.close(resolve));
    });
    return { port: (server.address() as { port: number }).port, pings, acked };
  }

  it("with the key: PING carries hostname, salt and sha512(salt + hostname + nonce + key); then messages are acked", async () => {
    const server = await securedServer("prove");
    const log = new ListLogger();
    const s = sink(server.port, log, {
      target: { host: "127.0.0.1", port: server.port, tls: false, sharedKey: KEY, hostname: "filter-host" },
    });
    writeEvents(s, EVENTS);
    expect(await s.written()).toBe(true);
    expect(server.pings[0]).toEqual([
      "PING",
      "filter-host",
      expect.stringMatching(/^[0-9a-f]{32}$/),
      expect.any(String),
      "",
      "",
    ]);
    expect(server.acked).toHaveLength(1);
  });

  it.each([
    ["wrong digest", "does not prove the shared key"],
    ["refuse", "refused the handshake: nope"],
  ] as const)("a PONG that %s: never established, logged, retried", async (pong, why) => {
    const server = await securedServer(pong);
    const log = new ListLogger();
    const s = sink(server.port, log, {
      target: { host: "127.0.0.1", port: server.port, tls: false, sharedKey: KEY, hostname: "filter-host" },
    });
    writeEvents(s, EVENTS);
    await waitUntil(
      "two failed handshakes",
      () => log.lines.filter((l) => l.msg === "fluentd connection failed").length >= 2,
      10_000,
    );
    const failure = log.lines.find((l) => l.msg === "fluentd connection failed");
    expect(failure?.context).toMatchObject({ error: "ForwardProtocolError", message: expect.stringContaining(why) });
    expect(log.lines.some((l) => l.msg === "connected to fluentd")).toBe(false);
    expect(server.acked).toEqual([]);
  });
});
