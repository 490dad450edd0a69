// Buffers with a spare byte after their end, which the scanner may use as its sentinel: marked by whoever allocates
// them (the fetch layer, the inflater), read by the scanner. Its own module so that transport does not import the
// parser for it.

/**
 * Buffers whose memory has at least one more byte after their end that nobody else uses (a dedicated allocation
 * made one byte larger, or zlib's output buffer of a finished one-shot inflate). The scanner writes its sentinel
 * there rather than copying the buffer.
 */
export const SPARE_TAIL = new WeakSet<Uint8Array>();

/** Marks `buffer` as having a spare byte after it, when it provably has (see SPARE_TAIL); returns it. */
export function markSpareTail(buffer: Buffer): Buffer {
  const end = buffer.byteOffset + buffer.length;
  // Small allocations share Node's 8 KiB pool: only a dedicated ArrayBuffer can be trusted past the end.
  if (buffer.buffer.byteLength >= 64 * 1024 && end < buffer.buffer.byteLength) SPARE_TAIL.add(buffer);
  return buffer;
}
