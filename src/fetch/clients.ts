// The AWS clients of one process, made on first use and shared: one HTTP handler (sdk-handler.ts: the SDK's node:http
// one, or http-handler.ts: undici's when a proxy is set), one credential chain, S3 clients per region, SQS clients per
// endpoint, and the object getter built on them. Nothing here loads the SDK or undici before the first request: a
// run that reads only file:// objects never does.
import type { CloudTrailClient } from "@aws-sdk/client-cloudtrail";
import type { S3Client } from "@aws-sdk/client-s3";
import type { SQSClient } from "@aws-sdk/client-sqs";
import type { AwsCredentialIdentityProvider } from "@smithy/types";
import { sqsHostRegion } from "../model/names.js";
import { proxySettings, proxyVariable } from "./proxy-env.js";
import type { S3Getter } from "./s3-get.js";
import type { HttpHandlerSettings, SdkHttpHandler } from "./sdk-handler.js";

export interface ClientSettings {
  /** --region, else AWS_REGION / AWS_DEFAULT_REGION, else us-east-1. */
  region: string;
  /** An S3-compatible endpoint (path-style), from --endpoint or AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL. */
  s3Endpoint?: string;
  /** AWS_ENDPOINT_URL_SQS when set: every queue is reached there. */
  sqsEndpoint?: string;
  /** AWS_ENDPOINT_URL_CLOUDTRAIL (or AWS_ENDPOINT_URL) when set: ListPublicKeys for every region is asked there. */
  cloudTrailEndpoint?: string;
  /** Connections per origin. */
  connections: number;
  /** A request or response body silent this long fails. */
  timeoutMs: number;
  requestPayer: boolean;
  /** Where proxy variables are read (process.env). */
  env: Record<string, string | undefined>;
  /** How connections are made, on undici (tests reach AWS host names on loopback with it); undefined: the usual way. */
  connect?: HttpHandlerSettings["connect"];
}

/** The SDKs log to the console by default; stdout is protocol and stderr is not our log. */
const quietSdkLogger = { trace() {}, debug() {}, info() {}, warn() {}, error() {} };

export class AwsClients {
  private handlerOnce: Promise<SdkHttpHandler> | undefined;
  /** The S3 clients' handler: the same connections, and a signal that aborts every GET at once (s3-get.ts). */
  private s3HandlerOnce: Promise<SdkHttpHandler> | undefined;
  private readonly s3Abort = new AbortController();
  private credentialsOnce: Promise<AwsCredentialIdentityProvider> | undefined;
  private readonly s3 = new Map<string, Promise<S3Client>>();
  private readonly sqs = new Map<string, Promise<SQSClient>>();
  private readonly cloudTrail = new Map<string, Promise<CloudTrailClient>>();
  private getterOnce: Promise<S3Getter> | undefined;

  constructor(private readonly settings: ClientSettings) {}

  /**
   * Checks the proxy variables as undici will read them, so that one it cannot use is a configuration error at start
   * (a TypeError naming the variable), without loading undici for a run that may make no request at all.
   */
  check(): void {
    proxySettings(this.settings.env);
  }

  /** node:http (the SDK's own handler) for direct connections; undici when a proxy variable is set or for tests. */
  private handler(): Promise<SdkHttpHandler> {
    const { connections, timeoutMs, env, connect } = this.settings;
    this.handlerOnce ??=
      connect === undefined && proxyVariable(env) === undefined
        ? import("./sdk-handler.js").then(({ nodeHandler }) => nodeHandler({ connections, timeoutMs }))
        : import("./http-handler.js").then(({ createDispatcher, UndiciHttpHandler }) => {
            const dispatcher = createDispatcher({ connections, timeoutMs, env, ...(connect ? { connect } : {}) });
            return new UndiciHttpHandler(dispatcher, timeoutMs);
          });
    return this.handlerOnce;
  }

  private s3Handler(): Promise<SdkHttpHandler> {
    this.s3HandlerOnce ??= Promise.all([import("./sdk-handler.js"), this.handler()]).then(([{ withSignal }, shared]) =>
      withSignal(shared, this.s3Abort.signal),
    );
    return this.s3HandlerOnce;
  }

  /**
   * The SDK's default credential chain (environment, shared files, SSO, web identity, container and instance
   * metadata), one for the process: its own calls (STS, the container endpoint) take the same handler and proxy.
   */
  private credentials(): Promise<AwsCredentialIdentityProvider> {
    this.credentialsOnce ??= Promise.all([import("@aws-sdk/credential-provider-node"), this.handler()]).then(
      ([{ defaultProvider }, requestHandler]) =>
        defaultProvider({ logger: quietSdkLogger, clientConfig: { requestHandler } }),
    );
    return this.credentialsOnce;
  }

  /**
   * The S3 client for a region; with an explicit endpoint there is one, path-style, signing for --region. Never
   * freed, and bounded all the same: S3Getter asks only for --region and for regions of its partition in the SDK's
   * partition data (`partitionRegion` in s3-get.ts), never for a name a message made up (each client holds about
   * 45 KB of resolved configuration and middleware).
   */
  s3Client(region: string | undefined): Promise<S3Client> {
    const { s3Endpoint } = this.settings;
    const wanted = s3Endpoint === undefined ? (region ?? this.settings.region) : this.settings.region;
    let client = this.s3.get(wanted);
    if (client === undefined) {
      client = Promise.all([import("@aws-sdk/client-s3"), this.s3Handler(), this.credentials()]).then(
        ([{ S3Client }, requestHandler, credentials]) =>
          new S3Client({
            region: wanted,
            credentials,
            requestHandler,
            // Retries are the filter's (a shared pause on throttling, --retry-for); redirects are S3Getter's, which
            // remembers each bucket's region.
            maxAttempts: 1,
            followRegionRedirects: false,
            // GetObject's middleware resolved once, not per send (see S3Getter.get).
            cacheMiddleware: true,
            logger: quietSdkLogger,
            ...(s3Endpoint === undefined ? {} : { endpoint: s3Endpoint, forcePathStyle: true }),
          }),
      );
      this.s3.set(wanted, client);
    }
    return client;
  }

  /** The object getter, made on first use (file:// runs never load the SDK). */
  getter(): Promise<S3Getter> {
    this.getterOnce ??= import("./s3-get.js").then(
      ({ S3Getter }) =>
        new S3Getter({
          clientFor: (region) => this.s3Client(region),
          region: this.settings.region,
          requestPayer: this.settings.requestPayer,
          abortAll: () => this.s3Abort.abort(),
        }),
    );
    return this.getterOnce;
  }

  /**
   * The CloudTrail client for a region (`verify` asks ListPublicKeys of the region that signed a digest), made the
   * way the S3 client is: the shared handler and credentials; the SDK's own retries (ListPublicKeys is a few calls a
   * run, not worth a policy of ours).
   */
  cloudTrailClient(region: string): Promise<CloudTrailClient> {
    let client = this.cloudTrail.get(region);
    if (client === undefined) {
      const { cloudTrailEndpoint } = this.settings;
      client = Promise.all([import("@aws-sdk/client-cloudtrail"), this.handler(), this.credentials()]).then(
        ([{ CloudTrailClient }, requestHandler, credentials]) =>
          new CloudTrailClient({
            region,
            credentials,
            requestHandler,
            logger: quietSdkLogger,
            ...(cloudTrailEndpoint === undefined ? {} : { endpoint: cloudTrailEndpoint }),
          }),
      );
      this.cloudTrail.set(region, client);
    }
    return client;
  }

  /** The SQS origin the operator configured (AWS_ENDPOINT_URL_SQS), where a record's queue_url may point. */
  sqsOrigins(): string[] {
    const { sqsEndpoint } = this.settings;
    if (sqsEndpoint === undefined) return [];
    try {
      return [new URL(sqsEndpoint).origin];
    } catch {
      return [];
    }
  }

  /**
   * One SQS client per region and endpoint. On an AWS SQS host (every shape names.ts accepts: FIPS, dual-stack, VPC
   * endpoints, the legacy ones) requests are signed for the host's region, and the SDK sends them to the queue URL's
   * host; elsewhere they go to AWS_ENDPOINT_URL_SQS, else to the queue URL's own origin, signed for --region.
   */
  sqsClient(queueUrl: string): Promise<SQSClient> {
    let region = this.settings.region;
    let endpoint = this.settings.sqsEndpoint;
    try {
      const url = new URL(queueUrl);
      const hostRegion = sqsHostRegion(url.hostname);
      if (hostRegion !== undefined) region = hostRegion;
      else if (endpoint === undefined) endpoint = url.origin;
    } catch {
      // not a URL: the SDK will say so on the first call, and the failure is logged
    }
    const id = `${region} ${endpoint ?? ""}`;
    let client = this.sqs.get(id);
    if (client === undefined) {
      client = Promise.all([import("@aws-sdk/client-sqs"), this.handler(), this.credentials()]).then(
        ([{ SQSClient }, requestHandler, credentials]) =>
          new SQSClient({
            region,
            credentials,
            requestHandler,
            logger: quietSdkLogger,
            ...(endpoint === undefined ? {} : { endpoint }),
          }),
      );
      this.sqs.set(id, client);
    }
    return client;
  }
}
