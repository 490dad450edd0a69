// The proxy for the AWS SDK's own calls (SQS acknowledgements, the import command's listing, STS for credentials):
// an https.Agent whose connections to a proxied host are CONNECT tunnels (the same as the GETs' in http1.ts) with TLS
// inside, and direct TLS connections to hosts that no_proxy exempts. Only https:// endpoints go through it: the SDK's
// calls to an http:// endpoint go direct.
import type { RequestOptions } from "node:http";
import { Agent, type AgentOptions } from "node:https";
import type { Duplex } from "node:stream";
import { type ConnectionOptions, connect as tlsConnect } from "node:tls";
import { openTunnel } from "./http1.js";
import { type ProxyEnv, proxyFor, proxySet } from "./proxy.js";

type Created = (error: Error | null, socket: Duplex) => void;

export class ProxyAgent extends Agent {
  constructor(
    private readonly env: ProxyEnv,
    /** The longest wait for the proxy's answer to CONNECT. */
    private readonly timeoutMs: number,
    options: AgentOptions = {},
  ) {
    super({ keepAlive: true, maxSockets: 50, ...options });
  }

  /** Through the proxy when one applies to the host (the callback form of Agent#createConnection), else direct. */
  override createConnection(options: RequestOptions, created?: Created): Duplex | null | undefined {
    const host = (options.host ?? "localhost").replace(/^\[(.*)\]$/, "$1");
    const port = Number(options.port ?? 443);
    const proxy = proxyFor(true, host, port, this.env);
    if (proxy === undefined) return super.createConnection(options, created);
    const origin = { secure: true, hostname: host, port, key: `https://${host}:${port} via ${proxy.display}`, proxy };
    const tls = options as ConnectionOptions;
    openTunnel(origin, proxy, this.timeoutMs, new AbortController().signal).then(
      (socket) => created?.(null, tlsConnect({ ...tls, socket, servername: tls.servername ?? host })),
      (error: Error) => created?.(error, undefined as never),
    );
    return undefined; // the socket comes through `created`
  }
}

/** The agent for the SDK's https calls when a proxy variable for https is set; undefined: the SDK's own. */
export function sdkProxyAgent(env: ProxyEnv, timeoutMs: number): ProxyAgent | undefined {
  return proxySet(true, env) ? new ProxyAgent(env, timeoutMs) : undefined;
}
