// PostgreSQL through `pg` (postgres-dialect.ts, imported only when a postgres:// URL is
// configured): advisory locks serialize claims across replicas, row locks keep GC and uploads
// apart.
import { sql } from "kysely";
import { postgresChangeSignalDdl } from "../change-signal.ts";
import type { DatabaseErrorClass, EngineDialect } from "./dialect.ts";

// SQLSTATEs (PostgreSQL's errcodes appendix): class 08 is a lost or refused connection, 57P01–57P03
// a server shutting down or starting, 53100 a full disk. The pool's own errors carry no code, only
// these messages.
const SHUTDOWN_CODES = new Set(["57P01", "57P02", "57P03"]);
const DISK_FULL = "53100";
const POOL_LOST = /Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error/;

function classifyPostgresError(error: unknown): DatabaseErrorClass | null {
  const { code, message } = error as { code?: unknown; message?: unknown };
  if (typeof code === "string") {
    if (code === DISK_FULL) return { kind: "full", reason: `disk_full (${DISK_FULL})` };
    if (code.startsWith("08") || SHUTDOWN_CODES.has(code)) return { kind: "unavailable", reason: `SQLSTATE ${code}` };
  }
  if (typeof message === "string" && POOL_LOST.test(message)) return { kind: "unavailable", reason: "the connection pool lost the server" };
  return null;
}

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
  classifyError: classifyPostgresError,
  changeSignalDdl: postgresChangeSignalDdl,
  withIsolation: (builder, isolation) => (isolation ? builder.setIsolationLevel(isolation) : builder),
};
