import { defineConfig } from "vitest/config";

// Every test talks to loopback servers without TLS. Where NODE_EXTRA_CA_CERTS is set (some machines export it for
// every program), each Node process the tests start would first parse that CA bundle: about 85 ms per process.
delete process.env.NODE_EXTRA_CA_CERTS;
// The S3 stand-ins are on loopback: a proxy exported on the machine must not carry the tests' requests (the proxy
// tests set these variables for the processes they start).
for (const name of ["HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy"]) {
  delete process.env[name];
}

// The AWS SDK warns once per process, on Node < 22, that its releases after January 2027 need Node 22: news for an
// operator (the program logs it at debug level), noise in a test run, where every worker and every child that makes a
// client would print it. The SDK's own switch turns it off here only: it is set for the tests' processes and what
// they spawn with this environment, never by the program itself.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = "true";

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
