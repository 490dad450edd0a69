// A loopback server for the Forward protocol's server side (what fluentd's in_forward does), for tests without fluentd:
// it decodes each PackedForward message (the entries' EventTime as seconds and nanoseconds) and acknowledges its chunk
// when the test says so.
// https://github.com/fluent/fluentd/wiki/Forward-Protocol-Specification-v1
import { createServer, type Server, type Socket } from "node:net";
import { createServer as createTlsServer } from "node:tls";
import { Decoder, decodeMultiStream, Encoder, ExtensionCodec } from "@msgpack/msgpack";

export interface Received {
  connection: number;
  tag: string;
  entries: [{ seconds: number; nanos: number }, Record<string, unknown>][];
  option: { size?: number; chunk?: string };
}

const codec = new ExtensionCodec();
codec.register({
  type: 0,
  encode: () => null,
  decode: (data: Uint8Array) => {
    const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
    return { seconds: view.getUint32(0), nanos: view.getUint32(4) };
  },
});

/**
 * A Forward server: decodes each message, and acks it when `ack(message)` says so (default: always). With `tls`
 * (a key and certificate), in_forward's `<transport tls>`.
 */
export async function forwardServer(
  ack: (message: Received) => boolean = () => true,
  tls?: { key: Buffer; cert: Buffer },
) {
  const received: Received[] = [];
  const sockets = new Set<Socket>();
  let connections = 0;
  const serve = (socket: Socket): void => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    socket.on("error", () => {});
    const connection = ++connections;
    void (async () => {
      try {
        for await (const value of decodeMultiStream(socket)) {
          const [tag, entries, option] = value as [string, Uint8Array, Received["option"]];
          const decoder = new Decoder({ extensionCodec: codec });
          const list = [...decoder.decodeMulti(entries)] as Received["entries"];
          const message = { connection, tag, entries: list, option };
          received.push(message);
          if (ack(message)) socket.write(new Encoder().encode({ ack: option.chunk }));
        }
      } catch {
        // the client went away mid-message
      }
    })();
  };
  const server: Server = tls === undefined ? createServer(serve) : createTlsServer(tls, serve);
  if (tls !== undefined) server.on("tlsClientError", () => {}); // a client that does not trust us hangs up
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  return {
    port,
    received,
    get connections() {
      return connections;
    },
    dropConnections() {
      for (const socket of sockets) socket.destroy();
    },
    async close() {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
