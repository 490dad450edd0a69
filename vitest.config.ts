import { defineConfig } from "vitest/config";

// Integration tests spawn the built CLI and start loopback servers: give them room on a 2-core machine.
export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: "forks",
    maxWorkers: 2,
  },
});
