// The AWS SDK's HTTP handler on undici, for every call when a proxy variable is set (undici's EnvHttpProxyAgent reads
// HTTPS_PROXY / HTTP_PROXY / NO_PROXY, https:// and socks5:// proxies included; node:http has no proxy support at all)
// and for tests that reach AWS host names on loopback. Direct connections take the SDK's own handler
// (sdk-handler.ts), so undici is loaded only here, on the first request that needs it. Signing, endpoints, redirects,
// checksums and clock skew stay the SDK's; HTTP/1.1, TLS and CONNECT tunnelling are undici's. This file only
// translates.

import { buildQueryString } from "@smithy/core/protocols";
import type { HeaderBag, HttpHandlerOptions, HttpRequest, HttpResponse } from "@smithy/types";
import { Agent, type Dispatcher, EnvHttpProxyAgent } from "undici";
import { proxySettings } from "./proxy-env.js";
import type { HttpHandlerSettings, SdkHttpHandler } from "./sdk-handler.js";

// Tests and the HTTP client experiment read the variables through this module as they did before it was split.
export { proxyVariable } from "./proxy-env.js";

/**
 * The dispatcher for all SDK calls. Throws a clear error for a proxy URL undici cannot use (proxy-env.ts, which the
 * start-up check also runs), so that a bad variable is a configuration error rather than a failure on every object.
 */
export function createDispatcher(settings: HttpHandlerSettings): Dispatcher {
  const options: Agent.Options = {
    connections: settings.connections,
    // A connection refused or unanswered must fail fast; a slow body is bounded by bodyTimeout per request.
    connect: settings.connect ?? { timeout: Math.min(settings.timeoutMs, 10_000) },
    headersTimeout: settings.timeoutMs,
    bodyTimeout: settings.timeoutMs,
  };
  const proxies = settings.env === undefined ? undefined : proxySettings(settings.env);
  if (proxies === undefined) return new Agent(options);
  return new EnvHttpProxyAgent({ ...options, ...proxies });
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
