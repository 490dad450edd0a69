// The `sqs` command's input: receive loops that long-poll one SQS queue and hand each message to the Filter as the
// record fluent-plugin-sqs 3.x would have made of it, so every notification shape, dead letter and acknowledgement
// works exactly as under fluentd's in_sqs (and a dead letter's `input` looks the same either way).
//
// Policy: a receive that fails is retried with backoff for ever and logged every time. A queue that does not exist
// (yet), denied access or throttling must never become a silent stop, as it does for fluent-plugin-sqs 3.0.0, whose
// poller ends for good after one failed receive.
// https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_ReceiveMessage.html
import type { Message, SQSClient } from "@aws-sdk/client-sqs";
import type { SqsMessage } from "../model/refs.js";
import { describeError } from "../shared/aws-errors.js";
import type { Logger } from "../shared/log.js";
import { sleep } from "../shared/retry.js";
import type { Line } from "./lines.js";

export interface SqsSourceOptions {
  queueUrl: string;
  client(): Promise<SQSClient>;
  log: Logger;
  /** Receive loops polling at once. */
  receivers: number;
  /** Messages received and not yet finished, at most: receivers wait for room beyond it. */
  maxInFlight: number;
  /** Long polling: how long one ReceiveMessage waits for a message (SQS allows 0-20 s). */
  waitTimeSeconds: number;
  /** The visibility timeout asked for each received message; undefined: the queue's own. */
  visibilityTimeout?: number;
  /** Called for each message as it is received (before the Filter gets to it): keep it invisible. */
  onReceived(message: SqsMessage): void;
  /** Called for each message received but never handed to the Filter, at stop: give it back to the queue. */
  handBack(message: SqsMessage): void;
  /** Backoff after failed receives, in ms. */
  retryBaseMs?: number;
  retryMaxMs?: number;
}

/** Names under which SQS says the queue is missing or closed to us: logged as errors (someone has to act). */
const CONFIGURATION = new Set(["QueueDoesNotExist", "AWS.SimpleQueueService.NonExistentQueue", "AccessDenied"]);

export class SqsSource implements AsyncIterable<Line> {
  private readonly queue: Line[] = [];
  private readonly messages = new Map<Line, SqsMessage>();
  private inFlight = 0;
  private stopped = false;
  private readonly abort = new AbortController();
  private wakeConsumer: (() => void) | undefined;
  private roomWaiters: (() => void)[] = [];
  private number = 0;
  private loops: Promise<void>[] = [];
  /** Counts for the summary; `finished`: messages the Filter is done with (in flight: received less these). */
  readonly counts = { received: 0, receives: 0, receiveFailures: 0, handedBack: 0, finished: 0 };
  /** When a receive last succeeded, empty or not (ms since the epoch; 0: never), for /readyz. */
  lastReceiveAt = 0;

  constructor(private readonly options: SqsSourceOptions) {}

  /** Starts the receive loops. */
  start(): void {
    for (let i = 0; i < this.options.receivers; i++) this.loops.push(this.loop(i));
  }

  /**
   * Stops receiving (a long poll in progress is given up) and ends the iteration; messages received and not yet
   * taken by the Filter are handed back.
   */
  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    this.abort.abort();
    for (const wake of this.roomWaiters.splice(0)) wake();
    this.wakeConsumer?.();
    for (const line of this.queue.splice(0)) this.leftOver(this.messages.get(line) as SqsMessage);
    this.messages.clear();
  }

  private leftOver(message: SqsMessage): void {
    this.counts.handedBack++;
    this.inFlight--;
    this.options.handBack(message);
  }

  /** Resolves when every receive loop has ended. */
  async ended(): Promise<void> {
    await Promise.all(this.loops);
  }

  /** A message is finished (deleted, left to redelivery or handed back): room for another. */
  done(): void {
    this.inFlight--;
    this.counts.finished++;
    const wake = this.roomWaiters.shift();
    wake?.();
  }

  private async room(): Promise<void> {
    while (this.inFlight >= this.options.maxInFlight && !this.stopped) {
      await new Promise<void>((resolve) => this.roomWaiters.push(resolve));
    }
  }

  private async loop(index: number): Promise<void> {
    const { log, queueUrl } = this.options;
    const { ReceiveMessageCommand } = await import("@aws-sdk/client-sqs");
    let failures = 0;
    while (!this.stopped) {
      await this.room();
      if (this.stopped) break;
      // Never ask for more than there is room for: a message received waits, invisible, until the Filter takes it.
      const room = Math.max(1, Math.min(10, this.options.maxInFlight - this.inFlight));
      this.inFlight += room;
      let messages: Message[] = [];
      try {
        const client = await this.options.client();
        this.counts.receives++;
        const output = await client.send(
          new ReceiveMessageCommand({
            QueueUrl: queueUrl,
            MaxNumberOfMessages: room,
            WaitTimeSeconds: this.options.waitTimeSeconds,
            ...(this.options.visibilityTimeout === undefined
              ? {}
              : { VisibilityTimeout: this.options.visibilityTimeout }),
            MessageSystemAttributeNames: ["ApproximateReceiveCount"],
          }),
          { abortSignal: this.abort.signal },
        );
        messages = output.Messages ?? [];
        this.lastReceiveAt = Date.now();
        if (failures > 0) log.info("SQS receive works again", { queueUrl, receiver: index, after: failures });
        failures = 0;
      } catch (error) {
        this.inFlight -= room;
        this.wakeRoom();
        if (this.stopped) break;
        failures++;
        this.counts.receiveFailures++;
        const base = this.options.retryBaseMs ?? 1000;
        const cap = Math.min(this.options.retryMaxMs ?? 60_000, base * 2 ** Math.min(failures - 1, 16));
        const delay = Math.round(cap * (0.5 + Math.random() / 2));
        const described = describeError(error);
        const context = { queueUrl, receiver: index, failures, retryInMs: delay, ...described };
        if (CONFIGURATION.has(String(described.error))) log.error("SQS receive failed", context);
        else log.warn("SQS receive failed", context);
        await sleep(delay, this.abort.signal);
        continue;
      }
      this.inFlight -= room - messages.length;
      this.wakeRoom();
      for (const message of messages) this.accept(message);
    }
  }

  private wakeRoom(): void {
    while (this.roomWaiters.length > 0 && this.inFlight < this.options.maxInFlight) this.roomWaiters.shift()?.();
  }

  private accept(message: Message): void {
    const { queueUrl, log } = this.options;
    if (message.ReceiptHandle === undefined) {
      this.inFlight--;
      return;
    }
    this.counts.received++;
    const sqs: SqsMessage = { queueUrl, receiptHandle: message.ReceiptHandle };
    if (message.MessageId !== undefined) sqs.messageId = message.MessageId;
    if (this.stopped) {
      this.leftOver(sqs); // a poll answered just as the stop came
      return;
    }
    this.options.onReceived(sqs);
    const receives = message.Attributes?.ApproximateReceiveCount;
    if (receives !== undefined && receives !== "1") {
      log.info("message received again", { messageId: message.MessageId, receives: Number(receives) });
    }
    // The record in_sqs 3.x writes for a message (fluent-plugin-sqs's field names), read by records.ts like any other.
    const text = JSON.stringify({
      body: message.Body ?? "",
      receipt_handle: message.ReceiptHandle,
      message_id: message.MessageId ?? "",
      md5_of_body: message.MD5OfBody ?? "",
      queue_url: queueUrl,
      sender_id: "",
    });
    const line: Line = { kind: "line", number: ++this.number, text };
    this.messages.set(line, sqs);
    this.queue.push(line);
    this.wakeConsumer?.();
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<Line> {
    for (;;) {
      if (this.stopped) return;
      const line = this.queue.shift();
      if (line !== undefined) {
        this.messages.delete(line);
        yield line;
        continue;
      }
      await new Promise<void>((resolve) => {
        this.wakeConsumer = resolve;
      });
      this.wakeConsumer = undefined;
    }
  }
}
