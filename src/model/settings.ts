// The AWS settings of a run, from the command line and the environment, parsed at start: the default region and the
// S3 and SQS endpoints. A value that is not one stops the program before any input is read (exit 2), with a message
// that names the option or variable it came from, instead of failing every object later with an error of the SDK's.
import { type Invalid, isInvalid, parseRegion, type Region, refusalMessage } from "./names.js";

/**
 * An endpoint is an http:// or https:// URL with a host (`http://127.0.0.1:9000`, `https://s3.example.com`). It is
 * given to the SDK as written: the SDK's own parser accepts more (a bare host name, any scheme) and fails later, or
 * sends requests somewhere unexpected.
 */
export function parseEndpoint(value: string): string | Invalid {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return { reason: "is not a URL (expected http://host[:port] or https://host[:port])" };
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    return { reason: `is not an http:// or https:// URL (the scheme is ${url.protocol})` };
  }
  if (url.hostname === "") return { reason: "has no host" };
  return value;
}

export interface AwsSettings {
  /** --region, else AWS_REGION, else AWS_DEFAULT_REGION, else us-east-1. */
  region: Region;
  /** --endpoint, else AWS_ENDPOINT_URL_S3, else AWS_ENDPOINT_URL (the SDK's service-specific or global variable). */
  s3Endpoint?: string;
  /** AWS_ENDPOINT_URL_SQS. */
  sqsEndpoint?: string;
}

/** A value from the environment: an empty variable counts as unset (`AWS_REGION= cmd`, templated env files). */
function fromEnv(env: Record<string, string | undefined>, ...names: string[]): [string, string] | undefined {
  for (const name of names) {
    const value = env[name];
    if (value !== undefined && value !== "") return [name, value];
  }
  return undefined;
}

const US_EAST_1 = parseRegion("us-east-1") as Region;

/**
 * The settings, or a message naming the variable whose value is not one. `region` and `endpoint` are the command
 * line's, already parsed (parseRegion, parseEndpoint). Only the variable a setting is taken from is read: with
 * --region given, AWS_REGION is not looked at.
 */
export function awsSettings(
  options: { region?: Region | undefined; endpoint?: string | undefined },
  env: Record<string, string | undefined>,
): AwsSettings | string {
  let region = options.region;
  if (region === undefined) {
    const named = fromEnv(env, "AWS_REGION", "AWS_DEFAULT_REGION");
    if (named !== undefined) {
      const parsed = parseRegion(named[1]);
      if (isInvalid(parsed)) return refusalMessage(`the environment variable ${named[0]}`, named[1], parsed);
      region = parsed;
    }
  }
  const settings: AwsSettings = { region: region ?? US_EAST_1 };
  const s3 = options.endpoint ?? endpointFromEnv(env, "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL");
  if (s3 !== undefined && typeof s3 !== "string") return s3.message;
  if (s3 !== undefined) settings.s3Endpoint = s3;
  const sqs = endpointFromEnv(env, "AWS_ENDPOINT_URL_SQS");
  if (sqs !== undefined && typeof sqs !== "string") return sqs.message;
  if (sqs !== undefined) settings.sqsEndpoint = sqs;
  return settings;
}

/**
 * The CloudTrail endpoint (ListPublicKeys): AWS_ENDPOINT_URL_CLOUDTRAIL, else AWS_ENDPOINT_URL, as the SDK reads them;
 * `{ message }` naming the variable when its value is not an endpoint. Read only where ListPublicKeys is asked
 * (`verify`, and the other commands with --verify-integrity), so that a run that never asks never refuses it.
 */
export function cloudTrailEndpoint(env: Record<string, string | undefined>): string | { message: string } | undefined {
  return endpointFromEnv(env, "AWS_ENDPOINT_URL_CLOUDTRAIL", "AWS_ENDPOINT_URL");
}

function endpointFromEnv(
  env: Record<string, string | undefined>,
  ...names: string[]
): string | { message: string } | undefined {
  const named = fromEnv(env, ...names);
  if (named === undefined) return undefined;
  const parsed = parseEndpoint(named[1]);
  return isInvalid(parsed)
    ? { message: refusalMessage(`the environment variable ${named[0]}`, named[1], parsed) }
    : parsed;
}
