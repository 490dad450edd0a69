// CloudTrail's side of log-file integrity for tests, written from the AWS documentation and not from src/: signing
// keys, digest chains signed as CloudTrail signs them, and a ListPublicKeys stand-in on loopback speaking the
// CloudTrail API's JSON 1.1 protocol (what the SDK sends when AWS_ENDPOINT_URL_CLOUDTRAIL points at it).
// https://docs.aws.amazon.com/awscloudtrail/latest/userguide/cloudtrail-log-file-validation-digest-file-structure.html
// https://docs.aws.amazon.com/awscloudtrail/latest/userguide/cloudtrail-log-file-custom-validation.html
import { createHash, generateKeyPairSync, type KeyObject, randomBytes, sign } from "node:crypto";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { gzipSync } from "node:zlib";

export interface SigningKey {
  privateKey: KeyObject;
  /** DER of the PKCS#1 RSAPublicKey, as ListPublicKeys's Value. */
  der: Buffer;
  /** Hex MD5 of the DER, as CloudTrail's fingerprints look. */
  fingerprint: string;
  validFrom: Date;
  validUntil: Date;
}

export function signingKey(validFrom: Date, validUntil: Date): SigningKey {
  const { privateKey, publicKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
  const der = publicKey.export({ type: "pkcs1", format: "der" });
  return { privateKey, der, fingerprint: createHash("md5").update(der).digest("hex"), validFrom, validUntil };
}

/** An object to store: key, bytes, user metadata. */
export interface TrailObject {
  key: string;
  body: Buffer;
  metadata?: Record<string, string>;
}

export interface TrailOptions {
  bucket: string;
  /** Custom prefix, ending in "/" (or empty). */
  prefix?: string;
  /** An organization trail's id (`o-…`): in the path before the account. */
  org?: string;
  account: string;
  region: string;
  trail: string;
  homeRegion?: string;
  /** Start of the first digest's window; each digest covers one hour. */
  start: Date;
  hours: number;
  filesPerHour: number;
  key: SigningKey;
  /** Store objects as plain JSON instead of gzip (the names keep `.json.gz`). */
  plain?: boolean;
  /**
   * A log file delivered late in this hour (index), left out of that hour's digest and listed by a backfill digest
   * instead.
   */
  backfillHour?: number;
}

const pad = (n: number, width = 2): string => String(n).padStart(width, "0");
const ymd = (t: Date): string => `${t.getUTCFullYear()}/${pad(t.getUTCMonth() + 1)}/${pad(t.getUTCDate())}`;
const stamp = (t: Date, seconds: boolean): string =>
  `${t.getUTCFullYear()}${pad(t.getUTCMonth() + 1)}${pad(t.getUTCDate())}T${pad(t.getUTCHours())}${pad(t.getUTCMinutes())}${seconds ? pad(t.getUTCSeconds()) : ""}Z`;
const iso = (t: Date): string => t.toISOString().replace(/\.\d{3}Z$/, "Z");

export interface Trail {
  objects: TrailObject[];
  logKeys: string[];
  digestKeys: string[];
}

function base(options: TrailOptions): string {
  return `${options.prefix ?? ""}AWSLogs/${options.org === undefined ? "" : `${options.org}/`}${options.account}/`;
}

function logFile(options: TrailOptions, at: Date, n: number): { key: string; json: Buffer } {
  const { account, region } = options;
  const name = `${account}_CloudTrail_${region}_${stamp(at, false)}_${randomBytes(8).toString("hex")}.json.gz`;
  const records = Array.from({ length: 3 }, (_, i) => ({
    eventVersion: "1.08",
    eventTime: iso(new Date(at.getTime() - (i + 1) * 1000)),
    eventSource: "s3.amazonaws.com",
    eventName: "GetObject",
    awsRegion: region,
    recipientAccountId: account,
    eventID: `${n}-${i}-${randomBytes(4).toString("hex")}`,
  }));
  return {
    key: `${base(options)}CloudTrail/${region}/${ymd(at)}/${name}`,
    json: Buffer.from(JSON.stringify({ Records: records })),
  };
}

export function sha256(bytes: Buffer): string {
  return createHash("sha256").update(bytes).digest("hex");
}

/**
 * Signs a digest as the documentation says: the SHA-256 of
 * `digestEndTime\ndigestS3Bucket/digestS3Object\nhex SHA-256 of the uncompressed digest\npreviousDigestSignature`
 * ("null" for the first) with the region's private key, RSA, the signature hex-encoded.
 */
export function signDigest(json: Buffer, fields: Record<string, unknown>, key: KeyObject): string {
  const previous = fields.previousDigestSignature;
  const data = `${fields.digestEndTime}\n${fields.digestS3Bucket}/${fields.digestS3Object}\n${sha256(json)}\n${typeof previous === "string" ? previous : "null"}`;
  return sign("sha256", Buffer.from(data, "utf8"), key).toString("hex");
}

/** A trail: its log files and its hourly digests, chained and signed. */
export function buildTrail(options: TrailOptions): Trail {
  const { bucket, account, region, trail, key } = options;
  const home = options.homeRegion ?? region;
  const store = (json: Buffer): Buffer => (options.plain === true ? json : gzipSync(json));
  const objects: TrailObject[] = [];
  const logKeys: string[] = [];
  const digestKeys: string[] = [];
  let previous: { key: string; signature: string; sha256: string } | undefined;
  let late: { key: string; json: Buffer } | undefined;
  const hour = 3_600_000;

  const digest = (
    startMs: number,
    endMs: number,
    files: { key: string; json: Buffer }[],
    backfill: boolean,
    chain: typeof previous,
  ): { key: string; signature: string; sha256: string } => {
    const end = new Date(endMs);
    const name = `${account}_CloudTrail-Digest_${region}_${trail}_${home}_${stamp(end, true)}${backfill ? "_backfill" : ""}.json.gz`;
    const digestKey = `${base(options)}CloudTrail-Digest/${region}/${ymd(end)}/${name}`;
    const fields = {
      awsAccountId: account,
      digestStartTime: iso(new Date(startMs)),
      digestEndTime: iso(end),
      digestS3Bucket: bucket,
      digestS3Object: digestKey,
      digestPublicKeyFingerprint: key.fingerprint,
      digestSignatureAlgorithm: "SHA256withRSA",
      newestEventTime: iso(end),
      oldestEventTime: iso(new Date(startMs)),
      previousDigestS3Bucket: chain === undefined ? null : bucket,
      previousDigestS3Object: chain?.key ?? null,
      previousDigestHashValue: chain?.sha256 ?? null,
      previousDigestHashAlgorithm: chain === undefined ? null : "SHA-256",
      previousDigestSignature: chain?.signature ?? null,
      logFiles: files.map((file) => ({
        s3Bucket: bucket,
        s3Object: file.key,
        hashValue: sha256(file.json),
        hashAlgorithm: "SHA-256",
        newestEventTime: iso(end),
        oldestEventTime: iso(new Date(startMs)),
      })),
    };
    const json = Buffer.from(JSON.stringify(fields));
    const signature = signDigest(json, fields, key.privateKey);
    objects.push({
      key: digestKey,
      body: store(json),
      metadata: { signature, "signature-algorithm": "SHA256withRSA" },
    });
    digestKeys.push(digestKey);
    return { key: digestKey, signature, sha256: sha256(json) };
  };

  for (let h = 0; h < options.hours; h++) {
    const startMs = options.start.getTime() + h * hour;
    const files: { key: string; json: Buffer }[] = [];
    for (let i = 0; i < options.filesPerHour; i++) {
      const file = logFile(options, new Date(startMs + ((i + 1) * hour) / (options.filesPerHour + 2)), h * 100 + i);
      objects.push({ key: file.key, body: store(file.json) });
      logKeys.push(file.key);
      if (options.backfillHour === h && i === 0) late = file;
      else files.push(file);
    }
    previous = digest(startMs, startMs + hour, files, false, previous);
  }
  if (late !== undefined) {
    const at = options.start.getTime() + (options.backfillHour ?? 0) * hour;
    digest(at, at + hour, [late], true, undefined);
  }
  return { objects, logKeys, digestKeys };
}

/** The ListPublicKeys stand-in: the keys whose validity overlaps the asked range, as CloudTrail answers. */
export interface PublicKeyServer {
  endpoint: string;
  /** Requests answered (ListPublicKeys calls). */
  requests: number;
  close(): Promise<void>;
}

export async function startPublicKeyServer(keys: () => SigningKey[]): Promise<PublicKeyServer> {
  const state = { requests: 0 };
  const server: Server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on("data", (chunk: Buffer) => chunks.push(chunk));
    request.on("end", () => {
      const reply = (status: number, body: unknown): void => {
        const text = JSON.stringify(body);
        response.writeHead(status, {
          "Content-Type": "application/x-amz-json-1.1",
          "Content-Length": Buffer.byteLength(text),
          "x-amzn-RequestId": randomBytes(8).toString("hex"),
        });
        response.end(text);
      };
      if (request.headers["x-amz-target"] !== "CloudTrail_20131101.ListPublicKeys") {
        reply(400, { __type: "UnknownOperationException", message: "only ListPublicKeys here" });
        return;
      }
      state.requests++;
      const input = JSON.parse(Buffer.concat(chunks).toString("utf8") || "{}") as {
        StartTime?: number;
        EndTime?: number;
      };
      const from = (input.StartTime ?? 0) * 1000;
      const until = (input.EndTime ?? Date.now() / 1000) * 1000;
      const list = keys()
        .filter((key) => key.validFrom.getTime() <= until && key.validUntil.getTime() >= from)
        .map((key) => ({
          Value: key.der.toString("base64"),
          ValidityStartTime: key.validFrom.getTime() / 1000,
          ValidityEndTime: key.validUntil.getTime() / 1000,
          Fingerprint: key.fingerprint,
        }));
      reply(200, { PublicKeyList: list });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    get requests() {
      return state.requests;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
