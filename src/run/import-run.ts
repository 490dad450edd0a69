// The `import` command's runs: how each starts (signals, a local directory checked), then --list (the URLs of the
// files on stdout, their count and size in the log) or the import itself (the Importer's Filter, progress on stderr, a
// summary); --enqueue is enqueue-run.ts. Each returns the exit code; a listing that fails ends the run through
// `listingFailed` (exit 1).
import type { Checkpoint } from "../listing/checkpoint.js";
import { Progress } from "../listing/progress.js";
import type { Sink } from "../model/sink.js";
import type { Host } from "../shared/host.js";
import type { Logger } from "../shared/log.js";
import type { FilterDeps } from "./filter.js";
import type { Importer } from "./importer.js";
import { reportRun } from "./stats.js";

export interface ImportRunDeps {
  importer: Importer;
  sink: Sink;
  log: Logger;
  host: Pick<Host, "stderr" | "maxRssBytes" | "rssBytes">;
  /** Reports a failed listing and exits 1. */
  listingFailed: (error: unknown) => never;
}

/**
 * How every run of import starts: a signal stops the listing (the first) or abandons the work in flight too (a second,
 * or --shutdown-timeout later); then a local directory is checked, a failure ending the run as a failed listing does.
 */
export async function beginImport(
  deps: ImportRunDeps,
  start: {
    onSignals: (stop: () => void, abandon: () => void) => void;
    /** The sink is fluentd's in_forward: acknowledgements are no longer awaited once abandoned. */
    forwarding: boolean;
    checkDirectory?: () => Promise<void>;
  },
): Promise<void> {
  const { importer, sink } = deps;
  start.onSignals(
    () => importer.stop(),
    () => {
      importer.abortInFlight();
      if (start.forwarding) sink.abandon(); // acknowledgements no longer awaited
    },
  );
  await start.checkDirectory?.().catch(deps.listingFailed);
}

/**
 * `--list`: the URLs on stdout, one a line. Their count and size go to the log, and to stderr too when it is a
 * terminal and the log is elsewhere (`logsElsewhere`: --log-file).
 */
export async function listFiles(deps: ImportRunDeps, logsElsewhere: boolean): Promise<number> {
  const { importer, sink, log, host } = deps;
  const started = Date.now();
  const listed = await importer
    .list((object) => {
      sink.writeBytes(Buffer.from(`${object.url}\n`, "utf8"));
      return sink.ready();
    })
    .catch(deps.listingFailed);
  await sink.end();
  const mb = Math.round((listed.bytes / 2 ** 20) * 10) / 10;
  log.info("listed", { ...listed, mb, seconds: (Date.now() - started) / 1000 });
  if (host.stderr.isTTY && logsElsewhere) {
    host.stderr.write(`${listed.objects} objects, ${mb} MB\n`);
  }
  return 0;
}

/** The import: every listed file through the Importer's Filter to the sink, progress on stderr, then the summary. */
export async function importFiles(
  deps: ImportRunDeps,
  filterDeps: Omit<FilterDeps, "hooks">,
  checkpoint: Checkpoint | undefined,
  /** Seconds between stats lines (the filter's and sqs's line, run/stats.ts); 0: none. */
  statsInterval: number,
): Promise<number> {
  const { importer, sink, log, host } = deps;
  const report = reportRun({ log, host, statsIntervalSeconds: statsInterval, counts: () => importer.counts() });
  const progress = new Progress(
    importer.progress,
    { tty: host.stderr.isTTY, write: (text) => host.stderr.write(text) },
    log,
  );
  progress.start();
  const { listingError } = await importer.run(filterDeps);
  report.stop();
  progress.stop();
  await sink.end();
  checkpoint?.close();
  log.info("summary", report.summary());
  if (listingError !== undefined) deps.listingFailed(listingError);
  return 0;
}
