// A throwaway PostgreSQL cluster for tests: initdb as the `postgres` user (initdb refuses root),
// on a free loopback port, fsync off, removed on stop.
import { execFileSync, spawnSync } from "node:child_process";
import { chmodSync, chownSync, existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "./ports.ts";

export const PG_BIN = process.env.PG_BIN ?? "/usr/lib/postgresql/15/bin";

export interface PostgresCluster {
  url: string;
  port: number;
  dataDir: string;
  stop(): void;
  /** Stop and start the server again on the same port (for reconnection tests). */
  restart(): void;
  /**
   * Stop the server, keeping the data (startServer brings it back on the same port). `fast`
   * (default) ends sessions with an error; `immediate` kills them without one, as a crash does.
   */
  stopServer(mode?: "fast" | "immediate"): void;
  startServer(): void;
}

function asPostgres(args: string[]): void {
  const isRoot = process.getuid?.() === 0;
  const [cmd, ...rest] = isRoot ? ["runuser", "-u", "postgres", "--", ...args] : args;
  const r = spawnSync(cmd!, rest, { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`${args.join(" ")} failed (${r.status}): ${r.stderr}${r.stdout}`);
}

export async function startPostgres(): Promise<PostgresCluster> {
  if (!existsSync(join(PG_BIN, "postgres"))) {
    throw new Error(`PostgreSQL server binaries not found in ${PG_BIN} (apt-get install postgresql-15)`);
  }
  const dataDir = mkdtempSync(join(tmpdir(), "attic-pg-"));
  if (process.getuid?.() === 0) {
    const uid = Number(execFileSync("id", ["-u", "postgres"], { encoding: "utf8" }).trim());
    const gid = Number(execFileSync("id", ["-g", "postgres"], { encoding: "utf8" }).trim());
    chownSync(dataDir, uid, gid);
  }
  chmodSync(dataDir, 0o700);
  asPostgres([join(PG_BIN, "initdb"), "-D", dataDir, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8"]);
  const port = await freePort();
  const start = () =>
    asPostgres([
      join(PG_BIN, "pg_ctl"), "-D", dataDir, "-l", join(dataDir, "log"), "-w",
      "-o", `-p ${port} -k /tmp -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=300`, "start",
    ]);
  const stopServer = (mode: "fast" | "immediate" = "fast") => asPostgres([join(PG_BIN, "pg_ctl"), "-D", dataDir, "-m", mode, "-w", "stop"]);
  start();
  return {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    port,
    dataDir,
    restart() {
      stopServer();
      start();
    },
    stopServer,
    startServer: start,
    stop() {
      try {
        stopServer();
      } finally {
        rmSync(dataDir, { recursive: true, force: true });
      }
    },
  };
}

/** Create a fresh database in the cluster and return its URL (one per test suite keeps suites independent). */
export async function createDatabase(clusterUrl: string, name: string): Promise<string> {
  const pg = (await import("pg")).default;
  const client = new pg.Client({ connectionString: clusterUrl });
  await client.connect();
  try {
    if (!/^[a-z0-9_]+$/.test(name)) throw new Error(`bad database name ${name}`);
    await client.query(`CREATE DATABASE ${name}`);
  } finally {
    await client.end();
  }
  const u = new URL(clusterUrl);
  u.pathname = `/${name}`;
  return u.toString();
}
