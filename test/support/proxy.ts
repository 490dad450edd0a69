// A loopback HTTP proxy for tests: CONNECT tunnels (as for https:// endpoints) and absolute-form requests (as for
// http:// endpoints, forwarded in origin form, one per connection). It records what it was asked, and can
// refuse tunnels with a status of the test's choosing.
import net from "node:net";

export interface LoopbackProxy {
  url: string;
  port: number;
  /** CONNECT targets (`host:port`), one per tunnel opened. */
  tunnels: string[];
  /** Request lines of absolute-form requests forwarded. */
  forwarded: string[];
  /** The Proxy-Authorization values seen (CONNECT and forwarded requests alike). */
  authorizations: string[];
  /** When set, CONNECT is answered with this status line (e.g. "407 Proxy Authentication Required"). */
  refuse: string | undefined;
  close(): Promise<void>;
}

export async function startProxy(): Promise<LoopbackProxy> {
  const sockets = new Set<net.Socket>();
  const track = (socket: net.Socket): void => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    socket.on("error", () => {});
  };
  const state: LoopbackProxy = {
    url: "",
    port: 0,
    tunnels: [],
    forwarded: [],
    authorizations: [],
    refuse: undefined,
    close: async () => {},
  };
  const server = net.createServer((client) => {
    track(client);
    let pending = Buffer.alloc(0);
    const onData = (data: Buffer): void => {
      pending = Buffer.concat([pending, data]);
      const end = pending.indexOf("\r\n\r\n");
      if (end === -1) return;
      const head = pending.subarray(0, end).toString("latin1");
      const rest = pending.subarray(end + 4);
      const [requestLine = "", ...headerLines] = head.split("\r\n");
      const auth = headerLines.find((line) => /^proxy-authorization:/i.test(line));
      if (auth !== undefined) state.authorizations.push(auth.replace(/^[^:]+:\s*/, ""));
      const [method = "", target = ""] = requestLine.split(" ");
      if (method === "CONNECT") {
        client.removeListener("data", onData);
        if (state.refuse !== undefined) {
          client.end(`HTTP/1.1 ${state.refuse}\r\nContent-Length: 0\r\n\r\n`);
          return;
        }
        state.tunnels.push(target);
        const [host = "", port = ""] = target.replace(/^\[(.*)\](:\d+)$/, "$1$2").split(/:(?=\d+$)/);
        const upstream = net.connect({ host, port: Number(port) }, () => {
          client.write("HTTP/1.1 200 Connection established\r\n\r\n");
          if (rest.length > 0) upstream.write(rest);
          client.pipe(upstream);
          upstream.pipe(client);
        });
        track(upstream);
        upstream.on("close", () => client.destroy());
        client.on("close", () => upstream.destroy());
        return;
      }
      // Absolute form: sent on in origin form without the proxy's header; one request per connection (the origin is
      // asked to close, and so is the client's connection after the answer).
      client.removeListener("data", onData);
      const url = new URL(target);
      state.forwarded.push(requestLine);
      const lines = headerLines.filter((line) => !/^(proxy-authorization|connection):/i.test(line));
      const upstream = net.connect({ host: url.hostname, port: Number(url.port || 80) }, () => {
        upstream.write(
          `${method} ${url.pathname}${url.search} HTTP/1.1\r\n${lines.join("\r\n")}\r\nConnection: close\r\n\r\n`,
        );
      });
      track(upstream);
      upstream.pipe(client);
    };
    client.on("data", onData);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  state.port = (server.address() as net.AddressInfo).port;
  state.url = `http://127.0.0.1:${state.port}`;
  state.close = () =>
    new Promise<void>((resolve) => {
      for (const socket of sockets) socket.destroy();
      server.close(() => resolve());
    });
  return state;
}
