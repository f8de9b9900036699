// Everything that differs between SQLite and PostgreSQL, behind one object per engine (kysely's
// model: outside a dialect, code is dialect-agnostic). Queries and migrations ask `db.dialect`
// for a lock, a row lock, a planner hint, a parameter budget or a column type; they never test
// which engine they run on. A new engine is a new file beside sqlite.ts and postgres.ts.
import type { Dialect, Kysely, RawBuilder, SelectQueryBuilder, TransactionBuilder } from "kysely";
import type { Database } from "../schema.ts";
import type { DatabaseTarget } from "../url.ts";

export type Engine = "sqlite" | "postgres";

export type Isolation = "read committed" | "repeatable read" | "serializable";

/** Column types as SeaQuery writes them for the engine (upstream's schema, our migrations). */
export interface ColumnTypes {
  /** auto-increment primary key */
  pk: string;
  bool: string;
  timestamp: string;
  /** ours: binary data (compressed build logs and listings) */
  blob: string;
}

/**
 * What one of an engine's errors means for the caller. `unavailable`: the database cannot be reached
 * or is shutting down (the server answers 503 so clients retry); `full`: it has no room to write
 * (507). Conflicts need no class: queries settle them themselves (`ON CONFLICT`, key locks).
 */
export interface DatabaseErrorClass {
  kind: "unavailable" | "full";
  /** what said so, for the log: `SQLITE_FULL`, `disk_full (53100)`, `admin_shutdown (57P01)` */
  reason: string;
}

export interface DialectOpenOptions {
  poolSize?: number;
  log?: (msg: string) => void;
  /** the URL as given, for messages (redacted by the caller's helpers) */
  url: string;
}

/**
 * A Kysely dialect that can also run a hot read (queries/prepared.ts) without Kysely's executor,
 * whose connection provider, logging and result plumbing cost more than the read itself on SQLite
 * (measured on the narinfo lookup: 50 µs through Kysely, 10 µs for the statement). Undefined
 * means "take Kysely's path" (on SQLite: while a transaction or another query holds the one
 * connection).
 */
export interface HotReads {
  hotRead(sql: string, parameters: readonly unknown[]): unknown[] | Promise<unknown[]> | undefined;
  /**
   * A token of what is committed to the database by any process (equal tokens: nothing committed
   * in between), or null when unknown; absent where the engine offers no cheap signal.
   */
  committedState?(): string | null;
}

export function hasHotReads(dialect: Dialect): dialect is Dialect & HotReads {
  return typeof (dialect as Partial<HotReads>).hotRead === "function";
}

export interface EngineDialect {
  readonly engine: Engine;
  /**
   * Bound values one statement may carry: SQLite builds before 3.32 allow only 999 ("too many
   * SQL variables", upstream commits 47f17e0/2705d1d), PostgreSQL 65535. Kept well below both.
   */
  readonly parameterBudget: number;
  readonly columnTypes: ColumnTypes;
  /**
   * Upstream's `nar` table as its migrations left it on this engine: PostgreSQL keeps the column
   * order of the ALTERs (num_chunks last); SQLite's rebuild of nar (m20230112_000005) put
   * num_chunks after compression and did not re-create idx-nar-nar-hash.
   */
  readonly upstreamNar: { numChunksLast: boolean; hashIndex: boolean };

  /** The Kysely dialect for this target (heavy drivers are imported here, only when used). */
  kyselyDialect(target: DatabaseTarget, opts: DialectOpenOptions): Promise<Dialect>;

  /**
   * Serialize, until the transaction ends, every transaction that takes the same key (a claim on
   * a NAR or chunk hash). Several keys are taken in sorted order, so two transactions with
   * overlapping keys queue up instead of deadlocking. SQLite: a no-op (one writer at a time).
   */
  lockKeys(tx: Kysely<Database>, keys: readonly string[]): Promise<void>;
  /** One migrator at a time, until the transaction ends. */
  lockMigrations(tx: Kysely<Database>): Promise<void>;

  /** Rows read are locked for update until the commit (`skipLocked`: pass over rows others hold). */
  forUpdate<DB, TB extends keyof DB, O>(q: SelectQueryBuilder<DB, TB, O>, opts?: { skipLocked?: boolean }): SelectQueryBuilder<DB, TB, O>;
  /** Rows read are share-locked until the commit. */
  forShare<DB, TB extends keyof DB, O>(q: SelectQueryBuilder<DB, TB, O>): SelectQueryBuilder<DB, TB, O>;

  /**
   * `column` for use in a WHERE term that must not pick an index. `chunk` and `nar` carry
   * upstream's (state, holders_count) indexes, which GC needs. Without statistics SQLite lets
   * `state = 'V'` drive those indexes even when the same statement names a hash or an id: every
   * claim then walks all valid rows, and uploads slow down as the cache grows (measured: 43 MiB/s
   * on a fresh database, 26 MiB/s by 65,000 chunks). SQLite's documented idiom, a unary `+` on
   * the column, keeps a term from driving an index; PostgreSQL plans by statistics.
   */
  notIndexed(column: string): RawBuilder<string>;

  /** A query whose rows are non-empty when the table exists. */
  tableExists(name: string): RawBuilder<unknown>;

  /** What `error` (one error, not the errors it wraps) means, when it comes from this engine's driver. */
  classifyError(error: unknown): DatabaseErrorClass | null;

  /**
   * What makes every commit that changes a hot lookup's rows visible to the other processes
   * (change-signal.ts), run once by a migration; none where the engine has its own (SQLite's
   * WAL-index header, sqlite-wal-state.ts).
   */
  changeSignalDdl(): string[];

  /** The transaction's isolation level, where the engine has a choice (SQLite is serializable). */
  withIsolation(builder: TransactionBuilder<Database>, isolation: Isolation | undefined): TransactionBuilder<Database>;
}
