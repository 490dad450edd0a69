// An S3-compatible server (s3rver) on loopback for tests, and the environment a spawned CLI needs to reach it.
import { mkdtemp, rm } from "node:fs/promises";
import { Agent } from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CreateBucketCommand, PutObjectCommand, S3Client } from "@aws-sdk/client-s3";
import S3rver from "s3rver";
import { fixS3rverListing } from "./s3rver-listing.js";

/** s3rver accepts any signature made with this key pair (it is its built-in default account). */
export const S3RVER_CREDENTIALS = { accessKeyId: "S3RVER", secretAccessKey: "S3RVER" } as const;
export const S3_REGION = "us-east-1";

export interface S3Test {
  /** `http://127.0.0.1:PORT` (https:// with `tls`) */
  endpoint: string;
  /** s3rver's data directory (a fresh temporary directory, deleted by close()). */
  directory: string;
  /** An SDK client for the server, as the tests use it; closed by close(). */
  client: S3Client;
  createBucket(name: string): Promise<void>;
  /**
   * Stores `bytes` as given; `contentEncoding` only sets the Content-Encoding metadata (e.g. "gzip"); `metadata` is
   * the object's user metadata (`x-amz-meta-*`: a digest's signature).
   */
  putObject(
    bucket: string,
    key: string,
    bytes: Buffer | string,
    contentEncoding?: string,
    metadata?: Record<string, string>,
  ): Promise<void>;
  /** Every request the server received, method and path (path-style: `/bucket/key`, percent-encoded). */
  requests: { method: string; url: string }[];
  /** Stops the server (dropping open connections) and deletes its data directory. */
  close(): Promise<void>;
}

/** Options for an S3Client pointed at `endpoint` (the tests' own client; the CLI gets s3Env instead). */
export function s3ClientConfig(endpoint: string) {
  return {
    endpoint,
    region: S3_REGION,
    forcePathStyle: true,
    credentials: S3RVER_CREDENTIALS,
    // SDKs from 3.729 on add CRC32 checksums by default, sending streamed bodies aws-chunked with a trailer; s3rver
    // stores that framing as the object's bytes (and "aws-chunked" as its Content-Encoding). Only checksum when an
    // operation requires it.
    requestChecksumCalculation: "WHEN_REQUIRED",
    responseChecksumValidation: "WHEN_REQUIRED",
  } as const;
}

/** `tls`: serve HTTPS with this key and certificate (test/support/tls.ts has one for 127.0.0.1). */
export async function startS3(tls?: { key: Buffer; cert: Buffer }): Promise<S3Test> {
  fixS3rverListing(); // list as S3 lists: in byte order, with common prefixes at any depth
  const directory = await mkdtemp(join(tmpdir(), "ctef-s3rver-"));
  const server = new S3rver({ port: 0, address: "127.0.0.1", silent: true, directory, ...tls });
  let address: Awaited<ReturnType<S3rver["run"]>>;
  try {
    address = await server.run();
  } catch (err) {
    await rm(directory, { recursive: true, force: true });
    throw err;
  }
  const endpoint = `${tls === undefined ? "http" : "https"}://127.0.0.1:${address.port}`;
  const client = new S3Client({
    ...s3ClientConfig(endpoint),
    ...(tls === undefined ? {} : { requestHandler: { httpsAgent: new Agent({ ca: tls.cert }) } }),
  });
  let closed = false;
  const requests: { method: string; url: string }[] = [];
  server.httpServer?.on("request", (request: { method?: string; url?: string }) => {
    requests.push({ method: request.method ?? "", url: request.url ?? "" });
  });
  return {
    endpoint,
    directory,
    client,
    requests,
    async createBucket(name) {
      await client.send(new CreateBucketCommand({ Bucket: name }));
    },
    async putObject(bucket, key, bytes, contentEncoding, metadata) {
      const body = typeof bytes === "string" ? Buffer.from(bytes, "utf8") : bytes;
      await client.send(
        new PutObjectCommand({
          Bucket: bucket,
          Key: key,
          Body: body,
          ContentLength: body.length,
          ...(contentEncoding === undefined ? {} : { ContentEncoding: contentEncoding }),
          ...(metadata === undefined ? {} : { Metadata: metadata }),
        }),
      );
    },
    async close() {
      if (closed) return;
      closed = true;
      client.destroy();
      // A spawned CLI killed mid-request can leave a keep-alive socket behind; don't let it hold the server open.
      server.httpServer?.closeAllConnections();
      await server.close();
      await rm(directory, { recursive: true, force: true });
    },
  };
}

/**
 * Environment for a child process whose AWS SDK should talk to `endpoint`: static credentials, a region, the
 * S3 endpoint override the SDK reads from AWS_ENDPOINT_URL_S3, and no instance-metadata probing.
 */
export function s3Env(endpoint: string): Record<string, string> {
  return {
    AWS_ACCESS_KEY_ID: S3RVER_CREDENTIALS.accessKeyId,
    AWS_SECRET_ACCESS_KEY: S3RVER_CREDENTIALS.secretAccessKey,
    AWS_REGION: S3_REGION,
    AWS_ENDPOINT_URL_S3: endpoint,
    AWS_EC2_METADATA_DISABLED: "true",
  };
}
