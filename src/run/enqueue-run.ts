// `import s3://… --enqueue QUEUE_URL` as a run: the listing feeds the Enqueuer (enqueuer.ts), progress on stderr, a
// summary log line, and the exit status: 0 when every listed file is on the queue (or the run was interrupted), 1
// when the queue cannot be used, the listing fails, or a file could not be enqueued.
import type { SQSClient } from "@aws-sdk/client-sqs";
import type { Checkpoint } from "../listing/checkpoint.js";
import { Progress } from "../listing/progress.js";
import type { BucketName } from "../model/names.js";
import type { Host } from "../shared/host.js";
import type { Logger } from "../shared/log.js";
import type { RetryPolicy } from "../shared/retry.js";
import { Enqueuer } from "./enqueuer.js";
import type { Importer } from "./importer.js";
import { summaryFields } from "./stats.js";

/** SendMessageBatch calls at once: about 1,000 messages a second at SQS's usual latency, ahead of the listing. */
const SENDERS = 4;

export interface EnqueueRun {
  importer: Importer;
  queueUrl: string;
  bucket: BucketName;
  keysPerMessage: number;
  client: () => Promise<SQSClient>;
  retry: RetryPolicy;
  log: Logger;
  /** Progress, and the last word of a run that failed. */
  stderr: Host["stderr"];
  checkpoint?: Checkpoint;
  /** Installs the shutdown signals: the first stops listing, a second (or the timeout) abandons calls in flight. */
  onSignals: (stop: () => void, abandon: () => void) => void;
  /** Reports a failed listing and exits 1. */
  listingFailed: (error: unknown) => never;
}

export async function enqueue(run: EnqueueRun): Promise<number> {
  const { importer, log, checkpoint } = run;
  const started = Date.now();
  const abort = new AbortController();
  let signalled = false;
  const enqueuer = new Enqueuer({
    queueUrl: run.queueUrl,
    bucket: run.bucket,
    client: run.client,
    retry: run.retry,
    log,
    counts: importer.progress,
    ...(checkpoint === undefined ? {} : { checkpoint }),
    keysPerMessage: run.keysPerMessage,
    senders: SENDERS,
    signal: abort.signal,
    onFailure: () => importer.stop(),
  });
  run.onSignals(
    () => {
      signalled = true;
      enqueuer.stop();
      importer.stop();
    },
    () => {
      signalled = true;
      enqueuer.stop();
      importer.stop();
      abort.abort();
    },
  );
  try {
    await enqueuer.start();
  } catch (error) {
    const message = (error as Error).message;
    log.error("enqueue failed", { message });
    run.stderr.write(`error: ${message}\n`);
    checkpoint?.close();
    return 1;
  }

  const progress = new Progress(
    importer.progress,
    { tty: run.stderr.isTTY, write: (text) => run.stderr.write(text) },
    log,
  );
  progress.start();
  let listingError: unknown;
  const listed = await importer
    .list((object) => enqueuer.add(object))
    .catch((error: unknown) => {
      listingError = error;
      return undefined;
    });
  if (listed !== undefined && !signalled && !enqueuer.failed) importer.progress.listingDone = true;
  const { failure, ...summary } = await enqueuer.finish();
  progress.stop();
  checkpoint?.close();
  log.info("summary", {
    queueUrl: run.queueUrl,
    ...summaryFields(enqueuer.counts(), { startedMs: started }),
    mb: Math.round((summary.bytes / 2 ** 20) * 10) / 10,
    alreadyDone: listed?.alreadyDone,
    listRequests: listed?.listRequests,
    interrupted: signalled,
  });
  if (listingError !== undefined) run.listingFailed(listingError);
  if (failure !== undefined || summary.failedObjects > 0) {
    const why = failure?.message ?? "some files fit in no message";
    const notSent = summary.failedObjects + summary.unsentObjects;
    run.stderr.write(`error: ${why}; ${notSent} files not enqueued (not in the checkpoint; run again to send them)\n`);
    return 1;
  }
  return 0;
}
