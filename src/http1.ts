// A small HTTP/1.1 client for S3 GETs: keep-alive connections per origin, one exchange at a time on each.
//
// Why not node:http: with small CloudTrail files, ClientRequest, the agent, IncomingMessage and their streams cost
// more CPU per GET than inflating and scanning the object: 0.68-0.86 ms per GET in a fresh process and 0.50-0.56 ms
// warm, against 0.36 and 0.26 ms for this client (300 and 3,000 GETs at concurrency 32 on loopback:
// bench/experiments/http-client.mjs). It speaks only what a GET needs: a request head written at
// once, a response head (1xx skipped), and a body framed by Content-Length, chunked transfer coding or the end of the
// connection (RFC 9112). A connection is reused only after a complete response that allows it; a request that finds
// its reused connection closed before any byte of answer is sent again at once on another (see StaleConnection).
import { isIP, connect as netConnect, type Socket } from "node:net";
import { connect as tlsConnect } from "node:tls";
import type { HttpProxy } from "./proxy.js";
import { markSpareTail } from "./scan.js";

/** Where requests go: scheme, host and port; `key` names the pool of connections. */
export interface Origin {
  secure: boolean;
  hostname: string;
  port: number;
  key: string;
  /** An HTTP proxy on the way: a CONNECT tunnel for https, requests in absolute form for http (see proxy.ts). */
  proxy?: HttpProxy | undefined;
}

/** `host:port` of an origin, as CONNECT and absolute-form requests name it (IPv6 in brackets). */
function authority(origin: Origin): string {
  return `${origin.hostname.includes(":") ? `[${origin.hostname}]` : origin.hostname}:${origin.port}`;
}

/** The largest proxy response head read before a tunnel is up. */
const PROXY_HEAD_MAX = 16 * 1024;

/**
 * Opens a CONNECT tunnel through `origin.proxy` to the origin; resolves with the raw socket, ready for TLS. A refusal
 * (any status but 2xx) fails with the proxy's status line: EPROXY (retried) for a proxy that could not reach the
 * origin (5xx) and EPROXYDENIED (not retried: configuration) for anything else, 407 among them.
 */
export function openTunnel(origin: Origin, proxy: HttpProxy, timeoutMs: number, signal: AbortSignal): Promise<Socket> {
  return new Promise<Socket>((resolve, reject) => {
    const socket = netConnect({ host: proxy.hostname, port: proxy.port });
    socket.setNoDelay(true);
    let head: Buffer = Buffer.alloc(0);
    const done = (error: Error | undefined): void => {
      socket.removeListener("data", onData);
      socket.removeListener("error", onError);
      socket.removeListener("close", onClose);
      socket.removeListener("timeout", onTimeout);
      signal.removeEventListener("abort", onAbort);
      socket.setTimeout(0);
      if (error === undefined) {
        resolve(socket);
      } else {
        socket.destroy();
        reject(error);
      }
    };
    const onData = (data: Buffer): void => {
      head = head.length === 0 ? data : Buffer.concat([head, data]);
      const end = head.indexOf("\r\n\r\n");
      if (end === -1) {
        if (head.length > PROXY_HEAD_MAX)
          done(new ConnectionError(`the proxy ${proxy.display} sent a head over 16 KiB`, "EPROTO"));
        return;
      }
      const statusLine = head.subarray(0, head.indexOf("\r\n")).toString("latin1");
      const status = /^HTTP\/1\.[01] (\d{3})/.exec(statusLine)?.[1];
      if (status === undefined) {
        done(
          new ConnectionError(
            `the proxy ${proxy.display} answered CONNECT with ${JSON.stringify(statusLine.slice(0, 80))}`,
            "EPROTO",
          ),
        );
      } else if (status[0] !== "2") {
        const why = `the proxy ${proxy.display} refused a tunnel to ${authority(origin)}: ${statusLine.slice(9)}`;
        done(new ConnectionError(why, status[0] === "5" ? "EPROXY" : "EPROXYDENIED"));
      } else if (end + 4 < head.length) {
        done(new ConnectionError(`the proxy ${proxy.display} sent bytes after its answer to CONNECT`, "EPROTO"));
      } else {
        done(undefined);
      }
    };
    const onError = (error: Error): void => done(error);
    const onClose = (): void =>
      done(
        new ConnectionError(`the proxy ${proxy.display} closed the connection before the tunnel was up`, "ECONNRESET"),
      );
    const onTimeout = (): void =>
      done(new ConnectionError(`no answer from the proxy ${proxy.display} within ${timeoutMs} ms`, "ETIMEDOUT"));
    const onAbort = (): void => done(abortError());
    socket.on("data", onData);
    socket.on("error", onError);
    socket.on("close", onClose);
    socket.on("timeout", onTimeout);
    socket.setTimeout(timeoutMs);
    signal.addEventListener("abort", onAbort, { once: true });
    const target = authority(origin);
    const auth = proxy.authorization === undefined ? "" : `Proxy-Authorization: ${proxy.authorization}\r\n`;
    socket.write(`CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\n${auth}\r\n`, "latin1");
  });
}

/** A response head larger than this is refused (S3 sends well under 2 KiB). */
const HEAD_MAX = 64 * 1024;
/** A chunk-size line or trailer line longer than this is refused. */
const LINE_MAX = 4096;
/** Body bytes queued for a slow reader before the socket is paused. */
const QUEUE_MAX = 1024 * 1024;
/** An idle keep-alive connection is closed after this long (S3 closes its side after about 20 s). */
const IDLE_MS = 4000;

/** An error of the connection, with the `code` Node's own network errors carry (the fetch classifier reads it). */
export class ConnectionError extends Error {
  constructor(
    message: string,
    readonly code: string,
  ) {
    super(message);
    this.name = code === "ETIMEDOUT" ? "TimeoutError" : "Error";
  }
}

/**
 * A kept-alive connection that turned out closed: the request went out on a reused connection and it closed or was
 * reset before a single byte of response came back (the server had closed it while it sat idle, and the close
 * crossed the request). Nothing was answered, and a GET may be sent again: the pool retries it at once on another
 * connection instead of failing it (which would cost the filter a retry pause).
 */
class StaleConnection extends Error {
  constructor(readonly reason: Error) {
    super(reason.message);
  }
}

function isReset(error: Error): boolean {
  const code = (error as { code?: unknown }).code;
  return code === "ECONNRESET" || code === "EPIPE";
}

enum Body {
  None,
  Length,
  Chunked,
  UntilClose,
}

enum Chunk {
  Size,
  Data,
  DataEnd,
  Trailer,
}

/** One response: its head, and its body as it arrives (read whole, or iterated). */
export class Http1Response implements AsyncIterable<Buffer> {
  /** Body bytes received so far (queued or handed out). */
  received = 0;
  private readonly queue: Buffer[] = [];
  private queued = 0;
  private ended = false;
  /** Read whole (the caller bounds the size): never paused for a slow reader. */
  private collecting = false;
  private error: Error | undefined;
  private wake: (() => void) | undefined;

  constructor(
    readonly statusCode: number,
    /** Header names in lower case; repeated headers joined with ", ". */
    readonly headers: Record<string, string>,
    private readonly connection: Connection,
  ) {}

  /** The whole body in one buffer with a spare byte after it (the scanner's sentinel goes there). */
  async whole(): Promise<Buffer> {
    this.collecting = true;
    if (!this.ended) this.connection.resume();
    while (!this.ended) {
      if (this.error !== undefined) throw this.error;
      await new Promise<void>((resolve) => {
        this.wake = resolve;
      });
    }
    if (this.error !== undefined) throw this.error;
    const body = Buffer.allocUnsafeSlow(this.queued + 1);
    let at = 0;
    for (const part of this.queue) {
      part.copy(body, at);
      at += part.length;
    }
    this.queue.length = 0;
    this.queued = 0;
    return markSpareTail(body.subarray(0, at));
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<Buffer> {
    try {
      for (;;) {
        if (this.queue.length > 0) {
          const part = this.queue.shift() as Buffer;
          this.queued -= part.length;
          if (this.queued < QUEUE_MAX / 2 && !this.ended) this.connection.resume();
          yield part;
          continue;
        }
        if (this.error !== undefined) throw this.error;
        if (this.ended) return;
        await new Promise<void>((resolve) => {
          this.wake = resolve;
        });
      }
    } finally {
      this.destroy();
    }
  }

  /** Gives the response up: the connection is closed unless the body has already arrived whole. */
  destroy(): void {
    if (!this.ended && this.error === undefined) {
      this.error = new ConnectionError("the response was given up", "ECONNABORTED");
      this.connection.destroy();
    }
    this.queue.length = 0;
    this.queued = 0;
  }

  /** Called by the connection. */
  push(part: Buffer): void {
    this.received += part.length;
    this.queue.push(part);
    this.queued += part.length;
    if (this.queued > QUEUE_MAX && !this.collecting) this.connection.pause();
    this.signal();
  }

  end(): void {
    this.ended = true;
    this.signal();
  }

  fail(error: Error): void {
    if (this.ended || this.error !== undefined) return;
    this.error = error;
    this.signal();
  }

  private signal(): void {
    const wake = this.wake;
    if (wake !== undefined) {
      this.wake = undefined;
      wake();
    }
  }
}

/** One exchange in progress: the caller's promise for the head, then the response being filled. */
interface Exchange {
  resolve(response: Http1Response): void;
  reject(error: Error): void;
  timeoutMs: number;
  response: Http1Response | undefined;
}

class Connection {
  readonly socket: Socket;
  /** Closed and no longer counted against its origin's sockets. */
  forgotten = false;
  private exchange: Exchange | undefined;
  /** The set of busy connections under the exchange's abort signal. */
  private tracker: Set<Connection> | undefined;
  /** Head bytes not parsed yet. */
  private pending: Buffer | undefined;
  private body = Body.None;
  private remaining = 0;
  private chunk = Chunk.Size;
  private line = "";
  private keepAlive = false;
  private closed = false;
  private paused = false;
  /** Exchanges sent on this connection so far. */
  private uses = 0;
  /** A byte has arrived since the current exchange was sent. */
  private heard = false;

  constructor(
    readonly origin: Origin,
    private readonly release: (connection: Connection, reusable: boolean) => void,
    /** The last TLS session per origin: a new connection resumes it instead of a full handshake. */
    sessions: Map<string, Buffer>,
    /** For an https origin behind a proxy: the CONNECT tunnel that TLS runs over. */
    tunnel?: Socket,
  ) {
    if (origin.secure) {
      const session = sessions.get(origin.key);
      const socket = tlsConnect({
        ...(tunnel === undefined ? { host: origin.hostname, port: origin.port } : { socket: tunnel }),
        servername: isIP(origin.hostname) === 0 ? origin.hostname : "",
        ALPNProtocols: ["http/1.1"],
        ...(session === undefined ? {} : { session }),
      });
      socket.on("session", (ticket: Buffer) => {
        if (sessions.size > 1024) sessions.clear();
        sessions.set(origin.key, ticket);
      });
      this.socket = socket;
    } else {
      const to = origin.proxy ?? origin; // a plain-HTTP origin behind a proxy: requests go to the proxy
      this.socket = netConnect({ host: to.hostname, port: to.port });
    }
    this.socket.setNoDelay(true);
    this.socket.setKeepAlive(true, 60_000);
    this.socket.on("data", (data: Buffer) => this.onData(data));
    this.socket.on("end", () => this.onEnd());
    this.socket.on("error", (error: Error) => this.onClose(error));
    this.socket.on("close", () => this.onClose(undefined));
    this.socket.on("timeout", () => this.onTimeout());
  }

  /** Sends a request head; the exchange resolves with the response once its head has arrived. */
  send(head: string, exchange: Exchange, tracker: Set<Connection>): void {
    this.exchange = exchange;
    this.tracker = tracker;
    this.uses++;
    this.heard = false;
    tracker.add(this);
    this.socket.ref();
    this.socket.setTimeout(exchange.timeoutMs);
    this.socket.write(head, "latin1");
  }

  pause(): void {
    if (this.paused) return;
    this.paused = true;
    this.socket.pause();
    this.socket.setTimeout(0); // a reader that is slow is not a server that is silent
  }

  resume(): void {
    if (!this.paused) return;
    this.paused = false;
    this.socket.setTimeout(this.exchange?.timeoutMs ?? 0);
    this.socket.resume();
  }

  /** Parks an idle connection: it holds the process open no longer, and closes after IDLE_MS. */
  park(): void {
    this.socket.setTimeout(IDLE_MS);
    this.socket.unref();
  }

  destroy(error?: Error): void {
    if (error !== undefined) this.failExchange(error);
    this.socket.destroy();
  }

  private onData(data: Buffer): void {
    this.heard = true;
    let at = 0;
    while (at < data.length) {
      const exchange = this.exchange;
      if (exchange === undefined) {
        this.destroy(); // bytes nobody asked for: the connection cannot be trusted
        return;
      }
      if (exchange.response === undefined) {
        at = this.readHead(data, at, exchange);
        if (at < 0) return;
      } else {
        at = this.readBody(data, at, exchange.response);
        if (at < 0) return;
        if (this.body === Body.None) {
          this.finish(at === data.length);
          if (at < data.length) {
            this.socket.destroy(); // more bytes than the response framed
          }
          return;
        }
      }
    }
  }

  /** Consumes head bytes from data[at..]; returns where the body starts, or -1 (more needed, or failed). */
  private readHead(data: Buffer, at: number, exchange: Exchange): number {
    let buffer = at === 0 ? data : data.subarray(at);
    let from = 0;
    if (this.pending !== undefined) {
      from = Math.max(0, this.pending.length - 3);
      buffer = Buffer.concat([this.pending, buffer]);
      this.pending = undefined;
    }
    const end = buffer.indexOf("\r\n\r\n", from, "latin1");
    if (end === -1) {
      if (buffer.length > HEAD_MAX) this.protocolError(`a response head larger than ${HEAD_MAX} bytes`);
      else this.pending = buffer;
      return -1;
    }
    const lines = buffer.toString("latin1", 0, end).split("\r\n");
    const status = /^HTTP\/1\.([01]) (\d{3})/.exec(lines[0] as string);
    if (status === null) {
      this.protocolError(`not an HTTP/1.x response (${JSON.stringify((lines[0] as string).slice(0, 40))})`);
      return -1;
    }
    const statusCode = Number(status[2]);
    const headers: Record<string, string> = Object.create(null); // a header named __proto__ is just a header
    for (let i = 1; i < lines.length; i++) {
      const line = lines[i] as string;
      const colon = line.indexOf(":");
      if (colon <= 0) continue;
      const name = line.slice(0, colon).trim().toLowerCase();
      const value = line.slice(colon + 1).trim();
      const before = headers[name];
      headers[name] = before === undefined ? value : `${before}, ${value}`;
    }
    const consumed = at + (end + 4 - (buffer.length - (data.length - at)));
    if (statusCode < 200) return consumed; // 100 Continue, 103 Early Hints: the real head follows
    const connection = headers.connection?.toLowerCase() ?? "";
    this.keepAlive = status[1] === "1" ? !connection.includes("close") : connection.includes("keep-alive");
    const coding = headers["transfer-encoding"];
    const length = headers["content-length"];
    if (statusCode === 204 || statusCode === 304) {
      this.body = Body.None;
    } else if (coding !== undefined) {
      if (/(^|,)\s*chunked\s*$/i.test(coding)) {
        this.body = Body.Chunked;
        this.chunk = Chunk.Size;
        this.line = "";
      } else {
        this.body = Body.UntilClose;
      }
    } else if (length !== undefined) {
      if (!/^\d{1,15}$/.test(length)) {
        this.protocolError(`an invalid Content-Length (${JSON.stringify(length.slice(0, 40))})`);
        return -1;
      }
      this.remaining = Number(length);
      this.body = this.remaining === 0 ? Body.None : Body.Length;
    } else {
      this.body = Body.UntilClose;
    }
    if (this.body === Body.UntilClose) this.keepAlive = false;
    const response = new Http1Response(statusCode, headers, this);
    exchange.response = response;
    exchange.resolve(response);
    if (this.body === Body.None) {
      this.finish(consumed === data.length);
      if (consumed < data.length) this.socket.destroy();
      return -1;
    }
    return consumed;
  }

  /** Consumes body bytes from data[at..]; returns where they end (body complete: this.body is None), or -1. */
  private readBody(data: Buffer, at: number, response: Http1Response): number {
    switch (this.body) {
      case Body.Length: {
        const n = Math.min(this.remaining, data.length - at);
        response.push(at === 0 && n === data.length ? data : data.subarray(at, at + n));
        this.remaining -= n;
        if (this.remaining === 0) this.body = Body.None;
        return at + n;
      }
      case Body.UntilClose:
        response.push(at === 0 ? data : data.subarray(at));
        return data.length;
      case Body.Chunked:
        return this.readChunked(data, at, response);
      default:
        return at;
    }
  }

  private readChunked(data: Buffer, at: number, response: Http1Response): number {
    while (at < data.length) {
      if (this.chunk === Chunk.Data) {
        const n = Math.min(this.remaining, data.length - at);
        response.push(data.subarray(at, at + n));
        at += n;
        this.remaining -= n;
        if (this.remaining === 0) this.chunk = Chunk.DataEnd;
        continue;
      }
      const newline = data.indexOf(10, at);
      const upTo = newline === -1 ? data.length : newline;
      this.line += data.toString("latin1", at, upTo);
      if (this.line.length > LINE_MAX) {
        this.protocolError("a chunk-size or trailer line too long");
        return -1;
      }
      if (newline === -1) return data.length;
      at = newline + 1;
      const line = this.line.endsWith("\r") ? this.line.slice(0, -1) : this.line;
      this.line = "";
      if (this.chunk === Chunk.Size) {
        const size = /^([0-9A-Fa-f]{1,12})[ \t]*(;.*)?$/.exec(line);
        if (size === null) {
          this.protocolError(`an invalid chunk size (${JSON.stringify(line.slice(0, 40))})`);
          return -1;
        }
        this.remaining = Number.parseInt(size[1] as string, 16);
        this.chunk = this.remaining === 0 ? Chunk.Trailer : Chunk.Data;
      } else if (this.chunk === Chunk.DataEnd) {
        if (line !== "") {
          this.protocolError("chunk data longer than its size");
          return -1;
        }
        this.chunk = Chunk.Size;
      } else if (line === "") {
        this.body = Body.None; // the empty line after the last chunk (and any trailers)
        return at;
      }
    }
    return at;
  }

  /** The response has arrived whole (its last bytes may have paused the socket: the next exchange needs it going). */
  private finish(clean: boolean): void {
    this.resume();
    const exchange = this.exchange;
    this.exchange = undefined;
    this.untrack();
    this.pending = undefined;
    exchange?.response?.end();
    this.release(this, clean && this.keepAlive && !this.closed);
  }

  private onEnd(): void {
    const response = this.exchange?.response;
    if (response !== undefined && this.body === Body.UntilClose) {
      this.body = Body.None;
      this.keepAlive = false;
      this.finish(false);
      return;
    }
    this.onClose(undefined);
  }

  private onTimeout(): void {
    if (this.exchange === undefined) {
      this.socket.destroy(); // idle in the pool for IDLE_MS
      return;
    }
    const ms = this.exchange.timeoutMs;
    const response = this.exchange.response;
    this.destroy(
      response === undefined
        ? new ConnectionError(`no response within ${ms} ms`, "ETIMEDOUT")
        : new ConnectionError(`no data for ${ms} ms`, "ETIMEDOUT"),
    );
  }

  private onClose(error: Error | undefined): void {
    if (!this.closed) {
      this.closed = true;
      this.socket.destroy();
      this.release(this, false);
    }
    const response = this.exchange?.response;
    const why =
      error ??
      (response === undefined
        ? new ConnectionError("the connection closed before a response (socket hang up)", "ECONNRESET")
        : new ConnectionError("the connection closed before the end of the body", "ECONNRESET"));
    this.failExchange(why);
  }

  private failExchange(error: Error): void {
    const exchange = this.exchange;
    if (exchange === undefined) return;
    this.exchange = undefined;
    this.untrack();
    if (exchange.response === undefined) {
      exchange.reject(this.uses > 1 && !this.heard && isReset(error) ? new StaleConnection(error) : error);
    } else {
      exchange.response.fail(error);
    }
  }

  private untrack(): void {
    this.tracker?.delete(this);
    this.tracker = undefined;
  }

  private protocolError(what: string): void {
    this.destroy(new ConnectionError(`the server sent ${what}`, "EPROTO"));
  }
}

/** Keep-alive connections per origin, at most `maxSockets` each; requests beyond that wait for one to free up. */
export class Http1Pool {
  private readonly idle = new Map<string, Connection[]>();
  private readonly open = new Map<string, number>();
  private readonly waiting = new Map<string, Array<() => void>>();
  private readonly active = new WeakMap<AbortSignal, Set<Connection>>();
  private readonly sessions = new Map<string, Buffer>();
  private destroyed = false;
  /** Requests sent again because their kept-alive connection had gone stale (see StaleConnection). */
  staleRetries = 0;

  constructor(private readonly maxSockets: number) {}

  /**
   * Sends `head` (request line, headers and the blank line) to `origin`; resolves with the response once its head
   * has arrived. `timeoutMs`: the longest wait for the head, and for each piece of the body. When `signal` aborts,
   * the exchange fails with an AbortError (before the head) or its body does.
   */
  async request(origin: Origin, head: string, timeoutMs: number, signal: AbortSignal): Promise<Http1Response> {
    const proxy = origin.proxy;
    if (proxy !== undefined && !origin.secure) {
      // Through a proxy, plain HTTP names the whole URL in the request line (RFC 9112 3.2.2).
      const auth = proxy.authorization === undefined ? "" : `Proxy-Authorization: ${proxy.authorization}\r\n`;
      head = head.replace(
        /^(\S+) (\S+) (HTTP\/1\.1\r\n)/,
        (_line, method: string, target: string, version: string) =>
          `${method} http://${authority(origin)}${target} ${version}${auth}`,
      );
    }
    // Every parked connection may have gone stale at once (a server that closes idle connections): one more try than
    // there can be parked connections always reaches a new one.
    for (let attempt = 0; ; attempt++) {
      if (signal.aborted) throw abortError();
      const connection = await this.connection(origin, timeoutMs, signal);
      try {
        return await new Promise<Http1Response>((resolve, reject) => {
          connection.send(head, { resolve, reject, timeoutMs, response: undefined }, this.tracked(signal));
        });
      } catch (error) {
        if (!(error instanceof StaleConnection)) throw error;
        this.staleRetries++;
        if (attempt >= this.maxSockets) throw error.reason;
      }
    }
  }

  destroy(): void {
    this.destroyed = true;
    for (const list of this.idle.values()) for (const connection of list) connection.destroy();
    this.idle.clear();
  }

  /** An idle connection to `origin`, a new one, or the next one freed when `maxSockets` are in use. */
  private async connection(origin: Origin, timeoutMs: number, signal: AbortSignal): Promise<Connection> {
    for (;;) {
      if (this.destroyed) throw new ConnectionError("the client was closed", "ECONNABORTED");
      const idle = this.idle.get(origin.key);
      const parked = idle?.pop();
      if (parked !== undefined) {
        if (parked.socket.writable) return parked;
        this.release(parked, false); // closed while parked, its close event not seen yet
        continue;
      }
      const open = this.open.get(origin.key) ?? 0;
      if (open < this.maxSockets) {
        this.open.set(origin.key, open + 1);
        let tunnel: Socket | undefined;
        if (origin.secure && origin.proxy !== undefined) {
          try {
            tunnel = await openTunnel(origin, origin.proxy, timeoutMs, signal);
          } catch (error) {
            this.dropSlot(origin.key); // no connection came of it: a waiter may try
            this.waiting.get(origin.key)?.shift()?.();
            throw error;
          }
        }
        return new Connection(origin, (c, reusable) => this.release(c, reusable), this.sessions, tunnel);
      }
      await new Promise<void>((resolve, reject) => {
        const queue = this.waiting.get(origin.key) ?? [];
        this.waiting.set(origin.key, queue);
        const onAbort = (): void => {
          const i = queue.indexOf(wake);
          if (i !== -1) queue.splice(i, 1);
          reject(abortError());
        };
        const wake = (): void => {
          signal.removeEventListener("abort", onAbort);
          resolve();
        };
        queue.push(wake);
        signal.addEventListener("abort", onAbort, { once: true });
      });
    }
  }

  /**
   * A connection is done with its exchange (`reusable`: parked for the next one) or closed (called again, not
   * reusable, when a parked one closes). Either way one waiter, if any, tries again.
   */
  private release(connection: Connection, reusable: boolean): void {
    const key = connection.origin.key;
    const idle = this.idle.get(key) ?? [];
    const at = idle.indexOf(connection);
    if (at !== -1) idle.splice(at, 1);
    if (reusable && !this.destroyed) {
      connection.park();
      idle.push(connection);
      this.idle.set(key, idle);
    } else {
      connection.destroy();
      if (!connection.forgotten) {
        connection.forgotten = true;
        this.dropSlot(key);
      }
    }
    this.waiting.get(key)?.shift()?.();
  }

  /** One of the `maxSockets` connections counted for `key` is gone. */
  private dropSlot(key: string): void {
    this.open.set(key, Math.max(0, (this.open.get(key) ?? 1) - 1));
  }

  /** The connections busy under `signal`; the first registers one listener that destroys them all on abort. */
  private tracked(signal: AbortSignal): Set<Connection> {
    let set = this.active.get(signal);
    if (set === undefined) {
      const connections = new Set<Connection>();
      set = connections;
      this.active.set(signal, connections);
      signal.addEventListener(
        "abort",
        () => {
          this.active.delete(signal);
          const error = abortError();
          for (const connection of connections) connection.destroy(error);
        },
        { once: true },
      );
    }
    return set;
  }
}

/** The error a request ends with when the filter gives up work in flight (shutdown). */
export function abortError(): Error {
  const error = new Error("The operation was aborted");
  error.name = "AbortError";
  return error;
}
