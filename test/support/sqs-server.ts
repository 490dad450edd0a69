// The smallest loopback SQS the filter's acknowledgements, the `sqs` command and `import --enqueue` need:
// SendMessage(Batch), ReceiveMessage (long polling, visibility timeouts, redelivery of what is not deleted in time), DeleteMessage(Batch)
// and ChangeMessageVisibility(Batch) over the AWS JSON 1.0 protocol the SDK v3 speaks, with calls recorded and
// failures on cue.
//
// Protocol (https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-json-api-responses.html):
// `POST /`, `X-Amz-Target: AmazonSQS.<Action>`, `Content-Type: application/x-amz-json-1.0`, JSON body in and out.
// Errors are `{"__type":"<namespace>#<Shape>","message":…}` plus the `x-amzn-query-error: <QueryCode>;<Sender|Receiver>`
// header; SQS is "awsQueryCompatible", so the SDK names the error after that header's code, and without the header
// some SDK versions fail to deserialize the error at all.
import { createHash, randomUUID } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import { performance } from "node:perf_hooks";
import { listenLoopback } from "./loopback.js";

export type SqsAction =
  | "SendMessage"
  | "SendMessageBatch"
  | "GetQueueAttributes"
  | "ReceiveMessage"
  | "DeleteMessage"
  | "DeleteMessageBatch"
  | "ChangeMessageVisibility"
  | "ChangeMessageVisibilityBatch";

export interface SqsCall {
  /** The X-Amz-Target without its `AmazonSQS.` prefix (any value, even one this server does not support). */
  action: string;
  /** The parsed JSON request body. */
  input: Record<string, unknown>;
  time: number;
  monotonic: number;
  /** The HTTP status answered. */
  status: number;
  /** The error name answered (the query-compatible code), if any. */
  error?: string;
}

/**
 * A whole-call failure: `"500"` is InternalFailure (HTTP 500), `"throttle"` is ThrottlingException (HTTP 400),
 * both of which the SDK retries; or any error spelled out.
 */
export type SqsFailure =
  | "500"
  | "throttle"
  | { status: number; type: string; queryCode?: string; message?: string; senderFault?: boolean };

export interface SqsTest {
  /** `http://127.0.0.1:PORT` — pass it as the SQSClient `endpoint` (or rely on the queue URL's host). */
  endpoint: string;
  /** `http://127.0.0.1:PORT/123456789012/q` */
  queueUrl: string;
  /** Every call, failed ones included, in arrival order. */
  calls: SqsCall[];
  /** Calls of one action that succeeded (HTTP 200). */
  succeeded(action: SqsAction): SqsCall[];
  /** Receipt handles deleted so far (single and batch entries that succeeded), in order. */
  deleted: string[];
  /** `[receiptHandle, visibilityTimeout]` changes so far, in order. */
  visibilityChanges: [string, number][];
  /** The next `n` calls (any action) fail as `failure` says. */
  failNext(n: number, failure?: SqsFailure): void;
  /**
   * Operations on this receipt handle fail: single calls with a 400 error, batch entries in `Failed`.
   * Default code ReceiptHandleIsInvalid; "MessageNotInflight" suits ChangeMessageVisibility.
   */
  rejectHandle(
    receiptHandle: string,
    code?: "ReceiptHandleIsInvalid" | "MessageNotInflight" | "InvalidParameterValue",
  ): void;
  /** Registers another queue on this server and returns its URL (default visibility timeout 30 s, as SQS's). */
  addQueue(name: string, options?: { visibilityTimeout?: number; maximumMessageSize?: number }): string;
  /**
   * The next `n` SendMessageBatch entries fail on their own (the call succeeds, they are in `Failed`): by default
   * with InternalError and SenderFault false, which a sender should resend.
   */
  failEntries(n: number, failure?: { code: string; senderFault: boolean }): void;
  /**
   * Runs before a delete (single or batch entry) removes `message`; the delete waits for it. A test checks there
   * what must already be true when a message goes, e.g. that its events were written.
   */
  beforeDelete(hook: ((message: QueuedMessage) => void | Promise<void>) | undefined): void;
  /**
   * Calls of `action` after the first `passing` wait (unanswered, unapplied) until the returned function is called;
   * `held()` says how many are waiting. For tests that must interrupt a client while calls are in flight.
   */
  holdAfter(action: SqsAction, passing: number): { release(): void; held(): number };
  /** Puts a message on a queue (the default one unless given), as SendMessage does; returns its MessageId. */
  send(body: string, queueUrl?: string): string;
  /** Messages on a queue not deleted yet, visible or not. */
  remaining(queueUrl?: string): QueuedMessage[];
  close(): Promise<void>;
}

const ACCOUNT = "123456789012";

export interface QueuedMessage {
  messageId: string;
  body: string;
  /** Times it was received. */
  receives: number;
  /** The receipt handle of its latest receive. */
  handle: string | undefined;
  /** Date.now() before which it is not handed out (in flight). */
  invisibleUntil: number;
}

/** SQS's size limit for one message body, and for all the bodies of one batch together (256 KiB). */
export const MAX_BODY_BYTES = 262_144;

interface Queue {
  visibilityTimeout: number;
  /** The queue's MaximumMessageSize attribute (SQS's limit unless set lower). */
  maximumMessageSize: number;
  messages: QueuedMessage[];
}

// Shape name (for __type), query-compatible code (for x-amzn-query-error) and status of the errors used here, as in
// the SDK's SQS model (InvalidParameterValue and MissingParameter are common errors the model does not name).
const ERRORS = {
  QueueDoesNotExist: {
    status: 400,
    type: "com.amazonaws.sqs#QueueDoesNotExist",
    queryCode: "AWS.SimpleQueueService.NonExistentQueue",
  },
  ReceiptHandleIsInvalid: {
    status: 404,
    type: "com.amazonaws.sqs#ReceiptHandleIsInvalid",
    queryCode: "ReceiptHandleIsInvalid",
  },
  MessageNotInflight: {
    status: 400,
    type: "com.amazonaws.sqs#MessageNotInflight",
    queryCode: "AWS.SimpleQueueService.MessageNotInflight",
  },
  InvalidParameterValue: {
    status: 400,
    type: "com.amazonaws.sqs#InvalidParameterValue",
    queryCode: "InvalidParameterValue",
  },
  MissingParameter: { status: 400, type: "com.amazonaws.sqs#MissingParameter", queryCode: "MissingParameter" },
  EmptyBatchRequest: {
    status: 400,
    type: "com.amazonaws.sqs#EmptyBatchRequest",
    queryCode: "AWS.SimpleQueueService.EmptyBatchRequest",
  },
  TooManyEntriesInBatchRequest: {
    status: 400,
    type: "com.amazonaws.sqs#TooManyEntriesInBatchRequest",
    queryCode: "AWS.SimpleQueueService.TooManyEntriesInBatchRequest",
  },
  BatchEntryIdsNotDistinct: {
    status: 400,
    type: "com.amazonaws.sqs#BatchEntryIdsNotDistinct",
    queryCode: "AWS.SimpleQueueService.BatchEntryIdsNotDistinct",
  },
  BatchRequestTooLong: {
    status: 400,
    type: "com.amazonaws.sqs#BatchRequestTooLong",
    queryCode: "AWS.SimpleQueueService.BatchRequestTooLong",
  },
  UnsupportedOperation: {
    status: 400,
    type: "com.amazonaws.sqs#UnsupportedOperation",
    queryCode: "AWS.SimpleQueueService.UnsupportedOperation",
  },
} as const;

class SqsError extends Error {
  constructor(
    readonly status: number,
    readonly type: string,
    readonly queryCode: string,
    message: string,
    readonly senderFault = true,
  ) {
    super(message);
  }
}

const clientError = (name: keyof typeof ERRORS, message: string) =>
  new SqsError(ERRORS[name].status, ERRORS[name].type, ERRORS[name].queryCode, message);

function failureError(failure: SqsFailure): SqsError {
  if (failure === "500") {
    return new SqsError(500, "com.amazon.coral.service#InternalFailure", "InternalFailure", "Internal failure.", false);
  }
  if (failure === "throttle") {
    return new SqsError(
      400,
      "com.amazon.coral.availability#ThrottlingException",
      "ThrottlingException",
      "Rate exceeded",
    );
  }
  const name = failure.type.split("#").pop() ?? failure.type;
  return new SqsError(
    failure.status,
    failure.type,
    failure.queryCode ?? name,
    failure.message ?? name,
    failure.senderFault ?? failure.status < 500,
  );
}

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

function requireString(input: Record<string, unknown>, field: string): string {
  const value = input[field];
  if (typeof value !== "string" || value === "") {
    throw clientError("MissingParameter", `The request must contain the parameter ${field}.`);
  }
  return value;
}

function requireVisibility(input: Record<string, unknown>): number {
  const value = input.VisibilityTimeout;
  if (typeof value !== "number" || !Number.isInteger(value) || value < 0 || value > 43_200) {
    throw clientError("InvalidParameterValue", `Value ${String(value)} for parameter VisibilityTimeout is invalid.`);
  }
  return value;
}

/** `tls`: serve HTTPS (as AWS does) with this key and certificate. */
export async function startSqs(tls?: { key: Buffer; cert: Buffer }): Promise<SqsTest> {
  const calls: SqsCall[] = [];
  const deleted: string[] = [];
  const visibilityChanges: [string, number][] = [];
  const failures: SqsFailure[] = [];
  const rejected = new Map<string, keyof typeof ERRORS>();
  const entryFailures: { code: string; senderFault: boolean }[] = [];
  const holds: { action: string; passing: number; waiting: (() => void)[]; released: boolean }[] = [];
  let deleteHook: ((message: QueuedMessage) => void | Promise<void>) | undefined;
  const queues = new Map<string, Queue>([
    [`/${ACCOUNT}/q`, { visibilityTimeout: 30, maximumMessageSize: MAX_BODY_BYTES, messages: [] }],
  ]);
  /** Receipt handle → the message it was given for (deleting by an old handle still deletes, as SQS mostly does). */
  const byHandle = new Map<string, { queue: Queue; message: QueuedMessage }>();
  let closed = false;
  let sequence = 0;

  function queueOf(url: string): Queue {
    let path: string;
    try {
      path = new URL(url).pathname;
    } catch {
      throw clientError("QueueDoesNotExist", "The specified queue does not exist.");
    }
    const queue = queues.get(path);
    if (queue === undefined) throw clientError("QueueDoesNotExist", "The specified queue does not exist.");
    return queue;
  }

  function checkQueue(input: Record<string, unknown>): Queue {
    return queueOf(requireString(input, "QueueUrl"));
  }

  function sendTo(queue: Queue, body: string): string {
    if (Buffer.byteLength(body) > queue.maximumMessageSize) {
      throw clientError(
        "InvalidParameterValue",
        `One or more parameters are invalid. Reason: Message must be shorter than ${queue.maximumMessageSize} bytes.`,
      );
    }
    const messageId = randomUUID();
    queue.messages.push({ messageId, body, receives: 0, handle: undefined, invisibleUntil: 0 });
    return messageId;
  }

  /** Hands out up to `max` visible messages, each invisible for `visibility` seconds from now. */
  function take(queue: Queue, max: number, visibility: number): Record<string, unknown>[] {
    const now = Date.now();
    const out: Record<string, unknown>[] = [];
    for (const message of queue.messages) {
      if (out.length >= max) break;
      if (message.invisibleUntil > now) continue;
      message.receives++;
      message.handle = `${message.messageId}#${message.receives}#${++sequence}`;
      message.invisibleUntil = now + visibility * 1000;
      byHandle.set(message.handle, { queue, message });
      out.push({
        MessageId: message.messageId,
        ReceiptHandle: message.handle,
        MD5OfBody: createHash("md5").update(message.body).digest("hex"),
        Body: message.body,
        Attributes: { ApproximateReceiveCount: String(message.receives) },
      });
    }
    return out;
  }

  /** `gone`: the client hung up (an aborted long poll takes nothing, so no message is lost to it). */
  async function receive(input: Record<string, unknown>, gone: () => boolean): Promise<Record<string, unknown>> {
    const queue = checkQueue(input);
    const max = input.MaxNumberOfMessages ?? 1;
    const wait = input.WaitTimeSeconds ?? 0;
    if (typeof max !== "number" || !Number.isInteger(max) || max < 1 || max > 10) {
      throw clientError("InvalidParameterValue", `Value ${String(max)} for parameter MaxNumberOfMessages is invalid.`);
    }
    if (typeof wait !== "number" || !Number.isInteger(wait) || wait < 0 || wait > 20) {
      throw clientError("InvalidParameterValue", `Value ${String(wait)} for parameter WaitTimeSeconds is invalid.`);
    }
    const visibility = input.VisibilityTimeout === undefined ? queue.visibilityTimeout : requireVisibility(input);
    const deadline = Date.now() + wait * 1000;
    for (;;) {
      if (gone()) return {};
      const messages = take(queue, max, visibility);
      if (messages.length > 0 || Date.now() >= deadline || closed)
        return messages.length > 0 ? { Messages: messages } : {};
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  function checkHandle(handle: string) {
    const code = rejected.get(handle);
    if (code !== undefined) throw clientError(code, `The receipt handle "${handle}" is not valid for this operation.`);
  }

  function batchEntries(input: Record<string, unknown>): Record<string, unknown>[] {
    const entries = input.Entries;
    if (!Array.isArray(entries) || entries.length === 0) {
      throw clientError("EmptyBatchRequest", "There should be at least one entry in the request.");
    }
    if (entries.length > 10) {
      throw clientError(
        "TooManyEntriesInBatchRequest",
        `Maximum number of entries per request are 10. You have sent ${entries.length}.`,
      );
    }
    const ids = new Set<unknown>();
    for (const entry of entries) {
      if (!isRecord(entry)) throw clientError("MissingParameter", "Each entry must be an object.");
      if (ids.has(entry.Id)) throw clientError("BatchEntryIdsNotDistinct", `Id ${String(entry.Id)} repeated.`);
      ids.add(entry.Id);
    }
    return entries as Record<string, unknown>[];
  }

  /** Runs `apply` on each entry; an SqsError from it becomes a Failed entry, as SQS reports partial failure. */
  function runBatch(entries: Record<string, unknown>[], apply: (entry: Record<string, unknown>) => void) {
    const Successful: { Id: string }[] = [];
    const Failed: { Id: string; SenderFault: boolean; Code: string; Message: string }[] = [];
    for (const entry of entries) {
      const Id = String(entry.Id);
      try {
        apply(entry);
        Successful.push({ Id });
      } catch (err) {
        if (!(err instanceof SqsError)) throw err;
        Failed.push({ Id, SenderFault: err.senderFault, Code: err.queryCode, Message: err.message });
      }
    }
    return { Successful, Failed };
  }

  /** SendMessageBatch: the whole call fails when the bodies together are too long; an entry fails on its own. */
  function sendBatch(queue: Queue, input: Record<string, unknown>) {
    const entries = batchEntries(input);
    const total = entries.reduce(
      (sum, e) => sum + (typeof e.MessageBody === "string" ? Buffer.byteLength(e.MessageBody) : 0),
      0,
    );
    if (total > MAX_BODY_BYTES) {
      throw clientError(
        "BatchRequestTooLong",
        `Batch requests cannot be longer than ${MAX_BODY_BYTES} bytes. You have sent ${total} bytes.`,
      );
    }
    const Successful: { Id: string; MessageId: string; MD5OfMessageBody: string }[] = [];
    const Failed: { Id: string; SenderFault: boolean; Code: string; Message: string }[] = [];
    for (const entry of entries) {
      const Id = String(entry.Id);
      const failure = entryFailures.shift();
      if (failure !== undefined) {
        Failed.push({ Id, SenderFault: failure.senderFault, Code: failure.code, Message: `${failure.code} (on cue)` });
        continue;
      }
      try {
        const body = requireString(entry, "MessageBody");
        const MessageId = sendTo(queue, body);
        Successful.push({ Id, MessageId, MD5OfMessageBody: createHash("md5").update(body).digest("hex") });
      } catch (err) {
        if (!(err instanceof SqsError)) throw err;
        Failed.push({ Id, SenderFault: err.senderFault, Code: err.queryCode, Message: err.message });
      }
    }
    return { Successful, Failed };
  }

  /** Deletes one message, after the test's hook (if any) has run. */
  async function deleteOne(entry: Record<string, unknown>): Promise<void> {
    const handle = requireString(entry, "ReceiptHandle");
    checkHandle(handle);
    const held = byHandle.get(handle);
    if (held !== undefined && deleteHook !== undefined) await deleteHook(held.message);
    deleted.push(handle);
    if (held !== undefined) {
      held.queue.messages = held.queue.messages.filter((m) => m !== held.message);
      byHandle.delete(handle);
    }
  }

  async function deleteBatch(entries: Record<string, unknown>[]) {
    const Successful: { Id: string }[] = [];
    const Failed: { Id: string; SenderFault: boolean; Code: string; Message: string }[] = [];
    for (const entry of entries) {
      const Id = String(entry.Id);
      try {
        await deleteOne(entry);
        Successful.push({ Id });
      } catch (err) {
        if (!(err instanceof SqsError)) throw err;
        Failed.push({ Id, SenderFault: err.senderFault, Code: err.queryCode, Message: err.message });
      }
    }
    return { Successful, Failed };
  }
  const changeOne = (entry: Record<string, unknown>) => {
    const handle = requireString(entry, "ReceiptHandle");
    const timeout = requireVisibility(entry);
    checkHandle(handle);
    const held = byHandle.get(handle);
    if (held !== undefined) {
      // SQS refuses a change for a message that is visible again (its timeout ran out), or received by another.
      if (held.message.handle !== handle || held.message.invisibleUntil <= Date.now()) {
        throw clientError("MessageNotInflight", "The message referred to is not in flight.");
      }
      held.message.invisibleUntil = Date.now() + timeout * 1000;
    }
    visibilityChanges.push([handle, timeout]);
  };

  async function dispatch(
    action: string,
    input: Record<string, unknown>,
    gone: () => boolean,
  ): Promise<Record<string, unknown>> {
    switch (action) {
      case "SendMessage":
        return { MessageId: sendTo(checkQueue(input), requireString(input, "MessageBody")) };
      case "ReceiveMessage":
        return receive(input, gone);
      case "GetQueueAttributes": {
        const queue = checkQueue(input);
        const names = Array.isArray(input.AttributeNames) ? input.AttributeNames : [];
        const all: Record<string, string> = {
          VisibilityTimeout: String(queue.visibilityTimeout),
          MaximumMessageSize: String(queue.maximumMessageSize),
          ApproximateNumberOfMessages: String(queue.messages.filter((m) => m.invisibleUntil <= Date.now()).length),
        };
        const wanted = names.includes("All")
          ? Object.keys(all)
          : names.filter((n): n is string => typeof n === "string");
        return { Attributes: Object.fromEntries(wanted.filter((n) => n in all).map((n) => [n, all[n]])) };
      }
      case "SendMessageBatch":
        return sendBatch(checkQueue(input), input);
      case "DeleteMessage":
        checkQueue(input);
        await deleteOne(input);
        return {};
      case "ChangeMessageVisibility":
        checkQueue(input);
        changeOne(input);
        return {};
      case "DeleteMessageBatch":
        checkQueue(input);
        return deleteBatch(batchEntries(input));
      case "ChangeMessageVisibilityBatch":
        checkQueue(input);
        return runBatch(batchEntries(input), changeOne);
      default:
        throw clientError("UnsupportedOperation", `${action} is not supported by this test server.`);
    }
  }

  function reply(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) {
    const text = JSON.stringify(body);
    res.writeHead(status, {
      "content-type": "application/x-amz-json-1.0",
      "content-length": Buffer.byteLength(text),
      "x-amzn-requestid": randomUUID(),
      ...headers,
    });
    res.end(text);
  }

  async function handle(req: IncomingMessage, res: ServerResponse) {
    let gone = false;
    res.on("close", () => {
      gone = true;
    });
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const target = req.headers["x-amz-target"];
    const action =
      typeof target === "string" && target.startsWith("AmazonSQS.")
        ? target.slice("AmazonSQS.".length)
        : String(target);
    let input: Record<string, unknown> = {};
    const call: SqsCall = { action, input, time: Date.now(), monotonic: performance.now(), status: 0 };
    calls.push(call);
    try {
      if (req.method !== "POST") throw clientError("UnsupportedOperation", `${req.method ?? ""} is not supported.`);
      const text = Buffer.concat(chunks).toString("utf8");
      const parsed: unknown = text === "" ? {} : JSON.parse(text);
      if (!isRecord(parsed)) throw clientError("MissingParameter", "The request body must be a JSON object.");
      input = parsed;
      call.input = parsed;
      const failure = failures.shift();
      if (failure !== undefined) throw failureError(failure);
      for (const hold of holds) {
        if (hold.action !== action || hold.released) continue;
        if (hold.passing > 0) hold.passing--;
        else await new Promise<void>((resolve) => hold.waiting.push(resolve));
      }
      const output = await dispatch(action, input, () => gone);
      call.status = 200;
      reply(res, 200, output);
    } catch (err) {
      const error =
        err instanceof SqsError
          ? err
          : err instanceof SyntaxError
            ? clientError("MissingParameter", `The request body is not JSON: ${err.message}`)
            : new SqsError(500, "com.amazon.coral.service#InternalFailure", "InternalFailure", String(err), false);
      call.status = error.status;
      call.error = error.queryCode;
      reply(
        res,
        error.status,
        { __type: error.type, message: error.message },
        { "x-amzn-query-error": `${error.queryCode};${error.senderFault ? "Sender" : "Receiver"}` },
      );
    }
  }

  const { endpoint, close } = await listenLoopback((req, res) => {
    handle(req, res).catch(() => res.destroy());
  }, tls);

  return {
    endpoint,
    queueUrl: `${endpoint}/${ACCOUNT}/q`,
    calls,
    succeeded: (action) => calls.filter((c) => c.action === action && c.status === 200),
    deleted,
    visibilityChanges,
    failNext(n, failure = "500") {
      for (let i = 0; i < n; i++) failures.push(failure);
    },
    rejectHandle(receiptHandle, code = "ReceiptHandleIsInvalid") {
      rejected.set(receiptHandle, code);
    },
    addQueue(name, options = {}) {
      const path = `/${ACCOUNT}/${name}`;
      if (!queues.has(path))
        queues.set(path, {
          visibilityTimeout: options.visibilityTimeout ?? 30,
          maximumMessageSize: options.maximumMessageSize ?? MAX_BODY_BYTES,
          messages: [],
        });
      return `${endpoint}${path}`;
    },
    failEntries(n, failure = { code: "InternalError", senderFault: false }) {
      for (let i = 0; i < n; i++) entryFailures.push(failure);
    },
    holdAfter(action, passing) {
      const hold = { action, passing, waiting: [] as (() => void)[], released: false };
      holds.push(hold);
      return {
        release() {
          hold.released = true;
          for (const resolve of hold.waiting.splice(0)) resolve();
        },
        held: () => hold.waiting.length,
      };
    },
    beforeDelete(hook) {
      deleteHook = hook;
    },
    send(body, queueUrl = `${endpoint}/${ACCOUNT}/q`) {
      return sendTo(queueOf(queueUrl), body);
    },
    remaining(queueUrl = `${endpoint}/${ACCOUNT}/q`) {
      return [...queueOf(queueUrl).messages];
    },
    async close() {
      closed = true;
      for (const hold of holds) {
        hold.released = true;
        for (const resolve of hold.waiting.splice(0)) resolve();
      }
      await close();
    },
  };
}
