// The proxy variables (HTTPS_PROXY, HTTP_PROXY, NO_PROXY and their lowercase forms), read and checked without loading
// a network library: the start-up check that makes a bad variable a configuration error (exit 2) costs a few URL
// parses, and undici (http-handler.ts) is loaded only when the first request needs it.

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

/** What undici's EnvHttpProxyAgent is given: each proxy as a URL with a scheme, and NO_PROXY as written. */
export interface ProxySettings {
  httpsProxy?: string;
  httpProxy?: string;
  noProxy?: string;
}

/**
 * The proxies `env` names, checked as undici's ProxyAgent will read them (a URL, a scheme it speaks, credentials it
 * can percent-decode), or undefined when no proxy variable is set. Throws a TypeError naming the variable, never the
 * password, for a value undici would refuse.
 */
export function proxySettings(env: Record<string, string | undefined>): ProxySettings | undefined {
  if (proxyVariable(env) === undefined) return undefined;
  const pick = (lower: string, upper: string): string | undefined => {
    const value = env[lower] || env[upper] || undefined;
    // `host:port` without a scheme is common in the wild and means plain HTTP.
    return value === undefined || /^[a-z][a-z0-9+.-]*:\/\//i.test(value) ? value : `http://${value}`;
  };
  const httpsProxy = pick("https_proxy", "HTTPS_PROXY");
  const httpProxy = pick("http_proxy", "HTTP_PROXY");
  const noProxy = env.no_proxy || env.NO_PROXY || undefined;
  if (httpsProxy !== undefined) checkProxyUrl("https_proxy", httpsProxy);
  if (httpProxy !== undefined) checkProxyUrl("http_proxy", httpProxy);
  return {
    ...(httpsProxy === undefined ? {} : { httpsProxy }),
    ...(httpProxy === undefined ? {} : { httpProxy }),
    ...(noProxy === undefined ? {} : { noProxy }),
  };
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
