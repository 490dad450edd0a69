// Shapes each event into its output line: the event's own bytes, plus `"@timestamp"` copied from `eventTime` so
// Elasticsearch's daily index and Kibana's time axis follow the event, not the moment it was shipped.
import type { OutputSink } from "./output.js";

export interface FormatOptions {
  /** Add `"@timestamp"` equal to `eventTime` (unless the event already has one). */
  timestamp: boolean;
}

const TIMESTAMP_OPEN = Buffer.from(',"@timestamp":"');
const LINE_CLOSE = Buffer.from('"}\n');

export type EventWriter = (event: Buffer, eventTime: Buffer | undefined, hasTimestamp: boolean) => void;

/** Returns the function that writes one scanned event to the sink. */
export function eventWriter(sink: OutputSink, options: FormatOptions): EventWriter {
  return (event, eventTime, hasTimestamp) => {
    if (!options.timestamp || eventTime === undefined || hasTimestamp) {
      const { buffer, at } = sink.reserve(event.length + 1);
      event.copy(buffer, at);
      buffer[at + event.length] = 0x0a;
      return;
    }
    // `{…}` becomes `{…,"@timestamp":"<eventTime>"}`: drop the closing brace, append the field and close again.
    const body = event.length - 1;
    const length = body + TIMESTAMP_OPEN.length + eventTime.length + LINE_CLOSE.length;
    const { buffer, at } = sink.reserve(length);
    let p = at + event.copy(buffer, at, 0, body);
    p += TIMESTAMP_OPEN.copy(buffer, p);
    p += eventTime.copy(buffer, p);
    LINE_CLOSE.copy(buffer, p);
  };
}
