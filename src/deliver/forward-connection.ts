// One connection to fluentd's in_forward: TCP or TLS (node:net, node:tls), the `<security>` shared-key handshake
// (HELO, PING, PONG with SHA-512 digests from node:crypto), PackedForward messages written with the socket's own
// back-pressure, and the acks read back. What is sent, resent and counted is forward.ts's; this file only speaks the
// protocol on one socket, and says what happened through `ForwardConnectionEvents`.
// https://github.com/fluent/fluentd/wiki/Forward-Protocol-Specification-v1
//
// Why our own client and not @fluent-org/logger (which this replaced): its last release is years old, and using it
// for pre-encoded messages meant reaching into its internal modules (`build/src/socket.js`, `auth.js`), its private
// `socket` field to drop a connection, and `timeout: -1` to keep an idle one; and its `writable()` said yes while its
// socket buffered without bound. The protocol's client side is short (one handshake, one response shape), Node's own
// modules do the TLS and the hashing, and @msgpack/msgpack (a dependency already) the encoding.
import { createHash, randomBytes } from "node:crypto";
import { connect as connectTcp, isIP, type Socket } from "node:net";
import { connect as connectTls } from "node:tls";
import { msgpack } from "../shared/msgpack.js";

export interface ForwardConnectionOptions {
  host: string;
  port: number;
  tls: boolean;
  /** Certificate authorities trusted over TLS; undefined: Node's defaults (forward.ts, trustedCas). */
  ca?: (string | Buffer)[];
  /** in_forward's `<security> shared_key`: the handshake runs only when it is set. */
  sharedKey?: string;
  /** Our name in the handshake (in_forward checks it against `<client>` entries when it has any). */
  hostname: string;
}

export interface ForwardConnectionEvents {
  /** Connected, and (with a shared key) authenticated: messages may be written. */
  established(): void;
  /** fluentd acknowledged the message with this `chunk` option. */
  ack(chunk: string): void;
  /** The socket took everything written so far: `write` may be called again after it returned false. */
  drain(): void;
  /** Something failed (the connection closes right after; `closed` follows). */
  failed(error: Error): void;
  /** The connection is gone, whatever the reason. Called once. */
  closed(): void;
}

/** A failure of the protocol itself (an unexpected answer, a handshake refused), named for the log. */
export class ForwardProtocolError extends Error {
  override readonly name = "ForwardProtocolError";
}

/**
 * Bounds on what the server may send: acks (`{"ack": chunk}`) and the handshake's arrays are a few hundred bytes.
 * Anything bigger is not in_forward talking, and must not make this process buffer it.
 */
const SERVER_LIMITS = { maxStrLength: 4096, maxBinLength: 4096, maxArrayLength: 16, maxMapLength: 16 };

/** How long an `end()`ed connection may take to close politely before it is destroyed. */
const END_GRACE_MS = 1000;

type State = "connecting" | "helo" | "pong" | "established" | "closed";

const text = (value: unknown): string | undefined =>
  value instanceof Uint8Array ? Buffer.from(value).toString("utf8") : typeof value === "string" ? value : undefined;

const sha512Hex = (...parts: (string | Uint8Array)[]): string => {
  const hash = createHash("sha512");
  for (const part of parts) hash.update(part);
  return hash.digest("hex");
};

export class ForwardConnection {
  private readonly socket: Socket;
  private state: State = "connecting";
  /** The salt of our PING and the server's nonce from its HELO, for checking its PONG. */
  private salt = "";
  private nonce: Uint8Array = new Uint8Array(0);

  constructor(
    private readonly options: ForwardConnectionOptions,
    private readonly events: ForwardConnectionEvents,
  ) {
    const { host, port } = options;
    this.socket = options.tls
      ? connectTls({
          host,
          port,
          ...(isIP(host) === 0 ? { servername: host } : {}),
          ...(options.ca === undefined ? {} : { ca: options.ca }),
        })
      : connectTcp({ host, port });
    this.socket.setNoDelay(true);
    this.socket.setKeepAlive(true, 30_000);
    this.socket.once(options.tls ? "secureConnect" : "connect", () => this.connected());
    this.socket.on("drain", () => {
      if (this.state === "established") this.events.drain();
    });
    this.socket.on("error", (error) => this.events.failed(error));
    this.socket.once("close", () => {
      this.state = "closed";
      this.events.closed();
    });
    void this.read();
  }

  /**
   * Writes one encoded message. Returns the socket's own answer: false once its buffer is above its high-water mark,
   * and then nothing more should be written until `drain`.
   */
  write(packet: Uint8Array): boolean {
    if (this.state !== "established") return false;
    return this.socket.write(packet);
  }

  /** Ends politely (what was written is still sent); destroyed if the peer does not close within END_GRACE_MS. */
  end(): void {
    if (this.state === "closed") return;
    this.socket.end();
    setTimeout(() => this.socket.destroy(), END_GRACE_MS).unref();
  }

  /** Drops the connection at once. */
  destroy(): void {
    this.socket.destroy();
  }

  private connected(): void {
    if (this.options.sharedKey === undefined) {
      this.state = "established";
      this.events.established();
    } else {
      this.state = "helo"; // in_forward speaks first
    }
  }

  private fail(error: Error): void {
    this.events.failed(error);
    this.socket.destroy();
  }

  /** Reads the server's messages: the handshake's, then acks. Strings come as bytes (the HELO's nonce is binary). */
  private async read(): Promise<void> {
    const decoder = new (msgpack().Decoder)({ rawStrings: true, ...SERVER_LIMITS });
    try {
      for await (const message of decoder.decodeStream(this.socket)) {
        if (this.state === "closed") return;
        this.received(message);
      }
    } catch (error) {
      // A socket error is reported by its 'error' event; this is what the server sent that is not msgpack.
      if (this.state !== "closed" && !this.socket.destroyed) {
        this.fail(new ForwardProtocolError(`fluentd sent what is not msgpack (${(error as Error).name})`));
      }
    }
  }

  private received(message: unknown): void {
    if (this.state === "established") {
      const ack = typeof message === "object" && message !== null ? (message as { ack?: unknown }).ack : undefined;
      const chunk = text(ack);
      if (chunk !== undefined) this.events.ack(chunk);
      return; // anything else (a keepalive answer) means nothing here
    }
    const kind = Array.isArray(message) ? text(message[0]) : undefined;
    if (this.state === "helo" && kind === "HELO") this.helo((message as unknown[])[1]);
    else if (this.state === "pong" && kind === "PONG") this.pong(message as unknown[]);
    else this.fail(new ForwardProtocolError(`unexpected ${kind ?? "message"} in the handshake`));
  }

  /** `["HELO", {nonce, auth, keepalive}]` → `["PING", hostname, salt, digest, username, password digest]`. */
  private helo(options: unknown): void {
    const nonce = typeof options === "object" && options !== null ? (options as { nonce?: unknown }).nonce : undefined;
    if (!(nonce instanceof Uint8Array)) {
      this.fail(new ForwardProtocolError("HELO without a nonce"));
      return;
    }
    this.nonce = nonce;
    this.salt = randomBytes(16).toString("hex");
    const { hostname, sharedKey = "" } = this.options;
    const digest = sha512Hex(this.salt, hostname, nonce, sharedKey);
    // No user authentication (`<user>` in `<security>`) is offered: username and password digest are empty.
    this.state = "pong";
    this.socket.write(pingPacket(hostname, this.salt, digest));
  }

  /** `["PONG", ok, reason, server hostname, digest]`: the server proves it knows the key too. */
  private pong(message: unknown[]): void {
    const [, ok, reason, serverHostname, digest] = message;
    const expected = sha512Hex(this.salt, text(serverHostname) ?? "", this.nonce, this.options.sharedKey ?? "");
    if (ok !== true) {
      this.fail(new ForwardProtocolError(`fluentd refused the handshake: ${text(reason) ?? "no reason"}`));
    } else if (text(digest) !== expected) {
      this.fail(new ForwardProtocolError("fluentd's PONG does not prove the shared key"));
    } else {
      this.state = "established";
      this.events.established();
    }
  }
}

/** The PING, encoded as in_forward reads it (msgpack strings). */
function pingPacket(hostname: string, salt: string, digest: string): Uint8Array {
  return msgpack().encode(["PING", hostname, salt, digest, "", ""]);
}
