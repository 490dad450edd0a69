// A real Prometheus (Debian's `prometheus` 2.42, with `promtool`) for the metrics tests: started on a free loopback
// port with a temporary configuration and storage, scraping the given targets every second. Where it is not installed
// the tests that need it are skipped with a note (`.ci/run` installs it as root).
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** Why the real Prometheus tests cannot run here, or undefined. */
export function prometheusUnavailable(): string | undefined {
  for (const tool of ["prometheus", "promtool"]) {
    try {
      execFileSync(tool, ["--version"], { stdio: "ignore" });
    } catch {
      return `no ${tool} on PATH (Debian: apt-get install --no-install-recommends prometheus)`;
    }
  }
  return undefined;
}

/** A port free on 127.0.0.1 now (Prometheus takes no port 0 that it would report). */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (address === null || typeof address === "string") throw new Error("no port");
  return address.port;
}

export interface Prometheus {
  url: string;
  /** An instant query's vector as `labels → value`, labels as `name="value",…` (sorted, without __name__/job/instance). */
  query(expr: string): Promise<Map<string, number>>;
  close(): Promise<void>;
}

export async function startPrometheus(targets: string[]): Promise<Prometheus> {
  const dir = mkdtempSync(join(tmpdir(), "ctef-prometheus-"));
  const config = join(dir, "prometheus.yml");
  writeFileSync(
    config,
    [
      "global:",
      "  scrape_interval: 1s",
      "  scrape_timeout: 1s",
      "scrape_configs:",
      "  - job_name: cloudtrail-exec-filter",
      "    static_configs:",
      `      - targets: [${targets.map((t) => JSON.stringify(t)).join(", ")}]`,
      "",
    ].join("\n"),
  );
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  let log = "";
  const child: ChildProcess = spawn(
    "prometheus",
    [
      `--config.file=${config}`,
      `--storage.tsdb.path=${join(dir, "data")}`,
      `--web.listen-address=127.0.0.1:${port}`,
      "--log.level=warn",
    ],
    { stdio: ["ignore", "ignore", "pipe"] },
  );
  child.stderr?.on("data", (chunk: Buffer) => {
    log += chunk.toString();
  });
  const exited = new Promise<void>((resolve) => child.on("exit", () => resolve()));
  const deadline = Date.now() + 20_000;
  for (;;) {
    const ok = await fetch(`${url}/-/ready`).then(
      (response) => response.ok,
      () => false,
    );
    if (ok) break;
    if (Date.now() > deadline || child.exitCode !== null) throw new Error(`prometheus did not start:\n${log}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return {
    url,
    async query(expr) {
      const response = await fetch(`${url}/api/v1/query?query=${encodeURIComponent(expr)}`);
      const body = (await response.json()) as {
        status: string;
        data?: { resultType: string; result: { metric: Record<string, string>; value: [number, string] }[] };
      };
      if (body.status !== "success" || body.data?.resultType !== "vector") {
        throw new Error(`query ${expr}: ${JSON.stringify(body)}`);
      }
      const result = new Map<string, number>();
      for (const { metric, value } of body.data.result) {
        const labels = Object.entries(metric)
          .filter(([name]) => !["__name__", "job", "instance"].includes(name))
          .sort(([a], [b]) => a.localeCompare(b))
          .map(([name, v]) => `${name}="${v}"`)
          .join(",");
        result.set(labels, Number(value[1]));
      }
      return result;
    },
    async close() {
      child.kill("SIGTERM");
      await exited;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
