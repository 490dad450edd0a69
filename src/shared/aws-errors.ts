// What a failed AWS SDK call (or the Node socket or file call beneath it) says about itself, read in one place: its
// name, HTTP status, fault and code; whether trying again may help; and the fields a log line shows of it. Every
// module that handles an SDK or Node error reads it through here, so that one error is named, classified and logged
// the same way everywhere. Classification goes by name, status and code only, never by message text (which the
// service words as it likes, and which is the one part of an error whoever runs an S3-compatible endpoint writes freely).
// https://docs.aws.amazon.com/AmazonS3/latest/API/ErrorResponses.html
// https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/CommonErrors.html
import type { LogContext } from "./log.js";

/**
 * The fields an SDK v3 service exception carries (`ServiceException`: `name`, `$fault`, `$metadata`, `$response`), the
 * `code` of a Node system error (`ECONNRESET`, `ENOENT`) or of undici's, and `Region`, which S3 puts in the error
 * document of a request signed for the wrong region (s3-get.ts). All `unknown`: an error is read, never trusted.
 */
export interface SdkErrorShape {
  name?: unknown;
  code?: unknown;
  $fault?: unknown;
  $metadata?: { httpStatusCode?: unknown };
  $response?: { headers?: Record<string, string | undefined> };
  Region?: unknown;
}

/** Any thrown value as an SdkErrorShape to read (a thrown string or number has none of its fields). */
export function sdkShape(error: unknown): SdkErrorShape {
  return (typeof error === "object" && error !== null ? error : {}) as SdkErrorShape;
}

/** The SDK's name of the error (`NoSuchKey`, `ThrottlingException`), `Error` when it has none of its own. */
export function sdkName(error: unknown): string {
  const { name } = sdkShape(error);
  return typeof name === "string" ? name : "Error";
}

/** The HTTP status of the response the error came from; undefined when there was none (a network or local error). */
export function errorStatus(error: unknown): number | undefined {
  const status = sdkShape(error).$metadata?.httpStatusCode;
  return typeof status === "number" ? status : undefined;
}

/** A Node or undici error's `code` (`ECONNREFUSED`, `UND_ERR_SOCKET`), when it is a string. */
export function errorCode(error: unknown): string | undefined {
  const { code } = sdkShape(error);
  return typeof code === "string" ? code : undefined;
}

/** Whose fault the SDK says it was: `client` (the request) or `server` (the service). */
export function errorFault(error: unknown): string | undefined {
  const fault = sdkShape(error).$fault;
  return typeof fault === "string" ? fault : undefined;
}

/**
 * The one name by which callers test and report an error: the SDK's name (`NoSuchBucket`, `AccessDenied`), or, for a
 * Node error whose name is the generic `Error`, its code (`ENOENT`, `ECONNREFUSED`); a thrown non-object is `Error`.
 *
 * One function serves the listers (file errors, tested by code: `ENOENT`, `EACCES`) and the SQS acker (SDK errors,
 * tested against SQS's names): each of those reads the same as before. An SDK exception always has a name of its own,
 * which no code replaces; a Node error reaching the acker through the SDK (a reset connection) used to be logged as
 * `Error` and is now logged by its code, and no SQS name the acker tests is a code. A thrown non-object (a bug, never
 * a file or SDK call) is `Error` rather than its text, so nothing of a thrown value's text reaches a log line here.
 */
export function errorName(error: unknown): string {
  const name = sdkShape(error).name;
  const code = errorCode(error);
  if (code !== undefined && (name === "Error" || name === undefined)) return code;
  return typeof name === "string" ? name : "Error";
}

/**
 * Errors of the connection rather than of the request: worth trying again. Anything else without an HTTP status
 * (a TypeError from a bad endpoint URL, missing credentials) is a configuration problem and fails at once.
 *
 * `ENOTFOUND` is not here: the resolver answered that the host name does not exist, which a retry does not change (a
 * made-up region once kept an object retrying for --retry-for). `EAI_AGAIN` is: the resolver did not answer, as in an
 * outage that passes.
 */
const NETWORK_NAMES = new Set(["TimeoutError", "RequestTimeout", "RequestTimeoutException", "NetworkingError"]);
const NETWORK_CODES = new Set([
  "ECONNRESET",
  "ECONNREFUSED",
  "ECONNABORTED",
  "ETIMEDOUT",
  "EPIPE",
  "EAI_AGAIN",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ENETDOWN",
  "EPROTO",
  "ERR_STREAM_PREMATURE_CLOSE",
  // undici's (http-handler.ts): https://undici.nodejs.org/#/docs/api/Errors
  "UND_ERR_CONNECT_TIMEOUT",
  "UND_ERR_HEADERS_TIMEOUT",
  "UND_ERR_BODY_TIMEOUT",
  "UND_ERR_SOCKET",
  "UND_ERR_CLOSED",
  // A proxy that refused the tunnel (its status is in the message, which is not parsed): retried like a network
  // failure, since a proxy's 407 or 503 often passes once it has its credentials or its upstream back.
  "UND_ERR_ABORTED",
]);

/**
 * A name under which a service says "slow down": S3's `SlowDown`, and every `…Throttl…` name of the SDK's own list
 * (`ThrottlingException`, `RequestThrottled`, `RequestThrottledException`…).
 */
export function isThrottlingName(name: string): boolean {
  return name === "SlowDown" || /Throttl/i.test(name);
}

/** What a failed S3 (or other AWS) request means for the object or listing it was about. */
export interface ErrorClass {
  /** `NotFound` and `AccessDenied` are answers about the thing asked for; `Failed`, anything else. */
  kind: "NotFound" | "AccessDenied" | "Failed";
  /** The same request may succeed later (5xx, 408, throttling, a network failure). */
  transient: boolean;
  /** The service asked to slow down (503 SlowDown, 429, throttling). */
  throttled: boolean;
}

/** Classifies an error thrown by an S3 client (GetObject, ListObjectsV2) or by reading its response body. */
export function classifyError(error: unknown): ErrorClass {
  const name = sdkName(error);
  const status = errorStatus(error);
  if (status === 404 || name === "NoSuchKey" || name === "NoSuchBucket" || name === "NotFound") {
    return { kind: "NotFound", transient: false, throttled: false };
  }
  if (status === 403 || name === "AccessDenied" || name === "InvalidObjectState") {
    return { kind: "AccessDenied", transient: false, throttled: false };
  }
  const throttled = status === 503 || status === 429 || isThrottlingName(name);
  const network = status === undefined && (NETWORK_NAMES.has(name) || NETWORK_CODES.has(String(errorCode(error))));
  const transient = throttled || network || (status !== undefined && (status >= 500 || status === 408));
  return { kind: "Failed", transient, throttled };
}

/**
 * A whole call (SendMessageBatch) that no retry will mend: no credentials anywhere in the chain (it has retried what
 * can be retried, such as instance metadata), or a fault of the request (the queue, our rights, its parameters),
 * throttling aside.
 */
export function isPermanentCallFailure(error: unknown): boolean {
  const name = sdkShape(error).name;
  if (name === "CredentialsProviderError") return true;
  if (typeof name === "string" && isThrottlingName(name)) return false;
  return errorFault(error) === "client";
}

/**
 * The most of an error's message a log line takes. AWS's messages are a sentence; an S3-compatible endpoint or a proxy
 * can put a whole page in one, and a log line is for a person, not a copy of it.
 */
export const ERROR_MESSAGE_MAX = 1024;

/**
 * The fields a log line gives of a failed call: the SDK's name (`error`), HTTP status, fault and Node code when there
 * are, and the message as text, cut at ERROR_MESSAGE_MAX. Never the error object itself, whose `$response` holds the
 * raw response (headers included) and whose other fields are whatever the thrower put there.
 */
export function describeError(error: unknown): LogContext {
  const status = errorStatus(error);
  const fault = errorFault(error);
  const code = errorCode(error);
  const message = error instanceof Error ? error.message : String(error);
  return {
    error: sdkName(error),
    ...(status === undefined ? {} : { status }),
    ...(fault === undefined ? {} : { fault }),
    ...(code === undefined ? {} : { code }),
    message: message.length > ERROR_MESSAGE_MAX ? `${message.slice(0, ERROR_MESSAGE_MAX)}…` : message,
  };
}
