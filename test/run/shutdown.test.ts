// The one shutdown of every runner (src/run/shutdown.ts), run without a process: a host whose signals the test sends.
// A signal before a runner says how to stop is kept and handled then; the first stops, a second (or the timeout)
// abandons; each runner that asks hears every later signal.
import { describe, expect, it } from "vitest";
import { ShutdownSignals } from "../../src/run/shutdown.js";
import type { Logger } from "../../src/shared/log.js";

function fakeHost() {
  const listeners = new Map<NodeJS.Signals, ((signal: NodeJS.Signals) => void)[]>();
  return {
    onSignal(signal: NodeJS.Signals, listener: (signal: NodeJS.Signals) => void) {
      listeners.set(signal, [...(listeners.get(signal) ?? []), listener]);
    },
    send(signal: NodeJS.Signals) {
      for (const listener of listeners.get(signal) ?? []) listener(signal);
    },
    listening: () => [...listeners.keys()].sort(),
  };
}

function memoryLog() {
  const lines: { msg: string; context: unknown }[] = [];
  const log: Logger = {
    debug: () => {},
    info: (msg, context) => lines.push({ msg, context }),
    warn: (msg, context) => lines.push({ msg, context }),
    error: (msg, context) => lines.push({ msg, context }),
  };
  return { log, lines };
}

describe("ShutdownSignals", () => {
  it("listens to SIGTERM and SIGINT from the start", () => {
    const host = fakeHost();
    new ShutdownSignals(host);
    expect(host.listening()).toEqual(["SIGINT", "SIGTERM"]);
  });

  it("keeps a signal that came before a runner said how to stop, and handles it then", () => {
    const host = fakeHost();
    const signals = new ShutdownSignals(host);
    host.send("SIGTERM");
    const { log, lines } = memoryLog();
    const calls: string[] = [];
    const signalled = signals.on(
      undefined,
      log,
      () => calls.push("stop"),
      () => calls.push("abandon"),
    );
    expect(calls).toEqual(["stop"]);
    expect(signalled()).toBe(true);
    expect(lines).toEqual([{ msg: "stopping", context: { signal: "SIGTERM" } }]);
  });

  it("stops at the first signal and abandons at the second", () => {
    const host = fakeHost();
    const signals = new ShutdownSignals(host);
    const { log, lines } = memoryLog();
    const calls: string[] = [];
    const signalled = signals.on(
      5,
      log,
      () => calls.push("stop"),
      () => calls.push("abandon"),
    );
    expect(signalled()).toBe(false);
    host.send("SIGINT");
    expect(calls).toEqual(["stop"]);
    expect(lines).toEqual([{ msg: "stopping", context: { signal: "SIGINT", shutdownTimeout: 5 } }]);
    host.send("SIGTERM");
    expect(calls).toEqual(["stop", "abandon"]);
  });

  it("abandons when the shutdown timeout runs out", async () => {
    const host = fakeHost();
    const signals = new ShutdownSignals(host);
    const { log } = memoryLog();
    const abandoned = new Promise<void>((resolve) => {
      signals.on(0.01, log, () => {}, resolve);
    });
    host.send("SIGTERM");
    await abandoned;
  });

  it("tells every runner that asked (import and its --enqueue run both stop)", () => {
    const host = fakeHost();
    const signals = new ShutdownSignals(host);
    const { log } = memoryLog();
    const calls: string[] = [];
    signals.on(
      undefined,
      log,
      () => calls.push("importer"),
      () => {},
    );
    signals.on(
      undefined,
      log,
      () => calls.push("enqueuer"),
      () => {},
    );
    host.send("SIGTERM");
    expect(calls).toEqual(["importer", "enqueuer"]);
  });
});
