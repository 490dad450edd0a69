// Where the scanner may put its sentinel (the quote after the last byte that lets its loops run without a bounds test)
// instead of copying an object's bytes: in a spare byte of memory this program allocated itself, or, for a buffer it
// holds the only view of, in the buffer's own last byte for the time of the scan. Whoever allocates says which (the
// fetch layer, the inflater); the scanner asks. Its own module so that transport does not import the parser for it,
// and so is the size up to which an object's stored bytes are read into one such buffer.
//
// Nothing here infers ownership from sizes or offsets: Node's pools change between releases (Node 24 hands out
// `Buffer.from` and `allocUnsafe` from a 64 KiB pool, where Node 20's was 8 KiB), so memory counts as this program's
// only when this module allocated it or its allocator said so.

/** The memory of buffers made by allocWithSpareTail: dedicated allocations that no other view is made of. */
const OWN_MEMORY = new WeakSet<ArrayBufferLike>();

/**
 * `size` bytes in an allocation of their own, one byte larger: the byte after them is nobody's, and the scanner writes
 * its sentinel there (hasSpareTail). A view of the first bytes (`subarray(0, n)`) has the same property.
 */
export function allocWithSpareTail(size: number): Buffer {
  const memory = Buffer.allocUnsafeSlow(size + 1);
  OWN_MEMORY.add(memory.buffer);
  return memory.subarray(0, size);
}

/**
 * Objects whose stored bytes fit in this many are read whole and inflated in one call on the thread pool: the usual
 * CloudTrail file is a few KB to a few MB, and one call per object lets the pool inflate the next objects while the
 * main thread scans this one. Larger objects are streamed.
 *
 * Here, next to the allocation a whole object is read into, because both sides apply it: fetch/ reads an object of
 * this size or less into one buffer, and inflate gathers a stream's first bytes up to it; neither imports the other.
 */
export const WHOLE_STORED_MAX = 4 * 1024 * 1024;

/** True when the byte after `buffer` is in memory allocWithSpareTail made and outside every view it handed out. */
export function hasSpareTail(buffer: Uint8Array): boolean {
  return OWN_MEMORY.has(buffer.buffer) && buffer.byteOffset + buffer.length < buffer.buffer.byteLength;
}

/**
 * Buffers this program holds the only view of, though their memory may be shared (zlib's result of a one-shot
 * inflate: a view of the engine's output buffer or of a pooled slab, whose other bytes belong to others). The scanner
 * may borrow their last byte for its sentinel while it reads and puts it back before it returns: it never writes past
 * their end.
 */
const EXCLUSIVE = new WeakSet<Uint8Array>();

/** Marks `buffer` as held by this view alone (see EXCLUSIVE); returns it. */
export function markExclusive(buffer: Buffer): Buffer {
  EXCLUSIVE.add(buffer);
  return buffer;
}

export function isExclusive(buffer: Uint8Array): boolean {
  return EXCLUSIVE.has(buffer);
}

/**
 * Buffers whose memory was allocated for them alone, whole, by a call this program made and asked for that size (the
 * inflater's one-shot result, `inflate.ts`), and that nothing else views: `release` may free that memory at once.
 */
const DEDICATED = new WeakSet<Uint8Array>();

/** Marks `buffer` as the only view of memory allocated for it alone (see DEDICATED); returns it. */
export function markDedicated(buffer: Buffer): Buffer {
  DEDICATED.add(buffer);
  return buffer;
}

/**
 * Frees a dedicated buffer's memory now (the caller is done with every byte), instead of whenever the garbage
 * collector sweeps it. Why: an inflated object is a fresh allocation of 0.1-30 MB; freed at once, the next object's
 * lands in memory the process already has, while left to the collector (Node 24 frees array buffers later than 22)
 * nearly every page of every object was a new page fault: 15,000 against 7,000 per 200 objects, about a tenth of the
 * filter's CPU on Node 24 (bench/README.md). Anything not marked is left alone; on a Node without
 * `ArrayBuffer.prototype.transfer` (20) this does nothing.
 */
export function release(buffer: Uint8Array): void {
  if (!DEDICATED.delete(buffer)) return;
  const memory = buffer.buffer as ArrayBuffer & { transfer?: (length: number) => ArrayBuffer };
  memory.transfer?.(0);
}
