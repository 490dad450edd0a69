// The one reading of SDK and Node errors (shared/aws-errors.ts): names, classification by name/status/code (never by
// message text), and the fields a log line shows.
import { describe, expect, it } from "vitest";
import {
  classifyError,
  describeError,
  ERROR_MESSAGE_MAX,
  type ErrorClass,
  errorCode,
  errorFault,
  errorName,
  errorStatus,
  isPermanentCallFailure,
  sdkName,
} from "../../src/shared/aws-errors.js";

/** An error as the SDK v3 throws it: a ServiceException with its name, fault and response metadata. */
function sdkError(name: string, status?: number, fault?: "client" | "server", message = "the service said so"): Error {
  const error = new Error(message);
  error.name = name;
  return Object.assign(error, {
    ...(fault === undefined ? {} : { $fault: fault }),
    $metadata: status === undefined ? {} : { httpStatusCode: status },
  });
}

/** An error as Node throws it from a socket or a file call: name `Error`, and a code. */
function nodeError(code: string): Error {
  return Object.assign(new Error(`${code} something`), { code });
}

describe("errorName: the SDK's name, or a generic Error's code", () => {
  it.each<[string, unknown, string]>([
    ["an SDK exception", sdkError("NoSuchBucket", 404, "client"), "NoSuchBucket"],
    ["a file error (listers: ENOENT)", nodeError("ENOENT"), "ENOENT"],
    ["a socket error under the SDK (acker)", nodeError("ECONNRESET"), "ECONNRESET"],
    ["an SDK name wins over a code", Object.assign(sdkError("TimeoutError"), { code: "ETIMEDOUT" }), "TimeoutError"],
    ["a plain Error", new Error("x"), "Error"],
    ["an object without a name but with a code", { code: "EACCES" }, "EACCES"],
    ["a non-string name", { name: 42 }, "Error"],
    ["a non-string code", Object.assign(new Error("x"), { code: 7 }), "Error"],
    ["a thrown string: none of its text", "QueueDoesNotExist", "Error"],
    ["undefined", undefined, "Error"],
    ["null", null, "Error"],
  ])("%s", (_what, error, name) => {
    expect(errorName(error)).toBe(name);
  });

  it("sdkName does not fall back to the code (fetch's messages say `Error: …` for a Node error)", () => {
    expect(sdkName(nodeError("ECONNRESET"))).toBe("Error");
    expect(sdkName(sdkError("SlowDown"))).toBe("SlowDown");
  });
});

describe("status, code and fault are read only when they have the right type", () => {
  it.each<[string, unknown, number | undefined, string | undefined, string | undefined]>([
    ["an SDK exception", sdkError("AccessDenied", 403, "client"), 403, undefined, "client"],
    ["a Node error", nodeError("EPIPE"), undefined, "EPIPE", undefined],
    ["forged types", { $metadata: { httpStatusCode: "503" }, code: 1, $fault: {} }, undefined, undefined, undefined],
    ["no metadata at all", { $metadata: null }, undefined, undefined, undefined],
    ["a number thrown", 5, undefined, undefined, undefined],
  ])("%s", (_what, error, status, code, fault) => {
    expect(errorStatus(error)).toBe(status);
    expect(errorCode(error)).toBe(code);
    expect(errorFault(error)).toBe(fault);
  });
});

describe("classifyError: by name, status and code", () => {
  const notFound: ErrorClass = { kind: "NotFound", transient: false, throttled: false };
  const denied: ErrorClass = { kind: "AccessDenied", transient: false, throttled: false };
  const transient: ErrorClass = { kind: "Failed", transient: true, throttled: false };
  const throttled: ErrorClass = { kind: "Failed", transient: true, throttled: true };
  const permanent: ErrorClass = { kind: "Failed", transient: false, throttled: false };
  it.each<[string, unknown, ErrorClass]>([
    ["NoSuchKey", sdkError("NoSuchKey", 404, "client"), notFound],
    ["NoSuchBucket", sdkError("NoSuchBucket", 404, "client"), notFound],
    ["a bare 404 (HEAD-like, no body)", sdkError("UnknownError", 404, "client"), notFound],
    ["NotFound without a status", sdkError("NotFound"), notFound],
    ["AccessDenied", sdkError("AccessDenied", 403, "client"), denied],
    ["a bare 403", sdkError("Forbidden", 403, "client"), denied],
    ["InvalidObjectState (Glacier)", sdkError("InvalidObjectState", 403, "client"), denied],
    ["503 SlowDown", sdkError("SlowDown", 503, "server"), throttled],
    ["429", sdkError("TooManyRequests", 429, "client"), throttled],
    ["ThrottlingException at 400", sdkError("ThrottlingException", 400, "client"), throttled],
    ["RequestThrottled", sdkError("RequestThrottled", 400, "client"), throttled],
    ["500 InternalError", sdkError("InternalError", 500, "server"), transient],
    ["408", sdkError("RequestTimeout", 408, "client"), transient],
    ["TimeoutError without a response", sdkError("TimeoutError"), transient],
    ["ECONNRESET", nodeError("ECONNRESET"), transient],
    ["EAI_AGAIN: the resolver did not answer", nodeError("EAI_AGAIN"), transient],
    ["UND_ERR_SOCKET", nodeError("UND_ERR_SOCKET"), transient],
    ["ENOTFOUND: the host does not exist", nodeError("ENOTFOUND"), permanent],
    ["a 400 that is not throttling", sdkError("InvalidArgument", 400, "client"), permanent],
    ["a TypeError (bad endpoint)", new TypeError("Invalid URL"), permanent],
    [
      "a network code with a response is the response's",
      Object.assign(sdkError("X", 400), { code: "ECONNRESET" }),
      permanent,
    ],
    ["a thrown string", "ECONNRESET", permanent],
  ])("%s", (_what, error, expected) => {
    expect(classifyError(error)).toEqual(expected);
  });

  it("never reads the message: a message naming every answer changes nothing", () => {
    const words = "NoSuchKey AccessDenied SlowDown Throttling ECONNRESET 404 403 503";
    expect(classifyError(sdkError("InvalidArgument", 400, "client", words))).toEqual(permanent);
    expect(classifyError(new Error(words))).toEqual(permanent);
  });
});

describe("isPermanentCallFailure: a whole SQS call that no retry mends", () => {
  it.each<[string, unknown, boolean]>([
    ["no credentials anywhere", sdkError("CredentialsProviderError"), true],
    ["the queue does not exist", sdkError("QueueDoesNotExist", 400, "client"), true],
    ["denied", sdkError("AccessDenied", 403, "client"), true],
    ["throttled, though the client's fault", sdkError("ThrottlingException", 400, "client"), false],
    ["RequestThrottled", sdkError("RequestThrottled", 403, "client"), false],
    ["the service's fault", sdkError("InternalError", 500, "server"), false],
    ["a network error", nodeError("ECONNRESET"), false],
    ["a thrown non-object", "x", false],
  ])("%s: %s", (_what, error, permanent) => {
    expect(isPermanentCallFailure(error)).toBe(permanent);
  });
});

describe("describeError: the fields a log line shows", () => {
  it("an SDK exception: name, status, fault and message", () => {
    expect(describeError(sdkError("AccessDenied", 403, "client", "Access to the resource is denied."))).toEqual({
      error: "AccessDenied",
      status: 403,
      fault: "client",
      message: "Access to the resource is denied.",
    });
  });

  it("a Node error: name Error and its code (a reader tests the code)", () => {
    expect(describeError(nodeError("ECONNREFUSED"))).toEqual({
      error: "Error",
      code: "ECONNREFUSED",
      message: "ECONNREFUSED something",
    });
  });

  it("never the error's other fields: not its raw response, not what the thrower added", () => {
    const error = Object.assign(sdkError("InternalError", 500, "server"), {
      $response: { headers: { "set-cookie": "secret" }, body: "<html>" },
      extra: { nested: true },
    });
    expect(Object.keys(describeError(error)).sort()).toEqual(["error", "fault", "message", "status"]);
  });

  it("cuts a long message at ERROR_MESSAGE_MAX", () => {
    const message = describeError(new Error("x".repeat(ERROR_MESSAGE_MAX * 3))).message as string;
    expect(message).toBe(`${"x".repeat(ERROR_MESSAGE_MAX)}…`);
  });

  it("a thrown non-object: its text as the message, Error as the name", () => {
    expect(describeError("boom")).toEqual({ error: "Error", message: "boom" });
  });
});
