// What the HTTPS tests share: the test certificate (test/fixtures/tls, for localhost and 127.0.0.1; see its README),
// credentials that sign without an AWS account, and the first real CloudTrail files gzipped as S3 objects.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";
import { FIXTURE_NAMES, FIXTURES } from "./trail.js";

export const TLS_DIR = fileURLToPath(new URL("../fixtures/tls/", import.meta.url));
/** The certificate's file: what the child trusts through NODE_EXTRA_CA_CERTS. */
export const TEST_CA = join(TLS_DIR, "cert.pem");
/** Key and certificate for `https.createServer`. */
export const TEST_CERTIFICATE = { key: readFileSync(join(TLS_DIR, "key.pem")), cert: readFileSync(TEST_CA) };

/** Static credentials and a region: requests are signed, nothing asks AWS (nor the instance metadata service). */
export const FAKE_AWS_ENV = {
  AWS_ACCESS_KEY_ID: "x",
  AWS_SECRET_ACCESS_KEY: "x",
  AWS_REGION: "us-east-1",
  AWS_EC2_METADATA_DISABLED: "true",
};

/**
 * The first `count` fixture files (by name), gzipped, keyed by request path `${prefix}${name}.gz`, with the eventIDs
 * they hold.
 */
export function trailObjects(
  prefix: string,
  count: number,
): {
  names: string[];
  objects: Map<string, Buffer>;
  expectedIds: string[];
} {
  const names = FIXTURE_NAMES.slice(0, count);
  const objects = new Map<string, Buffer>();
  const expectedIds: string[] = [];
  for (const name of names) {
    const json = readFileSync(join(FIXTURES, name));
    objects.set(`${prefix}${name}.gz`, gzipSync(json));
    for (const record of (JSON.parse(json.toString("utf8")) as { Records: { eventID: string }[] }).Records) {
      expectedIds.push(record.eventID);
    }
  }
  return { names, objects, expectedIds };
}
