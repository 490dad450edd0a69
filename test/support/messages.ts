// Input records as the tests feed them: an SNS notification envelope, and fluent-plugin-sqs 2.x/3.x's record of an SQS
// message as in_sqs emits it.

/** SNS's envelope around `message`, as SNS delivers it to SQS (pretty-printed there; `pretty` says so). */
export function snsNotification(
  message: string,
  options: { subject?: string; account?: string; pretty?: boolean } = {},
): string {
  const envelope: Record<string, string> = {
    Type: "Notification",
    MessageId: "0f6e2c1a-1111-2222-3333-444455556666",
    TopicArn: `arn:aws:sns:us-east-1:${options.account ?? "111122223333"}:trail`,
    Message: message,
    Timestamp: "2023-07-10T12:00:00.000Z",
    SignatureVersion: "1",
    Signature: "EXAMPLE",
    SigningCertURL: "https://sns.example/cert.pem",
    UnsubscribeURL: "https://sns.example/unsubscribe",
  };
  if (options.subject !== undefined) envelope.Subject = options.subject;
  return options.pretty === true ? JSON.stringify(envelope, null, 2) : JSON.stringify(envelope);
}

/** fluent-plugin-sqs 2.x/3.x's record of one message: its body, receipt handle and queue. */
export function inSqsRecord(body: string, receiptHandle: string, queueUrl: string): string {
  return JSON.stringify({
    body,
    receipt_handle: receiptHandle,
    message_id: `id-${receiptHandle}`,
    md5_of_body: "0",
    queue_url: queueUrl,
    sender_id: "",
  });
}
