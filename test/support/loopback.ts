// An HTTP server on 127.0.0.1 (port 0) for the test stand-ins, which tracks its sockets so that close() ends
// everything at once, kept-alive and stalled connections included.
import { createServer, type RequestListener, type Server } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import type { AddressInfo, Socket } from "node:net";

export interface Loopback {
  server: Server;
  port: number;
  /** `http://127.0.0.1:PORT` (https:// with `tls`) */
  endpoint: string;
  /** Stops listening and destroys every open socket. */
  close(): Promise<void>;
}

/** `tls`: key and certificate to serve HTTPS with (test/support/tls.ts has the test certificate). */
export async function listenLoopback(handler: RequestListener, tls?: { key: Buffer; cert: Buffer }): Promise<Loopback> {
  const server: Server = tls === undefined ? createServer(handler) : createHttpsServer(tls, handler);
  const sockets = new Set<Socket>();
  server.on("connection", (socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
  });
  // A client that gives up mid-response makes the socket error; that is the client's business, not a test failure.
  server.on("clientError", (_err, socket) => socket.destroy());
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      server.off("error", reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  return {
    server,
    port,
    endpoint: `${tls === undefined ? "http" : "https"}://127.0.0.1:${port}`,
    async close() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const socket of sockets) socket.destroy();
      await closed;
    },
  };
}
