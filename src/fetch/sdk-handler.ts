// The AWS SDK's HTTP handler for direct connections: the SDK's own (node:http, keep-alive agents), which the SDK
// clients load anyway. Where a proxy variable is set (or a test reaches AWS host names on loopback), every call goes
// through undici instead (http-handler.ts), which only that case loads: a direct run never reads undici's 130 files.
//
// Why not undici for everything: with the SDK's ~1 ms of main-thread work per response, undici answered later than
// node:http under the same load (median 72 against 54 ms for a 50 ms GET at concurrency 16, bench/README.md "The GET
// path"), which cost the latency scenario a third of its throughput.
import { Agent as HttpAgent } from "node:http";
import { Agent as HttpsAgent } from "node:https";
import { NodeHttpHandler } from "@smithy/node-http-handler";
import type { HttpHandlerOptions, HttpRequest, HttpResponse } from "@smithy/types";
import type { Agent } from "undici";

export interface HttpHandlerSettings {
  /** Connections per origin (S3 needs one per object fetched at once). */
  connections: number;
  /** A response with no headers, or a body with no data, for this long fails the request. */
  timeoutMs: number;
  /** Where the proxy variables are read: undefined means no proxy (tests), else usually process.env. */
  env?: Record<string, string | undefined>;
  /** How connections are made, when not undici's own way (tests reach AWS host names on loopback with it). */
  connect?: Agent.Options["connect"];
}

/** The SDK's HttpHandler interface (from @smithy/protocol-http, which the SDK bundles), as this project uses it. */
export interface SdkHttpHandler {
  readonly metadata: { handlerProtocol: string };
  handle(request: HttpRequest, options?: HttpHandlerOptions): Promise<{ response: HttpResponse }>;
  updateHttpClientConfig(key: never, value: never): void;
  httpHandlerConfigs(): object;
  destroy(): void;
}

/** The SDK's own node:http handler with kept-alive connections, for direct connections (no proxy variable set). */
export function nodeHandler(settings: HttpHandlerSettings): SdkHttpHandler {
  const agent = { keepAlive: true, maxSockets: settings.connections };
  return new NodeHttpHandler({
    httpAgent: new HttpAgent(agent),
    httpsAgent: new HttpsAgent(agent),
    connectionTimeout: Math.min(settings.timeoutMs, 10_000),
    // No response headers for this long fails the request; a body silent for this long fails its read.
    requestTimeout: settings.timeoutMs,
    throwOnRequestTimeout: true,
    socketTimeout: settings.timeoutMs,
  }) as unknown as SdkHttpHandler;
}

/**
 * A handler whose requests without a signal of their own take `signal` (S3Getter sends GETs without per-request
 * options so that the SDK reuses their middleware, and aborts them all at once through this: see s3-get.ts).
 */
export function withSignal(inner: SdkHttpHandler, signal: AbortSignal): SdkHttpHandler {
  return {
    metadata: inner.metadata,
    handle: (request, options = {}) =>
      inner.handle(request, { ...options, abortSignal: options.abortSignal ?? signal }),
    updateHttpClientConfig: (key, value) => inner.updateHttpClientConfig(key, value),
    httpHandlerConfigs: () => inner.httpHandlerConfigs(),
    destroy: () => {},
  };
}
