// Telling "the object store is full" from other S3 errors: MinIO's free-space threshold and
// bucket quota, Ceph RGW's quota, and any 507 Insufficient Storage. The SDK names an error after
// the `<Code>` of the XML answer (`name`, also in `Code`), with the status in `$metadata`.

const FULL_CODES = new Set([
  "XMinioStorageFull", // MinIO below its minimum free drive space (507; older releases 500)
  "XMinioAdminBucketQuotaExceeded", // MinIO bucket quota (400)
  "QuotaExceeded", // Ceph RGW user or bucket quota (403)
  "StorageFull",
  "InsufficientStorage",
]);

/** Why `error` (an AWS SDK error) means the object store has no room, or null if it does not. */
export function s3FullReason(error: unknown): string | null {
  const e = error as { name?: unknown; Code?: unknown; $metadata?: { httpStatusCode?: unknown } } | null;
  if (!e?.$metadata) return null;
  for (const code of [e.Code, e.name]) if (typeof code === "string" && FULL_CODES.has(code)) return code;
  if (e.$metadata.httpStatusCode === 507) return "HTTP 507";
  return null;
}
