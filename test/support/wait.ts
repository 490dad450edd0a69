// Waiting in tests for something a spawned process or a server does: polled, with a deadline that names what was awaited.

/** Polls `condition` every 50 ms; throws after `timeoutMs` with `what` and, if given, `detail()` (e.g. a log tail). */
export async function waitUntil(
  what: string,
  condition: () => boolean,
  timeoutMs: number,
  detail?: () => string,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${detail ? `\n${detail()}` : ""}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
