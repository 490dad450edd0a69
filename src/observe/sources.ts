// Where /metrics and /readyz read from: the parts a command has built (its Filter, its SQS receive loops and acker,
// its spool, its sink). Every value is one the stats line or the summary already reads from the same object, so a
// scrape and the summary cannot disagree.

import { ForwardSink } from "../deliver/forward.js";
import type { SqsAcker } from "../deliver/sqs-acks.js";
import type { Spool } from "../input/spool.js";
import type { SqsSource } from "../input/sqs-receiver.js";
import type { Sink } from "../model/sink.js";
import type { Filter } from "../run/filter.js";
import type { Reading } from "./metrics.js";
import { type Check, forwardCheck, OutputWatch, receiveCheck } from "./readiness.js";

export interface Parts {
  /** The Filter, once made (`import` makes it after its listing starts); absent for `verify`, which has none. */
  filter?(): Filter | undefined;
  sink: Sink;
  /** The filter's --delete-sqs-messages, or the `sqs` command's. */
  acker?: SqsAcker;
  /** The `sqs` command's receive loops, with the limits its readiness depends on. */
  receiver?: { source: SqsSource; maxInFlight: number; waitTimeSeconds: number };
  spool?: Spool;
  /** `import`: files listed so far. */
  listed?(): number;
  /** `verify`: the Verifier's verdicts so far (the same counts its summary returns). */
  integrity?(): NonNullable<Reading["integrity"]>;
  /** --verify-integrity: the continuous check's counts so far (the same object its summary copies). */
  continuous?(): NonNullable<Reading["continuous"]>;
}

export function readingOf(parts: Parts): () => Reading {
  const { sink, acker, receiver, spool, listed, integrity, continuous } = parts;
  return () => {
    const filter = parts.filter?.();
    const source = receiver?.source;
    return {
      ...(filter === undefined
        ? {}
        : { filter: { counts: filter.counts().filter, ...filter.breakdown(), newestEventTime: filter.newest.text } }),
      ...(acker === undefined
        ? {}
        : {
            sqs: {
              deleted: acker.deletes,
              deleteFailures: acker.failures,
              ...(source === undefined
                ? { refused: acker.refused }
                : {
                    received: source.counts.received,
                    receiveFailures: source.counts.receiveFailures,
                    handedBack: acker.handedBack,
                    inFlight: messagesInFlight(source),
                  }),
            },
          }),
      ...(spool === undefined ? {} : { spool: spool.size }),
      ...(sink instanceof ForwardSink
        ? { forward: { ...sink.counts, unacknowledged: sink.pending, connected: sink.connected } }
        : {}),
      ...(listed === undefined ? {} : { listed: listed() }),
      ...(integrity === undefined ? {} : { integrity: integrity() }),
      ...(continuous === undefined ? {} : { continuous: { ...continuous() } }),
    };
  };
}

/** Received, less those finished and those handed back unstarted. */
function messagesInFlight(source: SqsSource): number {
  return source.counts.received - source.counts.finished - source.counts.handedBack;
}

/** What /readyz asks: the output is taken (stdout) or connected (forward), and the queue answers (`sqs`). */
export function checksOf(parts: Parts): Check[] {
  const checks: Check[] = [new OutputWatch(parts.sink).check];
  if (parts.sink instanceof ForwardSink) checks.push(forwardCheck(parts.sink, "the --output address"));
  const receiver = parts.receiver;
  if (receiver !== undefined) {
    const { source } = receiver;
    const progress = {
      get lastReceiveAt() {
        return source.lastReceiveAt;
      },
      inFlight: () => messagesInFlight(source),
    };
    checks.push(receiveCheck(progress, receiver.maxInFlight, receiver.waitTimeSeconds));
  }
  return checks;
}
