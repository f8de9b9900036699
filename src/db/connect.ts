// Opening the database named by a URL, and transactions. Every difference between SQLite and
// PostgreSQL lives in src/db/; callers see one `Db` and typed queries.
import { mkdirSync, existsSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { Kysely, sql, type Dialect, type LogEvent } from "kysely";
import type { Database } from "./schema.ts";
import { NodeSqliteDialect } from "./sqlite-driver.ts";
import { DatabaseOpenError, DatabaseUrlError, parseDatabaseUrl, redact } from "./url.ts";

export type Engine = "sqlite" | "postgres";

export interface Db {
  /** a Kysely instance, or the transaction when handed out by `transaction()` */
  kysely: Kysely<Database>;
  engine: Engine;
  close(): Promise<void>;
}

export interface OpenOptions {
  /** PostgreSQL pool size (SQLite always uses one connection) */
  poolSize?: number;
  log?: (msg: string) => void;
  /** every statement as sent, with its parameters (query-plan tests, diagnostics) */
  onQuery?: (sql: string, parameters: readonly unknown[]) => void;
}

export async function openDatabase(url: string, opts: OpenOptions = {}): Promise<Db> {
  const target = parseDatabaseUrl(url);
  let dialect: Dialect;
  if (target.engine === "sqlite") {
    if (!target.memory) {
      if (!existsSync(target.path)) {
        if (!target.create) throw new DatabaseUrlError(`SQLite database ${target.path} does not exist (use ?mode=rwc to create it)`);
        const dir = dirname(resolve(target.path));
        try {
          mkdirSync(dir, { recursive: true });
        } catch (err) {
          const code = (err as NodeJS.ErrnoException).code;
          throw new DatabaseOpenError(`cannot open database ${redact(url)}: cannot create its folder ${dir} (${code === "EEXIST" || code === "ENOTDIR" ? "a file is in the way" : (err as Error).message})`, { cause: err });
        }
      }
    }
    dialect = new NodeSqliteDialect({ path: target.path, readOnly: target.readOnly });
  } else {
    const { createPostgresDialect } = await import("./postgres-dialect.ts");
    dialect = (await createPostgresDialect(target.url, opts.poolSize ?? 10, opts.log)).dialect;
  }
  const log = opts.log;
  const kysely = new Kysely<Database>({
    dialect,
    log:
      log || opts.onQuery
        ? (event: LogEvent) => {
            if (event.level === "query") opts.onQuery?.(event.query.sql, event.query.parameters);
            else if (log) logQueryError(event, log);
          }
        : undefined,
  });
  const db: Db = { kysely, engine: target.engine, close: () => kysely.destroy() };
  try {
    await ping(db); // fail at start, with the URL (minus password) in the message
  } catch (err) {
    await kysely.destroy().catch(() => {});
    throw new DatabaseOpenError(`cannot open database ${redact(url)}: ${(err as Error).message}`, { cause: err });
  }
  return db;
}

function logQueryError(event: LogEvent, log: (msg: string) => void): void {
  if (event.level === "error") {
    log(`query failed after ${event.queryDurationMillis.toFixed(1)} ms: ${(event.error as Error)?.message ?? String(event.error)}: ${event.query.sql}`);
  }
}

/** A round trip to the database (readiness checks, upstream's heartbeat). */
export async function ping(db: Db): Promise<void> {
  await sql`SELECT 1`.execute(db.kysely);
}

export interface TransactionOptions {
  /**
   * PostgreSQL only: REPEATABLE READ makes a statement that meets a row changed after its
   * snapshot fail (and be retried) instead of acting on a stale view of other rows. SQLite
   * transactions are serializable anyway.
   */
  isolation?: "read committed" | "repeatable read" | "serializable";
  /** retries after a serialization failure or deadlock (default 0) */
  retries?: number;
}

/**
 * Run `fn` in one transaction; it commits when `fn` resolves and rolls back when it throws.
 * Inside, use only the `tx` handed to `fn`: on SQLite the outer `db` waits for the connection
 * the transaction holds. Nested calls join the enclosing transaction.
 */
export async function transaction<T>(db: Db, fn: (tx: Db) => Promise<T>, opts: TransactionOptions = {}): Promise<T> {
  if (db.kysely.isTransaction) return fn(db);
  for (let attempt = 0; ; attempt++) {
    try {
      let builder = db.kysely.transaction();
      if (db.engine === "postgres" && opts.isolation) builder = builder.setIsolationLevel(opts.isolation);
      return await builder.execute((trx) => fn({ kysely: trx, engine: db.engine, close: notClosable }));
    } catch (err) {
      if (attempt >= (opts.retries ?? 0) || !isRetryable(err)) throw err;
      retriedTransactions++;
      await new Promise((r) => setTimeout(r, 5 + Math.random() * 20 * (attempt + 1)));
    }
  }
}

let retriedTransactions = 0;

/** Transactions of this process run again after a serialization failure or deadlock (/metrics). */
export function transactionRetryCount(): number {
  return retriedTransactions;
}

async function notClosable(): Promise<void> {
  throw new Error("close() the database, not a transaction");
}

/** PostgreSQL serialization failure or deadlock: the transaction may simply be run again. */
export function isRetryable(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return code === "40001" || code === "40P01";
}
