// Backends for benchmarks: "sqlite-local", "postgres-s3", ... as the tests name them. PostgreSQL
// and S3 start a throwaway cluster and s3rver (unless the test environment variables point at
// running ones), as the test runner does.
import { type Backend } from "../test/helpers/server.ts";
import { startPostgres } from "../test/helpers/postgres.ts";
import { startS3 } from "../test/helpers/s3.ts";

const services: { stop(): unknown }[] = [];

export async function backendFor(spec: string): Promise<Backend> {
  const [db, storage] = spec.split("-") as [Backend["db"], Backend["storage"]];
  if (db === "postgres" && !process.env.ATTIC_TEST_PG_URL) {
    const pg = await startPostgres();
    services.push(pg);
    process.env.ATTIC_TEST_PG_URL = pg.url;
  }
  if (storage === "s3" && !process.env.ATTIC_TEST_S3_ENDPOINT) {
    const s3 = await startS3();
    services.push(s3);
    Object.assign(process.env, {
      ATTIC_TEST_S3_ENDPOINT: s3.endpoint,
      ATTIC_TEST_S3_REGION: s3.region,
      ATTIC_TEST_S3_ACCESS_KEY_ID: s3.accessKeyId,
      ATTIC_TEST_S3_SECRET_ACCESS_KEY: s3.secretAccessKey,
    });
  }
  return { db, storage };
}

export async function stopBackendServices(): Promise<void> {
  for (const s of services.splice(0)) await s.stop();
}
