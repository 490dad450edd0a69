// The pure parts of src/integrity/: digest key names, the chain's blame policy, which unlisted log files are judged,
// and where a local copy holds what a digest names. The end-to-end verdicts are test/system/verify.test.ts's.
import { describe, expect, it } from "vitest";
import {
  type CheckedDigest,
  coverage,
  judgedUnlisted,
  LATE_DELIVERY_MS,
  linkChains,
  logFileTime,
  objectId,
} from "../../src/integrity/chain.js";
import { type Digest, parseDigestName } from "../../src/integrity/digest.js";
import { localPlaces, S3_PLACES, VERIFY_KINDS } from "../../src/integrity/verify.js";
import type { BucketName, ObjectKey } from "../../src/model/names.js";

const B = "trail-bucket" as BucketName;
const key = (k: string) => k as ObjectKey;

describe("parseDigestName", () => {
  it.each([
    [
      "111122223333_CloudTrail-Digest_us-east-1_main_us-east-1_20240310T110000Z.json.gz",
      {
        account: "111122223333",
        region: "us-east-1",
        trail: "main",
        homeRegion: "us-east-1",
        day: "2024-03-10",
        backfill: false,
      },
    ],
    [
      "AWSLogs/o-abc/111122223333/CloudTrail-Digest/eu-west-1/2024/03/10/111122223333_CloudTrail-Digest_eu-west-1_my_org_trail_us-east-1_20240310T110000Z_backfill.json.gz",
      { region: "eu-west-1", trail: "my_org_trail", homeRegion: "us-east-1", backfill: true },
    ],
    [
      "111122223333_CloudTrail-Digest_us-east-1_t.1-x_us-gov-west-1_20240310T110000Z.json",
      { trail: "t.1-x", homeRegion: "us-gov-west-1" },
    ],
  ])("%s", (name, expected) => {
    expect(parseDigestName(name)).toMatchObject(expected);
  });

  it.each([
    "111122223333_CloudTrail_us-east-1_20240310T1100Z_abc.json.gz", // a log file
    "111122223333_CloudTrail-Digest_us-east-1_main_us-east-1_20240310T110000Z.json.gz.signature",
    "11112222333_CloudTrail-Digest_us-east-1_main_us-east-1_20240310T110000Z.json.gz", // 11 digits
    "111122223333_CloudTrail-Digest_US-EAST-1_main_us-east-1_20240310T110000Z.json.gz",
    "111122223333_CloudTrail-Digest_us-east-1_main_us-east-1_20240310T1100Z.json.gz", // no seconds
  ])("not a digest: %s", (name) => {
    expect(parseDigestName(name)).toBeUndefined();
  });

  it("VERIFY_KINDS keeps digests and log files, and not their sidecars", () => {
    expect(VERIFY_KINDS.types.has("CloudTrail-Digest")).toBe(true);
    expect(VERIFY_KINDS.keep("a/111122223333_CloudTrail_us-east-1_20240310T1100Z_abc.json.gz")).toBe(true);
    expect(VERIFY_KINDS.keep("a/111122223333_CloudTrail-Digest_us-east-1_t_us-east-1_20240310T110000Z.json.gz")).toBe(
      true,
    );
    expect(
      VERIFY_KINDS.keep("a/111122223333_CloudTrail-Digest_us-east-1_t_us-east-1_20240310T110000Z.json.gz.signature"),
    ).toBe(false);
    expect(
      VERIFY_KINDS.nameOf("a/111122223333_CloudTrail-Digest_us-east-1_t_us-east-1_20240311T000000Z.json.gz"),
    ).toMatchObject({
      day: "2024-03-11",
    });
  });
});

function checked(
  k: string,
  signature: string,
  previous?: { key: string; signature: string; hash?: string },
  sha256 = "a".repeat(64),
): CheckedDigest {
  const name = parseDigestName("111122223333_CloudTrail-Digest_us-east-1_t_us-east-1_20240310T110000Z.json.gz");
  if (name === undefined) throw new Error("name");
  const digest = {
    startMs: 0,
    endMs: 3 * 3_600_000, // three hours
    previousDigestSignature: previous?.signature ?? null,
    previous: previous === undefined ? undefined : { bucket: B, key: key(previous.key), hashValue: previous.hash },
  } as unknown as Digest;
  return { bucket: B, key: key(k), name, digest, signature, sha256, status: "valid" };
}

describe("linkChains: a link that does not hold counts against the earlier digest", () => {
  it("a chain that holds: nothing marked, nothing to read", () => {
    const a = checked("d1", "s1");
    const b = checked("d2", "s2", { key: "d1", signature: "s1", hash: "a".repeat(64) });
    const all = new Map([a, b].map((d) => [objectId(d.bucket, d.key), d]));
    expect(linkChains(all)).toEqual([]);
    expect([a.status, b.status]).toEqual(["valid", "valid"]);
  });

  it("another signature recorded: the earlier one is chain broken, the later one stays valid", () => {
    const a = checked("d1", "s1");
    const b = checked("d2", "s2", { key: "d1", signature: "other" });
    linkChains(new Map([a, b].map((d) => [objectId(d.bucket, d.key), d])));
    expect(a).toMatchObject({ status: "invalid", reason: "chain broken" });
    expect(b.status).toBe("valid");
  });

  it("other content recorded (previousDigestHashValue): chain broken", () => {
    const a = checked("d1", "s1");
    const b = checked("d2", "s2", { key: "d1", signature: "s1", hash: "b".repeat(64) });
    linkChains(new Map([a, b].map((d) => [objectId(d.bucket, d.key), d])));
    expect(a).toMatchObject({ status: "invalid", reason: "chain broken" });
  });

  it("a previous digest not among them is returned to be read, with what each digest recorded", () => {
    const b = checked("d2", "s2", { key: "d1", signature: "s1" });
    const outside = linkChains(new Map([[objectId(B, key("d2")), b]]));
    expect(outside).toHaveLength(1);
    expect(outside[0]).toMatchObject({ key: "d1", namedBy: [{ signature: "s1" }] });
  });
});

describe("which unlisted log files are judged", () => {
  const spans = coverage([checked("d1", "s1")]);
  it.each([
    [-1, false, "before the first digest's start"],
    [0, true, "at its start"],
    [3 * 3_600_000 - LATE_DELIVERY_MS - 1, true, "before the last hour"],
    [3 * 3_600_000 - LATE_DELIVERY_MS, false, "in the last hour (its digest may not be written yet)"],
    [3 * 3_600_000, false, "after the last digest's end"],
  ])("%d ms: %s (%s)", (at, judged) => {
    expect(judgedUnlisted("111122223333", "us-east-1", at, spans)).toBe(judged);
  });
  it("an account and region with no digests: not judged", () => {
    expect(judgedUnlisted("999999999999", "us-east-1", 10, spans)).toBe(false);
  });
  it("logFileTime reads the minute in a log file's name; Insight files have none", () => {
    expect(logFileTime("x/111122223333_CloudTrail_us-east-1_20240310T1025Z_abc.json.gz")).toBe(
      Date.parse("2024-03-10T10:25:00Z"),
    );
    expect(logFileTime("x/111122223333_CloudTrail-Insight_us-east-1_20240310T1025Z_abc.json.gz")).toBeUndefined();
  });
});

describe("places: where the objects a digest names are read", () => {
  const digest = {
    digestS3Bucket: "trail-bucket",
    digestS3Object: "prefix/AWSLogs/111122223333/CloudTrail-Digest/us-east-1/2024/03/10/d.json.gz",
  } as Digest;
  it("S3: as named; the digest must be read from its own bucket and key", () => {
    expect(S3_PLACES.locate(B, key("k"), key("n"))).toEqual({ bucket: B, key: "k" });
    expect(S3_PLACES.isAt(digest, B, key(digest.digestS3Object))).toBe(true);
    expect(
      S3_PLACES.isAt(digest, B, key("AWSLogs/111122223333/CloudTrail-Digest/us-east-1/2024/03/10/d.json.gz")),
    ).toBe(false);
    expect(S3_PLACES.isAt(digest, "other-bucket" as BucketName, key(digest.digestS3Object))).toBe(false);
  });
  it.each([
    [
      "the prefix left out",
      "copy/AWSLogs/111122223333/CloudTrail-Digest/us-east-1/2024/03/10/d.json.gz",
      "copy/AWSLogs/111122223333/CloudTrail/us-east-1/2024/03/10/l.json.gz",
    ],
    [
      "the prefix kept",
      "copy/prefix/AWSLogs/111122223333/CloudTrail-Digest/us-east-1/2024/03/10/d.json.gz",
      "copy/prefix/AWSLogs/111122223333/CloudTrail/us-east-1/2024/03/10/l.json.gz",
    ],
  ])("a local copy (%s): beside the digest, from AWSLogs/ on", (_, near, expected) => {
    const places = localPlaces("local-copy" as BucketName);
    expect(
      places.locate(B, key("prefix/AWSLogs/111122223333/CloudTrail/us-east-1/2024/03/10/l.json.gz"), key(near)),
    ).toEqual({
      bucket: "local-copy",
      key: expected,
    });
    expect(places.isAt(digest, B, key(near))).toBe(true);
    expect(places.isAt(digest, B, key(near.replace("/10/", "/11/")))).toBe(false);
    expect(places.file(key(near))).toBe(`/${near}`);
  });
});
