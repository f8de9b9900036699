// Builds the S3 clients: path style whenever an endpoint is set (as upstream), static credentials
// or the default AWS chain, adaptive retries, and the checksum settings that S3-compatible
// servers need (checksums only where S3 requires them, as explained below).
import { createHash } from "node:crypto";
import { S3Client } from "@aws-sdk/client-s3";
import { s3Counts } from "./s3-counts.ts";

export interface S3StorageConfig {
  region: string;
  bucket: string;
  /** S3-compatible endpoint; when set, path-style addressing is used */
  endpoint?: string;
  /**
   * The endpoint clients reach the bucket at, used only in presigned URLs, when it differs from
   * `endpoint` (S3 behind an internal service name). Unset: presigned URLs use `endpoint`.
   */
  publicEndpoint?: string;
  /** Without credentials the default AWS chain applies (env, profile, IMDS, …). */
  credentials?: { access_key_id: string; secret_access_key: string };
}

/** Attempts per request (1 + retries) on 5xx, throttling and network errors. */
const MAX_ATTEMPTS = 5;

export function makeS3Client(config: S3StorageConfig, region: string): S3Client {
  const client = new S3Client({
    region,
    ...(config.endpoint ? { endpoint: config.endpoint, forcePathStyle: true } : {}),
    ...(config.credentials
      ? { credentials: { accessKeyId: config.credentials.access_key_id, secretAccessKey: config.credentials.secret_access_key } }
      : {}),
    // The default aws-chunked CRC trailers corrupt streamed uploads on several S3-compatible
    // servers; checksums are only sent where S3 requires them.
    requestChecksumCalculation: "WHEN_REQUIRED",
    responseChecksumValidation: "WHEN_REQUIRED",
    maxAttempts: MAX_ATTEMPTS,
    retryMode: "adaptive",
    // requestTimeout is socket inactivity: a server that goes silent fails the request (and is
    // retried) instead of hanging an upload forever.
    requestHandler: { connectionTimeout: 10_000, requestTimeout: 120_000 },
  });
  client.middlewareStack.add(
    (next, context) => async (args) => {
      if (context.commandName === "DeleteObjectsCommand") useContentMd5(args.request as { headers: Record<string, string>; body?: unknown });
      return next(args);
    },
    { step: "build", priority: "low", name: "atticDeleteObjectsContentMd5" },
  );
  // around the retry middleware: one count per operation, its attempts from the SDK's metadata
  client.middlewareStack.add(
    (next) => async (args) => {
      s3Counts.requests++;
      try {
        const result = await next(args);
        s3Counts.retries += Math.max(0, ((result.output as { $metadata?: { attempts?: number } }).$metadata?.attempts ?? 1) - 1);
        return result;
      } catch (err) {
        s3Counts.errors++;
        s3Counts.retries += Math.max(0, ((err as { $metadata?: { attempts?: number } }).$metadata?.attempts ?? 1) - 1);
        throw err;
      }
    },
    { step: "initialize", priority: "high", name: "atticCounts" },
  );
  return client;
}

/**
 * DeleteObjects must carry a checksum; the SDK now sends CRC32, which MinIO (older), Ceph and
 * other S3-compatible servers reject. Content-MD5 is what every implementation accepts.
 */
function useContentMd5(request: { headers: Record<string, string>; body?: unknown }): void {
  const { headers, body } = request;
  if (typeof body !== "string" && !(body instanceof Uint8Array)) return;
  for (const name of Object.keys(headers)) {
    if (/^x-amz-(sdk-)?checksum-/i.test(name)) delete headers[name];
  }
  headers["content-md5"] = createHash("md5").update(body).digest("base64");
}
