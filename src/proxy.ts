// Which HTTP proxy, if any, a request to S3 goes through: the conventional environment variables, read once.
//
// `https_proxy` / `HTTPS_PROXY` for https:// endpoints (AWS's), `http_proxy` / `HTTP_PROXY` for http:// ones (an
// S3-compatible store), the lowercase name first; `no_proxy` / `NO_PROXY` lists the hosts reached directly. The
// proxy itself is spoken to in plain HTTP (`http://[user:password@]host[:port]`): a CONNECT tunnel carries the TLS
// of an https:// endpoint end to end, so the proxy never sees the request; an http:// endpoint's requests go to the
// proxy in absolute form.

/** A proxy to go through. */
export interface HttpProxy {
  hostname: string;
  port: number;
  /** The `Proxy-Authorization` header's value when the URL held credentials. */
  authorization?: string;
  /** The proxy's URL without credentials, for keys and messages. */
  display: string;
}

export interface ProxyEnv {
  [name: string]: string | undefined;
}

export class ProxyConfigError extends Error {
  override readonly name = "ProxyConfigError";
}

/** Parses a proxy URL from the environment; `name` is the variable it came from (for the error message). */
export function parseProxy(value: string, name: string): HttpProxy {
  // Messages never repeat a password: the user information is masked.
  const shown = JSON.stringify(value.replace(/\/\/[^/@]*@/, "//***@"));
  let url: URL;
  try {
    // `host:port` without a scheme is common in the wild and means plain HTTP.
    url = new URL(/^[a-z][a-z0-9+.-]*:\/\//i.test(value) ? value : `http://${value}`);
  } catch {
    throw new ProxyConfigError(`${name} is not a URL: ${shown}`);
  }
  if (url.protocol !== "http:") {
    throw new ProxyConfigError(`${name}: only http:// proxies are supported (got ${url.protocol}//)`);
  }
  const hostname = url.hostname.replace(/^\[(.*)\]$/, "$1");
  if (hostname === "") throw new ProxyConfigError(`${name} has no host: ${shown}`);
  const port = url.port === "" ? 80 : Number(url.port);
  const proxy: HttpProxy = { hostname, port, display: `http://${url.host}` };
  if (url.username !== "" || url.password !== "") {
    let user: string;
    let password: string;
    try {
      user = decodeURIComponent(url.username);
      password = decodeURIComponent(url.password);
    } catch {
      throw new ProxyConfigError(`${name}: the user name or password is not valid percent-encoding`);
    }
    proxy.authorization = `Basic ${Buffer.from(`${user}:${password}`, "utf8").toString("base64")}`;
  }
  return proxy;
}

/** The first of `names` set to a non-empty value in `env`, with its name. */
function pick(env: ProxyEnv, names: readonly string[]): [string, string] | undefined {
  for (const name of names) {
    const value = env[name]?.trim();
    if (value !== undefined && value !== "") return [name, value];
  }
  return undefined;
}

/**
 * Whether `no_proxy` exempts `hostname` (and `port`): `*` exempts everything; an entry matches the host itself and
 * every name under it (`example.com` and `.example.com` both match `s3.example.com`); an entry with `:port` only
 * that port; IP addresses match exactly (IPv6 with or without brackets). CIDR ranges are not understood.
 */
export function bypassed(noProxy: string, hostname: string, port: number): boolean {
  const host = hostname.toLowerCase().replace(/^\[(.*)\]$/, "$1");
  for (const raw of noProxy.split(/[\s,]+/)) {
    let entry = raw.trim().toLowerCase();
    if (entry === "") continue;
    if (entry === "*") return true;
    let entryPort: number | undefined;
    const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(entry);
    if (bracketed !== null) {
      entry = bracketed[1] as string;
      if (bracketed[2] !== undefined) entryPort = Number(bracketed[2]);
    } else {
      const withPort = /^([^:]+):(\d+)$/.exec(entry); // one colon: host:port (an IPv6 address has several)
      if (withPort !== null) {
        entry = withPort[1] as string;
        entryPort = Number(withPort[2]);
      }
    }
    if (entryPort !== undefined && entryPort !== port) continue;
    entry = entry.replace(/^\*?\./, "");
    if (host === entry || host.endsWith(`.${entry}`)) return true;
  }
  return false;
}

/** The variables naming the proxy for https:// and for http:// endpoints, in the order they are read. */
const PROXY_NAMES = { https: ["https_proxy", "HTTPS_PROXY"], http: ["http_proxy", "HTTP_PROXY"] } as const;

/** Whether a proxy is set for https:// (or http://) endpoints at all, whatever no_proxy says. */
export function proxySet(secure: boolean, env: ProxyEnv): boolean {
  return pick(env, PROXY_NAMES[secure ? "https" : "http"]) !== undefined;
}

/** Chooses the proxy for endpoints of one scheme on one host, from the environment; undefined: go direct. */
export function proxyFor(secure: boolean, hostname: string, port: number, env: ProxyEnv): HttpProxy | undefined {
  const chosen = pick(env, PROXY_NAMES[secure ? "https" : "http"]);
  if (chosen === undefined) return undefined;
  const noProxy = pick(env, ["no_proxy", "NO_PROXY"]);
  if (noProxy !== undefined && bypassed(noProxy[1], hostname, port)) return undefined;
  return parseProxy(chosen[1], chosen[0]);
}

/** Checks the proxy variables that are set (at start-up, so a bad value is an error then, not one per object). */
export function checkProxyEnv(env: ProxyEnv): void {
  for (const names of Object.values(PROXY_NAMES)) {
    const chosen = pick(env, names);
    if (chosen !== undefined) parseProxy(chosen[1], chosen[0]);
  }
}
