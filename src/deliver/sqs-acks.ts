// SQS acknowledgement ownership for fluent-plugin-sqs 2.x/3.x records (in_sqs with `delete_message false`).
//
// in_sqs either never deletes a message or deletes it before anything is done with it. With the record's
// `queue_url` and `receipt_handle`, the filter deletes the message itself once the record's output is written (or
// once a permanent failure has been dead-lettered), and keeps it invisible while it is being worked on. A message
// whose object kept failing transiently is never deleted: SQS delivers it again and its redrive policy bounds that.
// Deletes are batched (DeleteMessageBatch, up to 10 per call); SQS errors are logged and retried, never fatal.
// https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_DeleteMessageBatch.html
// https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_ChangeMessageVisibility.html
import { createHash } from "node:crypto";
import type { SQSClient } from "@aws-sdk/client-sqs";
import { isInvalid, parseQueueUrl, refusalMessage } from "../model/names.js";
import type { SqsMessage } from "../model/refs.js";
import { errorName } from "../shared/aws-errors.js";
import type { Logger } from "../shared/log.js";

export interface SqsAckerOptions {
  log: Logger;
  /** The client for a queue URL. */
  clientFor(queueUrl: string): Promise<SQSClient>;
  /** Keep messages in flight invisible for this many seconds, extended before it runs out; undefined: don't. */
  visibilityTimeout?: number;
  /** How long deletes wait to fill a batch, in ms. */
  batchWindowMs?: number;
  /** Attempts for a delete that fails transiently. */
  maxAttempts?: number;
  /**
   * The origin the operator configured for SQS (AWS_ENDPOINT_URL_SQS): a record's queue_url elsewhere must be an
   * SQS queue URL on an AWS SQS host, or its message is not acknowledged (names.ts, parseQueueUrl).
   */
  trustedOrigins?: readonly string[];
  /** Queue URLs the operator gave (the `sqs` command's --queue-url): used as they are. */
  trustedUrls?: readonly string[];
}

interface PendingDelete {
  message: SqsMessage;
  attempts: number;
}

/**
 * Receipt handles remembered to never delete twice (oldest forgotten first). A duplicate is a chunk fluentd sends
 * again, within minutes; handles run to several hundred bytes, so 10,000 of them hold about 5 MB in a process that
 * lives for weeks (100,000 held up to 50 MB). Deleting twice is harmless anyway, just a wasted call.
 */
const REMEMBERED = 10_000;
/** Queue URLs found good, at most (a process reads a handful of queues; a stream of odd URLs must not grow it). */
const QUEUES_REMEMBERED = 100;
/** Refused queue URLs logged one by one; after that, one log line per this many. */
const REFUSALS_LOGGED = 20;
const REFUSALS_EVERY = 1000;
const PERMANENT = new Set(["ReceiptHandleIsInvalid", "InvalidParameterValue", "QueueDoesNotExist", "AccessDenied"]);

export class SqsAcker {
  private readonly queues = new Map<string, PendingDelete[]>();
  private readonly timers = new Map<string, NodeJS.Timeout>();
  private readonly extending = new Map<string, NodeJS.Timeout>();
  private readonly deleted = new Set<string>();
  private readonly inFlight = new Set<Promise<void>>();
  /** Deletes done and given up, for the summary. */
  deletes = 0;
  failures = 0;
  handedBack = 0;
  /** Messages whose queue_url was refused: not acknowledged (they come back, and are read again). */
  refused = 0;
  /**
   * Messages refused already (a digest of queue URL and receipt handle, oldest forgotten first): a message is asked
   * about when it is tracked and again when it is settled, and is counted and logged once. Digests, because both
   * strings come from the record and may be long; as many as REMEMBERED, at 44 bytes each.
   */
  private readonly refusedMessages = new Set<string>();
  private readonly goodQueues = new Set<string>();
  /** False once the output is lost (stdout's reader is gone): from then on nothing is deleted, everything handed back. */
  private deleting = true;

  constructor(private readonly options: SqsAckerOptions) {
    for (const url of options.trustedUrls ?? []) this.goodQueues.add(url);
  }

  /** Whether requests may go to the message's queue URL; a refusal is counted and logged (quoted, cut short). */
  private usable(message: SqsMessage): boolean {
    const url = message.queueUrl;
    if (this.goodQueues.has(url)) return true;
    const parsed = parseQueueUrl(url, this.options.trustedOrigins);
    if (!isInvalid(parsed)) {
      if (this.goodQueues.size < QUEUES_REMEMBERED) this.goodQueues.add(url);
      return true;
    }
    const digest = createHash("sha256").update(url).update("\0").update(message.receiptHandle).digest("base64");
    if (this.refusedMessages.has(digest)) return false;
    this.refusedMessages.add(digest);
    if (this.refusedMessages.size > REMEMBERED) {
      const oldest = this.refusedMessages.values().next().value;
      if (oldest !== undefined) this.refusedMessages.delete(oldest);
    }
    this.refused++;
    if (this.refused <= REFUSALS_LOGGED || this.refused % REFUSALS_EVERY === 0) {
      this.options.log.error("SQS message not acknowledged: its queue_url is refused", {
        reason: refusalMessage("queue_url", url, parsed),
        refused: this.refused,
      });
    }
    return false;
  }

  /** Work on the message's record has started: keep it invisible while it lasts. */
  track(message: SqsMessage): void {
    if (!this.usable(message)) return;
    const timeout = this.options.visibilityTimeout;
    if (timeout === undefined || this.extending.has(message.receiptHandle)) return;
    // Extend at half the timeout: the message was received some time before the record reached us.
    const every = Math.max(1000, (timeout * 1000) / 2);
    const extend = (): void => {
      const timer = setTimeout(() => {
        this.run(this.changeVisibility(message, timeout).then((keep) => (keep ? extend() : undefined)));
      }, every);
      timer.unref();
      this.extending.set(message.receiptHandle, timer);
    };
    extend();
  }

  /** The record is finished: stop extending, and delete the message if `remove`. */
  settle(message: SqsMessage, remove: boolean): void {
    clearTimeout(this.extending.get(message.receiptHandle));
    this.extending.delete(message.receiptHandle);
    if (!remove || !this.usable(message)) return;
    if (!this.deleting) {
      this.handBack(message);
      return;
    }
    if (this.deleted.has(message.receiptHandle)) return; // never twice
    this.remember(message.receiptHandle);
    this.enqueue({ message, attempts: 0 });
  }

  /**
   * Gives the message back to the queue now (visibility 0) instead of when its timeout runs out: at shutdown, for a
   * message received but not finished, so that another consumer takes it at once.
   */
  handBack(message: SqsMessage): void {
    clearTimeout(this.extending.get(message.receiptHandle));
    this.extending.delete(message.receiptHandle);
    if (this.deleted.has(message.receiptHandle) || !this.usable(message)) return;
    this.run(
      (async () => {
        try {
          await this.sendVisibility(message, 0);
          this.handedBack++;
        } catch (error) {
          // It comes back anyway when its visibility timeout runs out.
          this.options.log.warn("SQS hand-back failed", { messageId: message.messageId, error: errorName(error) });
        }
      })(),
    );
  }

  /**
   * The output these messages went to is lost (stdout's reader died: what it had not read of the pipe is gone with
   * it). Deletes not sent yet become hand-backs, and so does every message settled from now on: another consumer
   * delivers them again, a duplicate at worst. Deletes already sent cannot be taken back: that is the at-most-once
   * window of stdout (docs/output.md).
   */
  handBackInsteadOfDeleting(): void {
    this.deleting = false;
    for (const timer of this.timers.values()) clearTimeout(timer);
    this.timers.clear();
    const pending = [...this.queues.values()].flat();
    this.queues.clear();
    for (const { message } of pending) {
      this.deleted.delete(message.receiptHandle);
      this.handBack(message);
    }
  }

  /** Sends every pending delete and waits for the calls, for at most `withinMs`. */
  async close(withinMs: number): Promise<void> {
    for (const timer of this.extending.values()) clearTimeout(timer);
    this.extending.clear();
    const deadline = Date.now() + withinMs;
    while ((this.queues.size > 0 || this.inFlight.size > 0) && Date.now() < deadline) {
      for (const queueUrl of [...this.queues.keys()]) this.flush(queueUrl);
      await Promise.race([
        Promise.all(this.inFlight),
        new Promise((r) => setTimeout(r, Math.max(0, deadline - Date.now()))),
      ]);
    }
    const left = [...this.queues.values()].reduce((n, q) => n + q.length, 0);
    if (left > 0) this.options.log.warn("SQS deletes not sent before exit", { messages: left });
  }

  private remember(handle: string): void {
    this.deleted.add(handle);
    if (this.deleted.size > REMEMBERED) {
      const oldest = this.deleted.values().next().value;
      if (oldest !== undefined) this.deleted.delete(oldest);
    }
  }

  private enqueue(entry: PendingDelete): void {
    const url = entry.message.queueUrl;
    const queue = this.queues.get(url) ?? [];
    queue.push(entry);
    this.queues.set(url, queue);
    if (queue.length >= 10) this.flush(url);
    else if (!this.timers.has(url)) {
      const delay =
        entry.attempts === 0 ? (this.options.batchWindowMs ?? 100) : Math.min(30_000, 250 * 2 ** entry.attempts);
      const timer = setTimeout(() => this.flush(url), delay);
      this.timers.set(url, timer);
    }
  }

  private flush(queueUrl: string): void {
    clearTimeout(this.timers.get(queueUrl));
    this.timers.delete(queueUrl);
    const queue = this.queues.get(queueUrl);
    if (queue === undefined) return;
    this.queues.delete(queueUrl);
    for (let i = 0; i < queue.length; i += 10) this.run(this.deleteBatch(queueUrl, queue.slice(i, i + 10)));
  }

  private run(work: Promise<void>): void {
    this.inFlight.add(work);
    void work.finally(() => this.inFlight.delete(work));
  }

  private retryOrDrop(entry: PendingDelete, why: string, permanent: boolean): void {
    const { log } = this.options;
    if (!this.deleting) {
      this.deleted.delete(entry.message.receiptHandle);
      this.handBack(entry.message);
      return;
    }
    const context = { queueUrl: entry.message.queueUrl, messageId: entry.message.messageId, error: why };
    if (permanent || entry.attempts + 1 >= (this.options.maxAttempts ?? 8)) {
      this.failures++;
      log.warn("SQS delete failed; the message will be delivered again", context);
      return;
    }
    log.info("SQS delete failed; retrying", { ...context, attempt: entry.attempts + 1 });
    this.enqueue({ message: entry.message, attempts: entry.attempts + 1 });
  }

  private async deleteBatch(queueUrl: string, batch: PendingDelete[]): Promise<void> {
    try {
      const client = await this.options.clientFor(queueUrl);
      const { DeleteMessageBatchCommand } = await import("@aws-sdk/client-sqs");
      const result = await client.send(
        new DeleteMessageBatchCommand({
          QueueUrl: queueUrl,
          Entries: batch.map((entry, i) => ({ Id: String(i), ReceiptHandle: entry.message.receiptHandle })),
        }),
      );
      this.deletes += result.Successful?.length ?? 0;
      for (const failed of result.Failed ?? []) {
        const entry = batch[Number(failed.Id)];
        if (entry === undefined) continue;
        const code = failed.Code ?? "Unknown";
        this.retryOrDrop(entry, `${code}: ${failed.Message ?? ""}`, failed.SenderFault === true || PERMANENT.has(code));
      }
    } catch (error) {
      const name = errorName(error);
      for (const entry of batch) this.retryOrDrop(entry, `${name}: ${String(error)}`, PERMANENT.has(name));
    }
  }

  /** One ChangeMessageVisibility call (SQS's client loaded on first use). */
  private async sendVisibility(message: SqsMessage, timeout: number): Promise<void> {
    const client = await this.options.clientFor(message.queueUrl);
    const { ChangeMessageVisibilityCommand } = await import("@aws-sdk/client-sqs");
    await client.send(
      new ChangeMessageVisibilityCommand({
        QueueUrl: message.queueUrl,
        ReceiptHandle: message.receiptHandle,
        VisibilityTimeout: timeout,
      }),
    );
  }

  /** Returns whether to keep extending. */
  private async changeVisibility(message: SqsMessage, timeout: number): Promise<boolean> {
    if (!this.extending.has(message.receiptHandle)) return false;
    try {
      await this.sendVisibility(message, timeout);
      this.options.log.debug("SQS visibility extended", { messageId: message.messageId, seconds: timeout });
      return this.extending.has(message.receiptHandle);
    } catch (error) {
      const name = errorName(error);
      const keep = !PERMANENT.has(name) && name !== "MessageNotInflight";
      this.options.log.warn("SQS visibility change failed", {
        messageId: message.messageId,
        error: name,
        retrying: keep,
      });
      return keep && this.extending.has(message.receiptHandle);
    }
  }
}
