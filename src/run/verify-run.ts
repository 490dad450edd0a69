// The `verify` command's run around its Verifier (integrity/verify.ts): progress on stderr, the verdicts written,
// the summary in the log, and how it ended, which the command turns into its exit code.
import type { OutputSink } from "../deliver/output.js";
import { KeysUnavailable, type Verifier } from "../integrity/verify.js";
import type { Checkpoint } from "../listing/checkpoint.js";
import { ListError } from "../listing/listers.js";
import { Progress } from "../listing/progress.js";
import type { Host } from "../shared/host.js";
import type { Logger } from "../shared/log.js";

export interface VerifyRunDeps {
  verifier: Verifier;
  sink: OutputSink;
  log: Logger;
  host: Pick<Host, "stderr" | "cpuMicros">;
  checkpoint?: Checkpoint;
  /** A local copy's directory is checked first (a listing that fails: exit 1). */
  checkDirectory?: () => Promise<void>;
}

/**
 * valid: everything checked is; problems: a file is invalid, missing or unlisted; failed: nothing more could be judged
 * (a listing or ListPublicKeys failed, said on stderr); interrupted: a signal stopped it.
 */
export type VerifyEnd = "valid" | "problems" | "failed" | "interrupted";

export async function runVerifier(deps: VerifyRunDeps): Promise<VerifyEnd> {
  const { verifier, sink, log, host, checkpoint } = deps;
  const progress = new Progress(
    verifier.counts,
    { tty: host.stderr.isTTY, write: (text) => host.stderr.write(text) },
    log,
  );
  const started = Date.now();
  progress.start();
  let summary: Awaited<ReturnType<typeof verifier.run>>;
  try {
    await deps.checkDirectory?.();
    summary = await verifier.run();
  } catch (error) {
    // A listing that failed, or ListPublicKeys: nothing more can be judged; exit 1 with the reason on stderr.
    progress.stop();
    const message = error instanceof Error ? error.message : String(error);
    const known = error instanceof ListError || error instanceof KeysUnavailable;
    log.error(known ? "verify failed" : "fatal", {
      message,
      ...(known ? {} : { error: error instanceof Error ? error.stack : message }),
    });
    await sink.end();
    checkpoint?.close();
    host.stderr.write(`error: ${message}\n`);
    return "failed";
  }
  progress.stop();
  await sink.end();
  await new Promise((resolve) => setImmediate(resolve)); // the checkpoint's last lines, added once written
  checkpoint?.close();
  const { problems, ...counts } = summary;
  log.info("summary", {
    ...counts,
    problems,
    filesRead: verifier.counts.objects,
    mb: Math.round((verifier.counts.bytes / 2 ** 20) * 10) / 10,
    seconds: (Date.now() - started) / 1000,
    cpuSeconds: Math.round(host.cpuMicros() / 1000) / 1000,
  });
  return summary.interrupted ? "interrupted" : problems ? "problems" : "valid";
}
