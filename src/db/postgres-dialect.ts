// PostgreSQL through `pg`, imported only when a postgres:// URL is configured. The pool has its
// own type parsers (nothing global changes): int8 as number (ids and byte sizes stay far below
// 2^53), timestamptz as Date (pg's default).
import { PostgresDialect, type Dialect } from "kysely";
import type { Pool } from "pg";

const INT8_OID = 20;

export interface PostgresSetup {
  dialect: Dialect;
  pool: Pool;
}

export async function createPostgresDialect(url: string, poolSize: number, log?: (msg: string) => void): Promise<PostgresSetup> {
  const pg = (await import("pg")).default;
  const pool = new pg.Pool({
    connectionString: url,
    max: poolSize,
    // a down database must fail requests quickly (503) rather than queue them forever
    connectionTimeoutMillis: 10_000,
    types: {
      getTypeParser: ((oid: number, format?: "text" | "binary") => {
        if (oid === INT8_OID && format !== "binary") return (v: string) => parseInt8(v);
        return format === undefined ? pg.types.getTypeParser(oid) : pg.types.getTypeParser(oid, format);
      }) as typeof pg.types.getTypeParser,
    },
  });
  // an idle client losing its server (restart) must not crash the process; the pool replaces it
  pool.on("error", (err) => log?.(`PostgreSQL idle client error: ${err.message}`));
  return { dialect: new PostgresDialect({ pool }), pool };
}

function parseInt8(v: string): number {
  const n = Number(v);
  if (!Number.isSafeInteger(n)) throw new RangeError(`int8 value ${v} exceeds the safe integer range`);
  return n;
}
