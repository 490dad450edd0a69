// The one module that names Node's `process`: it makes the Host (shared/host.ts) that the command line hands down.
// test/contract/process.test.ts fails when another module names `process`.
import type { Host } from "../shared/host.js";

export function processHost(): Host {
  return {
    argv: process.argv,
    env: process.env,
    stdin: process.stdin,
    stdout: process.stdout,
    stderr: {
      get isTTY() {
        return process.stderr.isTTY === true;
      },
      write: (text) => {
        process.stderr.write(text);
      },
    },
    pid: process.pid,
    exit: (code) => process.exit(code),
    onSignal: (signal, listener) => {
      process.on(signal, listener);
    },
    onWarning: (listener) => {
      process.removeAllListeners("warning");
      process.on("warning", listener);
    },
    onUncaughtException: (listener) => {
      process.on("uncaughtException", listener);
    },
    cpuMicros: () => {
      const { user, system } = process.cpuUsage();
      return user + system;
    },
    rssBytes: () => process.memoryUsage.rss(),
    maxRssBytes: () => process.resourceUsage().maxRSS * 1024,
    isAlive: (pid) => {
      try {
        process.kill(pid, 0);
        return true;
      } catch (error) {
        return (error as NodeJS.ErrnoException).code === "EPERM";
      }
    },
  };
}
