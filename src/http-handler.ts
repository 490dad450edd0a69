// The AWS SDK's HTTP handlers: the SDK's own (node:http, keep-alive agents) for direct connections, and one on undici
// for every call when a proxy variable is set (undici's EnvHttpProxyAgent reads HTTPS_PROXY / HTTP_PROXY / NO_PROXY,
// https:// and socks5:// proxies included; node:http has no proxy support at all). Signing, endpoints, redirects,
// checksums and clock skew stay the SDK's; HTTP/1.1, TLS and CONNECT tunnelling are node's or undici's. This file only
// chooses and translates.
//
// Why not undici for everything: with the SDK's ~1 ms of main-thread work per response, undici answered later than
// node:http under the same load (median 72 against 54 ms for a 50 ms GET at concurrency 16, bench/README.md "The GET
// path"), which cost the latency scenario a third of its throughput.

import { Agent as HttpAgent } from "node:http";
import { Agent as HttpsAgent } from "node:https";
import { buildQueryString } from "@smithy/core/protocols";
import { NodeHttpHandler } from "@smithy/node-http-handler";
import type { HeaderBag, HttpHandlerOptions, HttpRequest, HttpResponse } from "@smithy/types";
import { Agent, type Dispatcher, EnvHttpProxyAgent } from "undici";

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

/** The proxy variables undici reads, lowercase first (as curl does). */
const PROXY_VARIABLES = ["https_proxy", "HTTPS_PROXY", "http_proxy", "HTTP_PROXY"] as const;

/** The first proxy variable set in `env`, as [name, value], or undefined. */
export function proxyVariable(env: Record<string, string | undefined>): [string, string] | undefined {
  for (const name of PROXY_VARIABLES) {
    const value = env[name];
    if (value !== undefined && value !== "") return [name, value];
  }
  return undefined;
}

/**
 * The dispatcher for all SDK calls. Throws a clear error for a proxy URL undici cannot use, so that a bad variable is
 * a configuration error at start rather than a failure on every object.
 */
export function createDispatcher(settings: HttpHandlerSettings): Dispatcher {
  const options: Agent.Options = {
    connections: settings.connections,
    // A connection refused or unanswered must fail fast; a slow body is bounded by bodyTimeout per request.
    connect: settings.connect ?? { timeout: Math.min(settings.timeoutMs, 10_000) },
    headersTimeout: settings.timeoutMs,
    bodyTimeout: settings.timeoutMs,
  };
  const env = settings.env;
  if (env === undefined || proxyVariable(env) === undefined) return new Agent(options);
  const pick = (lower: string, upper: string): string | undefined => {
    const value = env[lower] || env[upper] || undefined;
    // `host:port` without a scheme is common in the wild and means plain HTTP.
    return value === undefined || /^[a-z][a-z0-9+.-]*:\/\//i.test(value) ? value : `http://${value}`;
  };
  const httpsProxy = pick("https_proxy", "HTTPS_PROXY");
  const httpProxy = pick("http_proxy", "HTTP_PROXY");
  const noProxy = env.no_proxy || env.NO_PROXY || undefined;
  for (const [name, value] of [
    ["https_proxy", httpsProxy],
    ["http_proxy", httpProxy],
  ] as const) {
    if (value !== undefined) checkProxyUrl(name, value);
  }
  return new EnvHttpProxyAgent({
    ...options,
    ...(httpsProxy === undefined ? {} : { httpsProxy }),
    ...(httpProxy === undefined ? {} : { httpProxy }),
    ...(noProxy === undefined ? {} : { noProxy }),
  });
}

/** Error text must never repeat a proxy password: the URL with its password masked. */
function maskProxyUrl(value: string): string {
  try {
    const url = new URL(value);
    if (url.password !== "") url.password = "***";
    return url.href;
  } catch {
    return "(not a URL)";
  }
}

function checkProxyUrl(name: string, value: string): void {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new TypeError(`${name} is not a URL (expected http://host:port)`);
  }
  if (!["http:", "https:", "socks5:", "socks:"].includes(url.protocol)) {
    throw new TypeError(`${name} ${maskProxyUrl(value)}: unsupported proxy scheme ${url.protocol}`);
  }
  try {
    decodeURIComponent(url.username);
    decodeURIComponent(url.password);
  } catch {
    throw new TypeError(`${name} ${maskProxyUrl(value)}: the credentials are not valid percent-encoding`);
  }
}

/** The SDK's HttpHandler interface (from @smithy/protocol-http, which the SDK bundles), as this file uses it. */
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

/** The SDK's HttpHandler over an undici dispatcher. */
export class UndiciHttpHandler implements SdkHttpHandler {
  readonly metadata = { handlerProtocol: "http/1.1" };

  constructor(
    private readonly dispatcher: Dispatcher,
    private readonly timeoutMs: number,
  ) {}

  async handle(request: HttpRequest, options: HttpHandlerOptions = {}): Promise<{ response: HttpResponse }> {
    const { abortSignal, requestTimeout } = options;
    const timeout = requestTimeout !== undefined && requestTimeout > 0 ? requestTimeout : this.timeoutMs;
    const port = request.port === undefined ? "" : `:${request.port}`;
    let path = request.path;
    const query = request.query === undefined ? "" : buildQueryString(request.query);
    if (query !== "") path += `?${query}`;
    const response = await this.dispatcher.request({
      origin: `${request.protocol}//${request.hostname}${port}`,
      path,
      method: request.method as Dispatcher.HttpMethod,
      headers: request.headers,
      body: request.body ?? null,
      // The SDK's own AbortSignal type is structurally a DOM one where we create them (cli passes AbortSignal).
      signal: abortSignal as AbortSignal | undefined,
      headersTimeout: timeout,
      bodyTimeout: timeout,
    });
    const headers: HeaderBag = {};
    for (const name in response.headers) {
      const value = response.headers[name];
      if (value !== undefined) headers[name] = Array.isArray(value) ? value.join(", ") : value;
    }
    return { response: { statusCode: response.statusCode, headers, body: response.body } };
  }

  updateHttpClientConfig(): void {
    // Nothing is configured through the SDK: the dispatcher is built once for the process.
  }

  httpHandlerConfigs(): Record<string, never> {
    return {};
  }

  destroy(): void {
    // Shared by every client of the process: closed with the process, not with one client.
  }
}
