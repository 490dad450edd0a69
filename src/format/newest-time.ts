// The newest eventTime seen, for the stats line's lag (how far behind the trail the filter is). Fed the raw bytes of
// every written event's eventTime where the scanner hands them on: a few byte comparisons per event, no string made
// and no date parsed until the stats line asks.

/** Longer values are not times CloudTrail writes (`2023-07-10T12:00:05Z`, 20 bytes; with milliseconds, 24). */
const MAX_BYTES = 40;

export class NewestTime {
  private readonly newest = Buffer.alloc(MAX_BYTES);
  private length = 0;

  /**
   * Notes one eventTime, kept when it is later than the newest so far. ISO 8601 UTC times compare as strings, byte by
   * byte; the events of one file share their first dozen bytes or so, which is all this loop reads for most events.
   */
  note(time: Buffer): void {
    const n = time.length;
    if (n > MAX_BYTES) return;
    const newest = this.newest;
    const length = this.length;
    const common = Math.min(n, length);
    for (let i = 0; i < common; i++) {
      const a = time[i] as number;
      const b = newest[i] as number;
      if (a !== b) {
        if (a > b) this.keep(time);
        return;
      }
    }
    if (n > length) this.keep(time);
  }

  /** Notes a time given as text (what a scan worker reports for the objects it read). */
  noteText(time: string | undefined): void {
    if (time !== undefined) this.note(Buffer.from(time, "latin1"));
  }

  private keep(time: Buffer): void {
    time.copy(this.newest);
    this.length = time.length;
  }

  /** The newest eventTime as written, or undefined before the first. */
  get text(): string | undefined {
    return this.length === 0 ? undefined : this.newest.toString("latin1", 0, this.length);
  }
}
