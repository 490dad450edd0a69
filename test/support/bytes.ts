// Helpers for tests that feed bytes in pieces.

/** Cuts `buffer` at the given offsets (duplicates, 0 and offsets at or past the end are ignored). */
export function cut(buffer: Buffer, at: number[]): Buffer[] {
  const points = [...new Set(at)].filter((p) => p > 0 && p < buffer.length).sort((a, b) => a - b);
  const chunks: Buffer[] = [];
  let start = 0;
  for (const p of points) {
    chunks.push(buffer.subarray(start, p));
    start = p;
  }
  chunks.push(buffer.subarray(start));
  return chunks;
}

/** A seeded PRNG (mulberry32) in [0, 1): the same sequence on every run, so a failure can be replayed. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
