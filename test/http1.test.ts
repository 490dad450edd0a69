// The HTTP/1.1 client under the S3 GETs, against loopback servers that write exact bytes: body framing (length,
// chunked, until close) however the bytes are cut, interim responses, keep-alive reuse and when not to reuse,
// malformed responses, timeouts, aborts, backpressure and the socket limit. TLS is covered end to end in
// exec-filter style by test/tls.test.ts.
import net from "node:net";
import fc from "fast-check";
import { afterEach, describe, expect, it } from "vitest";
import { Http1Pool, type Http1Response, type Origin } from "../src/http1.js";

interface RawServer {
  origin: Origin;
  /** Connections accepted so far. */
  connections: number;
  /** Request heads received, in order. */
  requests: string[];
  close(): Promise<void>;
}

/**
 * A server that reads request heads (several per connection) and lets `answer` write whatever bytes it likes.
 * `answer` gets the socket, the request's index over the whole server and its index on its connection.
 */
async function rawServer(
  answer: (socket: net.Socket, index: number, onConnection: number) => void,
): Promise<RawServer> {
  const sockets = new Set<net.Socket>();
  const state = { connections: 0, requests: [] as string[] };
  const server = net.createServer((socket) => {
    state.connections++;
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    socket.on("error", () => {});
    let pending = "";
    let served = 0;
    socket.on("data", (data) => {
      pending += data.toString("latin1");
      for (let end = pending.indexOf("\r\n\r\n"); end !== -1; end = pending.indexOf("\r\n\r\n")) {
        state.requests.push(pending.slice(0, end));
        pending = pending.slice(end + 4);
        answer(socket, state.requests.length - 1, served++);
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as net.AddressInfo;
  return {
    origin: { secure: false, hostname: "127.0.0.1", port, key: `http://127.0.0.1:${port}` },
    get connections() {
      return state.connections;
    },
    requests: state.requests,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

/** Writes `bytes` in pieces of `step` bytes, one per event-loop turn, so the client sees every cut. */
function writeInPieces(socket: net.Socket, bytes: Buffer, step: number, then?: () => void): void {
  let at = 0;
  const next = (): void => {
    if (socket.destroyed) return;
    if (at >= bytes.length) {
      then?.();
      return;
    }
    socket.write(bytes.subarray(at, at + step));
    at += step;
    setImmediate(next);
  };
  next();
}

const cleanup: Array<() => unknown> = [];
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn();
});

async function setup(answer: Parameters<typeof rawServer>[0], maxSockets = 4) {
  const server = await rawServer(answer);
  const pool = new Http1Pool(maxSockets);
  cleanup.push(
    () => server.close(),
    () => pool.destroy(),
  );
  const get = (path = "/x", timeoutMs = 2000, signal = new AbortController().signal) =>
    pool.request(server.origin, `GET ${path} HTTP/1.1\r\nHost: h\r\n\r\n`, timeoutMs, signal);
  return { server, pool, get };
}

async function text(response: Http1Response): Promise<string> {
  const parts: Buffer[] = [];
  for await (const part of response) parts.push(part);
  return Buffer.concat(parts).toString("latin1");
}

const BODY = 'The quick brown fox jumps over the lazy dog. 0123456789 \r\n\r\n {"Records":[]}';

function chunked(body: string, sizes: number[]): string {
  let out = "";
  let at = 0;
  for (let i = 0; at < body.length; i++) {
    const n = Math.min(sizes[i % sizes.length] as number, body.length - at);
    out += `${n.toString(16)}${i % 2 ? ";ext=1" : ""}\r\n${body.slice(at, at + n)}\r\n`;
    at += n;
  }
  return `${out}0\r\nx-trailer: t\r\n\r\n`;
}

describe("Http1Pool: bodies", () => {
  it.each([1, 2, 3, 7, 64])(
    "a Content-Length body cut into %i-byte pieces (head included) arrives whole, and the connection is reused",
    async (step) => {
      const { server, get } = await setup((socket) => {
        const bytes = Buffer.from(
          `HTTP/1.1 200 OK\r\nContent-Length: ${BODY.length}\r\nX-A: 1\r\nx-a: 2\r\n\r\n${BODY}`,
        );
        writeInPieces(socket, bytes, step);
      });
      const first = await get();
      expect(first.statusCode).toBe(200);
      expect(first.headers["x-a"]).toBe("1, 2");
      expect((await first.whole()).toString("latin1")).toBe(BODY);
      const second = await get();
      expect(await text(second)).toBe(BODY);
      expect(server.connections).toBe(1);
    },
  );

  it.each([1, 2, 5, 100])(
    "a chunked body (extensions, trailers) cut into %i-byte pieces arrives whole; then the next response on the same connection",
    async (step) => {
      const { server, get } = await setup((socket) => {
        const bytes = Buffer.from(
          `HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n${chunked(BODY, [1, 10, 3, 40])}`,
        );
        writeInPieces(socket, bytes, step);
      });
      expect(await text(await get())).toBe(BODY);
      expect((await (await get()).whole()).toString("latin1")).toBe(BODY);
      expect(server.connections).toBe(1);
    },
  );

  it("skips interim 1xx responses, even in the same write as the final one", async () => {
    const { get } = await setup((socket) => {
      socket.write("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n");
      setImmediate(() => socket.write("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"));
    });
    const response = await get();
    expect(response.statusCode).toBe(200);
    expect(response.headers.link).toBeUndefined();
    expect(await text(response)).toBe("ok");
  });

  it("a body without length ends with the connection, which is not reused", async () => {
    const { server, get } = await setup((socket) => {
      socket.write("HTTP/1.1 200 OK\r\n\r\nuntil ");
      setImmediate(() => socket.end("close"));
    });
    expect(await text(await get())).toBe("until close");
    expect(await text(await get())).toBe("until close");
    expect(server.connections).toBe(2);
  });

  it("does not reuse a connection after `Connection: close`, nor an HTTP/1.0 one", async () => {
    const { server, get } = await setup((socket, index) => {
      socket.write(
        index === 0
          ? "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\na"
          : "HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\nb",
      );
    });
    expect(await text(await get())).toBe("a");
    expect(await text(await get())).toBe("b");
    expect(await text(await get())).toBe("b");
    expect(server.connections).toBe(3);
  });

  it("204 and Content-Length: 0 have no body; the connection goes on", async () => {
    const { server, get } = await setup((socket, index) => {
      socket.write(index === 0 ? "HTTP/1.1 204 No Content\r\n\r\n" : "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    });
    expect(await text(await get())).toBe("");
    expect((await (await get()).whole()).length).toBe(0);
    expect(server.connections).toBe(1);
  });

  it("more bytes than the response frames: the response is whole, the connection is dropped", async () => {
    const { server, get } = await setup((socket) => {
      socket.write("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokJUNK");
    });
    expect(await text(await get())).toBe("ok");
    expect(await text(await get())).toBe("ok");
    expect(server.connections).toBe(2);
  });

  it("a server closing an idle connection: the next request opens a new one", async () => {
    const { server, get } = await setup((socket) => {
      socket.end("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    });
    expect(await text(await get())).toBe("ok");
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(await text(await get())).toBe("ok");
    expect(server.connections).toBe(2);
  });
});

describe("Http1Pool: failures", () => {
  it("a body cut short fails with ECONNRESET; `received` says how much arrived", async () => {
    const { get } = await setup((socket) => {
      socket.write("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabcd");
      setImmediate(() => socket.destroy());
    });
    const response = await get();
    const error = await response.whole().catch((e: unknown) => e);
    expect(error).toMatchObject({ code: "ECONNRESET", message: expect.stringContaining("before the end of the body") });
    expect(response.received).toBe(4);
  });

  it("a chunked body cut before its last chunk fails", async () => {
    const { get } = await setup((socket) => {
      socket.end("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n");
    });
    await expect(text(await get())).rejects.toMatchObject({ code: "ECONNRESET" });
  });

  it("the connection closed before any response: ECONNRESET (a new connection: not sent again)", async () => {
    const { server, pool, get } = await setup((socket) => socket.destroy());
    await expect(get()).rejects.toMatchObject({ code: "ECONNRESET" });
    expect(server.requests).toHaveLength(1);
    expect(pool.staleRetries).toBe(0);
  });

  it("a kept-alive connection closed as the next request arrives: that request goes out again at once, on a new connection", async () => {
    const { server, pool, get } = await setup((socket, _index, onConnection) => {
      if (onConnection === 0) socket.write("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
      else socket.destroy(); // the server had given the connection up: the request crossed its close
    });
    expect(await text(await get())).toBe("ok");
    expect(await text(await get())).toBe("ok");
    expect(server.requests).toHaveLength(3);
    expect(server.connections).toBe(2);
    expect(pool.staleRetries).toBe(1);
  });

  it("every parked connection stale at once: each is tried, then a new one answers", async () => {
    const { server, pool, get } = await setup((socket, _index, onConnection) => {
      if (onConnection === 0) setTimeout(() => socket.write("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"), 20);
      else socket.destroy();
    }, 3);
    // Three requests at once open three connections, which are all parked afterwards.
    expect(await Promise.all([get(), get(), get()].map(async (r) => text(await r)))).toEqual(["ok", "ok", "ok"]);
    expect(server.connections).toBe(3);
    expect(await text(await get())).toBe("ok");
    expect(server.connections).toBe(4);
    expect(pool.staleRetries).toBe(3);
  });

  it("a reused connection that had begun its response is not sent again: the failure is the caller's", async () => {
    const { server, pool, get } = await setup((socket, _index, onConnection) => {
      if (onConnection === 0) socket.write("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
      else {
        socket.write("HTTP/1.1 200 O");
        setImmediate(() => socket.destroy());
      }
    });
    expect(await text(await get())).toBe("ok");
    await expect(get()).rejects.toMatchObject({ code: "ECONNRESET" });
    expect(server.requests).toHaveLength(2);
    expect(pool.staleRetries).toBe(0);
  });

  it("a refused connection: ECONNREFUSED", async () => {
    const closed = await rawServer(() => {});
    await closed.close();
    const pool = new Http1Pool(1);
    await expect(
      pool.request(closed.origin, "GET / HTTP/1.1\r\nHost: h\r\n\r\n", 1000, new AbortController().signal),
    ).rejects.toMatchObject({ code: "ECONNREFUSED" });
  });

  it("a proxy refusing CONNECT: EPROXYDENIED (407) or EPROXY (5xx), and the socket slot is given back", async () => {
    const answers = ["HTTP/1.1 407 Proxy Authentication Required\r\n\r\n", "HTTP/1.1 503 Unavailable\r\n\r\n"];
    let asked = 0;
    const proxy = await rawServer((socket) => socket.end(answers[asked++ % 2] as string));
    cleanup.push(() => proxy.close());
    const pool = new Http1Pool(1); // one socket: a slot not given back would leave the second request waiting forever
    cleanup.push(() => pool.destroy());
    const origin = {
      secure: true,
      hostname: "s3.example",
      port: 443,
      key: "https://s3.example via proxy",
      proxy: { hostname: "127.0.0.1", port: proxy.origin.port, display: "http://proxy", authorization: "Basic eDp5" },
    };
    const get = () =>
      pool.request(origin, "GET / HTTP/1.1\r\nHost: s3.example\r\n\r\n", 1000, new AbortController().signal);
    await expect(get()).rejects.toMatchObject({
      code: "EPROXYDENIED",
      message: expect.stringContaining("refused a tunnel to s3.example:443: 407 Proxy Authentication Required"),
    });
    await expect(get()).rejects.toMatchObject({ code: "EPROXY" });
    expect(proxy.requests).toEqual([
      "CONNECT s3.example:443 HTTP/1.1\r\nHost: s3.example:443\r\nProxy-Authorization: Basic eDp5",
      "CONNECT s3.example:443 HTTP/1.1\r\nHost: s3.example:443\r\nProxy-Authorization: Basic eDp5",
    ]);
  });

  it.each([
    ["not HTTP", "SSH-2.0-OpenSSH\r\n\r\n"],
    ["a bad Content-Length", "HTTP/1.1 200 OK\r\nContent-Length: 12x\r\n\r\n"],
    ["a bad chunk size", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"],
    ["chunk data longer than its size", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n0\r\n\r\n"],
    ["a head of more than 64 KiB", `HTTP/1.1 200 OK\r\nX: ${"a".repeat(70_000)}`],
  ])("%s: EPROTO, never a hang", async (_what, bytes) => {
    const { get } = await setup((socket) => socket.write(bytes));
    const error = await get()
      .then((response) => text(response))
      .catch((e: unknown) => e);
    expect(error).toMatchObject({ code: "EPROTO" });
  });

  it("no response within the timeout: TimeoutError; a body that stalls: TimeoutError, with the bytes received counted", async () => {
    const { get } = await setup((socket, index) => {
      if (index === 1) socket.write("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc");
    });
    await expect(get("/x", 200)).rejects.toMatchObject({ name: "TimeoutError", code: "ETIMEDOUT" });
    const response = await get("/x", 200);
    await expect(response.whole()).rejects.toMatchObject({ name: "TimeoutError", message: "no data for 200 ms" });
    expect(response.received).toBe(3);
  });

  it("an abort fails a request waiting for its head, and a body being read", async () => {
    const { get } = await setup((socket, index) => {
      if (index === 1) socket.write("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc");
    });
    const waiting = new AbortController();
    const pending = get("/x", 5000, waiting.signal);
    setTimeout(() => waiting.abort(), 20);
    await expect(pending).rejects.toMatchObject({ name: "AbortError" });
    const reading = new AbortController();
    const response = await get("/x", 5000, reading.signal);
    setTimeout(() => reading.abort(), 20);
    await expect(text(response)).rejects.toMatchObject({ name: "AbortError" });
  });
});

describe("Http1Pool: flow", () => {
  it("a reader slower than the server gets every byte (the socket is paused and resumed)", async () => {
    const size = 6 * 1024 * 1024;
    const body = Buffer.alloc(size);
    for (let i = 0; i < size; i++) body[i] = (i * 31 + (i >> 12)) & 0xff;
    const { get } = await setup((socket) => {
      socket.write(`HTTP/1.1 200 OK\r\nContent-Length: ${size}\r\n\r\n`);
      socket.write(body);
    });
    const response = await get();
    const parts: Buffer[] = [];
    for await (const part of response) {
      parts.push(part);
      if (parts.length % 16 === 0) await new Promise((resolve) => setTimeout(resolve, 5));
    }
    expect(Buffer.concat(parts).equals(body)).toBe(true);
  });

  it("a body whose last bytes pause the socket (reader not reading yet) leaves the connection running for the next request", async () => {
    const size = 1024 * 1024 + 10; // its last 20 bytes take the queue past 1 MiB
    const { server, get } = await setup((socket, index) => {
      if (index === 0) {
        socket.write(`HTTP/1.1 200 OK\r\nContent-Length: ${size}\r\n\r\n`);
        socket.write(Buffer.alloc(size - 20, 0x61));
        setTimeout(() => socket.write(Buffer.alloc(20, 0x62)), 100);
      } else {
        socket.write("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
      }
    }, 1);
    const first = await get();
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(await text(await get("/y", 1000))).toBe("ok");
    expect((await text(first)).length).toBe(size);
    expect(server.connections).toBe(1);
  });

  it("maxSockets: requests beyond it wait for a connection, and all are answered", async () => {
    let open = 0;
    let most = 0;
    const { server, get } = await setup((socket) => {
      open++;
      most = Math.max(most, open);
      setTimeout(() => {
        open--;
        socket.write("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
      }, 20);
    }, 2);
    const bodies = await Promise.all(Array.from({ length: 7 }, async () => text(await get())));
    expect(bodies).toEqual(Array(7).fill("ok"));
    expect(server.connections).toBe(2);
    expect(most).toBe(2);
  });

  it("a response given up before its body is read drops its connection, and the next request gets a new one", async () => {
    const { server, get } = await setup((socket) => {
      socket.write("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc");
    });
    (await get()).destroy();
    const next = await get("/y", 200);
    expect(next.statusCode).toBe(200);
    next.destroy();
    expect(server.connections).toBe(2);
  });
});

describe("Http1Pool: framing, as a property", () => {
  /** The body framed by Content-Length, chunked coding (sizes cycling through `sizes`) or the end of the connection. */
  function response(body: Buffer, framing: string, sizes: number[], interim: boolean, trailer: boolean): Buffer {
    const parts: Buffer[] = [];
    if (interim) parts.push(Buffer.from("HTTP/1.1 100 Continue\r\n\r\n"));
    if (framing === "length") {
      parts.push(Buffer.from(`HTTP/1.1 200 OK\r\nContent-Length: ${body.length}\r\n\r\n`), body);
    } else if (framing === "close") {
      parts.push(Buffer.from("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n"), body);
    } else {
      parts.push(Buffer.from("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"));
      for (let at = 0, i = 0; at < body.length; i++) {
        const n = Math.min(sizes[i % sizes.length] as number, body.length - at);
        parts.push(Buffer.from(`${n.toString(16)}${i % 3 === 1 ? ";name=value" : ""}\r\n`), body.subarray(at, at + n));
        parts.push(Buffer.from("\r\n"));
        at += n;
      }
      parts.push(Buffer.from(trailer ? "0\r\nx-checksum: 1\r\n\r\n" : "0\r\n\r\n"));
    }
    return Buffer.concat(parts);
  }

  it("any body, framed any way, cut anywhere, arrives byte for byte; the connection is reused whenever it may be", async () => {
    const scripts = new Map<string, { pieces: Buffer[]; close: boolean }>();
    const server = await rawServer((socket, index) => {
      const path = (server.requests[index] as string).split(" ")[1] as string;
      const { pieces, close } = scripts.get(path) as { pieces: Buffer[]; close: boolean };
      let i = 0;
      const next = (): void => {
        if (socket.destroyed) return;
        if (i === pieces.length) {
          if (close) socket.end();
          return;
        }
        socket.write(pieces[i++] as Buffer);
        setImmediate(next);
      };
      next();
    });
    // One connection at a time; a run that fails gets the next run a new pool, so that runs (and shrinking) stay
    // independent.
    let pool = new Http1Pool(1);
    cleanup.push(
      () => server.close(),
      () => pool.destroy(),
    );
    let run = 0;
    let reusable = false;
    await fc.assert(
      fc.asyncProperty(
        fc.uint8Array({ maxLength: 4000 }).map((bytes) => Buffer.from(bytes)),
        fc.constantFrom("length", "chunked", "close"),
        fc.array(fc.integer({ min: 1, max: 900 }), { minLength: 1, maxLength: 6 }),
        fc.array(fc.integer({ min: 1, max: 300 }), { minLength: 1, maxLength: 8 }),
        fc.boolean(),
        fc.boolean(),
        fc.boolean(),
        async (body, framing, sizes, cuts, interim, trailer, iterate) => {
          const bytes = response(body, framing, sizes, interim, trailer);
          const pieces: Buffer[] = [];
          for (let at = 0, i = 0; at < bytes.length; i++) {
            const n = cuts[i % cuts.length] as number;
            pieces.push(bytes.subarray(at, at + n));
            at += n;
          }
          const path = `/run-${run++}`;
          scripts.set(path, { pieces, close: framing === "close" });
          const wasReusable = reusable;
          reusable = false;
          try {
            const connectionsBefore = server.connections;
            const answer = await pool.request(
              server.origin,
              `GET ${path} HTTP/1.1\r\nHost: h\r\n\r\n`,
              2000,
              new AbortController().signal,
            );
            const got = iterate ? Buffer.from(await text(answer), "latin1") : await answer.whole();
            expect(got.equals(body)).toBe(true);
            if (wasReusable) expect(server.connections).toBe(connectionsBefore); // the kept-alive connection served it
          } catch (error) {
            pool.destroy();
            pool = new Http1Pool(1);
            throw error;
          }
          reusable = framing !== "close";
        },
      ),
      { numRuns: 150 },
    );
  });
});
