// Opening the database named by a URL, and transactions. Every difference between SQLite and
// PostgreSQL lives in one object per engine (engines/); callers see one `Db` and typed queries.
import { Kysely, sql, type LogEvent } from "kysely";
import { dialectOf, hasHotReads, type Engine, type EngineDialect, type HotReads, type Isolation } from "./engines/index.ts";
import type { Database } from "./schema.ts";
import { DatabaseOpenError, parseDatabaseUrl, redact } from "./url.ts";

export type { Engine, EngineDialect } from "./engines/index.ts";

export interface Db {
  /** a Kysely instance, or the transaction when handed out by `transaction()` */
  kysely: Kysely<Database>;
  engine: Engine;
  /** what differs between the engines (engines/*.ts): queries ask it rather than test `engine` */
  dialect: EngineDialect;
  /**
   * Hot reads outside Kysely's executor (queries/prepared.ts); absent inside a transaction and
   * when every statement must be seen (`onQuery`).
   */
  hotRead?: HotReads["hotRead"];
  /**
   * What is committed, as a token that changes with every commit of any process (SQLite in WAL
   * mode: sqlite-wal-state.ts) or every commit that changes what hot lookups read (PostgreSQL:
   * change-signal.ts, as this process hears it); null when unknown. Absent inside a transaction
   * and with `onQuery`. Hot-path caches keep a result read between two equal tokens and serve it
   * while the token stays the same.
   */
  committedState?: () => string | null;
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
  const engineDialect = dialectOf(target.engine);
  const dialect = await engineDialect.kyselyDialect(target, { url, poolSize: opts.poolSize, log: opts.log });
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
  // closing twice is harmless (the app closes what a caller may close too)
  let closing: Promise<void> | undefined;
  const db: Db = { kysely, engine: target.engine, dialect: engineDialect, close: () => (closing ??= kysely.destroy()) };
  if (!opts.onQuery && hasHotReads(dialect)) {
    db.hotRead = (text, parameters) => dialect.hotRead(text, parameters);
    if (dialect.committedState) db.committedState = () => dialect.committedState!();
  }
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
  isolation?: Isolation;
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
      const builder = db.dialect.withIsolation(db.kysely.transaction(), opts.isolation);
      return await builder.execute((trx) => fn({ kysely: trx, engine: db.engine, dialect: db.dialect, close: notClosable }));
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
