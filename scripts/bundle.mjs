// Bundles the compiled program (dist/*.js, from tsc) into dist/cli.cjs, which bin/cloudtrail-exec-filter loads: one
// CommonJS file (plus a chunk per module that only some paths load, such as SQS or the spool) starts about 30 ms
// sooner on Node 20 than the graph of ES modules, and fluentd pays the start-up at every start of the child.
// commander is bundled in (always loaded), and so is prom-client (in --metrics-listen's chunk); the AWS SDK and the
// other dependencies stay external, loaded from node_modules when a path needs them. dist/*.js stays as tsc wrote it (scan workers load dist/scan-worker.js).
// Run by `npm run build` after tsc.
// The bundle only saves start-up time: when it cannot be made (no rolldown binary for this platform, say), the build
// warns and goes on, and the executable runs dist/cli.js instead.
import { readdirSync, rmSync } from "node:fs";

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
    // commander, and prom-client with everything it loads (in the chunk --metrics-listen loads): as one file it loads
    // in about a third of the CPU time its 30-odd modules take from node_modules (bench/README.md).
    external: (id, importer) =>
      !id.startsWith(".") &&
      !id.startsWith("/") &&
      !/^(commander|prom-client)(\/|$)/.test(id) &&
      !(importer?.includes("/node_modules/prom-client/") || importer?.includes("/node_modules/tdigest/")),
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
