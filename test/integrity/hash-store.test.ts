// The store of log-file hashes behind --verify-integrity: bounded in memory and on disk, surviving a reopen, and
// loading whatever a kill or a hostile key left in its file without refusing to start.
import { appendFileSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { HASHES_MAX, HashStore } from "../../src/integrity/hash-store.js";
import type { BucketName, ObjectKey } from "../../src/model/names.js";

const bucket = "trail-bucket" as BucketName;
const key = (n: number): ObjectKey =>
  `AWSLogs/111122223333/CloudTrail/us-east-1/2024/03/10/111122223333_CloudTrail_us-east-1_20240310T1000Z_${n}.json.gz` as ObjectKey;
const hash = (n: number): string => n.toString(16).padStart(64, "0");

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "ctef-hashes-"));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

const lines = (): string[] => readFileSync(join(dir, "integrity-hashes"), "utf8").split("\n").filter(Boolean);

describe("HashStore", () => {
  it("remembers a hash by bucket and key, and forgets at exit when in memory", () => {
    const store = HashStore.memory();
    store.add(bucket, key(1), hash(1));
    expect(store.get(bucket, key(1))).toBe(hash(1));
    expect(store.get("other-bucket" as BucketName, key(1))).toBeUndefined();
    expect(store.get(bucket, key(2))).toBeUndefined();
    expect(HashStore.memory().get(bucket, key(1))).toBeUndefined();
  });

  it("keeps at most `max` hashes, the oldest going first; a read again is the newest", () => {
    const store = HashStore.memory(3);
    for (const n of [1, 2, 3]) store.add(bucket, key(n), hash(n));
    store.add(bucket, key(1), hash(11)); // read again (changed): the newest now
    store.add(bucket, key(4), hash(4));
    expect(store.size).toBe(3);
    expect(store.get(bucket, key(2))).toBeUndefined();
    expect([1, 3, 4].map((n) => store.get(bucket, key(n)))).toEqual([hash(11), hash(3), hash(4)]);
    expect(HASHES_MAX).toBe(100_000);
  });

  it("survives a reopen, keys of any character included", () => {
    const odd = "AWSLogs/a b+c%2B/ü/é\u00a0x.json.gz" as ObjectKey;
    const store = HashStore.open(dir);
    store.add(bucket, key(1), hash(1));
    store.add(bucket, odd, hash(2));
    store.close();
    const again = HashStore.open(dir);
    expect(again.get(bucket, key(1))).toBe(hash(1));
    expect(again.get(bucket, odd)).toBe(hash(2));
    expect(again.skippedOnLoad).toBe(0);
    again.close();
  });

  it("does not remember a key longer than a CloudTrail key can be (a GET later instead)", () => {
    const store = HashStore.open(dir);
    const long = `AWSLogs/${"k".repeat(600)}` as ObjectKey;
    store.add(bucket, long, hash(1));
    expect(store.get(bucket, long)).toBeUndefined();
    store.close();
    expect(statSync(join(dir, "integrity-hashes")).size).toBe(0);
  });

  it("the file holds at most twice `max` entries: past that it is rewritten with the live ones", () => {
    const store = HashStore.open(dir, 10);
    for (let n = 0; n < 100; n++) store.add(bucket, key(n % 15), hash(n));
    expect(lines().length).toBeLessThanOrEqual(20);
    store.close();
    const again = HashStore.open(dir, 10);
    expect(again.size).toBe(10);
    // The ten newest: n = 90..99, keys 0..14 taken modulo.
    for (let n = 90; n < 100; n++) expect(again.get(bucket, key(n % 15))).toBe(hash(n));
    again.close();
  });

  it("a file over the bound when opened (another max, or written by hand) is compacted on open", () => {
    const text = Array.from({ length: 50 }, (_, n) => `${hash(n)} ${bucket} ${encodeURIComponent(key(n))}\n`).join("");
    writeFileSync(join(dir, "integrity-hashes"), text);
    const store = HashStore.open(dir, 10);
    expect(store.size).toBe(10);
    expect(lines()).toHaveLength(10);
    expect(store.get(bucket, key(49))).toBe(hash(49));
    store.close();
  });

  it.each([
    ["a torn last line", `${hash(9).slice(0, 30)}`],
    ["a line that is not an entry", "garbage here\n"],
    ["a bad hash", `${"z".repeat(64)} ${bucket} x\n`],
    ["a bucket that is not one", `${hash(9)} Not_A_Bucket x\n`],
    ["a key that does not decode", `${hash(9)} ${bucket} %E0%A4%A\n`],
    ["a key with a control character", `${hash(9)} ${bucket} a%0Ab\n`],
    ["a line far past the longest entry", `${"a".repeat(3 * 1024 * 1024)}\n`],
    ["binary bytes", "\u0000\u00ff\u0001\n"],
  ])("loads past %s, keeping every good entry around it", (_, junk) => {
    const good = (n: number) => `${hash(n)} ${bucket} ${encodeURIComponent(key(n))}\n`;
    const path = join(dir, "integrity-hashes");
    writeFileSync(path, good(1));
    appendFileSync(path, junk);
    // A torn line is only ever the last one; the others are followed by good entries.
    if (junk.endsWith("\n")) appendFileSync(path, good(2));
    const store = HashStore.open(dir);
    expect(store.skippedOnLoad).toBe(1);
    expect(store.get(bucket, key(1))).toBe(hash(1));
    if (junk.endsWith("\n")) expect(store.get(bucket, key(2))).toBe(hash(2));
    store.add(bucket, key(3), hash(3));
    store.close();
    expect(HashStore.open(dir).get(bucket, key(3))).toBe(hash(3));
  });
});
