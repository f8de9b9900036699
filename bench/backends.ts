// Backends for benchmarks: "sqlite-local", "postgres-s3", ... as the tests name them. PostgreSQL
// and S3 start a throwaway cluster and s3rver (unless the test environment variables point at
// running ones), as the test runner does.
import { type Backend } from "../test/helpers/server.ts";
import { startPostgres } from "../test/helpers/postgres.ts";
import { startS3 } from "../test/helpers/s3.ts";

import { readFileSync } from "node:fs";
import { withChildren } from "./lib/cpu.ts";

const services: { stop(): unknown }[] = [];
/** what the benchmarks started: the S3 server's process, the PostgreSQL cluster's data folder */
const started: { s3Pid?: number; pgDataDir?: string } = {};

export async function backendFor(spec: string): Promise<Backend> {
  const [db, storage] = spec.split("-") as [Backend["db"], Backend["storage"]];
  if (db === "postgres" && !process.env.ATTIC_TEST_PG_URL) {
    const pg = await startPostgres();
    services.push(pg);
    started.pgDataDir = pg.dataDir;
    process.env.ATTIC_TEST_PG_URL = pg.url;
  }
  if (storage === "s3" && !process.env.ATTIC_TEST_S3_ENDPOINT) {
    const s3 = await startS3();
    services.push(s3);
    if (s3.pid !== undefined) started.s3Pid = s3.pid;
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

/**
 * The processes of the services this bench started, by name: "S3 server" (s3rver) and
 * "PostgreSQL" (the postmaster and its backends, found through /proc by parent), so a bench can
 * print the CPU they cost beside atticd's: on this machine they share its cores.
 */
export function servicePids(): Record<string, number[]> {
  const out: Record<string, number[]> = {};
  if (started.s3Pid !== undefined) out["S3 server"] = [started.s3Pid];
  if (started.pgDataDir) {
    try {
      const postmaster = Number(readFileSync(`${started.pgDataDir}/postmaster.pid`, "utf8").split("\n")[0]);
      const pids = withChildren(postmaster);
      out.PostgreSQL = pids;
    } catch {
      // not running
    }
  }
  return out;
}
