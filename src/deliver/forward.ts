// Delivers records to fluentd's in_forward over the Forward protocol, at least once: entries are batched into
// PackedForward messages, each with a `chunk` id; a message counts as delivered only when fluentd acknowledges its
// chunk (in_forward answers once the events are in its buffer), and every message not yet acknowledged is sent
// again on a new connection after a failure, a restart of fluentd, or a silence longer than the ack timeout.
// Duplicates are possible by design (they carry the same eventID: Elasticsearch's `id_key eventID` folds them).
// https://github.com/fluent/fluentd/wiki/Forward-Protocol-Specification-v1
//
// The connection (TCP or TLS, the shared-key handshake of `<security>`, acks read back) is forward-connection.ts, a
// small client of our own on node:net, node:tls, node:crypto and @msgpack/msgpack (that file says why not the fluent
// project's @fluent-org/logger, which this used before). Reconnecting, with backoff, is here: a wrong key fixed on
// fluentd's side must not need a restart here.
//
// Memory while fluentd is slow is bounded by the connection's own back-pressure: a message is handed to the socket
// only while its `write` says it can take more (else at its 'drain'), and producers wait (`ready()`) while messages
// wait for the socket, as they do while there is no connection at all. Messages handed to the socket stay until
// fluentd acknowledges them (to be sent again otherwise), and `highWaterBytes` bounds those.
import { randomBytes } from "node:crypto";
import { rootCertificates } from "node:tls";
import { ENTRY_HEADER_BYTES, writeEntryHeader } from "../format/format.js";
import type { Sink } from "../model/sink.js";
import { describeError } from "../shared/aws-errors.js";
import type { Logger } from "../shared/log.js";
import { msgpack } from "../shared/msgpack.js";
import { ForwardConnection } from "./forward-connection.js";

export interface ForwardTarget {
  host: string;
  port: number;
  /** TLS (in_forward's `<transport tls>`); the server's certificate is checked against Node's CAs and `ca`. */
  tls: boolean;
  /** Extra certificate authorities (PEM), trusted besides Node's own and NODE_EXTRA_CA_CERTS's (`trustedCas`). */
  ca?: Buffer;
  /** NODE_EXTRA_CA_CERTS's file (PEM), read by the caller: kept trusted when `ca` is given. */
  envCa?: Buffer;
  /** in_forward's `<security> shared_key`; the handshake runs only when it is set. */
  sharedKey?: string;
  /** Our name in the handshake (in_forward checks it against `<client>` entries when it has any). */
  hostname: string;
}

/**
 * Parses `forward://HOST:PORT` or `forwards://HOST:PORT` (TLS); IPv6 hosts in brackets. Port 24224 when absent.
 * Returns what is wrong as a string.
 */
export function parseForwardUrl(value: string): Pick<ForwardTarget, "host" | "port" | "tls"> | string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return "expected stdout, forward://HOST:PORT or forwards://HOST:PORT";
  }
  if (url.protocol !== "forward:" && url.protocol !== "forwards:") {
    return "expected stdout, forward://HOST:PORT or forwards://HOST:PORT";
  }
  if (url.hostname === "") return "the URL has no host";
  if ((url.pathname !== "" && url.pathname !== "/") || url.search !== "" || url.hash !== "" || url.username !== "") {
    return "expected only a host and a port";
  }
  const host = url.hostname.startsWith("[") ? url.hostname.slice(1, -1) : url.hostname;
  return { host, port: url.port === "" ? 24224 : Number(url.port), tls: url.protocol === "forwards:" };
}

/**
 * The certificate authorities a TLS connection to fluentd trusts with `--forward-ca`: Node's own (Mozilla's), those of
 * NODE_EXTRA_CA_CERTS, and the extra ones. Node's `ca` option *replaces* its defaults (and drops NODE_EXTRA_CA_CERTS),
 * so an operator adding a private CA would otherwise lose the public ones. Undefined without extra ones: Node's
 * defaults, NODE_EXTRA_CA_CERTS included, as for any connection.
 */
export function trustedCas(target: Pick<ForwardTarget, "ca" | "envCa">): (string | Buffer)[] | undefined {
  if (target.ca === undefined) return undefined;
  return [...rootCertificates, ...(target.envCa === undefined ? [] : [target.envCa]), target.ca];
}

export interface ForwardOptions {
  target: ForwardTarget;
  /** The tag of events (dead letters carry theirs in `_tag`). */
  tag: string;
  log: Logger;
  /** A message unacknowledged this long (or a connection not established this long) is given up and sent again. */
  ackTimeoutMs: number;
  /** Entries gathered into one message, in bytes (a bigger single entry is a message of its own). */
  chunkBytes?: number;
  /** Unacknowledged bytes above which producers wait (`ready()`). */
  highWaterBytes?: number;
  reconnectBaseMs?: number;
  reconnectMaxMs?: number;
}

/** One PackedForward message: kept from its first send until fluentd acknowledges its chunk. */
interface Message {
  seq: number;
  chunk: string;
  packet: Buffer;
  entries: number;
  /** The connection it was last sent on (0: not sent yet), and when. */
  sentOn: number;
  sentAt: number;
}

interface Batch {
  tag: string;
  buffer: Buffer;
  pos: number;
  entries: number;
}

export class ForwardSink implements Sink {
  private readonly batches = new Map<string, Batch>();
  /** Sealed batches (their bytes are final) waiting to become messages at the next flush. */
  private sealed: Batch[] = [];
  private flushScheduled = false;
  /** Every message not acknowledged yet, by chunk id, in sequence order. */
  private readonly unacked = new Map<string, Message>();
  private toSend: Message[] = [];
  private unackedBytes = 0;
  private seq = 0;
  private connection: ForwardConnection | undefined;
  /** False from a `write` the socket said it could not take more after, until its 'drain'. */
  private writable = false;
  /** Bytes of messages waiting for the socket (not handed to it yet). */
  private waitingBytes = 0;
  /** Bumped for each connection, so that events of a retired one are ignored. */
  private generation = 0;
  private established = false;
  private failures = 0;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private connectTimer: NodeJS.Timeout | undefined;
  private readonly ackTimer: NodeJS.Timeout;
  private closed = false;
  private abandoned = false;
  private waiters: { target: number; resolve: (delivered: boolean) => void }[] = [];
  private drainWaiters: (() => void)[] = [];
  private readonly chunkBytes: number;
  private readonly highWaterBytes: number;
  private readonly encoder = new (msgpack().Encoder)();

  bytesOut = 0;
  /** Messages and entries acknowledged, messages sent again, for the summary. */
  readonly counts = { messages: 0, entries: 0, resent: 0, connections: 0 };

  constructor(private readonly options: ForwardOptions) {
    this.chunkBytes = options.chunkBytes ?? 1 << 20;
    this.highWaterBytes = options.highWaterBytes ?? 16 * this.chunkBytes;
    this.ackTimer = setInterval(() => this.checkAcks(), Math.min(1000, options.ackTimeoutMs / 2));
    this.ackTimer.unref();
    this.connect();
  }

  reserve(length: number): { buffer: Buffer; at: number } {
    return this.append(this.options.tag, length, 1);
  }

  writeBytes(bytes: Buffer, entries = 0): void {
    const { buffer, at } = this.append(this.options.tag, bytes.length, entries);
    bytes.copy(buffer, at);
  }

  /** A record built in code: its `_tag` (else the events' tag) is the message's tag; its time is now. */
  writeJson(value: Record<string, unknown>): void {
    const { _tag, ...record } = value;
    const tag = typeof _tag === "string" ? _tag : this.options.tag;
    const map = this.encoder.encode(record);
    const { buffer, at } = this.append(tag, ENTRY_HEADER_BYTES + map.length, 1);
    writeEntryHeader(undefined, buffer, at);
    buffer.set(map, at + ENTRY_HEADER_BYTES);
  }

  private append(tag: string, length: number, entries: number): { buffer: Buffer; at: number } {
    if (this.closed || this.abandoned) return { buffer: Buffer.allocUnsafe(length), at: 0 }; // dropped
    this.bytesOut += length;
    let batch = this.batches.get(tag);
    if (batch !== undefined && batch.pos + length > batch.buffer.length) {
      this.sealed.push(batch);
      batch = undefined;
    }
    if (batch === undefined) {
      batch = { tag, buffer: Buffer.allocUnsafe(Math.max(this.chunkBytes, length)), pos: 0, entries: 0 };
      this.batches.set(tag, batch);
    }
    const at = batch.pos;
    batch.pos += length;
    batch.entries += entries;
    this.scheduleFlush();
    return { buffer: batch.buffer, at };
  }

  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(() => {
      this.flushScheduled = false;
      this.flush();
    });
  }

  /** Turns every batch into a PackedForward message and sends what can be sent. */
  private flush(): void {
    for (const batch of this.batches.values()) if (batch.pos > 0) this.sealed.push(batch);
    this.batches.clear();
    for (const batch of this.sealed) {
      const chunk = randomBytes(16).toString("base64");
      const entries = batch.buffer.subarray(0, batch.pos);
      // [tag, entries as bin, {size, chunk}]: `size` spares fluentd unpacking the entries to count them.
      const packet = Buffer.from(this.encoder.encode([batch.tag, entries, { size: batch.entries, chunk }]));
      const message: Message = { seq: ++this.seq, chunk, packet, entries: batch.entries, sentOn: 0, sentAt: 0 };
      this.unacked.set(chunk, message);
      this.unackedBytes += packet.length;
      this.toSend.push(message);
      this.waitingBytes += packet.length;
    }
    this.sealed = [];
    this.pump();
  }

  /** Hands messages to the socket while it takes them; the rest wait for its 'drain'. */
  private pump(): void {
    const connection = this.connection;
    if (!this.established || connection === undefined) return;
    while (this.toSend.length > 0 && this.writable) {
      const message = this.toSend.shift() as Message;
      this.waitingBytes -= message.packet.length;
      if (message.sentOn !== 0) this.counts.resent++;
      message.sentOn = this.generation;
      message.sentAt = Date.now();
      // A failed write closes the connection; the close sends every unacknowledged message again.
      this.writable = connection.write(message.packet);
    }
    this.releaseProducers();
  }

  /** Producers wait while messages wait for the socket, or while too much is unacknowledged. */
  private full(): boolean {
    return this.waitingBytes > this.chunkBytes || this.unackedBytes > this.highWaterBytes;
  }

  private releaseProducers(): void {
    if (!this.full()) for (const resolve of this.drainWaiters.splice(0)) resolve();
  }

  private acked(chunk: unknown): void {
    const message = typeof chunk === "string" ? this.unacked.get(chunk) : undefined;
    if (message === undefined) return; // a late ack of a message already acknowledged on another connection
    this.unacked.delete(message.chunk);
    this.unackedBytes -= message.packet.length;
    this.counts.messages++;
    this.counts.entries += message.entries;
    const oldest = this.unacked.values().next().value?.seq ?? Number.POSITIVE_INFINITY;
    while (this.waiters.length > 0 && (this.waiters[0] as { target: number }).target < oldest) {
      this.waiters.shift()?.resolve(true);
    }
    this.releaseProducers();
  }

  ready(): Promise<void> {
    if (this.abandoned || this.closed || !this.full()) return Promise.resolve();
    return new Promise((resolve) => this.drainWaiters.push(resolve));
  }

  written(): Promise<boolean> {
    if (this.abandoned) return Promise.resolve(false);
    this.flush();
    const target = this.seq;
    const oldest = this.unacked.values().next().value?.seq ?? Number.POSITIVE_INFINITY;
    if (target < oldest) return Promise.resolve(true);
    return new Promise((resolve) => {
      this.waiters.push({ target, resolve });
    });
  }

  async end(): Promise<void> {
    await this.written();
    this.close();
  }

  abandon(): void {
    this.abandoned = true;
    for (const waiter of this.waiters.splice(0)) waiter.resolve(false);
    for (const resolve of this.drainWaiters.splice(0)) resolve();
    this.close();
  }

  /** Messages not acknowledged (sent or not), for the summary. */
  get pending(): number {
    return this.unacked.size;
  }

  /** A connection to fluentd is established (/readyz). */
  get connected(): boolean {
    return this.established;
  }

  private close(): void {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.ackTimer);
    clearTimeout(this.reconnectTimer);
    clearTimeout(this.connectTimer);
    this.retire();
  }

  private connect(): void {
    if (this.closed) return;
    const { target, log } = this.options;
    const generation = ++this.generation;
    const current = (): boolean => generation === this.generation && !this.closed;
    const ca = trustedCas(target);
    const connection = new ForwardConnection(
      {
        host: target.host,
        port: target.port,
        tls: target.tls,
        ...(ca === undefined ? {} : { ca }),
        ...(target.sharedKey === undefined ? {} : { sharedKey: target.sharedKey }),
        hostname: target.hostname,
      },
      {
        established: () => {
          if (!current()) return;
          clearTimeout(this.connectTimer);
          this.established = true;
          this.writable = true;
          this.failures = 0;
          this.counts.connections++;
          log.info("connected to fluentd", {
            host: target.host,
            port: target.port,
            tls: target.tls,
            resending: this.toSend.filter((m) => m.sentOn !== 0).length,
          });
          this.pump();
        },
        drain: () => {
          if (!current()) return;
          this.writable = true;
          this.pump();
        },
        ack: (chunk) => {
          if (current()) this.acked(chunk);
        },
        failed: (error) => {
          if (current())
            log.warn("fluentd connection failed", { host: target.host, port: target.port, ...describeError(error) });
        },
        closed: () => {
          if (current()) this.lost("closed");
        },
      },
    );
    this.connection = connection;
    this.connectTimer = setTimeout(() => {
      if (current() && !this.established) this.lost(`not established within ${this.options.ackTimeoutMs} ms`);
    }, this.options.ackTimeoutMs);
    this.connectTimer.unref();
  }

  /** The connection is gone or given up: every unacknowledged message goes again on the next one. */
  private lost(why: string): void {
    this.retire();
    this.established = false;
    this.writable = false;
    this.toSend = [...this.unacked.values()];
    this.waitingBytes = this.unackedBytes;
    const delay = Math.round(
      Math.min(this.options.reconnectMaxMs ?? 30_000, (this.options.reconnectBaseMs ?? 250) * 2 ** this.failures) *
        (0.5 + Math.random() / 2),
    );
    this.failures = Math.min(this.failures + 1, 20);
    this.options.log.warn("fluentd connection lost; reconnecting", {
      why,
      inMs: delay,
      unacknowledged: this.unacked.size,
    });
    clearTimeout(this.reconnectTimer);
    this.reconnectTimer = setTimeout(() => this.connect(), delay);
  }

  /** Ends the current connection; its later events are ignored (the generation moves on). */
  private retire(): void {
    const connection = this.connection;
    this.connection = undefined;
    this.generation++;
    // Ended politely; one that does not answer (a half-open connection) is destroyed a second later.
    connection?.end();
  }

  /** A message sent and unanswered for the ack timeout: the connection is presumed dead. */
  private checkAcks(): void {
    if (!this.established) return;
    const now = Date.now();
    for (const message of this.unacked.values()) {
      if (message.sentOn === this.generation && now - message.sentAt > this.options.ackTimeoutMs) {
        this.lost(`no ack within ${this.options.ackTimeoutMs} ms`);
        return;
      }
    }
  }
}
