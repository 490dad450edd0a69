// A digest's signature, checked as CloudTrail makes it: RSA PKCS#1 v1.5 over the SHA-256 of the data-signing string,
// hex in the object's `x-amz-meta-signature`. The cryptography is node:crypto's (OpenSSL); what is ours is the string.
// https://docs.aws.amazon.com/awscloudtrail/latest/userguide/cloudtrail-log-file-custom-validation.html
import { createHash, createPublicKey, type KeyObject, verify } from "node:crypto";
import type { Digest } from "./digest.js";

/** The only algorithm CloudTrail names (`digestSignatureAlgorithm`, `x-amz-meta-signature-algorithm`). */
export const SIGNATURE_ALGORITHM = "SHA256withRSA";

/**
 * Hex characters a signature may have: an RSA signature is as long as the key's modulus, and 16384-bit keys are the
 * largest OpenSSL takes. CloudTrail's are 2048-bit (512 hex characters).
 */
const SIGNATURE_HEX_MAX = 4096;

export function sha256Hex(bytes: Buffer | string): string {
  return createHash("sha256").update(bytes).digest("hex");
}

/**
 * `digestEndTime \n digestS3Bucket/digestS3Object \n hex SHA-256 of the uncompressed digest \n previousDigestSignature`,
 * the last the text `null` for the first digest of a chain.
 */
export function signingString(digest: Digest, digestSha256Hex: string): string {
  return [
    digest.digestEndTime,
    `${digest.digestS3Bucket}/${digest.digestS3Object}`,
    digestSha256Hex,
    digest.previousDigestSignature ?? "null",
  ].join("\n");
}

/** A lowercase hex signature from metadata, or undefined when it is not one. */
export function parseSignature(value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  const lower = value.trim().toLowerCase();
  if (lower.length === 0 || lower.length > SIGNATURE_HEX_MAX || lower.length % 2 !== 0) return undefined;
  return /^[0-9a-f]+$/.test(lower) ? lower : undefined;
}

/** ListPublicKeys's `Value`: DER of a PKCS#1 RSAPublicKey. Throws when it is not one. */
export function publicKeyFromDer(der: Uint8Array): KeyObject {
  return createPublicKey({ key: Buffer.from(der), format: "der", type: "pkcs1" });
}

/** True when `signatureHex` is the key's SHA256withRSA signature of `data`. */
export function verifySignature(data: string, signatureHex: string, key: KeyObject): boolean {
  try {
    return verify("sha256", Buffer.from(data, "utf8"), key, Buffer.from(signatureHex, "hex"));
  } catch {
    return false; // a signature of the wrong length, a key OpenSSL refuses: not a valid signature either way
  }
}
