// The metrics' object outcomes (Filter.breakdown) count objects only: a digest file (--verify-integrity) left to SQS
// redelivery counts in the summary's `leftToSqs` but in no object outcome, as it counts in no `objects`; otherwise
// objects_in_flight (objects − every outcome) would drop below the objects actually in flight.
import { PassThrough } from "node:stream";
import { describe, expect, it } from "vitest";
import { OutputSink } from "../../src/deliver/output.js";
import { FetchError, type ObjectSource, type OpenedObject } from "../../src/fetch/fetch.js";
import type { Line } from "../../src/input/lines.js";
import { ContinuousIntegrity } from "../../src/integrity/continuous.js";
import { HashStore } from "../../src/integrity/hash-store.js";
import { PublicKeys } from "../../src/integrity/public-keys.js";
import type { ObjectStore } from "../../src/integrity/verify.js";
import { Filter } from "../../src/run/filter.js";
import { RetryPolicy } from "../../src/shared/retry.js";
import { QUIET_LOG } from "../support/log.js";
import { inSqsRecord } from "../support/messages.js";

const OBJECT = Buffer.from('{"Records":[{"eventTime":"2023-07-10T11:47:39Z","eventName":"GetObject"}]}');
const LOG_FILE = "AWSLogs/1/CloudTrail/us-east-1/2024/01/01/1_CloudTrail_us-east-1_20240101T0000Z_a.json.gz";
const DIGEST =
  "AWSLogs/111122223333/CloudTrail-Digest/eu-west-1/2024/03/05/111122223333_CloudTrail-Digest_eu-west-1_trail_eu-west-1_20240305T120000Z.json.gz";

const source: ObjectSource = {
  async open(): Promise<OpenedObject> {
    return { whole: Buffer.from(OBJECT), size: OBJECT.length };
  },
};

/** Every read of the digest fails for a reason that may pass (S3 throttling). */
const throttled: ObjectStore = {
  async read() {
    throw new FetchError("FetchFailed", "Failed to fetch the digest: SlowDown", true, true);
  },
};

describe("Filter.breakdown's object outcomes", () => {
  it("a digest left to SQS is in the summary's leftToSqs, in no object outcome", async () => {
    const integrity = new ContinuousIntegrity({
      store: throttled,
      keys: new PublicKeys(async () => []),
      hashes: HashStore.memory(),
      allowedBuckets: undefined,
      maxObjectBytes: 1 << 20,
      concurrency: 1,
      log: QUIET_LOG,
      abort() {},
    });
    const filter = new Filter({
      source,
      sink: new OutputSink(new PassThrough().resume(), { padBytes: 0 }),
      log: QUIET_LOG,
      options: {
        concurrency: 2,
        deadletterTag: "dl",
        maxObjectBytes: 1 << 20,
        maxEventBytes: 1 << 16,
        timestamp: true,
        retryFor: 0,
        leaveTransientToSqs: true,
      },
      retry: new RetryPolicy({ retryForMs: 0, baseMs: 1, maxMs: 1 }),
      integrity,
    });
    const body = JSON.stringify({ s3Bucket: "bkt", s3ObjectKey: [LOG_FILE, DIGEST] });
    async function* lines(): AsyncGenerator<Line> {
      yield { kind: "line", number: 1, text: inSqsRecord(body, "rh-1", "https://sqs.us-east-1.amazonaws.com/1/q") };
    }
    const summary = await filter.run(lines());
    expect(summary).toMatchObject({ objects: 1, leftToSqs: 1, deadLetters: 0 });
    expect(filter.breakdown().objects).toEqual({ read: 1, deadLetter: 0, leftToSqs: 0, abandoned: 0 });
  });
});
