// The HTTP listener of --metrics-listen: /metrics (the Prometheus text format), /healthz (live while the event loop
// answers) and /readyz (ready while the command can make progress: readiness.ts), on 127.0.0.1 unless a host is
// given. Nothing listens without the option.
//
// It shares the event loop with the output path, so it does only small, bounded work: a scrape reads counters (no
// I/O, nothing awaited on the output), at most MAX_CONNECTIONS clients at once, each request cut after
// REQUEST_TIMEOUT_MS. The server is unref'd: it never keeps a finished command alive.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { Logger } from "../shared/log.js";
import type { ListenAddress } from "./address.js";
import { Metrics, type Observer } from "./metrics.js";
import { type Check, notReady } from "./readiness.js";
import { checksOf, type Parts, readingOf } from "./sources.js";

/** Scrapers and probers at once: Prometheus, an agent, a load balancer and a person with curl fit with room. */
const MAX_CONNECTIONS = 32;
/** A client that has not sent its request within this is dropped (a scrape's request is a few hundred bytes). */
const REQUEST_TIMEOUT_MS = 10_000;

/** The listener and the metrics it serves; the command hands it what to read once it has built its parts. */
export class MetricsListener {
  private checks: readonly Check[] | undefined;

  private constructor(
    private readonly server: Server,
    private readonly metrics: Metrics,
    /** Where it listens (the port the system chose, for port 0). */
    readonly address: ListenAddress,
  ) {}

  /**
   * Starts listening; rejects when the address cannot be bound (in use, not ours). `objects`: the command reads
   * objects through S3Source (the histograms); `verify` does not.
   */
  static async open(
    address: ListenAddress,
    command: string,
    version: string,
    log: Logger,
    objects = true,
  ): Promise<MetricsListener> {
    const metrics = await Metrics.create(command, version, objects);
    let listener: MetricsListener | undefined;
    const server = createServer((request, response) => {
      if (listener === undefined) response.writeHead(503).end();
      else listener.handle(request, response, log);
    });
    server.maxConnections = MAX_CONNECTIONS;
    server.requestTimeout = REQUEST_TIMEOUT_MS;
    server.headersTimeout = REQUEST_TIMEOUT_MS;
    server.on("clientError", (_error, socket) => socket.destroy());
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(address.port, address.host, () => {
        server.off("error", reject);
        resolve();
      });
    });
    server.on("error", (error) => log.warn("metrics listener failed", { error: error.message }));
    server.unref();
    const bound = server.address() as AddressInfo;
    listener = new MetricsListener(server, metrics, { host: bound.address, port: bound.port });
    log.info("metrics listening", { host: bound.address, port: bound.port });
    return listener;
  }

  /** Told of each GET and each object (the histograms). */
  get observer(): Observer {
    return this.metrics.observer;
  }

  /** From now on /metrics has the counts of the command's parts, and /readyz asks about them. */
  serve(parts: Parts): void {
    this.metrics.attach(readingOf(parts), parts.filter !== undefined);
    this.checks = checksOf(parts);
  }

  private handle(request: IncomingMessage, response: ServerResponse, log: Logger): void {
    const path = (request.url ?? "").split("?")[0];
    if (request.method !== "GET" && request.method !== "HEAD") {
      response.writeHead(405, { Allow: "GET, HEAD" }).end();
      return;
    }
    if (path === "/metrics") {
      this.metrics.exposition().then(
        ({ contentType, body }) => send(response, 200, contentType, body),
        (error: unknown) => {
          log.warn("metrics scrape failed", { error: error instanceof Error ? error.message : String(error) });
          send(response, 500, "text/plain; charset=utf-8", "scrape failed\n");
        },
      );
    } else if (path === "/healthz") {
      sendJson(response, 200, { live: true });
    } else if (path === "/readyz") {
      const reasons = this.checks === undefined ? ["starting"] : notReady(this.checks, Date.now());
      sendJson(response, reasons.length === 0 ? 200 : 503, { ready: reasons.length === 0, reasons });
    } else {
      send(response, 404, "text/plain; charset=utf-8", "not found: /metrics, /healthz and /readyz are served here\n");
    }
  }

  close(): void {
    this.server.close();
    this.server.closeAllConnections();
  }
}

function send(response: ServerResponse, status: number, contentType: string, body: string): void {
  response.writeHead(status, { "Content-Type": contentType, "Cache-Control": "no-store" }).end(body);
}

function sendJson(response: ServerResponse, status: number, value: unknown): void {
  send(response, status, "application/json", `${JSON.stringify(value)}\n`);
}
