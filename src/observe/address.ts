// --metrics-listen's address, parsed on its own so that the command line can check it without loading the listener.
import { isIP } from "node:net";

export interface ListenAddress {
  host: string;
  port: number;
}

/** A host name as DNS writes one: labels of letters, digits and hyphens. */
const HOST_NAME =
  /^(?=.{1,253}$)[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?(\.[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)*$/;

/** `[HOST:]PORT`: HOST an IPv4 address, an IPv6 address in brackets or a host name; 127.0.0.1 when absent. */
export function parseListenAddress(value: string): ListenAddress | string {
  const match = /^(?:(\[[^\]]*\]|[^:[\]]*):)?(\d{1,5})$/.exec(value);
  const usage = "expected [HOST:]PORT, such as 9464, 127.0.0.1:9464, [::1]:9464 or 0.0.0.0:9464";
  if (match === null) return usage;
  const port = Number(match[2]);
  if (port > 65_535) return `${usage}: the port is at most 65535`;
  const written = match[1];
  if (written === undefined) return { host: "127.0.0.1", port };
  const host = written.startsWith("[") ? written.slice(1, -1) : written;
  if (written.startsWith("[") ? isIP(host) !== 6 : isIP(host) !== 4 && !HOST_NAME.test(host)) {
    return `${usage}: ${JSON.stringify(written)} is not an IP address or a host name`;
  }
  return { host, port };
}
