// Table tests for the AWS settings read at start: endpoints, and the region and endpoints taken from the environment.
import { describe, expect, it } from "vitest";
import { isInvalid } from "../../src/model/names.js";
import { awsSettings, parseEndpoint } from "../../src/model/settings.js";
import { region } from "../support/names.js";

describe("parseEndpoint", () => {
  it.each(["http://127.0.0.1:9000", "https://s3.example.com", "http://[::1]:9000", "https://minio.local/prefix"])(
    "%j is an endpoint, kept as written",
    (value) => {
      expect(parseEndpoint(value)).toBe(value);
    },
  );

  it.each<[string, RegExp]>([
    ["notaurl", /is not a URL/],
    ["127.0.0.1:9000", /is not a URL/],
    ["localhost:9000", /the scheme is localhost:/], // a URL of the scheme "localhost:"
    ["s3.amazonaws.com", /is not a URL/],
    ["ftp://host", /the scheme is ftp:/],
    ["file:///tmp", /the scheme is file:/],
    ["", /is not a URL/],
  ])("%j is refused", (value, reason) => {
    const parsed = parseEndpoint(value);
    expect(isInvalid(parsed) && parsed.reason).toMatch(reason);
  });
});

describe("awsSettings", () => {
  it.each<[string, Parameters<typeof awsSettings>[0], Record<string, string>, unknown]>([
    ["nothing set: us-east-1", {}, {}, { region: "us-east-1" }],
    ["AWS_REGION", {}, { AWS_REGION: "eu-west-1" }, { region: "eu-west-1" }],
    ["AWS_DEFAULT_REGION", {}, { AWS_DEFAULT_REGION: "eu-west-2" }, { region: "eu-west-2" }],
    [
      "AWS_REGION before AWS_DEFAULT_REGION",
      {},
      { AWS_REGION: "eu-west-1", AWS_DEFAULT_REGION: "x" },
      { region: "eu-west-1" },
    ],
    [
      "an empty AWS_REGION counts as unset",
      {},
      { AWS_REGION: "", AWS_DEFAULT_REGION: "eu-west-2" },
      { region: "eu-west-2" },
    ],
    [
      "--region wins, and AWS_REGION is not read",
      { region: region("ap-south-1") },
      { AWS_REGION: "bad" },
      { region: "ap-south-1" },
    ],
    [
      "endpoints from the environment",
      {},
      { AWS_ENDPOINT_URL: "http://a:1", AWS_ENDPOINT_URL_SQS: "http://q:2" },
      { region: "us-east-1", s3Endpoint: "http://a:1", sqsEndpoint: "http://q:2" },
    ],
    [
      "AWS_ENDPOINT_URL_S3 before AWS_ENDPOINT_URL",
      {},
      { AWS_ENDPOINT_URL_S3: "http://s3:1", AWS_ENDPOINT_URL: "bad" },
      { region: "us-east-1", s3Endpoint: "http://s3:1" },
    ],
    [
      "--endpoint wins",
      { endpoint: "http://cli:1" },
      { AWS_ENDPOINT_URL_S3: "bad" },
      { region: "us-east-1", s3Endpoint: "http://cli:1" },
    ],
  ])("%s", (_name, options, env, expected) => {
    expect(awsSettings(options, env)).toEqual(expected);
  });

  it.each<[Record<string, string>, string]>([
    [{ AWS_REGION: "us-east-1.evil.example" }, 'the environment variable AWS_REGION "us-east-1.evil.example" is not'],
    [{ AWS_DEFAULT_REGION: "EU" }, 'the environment variable AWS_DEFAULT_REGION "EU" is not'],
    [{ AWS_ENDPOINT_URL_S3: "notaurl" }, 'the environment variable AWS_ENDPOINT_URL_S3 "notaurl" is not a URL'],
    [{ AWS_ENDPOINT_URL: "ftp://x" }, 'the environment variable AWS_ENDPOINT_URL "ftp://x" is not an http'],
    [{ AWS_ENDPOINT_URL_SQS: "nope" }, 'the environment variable AWS_ENDPOINT_URL_SQS "nope" is not a URL'],
  ])("%j is a message naming the variable", (env, message) => {
    expect(awsSettings({}, env)).toEqual(expect.stringContaining(message));
  });
});
