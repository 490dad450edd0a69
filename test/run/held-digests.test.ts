// import --verify-integrity: digests listed before their log files (S3 lists an account's CloudTrail-Digest/ before
// its CloudTrail/) are held until the log files they list have been handed over, and no longer.
import { describe, expect, it } from "vitest";
import { HeldDigests, type ListedObject } from "../../src/run/importer.js";

const entry = (name: string): ListedObject => ({ key: name, size: 1, url: `s3://b/${name}` });
const keys = (entries: Iterable<ListedObject>): string[] => [...entries].map((e) => e.key);

describe("HeldDigests", () => {
  it("a digest of day D goes once the log files of its account and region reach day D + 2", () => {
    const held = new HeldDigests();
    held.hold(entry("d-10"), "111 us-east-1", "2024-03-10");
    held.hold(entry("d-11"), "111 us-east-1", "2024-03-11");
    held.hold(entry("d-12"), "111 us-east-1", "2024-03-12");
    expect(keys(held.before("111 us-east-1", "2024-03-10"))).toEqual([]);
    expect(keys(held.before("111 us-east-1", "2024-03-11"))).toEqual([]);
    expect(keys(held.before("111 us-east-1", "2024-03-12"))).toEqual(["d-10"]);
    expect(keys(held.before("111 us-east-1", "2024-03-12"))).toEqual([]);
    expect(keys(held.before("111 us-east-1", "2024-03-14"))).toEqual(["d-11", "d-12"]);
    expect(keys(held.all())).toEqual([]);
  });

  it("moving to another account or region hands over the previous one's digests; the rest go at the end", () => {
    const held = new HeldDigests();
    held.hold(entry("a-east"), "111 us-east-1", "2024-03-10");
    held.hold(entry("a-west"), "111 us-west-2", "2024-03-10");
    held.hold(entry("b-east"), "222 us-east-1", "2024-03-10");
    expect(keys(held.before("111 us-east-1", "2024-03-10"))).toEqual([]);
    expect(keys(held.before("111 us-west-2", "2024-03-10"))).toEqual(["a-east"]);
    expect(keys(held.all())).toEqual(["a-west", "b-east"]);
    expect(keys(held.all())).toEqual([]);
  });
});
