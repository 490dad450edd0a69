// The public keys CloudTrail signs digests with, from its ListPublicKeys API, per region and per day of digest end
// time (one call, or a few pages, per region and day however many digests), and the one a digest names by its
// `digestPublicKeyFingerprint`, valid at the digest's end time.
// https://docs.aws.amazon.com/awscloudtrail/latest/APIReference/API_ListPublicKeys.html
import type { KeyObject } from "node:crypto";
import type { Region } from "../model/names.js";
import { publicKeyFromDer } from "./signature.js";

/** One key as ListPublicKeys gives it. */
export interface PublicKey {
  /** Lowercase hex, as digests name it. */
  fingerprint: string;
  der: Uint8Array;
  validFromMs: number | undefined;
  validUntilMs: number | undefined;
}

/** ListPublicKeys for a region and a time range, every page. Tests hand in their own; the command uses the SDK's. */
export type ListPublicKeys = (region: Region, startMs: number, endMs: number) => Promise<PublicKey[]>;

/** Pages of one ListPublicKeys call, at most: AWS returns a handful of keys per region; more is not its answer. */
const MAX_PAGES = 100;

/** ListPublicKeys through the SDK's CloudTrail client for `region`. */
export function sdkListPublicKeys(
  clientFor: (region: Region) => Promise<import("@aws-sdk/client-cloudtrail").CloudTrailClient>,
): ListPublicKeys {
  return async (region, startMs, endMs) => {
    const [{ ListPublicKeysCommand }, client] = await Promise.all([
      import("@aws-sdk/client-cloudtrail"),
      clientFor(region),
    ]);
    const keys: PublicKey[] = [];
    let token: string | undefined;
    for (let page = 0; page < MAX_PAGES; page++) {
      const output = await client.send(
        new ListPublicKeysCommand({
          StartTime: new Date(startMs),
          EndTime: new Date(endMs),
          ...(token === undefined ? {} : { NextToken: token }),
        }),
      );
      for (const key of output.PublicKeyList ?? []) {
        if (key.Fingerprint === undefined || key.Value === undefined) continue;
        keys.push({
          fingerprint: key.Fingerprint.toLowerCase(),
          der: key.Value,
          validFromMs: key.ValidityStartTime?.getTime(),
          validUntilMs: key.ValidityEndTime?.getTime(),
        });
      }
      token = output.NextToken;
      if (token === undefined || token === "") break;
    }
    return keys;
  };
}

/** The key, or why there is none (reported as "unknown key" with this detail). */
export type KeyLookup = { key: KeyObject } | { detail: string };

const DAY_MS = 86_400_000;

/**
 * A long-running reader (the filter's --verify-integrity) asks again where a one-off run would not: after a failed
 * call (a blip must not leave a day unjudgeable until restart), and for today's keys when a digest names one not in
 * them (a key published after the list was fetched), at most once per LIVE_REFRESH_MS.
 */
const LIVE_REFRESH_MS = 60_000;

/**
 * Region-days a live reader keeps (a digest's region and day come from objects in the allowed buckets): a year of 30
 * regions is 11,000; past this the lists are forgotten and fetched again when asked, so planted digests naming many
 * days cost calls, not memory.
 */
const LIVE_DAYS_MAX = 16_384;

export class PublicKeys {
  /**
   * Per `region day`: the keys, or the failure (a call that failed is not repeated for every digest of the day), and
   * when they were fetched if the day was not over then (live only).
   */
  private readonly days = new Map<string, { keys: Promise<PublicKey[]>; fetchedAt: number | undefined }>();
  private readonly parsed = new Map<string, KeyObject | undefined>();
  /** ListPublicKeys calls made. */
  calls = 0;

  constructor(
    private readonly list: ListPublicKeys,
    private readonly now: () => number = Date.now,
    /** Forget failures and refresh a day not over yet (LIVE_REFRESH_MS): for a process that runs for days. */
    private readonly live = false,
  ) {}

  private keysOf(region: Region, atMs: number, refresh = false): Promise<PublicKey[]> {
    const dayStart = Math.floor(atMs / DAY_MS) * DAY_MS;
    const id = `${region} ${dayStart}`;
    const day = this.days.get(id);
    const fetchedAt = day?.fetchedAt;
    const stale = refresh && fetchedAt !== undefined && this.now() - fetchedAt >= LIVE_REFRESH_MS;
    if (day !== undefined && !stale) return day.keys;
    if (this.live && this.days.size >= LIVE_DAYS_MAX) this.days.clear();
    this.calls++;
    const now = this.now();
    // The range ends no later than now: AWS refuses an EndTime in the future.
    const keys = this.list(region, dayStart, Math.max(dayStart, Math.min(dayStart + DAY_MS - 1, now)));
    const open = this.live && dayStart + DAY_MS - 1 > now;
    this.days.set(id, { keys, fetchedAt: open ? now : undefined });
    if (this.live) {
      keys.catch(() => {
        if (this.days.get(id)?.keys === keys) this.days.delete(id);
      });
    }
    return keys;
  }

  /**
   * The key with `fingerprint` that was valid at `atMs`, from `region`'s keys, else from `homeRegion`'s (the trail's
   * home region, for a multi-region trail's digests). Throws when ListPublicKeys failed.
   */
  async find(region: Region, homeRegion: Region, fingerprint: string, atMs: number): Promise<KeyLookup> {
    const first = await this.findIn(region, homeRegion, fingerprint, atMs, false);
    return this.live && "detail" in first ? this.findIn(region, homeRegion, fingerprint, atMs, true) : first;
  }

  private async findIn(
    region: Region,
    homeRegion: Region,
    fingerprint: string,
    atMs: number,
    refresh: boolean,
  ): Promise<KeyLookup> {
    let named: PublicKey | undefined;
    for (const where of region === homeRegion ? [region] : [region, homeRegion]) {
      for (const key of await this.keysOf(where, atMs, refresh)) {
        if (key.fingerprint !== fingerprint) continue;
        named = key;
        const after = key.validFromMs === undefined || key.validFromMs <= atMs;
        const before = key.validUntilMs === undefined || atMs <= key.validUntilMs;
        if (!after || !before) continue;
        const parsed = this.parse(key);
        if (parsed === undefined) return { detail: "the public key CloudTrail gave is not a PKCS#1 RSA key" };
        return { key: parsed };
      }
    }
    return named === undefined
      ? { detail: `CloudTrail published no key with fingerprint ${fingerprint}` }
      : { detail: `the key ${fingerprint} was not valid at the digest's end time` };
  }

  private parse(key: PublicKey): KeyObject | undefined {
    if (!this.parsed.has(key.fingerprint)) {
      let parsed: KeyObject | undefined;
      try {
        parsed = publicKeyFromDer(key.der);
      } catch {
        parsed = undefined;
      }
      this.parsed.set(key.fingerprint, parsed);
    }
    return this.parsed.get(key.fingerprint);
  }
}
