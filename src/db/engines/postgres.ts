// PostgreSQL through `pg` (postgres-dialect.ts, imported only when a postgres:// URL is
// configured): advisory locks serialize claims across replicas, row locks keep GC and uploads
// apart.
import { sql } from "kysely";
import type { EngineDialect } from "./dialect.ts";

export const postgresDialect: EngineDialect = {
  engine: "postgres",
  parameterBudget: 10_000,
  columnTypes: { pk: "bigserial NOT NULL PRIMARY KEY", bool: "bool", timestamp: "timestamp with time zone", blob: "bytea" },
  upstreamNar: { numChunksLast: true, hashIndex: true },

  async kyselyDialect(target, opts) {
    if (target.engine !== "postgres") throw new Error(`not a PostgreSQL target: ${target.engine}`);
    const { createPostgresDialect } = await import("../postgres-dialect.ts");
    return (await createPostgresDialect(target.url, opts.poolSize ?? 10, opts.log)).dialect;
  },

  async lockKeys(tx, keys) {
    if (keys.length === 1) {
      await sql`SELECT pg_advisory_xact_lock(hashtextextended(${keys[0]}, 0))`.execute(tx);
    } else if (keys.length > 1) {
      const sorted = [...keys].sort();
      await sql`SELECT pg_advisory_xact_lock(hashtextextended(k, 0)) FROM unnest(${sorted}::text[]) WITH ORDINALITY AS t(k, n) ORDER BY n`.execute(tx);
    }
  },
  async lockMigrations(tx) {
    await sql`SELECT pg_advisory_xact_lock(1635021929, 1)`.execute(tx);
  },
  forUpdate: (q, opts) => (opts?.skipLocked ? q.forUpdate().skipLocked() : q.forUpdate()),
  forShare: (q) => q.forShare(),
  notIndexed: (column) => sql<string>`${sql.ref(column)}`,
  tableExists: (name) => sql`SELECT 1 AS found FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = ${name}`,
  withIsolation: (builder, isolation) => (isolation ? builder.setIsolationLevel(isolation) : builder),
};
