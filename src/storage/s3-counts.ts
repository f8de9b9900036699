// S3 operations, failures and retries of this process, counted by a middleware of the S3 client
// (s3-client.ts) and read by /metrics. Kept apart from the client so that reading them never
// loads the AWS SDK.
export const s3Counts = {
  /** operations sent (each may take several attempts) */
  requests: 0,
  /** operations that failed after their last attempt */
  errors: 0,
  /** attempts beyond the first */
  retries: 0,
};
