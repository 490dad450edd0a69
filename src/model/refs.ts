// What a record names and where it came from: the objects to read (an S3 object by parsed coordinates, or a local
// file) and the SQS message to settle once they are delivered. Records (records/) make them; fetch/ opens them,
// format/ puts their coordinates in dead letters, input/ and deliver/ receive and settle the messages. The types live
// here, below all of those, so that none of them imports the parser that makes them.
import type { BucketName, ObjectKey, Region } from "./names.js";

/** One S3 object to read. Only parsed coordinates make one, so none can point a request at another host. */
export interface S3ObjectRef {
  bucket: BucketName;
  key: ObjectKey;
  /** The bucket's region when the notification names it. */
  region?: Region;
  /** A second key to try if `key` is not found (EventBridge does not document whether keys are encoded). */
  fallbackKey?: ObjectKey;
}

/**
 * Set only on what one message of an `aws sqs receive-message` response named: that message, which its dead letters
 * carry as `input` (not the whole response, which holds the other messages too).
 */
export interface FromMessage {
  input?: unknown;
}

export type ObjectRef = ({ scheme: "s3" } & S3ObjectRef & FromMessage) | { scheme: "file"; path: string };

/** SQS coordinates of the message a record came from (fluent-plugin-sqs 2.x/3.x), for deleting it later. */
export interface SqsMessage {
  queueUrl: string;
  receiptHandle: string;
  messageId?: string;
}
