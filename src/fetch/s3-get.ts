// GetObject through the AWS SDK: addressing, signing, FIPS / dual-stack endpoints, clock-skew correction and response
// checksums are the SDK's; what is ours is the policy around one GET: which region's client asks, the bucket's region
// learnt once from a redirect, and one more try with fresh credentials when S3 says they went stale.
// https://docs.aws.amazon.com/AmazonS3/latest/API/API_GetObject.html
import { GetObjectCommand, type S3Client } from "@aws-sdk/client-s3";
import { partition } from "@aws-sdk/core/client";
import { type BucketName, isInvalid, type ObjectKey, parseRegion, type Region } from "../model/names.js";
import { errorStatus, sdkName, sdkShape } from "../shared/aws-errors.js";

export interface S3GetterOptions {
  /** The client that signs for and addresses `region` (one per region, shared; with an explicit endpoint, one). */
  clientFor(region: string): Promise<S3Client>;
  /** The region asked when neither a redirect nor the notification named the bucket's. */
  region: string;
  /** Send `x-amz-request-payer: requester` (buckets with Requester Pays). */
  requestPayer: boolean;
  /** Aborts every GET in flight (the clients' handler takes one signal for all of them: see `get`). */
  abortAll(): void;
}

/** The body of a 200 response, its stored size when S3 said, and its user metadata (`x-amz-meta-*`, lowercase). */
export interface S3Object {
  body: AsyncIterable<Uint8Array>;
  size: number | undefined;
  metadata?: Record<string, string>;
}

/**
 * S3 rejects credentials that the provider still counts as valid when a session was revoked or rotated early, or
 * signed with a clock S3 finds too far off (the SDK corrects its offset from the error's Date header): worth one
 * more request with new credentials, never more (a second rejection is a real error).
 * https://docs.aws.amazon.com/AmazonS3/latest/API/ErrorResponses.html
 */
const STALE_CREDENTIALS = new Set(["ExpiredToken", "InvalidToken", "TokenRefreshRequired"]);
const SKEWED_CLOCK = new Set(["RequestTimeTooSkewed", "RequestExpired"]);

/**
 * The region S3 says a bucket lives in: a 301 PermanentRedirect (`x-amz-bucket-region`) or a 400
 * AuthorizationHeaderMalformed (`<Region>` in the error document) when the request was signed for another region.
 * https://docs.aws.amazon.com/AmazonS3/latest/API/RESTCommonResponseHeaders.html
 * The region is parsed like any region from outside before it picks a client, and so an endpoint.
 */
function bucketRegionOf(error: unknown): Region | undefined {
  const status = errorStatus(error);
  if (status !== 301 && status !== 307 && status !== 400) return undefined;
  if (status === 400 && sdkName(error) !== "AuthorizationHeaderMalformed") return undefined;
  const shape = sdkShape(error);
  const header = shape.$response?.headers?.["x-amz-bucket-region"];
  const named = typeof header === "string" && header !== "" ? header : shape.Region;
  if (typeof named !== "string") return undefined;
  const region = parseRegion(named);
  return isInvalid(region) ? undefined : region;
}

/**
 * A region named from outside (a notification's `awsRegion` or EventBridge `region`, a redirect's region) that is a
 * region of `home`'s partition by the SDK's own partition data (its `partitions.json`, as the endpoint rules see it):
 * else undefined, and the caller addresses the configured region instead.
 *
 * Why not any name that parses: a queue writer who names made-up regions (`zz-fake-0` …) would send each GET to a host
 * that does not exist (`BUCKET.s3.zz-fake-0.amazonaws.com`), a name lookup that fails, for every object of every such
 * message, and would make one S3 client per name. Ignored rather than refused: the object is still read, through
 * `--region` and S3's redirect to the bucket's real region, so a wrong hint costs one request and loses nothing.
 * The partition's regex (`^(us|eu|…)-\w+-\d+$`) is not enough: `us-fake-1` matches it. A region newer than the
 * installed SDK is not known here either: set `--region` to it (the operator's region is not checked) or update.
 */
export function partitionRegion(named: Region, home: string): Region | undefined {
  const found = partition(named) as { name: string; description?: unknown };
  // Only a region listed in the data carries its own fields (`description`); a name matched by no entry gets only the
  // (default) partition's outputs.
  if (typeof found.description !== "string") return undefined;
  return found.name === partition(home).name ? named : undefined;
}

export class S3Getter {
  /** Regions learnt from redirects, per bucket: later objects go to the right region at once. */
  private readonly regions = new Map<BucketName, string>();
  /** The signals already tied to `abortAll`. */
  private readonly watched = new WeakSet<AbortSignal>();

  constructor(private readonly options: S3GetterOptions) {}

  /**
   * GETs an object; resolves with its body (unread) or throws the SDK's error. `signal` is the filter's, aborted only
   * when all work is abandoned at shutdown: it aborts every GET in flight at once. It is not handed to each `send`,
   * because the SDK reuses a command's resolved middleware (`cacheMiddleware`) only for a send without options,
   * which saves about 0.17 ms of CPU per GET (bench/README.md).
   */
  async get(
    bucket: BucketName,
    key: ObjectKey,
    regionHint: Region | undefined,
    signal: AbortSignal,
  ): Promise<S3Object> {
    const { options } = this;
    const hinted = regionHint === undefined ? undefined : partitionRegion(regionHint, options.region);
    let region = this.regions.get(bucket) ?? hinted ?? options.region;
    let redirected = false;
    let refreshed = false;
    if (!this.watched.has(signal)) {
      this.watched.add(signal);
      signal.addEventListener("abort", () => options.abortAll(), { once: true });
    }
    if (signal.aborted) throw signal.reason;
    for (;;) {
      const client = await options.clientFor(region);
      try {
        const output = await client.send(
          new GetObjectCommand({
            Bucket: bucket,
            Key: key,
            // Validate the body against the checksum S3 stored, when it sends one (objects uploaded with one).
            ChecksumMode: "ENABLED",
            ...(options.requestPayer ? { RequestPayer: "requester" } : {}),
          }),
        );
        const body = output.Body as AsyncIterable<Uint8Array> | undefined;
        const metadata = output.Metadata === undefined ? {} : { metadata: output.Metadata };
        if (body === undefined) return { body: (async function* () {})(), size: 0, ...metadata };
        return { body, size: output.ContentLength, ...metadata };
      } catch (error) {
        const named = redirected ? undefined : bucketRegionOf(error);
        // A redirect names the region of an S3 that answered (or of whatever stands at a custom endpoint): held to the
        // same partition data as a hint, so that it cannot make clients for names without end either.
        const moved = named === undefined ? undefined : partitionRegion(named, options.region);
        if (moved !== undefined && moved !== region) {
          redirected = true;
          if (this.regions.size >= 10_000) this.regions.clear();
          this.regions.set(bucket, moved);
          region = moved;
          continue;
        }
        const name = sdkName(error);
        if (!refreshed && (STALE_CREDENTIALS.has(name) || SKEWED_CLOCK.has(name)) && !signal.aborted) {
          refreshed = true;
          // Through the client's own cache of credentials, which passes the refresh on to the shared chain.
          if (STALE_CREDENTIALS.has(name)) await client.config.credentials({ forceRefresh: true });
          continue;
        }
        throw error;
      }
    }
  }
}
