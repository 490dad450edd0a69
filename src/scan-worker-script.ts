// Where a scan worker's code comes from: dist/scan-worker.js, beside this module once built. The single executable has
// no files beside it: its build (scripts/build-exe.mjs) puts in this module's place one that returns the worker
// bundled into one CommonJS script, which `new Worker` runs with `eval: true`.

export interface WorkerScript {
  /** A file to load, or the code itself (`eval`). */
  script: URL | string;
  eval: boolean;
}

export function scanWorkerScript(): WorkerScript {
  return { script: new URL("./scan-worker.js", import.meta.url), eval: false };
}
