// AwsClients.sqsClient: which region an SQS request is signed for and where it goes, for every AWS SQS host shape
// names.ts accepts (issue 20: FIPS, dual-stack, VPC-endpoint and legacy queue URLs were signed for --region, failed
// 8 times and their messages came back). The clients are only built and asked, never sent a request.
import { describe, expect, it } from "vitest";
import { AwsClients } from "../../src/fetch/clients.js";
import { QUEUE_URL_REGIONS } from "../support/names.js";

const clients = (sqsEndpoint?: string) =>
  new AwsClients({
    region: "ap-northeast-3",
    ...(sqsEndpoint === undefined ? {} : { sqsEndpoint }),
    connections: 4,
    timeoutMs: 1000,
    requestPayer: false,
    env: {},
  });

describe("AwsClients.sqsClient", () => {
  it.each(QUEUE_URL_REGIONS)("%s is signed for %s, not --region, and sent to its own host", async (url, region) => {
    const client = await clients().sqsClient(url);
    expect(await client.config.region()).toBe(region);
    // No endpoint set: the SDK sends each request to the queue URL's host (useQueueUrlAsEndpoint).
    expect(client.config.endpoint).toBeUndefined();
    expect(client.config.useQueueUrlAsEndpoint).toBe(true);
  });

  it("a queue elsewhere (an SQS-compatible service) goes to its origin, signed for --region", async () => {
    const client = await clients().sqsClient("http://127.0.0.1:9324/queue/cloudtrail");
    expect(await client.config.region()).toBe("ap-northeast-3");
    const endpoint = await client.config.endpoint?.();
    expect(endpoint?.hostname).toBe("127.0.0.1");
    expect(endpoint?.port).toBe(9324);
  });

  it("AWS_ENDPOINT_URL_SQS takes every queue there; an AWS queue URL still gives its region", async () => {
    const client = await clients("http://127.0.0.1:9500").sqsClient(QUEUE_URL_REGIONS[2]?.[0] as string);
    expect(await client.config.region()).toBe("us-gov-west-1");
    expect((await client.config.endpoint?.())?.port).toBe(9500);
  });
});
