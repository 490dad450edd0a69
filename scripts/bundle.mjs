// Bundles the compiled program (dist/*.js, from tsc) into dist/cli.cjs, which bin/cloudtrail-exec-filter loads: one
// CommonJS file (plus a chunk per module that only some paths load, such as SQS or the spool) starts about 30 ms
// sooner on Node 20 than the graph of ES modules, and fluentd pays the start-up at every start of the child.
// The dependencies are bundled too, each into the chunk of the path that needs it: commander into dist/cli.cjs (always
// loaded), the AWS SDK into chunks that load with the first S3 or SQS request, undici into the proxy handler's. A run
// that reads only file:// objects loads none of them; one that reads S3 loads the SDK as a few files instead of some
// 150 resolved one by one in node_modules (0.40-0.50 → 0.29-0.34 CPU-s for a run of one S3 object, issue 21). Only
// Node's built-in modules stay external. dist/*.js stays as tsc wrote it (scan workers load dist/scan-worker.js; where
// there is no bundle, the ES modules load the dependencies from node_modules, which installs keep).
// Run by `npm run build` after tsc.
// The bundle only saves start-up time: when it cannot be made (no rolldown binary for this platform, say), the build
// warns and goes on, and the executable runs dist/cli.js instead.
import { readdirSync, rmSync } from "node:fs";
import { isBuiltin } from "node:module";
import { lazyBuiltins } from "./lazy-builtins.mjs";

const dist = new URL("../dist/", import.meta.url);
function removeBundle() {
  for (const name of readdirSync(dist)) {
    if (/^cli(-.*)?\.cjs(\.map)?$/.test(name)) rmSync(new URL(name, dist)); // chunks of an earlier build
  }
}

removeBundle();
try {
  const { build } = await import("rolldown");
  await build({
    input: { cli: new URL("cli.js", dist).pathname },
    platform: "node",
    external: (id) => isBuiltin(id),
    plugins: [lazyBuiltins()],
    logLevel: "warn",
    output: {
      dir: dist.pathname,
      format: "cjs",
      entryFileNames: "[name].cjs",
      // In dist/ itself, so that `new URL("./scan-worker.js", import.meta.url)` and "../package.json" resolve as in
      // the modules tsc wrote.
      chunkFileNames: "cli-[name]-[hash].cjs",
      sourcemap: true,
    },
  });
} catch (error) {
  removeBundle(); // never a partial bundle
  process.stderr.write(
    `warning: no bundle made (${error instanceof Error ? error.message : String(error)}); the executable will load ` +
      "dist/cli.js, about 30 ms slower to start\n",
  );
}
