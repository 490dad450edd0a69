// `import … --enqueue QUEUE_URL`: the files an import lists become notification messages on an SQS queue instead of
// being read here, so every filter behind its fluentd (or every `sqs` consumer) shares the backfill with the live
// path's guarantees: a message is deleted only once its events are out, one that is not comes back after its
// visibility timeout, and the queue's redrive policy bounds the retries.
//
// A message body is CloudTrail's own notification, `{"s3Bucket":"…","s3ObjectKey":["…",…]}`, with up to
// --keys-per-message keys, cut to the queue's MaximumMessageSize. Messages go ten to a SendMessageBatch whose bodies
// together stay within the same limit (SQS's rule for batches), a few calls at once. An entry SQS fails on its side
// (SenderFault false) is resent; a whole call that fails transiently is retried for --retry-for; anything else
// fails for good: the import stops listing, finishes what is in flight and exits 1. A file goes into the checkpoint
// only once SQS has taken the message that names it.
// https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_SendMessageBatch.html
import { createHash } from "node:crypto";
import type { SendMessageBatchRequestEntry, SQSClient } from "@aws-sdk/client-sqs";
import type { Checkpoint } from "../listing/checkpoint.js";
import type { ProgressCounts } from "../listing/progress.js";
import type { RunCounts } from "../model/counts.js";
import { type BucketName, isInvalid, parseObjectKey, refusalMessage } from "../model/names.js";
import { describeError, isPermanentCallFailure, isThrottlingName, sdkName } from "../shared/aws-errors.js";
import type { Logger } from "../shared/log.js";
import { type RetryPolicy, sleep } from "../shared/retry.js";
import type { ListedObject } from "./importer.js";

/** SQS's limit for one body and for the bodies of one batch together, unless the queue sets a lower one. */
export const SQS_MAX_BYTES = 262_144;
const BATCH_ENTRIES = 10;

export interface EnqueueOptions {
  queueUrl: string;
  bucket: BucketName;
  client: () => Promise<SQSClient>;
  retry: RetryPolicy;
  log: Logger;
  /** The progress report's counts: listed as they are added, objects once enqueued (`messages` is set too). */
  counts: ProgressCounts;
  checkpoint?: Checkpoint;
  keysPerMessage: number;
  /** SendMessageBatch calls at once. */
  senders: number;
  /** Aborts the calls in flight (a second signal): what they carried is not enqueued as far as we know. */
  signal: AbortSignal;
  /** Sending failed for good: stop listing. */
  onFailure: () => void;
}

export interface EnqueueSummary {
  messages: number;
  objects: number;
  /** Stored bytes of the files enqueued. */
  bytes: number;
  sendRequests: number;
  /** Entries sent again after SQS failed them on its side. */
  resent: number;
  /** Keys no filter would accept (logged one by one), not enqueued. */
  invalidKeys: number;
  /**
   * Files whose message failed for good, or that fit in no message (each logged): not enqueued, not in the
   * checkpoint. The command exits 1 when there are any.
   */
  failedObjects: number;
  /** Files whose message was in flight when the run was cut short. */
  abandonedObjects: number;
  /** Files listed but not sent because the run stopped (a signal, or a failure for good) before their message went. */
  unsentObjects: number;
  /** The queue's MaximumMessageSize as used. */
  maxMessageBytes: number;
}

interface Message {
  body: string;
  objects: ListedObject[];
}

/**
 * A key as it appears inside the body: JSON-escaped, and with U+FFFE/U+FFFF escaped too (SQS refuses those
 * characters in a body; JSON readers restore them).
 */
function keyJson(key: string): string {
  return JSON.stringify(key).replace(/[\ufffe\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16)}`);
}

/** What the Enqueuer counts itself; messages, objects and bytes are the progress counts' (`EnqueueOptions.counts`). */
type OwnCounts = Omit<EnqueueSummary, "messages" | "objects" | "bytes">;

export class Enqueuer {
  private readonly summary: OwnCounts;
  private keys: { object: ListedObject; json: string }[] = [];
  private keyBytes = 0;
  private batch: Message[] = [];
  private batchBytes = 0;
  private readonly sending = new Set<Promise<void>>();
  private readonly emptyBodyBytes: number;
  private failure: Error | undefined;
  private stopped = false;

  constructor(private readonly options: EnqueueOptions) {
    this.summary = {
      sendRequests: 0,
      resent: 0,
      invalidKeys: 0,
      failedObjects: 0,
      abandonedObjects: 0,
      unsentObjects: 0,
      maxMessageBytes: SQS_MAX_BYTES,
    };
    options.counts.messages = 0;
    this.emptyBodyBytes = Buffer.byteLength(this.body([]));
  }

  private get fifo(): boolean {
    return this.options.queueUrl.endsWith(".fifo");
  }

  private body(keys: readonly string[]): string {
    return `{"s3Bucket":${JSON.stringify(this.options.bucket)},"s3ObjectKey":[${keys.join(",")}]}`;
  }

  /**
   * Reads the queue's MaximumMessageSize, which can be lower than SQS's limit. A queue that does not exist, or that
   * we may not use, fails here, before anything is listed. Without sqs:GetQueueAttributes the limit is assumed.
   */
  async start(): Promise<void> {
    const { GetQueueAttributesCommand } = await import("@aws-sdk/client-sqs");
    const client = await this.options.client();
    try {
      const out = await client.send(
        new GetQueueAttributesCommand({ QueueUrl: this.options.queueUrl, AttributeNames: ["MaximumMessageSize"] }),
        { abortSignal: this.options.signal },
      );
      const size = Number(out.Attributes?.MaximumMessageSize);
      if (Number.isInteger(size) && size >= 1024) this.summary.maxMessageBytes = Math.min(size, SQS_MAX_BYTES);
    } catch (error) {
      const context = describeError(error);
      if (context.error === "QueueDoesNotExist" || context.error === "AWS.SimpleQueueService.NonExistentQueue") {
        throw new Error(`the queue ${this.options.queueUrl} does not exist (${String(context.error)})`);
      }
      if (context.error === "CredentialsProviderError") {
        throw new Error(`no AWS credentials to send to ${this.options.queueUrl}: ${String(context.message)}`);
      }
      this.options.log.info("queue attributes not read: assuming SQS's message size limit", {
        ...context,
        maxMessageBytes: SQS_MAX_BYTES,
      });
    }
  }

  /** The run is being interrupted: the calls in flight finish, nothing more is sent (the checkpoint has the rest). */
  stop(): void {
    this.stopped = true;
  }

  /** True once sending has failed for good. */
  get failed(): boolean {
    return this.failure !== undefined;
  }

  /** Takes one listed file; waits while as many calls as allowed are in flight. */
  async add(object: ListedObject): Promise<void> {
    const { counts, log } = this.options;
    counts.listed++;
    counts.bytesListed += object.size;
    if (this.failure !== undefined || this.stopped) {
      this.summary.unsentObjects++;
      return;
    }
    const key = parseObjectKey(object.key);
    if (isInvalid(key)) {
      this.summary.invalidKeys++;
      log.warn("skipped", { reason: refusalMessage("the key", object.key, key) });
      return;
    }
    const json = keyJson(key);
    const bytes = Buffer.byteLength(json);
    const max = this.summary.maxMessageBytes;
    if (this.emptyBodyBytes + bytes > max) {
      this.summary.failedObjects++;
      log.error("not enqueued", {
        reason: `a message naming this file alone is longer than the queue's ${max} bytes`,
        url: object.url,
      });
      return;
    }
    const comma = this.keys.length > 0 ? 1 : 0;
    if (this.keys.length >= this.options.keysPerMessage || this.emptyBodyBytes + this.keyBytes + comma + bytes > max) {
      this.closeMessage();
    }
    this.keyBytes += (this.keys.length > 0 ? 1 : 0) + bytes;
    this.keys.push({ object, json });
    while (this.sending.size >= this.options.senders) await Promise.race(this.sending);
  }

  /** The counts so far, for the summary: the files listed, and what was sent of them. */
  counts(): RunCounts {
    const { listed, bytesListed } = this.options.counts;
    const { maxMessageBytes, ...sent } = this.sent();
    return { counters: { listed, bytesListed, ...sent }, levels: { maxMessageBytes } };
  }

  /** Sends what is left and waits for every call; the summary then. */
  async finish(): Promise<EnqueueSummary & { failure?: Error }> {
    if (this.failure === undefined && !this.stopped) {
      this.closeMessage();
      this.dispatch();
    } else {
      this.summary.unsentObjects += this.keys.length + this.batch.reduce((n, m) => n + m.objects.length, 0);
    }
    while (this.sending.size > 0) await Promise.race(this.sending);
    return { ...this.sent(), ...(this.failure === undefined ? {} : { failure: this.failure }) };
  }

  /** What was sent so far and how the rest ended: the progress counts' part and the Enqueuer's own. */
  private sent(): EnqueueSummary {
    const { messages = 0, objects, bytes } = this.options.counts;
    return { messages, objects, bytes, ...this.summary };
  }

  private closeMessage(): void {
    if (this.keys.length === 0) return;
    const body = this.body(this.keys.map((k) => k.json));
    const message = { body, objects: this.keys.map((k) => k.object) };
    this.keys = [];
    this.keyBytes = 0;
    const bytes = Buffer.byteLength(body);
    if (this.batch.length >= BATCH_ENTRIES || this.batchBytes + bytes > this.summary.maxMessageBytes) this.dispatch();
    this.batch.push(message);
    this.batchBytes += bytes;
  }

  private dispatch(): void {
    if (this.batch.length === 0) return;
    const messages = this.batch;
    this.batch = [];
    this.batchBytes = 0;
    const call: Promise<void> = this.send(messages)
      .catch((error: unknown) => this.failedForGood(messages, describeError(error))) // a bug, not SQS: still counted
      .finally(() => this.sending.delete(call));
    this.sending.add(call);
  }

  private entry(message: Message, id: string): SendMessageBatchRequestEntry {
    const entry: SendMessageBatchRequestEntry = { Id: id, MessageBody: message.body };
    if (this.fifo) {
      // A FIFO queue drops a body it has seen in the last five minutes: a run resumed after a crash between the send
      // and the checkpoint does not enqueue its files twice. One group per message: no ordering holds filters back.
      const hash = createHash("sha256").update(message.body).digest("hex");
      entry.MessageDeduplicationId = hash;
      entry.MessageGroupId = hash;
    }
    return entry;
  }

  private enqueued(message: Message): void {
    const { counts, checkpoint } = this.options;
    counts.messages = (counts.messages ?? 0) + 1;
    for (const object of message.objects) {
      counts.objects++;
      counts.bytes += object.size;
      checkpoint?.add(object.url);
    }
  }

  private failedForGood(messages: Message[], context: Record<string, unknown>): void {
    const objects = messages.reduce((n, m) => n + m.objects.length, 0);
    if (this.options.signal.aborted) {
      this.summary.abandonedObjects += objects;
      return;
    }
    this.summary.failedObjects += objects;
    this.options.log.error("enqueue failed", {
      ...context,
      messages: messages.length,
      objects,
      first: messages[0]?.objects[0]?.url,
    });
    if (this.failure === undefined) {
      this.failure = new Error(`sending to ${this.options.queueUrl} failed: ${String(context.error)}`);
      this.options.onFailure();
    }
  }

  private async send(messages: Message[]): Promise<void> {
    const { SendMessageBatchCommand } = await import("@aws-sdk/client-sqs");
    const { retry, signal, queueUrl, log } = this.options;
    const client = await this.options.client();
    let pending = messages.map((message, i) => ({ message, id: String(i) }));
    let firstFailureAt = 0;
    for (let attempt = 1; ; attempt++) {
      await sleep(retry.pauseMs(), signal);
      let why: Record<string, unknown>;
      this.summary.sendRequests++;
      try {
        const out = await client.send(
          new SendMessageBatchCommand({ QueueUrl: queueUrl, Entries: pending.map((p) => this.entry(p.message, p.id)) }),
          { abortSignal: signal },
        );
        retry.succeeded();
        const done = new Set((out.Successful ?? []).map((s) => s.Id));
        const failed = new Map((out.Failed ?? []).map((f) => [f.Id, f]));
        const again: typeof pending = [];
        const refused: Message[] = [];
        for (const p of pending) {
          if (done.has(p.id)) this.enqueued(p.message);
          else if (failed.get(p.id)?.SenderFault === true) refused.push(p.message);
          else again.push(p); // failed on SQS's side, or not reported at all
        }
        const first = out.Failed?.[0];
        why = { error: first?.Code ?? "NotReported", message: first?.Message ?? "entry missing from the reply" };
        if (refused.length > 0) this.failedForGood(refused, { ...why, senderFault: true });
        if (again.length === 0) return;
        this.summary.resent += again.length;
        log.debug("resending entries SQS failed", { ...why, entries: again.length, attempt });
        pending = again;
      } catch (error) {
        why = describeError(error);
        if (signal.aborted || isPermanentCallFailure(error)) {
          this.failedForGood(
            pending.map((p) => p.message),
            why,
          );
          return;
        }
        if (isThrottlingName(sdkName(error))) retry.throttled();
        log.warn("SendMessageBatch failed, retrying", { ...why, attempt });
      }
      if (attempt === 1) firstFailureAt = retry.now();
      const delay = retry.delayAfter(attempt, firstFailureAt);
      if (delay === undefined || signal.aborted) {
        this.failedForGood(
          pending.map((p) => p.message),
          { ...why, attempts: attempt },
        );
        return;
      }
      await sleep(delay, signal);
    }
  }
}
