// The continuous check on its own, with the objects of a signed trail (test/support/cloudtrail.ts) in an in-memory
// ObjectStore that counts reads: what a planted digest can make it read (nothing), --buckets, and the public keys a
// long-running process asks for again (after a failed call; for a key published after today's list was fetched).
import { Readable } from "node:stream";
import { describe, expect, it } from "vitest";
import { FetchError } from "../../src/fetch/fetch.js";
import { ContinuousIntegrity } from "../../src/integrity/continuous.js";
import { HashStore } from "../../src/integrity/hash-store.js";
import { type PublicKey, PublicKeys } from "../../src/integrity/public-keys.js";
import type { IntegrityLine, ObjectStore, StoredObject } from "../../src/integrity/verify.js";
import type { BucketName, ObjectKey } from "../../src/model/names.js";
import { buildTrail, type SigningKey, sha256, signingKey, type Trail } from "../support/cloudtrail.js";
import { QUIET_LOG } from "../support/log.js";

const BUCKET = "trail-bucket" as BucketName;
const published = signingKey(new Date("2024-01-01T00:00:00Z"), new Date("2025-01-01T00:00:00Z"));
const unpublished = signingKey(new Date("2024-01-01T00:00:00Z"), new Date("2025-01-01T00:00:00Z"));

class MemoryStore implements ObjectStore {
  readonly reads: string[] = [];
  constructor(private readonly objects: Map<string, { body: Buffer; metadata: Record<string, string> }>) {}

  async read<T>(bucket: BucketName, key: ObjectKey, use: (object: StoredObject) => Promise<T>): Promise<T> {
    this.reads.push(key);
    const object = this.objects.get(`${bucket}/${key}`);
    if (object === undefined)
      throw new FetchError("NotFound", `Failed to fetch s3://${bucket}/${key}: NotFound`, false);
    return use({ body: Readable.from([object.body]), metadata: object.metadata });
  }
}

function trailOf(key: SigningKey, start = new Date("2024-03-10T10:00:00Z")): Trail {
  return buildTrail({
    bucket: BUCKET,
    account: "111122223333",
    region: "us-east-1",
    trail: "main",
    start,
    hours: 1,
    filesPerHour: 3,
    key,
  });
}

function storeOf(trail: Trail): MemoryStore {
  return new MemoryStore(
    new Map(trail.objects.map((o) => [`${BUCKET}/${o.key}`, { body: o.body, metadata: o.metadata ?? {} }])),
  );
}

const keyList = (keys: () => SigningKey[]) => async (): Promise<PublicKey[]> =>
  keys().map((k) => ({
    fingerprint: k.fingerprint,
    der: k.der,
    validFromMs: k.validFrom.getTime(),
    validUntilMs: k.validUntil.getTime(),
  }));

function checker(store: ObjectStore, keys: PublicKeys, allowed?: string[]) {
  return new ContinuousIntegrity({
    store,
    keys,
    hashes: HashStore.memory(),
    allowedBuckets: allowed === undefined ? undefined : new Set(allowed),
    maxObjectBytes: 2 ** 30,
    concurrency: 4,
    log: QUIET_LOG,
    abort() {},
  });
}

async function check(integrity: ContinuousIntegrity, key: string): Promise<IntegrityLine[]> {
  const lines: IntegrityLine[] = [];
  await integrity.checkDigest(BUCKET, key as ObjectKey, (line) => {
    lines.push(line);
  });
  return lines;
}

describe("ContinuousIntegrity", () => {
  it("a digest signed with a key CloudTrail did not publish reads nothing it lists: its files are not vouched for", async () => {
    const trail = trailOf(unpublished);
    const store = storeOf(trail);
    const lines = await check(
      checker(store, new PublicKeys(keyList(() => [published]))),
      trail.digestKeys[0] as string,
    );
    expect(store.reads).toEqual([trail.digestKeys[0]]);
    expect(lines.map((l) => [l.kind, l.status, l.reason])).toEqual([
      ["digest", "invalid", "unknown key"],
      ["logFile", "invalid", "not vouched for"],
      ["logFile", "invalid", "not vouched for"],
      ["logFile", "invalid", "not vouched for"],
    ]);
  });

  it("a valid digest's files outside --buckets are not read: a `not checked` line each", async () => {
    const trail = trailOf(published);
    const store = storeOf(trail);
    const integrity = checker(store, new PublicKeys(keyList(() => [published])), ["some-other-bucket"]);
    const lines = await check(integrity, trail.digestKeys[0] as string);
    expect(store.reads).toEqual([trail.digestKeys[0]]);
    expect(lines.map((l) => [l.kind, l.status, l.reason])).toEqual([
      ["digest", "valid", undefined],
      ["logFile", "invalid", "not checked"],
      ["logFile", "invalid", "not checked"],
      ["logFile", "invalid", "not checked"],
    ]);
  });

  it("remembered hashes are compared, the others fetched; only log-file names are remembered", async () => {
    const trail = trailOf(published);
    const store = storeOf(trail);
    const integrity = checker(store, new PublicKeys(keyList(() => [published])));
    const [first, second] = trail.logKeys as [string, string];
    const body = (key: string) => trail.objects.find((o) => o.key === key)?.body as Buffer;
    const { gunzipSync } = await import("node:zlib");
    integrity.noteLogFile(BUCKET, first as ObjectKey, sha256(gunzipSync(body(first))));
    integrity.noteLogFile(BUCKET, second as ObjectKey, "0".repeat(64)); // as if the file read had been altered
    integrity.noteLogFile(BUCKET, "notes/readme.json" as ObjectKey, "1".repeat(64));
    const lines = await check(integrity, trail.digestKeys[0] as string);
    expect(store.reads).toEqual([trail.digestKeys[0], trail.logKeys[2]]);
    expect(lines.map((l) => [l.kind, l.s3Object, l.status, l.reason])).toEqual([
      ["digest", trail.digestKeys[0], "valid", undefined],
      ["logFile", second, "invalid", "hash mismatch"],
    ]);
    expect(integrity.counts).toEqual({ digests: 1, problems: 1, remembered: 2, fetched: 1 });
  });

  it("a listed file whose read keeps failing for a reason that may pass fails the digest, with nothing written", async () => {
    const trail = trailOf(published);
    const store = storeOf(trail);
    const flaky = trail.logKeys[1] as string;
    let failing = true;
    const read = store.read.bind(store);
    store.read = async (bucket, key, use) => {
      if (key === flaky && failing) {
        store.reads.push(key);
        throw new FetchError("FetchFailed", "Failed to fetch: SlowDown", true, true);
      }
      return read(bucket, key, use);
    };
    const integrity = checker(store, new PublicKeys(keyList(() => [published])));
    const digest = trail.digestKeys[0] as string;
    const lines: IntegrityLine[] = [];
    const failed = await integrity
      .checkDigest(BUCKET, digest as ObjectKey, (line) => {
        lines.push(line);
      })
      .then(
        () => undefined,
        (error: unknown) => error,
      );
    expect(failed).toMatchObject({ code: "FetchFailed", transient: true });
    expect(lines).toEqual([]); // no `not checked` line, no digest line: the digest comes back whole
    expect(integrity.counts.problems).toBe(0);
    failing = false;
    expect((await check(integrity, digest)).map((l) => [l.kind, l.status])).toEqual([["digest", "valid"]]);
  });

  it("a key list that failed is asked for again by the next digest (live)", async () => {
    let calls = 0;
    const flaky = async (): Promise<PublicKey[]> => {
      calls++;
      if (calls === 1) throw Object.assign(new Error("throttled"), { name: "ThrottlingException" });
      return keyList(() => [published])();
    };
    const trail = trailOf(published);
    const integrity = checker(storeOf(trail), new PublicKeys(flaky, Date.now, true));
    const digest = trail.digestKeys[0] as string;
    // The failed list is no verdict: the digest fails transiently (SQS brings it back, or a dead letter says why).
    const failed = await check(integrity, digest).then(
      () => undefined,
      (error: unknown) => error,
    );
    expect(failed).toBeInstanceOf(FetchError);
    expect(failed).toMatchObject({ code: "FetchFailed", transient: true });
    expect((await check(integrity, digest))[0]).toMatchObject({ status: "valid" });
    expect(calls).toBe(2);
  });

  it("a key published after today's list was fetched is found by asking again (live), once a minute at most", async () => {
    let now = Date.parse("2024-03-10T11:05:00Z");
    let keys = [unpublished];
    let calls = 0;
    const list = async () => {
      calls++;
      return keyList(() => keys)();
    };
    const trail = trailOf(published);
    const integrity = checker(storeOf(trail), new PublicKeys(list, () => now, true));
    const digest = trail.digestKeys[0] as string;
    expect((await check(integrity, digest))[0]).toMatchObject({ status: "invalid", reason: "unknown key" });
    keys = [unpublished, published];
    expect((await check(integrity, digest))[0]).toMatchObject({ status: "invalid", reason: "unknown key" });
    expect(calls).toBe(1); // within the minute: not asked again
    now += 61_000;
    expect((await check(integrity, digest))[0]).toMatchObject({ status: "valid" });
    expect(calls).toBe(2);
  });
});
