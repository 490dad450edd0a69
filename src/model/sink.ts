// What the Filter writes its records to: stdout (output.ts) or a fluentd over the Forward protocol (forward.ts).
// Both take formatted bytes the same way and both say when what was written is safe: `written()` is the moment an
// input record counts as delivered, and SQS deletes, the spool and the import checkpoint wait for it.

export interface Sink {
  /**
   * Reserves `length` bytes and returns the buffer and offset to write them at. The caller must fill exactly that
   * many bytes before yielding to the event loop.
   */
  reserve(length: number): { buffer: Buffer; at: number };
  /** Appends bytes already in the output format (a scan worker's output): `records` of them. */
  writeBytes(bytes: Buffer, records?: number): void;
  /** Appends a record built in code (a dead letter, with its `_tag`) in the output format. */
  writeJson(value: Record<string, unknown>): void;
  /** Resolves when the sink can take more; producers await this between chunks. */
  ready(): Promise<void>;
  /**
   * Resolves once everything appended so far is delivered: handed to the pipe (stdout), acknowledged by fluentd
   * (forward). False when it never will be (shutdown): the records are unfinished.
   */
  written(): Promise<boolean>;
  /** Sends what is batched and waits until it is delivered. */
  end(): Promise<void>;
  /** Shutdown deadline: stop delivering; everyone waiting on `written()` hears false. */
  abandon(): void;
  /** Bytes of records written (padding and framing not counted). */
  readonly bytesOut: number;
}
